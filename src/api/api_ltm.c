/*
 * api_ltm.c — long-term memory routes (spec §4) and STM promotion (§3).
 *
 * Writes that link rules to scenarios touch both tiers: the handler reads
 * the live STM entries first (one batch call) to snapshot their evidence
 * onto the Scenario nodes, commits the LTM transaction, and then adds the
 * rule id to the entries' stm_ltm_links sets (one batch call). LTM is the
 * source of truth for derivation; if the link step fails after the LTM
 * commit, the rule stands (its evidence is already snapshotted), the
 * failure is logged with the request id, and /v1/integrity reports nothing
 * lost — only the convenience set lags until the rule is linked again.
 */
#include "memoryd/compat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/cursor.h"
#include "memoryd/json_body.h"
#include "memoryd/log.h"
#include "memoryd/ltm.h"
#include "memoryd/stm.h"
#include "memoryd/text.h"

#define MAX_SOURCES 100
#define MAX_QUERY_CONCEPTS 20
#define MAX_Q_CHARS 1000
#define MAX_WORDS 32

/* ---- validated inputs ---------------------------------------------------------- */

/* Concept names of one request (owned copies, trimmed, with fold keys). */
struct concepts {
    struct md_concept *items;
    size_t n;
};

static void concepts_release(struct concepts *c)
{
    for (size_t i = 0; c->items && i < c->n; i++) {
        free(c->items[i].name);
        free(c->items[i].key);
    }
    free(c->items);
    c->items = NULL;
    c->n = 0;
}

/* Trim ASCII whitespace around s into a new string. */
static char *trimmed_dup(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    return strndup(s, n);
}

/* Spec §2 "Concept names": 1–100 characters after trimming, no control
 * characters, no case-insensitive duplicates, at most max. */
static enum md_status parse_concepts(const json_t *arr, const char *field, size_t max,
                                     bool allow_empty, struct concepts *out, struct md_error *err)
{
    out->items = NULL;
    out->n = 0;
    if (!json_is_array(arr))
        return md_error_set_field(err, MD_E_INVAL, field, "field '%s' must be an array of "
                                  "concept names", field);
    size_t n = json_array_size(arr);
    if (n == 0 && !allow_empty)
        return md_error_set_field(err, MD_E_INVAL, field, "field '%s' needs at least one "
                                  "concept", field);
    if (n > max)
        return md_error_set_field(err, MD_E_INVAL, field, "field '%s' has more than %zu "
                                  "concepts", field, max);
    out->items = calloc(n ? n : 1, sizeof(*out->items));
    if (!out->items)
        return md_error_set(err, MD_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        char f[MD_ERROR_FIELD_MAX];
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (!json_is_string(v)) {
            concepts_release(out);
            return md_error_set_field(err, MD_E_INVAL, f, "concept names must be strings");
        }
        char *name = trimmed_dup(json_string_value(v));
        if (!name) {
            concepts_release(out);
            return md_error_set(err, MD_E_NOMEM, "out of memory");
        }
        size_t len = strlen(name), cps = md_utf8_count(name, len);
        if (cps == 0 || cps > MD_CONCEPT_NAME_MAX || md_str_has_ctl(name, len)) {
            free(name);
            concepts_release(out);
            return md_error_set_field(err, MD_E_INVAL, f, "a concept name needs 1 to %d "
                                      "characters after trimming and no control characters",
                                      MD_CONCEPT_NAME_MAX);
        }
        char key[MD_CONCEPT_KEY_MAX + 1];
        md_concept_key(name, key);
        for (size_t k = 0; k < out->n; k++)
            if (strcmp(out->items[k].key, key) == 0) {
                free(name);
                concepts_release(out);
                return md_error_set_field(err, MD_E_INVAL, f, "duplicate concept (concept "
                                          "names are compared case-insensitively)");
            }
        out->items[out->n].name = name;
        out->items[out->n].key = strdup(key);
        out->n++;
        if (!out->items[out->n - 1].key) {
            concepts_release(out);
            return md_error_set(err, MD_E_NOMEM, "out of memory");
        }
    }
    return MD_OK;
}

/* Scenario ids: an array of valid, distinct ids (borrowed from the JSON). */
static enum md_status parse_sources(const json_t *arr, const char *field, bool allow_empty,
                                    const char **ids, size_t *n, struct md_error *err)
{
    *n = 0;
    if (!json_is_array(arr))
        return md_error_set_field(err, MD_E_INVAL, field, "field '%s' must be an array of "
                                  "scenario ids", field);
    size_t count = json_array_size(arr);
    if (count == 0 && !allow_empty)
        return md_error_set_field(err, MD_E_INVAL, field, "field '%s' needs at least one "
                                  "scenario id", field);
    if (count > MAX_SOURCES)
        return md_error_set_field(err, MD_E_INVAL, field, "field '%s' has more than %d ids",
                                  field, MAX_SOURCES);
    for (size_t i = 0; i < count; i++) {
        const json_t *v = json_array_get(arr, i);
        char f[MD_ERROR_FIELD_MAX];
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        const char *id = json_is_string(v) ? json_string_value(v) : NULL;
        if (!id || !md_scenario_id_valid(id))
            return md_error_set_field(err, MD_E_INVAL, f, "invalid scenario_id: expected "
                                      "{domain}_r{N}_{concept}");
        for (size_t k = 0; k < *n; k++)
            if (strcmp(ids[k], id) == 0)
                return md_error_set_field(err, MD_E_INVAL, f, "duplicate scenario_id '%s'", id);
        ids[(*n)++] = id;
    }
    return MD_OK;
}

/* rule_id, or policy (+ key_concept, else the first concept) -> id or prefix. */
static enum md_status parse_rule_identity(const json_t *body, const struct concepts *concepts,
                                          char rule_id[MD_RULE_ID_MAX + 1],
                                          char prefix[MD_RULE_ID_MAX + 1],
                                          char policy[MD_POLICY_MAX + 1], struct md_error *err)
{
    const char *given = NULL, *pol = NULL, *kc = NULL;
    rule_id[0] = prefix[0] = '\0';
    enum md_status st = md_json_short(body, "rule_id", NULL, false, 1024, &given, err);
    if (st == MD_OK)
        st = md_json_short(body, "policy", NULL, false, 256, &pol, err);
    if (st == MD_OK)
        st = md_json_short(body, "key_concept", NULL, false, 256, &kc, err);
    if (st != MD_OK)
        return st;
    if (given) {
        if (pol || kc)
            return md_error_set_field(err, MD_E_INVAL, "rule_id", "give either rule_id or "
                                      "policy (with key_concept), not both");
        if (!md_rule_id_valid(given))
            return md_error_set_field(err, MD_E_INVAL, "rule_id", "invalid rule_id: expected "
                                      "{POLICY}_{Concept}[_{Qualifier}…]_{NN}");
        snprintf(rule_id, MD_RULE_ID_MAX + 1, "%s", given);
        md_rule_id_policy(rule_id, policy);
        return MD_OK;
    }
    if (!pol)
        return md_error_set_field(err, MD_E_INVAL, "rule_id", "either rule_id or policy is "
                                  "required");
    const char *concept = kc ? kc : (concepts->n ? concepts->items[0].name : "");
    st = md_rule_id_prefix(pol, concept, prefix, err);
    if (st != MD_OK)
        return st;
    md_rule_id_policy(prefix, policy);
    return MD_OK;
}

/* ---- evidence from STM ------------------------------------------------------------ */

/* Live STM entries of ids (views) and snapshots of those that exist. */
struct evidence {
    struct md_stm_view *views; /* n, zeroed where missing */
    struct md_snapshot *snaps; /* n_snaps */
    const char **live_ids;     /* ids with a live entry (borrowed) */
    size_t n, n_snaps;
};

static void evidence_release(struct evidence *e)
{
    for (size_t i = 0; e->views && i < e->n; i++)
        md_stm_view_release(&e->views[i]);
    free(e->views);
    free(e->snaps);
    free(e->live_ids);
    memset(e, 0, sizeof(*e));
}

static enum md_status gather_evidence(struct md_app *app, const char *const *ids, size_t n,
                                      int64_t now_ms, struct evidence *e, struct md_error *err)
{
    memset(e, 0, sizeof(*e));
    e->n = n;
    e->views = calloc(n ? n : 1, sizeof(*e->views));
    e->snaps = calloc(n ? n : 1, sizeof(*e->snaps));
    e->live_ids = calloc(n ? n : 1, sizeof(*e->live_ids));
    if (!e->views || !e->snaps || !e->live_ids) {
        evidence_release(e);
        return md_error_set(err, MD_E_NOMEM, "out of memory");
    }
    if (n == 0)
        return MD_OK;
    enum md_status st = app->stm->ops->get_many(app->stm, ids, n, now_ms, e->views, err);
    if (st != MD_OK) {
        evidence_release(e);
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        const struct md_stm_view *v = &e->views[i];
        if (!v->json)
            continue;
        struct md_snapshot *s = &e->snaps[e->n_snaps++];
        s->scenario_id = ids[i];
        s->entry_json = v->json;
        md_sha256_hex(v->json, v->json_len, s->sha256);
        s->has_feedback = v->has_feedback;
        s->final_status = v->final_status;
        s->captured_ms = now_ms;
        e->live_ids[e->n_snaps - 1] = ids[i];
    }
    return MD_OK;
}

/* Add rule_id to the link sets of the live sources; a failure is logged only. */
static void link_sources(struct md_req *req, const char *rule_id, const struct evidence *e)
{
    struct md_app *app = api_app(req);
    if (e->n_snaps == 0)
        return;
    struct md_error err;
    md_error_clear(&err);
    if (app->stm->ops->links_add(app->stm, rule_id, e->live_ids, e->n_snaps, req->now_ms, &err) !=
        MD_OK)
        md_log_write(MD_LOG_ERROR, "api", req->request_id,
                     "rule '%s' stored but its stm_ltm_links were not updated: %s%s%s", rule_id,
                     err.msg, err.detail[0] ? ": " : "", err.detail);
}

/* ---- path helpers -------------------------------------------------------------------- */

static bool path_rule_id(struct md_req *req, struct md_resp *resp, const char **out)
{
    const char *id = req->match.params[0];
    if (!req->match.param_valid[0] || !md_rule_id_valid(id)) {
        api_bad_request(resp, "rule_id", "invalid rule_id: expected "
                                         "{POLICY}_{Concept}[_{Qualifier}…]_{NN}");
        return false;
    }
    *out = id;
    return true;
}

static void not_found_rule(struct md_error *err, const char *id)
{
    if (err->code == MD_E_NOTFOUND)
        md_error_set(err, MD_E_NOTFOUND, "no rule '%s'", id);
}

static bool no_query(struct md_req *req, struct md_resp *resp)
{
    static const char *const none[] = {NULL};
    return api_query_only(req, resp, none);
}

/* ---- create / promote ------------------------------------------------------------------ */

/* Everything a create needs, parsed; owns the concept copies. */
struct create_input {
    struct concepts concepts;
    const char *sources[MAX_SOURCES];
    size_t n_sources;
    char rule_id[MD_RULE_ID_MAX + 1];
    char prefix[MD_RULE_ID_MAX + 1];
    char policy[MD_POLICY_MAX + 1];
    const char *rule_text;
    double confidence;
};

static enum md_status parse_rule_body(struct md_req *req, bool with_sources,
                                      struct create_input *in, struct md_error *err)
{
    static const char *const allowed_create[] = {"rule_text", "related_concepts",
                                                 "source_scenario_ids", "rule_id", "policy",
                                                 "key_concept", "confidence_score", NULL};
    static const char *const allowed_promote[] = {"rule_text", "related_concepts", "rule_id",
                                                  "policy", "key_concept", "confidence_score",
                                                  NULL};
    json_t *body = req->body;
    size_t max_concepts = (size_t)api_app(req)->cfg->memory_max_related_concepts;
    memset(in, 0, sizeof(*in));
    in->confidence = 0.5;
    enum md_status st =
        md_json_only(body, with_sources ? allowed_create : allowed_promote, NULL, err);
    if (st == MD_OK)
        st = md_json_text(body, "rule_text", NULL, true, MD_TEXT_MAX, &in->rule_text, err);
    json_t *rc = json_object_get(body, "related_concepts");
    if (st == MD_OK && !rc)
        st = md_error_set_field(err, MD_E_INVAL, "related_concepts",
                                "field 'related_concepts' is required");
    if (st == MD_OK)
        st = parse_concepts(rc, "related_concepts", max_concepts, false, &in->concepts, err);
    if (st == MD_OK && with_sources) {
        json_t *src = json_object_get(body, "source_scenario_ids");
        if (!src)
            st = md_error_set_field(err, MD_E_INVAL, "source_scenario_ids",
                                    "field 'source_scenario_ids' is required");
        else
            st = parse_sources(src, "source_scenario_ids", false, in->sources, &in->n_sources,
                               err);
    }
    if (st == MD_OK)
        st = md_json_number(body, "confidence_score", NULL, false, 0.0, 1.0, &in->confidence,
                            NULL, err);
    if (st == MD_OK)
        st = parse_rule_identity(body, &in->concepts, in->rule_id, in->prefix, in->policy, err);
    return st;
}

/* Shared tail of create and promote: evidence, LTM create, links, 201. */
static void create_rule(struct md_req *req, struct md_resp *resp, struct create_input *in)
{
    struct md_app *app = api_app(req);
    struct md_error err;
    md_error_clear(&err);
    struct evidence ev;
    if (gather_evidence(app, in->sources, in->n_sources, req->now_ms, &ev, &err) != MD_OK) {
        api_fail(req, resp, &err);
        return;
    }
    struct md_rule_new rn = {
        .rule_id = in->rule_id[0] ? in->rule_id : NULL,
        .id_prefix = in->rule_id[0] ? NULL : in->prefix,
        .policy = in->policy,
        .rule_text = in->rule_text,
        .concepts = in->concepts.items,
        .n_concepts = in->concepts.n,
        .sources = in->sources,
        .n_sources = in->n_sources,
        .snapshots = ev.snaps,
        .n_snapshots = ev.n_snaps,
        .confidence = in->confidence,
    };
    struct md_rule rule;
    memset(&rule, 0, sizeof(rule));
    if (app->ltm->ops->create(app->ltm, &rn, req->now_ms, &rule, &err) != MD_OK) {
        if (md_status_http(err.code) >= 500) /* may have committed */
            api_invalidate_ltm(req, ev.live_ids, ev.n_snaps);
        if (err.code == MD_E_CONFLICT)
            md_error_set_field(&err, MD_E_CONFLICT, "rule_id", "a rule with id '%s' already "
                               "exists", in->rule_id);
        evidence_release(&ev);
        api_fail(req, resp, &err);
        return;
    }
    link_sources(req, rule.rule_id, &ev);
    api_invalidate_ltm(req, ev.live_ids, ev.n_snaps);
    evidence_release(&ev);
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = md_buf_puts(&b, "{\"ltm_rule\":");
    if (st == MD_OK)
        st = api_put_rule(&b, &rule, false);
    if (st == MD_OK)
        st = md_buf_putc(&b, '}');
    char location[MD_RULE_ID_MAX + 32];
    snprintf(location, sizeof(location), "/v1/ltm/rules/%s", rule.rule_id);
    md_rule_release(&rule);
    api_answer_buf(req, resp, 201, "rule created", &b, st);
    if (resp->status == 201)
        md_resp_header(resp, "Location", location);
}

void api_ltm_create(struct md_req *req, struct md_resp *resp)
{
    if (!no_query(req, resp))
        return;
    struct create_input in;
    struct md_error err;
    md_error_clear(&err);
    if (parse_rule_body(req, true, &in, &err) != MD_OK) {
        concepts_release(&in.concepts);
        md_resp_from_error(resp, &err);
        return;
    }
    create_rule(req, resp, &in);
    concepts_release(&in.concepts);
}

void api_stm_promote(struct md_req *req, struct md_resp *resp)
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
    struct create_input in;
    struct md_error err;
    md_error_clear(&err);
    if (parse_rule_body(req, false, &in, &err) != MD_OK) {
        concepts_release(&in.concepts);
        md_resp_from_error(resp, &err);
        return;
    }
    in.sources[0] = id;
    in.n_sources = 1;
    /* The entry must exist and carry human feedback: promotion turns an
     * expert's correction into a rule, never an unreviewed assessment. */
    struct md_stm_view v;
    memset(&v, 0, sizeof(v));
    if (app->stm->ops->get(app->stm, id, req->now_ms, &v, &err) != MD_OK) {
        if (err.code == MD_E_NOTFOUND)
            md_error_set(&err, MD_E_NOTFOUND, "no STM entry '%s'", id);
        concepts_release(&in.concepts);
        api_fail(req, resp, &err);
        return;
    }
    bool has_feedback = v.has_feedback;
    md_stm_view_release(&v);
    if (!has_feedback) {
        concepts_release(&in.concepts);
        md_resp_error(resp, 409, "conflict", "the STM entry has no human feedback to promote",
                      "human_feedback");
        return;
    }
    create_rule(req, resp, &in);
    concepts_release(&in.concepts);
}

/* ---- read one rule ------------------------------------------------------------------------ */

/* The expiry of each source's live STM entry, 0 for none (one batch STM call). */
static enum md_status sources_alive(struct md_req *req, const struct md_rule_detail *d,
                                    int64_t **expires_out, struct md_error *err)
{
    size_t n = d->n_sources;
    const char **ids = calloc(n ? n : 1, sizeof(*ids));
    int64_t *expires = calloc(n ? n : 1, sizeof(*expires));
    if (!ids || !expires) {
        free(ids);
        free(expires);
        return md_error_set(err, MD_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = d->sources[i].scenario_id;
    struct md_stm *stm = api_app(req)->stm;
    enum md_status st = n ? stm->ops->alive_many(stm, ids, n, req->now_ms, expires, err) : MD_OK;
    free(ids);
    if (st != MD_OK) {
        free(expires);
        return st;
    }
    *expires_out = expires;
    return MD_OK;
}

/* in_stm[i] for the rule's sources (one batch STM call). */
static enum md_status sources_in_stm(struct md_req *req, const struct md_rule_detail *d,
                                     struct evidence *e, struct md_error *err)
{
    const char **ids = calloc(d->n_sources ? d->n_sources : 1, sizeof(*ids));
    if (!ids)
        return md_error_set(err, MD_E_NOMEM, "out of memory");
    for (size_t i = 0; i < d->n_sources; i++)
        ids[i] = d->sources[i].scenario_id;
    enum md_status st = gather_evidence(api_app(req), ids, d->n_sources, req->now_ms, e, err);
    free(ids);
    return st;
}

void api_ltm_get(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    const char *id;
    if (!no_query(req, resp) || !path_rule_id(req, resp, &id))
        return;
    struct api_cache_put put;
    api_cache_put_init(&put, req, "ltm");
    if (put.key[0] && api_cache_serve(req, resp, put.key, api_route_message(req)))
        return;
    struct md_rule_detail d;
    memset(&d, 0, sizeof(d));
    struct md_error err;
    md_error_clear(&err);
    if (app->ltm->ops->get(app->ltm, id, &d, &err) != MD_OK) {
        not_found_rule(&err, id);
        api_fail(req, resp, &err);
        return;
    }
    int64_t *alive = NULL; /* expiry of each source's STM entry, 0: not in STM */
    if (sources_alive(req, &d, &alive, &err) != MD_OK) {
        md_rule_detail_release(&d);
        api_fail(req, resp, &err);
        return;
    }
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = md_buf_puts(&b, "{\"ltm_rule\":");
    if (st == MD_OK)
        st = api_put_rule(&b, &d.rule, false);
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"traceability\":{\"related_concepts\":");
    if (st == MD_OK)
        st = api_put_concept_names(&b, &d.rule);
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"source_scenarios\":[");
    for (size_t i = 0; st == MD_OK && i < d.n_sources; i++) {
        st = md_buf_printf(&b, "%s{\"scenario_id\":\"%s\",\"in_stm\":%s,\"has_snapshot\":%s}",
                           i ? "," : "", d.sources[i].scenario_id,
                           alive[i] ? "true" : "false",
                           d.sources[i].has_snapshot ? "true" : "false");
    }
    if (st == MD_OK)
        st = md_buf_puts(&b, "],\"governing_policies\":");
    if (st == MD_OK)
        st = api_put_strv(&b, d.policies, d.n_policies);
    if (st == MD_OK)
        st = md_buf_puts(&b, "}}");
    /* in_stm flips when a source entry is created, deleted or expires */
    api_cache_tag_sources(&put, "sx:", (const char *const *)d.rule.sources, d.rule.n_sources,
                          "sx:*");
    for (size_t i = 0; i < d.n_sources; i++)
        if (alive[i])
            api_cache_expire_with(&put, req->now_ms, alive[i]);
    free(alive);
    md_rule_detail_release(&d);
    api_answer_cached(req, resp, api_route_message(req), &b, st, &put);
}

/* ---- patch / delete --------------------------------------------------------------------------- */

void api_ltm_patch(struct md_req *req, struct md_resp *resp)
{
    static const char *const allowed[] = {"rule_text", "confidence_score", "related_concepts",
                                          "add_source_scenario_ids", NULL};
    struct md_app *app = api_app(req);
    const char *id;
    if (!no_query(req, resp) || !path_rule_id(req, resp, &id))
        return;
    struct md_rule_patch p;
    memset(&p, 0, sizeof(p));
    struct concepts concepts = {NULL, 0};
    const char *add[MAX_SOURCES];
    struct md_error err;
    md_error_clear(&err);
    json_t *body = req->body;
    enum md_status st = md_json_only(body, allowed, NULL, &err);
    if (st == MD_OK)
        st = md_json_text(body, "rule_text", NULL, false, MD_TEXT_MAX, &p.rule_text, &err);
    if (st == MD_OK)
        st = md_json_number(body, "confidence_score", NULL, false, 0.0, 1.0, &p.confidence,
                            &p.set_confidence, &err);
    json_t *rc = json_object_get(body, "related_concepts");
    if (st == MD_OK && rc) {
        st = parse_concepts(rc, "related_concepts",
                            (size_t)app->cfg->memory_max_related_concepts, false, &concepts, &err);
        p.set_concepts = true;
        p.concepts = concepts.items;
        p.n_concepts = concepts.n;
    }
    json_t *as = json_object_get(body, "add_source_scenario_ids");
    if (st == MD_OK && as)
        st = parse_sources(as, "add_source_scenario_ids", true, add, &p.n_add_sources, &err);
    if (st != MD_OK) {
        concepts_release(&concepts);
        md_resp_from_error(resp, &err);
        return;
    }
    p.add_sources = add;
    struct evidence ev;
    if (gather_evidence(app, add, p.n_add_sources, req->now_ms, &ev, &err) != MD_OK) {
        concepts_release(&concepts);
        api_fail(req, resp, &err);
        return;
    }
    p.snapshots = ev.snaps;
    p.n_snapshots = ev.n_snaps;
    struct md_rule rule;
    memset(&rule, 0, sizeof(rule));
    bool changed = false;
    if (app->ltm->ops->patch(app->ltm, id, &p, req->now_ms, &rule, &changed, &err) != MD_OK) {
        if (md_status_http(err.code) >= 500)
            api_invalidate_ltm(req, ev.live_ids, ev.n_snaps);
        not_found_rule(&err, id);
        evidence_release(&ev);
        concepts_release(&concepts);
        api_fail(req, resp, &err);
        return;
    }
    link_sources(req, id, &ev);
    /* snapshots may have been refreshed even when the rule did not change */
    api_invalidate_ltm(req, ev.live_ids, ev.n_snaps);
    evidence_release(&ev);
    concepts_release(&concepts);
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    st = md_buf_puts(&b, "{\"ltm_rule\":");
    if (st == MD_OK)
        st = api_put_rule(&b, &rule, false);
    if (st == MD_OK)
        st = md_buf_printf(&b, ",\"changed\":%s}", changed ? "true" : "false");
    md_rule_release(&rule);
    api_answer_buf(req, resp, 200, changed ? "rule updated" : "nothing changed", &b, st);
}

void api_ltm_delete(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    const char *id;
    if (!no_query(req, resp) || !path_rule_id(req, resp, &id))
        return;
    char **sources = NULL;
    size_t n = 0;
    struct md_error err;
    md_error_clear(&err);
    if (app->ltm->ops->del(app->ltm, id, &sources, &n, &err) != MD_OK) {
        if (md_status_http(err.code) >= 500) {
            const char *all[] = {"ltm", "se:*"};
            api_invalidate(req, all, 2); /* which entries were linked is unknown */
        }
        not_found_rule(&err, id);
        api_fail(req, resp, &err);
        return;
    }
    if (n > 0 && app->stm->ops->links_remove(app->stm, id, (const char *const *)sources, n,
                                             &err) != MD_OK)
        md_log_write(MD_LOG_ERROR, "api", req->request_id,
                     "rule '%s' deleted but not removed from stm_ltm_links: %s%s%s", id, err.msg,
                     err.detail[0] ? ": " : "", err.detail);
    api_invalidate_ltm(req, (const char *const *)sources, n);
    for (size_t i = 0; i < n; i++)
        free(sources[i]);
    free(sources);
    resp->status = 204;
}

/* ---- search ------------------------------------------------------------------------------------ */

struct search_input {
    struct md_rule_query q;
    char words_buf[MAX_Q_CHARS * 4 + MAX_WORDS + 1];
    const char *words[MAX_WORDS];
    char concept_keys[MAX_QUERY_CONCEPTS][MD_CONCEPT_KEY_MAX + 1];
    const char *concept_ptrs[MAX_QUERY_CONCEPTS];
    char policy[MD_POLICY_MAX + 1];
    struct md_buf binding; /* canonical filters, binds the cursor */
};

static bool parse_policy_filter(const char *s, char out[MD_POLICY_MAX + 1])
{
    size_t n = strlen(s);
    if (n == 0 || n > MD_POLICY_MAX || !((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
        out[i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    out[n] = '\0';
    return true;
}

static bool parse_concept_filter(struct md_resp *resp, const char *s, struct search_input *in)
{
    size_t n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[512];
        if (len >= sizeof(one) || n == MAX_QUERY_CONCEPTS) {
            api_bad_request(resp, "concepts", "concepts takes at most %d names of at most %d "
                                              "characters", MAX_QUERY_CONCEPTS,
                            MD_CONCEPT_NAME_MAX);
            return false;
        }
        memcpy(one, p, len);
        one[len] = '\0';
        char *t = trimmed_dup(one);
        if (!t)
            return false;
        size_t tl = strlen(t), cps = md_utf8_count(t, tl);
        if (cps == 0 || cps > MD_CONCEPT_NAME_MAX || md_str_has_ctl(t, tl)) {
            free(t);
            api_bad_request(resp, "concepts", "each concept in 'concepts' needs 1 to %d "
                                              "characters", MD_CONCEPT_NAME_MAX);
            return false;
        }
        md_concept_key(t, in->concept_keys[n]);
        free(t);
        in->concept_ptrs[n] = in->concept_keys[n];
        n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    in->q.concept_keys = in->concept_ptrs;
    in->q.n_concepts = n;
    return true;
}

static bool parse_min_confidence(struct md_resp *resp, const char *s, double *out)
{
    char *end;
    double x = strtod(s, &end);
    bool ok = *s && *end == '\0' && x >= 0.0 && x <= 1.0 && strspn(s, "0123456789.") == strlen(s);
    if (!ok) {
        api_bad_request(resp, "min_confidence", "min_confidence must be a decimal number in "
                                                "[0, 1]");
        return false;
    }
    *out = x;
    return true;
}

static bool parse_search(struct md_req *req, struct md_resp *resp, struct search_input *in)
{
    static const char *const allowed[] = {"q",     "concepts", "policy", "min_confidence",
                                          "limit", "cursor",   NULL};
    if (!api_query_only(req, resp, allowed))
        return false;
    const char *q = md_req_query(req, "q");
    if (q) {
        size_t qlen = strlen(q);
        if (md_str_blank(q) || md_utf8_count(q, qlen) > MAX_Q_CHARS) {
            api_bad_request(resp, "q", "q must be non-blank and at most %d characters",
                            MAX_Q_CHARS);
            return false;
        }
        in->q.n_words = md_fulltext_words(q, in->words_buf, sizeof(in->words_buf), in->words,
                                          MAX_WORDS);
        if (in->q.n_words == 0) {
            api_bad_request(resp, "q", "q has no searchable words (letters or digits)");
            return false;
        }
        in->q.words = in->words;
    }
    const char *c = md_req_query(req, "concepts");
    if (c && !parse_concept_filter(resp, c, in))
        return false;
    const char *pol = md_req_query(req, "policy");
    if (pol) {
        if (!parse_policy_filter(pol, in->policy)) {
            api_bad_request(resp, "policy", "policy must be 1 to 16 letters and digits, "
                                            "starting with a letter");
            return false;
        }
        in->q.policy = in->policy;
    }
    const char *mc = md_req_query(req, "min_confidence");
    if (mc) {
        if (!parse_min_confidence(resp, mc, &in->q.min_confidence))
            return false;
        in->q.has_min_confidence = true;
    }
    int64_t limit;
    if (!api_query_int(req, resp, "limit", 1, 100, 10, &limit))
        return false;
    in->q.limit = (size_t)limit;
    /* canonical binding: words, concept keys, policy, min confidence */
    enum md_status st = MD_OK;
    for (size_t i = 0; st == MD_OK && i < in->q.n_words; i++)
        st = md_buf_printf(&in->binding, "w:%s\n", in->words[i]);
    for (size_t i = 0; st == MD_OK && i < in->q.n_concepts; i++)
        st = md_buf_printf(&in->binding, "c:%s\n", in->concept_keys[i]);
    if (st == MD_OK)
        st = md_buf_printf(&in->binding, "p:%s\nm:%.17g\n", in->q.policy ? in->q.policy : "",
                           in->q.has_min_confidence ? in->q.min_confidence : -1.0);
    if (st != MD_OK) {
        api_oom(req, resp);
        return false;
    }
    const char *cursor = md_req_query(req, "cursor");
    if (cursor) {
        char payload[MD_CURSOR_PAYLOAD_MAX + 1];
        char *end;
        unsigned long long off;
        if (!md_cursor_decode("ltm-search", cursor, in->binding.data, payload) ||
            (off = strtoull(payload, &end, 10)) == 0 || *end || off > 1000000) {
            api_bad_request(resp, "cursor", "cursor was not issued for this search");
            return false;
        }
        in->q.offset = (size_t)off;
    }
    return true;
}

void api_ltm_search(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    struct search_input *in = calloc(1, sizeof(*in));
    if (!in) {
        api_oom(req, resp);
        return;
    }
    md_buf_init(&in->binding, 64 * 1024);
    if (!parse_search(req, resp, in)) {
        md_buf_release(&in->binding);
        free(in);
        return;
    }
    struct api_cache_put put;
    api_cache_put_init(&put, req, "ltm");
    if (put.key[0] && api_cache_serve(req, resp, put.key, api_route_message(req))) {
        md_buf_release(&in->binding);
        free(in);
        return;
    }
    struct md_rule_list list;
    memset(&list, 0, sizeof(list));
    struct md_error err;
    md_error_clear(&err);
    if (app->ltm->ops->search(app->ltm, &in->q, &list, &err) != MD_OK) {
        md_buf_release(&in->binding);
        free(in);
        api_fail(req, resp, &err);
        return;
    }
    bool fulltext = in->q.n_words > 0;
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = md_buf_puts(&b, "{\"rules\":");
    if (st == MD_OK)
        st = api_put_rules(&b, list.items, list.count, fulltext);
    if (st == MD_OK)
        st = md_buf_printf(&b, ",\"count\":%zu,\"next_cursor\":", list.count);
    if (st == MD_OK && list.more) {
        char payload[32], next[MD_CURSOR_MAX + 1];
        snprintf(payload, sizeof(payload), "%zu", in->q.offset + list.count);
        md_cursor_encode("ltm-search", payload, in->binding.data, next);
        st = md_buf_printf(&b, "\"%s\"", next);
    } else if (st == MD_OK) {
        st = md_buf_puts(&b, "null");
    }
    if (st == MD_OK)
        st = md_buf_printf(&b, ",\"search_type\":\"%s\"}", fulltext ? "fulltext" : "structured");
    md_rule_list_release(&list);
    md_buf_release(&in->binding);
    free(in);
    api_answer_cached(req, resp, api_route_message(req), &b, st, &put);
}

/* ---- concepts --------------------------------------------------------------------------------- */

void api_ltm_concepts(struct md_req *req, struct md_resp *resp)
{
    static const char *const allowed[] = {"limit", "cursor", NULL};
    struct md_app *app = api_app(req);
    int64_t limit;
    if (!api_query_only(req, resp, allowed) ||
        !api_query_int(req, resp, "limit", 1, 1000, 100, &limit))
        return;
    char after[MD_CURSOR_PAYLOAD_MAX + 1] = "";
    const char *cursor = md_req_query(req, "cursor");
    if (cursor && (!md_cursor_decode("ltm-concepts", cursor, "", after) || !after[0])) {
        api_bad_request(resp, "cursor", "cursor was not issued for this listing");
        return;
    }
    struct api_cache_put put;
    api_cache_put_init(&put, req, "ltm");
    if (put.key[0] && api_cache_serve(req, resp, put.key, api_route_message(req)))
        return;
    struct md_concept_list list;
    memset(&list, 0, sizeof(list));
    struct md_error err;
    md_error_clear(&err);
    if (app->ltm->ops->concepts(app->ltm, after, (size_t)limit, &list, &err) != MD_OK) {
        api_fail(req, resp, &err);
        return;
    }
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = md_buf_puts(&b, "{\"concepts\":[");
    for (size_t i = 0; st == MD_OK && i < list.count; i++) {
        st = md_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        if (st == MD_OK)
            st = md_buf_json_cstr(&b, list.items[i].name);
        if (st == MD_OK)
            st = md_buf_printf(&b, ",\"rule_count\":%lld}", (long long)list.items[i].rule_count);
    }
    if (st == MD_OK)
        st = md_buf_printf(&b, "],\"count\":%zu,\"next_cursor\":", list.count);
    char next[MD_CURSOR_MAX + 1];
    if (st == MD_OK && list.more && list.count > 0 &&
        md_cursor_encode("ltm-concepts", list.items[list.count - 1].key, "", next))
        st = md_buf_printf(&b, "\"%s\"}", next);
    else if (st == MD_OK)
        st = md_buf_puts(&b, "null}");
    md_concept_list_release(&list);
    api_answer_cached(req, resp, api_route_message(req), &b, st, &put);
}

void api_ltm_concept_rules(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    if (!no_query(req, resp))
        return;
    char *name = req->match.param_valid[0] ? trimmed_dup(req->match.params[0]) : NULL;
    size_t len = name ? strlen(name) : 0, cps = name ? md_utf8_count(name, len) : 0;
    if (!name || cps == 0 || cps > MD_CONCEPT_NAME_MAX || md_str_has_ctl(name, len) ||
        !md_utf8_valid(name, len)) {
        free(name);
        api_bad_request(resp, "name", "a concept name needs 1 to %d characters and no control "
                                      "characters", MD_CONCEPT_NAME_MAX);
        return;
    }
    char key[MD_CONCEPT_KEY_MAX + 1];
    md_concept_key(name, key);
    free(name);
    struct api_cache_put put;
    api_cache_put_init(&put, req, "ltm");
    if (put.key[0] && api_cache_serve(req, resp, put.key, api_route_message(req)))
        return;
    struct md_rule_list list;
    memset(&list, 0, sizeof(list));
    char *stored = NULL;
    struct md_error err;
    md_error_clear(&err);
    if (app->ltm->ops->concept_rules(app->ltm, key, &stored, &list, &err) != MD_OK) {
        if (err.code == MD_E_NOTFOUND)
            md_error_set(&err, MD_E_NOTFOUND, "no such concept");
        api_fail(req, resp, &err);
        return;
    }
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = md_buf_puts(&b, "{\"concept\":");
    if (st == MD_OK)
        st = md_buf_json_cstr(&b, stored ? stored : "");
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"rules\":");
    if (st == MD_OK)
        st = api_put_rules(&b, list.items, list.count, false);
    if (st == MD_OK)
        st = md_buf_printf(&b, ",\"count\":%zu}", list.count);
    free(stored);
    md_rule_list_release(&list);
    api_answer_cached(req, resp, api_route_message(req), &b, st, &put);
}

/* ---- history and audit -------------------------------------------------------------------------- */

static enum md_status put_versions(struct md_buf *b, const char *rule_id,
                                   const struct md_rule_history *h)
{
    enum md_status st = md_buf_putc(b, '[');
    for (size_t i = 0; st == MD_OK && i < h->count; i++) {
        const struct md_rule_version *v = &h->versions[i];
        st = md_buf_printf(b, "%s{\"rule_id\":\"%s\",\"version\":%lld,\"rule_text\":",
                           i ? "," : "", rule_id, (long long)v->version);
        if (st == MD_OK)
            st = md_buf_json_cstr(b, v->rule_text ? v->rule_text : "");
        if (st == MD_OK)
            st = md_buf_puts(b, ",\"confidence_score\":");
        if (st == MD_OK)
            st = api_put_double(b, v->confidence);
        if (st == MD_OK)
            st = md_buf_puts(b, ",\"related_concepts\":");
        if (st == MD_OK)
            st = api_put_strv(b, v->concepts, v->n_concepts);
        if (st == MD_OK)
            st = md_buf_puts(b, ",\"source_scenario_ids\":");
        if (st == MD_OK)
            st = api_put_strv(b, v->sources, v->n_sources);
        if (st == MD_OK)
            st = md_buf_puts(b, ",\"recorded_at\":");
        if (st == MD_OK)
            st = api_put_time(b, v->recorded_ms);
        if (st == MD_OK)
            st = md_buf_putc(b, '}');
    }
    return st == MD_OK ? md_buf_putc(b, ']') : st;
}

void api_ltm_history(struct md_req *req, struct md_resp *resp)
{
    struct md_app *app = api_app(req);
    const char *id;
    if (!no_query(req, resp) || !path_rule_id(req, resp, &id))
        return;
    struct api_cache_put put;
    api_cache_put_init(&put, req, "ltm");
    if (put.key[0] && api_cache_serve(req, resp, put.key, api_route_message(req)))
        return;
    struct md_rule_history h;
    memset(&h, 0, sizeof(h));
    struct md_error err;
    md_error_clear(&err);
    if (app->ltm->ops->history(app->ltm, id, &h, &err) != MD_OK) {
        not_found_rule(&err, id);
        api_fail(req, resp, &err);
        return;
    }
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = md_buf_printf(&b, "{\"rule_id\":\"%s\",\"total_versions\":%zu,"
                                          "\"versions\":", id, h.count);
    if (st == MD_OK)
        st = put_versions(&b, id, &h);
    if (st == MD_OK)
        st = md_buf_putc(&b, '}');
    md_rule_history_release(&h);
    api_answer_cached(req, resp, api_route_message(req), &b, st, &put);
}

/* Audit: everything the rule's evidence is made of, in three LTM calls and one STM call. */
struct audit {
    struct md_rule_detail d;
    struct md_rule_history h;
    struct md_concept_links *links;
    size_t n_links;
    struct evidence ev;
};

static void audit_release(struct audit *a)
{
    md_rule_detail_release(&a->d);
    md_rule_history_release(&a->h);
    md_concept_links_release(a->links, a->n_links);
    evidence_release(&a->ev);
}

static enum md_status audit_load(struct md_req *req, const char *id, struct audit *a,
                                 struct md_error *err)
{
    struct md_app *app = api_app(req);
    memset(a, 0, sizeof(*a));
    enum md_status st = app->ltm->ops->get(app->ltm, id, &a->d, err);
    if (st == MD_OK)
        st = app->ltm->ops->history(app->ltm, id, &a->h, err);
    if (st == MD_OK)
        st = app->ltm->ops->concept_links(app->ltm, id, &a->links, &a->n_links, err);
    if (st == MD_OK)
        st = sources_in_stm(req, &a->d, &a->ev, err);
    return st;
}

static enum md_status put_audit_sources(struct md_buf *b, const struct audit *a,
                                        size_t *available, size_t *with_feedback)
{
    enum md_status st = md_buf_putc(b, '[');
    for (size_t i = 0; st == MD_OK && i < a->d.n_sources; i++) {
        const struct md_source *s = &a->d.sources[i];
        const struct md_stm_view *v = &a->ev.views[i];
        bool in_stm = v->json != NULL;
        bool feedback = in_stm ? v->has_feedback : (s->has_snapshot && s->snapshot_has_feedback);
        enum md_verdict fin = in_stm ? v->final_status
                                     : (s->has_snapshot ? s->snapshot_final_status
                                                        : MD_VERDICT_NONE);
        *available += (in_stm || s->has_snapshot) ? 1 : 0;
        *with_feedback += feedback ? 1 : 0;
        st = md_buf_printf(b, "%s{\"scenario_id\":\"%s\",\"in_stm\":%s,\"has_snapshot\":%s,"
                              "\"has_human_feedback\":%s,\"final_status\":",
                           i ? "," : "", s->scenario_id, in_stm ? "true" : "false",
                           s->has_snapshot ? "true" : "false", feedback ? "true" : "false");
        if (st == MD_OK)
            st = api_put_verdict(b, fin);
        if (st == MD_OK && s->has_snapshot)
            st = md_buf_printf(b, ",\"snapshot_sha256\":\"%s\"", s->snapshot_sha256);
        if (st == MD_OK)
            st = md_buf_putc(b, '}');
    }
    return st == MD_OK ? md_buf_putc(b, ']') : st;
}

void api_ltm_audit(struct md_req *req, struct md_resp *resp)
{
    const char *id;
    if (!no_query(req, resp) || !path_rule_id(req, resp, &id))
        return;
    struct api_cache_put put;
    api_cache_put_init(&put, req, "ltm");
    if (put.key[0] && api_cache_serve(req, resp, put.key, api_route_message(req)))
        return;
    struct audit a;
    struct md_error err;
    md_error_clear(&err);
    if (audit_load(req, id, &a, &err) != MD_OK) {
        audit_release(&a);
        not_found_rule(&err, id);
        api_fail(req, resp, &err);
        return;
    }
    size_t available = 0, feedback = 0;
    struct md_buf b;
    md_buf_init(&b, MD_RESP_MAX_BYTES);
    enum md_status st = md_buf_puts(&b, "{\"rule\":");
    if (st == MD_OK)
        st = api_put_rule(&b, &a.d.rule, false);
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"version_history\":");
    if (st == MD_OK)
        st = put_versions(&b, id, &a.h);
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"source_scenarios\":");
    if (st == MD_OK)
        st = put_audit_sources(&b, &a, &available, &feedback);
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"concept_relationships\":{");
    for (size_t i = 0; st == MD_OK && i < a.n_links; i++) {
        if (i)
            st = md_buf_putc(&b, ',');
        if (st == MD_OK)
            st = md_buf_json_cstr(&b, a.links[i].concept);
        if (st == MD_OK)
            st = md_buf_putc(&b, ':');
        if (st == MD_OK)
            st = api_put_strv(&b, a.links[i].rule_ids, a.links[i].n_rule_ids);
    }
    /* four decimals: the inputs are small ratios, more digits are noise */
    double completeness = round(md_evidence_completeness(a.d.n_sources, available, feedback,
                                                         (int64_t)a.h.count) * 10000.0) / 10000.0;
    if (st == MD_OK)
        st = md_buf_printf(&b, "},\"audit_metadata\":{\"total_versions\":%zu,\"source_count\":%zu,"
                               "\"concept_count\":%zu,\"confidence_score\":",
                           a.h.count, a.d.n_sources, a.d.rule.n_concepts);
    if (st == MD_OK)
        st = api_put_double(&b, a.d.rule.confidence);
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"last_updated\":");
    if (st == MD_OK)
        st = api_put_time(&b, a.d.rule.updated_ms);
    if (st == MD_OK)
        st = md_buf_puts(&b, ",\"evidence_completeness\":");
    if (st == MD_OK)
        st = api_put_double(&b, completeness);
    if (st == MD_OK)
        st = md_buf_puts(&b, "}}");
    /* feedback, final status and existence of the sources all show here */
    api_cache_tag_sources(&put, "se:", (const char *const *)a.d.rule.sources,
                          a.d.rule.n_sources, "se:*");
    for (size_t i = 0; i < a.d.n_sources; i++)
        if (a.ev.views[i].json)
            api_cache_expire_with(&put, req->now_ms, a.ev.views[i].expires_ms);
    audit_release(&a);
    api_answer_cached(req, resp, api_route_message(req), &b, st, &put);
}
