/*
 * api_int.h — helpers shared by the API handler files (private to src/api).
 */
#ifndef MD_API_INT_H
#define MD_API_INT_H

#include "memoryd/app.h"
#include "memoryd/buf.h"
#include "memoryd/ids.h"
#include "memoryd/ltm.h"
#include "memoryd/envelope.h"
#include "memoryd/http.h"
#include "memoryd/status.h"

static inline struct md_app *api_app(const struct md_req *req)
{
    return req->app;
}

/* The envelope message of a cacheable GET route's answers (the route table's). */
static inline const char *api_route_message(const struct md_req *req)
{
    return req->match.route->cache_message;
}

/*
 * Answer with the error in err: log 5xx with the request id (operator detail
 * included), then build the envelope. Never fails.
 */
void api_fail(struct md_req *req, struct md_resp *resp, const struct md_error *err);

/* Answer 400 validation_error naming field (may be NULL). */
void api_bad_request(struct md_resp *resp, const char *field, const char *fmt, ...)
    MD_PRINTF(3, 4);

/* Answer 503 after a failed response build (out of memory). */
void api_oom(struct md_req *req, struct md_resp *resp);

/*
 * Reject query parameters not in allowed (NULL-terminated), and repeated
 * ones. Returns false after answering 400.
 */
bool api_query_only(struct md_req *req, struct md_resp *resp, const char *const *allowed);

/*
 * Parse a decimal integer query parameter in [lo, hi]; absent -> def.
 * Returns false after answering 400.
 */
bool api_query_int(struct md_req *req, struct md_resp *resp, const char *name, int64_t lo,
                   int64_t hi, int64_t def, int64_t *out);

enum md_status api_put_time(struct md_buf *b, int64_t ms);
enum md_status api_put_verdict(struct md_buf *b, enum md_verdict v);
enum md_status api_put_double(struct md_buf *b, double x);
enum md_status api_put_strv(struct md_buf *b, char *const *v, size_t n);
enum md_status api_put_concept_names(struct md_buf *b, const struct md_rule *r);
enum md_status api_put_rule(struct md_buf *b, const struct md_rule *r, bool with_score);
enum md_status api_put_rules(struct md_buf *b, const struct md_rule *rules, size_t n,
                             bool with_score);

/*
 * Finish a handler: on st == MD_OK wrap b in a success envelope, else answer
 * 503 (the buffer failed). Releases b either way.
 */
void api_answer_buf(struct md_req *req, struct md_resp *resp, int status, const char *message,
                    struct md_buf *b, enum md_status st);

/* ---- answers cache (api_cache.c) ---- */

/* What a cacheable GET stores: key, tags, ticket taken before the store read. */
struct api_cache_put {
    char key[4096];
    const char *tags[8];
    char tag_bufs[8][MD_SCENARIO_ID_MAX + 8];
    size_t n_tags;
    uint64_t ticket;
    int64_t ttl_ms; /* 0: the cache default; -1: do not cache */
};

/* Cache key of this request; false when it does not fit (then never cached). */
bool api_cache_key(const struct md_req *req, char *out, size_t cap);

/* Answer from the cache when key is there; true when answered. */
bool api_cache_serve(struct md_req *req, struct md_resp *resp, const char *key,
                     const char *message);

uint64_t api_cache_ticket(struct md_req *req);

/* Start a put: ticket now, key of req, one first tag (may be NULL). */
void api_cache_put_init(struct api_cache_put *put, struct md_req *req, const char *tag);

/* Tag put with prefix+id for each id, or with wildcard when they do not fit. */
void api_cache_tag_sources(struct api_cache_put *put, const char *prefix,
                           const char *const *ids, size_t n, const char *wildcard);

/* Bound the put's lifetime by an STM entry's expiry. */
void api_cache_expire_with(struct api_cache_put *put, int64_t now_ms, int64_t expires_ms);

/* Like api_answer_buf (status 200), storing b in the cache first when st == MD_OK. */
void api_answer_cached(struct md_req *req, struct md_resp *resp, const char *message,
                       struct md_buf *b, enum md_status st, const struct api_cache_put *put);

/* Bump tags locally and on the peers. */
void api_invalidate(struct md_req *req, const char *const *tags, size_t n);

/* After an STM write to id (existence: created, deleted or TTL moved). */
void api_invalidate_stm(struct md_req *req, const char *id, bool existence);

/*
 * Write-through of an STM update (see cache.h): take the mark before the
 * store write, then api_stm_written() instead of api_invalidate_stm(): it
 * invalidates like it and, when this write was the entry's latest, stores
 * the entry's GET answer (rendered by answer) so that the next read hits.
 */
uint64_t api_stm_mark(struct md_req *req, const char *id);
void api_stm_written(struct md_req *req, const char *id, uint64_t mark, int64_t expires_ms,
                     enum md_status (*answer)(struct md_buf *b, const void *arg),
                     const void *arg);

/* After an LTM write; linked = the STM entries whose link sets changed. */
void api_invalidate_ltm(struct md_req *req, const char *const *linked, size_t n);

/* Handlers by resource. */
void api_stm_create(struct md_req *req, struct md_resp *resp);
void api_stm_get(struct md_req *req, struct md_resp *resp);
void api_stm_list(struct md_req *req, struct md_resp *resp);
void api_stm_patch(struct md_req *req, struct md_resp *resp);
void api_stm_feedback(struct md_req *req, struct md_resp *resp);
void api_stm_ttl(struct md_req *req, struct md_resp *resp);
void api_stm_delete(struct md_req *req, struct md_resp *resp);
void api_stm_stats(struct md_req *req, struct md_resp *resp);

void api_stm_promote(struct md_req *req, struct md_resp *resp);

void api_ltm_create(struct md_req *req, struct md_resp *resp);
void api_ltm_get(struct md_req *req, struct md_resp *resp);
void api_ltm_patch(struct md_req *req, struct md_resp *resp);
void api_ltm_delete(struct md_req *req, struct md_resp *resp);
void api_ltm_search(struct md_req *req, struct md_resp *resp);
void api_ltm_concepts(struct md_req *req, struct md_resp *resp);
void api_ltm_concept_rules(struct md_req *req, struct md_resp *resp);
void api_ltm_history(struct md_req *req, struct md_resp *resp);
void api_ltm_audit(struct md_req *req, struct md_resp *resp);
void api_trace(struct md_req *req, struct md_resp *resp);
void api_integrity(struct md_req *req, struct md_resp *resp);
void api_stats(struct md_req *req, struct md_resp *resp);

void api_ops_health(struct md_req *req, struct md_resp *resp);
void api_ops_ready(struct md_req *req, struct md_resp *resp);
void api_ops_openapi(struct md_req *req, struct md_resp *resp);
void api_ops_metrics(struct md_req *req, struct md_resp *resp);
void api_ops_dashboard(struct md_req *req, struct md_resp *resp);
void api_ops_dashboard_page(struct md_req *req, struct md_resp *resp);
void api_alerts_list(struct md_req *req, struct md_resp *resp);
void api_alerts_add(struct md_req *req, struct md_resp *resp);
void api_alerts_delete(struct md_req *req, struct md_resp *resp);
void api_cache_invalidate(struct md_req *req, struct md_resp *resp);

#endif /* MD_API_INT_H */
