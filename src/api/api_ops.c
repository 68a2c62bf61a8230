/*
 * api_ops.c — operational routes: /health, /ready, /openapi.json (spec §5).
 */
#include "memoryd/compat.h"

#include <stdio.h>
#include <string.h>

#include "api_int.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/stm.h"

extern const char md_asset_openapi_json[];
extern const unsigned long md_asset_openapi_json_len;

struct probe {
    const char *backend;
    bool ok;
    double latency_ms;
    char message[MD_ERROR_MSG_MAX];
};

static void probe_stm(struct md_app *app, struct probe *p)
{
    struct md_error err;
    md_error_clear(&err);
    int64_t t0 = md_mono_us();
    p->backend = app->stm->ops->backend;
    p->ok = app->stm->ops->ping(app->stm, &err) == MD_OK;
    p->latency_ms = (double)(md_mono_us() - t0) / 1000.0;
    snprintf(p->message, sizeof(p->message), "%s", p->ok ? "ok" : err.msg);
}

static json_t *component(const struct probe *p)
{
    return json_pack("{s:s, s:s, s:f, s:s}", "backend", p->backend, "status",
                     p->ok ? "healthy" : "unhealthy", "latency_ms", p->latency_ms, "message",
                     p->message);
}

void api_ops_health(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    struct probe stm;
    probe_stm(app, &stm);
    const char *overall = stm.ok ? "healthy" : "unhealthy";
    json_t *data = json_pack("{s:s, s:s, s:I, s:{s:o}}", "overall_status", overall, "version",
                             MD_VERSION_STRING, "uptime_seconds",
                             (json_int_t)((md_mono_ms() - app->started_mono_ms) / 1000),
                             "components", "stm", component(&stm));
    if (!data) {
        api_oom(req, resp);
        return;
    }
    if (stm.ok) {
        if (md_resp_success_json(resp, 200, "healthy", data) != MD_OK)
            api_oom(req, resp);
        return;
    }
    md_resp_error_data(resp, 503, "storage_unavailable", "no store is reachable", NULL, data);
}

void api_ops_ready(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    struct probe stm;
    probe_stm(app, &stm);
    json_t *data = json_pack("{s:b, s:{s:o}}", "ready", stm.ok, "components", "stm",
                             component(&stm));
    if (!data) {
        api_oom(req, resp);
        return;
    }
    if (stm.ok) {
        if (md_resp_success_json(resp, 200, "ready", data) != MD_OK)
            api_oom(req, resp);
        return;
    }
    md_resp_error_data(resp, 503, "storage_unavailable", "not ready: a store does not answer",
                       NULL, data);
}

void api_ops_openapi(struct md_req *req, struct md_resp *resp)
{
    (void)req;
    resp->status = 200;
    resp->content_type = "application/json";
    resp->static_body = md_asset_openapi_json;
    resp->static_len = md_asset_openapi_json_len;
}
