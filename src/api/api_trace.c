/*
 * api_trace.c — traceability across the tiers (spec §4): /v1/trace,
 * /v1/integrity and /v1/stats.
 *
 * These views join STM and LTM. Each does a fixed number of store calls
 * (batched), never one call per rule or per entry.
 */
#include "memoryd/compat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/ltm.h"
#include "memoryd/stm.h"

static bool no_query(struct md_req *req, struct md_resp *resp)
{
    static const char *const none[] = {NULL};
    return api_query_only(req, resp, none);
}

/* ---- /v1/trace/{scenario_id} ------------------------------------------------------ */

void api_trace(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    const char *id = req->match.params[0];
    if (!no_query(req, resp))
        return;
    if (!req->match.param_valid[0] || !md_scenario_id_valid(id)) {
        api_bad_request(resp, "scenario_id", "invalid scenario_id: expected "
                                             "{domain}_r{N}_{concept}");
        return;
    }
    struct api_cache_put put;
    api_cache_put_init(&put, req, "ltm");
    if (put.key[0] && api_cache_serve(req, resp, put.key, api_route_message(req)))
        return;
    const char *ids[1] = {id};
    api_cache_tag_sources(&put, "se:", ids, 1, "se:*");
    api_cache_tag_sources(&put, "sx:", ids, 1, "sx:*");
    struct md_stm_view v;
    memset(&v, 0, sizeof(v));
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = app->stm->ops->get(app->stm, id, req->now_ms, &v, &err);
    if (st != MD_OK && st != MD_E_NOTFOUND) {
        api_fail(req, resp, &err);
        return;
    }
    bool in_stm = st == MD_OK;
    struct md_scenario_info info;
    memset(&info, 0, sizeof(info));
    md_error_clear(&err);
    if (app->ltm->ops->scenario(app->ltm, id, &info, &err) != MD_OK) {
        md_stm_view_release(&v);
        api_fail(req, resp, &err);
        return;
    }
    if (!in_stm && !info.known) {
        md_scenario_info_release(&info);
        md_resp_error(resp, 404, "not_found", "neither STM nor LTM knows this scenario", NULL);
        return;
    }
    /* The live entry wins; after expiry the snapshot answers. */
    bool feedback = in_stm ? v.has_feedback : (info.has_snapshot && info.snapshot_has_feedback);
    enum md_verdict fin = in_stm ? v.final_status
                                 : (info.has_snapshot ? info.snapshot_final_status
                                                      : MD_VERDICT_NONE);
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    st = md_buf_printf(&b, "{\"scenario_id\":\"%s\",\"stm_entry\":", id);
    if (st == MD_OK)
        st = in_stm ? md_buf_append(&b, v.json, v.json_len) : md_buf_puts(&b, "null");
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"snapshot\":");
    if (st == MD_OK && info.has_snapshot && info.snapshot_json) {
        st = md_buf_puts(&b, "{\"entry\":");
        if (st == MD_OK)
            st = md_buf_puts(&b, info.snapshot_json);
        if (st == MD_OK)
            st = md_buf_printf(&b, ",\"sha256\":\"%s\",\"captured_at\":", info.snapshot_sha256);
        if (st == MD_OK)
            st = api_put_time(&b, info.snapshot_captured_ms);
        if (st == MD_OK)
            st = md_buf_putc(&b, '}');
    } else if (st == MD_OK) {
        st = md_buf_puts(&b, "null");
    }
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"derived_ltm_rules\":");
    if (st == MD_OK)
        st = api_put_rules(&b, info.derived.items, info.derived.count, false);
    if (st == MD_OK)
        st = md_buf_printf(&b, ",\"traceability_summary\":{\"has_stm_entry\":%s,"
                               "\"has_snapshot\":%s,\"has_human_feedback\":%s,"
                               "\"derived_rules_count\":%zu,\"final_status\":",
                           in_stm ? "true" : "false", info.has_snapshot ? "true" : "false",
                           feedback ? "true" : "false", info.derived.count);
    if (st == MD_OK)
        st = api_put_verdict(&b, fin);
    if (st == MD_OK)
        st = md_buf_puts(&b, "}}");
    if (in_stm)
        api_cache_expire_with(&put, req->now_ms, v.expires_ms);
    md_stm_view_release(&v);
    md_scenario_info_release(&info);
    api_answer_cached(req, resp, api_route_message(req), &b, st, &put);
}

/* ---- /v1/integrity ------------------------------------------------------------------ */

/* Link-set members collected from STM, checked against LTM afterwards. */
struct integrity_walk {
    int64_t entries;
    int64_t orphaned_entries; /* live, with feedback, no derived rule */
    char **link_rules;        /* owned rule ids, parallel to link_ids */
    char **link_ids;          /* owned scenario ids */
    size_t n_links, cap_links;
    struct md_buf *issues;    /* JSON strings, comma-separated */
    size_t n_issues;
    enum md_status st;
};

#define MAX_ISSUES 200 /* the report lists at most this many issues; counts stay exact */

static enum md_status add_issue(struct integrity_walk *w, const char *fmt, ...) MD_PRINTF(2, 3);

static enum md_status add_issue(struct integrity_walk *w, const char *fmt, ...)
{
    if (w->n_issues++ >= MAX_ISSUES)
        return MD_OK;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    enum md_status st = w->n_issues > 1 ? md_buf_putc(w->issues, ',') : MD_OK;
    return st == MD_OK ? md_buf_json_cstr(w->issues, text) : st;
}

static enum md_status walk_entry(void *ctx, const char *scenario_id, bool has_feedback,
                                 const char *const *links, size_t n_links)
{
    struct integrity_walk *w = ctx;
    w->entries++;
    if (has_feedback && n_links == 0) {
        w->orphaned_entries++;
        enum md_status st = add_issue(w, "STM entry '%s' has human feedback but no derived rule",
                                      scenario_id);
        if (st != MD_OK)
            return st;
    }
    for (size_t i = 0; i < n_links; i++) {
        if (w->n_links == w->cap_links) {
            size_t cap = w->cap_links ? w->cap_links * 2 : 64;
            char **r = realloc(w->link_rules, cap * sizeof(*r));
            if (!r)
                return MD_E_NOMEM;
            w->link_rules = r;
            char **s = realloc(w->link_ids, cap * sizeof(*s));
            if (!s)
                return MD_E_NOMEM;
            w->link_ids = s;
            w->cap_links = cap;
        }
        w->link_rules[w->n_links] = strdup(links[i]);
        w->link_ids[w->n_links] = strdup(scenario_id);
        if (!w->link_rules[w->n_links] || !w->link_ids[w->n_links]) {
            free(w->link_rules[w->n_links]);
            free(w->link_ids[w->n_links]);
            return MD_E_NOMEM;
        }
        w->n_links++;
    }
    return MD_OK;
}

static void walk_release(struct integrity_walk *w)
{
    for (size_t i = 0; i < w->n_links; i++) {
        free(w->link_rules[i]);
        free(w->link_ids[i]);
    }
    free(w->link_rules);
    free(w->link_ids);
}

/* Link members naming missing rules (one batch call). */
static enum md_status check_links(struct md_app *app, struct integrity_walk *w,
                                  int64_t *broken, struct md_error *err)
{
    if (w->n_links == 0)
        return MD_OK;
    bool *exists = calloc(w->n_links, sizeof(*exists));
    if (!exists)
        return md_error_set(err, MD_E_NOMEM, "out of memory");
    enum md_status st = app->ltm->ops->rules_exist(app->ltm, (const char *const *)w->link_rules,
                                                   w->n_links, exists, err);
    for (size_t i = 0; st == MD_OK && i < w->n_links; i++)
        if (!exists[i]) {
            (*broken)++;
            st = add_issue(w, "stm_ltm_links:%s names missing rule '%s'", w->link_ids[i],
                           w->link_rules[i]);
        }
    free(exists);
    return st;
}

/* Sources with neither a live STM entry nor a snapshot (two batch calls). */
static enum md_status check_sources(struct md_req *req, struct integrity_walk *w,
                                    int64_t *broken, struct md_error *err)
{
    struct md_app *app = api_app(req);
    struct md_pair_list pairs;
    memset(&pairs, 0, sizeof(pairs));
    enum md_status st = app->ltm->ops->sources_without_snapshot(app->ltm, &pairs, err);
    if (st != MD_OK || pairs.count == 0) {
        md_pair_list_release(&pairs);
        return st;
    }
    const char **ids = calloc(pairs.count, sizeof(*ids));
    struct md_stm_view *views = calloc(pairs.count, sizeof(*views));
    if (!ids || !views) {
        free(ids);
        free(views);
        md_pair_list_release(&pairs);
        return md_error_set(err, MD_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < pairs.count; i++)
        ids[i] = pairs.scenario_ids[i];
    st = app->stm->ops->get_many(app->stm, ids, pairs.count, req->now_ms, views, err);
    for (size_t i = 0; st == MD_OK && i < pairs.count; i++)
        if (!views[i].json) {
            (*broken)++;
            st = add_issue(w, "rule '%s' cites scenario '%s', which has neither an STM entry "
                              "nor a snapshot", pairs.rule_ids[i], pairs.scenario_ids[i]);
        }
    for (size_t i = 0; i < pairs.count; i++)
        md_stm_view_release(&views[i]);
    free(views);
    free(ids);
    md_pair_list_release(&pairs);
    return st;
}

void api_integrity(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    struct md_buf issues;
    md_buf_init(&issues, 1 << 20);
    struct integrity_walk w;
    memset(&w, 0, sizeof(w));
    w.issues = &issues;
    struct md_ltm_stats ls;
    memset(&ls, 0, sizeof(ls));
    struct md_error err;
    md_error_clear(&err);
    int64_t broken = 0;
    enum md_status st = app->stm->ops->for_each(app->stm, req->now_ms, walk_entry, &w, &err);
    if (st == MD_OK)
        st = check_links(app, &w, &broken, &err);
    if (st == MD_OK)
        st = check_sources(req, &w, &broken, &err);
    if (st == MD_OK)
        st = app->ltm->ops->stats(app->ltm, &ls, &err);
    if (st != MD_OK) {
        if (err.code == MD_OK)
            md_error_set(&err, st, "integrity check failed");
        if (err.code == MD_E_LIMIT) /* a store bound, not a request body: 503, not 413 */
            md_error_set(&err, MD_E_UNAVAIL, "too many links to check in one report");
        walk_release(&w);
        md_buf_release(&issues);
        md_ltm_stats_release(&ls);
        api_fail(req, resp, &err);
        return;
    }
    for (int64_t i = 0; i < ls.rules_without_sources && st == MD_OK; i++)
        if (i == 0)
            st = add_issue(&w, "%lld rule(s) have no source scenario",
                           (long long)ls.rules_without_sources);
    bool pass = ls.rules_without_sources == 0 && broken == 0;
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    if (st == MD_OK)
        st = md_buf_printf(&b, "{\"integrity_status\":\"%s\",\"statistics\":{"
                               "\"total_stm_entries\":%lld,\"total_ltm_rules\":%lld,"
                               "\"orphaned_stm_entries\":%lld,\"orphaned_ltm_rules\":%lld,"
                               "\"broken_links\":%lld},\"issues\":[",
                           pass ? "PASS" : "ISSUES_FOUND", (long long)w.entries,
                           (long long)ls.total_rules, (long long)w.orphaned_entries,
                           (long long)ls.rules_without_sources, (long long)broken);
    if (st == MD_OK && issues.len)
        st = md_buf_append(&b, issues.data, issues.len);
    if (st == MD_OK)
        st = md_buf_printf(&b, "],\"issues_total\":%zu,\"checked_at\":", w.n_issues);
    if (st == MD_OK)
        st = api_put_time(&b, req->now_ms);
    if (st == MD_OK)
        st = md_buf_putc(&b, '}');
    walk_release(&w);
    md_buf_release(&issues);
    md_ltm_stats_release(&ls);
    api_answer_buf(req, resp, 200, pass ? "integrity check passed" : "integrity issues found",
                   &b, st);
}

/* ---- /v1/stats ------------------------------------------------------------------------- */

void api_stats(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    struct md_stm_stats s;
    memset(&s, 0, sizeof(s));
    struct md_ltm_stats ls;
    memset(&ls, 0, sizeof(ls));
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = app->stm->ops->stats(app->stm, req->now_ms, &s, &err);
    if (st == MD_OK)
        st = app->ltm->ops->stats(app->ltm, &ls, &err);
    if (st != MD_OK) {
        md_ltm_stats_release(&ls);
        api_fail(req, resp, &err);
        return;
    }
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    st = md_buf_printf(&b, "{\"stm_stats\":{\"total_entries\":%lld,\"entries_with_feedback\":%lld,"
                           "\"entries_without_feedback\":%lld,\"status_breakdown\":{",
                       (long long)s.total, (long long)s.with_feedback,
                       (long long)(s.total - s.with_feedback));
    for (int i = 0; st == MD_OK && i < MD_VERDICT_COUNT; i++)
        st = md_buf_printf(&b, "%s\"%s\":%lld", i ? "," : "", md_verdict_name((enum md_verdict)i),
                           (long long)s.by_status[i]);
    if (st == MD_OK)
        st = md_buf_puts(&b, "},\"final_status_breakdown\":{");
    for (int i = 0; st == MD_OK && i < MD_VERDICT_COUNT; i++)
        st = md_buf_printf(&b, "%s\"%s\":%lld", i ? "," : "", md_verdict_name((enum md_verdict)i),
                           (long long)s.by_final[i]);
    if (st == MD_OK)
        st = md_buf_printf(&b, "}},\"ltm_stats\":{\"total_rules\":%lld,\"average_confidence\":",
                           (long long)ls.total_rules);
    if (st == MD_OK)
        st = api_put_double(&b, ls.average_confidence);
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"rules_by_policy\":{");
    for (size_t i = 0; st == MD_OK && i < ls.n_policies; i++) {
        if (i)
            st = md_buf_putc(&b, ',');
        if (st == MD_OK)
            st = md_buf_json_cstr(&b, ls.policies[i]);
        if (st == MD_OK)
            st = md_buf_printf(&b, ":%lld", (long long)ls.policy_counts[i]);
    }
    if (st == MD_OK)
        st = md_buf_printf(&b, "},\"total_concepts\":%lld},\"system_info\":{\"version\":\"%s\","
                               "\"uptime_seconds\":%lld,\"stm_backend\":\"%s\","
                               "\"ltm_backend\":\"%s\"}}",
                           (long long)ls.total_concepts, MD_VERSION_STRING,
                           (long long)((md_mono_ms() - app->started_mono_ms) / 1000),
                           app->stm->ops->backend, app->ltm->ops->backend);
    md_ltm_stats_release(&ls);
    api_answer_buf(req, resp, 200, "system statistics", &b, st);
}
