/*
 * test_stm_sqlite.c — the embedded STM backend against the contract of
 * memoryd/stm.h: canonical JSON, create/conflict, generated-id suffixes,
 * concurrency, patch masks, feedback, TTL and expiry (with explicit now_ms
 * values, no sleeping), listing and paging, stats, links, for_each, sweep.
 * Each test opens a fresh database in its own temporary directory.
 */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "memoryd/clock.h"
#include "memoryd/sqlite_db.h"
#include "memoryd/stm.h"

#define NOW INT64_C(1764171000000) /* 2025-11-26T15:30:00.000Z */
#define HOUR_MS INT64_C(3600000)

struct fixture {
    char root[64];
    struct md_sqlite *db;
    struct md_stm *stm;
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
    snprintf(fx->root, sizeof(fx->root), "/tmp/md_stm_sqlite_XXXXXX");
    if (!mkdtemp(fx->root))
        return -1;
    struct md_sqlite_options o = {
        .data_dir = fx->root,
        .pool_size = 8,
        .synchronous_full = false,
        .busy_timeout_ms = 10000,
    };
    struct md_error err;
    md_error_clear(&err);
    fx->db = md_sqlite_open(&o, &err);
    if (!fx->db)
        return -1;
    fx->stm = md_stm_sqlite_new(fx->db, &err);
    if (!fx->stm)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    md_stm_destroy(fx->stm);
    md_sqlite_close(fx->db);
    nftw(fx->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static enum md_status mk(struct md_stm *s, const char *id, bool generated, enum md_verdict status,
                         int64_t ttl_seconds, int64_t now, char out_id[MD_SCENARIO_ID_MAX + 1])
{
    struct md_stm_new in;
    memset(&in, 0, sizeof(in));
    snprintf(in.scenario_id, sizeof(in.scenario_id), "%s", id);
    in.generated = generated;
    in.requirement_text = "Consent must be unbundled";
    in.status = status;
    in.rationale = "bundled";
    in.recommendation = "split";
    in.ttl_seconds = ttl_seconds;
    struct md_stm_view v;
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = s->ops->create(s, &in, now, &v, &err);
    if (st == MD_OK) {
        if (out_id)
            snprintf(out_id, MD_SCENARIO_ID_MAX + 1, "%s", v.scenario_id);
        md_stm_view_release(&v);
    } else {
        if (err.code != st || st == MD_E_INTERNAL)
            fail_msg("create %s: %d %s (%s)", id, st, err.msg, err.detail);
    }
    return st;
}

static void mk_ok(struct md_stm *s, const char *id, enum md_verdict status, int64_t ttl,
                  int64_t now)
{
    assert_int_equal(mk(s, id, false, status, ttl, now, NULL), MD_OK);
}

static char *gen(struct md_stm *s, const char *base, int64_t now)
{
    static char id[MD_SCENARIO_ID_MAX + 1];
    assert_int_equal(mk(s, base, true, MD_VERDICT_PENDING, 3600, now, id), MD_OK);
    return id;
}

static enum md_status get(struct md_stm *s, const char *id, int64_t now, struct md_stm_view *v)
{
    struct md_error err;
    md_error_clear(&err);
    memset(v, 0, sizeof(*v));
    return s->ops->get(s, id, now, v, &err);
}

static json_t *parse(const struct md_stm_view *v)
{
    assert_int_equal(strlen(v->json), v->json_len);
    json_error_t jerr;
    json_t *j = json_loads(v->json, 0, &jerr);
    if (!j)
        fail_msg("bad JSON %s: %s", v->json, jerr.text);
    return j;
}

static const char *jpath(json_t *j, const char *a, const char *b)
{
    json_t *v = json_object_get(j, a);
    if (b)
        v = json_object_get(v, b);
    return json_is_null(v) ? "null" : json_string_value(v);
}

static void feedback(struct md_stm *s, const char *id, const char *decision, bool set_final,
                     enum md_verdict fin, int64_t now)
{
    struct md_stm_feedback fb = {
        .decision = decision,
        .rationale = "because",
        .suggestion = "do this",
        .set_final = set_final,
        .final_status = fin,
    };
    struct md_stm_view v;
    struct md_error err;
    assert_int_equal(s->ops->feedback(s, id, &fb, now, &v, &err), MD_OK);
    md_stm_view_release(&v);
}

/* Raw count over the shared database file. */
static int64_t count_sql(struct fixture *fx, const char *sql)
{
    struct md_sqlite_conn *c;
    struct md_error err;
    assert_int_equal(md_sqlite_checkout(fx->db, 1000, &c, &err), MD_OK);
    sqlite3_stmt *st = md_sqlite_prepare(c, sql, &err);
    assert_non_null(st);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    md_sqlite_checkin(fx->db, c);
    return n;
}

/* ---- create / get ----------------------------------------------------------------------- */

static void test_create_get_conflict(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    assert_string_equal(s->ops->backend, "embedded");
    struct md_stm_new in;
    memset(&in, 0, sizeof(in));
    snprintf(in.scenario_id, sizeof(in.scenario_id), "ecommerce_r1_consent");
    in.requirement_text = "Consent must be \"unbundled\" \xe2\x80\x94 caf\xc3\xa9\n/ok";
    in.status = MD_VERDICT_NON_COMPLIANT;
    in.rationale = "bundled";
    in.recommendation = "split";
    in.ttl_seconds = 3600;
    struct md_stm_view v;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(s->ops->create(s, &in, NOW, &v, &err), MD_OK);
    const char *expect =
        "{\"scenario_id\":\"ecommerce_r1_consent\","
        "\"requirement_text\":\"Consent must be \\\"unbundled\\\" \xe2\x80\x94 caf\xc3\xa9\\n/ok\","
        "\"initial_assessment\":{\"status\":\"Non-Compliant\",\"rationale\":\"bundled\","
        "\"recommendation\":\"split\"},"
        "\"human_feedback\":null,\"final_status\":null,"
        "\"created_at\":\"2025-11-26T15:30:00.000Z\",\"updated_at\":\"2025-11-26T15:30:00.000Z\","
        "\"expires_at\":\"2025-11-26T16:30:00.000Z\"}";
    assert_string_equal(v.json, expect);
    assert_int_equal(v.json_len, strlen(expect));
    assert_string_equal(v.scenario_id, "ecommerce_r1_consent");
    assert_false(v.has_feedback);
    assert_int_equal(v.final_status, MD_VERDICT_NONE);
    assert_int_equal(v.expires_ms, NOW + HOUR_MS);
    md_stm_view_release(&v);

    /* get hands back the stored JSON verbatim */
    assert_int_equal(get(s, "ecommerce_r1_consent", NOW + 1, &v), MD_OK);
    assert_string_equal(v.json, expect);
    assert_int_equal(v.n_links, 0);
    assert_null(v.links);
    assert_int_equal(v.expires_ms, NOW + HOUR_MS);
    md_stm_view_release(&v);

    /* never overwritten */
    md_error_clear(&err);
    in.requirement_text = "other";
    assert_int_equal(s->ops->create(s, &in, NOW + 5, &v, &err), MD_E_CONFLICT);
    assert_string_equal(err.field, "scenario_id");
    assert_null(v.json);
    assert_int_equal(get(s, "ecommerce_r1_consent", NOW + 6, &v), MD_OK);
    assert_string_equal(v.json, expect);
    md_stm_view_release(&v);

    assert_int_equal(get(s, "ecommerce_r9_nothing", NOW, &v), MD_E_NOTFOUND);
    assert_null(v.json);

    /* bad inputs never reach the database */
    in.ttl_seconds = 0;
    assert_int_equal(s->ops->create(s, &in, NOW, &v, &err), MD_E_INVAL);
    in.ttl_seconds = 60;
    in.status = MD_VERDICT_NONE;
    assert_int_equal(s->ops->create(s, &in, NOW, &v, &err), MD_E_INVAL);
}

static void test_generated_suffixes(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    struct md_error err;
    assert_string_equal(gen(s, "shop_r1_consent", NOW), "shop_r1_consent");
    assert_string_equal(gen(s, "shop_r1_consent", NOW), "shop_r1_consent_2");
    assert_string_equal(gen(s, "shop_r1_consent", NOW), "shop_r1_consent_3");
    /* neighbours that merely share the prefix do not count */
    mk_ok(s, "shop_r1_consent_form", MD_VERDICT_PENDING, 3600, NOW);
    mk_ok(s, "shop_r1_consent2", MD_VERDICT_PENDING, 3600, NOW);
    mk_ok(s, "shop_r1_consent_05", MD_VERDICT_PENDING, 3600, NOW);
    mk_ok(s, "shop_r1_consent_5", MD_VERDICT_PENDING, 3600, NOW);
    /* lowest free after deletes */
    assert_int_equal(s->ops->del(s, "shop_r1_consent_2", NOW, &err), MD_OK);
    assert_string_equal(gen(s, "shop_r1_consent", NOW), "shop_r1_consent_2");
    assert_int_equal(s->ops->del(s, "shop_r1_consent", NOW, &err), MD_OK);
    assert_string_equal(gen(s, "shop_r1_consent", NOW), "shop_r1_consent");
    assert_string_equal(gen(s, "shop_r1_consent", NOW), "shop_r1_consent_4");
    assert_string_equal(gen(s, "shop_r1_consent", NOW), "shop_r1_consent_6");

    /* an expired entry's id is free again, and its links go with it */
    assert_int_equal(mk(s, "exp_r1_x", false, MD_VERDICT_COMPLIANT, 60, NOW, NULL), MD_OK);
    assert_int_equal(s->ops->link_add(s, "exp_r1_x", "GDPR_Old_01", NOW, &err), MD_OK);
    assert_string_equal(gen(s, "exp_r1_x", NOW + 59999), "exp_r1_x_2");
    assert_string_equal(gen(s, "exp_r1_x", NOW + 60000), "exp_r1_x");
    struct md_stm_view v;
    assert_int_equal(get(s, "exp_r1_x", NOW + 60000, &v), MD_OK);
    assert_int_equal(v.n_links, 0);
    assert_int_equal(v.expires_ms, NOW + 60000 + HOUR_MS);
    md_stm_view_release(&v);
    /* an explicit create over an expired id works too */
    assert_int_equal(mk(s, "exp_r2_y", false, MD_VERDICT_COMPLIANT, 60, NOW, NULL), MD_OK);
    assert_int_equal(mk(s, "exp_r2_y", false, MD_VERDICT_COMPLIANT, 60, NOW + 1000, NULL),
                     MD_E_CONFLICT);
    assert_int_equal(mk(s, "exp_r2_y", false, MD_VERDICT_COMPLIANT, 60, NOW + 60000, NULL),
                     MD_OK);

    /* the suffix must fit in 128 characters */
    char base[MD_SCENARIO_ID_MAX + 1];
    snprintf(base, sizeof(base), "a_r1_");
    memset(base + 5, 'x', 122);
    base[127] = '\0';
    assert_string_equal(gen(s, base, NOW), base);
    assert_int_equal(mk(s, base, true, MD_VERDICT_PENDING, 60, NOW, NULL), MD_E_CONFLICT);
}

/* ---- concurrency ------------------------------------------------------------------------ */

#define CONC_CREATES 50
#define CONC_THREADS 8

struct conc {
    struct md_stm *s;
    atomic_int next;
    char ids[CONC_CREATES][MD_SCENARIO_ID_MAX + 1];
    atomic_int failures;
};

static void *conc_create(void *arg)
{
    struct conc *cc = arg;
    for (;;) {
        int slot = atomic_fetch_add(&cc->next, 1);
        if (slot >= CONC_CREATES)
            break;
        struct md_stm_new in;
        memset(&in, 0, sizeof(in));
        snprintf(in.scenario_id, sizeof(in.scenario_id), "conc_r1_load");
        in.generated = true;
        in.requirement_text = "t";
        in.status = MD_VERDICT_PENDING;
        in.rationale = "r";
        in.recommendation = "m";
        in.ttl_seconds = 3600;
        struct md_stm_view v;
        struct md_error err;
        if (cc->s->ops->create(cc->s, &in, NOW, &v, &err) != MD_OK) {
            atomic_fetch_add(&cc->failures, 1);
            continue;
        }
        snprintf(cc->ids[slot], sizeof(cc->ids[slot]), "%s", v.scenario_id);
        md_stm_view_release(&v);
    }
    return NULL;
}

static void test_concurrent_generated_creates(void **state)
{
    struct fixture *fx = *state;
    struct conc *cc = calloc(1, sizeof(*cc));
    assert_non_null(cc);
    cc->s = fx->stm;
    atomic_init(&cc->next, 0);
    atomic_init(&cc->failures, 0);
    pthread_t t[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, conc_create, cc), 0);
    for (int i = 0; i < CONC_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&cc->failures), 0);
    /* 50 distinct ids: exactly base, base_2 … base_50 */
    bool seen[CONC_CREATES + 1] = {false};
    for (int i = 0; i < CONC_CREATES; i++) {
        int n = 1;
        if (strcmp(cc->ids[i], "conc_r1_load") != 0)
            assert_int_equal(sscanf(cc->ids[i], "conc_r1_load_%d", &n), 1);
        assert_true(n >= 1 && n <= CONC_CREATES);
        assert_false(seen[n]);
        seen[n] = true;
    }
    free(cc);
    assert_int_equal(count_sql(fx, "SELECT count(*) FROM stm_entries"), CONC_CREATES);
}

#define FB_THREADS 20

struct fb_arg {
    struct md_stm *s;
    int n;
    enum md_status st;
};

static void *conc_feedback(void *arg)
{
    struct fb_arg *a = arg;
    char decision[32], rationale[32], suggestion[32];
    snprintf(decision, sizeof(decision), "decision %d", a->n);
    snprintf(rationale, sizeof(rationale), "rationale %d", a->n);
    snprintf(suggestion, sizeof(suggestion), "suggestion %d", a->n);
    struct md_stm_feedback fb = {
        .decision = decision,
        .rationale = rationale,
        .suggestion = suggestion,
        .set_final = a->n % 3 != 0,
        .final_status = a->n % 3 == 1 ? MD_VERDICT_COMPLIANT : MD_VERDICT_NONE,
    };
    struct md_stm_view v;
    struct md_error err;
    a->st = a->s->ops->feedback(a->s, "conc_r2_feedback", &fb, NOW + 1000 + a->n, &v, &err);
    if (a->st == MD_OK)
        md_stm_view_release(&v);
    return NULL;
}

static void test_concurrent_feedback(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    mk_ok(s, "conc_r2_feedback", MD_VERDICT_PENDING, 3600, NOW);
    pthread_t t[FB_THREADS];
    struct fb_arg args[FB_THREADS];
    for (int i = 0; i < FB_THREADS; i++) {
        args[i] = (struct fb_arg){.s = s, .n = i, .st = MD_E_INTERNAL};
        assert_int_equal(pthread_create(&t[i], NULL, conc_feedback, &args[i]), 0);
    }
    for (int i = 0; i < FB_THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].st, MD_OK);
    }
    struct md_stm_view v;
    assert_int_equal(get(s, "conc_r2_feedback", NOW + 5000, &v), MD_OK);
    json_t *j = parse(&v);
    int n = -1;
    assert_int_equal(sscanf(jpath(j, "human_feedback", "decision"), "decision %d", &n), 1);
    char want[32];
    snprintf(want, sizeof(want), "rationale %d", n);
    assert_string_equal(jpath(j, "human_feedback", "rationale"), want);
    snprintf(want, sizeof(want), "suggestion %d", n);
    assert_string_equal(jpath(j, "human_feedback", "suggestion"), want);
    assert_true(v.has_feedback);
    /* the columns agree with the JSON */
    const char *fin = jpath(j, "final_status", NULL);
    if (v.final_status == MD_VERDICT_NONE)
        assert_string_equal(fin, "null");
    else
        assert_string_equal(fin, md_verdict_name(v.final_status));
    assert_int_equal(v.expires_ms, NOW + HOUR_MS);
    assert_string_equal(jpath(j, "expires_at", NULL), "2025-11-26T16:30:00.000Z");
    json_decref(j);
    md_stm_view_release(&v);
}

/* ---- patch and feedback ----------------------------------------------------------------- */

static enum md_status patch(struct md_stm *s, const char *id, const struct md_stm_patch *p,
                            int64_t now, unsigned *changed, struct md_stm_view *v)
{
    struct md_error err;
    md_error_clear(&err);
    return s->ops->patch(s, id, p, now, v, changed, &err);
}

static struct md_stm_patch no_patch(void)
{
    struct md_stm_patch p;
    memset(&p, 0, sizeof(p));
    p.status = MD_VERDICT_NONE;
    p.final_status = MD_VERDICT_NONE;
    return p;
}

static void test_patch_changed_mask(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    const char *id = "shop_r3_patch";
    mk_ok(s, id, MD_VERDICT_NON_COMPLIANT, 3600, NOW);

    struct md_stm_patch p = no_patch();
    p.requirement_text = "New text";
    p.set_status = true;
    p.status = MD_VERDICT_PARTIAL;
    p.rationale = "bundled"; /* same as before */
    unsigned changed = 99;
    struct md_stm_view v;
    assert_int_equal(patch(s, id, &p, NOW + 1000, &changed, &v), MD_OK);
    assert_int_equal(changed, MD_STM_F_REQUIREMENT_TEXT | MD_STM_F_STATUS);
    json_t *j = parse(&v);
    assert_string_equal(jpath(j, "requirement_text", NULL), "New text");
    assert_string_equal(jpath(j, "initial_assessment", "status"), "Partially Compliant");
    assert_string_equal(jpath(j, "initial_assessment", "rationale"), "bundled");
    assert_string_equal(jpath(j, "created_at", NULL), "2025-11-26T15:30:00.000Z");
    assert_string_equal(jpath(j, "updated_at", NULL), "2025-11-26T15:30:01.000Z");
    assert_string_equal(jpath(j, "expires_at", NULL), "2025-11-26T16:30:00.000Z");
    json_decref(j);
    char *after_first = strdup(v.json);
    md_stm_view_release(&v);

    /* the same values again: nothing changes, updated_at included */
    changed = 99;
    assert_int_equal(patch(s, id, &p, NOW + 2000, &changed, &v), MD_OK);
    assert_int_equal(changed, 0);
    assert_string_equal(v.json, after_first);
    assert_string_equal(v.scenario_id, id);
    assert_int_equal(v.expires_ms, NOW + HOUR_MS);
    md_stm_view_release(&v);
    struct md_stm_patch empty = no_patch();
    assert_int_equal(patch(s, id, &empty, NOW + 2000, &changed, &v), MD_OK);
    assert_int_equal(changed, 0);
    assert_string_equal(v.json, after_first);
    md_stm_view_release(&v);
    assert_int_equal(get(s, id, NOW + 3000, &v), MD_OK);
    assert_string_equal(v.json, after_first);
    md_stm_view_release(&v);
    free(after_first);

    /* one field among unchanged ones */
    p = no_patch();
    p.rationale = "bundled";
    p.recommendation = "unbundle";
    assert_int_equal(patch(s, id, &p, NOW + 4000, &changed, &v), MD_OK);
    assert_int_equal(changed, MD_STM_F_RECOMMENDATION);
    md_stm_view_release(&v);

    /* final status: set, clear, clear again */
    p = no_patch();
    p.set_final = true;
    p.final_status = MD_VERDICT_COMPLIANT;
    assert_int_equal(patch(s, id, &p, NOW + 5000, &changed, &v), MD_OK);
    assert_int_equal(changed, MD_STM_F_FINAL_STATUS);
    assert_int_equal(v.final_status, MD_VERDICT_COMPLIANT);
    j = parse(&v);
    assert_string_equal(jpath(j, "final_status", NULL), "Compliant");
    json_decref(j);
    md_stm_view_release(&v);
    p.final_status = MD_VERDICT_NONE;
    assert_int_equal(patch(s, id, &p, NOW + 6000, &changed, &v), MD_OK);
    assert_int_equal(changed, MD_STM_F_FINAL_STATUS);
    assert_int_equal(v.final_status, MD_VERDICT_NONE);
    j = parse(&v);
    assert_true(json_is_null(json_object_get(j, "final_status")));
    json_decref(j);
    md_stm_view_release(&v);
    assert_int_equal(patch(s, id, &p, NOW + 7000, &changed, &v), MD_OK);
    assert_int_equal(changed, 0);
    md_stm_view_release(&v);

    /* the status column follows the patch (list filter) */
    struct md_stm_filter f;
    md_stm_filter_init(&f);
    f.status = MD_VERDICT_PARTIAL;
    struct md_stm_page page;
    struct md_error err;
    assert_int_equal(s->ops->list(s, &f, 10, 0, NOW + 8000, &page, &err), MD_OK);
    assert_int_equal(page.count, 1);
    assert_string_equal(page.items[0].scenario_id, id);
    md_stm_page_release(&page);

    /* unknown id */
    assert_int_equal(patch(s, "shop_r9_none", &p, NOW, &changed, &v), MD_E_NOTFOUND);
    assert_null(v.json);
}

static void test_feedback_final_status(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    const char *id = "shop_r4_feedback";
    mk_ok(s, id, MD_VERDICT_NON_COMPLIANT, 3600, NOW);
    struct md_stm_view v;

    feedback(s, id, "change", true, MD_VERDICT_PARTIAL, NOW + 1000);
    assert_int_equal(get(s, id, NOW + 1000, &v), MD_OK);
    assert_true(v.has_feedback);
    assert_int_equal(v.final_status, MD_VERDICT_PARTIAL);
    json_t *j = parse(&v);
    assert_string_equal(jpath(j, "human_feedback", "decision"), "change");
    assert_string_equal(jpath(j, "final_status", NULL), "Partially Compliant");
    assert_string_equal(jpath(j, "updated_at", NULL), "2025-11-26T15:30:01.000Z");
    /* key order of the human_feedback object */
    assert_non_null(strstr(v.json, "\"human_feedback\":{\"decision\":\"change\","
                                   "\"rationale\":\"because\",\"suggestion\":\"do this\"},"
                                   "\"final_status\":\"Partially Compliant\",\"created_at\""));
    json_decref(j);
    md_stm_view_release(&v);

    /* without final_status: kept; feedback replaced; updated_at always bumped */
    feedback(s, id, "keep", false, MD_VERDICT_NONE, NOW + 2000);
    assert_int_equal(get(s, id, NOW + 2000, &v), MD_OK);
    assert_int_equal(v.final_status, MD_VERDICT_PARTIAL);
    j = parse(&v);
    assert_string_equal(jpath(j, "human_feedback", "decision"), "keep");
    assert_string_equal(jpath(j, "final_status", NULL), "Partially Compliant");
    assert_string_equal(jpath(j, "updated_at", NULL), "2025-11-26T15:30:02.000Z");
    json_decref(j);
    md_stm_view_release(&v);

    /* the same feedback again still bumps updated_at */
    feedback(s, id, "keep", false, MD_VERDICT_NONE, NOW + 3000);
    assert_int_equal(get(s, id, NOW + 3000, &v), MD_OK);
    j = parse(&v);
    assert_string_equal(jpath(j, "updated_at", NULL), "2025-11-26T15:30:03.000Z");
    json_decref(j);
    md_stm_view_release(&v);

    /* null clears it */
    feedback(s, id, "clear", true, MD_VERDICT_NONE, NOW + 4000);
    assert_int_equal(get(s, id, NOW + 4000, &v), MD_OK);
    assert_int_equal(v.final_status, MD_VERDICT_NONE);
    assert_true(v.has_feedback);
    j = parse(&v);
    assert_string_equal(jpath(j, "final_status", NULL), "null");
    assert_string_equal(jpath(j, "initial_assessment", "status"), "Non-Compliant");
    assert_string_equal(jpath(j, "expires_at", NULL), "2025-11-26T16:30:00.000Z");
    json_decref(j);
    md_stm_view_release(&v);

    struct md_stm_feedback fb = {.decision = "x", .rationale = "y", .suggestion = "z"};
    struct md_error err;
    assert_int_equal(s->ops->feedback(s, "shop_r9_none", &fb, NOW, &v, &err), MD_E_NOTFOUND);
    fb.decision = NULL;
    assert_int_equal(s->ops->feedback(s, id, &fb, NOW, &v, &err), MD_E_INVAL);
}

/* ---- TTL and expiry --------------------------------------------------------------------- */

/* alive_many gives get_many's verdict and expiry, without the entries. */
static void test_get_many_and_alive_many_agree(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    struct md_error err;
    md_error_clear(&err);
    mk_ok(s, "many_r1_short", MD_VERDICT_COMPLIANT, 60, NOW);
    mk_ok(s, "many_r2_gone", MD_VERDICT_PENDING, 3600, NOW);
    assert_int_equal(s->ops->del(s, "many_r2_gone", NOW + 1, &err), MD_OK);
    mk_ok(s, "many_r3_long", MD_VERDICT_PENDING, 3600, NOW);
    const char *ids[] = {"many_r1_short", "many_r2_gone", "nobody_r9_here", "many_r3_long",
                         "many_r1_short"};
    const size_t n = MD_ARRAY_LEN(ids);
    int64_t when[] = {NOW + 1000, NOW + 60000, NOW + 3600000};
    int64_t want[][5] = {{NOW + 60000, 0, 0, NOW + 3600000, NOW + 60000},
                         {0, 0, 0, NOW + 3600000, 0},
                         {0, 0, 0, 0, 0}};
    for (size_t w = 0; w < MD_ARRAY_LEN(when); w++) {
        struct md_stm_view v[5];
        int64_t exp[5];
        memset(exp, 0x5a, sizeof(exp)); /* every slot is written */
        assert_int_equal(s->ops->get_many(s, ids, n, when[w], v, &err), MD_OK);
        assert_int_equal(s->ops->alive_many(s, ids, n, when[w], exp, &err), MD_OK);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(exp[i], want[w][i]);
            assert_int_equal(exp[i] != 0, v[i].json != NULL);
            if (v[i].json)
                assert_int_equal(exp[i], v[i].expires_ms);
            md_stm_view_release(&v[i]);
        }
    }
    assert_int_equal(s->ops->alive_many(s, ids, 0, NOW, NULL, &err), MD_OK);
}

static void test_ttl_and_expiry(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    struct md_error err;
    struct md_stm_view v;
    const char *id = "ttl_r1_short";
    mk_ok(s, id, MD_VERDICT_COMPLIANT, 60, NOW);
    mk_ok(s, "ttl_r2_long", MD_VERDICT_COMPLIANT, 3600, NOW);
    assert_int_equal(s->ops->link_add(s, id, "GDPR_Ttl_01", NOW, &err), MD_OK);

    assert_int_equal(get(s, id, NOW + 59999, &v), MD_OK);
    md_stm_view_release(&v);
    /* expired at expires_ms exactly: gone from every read, list and count */
    int64_t t = NOW + 60000;
    assert_int_equal(get(s, id, t, &v), MD_E_NOTFOUND);
    struct md_stm_filter f;
    md_stm_filter_init(&f);
    struct md_stm_page page;
    assert_int_equal(s->ops->list(s, &f, 100, 0, t, &page, &err), MD_OK);
    assert_int_equal(page.count, 1);
    assert_string_equal(page.items[0].scenario_id, "ttl_r2_long");
    md_stm_page_release(&page);
    struct md_stm_stats st;
    assert_int_equal(s->ops->stats(s, t, &st, &err), MD_OK);
    assert_int_equal(st.total, 1);
    struct md_stm_patch p = no_patch();
    p.requirement_text = "x";
    unsigned changed;
    assert_int_equal(patch(s, id, &p, t, &changed, &v), MD_E_NOTFOUND);
    struct md_stm_feedback fb = {.decision = "x", .rationale = "y", .suggestion = "z"};
    assert_int_equal(s->ops->feedback(s, id, &fb, t, &v, &err), MD_E_NOTFOUND);
    int64_t exp;
    assert_int_equal(s->ops->set_ttl(s, id, 600, t, &exp, &err), MD_E_NOTFOUND);
    assert_int_equal(s->ops->link_add(s, id, "GDPR_Ttl_02", t, &err), MD_E_NOTFOUND);
    assert_int_equal(s->ops->del(s, id, t, &err), MD_E_NOTFOUND);

    /* set_ttl: new expiry = now + ttl; updated_at and the rest stay */
    const char *id2 = "ttl_r3_reset";
    mk_ok(s, id2, MD_VERDICT_PENDING, 60, NOW);
    assert_int_equal(s->ops->set_ttl(s, id2, 120, NOW + 30000, &exp, &err), MD_OK);
    assert_int_equal(exp, NOW + 150000);
    assert_int_equal(get(s, id2, NOW + 149999, &v), MD_OK);
    assert_int_equal(v.expires_ms, NOW + 150000);
    json_t *j = parse(&v);
    assert_string_equal(jpath(j, "expires_at", NULL), "2025-11-26T15:32:30.000Z");
    assert_string_equal(jpath(j, "updated_at", NULL), "2025-11-26T15:30:00.000Z");
    json_decref(j);
    md_stm_view_release(&v);
    /* later updates keep that expiry */
    p = no_patch();
    p.recommendation = "later";
    assert_int_equal(patch(s, id2, &p, NOW + 40000, &changed, &v), MD_OK);
    assert_int_equal(v.expires_ms, NOW + 150000);
    md_stm_view_release(&v);
    feedback(s, id2, "d", false, MD_VERDICT_NONE, NOW + 50000);
    assert_int_equal(get(s, id2, NOW + 149999, &v), MD_OK);
    j = parse(&v);
    assert_string_equal(jpath(j, "expires_at", NULL), "2025-11-26T15:32:30.000Z");
    json_decref(j);
    md_stm_view_release(&v);
    assert_int_equal(get(s, id2, NOW + 150000, &v), MD_E_NOTFOUND);

    /* a shorter TTL is allowed too */
    assert_int_equal(s->ops->set_ttl(s, "ttl_r2_long", 1, NOW, &exp, &err), MD_OK);
    assert_int_equal(get(s, "ttl_r2_long", NOW + 1000, &v), MD_E_NOTFOUND);
    assert_int_equal(s->ops->set_ttl(s, "ttl_r2_long", 0, NOW, &exp, &err), MD_E_INVAL);
}

/* ---- list ------------------------------------------------------------------------------- */

#define LIST_N 30

struct model {
    char id[MD_SCENARIO_ID_MAX + 1];
    enum md_verdict status;
    enum md_verdict fin;
    bool fb;
    const char *domain;
};

static bool matches(const struct model *m, const struct md_stm_filter *f)
{
    return (f->status == MD_VERDICT_NONE || m->status == f->status) &&
           (f->final_status == MD_VERDICT_NONE || m->fin == f->final_status) &&
           (f->has_feedback < 0 || m->fb == (f->has_feedback == 1)) &&
           (!f->domain[0] || strcmp(m->domain, f->domain) == 0);
}

/* Page through with `limit` and compare with the model, newest first. */
static void check_listing(struct md_stm *s, const struct model *ms, size_t n,
                          const struct md_stm_filter *f, size_t limit, int64_t now)
{
    size_t expect[LIST_N], n_expect = 0;
    for (size_t i = n; i-- > 0;)
        if (matches(&ms[i], f))
            expect[n_expect++] = i;
    size_t got = 0;
    uint64_t after = 0;
    int pages = 0;
    do {
        struct md_stm_page page;
        struct md_error err;
        assert_int_equal(s->ops->list(s, f, limit, after, now, &page, &err), MD_OK);
        assert_true(page.count <= limit);
        for (size_t k = 0; k < page.count; k++) {
            assert_true(got < n_expect);
            const struct model *m = &ms[expect[got]];
            assert_string_equal(page.items[k].scenario_id, m->id);
            assert_int_equal(page.items[k].has_feedback, m->fb);
            assert_int_equal(page.items[k].final_status, m->fin);
            assert_non_null(strstr(page.items[k].json, m->id));
            got++;
        }
        if (page.next_seq)
            assert_int_equal(page.count, limit);
        after = page.next_seq;
        md_stm_page_release(&page);
        assert_true(++pages <= LIST_N + 2);
    } while (after != 0);
    assert_int_equal(got, n_expect);
}

static void test_list_filters_and_paging(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    static const char *const domains[] = {"alpha", "beta", "gamma"};
    struct model ms[LIST_N];
    for (int i = 0; i < LIST_N; i++) {
        struct model *m = &ms[i];
        m->domain = domains[i % 3];
        snprintf(m->id, sizeof(m->id), "%s_r%d_item", m->domain, i);
        m->status = (enum md_verdict)(i % MD_VERDICT_COUNT);
        m->fb = i % 3 != 1;
        m->fin = m->fb && i % 2 ? (enum md_verdict)((i / 2) % MD_VERDICT_COUNT) : MD_VERDICT_NONE;
        mk_ok(s, m->id, m->status, 3600, NOW + i);
        if (m->fb)
            feedback(s, m->id, "d", true, m->fin, NOW + 100);
        if (i % 10 == 4) /* an expired neighbour that must never show up */ {
            char dead[64];
            snprintf(dead, sizeof(dead), "%s_r%d_dead", m->domain, i);
            mk_ok(s, dead, m->status, 60, NOW - 60000 - 1);
        }
    }
    struct md_stm_filter f;
    md_stm_filter_init(&f);
    const int64_t now = NOW + 1000;
    static const size_t limits[] = {1, 4, 7, 30, 1000};
    for (size_t li = 0; li < MD_ARRAY_LEN(limits); li++)
        check_listing(s, ms, LIST_N, &f, limits[li], now);
    for (int v = 0; v < MD_VERDICT_COUNT; v++) {
        md_stm_filter_init(&f);
        f.status = (enum md_verdict)v;
        check_listing(s, ms, LIST_N, &f, 3, now);
        md_stm_filter_init(&f);
        f.final_status = (enum md_verdict)v;
        check_listing(s, ms, LIST_N, &f, 2, now);
    }
    for (int fb = 0; fb <= 1; fb++) {
        md_stm_filter_init(&f);
        f.has_feedback = fb;
        check_listing(s, ms, LIST_N, &f, 4, now);
    }
    for (size_t d = 0; d < MD_ARRAY_LEN(domains); d++) {
        md_stm_filter_init(&f);
        snprintf(f.domain, sizeof(f.domain), "%s", domains[d]);
        check_listing(s, ms, LIST_N, &f, 3, now);
        f.has_feedback = 1;
        f.status = MD_VERDICT_COMPLIANT;
        check_listing(s, ms, LIST_N, &f, 1, now);
        f.final_status = MD_VERDICT_PARTIAL;
        check_listing(s, ms, LIST_N, &f, 2, now);
    }
    md_stm_filter_init(&f);
    snprintf(f.domain, sizeof(f.domain), "delta");
    check_listing(s, ms, LIST_N, &f, 5, now);

    /* a NULL filter means "any" */
    struct md_stm_page page;
    struct md_error err;
    assert_int_equal(s->ops->list(s, NULL, 1000, 0, now, &page, &err), MD_OK);
    assert_int_equal(page.count, LIST_N);
    assert_int_equal(page.next_seq, 0);
    md_stm_page_release(&page);
}

/* ---- stats, links, delete --------------------------------------------------------------- */

static void test_stats(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    struct md_error err;
    struct md_stm_stats st;
    assert_int_equal(s->ops->stats(s, NOW, &st, &err), MD_OK);
    assert_int_equal(st.total, 0);
    mk_ok(s, "st_r1_a", MD_VERDICT_COMPLIANT, 3600, NOW);
    mk_ok(s, "st_r2_b", MD_VERDICT_COMPLIANT, 3600, NOW);
    mk_ok(s, "st_r3_c", MD_VERDICT_NON_COMPLIANT, 3600, NOW);
    mk_ok(s, "st_r4_d", MD_VERDICT_PENDING, 3600, NOW);
    mk_ok(s, "st_r5_e", MD_VERDICT_PARTIAL, 60, NOW); /* expires */
    feedback(s, "st_r1_a", "d", true, MD_VERDICT_NON_COMPLIANT, NOW);
    feedback(s, "st_r3_c", "d", false, MD_VERDICT_NONE, NOW);
    feedback(s, "st_r5_e", "d", true, MD_VERDICT_COMPLIANT, NOW);
    assert_int_equal(s->ops->stats(s, NOW + 1000, &st, &err), MD_OK);
    assert_int_equal(st.total, 5);
    assert_int_equal(st.with_feedback, 3);
    assert_int_equal(st.by_final[MD_VERDICT_COMPLIANT], 1);
    assert_int_equal(s->ops->stats(s, NOW + 60000, &st, &err), MD_OK);
    assert_int_equal(st.total, 4);
    assert_int_equal(st.with_feedback, 2);
    assert_int_equal(st.by_status[MD_VERDICT_COMPLIANT], 2);
    assert_int_equal(st.by_status[MD_VERDICT_NON_COMPLIANT], 1);
    assert_int_equal(st.by_status[MD_VERDICT_PARTIAL], 0);
    assert_int_equal(st.by_status[MD_VERDICT_PENDING], 1);
    assert_int_equal(st.by_final[MD_VERDICT_NON_COMPLIANT], 1);
    assert_int_equal(st.by_final[MD_VERDICT_COMPLIANT], 0);
    assert_int_equal(st.by_final[MD_VERDICT_PARTIAL], 0);
    assert_int_equal(st.by_final[MD_VERDICT_PENDING], 0);
}

static void test_links_and_delete(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    struct md_error err;
    struct md_stm_view v;
    const char *id = "lk_r1_a";
    mk_ok(s, id, MD_VERDICT_COMPLIANT, 3600, NOW);
    mk_ok(s, "lk_r2_b", MD_VERDICT_COMPLIANT, 3600, NOW);
    assert_int_equal(s->ops->link_add(s, id, "GDPR_Zeta_01", NOW, &err), MD_OK);
    assert_int_equal(s->ops->link_add(s, id, "GDPR_Alpha_01", NOW, &err), MD_OK);
    assert_int_equal(s->ops->link_add(s, id, "GDPR_Alpha_01", NOW, &err), MD_OK); /* again */
    assert_int_equal(s->ops->link_add(s, "lk_r2_b", "GDPR_Alpha_01", NOW, &err), MD_OK);
    md_error_clear(&err);
    assert_int_equal(s->ops->link_add(s, "lk_r9_none", "GDPR_Alpha_01", NOW, &err),
                     MD_E_NOTFOUND);
    assert_int_equal(err.code, MD_E_NOTFOUND);

    assert_int_equal(get(s, id, NOW, &v), MD_OK);
    assert_int_equal(v.n_links, 2);
    assert_string_equal(v.links[0], "GDPR_Alpha_01");
    assert_string_equal(v.links[1], "GDPR_Zeta_01");
    md_stm_view_release(&v);

    const char *const ids[] = {id, "lk_r2_b", "lk_r9_none"};
    assert_int_equal(s->ops->links_remove(s, "GDPR_Alpha_01", ids, 3, &err), MD_OK);
    assert_int_equal(s->ops->links_remove(s, "GDPR_Alpha_01", ids, 0, &err), MD_OK);
    assert_int_equal(get(s, id, NOW, &v), MD_OK);
    assert_int_equal(v.n_links, 1);
    assert_string_equal(v.links[0], "GDPR_Zeta_01");
    md_stm_view_release(&v);
    assert_int_equal(get(s, "lk_r2_b", NOW, &v), MD_OK);
    assert_int_equal(v.n_links, 0);
    md_stm_view_release(&v);

    /* delete takes the links with it; the id can be created afresh */
    assert_int_equal(s->ops->del(s, id, NOW, &err), MD_OK);
    assert_int_equal(get(s, id, NOW, &v), MD_E_NOTFOUND);
    assert_int_equal(s->ops->del(s, id, NOW, &err), MD_E_NOTFOUND);
    assert_int_equal(count_sql(fx, "SELECT count(*) FROM stm_links"), 0);
    mk_ok(s, id, MD_VERDICT_PENDING, 3600, NOW);
    assert_int_equal(get(s, id, NOW, &v), MD_OK);
    assert_int_equal(v.n_links, 0);
    md_stm_view_release(&v);
}

/* ---- for_each --------------------------------------------------------------------------- */

#define EACH_N 600

struct each_ctx {
    int seen[EACH_N];
    int calls;
    int stop_after; /* 0: never */
    bool bad;
};

static enum md_status each_cb(void *ctx, const char *scenario_id, bool has_feedback,
                              const char *const *links, size_t n_links)
{
    struct each_ctx *e = ctx;
    int i = -1;
    if (sscanf(scenario_id, "each_r%d_x", &i) != 1 || i < 0 || i >= EACH_N) {
        e->bad = true;
        return MD_OK;
    }
    e->seen[i]++;
    e->calls++;
    if (has_feedback != (i % 5 == 0))
        e->bad = true;
    if (i % 7 == 0) {
        if (n_links != 2 || strcmp(links[0], "GDPR_A_01") != 0 ||
            strcmp(links[1], "GDPR_B_01") != 0)
            e->bad = true;
    } else if (n_links != 0) {
        e->bad = true;
    }
    if (e->stop_after && e->calls == e->stop_after)
        return MD_E_LIMIT;
    return MD_OK;
}

static void test_for_each(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    struct md_error err;
    for (int i = 0; i < EACH_N; i++) {
        char id[64];
        snprintf(id, sizeof(id), "each_r%d_x", i);
        mk_ok(s, id, MD_VERDICT_PENDING, 3600, NOW);
        if (i % 5 == 0)
            feedback(s, id, "d", false, MD_VERDICT_NONE, NOW);
        if (i % 7 == 0) {
            assert_int_equal(s->ops->link_add(s, id, "GDPR_B_01", NOW, &err), MD_OK);
            assert_int_equal(s->ops->link_add(s, id, "GDPR_A_01", NOW, &err), MD_OK);
        }
    }
    mk_ok(s, "each_r9999_dead", MD_VERDICT_PENDING, 60, NOW - 61000);
    struct each_ctx *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    assert_int_equal(s->ops->for_each(s, NOW, each_cb, e, &err), MD_OK);
    assert_false(e->bad);
    assert_int_equal(e->calls, EACH_N);
    for (int i = 0; i < EACH_N; i++)
        assert_int_equal(e->seen[i], 1);

    /* a callback error stops the walk and is returned */
    memset(e, 0, sizeof(*e));
    e->stop_after = 300; /* in the second batch */
    md_error_clear(&err);
    assert_int_equal(s->ops->for_each(s, NOW, each_cb, e, &err), MD_E_LIMIT);
    assert_int_equal(err.code, MD_E_LIMIT);
    assert_int_equal(e->calls, 300);
    free(e);
}

/* ---- sweep ------------------------------------------------------------------------------ */

static void test_sweep(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    struct md_error err;
    /* 4,500 expired rows written directly (fast), plus real entries */
    struct md_sqlite_conn *c;
    assert_int_equal(md_sqlite_checkout(fx->db, 1000, &c, &err), MD_OK);
    assert_int_equal(md_sqlite_begin(c, &err), MD_OK);
    static const char ins[] =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4500)"
        " INSERT INTO stm_entries (scenario_id, domain, status, created_ms, expires_ms, body)"
        " SELECT 'bulk_r' || i || '_x', 'bulk', 'Pending', ?1, ?1 + 1000, '{}' FROM n";
    sqlite3_stmt *st = md_sqlite_prepare(c, ins, &err);
    assert_non_null(st);
    assert_int_equal(sqlite3_bind_int64(st, 1, NOW), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    static const char lnk[] = "INSERT INTO stm_links SELECT scenario_id, 'GDPR_Bulk_01'"
                              " FROM stm_entries WHERE domain = 'bulk'";
    st = md_sqlite_prepare(c, lnk, &err);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    assert_int_equal(md_sqlite_commit(c, &err), MD_OK);
    md_sqlite_checkin(fx->db, c);

    mk_ok(s, "live_r1_a", MD_VERDICT_PENDING, 3600, NOW);
    mk_ok(s, "live_r2_b", MD_VERDICT_PENDING, 3600, NOW);
    assert_int_equal(s->ops->link_add(s, "live_r1_a", "GDPR_Live_01", NOW, &err), MD_OK);

    /* nothing is due yet */
    s->ops->sweep(s, NOW + 999);
    assert_int_equal(count_sql(fx, "SELECT count(*) FROM stm_entries"), 4502);
    /* bounded: at most 8 batches of 500 per call */
    s->ops->sweep(s, NOW + 1000);
    assert_int_equal(count_sql(fx, "SELECT count(*) FROM stm_entries"), 502);
    assert_int_equal(count_sql(fx, "SELECT count(*) FROM stm_links"), 501);
    s->ops->sweep(s, NOW + 1000);
    assert_int_equal(count_sql(fx, "SELECT count(*) FROM stm_entries"), 2);
    assert_int_equal(count_sql(fx, "SELECT count(*) FROM stm_links"), 1);
    s->ops->sweep(s, NOW + 1000);
    assert_int_equal(count_sql(fx, "SELECT count(*) FROM stm_entries"), 2);
    struct md_stm_view v;
    assert_int_equal(get(s, "live_r1_a", NOW + 1000, &v), MD_OK);
    assert_int_equal(v.n_links, 1);
    md_stm_view_release(&v);
}

static void test_ping_and_pool_stats(void **state)
{
    struct fixture *fx = *state;
    struct md_stm *s = fx->stm;
    struct md_error err;
    assert_int_equal(s->ops->ping(s, &err), MD_OK);
    struct md_pool_stats ps;
    s->ops->pool_stats(s, &ps);
    assert_int_equal(ps.size, 8);
    assert_int_equal(ps.max, 8);
    assert_int_equal(ps.in_use, 0);
    assert_int_equal(ps.timeouts, 0);
    /* the pool answers UNAVAIL, not a hang, when exhausted */
    struct md_sqlite_conn *held[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(md_sqlite_checkout(fx->db, 100, &held[i], &err), MD_OK);
    s->ops->pool_stats(s, &ps);
    assert_int_equal(ps.in_use, 8);
    for (int i = 0; i < 8; i++)
        md_sqlite_checkin(fx->db, held[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_suffixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_generated_creates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_feedback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_changed_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feedback_final_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_many_and_alive_many_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters_and_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_for_each, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_and_pool_stats, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
