/*
 * api_int.h — helpers shared by the API handler files (private to src/api).
 */
#ifndef MD_API_INT_H
#define MD_API_INT_H

#include "memoryd/app.h"
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

/* Handlers by resource. */
void api_stm_create(struct md_req *req, struct md_resp *resp);
void api_stm_get(struct md_req *req, struct md_resp *resp);
void api_stm_list(struct md_req *req, struct md_resp *resp);
void api_stm_patch(struct md_req *req, struct md_resp *resp);
void api_stm_feedback(struct md_req *req, struct md_resp *resp);
void api_stm_ttl(struct md_req *req, struct md_resp *resp);
void api_stm_delete(struct md_req *req, struct md_resp *resp);
void api_stm_stats(struct md_req *req, struct md_resp *resp);

void api_ops_health(struct md_req *req, struct md_resp *resp);
void api_ops_ready(struct md_req *req, struct md_resp *resp);
void api_ops_openapi(struct md_req *req, struct md_resp *resp);

#endif /* MD_API_INT_H */
