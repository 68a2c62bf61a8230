/*
 * api_stm.c — short-term memory routes (spec §3).
 *
 * Each handler validates its input completely before touching the store, so
 * a bad request never reaches storage, and passes the store's canonical entry
 * JSON through to the client unparsed.
 */
#include "memoryd/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/cursor.h"
#include "memoryd/ids.h"
#include "memoryd/json_body.h"
#include "memoryd/stm.h"
#include "memoryd/text.h"

#define TTL_MAX_SECONDS 31536000

/* ---- input helpers ---------------------------------------------------------- */

static const char *const no_query[] = {NULL};

/* The {id} capture as a scenario id; false after answering 400. */
static bool path_scenario_id(struct md_req *req, struct md_resp *resp, const char **out)
{
    const char *id = req->match.params[0];
    if (!req->match.param_valid[0] || !md_scenario_id_valid(id)) {
        api_bad_request(resp, "scenario_id",
                        "invalid scenario_id: expected {domain}_r{N}_{concept} (lower case "
                        "letters, digits and '_', at most 128 characters)");
        return false;
    }
    *out = id;
    return true;
}

static int64_t ttl_min(const struct md_req *req)
{
    return api_app(req)->cfg->memory_stm_min_ttl_seconds;
}

/* requirement_number may be a string ("R1", "req 1") or a non-negative integer. */
static bool requirement_number(json_t *body, char out[32], bool *present, struct md_error *err)
{
    json_t *v = json_object_get(body, "requirement_number");
    *present = v != NULL;
    out[0] = '\0';
    if (!v)
        return true;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(out, 32, "%lld", (long long)json_integer_value(v));
        return true;
    }
    if (json_is_string(v) && json_string_length(v) <= 31 &&
        !md_str_has_ctl(json_string_value(v), json_string_length(v))) {
        snprintf(out, 32, "%s", json_string_value(v));
        return true;
    }
    md_error_set_field(err, MD_E_INVAL, "requirement_number",
                       "field 'requirement_number' must be a string of at most 31 characters "
                       "or a non-negative integer");
    return false;
}

/* Fill in->scenario_id from scenario_id, or generate it from domain & co. */
static enum md_status resolve_scenario_id(json_t *body, struct md_stm_new *in,
                                          struct md_error *err)
{
    const char *given = NULL, *domain = NULL, *concept = NULL;
    char reqnum[32];
    bool has_reqnum;
    enum md_status st = md_json_short(body, "scenario_id", NULL, false, 1024, &given, err);
    if (st == MD_OK)
        st = md_json_short(body, "domain", NULL, false, 256, &domain, err);
    if (st != MD_OK)
        return st;
    json_t *kc = json_object_get(body, "key_concept");
    if (kc && !(json_is_string(kc) && json_string_length(kc) <= 256))
        return md_error_set_field(err, MD_E_INVAL, "key_concept",
                                  "field 'key_concept' must be a string of at most 256 bytes");
    concept = kc ? json_string_value(kc) : NULL;
    if (!requirement_number(body, reqnum, &has_reqnum, err))
        return MD_E_INVAL;
    if (given) {
        if (domain || has_reqnum || kc)
            return md_error_set_field(err, MD_E_INVAL, "scenario_id",
                                      "give either scenario_id or domain (with "
                                      "requirement_number and key_concept), not both");
        if (!md_scenario_id_valid(given))
            return md_error_set_field(err, MD_E_INVAL, "scenario_id",
                                      "invalid scenario_id: expected {domain}_r{N}_{concept} "
                                      "(lower case letters, digits and '_', at most 128 "
                                      "characters)");
        snprintf(in->scenario_id, sizeof(in->scenario_id), "%s", given);
        in->generated = false;
        return MD_OK;
    }
    if (!domain)
        return md_error_set_field(err, MD_E_INVAL, "scenario_id",
                                  "either scenario_id or domain is required");
    in->generated = true;
    return md_scenario_id_generate(domain, has_reqnum ? reqnum : NULL, concept, in->scenario_id,
                                   err);
}

static const char *const assessment_fields[] = {"status", "rationale", "recommendation", NULL};

static enum md_status parse_create(struct md_req *req, struct md_stm_new *in,
                                   struct md_error *err)
{
    static const char *const allowed[] = {"scenario_id",        "domain",
                                          "requirement_number", "key_concept",
                                          "requirement_text",   "initial_assessment",
                                          "ttl_seconds",        NULL};
    json_t *body = req->body, *ia = NULL;
    memset(in, 0, sizeof(*in));
    enum md_status st = md_json_only(body, allowed, NULL, err);
    if (st == MD_OK)
        st = resolve_scenario_id(body, in, err);
    if (st == MD_OK)
        st = md_json_text(body, "requirement_text", NULL, true, MD_TEXT_MAX,
                          &in->requirement_text, err);
    if (st == MD_OK)
        st = md_json_object(body, "initial_assessment", NULL, true, &ia, err);
    if (st == MD_OK)
        st = md_json_only(ia, assessment_fields, "initial_assessment", err);
    if (st == MD_OK)
        st = md_json_verdict(ia, "status", "initial_assessment", true, false, &in->status, NULL,
                             err);
    if (st == MD_OK)
        st = md_json_text(ia, "rationale", "initial_assessment", true, MD_TEXT_MAX,
                          &in->rationale, err);
    if (st == MD_OK)
        st = md_json_text(ia, "recommendation", "initial_assessment", true, MD_TEXT_MAX,
                          &in->recommendation, err);
    bool has_ttl;
    in->ttl_seconds = api_app(req)->cfg->memory_stm_ttl_hours * 3600;
    if (st == MD_OK)
        st = md_json_int(body, "ttl_seconds", NULL, false, ttl_min(req), TTL_MAX_SECONDS,
                         &in->ttl_seconds, &has_ttl, err);
    return st;
}

/* ---- output helpers --------------------------------------------------------- */

/* {"stm_entry":<json>} */
static void answer_entry(struct md_req *req, struct md_resp *resp, int status,
                         const char *message, const struct md_stm_view *v)
{
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = md_buf_puts(&b, "{\"stm_entry\":");
    if (st == MD_OK)
        st = md_buf_append(&b, v->json, v->json_len);
    if (st == MD_OK)
        st = md_buf_putc(&b, '}');
    if (st == MD_OK)
        st = md_resp_success_raw(resp, status, message, b.data, b.len);
    md_buf_release(&b);
    if (st != MD_OK)
        api_oom(req, resp);
}

/* The `data` of GET /v1/stm/entries/{id}: the entry and its traceability. */
static enum md_status get_answer(struct md_buf *b, const void *arg)
{
    const struct md_stm_view *v = arg;
    enum md_status st = md_buf_puts(b, "{\"stm_entry\":");
    if (st == MD_OK)
        st = md_buf_append(b, v->json, v->json_len);
    if (st == MD_OK)
        st = md_buf_puts(b, ",\"traceability\":{\"related_ltm_rules\":[");
    for (size_t i = 0; st == MD_OK && i < v->n_links; i++) {
        if (i)
            st = md_buf_putc(b, ',');
        if (st == MD_OK)
            st = md_buf_json_cstr(b, v->links[i]);
    }
    if (st == MD_OK)
        st = md_buf_printf(b, "],\"has_human_feedback\":%s,\"final_status\":",
                           v->has_feedback ? "true" : "false");
    if (st == MD_OK)
        st = api_put_verdict(b, v->final_status);
    if (st == MD_OK)
        st = md_buf_puts(b, "}}");
    return st;
}

/*
 * After a successful update of id: invalidate, and write the entry's new GET
 * answer through the cache when the store handed back its links (updates,
 * unlike creates, are to entries that clients are reading).
 */
static void updated(struct md_req *req, const char *id, uint64_t mark,
                    const struct md_stm_view *v)
{
    if (v->links_known)
        api_stm_written(req, id, mark, v->expires_ms, get_answer, v);
    else
        api_invalidate_stm(req, id, false);
}

/* ---- handlers ------------------------------------------------------------------- */

void api_stm_create(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    struct md_stm_new in;
    struct md_error err;
    md_error_clear(&err);
    if (!api_query_only(req, resp, no_query))
        return;
    if (parse_create(req, &in, &err) != MD_OK) {
        md_resp_from_error(resp, &err);
        return;
    }
    struct md_stm_view v;
    memset(&v, 0, sizeof(v));
    if (app->stm->ops->create(app->stm, &in, req->now_ms, &v, &err) != MD_OK) {
        if (md_status_http(err.code) >= 500) /* may have applied, under an unknown id */
            api_invalidate_stm(req, in.scenario_id, true);
        if (err.code == MD_E_CONFLICT && !err.msg[0])
            md_error_set_field(&err, MD_E_CONFLICT, "scenario_id",
                               "an STM entry with this scenario_id already exists");
        api_fail(req, resp, &err);
        return;
    }
    api_invalidate_stm(req, v.scenario_id, true);
    char location[MD_SCENARIO_ID_MAX + 32];
    snprintf(location, sizeof(location), "/v1/stm/entries/%s", v.scenario_id);
    answer_entry(req, resp, 201, "STM entry created", &v);
    if (resp->status == 201)
        md_resp_header(resp, "Location", location);
    md_stm_view_release(&v);
}

void api_stm_get(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    const char *id;
    static const char *const none[] = {NULL};
    if (!api_query_only(req, resp, none) || !path_scenario_id(req, resp, &id))
        return;
    struct api_cache_put put;
    char tag[MD_SCENARIO_ID_MAX + 4];
    snprintf(tag, sizeof(tag), "se:%.128s", id);
    api_cache_put_init(&put, req, tag);
    if (put.key[0] && api_cache_serve(req, resp, put.key, api_route_message(req)))
        return;
    struct md_stm_view v;
    memset(&v, 0, sizeof(v));
    struct md_error err;
    md_error_clear(&err);
    if (app->stm->ops->get(app->stm, id, req->now_ms, &v, &err) != MD_OK) {
        if (err.code == MD_E_NOTFOUND)
            md_error_set(&err, MD_E_NOTFOUND, "no STM entry '%s'", id);
        api_fail(req, resp, &err);
        return;
    }
    api_cache_expire_with(&put, req->now_ms, v.expires_ms);
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = get_answer(&b, &v);
    md_stm_view_release(&v);
    api_answer_cached(req, resp, api_route_message(req), &b, st, &put);
}

/* Canonical filter text, used both to echo "filters" and to bind cursors. */
static enum md_status filters_json(const struct md_stm_filter *f, struct md_buf *b)
{
    enum md_status st = md_buf_putc(b, '{');
    bool first = true;
    if (st == MD_OK && f->status != MD_VERDICT_NONE) {
        st = md_buf_puts(b, "\"status\":");
        if (st == MD_OK)
            st = api_put_verdict(b, f->status);
        first = false;
    }
    if (st == MD_OK && f->final_status != MD_VERDICT_NONE) {
        st = md_buf_puts(b, first ? "\"final_status\":" : ",\"final_status\":");
        if (st == MD_OK)
            st = api_put_verdict(b, f->final_status);
        first = false;
    }
    if (st == MD_OK && f->has_feedback >= 0) {
        st = md_buf_printf(b, "%s\"has_feedback\":%s", first ? "" : ",",
                           f->has_feedback ? "true" : "false");
        first = false;
    }
    if (st == MD_OK && f->domain[0])
        st = md_buf_printf(b, "%s\"domain\":\"%s\"", first ? "" : ",", f->domain);
    return st == MD_OK ? md_buf_putc(b, '}') : st;
}

static bool parse_list_query(struct md_req *req, struct md_resp *resp, struct md_stm_filter *f,
                             int64_t *limit)
{
    static const char *const allowed[] = {"status", "final_status", "has_feedback", "domain",
                                          "limit",  "cursor",       NULL};
    if (!api_query_only(req, resp, allowed))
        return false;
    md_stm_filter_init(f);
    const char *s = md_req_query(req, "status");
    if (s && !md_verdict_parse(s, &f->status)) {
        api_bad_request(resp, "status", "status must be one of Compliant, Non-Compliant, "
                                        "Partially Compliant, Pending");
        return false;
    }
    s = md_req_query(req, "final_status");
    if (s && !md_verdict_parse(s, &f->final_status)) {
        api_bad_request(resp, "final_status", "final_status must be one of Compliant, "
                                              "Non-Compliant, Partially Compliant, Pending");
        return false;
    }
    s = md_req_query(req, "has_feedback");
    if (s) {
        if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0) {
            api_bad_request(resp, "has_feedback", "has_feedback must be true or false");
            return false;
        }
        f->has_feedback = s[0] == 't';
    }
    s = md_req_query(req, "domain");
    if (s) {
        struct md_error err;
        if (md_domain_clean(s, f->domain, &err) != MD_OK) {
            md_resp_from_error(resp, &err);
            return false;
        }
    }
    return api_query_int(req, resp, "limit", 1, 1000, 50, limit);
}

void api_stm_list(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    struct md_stm_filter f;
    int64_t limit;
    if (!parse_list_query(req, resp, &f, &limit))
        return;
    struct md_buf fj;
    md_buf_init(&fj, 4096);
    if (filters_json(&f, &fj) != MD_OK) {
        md_buf_release(&fj);
        api_oom(req, resp);
        return;
    }
    uint64_t after = 0;
    const char *cursor = md_req_query(req, "cursor");
    if (cursor) {
        char payload[MD_CURSOR_PAYLOAD_MAX + 1];
        char *end;
        if (!md_cursor_decode("stm", cursor, fj.data, payload) ||
            (after = strtoull(payload, &end, 10)) == 0 || *end) {
            md_buf_release(&fj);
            api_bad_request(resp, "cursor", "cursor was not issued for this listing");
            return;
        }
    }
    struct md_stm_page page;
    memset(&page, 0, sizeof(page));
    struct md_error err;
    md_error_clear(&err);
    if (app->stm->ops->list(app->stm, &f, (size_t)limit, after, req->now_ms, &page, &err) !=
        MD_OK) {
        md_buf_release(&fj);
        api_fail(req, resp, &err);
        return;
    }
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = md_buf_puts(&b, "{\"entries\":[");
    for (size_t i = 0; st == MD_OK && i < page.count; i++) {
        if (i)
            st = md_buf_putc(&b, ',');
        if (st == MD_OK)
            st = md_buf_append(&b, page.items[i].json, page.items[i].json_len);
    }
    if (st == MD_OK)
        st = md_buf_printf(&b, "],\"count\":%zu,\"next_cursor\":", page.count);
    if (st == MD_OK && page.next_seq) {
        char payload[32], next[MD_CURSOR_MAX + 1];
        snprintf(payload, sizeof(payload), "%llu", (unsigned long long)page.next_seq);
        md_cursor_encode("stm", payload, fj.data, next);
        st = md_buf_printf(&b, "\"%s\"", next);
    } else if (st == MD_OK) {
        st = md_buf_puts(&b, "null");
    }
    if (st == MD_OK)
        st = md_buf_printf(&b, ",\"filters\":%s}", fj.data);
    if (st == MD_OK)
        st = md_resp_success_raw(resp, 200, "STM entries listed", b.data, b.len);
    md_buf_release(&b);
    md_buf_release(&fj);
    md_stm_page_release(&page);
    if (st != MD_OK)
        api_oom(req, resp);
}

static enum md_status parse_patch(json_t *body, struct md_stm_patch *p, struct md_error *err)
{
    static const char *const allowed[] = {"requirement_text", "initial_assessment", "final_status",
                                          NULL};
    memset(p, 0, sizeof(*p));
    p->status = MD_VERDICT_NONE;
    p->final_status = MD_VERDICT_NONE;
    json_t *ia = NULL;
    enum md_status st = md_json_only(body, allowed, NULL, err);
    if (st == MD_OK)
        st = md_json_text(body, "requirement_text", NULL, false, MD_TEXT_MAX,
                          &p->requirement_text, err);
    if (st == MD_OK)
        st = md_json_object(body, "initial_assessment", NULL, false, &ia, err);
    if (st == MD_OK && ia) {
        st = md_json_only(ia, assessment_fields, "initial_assessment", err);
        if (st == MD_OK)
            st = md_json_verdict(ia, "status", "initial_assessment", false, false, &p->status,
                                 &p->set_status, err);
        if (st == MD_OK)
            st = md_json_text(ia, "rationale", "initial_assessment", false, MD_TEXT_MAX,
                              &p->rationale, err);
        if (st == MD_OK)
            st = md_json_text(ia, "recommendation", "initial_assessment", false, MD_TEXT_MAX,
                              &p->recommendation, err);
    }
    if (st == MD_OK)
        st = md_json_verdict(body, "final_status", NULL, false, true, &p->final_status,
                             &p->set_final, err);
    return st;
}

void api_stm_patch(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    const char *id;
    if (!api_query_only(req, resp, no_query) || !path_scenario_id(req, resp, &id))
        return;
    struct md_stm_patch p;
    struct md_error err;
    md_error_clear(&err);
    if (parse_patch(req->body, &p, &err) != MD_OK) {
        md_resp_from_error(resp, &err);
        return;
    }
    struct md_stm_view v;
    memset(&v, 0, sizeof(v));
    unsigned changed = 0;
    uint64_t mark = api_stm_mark(req, id);
    if (app->stm->ops->patch(app->stm, id, &p, req->now_ms, &v, &changed, &err) != MD_OK) {
        if (md_status_http(err.code) >= 500) /* the write may still have applied */
            api_invalidate_stm(req, id, false);
        if (err.code == MD_E_NOTFOUND)
            md_error_set(&err, MD_E_NOTFOUND, "no STM entry '%s'", id);
        api_fail(req, resp, &err);
        return;
    }
    if (changed)
        updated(req, id, mark, &v);
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{MD_STM_F_REQUIREMENT_TEXT, "requirement_text"},
                 {MD_STM_F_STATUS, "initial_assessment.status"},
                 {MD_STM_F_RATIONALE, "initial_assessment.rationale"},
                 {MD_STM_F_RECOMMENDATION, "initial_assessment.recommendation"},
                 {MD_STM_F_FINAL_STATUS, "final_status"}};
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = md_buf_puts(&b, "{\"stm_entry\":");
    if (st == MD_OK)
        st = md_buf_append(&b, v.json, v.json_len);
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"updated_fields\":[");
    bool first = true;
    for (size_t i = 0; st == MD_OK && i < MD_ARRAY_LEN(names); i++)
        if (changed & names[i].bit) {
            st = md_buf_printf(&b, "%s\"%s\"", first ? "" : ",", names[i].name);
            first = false;
        }
    if (st == MD_OK)
        st = md_buf_puts(&b, "]}");
    if (st == MD_OK)
        st = md_resp_success_raw(resp, 200, changed ? "STM entry updated" : "nothing changed",
                                 b.data, b.len);
    md_buf_release(&b);
    md_stm_view_release(&v);
    if (st != MD_OK)
        api_oom(req, resp);
}

void api_stm_feedback(struct md_req *req, struct md_resp *resp)
{
    static const char *const allowed[] = {"decision", "rationale", "suggestion", "final_status",
                                          NULL};
    struct md_app *app = api_app(req);
    const char *id;
    if (!api_query_only(req, resp, no_query) || !path_scenario_id(req, resp, &id))
        return;
    struct md_stm_feedback fb;
    memset(&fb, 0, sizeof(fb));
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = md_json_only(req->body, allowed, NULL, &err);
    if (st == MD_OK)
        st = md_json_text(req->body, "decision", NULL, true, MD_TEXT_MAX, &fb.decision, &err);
    if (st == MD_OK)
        st = md_json_text(req->body, "rationale", NULL, true, MD_TEXT_MAX, &fb.rationale, &err);
    if (st == MD_OK)
        st = md_json_text(req->body, "suggestion", NULL, true, MD_TEXT_MAX, &fb.suggestion,
                          &err);
    if (st == MD_OK)
        st = md_json_verdict(req->body, "final_status", NULL, false, true, &fb.final_status,
                             &fb.set_final, &err);
    if (st != MD_OK) {
        md_resp_from_error(resp, &err);
        return;
    }
    struct md_stm_view v;
    memset(&v, 0, sizeof(v));
    uint64_t mark = api_stm_mark(req, id);
    if (app->stm->ops->feedback(app->stm, id, &fb, req->now_ms, &v, &err) != MD_OK) {
        if (md_status_http(err.code) >= 500) /* the write may still have applied */
            api_invalidate_stm(req, id, false);
        if (err.code == MD_E_NOTFOUND)
            md_error_set(&err, MD_E_NOTFOUND, "no STM entry '%s'", id);
        api_fail(req, resp, &err);
        return;
    }
    updated(req, id, mark, &v);
    answer_entry(req, resp, 200, "human feedback recorded", &v);
    md_stm_view_release(&v);
}

void api_stm_ttl(struct md_req *req, struct md_resp *resp)
{
    static const char *const allowed[] = {"ttl_seconds", NULL};
    struct md_app *app = api_app(req);
    const char *id;
    if (!api_query_only(req, resp, no_query) || !path_scenario_id(req, resp, &id))
        return;
    int64_t ttl = 0;
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = md_json_only(req->body, allowed, NULL, &err);
    if (st == MD_OK)
        st = md_json_int(req->body, "ttl_seconds", NULL, true, ttl_min(req), TTL_MAX_SECONDS,
                         &ttl, NULL, &err);
    if (st != MD_OK) {
        md_resp_from_error(resp, &err);
        return;
    }
    int64_t expires_ms = 0;
    if (app->stm->ops->set_ttl(app->stm, id, ttl, req->now_ms, &expires_ms, &err) != MD_OK) {
        if (md_status_http(err.code) >= 500) /* the write may still have applied */
            api_invalidate_stm(req, id, true);
        if (err.code == MD_E_NOTFOUND)
            md_error_set(&err, MD_E_NOTFOUND, "no STM entry '%s'", id);
        api_fail(req, resp, &err);
        return;
    }
    api_invalidate_stm(req, id, true);
    char iso[MD_ISO8601_LEN], data[MD_SCENARIO_ID_MAX + 96];
    md_iso8601(expires_ms, iso);
    int n = snprintf(data, sizeof(data), "{\"scenario_id\":\"%s\",\"expires_at\":\"%s\"}", id, iso);
    if (md_resp_success_raw(resp, 200, "TTL updated", data, (size_t)n) != MD_OK)
        api_oom(req, resp);
}

void api_stm_delete(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    const char *id;
    if (!api_query_only(req, resp, no_query) || !path_scenario_id(req, resp, &id))
        return;
    struct md_error err;
    md_error_clear(&err);
    if (app->stm->ops->del(app->stm, id, req->now_ms, &err) != MD_OK) {
        if (md_status_http(err.code) >= 500) /* the write may still have applied */
            api_invalidate_stm(req, id, true);
        if (err.code == MD_E_NOTFOUND)
            md_error_set(&err, MD_E_NOTFOUND, "no STM entry '%s'", id);
        api_fail(req, resp, &err);
        return;
    }
    api_invalidate_stm(req, id, true);
    resp->status = 204;
}

void api_stm_stats(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    static const char *const none[] = {NULL};
    if (!api_query_only(req, resp, none))
        return;
    struct md_stm_stats s;
    memset(&s, 0, sizeof(s));
    struct md_error err;
    md_error_clear(&err);
    if (app->stm->ops->stats(app->stm, req->now_ms, &s, &err) != MD_OK) {
        api_fail(req, resp, &err);
        return;
    }
    struct md_buf b;
    md_buf_init(&b, 4096);
    enum md_status st = md_buf_printf(
        &b,
        "{\"total_entries\":%lld,\"entries_with_feedback\":%lld,\"entries_without_feedback\":%lld,"
        "\"status_breakdown\":{",
        (long long)s.total, (long long)s.with_feedback, (long long)(s.total - s.with_feedback));
    for (int i = 0; st == MD_OK && i < MD_VERDICT_COUNT; i++)
        st = md_buf_printf(&b, "%s\"%s\":%lld", i ? "," : "", md_verdict_name(i),
                           (long long)s.by_status[i]);
    if (st == MD_OK)
        st = md_buf_puts(&b, "},\"final_status_breakdown\":{");
    for (int i = 0; st == MD_OK && i < MD_VERDICT_COUNT; i++)
        st = md_buf_printf(&b, "%s\"%s\":%lld", i ? "," : "", md_verdict_name(i),
                           (long long)s.by_final[i]);
    if (st == MD_OK)
        st = md_buf_puts(&b, "}}");
    if (st == MD_OK)
        st = md_resp_success_raw(resp, 200, "STM statistics", b.data, b.len);
    md_buf_release(&b);
    if (st != MD_OK)
        api_oom(req, resp);
}
