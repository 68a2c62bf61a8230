/*
 * stm_sqlite.c — the embedded STM backend: case files in the shared SQLite
 * file (tables stm_entries and stm_links, schema version 1 in sqlite_db.c).
 *
 * DESIGN. Each entry is one row: the canonical entry JSON in `body`, handed
 * back verbatim on reads, plus the columns that queries filter on (domain,
 * initial and final status, has_feedback, expires_ms). `seq` is the rowid,
 * AUTOINCREMENT, so it grows with every create and is never reused: listings
 * run newest first by seq and page with "seq < after_seq".
 *
 * Expiry: a row is live while expires_ms > now_ms (the caller's clock), and
 * every read, list and count filters on that, so an entry vanishes at once;
 * sweep() deletes expired rows later in bounded batches. stm_links rows go
 * with their entry (ON DELETE CASCADE).
 *
 * Writes: each write is one BEGIN IMMEDIATE transaction (md_sqlite_begin),
 * which also serialises writers of this process on the database's write
 * lock. Read-modify-write updates (patch, feedback, ttl) parse the stored
 * JSON with jansson, change the fields and render the whole entry again with
 * render_entry(), the one place that knows the canonical key order.
 *
 * No lease is held while a for_each callback runs (the callback may use the
 * same database, e.g. the LTM store).
 */
#include "memoryd/compat.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/ids.h"
#include "memoryd/json_load.h"
#include "memoryd/sqlite_db.h"
#include "memoryd/stm.h"
#include "memoryd/text.h"

#define LEASE_TIMEOUT_MS 5000     /* wait for a pooled connection */
#define SWEEP_BATCH 500           /* rows deleted per sweep transaction */
#define SWEEP_MAX_BATCHES 8       /* transactions per sweep() call */
#define EACH_BATCH 256            /* entries fetched per for_each round */
#define LIST_MAX 10000            /* hard cap on one page */
#define ENTRY_JSON_MAX (4u << 20) /* rendered entry size cap */
#define TTL_MAX_SECONDS (INT64_C(100) * 366 * 86400)
#define LINK_SEP '\x1f' /* separator of group_concat'ed rule ids (not in the grammar) */

struct stm_sqlite {
    struct md_stm base; /* first member: ops table */
    struct md_sqlite *db; /* borrowed: main owns the database */
};

/* ---- SQL -------------------------------------------------------------------------------- */

static const char SQL_GET[] =
    "SELECT e.body, e.has_feedback, e.final_status, e.expires_ms,"
    " (SELECT group_concat(l.rule_id, char(31)) FROM stm_links l"
    "  WHERE l.scenario_id = e.scenario_id)"
    " FROM stm_entries e WHERE e.scenario_id = ?1 AND e.expires_ms > ?2";
static const char SQL_GET_ONE[] =
    "SELECT body, has_feedback, final_status, expires_ms FROM stm_entries"
    " WHERE scenario_id = ?1 AND expires_ms > ?2";
static const char SQL_READ_LIVE[] =
    "SELECT e.body, e.expires_ms,"
    " (SELECT group_concat(l.rule_id, char(31)) FROM stm_links l"
    "  WHERE l.scenario_id = e.scenario_id)"
    " FROM stm_entries e WHERE e.scenario_id = ?1 AND e.expires_ms > ?2";
static const char SQL_EXPIRY[] =
    "SELECT expires_ms FROM stm_entries WHERE scenario_id = ?1 AND expires_ms > ?2";
static const char SQL_IS_LIVE[] =
    "SELECT 1 FROM stm_entries WHERE scenario_id = ?1 AND expires_ms > ?2";
static const char SQL_DELETE_EXPIRED_ID[] =
    "DELETE FROM stm_entries WHERE scenario_id = ?1 AND expires_ms <= ?2";
static const char SQL_DELETE_EXPIRED_RANGE[] =
    "DELETE FROM stm_entries"
    " WHERE scenario_id >= ?1 AND scenario_id < ?2 AND expires_ms <= ?3";
static const char SQL_RANGE[] =
    "SELECT scenario_id FROM stm_entries WHERE scenario_id >= ?1 AND scenario_id < ?2";
static const char SQL_INSERT[] =
    "INSERT INTO stm_entries (scenario_id, domain, status, final_status, has_feedback,"
    " created_ms, expires_ms, body) VALUES (?1, ?2, ?3, NULL, 0, ?4, ?5, ?6)";
static const char SQL_UPDATE_PATCH[] =
    "UPDATE stm_entries SET status = ?2, final_status = ?3, body = ?4 WHERE scenario_id = ?1";
static const char SQL_UPDATE_FEEDBACK[] =
    "UPDATE stm_entries SET has_feedback = 1, final_status = ?2, body = ?3"
    " WHERE scenario_id = ?1";
static const char SQL_UPDATE_TTL[] =
    "UPDATE stm_entries SET expires_ms = ?2, body = ?3 WHERE scenario_id = ?1";
static const char SQL_DELETE[] =
    "DELETE FROM stm_entries WHERE scenario_id = ?1 RETURNING expires_ms";
/* covering range scan over live rows only (the planner would otherwise scan every row) */
static const char SQL_STATS[] =
    "SELECT status, final_status, has_feedback, count(*)"
    " FROM stm_entries INDEXED BY stm_entries_expiry"
    " WHERE expires_ms > ?1 GROUP BY status, final_status, has_feedback";
static const char SQL_LINK_ADD[] =
    "INSERT OR IGNORE INTO stm_links (scenario_id, rule_id)"
    " SELECT scenario_id, ?2 FROM stm_entries WHERE scenario_id = ?1 AND expires_ms > ?3";
static const char SQL_LINK_DEL[] =
    "DELETE FROM stm_links WHERE scenario_id = ?1 AND rule_id = ?2";
static const char SQL_EACH[] =
    "SELECT e.seq, e.scenario_id, e.has_feedback,"
    " (SELECT group_concat(l.rule_id, char(31)) FROM stm_links l"
    "  WHERE l.scenario_id = e.scenario_id)"
    " FROM stm_entries e WHERE e.expires_ms > ?1 AND e.seq < ?2"
    " ORDER BY e.seq DESC LIMIT ?3";
static const char SQL_SWEEP[] =
    "DELETE FROM stm_entries WHERE seq IN"
    " (SELECT seq FROM stm_entries WHERE expires_ms <= ?1 LIMIT ?2)";
static const char SQL_PING[] = "SELECT 1";

/*
 * Listing: one statement per combination of filters, so that SQLite can pick
 * the (column, seq) index that fits. Built once; the buffers are static, so
 * their addresses serve as statement-cache keys for the life of the process.
 */
enum { LF_STATUS = 1, LF_FINAL = 2, LF_FEEDBACK = 4, LF_DOMAIN = 8, LF_COMBOS = 16 };
static char list_sql[LF_COMBOS][512];
static pthread_once_t list_sql_once = PTHREAD_ONCE_INIT;

static void build_list_sql(void)
{
    for (unsigned m = 0; m < LF_COMBOS; m++)
        snprintf(list_sql[m], sizeof(list_sql[m]),
                 "SELECT seq, scenario_id, has_feedback, final_status, expires_ms, body"
                 " FROM stm_entries WHERE expires_ms > ?1 AND seq < ?2%s%s%s%s"
                 " ORDER BY seq DESC LIMIT ?7",
                 m & LF_STATUS ? " AND status = ?3" : "",
                 m & LF_FINAL ? " AND final_status = ?4" : "",
                 m & LF_FEEDBACK ? " AND has_feedback = ?5" : "",
                 m & LF_DOMAIN ? " AND domain = ?6" : "");
}

/* ---- small helpers ---------------------------------------------------------------------- */

static bool verdict_valid(enum md_verdict v)
{
    return v >= 0 && v < MD_VERDICT_COUNT;
}

/* Canonical name -> verdict (exact match only: the store writes canonical names). */
static bool verdict_from_name(const char *s, enum md_verdict *out)
{
    for (int i = 0; s && i < MD_VERDICT_COUNT; i++)
        if (strcmp(s, md_verdict_name((enum md_verdict)i)) == 0) {
            *out = (enum md_verdict)i;
            return true;
        }
    return false;
}

static enum md_verdict col_verdict(sqlite3_stmt *st, int i)
{
    enum md_verdict v = MD_VERDICT_NONE;
    const unsigned char *s = sqlite3_column_text(st, i);
    if (s)
        (void)verdict_from_name((const char *)s, &v);
    return v;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? (const char *)s : "";
}

/* Step q while rc is SQLITE_OK; true on a row (rc stays SQLITE_OK), else rc is the result. */
static bool next_row(sqlite3_stmt *q, int *rc)
{
    if (*rc != SQLITE_OK)
        return false;
    *rc = sqlite3_step(q);
    if (*rc != SQLITE_ROW)
        return false;
    *rc = SQLITE_OK;
    return true;
}

static int bind_verdict(sqlite3_stmt *st, int i, enum md_verdict v)
{
    return v == MD_VERDICT_NONE ? sqlite3_bind_null(st, i)
                                : sqlite3_bind_text(st, i, md_verdict_name(v), -1, SQLITE_STATIC);
}

static enum md_status nomem(struct md_error *err, const char *what)
{
    return md_error_set(err, MD_E_NOMEM, "out of memory %s", what);
}

/*
 * Split a group_concat of rule ids into a sorted, owned array. An empty or
 * NULL list gives n = 0 and *out = NULL.
 */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static enum md_status split_links(const char *s, char ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!s || !*s)
        return MD_OK;
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == LINK_SEP;
    char **v = calloc(n, sizeof(*v));
    if (!v)
        return MD_E_NOMEM;
    size_t k = 0;
    for (const char *p = s;; p++) {
        const char *end = strchr(p, LINK_SEP);
        size_t len = end ? (size_t)(end - p) : strlen(p);
        v[k] = strndup(p, len);
        if (!v[k]) {
            for (size_t i = 0; i < k; i++)
                free(v[i]);
            free(v);
            return MD_E_NOMEM;
        }
        k++;
        if (!end)
            break;
        p = end;
    }
    qsort(v, k, sizeof(*v), cmp_str);
    *out = v;
    *n_out = k;
    return MD_OK;
}

static void free_links(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- the canonical entry JSON ----------------------------------------------------------- */

/* One entry's fields; strings are borrowed (from the caller or a parsed body). */
struct entry {
    const char *scenario_id;
    const char *requirement_text;
    enum md_verdict status;
    const char *rationale;
    const char *recommendation;
    bool has_feedback;
    const char *fb_decision; /* the human_feedback members, when has_feedback */
    const char *fb_rationale;
    const char *fb_suggestion;
    enum md_verdict final_status; /* NONE: null */
    const char *created_at;       /* ISO-8601 text */
    const char *updated_at;
    int64_t expires_ms; /* expires_at is rendered from this */
};

struct render_ctx {
    int bad;         /* an allocation failed */
    int bad_utf8;    /* a string was not valid UTF-8 */
};

static json_t *jstr(struct render_ctx *rc, const char *s)
{
    json_t *v = json_string(s ? s : "");
    if (!v) {
        if (s && !md_utf8_valid(s, strlen(s)))
            rc->bad_utf8 = 1;
        rc->bad = 1;
    }
    return v;
}

static void jset(struct render_ctx *rc, json_t *obj, const char *key, json_t *v)
{
    /* json_object_set_new steals v (and drops it on failure, or when obj is NULL) */
    if (json_object_set_new(obj, key, v) != 0)
        rc->bad = 1;
}

struct dump_ctx {
    struct md_buf buf;
    enum md_status st; /* first append failure */
};

static int dump_to_buf(const char *buffer, size_t size, void *data)
{
    struct dump_ctx *d = data;
    if (d->st == MD_OK)
        d->st = md_buf_append(&d->buf, buffer, size);
    return d->st == MD_OK ? 0 : -1;
}

/*
 * Render e as the canonical compact JSON of stm.h, keys in the documented
 * order (jansson keeps insertion order). *json is owned by the caller
 * (free()).
 */
static enum md_status render_entry(const struct entry *e, char **json, size_t *len,
                                   struct md_error *err)
{
    struct render_ctx rc = {0, 0};
    char expires_at[MD_ISO8601_LEN];
    md_iso8601(e->expires_ms, expires_at);
    json_t *o = json_object();
    json_t *ia = json_object();
    if (!o || !ia)
        rc.bad = 1;
    jset(&rc, o, "scenario_id", jstr(&rc, e->scenario_id));
    jset(&rc, o, "requirement_text", jstr(&rc, e->requirement_text));
    jset(&rc, ia, "status", jstr(&rc, md_verdict_name(e->status)));
    jset(&rc, ia, "rationale", jstr(&rc, e->rationale));
    jset(&rc, ia, "recommendation", jstr(&rc, e->recommendation));
    jset(&rc, o, "initial_assessment", ia);
    if (e->has_feedback) {
        json_t *fb = json_object();
        if (!fb)
            rc.bad = 1;
        jset(&rc, fb, "decision", jstr(&rc, e->fb_decision));
        jset(&rc, fb, "rationale", jstr(&rc, e->fb_rationale));
        jset(&rc, fb, "suggestion", jstr(&rc, e->fb_suggestion));
        jset(&rc, o, "human_feedback", fb);
    } else {
        jset(&rc, o, "human_feedback", json_null());
    }
    jset(&rc, o, "final_status", e->final_status == MD_VERDICT_NONE
                                     ? json_null()
                                     : jstr(&rc, md_verdict_name(e->final_status)));
    jset(&rc, o, "created_at", jstr(&rc, e->created_at));
    jset(&rc, o, "updated_at", jstr(&rc, e->updated_at));
    jset(&rc, o, "expires_at", jstr(&rc, expires_at));

    enum md_status st = MD_OK;
    struct dump_ctx d = {.st = MD_OK};
    md_buf_init(&d.buf, ENTRY_JSON_MAX);
    if (rc.bad_utf8) {
        st = md_error_set(err, MD_E_INVAL, "STM entry text is not valid UTF-8");
    } else if (rc.bad) {
        st = nomem(err, "building an STM entry");
    } else if (json_dump_callback(o, dump_to_buf, &d, JSON_COMPACT) != 0) {
        st = d.st == MD_E_LIMIT ? md_error_set(err, MD_E_LIMIT, "STM entry is too large")
                                : nomem(err, "encoding an STM entry");
    } else {
        *json = md_buf_take(&d.buf, len);
        if (!*json)
            st = nomem(err, "encoding an STM entry");
    }
    md_buf_release(&d.buf);
    json_decref(o);
    return st;
}

static const char *jget_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/*
 * Fill e from a parsed stored body (strings borrowed from root). expires_ms
 * is not read: the column is authoritative. False when the body is not a
 * well-formed entry.
 */
static bool parse_entry(json_t *root, struct entry *e)
{
    memset(e, 0, sizeof(*e));
    json_t *ia = json_object_get(root, "initial_assessment");
    json_t *fb = json_object_get(root, "human_feedback");
    json_t *fs = json_object_get(root, "final_status");
    e->scenario_id = jget_str(root, "scenario_id");
    e->requirement_text = jget_str(root, "requirement_text");
    e->rationale = jget_str(ia, "rationale");
    e->recommendation = jget_str(ia, "recommendation");
    e->created_at = jget_str(root, "created_at");
    e->updated_at = jget_str(root, "updated_at");
    if (!e->scenario_id || !e->requirement_text || !e->rationale || !e->recommendation ||
        !e->created_at || !e->updated_at || !verdict_from_name(jget_str(ia, "status"), &e->status))
        return false;
    if (json_is_object(fb)) {
        e->has_feedback = true;
        e->fb_decision = jget_str(fb, "decision");
        e->fb_rationale = jget_str(fb, "rationale");
        e->fb_suggestion = jget_str(fb, "suggestion");
        if (!e->fb_decision || !e->fb_rationale || !e->fb_suggestion)
            return false;
    } else if (!json_is_null(fb)) {
        return false;
    }
    e->final_status = MD_VERDICT_NONE;
    if (json_is_string(fs))
        return verdict_from_name(json_string_value(fs), &e->final_status);
    return json_is_null(fs);
}

/* ---- read-modify-write frame ---------------------------------------------------------- */

/*
 * The live entry `id`, read inside the caller's write transaction: *stored
 * (owned) is its body, *root the parsed body, e its fields borrowed from
 * *root, *links (owned, when asked for) its rule ids joined by LINK_SEP or
 * NULL when it has none. MD_E_NOTFOUND when there is no live entry.
 */
static enum md_status load_live(struct md_sqlite_conn *c, const char *id, int64_t now_ms,
                                char **stored, size_t *stored_len, json_t **root,
                                struct entry *e, char **links, struct md_error *err)
{
    enum md_status st = MD_OK;
    *stored = NULL;
    *root = NULL;
    if (links)
        *links = NULL;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_READ_LIVE, &st, err);
    if (!q)
        return st;
    int rc = md_sqlite_bind_text(q, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 2, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) {
        st = md_error_set(err, MD_E_NOTFOUND, "no STM entry '%s'", id);
    } else if (rc != SQLITE_ROW) {
        st = md_sqlite_error(c, rc, "reading an STM entry", err);
    } else {
        int64_t expires_ms = sqlite3_column_int64(q, 1);
        *stored = md_sqlite_col_dup(q, 0, stored_len);
        if (!*stored) {
            st = nomem(err, "reading an STM entry");
        } else {
            const char *why = NULL;
            *root = md_json_load(*stored, *stored_len, 0, &why, NULL);
            if (!*root || !parse_entry(*root, e)) {
                st = md_error_set(err, MD_E_INTERNAL, "stored STM entry '%s' is corrupt", id);
                md_error_detail(err, "%s", *root ? "unexpected entry shape" : why);
            } else {
                e->expires_ms = expires_ms;
                if (links && sqlite3_column_type(q, 2) != SQLITE_NULL &&
                    !(*links = md_sqlite_col_dup(q, 2, NULL)))
                    st = nomem(err, "reading an STM entry's links");
            }
        }
    }
    sqlite3_reset(q);
    return st;
}

/* Run a prepared write statement to completion; reports `what` on failure. */
static enum md_status step_done(struct md_sqlite_conn *c, sqlite3_stmt *q, int rc,
                                const char *what, struct md_error *err)
{
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return MD_OK;
    return md_sqlite_error(c, rc, what, err);
}

static void view_fill(struct md_stm_view *out, const struct entry *e, char *json, size_t len)
{
    out->json = json;
    out->json_len = len;
    snprintf(out->scenario_id, sizeof(out->scenario_id), "%s", e->scenario_id);
    out->has_feedback = e->has_feedback;
    out->final_status = e->final_status;
    out->expires_ms = e->expires_ms;
    out->links = NULL;
    out->n_links = 0;
}

/* Hand the links read with the entry to the view; on OOM the view just goes without. */
static void view_take_links(struct md_stm_view *out, const char *links)
{
    if (split_links(links, &out->links, &out->n_links) == MD_OK)
        out->links_known = true;
}

static enum md_status expiry_after(int64_t now_ms, int64_t ttl_seconds, int64_t *out,
                                   struct md_error *err)
{
    if (ttl_seconds <= 0 || ttl_seconds > TTL_MAX_SECONDS || now_ms < 0 ||
        now_ms > INT64_MAX - ttl_seconds * 1000)
        return md_error_set_field(err, MD_E_INVAL, "ttl_seconds",
                                  "ttl_seconds must be a positive number of seconds");
    *out = now_ms + ttl_seconds * 1000;
    return MD_OK;
}

/* ---- create ----------------------------------------------------------------------------- */

/* An explicit id: free when absent or expired (the expired row is dropped). */
static enum md_status claim_id(struct md_sqlite_conn *c, const char *id, int64_t now_ms,
                               struct md_error *err)
{
    enum md_status st = MD_OK;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_DELETE_EXPIRED_ID, &st, err);
    if (!q)
        return st;
    int rc = md_sqlite_bind_text(q, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 2, now_ms);
    st = step_done(c, q, rc, "creating an STM entry", err);
    if (st != MD_OK)
        return st;
    q = md_sqlite_prep(c, SQL_IS_LIVE, &st, err);
    if (!q)
        return st;
    rc = md_sqlite_bind_text(q, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 2, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return md_error_set_field(err, MD_E_CONFLICT, "scenario_id",
                                  "an STM entry with this scenario_id already exists");
    if (rc != SQLITE_DONE)
        return md_sqlite_error(c, rc, "creating an STM entry", err);
    return MD_OK;
}

/* The uniqueness number of id relative to base: 1 for base, n for base_n, else 0. */
static unsigned suffix_number(const char *base, size_t base_len, const char *id)
{
    if (strncmp(id, base, base_len) != 0)
        return 0;
    const char *p = id + base_len;
    if (!*p)
        return 1;
    if (p[0] != '_' || p[1] < '1' || p[1] > '9')
        return 0;
    unsigned n = 0;
    for (p++; *p; p++) {
        if (*p < '0' || *p > '9' || n > 99999999u)
            return 0;
        n = n * 10 + (unsigned)(*p - '0');
    }
    return n >= 2 ? n : 0;
}

static int cmp_unsigned(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

/*
 * A generated id: the lowest free of base, base_2, base_3 … Runs inside the
 * create transaction, so concurrent creates serialise and never collide.
 * Expired rows in the range are dropped first (they count as free).
 */
static enum md_status pick_free_id(struct md_sqlite_conn *c, const char *base, int64_t now_ms,
                                   char out[MD_SCENARIO_ID_MAX + 1], struct md_error *err)
{
    size_t base_len = strlen(base);
    char hi[MD_SCENARIO_ID_MAX + 2];
    /* [base, base + '`') holds base and every id starting with base + '_' ('_' < '`') */
    snprintf(hi, sizeof(hi), "%s`", base);
    enum md_status st = MD_OK;
    unsigned *used = NULL;
    size_t n_used = 0, cap = 0;

    sqlite3_stmt *q = md_sqlite_prep(c, SQL_DELETE_EXPIRED_RANGE, &st, err);
    if (!q)
        return st;
    int rc = md_sqlite_bind_text(q, 1, base);
    if (rc == SQLITE_OK)
        rc = md_sqlite_bind_text(q, 2, hi);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 3, now_ms);
    st = step_done(c, q, rc, "creating an STM entry", err);
    if (st != MD_OK)
        return st;

    q = md_sqlite_prep(c, SQL_RANGE, &st, err);
    if (!q)
        return st;
    rc = md_sqlite_bind_text(q, 1, base);
    if (rc == SQLITE_OK)
        rc = md_sqlite_bind_text(q, 2, hi);
    while (next_row(q, &rc)) {
        unsigned n = suffix_number(base, base_len, col_text(q, 0));
        if (!n)
            continue;
        if (n_used == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            unsigned *nu = realloc(used, ncap * sizeof(*nu));
            if (!nu) {
                st = nomem(err, "creating an STM entry");
                goto out;
            }
            used = nu;
            cap = ncap;
        }
        used[n_used++] = n;
    }
    if (rc != SQLITE_DONE) {
        st = md_sqlite_error(c, rc, "creating an STM entry", err);
        goto out;
    }
    if (n_used)
        qsort(used, n_used, sizeof(*used), cmp_unsigned);
    unsigned want = 1;
    for (size_t i = 0; i < n_used && used[i] <= want; i++)
        if (used[i] == want)
            want++;
    if (want == 1)
        snprintf(out, MD_SCENARIO_ID_MAX + 1, "%s", base);
    else if (!md_scenario_id_with_suffix(base, want, out))
        st = md_error_set_field(err, MD_E_CONFLICT, "scenario_id",
                                "no free scenario_id for '%s' within 128 characters", base);
out:
    sqlite3_reset(q);
    free(used);
    return st;
}

static enum md_status op_create(void *self, const struct md_stm_new *in, int64_t now_ms,
                                struct md_stm_view *out, struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    char id[MD_SCENARIO_ID_MAX + 1], domain[MD_DOMAIN_MAX + 1], now_iso[MD_ISO8601_LEN];
    char *json = NULL;
    size_t json_len = 0;
    int64_t expires_ms = 0;
    memset(out, 0, sizeof(*out));
    if (!in->requirement_text || !in->rationale || !in->recommendation ||
        !verdict_valid(in->status) || !in->scenario_id[0])
        return md_error_set(err, MD_E_INVAL, "incomplete STM entry");
    enum md_status st = expiry_after(now_ms, in->ttl_seconds, &expires_ms, err);
    if (st != MD_OK)
        return st;
    st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    st = md_sqlite_begin(c, err);
    if (st != MD_OK)
        goto out;
    if (in->generated) {
        st = pick_free_id(c, in->scenario_id, now_ms, id, err);
    } else {
        snprintf(id, sizeof(id), "%s", in->scenario_id);
        st = claim_id(c, id, now_ms, err);
    }
    if (st != MD_OK)
        goto out;

    md_iso8601(now_ms, now_iso);
    struct entry e = {
        .scenario_id = id,
        .requirement_text = in->requirement_text,
        .status = in->status,
        .rationale = in->rationale,
        .recommendation = in->recommendation,
        .final_status = MD_VERDICT_NONE,
        .created_at = now_iso,
        .updated_at = now_iso,
        .expires_ms = expires_ms,
    };
    st = render_entry(&e, &json, &json_len, err);
    if (st != MD_OK)
        goto out;
    md_scenario_id_domain(id, domain);
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_INSERT, &st, err);
    if (!q)
        goto out;
    int rc = md_sqlite_bind_text(q, 1, id);
    if (rc == SQLITE_OK)
        rc = md_sqlite_bind_text(q, 2, domain);
    if (rc == SQLITE_OK)
        rc = bind_verdict(q, 3, in->status);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 4, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 5, expires_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(q, 6, json, (int)json_len, SQLITE_STATIC);
    st = step_done(c, q, rc, "creating an STM entry", err);
    if (st == MD_OK)
        st = md_sqlite_commit(c, err);
    if (st == MD_OK) {
        view_fill(out, &e, json, json_len);
        json = NULL;
    }
out:
    free(json);
    md_sqlite_checkin(s->db, c); /* rolls back an open transaction */
    return st;
}

/* ---- get / list ------------------------------------------------------------------------- */

static enum md_status op_get(void *self, const char *id, int64_t now_ms,
                             struct md_stm_view *out, struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    memset(out, 0, sizeof(*out));
    out->final_status = MD_VERDICT_NONE;
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_GET, &st, err);
    if (!q)
        goto out;
    int rc = md_sqlite_bind_text(q, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 2, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) {
        st = md_error_set(err, MD_E_NOTFOUND, "no STM entry '%s'", id);
        goto out;
    }
    if (rc != SQLITE_ROW) {
        st = md_sqlite_error(c, rc, "reading an STM entry", err);
        goto out;
    }
    out->json = md_sqlite_col_dup(q, 0, &out->json_len);
    if (!out->json || split_links((const char *)sqlite3_column_text(q, 4), &out->links,
                                  &out->n_links) != MD_OK) {
        st = nomem(err, "reading an STM entry");
        goto out;
    }
    snprintf(out->scenario_id, sizeof(out->scenario_id), "%s", id);
    out->has_feedback = sqlite3_column_int(q, 1) != 0;
    out->final_status = col_verdict(q, 2);
    out->expires_ms = sqlite3_column_int64(q, 3);
    out->links_known = true;
out:
    md_sqlite_checkin(s->db, c);
    if (st != MD_OK) {
        free(out->json);
        free_links(out->links, out->n_links);
        memset(out, 0, sizeof(*out));
        out->final_status = MD_VERDICT_NONE;
    }
    return st;
}

/* n expiry lookups on one lease; a missing or expired entry leaves 0. */
static enum md_status op_alive_many(void *self, const char *const *ids, size_t n,
                                    int64_t now_ms, int64_t *expires_ms, struct md_error *err)
{
    struct stm_sqlite *s = self;
    for (size_t i = 0; i < n; i++)
        expires_ms[i] = 0;
    if (n == 0)
        return MD_OK;
    struct md_sqlite_conn *c = NULL;
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        sqlite3_stmt *q = md_sqlite_prep(c, SQL_EXPIRY, &st, err);
        if (!q)
            break;
        int rc = md_sqlite_bind_text(q, 1, ids[i]);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(q, 2, now_ms);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            expires_ms[i] = sqlite3_column_int64(q, 0);
        else if (rc != SQLITE_DONE)
            st = md_sqlite_error(c, rc, "checking STM entries", err);
        sqlite3_reset(q);
    }
    md_sqlite_checkin(s->db, c);
    if (st != MD_OK)
        for (size_t i = 0; i < n; i++)
            expires_ms[i] = 0;
    return st;
}

/* n point reads on one lease; missing entries leave their view zeroed. */
static enum md_status op_get_many(void *self, const char *const *ids, size_t n, int64_t now_ms,
                                  struct md_stm_view *out, struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].final_status = MD_VERDICT_NONE;
    }
    if (n == 0)
        return MD_OK;
    struct md_sqlite_conn *c = NULL;
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        sqlite3_stmt *q = md_sqlite_prep(c, SQL_GET_ONE, &st, err);
        if (!q)
            break;
        int rc = md_sqlite_bind_text(q, 1, ids[i]);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(q, 2, now_ms);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(q);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(q);
            continue;
        }
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "reading STM entries", err);
            break;
        }
        out[i].json = md_sqlite_col_dup(q, 0, &out[i].json_len);
        if (!out[i].json) {
            st = nomem(err, "reading STM entries");
            break;
        }
        snprintf(out[i].scenario_id, sizeof(out[i].scenario_id), "%s", ids[i]);
        out[i].has_feedback = sqlite3_column_int(q, 1) != 0;
        out[i].final_status = col_verdict(q, 2);
        out[i].expires_ms = sqlite3_column_int64(q, 3);
        sqlite3_reset(q);
    }
    md_sqlite_checkin(s->db, c);
    if (st != MD_OK)
        for (size_t i = 0; i < n; i++) {
            free(out[i].json);
            memset(&out[i], 0, sizeof(out[i]));
            out[i].final_status = MD_VERDICT_NONE;
        }
    return st;
}

static void page_free(struct md_stm_page *p)
{
    for (size_t i = 0; i < p->count; i++)
        free(p->items[i].json);
    free(p->items);
    memset(p, 0, sizeof(*p));
}

static enum md_status op_list(void *self, const struct md_stm_filter *f, size_t limit,
                              uint64_t after_seq, int64_t now_ms, struct md_stm_page *out,
                              struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    memset(out, 0, sizeof(*out));
    limit = MD_MAX(limit, 1);
    limit = MD_MIN(limit, (size_t)LIST_MAX);
    unsigned mask = 0;
    if (f && verdict_valid(f->status))
        mask |= LF_STATUS;
    if (f && verdict_valid(f->final_status))
        mask |= LF_FINAL;
    if (f && f->has_feedback >= 0)
        mask |= LF_FEEDBACK;
    if (f && f->domain[0])
        mask |= LF_DOMAIN;
    pthread_once(&list_sql_once, build_list_sql);

    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    sqlite3_stmt *q = md_sqlite_prep(c, list_sql[mask], &st, err);
    if (!q)
        goto out;
    int64_t before = after_seq == 0 || after_seq > (uint64_t)INT64_MAX ? INT64_MAX
                                                                        : (int64_t)after_seq;
    int rc = sqlite3_bind_int64(q, 1, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 2, before);
    if (rc == SQLITE_OK && (mask & LF_STATUS))
        rc = bind_verdict(q, 3, f->status);
    if (rc == SQLITE_OK && (mask & LF_FINAL))
        rc = bind_verdict(q, 4, f->final_status);
    if (rc == SQLITE_OK && (mask & LF_FEEDBACK))
        rc = sqlite3_bind_int(q, 5, f->has_feedback ? 1 : 0);
    if (rc == SQLITE_OK && (mask & LF_DOMAIN))
        rc = md_sqlite_bind_text(q, 6, f->domain);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 7, (int64_t)limit + 1);
    size_t cap = 0;
    uint64_t last_seq = 0;
    while (next_row(q, &rc)) {
        if (out->count == limit) {
            out->next_seq = last_seq; /* a further row exists */
            rc = SQLITE_DONE;
            break;
        }
        if (out->count == cap) {
            size_t ncap = cap ? MD_MIN(cap * 2, limit) : MD_MIN(limit, (size_t)64);
            struct md_stm_view *ni = realloc(out->items, ncap * sizeof(*ni));
            if (!ni) {
                st = nomem(err, "listing STM entries");
                goto out;
            }
            out->items = ni;
            cap = ncap;
        }
        struct md_stm_view *v = &out->items[out->count];
        memset(v, 0, sizeof(*v));
        v->json = md_sqlite_col_dup(q, 5, &v->json_len);
        if (!v->json) {
            st = nomem(err, "listing STM entries");
            goto out;
        }
        out->count++;
        last_seq = (uint64_t)sqlite3_column_int64(q, 0);
        snprintf(v->scenario_id, sizeof(v->scenario_id), "%s", col_text(q, 1));
        v->has_feedback = sqlite3_column_int(q, 2) != 0;
        v->final_status = col_verdict(q, 3);
        v->expires_ms = sqlite3_column_int64(q, 4);
    }
    if (rc != SQLITE_DONE)
        st = md_sqlite_error(c, rc, "listing STM entries", err);
out:
    md_sqlite_checkin(s->db, c);
    if (st != MD_OK)
        page_free(out);
    return st;
}

/* ---- updates ---------------------------------------------------------------------------- */

static bool text_differs(const char *next, const char *cur)
{
    return next && strcmp(next, cur) != 0;
}

static enum md_status op_patch(void *self, const char *id, const struct md_stm_patch *p,
                               int64_t now_ms, struct md_stm_view *out, unsigned *changed,
                               struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    char *stored = NULL, *json = NULL;
    size_t stored_len = 0, json_len = 0;
    json_t *root = NULL;
    struct entry e;
    char now_iso[MD_ISO8601_LEN];
    unsigned mask = 0;
    char *links = NULL;
    memset(out, 0, sizeof(*out));
    if (changed)
        *changed = 0;
    if ((p->set_status && !verdict_valid(p->status)) ||
        (p->set_final && p->final_status != MD_VERDICT_NONE && !verdict_valid(p->final_status)))
        return md_error_set(err, MD_E_INVAL, "invalid status in STM patch");
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    st = md_sqlite_begin(c, err);
    if (st == MD_OK)
        st = load_live(c, id, now_ms, &stored, &stored_len, &root, &e, &links, err);
    if (st != MD_OK)
        goto out;

    if (text_differs(p->requirement_text, e.requirement_text)) {
        e.requirement_text = p->requirement_text;
        mask |= MD_STM_F_REQUIREMENT_TEXT;
    }
    if (p->set_status && p->status != e.status) {
        e.status = p->status;
        mask |= MD_STM_F_STATUS;
    }
    if (text_differs(p->rationale, e.rationale)) {
        e.rationale = p->rationale;
        mask |= MD_STM_F_RATIONALE;
    }
    if (text_differs(p->recommendation, e.recommendation)) {
        e.recommendation = p->recommendation;
        mask |= MD_STM_F_RECOMMENDATION;
    }
    if (p->set_final && p->final_status != e.final_status) {
        e.final_status = p->final_status;
        mask |= MD_STM_F_FINAL_STATUS;
    }
    if (!mask) { /* nothing changed: the entry, updated_at included, stays as stored */
        st = md_sqlite_commit(c, err);
        if (st == MD_OK) {
            view_fill(out, &e, stored, stored_len);
            view_take_links(out, links);
            stored = NULL;
        }
        goto out;
    }
    md_iso8601(now_ms, now_iso);
    e.updated_at = now_iso;
    st = render_entry(&e, &json, &json_len, err);
    if (st != MD_OK)
        goto out;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_UPDATE_PATCH, &st, err);
    if (!q)
        goto out;
    int rc = md_sqlite_bind_text(q, 1, id);
    if (rc == SQLITE_OK)
        rc = bind_verdict(q, 2, e.status);
    if (rc == SQLITE_OK)
        rc = bind_verdict(q, 3, e.final_status);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(q, 4, json, (int)json_len, SQLITE_STATIC);
    st = step_done(c, q, rc, "updating an STM entry", err);
    if (st == MD_OK)
        st = md_sqlite_commit(c, err);
    if (st == MD_OK) {
        view_fill(out, &e, json, json_len);
        view_take_links(out, links);
        json = NULL;
        if (changed)
            *changed = mask;
    }
out:
    md_sqlite_checkin(s->db, c);
    json_decref(root);
    free(stored);
    free(json);
    free(links);
    return st;
}

static enum md_status op_feedback(void *self, const char *id, const struct md_stm_feedback *fb,
                                  int64_t now_ms, struct md_stm_view *out, struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    char *stored = NULL, *json = NULL;
    size_t stored_len = 0, json_len = 0;
    json_t *root = NULL;
    struct entry e;
    char now_iso[MD_ISO8601_LEN];
    char *links = NULL;
    memset(out, 0, sizeof(*out));
    if (!fb->decision || !fb->rationale || !fb->suggestion ||
        (fb->set_final && fb->final_status != MD_VERDICT_NONE &&
         !verdict_valid(fb->final_status)))
        return md_error_set(err, MD_E_INVAL, "incomplete human feedback");
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    st = md_sqlite_begin(c, err);
    if (st == MD_OK)
        st = load_live(c, id, now_ms, &stored, &stored_len, &root, &e, &links, err);
    if (st != MD_OK)
        goto out;
    e.has_feedback = true;
    e.fb_decision = fb->decision;
    e.fb_rationale = fb->rationale;
    e.fb_suggestion = fb->suggestion;
    if (fb->set_final)
        e.final_status = fb->final_status;
    md_iso8601(now_ms, now_iso);
    e.updated_at = now_iso;
    st = render_entry(&e, &json, &json_len, err);
    if (st != MD_OK)
        goto out;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_UPDATE_FEEDBACK, &st, err);
    if (!q)
        goto out;
    int rc = md_sqlite_bind_text(q, 1, id);
    if (rc == SQLITE_OK)
        rc = bind_verdict(q, 2, e.final_status);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(q, 3, json, (int)json_len, SQLITE_STATIC);
    st = step_done(c, q, rc, "recording human feedback", err);
    if (st == MD_OK)
        st = md_sqlite_commit(c, err);
    if (st == MD_OK) {
        view_fill(out, &e, json, json_len);
        view_take_links(out, links);
        json = NULL;
    }
out:
    md_sqlite_checkin(s->db, c);
    json_decref(root);
    free(stored);
    free(json);
    free(links);
    return st;
}

static enum md_status op_set_ttl(void *self, const char *id, int64_t ttl_seconds,
                                 int64_t now_ms, int64_t *expires_out, struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    char *stored = NULL, *json = NULL;
    size_t stored_len = 0, json_len = 0;
    json_t *root = NULL;
    struct entry e;
    int64_t expires_ms = 0;
    enum md_status st = expiry_after(now_ms, ttl_seconds, &expires_ms, err);
    if (st != MD_OK)
        return st;
    st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    st = md_sqlite_begin(c, err);
    if (st == MD_OK)
        st = load_live(c, id, now_ms, &stored, &stored_len, &root, &e, NULL, err);
    if (st != MD_OK)
        goto out;
    e.expires_ms = expires_ms; /* updated_at stays: the case file itself did not change */
    st = render_entry(&e, &json, &json_len, err);
    if (st != MD_OK)
        goto out;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_UPDATE_TTL, &st, err);
    if (!q)
        goto out;
    int rc = md_sqlite_bind_text(q, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 2, expires_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(q, 3, json, (int)json_len, SQLITE_STATIC);
    st = step_done(c, q, rc, "changing an STM entry's TTL", err);
    if (st == MD_OK)
        st = md_sqlite_commit(c, err);
    if (st == MD_OK && expires_out)
        *expires_out = expires_ms;
out:
    md_sqlite_checkin(s->db, c);
    json_decref(root);
    free(stored);
    free(json);
    return st;
}

static enum md_status op_del(void *self, const char *id, int64_t now_ms, struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    st = md_sqlite_begin(c, err);
    if (st != MD_OK)
        goto out;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_DELETE, &st, err);
    if (!q)
        goto out;
    int rc = md_sqlite_bind_text(q, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q);
    /* an expired row is deleted as well, but was already gone for the caller */
    bool was_live = rc == SQLITE_ROW && sqlite3_column_int64(q, 0) > now_ms;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        st = md_sqlite_error(c, rc, "deleting an STM entry", err);
        goto out;
    }
    st = md_sqlite_commit(c, err);
    if (st == MD_OK && !was_live)
        st = md_error_set(err, MD_E_NOTFOUND, "no STM entry '%s'", id);
out:
    md_sqlite_checkin(s->db, c);
    return st;
}

/* ---- stats and links -------------------------------------------------------------------- */

static enum md_status op_stats(void *self, int64_t now_ms, struct md_stm_stats *out,
                               struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    memset(out, 0, sizeof(*out));
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_STATS, &st, err);
    if (!q)
        goto out;
    int rc = sqlite3_bind_int64(q, 1, now_ms);
    while (next_row(q, &rc)) {
        int64_t n = sqlite3_column_int64(q, 3);
        enum md_verdict v = col_verdict(q, 0), fin = col_verdict(q, 1);
        out->total += n;
        if (sqlite3_column_int(q, 2))
            out->with_feedback += n;
        if (verdict_valid(v))
            out->by_status[v] += n;
        if (verdict_valid(fin))
            out->by_final[fin] += n;
    }
    if (rc != SQLITE_DONE) {
        st = md_sqlite_error(c, rc, "counting STM entries", err);
        memset(out, 0, sizeof(*out));
    }
out:
    md_sqlite_checkin(s->db, c);
    return st;
}

static enum md_status op_link_add(void *self, const char *id, const char *rule_id,
                                  int64_t now_ms, struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    if (!id || !rule_id || !rule_id[0] || strchr(rule_id, LINK_SEP))
        return md_error_set(err, MD_E_INVAL, "invalid STM link");
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    st = md_sqlite_begin(c, err);
    if (st != MD_OK)
        goto out;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_LINK_ADD, &st, err);
    if (!q)
        goto out;
    int rc = md_sqlite_bind_text(q, 1, id);
    if (rc == SQLITE_OK)
        rc = md_sqlite_bind_text(q, 2, rule_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 3, now_ms);
    st = step_done(c, q, rc, "linking an STM entry", err);
    if (st != MD_OK)
        goto out;
    if (sqlite3_changes(md_sqlite_handle(c)) == 0) { /* already linked, or no live entry */
        q = md_sqlite_prep(c, SQL_IS_LIVE, &st, err);
        if (!q)
            goto out;
        rc = md_sqlite_bind_text(q, 1, id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(q, 2, now_ms);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc == SQLITE_DONE) {
            st = md_error_set(err, MD_E_NOTFOUND, "no STM entry '%s'", id);
            goto out;
        }
        if (rc != SQLITE_ROW) {
            st = md_sqlite_error(c, rc, "linking an STM entry", err);
            goto out;
        }
    }
    st = md_sqlite_commit(c, err);
out:
    md_sqlite_checkin(s->db, c);
    return st;
}

/* Link rule_id to every live entry of ids in one transaction (missing ids are skipped). */
static enum md_status op_links_add(void *self, const char *rule_id, const char *const *ids,
                                   size_t n, int64_t now_ms, struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    if (n == 0)
        return MD_OK;
    if (!rule_id || !rule_id[0] || strchr(rule_id, LINK_SEP) || !ids)
        return md_error_set(err, MD_E_INVAL, "invalid STM link");
    struct md_sqlite_conn *c = NULL;
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    st = md_sqlite_begin(c, err);
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        sqlite3_stmt *q = md_sqlite_prep(c, SQL_LINK_ADD, &st, err);
        if (!q)
            break;
        int rc = md_sqlite_bind_text(q, 1, ids[i]);
        if (rc == SQLITE_OK)
            rc = md_sqlite_bind_text(q, 2, rule_id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(q, 3, now_ms);
        st = step_done(c, q, rc, "linking STM entries", err);
    }
    if (st == MD_OK)
        st = md_sqlite_commit(c, err);
    md_sqlite_checkin(s->db, c);
    return st;
}

static enum md_status op_links_remove(void *self, const char *rule_id,
                                      const char *const *scenario_ids, size_t n,
                                      struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    if (n == 0)
        return MD_OK;
    if (!rule_id || !scenario_ids)
        return md_error_set(err, MD_E_INVAL, "invalid STM link");
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    st = md_sqlite_begin(c, err);
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        sqlite3_stmt *q = md_sqlite_prep(c, SQL_LINK_DEL, &st, err);
        if (!q)
            break;
        int rc = md_sqlite_bind_text(q, 1, scenario_ids[i]);
        if (rc == SQLITE_OK)
            rc = md_sqlite_bind_text(q, 2, rule_id);
        st = step_done(c, q, rc, "unlinking STM entries", err);
    }
    if (st == MD_OK)
        st = md_sqlite_commit(c, err);
    md_sqlite_checkin(s->db, c);
    return st;
}

/* ---- for_each --------------------------------------------------------------------------- */

struct each_item {
    char scenario_id[MD_SCENARIO_ID_MAX + 1];
    bool has_feedback;
    char **links;
    size_t n_links;
};

static void each_clear(struct each_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free_links(items[i].links, items[i].n_links);
        items[i].links = NULL;
        items[i].n_links = 0;
    }
}

/* One batch of live entries with seq < *before into items; *before moves on. */
static enum md_status each_fetch(struct stm_sqlite *s, int64_t now_ms, int64_t *before,
                                 struct each_item *items, size_t *n_out, struct md_error *err)
{
    struct md_sqlite_conn *c = NULL;
    size_t n = 0;
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_EACH, &st, err);
    if (!q)
        goto out;
    int rc = sqlite3_bind_int64(q, 1, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 2, *before);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(q, 3, EACH_BATCH);
    while (n < EACH_BATCH && next_row(q, &rc)) {
        struct each_item *it = &items[n];
        *before = sqlite3_column_int64(q, 0);
        snprintf(it->scenario_id, sizeof(it->scenario_id), "%s", col_text(q, 1));
        it->has_feedback = sqlite3_column_int(q, 2) != 0;
        if (split_links((const char *)sqlite3_column_text(q, 3), &it->links, &it->n_links) !=
            MD_OK) {
            st = nomem(err, "iterating STM entries");
            goto out;
        }
        n++;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_OK)
        st = md_sqlite_error(c, rc, "iterating STM entries", err);
out:
    md_sqlite_checkin(s->db, c);
    *n_out = n;
    return st;
}

static enum md_status op_for_each(void *self, int64_t now_ms, md_stm_each_fn fn, void *ctx,
                                  struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct each_item *items = calloc(EACH_BATCH, sizeof(*items));
    if (!items)
        return nomem(err, "iterating STM entries");
    int64_t before = INT64_MAX;
    enum md_status st = MD_OK;
    for (;;) {
        size_t n = 0;
        st = each_fetch(s, now_ms, &before, items, &n, err);
        for (size_t i = 0; st == MD_OK && i < n; i++) {
            st = fn(ctx, items[i].scenario_id, items[i].has_feedback,
                    (const char *const *)items[i].links, items[i].n_links);
            if (st != MD_OK)
                md_error_set(err, st, "iterating STM entries stopped: %s", md_status_str(st));
        }
        each_clear(items, n);
        if (st != MD_OK || n < EACH_BATCH)
            break;
    }
    free(items);
    return st;
}

/* ---- upkeep ----------------------------------------------------------------------------- */

static enum md_status op_ping(void *self, struct md_error *err)
{
    struct stm_sqlite *s = self;
    struct md_error scratch;
    if (!err)
        err = &scratch;
    struct md_sqlite_conn *c = NULL;
    enum md_status st = md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    sqlite3_stmt *q = md_sqlite_prep(c, SQL_PING, &st, err);
    if (q) {
        int rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_ROW)
            st = md_sqlite_error(c, rc, "pinging the embedded store", err);
    }
    md_sqlite_checkin(s->db, c);
    return st;
}

/* Delete expired rows (and their links) in bounded transactions. Errors wait for next time. */
static void op_sweep(void *self, int64_t now_ms)
{
    struct stm_sqlite *s = self;
    struct md_error err;
    md_error_clear(&err);
    for (int round = 0; round < SWEEP_MAX_BATCHES; round++) {
        struct md_sqlite_conn *c = NULL;
        int deleted = 0;
        if (md_sqlite_checkout(s->db, LEASE_TIMEOUT_MS, &c, &err) != MD_OK)
            return;
        enum md_status st = md_sqlite_begin(c, &err);
        sqlite3_stmt *q = st == MD_OK ? md_sqlite_prep(c, SQL_SWEEP, &st, &err) : NULL;
        if (q) {
            int rc = sqlite3_bind_int64(q, 1, now_ms);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_int(q, 2, SWEEP_BATCH);
            st = step_done(c, q, rc, "sweeping expired STM entries", &err);
            if (st == MD_OK)
                deleted = sqlite3_changes(md_sqlite_handle(c));
            if (st == MD_OK)
                st = md_sqlite_commit(c, &err);
        }
        md_sqlite_checkin(s->db, c);
        if (st != MD_OK || deleted < SWEEP_BATCH)
            return;
    }
}

static void op_pool_stats(void *self, struct md_pool_stats *out)
{
    struct stm_sqlite *s = self;
    memset(out, 0, sizeof(*out));
    md_sqlite_pool_stats(s->db, &out->size, &out->in_use, &out->waits);
    out->max = out->size;
    out->timeouts = md_sqlite_pool_timeouts(s->db);
}

static void op_destroy(void *self)
{
    free(self); /* the database belongs to main */
}

static const struct md_stm_ops stm_sqlite_ops = {
    .backend = "embedded",
    .create = op_create,
    .get = op_get,
    .list = op_list,
    .patch = op_patch,
    .feedback = op_feedback,
    .set_ttl = op_set_ttl,
    .del = op_del,
    .stats = op_stats,
    .get_many = op_get_many,
    .alive_many = op_alive_many,
    .link_add = op_link_add,
    .links_add = op_links_add,
    .links_remove = op_links_remove,
    .for_each = op_for_each,
    .ping = op_ping,
    .sweep = op_sweep,
    .pool_stats = op_pool_stats,
    .destroy = op_destroy,
};

struct md_stm *md_stm_sqlite_new(struct md_sqlite *db, struct md_error *err)
{
    if (!db) {
        md_error_set(err, MD_E_INVAL, "the embedded STM store needs an open database");
        return NULL;
    }
    struct stm_sqlite *s = calloc(1, sizeof(*s));
    if (!s) {
        md_error_set(err, MD_E_NOMEM, "out of memory setting up the embedded STM store");
        return NULL;
    }
    s->base.ops = &stm_sqlite_ops;
    s->db = db;
    return &s->base;
}
