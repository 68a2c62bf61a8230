/*
 * cache.c — sharded TTL/LRU cache with tag-sequence invalidation.
 *
 * DESIGN
 * Entries live in SHARDS independent shards chosen by key hash; each shard
 * has a mutex, an open hash table (chained) and an LRU list, and enforces
 * its share of the entry and byte bounds, evicting from the LRU tail.
 *
 * Tags live in a separate striped table of reference-counted records: a
 * record exists exactly while some cached entry carries the tag, and holds
 * the sequence number of the tag's last bump. An entry points at its
 * records and records its ticket (the counter value before its data was
 * read); on lookup it is valid while every record's seq is <= ticket — a
 * few atomic loads, no tag lookup on a hit.
 *
 * A bump of a tag that no entry carries leaves no record behind (so writes
 * to ids nobody reads cost no memory): it raises the put floor of the tag's
 * slot instead, which only makes md_cache_put refuse values read under an
 * older ticket — a read that raced that write. When the last entry carrying
 * a tag goes, its record goes too and its seq moves into the slot's put
 * floor for the same reason. Memory for tags is therefore bounded by the
 * entries (at most MD_CACHE_MAX_TAGS each) and by max_tags.
 *
 * Each bump takes its sequence number under the tag's stripe lock, so one
 * tag's numbers rise in the order its bumps apply. md_cache_tag_seq and
 * md_cache_bump_fresh build the write-through path on that.
 *
 * Locks: a shard lock and a stripe lock are never held together. Entries
 * leave a shard under its lock onto a private list and release their tag
 * records after the shard lock is dropped.
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
#define PUT_SLOTS 1024 /* put floors, by tag hash */

struct tag {
    struct tag *next; /* chain in the stripe's table */
    uint64_t hash;
    atomic_uint_fast64_t seq; /* last bump (at most the slot's put floor when made) */
    size_t refs;              /* entries carrying the tag; under the stripe lock */
    char name[];
};

struct entry {
    struct entry *next_hash;           /* chain in the shard's table */
    struct entry *prev_lru, *next_lru; /* LRU list, head = most recent; or a free list */
    uint64_t hash;
    uint64_t ticket;
    int64_t expires_ms; /* monotonic */
    size_t key_len, value_len;
    uint8_t n_tags;
    struct tag *tags[MD_CACHE_MAX_TAGS]; /* one reference each */
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
    atomic_uint_fast64_t put_floor[PUT_SLOTS];
    atomic_uint_fast64_t hits, misses, evictions, expired, stale, bumps, tags;
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

static struct stripe *stripe_of(struct md_cache *c, uint64_t h)
{
    return &c->stripes[h % STRIPES];
}

static struct tag **bucket_of(struct stripe *t, uint64_t h)
{
    return &t->table[(h / STRIPES) & (t->n_buckets - 1)];
}

static atomic_uint_fast64_t *put_floor_of(struct md_cache *c, uint64_t h)
{
    return &c->put_floor[(h >> 40) % PUT_SLOTS];
}

static void raise_to(atomic_uint_fast64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

/* Caller holds t->lock. */
static struct tag *find_tag_locked(struct stripe *t, const char *name, uint64_t h)
{
    for (struct tag *g = *bucket_of(t, h); g; g = g->next)
        if (g->hash == h && strcmp(g->name, name) == 0)
            return g;
    return NULL;
}

/* A reference to name's record, made if needed; NULL when the table is full or on OOM. */
static struct tag *tag_acquire(struct md_cache *c, const char *name)
{
    uint64_t h = hash_str(name);
    struct stripe *t = stripe_of(c, h);
    pthread_mutex_lock(&t->lock);
    size_t n = strnlen(name, MD_CACHE_TAG_MAX);
    if (n == MD_CACHE_TAG_MAX) { /* over-long: such a value is simply not cached */
        pthread_mutex_unlock(&t->lock);
        return NULL;
    }
    struct tag *g = find_tag_locked(t, name, h);
    if (!g && t->count < c->max_tags_per_stripe) {
        g = malloc(sizeof(*g) + n + 1);
        if (g) {
            g->hash = h;
            /* bumps before the record existed went to the slot's put floor */
            atomic_init(&g->seq, atomic_load(put_floor_of(c, h)));
            g->refs = 0;
            memcpy(g->name, name, n);
            g->name[n] = '\0';
            g->next = *bucket_of(t, h);
            *bucket_of(t, h) = g;
            t->count++;
            atomic_fetch_add_explicit(&c->tags, 1, memory_order_relaxed);
        }
    }
    if (g)
        g->refs++;
    pthread_mutex_unlock(&t->lock);
    return g;
}

static void tag_release(struct md_cache *c, struct tag *g)
{
    struct stripe *t = stripe_of(c, g->hash);
    pthread_mutex_lock(&t->lock);
    if (--g->refs == 0) {
        struct tag **pp = bucket_of(t, g->hash);
        while (*pp != g)
            pp = &(*pp)->next;
        *pp = g->next;
        t->count--;
        /* a put still in flight under an older ticket must see this bump */
        raise_to(put_floor_of(c, g->hash), atomic_load(&g->seq));
        atomic_fetch_sub_explicit(&c->tags, 1, memory_order_relaxed);
        free(g);
    }
    pthread_mutex_unlock(&t->lock);
}

/* Free a list of entries (linked through next_lru) outside any shard lock. */
static void free_entries(struct md_cache *c, struct entry *e)
{
    while (e) {
        struct entry *next = e->next_lru;
        for (unsigned i = 0; i < e->n_tags; i++)
            tag_release(c, e->tags[i]);
        free(e);
        e = next;
    }
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
    /* records exist only for cached entries' tags: size the tables for ~2 per entry */
    size_t want = MD_MIN(c->max_tags_per_stripe, MD_MAX(opt->max_entries * 2 / STRIPES, 64));
    for (int i = 0; i < STRIPES; i++) {
        struct stripe *t = &c->stripes[i];
        pthread_mutex_init(&t->lock, NULL);
        t->n_buckets = 64;
        while (t->n_buckets < want)
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

void md_cache_free(struct md_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        if (s->lru_head)
            free_entries(c, s->lru_head);
        free(s->table);
        pthread_mutex_destroy(&s->lock);
    }
    for (int i = 0; i < STRIPES; i++) {
        struct stripe *t = &c->stripes[i];
        for (size_t b = 0; t->table && b < t->n_buckets; b++)
            for (struct tag *g = t->table[b]; g;) { /* none left unless entries leaked */
                struct tag *next = g->next;
                free(g);
                g = next;
            }
        free(t->table);
        pthread_mutex_destroy(&t->lock);
    }
    free(c);
}

uint64_t md_cache_ticket(struct md_cache *c)
{
    return atomic_load(&c->seq);
}

static bool entry_valid(const struct entry *e)
{
    for (unsigned i = 0; i < e->n_tags; i++)
        if (atomic_load(&e->tags[i]->seq) > e->ticket)
            return false;
    return true;
}

/* For a new entry whose records are acquired: may it be stored under its ticket? */
static bool put_allowed(struct md_cache *c, const struct entry *e)
{
    if (!entry_valid(e))
        return false;
    for (unsigned i = 0; i < e->n_tags; i++)
        if (atomic_load(put_floor_of(c, e->tags[i]->hash)) > e->ticket)
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

/* Unlink e from its chain and the LRU onto *gone (freed by the caller after unlocking). */
static void remove_locked(struct shard *s, struct entry *e, struct entry **gone)
{
    struct entry **pp = &s->table[e->hash & (s->n_buckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->next_hash;
    if (*pp)
        *pp = e->next_hash;
    lru_unlink(s, e);
    s->entries--;
    s->bytes -= entry_bytes(e);
    e->next_lru = *gone;
    *gone = e;
}

static struct entry *find_locked(struct shard *s, const char *key, uint64_t h)
{
    for (struct entry *e = s->table[h & (s->n_buckets - 1)]; e; e = e->next_hash)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static struct shard *shard_of(struct md_cache *c, uint64_t h)
{
    return &c->shards[(h >> 32) % SHARDS];
}

/* ---- public operations ---------------------------------------------------- */

static bool lookup(struct md_cache *c, const char *key, struct md_buf *out, bool count_miss)
{
    if (c->max_entries == 0) {
        if (count_miss)
            atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
        return false;
    }
    uint64_t h = hash_str(key);
    struct shard *s = shard_of(c, h);
    struct entry *gone = NULL;
    bool hit = false;
    pthread_mutex_lock(&s->lock);
    struct entry *e = find_locked(s, key, h);
    if (e && e->expires_ms <= md_mono_ms()) {
        remove_locked(s, e, &gone);
        atomic_fetch_add_explicit(&c->expired, 1, memory_order_relaxed);
        e = NULL;
    }
    if (e && !entry_valid(e)) {
        remove_locked(s, e, &gone);
        atomic_fetch_add_explicit(&c->stale, 1, memory_order_relaxed);
        e = NULL;
    }
    if (e && md_buf_append(out, e->value, e->value_len) == MD_OK) {
        lru_unlink(s, e);
        lru_push_front(s, e);
        hit = true;
    }
    pthread_mutex_unlock(&s->lock);
    free_entries(c, gone);
    if (hit || count_miss)
        atomic_fetch_add_explicit(hit ? &c->hits : &c->misses, 1, memory_order_relaxed);
    return hit;
}

bool md_cache_get(struct md_cache *c, const char *key, struct md_buf *out)
{
    return lookup(c, key, out, true);
}

bool md_cache_peek(struct md_cache *c, const char *key, struct md_buf *out)
{
    return lookup(c, key, out, false);
}

/* A new entry holding a reference to each tag's record; NULL on OOM or a full tag table. */
static struct entry *make_entry(struct md_cache *c, const char *key, const char *value,
                                size_t value_len, const char *const *tags, size_t n_tags)
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
        e->tags[i] = tag_acquire(c, tags[i]);
        if (!e->tags[i]) {
            free_entries(c, e);
            return NULL;
        }
        e->n_tags = (uint8_t)(i + 1);
    }
    return e;
}

void md_cache_put(struct md_cache *c, const char *key, const char *value, size_t value_len,
                  const char *const *tags, size_t n_tags, uint64_t ticket, int64_t ttl_ms)
{
    if (c->max_entries == 0 || n_tags > MD_CACHE_MAX_TAGS)
        return;
    uint64_t h = hash_str(key);
    struct shard *s = shard_of(c, h);
    size_t bytes = strlen(key) + value_len;
    if (bytes > s->max_bytes)
        return;
    struct entry *e = make_entry(c, key, value, value_len, tags, n_tags);
    if (!e)
        return;
    e->hash = h;
    e->ticket = ticket;
    e->expires_ms = md_mono_ms() + ((ttl_ms > 0 && ttl_ms < c->ttl_ms) ? ttl_ms : c->ttl_ms);
    /* Refuse data that may predate a write already acknowledged. The records
     * exist from here on, so a bump after this check marks e stale. */
    if (!put_allowed(c, e)) {
        free_entries(c, e);
        return;
    }
    struct entry *gone = NULL;
    pthread_mutex_lock(&s->lock);
    struct entry *old = find_locked(s, key, h);
    if (old)
        remove_locked(s, old, &gone);
    while (s->lru_tail && (s->entries + 1 > s->max_entries || s->bytes + bytes > s->max_bytes)) {
        remove_locked(s, s->lru_tail, &gone);
        atomic_fetch_add_explicit(&c->evictions, 1, memory_order_relaxed);
    }
    size_t b = h & (s->n_buckets - 1);
    e->next_hash = s->table[b];
    s->table[b] = e;
    lru_push_front(s, e);
    s->entries++;
    s->bytes += bytes;
    pthread_mutex_unlock(&s->lock);
    free_entries(c, gone);
}

/* The seq a tag counts as last bumped at (caller holds its stripe lock). */
static uint64_t effective_seq_locked(struct md_cache *c, struct stripe *t, const char *name,
                                     uint64_t h)
{
    struct tag *g = find_tag_locked(t, name, h);
    return g ? atomic_load(&g->seq) : atomic_load(put_floor_of(c, h));
}

uint64_t md_cache_mark(struct md_cache *c, const char *tag)
{
    uint64_t h = hash_str(tag);
    struct stripe *t = stripe_of(c, h);
    pthread_mutex_lock(&t->lock);
    uint64_t seq = effective_seq_locked(c, t, tag, h);
    pthread_mutex_unlock(&t->lock);
    return seq;
}

/* Bump one tag; returns its new seq, and its previous effective seq in *prev. */
static uint64_t bump_one(struct md_cache *c, const char *name, uint64_t *prev)
{
    uint64_t h = hash_str(name);
    struct stripe *t = stripe_of(c, h);
    pthread_mutex_lock(&t->lock);
    if (prev)
        *prev = effective_seq_locked(c, t, name, h);
    /* numbered under the stripe lock: one tag's seq only ever rises */
    uint64_t seq = atomic_fetch_add(&c->seq, 1) + 1;
    struct tag *g = find_tag_locked(t, name, h);
    if (g)
        atomic_store(&g->seq, seq);
    else /* nothing cached carries it: only puts in flight need to know */
        raise_to(put_floor_of(c, h), seq);
    pthread_mutex_unlock(&t->lock);
    return seq;
}

void md_cache_bump(struct md_cache *c, const char *const *tags, size_t n_tags)
{
    for (size_t i = 0; i < n_tags; i++)
        bump_one(c, tags[i], NULL);
    atomic_fetch_add_explicit(&c->bumps, n_tags, memory_order_relaxed);
}

bool md_cache_bump_marked(struct md_cache *c, const char *const *tags, size_t n_tags,
                          uint64_t mark, uint64_t *seq)
{
    if (n_tags == 0)
        return false;
    uint64_t prev = 0;
    *seq = bump_one(c, tags[0], &prev);
    md_cache_bump(c, tags + 1, n_tags - 1);
    atomic_fetch_add_explicit(&c->bumps, 1, memory_order_relaxed);
    return prev == mark;
}

size_t md_cache_drop_prefix(struct md_cache *c, const char *prefix)
{
    size_t n = 0, plen = strlen(prefix);
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        struct entry *gone = NULL;
        pthread_mutex_lock(&s->lock);
        for (struct entry *e = s->lru_head; e;) {
            struct entry *next = e->next_lru;
            if (strncmp(e->key, prefix, plen) == 0) {
                remove_locked(s, e, &gone);
                n++;
            }
            e = next;
        }
        pthread_mutex_unlock(&s->lock);
        free_entries(c, gone);
    }
    return n;
}

size_t md_cache_sweep(struct md_cache *c)
{
    size_t n = 0;
    int64_t now = md_mono_ms();
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        struct entry *gone = NULL;
        pthread_mutex_lock(&s->lock);
        for (struct entry *e = s->lru_head; e;) {
            struct entry *next = e->next_lru;
            if (e->expires_ms <= now) {
                remove_locked(s, e, &gone);
                n++;
            }
            e = next;
        }
        pthread_mutex_unlock(&s->lock);
        free_entries(c, gone);
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
    out->tags = atomic_load_explicit(&c->tags, memory_order_relaxed);
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
