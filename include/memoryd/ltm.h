/*
 * ltm.h — the long-term memory store interface (spec §4) and its backends.
 *
 * LTM holds generalised rules learned from expert feedback, linked to
 * concepts, a governing policy, their source scenarios (with evidence
 * snapshots copied from STM) and their previous versions. Two backends
 * implement it: Neo4j 5 over the HTTP transactional endpoint, and the
 * embedded SQLite file. Both pass the same contract tests.
 *
 * Rules of the interface:
 *  - Inputs are validated and canonical when they arrive (the API layer
 *    validates): ids match their grammars, concept lists are trimmed, free of
 *    case-insensitive duplicates and come with their fold keys.
 *  - Every call is one transaction and a bounded number of round trips to
 *    the store, whatever the number of concepts or sources (no per-item
 *    query loops).
 *  - Concept identity is case-insensitive: a Concept is keyed by its fold
 *    key (md_concept_key) and keeps the spelling it was first created with;
 *    each rule keeps its own spelling of each of its concepts.
 *  - A rule's `policy` is the part of its id before the first '_'.
 *  - Versions: a change that alters a rule keeps its previous state as a
 *    version record; `version` counts from 1; created_at never changes.
 *  - Deleting a rule, or a PATCH that drops concepts, removes Concept and
 *    Policy nodes left without any rule. Scenario nodes (evidence) stay.
 *
 * Thread safety: all operations may run concurrently from many threads.
 * Ownership: outputs are owned by the caller and freed with the matching
 * md_*_release(); inputs are borrowed for the duration of the call.
 * Errors: MD_E_NOTFOUND, MD_E_CONFLICT (id exists), MD_E_UNAVAIL /
 * MD_E_TIMEOUT (store unreachable in time), MD_E_PROTO, MD_E_NOMEM,
 * MD_E_INTERNAL. Messages are client-safe; driver text goes to detail.
 */
#ifndef MD_LTM_H
#define MD_LTM_H

#include "memoryd/compat.h"
#include "memoryd/ids.h"
#include "memoryd/status.h"

struct md_config;
struct md_sqlite;

#define MD_CONCEPT_KEY_MAX 400 /* bytes of a fold key (100 code points, folded) */

/*
 * Fold a concept name for identity and matching: simple lower-casing of
 * ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic letters; other
 * characters unchanged. The input must be valid UTF-8 of ≤ 100 code points.
 */
void md_concept_key(const char *name, char out[MD_CONCEPT_KEY_MAX + 1]);

/* A concept as given on one rule, with its fold key. */
struct md_concept {
    char *name; /* owned */
    char *key;  /* owned */
};

/* One rule, as returned by every read. */
struct md_rule {
    char rule_id[MD_RULE_ID_MAX + 1];
    char policy[MD_POLICY_MAX + 1];
    char *rule_text;              /* owned */
    struct md_concept *concepts;  /* owned, in the rule's stored order */
    size_t n_concepts;
    char **sources;               /* owned scenario ids, sorted */
    size_t n_sources;
    double confidence;
    int64_t version;
    int64_t created_ms;
    int64_t updated_ms;
    double score;                 /* full-text score (search with q only) */
};

void md_rule_release(struct md_rule *r);

/* Evidence copied from a live STM entry onto the Scenario node. */
struct md_snapshot {
    const char *scenario_id;
    const char *entry_json;  /* the canonical STM entry JSON */
    char sha256[65];         /* SHA-256 hex of entry_json */
    bool has_feedback;
    enum md_verdict final_status;
    int64_t captured_ms;
};

/* A validated create. Either rule_id or id_prefix ("GDPR_EventBased"). */
struct md_rule_new {
    const char *rule_id;      /* explicit id, or NULL */
    const char *id_prefix;    /* generate prefix_NN, the lowest free NN from 01 */
    const char *policy;       /* policy part of the (final) id */
    const char *rule_text;
    const struct md_concept *concepts;
    size_t n_concepts;
    const char *const *sources; /* ≥ 1 scenario ids */
    size_t n_sources;
    const struct md_snapshot *snapshots; /* for sources whose STM entry exists */
    size_t n_snapshots;
    double confidence;
};

/* A validated PATCH; absent members are NULL / false. */
struct md_rule_patch {
    const char *rule_text;
    bool set_confidence;
    double confidence;
    bool set_concepts;             /* replaces the whole set */
    const struct md_concept *concepts;
    size_t n_concepts;
    const char *const *add_sources;
    size_t n_add_sources;
    const struct md_snapshot *snapshots; /* refresh/attach for added sources in STM */
    size_t n_snapshots;
};

/* Search query (GET /v1/ltm/rules). */
struct md_rule_query {
    const char *const *words;   /* full-text words (already split, ≤ 32); n_words 0: structured */
    size_t n_words;
    const char *const *concept_keys; /* any-match on fold keys */
    size_t n_concepts;
    const char *policy;         /* upper-cased policy, or NULL */
    bool has_min_confidence;
    double min_confidence;
    size_t limit;
    size_t offset;              /* position from the cursor */
};

struct md_rule_list {
    struct md_rule *items; /* owned */
    size_t count;
    bool more;             /* items exist after this page */
};

void md_rule_list_release(struct md_rule_list *l);

/* A source of a rule, as the traceability views need it. */
struct md_source {
    char scenario_id[MD_SCENARIO_ID_MAX + 1];
    bool has_snapshot;
    bool snapshot_has_feedback;
    enum md_verdict snapshot_final_status;
    int64_t snapshot_captured_ms;
    char snapshot_sha256[65];
};

/* A rule with everything GET /v1/ltm/rules/{id} and /audit need. */
struct md_rule_detail {
    struct md_rule rule;
    struct md_source *sources; /* owned, one per rule.sources, same order */
    size_t n_sources;
    char **policies;           /* owned: governing policy names */
    size_t n_policies;
};

void md_rule_detail_release(struct md_rule_detail *d);

/* One version of a rule (history). */
struct md_rule_version {
    int64_t version;
    char *rule_text;           /* owned */
    double confidence;
    char **concepts;           /* owned names */
    size_t n_concepts;
    char **sources;            /* owned ids */
    size_t n_sources;
    int64_t recorded_ms;
};

struct md_rule_history {
    struct md_rule_version *versions; /* owned, oldest first, the current one last */
    size_t count;
};

void md_rule_history_release(struct md_rule_history *h);

/* concept -> the other rules relating to it (audit trail). */
struct md_concept_links {
    char *concept;      /* owned: the audited rule's spelling */
    char **rule_ids;    /* owned: other rules relating to the same concept */
    size_t n_rule_ids;
};

/* Free an array of n concept links (accepts NULL). */
void md_concept_links_release(struct md_concept_links *links, size_t n);

struct md_concept_count {
    char *name; /* owned: the concept's stored spelling */
    char *key;  /* owned: its fold key (paging position) */
    int64_t rule_count;
};

struct md_concept_list {
    struct md_concept_count *items; /* owned */
    size_t count;
    bool more;
};

void md_concept_list_release(struct md_concept_list *l);

/* What LTM knows about one scenario (trace). */
struct md_scenario_info {
    bool known;                /* a Scenario node exists */
    bool has_snapshot;
    char *snapshot_json;       /* owned, or NULL */
    char snapshot_sha256[65];
    int64_t snapshot_captured_ms;
    bool snapshot_has_feedback;
    enum md_verdict snapshot_final_status;
    struct md_rule_list derived; /* rules DERIVED_FROM it, confidence descending */
};

void md_scenario_info_release(struct md_scenario_info *s);

/* Aggregates for /v1/stats and /v1/integrity. */
struct md_ltm_stats {
    int64_t total_rules;
    double average_confidence;  /* 0 when there are no rules */
    int64_t total_concepts;
    char **policies;            /* owned, parallel to policy_counts */
    int64_t *policy_counts;
    size_t n_policies;
    int64_t rules_without_sources;
};

void md_ltm_stats_release(struct md_ltm_stats *s);

/* (rule, scenario) pairs: sources with no snapshot (integrity). */
struct md_pair_list {
    char (*rule_ids)[MD_RULE_ID_MAX + 1];
    char (*scenario_ids)[MD_SCENARIO_ID_MAX + 1];
    size_t count;
};

void md_pair_list_release(struct md_pair_list *p);

struct md_ltm_ops {
    const char *backend; /* "neo4j" | "embedded" */
    /* Create; out->rule_id holds the final id. */
    enum md_status (*create)(void *self, const struct md_rule_new *in, int64_t now_ms,
                             struct md_rule *out, struct md_error *err);
    enum md_status (*get)(void *self, const char *rule_id, struct md_rule_detail *out,
                          struct md_error *err);
    /* *changed tells whether the rule changed (and its version moved). */
    enum md_status (*patch)(void *self, const char *rule_id, const struct md_rule_patch *p,
                            int64_t now_ms, struct md_rule *out, bool *changed,
                            struct md_error *err);
    /* Delete; *sources receives the rule's source ids (owned; free each and the array). */
    enum md_status (*del)(void *self, const char *rule_id, char ***sources, size_t *n_sources,
                          struct md_error *err);
    enum md_status (*search)(void *self, const struct md_rule_query *q, struct md_rule_list *out,
                             struct md_error *err);
    /* Concepts by fold key ascending, after `after_key` ("" from the start). */
    enum md_status (*concepts)(void *self, const char *after_key, size_t limit,
                               struct md_concept_list *out, struct md_error *err);
    /* Rules of one concept (by fold key), confidence descending; NOTFOUND if no concept. */
    enum md_status (*concept_rules)(void *self, const char *concept_key, char **concept_name,
                                    struct md_rule_list *out, struct md_error *err);
    enum md_status (*history)(void *self, const char *rule_id, struct md_rule_history *out,
                              struct md_error *err);
    /* Audit: concept -> other rules, one entry per concept of the rule. */
    enum md_status (*concept_links)(void *self, const char *rule_id,
                                    struct md_concept_links **out, size_t *n,
                                    struct md_error *err);
    enum md_status (*scenario)(void *self, const char *scenario_id, struct md_scenario_info *out,
                               struct md_error *err);
    /* exists[i] = rule rule_ids[i] exists; one round trip for all. */
    enum md_status (*rules_exist)(void *self, const char *const *rule_ids, size_t n,
                                  bool *exists, struct md_error *err);
    enum md_status (*sources_without_snapshot)(void *self, struct md_pair_list *out,
                                               struct md_error *err);
    enum md_status (*stats)(void *self, struct md_ltm_stats *out, struct md_error *err);
    enum md_status (*ping)(void *self, struct md_error *err);
    /* Create the schema (idempotent); MD_OK once it is in place. */
    enum md_status (*ensure_schema)(void *self, struct md_error *err);
    void (*destroy)(void *self);
};

struct md_ltm {
    const struct md_ltm_ops *ops;
};

struct md_ltm *md_ltm_neo4j_new(const struct md_config *cfg, struct md_error *err);
struct md_ltm *md_ltm_sqlite_new(struct md_sqlite *db, struct md_error *err);

static inline void md_ltm_destroy(struct md_ltm *l)
{
    if (l)
        l->ops->destroy(l);
}

/* ---- helpers shared by the backends and the API (src/ltm/ltm_common.c) ---- */

/*
 * Evidence completeness (spec §4): 0.4·available/sources +
 * 0.4·with_feedback/sources + 0.2·(total_versions > 1 ? 1.0 : 0.5), capped
 * at 1; 0 when sources == 0.
 */
double md_evidence_completeness(size_t sources, size_t available, size_t with_feedback,
                                int64_t total_versions);

/*
 * Split a full-text query into words: maximal runs of letters and digits
 * (any non-ASCII byte counts as a letter), at most max_words words of at
 * most 64 bytes each, lower-cased (ASCII) and de-duplicated. Returns the
 * number of words; words point into buf (caller-provided, ≥ strlen(q)+1+max_words).
 */
size_t md_fulltext_words(const char *q, char *buf, size_t buf_len, const char **words,
                         size_t max_words);

/*
 * Escape text for a Lucene query: every Lucene special character
 * (+ - & | ! ( ) { } [ ] ^ " ~ * ? : \ /) gets a backslash. Returns false if
 * out (cap bytes) is too small.
 */
bool md_lucene_escape(const char *in, char *out, size_t cap);

/* Lucene query matching any of the words: "w1 OR w2 …", each escaped. */
bool md_lucene_any(const char *const *words, size_t n, char *out, size_t cap);

#endif /* MD_LTM_H */
