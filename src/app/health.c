/*
 * health.c — one prober thread per store, readers see the last outcome.
 *
 * Why threads and not a probe per request: /health must answer within a
 * second even when Redis or Neo4j hangs (SIGSTOP, network partition), and a
 * ping on the request path would wait for the store's socket timeout. Each
 * prober owns its store probe; a hanging store delays only its own prober.
 */
#include "memoryd/compat.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memoryd/app.h"
#include "memoryd/clock.h"
#include "memoryd/health.h"
#include "memoryd/ltm.h"
#include "memoryd/stm.h"

/* Latency above which a store answering its probe is reported degraded. */
#define STM_SLOW_MS 200.0 /* 2 × the seed's STM threshold (100 ms) */
#define LTM_SLOW_MS 1000.0 /* 2 × the seed's LTM threshold (500 ms) */

struct prober {
    struct md_health *h;
    bool is_stm;
    pthread_t thread;
    /* guarded by h->lock: */
    struct md_component_health last;
    int64_t in_flight_since_mono; /* 0 when no probe is running */
    bool started;
};

struct md_health {
    struct md_app *app;
    int64_t interval_ms;
    pthread_mutex_t lock;
    pthread_cond_t wake;   /* probers sleep on it between probes; stop wakes them */
    pthread_cond_t probed; /* broadcast after every probe: md_health_start waits for the first */
    bool stop;
    struct prober stm, ltm;
};

const char *md_health_status_name(enum md_health_status s)
{
    switch (s) {
    case MD_HEALTHY: return "healthy";
    case MD_DEGRADED: return "degraded";
    case MD_UNHEALTHY: return "unhealthy";
    }
    return "unhealthy";
}

static void probe_once(struct prober *p)
{
    struct md_health *h = p->h;
    struct md_error err;
    md_error_clear(&err);
    pthread_mutex_lock(&h->lock);
    p->in_flight_since_mono = md_mono_ms();
    pthread_mutex_unlock(&h->lock);
    int64_t t0 = md_mono_us();
    enum md_status st = p->is_stm ? h->app->stm->ops->ping(h->app->stm, &err)
                                  : h->app->ltm->ops->ping(h->app->ltm, &err);
    double ms = (double)(md_mono_us() - t0) / 1000.0;
    double slow = p->is_stm ? STM_SLOW_MS : LTM_SLOW_MS;
    struct md_component_health r = p->last;
    r.latency_ms = ms;
    r.checked_ms = md_now_ms();
    if (st != MD_OK) {
        r.status = MD_UNHEALTHY;
        snprintf(r.message, sizeof(r.message), "%s", err.msg[0] ? err.msg : md_status_str(st));
    } else if (ms > slow) {
        r.status = MD_DEGRADED;
        snprintf(r.message, sizeof(r.message), "answering slowly (%.0f ms)", ms);
    } else {
        r.status = MD_HEALTHY;
        snprintf(r.message, sizeof(r.message), "ok");
    }
    pthread_mutex_lock(&h->lock);
    p->last = r;
    p->in_flight_since_mono = 0;
    pthread_cond_broadcast(&h->probed);
    pthread_mutex_unlock(&h->lock);
}

static void *run(void *arg)
{
    struct prober *p = arg;
    struct md_health *h = p->h;
    pthread_setname_np(pthread_self(), p->is_stm ? "md-probe-stm" : "md-probe-ltm");
    for (;;) {
        probe_once(p);
        pthread_mutex_lock(&h->lock);
        if (!h->stop) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            int64_t ns = until.tv_nsec + (h->interval_ms % 1000) * 1000000;
            until.tv_sec += h->interval_ms / 1000 + ns / 1000000000;
            until.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&h->wake, &h->lock, &until);
        }
        bool stop = h->stop;
        pthread_mutex_unlock(&h->lock);
        if (stop)
            return NULL;
    }
}

static void init_prober(struct md_health *h, struct prober *p, bool is_stm)
{
    p->h = h;
    p->is_stm = is_stm;
    p->last.backend = is_stm ? h->app->stm->ops->backend : h->app->ltm->ops->backend;
    p->last.status = MD_UNHEALTHY;
    snprintf(p->last.message, sizeof(p->last.message), "not probed yet");
}

/*
 * Hold start-up until both stores have answered their first probe, or until
 * MD_HEALTH_STUCK_MS has passed (a hanging store is then reported as not
 * answering): the daemon starts listening only afterwards, so /health never
 * answers "not probed yet" for a store that is fine.
 */
static void wait_first_probes(struct md_health *h)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + (int64_t)(MD_HEALTH_STUCK_MS % 1000) * 1000000;
    until.tv_sec += MD_HEALTH_STUCK_MS / 1000 + ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&h->lock);
    while (h->stm.last.checked_ms == 0 || h->ltm.last.checked_ms == 0)
        if (pthread_cond_timedwait(&h->probed, &h->lock, &until) != 0)
            break;
    pthread_mutex_unlock(&h->lock);
}

struct md_health *md_health_start(struct md_app *app, double interval_s, struct md_error *err)
{
    struct md_health *h = calloc(1, sizeof(*h));
    if (!h) {
        md_error_set(err, MD_E_NOMEM, "out of memory starting the health probes");
        return NULL;
    }
    h->app = app;
    h->interval_ms = (int64_t)(interval_s * 1000.0);
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->wake, &ca);
    pthread_cond_init(&h->probed, &ca);
    pthread_condattr_destroy(&ca);
    init_prober(h, &h->stm, true);
    init_prober(h, &h->ltm, false);
    struct prober *ps[2] = {&h->stm, &h->ltm};
    for (int i = 0; i < 2; i++) {
        if (pthread_create(&ps[i]->thread, NULL, run, ps[i]) != 0) {
            md_error_set(err, MD_E_INTERNAL, "cannot start a health probe thread");
            md_health_stop(h);
            return NULL;
        }
        ps[i]->started = true;
    }
    wait_first_probes(h);
    return h;
}

void md_health_stop(struct md_health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_broadcast(&h->wake);
    pthread_mutex_unlock(&h->lock);
    /* A prober blocked in a hanging store returns within that store's
     * timeout; shutdown waits for it rather than leaving a thread behind. */
    if (h->stm.started)
        pthread_join(h->stm.thread, NULL);
    if (h->ltm.started)
        pthread_join(h->ltm.thread, NULL);
    pthread_cond_destroy(&h->wake);
    pthread_cond_destroy(&h->probed);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static void read_one(struct md_health *h, const struct prober *p, int64_t now_mono,
                     struct md_component_health *out)
{
    *out = p->last;
    if (p->in_flight_since_mono && now_mono - p->in_flight_since_mono > MD_HEALTH_STUCK_MS) {
        out->status = MD_UNHEALTHY;
        snprintf(out->message, sizeof(out->message), "no answer for %lld ms",
                 (long long)(now_mono - p->in_flight_since_mono));
        out->latency_ms = (double)(now_mono - p->in_flight_since_mono);
    } else if (out->checked_ms == 0 && !p->in_flight_since_mono) {
        out->status = MD_UNHEALTHY;
    }
    (void)h;
}

void md_health_get(struct md_health *h, struct md_component_health *stm,
                   struct md_component_health *ltm)
{
    int64_t now = md_mono_ms();
    pthread_mutex_lock(&h->lock);
    read_one(h, &h->stm, now, stm);
    read_one(h, &h->ltm, now, ltm);
    pthread_mutex_unlock(&h->lock);
}
