/*
 * cache_sync.c — Redis pub/sub transport for cache invalidations.
 *
 * Message format (one PUBLISH): "<origin>\n<kind>\n<item>\n<item>…" where
 * origin is this process's random id (own messages are ignored), kind is
 * 'T' (items are tags to bump), 'P' (one item: a key prefix to drop) or 'A'
 * (drop everything). Items never contain '\n' (tags and prefixes are built
 * from validated ids and paths).
 *
 * The publisher drains a bounded queue, merging consecutive tag messages into
 * one PUBLISH (up to MSG_MAX bytes); if the queue overflows it replaces the
 * lost messages by one 'A' so that peers stay correct, only colder.
 * The subscriber reads with poll() and a short timeout so that stop is
 * prompt; after every successful SUBSCRIBE (the first one included: the
 * daemon may have cached answers before it, e.g. while Redis was down at
 * start-up) it clears the local cache, because messages sent while it was
 * not subscribed are lost.
 */
#include "memoryd/compat.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memoryd/cache.h"
#include "memoryd/cache_sync.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/log.h"
#include "memoryd/redis_io.h"
#include "memoryd/text.h"

#define QUEUE_MAX 4096
#define MSG_MAX 8192
/*
 * When fewer than LINGER_BATCH messages wait, the publisher waits LINGER_US
 * for more before it publishes: under a write load, one PUBLISH (and one
 * wake-up of every subscriber, this daemon's own included) then carries
 * several writes' tags instead of one each. Peers see an invalidation at
 * most this much later.
 */
#define LINGER_US 1000
#define LINGER_BATCH 8

struct md_cache_sync {
    struct md_cache *cache;
    char channel[300];
    char origin[33];
    char host[256];
    int port;
    char username[256];
    char *password; /* owned copy; never logged */
    struct timeval connect_tv, io_tv;

    pthread_mutex_t lock; /* guards the queue and stop */
    pthread_cond_t wake;
    char *queue[QUEUE_MAX];
    size_t head, count;
    bool overflow; /* messages were lost: publish 'A' next */
    bool stop;

    pthread_t pub_thread, sub_thread;
    bool pub_started, sub_started;
    atomic_uint_fast64_t published, received, dropped, resyncs;
    atomic_bool subscribed;
};

/* Connect, AUTH; NULL on failure (logged once per state change by callers). */
static redisContext *dial(struct md_cache_sync *s)
{
    int64_t ms = (int64_t)s->connect_tv.tv_sec * 1000 + s->connect_tv.tv_usec / 1000;
    redisContext *c = NULL;
    struct md_error err;
    md_error_clear(&err);
    if (md_redis_connect(s->host, s->port, ms, &c, &err) != MD_OK)
        return NULL;
    redisSetTimeout(c, s->io_tv);
    redisEnableKeepAlive(c);
    if (s->password[0]) {
        redisReply *r = s->username[0]
                            ? md_redis_command(c, "AUTH %s %s", s->username, s->password)
                            : md_redis_command(c, "AUTH %s", s->password);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static void backoff(struct md_cache_sync *s, int64_t *delay_ms)
{
    pthread_mutex_lock(&s->lock);
    if (!s->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + (*delay_ms % 1000) * 1000000;
        until.tv_sec += *delay_ms / 1000 + ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&s->wake, &s->lock, &until);
    }
    pthread_mutex_unlock(&s->lock);
    *delay_ms = *delay_ms * 2 > 2000 ? 2000 : *delay_ms * 2;
}

static bool stopping(struct md_cache_sync *s)
{
    pthread_mutex_lock(&s->lock);
    bool stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

/* ---- publishing ------------------------------------------------------------ */

static void enqueue(struct md_cache_sync *s, char *msg)
{
    pthread_mutex_lock(&s->lock);
    if (!msg || s->count == QUEUE_MAX) {
        s->overflow = true;
        free(msg);
        atomic_fetch_add(&s->dropped, 1);
    } else {
        s->queue[(s->head + s->count) % QUEUE_MAX] = msg;
        s->count++;
    }
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

void md_cache_sync_tags(struct md_cache_sync *s, const char *const *tags, size_t n)
{
    if (!s || n == 0)
        return;
    char buf[MSG_MAX];
    int o = snprintf(buf, sizeof(buf), "%s\nT", s->origin);
    for (size_t i = 0; i < n && o > 0 && (size_t)o < sizeof(buf); i++)
        o += snprintf(buf + o, sizeof(buf) - (size_t)o, "\n%s", tags[i]);
    enqueue(s, (o > 0 && (size_t)o < sizeof(buf)) ? strdup(buf) : NULL);
}

void md_cache_sync_prefix(struct md_cache_sync *s, const char *prefix)
{
    if (!s)
        return;
    char buf[MSG_MAX];
    int o = prefix[0] ? snprintf(buf, sizeof(buf), "%s\nP\n%s", s->origin, prefix)
                      : snprintf(buf, sizeof(buf), "%s\nA", s->origin);
    enqueue(s, (o > 0 && (size_t)o < sizeof(buf)) ? strdup(buf) : NULL);
}

/* True when msg is this process's tag message ("<origin>\nT…"). */
static bool is_tags(const struct md_cache_sync *s, const char *msg, size_t olen)
{
    return strncmp(msg, s->origin, olen) == 0 && msg[olen] == '\n' && msg[olen + 1] == 'T' &&
           (msg[olen + 2] == '\n' || msg[olen + 2] == '\0');
}

/*
 * Append the tag messages queued right behind the tag message msg to it, up
 * to MSG_MAX bytes: a burst of writes costs one PUBLISH instead of one each
 * (Redis and every peer handle fewer messages). Order is kept: merging stops
 * at the first message of another kind. Caller holds s->lock.
 */
static char *merge_tags_locked(struct md_cache_sync *s, char *msg)
{
    size_t olen = strlen(s->origin), head = olen + 2; /* "<origin>\nT" */
    if (!is_tags(s, msg, olen))
        return msg;
    size_t len = strlen(msg);
    while (s->count) {
        char *next = s->queue[s->head];
        if (!is_tags(s, next, olen))
            break;
        size_t add = strlen(next) - head; /* "\n<tag>\n<tag>…" */
        if (len + add >= MSG_MAX)
            break;
        char *grown = realloc(msg, len + add + 1);
        if (!grown)
            break; /* publish what we have; the rest goes next time */
        memcpy(grown + len, next + head, add + 1);
        msg = grown;
        len += add;
        free(next);
        s->head = (s->head + 1) % QUEUE_MAX;
        s->count--;
    }
    return msg;
}

/* Take the next message (or an 'A' after an overflow); NULL when stopping. */
static char *dequeue(struct md_cache_sync *s)
{
    pthread_mutex_lock(&s->lock);
    while (!s->stop && s->count == 0 && !s->overflow)
        pthread_cond_wait(&s->wake, &s->lock);
    if (!s->stop && !s->overflow && s->count < LINGER_BATCH) {
        pthread_mutex_unlock(&s->lock); /* writers queue meanwhile (no wake-up: nobody waits) */
        struct timespec linger = {0, LINGER_US * 1000L};
        nanosleep(&linger, NULL);
        pthread_mutex_lock(&s->lock);
    }
    char *msg = NULL;
    if (!s->stop) {
        if (s->overflow) {
            /* Everything queued is covered by one "drop all". */
            for (; s->count; s->count--, s->head = (s->head + 1) % QUEUE_MAX)
                free(s->queue[s->head]);
            s->overflow = false;
            char buf[64];
            snprintf(buf, sizeof(buf), "%s\nA", s->origin);
            msg = strdup(buf);
        } else {
            msg = s->queue[s->head];
            s->head = (s->head + 1) % QUEUE_MAX;
            s->count--;
            msg = merge_tags_locked(s, msg);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return msg;
}

static void *publisher(void *arg)
{
    struct md_cache_sync *s = arg;
    pthread_setname_np(pthread_self(), "md-cache-pub");
    redisContext *c = NULL;
    int64_t delay = 100;
    char *msg;
    while ((msg = dequeue(s)) != NULL) {
        if (!c)
            c = dial(s);
        redisReply *r =
            c ? md_redis_command(c, "PUBLISH %s %b", s->channel, msg, strlen(msg)) : NULL;
        bool ok = r && r->type == REDIS_REPLY_INTEGER;
        if (r)
            freeReplyObject(r);
        free(msg);
        if (ok) {
            atomic_fetch_add(&s->published, 1);
            delay = 100;
            continue;
        }
        /* Lost: peers must drop everything once Redis is back. */
        atomic_fetch_add(&s->dropped, 1);
        if (c) {
            redisFree(c);
            c = NULL;
        }
        pthread_mutex_lock(&s->lock);
        s->overflow = true;
        pthread_mutex_unlock(&s->lock);
        backoff(s, &delay);
    }
    if (c)
        redisFree(c);
    return NULL;
}

/* ---- subscribing ------------------------------------------------------------ */

static void apply(struct md_cache_sync *s, const char *msg, size_t len)
{
    char *copy = strndup(msg, len);
    if (!copy) {
        md_cache_drop_prefix(s->cache, "");
        return;
    }
    char *save = NULL;
    char *origin = strtok_r(copy, "\n", &save);
    char *kind = origin ? strtok_r(NULL, "\n", &save) : NULL;
    if (!origin || !kind || strcmp(origin, s->origin) == 0) {
        free(copy);
        return;
    }
    atomic_fetch_add(&s->received, 1);
    if (kind[0] == 'T') {
        const char *tags[64];
        size_t n = 0;
        char *t;
        while ((t = strtok_r(NULL, "\n", &save)) != NULL) {
            tags[n++] = t;
            if (n == 64) {
                md_cache_bump(s->cache, tags, n);
                n = 0;
            }
        }
        md_cache_bump(s->cache, tags, n);
    } else if (kind[0] == 'P') {
        char *p = strtok_r(NULL, "\n", &save);
        md_cache_drop_prefix(s->cache, p ? p : "");
    } else {
        md_cache_drop_prefix(s->cache, "");
    }
    free(copy);
}

/* Read replies until the connection fails or stop; false on failure. */
static bool listen_loop(struct md_cache_sync *s, redisContext *c)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    while (!stopping(s)) {
        int rc = poll(&pfd, 1, 200);
        if (rc < 0)
            continue;
        if (rc == 0)
            continue;
        if (redisBufferRead(c) != REDIS_OK)
            return false;
        void *v = NULL;
        while (redisGetReplyFromReader(c, &v) == REDIS_OK && v) {
            redisReply *r = v;
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                r->element[0]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[0]->str, "message") == 0 &&
                r->element[2]->type == REDIS_REPLY_STRING)
                apply(s, r->element[2]->str, r->element[2]->len);
            freeReplyObject(r);
            v = NULL;
        }
        if (c->err)
            return false;
    }
    return true;
}

static void *subscriber(void *arg)
{
    struct md_cache_sync *s = arg;
    pthread_setname_np(pthread_self(), "md-cache-sub");
    int64_t delay = 100;
    bool first = true, warned = false;
    while (!stopping(s)) {
        redisContext *c = dial(s);
        redisReply *r = c ? md_redis_command(c, "SUBSCRIBE %s", s->channel) : NULL;
        bool ok = r && r->type == REDIS_REPLY_ARRAY;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            if (c)
                redisFree(c);
            if (!warned)
                md_log_warn("cache", "cannot subscribe to cache invalidations on redis "
                                     "'%s:%d'; retrying",
                            s->host, s->port);
            warned = true;
            backoff(s, &delay);
            continue;
        }
        /* Invalidations may have been missed while away — and before the
         * first subscription too: answers cached while Redis was down at
         * start-up (LTM reads need no Redis) never saw the peers' writes. */
        md_cache_drop_prefix(s->cache, "");
        if (!first)
            atomic_fetch_add(&s->resyncs, 1);
        if (warned)
            md_log_info("cache", "subscribed to cache invalidations again");
        first = false;
        warned = false;
        delay = 100;
        atomic_store(&s->subscribed, true);
        listen_loop(s, c);
        atomic_store(&s->subscribed, false);
        redisFree(c);
    }
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------------------- */

static struct timeval tv_of(double seconds)
{
    struct timeval tv;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    return tv;
}

struct md_cache_sync *md_cache_sync_start(struct md_cache *cache, const struct md_config *cfg,
                                          struct md_error *err)
{
    struct md_cache_sync *s = calloc(1, sizeof(*s));
    if (!s || !(s->password = strdup(cfg->redis_password))) {
        free(s);
        md_error_set(err, MD_E_NOMEM, "out of memory starting cache sync");
        return NULL;
    }
    s->cache = cache;
    snprintf(s->channel, sizeof(s->channel), "%s:%lld", cfg->cache_invalidation_channel,
             (long long)cfg->redis_db);
    unsigned char raw[16];
    md_random_bytes(raw, sizeof(raw));
    for (int i = 0; i < 16; i++)
        snprintf(s->origin + 2 * i, 3, "%02x", raw[i]);
    snprintf(s->host, sizeof(s->host), "%s", cfg->redis_host);
    snprintf(s->username, sizeof(s->username), "%s", cfg->redis_username);
    s->port = (int)cfg->redis_port;
    s->connect_tv = tv_of(cfg->redis_socket_connect_timeout);
    s->io_tv = tv_of(cfg->redis_socket_timeout);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->pub_thread, NULL, publisher, s) != 0) {
        md_cache_sync_stop(s);
        md_error_set(err, MD_E_INTERNAL, "cannot start the cache publisher thread");
        return NULL;
    }
    s->pub_started = true;
    if (pthread_create(&s->sub_thread, NULL, subscriber, s) != 0) {
        md_cache_sync_stop(s);
        md_error_set(err, MD_E_INTERNAL, "cannot start the cache subscriber thread");
        return NULL;
    }
    s->sub_started = true;
    return s;
}

void md_cache_sync_stop(struct md_cache_sync *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (s->pub_started)
        pthread_join(s->pub_thread, NULL);
    if (s->sub_started)
        pthread_join(s->sub_thread, NULL);
    for (; s->count; s->count--, s->head = (s->head + 1) % QUEUE_MAX)
        free(s->queue[s->head]);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s->password);
    free(s);
}

void md_cache_sync_stats(struct md_cache_sync *s, struct md_cache_sync_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!s)
        return;
    out->published = atomic_load(&s->published);
    out->received = atomic_load(&s->received);
    out->dropped = atomic_load(&s->dropped);
    out->resyncs = atomic_load(&s->resyncs);
    out->subscribed = atomic_load(&s->subscribed);
}
