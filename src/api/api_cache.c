/*
 * api_cache.c — how handlers use the answers cache.
 *
 * A cacheable GET builds its key from the raw path and the decoded query
 * parameters in sorted order (so every parameter that changes the answer —
 * limit and cursor included — is part of the key), serves a hit as a fresh
 * envelope around the cached `data` bytes, and on a miss takes a ticket
 * BEFORE reading the stores, then stores its answer under the tags it
 * depends on. Writes bump their tags before they answer, locally at once
 * and on the peers through cache_sync.
 *
 * Tags:
 *   ltm          anything read from LTM (every LTM write bumps it)
 *   se:<id>      the content of STM entry <id> (any STM write to it, and LTM
 *                writes that change its stm_ltm_links)
 *   sx:<id>      whether STM entry <id> exists (create, delete, TTL change)
 *   se:* / sx:*  the same for answers that depend on too many entries to
 *                tag them one by one (bumped by every corresponding write)
 * Answers that depend on live STM entries also expire with the earliest of
 * them, so an expiry (which is not a write) is never served stale.
 */
#include "memoryd/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "memoryd/api.h"
#include "memoryd/cache.h"
#include "memoryd/cache_sync.h"
#include "memoryd/clock.h"

#define KEY_MAX 4096

static int cmp_param(const struct md_query_param *x, const struct md_query_param *y)
{
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

/* Append s[0..n) at out[*o]; false when it (and the NUL) would not fit in cap. */
static bool key_put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    if (n >= cap - *o)
        return false;
    memcpy(out + *o, s, n);
    *o += n;
    return true;
}

/*
 * "<path>?<k1>=<len1>:<v1>&<k2>=…" with the parameters sorted, lengths in
 * decimal (a value may contain '&' or '='). Built by hand: with snprintf and
 * qsort it was the largest item of a cached search (~2 k instructions of ~23 k;
 * bench/README.md, Profile). At most MD_MAX_QUERY_PARAMS parameters, usually
 * one to three: an insertion sort of pointers.
 */
bool api_cache_key(const struct md_req *req, char *out, size_t cap)
{
    size_t n = req->n_query, o = 0;
    if (cap == 0 || n > MD_MAX_QUERY_PARAMS)
        return false;
    if (!key_put(out, cap, &o, req->path, strlen(req->path)))
        return false;
    const struct md_query_param *q[MD_MAX_QUERY_PARAMS];
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        for (; j > 0 && cmp_param(q[j - 1], &req->query[i]) > 0; j--)
            q[j] = q[j - 1];
        q[j] = &req->query[i];
    }
    for (size_t i = 0; i < n; i++) {
        size_t vlen = strlen(q[i]->value);
        char num[24];
        size_t d = sizeof(num);
        do {
            num[--d] = (char)('0' + vlen % 10);
            vlen /= 10;
        } while (vlen);
        vlen = strlen(q[i]->value);
        if (!key_put(out, cap, &o, i ? "&" : "?", 1) ||
            !key_put(out, cap, &o, q[i]->key, strlen(q[i]->key)) ||
            !key_put(out, cap, &o, "=", 1) ||
            !key_put(out, cap, &o, num + d, sizeof(num) - d) ||
            !key_put(out, cap, &o, ":", 1) || !key_put(out, cap, &o, q[i]->value, vlen))
            return false;
    }
    out[o] = '\0';
    return true;
}

/* A hit is copied once: from the cache straight into the envelope. */
static bool serve(struct md_req *req, struct md_resp *resp, const char *key,
                  const char *message, bool count_miss)
{
    struct md_app *app = api_app(req);
    if (md_resp_success_begin(resp, message) != MD_OK) {
        /* no memory for the envelope: look again in the handler, which reads the store */
        return false;
    }
    bool hit = count_miss ? md_cache_get(app->cache, key, &resp->body)
                          : md_cache_peek(app->cache, key, &resp->body);
    if (!hit) {
        md_buf_release(&resp->body);
        return false;
    }
    if (md_resp_success_end(resp, 200) != MD_OK)
        api_oom(req, resp);
    return true;
}

bool api_cache_serve(struct md_req *req, struct md_resp *resp, const char *key,
                     const char *message)
{
    return serve(req, resp, key, message, true);
}

bool md_api_answer_inline(void *app, struct md_req *req, struct md_resp *resp)
{
    (void)app;
    /* Only answers of valid requests are ever stored, and a route's handler
     * derives its answer from the same path and parameters as the key: a hit
     * here is what the handler would serve, without its validation. A miss is
     * not counted here: the handler looks again after validating the request
     * (a malformed id is a 400, not a cache miss). */
    char key[KEY_MAX];
    return api_route_message(req) && api_cache_key(req, key, sizeof(key)) &&
           serve(req, resp, key, api_route_message(req), false);
}

uint64_t api_cache_ticket(struct md_req *req)
{
    return md_cache_ticket(api_app(req)->cache);
}

void api_answer_cached(struct md_req *req, struct md_resp *resp, const char *message,
                       struct md_buf *b, enum md_status st, const struct api_cache_put *put)
{
    int64_t ttl = put ? put->ttl_ms : -1;
    if (ttl > 0) {
        /* An entry-bound ttl counts from req->now_ms, the instant the stores
         * judged the entries alive; the cache counts from now. Take off the
         * time the reads took, or the answer outlives the entry's expiry. */
        ttl -= md_now_ms() - req->now_ms;
        if (ttl <= 0)
            ttl = -1;
    }
    if (st == MD_OK && put && put->key[0] && ttl >= 0)
        md_cache_put(api_app(req)->cache, put->key, b->data, b->len, put->tags, put->n_tags,
                     put->ticket, ttl);
    api_answer_buf(req, resp, 200, message, b, st);
}

void api_invalidate(struct md_req *req, const char *const *tags, size_t n)
{
    struct md_app *app = api_app(req);
    md_cache_bump(app->cache, tags, n);
    md_cache_sync_tags(app->cache_sync, tags, n);
}

static void stm_tags(const char *id, char se[MD_SCENARIO_ID_MAX + 4],
                     char sx[MD_SCENARIO_ID_MAX + 4])
{
    snprintf(se, MD_SCENARIO_ID_MAX + 4, "se:%s", id);
    snprintf(sx, MD_SCENARIO_ID_MAX + 4, "sx:%s", id);
}

void api_invalidate_stm(struct md_req *req, const char *id, bool existence)
{
    char se[MD_SCENARIO_ID_MAX + 4], sx[MD_SCENARIO_ID_MAX + 4];
    stm_tags(id, se, sx);
    const char *tags[4] = {se, "se:*", sx, "sx:*"};
    api_invalidate(req, tags, existence ? 4 : 2);
}

uint64_t api_stm_mark(struct md_req *req, const char *id)
{
    char se[MD_SCENARIO_ID_MAX + 4], sx[MD_SCENARIO_ID_MAX + 4];
    stm_tags(id, se, sx);
    return md_cache_mark(api_app(req)->cache, se);
}

void api_stm_written(struct md_req *req, const char *id, uint64_t mark, int64_t expires_ms,
                     enum md_status (*answer)(struct md_buf *b, const void *arg),
                     const void *arg)
{
    struct md_app *app = api_app(req);
    char se[MD_SCENARIO_ID_MAX + 4], sx[MD_SCENARIO_ID_MAX + 4];
    stm_tags(id, se, sx);
    const char *tags[2] = {se, "se:*"};
    uint64_t seq = 0;
    bool latest = md_cache_bump_marked(app->cache, tags, 2, mark, &seq);
    md_cache_sync_tags(app->cache_sync, tags, 2);
    int64_t left = expires_ms - md_now_ms();
    if (!latest || left <= 0 || md_cache_max_entries(app->cache) == 0)
        return;
    /* the key a plain GET of the entry computes (api_cache_key: path, no query) */
    char key[MD_SCENARIO_ID_MAX + 32];
    snprintf(key, sizeof(key), "/v1/stm/entries/%s", id);
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    if (answer(&b, arg) == MD_OK)
        md_cache_put(app->cache, key, b.data, b.len, tags, 1, seq, left);
    md_buf_release(&b);
}

void api_invalidate_ltm(struct md_req *req, const char *const *linked, size_t n)
{
    /* "ltm" first, then the entries whose link sets changed, in batches */
    const char *tags[MD_CACHE_MAX_TAGS];
    char bufs[MD_CACHE_MAX_TAGS][MD_SCENARIO_ID_MAX + 4];
    size_t k = 0;
    tags[k++] = "ltm";
    for (size_t i = 0; i < n; i++) {
        snprintf(bufs[k], sizeof(bufs[k]), "se:%s", linked[i]);
        tags[k] = bufs[k];
        if (++k == MD_CACHE_MAX_TAGS) {
            api_invalidate(req, tags, k);
            k = 0;
        }
    }
    if (k)
        api_invalidate(req, tags, k);
}

void api_cache_tag_sources(struct api_cache_put *put, const char *prefix,
                           const char *const *ids, size_t n, const char *wildcard)
{
    if (put->n_tags + n > MD_CACHE_MAX_TAGS) {
        put->tags[put->n_tags++] = wildcard;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(put->tag_bufs[put->n_tags], sizeof(put->tag_bufs[0]), "%s%s", prefix, ids[i]);
        put->tags[put->n_tags] = put->tag_bufs[put->n_tags];
        put->n_tags++;
    }
}

void api_cache_put_init(struct api_cache_put *put, struct md_req *req, const char *tag)
{
    memset(put, 0, sizeof(*put));
    put->ticket = api_cache_ticket(req);
    if (!api_cache_key(req, put->key, sizeof(put->key)))
        put->key[0] = '\0';
    if (tag)
        put->tags[put->n_tags++] = tag;
}

void api_cache_expire_with(struct api_cache_put *put, int64_t now_ms, int64_t expires_ms)
{
    int64_t left = expires_ms - now_ms;
    if (left <= 0)
        put->ttl_ms = -1; /* already expired: do not cache */
    else if (put->ttl_ms == 0 || left < put->ttl_ms)
        put->ttl_ms = left;
}
