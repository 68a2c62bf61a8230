/*
 * ltm_sqlite.c — the embedded LTM backend: rules, concepts, policies,
 * scenarios (with evidence snapshots) and rule versions in the shared SQLite
 * file (schema version 2 in src/store/sqlite_db.c).
 *
 * DESIGN. The graph of spec §4 maps onto tables:
 *   ltm_rules          one row per Rule; `id` (the rowid) keys every link
 *   ltm_policies       Policy nodes; GOVERNS is ltm_rules.policy
 *   ltm_concepts       Concept nodes, keyed by fold key, first spelling kept
 *   ltm_rule_concepts  RELATES_TO, with the rule's own spelling and order
 *   ltm_scenarios      Scenario nodes with their snapshot columns
 *   ltm_rule_sources   DERIVED_FROM
 *   ltm_rule_versions  RuleVersion: one row per previous state of a rule
 * Links cascade from ltm_rules; Concept and Policy rows left without a rule
 * are deleted by the statement that orphaned them; scenarios stay.
 *
 * Full text: ltm_rules_fts is an FTS5 external-content table over
 * ltm_rules(rule_text, concept_names), keyed by the rule rowid, tokenizer
 * `unicode61 remove_diacritics 0` (accents count, as in Neo4j's standard
 * analyzer). concept_names is the rule's concept
 * spellings joined by newlines, kept in the rule row for the index only.
 * FTS rows are written here, in the same transaction as the rule row, always
 * copied from the row itself ("delete" before a change, insert after), so the
 * index can never disagree with the content ('rebuild' would restore it).
 * Triggers are not an option: with trusted_schema=OFF SQLite refuses virtual
 * tables inside triggers. A query matches ANY word in either column:
 * `"w1" OR "w2"`, each word a double-quoted FTS5 string with '"' doubled, so
 * no user text is ever parsed as query syntax. score = -bm25(), higher first.
 *
 * Transactions: every call runs on one leased connection in one transaction.
 * Writes use md_sqlite_begin (BEGIN IMMEDIATE behind the in-process write
 * lock), so id generation ("lowest free prefix_NN") and the version bump are
 * serialised; reads use a deferred BEGIN, a consistent WAL snapshot that
 * never waits for writers. Lists attach concepts and sources to a whole page
 * with one statement each (json_each over the page's rowids), so the number
 * of statements does not grow with the page; item loops (concepts and sources
 * of one write) reuse one prepared statement in-process.
 */
#include "memoryd/compat.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memoryd/buf.h"
#include "memoryd/ids.h"
#include "memoryd/json_load.h"
#include "memoryd/ltm.h"
#include "memoryd/sqlite_db.h"

#define LEASE_TIMEOUT_MS 5000   /* wait for a pooled connection */
#define PING_TIMEOUT_MS 1000    /* health answers within a second */
#define PAGE_MAX 10000          /* hard cap on one search page */
#define RULES_MAX 10000         /* cap on unpaged rule lists (concept, scenario) */
#define PAIRS_MAX 100000        /* cap on sources_without_snapshot */
#define JSON_LIST_MAX (8u << 20) /* JSON arrays bound as parameters */
#define FTS_QUERY_MAX 16384     /* the MATCH expression */
#define ID_NUM_MAX 9999         /* generated ids: prefix_01 … prefix_9999 */
#define ID_BITMAP_BYTES ((ID_NUM_MAX + 8) / 8)

struct ltm_sqlite {
    struct md_ltm base;   /* first member: ops table */
    struct md_sqlite *db; /* borrowed: main owns the database */
};

/* ---- SQL ------------------------------------------------------------------------------------ */

/* Every rule read selects these columns first, in this order (see read_rules). */
#define RULE_COLS "r.id, r.rule_id, r.policy, r.rule_text, r.confidence, r.version," \
                  " r.created_ms, r.updated_ms"
#define RULE_ORDER "r.confidence DESC, r.updated_ms DESC, r.rule_id"

static const char SQL_BEGIN_READ[] = "BEGIN";
static const char SQL_RULE_BY_ID[] =
    "SELECT " RULE_COLS ", 0.0 FROM ltm_rules r WHERE r.rule_id = ?1";
static const char SQL_RULE_HEAD[] = "SELECT id, policy FROM ltm_rules WHERE rule_id = ?1";
static const char SQL_RULE_EXISTS[] = "SELECT 1 FROM ltm_rules WHERE rule_id = ?1";
static const char SQL_IDS_UNDER[] =
    "SELECT substr(rule_id, ?3) FROM ltm_rules WHERE rule_id > ?1 AND rule_id < ?2";
static const char SQL_POLICY_ADD[] =
    "INSERT INTO ltm_policies (name) VALUES (?1) ON CONFLICT (name) DO NOTHING";
static const char SQL_RULE_INSERT[] =
    "INSERT INTO ltm_rules (rule_id, policy, rule_text, concept_names, confidence, version,"
    " created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)";
static const char SQL_RULE_UPDATE[] =
    "UPDATE ltm_rules SET rule_text = ?2, concept_names = ?3, confidence = ?4,"
    " version = version + 1, updated_ms = ?5 WHERE id = ?1";
static const char SQL_RULE_DELETE[] = "DELETE FROM ltm_rules WHERE id = ?1";
static const char SQL_FTS_ADD[] =
    "INSERT INTO ltm_rules_fts (rowid, rule_text, concept_names)"
    " SELECT id, rule_text, concept_names FROM ltm_rules WHERE id = ?1";
static const char SQL_FTS_DEL[] =
    "INSERT INTO ltm_rules_fts (ltm_rules_fts, rowid, rule_text, concept_names)"
    " SELECT 'delete', id, rule_text, concept_names FROM ltm_rules WHERE id = ?1";
static const char SQL_CONCEPT_ADD[] =
    "INSERT INTO ltm_concepts (key, name) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING";
static const char SQL_RULE_CONCEPT_ADD[] =
    "INSERT INTO ltm_rule_concepts (rule, key, name, pos) VALUES (?1, ?2, ?3, ?4)";
static const char SQL_RULE_CONCEPTS_CLEAR[] = "DELETE FROM ltm_rule_concepts WHERE rule = ?1";
static const char SQL_RULE_CONCEPT_KEYS[] =
    "SELECT json_group_array(key) FROM ltm_rule_concepts WHERE rule = ?1";
static const char SQL_CONCEPTS_ORPHANED[] =
    "DELETE FROM ltm_concepts WHERE key IN (SELECT value FROM json_each(?1))"
    " AND NOT EXISTS (SELECT 1 FROM ltm_rule_concepts rc WHERE rc.key = ltm_concepts.key)";
static const char SQL_POLICY_ORPHANED[] =
    "DELETE FROM ltm_policies WHERE name = ?1"
    " AND NOT EXISTS (SELECT 1 FROM ltm_rules WHERE policy = ?1)";
static const char SQL_SCENARIO_ADD[] =
    "INSERT INTO ltm_scenarios (scenario_id) VALUES (?1) ON CONFLICT (scenario_id) DO NOTHING";
static const char SQL_SOURCE_ADD[] =
    "INSERT INTO ltm_rule_sources (rule, scenario_id) VALUES (?1, ?2)"
    " ON CONFLICT (rule, scenario_id) DO NOTHING";
static const char SQL_SNAPSHOT_PUT[] =
    "INSERT INTO ltm_scenarios (scenario_id, snapshot_json, snapshot_sha256, snapshot_ms,"
    " has_feedback, final_status) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    " ON CONFLICT (scenario_id) DO UPDATE SET snapshot_json = excluded.snapshot_json,"
    " snapshot_sha256 = excluded.snapshot_sha256, snapshot_ms = excluded.snapshot_ms,"
    " has_feedback = excluded.has_feedback, final_status = excluded.final_status";
static const char SQL_VERSION_ADD[] =
    "INSERT INTO ltm_rule_versions (rule, version, rule_text, confidence, concepts_json,"
    " sources_json, recorded_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char SQL_VERSIONS[] =
    "SELECT version, rule_text, confidence, concepts_json, sources_json, recorded_ms"
    " FROM ltm_rule_versions WHERE rule = ?1 ORDER BY version";
static const char SQL_RULE_SOURCE_IDS[] =
    "SELECT scenario_id FROM ltm_rule_sources WHERE rule = ?1 ORDER BY scenario_id";
/* concepts and sources of a page of rules: ?1 is a JSON array of rowids, j.key the index */
static const char SQL_PAGE_CONCEPTS[] =
    "SELECT j.key, rc.name, rc.key FROM json_each(?1) j"
    " JOIN ltm_rule_concepts rc ON rc.rule = j.value ORDER BY j.key, rc.pos";
static const char SQL_PAGE_SOURCES[] =
    "SELECT j.key, rs.scenario_id FROM json_each(?1) j"
    " JOIN ltm_rule_sources rs ON rs.rule = j.value ORDER BY j.key, rs.scenario_id";
static const char SQL_SOURCE_INFO[] =
    "SELECT s.scenario_id, s.snapshot_json IS NOT NULL, s.has_feedback, s.final_status,"
    " s.snapshot_ms, s.snapshot_sha256 FROM ltm_rule_sources rs"
    " JOIN ltm_scenarios s ON s.scenario_id = rs.scenario_id"
    " WHERE rs.rule = ?1 ORDER BY rs.scenario_id";
static const char SQL_POLICY_OF[] =
    "SELECT p.name FROM ltm_rules r JOIN ltm_policies p ON p.name = r.policy WHERE r.id = ?1";
static const char SQL_CONCEPTS_PAGE[] =
    "SELECT c.key, c.name, (SELECT count(*) FROM ltm_rule_concepts rc WHERE rc.key = c.key)"
    " FROM ltm_concepts c WHERE c.key > ?1 ORDER BY c.key LIMIT ?2";
static const char SQL_CONCEPT_NAME[] = "SELECT name FROM ltm_concepts WHERE key = ?1";
static const char SQL_CONCEPT_RULES[] =
    "SELECT " RULE_COLS ", 0.0 FROM ltm_rule_concepts rc JOIN ltm_rules r ON r.id = rc.rule"
    " WHERE rc.key = ?1 ORDER BY " RULE_ORDER " LIMIT ?2";
static const char SQL_CONCEPT_LINKS[] =
    "SELECT rc.pos, rc.name, o.rule_id FROM ltm_rule_concepts rc"
    " LEFT JOIN ltm_rule_concepts x ON x.key = rc.key AND x.rule <> rc.rule"
    " LEFT JOIN ltm_rules o ON o.id = x.rule"
    " WHERE rc.rule = ?1 ORDER BY rc.pos, o.rule_id";
static const char SQL_SCENARIO[] =
    "SELECT snapshot_json, snapshot_sha256, snapshot_ms, has_feedback, final_status"
    " FROM ltm_scenarios WHERE scenario_id = ?1";
static const char SQL_SCENARIO_RULES[] =
    "SELECT " RULE_COLS ", 0.0 FROM ltm_rule_sources rs JOIN ltm_rules r ON r.id = rs.rule"
    " WHERE rs.scenario_id = ?1 ORDER BY " RULE_ORDER " LIMIT ?2";
static const char SQL_RULES_EXIST[] =
    "SELECT j.key FROM json_each(?1) j"
    " WHERE EXISTS (SELECT 1 FROM ltm_rules r WHERE r.rule_id = j.value)";
static const char SQL_UNSNAPSHOTTED[] =
    "SELECT r.rule_id, rs.scenario_id FROM ltm_scenarios s"
    " JOIN ltm_rule_sources rs ON rs.scenario_id = s.scenario_id"
    " JOIN ltm_rules r ON r.id = rs.rule"
    " WHERE s.snapshot_json IS NULL ORDER BY r.rule_id, rs.scenario_id LIMIT ?1";
static const char SQL_STATS_RULES[] =
    "SELECT count(*), COALESCE(avg(confidence), 0.0) FROM ltm_rules";
static const char SQL_STATS_CONCEPTS[] = "SELECT count(*) FROM ltm_concepts";
static const char SQL_STATS_POLICIES[] =
    "SELECT policy, count(*) FROM ltm_rules GROUP BY policy ORDER BY policy";
static const char SQL_STATS_NO_SOURCES[] =
    "SELECT count(*) FROM ltm_rules r"
    " WHERE NOT EXISTS (SELECT 1 FROM ltm_rule_sources s WHERE s.rule = r.id)";
static const char SQL_PING[] = "SELECT 1 FROM ltm_rules LIMIT 1";

/*
 * Search: one statement per mode and combination of filters, so that SQLite
 * can choose the index that fits (policy, the ranking index, the concept
 * index). Built once; the static buffers' addresses serve as statement-cache
 * keys. Parameters: ?1 MATCH text, ?2 policy, ?3 min confidence, ?4 JSON
 * array of concept keys, ?5 limit, ?6 offset.
 */
enum { SF_TEXT = 1, SF_POLICY = 2, SF_MIN = 4, SF_CONCEPTS = 8, SF_COMBOS = 16 };
static char search_sql[SF_COMBOS][1024];
static pthread_once_t search_sql_once = PTHREAD_ONCE_INIT;

static void build_search_sql(void)
{
    for (unsigned m = 0; m < SF_COMBOS; m++) {
        bool text = m & SF_TEXT;
        snprintf(search_sql[m], sizeof(search_sql[m]),
                 "SELECT " RULE_COLS ", %s FROM %s WHERE %s%s%s%s"
                 " ORDER BY %s" RULE_ORDER " LIMIT ?5 OFFSET ?6",
                 text ? "-bm25(ltm_rules_fts) AS score" : "0.0",
                 text ? "ltm_rules_fts JOIN ltm_rules r ON r.id = ltm_rules_fts.rowid"
                      : "ltm_rules r",
                 text ? "ltm_rules_fts MATCH ?1" : "1",
                 m & SF_POLICY ? " AND r.policy = ?2" : "",
                 m & SF_MIN ? " AND r.confidence >= ?3" : "",
                 m & SF_CONCEPTS ? " AND r.id IN (SELECT rc.rule FROM ltm_rule_concepts rc"
                                   " WHERE rc.key IN (SELECT value FROM json_each(?4)))"
                                 : "",
                 text ? "score DESC, " : "");
    }
}

/* ---- small helpers -------------------------------------------------------------------------- */

static enum md_status nomem(struct md_error *err, const char *what)
{
    return md_error_set(err, MD_E_NOMEM, "out of memory %s", what);
}

static enum md_status malformed(struct md_error *err, const char *what)
{
    return md_error_set(err, MD_E_INTERNAL, "stored %s is malformed", what);
}

/* Step a statement that returns no rows we need. */
static enum md_status step_done(struct md_sqlite_conn *c, sqlite3_stmt *q, const char *what,
                                struct md_error *err)
{
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        (void)sqlite3_reset(q);
        return MD_OK;
    }
    return md_sqlite_error(c, rc, what, err);
}

/* Step once: *row tells whether a row came back. */
static enum md_status step_row(struct md_sqlite_conn *c, sqlite3_stmt *q, bool *row,
                               const char *what, struct md_error *err)
{
    int rc = sqlite3_step(q);
    *row = rc == SQLITE_ROW;
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return MD_OK;
    return md_sqlite_error(c, rc, what, err);
}

static const char *col_text(sqlite3_stmt *q, int i)
{
    const unsigned char *s = sqlite3_column_text(q, i);
    return s ? (const char *)s : NULL;
}

/* Copy a text column into a fixed buffer of cap bytes; false if NULL or too long. */
static bool col_copy(sqlite3_stmt *q, int i, char *out, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(q, i);
    size_t len = s ? (size_t)sqlite3_column_bytes(q, i) : 0;
    if (!s || len >= cap)
        return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

static bool verdict_from_name(const char *s, enum md_verdict *out)
{
    for (int i = 0; s && i < MD_VERDICT_COUNT; i++)
        if (strcmp(s, md_verdict_name((enum md_verdict)i)) == 0) {
            *out = (enum md_verdict)i;
            return true;
        }
    return false;
}

static enum md_verdict col_verdict(sqlite3_stmt *q, int i)
{
    enum md_verdict v = MD_VERDICT_NONE;
    const char *s = col_text(q, i);
    if (s)
        (void)verdict_from_name(s, &v);
    return v;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* Append an owned string to a growable vector (*cap tracks the allocation). */
static bool strv_push(char ***v, size_t *n, size_t *cap, char *s)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        char **nv = realloc(*v, nc * sizeof(*nv));
        if (!nv)
            return false;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = s;
    return true;
}

/* JSON array of strings (valid UTF-8) into b. */
static enum md_status json_strings(struct md_buf *b, const char *const *v, size_t n)
{
    enum md_status st = md_buf_putc(b, '[');
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        if (i)
            st = md_buf_putc(b, ',');
        if (st == MD_OK)
            st = md_buf_json_str(b, v[i], strlen(v[i]));
    }
    return st == MD_OK ? md_buf_putc(b, ']') : st;
}

static enum md_status buf_fail(enum md_status st, struct md_error *err, const char *what)
{
    if (st == MD_E_LIMIT)
        return md_error_set(err, MD_E_LIMIT, "%s is too large", what);
    return nomem(err, what);
}

/* Parse a stored JSON array of strings into an owned vector. */
static enum md_status parse_strv(const char *json, char ***out, size_t *n_out,
                                 struct md_error *err)
{
    *out = NULL;
    *n_out = 0;
    json_t *a = json ? md_json_load(json, strlen(json), 0, NULL, NULL) : NULL;
    if (!json_is_array(a)) {
        json_decref(a);
        return malformed(err, "rule version");
    }
    size_t n = json_array_size(a);
    enum md_status st = MD_OK;
    char **v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        st = nomem(err, "reading a rule version");
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!s) {
            st = malformed(err, "rule version");
            break;
        }
        v[i] = strdup(s);
        if (!v[i])
            st = nomem(err, "reading a rule version");
    }
    json_decref(a);
    if (st != MD_OK) {
        free_strv(v, n);
        return st;
    }
    *out = v;
    *n_out = n;
    return MD_OK;
}

/* ---- leases and transactions ---------------------------------------------------------------- */

static enum md_status lease(struct ltm_sqlite *s, int64_t timeout_ms, struct md_sqlite_conn **c,
                            struct md_error *err)
{
    return md_sqlite_checkout(s->db, timeout_ms, c, err);
}

/* Deferred read transaction: one consistent snapshot for every statement of a call. */
static enum md_status begin_read(struct md_sqlite_conn *c, struct md_error *err)
{
    enum md_status st = MD_OK;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_BEGIN_READ, &st, err);
    if (!q)
        return st;
    return step_done(c, q, "starting a read transaction", err);
}

/* Commit when st is MD_OK (a failed commit becomes the result), else roll back; check in. */
static enum md_status finish(struct ltm_sqlite *s, struct md_sqlite_conn *c, enum md_status st,
                             struct md_error *err)
{
    if (!c)
        return st;
    if (st == MD_OK)
        st = md_sqlite_commit(c, err);
    else
        md_sqlite_rollback(c);
    md_sqlite_checkin(s->db, c);
    return st;
}

/* ---- reading rules -------------------------------------------------------------------------- */

/* Rules being read, with their rowids (parallel arrays). */
struct rule_rows {
    struct md_rule *items;
    int64_t *rids;
    size_t count, cap;
};

static void rule_rows_release(struct rule_rows *rr)
{
    for (size_t i = 0; rr->items && i < rr->count; i++)
        md_rule_release(&rr->items[i]);
    free(rr->items);
    free(rr->rids);
    memset(rr, 0, sizeof(*rr));
}

/* Hand the items to a list (which then owns them). */
static void rule_rows_to_list(struct rule_rows *rr, struct md_rule_list *out, bool more)
{
    out->items = rr->items;
    out->count = rr->count;
    out->more = more;
    free(rr->rids);
    memset(rr, 0, sizeof(*rr));
}

static enum md_status rows_reserve(struct rule_rows *rr, struct md_error *err)
{
    if (rr->count < rr->cap)
        return MD_OK;
    size_t nc = rr->cap ? rr->cap * 2 : 8;
    struct md_rule *ni = realloc(rr->items, nc * sizeof(*ni));
    if (!ni)
        return nomem(err, "reading rules");
    rr->items = ni;
    int64_t *nr = realloc(rr->rids, nc * sizeof(*nr));
    if (!nr)
        return nomem(err, "reading rules");
    rr->rids = nr;
    rr->cap = nc;
    return MD_OK;
}

/*
 * Step q (columns: RULE_COLS, score) into rr, at most max rows; *more is
 * set when a further row exists. Concepts and sources are attached later.
 */
static enum md_status read_rules(struct md_sqlite_conn *c, sqlite3_stmt *q, size_t max,
                                 struct rule_rows *rr, bool *more, struct md_error *err)
{
    if (more)
        *more = false;
    for (;;) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW)
            return md_sqlite_error(c, rc, "reading rules", err);
        if (rr->count >= max) {
            if (more)
                *more = true;
            break;
        }
        enum md_status st = rows_reserve(rr, err);
        if (st != MD_OK)
            return st;
        struct md_rule *r = &rr->items[rr->count];
        memset(r, 0, sizeof(*r));
        rr->rids[rr->count] = sqlite3_column_int64(q, 0);
        rr->count++;
        if (!col_copy(q, 1, r->rule_id, sizeof(r->rule_id)) ||
            !col_copy(q, 2, r->policy, sizeof(r->policy)))
            return malformed(err, "rule");
        r->rule_text = md_sqlite_col_dup(q, 3, NULL);
        if (!r->rule_text)
            return nomem(err, "reading rules");
        r->confidence = sqlite3_column_double(q, 4);
        r->version = sqlite3_column_int64(q, 5);
        r->created_ms = sqlite3_column_int64(q, 6);
        r->updated_ms = sqlite3_column_int64(q, 7);
        r->score = sqlite3_column_double(q, 8);
    }
    (void)sqlite3_reset(q);
    return MD_OK;
}

/* JSON array of the rows' rowids. */
static enum md_status rids_json(const struct rule_rows *rr, struct md_buf *b, struct md_error *err)
{
    enum md_status st = md_buf_putc(b, '[');
    for (size_t i = 0; st == MD_OK && i < rr->count; i++)
        st = md_buf_printf(b, i ? ",%lld" : "%lld", (long long)rr->rids[i]);
    if (st == MD_OK)
        st = md_buf_putc(b, ']');
    return st == MD_OK ? MD_OK : buf_fail(st, err, "rule id list");
}

/* Row index of a page statement's first column, checked against the page. */
static bool page_index(sqlite3_stmt *q, const struct rule_rows *rr, size_t *idx)
{
    int64_t k = sqlite3_column_int64(q, 0);
    if (k < 0 || (uint64_t)k >= rr->count)
        return false;
    *idx = (size_t)k;
    return true;
}

/* Attach concepts (in the rule's order) and sources (sorted) to every row: two statements. */
static enum md_status attach_parts(struct md_sqlite_conn *c, struct rule_rows *rr,
                                   struct md_error *err)
{
    if (rr->count == 0)
        return MD_OK;
    struct md_buf ids;
    md_buf_init(&ids, JSON_LIST_MAX);
    enum md_status st = rids_json(rr, &ids, err);
    sqlite3_stmt *q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_PAGE_CONCEPTS, &st, err);
    if (q && sqlite3_bind_text(q, 1, ids.data, (int)ids.len, SQLITE_STATIC) != SQLITE_OK)
        st = md_sqlite_error(c, sqlite3_errcode(md_sqlite_handle(c)), "reading concepts", err);
    size_t cur = SIZE_MAX, cap = 0;
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "reading concepts", err);
            break;
        }
        size_t i;
        if (!page_index(q, rr, &i)) {
            st = malformed(err, "concept link");
            break;
        }
        struct md_rule *r = &rr->items[i];
        if (i != cur) {
            cur = i;
            cap = r->n_concepts;
        }
        if (r->n_concepts == cap) {
            size_t nc = cap ? cap * 2 : 4;
            struct md_concept *nv = realloc(r->concepts, nc * sizeof(*nv));
            if (!nv) {
                st = nomem(err, "reading concepts");
                break;
            }
            r->concepts = nv;
            cap = nc;
        }
        struct md_concept *k = &r->concepts[r->n_concepts];
        k->name = md_sqlite_col_dup(q, 1, NULL);
        k->key = md_sqlite_col_dup(q, 2, NULL);
        r->n_concepts++;
        if (!k->name || !k->key)
            st = nomem(err, "reading concepts");
    }
    if (q)
        (void)sqlite3_reset(q);

    q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_PAGE_SOURCES, &st, err);
    if (q && sqlite3_bind_text(q, 1, ids.data, (int)ids.len, SQLITE_STATIC) != SQLITE_OK)
        st = md_sqlite_error(c, sqlite3_errcode(md_sqlite_handle(c)), "reading sources", err);
    cur = SIZE_MAX;
    cap = 0;
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "reading sources", err);
            break;
        }
        size_t i;
        if (!page_index(q, rr, &i)) {
            st = malformed(err, "source link");
            break;
        }
        struct md_rule *r = &rr->items[i];
        if (i != cur) {
            cur = i;
            cap = r->n_sources;
        }
        char *sid = md_sqlite_col_dup(q, 1, NULL);
        if (!sid || !strv_push(&r->sources, &r->n_sources, &cap, sid)) {
            free(sid);
            st = nomem(err, "reading sources");
        }
    }
    if (q)
        (void)sqlite3_reset(q);
    md_buf_release(&ids);
    return st;
}

/* Run a rule statement already bound (columns RULE_COLS, score) into a complete list. */
static enum md_status query_rules(struct md_sqlite_conn *c, sqlite3_stmt *q, size_t max,
                                  struct md_rule_list *out, struct md_error *err)
{
    struct rule_rows rr = {0};
    bool more = false;
    enum md_status st = read_rules(c, q, max, &rr, &more, err);
    if (st == MD_OK)
        st = attach_parts(c, &rr, err);
    if (st != MD_OK) {
        rule_rows_release(&rr);
        return st;
    }
    rule_rows_to_list(&rr, out, more);
    return MD_OK;
}

/* One complete rule by id; MD_E_NOTFOUND if absent. *rid receives its rowid. */
static enum md_status load_rule(struct md_sqlite_conn *c, const char *rule_id,
                                struct md_rule *out, int64_t *rid, struct md_error *err)
{
    enum md_status st = MD_OK;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_RULE_BY_ID, &st, err);
    if (!q)
        return st;
    md_sqlite_bind_text(q, 1, rule_id);
    struct rule_rows rr = {0};
    st = read_rules(c, q, 1, &rr, NULL, err);
    if (st == MD_OK && rr.count == 0)
        st = md_error_set(err, MD_E_NOTFOUND, "no rule '%s'", rule_id);
    if (st == MD_OK)
        st = attach_parts(c, &rr, err);
    if (st == MD_OK) {
        *out = rr.items[0];
        if (rid)
            *rid = rr.rids[0];
        free(rr.items);
        free(rr.rids);
        return MD_OK;
    }
    rule_rows_release(&rr);
    return st;
}

/* Rowid and policy of a rule; MD_E_NOTFOUND if absent. */
static enum md_status rule_head(struct md_sqlite_conn *c, const char *rule_id, int64_t *rid,
                                char policy[MD_POLICY_MAX + 1], struct md_error *err)
{
    enum md_status st = MD_OK;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_RULE_HEAD, &st, err);
    if (!q)
        return st;
    md_sqlite_bind_text(q, 1, rule_id);
    bool row;
    st = step_row(c, q, &row, "reading a rule", err);
    if (st == MD_OK && !row)
        st = md_error_set(err, MD_E_NOTFOUND, "no rule '%s'", rule_id);
    if (st == MD_OK) {
        *rid = sqlite3_column_int64(q, 0);
        if (policy && !col_copy(q, 1, policy, MD_POLICY_MAX + 1))
            st = malformed(err, "rule");
    }
    (void)sqlite3_reset(q);
    return st;
}

/* ---- writing -------------------------------------------------------------------------------- */

/*
 * The lowest free "prefix_NN" under the write lock: the smallest n in
 * 1…9999 for which the id the generator would write (NN = %02u) is not
 * taken. Same rule as the Neo4j backend.
 */
static enum md_status next_free_id(struct md_sqlite_conn *c, const char *prefix,
                                   char out[MD_RULE_ID_MAX + 1], struct md_error *err)
{
    size_t plen = strlen(prefix);
    if (plen == 0 || plen + 3 > MD_RULE_ID_MAX)
        return md_error_set_field(err, MD_E_INVAL, "rule_id", "rule id prefix is too long");
    char lo[MD_RULE_ID_MAX + 2], hi[MD_RULE_ID_MAX + 2];
    snprintf(lo, sizeof(lo), "%s_", prefix);
    snprintf(hi, sizeof(hi), "%s`", prefix); /* '`' follows '_': the range of "prefix_…" */
    unsigned char *taken = calloc(1, ID_BITMAP_BYTES); /* bit n: prefix_n exists */
    if (!taken)
        return nomem(err, "generating a rule id");
    enum md_status st = MD_OK;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_IDS_UNDER, &st, err);
    if (q) {
        md_sqlite_bind_text(q, 1, lo);
        md_sqlite_bind_text(q, 2, hi);
        sqlite3_bind_int64(q, 3, (sqlite3_int64)plen + 2);
    }
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "generating a rule id", err);
            break;
        }
        /* only the canonical form the generator writes counts ("01"-"09", "10"-"9999");
         * qualifiers ("Unbundled_01") and other spellings ("001", "0005") do not */
        const char *sfx = col_text(q, 0);
        size_t n = sfx ? strlen(sfx) : 0;
        if (n < 2 || n > 4 || strspn(sfx, "0123456789") != n)
            continue;
        unsigned v = (unsigned)strtoul(sfx, NULL, 10);
        char canon[8];
        snprintf(canon, sizeof(canon), "%02u", v);
        if (v >= 1 && strcmp(canon, sfx) == 0)
            taken[v / 8] |= (unsigned char)(1u << (v % 8));
    }
    if (q)
        (void)sqlite3_reset(q);
    unsigned v = 1;
    while (v <= ID_NUM_MAX && (taken[v / 8] & (1u << (v % 8))))
        v++;
    free(taken);
    if (st != MD_OK)
        return st;
    if (v > ID_NUM_MAX)
        return md_error_set(err, MD_E_CONFLICT, "every rule id under '%s' is taken", prefix);
    int n = snprintf(out, MD_RULE_ID_MAX + 1, "%s_%02u", prefix, v);
    if (n < 0 || (size_t)n > MD_RULE_ID_MAX)
        return md_error_set_field(err, MD_E_INVAL, "rule_id", "rule id prefix is too long");
    return MD_OK;
}

/* The rule's concept names joined by newlines (the FTS column). */
static enum md_status concept_names(const struct md_concept *v, size_t n, char **out,
                                    struct md_error *err)
{
    struct md_buf b;
    md_buf_init(&b, JSON_LIST_MAX);
    enum md_status st = md_buf_puts(&b, "");
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        if (i)
            st = md_buf_putc(&b, '\n');
        if (st == MD_OK)
            st = md_buf_puts(&b, v[i].name);
    }
    if (st == MD_OK) {
        *out = md_buf_take(&b, NULL);
        if (!*out)
            st = MD_E_NOMEM;
    }
    md_buf_release(&b);
    return st == MD_OK ? MD_OK : buf_fail(st, err, "concept list");
}

/* Link concepts (upserting Concept rows by fold key) to a rule, in order. */
static enum md_status put_concepts(struct md_sqlite_conn *c, int64_t rid,
                                   const struct md_concept *v, size_t n, struct md_error *err)
{
    enum md_status st = MD_OK;
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        char local[MD_CONCEPT_KEY_MAX + 1];
        const char *key = v[i].key;
        if (!key) {
            md_concept_key(v[i].name, local);
            key = local;
        }
        sqlite3_stmt *q = md_sqlite_prep(c, SQL_CONCEPT_ADD, &st, err);
        if (!q)
            break;
        md_sqlite_bind_text(q, 1, key);
        md_sqlite_bind_text(q, 2, v[i].name);
        st = step_done(c, q, "storing a concept", err);
        if (st != MD_OK)
            break;
        q = md_sqlite_prep(c, SQL_RULE_CONCEPT_ADD, &st, err);
        if (!q)
            break;
        sqlite3_bind_int64(q, 1, rid);
        md_sqlite_bind_text(q, 2, key);
        md_sqlite_bind_text(q, 3, v[i].name);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)i);
        st = step_done(c, q, "linking a concept", err);
    }
    return st;
}

/* Link sources (creating Scenario rows); *added counts links that were new. */
static enum md_status put_sources(struct md_sqlite_conn *c, int64_t rid,
                                  const char *const *v, size_t n, size_t *added,
                                  struct md_error *err)
{
    enum md_status st = MD_OK;
    *added = 0;
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        sqlite3_stmt *q = md_sqlite_prep(c, SQL_SCENARIO_ADD, &st, err);
        if (!q)
            break;
        md_sqlite_bind_text(q, 1, v[i]);
        st = step_done(c, q, "storing a scenario", err);
        if (st != MD_OK)
            break;
        q = md_sqlite_prep(c, SQL_SOURCE_ADD, &st, err);
        if (!q)
            break;
        sqlite3_bind_int64(q, 1, rid);
        md_sqlite_bind_text(q, 2, v[i]);
        st = step_done(c, q, "linking a source scenario", err);
        if (st == MD_OK && sqlite3_changes(md_sqlite_handle(c)) > 0)
            (*added)++;
    }
    return st;
}

/* Write (or rewrite) evidence snapshots onto Scenario rows. */
static enum md_status put_snapshots(struct md_sqlite_conn *c, const struct md_snapshot *v,
                                    size_t n, struct md_error *err)
{
    enum md_status st = MD_OK;
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        if (!v[i].scenario_id || !v[i].entry_json)
            continue;
        sqlite3_stmt *q = md_sqlite_prep(c, SQL_SNAPSHOT_PUT, &st, err);
        if (!q)
            break;
        md_sqlite_bind_text(q, 1, v[i].scenario_id);
        md_sqlite_bind_text(q, 2, v[i].entry_json);
        md_sqlite_bind_text(q, 3, v[i].sha256);
        sqlite3_bind_int64(q, 4, v[i].captured_ms);
        sqlite3_bind_int(q, 5, v[i].has_feedback ? 1 : 0);
        if (v[i].final_status > MD_VERDICT_NONE && v[i].final_status < MD_VERDICT_COUNT)
            md_sqlite_bind_text(q, 6, md_verdict_name(v[i].final_status));
        else
            sqlite3_bind_null(q, 6);
        st = step_done(c, q, "storing an evidence snapshot", err);
    }
    return st;
}

static enum md_status exec_rid(struct md_sqlite_conn *c, const char *sql, int64_t rid,
                               const char *what, struct md_error *err)
{
    enum md_status st = MD_OK;
    sqlite3_stmt *q = md_sqlite_prep(c, sql, &st, err);
    if (!q)
        return st;
    sqlite3_bind_int64(q, 1, rid);
    return step_done(c, q, what, err);
}

/* Owned JSON array of the fold keys linked to a rule (before its links go). */
static enum md_status linked_keys(struct md_sqlite_conn *c, int64_t rid, char **out,
                                  struct md_error *err)
{
    enum md_status st = MD_OK;
    *out = NULL;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_RULE_CONCEPT_KEYS, &st, err);
    if (!q)
        return st;
    sqlite3_bind_int64(q, 1, rid);
    bool row;
    st = step_row(c, q, &row, "reading concept links", err);
    if (st == MD_OK) {
        *out = row ? md_sqlite_col_dup(q, 0, NULL) : strdup("[]");
        if (!*out)
            st = nomem(err, "reading concept links");
    }
    (void)sqlite3_reset(q);
    return st;
}

/* Delete the Concept rows among keys_json that no rule relates to any more. */
static enum md_status drop_orphan_concepts(struct md_sqlite_conn *c, const char *keys_json,
                                           struct md_error *err)
{
    enum md_status st = MD_OK;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_CONCEPTS_ORPHANED, &st, err);
    if (!q)
        return st;
    md_sqlite_bind_text(q, 1, keys_json);
    return step_done(c, q, "removing unused concepts", err);
}

/* Keep a rule's current state as a version row (recorded at its updated_ms). */
static enum md_status keep_version(struct md_sqlite_conn *c, int64_t rid, const struct md_rule *r,
                                   struct md_error *err)
{
    struct md_buf cj, sj;
    md_buf_init(&cj, JSON_LIST_MAX);
    md_buf_init(&sj, JSON_LIST_MAX);
    const char **names = calloc(r->n_concepts ? r->n_concepts : 1, sizeof(*names));
    enum md_status st = names ? MD_OK : MD_E_NOMEM;
    for (size_t i = 0; names && i < r->n_concepts; i++)
        names[i] = r->concepts[i].name;
    if (st == MD_OK)
        st = json_strings(&cj, names, r->n_concepts);
    if (st == MD_OK)
        st = json_strings(&sj, (const char *const *)r->sources, r->n_sources);
    free(names);
    if (st != MD_OK) {
        st = buf_fail(st, err, "rule version");
        goto out;
    }
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_VERSION_ADD, &st, err);
    if (!q)
        goto out;
    sqlite3_bind_int64(q, 1, rid);
    sqlite3_bind_int64(q, 2, r->version);
    md_sqlite_bind_text(q, 3, r->rule_text);
    sqlite3_bind_double(q, 4, r->confidence);
    sqlite3_bind_text(q, 5, cj.data, (int)cj.len, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, sj.data, (int)sj.len, SQLITE_STATIC);
    sqlite3_bind_int64(q, 7, r->updated_ms);
    st = step_done(c, q, "storing a rule version", err);
out:
    md_buf_release(&cj);
    md_buf_release(&sj);
    return st;
}

/* ---- operations: writes --------------------------------------------------------------------- */

static enum md_status ltm_create(void *self, const struct md_rule_new *in, int64_t now_ms,
                                 struct md_rule *out, struct md_error *err)
{
    struct ltm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    if (!in || !in->rule_text || (!in->rule_id && !in->id_prefix) ||
        (in->n_concepts && !in->concepts) || (in->n_sources && !in->sources) ||
        (in->n_snapshots && !in->snapshots))
        return md_error_set(err, MD_E_INVAL, "incomplete rule");
    struct md_sqlite_conn *c = NULL;
    char *names = NULL;
    char id[MD_RULE_ID_MAX + 1], policy[MD_POLICY_MAX + 1];
    enum md_status st = concept_names(in->concepts, in->n_concepts, &names, err);
    if (st == MD_OK)
        st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    if (st == MD_OK)
        st = md_sqlite_begin(c, err);
    if (st != MD_OK)
        goto out;

    if (in->rule_id) {
        if (strlen(in->rule_id) > MD_RULE_ID_MAX) {
            st = md_error_set_field(err, MD_E_INVAL, "rule_id", "rule id is too long");
            goto out;
        }
        snprintf(id, sizeof(id), "%s", in->rule_id);
        sqlite3_stmt *q = md_sqlite_prep(c, SQL_RULE_EXISTS, &st, err);
        if (!q)
            goto out;
        md_sqlite_bind_text(q, 1, id);
        bool row;
        st = step_row(c, q, &row, "checking a rule id", err);
        (void)sqlite3_reset(q);
        if (st == MD_OK && row)
            st = md_error_set(err, MD_E_CONFLICT, "rule '%s' already exists", id);
    } else {
        st = next_free_id(c, in->id_prefix, id, err);
    }
    if (st != MD_OK)
        goto out;
    md_rule_id_policy(id, policy);

    sqlite3_stmt *q = md_sqlite_prep(c, SQL_POLICY_ADD, &st, err);
    if (!q)
        goto out;
    md_sqlite_bind_text(q, 1, policy);
    st = step_done(c, q, "storing a policy", err);
    if (st != MD_OK)
        goto out;
    q = md_sqlite_prep(c, SQL_RULE_INSERT, &st, err);
    if (!q)
        goto out;
    md_sqlite_bind_text(q, 1, id);
    md_sqlite_bind_text(q, 2, policy);
    md_sqlite_bind_text(q, 3, in->rule_text);
    md_sqlite_bind_text(q, 4, names);
    sqlite3_bind_double(q, 5, in->confidence);
    sqlite3_bind_int64(q, 6, now_ms);
    st = step_done(c, q, "storing a rule", err);
    if (st != MD_OK)
        goto out;
    int64_t rid = sqlite3_last_insert_rowid(md_sqlite_handle(c));
    size_t added;
    st = exec_rid(c, SQL_FTS_ADD, rid, "indexing a rule", err);
    if (st == MD_OK)
        st = put_concepts(c, rid, in->concepts, in->n_concepts, err);
    if (st == MD_OK)
        st = put_sources(c, rid, in->sources, in->n_sources, &added, err);
    if (st == MD_OK)
        st = put_snapshots(c, in->snapshots, in->n_snapshots, err);
    if (st == MD_OK)
        st = load_rule(c, id, out, NULL, err);
out:
    st = finish(s, c, st, err);
    if (st != MD_OK)
        md_rule_release(out);
    free(names);
    return st;
}

/* Whether the rule's concept names differ from the patch's (names in order). */
static bool concepts_differ(const struct md_rule *r, const struct md_concept *v, size_t n)
{
    if (r->n_concepts != n)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strcmp(r->concepts[i].name, v[i].name) != 0)
            return true;
    return false;
}

static enum md_status ltm_patch(void *self, const char *rule_id, const struct md_rule_patch *p,
                                int64_t now_ms, struct md_rule *out, bool *changed,
                                struct md_error *err)
{
    struct ltm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    bool dummy;
    if (!changed)
        changed = &dummy;
    *changed = false;
    if (!p || (p->set_concepts && p->n_concepts && !p->concepts) ||
        (p->n_add_sources && !p->add_sources) || (p->n_snapshots && !p->snapshots))
        return md_error_set(err, MD_E_INVAL, "incomplete rule change");
    struct md_sqlite_conn *c = NULL;
    struct md_rule cur;
    memset(&cur, 0, sizeof(cur));
    char *names = NULL, *old_keys = NULL;
    int64_t rid = 0;
    enum md_status st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    if (st == MD_OK)
        st = md_sqlite_begin(c, err);
    if (st == MD_OK)
        st = load_rule(c, rule_id, &cur, &rid, err);
    if (st != MD_OK)
        goto out;

    bool text_changed = p->rule_text && strcmp(p->rule_text, cur.rule_text) != 0;
    bool conf_changed = p->set_confidence && p->confidence != cur.confidence;
    bool concepts_changed = p->set_concepts && concepts_differ(&cur, p->concepts, p->n_concepts);
    size_t added = 0;
    st = put_sources(c, rid, p->add_sources, p->n_add_sources, &added, err);
    if (st != MD_OK)
        goto out;
    *changed = text_changed || conf_changed || concepts_changed || added > 0;
    if (*changed) {
        st = keep_version(c, rid, &cur, err);
        if (st == MD_OK && concepts_changed)
            st = concept_names(p->concepts, p->n_concepts, &names, err);
        if (st == MD_OK && (text_changed || concepts_changed))
            st = exec_rid(c, SQL_FTS_DEL, rid, "unindexing a rule", err);
        if (st == MD_OK && concepts_changed) {
            st = linked_keys(c, rid, &old_keys, err);
            if (st == MD_OK)
                st = exec_rid(c, SQL_RULE_CONCEPTS_CLEAR, rid, "unlinking concepts", err);
            if (st == MD_OK)
                st = put_concepts(c, rid, p->concepts, p->n_concepts, err);
            if (st == MD_OK)
                st = drop_orphan_concepts(c, old_keys, err);
        }
        sqlite3_stmt *q = NULL;
        if (st == MD_OK)
            q = md_sqlite_prep(c, SQL_RULE_UPDATE, &st, err);
        if (q) {
            sqlite3_bind_int64(q, 1, rid);
            md_sqlite_bind_text(q, 2, text_changed ? p->rule_text : cur.rule_text);
            if (names) {
                md_sqlite_bind_text(q, 3, names);
            } else {
                /* unchanged: rebuild from the stored spellings */
                st = concept_names(cur.concepts, cur.n_concepts, &names, err);
                if (st == MD_OK)
                    md_sqlite_bind_text(q, 3, names);
            }
            sqlite3_bind_double(q, 4, conf_changed ? p->confidence : cur.confidence);
            sqlite3_bind_int64(q, 5, now_ms);
            if (st == MD_OK)
                st = step_done(c, q, "updating a rule", err);
        }
        if (st == MD_OK && (text_changed || concepts_changed))
            st = exec_rid(c, SQL_FTS_ADD, rid, "indexing a rule", err);
    }
    if (st == MD_OK)
        st = put_snapshots(c, p->snapshots, p->n_snapshots, err);
    if (st == MD_OK)
        st = load_rule(c, rule_id, out, NULL, err);
out:
    st = finish(s, c, st, err);
    if (st != MD_OK) {
        md_rule_release(out);
        *changed = false;
    }
    md_rule_release(&cur);
    free(names);
    free(old_keys);
    return st;
}

static enum md_status ltm_del(void *self, const char *rule_id, char ***sources, size_t *n_sources,
                              struct md_error *err)
{
    struct ltm_sqlite *s = self;
    *sources = NULL;
    *n_sources = 0;
    struct md_sqlite_conn *c = NULL;
    char **v = NULL;
    size_t n = 0, cap = 0;
    char *old_keys = NULL;
    char policy[MD_POLICY_MAX + 1];
    int64_t rid = 0;
    enum md_status st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    if (st == MD_OK)
        st = md_sqlite_begin(c, err);
    if (st == MD_OK)
        st = rule_head(c, rule_id, &rid, policy, err);
    if (st != MD_OK)
        goto out;

    sqlite3_stmt *q = md_sqlite_prep(c, SQL_RULE_SOURCE_IDS, &st, err);
    if (q)
        sqlite3_bind_int64(q, 1, rid);
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "reading sources", err);
            break;
        }
        char *sid = md_sqlite_col_dup(q, 0, NULL);
        if (!sid || !strv_push(&v, &n, &cap, sid)) {
            free(sid);
            st = nomem(err, "reading sources");
        }
    }
    if (q)
        (void)sqlite3_reset(q);
    if (st == MD_OK)
        st = linked_keys(c, rid, &old_keys, err);
    if (st == MD_OK)
        st = exec_rid(c, SQL_FTS_DEL, rid, "unindexing a rule", err);
    if (st == MD_OK)
        st = exec_rid(c, SQL_RULE_DELETE, rid, "deleting a rule", err);
    if (st == MD_OK)
        st = drop_orphan_concepts(c, old_keys, err);
    if (st == MD_OK) {
        q = md_sqlite_prep(c, SQL_POLICY_ORPHANED, &st, err);
        if (q) {
            md_sqlite_bind_text(q, 1, policy);
            st = step_done(c, q, "removing an unused policy", err);
        }
    }
out:
    st = finish(s, c, st, err);
    free(old_keys);
    if (st != MD_OK) {
        free_strv(v, n);
        return st;
    }
    *sources = v;
    *n_sources = n;
    return MD_OK;
}

/* ---- operations: reads ---------------------------------------------------------------------- */

static enum md_status ltm_get(void *self, const char *rule_id, struct md_rule_detail *out,
                              struct md_error *err)
{
    struct ltm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    struct md_sqlite_conn *c = NULL;
    int64_t rid = 0;
    size_t pcap = 0;
    enum md_status st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    if (st == MD_OK)
        st = begin_read(c, err);
    if (st == MD_OK)
        st = load_rule(c, rule_id, &out->rule, &rid, err);
    if (st != MD_OK)
        goto out;

    out->sources = calloc(out->rule.n_sources ? out->rule.n_sources : 1, sizeof(*out->sources));
    if (!out->sources) {
        st = nomem(err, "reading a rule");
        goto out;
    }
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_SOURCE_INFO, &st, err);
    if (q)
        sqlite3_bind_int64(q, 1, rid);
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "reading sources", err);
            break;
        }
        if (out->n_sources >= out->rule.n_sources) {
            st = malformed(err, "source list");
            break;
        }
        struct md_source *src = &out->sources[out->n_sources++];
        memset(src, 0, sizeof(*src));
        src->snapshot_final_status = MD_VERDICT_NONE;
        if (!col_copy(q, 0, src->scenario_id, sizeof(src->scenario_id))) {
            st = malformed(err, "scenario id");
            break;
        }
        src->has_snapshot = sqlite3_column_int(q, 1) != 0;
        if (src->has_snapshot) {
            src->snapshot_has_feedback = sqlite3_column_int(q, 2) != 0;
            src->snapshot_final_status = col_verdict(q, 3);
            src->snapshot_captured_ms = sqlite3_column_int64(q, 4);
            if (col_text(q, 5))
                (void)col_copy(q, 5, src->snapshot_sha256, sizeof(src->snapshot_sha256));
        }
    }
    if (q)
        (void)sqlite3_reset(q);
    if (st == MD_OK && out->n_sources != out->rule.n_sources)
        st = malformed(err, "source list");

    q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_POLICY_OF, &st, err);
    if (q)
        sqlite3_bind_int64(q, 1, rid);
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "reading policies", err);
            break;
        }
        char *name = md_sqlite_col_dup(q, 0, NULL);
        if (!name || !strv_push(&out->policies, &out->n_policies, &pcap, name)) {
            free(name);
            st = nomem(err, "reading policies");
        }
    }
    if (q)
        (void)sqlite3_reset(q);
out:
    st = finish(s, c, st, err);
    if (st != MD_OK)
        md_rule_detail_release(out);
    return st;
}

/* The FTS5 query matching any of the words: "w1" OR "w2" …, '"' doubled inside. */
static enum md_status fts_query(const char *const *words, size_t n, struct md_buf *b,
                                struct md_error *err)
{
    enum md_status st = md_buf_puts(b, "");
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        if (i)
            st = md_buf_puts(b, " OR ");
        if (st == MD_OK)
            st = md_buf_putc(b, '"');
        for (const char *p = words[i] ? words[i] : ""; st == MD_OK && *p; p++)
            st = *p == '"' ? md_buf_puts(b, "\"\"") : md_buf_putc(b, *p);
        if (st == MD_OK)
            st = md_buf_putc(b, '"');
    }
    return st == MD_OK ? MD_OK : buf_fail(st, err, "full-text query");
}

static enum md_status ltm_search(void *self, const struct md_rule_query *qr,
                                 struct md_rule_list *out, struct md_error *err)
{
    struct ltm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    if (!qr || (qr->n_words && !qr->words) || (qr->n_concepts && !qr->concept_keys))
        return md_error_set(err, MD_E_INVAL, "incomplete search");
    pthread_once(&search_sql_once, build_search_sql);
    unsigned mode = (qr->n_words ? SF_TEXT : 0) | (qr->policy ? SF_POLICY : 0) |
                    (qr->has_min_confidence ? SF_MIN : 0) | (qr->n_concepts ? SF_CONCEPTS : 0);
    size_t limit = MD_MIN(qr->limit, (size_t)PAGE_MAX);
    struct md_buf match, keys;
    md_buf_init(&match, FTS_QUERY_MAX);
    md_buf_init(&keys, JSON_LIST_MAX);
    struct md_sqlite_conn *c = NULL;
    enum md_status st = MD_OK;
    if (mode & SF_TEXT)
        st = fts_query(qr->words, qr->n_words, &match, err);
    if (st == MD_OK && (mode & SF_CONCEPTS)) {
        st = json_strings(&keys, qr->concept_keys, qr->n_concepts);
        if (st != MD_OK)
            st = buf_fail(st, err, "concept filter");
    }
    if (st == MD_OK)
        st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    if (st == MD_OK)
        st = begin_read(c, err);
    sqlite3_stmt *q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, search_sql[mode], &st, err);
    if (q) {
        if (mode & SF_TEXT)
            sqlite3_bind_text(q, 1, match.data, (int)match.len, SQLITE_STATIC);
        if (mode & SF_POLICY)
            md_sqlite_bind_text(q, 2, qr->policy);
        if (mode & SF_MIN)
            sqlite3_bind_double(q, 3, qr->min_confidence);
        if (mode & SF_CONCEPTS)
            sqlite3_bind_text(q, 4, keys.data, (int)keys.len, SQLITE_STATIC);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)limit + 1);
        sqlite3_bind_int64(q, 6, qr->offset > (size_t)INT64_MAX ? INT64_MAX
                                                                 : (sqlite3_int64)qr->offset);
        st = query_rules(c, q, limit, out, err);
    }
    st = finish(s, c, st, err);
    if (st != MD_OK)
        md_rule_list_release(out);
    md_buf_release(&match);
    md_buf_release(&keys);
    return st;
}

static enum md_status ltm_concepts(void *self, const char *after_key, size_t limit,
                                   struct md_concept_list *out, struct md_error *err)
{
    struct ltm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    limit = MD_MIN(limit, (size_t)PAGE_MAX);
    struct md_sqlite_conn *c = NULL;
    size_t cap = 0;
    enum md_status st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    sqlite3_stmt *q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_CONCEPTS_PAGE, &st, err);
    if (q) {
        md_sqlite_bind_text(q, 1, after_key ? after_key : "");
        sqlite3_bind_int64(q, 2, (sqlite3_int64)limit + 1);
    }
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "listing concepts", err);
            break;
        }
        if (out->count >= limit) {
            out->more = true;
            break;
        }
        if (out->count == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct md_concept_count *nv = realloc(out->items, nc * sizeof(*nv));
            if (!nv) {
                st = nomem(err, "listing concepts");
                break;
            }
            out->items = nv;
            cap = nc;
        }
        struct md_concept_count *k = &out->items[out->count++];
        k->key = md_sqlite_col_dup(q, 0, NULL);
        k->name = md_sqlite_col_dup(q, 1, NULL);
        k->rule_count = sqlite3_column_int64(q, 2);
        if (!k->key || !k->name)
            st = nomem(err, "listing concepts");
    }
    if (q)
        (void)sqlite3_reset(q);
    /* one statement: no transaction needed */
    if (c)
        md_sqlite_checkin(s->db, c);
    if (st != MD_OK)
        md_concept_list_release(out);
    return st;
}

static enum md_status ltm_concept_rules(void *self, const char *concept_key, char **concept_name,
                                        struct md_rule_list *out, struct md_error *err)
{
    struct ltm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    *concept_name = NULL;
    struct md_sqlite_conn *c = NULL;
    enum md_status st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    if (st == MD_OK)
        st = begin_read(c, err);
    sqlite3_stmt *q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_CONCEPT_NAME, &st, err);
    if (q) {
        md_sqlite_bind_text(q, 1, concept_key);
        bool row;
        st = step_row(c, q, &row, "reading a concept", err);
        if (st == MD_OK && !row)
            st = md_error_set(err, MD_E_NOTFOUND, "no such concept");
        if (st == MD_OK) {
            *concept_name = md_sqlite_col_dup(q, 0, NULL);
            if (!*concept_name)
                st = nomem(err, "reading a concept");
        }
        (void)sqlite3_reset(q);
    }
    q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_CONCEPT_RULES, &st, err);
    if (q) {
        md_sqlite_bind_text(q, 1, concept_key);
        sqlite3_bind_int64(q, 2, RULES_MAX + 1);
        st = query_rules(c, q, RULES_MAX, out, err);
    }
    st = finish(s, c, st, err);
    if (st != MD_OK) {
        md_rule_list_release(out);
        free(*concept_name);
        *concept_name = NULL;
    }
    return st;
}

static enum md_status ltm_history(void *self, const char *rule_id, struct md_rule_history *out,
                                  struct md_error *err)
{
    struct ltm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    struct md_sqlite_conn *c = NULL;
    struct md_rule cur;
    memset(&cur, 0, sizeof(cur));
    int64_t rid = 0;
    size_t cap = 0;
    enum md_status st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    if (st == MD_OK)
        st = begin_read(c, err);
    if (st == MD_OK)
        st = load_rule(c, rule_id, &cur, &rid, err);
    sqlite3_stmt *q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_VERSIONS, &st, err);
    if (q)
        sqlite3_bind_int64(q, 1, rid);
    for (;;) {
        if (st != MD_OK)
            break;
        int rc = q ? sqlite3_step(q) : SQLITE_DONE;
        bool last = rc == SQLITE_DONE; /* then the current state */
        if (!last && rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "reading rule versions", err);
            break;
        }
        if (out->count == cap) {
            size_t nc = cap ? cap * 2 : 4;
            struct md_rule_version *nv = realloc(out->versions, nc * sizeof(*nv));
            if (!nv) {
                st = nomem(err, "reading rule versions");
                break;
            }
            out->versions = nv;
            cap = nc;
        }
        struct md_rule_version *v = &out->versions[out->count++];
        memset(v, 0, sizeof(*v));
        if (last) {
            /* the current state, moved out of cur */
            v->version = cur.version;
            v->rule_text = cur.rule_text;
            cur.rule_text = NULL;
            v->confidence = cur.confidence;
            v->recorded_ms = cur.updated_ms;
            v->concepts = calloc(cur.n_concepts ? cur.n_concepts : 1, sizeof(*v->concepts));
            if (!v->concepts) {
                st = nomem(err, "reading rule versions");
                break;
            }
            for (size_t i = 0; i < cur.n_concepts; i++) {
                v->concepts[i] = cur.concepts[i].name;
                cur.concepts[i].name = NULL;
            }
            v->n_concepts = cur.n_concepts;
            v->sources = cur.sources;
            v->n_sources = cur.n_sources;
            cur.sources = NULL;
            cur.n_sources = 0;
            break;
        }
        v->version = sqlite3_column_int64(q, 0);
        v->confidence = sqlite3_column_double(q, 2);
        v->recorded_ms = sqlite3_column_int64(q, 5);
        v->rule_text = md_sqlite_col_dup(q, 1, NULL);
        if (!v->rule_text) {
            st = nomem(err, "reading rule versions");
            break;
        }
        st = parse_strv(col_text(q, 3), &v->concepts, &v->n_concepts, err);
        if (st == MD_OK)
            st = parse_strv(col_text(q, 4), &v->sources, &v->n_sources, err);
    }
    if (q)
        (void)sqlite3_reset(q);
    st = finish(s, c, st, err);
    md_rule_release(&cur);
    if (st != MD_OK)
        md_rule_history_release(out);
    return st;
}

static enum md_status ltm_concept_links(void *self, const char *rule_id,
                                        struct md_concept_links **out, size_t *n,
                                        struct md_error *err)
{
    struct ltm_sqlite *s = self;
    *out = NULL;
    *n = 0;
    struct md_sqlite_conn *c = NULL;
    struct md_concept_links *v = NULL;
    size_t count = 0, cap = 0, ids_cap = 0;
    int64_t rid = 0, cur_pos = -1;
    enum md_status st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    if (st == MD_OK)
        st = begin_read(c, err);
    if (st == MD_OK)
        st = rule_head(c, rule_id, &rid, NULL, err);
    sqlite3_stmt *q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_CONCEPT_LINKS, &st, err);
    if (q)
        sqlite3_bind_int64(q, 1, rid);
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "reading concept links", err);
            break;
        }
        int64_t pos = sqlite3_column_int64(q, 0);
        if (count == 0 || pos != cur_pos) {
            if (count == cap) {
                size_t nc = cap ? cap * 2 : 8;
                struct md_concept_links *nv = realloc(v, nc * sizeof(*nv));
                if (!nv) {
                    st = nomem(err, "reading concept links");
                    break;
                }
                v = nv;
                cap = nc;
            }
            struct md_concept_links *l = &v[count++];
            memset(l, 0, sizeof(*l));
            cur_pos = pos;
            ids_cap = 0;
            l->concept = md_sqlite_col_dup(q, 1, NULL);
            if (!l->concept) {
                st = nomem(err, "reading concept links");
                break;
            }
        }
        if (sqlite3_column_type(q, 2) == SQLITE_NULL)
            continue; /* no other rule relates to this concept */
        struct md_concept_links *l = &v[count - 1];
        char *other = md_sqlite_col_dup(q, 2, NULL);
        if (!other || !strv_push(&l->rule_ids, &l->n_rule_ids, &ids_cap, other)) {
            free(other);
            st = nomem(err, "reading concept links");
        }
    }
    if (q)
        (void)sqlite3_reset(q);
    st = finish(s, c, st, err);
    if (st != MD_OK) {
        md_concept_links_release(v, count);
        return st;
    }
    *out = v;
    *n = count;
    return MD_OK;
}

static enum md_status ltm_scenario(void *self, const char *scenario_id,
                                   struct md_scenario_info *out, struct md_error *err)
{
    struct ltm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    out->snapshot_final_status = MD_VERDICT_NONE;
    struct md_sqlite_conn *c = NULL;
    enum md_status st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    if (st == MD_OK)
        st = begin_read(c, err);
    sqlite3_stmt *q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_SCENARIO, &st, err);
    if (q) {
        md_sqlite_bind_text(q, 1, scenario_id);
        bool row;
        st = step_row(c, q, &row, "reading a scenario", err);
        if (st == MD_OK && row) {
            out->known = true;
            if (sqlite3_column_type(q, 0) != SQLITE_NULL) {
                out->has_snapshot = true;
                out->snapshot_json = md_sqlite_col_dup(q, 0, NULL);
                if (!out->snapshot_json)
                    st = nomem(err, "reading a scenario");
                if (col_text(q, 1))
                    (void)col_copy(q, 1, out->snapshot_sha256, sizeof(out->snapshot_sha256));
                out->snapshot_captured_ms = sqlite3_column_int64(q, 2);
                out->snapshot_has_feedback = sqlite3_column_int(q, 3) != 0;
                out->snapshot_final_status = col_verdict(q, 4);
            }
        }
        (void)sqlite3_reset(q);
    }
    q = NULL;
    if (st == MD_OK && out->known)
        q = md_sqlite_prep(c, SQL_SCENARIO_RULES, &st, err);
    if (q) {
        md_sqlite_bind_text(q, 1, scenario_id);
        sqlite3_bind_int64(q, 2, RULES_MAX + 1);
        st = query_rules(c, q, RULES_MAX, &out->derived, err);
    }
    st = finish(s, c, st, err);
    if (st != MD_OK) {
        md_scenario_info_release(out);
        out->snapshot_final_status = MD_VERDICT_NONE;
    }
    return st;
}

static enum md_status ltm_rules_exist(void *self, const char *const *rule_ids, size_t n,
                                      bool *exists, struct md_error *err)
{
    struct ltm_sqlite *s = self;
    for (size_t i = 0; i < n; i++)
        exists[i] = false;
    if (n == 0)
        return MD_OK;
    /* ids outside the grammar cannot exist; the rest go in one JSON array,
     * with null in place of the invalid ones so that array indexes match */
    struct md_buf b;
    md_buf_init(&b, JSON_LIST_MAX);
    enum md_status st = md_buf_putc(&b, '[');
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        if (i)
            st = md_buf_putc(&b, ',');
        if (st == MD_OK)
            st = rule_ids[i] && md_rule_id_valid(rule_ids[i])
                     ? md_buf_json_str(&b, rule_ids[i], strlen(rule_ids[i]))
                     : md_buf_puts(&b, "null");
    }
    if (st == MD_OK)
        st = md_buf_putc(&b, ']');
    if (st != MD_OK) {
        md_buf_release(&b);
        return buf_fail(st, err, "rule id list");
    }
    struct md_sqlite_conn *c = NULL;
    st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    sqlite3_stmt *q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_RULES_EXIST, &st, err);
    if (q)
        sqlite3_bind_text(q, 1, b.data, (int)b.len, SQLITE_STATIC);
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "checking rules", err);
            break;
        }
        int64_t k = sqlite3_column_int64(q, 0);
        if (k >= 0 && (uint64_t)k < n)
            exists[k] = true;
    }
    if (q)
        (void)sqlite3_reset(q);
    if (c)
        md_sqlite_checkin(s->db, c);
    md_buf_release(&b);
    if (st != MD_OK)
        for (size_t i = 0; i < n; i++)
            exists[i] = false;
    return st;
}

static enum md_status ltm_sources_without_snapshot(void *self, struct md_pair_list *out,
                                                   struct md_error *err)
{
    struct ltm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    struct md_sqlite_conn *c = NULL;
    size_t cap = 0;
    enum md_status st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    sqlite3_stmt *q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_UNSNAPSHOTTED, &st, err);
    if (q)
        sqlite3_bind_int64(q, 1, PAIRS_MAX + 1);
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "checking snapshots", err);
            break;
        }
        if (out->count >= PAIRS_MAX) {
            st = md_error_set(err, MD_E_LIMIT, "more than %d sources without a snapshot",
                              PAIRS_MAX);
            break;
        }
        if (out->count == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char(*nr)[MD_RULE_ID_MAX + 1] = realloc(out->rule_ids, nc * sizeof(*nr));
            if (nr)
                out->rule_ids = nr;
            char(*ns)[MD_SCENARIO_ID_MAX + 1] = realloc(out->scenario_ids, nc * sizeof(*ns));
            if (ns)
                out->scenario_ids = ns;
            if (!nr || !ns) {
                st = nomem(err, "checking snapshots");
                break;
            }
            cap = nc;
        }
        if (!col_copy(q, 0, out->rule_ids[out->count], MD_RULE_ID_MAX + 1) ||
            !col_copy(q, 1, out->scenario_ids[out->count], MD_SCENARIO_ID_MAX + 1)) {
            st = malformed(err, "source link");
            break;
        }
        out->count++;
    }
    if (q)
        (void)sqlite3_reset(q);
    if (c)
        md_sqlite_checkin(s->db, c);
    if (st != MD_OK)
        md_pair_list_release(out);
    return st;
}

/* Run a single-row, all-integer (or real) aggregate. */
static enum md_status one_row(struct md_sqlite_conn *c, const char *sql, sqlite3_stmt **qo,
                              struct md_error *err)
{
    enum md_status st = MD_OK;
    sqlite3_stmt *q = md_sqlite_prep(c, sql, &st, err);
    if (!q)
        return st;
    bool row;
    st = step_row(c, q, &row, "computing statistics", err);
    if (st == MD_OK && !row)
        st = md_error_set(err, MD_E_INTERNAL, "statistics query returned nothing");
    *qo = q;
    return st;
}

static enum md_status ltm_stats(void *self, struct md_ltm_stats *out, struct md_error *err)
{
    struct ltm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    struct md_sqlite_conn *c = NULL;
    sqlite3_stmt *q = NULL;
    size_t cap = 0;
    enum md_status st = lease(s, LEASE_TIMEOUT_MS, &c, err);
    if (st == MD_OK)
        st = begin_read(c, err);
    if (st == MD_OK) {
        st = one_row(c, SQL_STATS_RULES, &q, err);
        if (st == MD_OK) {
            out->total_rules = sqlite3_column_int64(q, 0);
            out->average_confidence = sqlite3_column_double(q, 1);
        }
        if (q)
            (void)sqlite3_reset(q);
    }
    if (st == MD_OK) {
        st = one_row(c, SQL_STATS_CONCEPTS, &q, err);
        if (st == MD_OK)
            out->total_concepts = sqlite3_column_int64(q, 0);
        if (q)
            (void)sqlite3_reset(q);
    }
    if (st == MD_OK) {
        st = one_row(c, SQL_STATS_NO_SOURCES, &q, err);
        if (st == MD_OK)
            out->rules_without_sources = sqlite3_column_int64(q, 0);
        if (q)
            (void)sqlite3_reset(q);
    }
    q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_STATS_POLICIES, &st, err);
    while (st == MD_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "computing statistics", err);
            break;
        }
        if (out->n_policies == cap) {
            size_t nc = cap ? cap * 2 : 8;
            char **np = realloc(out->policies, nc * sizeof(*np));
            if (np)
                out->policies = np;
            int64_t *nn = realloc(out->policy_counts, nc * sizeof(*nn));
            if (nn)
                out->policy_counts = nn;
            if (!np || !nn) {
                st = nomem(err, "computing statistics");
                break;
            }
            cap = nc;
        }
        char *name = md_sqlite_col_dup(q, 0, NULL);
        if (!name) {
            st = nomem(err, "computing statistics");
            break;
        }
        out->policies[out->n_policies] = name;
        out->policy_counts[out->n_policies] = sqlite3_column_int64(q, 1);
        out->n_policies++;
    }
    if (q)
        (void)sqlite3_reset(q);
    st = finish(s, c, st, err);
    if (st != MD_OK)
        md_ltm_stats_release(out);
    return st;
}

static enum md_status ltm_ping(void *self, struct md_error *err)
{
    struct ltm_sqlite *s = self;
    struct md_sqlite_conn *c = NULL;
    enum md_status st = lease(s, PING_TIMEOUT_MS, &c, err);
    sqlite3_stmt *q = NULL;
    if (st == MD_OK)
        q = md_sqlite_prep(c, SQL_PING, &st, err);
    if (q) {
        bool row;
        st = step_row(c, q, &row, "pinging the embedded store", err);
        (void)sqlite3_reset(q);
    }
    if (c)
        md_sqlite_checkin(s->db, c);
    return st;
}

/* The schema is created by the migrations that ran when the database was opened. */
static enum md_status ltm_ensure_schema(void *self, struct md_error *err)
{
    (void)self;
    (void)err;
    return MD_OK;
}

static void ltm_destroy(void *self)
{
    free(self); /* the database belongs to main */
}

/* ---- constructor ---------------------------------------------------------------------------- */

static const struct md_ltm_ops ops = {
    .backend = "embedded",
    .create = ltm_create,
    .get = ltm_get,
    .patch = ltm_patch,
    .del = ltm_del,
    .search = ltm_search,
    .concepts = ltm_concepts,
    .concept_rules = ltm_concept_rules,
    .history = ltm_history,
    .concept_links = ltm_concept_links,
    .scenario = ltm_scenario,
    .rules_exist = ltm_rules_exist,
    .sources_without_snapshot = ltm_sources_without_snapshot,
    .stats = ltm_stats,
    .ping = ltm_ping,
    .ensure_schema = ltm_ensure_schema,
    .destroy = ltm_destroy,
};

struct md_ltm *md_ltm_sqlite_new(struct md_sqlite *db, struct md_error *err)
{
    if (!db) {
        md_error_set(err, MD_E_INVAL, "the embedded LTM store needs an open database");
        return NULL;
    }
    struct ltm_sqlite *s = calloc(1, sizeof(*s));
    if (!s) {
        md_error_set(err, MD_E_NOMEM, "out of memory creating the embedded LTM store");
        return NULL;
    }
    s->base.ops = &ops;
    s->db = db;
    pthread_once(&search_sql_once, build_search_sql);
    return &s->base;
}
