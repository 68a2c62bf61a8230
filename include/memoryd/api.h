/*
 * api.h — the REST API: the route table and the hooks the HTTP server calls.
 *
 * Handlers are plain functions of (struct md_req *, struct md_resp *); they
 * validate input, call the stores through the application context
 * (req->app, a struct md_app) and build envelopes. They never see MHD, so
 * unit tests can drive them with fake stores.
 */
#ifndef MD_API_H
#define MD_API_H

#include "memoryd/compat.h"
#include "memoryd/http.h"
#include "memoryd/router.h"

struct md_app;

/* The full route table (static storage). */
const struct md_route *md_api_routes(size_t *n);

/* md_http_hooks.authorize: API keys for /v1 routes (401 + WWW-Authenticate). */
int md_api_authorize(void *app, struct md_req *req, struct md_resp *resp);

/* md_http_hooks.observe: per-request bookkeeping (metrics). */
void md_api_observe(void *app, const struct md_req *req, int status, int64_t duration_us);

/*
 * HTTP hook (pool mode): answer a cacheable GET from the cache on the event
 * thread; false when the route is not cached or the answer is not there.
 */
bool md_api_answer_inline(void *app, struct md_req *req, struct md_resp *resp);

#endif /* MD_API_H */
