/*
 * fake_stores.c — stateless, self-checking STM and LTM stores (see
 * fake_stores.h).
 */
#include "memoryd/compat.h"

#include <math.h>

#include "fake_stores.h"
#include "fuzz_common.h"
#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/ids.h"
#include "memoryd/text.h"

#define TTL_MAX_SECONDS 31536000
#define MAX_SOURCES 100

enum md_status fake_fault = MD_OK;

static int64_t min_ttl = 60;
static size_t max_concepts = 20;

/* ---- input checks ------------------------------------------------------------------------ */

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void check_text(const char *what, const char *s)
{
    FUZZ_CHECK(s != NULL, "%s missing", what);
    size_t len = strlen(s);
    FUZZ_CHECK(md_utf8_valid(s, len), "%s is not UTF-8", what);
    FUZZ_CHECK(!md_str_blank(s), "%s is blank", what);
    FUZZ_CHECK(md_utf8_count(s, len) <= MD_TEXT_MAX, "%s has more than %d code points", what,
               MD_TEXT_MAX);
}

static void check_opt_text(const char *what, const char *s)
{
    if (s)
        check_text(what, s);
}

static void check_scenario_id(const char *id)
{
    FUZZ_CHECK(md_scenario_id_valid(id), "invalid scenario_id '%s' reached a store", id);
}

static void check_rule_id(const char *id)
{
    FUZZ_CHECK(md_rule_id_valid(id), "invalid rule_id '%s' reached a store", id);
}

static void check_verdict(const char *what, enum md_verdict v, bool none_ok)
{
    FUZZ_CHECK((v >= 0 && v < MD_VERDICT_COUNT) || (none_ok && v == MD_VERDICT_NONE),
               "%s %d out of range", what, (int)v);
}

static void check_ids(const char *what, const char *const *ids, size_t n, bool distinct)
{
    FUZZ_CHECK(n <= MAX_SOURCES, "%s: %zu ids", what, n);
    for (size_t i = 0; i < n; i++) {
        check_scenario_id(ids[i]);
        for (size_t k = 0; distinct && k < i; k++)
            FUZZ_CHECK(strcmp(ids[i], ids[k]) != 0, "%s: duplicate '%s'", what, ids[i]);
    }
}

static void check_concepts(const struct md_concept *c, size_t n)
{
    FUZZ_CHECK(n >= 1 && n <= max_concepts, "%zu concepts (max %zu)", n, max_concepts);
    for (size_t i = 0; i < n; i++) {
        const char *name = c[i].name;
        size_t len = strlen(name);
        FUZZ_CHECK(md_utf8_valid(name, len), "concept '%s' is not UTF-8", name);
        size_t cps = md_utf8_count(name, len);
        FUZZ_CHECK(cps >= 1 && cps <= MD_CONCEPT_NAME_MAX, "concept '%s' has %zu code points",
                   name, cps);
        FUZZ_CHECK(!md_str_has_ctl(name, len), "concept '%s' has a control character", name);
        FUZZ_CHECK(name[0] != ' ' && name[len - 1] != ' ', "concept '%s' is not trimmed", name);
        char key[MD_CONCEPT_KEY_MAX + 1];
        md_concept_key(name, key);
        FUZZ_CHECK(strcmp(key, c[i].key) == 0, "concept '%s' has key '%s', want '%s'", name,
                   c[i].key, key);
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(c[k].key, c[i].key) != 0, "duplicate concept key '%s'", c[i].key);
    }
}

static void check_snapshots(const struct md_snapshot *s, size_t n, const char *const *ids,
                            size_t n_ids)
{
    FUZZ_CHECK(n <= n_ids, "%zu snapshots for %zu sources", n, n_ids);
    for (size_t i = 0; i < n; i++) {
        bool known = false;
        for (size_t k = 0; k < n_ids && !known; k++)
            known = strcmp(ids[k], s[i].scenario_id) == 0;
        FUZZ_CHECK(known, "snapshot of '%s', which is not a source", s[i].scenario_id);
        char sha[MD_SHA256_HEX_LEN];
        md_sha256_hex(s[i].entry_json, strlen(s[i].entry_json), sha);
        FUZZ_CHECK(strcmp(sha, s[i].sha256) == 0, "snapshot digest of '%s'", s[i].scenario_id);
        check_verdict("snapshot final_status", s[i].final_status, true);
    }
}

static void check_confidence(double c)
{
    FUZZ_CHECK(isfinite(c) && c >= 0.0 && c <= 1.0, "confidence %g", c);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    FUZZ_CHECK(d != NULL, "out of memory");
    return d;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    FUZZ_CHECK(p != NULL, "out of memory");
    return p;
}

static enum md_status fault(struct md_error *err)
{
    if (fake_fault == MD_OK)
        return MD_OK;
    /* CONFLICT without a message: the handlers supply their own */
    if (fake_fault == MD_E_CONFLICT)
        return err->code = MD_E_CONFLICT;
    md_error_set(err, fake_fault, "fake store fault");
    md_error_detail(err, "injected by the fuzz target");
    return fake_fault;
}

/* ---- STM ------------------------------------------------------------------------------------ */

static void put_str(struct md_buf *b, const char *s)
{
    FUZZ_CHECK(md_buf_json_str(b, s, strlen(s)) == MD_OK, "out of memory");
}

static void put_verdict(struct md_buf *b, enum md_verdict v)
{
    if (v == MD_VERDICT_NONE)
        FUZZ_CHECK(md_buf_puts(b, "null") == MD_OK, "out of memory");
    else
        put_str(b, md_verdict_name(v));
}

static void put_time(struct md_buf *b, int64_t ms)
{
    char iso[MD_ISO8601_LEN];
    md_iso8601(ms, iso);
    put_str(b, iso);
}

/* A canonical entry (stm.h key order) into v. */
static void entry(struct md_stm_view *v, const char *id, const char *text, enum md_verdict status,
                  const char *rationale, const char *rec, const struct md_stm_feedback *fb,
                  enum md_verdict final, int64_t now_ms)
{
    struct md_buf b;
    md_buf_init(&b, 1 << 20);
    FUZZ_CHECK(md_buf_puts(&b, "{\"scenario_id\":") == MD_OK, "out of memory");
    put_str(&b, id);
    FUZZ_CHECK(md_buf_puts(&b, ",\"requirement_text\":") == MD_OK, "out of memory");
    put_str(&b, text);
    FUZZ_CHECK(md_buf_puts(&b, ",\"initial_assessment\":{\"status\":") == MD_OK, "oom");
    put_verdict(&b, status);
    FUZZ_CHECK(md_buf_puts(&b, ",\"rationale\":") == MD_OK, "oom");
    put_str(&b, rationale);
    FUZZ_CHECK(md_buf_puts(&b, ",\"recommendation\":") == MD_OK, "oom");
    put_str(&b, rec);
    FUZZ_CHECK(md_buf_puts(&b, "},\"human_feedback\":") == MD_OK, "oom");
    if (fb) {
        FUZZ_CHECK(md_buf_puts(&b, "{\"decision\":") == MD_OK, "oom");
        put_str(&b, fb->decision);
        FUZZ_CHECK(md_buf_puts(&b, ",\"rationale\":") == MD_OK, "oom");
        put_str(&b, fb->rationale);
        FUZZ_CHECK(md_buf_puts(&b, ",\"suggestion\":") == MD_OK, "oom");
        put_str(&b, fb->suggestion);
        FUZZ_CHECK(md_buf_putc(&b, '}') == MD_OK, "oom");
    } else {
        FUZZ_CHECK(md_buf_puts(&b, "null") == MD_OK, "oom");
    }
    FUZZ_CHECK(md_buf_puts(&b, ",\"final_status\":") == MD_OK, "oom");
    put_verdict(&b, final);
    FUZZ_CHECK(md_buf_puts(&b, ",\"created_at\":") == MD_OK, "oom");
    put_time(&b, now_ms - 1000);
    FUZZ_CHECK(md_buf_puts(&b, ",\"updated_at\":") == MD_OK, "oom");
    put_time(&b, now_ms);
    FUZZ_CHECK(md_buf_puts(&b, ",\"expires_at\":") == MD_OK, "oom");
    put_time(&b, now_ms + 3600000);
    FUZZ_CHECK(md_buf_putc(&b, '}') == MD_OK, "oom");
    memset(v, 0, sizeof(*v));
    v->json = md_buf_take(&b, &v->json_len);
    FUZZ_CHECK(v->json != NULL, "out of memory");
    snprintf(v->scenario_id, sizeof(v->scenario_id), "%s", id);
    v->has_feedback = fb != NULL;
    v->final_status = final;
    v->expires_ms = now_ms + 3600000;
}

/* The entry a read finds for id (feedback and final status follow its hash). */
static void stored_entry(struct md_stm_view *v, const char *id, int64_t now_ms)
{
    static const struct md_stm_feedback fb = {"Non-Compliant", "expert says \"no\"",
                                              "add a retention limit", false, MD_VERDICT_NONE};
    unsigned h = hash(id);
    entry(v, id, "Personal data must be deleted after 30 days", MD_VERDICT_PARTIAL, "tbd",
          "\xc3\xa9tudier", (h & 1) ? &fb : NULL,
          (h & 1) ? MD_VERDICT_NON_COMPLIANT : MD_VERDICT_NONE, now_ms);
}

static bool exists(const char *id)
{
    return hash(id) % 4 != 0;
}

static enum md_status stm_create(void *self, const struct md_stm_new *in, int64_t now_ms,
                                 struct md_stm_view *out, struct md_error *err)
{
    (void)self;
    check_scenario_id(in->scenario_id);
    check_text("requirement_text", in->requirement_text);
    check_verdict("status", in->status, false);
    check_text("rationale", in->rationale);
    check_text("recommendation", in->recommendation);
    FUZZ_CHECK(in->ttl_seconds >= min_ttl && in->ttl_seconds <= TTL_MAX_SECONDS, "ttl %lld",
               (long long)in->ttl_seconds);
    if (fault(err) != MD_OK)
        return err->code;
    entry(out, in->scenario_id, in->requirement_text, in->status, in->rationale,
          in->recommendation, NULL, MD_VERDICT_NONE, now_ms);
    return MD_OK;
}

static enum md_status stm_get(void *self, const char *id, int64_t now_ms, struct md_stm_view *out,
                              struct md_error *err)
{
    (void)self;
    check_scenario_id(id);
    if (fault(err) != MD_OK)
        return err->code;
    if (!exists(id))
        return md_error_set(err, MD_E_NOTFOUND, "no such entry");
    stored_entry(out, id, now_ms);
    unsigned h = hash(id);
    out->n_links = (h >> 4) % 3;
    out->links = xcalloc(out->n_links, sizeof(char *));
    for (size_t i = 0; i < out->n_links; i++)
        out->links[i] = xstrdup(i ? "GDPR_DataRetention_02" : "GDPR_DataRetention_01");
    return MD_OK;
}

static enum md_status stm_get_many(void *self, const char *const *ids, size_t n, int64_t now_ms,
                                   struct md_stm_view *out, struct md_error *err)
{
    (void)self;
    check_ids("get_many", ids, n, false);
    if (fault(err) != MD_OK)
        return err->code;
    for (size_t i = 0; i < n; i++)
        if (exists(ids[i]))
            stored_entry(&out[i], ids[i], now_ms);
    return MD_OK;
}

static enum md_status stm_alive_many(void *self, const char *const *ids, size_t n,
                                     int64_t now_ms, int64_t *expires_ms, struct md_error *err)
{
    (void)self;
    check_ids("alive_many", ids, n, false);
    for (size_t i = 0; i < n; i++)
        expires_ms[i] = 0;
    if (fault(err) != MD_OK)
        return err->code;
    for (size_t i = 0; i < n; i++)
        if (exists(ids[i]))
            expires_ms[i] = now_ms + 3600 * 1000;
    return MD_OK;
}

static enum md_status stm_list(void *self, const struct md_stm_filter *f, size_t limit,
                               uint64_t after_seq, int64_t now_ms, struct md_stm_page *out,
                               struct md_error *err)
{
    (void)self;
    check_verdict("filter status", f->status, true);
    check_verdict("filter final_status", f->final_status, true);
    FUZZ_CHECK(f->has_feedback >= -1 && f->has_feedback <= 1, "has_feedback %d",
               f->has_feedback);
    if (f->domain[0]) {
        char clean[MD_DOMAIN_MAX + 1];
        struct md_error e2;
        FUZZ_CHECK(md_domain_clean(f->domain, clean, &e2) == MD_OK &&
                       strcmp(clean, f->domain) == 0,
                   "filter domain '%s' is not clean", f->domain);
    }
    FUZZ_CHECK(limit >= 1 && limit <= 1000, "list limit %zu", limit);
    if (fault(err) != MD_OK)
        return err->code;
    out->count = MD_MIN(limit, 2);
    out->items = xcalloc(out->count, sizeof(*out->items));
    for (size_t i = 0; i < out->count; i++)
        stored_entry(&out->items[i], i ? "gdpr_r2_retention" : "gdpr_r1_consent", now_ms);
    out->next_seq = after_seq < 3 ? after_seq + 7 : 0;
    return MD_OK;
}

static enum md_status stm_patch(void *self, const char *id, const struct md_stm_patch *p,
                                int64_t now_ms, struct md_stm_view *out, unsigned *changed,
                                struct md_error *err)
{
    (void)self;
    check_scenario_id(id);
    check_opt_text("requirement_text", p->requirement_text);
    check_opt_text("rationale", p->rationale);
    check_opt_text("recommendation", p->recommendation);
    if (p->set_status)
        check_verdict("status", p->status, false);
    if (p->set_final)
        check_verdict("final_status", p->final_status, true);
    if (fault(err) != MD_OK)
        return err->code;
    if (!exists(id))
        return md_error_set(err, MD_E_NOTFOUND, "no such entry");
    *changed = (p->requirement_text ? MD_STM_F_REQUIREMENT_TEXT : 0) |
               (p->set_status ? MD_STM_F_STATUS : 0) | (p->rationale ? MD_STM_F_RATIONALE : 0) |
               (p->recommendation ? MD_STM_F_RECOMMENDATION : 0) |
               (p->set_final ? MD_STM_F_FINAL_STATUS : 0);
    entry(out, id, p->requirement_text ? p->requirement_text : "old text",
          p->set_status ? p->status : MD_VERDICT_PENDING, p->rationale ? p->rationale : "r",
          p->recommendation ? p->recommendation : "s", NULL,
          p->set_final ? p->final_status : MD_VERDICT_NONE, now_ms);
    return MD_OK;
}

static enum md_status stm_feedback(void *self, const char *id, const struct md_stm_feedback *fb,
                                   int64_t now_ms, struct md_stm_view *out, struct md_error *err)
{
    (void)self;
    check_scenario_id(id);
    check_text("decision", fb->decision);
    check_text("feedback rationale", fb->rationale);
    check_text("suggestion", fb->suggestion);
    if (fb->set_final)
        check_verdict("final_status", fb->final_status, true);
    if (fault(err) != MD_OK)
        return err->code;
    if (!exists(id))
        return md_error_set(err, MD_E_NOTFOUND, "no such entry");
    entry(out, id, "text", MD_VERDICT_PENDING, "r", "s", fb,
          fb->set_final ? fb->final_status : MD_VERDICT_NONE, now_ms);
    return MD_OK;
}

static enum md_status stm_set_ttl(void *self, const char *id, int64_t ttl, int64_t now_ms,
                                  int64_t *expires_ms, struct md_error *err)
{
    (void)self;
    check_scenario_id(id);
    FUZZ_CHECK(ttl >= min_ttl && ttl <= TTL_MAX_SECONDS, "ttl %lld", (long long)ttl);
    if (fault(err) != MD_OK)
        return err->code;
    if (!exists(id))
        return md_error_set(err, MD_E_NOTFOUND, "no such entry");
    *expires_ms = now_ms + ttl * 1000;
    return MD_OK;
}

static enum md_status stm_del(void *self, const char *id, int64_t now_ms, struct md_error *err)
{
    (void)self;
    (void)now_ms;
    check_scenario_id(id);
    if (fault(err) != MD_OK)
        return err->code;
    return exists(id) ? MD_OK : md_error_set(err, MD_E_NOTFOUND, "no such entry");
}

static enum md_status stm_stats(void *self, int64_t now_ms, struct md_stm_stats *out,
                                struct md_error *err)
{
    (void)self;
    (void)now_ms;
    if (fault(err) != MD_OK)
        return err->code;
    out->total = 3;
    out->with_feedback = 1;
    out->by_status[MD_VERDICT_PARTIAL] = 3;
    out->by_final[MD_VERDICT_NON_COMPLIANT] = 1;
    return MD_OK;
}

static enum md_status stm_link_add(void *self, const char *id, const char *rule_id,
                                   int64_t now_ms, struct md_error *err)
{
    (void)self;
    (void)now_ms;
    check_scenario_id(id);
    check_rule_id(rule_id);
    return fault(err);
}

static enum md_status stm_links_add(void *self, const char *rule_id, const char *const *ids,
                                    size_t n, int64_t now_ms, struct md_error *err)
{
    (void)self;
    (void)now_ms;
    check_rule_id(rule_id);
    check_ids("links_add", ids, n, true);
    FUZZ_CHECK(n >= 1, "links_add with no ids");
    return fault(err);
}

static enum md_status stm_links_remove(void *self, const char *rule_id, const char *const *ids,
                                       size_t n, struct md_error *err)
{
    (void)self;
    check_rule_id(rule_id);
    check_ids("links_remove", ids, n, false);
    return fault(err);
}

static enum md_status stm_for_each(void *self, int64_t now_ms, md_stm_each_fn fn, void *ctx,
                                   struct md_error *err)
{
    (void)self;
    (void)now_ms;
    if (fault(err) != MD_OK)
        return err->code;
    const char *links[] = {"GDPR_DataRetention_01", "HIPAA_Gone_07"};
    enum md_status st = fn(ctx, "gdpr_r1_consent", true, links, 2);
    if (st == MD_OK)
        st = fn(ctx, "gdpr_r2_retention", false, NULL, 0);
    return st;
}

static enum md_status stm_ping(void *self, struct md_error *err)
{
    (void)self;
    return fault(err);
}

static void stm_sweep(void *self, int64_t now_ms)
{
    (void)self;
    (void)now_ms;
}

static void stm_pool_stats(void *self, struct md_pool_stats *out)
{
    (void)self;
    memset(out, 0, sizeof(*out));
}

static void stm_destroy(void *self)
{
    (void)self;
}

static const struct md_stm_ops stm_ops = {
    .backend = "embedded",
    .create = stm_create,
    .get = stm_get,
    .get_many = stm_get_many,
    .alive_many = stm_alive_many,
    .list = stm_list,
    .patch = stm_patch,
    .feedback = stm_feedback,
    .set_ttl = stm_set_ttl,
    .del = stm_del,
    .stats = stm_stats,
    .link_add = stm_link_add,
    .links_add = stm_links_add,
    .links_remove = stm_links_remove,
    .for_each = stm_for_each,
    .ping = stm_ping,
    .sweep = stm_sweep,
    .pool_stats = stm_pool_stats,
    .destroy = stm_destroy,
};

static struct md_stm the_stm = {&stm_ops};

struct md_stm *fake_stm(int64_t min_ttl_seconds)
{
    min_ttl = min_ttl_seconds;
    return &the_stm;
}

/* ---- LTM ------------------------------------------------------------------------------------ */

static void fill_rule(struct md_rule *r, const char *rule_id, const char *text,
                      const struct md_concept *c, size_t n_c, const char *const *src, size_t n_s,
                      double confidence)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->rule_id, sizeof(r->rule_id), "%s", rule_id);
    md_rule_id_policy(rule_id, r->policy);
    r->rule_text = xstrdup(text);
    r->n_concepts = n_c;
    r->concepts = xcalloc(n_c, sizeof(*r->concepts));
    for (size_t i = 0; i < n_c; i++) {
        r->concepts[i].name = xstrdup(c[i].name);
        r->concepts[i].key = xstrdup(c[i].key);
    }
    r->n_sources = n_s;
    r->sources = xcalloc(n_s, sizeof(char *));
    for (size_t i = 0; i < n_s; i++)
        r->sources[i] = xstrdup(src[i]);
    r->confidence = confidence;
    r->version = 1;
    r->created_ms = 1764200000000;
    r->updated_ms = 1764200001000;
    r->score = 1.25;
}

static char c0_name[] = "Data Retention", c0_key[] = "data retention";
static char c1_name[] = "\xd0\x94\xd0\xb0\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5"; /* Данные */
static char c1_key[] = "\xd0\xb4\xd0\xb0\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5";  /* данные */
static const struct md_concept stored_concepts[] = {{c0_name, c0_key}, {c1_name, c1_key}};
static const char *const stored_sources[] = {"gdpr_r1_consent", "gdpr_r2_retention"};

static void stored_rule(struct md_rule *r, const char *rule_id)
{
    fill_rule(r, rule_id, "Keep personal data \"no longer\" than needed", stored_concepts, 2,
              stored_sources, 2, 0.85);
}

static enum md_status ltm_create(void *self, const struct md_rule_new *in, int64_t now_ms,
                                 struct md_rule *out, struct md_error *err)
{
    (void)self;
    (void)now_ms;
    char id[MD_RULE_ID_MAX + 8];
    FUZZ_CHECK((in->rule_id == NULL) != (in->id_prefix == NULL), "rule_id xor id_prefix");
    if (in->rule_id) {
        check_rule_id(in->rule_id);
        snprintf(id, sizeof(id), "%s", in->rule_id);
    } else {
        snprintf(id, sizeof(id), "%s_01", in->id_prefix);
        FUZZ_CHECK(md_rule_id_valid(id), "prefix '%s' gives the invalid id '%s'", in->id_prefix,
                   id);
    }
    char pol[MD_POLICY_MAX + 1];
    md_rule_id_policy(id, pol);
    FUZZ_CHECK(in->policy && strcmp(in->policy, pol) == 0, "policy '%s' of '%s'",
               in->policy ? in->policy : "(null)", id);
    check_text("rule_text", in->rule_text);
    check_concepts(in->concepts, in->n_concepts);
    FUZZ_CHECK(in->n_sources >= 1, "rule without sources");
    check_ids("sources", in->sources, in->n_sources, true);
    check_snapshots(in->snapshots, in->n_snapshots, in->sources, in->n_sources);
    check_confidence(in->confidence);
    if (fault(err) != MD_OK)
        return err->code;
    fill_rule(out, id, in->rule_text, in->concepts, in->n_concepts, in->sources, in->n_sources,
              in->confidence);
    return MD_OK;
}

static enum md_status ltm_get(void *self, const char *rule_id, struct md_rule_detail *out,
                              struct md_error *err)
{
    (void)self;
    check_rule_id(rule_id);
    if (fault(err) != MD_OK)
        return err->code;
    if (hash(rule_id) % 5 == 0)
        return md_error_set(err, MD_E_NOTFOUND, "no such rule");
    memset(out, 0, sizeof(*out));
    stored_rule(&out->rule, rule_id);
    out->n_sources = out->rule.n_sources;
    out->sources = xcalloc(out->n_sources, sizeof(*out->sources));
    for (size_t i = 0; i < out->n_sources; i++) {
        snprintf(out->sources[i].scenario_id, sizeof(out->sources[i].scenario_id), "%s",
                 out->rule.sources[i]);
        out->sources[i].has_snapshot = i == 0;
        out->sources[i].snapshot_has_feedback = i == 0;
        out->sources[i].snapshot_final_status = i == 0 ? MD_VERDICT_COMPLIANT : MD_VERDICT_NONE;
        memset(out->sources[i].snapshot_sha256, 'a', 64);
    }
    out->n_policies = 1;
    out->policies = xcalloc(1, sizeof(char *));
    out->policies[0] = xstrdup(out->rule.policy);
    return MD_OK;
}

static enum md_status ltm_patch(void *self, const char *rule_id, const struct md_rule_patch *p,
                                int64_t now_ms, struct md_rule *out, bool *changed,
                                struct md_error *err)
{
    (void)self;
    (void)now_ms;
    check_rule_id(rule_id);
    check_opt_text("rule_text", p->rule_text);
    if (p->set_confidence)
        check_confidence(p->confidence);
    if (p->set_concepts)
        check_concepts(p->concepts, p->n_concepts);
    check_ids("add_sources", p->add_sources, p->n_add_sources, true);
    check_snapshots(p->snapshots, p->n_snapshots, p->add_sources, p->n_add_sources);
    if (fault(err) != MD_OK)
        return err->code;
    if (hash(rule_id) % 5 == 0)
        return md_error_set(err, MD_E_NOTFOUND, "no such rule");
    stored_rule(out, rule_id);
    *changed = p->rule_text || p->set_confidence || p->set_concepts || p->n_add_sources;
    return MD_OK;
}

static enum md_status ltm_del(void *self, const char *rule_id, char ***sources, size_t *n,
                              struct md_error *err)
{
    (void)self;
    check_rule_id(rule_id);
    if (fault(err) != MD_OK)
        return err->code;
    if (hash(rule_id) % 5 == 0)
        return md_error_set(err, MD_E_NOTFOUND, "no such rule");
    *n = hash(rule_id) % 3;
    *sources = xcalloc(*n, sizeof(char *));
    for (size_t i = 0; i < *n; i++)
        (*sources)[i] = xstrdup(stored_sources[i % 2]);
    return MD_OK;
}

static enum md_status ltm_search(void *self, const struct md_rule_query *q,
                                 struct md_rule_list *out, struct md_error *err)
{
    (void)self;
    FUZZ_CHECK(q->n_words <= 32, "%zu words", q->n_words);
    for (size_t i = 0; i < q->n_words; i++) {
        const char *w = q->words[i];
        size_t len = strlen(w);
        FUZZ_CHECK(len >= 1 && len <= 64 && md_utf8_valid(w, len), "search word '%s'", w);
        for (const char *c = w; *c; c++)
            FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z') && (unsigned char)*c > ' ',
                       "search word '%s' not folded", w);
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(q->words[k], w) != 0, "duplicate word '%s'", w);
    }
    FUZZ_CHECK(q->n_concepts <= 20, "%zu concepts", q->n_concepts);
    for (size_t i = 0; i < q->n_concepts; i++) {
        const char *k = q->concept_keys[i];
        char again[MD_CONCEPT_KEY_MAX + 1];
        FUZZ_CHECK(k[0] && md_utf8_valid(k, strlen(k)), "concept key '%s'", k);
        md_concept_key(k, again);
        FUZZ_CHECK(strcmp(again, k) == 0, "concept filter '%s' is not a fold key", k);
    }
    if (q->policy) {
        size_t len = strlen(q->policy);
        FUZZ_CHECK(len >= 1 && len <= MD_POLICY_MAX && q->policy[0] >= 'A' && q->policy[0] <= 'Z',
                   "policy filter '%s'", q->policy);
        for (const char *c = q->policy; *c; c++)
            FUZZ_CHECK((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'), "policy '%s'",
                       q->policy);
    }
    if (q->has_min_confidence)
        check_confidence(q->min_confidence);
    FUZZ_CHECK(q->limit >= 1 && q->limit <= 100, "search limit %zu", q->limit);
    FUZZ_CHECK(q->offset <= 1000000, "search offset %zu", q->offset);
    if (fault(err) != MD_OK)
        return err->code;
    out->count = MD_MIN(q->limit, 2);
    out->items = xcalloc(out->count, sizeof(*out->items));
    for (size_t i = 0; i < out->count; i++)
        stored_rule(&out->items[i], i ? "GDPR_DataRetention_02" : "GDPR_DataRetention_01");
    out->more = q->offset < 4;
    return MD_OK;
}

static enum md_status ltm_concepts(void *self, const char *after_key, size_t limit,
                                   struct md_concept_list *out, struct md_error *err)
{
    (void)self;
    FUZZ_CHECK(limit >= 1 && limit <= 1000, "concepts limit %zu", limit);
    FUZZ_CHECK(after_key != NULL, "after_key");
    if (fault(err) != MD_OK)
        return err->code;
    out->count = MD_MIN(limit, 2);
    out->items = xcalloc(out->count, sizeof(*out->items));
    for (size_t i = 0; i < out->count; i++) {
        out->items[i].name = xstrdup(stored_concepts[i].name);
        out->items[i].key = xstrdup(stored_concepts[i].key);
        out->items[i].rule_count = (int64_t)i + 1;
    }
    out->more = after_key[0] == '\0';
    return MD_OK;
}

static enum md_status ltm_concept_rules(void *self, const char *key, char **name,
                                        struct md_rule_list *out, struct md_error *err)
{
    (void)self;
    char again[MD_CONCEPT_KEY_MAX + 1];
    FUZZ_CHECK(key[0] && md_utf8_valid(key, strlen(key)), "concept key '%s'", key);
    md_concept_key(key, again);
    FUZZ_CHECK(strcmp(again, key) == 0, "concept '%s' is not a fold key", key);
    if (fault(err) != MD_OK)
        return err->code;
    if (hash(key) % 3 == 0)
        return md_error_set(err, MD_E_NOTFOUND, "no such concept");
    *name = xstrdup(key);
    out->count = 1;
    out->items = xcalloc(1, sizeof(*out->items));
    stored_rule(&out->items[0], "GDPR_DataRetention_01");
    return MD_OK;
}

static enum md_status ltm_history(void *self, const char *rule_id, struct md_rule_history *out,
                                  struct md_error *err)
{
    (void)self;
    check_rule_id(rule_id);
    if (fault(err) != MD_OK)
        return err->code;
    if (hash(rule_id) % 5 == 0)
        return md_error_set(err, MD_E_NOTFOUND, "no such rule");
    out->count = 2;
    out->versions = xcalloc(2, sizeof(*out->versions));
    for (size_t i = 0; i < 2; i++) {
        struct md_rule_version *v = &out->versions[i];
        v->version = (int64_t)i + 1;
        v->rule_text = xstrdup(i ? "v2 text" : "v1 \"text\"");
        v->confidence = 0.5 + 0.25 * (double)i;
        v->n_concepts = 1;
        v->concepts = xcalloc(1, sizeof(char *));
        v->concepts[0] = xstrdup("Data Retention");
        v->n_sources = 1;
        v->sources = xcalloc(1, sizeof(char *));
        v->sources[0] = xstrdup("gdpr_r1_consent");
        v->recorded_ms = 1764200000000 + (int64_t)i;
    }
    return MD_OK;
}

static enum md_status ltm_concept_links(void *self, const char *rule_id,
                                        struct md_concept_links **out, size_t *n,
                                        struct md_error *err)
{
    (void)self;
    check_rule_id(rule_id);
    if (fault(err) != MD_OK)
        return err->code;
    *n = 1;
    *out = xcalloc(1, sizeof(**out));
    (*out)[0].concept = xstrdup("Data Retention");
    (*out)[0].n_rule_ids = 1;
    (*out)[0].rule_ids = xcalloc(1, sizeof(char *));
    (*out)[0].rule_ids[0] = xstrdup("HIPAA_Retention_01");
    return MD_OK;
}

static enum md_status ltm_scenario(void *self, const char *id, struct md_scenario_info *out,
                                   struct md_error *err)
{
    (void)self;
    check_scenario_id(id);
    if (fault(err) != MD_OK)
        return err->code;
    memset(out, 0, sizeof(*out));
    unsigned h = hash(id);
    out->known = (h & 8) != 0;
    if (out->known && (h & 16)) {
        out->has_snapshot = true;
        out->snapshot_json = xstrdup("{\"scenario_id\":\"gdpr_r1_consent\"}");
        memset(out->snapshot_sha256, 'b', 64);
        out->snapshot_captured_ms = 1764200000000;
        out->snapshot_has_feedback = true;
        out->snapshot_final_status = MD_VERDICT_COMPLIANT;
        out->derived.count = 1;
        out->derived.items = xcalloc(1, sizeof(*out->derived.items));
        stored_rule(&out->derived.items[0], "GDPR_DataRetention_01");
    }
    return MD_OK;
}

static enum md_status ltm_rules_exist(void *self, const char *const *ids, size_t n, bool *exists_out,
                                      struct md_error *err)
{
    (void)self;
    for (size_t i = 0; i < n; i++)
        check_rule_id(ids[i]);
    if (fault(err) != MD_OK)
        return err->code;
    for (size_t i = 0; i < n; i++)
        exists_out[i] = hash(ids[i]) % 2 == 0;
    return MD_OK;
}

static enum md_status ltm_sources_without_snapshot(void *self, struct md_pair_list *out,
                                                   struct md_error *err)
{
    (void)self;
    if (fault(err) != MD_OK)
        return err->code;
    out->count = 2;
    out->rule_ids = xcalloc(2, sizeof(*out->rule_ids));
    out->scenario_ids = xcalloc(2, sizeof(*out->scenario_ids));
    snprintf(out->rule_ids[0], sizeof(out->rule_ids[0]), "GDPR_DataRetention_01");
    snprintf(out->rule_ids[1], sizeof(out->rule_ids[1]), "GDPR_DataRetention_02");
    snprintf(out->scenario_ids[0], sizeof(out->scenario_ids[0]), "gdpr_r9_gone");
    snprintf(out->scenario_ids[1], sizeof(out->scenario_ids[1]), "gdpr_r1_consent");
    return MD_OK;
}

static enum md_status ltm_stats(void *self, struct md_ltm_stats *out, struct md_error *err)
{
    (void)self;
    if (fault(err) != MD_OK)
        return err->code;
    out->total_rules = 2;
    out->average_confidence = 0.675;
    out->total_concepts = 2;
    out->n_policies = 1;
    out->policies = xcalloc(1, sizeof(char *));
    out->policies[0] = xstrdup("GDPR");
    out->policy_counts = xcalloc(1, sizeof(int64_t));
    out->policy_counts[0] = 2;
    out->rules_without_sources = 1;
    return MD_OK;
}

static enum md_status ltm_ping(void *self, struct md_error *err)
{
    (void)self;
    return fault(err);
}

static void ltm_destroy(void *self)
{
    (void)self;
}

static const struct md_ltm_ops ltm_ops = {
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
    .ensure_schema = ltm_ping,
    .destroy = ltm_destroy,
};

static struct md_ltm the_ltm = {&ltm_ops};

struct md_ltm *fake_ltm(size_t max)
{
    max_concepts = max;
    return &the_ltm;
}
