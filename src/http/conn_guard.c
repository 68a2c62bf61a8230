/*
 * conn_guard.c — connection deadlines and the log budget (see conn_guard.h).
 *
 * DESIGN
 * Watches form a doubly linked list under `lock`. A watch's deadline is an
 * atomic (0: none), written by the HTTP worker that owns the connection and
 * read by the sweeper. The sweeper holds `lock` while it shuts sockets down,
 * and md_conn_guard_remove() takes `lock` too; since the HTTP server removes
 * a watch before libmicrohttpd closes the descriptor, a descriptor the
 * sweeper shuts down is always still the connection's own (never one reused
 * by a later connection).
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "memoryd/clock.h"
#include "memoryd/conn_guard.h"
#include "memoryd/log.h"

#define SWEEP_MAX_MS 250
#define SWEEP_MIN_MS 20
#define EXPIRY_LOG_EVERY_MS 10000

struct md_conn_watch {
    struct md_conn_watch *prev, *next;
    int fd;
    atomic_llong deadline_ms; /* monotonic; 0: none */
};

struct md_conn_guard {
    int64_t timeout_ms;
    int64_t sweep_ms;
    pthread_t thread;
    pthread_mutex_t lock; /* guards the list and stop */
    pthread_cond_t wake;
    bool stop;
    struct md_conn_watch *head;
    atomic_ullong expired;
};

static int64_t now_ms(void)
{
    return md_mono_ms();
}

/* Shut down every watched socket whose deadline passed; returns how many. */
static int sweep_locked(struct md_conn_guard *g, int64_t now)
{
    int n = 0;
    for (struct md_conn_watch *w = g->head; w; w = w->next) {
        long long dl = atomic_load(&w->deadline_ms);
        if (dl == 0 || now < dl)
            continue;
        atomic_store(&w->deadline_ms, 0);
        /* Counted before the shutdown: whoever sees the EOF also sees the count. */
        atomic_fetch_add(&g->expired, 1);
        /* EOF for libmicrohttpd on its next poll; it then closes the connection. */
        shutdown(w->fd, SHUT_RDWR);
        n++;
    }
    return n;
}

static void *run(void *arg)
{
    struct md_conn_guard *g = arg;
    pthread_setname_np(pthread_self(), "md-connguard");
    int64_t last_log = 0;
    uint64_t unlogged = 0;
    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)(g->sweep_ms * 1000000);
        while (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (!g->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&g->wake, &g->lock, &until);
        if (g->stop)
            break;
        int64_t now = now_ms();
        int n = sweep_locked(g, now);
        if (n > 0)
            unlogged += (uint64_t)n;
        if (unlogged > 0 && now - last_log >= EXPIRY_LOG_EVERY_MS) {
            md_log_warn("http", "closed %llu connection(s) that did not send a complete request "
                                "within API_CONNECTION_TIMEOUT (%lld ms)",
                        (unsigned long long)unlogged, (long long)g->timeout_ms);
            unlogged = 0;
            last_log = now;
        }
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

struct md_conn_guard *md_conn_guard_start(int64_t timeout_ms, struct md_error *err)
{
    struct md_conn_guard *g = calloc(1, sizeof(*g));
    if (!g) {
        md_error_set(err, MD_E_NOMEM, "out of memory starting the connection guard");
        return NULL;
    }
    g->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    g->sweep_ms = MD_MAX(SWEEP_MIN_MS, MD_MIN(SWEEP_MAX_MS, g->timeout_ms / 8));
    atomic_init(&g->expired, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&g->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        free(g);
        md_error_set(err, MD_E_NOMEM, "cannot create the connection guard's condition");
        return NULL;
    }
    pthread_mutex_init(&g->lock, NULL);
    if (pthread_create(&g->thread, NULL, run, g) != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->lock);
        free(g);
        md_error_set(err, MD_E_NOMEM, "cannot start the connection guard thread");
        return NULL;
    }
    return g;
}

void md_conn_guard_stop(struct md_conn_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->stop = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    /* Normally empty: libmicrohttpd removed every connection when it stopped. */
    struct md_conn_watch *w = g->head;
    while (w) {
        struct md_conn_watch *next = w->next;
        free(w);
        w = next;
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

struct md_conn_watch *md_conn_guard_add(struct md_conn_guard *g, int fd)
{
    if (!g || fd < 0)
        return NULL;
    struct md_conn_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->fd = fd;
    atomic_init(&w->deadline_ms, (long long)(now_ms() + g->timeout_ms));
    pthread_mutex_lock(&g->lock);
    w->next = g->head;
    if (g->head)
        g->head->prev = w;
    g->head = w;
    pthread_mutex_unlock(&g->lock);
    return w;
}

void md_conn_guard_remove(struct md_conn_guard *g, struct md_conn_watch *w)
{
    if (!g || !w)
        return;
    pthread_mutex_lock(&g->lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        g->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&g->lock);
    free(w);
}

void md_conn_guard_arm(struct md_conn_guard *g, struct md_conn_watch *w)
{
    if (g && w)
        atomic_store(&w->deadline_ms, (long long)(now_ms() + g->timeout_ms));
}

void md_conn_guard_disarm(struct md_conn_watch *w)
{
    if (w)
        atomic_store(&w->deadline_ms, 0);
}

uint64_t md_conn_guard_expired(const struct md_conn_guard *g)
{
    return g ? (uint64_t)atomic_load(&((struct md_conn_guard *)(uintptr_t)g)->expired) : 0;
}

bool md_log_budget_take(struct md_log_budget *b, int64_t now, uint64_t *dropped)
{
    while (atomic_flag_test_and_set_explicit(&b->lock, memory_order_acquire))
        ; /* held for a few instructions only */
    bool ok;
    *dropped = 0;
    if (now - b->window_ms >= 1000) {
        b->window_ms = now;
        b->used = 0;
    }
    if (b->used < b->per_second) {
        b->used++;
        *dropped = b->suppressed;
        b->suppressed = 0;
        ok = true;
    } else {
        b->suppressed++;
        ok = false;
    }
    atomic_flag_clear_explicit(&b->lock, memory_order_release);
    return ok;
}
