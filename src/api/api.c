/*
 * api.c — the route table, authentication and the helpers every handler
 * file shares.
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_int.h"
#include "memoryd/api.h"
#include "memoryd/config.h"
#include "memoryd/clock.h"
#include "memoryd/log.h"
#include "memoryd/metrics.h"
#include "memoryd/ratelimit.h"
#include "memoryd/text.h"

/*
 * MD_ROUTE_INLINE: the operational routes never touch a store (health comes
 * from the background probers, cache invalidations are published by the
 * cache_sync thread), so pool mode runs them on the event threads.
 * A cache message marks a cacheable GET (see api_cache.c).
 */
static const struct md_route routes[] = {
    {MD_M_POST, "/v1/stm/entries", api_stm_create, MD_ROUTE_AUTH | MD_ROUTE_BODY, NULL},
    {MD_M_GET, "/v1/stm/entries", api_stm_list, MD_ROUTE_AUTH, NULL},
    {MD_M_GET, "/v1/stm/entries/{id}", api_stm_get, MD_ROUTE_AUTH, "STM entry retrieved"},
    {MD_M_PATCH, "/v1/stm/entries/{id}", api_stm_patch, MD_ROUTE_AUTH | MD_ROUTE_BODY, NULL},
    {MD_M_DELETE, "/v1/stm/entries/{id}", api_stm_delete, MD_ROUTE_AUTH, NULL},
    {MD_M_PUT, "/v1/stm/entries/{id}/feedback", api_stm_feedback, MD_ROUTE_AUTH | MD_ROUTE_BODY, NULL},
    {MD_M_PUT, "/v1/stm/entries/{id}/ttl", api_stm_ttl, MD_ROUTE_AUTH | MD_ROUTE_BODY, NULL},
    {MD_M_GET, "/v1/stm/stats", api_stm_stats, MD_ROUTE_AUTH, NULL},
    {MD_M_POST, "/v1/stm/entries/{id}/promote", api_stm_promote, MD_ROUTE_AUTH | MD_ROUTE_BODY, NULL},
    {MD_M_POST, "/v1/ltm/rules", api_ltm_create, MD_ROUTE_AUTH | MD_ROUTE_BODY, NULL},
    {MD_M_GET, "/v1/ltm/rules", api_ltm_search, MD_ROUTE_AUTH, "rules found"},
    {MD_M_GET, "/v1/ltm/rules/{id}", api_ltm_get, MD_ROUTE_AUTH, "rule retrieved"},
    {MD_M_PATCH, "/v1/ltm/rules/{id}", api_ltm_patch, MD_ROUTE_AUTH | MD_ROUTE_BODY, NULL},
    {MD_M_DELETE, "/v1/ltm/rules/{id}", api_ltm_delete, MD_ROUTE_AUTH, NULL},
    {MD_M_GET, "/v1/ltm/rules/{id}/history", api_ltm_history, MD_ROUTE_AUTH, "rule history"},
    {MD_M_GET, "/v1/ltm/rules/{id}/audit", api_ltm_audit, MD_ROUTE_AUTH, "audit trail"},
    {MD_M_GET, "/v1/ltm/concepts", api_ltm_concepts, MD_ROUTE_AUTH, "concepts listed"},
    {MD_M_GET, "/v1/ltm/concepts/{name}/rules", api_ltm_concept_rules, MD_ROUTE_AUTH, "rules of the concept"},
    {MD_M_GET, "/v1/trace/{scenario_id}", api_trace, MD_ROUTE_AUTH, "traceability chain"},
    {MD_M_GET, "/v1/integrity", api_integrity, MD_ROUTE_AUTH, NULL},
    {MD_M_GET, "/v1/stats", api_stats, MD_ROUTE_AUTH, NULL},
    {MD_M_GET, "/v1/dashboard", api_ops_dashboard, MD_ROUTE_AUTH | MD_ROUTE_INLINE, NULL},
    {MD_M_GET, "/v1/alerts", api_alerts_list, MD_ROUTE_AUTH | MD_ROUTE_INLINE, NULL},
    {MD_M_POST, "/v1/alerts/rules", api_alerts_add, MD_ROUTE_AUTH | MD_ROUTE_BODY | MD_ROUTE_INLINE, NULL},
    {MD_M_DELETE, "/v1/alerts/rules/{name}", api_alerts_delete, MD_ROUTE_AUTH | MD_ROUTE_INLINE, NULL},
    {MD_M_POST, "/v1/cache/invalidate", api_cache_invalidate,
     MD_ROUTE_AUTH | MD_ROUTE_BODY_OPTIONAL | MD_ROUTE_INLINE, NULL},
    {MD_M_GET, "/health", api_ops_health, MD_ROUTE_INLINE, NULL},
    {MD_M_GET, "/ready", api_ops_ready, MD_ROUTE_INLINE, NULL},
    {MD_M_GET, "/metrics", api_ops_metrics, MD_ROUTE_OPS_AUTH | MD_ROUTE_INLINE, NULL},
    {MD_M_GET, "/dashboard", api_ops_dashboard_page, MD_ROUTE_OPS_AUTH | MD_ROUTE_INLINE, NULL},
    {MD_M_GET, "/openapi.json", api_ops_openapi, MD_ROUTE_OPS_AUTH | MD_ROUTE_INLINE, NULL},
};

const struct md_route *md_api_routes(size_t *n)
{
    *n = MD_ARRAY_LEN(routes);
    return routes;
}

/* ---- authentication ------------------------------------------------------ */

/*
 * Keys are compared as SHA-256 digests in constant time, so neither the
 * content nor the length of a configured key leaks through timing, and every
 * configured key is checked even after a match.
 */
static bool key_matches(const struct md_config *cfg, const char *given)
{
    char want[MD_SHA256_HEX_LEN], got[MD_SHA256_HEX_LEN];
    md_sha256_hex(given, strlen(given), got);
    bool ok = false;
    for (size_t i = 0; i < cfg->n_api_keys; i++) {
        md_sha256_hex(cfg->api_key_list[i], strlen(cfg->api_key_list[i]), want);
        ok |= md_consttime_eq(want, 64, got, 64);
    }
    return ok;
}

static const char *presented_key(const struct md_req *req)
{
    const char *auth = md_req_header(req, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *k = auth + 7;
        while (*k == ' ')
            k++;
        return k;
    }
    return md_req_header(req, "X-API-Key");
}

/* Rate limit per API key (per client address without one): 429 + Retry-After. */
static int rate_limited(struct md_app *app, struct md_req *req, const char *key,
                        struct md_resp *resp)
{
    if (!app->ratelimit)
        return 0;
    char client[600];
    snprintf(client, sizeof(client), "%s:%s", key ? "key" : "ip", key ? key : md_req_client_ip(req));
    int retry = 1;
    if (md_ratelimit_take(app->ratelimit, client, md_mono_ms(), &retry))
        return 0;
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", retry);
    md_resp_error(resp, 429, "rate_limited", "too many requests; retry after the Retry-After "
                                             "delay", NULL);
    md_resp_header(resp, "Retry-After", ra);
    return 429;
}

int md_api_authorize(void *app_ptr, struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = app_ptr;
    const struct md_config *cfg = app->cfg;
    unsigned flags = req->match.route->flags;
    bool needs = (flags & MD_ROUTE_AUTH) ||
                 ((flags & MD_ROUTE_OPS_AUTH) && cfg->metrics_require_auth);
    const char *key = presented_key(req);
    if (needs && cfg->n_api_keys > 0) {
        if (!key || !*key || !key_matches(cfg, key)) {
            md_resp_error(resp, 401, "unauthorized",
                          key ? "invalid API key"
                              : "an API key is required (Authorization: Bearer <key> or "
                                "X-API-Key)",
                          NULL);
            md_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"memoryd\"");
            return 401;
        }
    } else {
        key = NULL; /* unchecked keys never select a bucket */
    }
    /* /health and /ready stay open to probes whatever the load */
    if (!(flags & (MD_ROUTE_AUTH | MD_ROUTE_OPS_AUTH)))
        return 0;
    return rate_limited(app, req, key, resp);
}

void md_api_observe(void *app_ptr, const struct md_req *req, int status, int64_t duration_us)
{
    struct md_app *app = app_ptr;
    md_metrics_http(app->metrics, md_metrics_route_index(app->metrics, req->match.route),
                    req->method, status, duration_us);
}

/* ---- shared helpers ------------------------------------------------------------ */

void api_fail(struct md_req *req, struct md_resp *resp, const struct md_error *err)
{
    int http = md_status_http(err->code);
    if (http >= 500)
        md_log_write(http == 500 ? MD_LOG_ERROR : MD_LOG_WARNING, "api", req->request_id,
                     "%s %s failed: %s%s%s", md_http_method_name(req->method),
                     req->match.route ? req->match.route->pattern : req->path,
                     err->msg[0] ? err->msg : md_status_str(err->code),
                     err->detail[0] ? ": " : "", err->detail);
    md_resp_from_error(resp, err);
}

void api_bad_request(struct md_resp *resp, const char *field, const char *fmt, ...)
{
    char msg[MD_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = '\0';
    va_end(ap);
    md_resp_error(resp, 400, "validation_error", msg, field);
}

void api_oom(struct md_req *req, struct md_resp *resp)
{
    struct md_error err;
    md_error_set(&err, MD_E_NOMEM, "out of memory, try again");
    api_fail(req, resp, &err);
}

bool api_query_only(struct md_req *req, struct md_resp *resp, const char *const *allowed)
{
    for (size_t i = 0; i < req->n_query; i++) {
        const char *k = req->query[i].key;
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, k) == 0;
        if (!ok) {
            char shown[64];
            size_t o = 0;
            for (const char *p = k; *p && o + 1 < sizeof(shown); p++)
                shown[o++] = (unsigned char)*p < 0x20 ? '?' : *p;
            shown[o] = '\0';
            api_bad_request(resp, shown, "unknown query parameter '%s'", shown);
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(req->query[j].key, k) == 0) {
                api_bad_request(resp, k, "query parameter '%s' given more than once", k);
                return false;
            }
    }
    return true;
}

bool api_query_int(struct md_req *req, struct md_resp *resp, const char *name, int64_t lo,
                   int64_t hi, int64_t def, int64_t *out)
{
    const char *v = md_req_query(req, name);
    if (!v) {
        *out = def;
        return true;
    }
    bool digits = *v != '\0' && strlen(v) <= 18;
    for (const char *p = v; *p && digits; p++)
        digits = *p >= '0' && *p <= '9';
    long long n = digits ? strtoll(v, NULL, 10) : -1;
    if (!digits || n < lo || n > hi) {
        api_bad_request(resp, name, "query parameter '%s' must be an integer in %lld..%lld", name,
                        (long long)lo, (long long)hi);
        return false;
    }
    *out = n;
    return true;
}
