/*
 * janitor.c — periodic housekeeping on its own thread (pgbouncer's janitor).
 *
 * The thread sleeps on a condition variable with a one-second timeout, so
 * md_janitor_stop() takes effect at once instead of after a tick.
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memoryd/app.h"
#include "memoryd/clock.h"
#include "memoryd/janitor.h"
#include "memoryd/cache.h"
#include "memoryd/config.h"
#include "memoryd/log.h"
#include "memoryd/ltm.h"
#include "memoryd/metrics.h"
#include "memoryd/neo4j_client.h"
#include "memoryd/stm.h"

#define SWEEP_EVERY_MS 10000

struct md_janitor {
    struct md_app *app;
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t wake;
    bool stop;
};

/* Retry the LTM schema bootstrap with backoff (1 s doubling to 30 s). */
static void ensure_schema(struct md_janitor *j, int64_t *next_try, int64_t *backoff)
{
    struct md_app *app = j->app;
    if (atomic_load(&app->ltm_schema_ready) || md_mono_ms() < *next_try)
        return;
    struct md_error err;
    md_error_clear(&err);
    if (app->ltm->ops->ensure_schema(app->ltm, &err) == MD_OK) {
        atomic_store(&app->ltm_schema_ready, true);
        md_log_info("janitor", "LTM schema is in place");
        return;
    }
    md_log_warn("janitor", "LTM schema bootstrap failed, retrying in %lld ms: %s%s%s",
                (long long)*backoff, err.msg, err.detail[0] ? ": " : "", err.detail);
    *next_try = md_mono_ms() + *backoff;
    *backoff = *backoff * 2 > 30000 ? 30000 : *backoff * 2;
}

/* Feed the metrics windows the figures only the janitor can gather. */
static void tick_metrics(struct md_app *app)
{
    struct md_metrics_sample s;
    memset(&s, 0, sizeof(s));
    s.has_cache = true;
    md_cache_stats(app->cache, &s.cache);
    s.has_pool[MD_STORE_STM] = true;
    app->stm->ops->pool_stats(app->stm, &s.pool[MD_STORE_STM]);
    if (app->cfg->ltm_backend == MD_LTM_NEO4J) {
        s.has_pool[MD_STORE_LTM] = true;
        md_ltm_neo4j_pool_stats(app->ltm_inner, &s.pool[MD_STORE_LTM]);
    }
    md_metrics_tick(app->metrics, &s);
}

static void *run(void *arg)
{
    struct md_janitor *j = arg;
    pthread_setname_np(pthread_self(), "md-janitor");
    int64_t next_sweep = md_mono_ms() + SWEEP_EVERY_MS;
    int64_t next_schema_try = 0, schema_backoff = 1000;
    pthread_mutex_lock(&j->lock);
    while (!j->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&j->wake, &j->lock, &until);
        if (j->stop)
            break;
        pthread_mutex_unlock(&j->lock);
        ensure_schema(j, &next_schema_try, &schema_backoff);
        tick_metrics(j->app);
        if (md_mono_ms() >= next_sweep) {
            j->app->stm->ops->sweep(j->app->stm, md_now_ms());
            md_cache_sweep(j->app->cache);
            next_sweep = md_mono_ms() + SWEEP_EVERY_MS;
        }
        pthread_mutex_lock(&j->lock);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

struct md_janitor *md_janitor_start(struct md_app *app, struct md_error *err)
{
    struct md_janitor *j = calloc(1, sizeof(*j));
    if (!j) {
        md_error_set(err, MD_E_NOMEM, "out of memory starting the janitor");
        return NULL;
    }
    j->app = app;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->wake, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&j->thread, NULL, run, j);
    if (rc != 0) {
        md_error_set(err, MD_E_INTERNAL, "cannot start the janitor thread: error %d", rc);
        pthread_cond_destroy(&j->wake);
        pthread_mutex_destroy(&j->lock);
        free(j);
        return NULL;
    }
    return j;
}

void md_janitor_stop(struct md_janitor *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    j->stop = true;
    pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->lock);
    pthread_join(j->thread, NULL);
    pthread_cond_destroy(&j->wake);
    pthread_mutex_destroy(&j->lock);
    free(j);
}
