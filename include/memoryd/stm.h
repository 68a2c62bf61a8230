/*
 * stm.h — the short-term memory store interface (spec §3) and its backends.
 *
 * An STM entry is a case file with a TTL. Each backend stores the entry as
 * canonical compact JSON and hands that JSON back verbatim, so the API layer
 * passes it through to clients without re-serialising it. The JSON always
 * has these keys, in this order:
 *
 *   {"scenario_id":…,"requirement_text":…,
 *    "initial_assessment":{"status":…,"rationale":…,"recommendation":…},
 *    "human_feedback":{"decision":…,"rationale":…,"suggestion":…}|null,
 *    "final_status":…|null,"created_at":…,"updated_at":…,"expires_at":…}
 *
 * Inputs reaching a store are already validated and canonical (the API layer
 * validates); stores enforce the semantics: atomic writes, create never
 * overwrites, expired entries invisible at once, updates keep the TTL.
 *
 * Thread safety: every operation may be called from any number of threads at
 * once. Ownership: results are owned by the caller and released with the
 * matching md_stm_*_release(); string inputs are borrowed for the call.
 * Times are epoch milliseconds from the caller (now_ms), so that one request
 * uses one clock reading throughout.
 *
 * Errors: MD_E_NOTFOUND (no live entry), MD_E_CONFLICT (id exists),
 * MD_E_UNAVAIL / MD_E_TIMEOUT (store unreachable in time), MD_E_NOMEM,
 * MD_E_PROTO (store answered nonsense), MD_E_INTERNAL.
 */
#ifndef MD_STM_H
#define MD_STM_H

#include "memoryd/compat.h"
#include "memoryd/ids.h"
#include "memoryd/pool_stats.h"
#include "memoryd/status.h"

struct md_config;
struct md_sqlite;

/* One entry as read from or written to a store. */
struct md_stm_view {
    char *json;      /* owned: canonical entry JSON (see above) */
    size_t json_len; /* strlen(json) */
    char scenario_id[MD_SCENARIO_ID_MAX + 1];
    bool has_feedback;
    enum md_verdict final_status; /* MD_VERDICT_NONE when null */
    int64_t expires_ms;
    char **links;     /* owned: rule ids of stm_ltm_links (when links_known) */
    size_t n_links;   /* number of links */
    bool links_known; /* links filled: get, patch and feedback, read in the same transaction */
};

/* Free the contents of a view (accepts a zeroed view). */
void md_stm_view_release(struct md_stm_view *v);

/* A validated create request. */
struct md_stm_new {
    char scenario_id[MD_SCENARIO_ID_MAX + 1]; /* the id, or the generated base */
    bool generated;           /* true: take the lowest free of id, id_2, id_3 … */
    const char *requirement_text;
    enum md_verdict status;   /* never NONE */
    const char *rationale;
    const char *recommendation;
    int64_t ttl_seconds;      /* > 0 */
};

/* A validated PATCH: NULL / MD_VERDICT_NONE-with-flag-false mean "unchanged". */
struct md_stm_patch {
    const char *requirement_text;
    bool set_status;
    enum md_verdict status;
    const char *rationale;
    const char *recommendation;
    bool set_final;                /* final_status given (value or null) */
    enum md_verdict final_status;  /* MD_VERDICT_NONE: null */
};

/* A validated feedback update (spec §3 PUT …/feedback, §6 "Feedback"). */
struct md_stm_feedback {
    const char *decision;
    const char *rationale;
    const char *suggestion;
    bool set_final;               /* final_status given; absent keeps the old one */
    enum md_verdict final_status; /* MD_VERDICT_NONE: null (clears it) */
};

/* Names of the fields a PATCH can change, as dotted paths (updated_fields). */
enum md_stm_field {
    MD_STM_F_REQUIREMENT_TEXT = 1 << 0,
    MD_STM_F_STATUS = 1 << 1,
    MD_STM_F_RATIONALE = 1 << 2,
    MD_STM_F_RECOMMENDATION = 1 << 3,
    MD_STM_F_FINAL_STATUS = 1 << 4,
};

/* List filter; every member "any" by default (see md_stm_filter_init). */
struct md_stm_filter {
    enum md_verdict status;       /* initial status; NONE = any */
    enum md_verdict final_status; /* NONE = any */
    int has_feedback;             /* -1 any, 0 without, 1 with */
    char domain[MD_DOMAIN_MAX + 1]; /* cleaned domain; "" = any */
};

void md_stm_filter_init(struct md_stm_filter *f);

/*
 * A page of a newest-first listing. `after_seq` is the position to continue
 * from (0 = start); the store sets next_seq to a position > 0 when more
 * entries may follow, else 0. A page may hold fewer than `limit` entries
 * while next_seq != 0 (the Redis backend bounds the work per call); paging
 * on until next_seq == 0 visits every matching entry exactly once.
 */
struct md_stm_page {
    struct md_stm_view *items; /* owned array of count views */
    size_t count;
    uint64_t next_seq;
};

void md_stm_page_release(struct md_stm_page *p);

struct md_stm_stats {
    int64_t total;
    int64_t with_feedback;
    int64_t by_status[MD_VERDICT_COUNT]; /* initial status */
    int64_t by_final[MD_VERDICT_COUNT];  /* final status (entries with one) */
};

/* Callback of md_stm_for_each: one live entry and its rule links (borrowed). */
typedef enum md_status (*md_stm_each_fn)(void *ctx, const char *scenario_id, bool has_feedback,
                                         const char *const *links, size_t n_links);

struct md_stm_ops {
    const char *backend; /* "redis" | "embedded" */
    enum md_status (*create)(void *self, const struct md_stm_new *in, int64_t now_ms,
                             struct md_stm_view *out, struct md_error *err);
    enum md_status (*get)(void *self, const char *id, int64_t now_ms, struct md_stm_view *out,
                          struct md_error *err);
    /*
     * Read n entries in one round trip: out[i] is filled for a live entry and
     * left zeroed (json == NULL) for a missing one. links are not filled.
     */
    enum md_status (*get_many)(void *self, const char *const *ids, size_t n, int64_t now_ms,
                               struct md_stm_view *out, struct md_error *err);
    /*
     * Which of ids have a live entry — the same verdict as get_many, in one
     * round trip, without reading the entries: expires_ms[i] is the entry's
     * expiry, 0 when it has none. (A rule read needs in_stm of its sources
     * and nothing more: moving two 1.5 KB entries to learn two booleans cost
     * it a fifth of its time over Neo4j's; bench/README.)
     */
    enum md_status (*alive_many)(void *self, const char *const *ids, size_t n, int64_t now_ms,
                                 int64_t *expires_ms, struct md_error *err);
    enum md_status (*list)(void *self, const struct md_stm_filter *f, size_t limit,
                           uint64_t after_seq, int64_t now_ms, struct md_stm_page *out,
                           struct md_error *err);
    enum md_status (*patch)(void *self, const char *id, const struct md_stm_patch *p,
                            int64_t now_ms, struct md_stm_view *out, unsigned *changed,
                            struct md_error *err);
    enum md_status (*feedback)(void *self, const char *id, const struct md_stm_feedback *fb,
                               int64_t now_ms, struct md_stm_view *out, struct md_error *err);
    enum md_status (*set_ttl)(void *self, const char *id, int64_t ttl_seconds, int64_t now_ms,
                              int64_t *expires_ms, struct md_error *err);
    enum md_status (*del)(void *self, const char *id, int64_t now_ms, struct md_error *err);
    enum md_status (*stats)(void *self, int64_t now_ms, struct md_stm_stats *out,
                            struct md_error *err);
    enum md_status (*link_add)(void *self, const char *id, const char *rule_id, int64_t now_ms,
                               struct md_error *err);
    /* Add rule_id to the link sets of those of ids[0..n) that are live (one round trip). */
    enum md_status (*links_add)(void *self, const char *rule_id, const char *const *ids,
                                size_t n, int64_t now_ms, struct md_error *err);
    enum md_status (*links_remove)(void *self, const char *rule_id,
                                   const char *const *scenario_ids, size_t n,
                                   struct md_error *err);
    enum md_status (*for_each)(void *self, int64_t now_ms, md_stm_each_fn fn, void *ctx,
                               struct md_error *err);
    enum md_status (*ping)(void *self, struct md_error *err);
    void (*sweep)(void *self, int64_t now_ms);
    void (*pool_stats)(void *self, struct md_pool_stats *out);
    void (*destroy)(void *self);
};

/* A store handle: backends embed this as their first member. */
struct md_stm {
    const struct md_stm_ops *ops;
};

/*
 * Backends. Constructors return NULL and fill err on failure; they never
 * block for longer than the configured connect timeout. The Redis backend
 * does not need Redis to be up at construction: it dials lazily and answers
 * MD_E_UNAVAIL until Redis is reachable.
 */
struct md_stm *md_stm_redis_new(const struct md_config *cfg, struct md_error *err);
struct md_stm *md_stm_sqlite_new(struct md_sqlite *db, struct md_error *err);

/* Thin dispatchers (documented on the ops above). */
static inline void md_stm_destroy(struct md_stm *s)
{
    if (s)
        s->ops->destroy(s);
}

#endif /* MD_STM_H */
