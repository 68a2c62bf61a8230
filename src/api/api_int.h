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

/* JSON rendering (api_json.c); all return MD_OK or the buffer's error. */
enum md_status api_put_str(struct md_buf *b, const char *s);
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

#endif /* MD_API_INT_H */
