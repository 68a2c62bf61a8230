/*
 * redis_pool.c — bounded pool of synchronous hiredis connections.
 *
 * DESIGN
 * The pool is a counter of open connections (at most `max`) and a stack of
 * idle ones, guarded by `lock`; `cond` wakes checkouts waiting for a lease.
 * Checkout prefers the most recently used idle connection (warm, and it
 * lets the others age into a health check), then dials a new one while
 * fewer than `max` exist, then waits. Everything that touches the network —
 * dialling, AUTH/SELECT, the idle probe, PING, closing — happens with the
 * lock released: a slot is reserved under the lock (open/leased counters
 * raised) and the I/O runs outside it.
 *
 * Dial failures drive a small circuit breaker: after a failed dial, no new
 * dial starts before `retry_at_ms` (exponential backoff from 50 ms to 1 s),
 * and once it may, only one dial at a time probes (`dialling`); checkouts
 * that would need a dial meanwhile fail at once with MD_E_UNAVAIL. Idle
 * connections are still handed out during backoff: they may well work —
 * except after a command timed out, which closes every idle connection and
 * enters the backoff too, so that a hanging Redis ties up at most one
 * caller per backoff step instead of every worker.
 *
 * Locking: `lock` guards every mutable field below it in struct
 * md_redis_pool. It is never held across network I/O or redisFree().
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "memoryd/clock.h"
#include "memoryd/pool_stats.h"
#include "memoryd/redis_pool.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

struct idle_conn {
    redisContext *ctx;
    int64_t since_ms; /* monotonic time of its checkin */
};

struct md_redis_pool {
    /* Immutable after md_redis_pool_new(). */
    char *host;
    char *username; /* "" = password-only AUTH */
    char *password; /* "" = no AUTH */
    int port;
    int db;
    int max;
    int64_t connect_timeout_ms;
    int64_t socket_timeout_ms;
    int64_t health_check_ms;
    int64_t acquire_timeout_ms;
    enum md_status (*on_connect)(void *arg, redisContext *c, struct md_error *err);
    void *on_connect_arg;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when a lease or a slot frees up */
    struct idle_conn *idle; /* stack of n_idle, capacity max */
    int n_idle;
    int open;      /* idle + leased connections, dials in progress included */
    int leased;    /* checked out (dialling and probing included) */
    int dialling;  /* dials in progress */
    int64_t backoff_ms;  /* 0 after a successful dial, else the current step */
    int64_t retry_at_ms; /* monotonic: no new dial before this */
    char last_error[MD_ERROR_DETAIL_MAX]; /* detail of the last failed dial */
    uint64_t waits;
    uint64_t timeouts;
};

static struct timeval ms_to_tv(int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

bool md_redis_timed_out(const redisContext *c)
{
    int e = errno;
    /* EWOULDBLOCK equals EAGAIN on Linux; SO_RCVTIMEO/SO_SNDTIMEO expiry gives EAGAIN. */
    return c && c->err == REDIS_ERR_IO && (e == EAGAIN || e == ETIMEDOUT);
}

struct md_redis_pool *md_redis_pool_new(const struct md_redis_pool_options *opt,
                                        struct md_error *err)
{
    if (!opt || !opt->host || !opt->host[0] || opt->port <= 0 || opt->port > 65535 ||
        opt->max_connections < 1 || opt->connect_timeout_ms < 1 || opt->socket_timeout_ms < 1 ||
        opt->acquisition_timeout_ms < 1 || opt->health_check_interval_ms < 0) {
        md_error_set(err, MD_E_INVAL, "invalid redis pool options");
        return NULL;
    }
    struct md_redis_pool *p = calloc(1, sizeof(*p));
    if (!p) {
        md_error_set(err, MD_E_NOMEM, "out of memory creating the redis pool");
        return NULL;
    }
    p->host = strdup(opt->host);
    p->username = dup_or_empty(opt->username);
    p->password = dup_or_empty(opt->password);
    p->idle = calloc((size_t)opt->max_connections, sizeof(*p->idle));
    if (!p->host || !p->username || !p->password || !p->idle) {
        md_error_set(err, MD_E_NOMEM, "out of memory creating the redis pool");
        goto fail;
    }
    p->port = opt->port;
    p->db = opt->db;
    p->max = opt->max_connections;
    p->connect_timeout_ms = opt->connect_timeout_ms;
    p->socket_timeout_ms = opt->socket_timeout_ms;
    p->health_check_ms = opt->health_check_interval_ms;
    p->acquire_timeout_ms = opt->acquisition_timeout_ms;
    p->on_connect = opt->on_connect;
    p->on_connect_arg = opt->on_connect_arg;

    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        md_error_set(err, MD_E_NOMEM, "cannot create the redis pool condition variable");
        goto fail;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        md_error_set(err, MD_E_NOMEM, "cannot create the redis pool condition variable");
        goto fail;
    }
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        pthread_cond_destroy(&p->cond);
        md_error_set(err, MD_E_NOMEM, "cannot create the redis pool mutex");
        goto fail;
    }
    return p;

fail:
    free(p->idle);
    free(p->host);
    free(p->username);
    if (p->password) {
        memset(p->password, 0, strlen(p->password));
        free(p->password);
    }
    free(p);
    return NULL;
}

void md_redis_pool_free(struct md_redis_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_idle; i++)
        redisFree(p->idle[i].ctx);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->idle);
    free(p->host);
    free(p->username);
    memset(p->password, 0, strlen(p->password));
    free(p->password);
    free(p);
}

/* Fill err for a context that failed (reply NULL): timeout or unavailable. */
static enum md_status ctx_error(const redisContext *c, const char *what, struct md_error *err)
{
    bool timed_out = md_redis_timed_out(c);
    enum md_status st = MD_E_UNAVAIL;
    if (c->err == REDIS_ERR_OOM)
        st = MD_E_NOMEM;
    else if (c->err == REDIS_ERR_PROTOCOL)
        st = MD_E_PROTO;
    else if (timed_out)
        st = MD_E_TIMEOUT;
    md_error_set(err, st,
                 st == MD_E_TIMEOUT ? "redis did not answer in time" : "redis unavailable");
    md_error_detail(err, "%s: %s", what, c->errstr[0] ? c->errstr : "connection lost");
    return st;
}

/* Run AUTH and SELECT in one round trip. */
static enum md_status handshake(struct md_redis_pool *p, redisContext *c, struct md_error *err)
{
    int n = 0;
    if (p->password[0]) {
        const char *argv[3];
        size_t len[3];
        int argc = 0;
        argv[argc] = "AUTH";
        len[argc++] = 4;
        if (p->username[0]) {
            argv[argc] = p->username;
            len[argc++] = strlen(p->username);
        }
        argv[argc] = p->password;
        len[argc++] = strlen(p->password);
        if (redisAppendCommandArgv(c, argc, argv, len) != REDIS_OK)
            return ctx_error(c, "redis AUTH", err);
        n++;
    }
    if (redisAppendCommand(c, "SELECT %d", p->db) != REDIS_OK)
        return ctx_error(c, "redis SELECT", err);
    n++;
    enum md_status st = MD_OK;
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        if (md_redis_get_reply(c, &r) != REDIS_OK || !r)
            return ctx_error(c, "redis handshake", err);
        redisReply *reply = r;
        if (reply->type == REDIS_REPLY_ERROR && st == MD_OK) {
            /* Redis error texts name no secrets ("WRONGPASS invalid ..."). */
            st = md_error_set(err, MD_E_UNAVAIL, "redis unavailable");
            md_error_detail(err, "redis %s failed: %.160s",
                            (i == 0 && p->password[0]) ? "AUTH" : "SELECT", reply->str);
        }
        freeReplyObject(reply);
    }
    return st;
}

/* Connect a new context: TCP, timeouts, keepalive, AUTH, SELECT, hook. */
static enum md_status dial(struct md_redis_pool *p, redisContext **out, struct md_error *err)
{
    *out = NULL;
    redisContext *c = NULL;
    enum md_status st = md_redis_connect(p->host, p->port, p->connect_timeout_ms, &c, err);
    if (st != MD_OK)
        return st;
    if (redisSetTimeout(c, ms_to_tv(p->socket_timeout_ms)) != REDIS_OK) {
        st = ctx_error(c, "redis socket timeout", err);
        goto out;
    }
    if (redisEnableKeepAlive(c) != REDIS_OK) {
        st = ctx_error(c, "redis keepalive", err);
        goto out;
    }
    st = handshake(p, c, err);
    if (st == MD_OK && p->on_connect)
        st = p->on_connect(p->on_connect_arg, c, err);
out:
    if (st != MD_OK) {
        redisFree(c);
        return st;
    }
    *out = c;
    return MD_OK;
}

enum probe_result { PROBE_OK, PROBE_DEAD, PROBE_TIMEOUT };

/*
 * Check an idle connection before lending it: a readable socket means EOF
 * or stray data (the peer went away or the stream is out of step) — no
 * round trip needed; a connection idle for longer than the health-check
 * interval is also PINGed.
 */
static enum probe_result probe(struct md_redis_pool *p, const struct idle_conn *ic,
                               struct md_error *err)
{
    redisContext *c = ic->ctx;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (c->err || poll(&pfd, 1, 0) != 0)
        return PROBE_DEAD;
    if (p->health_check_ms <= 0 || md_mono_ms() - ic->since_ms <= p->health_check_ms)
        return PROBE_OK;
    redisReply *r = md_redis_command(c, "PING");
    if (!r) {
        enum md_status st = ctx_error(c, "redis PING", err);
        return st == MD_E_TIMEOUT ? PROBE_TIMEOUT : PROBE_DEAD;
    }
    bool ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    freeReplyObject(r);
    return ok ? PROBE_OK : PROBE_DEAD;
}

/* Wait on cond until deadline_ms (monotonic); false when it passed. */
static bool wait_until_locked(struct md_redis_pool *p, int64_t deadline_ms)
{
    int64_t left = deadline_ms - md_mono_ms();
    if (left <= 0)
        return false;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(left / 1000);
    ts.tv_nsec += (long)((left % 1000) * 1000000);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    return true;
}

enum md_status md_redis_pool_checkout(struct md_redis_pool *p, redisContext **out,
                                      struct md_error *err)
{
    *out = NULL;
    int64_t deadline = md_mono_ms() + p->acquire_timeout_ms;
    bool waited = false;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->n_idle > 0) {
            struct idle_conn ic = p->idle[--p->n_idle];
            p->leased++;
            pthread_mutex_unlock(&p->lock);
            enum probe_result pr = probe(p, &ic, err);
            if (pr == PROBE_OK) {
                *out = ic.ctx;
                return MD_OK;
            }
            redisFree(ic.ctx);
            pthread_mutex_lock(&p->lock);
            p->leased--;
            p->open--;
            pthread_cond_signal(&p->cond);
            if (pr == PROBE_TIMEOUT) {
                pthread_mutex_unlock(&p->lock);
                return MD_E_TIMEOUT; /* err filled by probe() */
            }
            continue; /* a dead connection is dropped: try the next or dial */
        }
        if (p->open < p->max) {
            int64_t now = md_mono_ms();
            if (p->backoff_ms > 0 && (now < p->retry_at_ms || p->dialling > 0)) {
                enum md_status st = md_error_set(err, MD_E_UNAVAIL, "redis unavailable");
                md_error_detail(err, "reconnect backoff after: %s", p->last_error);
                pthread_mutex_unlock(&p->lock);
                return st;
            }
            p->open++;
            p->leased++;
            p->dialling++;
            pthread_mutex_unlock(&p->lock);
            redisContext *c = NULL;
            enum md_status st = dial(p, &c, err);
            pthread_mutex_lock(&p->lock);
            p->dialling--;
            if (st == MD_E_NOMEM) {
                /* our allocation failed, not Redis: free the slot, keep the breaker as it is */
                p->open--;
                p->leased--;
                pthread_cond_signal(&p->cond);
                pthread_mutex_unlock(&p->lock);
                return st;
            }
            if (st != MD_OK) {
                p->open--;
                p->leased--;
                p->backoff_ms = p->backoff_ms ? MD_MIN(p->backoff_ms * 2, BACKOFF_MAX_MS)
                                              : BACKOFF_MIN_MS;
                p->retry_at_ms = md_mono_ms() + p->backoff_ms;
                snprintf(p->last_error, sizeof(p->last_error), "%s",
                         err && err->detail[0] ? err->detail : md_status_str(st));
                pthread_cond_broadcast(&p->cond); /* waiters re-evaluate: fail fast */
                pthread_mutex_unlock(&p->lock);
                return st;
            }
            p->backoff_ms = 0;
            pthread_mutex_unlock(&p->lock);
            *out = c;
            return MD_OK;
        }
        if (!waited) {
            waited = true;
            p->waits++;
        }
        if (!wait_until_locked(p, deadline)) {
            p->timeouts++;
            pthread_mutex_unlock(&p->lock);
            enum md_status st = md_error_set(err, MD_E_UNAVAIL, "redis unavailable");
            md_error_detail(err, "no free redis connection within %lld ms (max %d)",
                            (long long)p->acquire_timeout_ms, p->max);
            return st;
        }
    }
}

/* A context that died of a socket timeout (errno text kept by hiredis). */
static bool died_of_timeout(const redisContext *c)
{
    return c->err == REDIS_ERR_IO &&
           (strstr(c->errstr, "temporarily unavailable") || strstr(c->errstr, "timed out"));
}

void md_redis_pool_checkin(struct md_redis_pool *p, redisContext *c, bool broken)
{
    if (!c)
        return;
    if (c->err)
        broken = true;
    bool timed_out = broken && died_of_timeout(c);
    struct idle_conn *drained = NULL;
    int n_drained = 0;
    pthread_mutex_lock(&p->lock);
    p->leased--;
    if (broken) {
        p->open--;
    } else {
        p->idle[p->n_idle].ctx = c;
        p->idle[p->n_idle].since_ms = md_mono_ms();
        p->n_idle++;
    }
    if (timed_out) {
        /*
         * Redis stopped answering (paused, partitioned, overloaded). Trip the
         * breaker: the idle connections would only hang their callers for
         * another socket timeout each, so they are closed, and the next dial
         * waits for the backoff; until then checkouts fail at once and
         * workers stay free for other routes. A successful dial resets it.
         */
        drained = malloc((size_t)p->n_idle * sizeof(*drained) + 1);
        if (drained) {
            n_drained = p->n_idle;
            memcpy(drained, p->idle, (size_t)n_drained * sizeof(*drained));
            p->open -= n_drained;
            p->n_idle = 0;
        }
        p->backoff_ms = MD_MAX(p->backoff_ms, BACKOFF_MIN_MS);
        p->retry_at_ms = md_mono_ms() + p->backoff_ms;
        snprintf(p->last_error, sizeof(p->last_error), "a command timed out");
    }
    pthread_mutex_unlock(&p->lock);
    /*
     * One connection came back (or one slot to dial): one waiter can use it,
     * so wake one, after unlocking so that it does not wake into a held lock.
     * Waking them all made every checkin a thundering herd under load
     * (perf, STM writes at c=64: ~8 % of memoryd's CPU in futex wake-ups and
     * in waiters queueing on this lock only to wait again). A tripped
     * breaker wakes every waiter: they all fail fast now.
     */
    if (timed_out)
        pthread_cond_broadcast(&p->cond);
    else
        pthread_cond_signal(&p->cond);
    if (broken)
        redisFree(c);
    for (int i = 0; i < n_drained; i++)
        redisFree(drained[i].ctx);
    free(drained);
}

void md_redis_pool_stats(struct md_redis_pool *p, struct md_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    out->size = p->open;
    out->in_use = p->leased;
    out->max = p->max;
    out->waits = p->waits;
    out->timeouts = p->timeouts;
    pthread_mutex_unlock(&p->lock);
}
