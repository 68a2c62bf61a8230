/*
 * instrument.c — store wrappers that time and count every call.
 *
 * A wrapper is a struct md_stm / md_ltm whose ops forward to the wrapped
 * store and report each call to the registry (md_metrics_store) with its
 * duration on the monotonic clock and whether it failed. The ops table lives
 * in the wrapper (not static) so that `backend` keeps naming the wrapped
 * backend. The static assertions below break the build when an op is added
 * to md_stm_ops / md_ltm_ops without being added here and to MD_STM_OPS /
 * MD_LTM_OPS (metrics.h) — a forgotten op would otherwise be a NULL call.
 */
#include "memoryd/compat.h"

#include <stdlib.h>

#include "memoryd/clock.h"
#include "memoryd/ltm.h"
#include "memoryd/metrics.h"
#include "memoryd/stm.h"

_Static_assert(sizeof(struct md_stm_ops) == (MD_STM_OP_COUNT + 3) * sizeof(void *),
               "md_stm_ops changed: update instrument.c and MD_STM_OPS");
_Static_assert(sizeof(struct md_ltm_ops) == (MD_LTM_OP_COUNT + 2) * sizeof(void *),
               "md_ltm_ops changed: update instrument.c and MD_LTM_OPS");

struct stm_wrap {
    struct md_stm base; /* first: the wrapper is a struct md_stm */
    struct md_stm_ops ops;
    struct md_stm *inner; /* owned */
    struct md_metrics *m; /* borrowed */
};

struct ltm_wrap {
    struct md_ltm base;
    struct md_ltm_ops ops;
    struct md_ltm *inner;
    struct md_metrics *m;
};

/* Time `call` (an enum md_status expression) and report it as op of store. */
#define TIMED(w, store, op, call)                                                                \
    do {                                                                                         \
        int64_t t0_ = md_mono_us();                                                              \
        enum md_status st_ = (call);                                                             \
        md_metrics_store((w)->m, store, op, !md_metrics_store_failed(st_), md_mono_us() - t0_); \
        return st_;                                                                              \
    } while (0)

#define SW(self) ((struct stm_wrap *)(self))
#define SI(self) (SW(self)->inner)
#define STM_TIMED(self, op, call) TIMED(SW(self), MD_STORE_STM, MD_STM_OP_##op, call)

static enum md_status w_stm_create(void *self, const struct md_stm_new *in, int64_t now_ms,
                                   struct md_stm_view *out, struct md_error *err)
{
    STM_TIMED(self, create, SI(self)->ops->create(SI(self), in, now_ms, out, err));
}

static enum md_status w_stm_get(void *self, const char *id, int64_t now_ms,
                                struct md_stm_view *out, struct md_error *err)
{
    STM_TIMED(self, get, SI(self)->ops->get(SI(self), id, now_ms, out, err));
}

static enum md_status w_stm_get_many(void *self, const char *const *ids, size_t n,
                                     int64_t now_ms, struct md_stm_view *out,
                                     struct md_error *err)
{
    STM_TIMED(self, get_many, SI(self)->ops->get_many(SI(self), ids, n, now_ms, out, err));
}

static enum md_status w_stm_alive_many(void *self, const char *const *ids, size_t n,
                                       int64_t now_ms, int64_t *expires_ms, struct md_error *err)
{
    STM_TIMED(self, alive_many,
              SI(self)->ops->alive_many(SI(self), ids, n, now_ms, expires_ms, err));
}

static enum md_status w_stm_list(void *self, const struct md_stm_filter *f, size_t limit,
                                 uint64_t after_seq, int64_t now_ms, struct md_stm_page *out,
                                 struct md_error *err)
{
    STM_TIMED(self, list, SI(self)->ops->list(SI(self), f, limit, after_seq, now_ms, out, err));
}

static enum md_status w_stm_patch(void *self, const char *id, const struct md_stm_patch *p,
                                  int64_t now_ms, struct md_stm_view *out, unsigned *changed,
                                  struct md_error *err)
{
    STM_TIMED(self, patch, SI(self)->ops->patch(SI(self), id, p, now_ms, out, changed, err));
}

static enum md_status w_stm_feedback(void *self, const char *id, const struct md_stm_feedback *fb,
                                     int64_t now_ms, struct md_stm_view *out,
                                     struct md_error *err)
{
    STM_TIMED(self, feedback, SI(self)->ops->feedback(SI(self), id, fb, now_ms, out, err));
}

static enum md_status w_stm_set_ttl(void *self, const char *id, int64_t ttl_seconds,
                                    int64_t now_ms, int64_t *expires_ms, struct md_error *err)
{
    STM_TIMED(self, set_ttl,
              SI(self)->ops->set_ttl(SI(self), id, ttl_seconds, now_ms, expires_ms, err));
}

static enum md_status w_stm_del(void *self, const char *id, int64_t now_ms, struct md_error *err)
{
    STM_TIMED(self, del, SI(self)->ops->del(SI(self), id, now_ms, err));
}

static enum md_status w_stm_stats(void *self, int64_t now_ms, struct md_stm_stats *out,
                                  struct md_error *err)
{
    STM_TIMED(self, stats, SI(self)->ops->stats(SI(self), now_ms, out, err));
}

static enum md_status w_stm_link_add(void *self, const char *id, const char *rule_id,
                                     int64_t now_ms, struct md_error *err)
{
    STM_TIMED(self, link_add, SI(self)->ops->link_add(SI(self), id, rule_id, now_ms, err));
}

static enum md_status w_stm_links_add(void *self, const char *rule_id, const char *const *ids,
                                      size_t n, int64_t now_ms, struct md_error *err)
{
    STM_TIMED(self, links_add, SI(self)->ops->links_add(SI(self), rule_id, ids, n, now_ms, err));
}

static enum md_status w_stm_links_remove(void *self, const char *rule_id,
                                         const char *const *scenario_ids, size_t n,
                                         struct md_error *err)
{
    STM_TIMED(self, links_remove,
              SI(self)->ops->links_remove(SI(self), rule_id, scenario_ids, n, err));
}

static enum md_status w_stm_for_each(void *self, int64_t now_ms, md_stm_each_fn fn, void *ctx,
                                     struct md_error *err)
{
    STM_TIMED(self, for_each, SI(self)->ops->for_each(SI(self), now_ms, fn, ctx, err));
}

static enum md_status w_stm_ping(void *self, struct md_error *err)
{
    STM_TIMED(self, ping, SI(self)->ops->ping(SI(self), err));
}

static void w_stm_sweep(void *self, int64_t now_ms)
{
    int64_t t0 = md_mono_us();
    SI(self)->ops->sweep(SI(self), now_ms);
    md_metrics_store(SW(self)->m, MD_STORE_STM, MD_STM_OP_sweep, true, md_mono_us() - t0);
}

static void w_stm_pool_stats(void *self, struct md_pool_stats *out)
{
    SI(self)->ops->pool_stats(SI(self), out);
}

static void w_stm_destroy(void *self)
{
    md_stm_destroy(SI(self));
    free(self);
}

struct md_stm *md_metrics_wrap_stm(struct md_metrics *m, struct md_stm *inner,
                                   struct md_error *err)
{
    struct stm_wrap *w = calloc(1, sizeof(*w));
    if (!w) {
        md_error_set(err, MD_E_NOMEM, "out of memory instrumenting the STM store");
        return NULL;
    }
    w->inner = inner;
    w->m = m;
    w->ops = (struct md_stm_ops){
        .backend = inner->ops->backend,
        .create = w_stm_create,
        .get = w_stm_get,
        .get_many = w_stm_get_many,
        .alive_many = w_stm_alive_many,
        .list = w_stm_list,
        .patch = w_stm_patch,
        .feedback = w_stm_feedback,
        .set_ttl = w_stm_set_ttl,
        .del = w_stm_del,
        .stats = w_stm_stats,
        .link_add = w_stm_link_add,
        .links_add = w_stm_links_add,
        .links_remove = w_stm_links_remove,
        .for_each = w_stm_for_each,
        .ping = w_stm_ping,
        .sweep = w_stm_sweep,
        .pool_stats = w_stm_pool_stats,
        .destroy = w_stm_destroy,
    };
    w->base.ops = &w->ops;
    return &w->base;
}

struct md_stm *md_metrics_unwrap_stm(struct md_stm *s)
{
    if (s && s->ops->destroy == w_stm_destroy)
        return SI(s);
    return s;
}

#define LW(self) ((struct ltm_wrap *)(self))
#define LI(self) (LW(self)->inner)
#define LTM_TIMED(self, op, call) TIMED(LW(self), MD_STORE_LTM, MD_LTM_OP_##op, call)

static enum md_status w_ltm_create(void *self, const struct md_rule_new *in, int64_t now_ms,
                                   struct md_rule *out, struct md_error *err)
{
    LTM_TIMED(self, create, LI(self)->ops->create(LI(self), in, now_ms, out, err));
}

static enum md_status w_ltm_get(void *self, const char *rule_id, struct md_rule_detail *out,
                                struct md_error *err)
{
    LTM_TIMED(self, get, LI(self)->ops->get(LI(self), rule_id, out, err));
}

static enum md_status w_ltm_patch(void *self, const char *rule_id, const struct md_rule_patch *p,
                                  int64_t now_ms, struct md_rule *out, bool *changed,
                                  struct md_error *err)
{
    LTM_TIMED(self, patch, LI(self)->ops->patch(LI(self), rule_id, p, now_ms, out, changed, err));
}

static enum md_status w_ltm_del(void *self, const char *rule_id, char ***sources,
                                size_t *n_sources, struct md_error *err)
{
    LTM_TIMED(self, del, LI(self)->ops->del(LI(self), rule_id, sources, n_sources, err));
}

static enum md_status w_ltm_search(void *self, const struct md_rule_query *q,
                                   struct md_rule_list *out, struct md_error *err)
{
    LTM_TIMED(self, search, LI(self)->ops->search(LI(self), q, out, err));
}

static enum md_status w_ltm_concepts(void *self, const char *after_key, size_t limit,
                                     struct md_concept_list *out, struct md_error *err)
{
    LTM_TIMED(self, concepts, LI(self)->ops->concepts(LI(self), after_key, limit, out, err));
}

static enum md_status w_ltm_concept_rules(void *self, const char *concept_key,
                                          char **concept_name, struct md_rule_list *out,
                                          struct md_error *err)
{
    LTM_TIMED(self, concept_rules,
              LI(self)->ops->concept_rules(LI(self), concept_key, concept_name, out, err));
}

static enum md_status w_ltm_history(void *self, const char *rule_id,
                                    struct md_rule_history *out, struct md_error *err)
{
    LTM_TIMED(self, history, LI(self)->ops->history(LI(self), rule_id, out, err));
}

static enum md_status w_ltm_concept_links(void *self, const char *rule_id,
                                          struct md_concept_links **out, size_t *n,
                                          struct md_error *err)
{
    LTM_TIMED(self, concept_links, LI(self)->ops->concept_links(LI(self), rule_id, out, n, err));
}

static enum md_status w_ltm_scenario(void *self, const char *scenario_id,
                                     struct md_scenario_info *out, struct md_error *err)
{
    LTM_TIMED(self, scenario, LI(self)->ops->scenario(LI(self), scenario_id, out, err));
}

static enum md_status w_ltm_rules_exist(void *self, const char *const *rule_ids, size_t n,
                                        bool *exists, struct md_error *err)
{
    LTM_TIMED(self, rules_exist, LI(self)->ops->rules_exist(LI(self), rule_ids, n, exists, err));
}

static enum md_status w_ltm_sources_without_snapshot(void *self, struct md_pair_list *out,
                                                     struct md_error *err)
{
    LTM_TIMED(self, sources_without_snapshot,
              LI(self)->ops->sources_without_snapshot(LI(self), out, err));
}

static enum md_status w_ltm_stats(void *self, struct md_ltm_stats *out, struct md_error *err)
{
    LTM_TIMED(self, stats, LI(self)->ops->stats(LI(self), out, err));
}

static enum md_status w_ltm_ping(void *self, struct md_error *err)
{
    LTM_TIMED(self, ping, LI(self)->ops->ping(LI(self), err));
}

static enum md_status w_ltm_ensure_schema(void *self, struct md_error *err)
{
    LTM_TIMED(self, ensure_schema, LI(self)->ops->ensure_schema(LI(self), err));
}

static void w_ltm_destroy(void *self)
{
    md_ltm_destroy(LI(self));
    free(self);
}

struct md_ltm *md_metrics_wrap_ltm(struct md_metrics *m, struct md_ltm *inner,
                                   struct md_error *err)
{
    struct ltm_wrap *w = calloc(1, sizeof(*w));
    if (!w) {
        md_error_set(err, MD_E_NOMEM, "out of memory instrumenting the LTM store");
        return NULL;
    }
    w->inner = inner;
    w->m = m;
    w->ops = (struct md_ltm_ops){
        .backend = inner->ops->backend,
        .create = w_ltm_create,
        .get = w_ltm_get,
        .patch = w_ltm_patch,
        .del = w_ltm_del,
        .search = w_ltm_search,
        .concepts = w_ltm_concepts,
        .concept_rules = w_ltm_concept_rules,
        .history = w_ltm_history,
        .concept_links = w_ltm_concept_links,
        .scenario = w_ltm_scenario,
        .rules_exist = w_ltm_rules_exist,
        .sources_without_snapshot = w_ltm_sources_without_snapshot,
        .stats = w_ltm_stats,
        .ping = w_ltm_ping,
        .ensure_schema = w_ltm_ensure_schema,
        .destroy = w_ltm_destroy,
    };
    w->base.ops = &w->ops;
    return &w->base;
}

struct md_ltm *md_metrics_unwrap_ltm(struct md_ltm *l)
{
    if (l && l->ops->destroy == w_ltm_destroy)
        return LI(l);
    return l;
}
