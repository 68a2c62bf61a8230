/*
 * cache_sync.h — sharing cache invalidations between memoryd instances over
 * Redis pub/sub (used when STM_BACKEND=redis).
 *
 * Every tag bump and explicit drop made by this instance is published on
 * CACHE_INVALIDATION_CHANNEL (suffixed with the Redis db, since instances on
 * another db hold other data); every other instance applies it to its own
 * cache. Publishing is asynchronous: the request that wrote has already
 * invalidated its own cache (read-your-writes is local and synchronous);
 * peers follow within a network round trip. When a peer cannot be sure it
 * saw every message — the subscription dropped, or the publish queue
 * overflowed — it clears its whole cache rather than risk a stale answer.
 *
 * Threads: one publisher and one subscriber, each with its own hiredis
 * connection (never from the STM pool: a subscribed connection is not usable
 * for commands). Thread-safe.
 */
#ifndef MD_CACHE_SYNC_H
#define MD_CACHE_SYNC_H

#include "memoryd/compat.h"
#include "memoryd/status.h"

struct md_cache;
struct md_config;
struct md_cache_sync;

/* Start both threads (Redis need not be up). NULL + err on failure. */
struct md_cache_sync *md_cache_sync_start(struct md_cache *cache, const struct md_config *cfg,
                                          struct md_error *err);

/* Stop and join (accepts NULL). */
void md_cache_sync_stop(struct md_cache_sync *s);

/* Queue a tag bump for the peers (never blocks). */
void md_cache_sync_tags(struct md_cache_sync *s, const char *const *tags, size_t n);

/* Queue a drop of every key starting with prefix ("" = all) for the peers. */
void md_cache_sync_prefix(struct md_cache_sync *s, const char *prefix);

struct md_cache_sync_stats {
    uint64_t published;
    uint64_t received;  /* from peers */
    uint64_t dropped;   /* not published (queue full or Redis down) */
    uint64_t resyncs;   /* full clears after a possible gap */
    bool subscribed;
};

void md_cache_sync_stats(struct md_cache_sync *s, struct md_cache_sync_stats *out);

#endif /* MD_CACHE_SYNC_H */
