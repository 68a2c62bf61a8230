/*
 * test_ltm_neo4j.c — the Neo4j LTM backend against a real Neo4j 5.
 *
 * Needs NEO4J_URI (http://host:port), NEO4J_USERNAME and NEO4J_PASSWORD in
 * the environment (scripts/test.sh starts tests/neo4j/server.sh and exports
 * them). Without them the test FAILS: it never passes without having talked
 * to Neo4j. Every run works under its own random tag (policy, scenario ids,
 * concept names, search words), so it can share a server with other tests,
 * and removes what it created at the end.
 */
#include "memoryd/compat.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/ids.h"
#include "memoryd/ltm.h"
#include "memoryd/neo4j_client.h"
#include "memoryd/stm.h"
#include "memoryd/text.h"

static char g_uri[512];
static char g_user[256];
static char g_pass[256];
static char g_db[] = "neo4j";
static char g_empty[] = "";
static struct md_ltm *g_ltm;
static struct md_neo4j *g_direct; /* for checks in raw Cypher */
static char g_tag[8];             /* e.g. "K3Q9ZT" */
static char g_tag_lc[8];          /* lower case */
static _Atomic int64_t g_now; /* distinct, increasing timestamps */

/* ---- helpers --------------------------------------------------------------------------- */

static void make_config(struct md_config *cfg, const char *base, const char *password)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->neo4j_http_base = (char *)(uintptr_t)base;
    cfg->neo4j_database = g_db;
    cfg->neo4j_username = g_user;
    cfg->neo4j_password = (char *)(uintptr_t)password;
    cfg->neo4j_ca_file = g_empty;
    cfg->neo4j_max_connection_lifetime = 3600;
    cfg->neo4j_max_connection_pool_size = 16;
    cfg->neo4j_connection_acquisition_timeout = 10;
    cfg->neo4j_connection_timeout = 5;
    cfg->neo4j_query_timeout = 30;
    cfg->neo4j_max_retry_time = 10;
}

/* Run one Cypher statement directly; returns the result (caller releases). */
static void cypher(const char *q, json_t *params, struct md_neo4j_result *res)
{
    struct md_neo4j_stmt st = {q, params};
    struct md_error err;
    enum md_status rc = md_neo4j_run(g_direct, &st, 1, res, &err);
    if (rc != MD_OK)
        fail_msg("cypher failed: %s / %s (%s)", err.msg, err.detail, q);
    json_decref(params);
}

static int64_t cypher_int(const char *q, json_t *params)
{
    struct md_neo4j_result res;
    cypher(q, params, &res);
    int64_t v = (int64_t)json_integer_value(json_array_get(md_neo4j_row(&res, 0, 0), 0));
    md_neo4j_result_release(&res);
    return v;
}

/* Tagged names: "<base>_<tag>" ids, "<Base> <tag>" concepts. */
static const char *rid(const char *suffix)
{
    static _Thread_local char buf[8][MD_RULE_ID_MAX + 1];
    static _Thread_local int k;
    char *b = buf[k++ % 8];
    snprintf(b, MD_RULE_ID_MAX + 1, "%s_%s", g_tag, suffix);
    return b;
}

static const char *sid(const char *suffix)
{
    static _Thread_local char buf[8][MD_SCENARIO_ID_MAX + 1];
    static _Thread_local int k;
    char *b = buf[k++ % 8];
    snprintf(b, MD_SCENARIO_ID_MAX + 1, "t%s_r1_%s", g_tag_lc, suffix);
    return b;
}

struct concepts {
    struct md_concept c[8];
    char names[8][128];
    char keys[8][MD_CONCEPT_KEY_MAX + 1];
    size_t n;
};

/* Concept names are tagged so that this run's concepts are its own. */
static void concepts_of(struct concepts *cs, const char *const *names, size_t n)
{
    memset(cs, 0, sizeof(*cs));
    for (size_t i = 0; i < n; i++) {
        snprintf(cs->names[i], sizeof(cs->names[i]), "%s %s", names[i], g_tag);
        md_concept_key(cs->names[i], cs->keys[i]);
        cs->c[i].name = cs->names[i];
        cs->c[i].key = cs->keys[i];
    }
    cs->n = n;
}

static enum md_status create_rule(const char *rule_id, const char *prefix, const char *text,
                                  const char *const *cnames, size_t nc,
                                  const char *const *sources, size_t ns, double conf,
                                  struct md_rule *out, struct md_error *err)
{
    struct concepts cs;
    concepts_of(&cs, cnames, nc);
    struct md_rule_new in = {
        .rule_id = rule_id,
        .id_prefix = prefix,
        .policy = g_tag,
        .rule_text = text,
        .concepts = cs.c,
        .n_concepts = cs.n,
        .sources = sources,
        .n_sources = ns,
        .confidence = conf,
    };
    return g_ltm->ops->create(g_ltm, &in, g_now++, out, err);
}

static void create_ok(const char *rule_id, const char *text, const char *const *cnames,
                      size_t nc, const char *const *sources, size_t ns, double conf)
{
    struct md_rule r;
    struct md_error err;
    enum md_status st = create_rule(rule_id, NULL, text, cnames, nc, sources, ns, conf, &r, &err);
    if (st != MD_OK)
        fail_msg("create %s: %s / %s", rule_id, err.msg, err.detail);
    md_rule_release(&r);
}

static void delete_ok(const char *rule_id)
{
    char **srcs;
    size_t n;
    struct md_error err;
    enum md_status st = g_ltm->ops->del(g_ltm, rule_id, &srcs, &n, &err);
    if (st != MD_OK)
        fail_msg("delete %s: %s / %s", rule_id, err.msg, err.detail);
    for (size_t i = 0; i < n; i++)
        free(srcs[i]);
    free(srcs);
}

static bool has_name(struct md_neo4j_result *res, size_t stmt, const char *name)
{
    for (size_t i = 0; i < md_neo4j_rows(res, stmt); i++) {
        const char *n = json_string_value(json_array_get(md_neo4j_row(res, stmt, i), 0));
        if (n && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_schema_idempotent(void **state)
{
    (void)state;
    struct md_error err;
    for (int i = 0; i < 2; i++) {
        enum md_status st = g_ltm->ops->ensure_schema(g_ltm, &err);
        if (st != MD_OK)
            fail_msg("ensure_schema #%d: %s / %s", i + 1, err.msg, err.detail);
    }
    struct md_neo4j_result res;
    struct md_neo4j_stmt st[2] = {{"SHOW CONSTRAINTS YIELD name RETURN name", NULL},
                                  {"SHOW INDEXES YIELD name, type, state "
                                   "RETURN name, type, state",
                                   NULL}};
    assert_int_equal(md_neo4j_run(g_direct, st, 2, &res, &err), MD_OK);
    static const char *const constraints[] = {"rule_id_unique", "concept_name_unique",
                                              "concept_key_unique", "scenario_id_unique",
                                              "policy_name_unique"};
    static const char *const indexes[] = {
        "rule_confidence_index", "rule_created_index", "rule_updated_index",
        "rule_policy_index", "rule_version_rule_index", "ruleTextSearch", "conceptSearch"};
    for (size_t i = 0; i < MD_ARRAY_LEN(constraints); i++)
        assert_true(has_name(&res, 0, constraints[i]));
    for (size_t i = 0; i < MD_ARRAY_LEN(indexes); i++)
        assert_true(has_name(&res, 1, indexes[i]));
    /* the full-text ones really are full-text indexes */
    for (size_t i = 0; i < md_neo4j_rows(&res, 1); i++) {
        json_t *row = md_neo4j_row(&res, 1, i);
        const char *n = json_string_value(json_array_get(row, 0));
        if (strcmp(n, "ruleTextSearch") == 0 || strcmp(n, "conceptSearch") == 0)
            assert_string_equal(json_string_value(json_array_get(row, 1)), "FULLTEXT");
    }
    md_neo4j_result_release(&res);
}

static void test_create_get_conflict(void **state)
{
    (void)state;
    struct md_error err;
    struct md_rule r;
    static const char *const cn[] = {"Consent", "Data Retention"};
    const char *srcs[] = {sid("consent"), sid("retention")};
    char json[] = "{\"scenario_id\":\"x\",\"human_feedback\":{\"decision\":\"d\"}}";
    struct md_snapshot snap = {.scenario_id = srcs[0],
                               .entry_json = json,
                               .has_feedback = true,
                               .final_status = MD_VERDICT_PARTIAL,
                               .captured_ms = 1764201600123LL};
    md_sha256_hex(json, strlen(json), snap.sha256);
    struct concepts cs;
    concepts_of(&cs, cn, 2);
    struct md_rule_new in = {.rule_id = rid("Consent_01"),
                             .policy = g_tag,
                             .rule_text = "Consent must be unbundled \"quoted\" \\ caf\xc3\xa9",
                             .concepts = cs.c,
                             .n_concepts = 2,
                             .sources = srcs,
                             .n_sources = 2,
                             .snapshots = &snap,
                             .n_snapshots = 1,
                             .confidence = 0.875};
    int64_t now = g_now++;
    enum md_status st = g_ltm->ops->create(g_ltm, &in, now, &r, &err);
    if (st != MD_OK)
        fail_msg("create: %s / %s", err.msg, err.detail);
    assert_string_equal(r.rule_id, rid("Consent_01"));
    assert_string_equal(r.policy, g_tag);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.created_ms, now);
    md_rule_release(&r);

    struct md_rule_detail d;
    assert_int_equal(g_ltm->ops->get(g_ltm, rid("Consent_01"), &d, &err), MD_OK);
    assert_string_equal(d.rule.rule_id, rid("Consent_01"));
    assert_string_equal(d.rule.policy, g_tag);
    assert_string_equal(d.rule.rule_text, in.rule_text);
    assert_true(d.rule.confidence == 0.875);
    assert_int_equal(d.rule.version, 1);
    assert_int_equal(d.rule.created_ms, now);
    assert_int_equal(d.rule.updated_ms, now);
    assert_int_equal(d.rule.n_concepts, 2);
    assert_string_equal(d.rule.concepts[0].name, cs.names[0]); /* the rule's order */
    assert_string_equal(d.rule.concepts[0].key, cs.keys[0]);
    assert_string_equal(d.rule.concepts[1].name, cs.names[1]);
    assert_int_equal(d.rule.n_sources, 2);
    assert_string_equal(d.rule.sources[0], sid("consent")); /* sorted */
    assert_string_equal(d.rule.sources[1], sid("retention"));
    assert_int_equal(d.n_sources, 2);
    assert_string_equal(d.sources[0].scenario_id, sid("consent"));
    assert_true(d.sources[0].has_snapshot);
    assert_true(d.sources[0].snapshot_has_feedback);
    assert_int_equal(d.sources[0].snapshot_final_status, MD_VERDICT_PARTIAL);
    assert_int_equal(d.sources[0].snapshot_captured_ms, 1764201600123LL);
    assert_string_equal(d.sources[0].snapshot_sha256, snap.sha256);
    assert_false(d.sources[1].has_snapshot);
    assert_int_equal(d.n_policies, 1);
    assert_string_equal(d.policies[0], g_tag);
    md_rule_detail_release(&d);

    /* ISO timestamps are stored too */
    char iso[MD_ISO8601_LEN];
    md_iso8601(now, iso);
    struct md_neo4j_result res;
    cypher("MATCH (r:Rule {rule_id: $id}) RETURN r.created_at, r.updated_at",
           json_pack("{s:s}", "id", rid("Consent_01")), &res);
    json_t *row = md_neo4j_row(&res, 0, 0);
    assert_string_equal(json_string_value(json_array_get(row, 0)), iso);
    assert_string_equal(json_string_value(json_array_get(row, 1)), iso);
    md_neo4j_result_release(&res);

    /* conflict */
    in.snapshots = NULL;
    in.n_snapshots = 0;
    assert_int_equal(g_ltm->ops->create(g_ltm, &in, g_now++, &r, &err), MD_E_CONFLICT);
    assert_non_null(strstr(err.msg, "already exists"));
    assert_null(strstr(err.msg, "Neo"));
    assert_null(strstr(err.msg, "label"));

    /* not found */
    assert_int_equal(g_ltm->ops->get(g_ltm, rid("Nope_01"), &d, &err), MD_E_NOTFOUND);
    delete_ok(rid("Consent_01"));
}

static void gen(const char *prefix, const char *want)
{
    struct md_rule r;
    struct md_error err;
    static const char *const cn[] = {"Generated"};
    const char *srcs[] = {sid("gen")};
    char full[MD_RULE_ID_MAX + 1];
    snprintf(full, sizeof(full), "%s_%s", g_tag, prefix);
    enum md_status st = create_rule(NULL, full, "generated rule", cn, 1, srcs, 1, 0.5, &r, &err);
    if (st != MD_OK)
        fail_msg("generated create: %s / %s", err.msg, err.detail);
    assert_string_equal(r.rule_id, rid(want));
    assert_true(md_rule_id_valid(r.rule_id));
    md_rule_release(&r);
}

static void test_generated_ids(void **state)
{
    (void)state;
    static const char *const cn[] = {"Generated"};
    const char *srcs[] = {sid("gen")};
    /* ids under the prefix with other suffixes do not count */
    create_ok(rid("Gen_Unbundled_01"), "other", cn, 1, srcs, 1, 0.5);
    create_ok(rid("Gen_001"), "three digits", cn, 1, srcs, 1, 0.5);
    gen("Gen", "Gen_01");
    gen("Gen", "Gen_02");
    gen("Gen", "Gen_03");
    delete_ok(rid("Gen_02"));
    gen("Gen", "Gen_02"); /* the lowest free one */
    gen("Gen", "Gen_04");
    /* a different prefix sharing the start of the name is independent */
    gen("GenX", "GenX_01");
    const char *ids[] = {"Gen_Unbundled_01", "Gen_001", "Gen_01", "Gen_02",
                         "Gen_03", "Gen_04", "GenX_01"};
    for (size_t i = 0; i < MD_ARRAY_LEN(ids); i++)
        delete_ok(rid(ids[i]));
}

struct gen_arg {
    char id[MD_RULE_ID_MAX + 1];
    enum md_status st;
    struct md_error err;
};

static void *gen_thread(void *p)
{
    struct gen_arg *a = p;
    struct md_rule r;
    static const char *const cn[] = {"Concurrent"};
    const char *srcs[] = {sid("conc")};
    char full[MD_RULE_ID_MAX + 1];
    snprintf(full, sizeof(full), "%s_Conc", g_tag);
    a->st = create_rule(NULL, full, "concurrent", cn, 1, srcs, 1, 0.5, &r, &a->err);
    if (a->st == MD_OK) {
        snprintf(a->id, sizeof(a->id), "%s", r.rule_id);
        md_rule_release(&r);
    }
    return NULL;
}

static void test_concurrent_generated(void **state)
{
    (void)state;
    enum { N = 20 };
    struct gen_arg args[N];
    pthread_t t[N];
    memset(args, 0, sizeof(args));
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, gen_thread, &args[i]), 0);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        if (args[i].st != MD_OK)
            fail_msg("thread %d: %s / %s", i, args[i].err.msg, args[i].err.detail);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(args[i].id, args[j].id);
    }
    /* distinct and exactly _01 … _20 */
    for (int n = 1; n <= N; n++) {
        char want[32];
        snprintf(want, sizeof(want), "Conc_%02d", n);
        bool found = false;
        for (int i = 0; i < N && !found; i++)
            found = strcmp(args[i].id, rid(want)) == 0;
        assert_true(found);
    }
    for (int i = 0; i < N; i++)
        delete_ok(args[i].id);
}

struct patch_arg {
    int n;
    enum md_status st;
    struct md_error err;
};

static void *patch_thread(void *p)
{
    struct patch_arg *a = p;
    char text[64];
    snprintf(text, sizeof(text), "concurrent text %d", a->n);
    struct md_rule_patch pt = {.rule_text = text};
    struct md_rule r;
    bool changed;
    a->st = g_ltm->ops->patch(g_ltm, rid("Par_01"), &pt, g_now++, &r, &changed, &a->err);
    if (a->st == MD_OK) {
        if (!changed)
            a->st = MD_E_INTERNAL;
        md_rule_release(&r);
    }
    return NULL;
}

/* Concurrent patches of one rule serialise: no lost update, one version each. */
static void test_concurrent_patches(void **state)
{
    (void)state;
    enum { N = 12 };
    static const char *const cn[] = {"Parallel"};
    const char *srcs[] = {sid("par")};
    create_ok(rid("Par_01"), "initial", cn, 1, srcs, 1, 0.5);
    struct patch_arg args[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct patch_arg){.n = i};
        assert_int_equal(pthread_create(&t[i], NULL, patch_thread, &args[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++)
        if (args[i].st != MD_OK)
            fail_msg("patch %d: %s / %s", i, args[i].err.msg, args[i].err.detail);
    struct md_rule_history h;
    struct md_error err;
    assert_int_equal(g_ltm->ops->history(g_ltm, rid("Par_01"), &h, &err), MD_OK);
    assert_int_equal(h.count, N + 1);
    for (size_t i = 0; i < h.count; i++)
        assert_int_equal(h.versions[i].version, (int64_t)i + 1);
    assert_string_equal(h.versions[0].rule_text, "initial");
    /* each version's text is distinct: nobody overwrote someone else's state */
    for (size_t i = 1; i < h.count; i++)
        for (size_t j = 1; j < i; j++)
            assert_string_not_equal(h.versions[i].rule_text, h.versions[j].rule_text);
    md_rule_history_release(&h);
    delete_ok(rid("Par_01"));
}

struct churn_arg {
    int n;
    enum md_status st;
    struct md_error err;
};

static void *churn_thread(void *p)
{
    struct churn_arg *a = p;
    static const char *const cn[] = {"Churn"};
    const char *srcs[] = {sid("churn")};
    for (int round = 0; round < 6 && a->st == MD_OK; round++) {
        char id[32];
        snprintf(id, sizeof(id), "Churn%d_%02d", a->n, round + 1);
        struct md_rule r;
        a->st = create_rule(rid(id), NULL, "churn", cn, 1, srcs, 1, 0.5, &r, &a->err);
        if (a->st != MD_OK)
            break;
        md_rule_release(&r);
        char **out;
        size_t n;
        a->st = g_ltm->ops->del(g_ltm, rid(id), &out, &n, &a->err);
        if (a->st == MD_OK) {
            for (size_t i = 0; i < n; i++)
                free(out[i]);
            free(out);
        }
    }
    return NULL;
}

/*
 * Creates and deletes racing on one shared concept and policy: never an
 * error, never a rule left without its concept or policy, and no orphan
 * at the end.
 */
static void test_create_delete_race(void **state)
{
    (void)state;
    enum { N = 6 };
    struct churn_arg args[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct churn_arg){.n = i, .st = MD_OK};
        assert_int_equal(pthread_create(&t[i], NULL, churn_thread, &args[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++)
        if (args[i].st != MD_OK)
            fail_msg("churn %d: %s / %s", i, args[i].err.msg, args[i].err.detail);
    struct concepts cs;
    static const char *const cn[] = {"Churn"};
    concepts_of(&cs, cn, 1);
    assert_int_equal(cypher_int("MATCH (c:Concept {key: $k}) RETURN count(c)",
                                json_pack("{s:s}", "k", cs.keys[0])),
                     0);
    assert_int_equal(cypher_int("MATCH (r:Rule) WHERE r.policy = $p AND "
                                "(NOT EXISTS { (r)-[:RELATES_TO]->() } OR "
                                " NOT EXISTS { (:Policy)-[:GOVERNS]->(r) }) RETURN count(r)",
                                json_pack("{s:s}", "p", g_tag)),
                     0);
}

static void test_patch_concepts_and_history(void **state)
{
    (void)state;
    struct md_error err;
    struct md_rule r;
    bool changed;
    static const char *const cn[] = {"Shared", "OnlyMine", "Third"};
    const char *srcs[] = {sid("p1")};
    create_ok(rid("Patch_01"), "version one text", cn, 3, srcs, 1, 0.5);
    static const char *const other_cn[] = {"Shared"};
    create_ok(rid("Other_01"), "another rule", other_cn, 1, srcs, 1, 0.4);
    int64_t created = g_now - 2;

    /* nothing changes: same text, same confidence, same concepts */
    struct concepts same;
    concepts_of(&same, cn, 3);
    struct md_rule_patch p = {.rule_text = "version one text",
                              .set_confidence = true,
                              .confidence = 0.5,
                              .set_concepts = true,
                              .concepts = same.c,
                              .n_concepts = 3,
                              .add_sources = srcs,
                              .n_add_sources = 1};
    assert_int_equal(g_ltm->ops->patch(g_ltm, rid("Patch_01"), &p, g_now++, &r, &changed, &err),
                     MD_OK);
    assert_false(changed);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.updated_ms, created);
    md_rule_release(&r);

    /* replace the concepts: Shared stays, OnlyMine and Third go, New comes */
    static const char *const cn2[] = {"New", "Shared"};
    struct concepts next;
    concepts_of(&next, cn2, 2);
    memset(&p, 0, sizeof(p));
    p.set_concepts = true;
    p.concepts = next.c;
    p.n_concepts = 2;
    int64_t t2 = g_now++;
    assert_int_equal(g_ltm->ops->patch(g_ltm, rid("Patch_01"), &p, t2, &r, &changed, &err),
                     MD_OK);
    assert_true(changed);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.updated_ms, t2);
    assert_int_equal(r.created_ms, created);
    assert_int_equal(r.n_concepts, 2);
    assert_string_equal(r.concepts[0].name, next.names[0]);
    assert_string_equal(r.concepts[1].name, next.names[1]);
    md_rule_release(&r);

    /* no stale edge */
    struct md_neo4j_result res;
    cypher("MATCH (r:Rule {rule_id:$id})-[:RELATES_TO]->(c) RETURN c.key ORDER BY c.key",
           json_pack("{s:s}", "id", rid("Patch_01")), &res);
    assert_int_equal(md_neo4j_rows(&res, 0), 2);
    char k_new[MD_CONCEPT_KEY_MAX + 1], k_shared[MD_CONCEPT_KEY_MAX + 1];
    md_concept_key(next.names[0], k_new);
    md_concept_key(next.names[1], k_shared);
    assert_string_equal(json_string_value(json_array_get(md_neo4j_row(&res, 0, 0), 0)), k_new);
    assert_string_equal(json_string_value(json_array_get(md_neo4j_row(&res, 0, 1), 0)),
                        k_shared);
    md_neo4j_result_release(&res);
    /* the orphaned concepts are gone, the shared one stays */
    assert_int_equal(cypher_int("MATCH (c:Concept) WHERE c.key IN $keys RETURN count(c)",
                                json_pack("{s:[s,s]}", "keys", same.keys[1], same.keys[2])),
                     0);
    assert_int_equal(cypher_int("MATCH (c:Concept {key: $k}) RETURN count(c)",
                                json_pack("{s:s}", "k", same.keys[0])),
                     1);

    /* reorder only: a change (names in order) */
    static const char *const cn3[] = {"Shared", "New"};
    struct concepts reord;
    concepts_of(&reord, cn3, 2);
    p.concepts = reord.c;
    assert_int_equal(g_ltm->ops->patch(g_ltm, rid("Patch_01"), &p, g_now++, &r, &changed, &err),
                     MD_OK);
    assert_true(changed);
    assert_int_equal(r.version, 3);
    assert_string_equal(r.concepts[0].name, reord.names[0]);
    md_rule_release(&r);

    /* text + confidence */
    memset(&p, 0, sizeof(p));
    p.rule_text = "version four text";
    p.set_confidence = true;
    p.confidence = 0.95;
    int64_t t4 = g_now++;
    assert_int_equal(g_ltm->ops->patch(g_ltm, rid("Patch_01"), &p, t4, &r, &changed, &err),
                     MD_OK);
    assert_true(changed);
    assert_int_equal(r.version, 4);
    assert_string_equal(r.rule_text, "version four text");
    assert_true(r.confidence == 0.95);
    md_rule_release(&r);

    /* history: oldest first, the current one last with recorded = updated */
    struct md_rule_history h;
    assert_int_equal(g_ltm->ops->history(g_ltm, rid("Patch_01"), &h, &err), MD_OK);
    assert_int_equal(h.count, 4);
    for (size_t i = 0; i < h.count; i++)
        assert_int_equal(h.versions[i].version, (int64_t)i + 1);
    assert_string_equal(h.versions[0].rule_text, "version one text");
    assert_int_equal(h.versions[0].n_concepts, 3);
    assert_string_equal(h.versions[0].concepts[1], same.names[1]);
    assert_int_equal(h.versions[0].recorded_ms, created);
    assert_int_equal(h.versions[1].recorded_ms, t2);
    assert_string_equal(h.versions[1].concepts[0], next.names[0]);
    assert_int_equal(h.versions[0].n_sources, 1);
    assert_string_equal(h.versions[3].rule_text, "version four text");
    assert_true(h.versions[3].confidence == 0.95);
    assert_int_equal(h.versions[3].recorded_ms, t4);
    assert_int_equal(h.versions[3].n_concepts, 2);
    md_rule_history_release(&h);
    assert_int_equal(cypher_int("MATCH (v:RuleVersion {rule_id: $id}) RETURN count(v)",
                                json_pack("{s:s}", "id", rid("Patch_01"))),
                     3);

    /* concept links: the other rule on Shared */
    struct md_concept_links *links;
    size_t nl;
    assert_int_equal(g_ltm->ops->concept_links(g_ltm, rid("Patch_01"), &links, &nl, &err),
                     MD_OK);
    assert_int_equal(nl, 2);
    assert_string_equal(links[0].concept, reord.names[0]);
    assert_int_equal(links[0].n_rule_ids, 1);
    assert_string_equal(links[0].rule_ids[0], rid("Other_01"));
    assert_int_equal(links[1].n_rule_ids, 0);
    md_concept_links_release(links, nl);
    assert_int_equal(g_ltm->ops->concept_links(g_ltm, rid("Nope_01"), &links, &nl, &err),
                     MD_E_NOTFOUND);

    /* not found */
    assert_int_equal(g_ltm->ops->patch(g_ltm, rid("Nope_01"), &p, g_now++, &r, &changed, &err),
                     MD_E_NOTFOUND);
    assert_int_equal(g_ltm->ops->history(g_ltm, rid("Nope_01"), &h, &err), MD_E_NOTFOUND);
    delete_ok(rid("Patch_01"));
    delete_ok(rid("Other_01"));
}

static void test_patch_sources_and_snapshots(void **state)
{
    (void)state;
    struct md_error err;
    struct md_rule r;
    bool changed;
    static const char *const cn[] = {"Snap"};
    const char *srcs[] = {sid("s1")};
    create_ok(rid("Snap_01"), "snapshot rule", cn, 1, srcs, 1, 0.5);

    /* re-linking a linked source with a snapshot: snapshot written, no new version */
    char j1[] = "{\"v\":1}";
    struct md_snapshot s1 = {.scenario_id = srcs[0], .entry_json = j1, .has_feedback = false,
                             .final_status = MD_VERDICT_NONE, .captured_ms = 1000};
    md_sha256_hex(j1, strlen(j1), s1.sha256);
    struct md_rule_patch p = {.add_sources = srcs, .n_add_sources = 1, .snapshots = &s1,
                              .n_snapshots = 1};
    assert_int_equal(g_ltm->ops->patch(g_ltm, rid("Snap_01"), &p, g_now++, &r, &changed, &err),
                     MD_OK);
    assert_false(changed);
    assert_int_equal(r.version, 1);
    md_rule_release(&r);
    struct md_scenario_info si;
    assert_int_equal(g_ltm->ops->scenario(g_ltm, srcs[0], &si, &err), MD_OK);
    assert_true(si.known);
    assert_true(si.has_snapshot);
    assert_string_equal(si.snapshot_json, j1);
    assert_string_equal(si.snapshot_sha256, s1.sha256);
    assert_false(si.snapshot_has_feedback);
    assert_int_equal(si.snapshot_final_status, MD_VERDICT_NONE);
    assert_int_equal(si.derived.count, 1);
    assert_string_equal(si.derived.items[0].rule_id, rid("Snap_01"));
    md_scenario_info_release(&si);

    /* a new source with a snapshot (refresh of s1 too): a change */
    const char *more[] = {sid("s2"), sid("s1")};
    char j2[] = "{\"v\":2}";
    struct md_snapshot snaps[2] = {
        {.scenario_id = more[0], .entry_json = j2, .has_feedback = true,
         .final_status = MD_VERDICT_COMPLIANT, .captured_ms = 2000},
        {.scenario_id = more[1], .entry_json = j2, .has_feedback = true,
         .final_status = MD_VERDICT_NON_COMPLIANT, .captured_ms = 2001},
    };
    md_sha256_hex(j2, strlen(j2), snaps[0].sha256);
    md_sha256_hex(j2, strlen(j2), snaps[1].sha256);
    p = (struct md_rule_patch){.add_sources = more, .n_add_sources = 2, .snapshots = snaps,
                               .n_snapshots = 2};
    assert_int_equal(g_ltm->ops->patch(g_ltm, rid("Snap_01"), &p, g_now++, &r, &changed, &err),
                     MD_OK);
    assert_true(changed);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.n_sources, 2);
    assert_string_equal(r.sources[0], sid("s1"));
    assert_string_equal(r.sources[1], sid("s2"));
    md_rule_release(&r);
    assert_int_equal(g_ltm->ops->scenario(g_ltm, sid("s1"), &si, &err), MD_OK);
    assert_string_equal(si.snapshot_json, j2);
    assert_true(si.snapshot_has_feedback);
    assert_int_equal(si.snapshot_final_status, MD_VERDICT_NON_COMPLIANT);
    assert_int_equal(si.snapshot_captured_ms, 2001);
    md_scenario_info_release(&si);

    /* unknown scenario: not an error */
    assert_int_equal(g_ltm->ops->scenario(g_ltm, sid("unknown"), &si, &err), MD_OK);
    assert_false(si.known);
    assert_false(si.has_snapshot);
    assert_int_equal(si.derived.count, 0);
    md_scenario_info_release(&si);

    /* sources without a snapshot */
    const char *bare[] = {sid("bare")};
    create_ok(rid("Bare_01"), "bare", cn, 1, bare, 1, 0.5);
    struct md_pair_list pl;
    assert_int_equal(g_ltm->ops->sources_without_snapshot(g_ltm, &pl, &err), MD_OK);
    bool found_bare = false, found_snap = false;
    for (size_t i = 0; i < pl.count; i++) {
        if (strcmp(pl.rule_ids[i], rid("Bare_01")) == 0 &&
            strcmp(pl.scenario_ids[i], sid("bare")) == 0)
            found_bare = true;
        if (strcmp(pl.rule_ids[i], rid("Snap_01")) == 0)
            found_snap = true;
    }
    assert_true(found_bare);
    assert_false(found_snap);
    md_pair_list_release(&pl);

    /* rules_exist, one round trip */
    const char *ids[] = {rid("Snap_01"), rid("Nope_01"), rid("Bare_01")};
    bool ex[3];
    assert_int_equal(g_ltm->ops->rules_exist(g_ltm, ids, 3, ex, &err), MD_OK);
    assert_true(ex[0]);
    assert_false(ex[1]);
    assert_true(ex[2]);
    assert_int_equal(g_ltm->ops->rules_exist(g_ltm, ids, 0, ex, &err), MD_OK);
    delete_ok(rid("Snap_01"));
    delete_ok(rid("Bare_01"));
}

static void test_delete_cleans_orphans(void **state)
{
    (void)state;
    struct md_error err;
    char pol[16];
    /* a policy of its own, so that deleting its only rule orphans it */
    snprintf(pol, sizeof(pol), "D%s", g_tag);
    static const char *const cn[] = {"DelOnly", "DelShared"};
    static const char *const cn_other[] = {"DelShared"};
    struct concepts cs, co;
    concepts_of(&cs, cn, 2);
    concepts_of(&co, cn_other, 1);
    const char *srcs[] = {sid("d1"), sid("d2")};
    char id1[MD_RULE_ID_MAX + 1], id2[MD_RULE_ID_MAX + 1];
    snprintf(id1, sizeof(id1), "%s_Del_01", pol);
    snprintf(id2, sizeof(id2), "%s_Keep_01", g_tag);
    struct md_rule r;
    struct md_rule_new in = {.rule_id = id1, .policy = pol, .rule_text = "to delete",
                             .concepts = cs.c, .n_concepts = 2, .sources = srcs,
                             .n_sources = 2, .confidence = 0.5};
    assert_int_equal(g_ltm->ops->create(g_ltm, &in, g_now++, &r, &err), MD_OK);
    md_rule_release(&r);
    struct md_rule_new in2 = {.rule_id = id2, .policy = g_tag, .rule_text = "keeps shared",
                              .concepts = co.c, .n_concepts = 1, .sources = srcs,
                              .n_sources = 1, .confidence = 0.5};
    assert_int_equal(g_ltm->ops->create(g_ltm, &in2, g_now++, &r, &err), MD_OK);
    md_rule_release(&r);
    /* give it a version so that RuleVersions must go too */
    struct md_rule_patch p = {.rule_text = "to delete v2"};
    bool changed;
    assert_int_equal(g_ltm->ops->patch(g_ltm, id1, &p, g_now++, &r, &changed, &err), MD_OK);
    md_rule_release(&r);

    char **out;
    size_t n;
    assert_int_equal(g_ltm->ops->del(g_ltm, id1, &out, &n, &err), MD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(out[0], sid("d1"));
    assert_string_equal(out[1], sid("d2"));
    for (size_t i = 0; i < n; i++)
        free(out[i]);
    free(out);
    assert_int_equal(cypher_int("MATCH (c:Concept {key: $k}) RETURN count(c)",
                                json_pack("{s:s}", "k", cs.keys[0])),
                     0);
    assert_int_equal(cypher_int("MATCH (c:Concept {key: $k}) RETURN count(c)",
                                json_pack("{s:s}", "k", cs.keys[1])),
                     1);
    assert_int_equal(cypher_int("MATCH (p:Policy {name: $p}) RETURN count(p)",
                                json_pack("{s:s}", "p", pol)),
                     0);
    assert_int_equal(cypher_int("MATCH (p:Policy {name: $p}) RETURN count(p)",
                                json_pack("{s:s}", "p", g_tag)),
                     1);
    assert_int_equal(cypher_int("MATCH (v:RuleVersion {rule_id: $id}) RETURN count(v)",
                                json_pack("{s:s}", "id", id1)),
                     0);
    assert_int_equal(cypher_int("MATCH (s:Scenario) WHERE s.scenario_id IN $ids "
                                "RETURN count(s)",
                                json_pack("{s:[s,s]}", "ids", srcs[0], srcs[1])),
                     2);
    /* no _lock property left behind anywhere */
    assert_int_equal(cypher_int("MATCH (n) WHERE n._lock IS NOT NULL RETURN count(n)", NULL),
                     0);
    assert_int_equal(g_ltm->ops->del(g_ltm, id1, &out, &n, &err), MD_E_NOTFOUND);
    delete_ok(id2);
}

/* Search fixtures: 7 rules, distinct confidences and a few ties. */
static void search_fixtures(void)
{
    char text[256];
    static const char *const c_alpha[] = {"Alpha"};
    static const char *const c_beta[] = {"Beta"};
    static const char *const c_both[] = {"Alpha", "Beta"};
    const char *srcs[] = {sid("search")};
    struct {
        const char *id;
        const char *word;
        const char *const *cn;
        size_t nc;
        double conf;
    } f[] = {
        {"S_A_01", "zebra", c_alpha, 1, 0.9},  {"S_B_01", "zebra zebra", c_beta, 1, 0.8},
        {"S_C_01", "yak", c_both, 2, 0.8},     {"S_D_01", "zebra yak", c_alpha, 1, 0.7},
        {"S_E_01", "walrus", c_beta, 1, 0.5},  {"S_F_01", "walrus", c_alpha, 1, 0.5},
        {"S_G_01", "none", c_beta, 1, 0.2},
    };
    for (size_t i = 0; i < MD_ARRAY_LEN(f); i++) {
        /* the words are tagged so that only this run's rules match */
        char w1[80], w2[80];
        char copy[64];
        snprintf(copy, sizeof(copy), "%s", f[i].word);
        char *sp = strchr(copy, ' ');
        if (sp)
            *sp = '\0';
        snprintf(w1, sizeof(w1), "%s%s", copy, g_tag_lc);
        snprintf(w2, sizeof(w2), "%s%s", sp ? sp + 1 : "", sp ? g_tag_lc : "");
        snprintf(text, sizeof(text), "The rule %s %s is about things", w1, w2);
        create_ok(rid(f[i].id), text, f[i].cn, f[i].nc, srcs, 1, f[i].conf);
    }
}

static void search(struct md_rule_query *q, struct md_rule_list *out)
{
    struct md_error err;
    enum md_status st = g_ltm->ops->search(g_ltm, q, out, &err);
    if (st != MD_OK)
        fail_msg("search: %s / %s", err.msg, err.detail);
}

static void test_search(void **state)
{
    (void)state;
    search_fixtures();
    struct md_rule_list l;
    /* structured, by policy: confidence desc, then updated desc (later first), then id */
    struct md_rule_query q = {.policy = g_tag, .limit = 100};
    search(&q, &l);
    assert_int_equal(l.count, 7);
    assert_false(l.more);
    const char *order[] = {"S_A_01", "S_C_01", "S_B_01", "S_D_01", "S_F_01", "S_E_01", "S_G_01"};
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(l.items[i].rule_id, rid(order[i]));
    assert_int_equal(l.items[0].n_sources, 1);
    assert_int_equal(l.items[1].n_concepts, 2);
    md_rule_list_release(&l);

    /* pagination: every rule exactly once */
    bool seen[7] = {false};
    size_t total = 0;
    for (size_t off = 0;; off += 3) {
        q.limit = 3;
        q.offset = off;
        search(&q, &l);
        for (size_t i = 0; i < l.count; i++) {
            size_t k = 0;
            while (k < 7 && strcmp(l.items[i].rule_id, rid(order[k])) != 0)
                k++;
            assert_true(k < 7);
            assert_false(seen[k]);
            assert_int_equal(k, off + i); /* in order across pages */
            seen[k] = true;
            total++;
        }
        bool more = l.more;
        md_rule_list_release(&l);
        if (!more)
            break;
    }
    assert_int_equal(total, 7);

    /* filters: min confidence, concepts (any-of, by key), policy */
    struct concepts ca, cb;
    static const char *const n_alpha[] = {"ALPHA"}; /* case-insensitive through the key */
    static const char *const n_beta[] = {"beta"};
    concepts_of(&ca, n_alpha, 1);
    concepts_of(&cb, n_beta, 1);
    const char *keys_a[] = {ca.keys[0]};
    q = (struct md_rule_query){.policy = g_tag, .has_min_confidence = true,
                               .min_confidence = 0.75, .limit = 100};
    search(&q, &l);
    assert_int_equal(l.count, 3);
    md_rule_list_release(&l);
    q = (struct md_rule_query){.concept_keys = keys_a, .n_concepts = 1, .limit = 100};
    search(&q, &l);
    assert_int_equal(l.count, 4); /* A, C, D, F */
    assert_string_equal(l.items[0].rule_id, rid("S_A_01"));
    assert_string_equal(l.items[3].rule_id, rid("S_F_01"));
    md_rule_list_release(&l);
    const char *keys_ab[] = {ca.keys[0], cb.keys[0]};
    q = (struct md_rule_query){.concept_keys = keys_ab, .n_concepts = 2, .limit = 100};
    search(&q, &l);
    assert_int_equal(l.count, 7); /* C has both: once */
    md_rule_list_release(&l);
    q = (struct md_rule_query){.policy = "NOSUCHPOLICY", .limit = 100};
    search(&q, &l);
    assert_int_equal(l.count, 0);
    assert_false(l.more);
    md_rule_list_release(&l);

    /* full-text: any of the words; score = text score + concept scores */
    char zebra[64], yak[64];
    snprintf(zebra, sizeof(zebra), "zebra%s", g_tag_lc);
    snprintf(yak, sizeof(yak), "yak%s", g_tag_lc);
    const char *w_zebra[] = {zebra};
    q = (struct md_rule_query){.words = w_zebra, .n_words = 1, .limit = 100};
    search(&q, &l);
    assert_int_equal(l.count, 3); /* A, B (twice: best), D */
    assert_string_equal(l.items[0].rule_id, rid("S_B_01"));
    for (size_t i = 0; i < l.count; i++)
        assert_true(l.items[i].score > 0);
    assert_true(l.items[0].score >= l.items[1].score);
    md_rule_list_release(&l);
    const char *w_two[] = {zebra, yak};
    q = (struct md_rule_query){.words = w_two, .n_words = 2, .limit = 100};
    search(&q, &l);
    assert_int_equal(l.count, 4); /* A, B, C, D; D has both words: first */
    assert_string_equal(l.items[0].rule_id, rid("S_D_01"));
    md_rule_list_release(&l);
    /* filters apply in full-text mode too */
    q.has_min_confidence = true;
    q.min_confidence = 0.85;
    search(&q, &l);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].rule_id, rid("S_A_01"));
    md_rule_list_release(&l);
    const char *keys_b[] = {cb.keys[0]};
    q = (struct md_rule_query){.words = w_two, .n_words = 2, .concept_keys = keys_b,
                               .n_concepts = 1, .policy = g_tag, .limit = 100};
    search(&q, &l);
    assert_int_equal(l.count, 2); /* B, C */
    md_rule_list_release(&l);
    /* full-text paging */
    q = (struct md_rule_query){.words = w_two, .n_words = 2, .limit = 3};
    search(&q, &l);
    assert_int_equal(l.count, 3);
    assert_true(l.more);
    md_rule_list_release(&l);
    q.offset = 3;
    search(&q, &l);
    assert_int_equal(l.count, 1);
    assert_false(l.more);
    md_rule_list_release(&l);

    /* concept names are searched: the tag matches every concept of this run */
    char tag_word[16];
    snprintf(tag_word, sizeof(tag_word), "%s", g_tag_lc);
    const char *w_tag[] = {tag_word};
    q = (struct md_rule_query){.words = w_tag, .n_words = 1, .policy = g_tag, .limit = 100};
    search(&q, &l);
    assert_int_equal(l.count, 7);
    /* C has two matching concepts: its score is the sum, so it ranks first */
    assert_string_equal(l.items[0].rule_id, rid("S_C_01"));
    assert_true(l.items[0].score > l.items[1].score);
    md_rule_list_release(&l);

    /* nasty input never errors */
    static const char *const nasty[] = {
        "\"", "\\", "(", ")", "AND", "OR", "NOT", "*", ":", "?", "~", "^2", "[a TO z]", "{",
        "/", "&&", "||", "!", "-", "+", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
        "\xf0\x9f\x98\x80", "a\"b\\c(d)e:f*g", "\xce\xa3\xcf\x8d\xce\xbd"};
    for (size_t i = 0; i < MD_ARRAY_LEN(nasty); i++) {
        const char *w[] = {nasty[i]};
        q = (struct md_rule_query){.words = w, .n_words = 1, .limit = 10};
        search(&q, &l);
        md_rule_list_release(&l);
    }
    const char *w_empty[] = {"", ""};
    q = (struct md_rule_query){.words = w_empty, .n_words = 2, .limit = 10};
    search(&q, &l);
    assert_int_equal(l.count, 0);
    assert_false(l.more);
    md_rule_list_release(&l);
    const char *w_many[32];
    for (size_t i = 0; i < 32; i++)
        w_many[i] = nasty[i % MD_ARRAY_LEN(nasty)];
    q = (struct md_rule_query){.words = w_many, .n_words = 25, .limit = 10};
    search(&q, &l);
    md_rule_list_release(&l);

    /* concept listing and concept rules */
    struct md_error err;
    char *cname;
    assert_int_equal(g_ltm->ops->concept_rules(g_ltm, ca.keys[0], &cname, &l, &err), MD_OK);
    char want_name[128];
    snprintf(want_name, sizeof(want_name), "Alpha %s", g_tag); /* first spelling */
    assert_string_equal(cname, want_name);
    free(cname);
    assert_int_equal(l.count, 4);
    assert_string_equal(l.items[0].rule_id, rid("S_A_01"));
    for (size_t i = 1; i < l.count; i++)
        assert_true(l.items[i - 1].confidence >= l.items[i].confidence);
    md_rule_list_release(&l);
    char nokey[MD_CONCEPT_KEY_MAX + 1];
    snprintf(nokey, sizeof(nokey), "no such concept %s", g_tag_lc);
    assert_int_equal(g_ltm->ops->concept_rules(g_ltm, nokey, &cname, &l, &err), MD_E_NOTFOUND);

    /* concepts: key order, paging with after_key, rule counts; each exactly once */
    char after[MD_CONCEPT_KEY_MAX + 1] = "";
    int seen_alpha = 0, seen_beta = 0;
    char prev[MD_CONCEPT_KEY_MAX + 1] = "";
    for (;;) {
        struct md_concept_list cl;
        assert_int_equal(g_ltm->ops->concepts(g_ltm, after, 2, &cl, &err), MD_OK);
        assert_true(cl.count <= 2);
        for (size_t i = 0; i < cl.count; i++) {
            assert_true(strcmp(cl.items[i].key, prev) > 0);
            snprintf(prev, sizeof(prev), "%s", cl.items[i].key);
            if (strcmp(cl.items[i].key, ca.keys[0]) == 0) {
                seen_alpha++;
                assert_int_equal(cl.items[i].rule_count, 4);
            }
            if (strcmp(cl.items[i].key, cb.keys[0]) == 0) {
                seen_beta++;
                assert_int_equal(cl.items[i].rule_count, 4);
            }
        }
        bool more = cl.more;
        if (cl.count)
            snprintf(after, sizeof(after), "%s", cl.items[cl.count - 1].key);
        md_concept_list_release(&cl);
        if (!more)
            break;
    }
    assert_int_equal(seen_alpha, 1);
    assert_int_equal(seen_beta, 1);

    /* stats */
    struct md_ltm_stats s;
    assert_int_equal(g_ltm->ops->stats(g_ltm, &s, &err), MD_OK);
    assert_true(s.total_rules >= 7);
    assert_true(s.total_concepts >= 2);
    assert_true(s.average_confidence > 0 && s.average_confidence <= 1);
    bool pol_found = false;
    for (size_t i = 0; i < s.n_policies; i++) {
        if (strcmp(s.policies[i], g_tag) == 0) {
            pol_found = true;
            assert_int_equal(s.policy_counts[i], 7);
        }
    }
    assert_true(pol_found);
    md_ltm_stats_release(&s);

    for (size_t i = 0; i < 7; i++)
        delete_ok(rid(order[i]));
}

/* ---- transactions, retries, failures -------------------------------------------------------- */

struct deadlock_arg {
    const char *first;
    const char *second;
    pthread_barrier_t *barrier;
    int attempts;
    enum md_status st;
    struct md_error err;
};

static enum md_status lock_two(struct md_neo4j_tx *tx, void *p, struct md_error *err)
{
    struct deadlock_arg *a = p;
    struct md_neo4j_result res;
    a->attempts++;
    json_t *params = json_pack("{s:s}", "k", a->first);
    struct md_neo4j_stmt st = {"MATCH (n:DeadlockTest {k: $k}) SET n.v = coalesce(n.v, 0) + 1",
                               params};
    enum md_status rc = md_neo4j_tx_run(tx, &st, 1, &res, err);
    json_decref(params);
    if (rc != MD_OK)
        return rc;
    md_neo4j_result_release(&res);
    if (a->attempts == 1)
        pthread_barrier_wait(a->barrier); /* both hold their first lock */
    params = json_pack("{s:s}", "k", a->second);
    st.params = params;
    rc = md_neo4j_tx_run(tx, &st, 1, &res, err);
    json_decref(params);
    if (rc == MD_OK)
        md_neo4j_result_release(&res);
    return rc;
}

static void *deadlock_thread(void *p)
{
    struct deadlock_arg *a = p;
    a->st = md_neo4j_transact(g_direct, lock_two, a, &a->err);
    return NULL;
}

static void test_transient_retry_deadlock(void **state)
{
    (void)state;
    char ka[32], kb[32];
    snprintf(ka, sizeof(ka), "a%s", g_tag);
    snprintf(kb, sizeof(kb), "b%s", g_tag);
    struct md_neo4j_result res;
    cypher("CREATE (:DeadlockTest {k: $a}), (:DeadlockTest {k: $b})",
           json_pack("{s:s,s:s}", "a", ka, "b", kb), &res);
    md_neo4j_result_release(&res);
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 2);
    struct deadlock_arg x = {.first = ka, .second = kb, .barrier = &b};
    struct deadlock_arg y = {.first = kb, .second = ka, .barrier = &b};
    pthread_t tx, ty;
    pthread_create(&tx, NULL, deadlock_thread, &x);
    pthread_create(&ty, NULL, deadlock_thread, &y);
    pthread_join(tx, NULL);
    pthread_join(ty, NULL);
    pthread_barrier_destroy(&b);
    if (x.st != MD_OK)
        fail_msg("x: %s / %s", x.err.msg, x.err.detail);
    if (y.st != MD_OK)
        fail_msg("y: %s / %s", y.err.msg, y.err.detail);
    /* Neo4j detected the deadlock; one side was retried and then both committed. */
    assert_true(x.attempts + y.attempts >= 3);
    assert_int_equal(cypher_int("MATCH (n:DeadlockTest) WHERE n.k IN [$a, $b] "
                                "RETURN sum(n.v)",
                                json_pack("{s:s,s:s}", "a", ka, "b", kb)),
                     4);
    cypher("MATCH (n:DeadlockTest) WHERE n.k IN [$a, $b] DELETE n",
           json_pack("{s:s,s:s}", "a", ka, "b", kb), &res);
    md_neo4j_result_release(&res);
}

static void test_explicit_transactions(void **state)
{
    (void)state;
    struct md_neo4j_tx *tx;
    struct md_neo4j_result res;
    struct md_error err;
    char k[32];
    snprintf(k, sizeof(k), "tx%s", g_tag);
    json_t *p = json_pack("{s:s}", "k", k);
    struct md_neo4j_stmt create = {"CREATE (n:TxTest {k: $k}) RETURN n.k", p};
    struct md_neo4j_stmt count = {"MATCH (n:TxTest {k: $k}) RETURN count(n)", p};

    /* rolled back: nothing stays */
    assert_int_equal(md_neo4j_tx_begin(g_direct, &create, 1, &tx, &res, &err), MD_OK);
    assert_string_equal(json_string_value(json_array_get(md_neo4j_row(&res, 0, 0), 0)), k);
    md_neo4j_result_release(&res);
    assert_int_equal(md_neo4j_tx_run(tx, &count, 1, &res, &err), MD_OK);
    assert_int_equal(json_integer_value(json_array_get(md_neo4j_row(&res, 0, 0), 0)), 1);
    md_neo4j_result_release(&res);
    md_neo4j_tx_rollback(tx);
    assert_int_equal(cypher_int("MATCH (n:TxTest {k: $k}) RETURN count(n)",
                                json_pack("{s:s}", "k", k)),
                     0);

    /* committed: stays */
    assert_int_equal(md_neo4j_tx_begin(g_direct, NULL, 0, &tx, &res, &err), MD_OK);
    md_neo4j_result_release(&res);
    assert_int_equal(md_neo4j_tx_run(tx, &create, 1, &res, &err), MD_OK);
    md_neo4j_result_release(&res);
    assert_int_equal(md_neo4j_tx_commit(tx, &count, 1, &res, &err), MD_OK);
    assert_int_equal(json_integer_value(json_array_get(md_neo4j_row(&res, 0, 0), 0)), 1);
    md_neo4j_result_release(&res);

    /*
     * A rollback really ends the transaction on the server: its write is
     * undone and its lock released at once (a client with a 2 s timeout can
     * write the node right away; a lingering transaction would block it).
     */
    struct md_neo4j_stmt set1 = {"MATCH (n:TxTest {k: $k}) SET n.v = 1", p};
    assert_int_equal(md_neo4j_tx_begin(g_direct, &set1, 1, &tx, &res, &err), MD_OK);
    md_neo4j_result_release(&res);
    md_neo4j_tx_rollback(tx);
    struct md_neo4j_options opt = {.base_url = g_uri, .database = g_db, .username = g_user,
                                   .password = g_pass, .max_connections = 1,
                                   .max_lifetime_ms = 3600000, .acquisition_timeout_ms = 1000,
                                   .connect_timeout_ms = 1000, .query_timeout_ms = 2000};
    struct md_neo4j *quick = md_neo4j_new(&opt, &err);
    assert_non_null(quick);
    struct md_neo4j_stmt set2 = {"MATCH (n:TxTest {k: $k}) WITH n, n.v AS before "
                                 "SET n.v = 2 RETURN before, n.v",
                                 p};
    int64_t t0 = md_mono_ms();
    enum md_status st = md_neo4j_run(quick, &set2, 1, &res, &err);
    if (st != MD_OK)
        fail_msg("write after rollback: %s / %s", err.msg, err.detail);
    assert_true(md_mono_ms() - t0 < 1500);
    assert_true(json_is_null(json_array_get(md_neo4j_row(&res, 0, 0), 0)));
    assert_int_equal(json_integer_value(json_array_get(md_neo4j_row(&res, 0, 0), 1)), 2);
    md_neo4j_result_release(&res);
    md_neo4j_free(quick);

    /* an error inside the transaction: reported, the transaction is gone */
    assert_int_equal(md_neo4j_tx_begin(g_direct, NULL, 0, &tx, &res, &err), MD_OK);
    md_neo4j_result_release(&res);
    struct md_neo4j_stmt bad = {"RETURN 1/0", NULL};
    assert_int_equal(md_neo4j_tx_run(tx, &bad, 1, &res, &err), MD_E_INTERNAL);
    assert_string_equal(res.code, "Neo.ClientError.Statement.ArithmeticError");
    md_neo4j_tx_rollback(tx);

    cypher("MATCH (n:TxTest {k: $k}) DELETE n", json_pack("{s:s}", "k", k), &res);
    md_neo4j_result_release(&res);
    json_decref(p);
}

static void test_wrong_password(void **state)
{
    (void)state;
    static const char bad[] = "Wr0ng-Passw0rd-xyzzy";
    struct md_config cfg;
    make_config(&cfg, g_uri, bad);
    struct md_error err;
    struct md_ltm *l = md_ltm_neo4j_new(&cfg, &err);
    assert_non_null(l);
    md_error_clear(&err);
    enum md_status st = l->ops->ping(l, &err);
    assert_int_equal(st, MD_E_UNAVAIL);
    assert_string_equal(err.msg, "ltm store rejected memoryd's credentials");
    assert_null(strstr(err.msg, bad));
    assert_null(strstr(err.detail, bad));
    assert_null(strstr(err.detail, g_pass));
    struct md_rule_list list;
    struct md_rule_query q = {.limit = 10};
    assert_int_equal(l->ops->search(l, &q, &list, &err), MD_E_UNAVAIL);
    assert_null(strstr(err.detail, bad));
    assert_int_equal(l->ops->ensure_schema(l, &err), MD_E_UNAVAIL);
    md_ltm_destroy(l);
}

static void test_neo4j_unreachable(void **state)
{
    (void)state;
    /* What a stopped Neo4j looks like on the wire: nothing listens on its port. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", ntohs(a.sin_port));
    struct md_config cfg;
    make_config(&cfg, base, g_pass);
    struct md_error err;
    struct md_ltm *l = md_ltm_neo4j_new(&cfg, &err); /* constructing needs no server */
    assert_non_null(l);
    int64_t t0 = md_mono_ms();
    assert_int_equal(l->ops->ping(l, &err), MD_E_UNAVAIL);
    assert_int_equal(l->ops->ensure_schema(l, &err), MD_E_UNAVAIL);
    struct md_rule_detail d;
    assert_int_equal(l->ops->get(l, "GDPR_X_01", &d, &err), MD_E_UNAVAIL);
    assert_true(md_mono_ms() - t0 < 1000);
    assert_null(strstr(err.detail, g_pass));
    md_ltm_destroy(l);
}

static void test_pool_stats(void **state)
{
    (void)state;
    struct md_pool_stats ps;
    md_ltm_neo4j_pool_stats(g_ltm, &ps);
    assert_int_equal(ps.max, 16);
    assert_true(ps.size >= 1 && ps.size <= 16);
    assert_int_equal(ps.in_use, 0);
}

/* ---- setup ----------------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    const char *uri = getenv("NEO4J_URI");
    const char *user = getenv("NEO4J_USERNAME");
    const char *pass = getenv("NEO4J_PASSWORD");
    if (!uri || !*uri || !pass || !*pass) {
        fprintf(stderr, "test_ltm_neo4j: NEO4J_URI and NEO4J_PASSWORD must be set (run "
                        "tests/neo4j/server.sh start and export them, or scripts/test.sh)\n");
        return -1;
    }
    if (strncmp(uri, "http://", 7) != 0 && strncmp(uri, "https://", 8) != 0) {
        fprintf(stderr, "test_ltm_neo4j: NEO4J_URI must be http(s)://host:port\n");
        return -1;
    }
    snprintf(g_uri, sizeof(g_uri), "%s", uri);
    snprintf(g_user, sizeof(g_user), "%s", user && *user ? user : "neo4j");
    snprintf(g_pass, sizeof(g_pass), "%s", pass);

    static const char alnum[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    g_tag[0] = 'T';
    for (int i = 1; i < 6; i++)
        g_tag[i] = alnum[md_random_below(sizeof(alnum) - 1)];
    g_tag[6] = '\0';
    for (int i = 0; i < 7; i++)
        g_tag_lc[i] = (char)(g_tag[i] >= 'A' && g_tag[i] <= 'Z' ? g_tag[i] + 32 : g_tag[i]);
    g_now = md_now_ms();

    struct md_config cfg;
    make_config(&cfg, g_uri, g_pass);
    struct md_error err;
    g_ltm = md_ltm_neo4j_new(&cfg, &err);
    if (!g_ltm) {
        fprintf(stderr, "test_ltm_neo4j: %s\n", err.msg);
        return -1;
    }
    struct md_neo4j_options opt = {.base_url = g_uri, .database = g_db, .username = g_user,
                                   .password = g_pass, .max_connections = 4,
                                   .max_lifetime_ms = 3600000, .acquisition_timeout_ms = 10000,
                                   .connect_timeout_ms = 5000, .query_timeout_ms = 30000,
                                   .max_retry_ms = 10000};
    g_direct = md_neo4j_new(&opt, &err);
    if (!g_direct)
        return -1;
    /* Neo4j must answer: no silent pass without a server. */
    if (g_ltm->ops->ping(g_ltm, &err) != MD_OK) {
        fprintf(stderr, "test_ltm_neo4j: Neo4j at %s does not answer: %s (%s)\n", g_uri,
                err.msg, err.detail);
        return -1;
    }
    if (g_ltm->ops->ensure_schema(g_ltm, &err) != MD_OK) {
        fprintf(stderr, "test_ltm_neo4j: ensure_schema: %s (%s)\n", err.msg, err.detail);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_direct) {
        /* Whatever this run left behind (after a failed assertion, say). */
        struct md_neo4j_result res;
        struct md_error err;
        json_t *p = json_pack("{s:s,s:s}", "tag", g_tag, "sp", g_tag_lc);
        struct md_neo4j_stmt st[] = {
            {"MATCH (r:Rule) WHERE r.policy ENDS WITH $tag "
             "OPTIONAL MATCH (r)-[:HAS_VERSION]->(v) DETACH DELETE r, v",
             p},
            {"MATCH (c:Concept) WHERE c.name ENDS WITH ' ' + $tag DETACH DELETE c", p},
            {"MATCH (p:Policy) WHERE p.name ENDS WITH $tag DETACH DELETE p", p},
            {"MATCH (s:Scenario) WHERE s.scenario_id STARTS WITH 't' + $sp + '_' "
             "DETACH DELETE s",
             p},
            {"MATCH (n) WHERE (n:TxTest OR n:DeadlockTest) AND n.k ENDS WITH $tag DELETE n", p},
        };
        if (md_neo4j_run(g_direct, st, MD_ARRAY_LEN(st), &res, &err) == MD_OK)
            md_neo4j_result_release(&res);
        json_decref(p);
    }
    md_ltm_destroy(g_ltm);
    md_neo4j_free(g_direct);
    return 0;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_idempotent),
        cmocka_unit_test(test_create_get_conflict),
        cmocka_unit_test(test_generated_ids),
        cmocka_unit_test(test_concurrent_generated),
        cmocka_unit_test(test_concurrent_patches),
        cmocka_unit_test(test_create_delete_race),
        cmocka_unit_test(test_patch_concepts_and_history),
        cmocka_unit_test(test_patch_sources_and_snapshots),
        cmocka_unit_test(test_delete_cleans_orphans),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_transient_retry_deadlock),
        cmocka_unit_test(test_explicit_transactions),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_neo4j_unreachable),
        cmocka_unit_test(test_pool_stats),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
