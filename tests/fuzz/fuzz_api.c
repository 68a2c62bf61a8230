/*
 * fuzz_api.c — a whole request through the API layer, minus the socket:
 * route matching, query splitting, authorization, JSON body parsing and the
 * handler with all its validation, against fake stores (fake_stores.c).
 *
 * Why handlers rather than md_json_parse_object + getters alone: the body
 * and query validators of spec §2–§4 (parse_create, parse_patch, the
 * feedback/TTL/promote/alert checks, concept and source lists, rule
 * identity, search filters, cursors …) are static functions inside
 * the src/api sources. Driving the real handlers reaches every one of them with the
 * same composition the daemon uses, and the fake stores turn "only valid,
 * canonical input reaches a store" into a checked invariant. fuzz_json
 * covers the parser and getters on their own.
 *
 * Input, HTTP-like:
 *   METHOD SP TARGET LF
 *   (Name: value LF)*        request headers; "X-Fuzz-Fault: N" makes every
 *   LF                       store operation fail with md_status N
 *   body…
 *
 * Invariants (besides the stores' input checks and the sanitizers):
 *   - every request gets an answer with a status in 200..599; 204 has no
 *     body; every other body is one JSON document (valid UTF-8) in the spec
 *     §1 envelope: "status" success for 2xx and error otherwise, errors with
 *     string "error_type" and "message" (validation_error for 400), and a
 *     "timestamp";
 *   - 503 answers carry Retry-After; 201 answers for created resources
 *     carry Location; 405 answers carry Allow.
 */
#include "memoryd/compat.h"

#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include "fake_stores.h"
#include "fuzz_common.h"
#include "memoryd/alerts.h"
#include "memoryd/api.h"
#include "memoryd/app.h"
#include "memoryd/cache.h"
#include "memoryd/config.h"
#include "memoryd/clock.h"
#include "memoryd/envelope.h"
#include "memoryd/health.h"
#include "memoryd/json_body.h"
#include "memoryd/log.h"
#include "memoryd/metrics.h"
#include "memoryd/query.h"
#include "memoryd/text.h"

#define MAX_QUERY_BYTES 8192 /* as in http_server.c */
#define MAX_HEADERS 16

static struct md_config cfg;
static struct md_app app;
static struct md_router *router;

struct header {
    char *name;
    char *value;
};

struct fuzz_req {
    struct md_req req; /* first: md_req_header gets back to us */
    struct header headers[MAX_HEADERS];
    size_t n_headers;
};

static const char *fake_header(const struct md_req *req, const char *name)
{
    const struct fuzz_req *f = (const struct fuzz_req *)(const void *)req;
    for (size_t i = 0; i < f->n_headers; i++)
        if (strcasecmp(f->headers[i].name, name) == 0)
            return f->headers[i].value;
    return NULL;
}

static struct md_alerts *new_alerts(void)
{
    struct md_alerts_options ao;
    md_alerts_options_from_config(&cfg, &ao);
    ao.value_fn = md_metrics_alert_value;
    ao.value_ctx = app.metrics;
    ao.evaluate = false;
    struct md_error err;
    struct md_alerts *a = md_alerts_new(&ao, &err);
    FUZZ_CHECK(a != NULL, "md_alerts_new: %s", err.msg);
    return a;
}

static void init_once(void)
{
    if (router)
        return;
    int devnull = open("/dev/null", O_WRONLY);
    md_log_setup(MD_LOG_DEBUG, MD_LOG_JSON, devnull >= 0 ? devnull : 2);
    char arg0[] = "memoryd", envfile[] = "--env-file=/dev/null";
    char *argv[] = {arg0, envfile, NULL};
    char *envp[] = {NULL};
    enum md_cfg_action action;
    struct md_error err;
    FUZZ_CHECK(md_config_load(&cfg, 2, argv, envp, &action, &err) == MD_OK, "config: %s",
               err.msg);
    size_t n_routes;
    const struct md_route *routes = md_api_routes(&n_routes);
    router = md_router_new(routes, n_routes, &err);
    FUZZ_CHECK(router != NULL, "router: %s", err.msg);
    app.cfg = &cfg;
    app.stm = fake_stm(cfg.memory_stm_min_ttl_seconds);
    app.ltm = app.ltm_inner = fake_ltm((size_t)cfg.memory_max_related_concepts);
    struct md_cache_options co = {0, 0, 60000, 0}; /* disabled: answers never depend on history */
    app.cache = md_cache_new(&co, &err);
    FUZZ_CHECK(app.cache != NULL, "cache: %s", err.msg);
    app.metrics = md_metrics_new(routes, n_routes, &err);
    FUZZ_CHECK(app.metrics != NULL, "metrics: %s", err.msg);
    app.alerts = new_alerts();
    atomic_store(&app.ltm_schema_ready, true);
    /* the probers ping the fake stores once, then sleep for an hour */
    app.health = md_health_start(&app, 3600.0, &err);
    FUZZ_CHECK(app.health != NULL, "health: %s", err.msg);
    app.started_ms = md_now_ms();
    app.started_mono_ms = md_mono_ms();
}

static const char *header_of(const struct md_resp *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

static void check_response(const struct md_req *req, const struct md_resp *resp)
{
    const char *route = req->match.route ? req->match.route->pattern : "(none)";
    FUZZ_CHECK(resp->status >= 200 && resp->status <= 599, "%s: status %d", route, resp->status);
    const char *body = resp->static_body ? resp->static_body : resp->body.data;
    size_t len = resp->static_body ? resp->static_len : resp->body.len;
    if (resp->status == 204) {
        FUZZ_CHECK(len == 0, "%s: 204 with a body", route);
        return;
    }
    if (resp->status == 503)
        FUZZ_CHECK(header_of(resp, "Retry-After"), "%s: 503 without Retry-After", route);
    if (resp->status == 405)
        FUZZ_CHECK(header_of(resp, "Allow"), "405 without Allow");
    if (resp->status == 201)
        FUZZ_CHECK(header_of(resp, "Location") || strcmp(route, "/v1/alerts/rules") == 0,
                   "%s: 201 without Location", route);
    const char *ct = resp->content_type ? resp->content_type : "application/json";
    FUZZ_CHECK(body && len > 0, "%s: empty %d body", route, resp->status);
    if (strncmp(ct, "application/json", 16) != 0 || strcmp(route, "/openapi.json") == 0)
        return; /* metrics text, the dashboard page, the static OpenAPI document */
    FUZZ_CHECK(md_utf8_valid(body, len), "%s: %d body is not UTF-8: %.*s", route, resp->status,
               (int)len, body);
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    FUZZ_CHECK(doc && json_is_object(doc), "%s: %d body is not a JSON object (%s): %.*s", route,
               resp->status, jerr.text, (int)MD_MIN(len, 2000), body);
    const char *status = json_string_value(json_object_get(doc, "status"));
    bool ok = resp->status < 400;
    FUZZ_CHECK(status && strcmp(status, ok ? "success" : "error") == 0,
               "%s: %d with envelope status '%s'", route, resp->status, status ? status : "");
    FUZZ_CHECK(json_is_string(json_object_get(doc, "message")) &&
                   json_is_string(json_object_get(doc, "timestamp")),
               "%s: envelope without message/timestamp", route);
    if (!ok) {
        const char *type = json_string_value(json_object_get(doc, "error_type"));
        FUZZ_CHECK(type, "%s: error without error_type", route);
        if (resp->status == 400)
            FUZZ_CHECK(strcmp(type, "validation_error") == 0, "400 with error_type '%s'", type);
        json_t *field = json_object_get(doc, "field");
        FUZZ_CHECK(!field || json_is_string(field), "field is not a string");
    } else {
        FUZZ_CHECK(json_object_get(doc, "data") != NULL, "%s: success without data", route);
    }
    json_decref(doc);
}

/* What http_server.c does between the request line and the handler. */
static void serve(struct fuzz_req *f, const char *method, char *target, const char *body,
                  size_t body_len, struct md_resp *resp)
{
    struct md_req *req = &f->req;
    req->method = md_http_method_parse(method);
    char *q = strchr(target, '?');
    char *query = NULL;
    bool query_refused = false;
    if (q) {
        size_t params = 1, qlen = strlen(q + 1);
        for (const char *p = q + 1; *p; p++)
            params += *p == '&';
        if (qlen <= MAX_QUERY_BYTES && params <= MD_MAX_QUERY_PARAMS)
            query = q + 1;
        else
            query_refused = true;
        *q = '\0';
    }
    req->path = target;
    enum md_route_result rr = md_router_match(router, req->method, target, &req->match);
    if (rr == MD_ROUTE_NOT_FOUND) {
        md_resp_error(resp, 404, "not_found", "no such route", NULL);
        return;
    }
    if (rr != MD_ROUTE_FOUND) {
        char allow[96];
        md_http_methods_text(req->match.allowed ? req->match.allowed : MD_M_GET, allow,
                             sizeof(allow));
        md_resp_error(resp, 405, "method_not_allowed", "method not allowed on this route", NULL);
        md_resp_header(resp, "Allow", allow);
        return;
    }
    if (query_refused) {
        md_resp_error(resp, 400, "validation_error", "query string too long", NULL);
        return;
    }
    if (query) {
        struct md_error qerr;
        enum md_status st = md_query_split(query, strlen(query), req->query, MD_MAX_QUERY_PARAMS,
                                           &req->n_query, &qerr);
        if (st != MD_OK) {
            md_resp_error(resp, 400, "validation_error", "malformed query string", NULL);
            return;
        }
    }
    int denied = md_api_authorize(&app, req, resp);
    if (denied) {
        FUZZ_CHECK(resp->status == denied, "authorize answered %d, said %d", resp->status,
                   denied);
        return;
    }
    unsigned flags = req->match.route->flags;
    bool wants_body = (flags & (MD_ROUTE_BODY | MD_ROUTE_BODY_OPTIONAL)) != 0;
    if (body_len > 0 && wants_body) {
        struct md_error err;
        md_error_clear(&err);
        if (md_json_parse_object(body, body_len, &req->body, &err) != MD_OK) {
            md_resp_from_error(resp, &err);
            return;
        }
    } else if ((flags & MD_ROUTE_BODY) && body_len == 0) {
        md_resp_error(resp, 400, "validation_error", "a JSON object body is required", NULL);
        return;
    }
    req->match.route->handler(req, resp);
    FUZZ_CHECK(resp->status != 0, "handler of %s %s did not answer", method,
               req->match.route->pattern);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size > 256 * 1024)
        return 0;
    struct fuzz_req *f = calloc(1, sizeof(*f));
    struct md_resp *resp = calloc(1, sizeof(*resp));
    char *line = NULL;
    if (!f || !resp)
        goto out;
    size_t pos = 0;
    line = fuzz_field(data, size, &pos, '\n');
    if (!line)
        goto out;
    char *sp = strchr(line, ' ');
    if (!sp)
        goto out;
    *sp = '\0';
    char *target = sp + 1;
    size_t tl = strlen(target);
    if (tl && target[tl - 1] == '\r')
        target[tl - 1] = '\0';
    fake_fault = MD_OK;
    while (pos < size && data[pos] != '\n' && f->n_headers < MAX_HEADERS) {
        char *h = fuzz_field(data, size, &pos, '\n');
        if (!h)
            goto out;
        char *colon = strchr(h, ':');
        if (!colon) {
            free(h);
            continue;
        }
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        if (strcasecmp(h, "X-Fuzz-Fault") == 0) {
            long n = strtol(v, NULL, 10);
            fake_fault = n > 0 && n <= MD_E_INTERNAL ? (enum md_status)n : MD_OK;
        }
        f->headers[f->n_headers].name = h;
        f->headers[f->n_headers].value = v;
        f->n_headers++;
    }
    if (pos < size && data[pos] == '\n')
        pos++;
    struct md_req *req = &f->req;
    req->app = &app;
    req->header = fake_header;
    req->now_ms = md_now_ms();
    req->start_us = md_mono_us();
    snprintf(req->request_id, sizeof(req->request_id), "fuzz");
    md_buf_init(&resp->body, MD_RESP_MAX_BYTES);

    /* alert rules are the one piece of state handlers change: isolate those requests */
    struct md_alerts *shared = app.alerts;
    bool alerts_route = strncmp(target, "/v1/alerts", 10) == 0;
    if (alerts_route)
        app.alerts = new_alerts();
    serve(f, line, target, (const char *)data + pos, size - pos, resp);
    check_response(req, resp);
    if (req->match.route)
        md_api_observe(&app, req, resp->status, 1000);
    if (alerts_route) {
        md_alerts_free(app.alerts);
        app.alerts = shared;
    }
    json_decref(req->body);
    md_query_free(req->query, req->n_query);
    md_buf_release(&resp->body);
out:
    if (f)
        for (size_t i = 0; i < f->n_headers; i++)
            free(f->headers[i].name);
    free(f);
    free(resp);
    free(line);
    return 0;
}
