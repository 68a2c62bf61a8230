/*
 * api_ops.c — operational routes (spec §5): /health, /ready, /metrics,
 * /dashboard, /v1/dashboard, /v1/alerts…, /v1/cache/invalidate and
 * /openapi.json.
 *
 * None of these touches a store on the request path: store health comes
 * from the background probers (memoryd/health.h), so /health answers at
 * once even while Redis or Neo4j hangs.
 */
#include "memoryd/compat.h"

#include <stdio.h>
#include <string.h>

#include "api_int.h"
#include "memoryd/alerts.h"
#include "memoryd/cache.h"
#include "memoryd/cache_sync.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/dashboard.h"
#include "memoryd/health.h"
#include "memoryd/json_body.h"
#include "memoryd/ltm.h"
#include "memoryd/metrics.h"
#include "memoryd/stm.h"
#include "memoryd/text.h"

extern const char md_asset_openapi_json[];
extern const unsigned long md_asset_openapi_json_len;
extern const char md_asset_dashboard_html[];
extern const unsigned long md_asset_dashboard_html_len;

static bool no_query(struct md_req *req, struct md_resp *resp)
{
    static const char *const none[] = {NULL};
    return api_query_only(req, resp, none);
}

static json_t *component_json(const struct md_component_health *c)
{
    return json_pack("{s:s, s:s, s:f, s:s}", "backend", c->backend, "status",
                     md_health_status_name(c->status), "latency_ms", c->latency_ms, "message",
                     c->message);
}

/* The cache is in-process: it is healthy while it serves; the message says how well. */
static json_t *cache_json(struct md_app *app)
{
    struct md_cache_stats cs;
    md_cache_stats(app->cache, &cs);
    uint64_t lookups = cs.hits + cs.misses;
    char msg[160];
    if (md_cache_max_entries(app->cache) == 0)
        snprintf(msg, sizeof(msg), "disabled (CACHE_MAX_ENTRIES=0)");
    else
        snprintf(msg, sizeof(msg), "%llu entries, %llu bytes, hit rate %.1f%% over %llu lookups",
                 (unsigned long long)cs.entries, (unsigned long long)cs.bytes,
                 lookups ? 100.0 * (double)cs.hits / (double)lookups : 0.0,
                 (unsigned long long)lookups);
    return json_pack("{s:s, s:s, s:f, s:s}", "backend", "memory", "status", "healthy",
                     "latency_ms", 0.0, "message", msg);
}

void api_ops_health(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    struct md_component_health stm, ltm;
    md_health_get(app->health, &stm, &ltm);
    bool stm_up = stm.status != MD_UNHEALTHY, ltm_up = ltm.status != MD_UNHEALTHY;
    const char *overall = (stm_up && ltm_up && stm.status == MD_HEALTHY &&
                           ltm.status == MD_HEALTHY)
                              ? "healthy"
                              : (stm_up || ltm_up ? "degraded" : "unhealthy");
    json_t *data = json_pack("{s:s, s:s, s:I, s:{s:o, s:o, s:o}}", "overall_status", overall,
                             "version", MD_VERSION_STRING, "uptime_seconds",
                             (json_int_t)((md_mono_ms() - app->started_mono_ms) / 1000),
                             "components", "stm", component_json(&stm), "ltm",
                             component_json(&ltm), "cache", cache_json(app));
    if (!data) {
        api_oom(req, resp);
        return;
    }
    if (stm_up || ltm_up) {
        if (md_resp_success_json(resp, 200, overall, data) != MD_OK)
            api_oom(req, resp);
        return;
    }
    md_resp_error_data(resp, 503, "storage_unavailable", "no store is reachable", NULL, data);
}

void api_ops_ready(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    struct md_component_health stm, ltm;
    md_health_get(app->health, &stm, &ltm);
    bool schema = atomic_load(&app->ltm_schema_ready);
    bool ready = stm.status != MD_UNHEALTHY && ltm.status != MD_UNHEALTHY && schema;
    json_t *data = json_pack("{s:b, s:b, s:{s:o, s:o}}", "ready", ready, "ltm_schema_ready",
                             schema, "components", "stm", component_json(&stm), "ltm",
                             component_json(&ltm));
    if (!data) {
        api_oom(req, resp);
        return;
    }
    if (ready) {
        if (md_resp_success_json(resp, 200, "ready", data) != MD_OK)
            api_oom(req, resp);
        return;
    }
    md_resp_error_data(resp, 503, "storage_unavailable",
                       schema ? "not ready: a store does not answer"
                              : "not ready: the LTM schema is not in place yet",
                       NULL, data);
}

void api_ops_openapi(struct md_req *req, struct md_resp *resp)
{
    if (!no_query(req, resp))
        return;
    resp->status = 200;
    resp->content_type = "application/json";
    resp->static_body = md_asset_openapi_json;
    resp->static_len = md_asset_openapi_json_len;
}

void api_ops_dashboard_page(struct md_req *req, struct md_resp *resp)
{
    static const char *const allowed[] = {"key", NULL}; /* the page reads ?key= itself */
    if (!api_query_only(req, resp, allowed))
        return;
    resp->status = 200;
    resp->content_type = "text/html; charset=utf-8";
    resp->static_body = md_asset_dashboard_html;
    resp->static_len = md_asset_dashboard_html_len;
}

void api_ops_metrics(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    struct md_metrics_extra x;
    md_metrics_extra_init(&x);
    x.has_cache = true;
    md_cache_stats(app->cache, &x.cache);
    x.uptime_seconds = (double)(md_mono_ms() - app->started_mono_ms) / 1000.0;
    struct md_http_server *http = atomic_load(&app->http);
    if (http && md_http_server_handler_stats(http, &x.handler_threads, &x.handler_busy,
                                             &x.handler_queued))
        x.has_handlers = true;
    struct md_alert_list l;
    memset(&l, 0, sizeof(l));
    if (md_alerts_list(app->alerts, req->now_ms, &l) == MD_OK)
        md_alerts_fill_extra(app->alerts, &l, &x);
    enum md_status st = md_metrics_prometheus(app->metrics, &resp->body, &x);
    md_alert_list_release(&l);
    if (st != MD_OK) {
        md_buf_release(&resp->body);
        api_oom(req, resp);
        return;
    }
    resp->status = 200;
    resp->content_type = MD_METRICS_CONTENT_TYPE;
}

void api_ops_dashboard(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    struct md_alert_list l;
    memset(&l, 0, sizeof(l));
    if (md_alerts_list(app->alerts, req->now_ms, &l) != MD_OK) {
        api_oom(req, resp);
        return;
    }
    struct md_dashboard_info info = {app->stm->ops->backend, app->ltm->ops->backend};
    json_t *data = md_dashboard_json(app->metrics, &l, &info, req->now_ms);
    md_alert_list_release(&l);
    if (md_resp_success_json(resp, 200, "dashboard", data) != MD_OK)
        api_oom(req, resp);
}

void api_alerts_list(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    struct md_alert_list l;
    memset(&l, 0, sizeof(l));
    if (md_alerts_list(app->alerts, req->now_ms, &l) != MD_OK) {
        api_oom(req, resp);
        return;
    }
    json_t *data = md_alerts_list_json(&l);
    md_alert_list_release(&l);
    if (md_resp_success_json(resp, 200, "alerts", data) != MD_OK)
        api_oom(req, resp);
}

void api_alerts_add(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    struct md_alert_rule rule;
    struct md_alert_status st;
    struct md_error err;
    md_error_clear(&err);
    if (md_alert_rule_parse(req->body, &rule, &err) != MD_OK) {
        md_resp_from_error(resp, &err);
        return;
    }
    if (md_alerts_add(app->alerts, &rule, &st, &err) != MD_OK) {
        api_fail(req, resp, &err);
        return;
    }
    json_t *data = json_pack("{s:o}", "rule", md_alert_rule_json(&st));
    if (md_resp_success_json(resp, 201, "alert rule created", data) != MD_OK)
        api_oom(req, resp);
}

void api_alerts_delete(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    const char *name = req->match.params[0];
    if (!req->match.param_valid[0] || !md_alert_name_valid(name)) {
        api_bad_request(resp, "name", "an alert rule name has 1 to 100 characters and no "
                                      "control characters");
        return;
    }
    struct md_error err;
    md_error_clear(&err);
    if (md_alerts_delete(app->alerts, name, &err) != MD_OK) {
        if (err.code == MD_E_NOTFOUND)
            md_error_set(&err, MD_E_NOTFOUND, "no alert rule with this name");
        api_fail(req, resp, &err);
        return;
    }
    resp->status = 204;
}

void api_cache_invalidate(struct md_req *req, struct md_resp *resp)
{
    static const char *const allowed[] = {"prefix", NULL};
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    const char *prefix = "";
    struct md_error err;
    md_error_clear(&err);
    if (req->body) {
        json_t *p = json_object_get(req->body, "prefix");
        enum md_status st = md_json_only(req->body, allowed, NULL, &err);
        if (st == MD_OK && p &&
            (!json_is_string(p) || json_string_length(p) > 512 ||
             md_str_has_ctl(json_string_value(p), json_string_length(p))))
            st = md_error_set_field(&err, MD_E_INVAL, "prefix",
                                    "field 'prefix' must be a string of at most 512 bytes "
                                    "without control characters");
        if (st != MD_OK) {
            md_resp_from_error(resp, &err);
            return;
        }
        if (p)
            prefix = json_string_value(p);
    }
    size_t n = md_cache_drop_prefix(app->cache, prefix);
    md_cache_sync_prefix(app->cache_sync, prefix);
    char data[96];
    int len = snprintf(data, sizeof(data), "{\"invalidated\":%zu}", n);
    if (md_resp_success_raw(resp, 200, "cache invalidated", data, (size_t)len) != MD_OK)
        api_oom(req, resp);
}
