/*
 * cache.c — sharded TTL/LRU cache with tag-sequence invalidation.
 *
 * DESIGN
 * Entries live in SHARDS independent shards chosen by key hash; each shard
 * has a mutex, an open hash table (chained) and an LRU list, and enforces
 * its share of the entry and byte bounds, evicting from the LRU tail.
 *
 * Tags live in a separate striped table: tag -> seq of its last bump.
 * md_cache_bump() takes a new sequence number from one atomic counter and
 * stores it in each tag. An entry records its ticket (the counter value
 * before its data was read) and its tags; on lookup it is valid while every
 * tag's last bump is <= ticket. The tag table is bounded: when it is full it
 * is cleared and `floor` moves to the current sequence, which counts as a
 * bump of every tag (entries older than the floor become stale).
 *
 * Locks: shard locks protect entries, stripe locks protect tags; validity is
 * checked under the shard lock by taking stripe locks one at a time (a
 * stripe lock is never held while taking a shard lock, so no cycle).
 */
#include "memoryd/compat.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "memoryd/cache.h"
#include "memoryd/clock.h"

#define SHARDS 16
#define STRIPES 64

struct entry {
    struct entry *next_hash;           /* chain in the shard's table */
    struct entry *prev_lru, *next_lru; /* LRU list, head = most recent */
    uint64_t hash;
    uint64_t ticket;
    int64_t expires_ms; /* monotonic */
    size_t key_len, value_len;
    uint8_t n_tags;
    char *tags[MD_CACHE_MAX_TAGS];
    char *key;   /* points into data */
    char *value; /* points into data */
    char data[]; /* key NUL value */
};

struct shard {
    pthread_mutex_t lock;
    struct entry **table; /* n_buckets chains */
    size_t n_buckets;
    struct entry *lru_head, *lru_tail;
    size_t entries, bytes;
    size_t max_entries, max_bytes;
};

struct tag {
    struct tag *next;
    uint64_t hash;
    uint64_t seq;
    char name[];
};

struct stripe {
    pthread_mutex_t lock;
    struct tag **table;
    size_t n_buckets;
    size_t count;
};

struct md_cache {
    struct shard shards[SHARDS];
    struct stripe stripes[STRIPES];
    size_t max_entries, max_bytes, max_tags_per_stripe;
    int64_t ttl_ms;
    atomic_uint_fast64_t seq;   /* last issued bump sequence */
    atomic_uint_fast64_t floor; /* every tag counts as bumped at floor */
    atomic_uint_fast64_t hits, misses, evictions, expired, stale, bumps;
};

/* FNV-1a 64 — keys are short and trusted (built by the API layer). */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void free_entry(struct entry *e)
{
    for (unsigned i = 0; i < e->n_tags; i++)
        free(e->tags[i]);
    free(e);
}

struct md_cache *md_cache_new(const struct md_cache_options *opt, struct md_error *err)
{
    struct md_cache *c = calloc(1, sizeof(*c));
    if (!c) {
        md_error_set(err, MD_E_NOMEM, "out of memory creating the cache");
        return NULL;
    }
    c->max_entries = opt->max_entries;
    c->max_bytes = opt->max_bytes;
    c->ttl_ms = opt->ttl_ms > 0 ? opt->ttl_ms : 300000;
    size_t max_tags = opt->max_tags ? opt->max_tags : MD_MAX(opt->max_entries * 8, 1024);
    c->max_tags_per_stripe = MD_MAX(max_tags / STRIPES, 16);
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->max_entries = (opt->max_entries + SHARDS - 1) / SHARDS;
        s->max_bytes = (opt->max_bytes + SHARDS - 1) / SHARDS;
        s->n_buckets = 64;
        while (s->n_buckets < s->max_entries)
            s->n_buckets *= 2;
        s->table = calloc(s->n_buckets, sizeof(*s->table));
        if (!s->table)
            goto oom;
    }
    for (int i = 0; i < STRIPES; i++) {
        struct stripe *t = &c->stripes[i];
        pthread_mutex_init(&t->lock, NULL);
        t->n_buckets = 64;
        while (t->n_buckets < c->max_tags_per_stripe)
            t->n_buckets *= 2;
        t->table = calloc(t->n_buckets, sizeof(*t->table));
        if (!t->table)
            goto oom;
    }
    return c;
oom:
    md_cache_free(c);
    md_error_set(err, MD_E_NOMEM, "out of memory creating the cache");
    return NULL;
}

static void clear_stripe_locked(struct stripe *t)
{
    for (size_t b = 0; b < t->n_buckets; b++) {
        struct tag *g = t->table[b];
        while (g) {
            struct tag *next = g->next;
            free(g);
            g = next;
        }
        t->table[b] = NULL;
    }
    t->count = 0;
}

void md_cache_free(struct md_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        for (struct entry *e = s->lru_head; e;) {
            struct entry *next = e->next_lru;
            free_entry(e);
            e = next;
        }
        free(s->table);
        pthread_mutex_destroy(&s->lock);
    }
    for (int i = 0; i < STRIPES; i++) {
        if (c->stripes[i].table)
            clear_stripe_locked(&c->stripes[i]);
        free(c->stripes[i].table);
        pthread_mutex_destroy(&c->stripes[i].lock);
    }
    free(c);
}

uint64_t md_cache_ticket(struct md_cache *c)
{
    return atomic_load(&c->seq);
}

/* Last bump sequence of a tag (floor if it was never bumped since the floor). */
static uint64_t tag_seq(struct md_cache *c, const char *name)
{
    uint64_t h = hash_str(name);
    struct stripe *t = &c->stripes[h % STRIPES];
    uint64_t seq = 0;
    pthread_mutex_lock(&t->lock);
    for (struct tag *g = t->table[(h / STRIPES) & (t->n_buckets - 1)]; g; g = g->next)
        if (g->hash == h && strcmp(g->name, name) == 0) {
            seq = g->seq;
            break;
        }
    pthread_mutex_unlock(&t->lock);
    uint64_t floor = atomic_load(&c->floor);
    return seq > floor ? seq : floor;
}

static bool tags_valid(struct md_cache *c, char *const *tags, size_t n, uint64_t ticket)
{
    if (atomic_load(&c->floor) > ticket)
        return false;
    for (size_t i = 0; i < n; i++)
        if (tag_seq(c, tags[i]) > ticket)
            return false;
    return true;
}

/* ---- shard internals (caller holds s->lock) ------------------------------ */

static void lru_unlink(struct shard *s, struct entry *e)
{
    if (e->prev_lru)
        e->prev_lru->next_lru = e->next_lru;
    else
        s->lru_head = e->next_lru;
    if (e->next_lru)
        e->next_lru->prev_lru = e->prev_lru;
    else
        s->lru_tail = e->prev_lru;
    e->prev_lru = e->next_lru = NULL;
}

static void lru_push_front(struct shard *s, struct entry *e)
{
    e->prev_lru = NULL;
    e->next_lru = s->lru_head;
    if (s->lru_head)
        s->lru_head->prev_lru = e;
    s->lru_head = e;
    if (!s->lru_tail)
        s->lru_tail = e;
}

static size_t entry_bytes(const struct entry *e)
{
    return e->key_len + e->value_len;
}

/* Unlink e from its chain and the LRU and free it. */
static void remove_locked(struct shard *s, struct entry *e)
{
    struct entry **pp = &s->table[e->hash & (s->n_buckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->next_hash;
    if (*pp)
        *pp = e->next_hash;
    lru_unlink(s, e);
    s->entries--;
    s->bytes -= entry_bytes(e);
    free_entry(e);
}

static struct entry *find_locked(struct shard *s, const char *key, uint64_t h)
{
    for (struct entry *e = s->table[h & (s->n_buckets - 1)]; e; e = e->next_hash)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

/* ---- public operations ---------------------------------------------------- */

bool md_cache_get(struct md_cache *c, const char *key, struct md_buf *out)
{
    if (c->max_entries == 0) {
        atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
        return false;
    }
    uint64_t h = hash_str(key);
    struct shard *s = &c->shards[(h >> 32) % SHARDS];
    bool hit = false;
    pthread_mutex_lock(&s->lock);
    struct entry *e = find_locked(s, key, h);
    if (e && e->expires_ms <= md_mono_ms()) {
        remove_locked(s, e);
        atomic_fetch_add_explicit(&c->expired, 1, memory_order_relaxed);
        e = NULL;
    }
    if (e && !tags_valid(c, e->tags, e->n_tags, e->ticket)) {
        remove_locked(s, e);
        atomic_fetch_add_explicit(&c->stale, 1, memory_order_relaxed);
        e = NULL;
    }
    if (e && md_buf_append(out, e->value, e->value_len) == MD_OK) {
        lru_unlink(s, e);
        lru_push_front(s, e);
        hit = true;
    }
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add_explicit(hit ? &c->hits : &c->misses, 1, memory_order_relaxed);
    return hit;
}

static struct entry *make_entry(const char *key, const char *value, size_t value_len,
                                const char *const *tags, size_t n_tags)
{
    size_t key_len = strlen(key);
    struct entry *e = malloc(sizeof(*e) + key_len + 1 + value_len + 1);
    if (!e)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->key = e->data;
    memcpy(e->key, key, key_len + 1);
    e->value = e->data + key_len + 1;
    memcpy(e->value, value, value_len);
    e->value[value_len] = '\0';
    e->key_len = key_len;
    e->value_len = value_len;
    for (size_t i = 0; i < n_tags; i++) {
        e->tags[i] = strndup(tags[i], MD_CACHE_TAG_MAX);
        if (!e->tags[i]) {
            e->n_tags = (uint8_t)i;
            free_entry(e);
            return NULL;
        }
    }
    e->n_tags = (uint8_t)n_tags;
    return e;
}

void md_cache_put(struct md_cache *c, const char *key, const char *value, size_t value_len,
                  const char *const *tags, size_t n_tags, uint64_t ticket, int64_t ttl_ms)
{
    if (c->max_entries == 0 || n_tags > MD_CACHE_MAX_TAGS)
        return;
    uint64_t h = hash_str(key);
    struct shard *s = &c->shards[(h >> 32) % SHARDS];
    size_t bytes = strlen(key) + value_len;
    if (bytes > s->max_bytes)
        return;
    /* Refuse data that may predate a write already acknowledged. */
    if (!tags_valid(c, (char *const *)(uintptr_t)tags, n_tags, ticket))
        return;
    struct entry *e = make_entry(key, value, value_len, tags, n_tags);
    if (!e)
        return;
    e->hash = h;
    e->ticket = ticket;
    e->expires_ms = md_mono_ms() + ((ttl_ms > 0 && ttl_ms < c->ttl_ms) ? ttl_ms : c->ttl_ms);
    pthread_mutex_lock(&s->lock);
    struct entry *old = find_locked(s, key, h);
    if (old)
        remove_locked(s, old);
    while (s->lru_tail && (s->entries + 1 > s->max_entries || s->bytes + bytes > s->max_bytes)) {
        remove_locked(s, s->lru_tail);
        atomic_fetch_add_explicit(&c->evictions, 1, memory_order_relaxed);
    }
    size_t b = h & (s->n_buckets - 1);
    e->next_hash = s->table[b];
    s->table[b] = e;
    lru_push_front(s, e);
    s->entries++;
    s->bytes += bytes;
    pthread_mutex_unlock(&s->lock);
}

static void bump_one(struct md_cache *c, const char *name, uint64_t seq)
{
    uint64_t h = hash_str(name);
    struct stripe *t = &c->stripes[h % STRIPES];
    pthread_mutex_lock(&t->lock);
    struct tag **head = &t->table[(h / STRIPES) & (t->n_buckets - 1)];
    for (struct tag *g = *head; g; g = g->next)
        if (g->hash == h && strcmp(g->name, name) == 0) {
            /* Two bumps of one tag may apply in the other order than they
             * took their numbers: never lower it, or a value read under a
             * ticket between the two would pass as fresh. */
            if (seq > g->seq)
                g->seq = seq;
            pthread_mutex_unlock(&t->lock);
            return;
        }
    if (t->count >= c->max_tags_per_stripe) {
        /* Full: forget this stripe's tags and raise the floor, which counts
         * as a bump of every tag — conservative, never stale. */
        clear_stripe_locked(t);
        uint64_t cur = atomic_load(&c->floor);
        while (cur < seq && !atomic_compare_exchange_weak(&c->floor, &cur, seq)) {
        }
        pthread_mutex_unlock(&t->lock);
        return;
    }
    size_t n = strnlen(name, MD_CACHE_TAG_MAX);
    struct tag *g = malloc(sizeof(*g) + n + 1);
    if (!g) {
        /* Cannot remember the tag: raise the floor instead (safe). */
        uint64_t cur = atomic_load(&c->floor);
        while (cur < seq && !atomic_compare_exchange_weak(&c->floor, &cur, seq)) {
        }
        pthread_mutex_unlock(&t->lock);
        return;
    }
    g->hash = h;
    g->seq = seq;
    memcpy(g->name, name, n);
    g->name[n] = '\0';
    g->next = *head;
    *head = g;
    t->count++;
    pthread_mutex_unlock(&t->lock);
}

void md_cache_bump(struct md_cache *c, const char *const *tags, size_t n_tags)
{
    if (n_tags == 0)
        return;
    uint64_t seq = atomic_fetch_add(&c->seq, 1) + 1;
    for (size_t i = 0; i < n_tags; i++)
        bump_one(c, tags[i], seq);
    atomic_fetch_add_explicit(&c->bumps, n_tags, memory_order_relaxed);
}

size_t md_cache_drop_prefix(struct md_cache *c, const char *prefix)
{
    size_t n = 0, plen = strlen(prefix);
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        for (struct entry *e = s->lru_head; e;) {
            struct entry *next = e->next_lru;
            if (strncmp(e->key, prefix, plen) == 0) {
                remove_locked(s, e);
                n++;
            }
            e = next;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

size_t md_cache_sweep(struct md_cache *c)
{
    size_t n = 0;
    int64_t now = md_mono_ms();
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        for (struct entry *e = s->lru_head; e;) {
            struct entry *next = e->next_lru;
            if (e->expires_ms <= now) {
                remove_locked(s, e);
                n++;
            }
            e = next;
        }
        pthread_mutex_unlock(&s->lock);
    }
    atomic_fetch_add_explicit(&c->expired, n, memory_order_relaxed);
    return n;
}

void md_cache_stats(struct md_cache *c, struct md_cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->hits = atomic_load_explicit(&c->hits, memory_order_relaxed);
    out->misses = atomic_load_explicit(&c->misses, memory_order_relaxed);
    out->evictions = atomic_load_explicit(&c->evictions, memory_order_relaxed);
    out->expired = atomic_load_explicit(&c->expired, memory_order_relaxed);
    out->stale = atomic_load_explicit(&c->stale, memory_order_relaxed);
    out->bumps = atomic_load_explicit(&c->bumps, memory_order_relaxed);
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        out->entries += s->entries;
        out->bytes += s->bytes;
        pthread_mutex_unlock(&s->lock);
    }
}

size_t md_cache_max_entries(const struct md_cache *c)
{
    return c->max_entries;
}

size_t md_cache_max_bytes(const struct md_cache *c)
{
    return c->max_bytes;
}
