/*
 * cache.h — the in-process TTL cache in front of both tiers.
 *
 * A bounded (entries and bytes), sharded hash table with per-shard LRU
 * lists and striped locks: no global lock on the request path. Values are
 * ready-to-send bytes (the `data` part of a response), so a hit costs one
 * lookup and one copy.
 *
 * Invalidation is by TAG, not by scanning. Every cached value carries the
 * tags it depends on ("ltm", "se:<scenario>", …) and the cache's write
 * sequence number observed BEFORE the store was read (a ticket). A write
 * bumps its tags: each bumped tag records a new sequence number. A value
 * is valid only while none of its tags was bumped after its ticket — so a
 * value read from the store while a write was committing can never be
 * served after that write is acknowledged. Bumping is O(tags); stale values
 * are simply never served again and age out through LRU and TTL. Tags are
 * remembered only while a cached value carries them.
 *
 * Write-through: a write that knows the whole new answer for one key marks
 * that key's tag before its store write (md_cache_mark) and bumps with
 * md_cache_bump_marked after it; when nobody else bumped the tag in between,
 * its store write is the tag's latest and the answer may be stored with the
 * bump's seq as its ticket.
 *
 * Thread safety: every function is thread-safe. Lock order: a shard lock
 * and a tag-stripe lock are never held together.
 */
#ifndef MD_CACHE_H
#define MD_CACHE_H

#include "memoryd/buf.h"
#include "memoryd/compat.h"
#include "memoryd/status.h"

#define MD_CACHE_MAX_TAGS 8
#define MD_CACHE_TAG_MAX 160 /* a value with a longer tag is not cached */

struct md_cache;

struct md_cache_options {
    size_t max_entries; /* total bound (split across shards) */
    size_t max_bytes;   /* total bound on key + value bytes */
    int64_t ttl_ms;     /* default and maximum time to live */
    size_t max_tags;    /* bound on tag records (0: 8 × max_entries); a put beyond it is dropped */
};

struct md_cache_stats {
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions; /* dropped to make room (LRU) */
    uint64_t expired;   /* dropped because their TTL passed */
    uint64_t stale;     /* dropped because a tag was bumped */
    uint64_t entries;   /* current */
    uint64_t bytes;     /* current */
    uint64_t bumps;     /* tag invalidations */
    uint64_t tags;      /* tag records (tags carried by cached values) */
};

/* NULL + err on allocation failure. max_entries 0 disables the cache (every lookup misses). */
struct md_cache *md_cache_new(const struct md_cache_options *opt, struct md_error *err);
void md_cache_free(struct md_cache *c);

/* The ticket to pass to md_cache_put: take it before reading the store. */
uint64_t md_cache_ticket(struct md_cache *c);

/*
 * Look key up; on a valid hit append the value to out and return true.
 * Misses (absent, expired, stale) return false. An append failure (out's
 * cap) is reported as a miss.
 */
bool md_cache_get(struct md_cache *c, const char *key, struct md_buf *out);

/*
 * md_cache_get() for a look that comes before the request is validated (the
 * HTTP event thread's): a hit counts, a miss does not — the handler, which
 * looks again once the request is known to be valid, counts it.
 */
bool md_cache_peek(struct md_cache *c, const char *key, struct md_buf *out);

/*
 * Store a copy of value under key with its tags, valid as of ticket, for
 * ttl_ms (0 or more than the default: the default). Dropped silently when a
 * tag was bumped after the ticket, when it does not fit, or on OOM.
 */
void md_cache_put(struct md_cache *c, const char *key, const char *value, size_t value_len,
                  const char *const *tags, size_t n_tags, uint64_t ticket, int64_t ttl_ms);

/* Invalidate every value depending on any of tags (local only). */
void md_cache_bump(struct md_cache *c, const char *const *tags, size_t n_tags);

/* The seq tag counts as last bumped at: take it before a write-through's store write. */
uint64_t md_cache_mark(struct md_cache *c, const char *tag);

/*
 * Bump tags like md_cache_bump. True when tags[0] was not bumped by anyone
 * between md_cache_mark(tags[0]) == mark and this call; *seq is then the
 * ticket under which the writer may md_cache_put its new answer (tagged
 * tags[0]): any later bump of tags[0] still invalidates it.
 */
bool md_cache_bump_marked(struct md_cache *c, const char *const *tags, size_t n_tags,
                          uint64_t mark, uint64_t *seq);

/* Drop every entry whose key starts with prefix ("" = all); returns how many. */
size_t md_cache_drop_prefix(struct md_cache *c, const char *prefix);

/* Drop expired entries (the janitor calls this); returns how many. */
size_t md_cache_sweep(struct md_cache *c);

void md_cache_stats(struct md_cache *c, struct md_cache_stats *out);

/* Configured bounds (for /health and metrics). */
size_t md_cache_max_entries(const struct md_cache *c);
size_t md_cache_max_bytes(const struct md_cache *c);

#endif /* MD_CACHE_H */
