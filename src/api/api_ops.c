/*
 * api_ops.c — operational routes: /health, /ready, /openapi.json (spec §5).
 */
#include "memoryd/compat.h"

#include <stdio.h>
#include <string.h>

#include "api_int.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/ltm.h"
#include "memoryd/stm.h"

extern const char md_asset_openapi_json[];
extern const unsigned long md_asset_openapi_json_len;

struct probe {
    const char *backend;
    bool ok;
    double latency_ms;
    char message[MD_ERROR_MSG_MAX];
};

static void finish_probe(struct probe *p, bool ok, int64_t t0, const struct md_error *err)
{
    p->ok = ok;
    p->latency_ms = (double)(md_mono_us() - t0) / 1000.0;
    snprintf(p->message, sizeof(p->message), "%s", ok ? "ok" : err->msg);
}

static void probe_stm(struct md_app *app, struct probe *p)
{
    struct md_error err;
    md_error_clear(&err);
    int64_t t0 = md_mono_us();
    p->backend = app->stm->ops->backend;
    finish_probe(p, app->stm->ops->ping(app->stm, &err) == MD_OK, t0, &err);
}

static void probe_ltm(struct md_app *app, struct probe *p)
{
    struct md_error err;
    md_error_clear(&err);
    int64_t t0 = md_mono_us();
    p->backend = app->ltm->ops->backend;
    finish_probe(p, app->ltm->ops->ping(app->ltm, &err) == MD_OK, t0, &err);
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
    struct probe stm, ltm;
    probe_stm(app, &stm);
    probe_ltm(app, &ltm);
    const char *overall = stm.ok && ltm.ok ? "healthy" : (stm.ok || ltm.ok ? "degraded"
                                                                           : "unhealthy");
    json_t *data = json_pack("{s:s, s:s, s:I, s:{s:o, s:o}}", "overall_status", overall,
                             "version", MD_VERSION_STRING, "uptime_seconds",
                             (json_int_t)((md_mono_ms() - app->started_mono_ms) / 1000),
                             "components", "stm", component(&stm), "ltm", component(&ltm));
    if (!data) {
        api_oom(req, resp);
        return;
    }
    if (stm.ok || ltm.ok) {
        if (md_resp_success_json(resp, 200, overall, data) != MD_OK)
            api_oom(req, resp);
        return;
    }
    md_resp_error_data(resp, 503, "storage_unavailable", "no store is reachable", NULL, data);
}

void api_ops_ready(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    struct probe stm, ltm;
    probe_stm(app, &stm);
    probe_ltm(app, &ltm);
    bool schema = atomic_load(&app->ltm_schema_ready);
    bool ready = stm.ok && ltm.ok && schema;
    json_t *data = json_pack("{s:b, s:b, s:{s:o, s:o}}", "ready", ready, "ltm_schema_ready",
                             schema, "components", "stm", component(&stm), "ltm",
                             component(&ltm));
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
    (void)req;
    resp->status = 200;
    resp->content_type = "application/json";
    resp->static_body = md_asset_openapi_json;
    resp->static_len = md_asset_openapi_json_len;
}
