/*
 * test_ltm_sqlite.c — the embedded LTM backend against the contract of
 * memoryd/ltm.h: create (explicit and generated ids, lowest free number,
 * concurrency), get with evidence, patch (change detection, versions,
 * concept replacement and orphan cleanup), delete (orphans go, scenarios
 * stay), search (structured and full text, filters, ordering, paging,
 * hostile input), concepts, concept rules, history, concept links,
 * scenarios, snapshots, rules_exist, integrity pairs and stats. Each test
 * opens a fresh database in its own temporary directory; after each test
 * the FTS index is checked against its content table and the link tables
 * against orphan rows.
 */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "memoryd/ltm.h"
#include "memoryd/sqlite_db.h"

#define NOW INT64_C(1764171000000) /* 2025-11-26T15:30:00.000Z */

struct fixture {
    char root[64];
    struct md_sqlite *db;
    struct md_ltm *ltm;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    snprintf(fx->root, sizeof(fx->root), "/tmp/md_ltm_sqlite_XXXXXX");
    if (!mkdtemp(fx->root))
        return -1;
    struct md_sqlite_options o = {
        .data_dir = fx->root,
        .pool_size = 8,
        .synchronous_full = false,
        .busy_timeout_ms = 20000,
    };
    struct md_error err;
    md_error_clear(&err);
    fx->db = md_sqlite_open(&o, &err);
    if (!fx->db) {
        fprintf(stderr, "open: %s (%s)\n", err.msg, err.detail);
        return -1;
    }
    fx->ltm = md_ltm_sqlite_new(fx->db, &err);
    if (!fx->ltm)
        return -1;
    *state = fx;
    return 0;
}

/* SELECT returning one integer, on a fresh lease. */
static int64_t sql_int(struct fixture *fx, const char *sql)
{
    struct md_sqlite_conn *c;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(md_sqlite_checkout(fx->db, 1000, &c, &err), MD_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(md_sqlite_handle(c), sql, -1, &q, NULL), SQLITE_OK);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW)
        fail_msg("%s: %s", sql, sqlite3_errmsg(md_sqlite_handle(c)));
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    md_sqlite_checkin(fx->db, c);
    return v;
}

static void sql_exec(struct fixture *fx, const char *sql)
{
    struct md_sqlite_conn *c;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(md_sqlite_checkout(fx->db, 1000, &c, &err), MD_OK);
    char *msg = NULL;
    if (sqlite3_exec(md_sqlite_handle(c), sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
    md_sqlite_checkin(fx->db, c);
}

/* Invariants that hold after every test: index in step, no dangling or orphan rows. */
static void check_invariants(struct fixture *fx)
{
    sql_exec(fx, "INSERT INTO ltm_rules_fts (ltm_rules_fts, rank) VALUES ('integrity-check', 1)");
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM ltm_concepts c WHERE NOT EXISTS"
                                 " (SELECT 1 FROM ltm_rule_concepts rc WHERE rc.key = c.key)"),
                     0);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM ltm_policies p WHERE NOT EXISTS"
                                 " (SELECT 1 FROM ltm_rules r WHERE r.policy = p.name)"),
                     0);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    check_invariants(fx);
    md_ltm_destroy(fx->ltm);
    md_sqlite_close(fx->db);
    nftw(fx->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------------------- */

#define MAXC 8

/* Concepts of one call, with fold keys. */
struct clist {
    struct md_concept v[MAXC];
    char keys[MAXC][MD_CONCEPT_KEY_MAX + 1];
    size_t n;
};

/* names: NULL-terminated */
static void clist_set(struct clist *cl, const char *const *names)
{
    cl->n = 0;
    for (; names && *names; names++) {
        assert_true(cl->n < MAXC);
        md_concept_key(*names, cl->keys[cl->n]);
        cl->v[cl->n].name = (char *)(uintptr_t)*names;
        cl->v[cl->n].key = cl->keys[cl->n];
        cl->n++;
    }
}

static size_t count_of(const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

struct mk_opts {
    const char *id;     /* explicit id, or */
    const char *prefix; /* generated under prefix */
    const char *text;
    const char *const *concepts;
    const char *const *sources;
    double confidence;
    int64_t now;
    const struct md_snapshot *snaps;
    size_t n_snaps;
};

static enum md_status mk_rule(struct md_ltm *l, const struct mk_opts *o, struct md_rule *out)
{
    struct clist cl;
    clist_set(&cl, o->concepts);
    struct md_rule_new in;
    memset(&in, 0, sizeof(in));
    in.rule_id = o->id;
    in.id_prefix = o->prefix;
    in.rule_text = o->text ? o->text : "A rule";
    in.concepts = cl.v;
    in.n_concepts = cl.n;
    in.sources = o->sources;
    in.n_sources = count_of(o->sources);
    in.snapshots = o->snaps;
    in.n_snapshots = o->n_snaps;
    in.confidence = o->confidence;
    struct md_error err;
    md_error_clear(&err);
    struct md_rule tmp;
    enum md_status st = l->ops->create(l, &in, o->now ? o->now : NOW, out ? out : &tmp, &err);
    if (st != MD_OK && (err.code != st || st == MD_E_INTERNAL || !err.msg[0]))
        fail_msg("create: %d %s (%s)", st, err.msg, err.detail);
    if (st == MD_OK && !out)
        md_rule_release(&tmp);
    return st;
}

/* Create and return the final id (static buffer, valid until the next call). */
static const char *mk_ok(struct md_ltm *l, const struct mk_opts *o)
{
    static char id[MD_RULE_ID_MAX + 1];
    struct md_rule r;
    assert_int_equal(mk_rule(l, o, &r), MD_OK);
    snprintf(id, sizeof(id), "%s", r.rule_id);
    md_rule_release(&r);
    return id;
}

static void simple(struct md_ltm *l, const char *id, const char *text, const char *const *concepts,
                   double conf, int64_t now)
{
    struct mk_opts o = {.id = id,
                        .text = text,
                        .concepts = concepts,
                        .sources = NAMES("ecommerce_r1_consent"),
                        .confidence = conf,
                        .now = now};
    mk_ok(l, &o);
}

static enum md_status patch(struct md_ltm *l, const char *id, const struct md_rule_patch *p,
                            int64_t now, struct md_rule *out, bool *changed)
{
    struct md_error err;
    md_error_clear(&err);
    struct md_rule tmp;
    bool ch;
    enum md_status st = l->ops->patch(l, id, p, now, out ? out : &tmp, changed ? changed : &ch,
                                      &err);
    if (st != MD_OK && (err.code != st || st == MD_E_INTERNAL))
        fail_msg("patch: %d %s (%s)", st, err.msg, err.detail);
    if (st == MD_OK && !out)
        md_rule_release(&tmp);
    return st;
}

static void assert_concepts(const struct md_rule *r, const char *const *names)
{
    size_t n = count_of(names);
    assert_int_equal(r->n_concepts, n);
    for (size_t i = 0; i < n; i++) {
        char key[MD_CONCEPT_KEY_MAX + 1];
        md_concept_key(names[i], key);
        assert_string_equal(r->concepts[i].name, names[i]);
        assert_string_equal(r->concepts[i].key, key);
    }
}

static void assert_strv(char *const *v, size_t n, const char *const *want)
{
    assert_int_equal(n, count_of(want));
    for (size_t i = 0; i < n; i++)
        assert_string_equal(v[i], want[i]);
}

static enum md_status search(struct md_ltm *l, const struct md_rule_query *q,
                             struct md_rule_list *out)
{
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = l->ops->search(l, q, out, &err);
    if (st != MD_OK)
        fail_msg("search: %d %s (%s)", st, err.msg, err.detail);
    return st;
}

/* Search and compare the ids, in order. */
static void expect_search(struct md_ltm *l, const struct md_rule_query *q, const char *const *ids)
{
    struct md_rule_list list;
    search(l, q, &list);
    size_t n = count_of(ids);
    if (list.count != n) {
        for (size_t i = 0; i < list.count; i++)
            fprintf(stderr, "  got %s (score %g)\n", list.items[i].rule_id, list.items[i].score);
        fail_msg("expected %zu rules, got %zu", n, list.count);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(list.items[i].rule_id, ids[i]);
    md_rule_list_release(&list);
}

static struct md_rule_query words_query(const char *const *words)
{
    struct md_rule_query q;
    memset(&q, 0, sizeof(q));
    q.words = words;
    q.n_words = count_of(words);
    q.limit = 100;
    return q;
}

static enum md_status del(struct md_ltm *l, const char *id, char ***src, size_t *n)
{
    struct md_error err;
    md_error_clear(&err);
    char **tmp = NULL;
    size_t tn = 0;
    enum md_status st = l->ops->del(l, id, src ? src : &tmp, n ? n : &tn, &err);
    if (!src) {
        for (size_t i = 0; i < tn; i++)
            free(tmp[i]);
        free(tmp);
    }
    return st;
}

static void free_ids(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void stats(struct md_ltm *l, struct md_ltm_stats *s)
{
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(l->ops->stats(l, s, &err), MD_OK);
}

/* ---- create and get ------------------------------------------------------------------------- */

static void test_create_get(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    assert_string_equal(l->ops->backend, "embedded");
    struct md_snapshot snap = {.scenario_id = "ecommerce_r1_consent",
                               .entry_json = "{\"scenario_id\":\"ecommerce_r1_consent\"}",
                               .sha256 = "ab12",
                               .has_feedback = true,
                               .final_status = MD_VERDICT_PARTIAL,
                               .captured_ms = NOW - 5};
    struct mk_opts o = {.id = "GDPR_Consent_Unbundled_01",
                        .text = "Consent must be unbundled from the terms",
                        .concepts = NAMES("Consent", "data processing"),
                        .sources = NAMES("ecommerce_r2_retention", "ecommerce_r1_consent"),
                        .confidence = 0.9,
                        .snaps = &snap,
                        .n_snaps = 1};
    struct md_rule r;
    assert_int_equal(mk_rule(l, &o, &r), MD_OK);
    assert_string_equal(r.rule_id, "GDPR_Consent_Unbundled_01");
    assert_string_equal(r.policy, "GDPR");
    assert_string_equal(r.rule_text, "Consent must be unbundled from the terms");
    assert_concepts(&r, NAMES("Consent", "data processing"));
    assert_strv(r.sources, r.n_sources, NAMES("ecommerce_r1_consent", "ecommerce_r2_retention"));
    assert_true(r.confidence == 0.9);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.created_ms, NOW);
    assert_int_equal(r.updated_ms, NOW);
    md_rule_release(&r);

    /* the same id again: conflict, nothing changed */
    o.text = "other";
    assert_int_equal(mk_rule(l, &o, NULL), MD_E_CONFLICT);

    struct md_rule_detail d;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(l->ops->get(l, "GDPR_Consent_Unbundled_01", &d, &err), MD_OK);
    assert_string_equal(d.rule.rule_text, "Consent must be unbundled from the terms");
    assert_int_equal(d.n_sources, 2);
    assert_string_equal(d.sources[0].scenario_id, "ecommerce_r1_consent");
    assert_true(d.sources[0].has_snapshot);
    assert_true(d.sources[0].snapshot_has_feedback);
    assert_int_equal(d.sources[0].snapshot_final_status, MD_VERDICT_PARTIAL);
    assert_int_equal(d.sources[0].snapshot_captured_ms, NOW - 5);
    assert_string_equal(d.sources[0].snapshot_sha256, "ab12");
    assert_string_equal(d.sources[1].scenario_id, "ecommerce_r2_retention");
    assert_false(d.sources[1].has_snapshot);
    assert_int_equal(d.sources[1].snapshot_final_status, MD_VERDICT_NONE);
    assert_strv(d.policies, d.n_policies, NAMES("GDPR"));
    md_rule_detail_release(&d);

    md_error_clear(&err);
    assert_int_equal(l->ops->get(l, "GDPR_Missing_01", &d, &err), MD_E_NOTFOUND);
    assert_int_equal(err.code, MD_E_NOTFOUND);

    assert_int_equal(l->ops->ping(l, &err), MD_OK);
    assert_int_equal(l->ops->ensure_schema(l, &err), MD_OK);
}

/* ---- generated ids -------------------------------------------------------------------------- */

static const char *gen(struct md_ltm *l, const char *prefix)
{
    struct mk_opts o = {.prefix = prefix,
                        .text = "generated",
                        .concepts = NAMES("consent"),
                        .sources = NAMES("ecommerce_r1_consent"),
                        .confidence = 0.5};
    return mk_ok(l, &o);
}

static void test_generated_ids(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    /* ids under the prefix with a non-numeric suffix do not count */
    simple(l, "GDPR_Consent_Unbundled_01", "t", NAMES("consent"), 0.5, NOW);
    simple(l, "GDPR_Consent_2024_01", "t", NAMES("consent"), 0.5, NOW);
    assert_string_equal(gen(l, "GDPR_Consent"), "GDPR_Consent_01");
    assert_string_equal(gen(l, "GDPR_Consent"), "GDPR_Consent_02");
    simple(l, "GDPR_Consent_03", "t", NAMES("consent"), 0.5, NOW);
    /* only the canonical spelling of a number counts: _0005 and _005 do not take 5 */
    simple(l, "GDPR_Consent_0005", "t", NAMES("consent"), 0.5, NOW);
    simple(l, "GDPR_Consent_005", "t", NAMES("consent"), 0.5, NOW);
    simple(l, "GDPR_Consent_00", "t", NAMES("consent"), 0.5, NOW);
    /* suffixes outside the grammar's 2-4 digits (the store does not re-validate) never count */
    simple(l, "GDPR_Consent_4", "t", NAMES("consent"), 0.5, NOW);
    simple(l, "GDPR_Consent_123456", "t", NAMES("consent"), 0.5, NOW);
    simple(l, "GDPR_Consent_06", "t", NAMES("consent"), 0.5, NOW);
    assert_string_equal(gen(l, "GDPR_Consent"), "GDPR_Consent_04");
    assert_string_equal(gen(l, "GDPR_Consent"), "GDPR_Consent_05");
    assert_string_equal(gen(l, "GDPR_Consent"), "GDPR_Consent_07");
    /* lowest free after a delete */
    assert_int_equal(del(l, "GDPR_Consent_02", NULL, NULL), MD_OK);
    assert_string_equal(gen(l, "GDPR_Consent"), "GDPR_Consent_02");
    assert_string_equal(gen(l, "GDPR_Consent"), "GDPR_Consent_08");
    /* a prefix that is a prefix of another one's text sees only its own ids */
    assert_string_equal(gen(l, "GDPR_Cons"), "GDPR_Cons_01");
    assert_string_equal(gen(l, "GDPR_ConsentWithdrawal"), "GDPR_ConsentWithdrawal_01");
    /* after 99 comes 100 */
    for (int i = 1; i <= 99; i++)
        gen(l, "ISO_Many");
    assert_string_equal(gen(l, "ISO_Many"), "ISO_Many_100");
    /* an explicit id equal to a generated one conflicts */
    struct mk_opts o = {.id = "ISO_Many_50", .concepts = NAMES("x"), .sources = NAMES("a_r1_b")};
    assert_int_equal(mk_rule(l, &o, NULL), MD_E_CONFLICT);
}

struct race {
    struct md_ltm *l;
    char id[MD_RULE_ID_MAX + 1];
    enum md_status st;
};

static void *race_create(void *arg)
{
    struct race *r = arg;
    struct clist cl;
    clist_set(&cl, NAMES("race", "Concurrency"));
    const char *src[] = {"ecommerce_r1_race"};
    struct md_rule_new in;
    memset(&in, 0, sizeof(in));
    in.id_prefix = "GDPR_Race";
    in.rule_text = "racing";
    in.concepts = cl.v;
    in.n_concepts = cl.n;
    in.sources = src;
    in.n_sources = 1;
    in.confidence = 0.5;
    struct md_rule out;
    struct md_error err;
    md_error_clear(&err);
    r->st = r->l->ops->create(r->l, &in, NOW, &out, &err);
    if (r->st == MD_OK) {
        snprintf(r->id, sizeof(r->id), "%s", out.rule_id);
        md_rule_release(&out);
    }
    return NULL;
}

static void test_concurrent_generated(void **state)
{
    struct fixture *fx = *state;
    enum { N = 20 };
    struct race r[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].l = fx->ltm;
        assert_int_equal(pthread_create(&t[i], NULL, race_create, &r[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    bool seen[N + 1] = {false};
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].st, MD_OK);
        assert_int_equal(strncmp(r[i].id, "GDPR_Race_", 10), 0);
        int n = atoi(r[i].id + 10);
        assert_true(n >= 1 && n <= N);
        assert_false(seen[n]);
        seen[n] = true;
    }
    struct md_ltm_stats s;
    stats(fx->ltm, &s);
    assert_int_equal(s.total_rules, N);
    assert_int_equal(s.total_concepts, 2);
    md_ltm_stats_release(&s);
}

/* ---- patch and history ---------------------------------------------------------------------- */

static void test_patch_versions(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    const char *id = "GDPR_Retention_EventBased_01";
    simple(l, id, "Keep data for the retention period", NAMES("data retention", "Storage"), 0.7,
           NOW);

    struct md_rule r;
    bool changed = true;
    struct md_rule_patch p;

    /* nothing that differs: no change, no version */
    memset(&p, 0, sizeof(p));
    struct clist same;
    clist_set(&same, NAMES("data retention", "Storage"));
    p.rule_text = "Keep data for the retention period";
    p.set_confidence = true;
    p.confidence = 0.7;
    p.set_concepts = true;
    p.concepts = same.v;
    p.n_concepts = same.n;
    const char *old_src[] = {"ecommerce_r1_consent"};
    p.add_sources = old_src;
    p.n_add_sources = 1;
    assert_int_equal(patch(l, id, &p, NOW + 500, &r, &changed), MD_OK);
    assert_false(changed);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.updated_ms, NOW);
    md_rule_release(&r);

    /* text */
    memset(&p, 0, sizeof(p));
    p.rule_text = "Keep data only while the event lasts";
    assert_int_equal(patch(l, id, &p, NOW + 1000, &r, &changed), MD_OK);
    assert_true(changed);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.created_ms, NOW);
    assert_int_equal(r.updated_ms, NOW + 1000);
    assert_string_equal(r.rule_text, "Keep data only while the event lasts");
    assert_concepts(&r, NAMES("data retention", "Storage"));
    md_rule_release(&r);

    /* confidence */
    memset(&p, 0, sizeof(p));
    p.set_confidence = true;
    p.confidence = 0.95;
    assert_int_equal(patch(l, id, &p, NOW + 2000, &r, &changed), MD_OK);
    assert_true(changed);
    assert_int_equal(r.version, 3);
    assert_true(r.confidence == 0.95);
    md_rule_release(&r);

    /* a new source */
    memset(&p, 0, sizeof(p));
    const char *new_src[] = {"ecommerce_r1_consent", "bank_r3_kyc"};
    p.add_sources = new_src;
    p.n_add_sources = 2;
    assert_int_equal(patch(l, id, &p, NOW + 3000, &r, &changed), MD_OK);
    assert_true(changed);
    assert_int_equal(r.version, 4);
    assert_strv(r.sources, r.n_sources, NAMES("bank_r3_kyc", "ecommerce_r1_consent"));
    md_rule_release(&r);

    /* concepts: reordering is a change */
    memset(&p, 0, sizeof(p));
    struct clist re;
    clist_set(&re, NAMES("Storage", "data retention"));
    p.set_concepts = true;
    p.concepts = re.v;
    p.n_concepts = re.n;
    assert_int_equal(patch(l, id, &p, NOW + 4000, &r, &changed), MD_OK);
    assert_true(changed);
    assert_int_equal(r.version, 5);
    assert_concepts(&r, NAMES("Storage", "data retention"));
    md_rule_release(&r);

    /* empty patch */
    memset(&p, 0, sizeof(p));
    assert_int_equal(patch(l, id, &p, NOW + 5000, &r, &changed), MD_OK);
    assert_false(changed);
    assert_int_equal(r.version, 5);
    assert_int_equal(r.updated_ms, NOW + 4000);
    md_rule_release(&r);

    /* unknown rule */
    assert_int_equal(patch(l, "GDPR_Nope_01", &p, NOW, NULL, &changed), MD_E_NOTFOUND);
    assert_false(changed);

    /* history: every previous state, oldest first, then the current one */
    struct md_rule_history h;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(l->ops->history(l, id, &h, &err), MD_OK);
    assert_int_equal(h.count, 5);
    for (size_t i = 0; i < h.count; i++)
        assert_int_equal(h.versions[i].version, (int64_t)i + 1);
    assert_string_equal(h.versions[0].rule_text, "Keep data for the retention period");
    assert_true(h.versions[0].confidence == 0.7);
    assert_int_equal(h.versions[0].recorded_ms, NOW);
    assert_strv(h.versions[0].concepts, h.versions[0].n_concepts,
                NAMES("data retention", "Storage"));
    assert_strv(h.versions[0].sources, h.versions[0].n_sources, NAMES("ecommerce_r1_consent"));
    assert_string_equal(h.versions[1].rule_text, "Keep data only while the event lasts");
    assert_int_equal(h.versions[1].recorded_ms, NOW + 1000);
    assert_true(h.versions[1].confidence == 0.7);
    assert_true(h.versions[2].confidence == 0.95);
    assert_strv(h.versions[2].sources, h.versions[2].n_sources, NAMES("ecommerce_r1_consent"));
    assert_strv(h.versions[3].sources, h.versions[3].n_sources,
                NAMES("bank_r3_kyc", "ecommerce_r1_consent"));
    assert_int_equal(h.versions[4].recorded_ms, NOW + 4000);
    assert_strv(h.versions[4].concepts, h.versions[4].n_concepts,
                NAMES("Storage", "data retention"));
    md_rule_history_release(&h);

    md_error_clear(&err);
    assert_int_equal(l->ops->history(l, "GDPR_Nope_01", &h, &err), MD_E_NOTFOUND);
}

static void test_patch_concepts_replace(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    simple(l, "GDPR_A_01", "Rule A about things", NAMES("consent", "data processing"), 0.8, NOW);
    simple(l, "GDPR_B_01", "Rule B about things", NAMES("Consent", "marketing"), 0.6, NOW);

    struct md_rule_patch p;
    memset(&p, 0, sizeof(p));
    struct clist cl;
    clist_set(&cl, NAMES("retention"));
    p.set_concepts = true;
    p.concepts = cl.v;
    p.n_concepts = cl.n;
    struct md_rule r;
    bool changed;
    assert_int_equal(patch(l, "GDPR_A_01", &p, NOW + 10, &r, &changed), MD_OK);
    assert_true(changed);
    assert_concepts(&r, NAMES("retention"));
    md_rule_release(&r);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM ltm_rule_concepts rc JOIN ltm_rules r"
                                 " ON r.id = rc.rule WHERE r.rule_id = 'GDPR_A_01'"),
                     1);

    /* "data processing" went with its last rule; "consent" stays (B), first spelling kept */
    struct md_error err;
    md_error_clear(&err);
    char *name = NULL;
    struct md_rule_list list;
    assert_int_equal(l->ops->concept_rules(l, "data processing", &name, &list, &err),
                     MD_E_NOTFOUND);
    assert_null(name);
    assert_int_equal(l->ops->concept_rules(l, "consent", &name, &list, &err), MD_OK);
    assert_string_equal(name, "consent");
    assert_int_equal(list.count, 1);
    assert_string_equal(list.items[0].rule_id, "GDPR_B_01");
    assert_concepts(&list.items[0], NAMES("Consent", "marketing"));
    free(name);
    md_rule_list_release(&list);

    struct md_concept_list cs;
    assert_int_equal(l->ops->concepts(l, "", 100, &cs, &err), MD_OK);
    assert_int_equal(cs.count, 3);
    assert_false(cs.more);
    assert_string_equal(cs.items[0].name, "consent");
    assert_int_equal(cs.items[0].rule_count, 1);
    assert_string_equal(cs.items[1].name, "marketing");
    assert_string_equal(cs.items[2].name, "retention");
    md_concept_list_release(&cs);

    /* the full-text index follows: the old concept words no longer match */
    struct md_rule_query q = words_query(NAMES("processing"));
    expect_search(l, &q, NAMES(NULL));
    q = words_query(NAMES("retention"));
    expect_search(l, &q, NAMES("GDPR_A_01"));

    /* a spelling-only change is a change of the rule, not of the concept */
    clist_set(&cl, NAMES("Retention"));
    p.concepts = cl.v;
    p.n_concepts = cl.n;
    assert_int_equal(patch(l, "GDPR_A_01", &p, NOW + 20, &r, &changed), MD_OK);
    assert_true(changed);
    assert_int_equal(r.version, 3);
    assert_concepts(&r, NAMES("Retention"));
    md_rule_release(&r);
    assert_int_equal(l->ops->concept_rules(l, "retention", &name, &list, &err), MD_OK);
    assert_string_equal(name, "retention");
    free(name);
    md_rule_list_release(&list);

    /* B moves onto A's concept and drops "consent" and "marketing": both go */
    clist_set(&cl, NAMES("RETENTION", "new one"));
    p.concepts = cl.v;
    p.n_concepts = cl.n;
    assert_int_equal(patch(l, "GDPR_B_01", &p, NOW + 30, NULL, &changed), MD_OK);
    assert_true(changed);
    assert_int_equal(l->ops->concepts(l, "", 100, &cs, &err), MD_OK);
    assert_int_equal(cs.count, 2);
    assert_string_equal(cs.items[0].name, "new one");
    assert_string_equal(cs.items[1].name, "retention");
    assert_int_equal(cs.items[1].rule_count, 2);
    md_concept_list_release(&cs);
}

/* ---- delete --------------------------------------------------------------------------------- */

static void test_delete_cleanup(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    struct mk_opts a = {.id = "GDPR_A_01",
                        .text = "first",
                        .concepts = NAMES("consent", "only a"),
                        .sources = NAMES("shop_r2_b", "shop_r1_a"),
                        .confidence = 0.5};
    struct mk_opts b = {.id = "CCPA_B_01",
                        .text = "second",
                        .concepts = NAMES("Consent"),
                        .sources = NAMES("shop_r1_a"),
                        .confidence = 0.5};
    mk_ok(l, &a);
    mk_ok(l, &b);
    struct md_rule_patch p;
    memset(&p, 0, sizeof(p));
    p.rule_text = "first, revised";
    assert_int_equal(patch(l, "GDPR_A_01", &p, NOW + 1, NULL, NULL), MD_OK);

    char **src;
    size_t n;
    assert_int_equal(del(l, "CCPA_B_01", &src, &n), MD_OK);
    assert_strv(src, n, NAMES("shop_r1_a"));
    free_ids(src, n);
    struct md_ltm_stats s;
    stats(l, &s);
    assert_int_equal(s.total_rules, 1);
    assert_int_equal(s.total_concepts, 2); /* consent stays with A */
    assert_strv(s.policies, s.n_policies, NAMES("GDPR"));
    md_ltm_stats_release(&s);

    assert_int_equal(del(l, "GDPR_A_01", &src, &n), MD_OK);
    assert_strv(src, n, NAMES("shop_r1_a", "shop_r2_b"));
    free_ids(src, n);
    stats(l, &s);
    assert_int_equal(s.total_rules, 0);
    assert_int_equal(s.total_concepts, 0);
    assert_int_equal(s.n_policies, 0);
    assert_true(s.average_confidence == 0.0);
    md_ltm_stats_release(&s);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM ltm_rule_versions"), 0);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM ltm_rule_sources"), 0);

    /* scenarios (evidence) stay */
    struct md_scenario_info si;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(l->ops->scenario(l, "shop_r1_a", &si, &err), MD_OK);
    assert_true(si.known);
    assert_int_equal(si.derived.count, 0);
    md_scenario_info_release(&si);

    assert_int_equal(del(l, "GDPR_A_01", NULL, NULL), MD_E_NOTFOUND);
    struct md_rule_history h;
    assert_int_equal(l->ops->history(l, "GDPR_A_01", &h, &err), MD_E_NOTFOUND);

    /* the id can be used again, from version 1 with no old versions */
    mk_ok(l, &a);
    assert_int_equal(l->ops->history(l, "GDPR_A_01", &h, &err), MD_OK);
    assert_int_equal(h.count, 1);
    assert_int_equal(h.versions[0].version, 1);
    assert_string_equal(h.versions[0].rule_text, "first");
    md_rule_history_release(&h);
    struct md_rule_query q = words_query(NAMES("revised"));
    expect_search(l, &q, NAMES(NULL));
    q = words_query(NAMES("first"));
    expect_search(l, &q, NAMES("GDPR_A_01"));
}

/* ---- search --------------------------------------------------------------------------------- */

static void test_search_structured(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    simple(l, "GDPR_Low_01", "low", NAMES("consent"), 0.3, NOW);
    simple(l, "GDPR_HighOld_01", "high old", NAMES("retention"), 0.9, NOW);
    simple(l, "GDPR_HighNew_01", "high new", NAMES("Consent", "retention"), 0.9, NOW + 10);
    simple(l, "CCPA_TieB_01", "tie b", NAMES("marketing"), 0.6, NOW);
    simple(l, "CCPA_TieA_01", "tie a", NAMES("marketing", "consent"), 0.6, NOW);

    struct md_rule_query q;
    memset(&q, 0, sizeof(q));
    q.limit = 10;
    expect_search(l, &q, NAMES("GDPR_HighNew_01", "GDPR_HighOld_01", "CCPA_TieA_01",
                               "CCPA_TieB_01", "GDPR_Low_01"));
    struct md_rule_list list;
    search(l, &q, &list);
    assert_false(list.more);
    assert_true(list.items[0].score == 0.0);
    assert_concepts(&list.items[0], NAMES("Consent", "retention"));
    assert_strv(list.items[0].sources, list.items[0].n_sources, NAMES("ecommerce_r1_consent"));
    md_rule_list_release(&list);

    q.policy = "CCPA";
    expect_search(l, &q, NAMES("CCPA_TieA_01", "CCPA_TieB_01"));
    q.policy = "NONE";
    expect_search(l, &q, NAMES(NULL));
    q.policy = NULL;
    q.has_min_confidence = true;
    q.min_confidence = 0.6;
    expect_search(l, &q, NAMES("GDPR_HighNew_01", "GDPR_HighOld_01", "CCPA_TieA_01",
                               "CCPA_TieB_01"));
    const char *keys[] = {"consent", "nothing"};
    q.concept_keys = keys;
    q.n_concepts = 2;
    expect_search(l, &q, NAMES("GDPR_HighNew_01", "CCPA_TieA_01"));
    q.has_min_confidence = false;
    expect_search(l, &q, NAMES("GDPR_HighNew_01", "CCPA_TieA_01", "GDPR_Low_01"));
    q.policy = "GDPR";
    expect_search(l, &q, NAMES("GDPR_HighNew_01", "GDPR_Low_01"));
    const char *any[] = {"marketing", "retention"};
    q.concept_keys = any;
    q.policy = NULL;
    expect_search(l, &q, NAMES("GDPR_HighNew_01", "GDPR_HighOld_01", "CCPA_TieA_01",
                               "CCPA_TieB_01"));

    /* limit and more */
    memset(&q, 0, sizeof(q));
    q.limit = 2;
    search(l, &q, &list);
    assert_int_equal(list.count, 2);
    assert_true(list.more);
    md_rule_list_release(&list);
    q.offset = 3;
    search(l, &q, &list);
    assert_int_equal(list.count, 2);
    assert_false(list.more);
    assert_string_equal(list.items[1].rule_id, "GDPR_Low_01");
    md_rule_list_release(&list);
    q.offset = 50;
    search(l, &q, &list);
    assert_int_equal(list.count, 0);
    assert_false(list.more);
    md_rule_list_release(&list);
}

static void test_search_fulltext(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    simple(l, "GDPR_Consent_01", "Consent must be unbundled", NAMES("consent"), 0.8, NOW);
    simple(l, "GDPR_Retention_01", "Delete records after the period", NAMES("data retention"),
           0.9, NOW);
    simple(l, "CCPA_Marketing_01", "Marketing emails need an opt-in", NAMES("marketing"), 0.7,
           NOW);
    simple(l, "GDPR_Crypto_01", "Something else entirely", NAMES("Encryption at rest"), 0.5, NOW);
    simple(l, "GDPR_Cafe_01", "The café must show its privacy notice", NAMES("notice"), 0.5,
           NOW);
    simple(l, "ISO_Privacy_01", "Privacy privacy privacy", NAMES("privacy"), 0.1, NOW);
    simple(l, "ISO_Long_01",
           "A privacy mention buried in a much longer text that goes on and on about"
           " many other subjects such as audits controls logging and reviews",
           NAMES("audit"), 0.99, NOW);

    struct md_rule_query q = words_query(NAMES("retention"));
    expect_search(l, &q, NAMES("GDPR_Retention_01")); /* concept name only */
    q = words_query(NAMES("encryption"));
    expect_search(l, &q, NAMES("GDPR_Crypto_01"));
    q = words_query(NAMES("café")); /* accents count, as in Neo4j's standard analyzer */
    expect_search(l, &q, NAMES("GDPR_Cafe_01"));
    q = words_query(NAMES("cafe"));
    expect_search(l, &q, ((const char *const[]){NULL}));
    q = words_query(NAMES("CONSENT")); /* case-insensitive */
    expect_search(l, &q, NAMES("GDPR_Consent_01"));
    q = words_query(NAMES("zebra"));
    expect_search(l, &q, NAMES(NULL));

    /* any of the words, best first; the score is positive and non-increasing */
    q = words_query(NAMES("consent", "marketing", "zebra"));
    struct md_rule_list list;
    search(l, &q, &list);
    assert_int_equal(list.count, 2);
    for (size_t i = 0; i < list.count; i++) {
        assert_true(list.items[i].score > 0.0);
        if (i)
            assert_true(list.items[i - 1].score >= list.items[i].score);
    }
    md_rule_list_release(&list);

    /* score beats confidence */
    q = words_query(NAMES("privacy"));
    expect_search(l, &q, NAMES("ISO_Privacy_01", "GDPR_Cafe_01", "ISO_Long_01"));
    /* filters apply to full-text results */
    q.has_min_confidence = true;
    q.min_confidence = 0.5;
    expect_search(l, &q, NAMES("GDPR_Cafe_01", "ISO_Long_01"));
    q.policy = "ISO";
    expect_search(l, &q, NAMES("ISO_Long_01"));
    const char *keys[] = {"notice"};
    q.policy = NULL;
    q.concept_keys = keys;
    q.n_concepts = 1;
    expect_search(l, &q, NAMES("GDPR_Cafe_01"));

    /* a multi-token word is a phrase */
    q = words_query(NAMES("opt-in"));
    expect_search(l, &q, NAMES("CCPA_Marketing_01"));
}

static void test_search_paging(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    enum { N = 25 };
    for (int i = 0; i < N; i++) {
        char id[32], text[64];
        snprintf(id, sizeof(id), "GDPR_Page_%02d", i + 1);
        snprintf(text, sizeof(text), "paging rule %s", i % 3 ? "common" : "common common");
        /* few distinct confidences and times: plenty of ties */
        simple(l, id, text, NAMES("paging"), (double)(i % 4) / 4.0, NOW + i % 2);
    }
    for (int mode = 0; mode < 2; mode++) {
        for (size_t page = 1; page <= 8; page++) {
            struct md_rule_query q = words_query(mode ? NAMES("common", "paging") : NULL);
            q.limit = page;
            int seen[N] = {0};
            size_t total = 0;
            double prev_score = 1e300, prev_conf = 2.0;
            for (;;) {
                struct md_rule_list list;
                search(l, &q, &list);
                for (size_t i = 0; i < list.count; i++) {
                    int n = atoi(list.items[i].rule_id + strlen("GDPR_Page_"));
                    assert_true(n >= 1 && n <= N);
                    seen[n - 1]++;
                    if (mode) {
                        assert_true(list.items[i].score <= prev_score);
                        prev_score = list.items[i].score;
                    } else {
                        assert_true(list.items[i].confidence <= prev_conf);
                        prev_conf = list.items[i].confidence;
                    }
                }
                total += list.count;
                bool more = list.more;
                assert_true(list.count == page || !more);
                md_rule_list_release(&list);
                if (!more)
                    break;
                q.offset += page;
            }
            assert_int_equal(total, N);
            for (int i = 0; i < N; i++)
                assert_int_equal(seen[i], 1);
        }
    }
}

static void test_search_hostile(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    simple(l, "GDPR_Hostile_01", "Text with \"quotes\", NEAR(a b), col:val, a* ^b -c (x OR y)",
           NAMES("NEAR", "a\"b"), 0.5, NOW);
    simple(l, "GDPR_Unicode_01", "日本語のテキスト und Ünïcödé — 😀", NAMES("ÉTÉ"), 0.5, NOW);
    static const char *const inputs[] = {
        "\"", "\"\"", "\"a", "a\"b\"c", "NEAR", "NEAR(a b)", "NEAR/2", "a*", "*", "^", "^a",
        "-", "-a", "a:b", ":", "col:val", "(", ")", "(a OR b)", "AND", "OR", "NOT", "a AND",
        "OR OR OR", "{a b}", "+a", "'", "\\", "\\\"", "café", "日本語", "😀", "—", "\xff\xfe",
        "\xc3", "a\x01b", "été", "ünïcödé",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "", "   ", "!!! ??? ...", "\"NEAR\" * ^ - : ( )",
    };
    for (size_t i = 0; i < MD_ARRAY_LEN(inputs); i++) {
        /* through the splitter, as the API does */
        char buf[1024];
        const char *words[32];
        size_t n = md_fulltext_words(inputs[i], buf, sizeof(buf), words, 32);
        struct md_rule_query q;
        memset(&q, 0, sizeof(q));
        q.words = words;
        q.n_words = n;
        q.limit = 10;
        struct md_rule_list list;
        search(l, &q, &list);
        md_rule_list_release(&list);
        /* and raw, as a single word: the store must never let text become syntax */
        const char *raw[] = {inputs[i]};
        q.words = raw;
        q.n_words = 1;
        search(l, &q, &list);
        md_rule_list_release(&list);
        /* raw, mixed with a word that matches */
        const char *mixed[] = {inputs[i], "quotes"};
        q.words = mixed;
        q.n_words = 2;
        search(l, &q, &list);
        assert_true(list.count >= 1);
        md_rule_list_release(&list);
    }
    struct md_rule_query q = words_query(NAMES("near"));
    expect_search(l, &q, NAMES("GDPR_Hostile_01"));
    q = words_query(NAMES("日本語のテキスト"));
    expect_search(l, &q, NAMES("GDPR_Unicode_01"));
    q = words_query(NAMES("ünïcödé"));
    expect_search(l, &q, NAMES("GDPR_Unicode_01"));
    q = words_query(NAMES("été"));
    expect_search(l, &q, NAMES("GDPR_Unicode_01"));
    /* empty after splitting: the store treats it as structured */
    memset(&q, 0, sizeof(q));
    q.limit = 10;
    expect_search(l, &q, NAMES("GDPR_Hostile_01", "GDPR_Unicode_01"));
}

/* ---- concepts ------------------------------------------------------------------------------- */

static void test_concept_case(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    simple(l, "GDPR_Upper_01", "upper", NAMES("Consent", "ÉTÉ"), 0.9, NOW);
    simple(l, "GDPR_Lower_01", "lower", NAMES("consent", "été"), 0.4, NOW);

    struct md_concept_list cs;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(l->ops->concepts(l, "", 10, &cs, &err), MD_OK);
    assert_int_equal(cs.count, 2);
    assert_string_equal(cs.items[0].name, "Consent");
    assert_string_equal(cs.items[0].key, "consent");
    assert_int_equal(cs.items[0].rule_count, 2);
    assert_string_equal(cs.items[1].name, "ÉTÉ");
    assert_string_equal(cs.items[1].key, "été");
    assert_int_equal(cs.items[1].rule_count, 2);
    md_concept_list_release(&cs);

    char *name;
    struct md_rule_list list;
    assert_int_equal(l->ops->concept_rules(l, "consent", &name, &list, &err), MD_OK);
    assert_string_equal(name, "Consent");
    assert_int_equal(list.count, 2);
    assert_string_equal(list.items[0].rule_id, "GDPR_Upper_01"); /* confidence descending */
    assert_concepts(&list.items[0], NAMES("Consent", "ÉTÉ"));
    assert_string_equal(list.items[1].rule_id, "GDPR_Lower_01");
    assert_concepts(&list.items[1], NAMES("consent", "été"));
    free(name);
    md_rule_list_release(&list);

    const char *keys[] = {"été"};
    struct md_rule_query q;
    memset(&q, 0, sizeof(q));
    q.limit = 10;
    q.concept_keys = keys;
    q.n_concepts = 1;
    expect_search(l, &q, NAMES("GDPR_Upper_01", "GDPR_Lower_01"));

    /* deleting one rule keeps the concept and its first spelling */
    assert_int_equal(del(l, "GDPR_Upper_01", NULL, NULL), MD_OK);
    assert_int_equal(l->ops->concept_rules(l, "consent", &name, &list, &err), MD_OK);
    assert_string_equal(name, "Consent");
    assert_int_equal(list.count, 1);
    free(name);
    md_rule_list_release(&list);
}

static void test_concepts_paging(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    simple(l, "GDPR_One_01", "t", NAMES("delta", "Alpha", "echo"), 0.5, NOW);
    simple(l, "GDPR_Two_01", "t", NAMES("charlie", "bravo", "alpha"), 0.5, NOW);
    static const char *const want[] = {"Alpha", "bravo", "charlie", "delta", "echo"};
    for (size_t lim = 1; lim <= 6; lim++) {
        char after[MD_CONCEPT_KEY_MAX + 1] = "";
        size_t got = 0;
        for (;;) {
            struct md_concept_list cs;
            struct md_error err;
            md_error_clear(&err);
            assert_int_equal(l->ops->concepts(l, after, lim, &cs, &err), MD_OK);
            for (size_t i = 0; i < cs.count; i++) {
                assert_true(got < 5);
                assert_string_equal(cs.items[i].name, want[got]);
                assert_int_equal(cs.items[i].rule_count, got == 0 ? 2 : 1);
                got++;
            }
            bool more = cs.more;
            if (cs.count)
                snprintf(after, sizeof(after), "%s", cs.items[cs.count - 1].key);
            md_concept_list_release(&cs);
            if (!more)
                break;
        }
        assert_int_equal(got, 5);
    }
}

static void test_concept_links(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    simple(l, "GDPR_A_01", "a", NAMES("Consent", "retention", "lonely"), 0.5, NOW);
    simple(l, "GDPR_B_01", "b", NAMES("consent"), 0.5, NOW);
    simple(l, "GDPR_C_01", "c", NAMES("Retention", "CONSENT"), 0.5, NOW);

    struct md_concept_links *links;
    size_t n;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(l->ops->concept_links(l, "GDPR_A_01", &links, &n, &err), MD_OK);
    assert_int_equal(n, 3);
    assert_string_equal(links[0].concept, "Consent");
    assert_strv(links[0].rule_ids, links[0].n_rule_ids, NAMES("GDPR_B_01", "GDPR_C_01"));
    assert_string_equal(links[1].concept, "retention");
    assert_strv(links[1].rule_ids, links[1].n_rule_ids, NAMES("GDPR_C_01"));
    assert_string_equal(links[2].concept, "lonely");
    assert_int_equal(links[2].n_rule_ids, 0);
    md_concept_links_release(links, n);

    assert_int_equal(l->ops->concept_links(l, "GDPR_C_01", &links, &n, &err), MD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(links[0].concept, "Retention");
    assert_strv(links[0].rule_ids, links[0].n_rule_ids, NAMES("GDPR_A_01"));
    assert_string_equal(links[1].concept, "CONSENT");
    assert_strv(links[1].rule_ids, links[1].n_rule_ids, NAMES("GDPR_A_01", "GDPR_B_01"));
    md_concept_links_release(links, n);

    assert_int_equal(l->ops->concept_links(l, "GDPR_Nope_01", &links, &n, &err), MD_E_NOTFOUND);
    assert_null(links);
    assert_int_equal(n, 0);
}

/* ---- scenarios and snapshots ---------------------------------------------------------------- */

static void test_snapshots(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    struct md_snapshot s1 = {.scenario_id = "shop_r1_consent",
                             .entry_json = "{\"scenario_id\":\"shop_r1_consent\",\"v\":1}",
                             .sha256 = "11111111111111111111111111111111"
                                       "11111111111111111111111111111111",
                             .has_feedback = true,
                             .final_status = MD_VERDICT_COMPLIANT,
                             .captured_ms = NOW};
    struct mk_opts o = {.id = "GDPR_Snap_01",
                        .text = "snap",
                        .concepts = NAMES("evidence"),
                        .sources = NAMES("shop_r1_consent", "shop_r2_other"),
                        .confidence = 0.4,
                        .snaps = &s1,
                        .n_snaps = 1};
    mk_ok(l, &o);
    simple(l, "GDPR_Snap_02", "snap two", NAMES("evidence"), 0.8, NOW); /* ecommerce_r1_consent */
    struct md_rule_patch p;
    memset(&p, 0, sizeof(p));
    const char *add[] = {"shop_r1_consent"};
    p.add_sources = add;
    p.n_add_sources = 1;
    assert_int_equal(patch(l, "GDPR_Snap_02", &p, NOW + 1, NULL, NULL), MD_OK);

    struct md_scenario_info si;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(l->ops->scenario(l, "shop_r1_consent", &si, &err), MD_OK);
    assert_true(si.known);
    assert_true(si.has_snapshot);
    assert_string_equal(si.snapshot_json, s1.entry_json);
    assert_string_equal(si.snapshot_sha256, s1.sha256);
    assert_int_equal(si.snapshot_captured_ms, NOW);
    assert_true(si.snapshot_has_feedback);
    assert_int_equal(si.snapshot_final_status, MD_VERDICT_COMPLIANT);
    assert_int_equal(si.derived.count, 2);
    assert_string_equal(si.derived.items[0].rule_id, "GDPR_Snap_02"); /* confidence desc */
    assert_string_equal(si.derived.items[1].rule_id, "GDPR_Snap_01");
    assert_concepts(&si.derived.items[1], NAMES("evidence"));
    md_scenario_info_release(&si);

    assert_int_equal(l->ops->scenario(l, "shop_r2_other", &si, &err), MD_OK);
    assert_true(si.known);
    assert_false(si.has_snapshot);
    assert_null(si.snapshot_json);
    assert_int_equal(si.snapshot_final_status, MD_VERDICT_NONE);
    assert_int_equal(si.derived.count, 1);
    md_scenario_info_release(&si);

    assert_int_equal(l->ops->scenario(l, "shop_r9_unknown", &si, &err), MD_OK);
    assert_false(si.known);
    assert_int_equal(si.derived.count, 0);
    md_scenario_info_release(&si);

    struct md_pair_list pl;
    assert_int_equal(l->ops->sources_without_snapshot(l, &pl, &err), MD_OK);
    assert_int_equal(pl.count, 2);
    assert_string_equal(pl.rule_ids[0], "GDPR_Snap_01");
    assert_string_equal(pl.scenario_ids[0], "shop_r2_other");
    assert_string_equal(pl.rule_ids[1], "GDPR_Snap_02");
    assert_string_equal(pl.scenario_ids[1], "ecommerce_r1_consent");
    md_pair_list_release(&pl);

    /* linking again refreshes the snapshot; that alone is no change */
    struct md_snapshot s2 = {.scenario_id = "shop_r2_other",
                             .entry_json = "{\"v\":2}",
                             .sha256 = "2222",
                             .has_feedback = false,
                             .final_status = MD_VERDICT_NONE,
                             .captured_ms = NOW + 7};
    struct md_snapshot s1b = s1;
    s1b.entry_json = "{\"v\":3}";
    s1b.sha256[0] = '3';
    s1b.has_feedback = false;
    s1b.final_status = MD_VERDICT_NONE;
    s1b.captured_ms = NOW + 8;
    struct md_snapshot both[] = {s2, s1b};
    const char *again[] = {"shop_r2_other", "shop_r1_consent"};
    memset(&p, 0, sizeof(p));
    p.add_sources = again;
    p.n_add_sources = 2;
    p.snapshots = both;
    p.n_snapshots = 2;
    struct md_rule r;
    bool changed = true;
    assert_int_equal(patch(l, "GDPR_Snap_01", &p, NOW + 9, &r, &changed), MD_OK);
    assert_false(changed);
    assert_int_equal(r.version, 1);
    md_rule_release(&r);
    struct md_rule_detail d;
    assert_int_equal(l->ops->get(l, "GDPR_Snap_01", &d, &err), MD_OK);
    assert_int_equal(d.n_sources, 2);
    assert_string_equal(d.sources[0].scenario_id, "shop_r1_consent");
    assert_true(d.sources[0].has_snapshot);
    assert_false(d.sources[0].snapshot_has_feedback);
    assert_int_equal(d.sources[0].snapshot_final_status, MD_VERDICT_NONE);
    assert_int_equal(d.sources[0].snapshot_captured_ms, NOW + 8);
    assert_int_equal(d.sources[0].snapshot_sha256[0], '3');
    assert_true(d.sources[1].has_snapshot);
    assert_string_equal(d.sources[1].snapshot_sha256, "2222");
    md_rule_detail_release(&d);
    assert_int_equal(l->ops->scenario(l, "shop_r1_consent", &si, &err), MD_OK);
    assert_string_equal(si.snapshot_json, "{\"v\":3}");
    md_scenario_info_release(&si);

    assert_int_equal(l->ops->sources_without_snapshot(l, &pl, &err), MD_OK);
    assert_int_equal(pl.count, 1);
    assert_string_equal(pl.rule_ids[0], "GDPR_Snap_02");
    md_pair_list_release(&pl);
}

/* ---- rules_exist and stats ------------------------------------------------------------------ */

static void test_exist_and_stats(void **state)
{
    struct fixture *fx = *state;
    struct md_ltm *l = fx->ltm;
    struct md_ltm_stats s;
    stats(l, &s);
    assert_int_equal(s.total_rules, 0);
    assert_true(s.average_confidence == 0.0);
    assert_int_equal(s.n_policies, 0);
    md_ltm_stats_release(&s);

    simple(l, "GDPR_A_01", "a", NAMES("x", "y"), 0.2, NOW);
    simple(l, "GDPR_B_01", "b", NAMES("y"), 0.4, NOW);
    simple(l, "CCPA_C_01", "c", NAMES("z"), 0.9, NOW);
    struct mk_opts o = {.id = "ISO_NoSource_01", .concepts = NAMES("x"), .confidence = 0.5};
    mk_ok(l, &o);

    const char *ids[] = {"GDPR_A_01", "GDPR_Z_01", "not a rule id", "CCPA_C_01", "\"]'"};
    bool ex[5];
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(l->ops->rules_exist(l, ids, 5, ex, &err), MD_OK);
    assert_true(ex[0]);
    assert_false(ex[1]);
    assert_false(ex[2]);
    assert_true(ex[3]);
    assert_false(ex[4]);
    assert_int_equal(l->ops->rules_exist(l, ids, 0, ex, &err), MD_OK);

    stats(l, &s);
    assert_int_equal(s.total_rules, 4);
    assert_true(s.average_confidence > 0.49999 && s.average_confidence < 0.50001);
    assert_int_equal(s.total_concepts, 3);
    assert_strv(s.policies, s.n_policies, NAMES("CCPA", "GDPR", "ISO"));
    assert_int_equal(s.policy_counts[0], 1);
    assert_int_equal(s.policy_counts[1], 2);
    assert_int_equal(s.policy_counts[2], 1);
    assert_int_equal(s.rules_without_sources, 1);
    md_ltm_stats_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_generated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_concepts_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_cleanup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_structured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_fulltext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concept_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concepts_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concept_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exist_and_stats, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
