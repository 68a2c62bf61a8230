/*
 * ltm_neo4j.c — the LTM store on Neo4j 5, over the HTTP transactional API.
 *
 * DESIGN
 * Every operation is one HTTP request, hence one transaction and one round
 * trip (a create with a generated id sends two statements in that request;
 * reads that need two result sets send two statements). The Cypher lives in
 * ltm_neo4j_cypher.h; all user values travel as parameters built with
 * jansson. Decisions that depend on current state (has the rule changed?
 * which number is free? is this concept now orphaned?) are taken inside the
 * statement, after it has locked the nodes involved, so that concurrent
 * requests serialise correctly without a read-decide-write exchange.
 *
 * Retries: the client retries Neo4j's transient errors (deadlocks, lock
 * timeouts). Here, a create with a generated id that collides with a
 * concurrent explicit-id create on rule_id_unique runs again (the next free
 * number is computed afresh), and a write that raced with the deletion of a
 * node it was about to link (EntityNotFound) runs again too.
 *
 * Graph model: see ltm.h and spec §4; concept order per rule is the `pos`
 * property of RELATES_TO, and each rule keeps its own spelling in its `name`.
 */
#include "memoryd/compat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ltm/ltm_neo4j_cypher.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/ltm.h"
#include "memoryd/neo4j_client.h"

#define GENERATED_ID_ATTEMPTS 8
#define RACE_ATTEMPTS 3
#define LUCENE_QUERY_MAX 16384
#define SEARCH_CYPHER_MAX 4096

struct ltm_neo4j {
    struct md_ltm base; /* first: the md_ltm handle is the object */
    struct md_neo4j *db;
    int64_t await_s;    /* db.awaitIndexes timeout in ensure_schema */
};

static const struct md_ltm_ops neo4j_ops;

/* ---- errors ------------------------------------------------------------------------ */

/* Replace err's client message, keeping the operator detail of the cause. */
static enum md_status reword(struct md_error *err, enum md_status code, const char *fmt, ...)
    MD_PRINTF(3, 4);

static enum md_status reword(struct md_error *err, enum md_status code, const char *fmt, ...)
{
    if (!err)
        return code;
    char detail[MD_ERROR_DETAIL_MAX];
    char msg[MD_ERROR_MSG_MAX];
    snprintf(detail, sizeof(detail), "%s", err->detail);
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = '\0';
    va_end(ap);
    md_error_set(err, code, "%s", msg);
    if (detail[0])
        md_error_detail(err, "%s", detail);
    return code;
}

static enum md_status proto(struct md_error *err, const char *what)
{
    md_error_set(err, MD_E_PROTO, "ltm store answered unexpectedly");
    md_error_detail(err, "neo4j: %s", what);
    return MD_E_PROTO;
}

static enum md_status oom(struct md_error *err)
{
    return md_error_set(err, MD_E_NOMEM, "out of memory");
}

/* ---- parameters ---------------------------------------------------------------------- */

/* Set o[k] = v (stolen); false if v is NULL or the set fails. */
static bool put(json_t *o, const char *k, json_t *v)
{
    if (!v)
        return false;
    return json_object_set_new(o, k, v) == 0;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *strv_json(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

struct concept_ref {
    const struct md_concept *c;
    size_t pos;
};

static int cmp_concept_key(const void *a, const void *b)
{
    return strcmp(((const struct concept_ref *)a)->c->key, ((const struct concept_ref *)b)->c->key);
}

/*
 * [{name, key, pos}…] sorted by key, pos being the place in the rule's
 * order: edges are then created (and nodes locked) in key order.
 */
static json_t *concepts_json(const struct md_concept *c, size_t n)
{
    struct concept_ref *refs = calloc(n ? n : 1, sizeof(*refs));
    if (!refs)
        return NULL;
    for (size_t i = 0; i < n; i++)
        refs[i] = (struct concept_ref){&c[i], i};
    qsort(refs, n, sizeof(*refs), cmp_concept_key);
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *o = json_object();
        bool ok = o && put(o, "name", json_string(refs[i].c->name)) &&
                  put(o, "key", json_string(refs[i].c->key)) &&
                  put(o, "pos", json_integer((json_int_t)refs[i].pos));
        if (!ok || json_array_append_new(a, o) != 0) {
            if (!ok)
                json_decref(o);
            json_decref(a);
            a = NULL;
        }
    }
    free(refs);
    return a;
}

static json_t *names_json(const struct md_concept *c, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        if (json_array_append_new(a, json_string(c[i].name)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* [{id, json, sha256, at, ms, fb, fs}…] */
static json_t *snapshots_json(const struct md_snapshot *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        char at[MD_ISO8601_LEN];
        md_iso8601(s[i].captured_ms, at);
        const char *fs = s[i].final_status == MD_VERDICT_NONE ? NULL
                                                               : md_verdict_name(s[i].final_status);
        json_t *o = json_object();
        bool ok = o && put(o, "id", json_string(s[i].scenario_id)) &&
                  put(o, "json", json_string(s[i].entry_json)) &&
                  put(o, "sha256", json_string(s[i].sha256)) && put(o, "at", json_string(at)) &&
                  put(o, "ms", json_integer(s[i].captured_ms)) &&
                  put(o, "fb", json_boolean(s[i].has_feedback)) && put(o, "fs", str_or_null(fs));
        if (!ok || json_array_append_new(a, o) != 0) {
            if (!ok)
                json_decref(o);
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* ---- result parsing ------------------------------------------------------------------ */

static int64_t num_int(const json_t *v)
{
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return 0;
}

static char *dup_str(const json_t *v, bool *ok)
{
    const char *s = json_string_value(v);
    char *d = strdup(s ? s : "");
    if (!d)
        *ok = false;
    return d;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Copy a JSON array of strings (non-strings skipped), sorted if asked. */
static enum md_status strv_from(const json_t *a, bool sort, char ***out, size_t *n,
                                struct md_error *err)
{
    *out = NULL;
    *n = 0;
    size_t len = json_array_size(a);
    if (len == 0)
        return MD_OK;
    char **v = calloc(len, sizeof(*v));
    if (!v)
        return oom(err);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!s)
            continue;
        v[k] = strdup(s);
        if (!v[k]) {
            for (size_t j = 0; j < k; j++)
                free(v[j]);
            free(v);
            return oom(err);
        }
        k++;
    }
    if (sort && k > 1)
        qsort(v, k, sizeof(*v), cmp_str);
    *out = v;
    *n = k;
    return MD_OK;
}

struct concept_pos {
    int64_t pos;
    const json_t *item; /* [pos, name, key] */
};

static int cmp_pos(const void *a, const void *b)
{
    const struct concept_pos *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Parse a RULE_PROJ list into r (zeroed first; released on failure). */
static enum md_status parse_rule(const json_t *a, struct md_rule *r, struct md_error *err)
{
    memset(r, 0, sizeof(*r));
    const char *id = json_string_value(json_array_get(a, 0));
    if (!id || strlen(id) > MD_RULE_ID_MAX)
        return proto(err, "rule row without a usable rule_id");
    memcpy(r->rule_id, id, strlen(id) + 1);
    const char *policy = json_string_value(json_array_get(a, 1));
    if (policy && strlen(policy) <= MD_POLICY_MAX)
        memcpy(r->policy, policy, strlen(policy) + 1);
    else
        md_rule_id_policy(id, r->policy);
    bool ok = true;
    r->rule_text = dup_str(json_array_get(a, 2), &ok);
    r->confidence = json_number_value(json_array_get(a, 3));
    r->version = num_int(json_array_get(a, 4));
    r->created_ms = num_int(json_array_get(a, 5));
    r->updated_ms = num_int(json_array_get(a, 6));
    if (!ok)
        goto nomem;

    const json_t *cs = json_array_get(a, 7);
    size_t n = json_array_size(cs);
    if (n > 0) {
        struct concept_pos *tmp = calloc(n, sizeof(*tmp));
        r->concepts = calloc(n, sizeof(*r->concepts));
        if (!tmp || !r->concepts) {
            free(tmp);
            goto nomem;
        }
        for (size_t i = 0; i < n; i++) {
            tmp[i].item = json_array_get(cs, i);
            tmp[i].pos = num_int(json_array_get(tmp[i].item, 0));
        }
        qsort(tmp, n, sizeof(*tmp), cmp_pos);
        for (size_t i = 0; i < n; i++) {
            r->concepts[i].name = dup_str(json_array_get(tmp[i].item, 1), &ok);
            r->concepts[i].key = dup_str(json_array_get(tmp[i].item, 2), &ok);
            r->n_concepts = i + 1;
        }
        free(tmp);
        if (!ok)
            goto nomem;
    }
    enum md_status st = strv_from(json_array_get(a, 8), true, &r->sources, &r->n_sources, err);
    if (st != MD_OK) {
        md_rule_release(r);
        return st;
    }
    return MD_OK;
nomem:
    md_rule_release(r);
    return oom(err);
}

/*
 * Rules of statement stmt (rule list in column col, score in score_col or
 * -1), at most limit of them; list->more tells whether there were more.
 */
static enum md_status parse_rules(const struct md_neo4j_result *res, size_t stmt, size_t col,
                                  int score_col, size_t limit, struct md_rule_list *list,
                                  struct md_error *err)
{
    memset(list, 0, sizeof(*list));
    size_t rows = md_neo4j_rows(res, stmt);
    size_t n = MD_MIN(rows, limit);
    list->more = rows > limit;
    if (n == 0)
        return MD_OK;
    list->items = calloc(n, sizeof(*list->items));
    if (!list->items)
        return oom(err);
    for (size_t i = 0; i < n; i++) {
        const json_t *row = md_neo4j_row(res, stmt, i);
        enum md_status st = parse_rule(json_array_get(row, col), &list->items[i], err);
        if (st != MD_OK) {
            md_rule_list_release(list);
            return st;
        }
        list->count = i + 1;
        if (score_col >= 0)
            list->items[i].score = json_number_value(json_array_get(row, (size_t)score_col));
    }
    return MD_OK;
}

static enum md_verdict verdict_of(const json_t *v)
{
    enum md_verdict out;
    const char *s = json_string_value(v);
    if (s && md_verdict_parse(s, &out))
        return out;
    return MD_VERDICT_NONE;
}

static void copy_sha(const json_t *v, char out[65])
{
    const char *s = json_string_value(v);
    if (s && strlen(s) == 64)
        memcpy(out, s, 65);
    else
        out[0] = '\0';
}

/* ---- running statements --------------------------------------------------------------- */

static bool race_lost(const struct md_neo4j_result *res)
{
    return strcmp(res->code, "Neo.ClientError.Statement.EntityNotFound") == 0;
}

/* Run a write; repeat it when it raced with the deletion of a node it touched. */
static enum md_status run_write(struct ltm_neo4j *l, const struct md_neo4j_stmt *stmts, size_t n,
                                struct md_neo4j_result *res, struct md_error *err)
{
    enum md_status st = MD_OK;
    for (int attempt = 0; attempt < RACE_ATTEMPTS; attempt++) {
        st = md_neo4j_run(l->db, stmts, n, res, err);
        if (st == MD_OK || !race_lost(res))
            break;
    }
    return st;
}

/* One statement with a single string parameter. */
static enum md_status run_one(struct ltm_neo4j *l, const char *cypher, const char *pname,
                              const char *pvalue, struct md_neo4j_result *res,
                              struct md_error *err)
{
    json_t *p = json_object();
    if (!p || !put(p, pname, json_string(pvalue))) {
        json_decref(p);
        return oom(err);
    }
    struct md_neo4j_stmt st = {cypher, p};
    enum md_status rc = md_neo4j_run(l->db, &st, 1, res, err);
    json_decref(p);
    return rc;
}

/* ---- create ---------------------------------------------------------------------------- */

/* Fill out from a create's input and the id the store chose. */
static enum md_status rule_from_new(const struct md_rule_new *in, const char *rule_id,
                                    int64_t now_ms, struct md_rule *out, struct md_error *err)
{
    memset(out, 0, sizeof(*out));
    if (strlen(rule_id) > MD_RULE_ID_MAX)
        return proto(err, "generated rule_id too long");
    memcpy(out->rule_id, rule_id, strlen(rule_id) + 1);
    md_rule_id_policy(rule_id, out->policy);
    out->rule_text = strdup(in->rule_text);
    out->confidence = in->confidence;
    out->version = 1;
    out->created_ms = now_ms;
    out->updated_ms = now_ms;
    if (!out->rule_text)
        goto nomem;
    if (in->n_concepts) {
        out->concepts = calloc(in->n_concepts, sizeof(*out->concepts));
        if (!out->concepts)
            goto nomem;
        for (size_t i = 0; i < in->n_concepts; i++) {
            out->concepts[i].name = strdup(in->concepts[i].name);
            out->concepts[i].key = strdup(in->concepts[i].key);
            out->n_concepts = i + 1;
            if (!out->concepts[i].name || !out->concepts[i].key)
                goto nomem;
        }
    }
    if (in->n_sources) {
        out->sources = calloc(in->n_sources, sizeof(*out->sources));
        if (!out->sources)
            goto nomem;
        for (size_t i = 0; i < in->n_sources; i++) {
            out->sources[i] = strdup(in->sources[i]);
            out->n_sources = i + 1;
            if (!out->sources[i])
                goto nomem;
        }
        qsort(out->sources, out->n_sources, sizeof(*out->sources), cmp_str);
    }
    return MD_OK;
nomem:
    md_rule_release(out);
    return oom(err);
}

static enum md_status op_create(void *self, const struct md_rule_new *in, int64_t now_ms,
                                struct md_rule *out, struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res = {0};
    enum md_status st;
    bool generated = in->rule_id == NULL;
    char now[MD_ISO8601_LEN];
    md_iso8601(now_ms, now);
    memset(out, 0, sizeof(*out));

    if (generated && !in->id_prefix)
        return md_error_set(err, MD_E_INTERNAL, "rule create without id or prefix");
    json_t *p = json_object();
    bool ok = p && put(p, "policy", json_string(in->policy)) &&
              put(p, "text", json_string(in->rule_text)) &&
              put(p, "conf", json_real(in->confidence)) && put(p, "now", json_string(now)) &&
              put(p, "now_ms", json_integer(now_ms)) &&
              put(p, "concepts", concepts_json(in->concepts, in->n_concepts)) &&
              put(p, "sources", strv_json(in->sources, in->n_sources)) &&
              put(p, "snapshots", snapshots_json(in->snapshots, in->n_snapshots)) &&
              (generated ? put(p, "prefix", json_string(in->id_prefix))
                         : put(p, "rule_id", json_string(in->rule_id)));
    if (!ok) {
        json_decref(p);
        return oom(err);
    }
    struct md_neo4j_stmt stmts[2];
    size_t n;
    if (generated) {
        stmts[0] = (struct md_neo4j_stmt){CY_LOCK_POLICY, p};
        stmts[1] = (struct md_neo4j_stmt){CY_CREATE_GENERATED, p};
        n = 2;
    } else {
        stmts[0] = (struct md_neo4j_stmt){CY_CREATE, p};
        n = 1;
    }
    /* A generated id may collide with a concurrent explicit-id create: pick again. */
    for (int attempt = 0;; attempt++) {
        st = run_write(l, stmts, n, &res, err);
        if (st != MD_E_CONFLICT || !generated || attempt + 1 >= GENERATED_ID_ATTEMPTS)
            break;
    }
    json_decref(p);
    if (st == MD_E_CONFLICT) {
        if (generated)
            return reword(err, MD_E_CONFLICT, "no free rule id under '%s'", in->id_prefix);
        return reword(err, MD_E_CONFLICT, "rule '%s' already exists", in->rule_id);
    }
    if (st != MD_OK)
        return st;
    const char *id = json_string_value(json_array_get(md_neo4j_row(&res, n - 1, 0), 0));
    if (!id) {
        md_neo4j_result_release(&res);
        if (generated)
            return md_error_set(err, MD_E_CONFLICT, "no free rule id under '%s'", in->id_prefix);
        return proto(err, "create returned no rule_id");
    }
    st = rule_from_new(in, id, now_ms, out, err);
    md_neo4j_result_release(&res);
    return st;
}

/* ---- get ------------------------------------------------------------------------------- */

static enum md_status op_get(void *self, const char *rule_id, struct md_rule_detail *out,
                             struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    memset(out, 0, sizeof(*out));
    enum md_status st = run_one(l, CY_GET, "id", rule_id, &res, err);
    if (st != MD_OK)
        return st;
    const json_t *row = md_neo4j_row(&res, 0, 0);
    if (!row) {
        md_neo4j_result_release(&res);
        return md_error_set(err, MD_E_NOTFOUND, "rule '%s' not found", rule_id);
    }
    st = parse_rule(json_array_get(row, 0), &out->rule, err);
    if (st != MD_OK)
        goto out;

    const json_t *srcs = json_array_get(row, 1);
    if (out->rule.n_sources) {
        out->sources = calloc(out->rule.n_sources, sizeof(*out->sources));
        if (!out->sources) {
            st = oom(err);
            goto out;
        }
    }
    out->n_sources = out->rule.n_sources;
    for (size_t i = 0; i < out->rule.n_sources; i++) {
        struct md_source *s = &out->sources[i];
        const char *id = out->rule.sources[i];
        snprintf(s->scenario_id, sizeof(s->scenario_id), "%s", id);
        s->snapshot_final_status = MD_VERDICT_NONE;
        for (size_t j = 0; j < json_array_size(srcs); j++) {
            const json_t *e = json_array_get(srcs, j);
            const char *sid = json_string_value(json_array_get(e, 0));
            if (!sid || strcmp(sid, id) != 0)
                continue;
            copy_sha(json_array_get(e, 1), s->snapshot_sha256);
            s->has_snapshot = s->snapshot_sha256[0] != '\0';
            s->snapshot_has_feedback = json_is_true(json_array_get(e, 2));
            s->snapshot_final_status = verdict_of(json_array_get(e, 3));
            s->snapshot_captured_ms = num_int(json_array_get(e, 4));
            break;
        }
    }
    st = strv_from(json_array_get(row, 2), true, &out->policies, &out->n_policies, err);
out:
    md_neo4j_result_release(&res);
    if (st != MD_OK)
        md_rule_detail_release(out);
    return st;
}

/* ---- patch ------------------------------------------------------------------------------ */

static enum md_status op_patch(void *self, const char *rule_id, const struct md_rule_patch *pt,
                               int64_t now_ms, struct md_rule *out, bool *changed,
                               struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    char now[MD_ISO8601_LEN];
    md_iso8601(now_ms, now);
    memset(out, 0, sizeof(*out));
    *changed = false;

    json_t *p = json_object();
    bool ok = p && put(p, "id", json_string(rule_id)) &&
              put(p, "text", str_or_null(pt->rule_text)) &&
              put(p, "conf", pt->set_confidence ? json_real(pt->confidence) : json_null()) &&
              put(p, "names", pt->set_concepts ? names_json(pt->concepts, pt->n_concepts)
                                               : json_null()) &&
              put(p, "concepts", pt->set_concepts ? concepts_json(pt->concepts, pt->n_concepts)
                                                  : json_array()) &&
              put(p, "add_sources", strv_json(pt->add_sources, pt->n_add_sources)) &&
              put(p, "snapshots", snapshots_json(pt->snapshots, pt->n_snapshots)) &&
              put(p, "now", json_string(now)) && put(p, "now_ms", json_integer(now_ms));
    if (!ok) {
        json_decref(p);
        return oom(err);
    }
    struct md_neo4j_stmt stmt = {CY_PATCH, p};
    enum md_status st = run_write(l, &stmt, 1, &res, err);
    json_decref(p);
    if (st != MD_OK)
        return st;
    const json_t *row = md_neo4j_row(&res, 0, 0);
    if (!row) {
        md_neo4j_result_release(&res);
        return md_error_set(err, MD_E_NOTFOUND, "rule '%s' not found", rule_id);
    }
    *changed = json_is_true(json_array_get(row, 0));
    st = parse_rule(json_array_get(row, 1), out, err);
    md_neo4j_result_release(&res);
    return st;
}

/* ---- delete ----------------------------------------------------------------------------- */

static enum md_status op_del(void *self, const char *rule_id, char ***sources, size_t *n_sources,
                             struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    *sources = NULL;
    *n_sources = 0;
    json_t *p = json_object();
    if (!p || !put(p, "id", json_string(rule_id))) {
        json_decref(p);
        return oom(err);
    }
    struct md_neo4j_stmt stmt = {CY_DELETE, p};
    enum md_status st = run_write(l, &stmt, 1, &res, err);
    json_decref(p);
    if (st != MD_OK)
        return st;
    const json_t *row = md_neo4j_row(&res, 0, 0);
    if (!row)
        st = md_error_set(err, MD_E_NOTFOUND, "rule '%s' not found", rule_id);
    else
        st = strv_from(json_array_get(row, 0), true, sources, n_sources, err);
    md_neo4j_result_release(&res);
    return st;
}

/* ---- search ------------------------------------------------------------------------------ */

static bool cat(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        return false;
    memcpy(buf + *len, s, n + 1);
    *len += n;
    return true;
}

/*
 * The Lucene query for words (any of them), as a JSON string. Words are
 * lower-cased (ASCII) first: the analyzers fold case anyway, and a word such
 * as "AND", "OR" or "NOT" must stay a word instead of becoming an operator,
 * which escaping alone does not prevent. Empty words are dropped.
 */
static json_t *lucene_query(const char *const *words, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(words[i]) + 1;
    char *store = malloc(total + 1);
    const char **lw = calloc(n ? n : 1, sizeof(*lw));
    char *lucene = malloc(LUCENE_QUERY_MAX);
    json_t *out = NULL;
    if (!store || !lw || !lucene)
        goto out;
    size_t k = 0, o = 0;
    for (size_t i = 0; i < n; i++) {
        if (!words[i][0])
            continue;
        lw[k++] = store + o;
        for (const char *s = words[i]; *s; s++)
            store[o++] = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
        store[o++] = '\0';
    }
    if (md_lucene_any(lw, k, lucene, LUCENE_QUERY_MAX))
        out = json_string(lucene);
out:
    free(store);
    free(lw);
    free(lucene);
    return out;
}

static enum md_status op_search(void *self, const struct md_rule_query *q,
                                struct md_rule_list *out, struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    memset(out, 0, sizeof(*out));
    bool fulltext = q->n_words > 0;
    bool by_concept = q->n_concepts > 0;
    char cypher[SEARCH_CYPHER_MAX];
    size_t len = 0;
    cypher[0] = '\0';

    /* Assemble the statement from constant parts: no user text in Cypher. */
    const char *source = fulltext ? CY_SEARCH_FULLTEXT
                                  : by_concept ? CY_SEARCH_BY_CONCEPT : CY_SEARCH_ALL;
    bool ok = cat(cypher, sizeof(cypher), &len, source);
    const char *conds[3];
    size_t n_conds = 0;
    if (fulltext && by_concept)
        conds[n_conds++] = CY_FILTER_CONCEPTS;
    if (q->policy)
        conds[n_conds++] = CY_FILTER_POLICY;
    if (q->has_min_confidence)
        conds[n_conds++] = CY_FILTER_MIN_CONF;
    for (size_t i = 0; ok && i < n_conds; i++) {
        ok = cat(cypher, sizeof(cypher), &len, i ? " AND " : "WHERE ") &&
             cat(cypher, sizeof(cypher), &len, conds[i]);
    }
    ok = ok && cat(cypher, sizeof(cypher), &len, n_conds ? " " : "") &&
         cat(cypher, sizeof(cypher), &len, CY_SEARCH_PAGE);
    if (!ok)
        return md_error_set(err, MD_E_INTERNAL, "ltm search statement too long");

    json_t *p = json_object();
    ok = p && put(p, "skip", json_integer((json_int_t)q->offset)) &&
         put(p, "limit", json_integer((json_int_t)q->limit + 1));
    if (ok && fulltext) {
        json_t *lq = lucene_query(q->words, q->n_words);
        ok = put(p, "q", lq);
        if (ok && json_string_length(lq) == 0) {
            json_decref(p); /* no usable word: nothing can match */
            return MD_OK;
        }
    }
    if (ok && by_concept)
        ok = put(p, "keys", strv_json(q->concept_keys, q->n_concepts));
    if (ok && q->policy)
        ok = put(p, "policy", json_string(q->policy));
    if (ok && q->has_min_confidence)
        ok = put(p, "min_conf", json_real(q->min_confidence));
    if (!ok) {
        json_decref(p);
        return oom(err);
    }
    struct md_neo4j_stmt stmt = {cypher, p};
    enum md_status st = md_neo4j_run(l->db, &stmt, 1, &res, err);
    json_decref(p);
    if (st != MD_OK)
        return st;
    st = parse_rules(&res, 0, 1, fulltext ? 0 : -1, q->limit, out, err);
    md_neo4j_result_release(&res);
    return st;
}

/* ---- concepts ----------------------------------------------------------------------------- */

static enum md_status op_concepts(void *self, const char *after_key, size_t limit,
                                  struct md_concept_list *out, struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    memset(out, 0, sizeof(*out));
    json_t *p = json_object();
    if (!p || !put(p, "after", json_string(after_key ? after_key : "")) ||
        !put(p, "limit", json_integer((json_int_t)limit + 1))) {
        json_decref(p);
        return oom(err);
    }
    struct md_neo4j_stmt stmt = {CY_CONCEPTS, p};
    enum md_status st = md_neo4j_run(l->db, &stmt, 1, &res, err);
    json_decref(p);
    if (st != MD_OK)
        return st;
    size_t rows = md_neo4j_rows(&res, 0);
    size_t n = MD_MIN(rows, limit);
    out->more = rows > limit;
    if (n) {
        out->items = calloc(n, sizeof(*out->items));
        if (!out->items) {
            st = oom(err);
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *row = md_neo4j_row(&res, 0, i);
        bool ok = true;
        out->items[i].name = dup_str(json_array_get(row, 0), &ok);
        out->items[i].key = dup_str(json_array_get(row, 1), &ok);
        out->items[i].rule_count = num_int(json_array_get(row, 2));
        out->count = i + 1;
        if (!ok) {
            st = oom(err);
            goto out;
        }
    }
out:
    md_neo4j_result_release(&res);
    if (st != MD_OK)
        md_concept_list_release(out);
    return st;
}

static enum md_status op_concept_rules(void *self, const char *concept_key, char **concept_name,
                                       struct md_rule_list *out, struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    memset(out, 0, sizeof(*out));
    *concept_name = NULL;
    json_t *p = json_object();
    if (!p || !put(p, "key", json_string(concept_key))) {
        json_decref(p);
        return oom(err);
    }
    struct md_neo4j_stmt stmts[2] = {{CY_CONCEPT, p}, {CY_CONCEPT_RULES, p}};
    enum md_status st = md_neo4j_run(l->db, stmts, 2, &res, err);
    json_decref(p);
    if (st != MD_OK)
        return st;
    const json_t *row = md_neo4j_row(&res, 0, 0);
    if (!row) {
        st = md_error_set(err, MD_E_NOTFOUND, "concept not found");
        goto out;
    }
    bool ok = true;
    *concept_name = dup_str(json_array_get(row, 0), &ok);
    if (!ok) {
        st = oom(err);
        goto out;
    }
    st = parse_rules(&res, 1, 0, -1, SIZE_MAX, out, err);
    if (st != MD_OK) {
        free(*concept_name);
        *concept_name = NULL;
    }
out:
    md_neo4j_result_release(&res);
    return st;
}

/* ---- history and audit ------------------------------------------------------------------- */

static int cmp_version(const void *a, const void *b)
{
    const struct md_rule_version *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static enum md_status op_history(void *self, const char *rule_id, struct md_rule_history *out,
                                 struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    struct md_rule cur = {0};
    memset(out, 0, sizeof(*out));
    enum md_status st = run_one(l, CY_HISTORY, "id", rule_id, &res, err);
    if (st != MD_OK)
        return st;
    const json_t *row = md_neo4j_row(&res, 0, 0);
    if (!row) {
        st = md_error_set(err, MD_E_NOTFOUND, "rule '%s' not found", rule_id);
        goto out;
    }
    st = parse_rule(json_array_get(row, 0), &cur, err);
    if (st != MD_OK)
        goto out;
    const json_t *vs = json_array_get(row, 1);
    size_t nv = json_array_size(vs);
    out->versions = calloc(nv + 1, sizeof(*out->versions));
    if (!out->versions) {
        st = oom(err);
        goto out;
    }
    for (size_t i = 0; i < nv; i++) {
        const json_t *v = json_array_get(vs, i);
        int64_t version = num_int(json_array_get(v, 0));
        /* A patch that committed between our reads: keep strictly older states. */
        if (version >= cur.version)
            continue;
        struct md_rule_version *rv = &out->versions[out->count++];
        bool ok = true;
        rv->version = version;
        rv->rule_text = dup_str(json_array_get(v, 1), &ok);
        rv->confidence = json_number_value(json_array_get(v, 2));
        rv->recorded_ms = num_int(json_array_get(v, 5));
        if (!ok) {
            st = oom(err);
            goto out;
        }
        st = strv_from(json_array_get(v, 3), false, &rv->concepts, &rv->n_concepts, err);
        if (st == MD_OK)
            st = strv_from(json_array_get(v, 4), true, &rv->sources, &rv->n_sources, err);
        if (st != MD_OK)
            goto out;
    }
    if (out->count > 1)
        qsort(out->versions, out->count, sizeof(*out->versions), cmp_version);

    /* The current state, last. */
    struct md_rule_version *now = &out->versions[out->count++];
    now->version = cur.version;
    now->rule_text = cur.rule_text;
    cur.rule_text = NULL;
    now->confidence = cur.confidence;
    now->recorded_ms = cur.updated_ms;
    now->sources = cur.sources;
    now->n_sources = cur.n_sources;
    cur.sources = NULL;
    cur.n_sources = 0;
    if (cur.n_concepts) {
        now->concepts = calloc(cur.n_concepts, sizeof(*now->concepts));
        if (!now->concepts) {
            st = oom(err);
            goto out;
        }
        for (size_t i = 0; i < cur.n_concepts; i++) {
            now->concepts[i] = cur.concepts[i].name; /* moved */
            cur.concepts[i].name = NULL;
        }
        now->n_concepts = cur.n_concepts;
    }
out:
    md_rule_release(&cur);
    md_neo4j_result_release(&res);
    if (st != MD_OK)
        md_rule_history_release(out);
    return st;
}

static enum md_status op_concept_links(void *self, const char *rule_id,
                                       struct md_concept_links **out, size_t *n,
                                       struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    *out = NULL;
    *n = 0;
    enum md_status st = run_one(l, CY_CONCEPT_LINKS, "id", rule_id, &res, err);
    if (st != MD_OK)
        return st;
    size_t rows = md_neo4j_rows(&res, 0);
    struct md_concept_links *links = NULL;
    size_t count = 0;
    if (rows == 0) {
        st = md_error_set(err, MD_E_NOTFOUND, "rule '%s' not found", rule_id);
        goto out;
    }
    links = calloc(rows, sizeof(*links));
    if (!links) {
        st = oom(err);
        goto out;
    }
    for (size_t i = 0; i < rows; i++) {
        const json_t *row = md_neo4j_row(&res, 0, i);
        const char *name = json_string_value(json_array_get(row, 1));
        if (!name)
            continue; /* a rule without concepts: the OPTIONAL MATCH row */
        struct md_concept_links *cl = &links[count++];
        cl->concept = strdup(name);
        if (!cl->concept) {
            st = oom(err);
            goto out;
        }
        st = strv_from(json_array_get(row, 2), true, &cl->rule_ids, &cl->n_rule_ids, err);
        if (st != MD_OK)
            goto out;
    }
out:
    md_neo4j_result_release(&res);
    if (st != MD_OK) {
        md_concept_links_release(links, count);
        return st;
    }
    *out = links;
    *n = count;
    return MD_OK;
}

static enum md_status op_scenario(void *self, const char *scenario_id,
                                  struct md_scenario_info *out, struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    memset(out, 0, sizeof(*out));
    out->snapshot_final_status = MD_VERDICT_NONE;
    json_t *p = json_object();
    if (!p || !put(p, "id", json_string(scenario_id))) {
        json_decref(p);
        return oom(err);
    }
    struct md_neo4j_stmt stmts[2] = {{CY_SCENARIO, p}, {CY_SCENARIO_RULES, p}};
    enum md_status st = md_neo4j_run(l->db, stmts, 2, &res, err);
    json_decref(p);
    if (st != MD_OK)
        return st;
    const json_t *row = md_neo4j_row(&res, 0, 0);
    if (!row)
        goto out; /* unknown: known = false */
    out->known = true;
    copy_sha(json_array_get(row, 1), out->snapshot_sha256);
    const char *snap = json_string_value(json_array_get(row, 0));
    if (snap && out->snapshot_sha256[0]) {
        out->has_snapshot = true;
        out->snapshot_json = strdup(snap);
        if (!out->snapshot_json) {
            st = oom(err);
            goto out;
        }
        out->snapshot_captured_ms = num_int(json_array_get(row, 2));
        out->snapshot_has_feedback = json_is_true(json_array_get(row, 3));
        out->snapshot_final_status = verdict_of(json_array_get(row, 4));
    } else {
        out->snapshot_sha256[0] = '\0';
    }
    st = parse_rules(&res, 1, 0, -1, SIZE_MAX, &out->derived, err);
out:
    md_neo4j_result_release(&res);
    if (st != MD_OK)
        md_scenario_info_release(out);
    return st;
}

/* ---- integrity and stats ------------------------------------------------------------------ */

static enum md_status op_rules_exist(void *self, const char *const *rule_ids, size_t n,
                                     bool *exists, struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    for (size_t i = 0; i < n; i++)
        exists[i] = false;
    if (n == 0)
        return MD_OK;
    json_t *p = json_object();
    if (!p || !put(p, "ids", strv_json(rule_ids, n))) {
        json_decref(p);
        return oom(err);
    }
    struct md_neo4j_stmt stmt = {CY_RULES_EXIST, p};
    enum md_status st = md_neo4j_run(l->db, &stmt, 1, &res, err);
    json_decref(p);
    if (st != MD_OK)
        return st;
    for (size_t i = 0; i < md_neo4j_rows(&res, 0); i++) {
        int64_t k = num_int(json_array_get(md_neo4j_row(&res, 0, i), 0));
        if (k >= 0 && (size_t)k < n)
            exists[k] = true;
    }
    md_neo4j_result_release(&res);
    return MD_OK;
}

static enum md_status op_sources_without_snapshot(void *self, struct md_pair_list *out,
                                                  struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    memset(out, 0, sizeof(*out));
    struct md_neo4j_stmt stmt = {CY_SOURCES_WITHOUT_SNAPSHOT, NULL};
    enum md_status st = md_neo4j_run(l->db, &stmt, 1, &res, err);
    if (st != MD_OK)
        return st;
    size_t rows = md_neo4j_rows(&res, 0);
    if (rows) {
        out->rule_ids = calloc(rows, sizeof(*out->rule_ids));
        out->scenario_ids = calloc(rows, sizeof(*out->scenario_ids));
        if (!out->rule_ids || !out->scenario_ids) {
            st = oom(err);
            goto out;
        }
    }
    for (size_t i = 0; i < rows; i++) {
        const json_t *row = md_neo4j_row(&res, 0, i);
        const char *r = json_string_value(json_array_get(row, 0));
        const char *s = json_string_value(json_array_get(row, 1));
        if (!r || !s || strlen(r) > MD_RULE_ID_MAX || strlen(s) > MD_SCENARIO_ID_MAX) {
            st = proto(err, "bad (rule, scenario) pair");
            goto out;
        }
        memcpy(out->rule_ids[out->count], r, strlen(r) + 1);
        memcpy(out->scenario_ids[out->count], s, strlen(s) + 1);
        out->count++;
    }
out:
    md_neo4j_result_release(&res);
    if (st != MD_OK)
        md_pair_list_release(out);
    return st;
}

static enum md_status op_stats(void *self, struct md_ltm_stats *out, struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    memset(out, 0, sizeof(*out));
    struct md_neo4j_stmt stmts[3] = {
        {CY_STATS_RULES, NULL}, {CY_STATS_CONCEPTS, NULL}, {CY_STATS_POLICIES, NULL}};
    enum md_status st = md_neo4j_run(l->db, stmts, 3, &res, err);
    if (st != MD_OK)
        return st;
    const json_t *row = md_neo4j_row(&res, 0, 0);
    out->total_rules = num_int(json_array_get(row, 0));
    out->average_confidence = json_number_value(json_array_get(row, 1));
    out->rules_without_sources = num_int(json_array_get(row, 2));
    out->total_concepts = num_int(json_array_get(md_neo4j_row(&res, 1, 0), 0));
    size_t n = md_neo4j_rows(&res, 2);
    if (n) {
        out->policies = calloc(n, sizeof(*out->policies));
        out->policy_counts = calloc(n, sizeof(*out->policy_counts));
        if (!out->policies || !out->policy_counts) {
            st = oom(err);
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *pr = md_neo4j_row(&res, 2, i);
        bool ok = true;
        out->policies[i] = dup_str(json_array_get(pr, 0), &ok);
        out->policy_counts[i] = num_int(json_array_get(pr, 1));
        out->n_policies = i + 1;
        if (!ok) {
            st = oom(err);
            goto out;
        }
    }
out:
    md_neo4j_result_release(&res);
    if (st != MD_OK)
        md_ltm_stats_release(out);
    return st;
}

static enum md_status op_ping(void *self, struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    struct md_neo4j_stmt stmt = {CY_PING, NULL};
    enum md_status st = md_neo4j_run(l->db, &stmt, 1, &res, err);
    if (st == MD_OK)
        md_neo4j_result_release(&res);
    return st;
}

/* ---- schema --------------------------------------------------------------------------------- */

static enum md_status op_ensure_schema(void *self, struct md_error *err)
{
    struct ltm_neo4j *l = self;
    struct md_neo4j_result res;
    struct md_neo4j_stmt stmts[MD_ARRAY_LEN(CY_SCHEMA)];
    for (size_t i = 0; i < MD_ARRAY_LEN(CY_SCHEMA); i++)
        stmts[i] = (struct md_neo4j_stmt){CY_SCHEMA[i], NULL};
    /* Schema changes commit alone: Neo4j refuses reads after them in one transaction. */
    enum md_status st = md_neo4j_run(l->db, stmts, MD_ARRAY_LEN(CY_SCHEMA), &res, err);
    if (st != MD_OK)
        return st;
    md_neo4j_result_release(&res);

    json_t *p = json_object();
    if (!p || !put(p, "seconds", json_integer(l->await_s))) {
        json_decref(p);
        return oom(err);
    }
    struct md_neo4j_stmt check[2] = {{CY_AWAIT_INDEXES, p}, {CY_SHOW_INDEXES, NULL}};
    st = md_neo4j_run(l->db, check, 2, &res, err);
    json_decref(p);
    if (st != MD_OK) {
        if (strcmp(res.code, "Neo.ClientError.Procedure.ProcedureCallFailed") == 0)
            return reword(err, MD_E_UNAVAIL, "ltm indexes are not online yet");
        return st;
    }
    for (size_t i = 0; i < MD_ARRAY_LEN(CY_SCHEMA_NAMES); i++) {
        const char *want = CY_SCHEMA_NAMES[i];
        bool found = false;
        for (size_t j = 0; !found && j < md_neo4j_rows(&res, 1); j++) {
            const json_t *row = md_neo4j_row(&res, 1, j);
            const char *name = json_string_value(json_array_get(row, 0));
            const char *state = json_string_value(json_array_get(row, 1));
            if (!name || strcmp(name, want) != 0)
                continue;
            found = true;
            if (!state || strcmp(state, "ONLINE") != 0) {
                st = md_error_set(err, MD_E_UNAVAIL, "ltm indexes are not online yet");
                md_error_detail(err, "neo4j index %s is %s", want, state ? state : "?");
            } else if (i < CY_N_CONSTRAINTS && !json_is_true(json_array_get(row, 2))) {
                st = md_error_set(err, MD_E_UNAVAIL, "ltm schema is not in place");
                md_error_detail(err, "neo4j index %s exists but is not a constraint", want);
            }
        }
        if (!found) {
            st = md_error_set(err, MD_E_UNAVAIL, "ltm schema is not in place");
            md_error_detail(err, "neo4j schema object %s missing (an equivalent one under "
                                 "another name?)",
                            want);
        }
        if (st != MD_OK)
            break;
    }
    md_neo4j_result_release(&res);
    return st;
}

/* ---- construction ------------------------------------------------------------------------- */

static void op_destroy(void *self)
{
    struct ltm_neo4j *l = self;
    md_neo4j_free(l->db);
    free(l);
}

static const struct md_ltm_ops neo4j_ops = {
    .backend = "neo4j",
    .create = op_create,
    .get = op_get,
    .patch = op_patch,
    .del = op_del,
    .search = op_search,
    .concepts = op_concepts,
    .concept_rules = op_concept_rules,
    .history = op_history,
    .concept_links = op_concept_links,
    .scenario = op_scenario,
    .rules_exist = op_rules_exist,
    .sources_without_snapshot = op_sources_without_snapshot,
    .stats = op_stats,
    .ping = op_ping,
    .ensure_schema = op_ensure_schema,
    .destroy = op_destroy,
};

static int64_t secs_to_ms(double s)
{
    return (int64_t)(s * 1000.0 + 0.5);
}

struct md_ltm *md_ltm_neo4j_new(const struct md_config *cfg, struct md_error *err)
{
    struct ltm_neo4j *l = calloc(1, sizeof(*l));
    if (!l) {
        oom(err);
        return NULL;
    }
    struct md_neo4j_options opt = {
        .base_url = cfg->neo4j_http_base,
        .database = cfg->neo4j_database,
        .username = cfg->neo4j_username,
        .password = cfg->neo4j_password,
        .ca_file = cfg->neo4j_ca_file,
        .max_connections = (int)MD_MIN(cfg->neo4j_max_connection_pool_size, 10000),
        .max_lifetime_ms = secs_to_ms(cfg->neo4j_max_connection_lifetime),
        .acquisition_timeout_ms = secs_to_ms(cfg->neo4j_connection_acquisition_timeout),
        .connect_timeout_ms = secs_to_ms(cfg->neo4j_connection_timeout),
        .query_timeout_ms = secs_to_ms(cfg->neo4j_query_timeout),
        .max_retry_ms = secs_to_ms(cfg->neo4j_max_retry_time),
    };
    l->db = md_neo4j_new(&opt, err);
    if (!l->db) {
        free(l);
        return NULL;
    }
    /* Wait for index population within the request's own timeout. */
    l->await_s = MD_MAX((int64_t)1, MD_MIN((int64_t)60, opt.query_timeout_ms / 1000 - 1));
    l->base.ops = &neo4j_ops;
    return &l->base;
}

void md_ltm_neo4j_pool_stats(struct md_ltm *l, struct md_pool_stats *out)
{
    if (!l || l->ops != &neo4j_ops) {
        md_neo4j_pool_stats(NULL, out);
        return;
    }
    md_neo4j_pool_stats(((struct ltm_neo4j *)(void *)l)->db, out);
}
