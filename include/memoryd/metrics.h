/*
 * metrics.h — the metrics registry: request and store counters, latency
 * histograms, the seed's six sliding-window metrics and the Prometheus text
 * exposition (spec §5 GET /metrics, §6 "Metric names").
 *
 * Dimensions are fixed when the registry is built: the HTTP routes come from
 * the route table (a route's index is its position in the table, plus one
 * "unmatched" slot), methods are the enum md_http_method bits plus "other",
 * status codes fall into a fixed set of buckets (see md_metrics_status_label),
 * store operations are the members of md_stm_ops / md_ltm_ops (MD_STM_OPS,
 * MD_LTM_OPS below). Nothing grows with traffic: every label set is bounded.
 *
 * Request path (md_metrics_http, md_metrics_store): relaxed atomic adds into
 * fixed arrays, sharded per thread (a thread picks its shard once), no lock
 * and no allocation. The janitor calls md_metrics_tick() about once a
 * second: it folds what the shards gathered since the previous tick into a
 * per-second ring of 900 slots (15 minutes) and records the point-in-time
 * values the registry cannot see itself (cache and pool figures). Window
 * queries and the exposition read the ring under one mutex that the request
 * path never takes.
 *
 * Thread safety: every function may be called from any thread. Ownership:
 * the registry borrows the route table (it must outlive the registry);
 * strings handed to the builders are borrowed for the call.
 */
#ifndef MD_METRICS_H
#define MD_METRICS_H

#include "memoryd/buf.h"
#include "memoryd/cache.h"
#include "memoryd/compat.h"
#include "memoryd/router.h"
#include "memoryd/status.h"
#include "memoryd/stm.h"

struct md_metrics;

/* ---- dimensions ---------------------------------------------------------- */

enum md_store { MD_STORE_STM = 0, MD_STORE_LTM, MD_STORE_COUNT };

/*
 * Store operations: X(name, windowed). `name` is the md_stm_ops / md_ltm_ops
 * member (and the `op` label); `windowed` is 1 when the call counts towards
 * the seed windows stm_response_time_ms / ltm_response_time_ms. Background
 * and bulk work (the janitor's sweep, integrity scans, schema bootstrap) is
 * 0: it is still counted and timed in Prometheus, but one multi-second scan
 * must not raise a "High STM Response Time" alert meant for request latency.
 */
#define MD_STM_OPS(X)                                                                            \
    X(create, 1)                                                                                 \
    X(get, 1)                                                                                    \
    X(get_many, 1)                                                                               \
    X(alive_many, 1)                                                                             \
    X(list, 1)                                                                                   \
    X(patch, 1)                                                                                  \
    X(feedback, 1)                                                                               \
    X(set_ttl, 1)                                                                                \
    X(del, 1)                                                                                    \
    X(stats, 1)                                                                                  \
    X(link_add, 1)                                                                               \
    X(links_add, 1)                                                                              \
    X(links_remove, 1)                                                                           \
    X(for_each, 0)                                                                               \
    X(ping, 1)                                                                                   \
    X(sweep, 0)

#define MD_LTM_OPS(X)                                                                            \
    X(create, 1)                                                                                 \
    X(get, 1)                                                                                    \
    X(patch, 1)                                                                                  \
    X(del, 1)                                                                                    \
    X(search, 1)                                                                                 \
    X(concepts, 1)                                                                               \
    X(concept_rules, 1)                                                                          \
    X(history, 1)                                                                                \
    X(concept_links, 1)                                                                          \
    X(scenario, 1)                                                                               \
    X(rules_exist, 1)                                                                            \
    X(sources_without_snapshot, 0)                                                               \
    X(stats, 1)                                                                                  \
    X(ping, 1)                                                                                   \
    X(ensure_schema, 0)

enum md_stm_op {
#define MD_X_OP(name, windowed) MD_STM_OP_##name,
    MD_STM_OPS(MD_X_OP)
#undef MD_X_OP
    MD_STM_OP_COUNT
};

enum md_ltm_op {
#define MD_X_OP(name, windowed) MD_LTM_OP_##name,
    MD_LTM_OPS(MD_X_OP)
#undef MD_X_OP
    MD_LTM_OP_COUNT
};

/*
 * The seed's six metrics (PERFORMANCE_THRESHOLDS): X(ID, name, threshold,
 * lower_is_better). Thresholds are the seed deployment guide's values.
 */
#define MD_WINDOW_METRICS(X)                                                                     \
    X(STM_RESPONSE_TIME_MS, "stm_response_time_ms", 100.0, true)                                 \
    X(LTM_RESPONSE_TIME_MS, "ltm_response_time_ms", 500.0, true)                                 \
    X(API_RESPONSE_TIME_MS, "api_response_time_ms", 1000.0, true)                                \
    X(CACHE_HIT_RATE_PERCENT, "cache_hit_rate_percent", 70.0, false)                             \
    X(ERROR_RATE_PERCENT, "error_rate_percent", 1.0, true)                                       \
    X(CONNECTION_POOL_UTILIZATION_PERCENT, "connection_pool_utilization_percent", 80.0, true)

enum md_metric {
#define MD_X_METRIC(id, name, threshold, lower) MD_METRIC_##id,
    MD_WINDOW_METRICS(MD_X_METRIC)
#undef MD_X_METRIC
    MD_METRIC_COUNT
};

/* Static name of a metric ("stm_response_time_ms"); "" when out of range. */
const char *md_metric_name(enum md_metric metric);

/* Metric from its exact name; false for anything else. */
bool md_metric_parse(const char *name, enum md_metric *out);

/* The seed threshold of a metric and whether lower values are better. */
double md_metric_threshold(enum md_metric metric);
bool md_metric_lower_is_better(enum md_metric metric);

/* Static `op` label of a store operation ("get_many"); "" when out of range. */
const char *md_metrics_op_name(enum md_store store, int op);

/*
 * The `status` label of an HTTP status: the code itself for 200, 201, 204,
 * 400, 401, 404, 405, 409, 413, 415, 429, 500 and 503; any other code in
 * 100..599 is kept only by class ("1xx" … "5xx"); anything else is "other".
 */
const char *md_metrics_status_label(int status);

/*
 * Whether a store call that returned st counts as a store error: the store
 * failed (UNAVAIL, TIMEOUT, PROTO, IO, NOMEM, INTERNAL). NOTFOUND, CONFLICT,
 * INVAL and LIMIT are answers, not failures.
 */
bool md_metrics_store_failed(enum md_status st);

/* ---- lifecycle ----------------------------------------------------------- */

/*
 * Build a registry for routes[0..n_routes) (borrowed; must outlive it).
 * Routes whose pattern starts with "/v1/" feed api_response_time_ms and
 * error_rate_percent. NULL + err (MD_E_NOMEM, MD_E_INVAL) on failure.
 */
struct md_metrics *md_metrics_new(const struct md_route *routes, size_t n_routes,
                                  struct md_error *err);

/* Free the registry (accepts NULL). No other thread may still use it. */
void md_metrics_free(struct md_metrics *m);

/*
 * Replace the monotonic millisecond clock (default md_mono_ms) — for tests.
 * Call before any other use; not thread-safe against concurrent ticks.
 */
void md_metrics_set_clock(struct md_metrics *m, int64_t (*clock_ms)(void *ctx), void *ctx);

/* ---- request path (lock-free, allocation-free) --------------------------- */

/* Index of a route in the registry's table, or -1 (NULL, foreign pointer). */
int md_metrics_route_index(const struct md_metrics *m, const struct md_route *route);

/*
 * Count one finished HTTP request. route: index in the table, or -1 for
 * "unmatched" (404 and 405 answered by the router). method: one enum
 * md_http_method bit (anything else counts as "other").
 */
void md_metrics_http(struct md_metrics *m, int route, enum md_http_method method, int status,
                     int64_t duration_us);

/*
 * Count one store call: op is an enum md_stm_op or md_ltm_op of that store
 * (out-of-range values are ignored); ok is false when the call failed (see
 * md_metrics_store_failed).
 */
void md_metrics_store(struct md_metrics *m, enum md_store store, int op, bool ok,
                      int64_t duration_us);

/* ---- the janitor's tick -------------------------------------------------- */

/* Point-in-time values the janitor gathers for md_metrics_tick(). */
struct md_metrics_sample {
    bool has_cache;              /* false: no cache figures this tick */
    struct md_cache_stats cache; /* cumulative counters + current sizes */
    bool has_pool[MD_STORE_COUNT];
    struct md_pool_stats pool[MD_STORE_COUNT]; /* a pool with max == 0 is ignored */
};

/*
 * Roll the windows to the clock's current second: what the request path
 * gathered since the previous tick goes into that second's slot; seconds
 * skipped since the previous tick (a stalled janitor) are cleared. Cache
 * hits/misses are turned into deltas against the previous tick (a counter
 * that went backwards counts as restarted from zero). The pool utilisation
 * sample is max over present pools of 100 · in_use / max. s may be NULL.
 */
void md_metrics_tick(struct md_metrics *m, const struct md_metrics_sample *s);

/* ---- window queries ------------------------------------------------------ */

#define MD_WINDOW_SLOTS 900   /* seconds kept: 15 minutes */
#define MD_WINDOW_CURRENT 60  /* seconds of `current` */

/*
 * One metric's window figures. Values are NAN when their window has no
 * samples (the dashboard shows null). What a "sample" is depends on the
 * metric: one store call or /v1 request for the latencies, one /v1 request
 * for error_rate_percent, one cache lookup for cache_hit_rate_percent, one
 * tick with a pool for connection_pool_utilization_percent.
 *
 *  current  mean over the last 60 s (ratios: Σ numerators / Σ denominators)
 *  average  the same over 15 min
 *  p95      95th percentile over 15 min; latencies from the log-scale
 *           histogram (≤ 3.2 % error, exact for a single value), ratios from
 *           the exact per-second values
 *  p95_1m   the same over the last 60 s
 */
struct md_window {
    uint64_t samples_1m;
    uint64_t samples_15m;
    double current;
    double average;
    double p95;
    double p95_1m;
    uint64_t errors_1m;  /* latencies only: failed calls / 5xx answers */
    uint64_t errors_15m;
};

/* Fill out for metric as of the clock's current second. */
void md_metrics_window(struct md_metrics *m, enum md_metric metric, struct md_window *out);

/*
 * Adapter with the signature of md_alert_value_fn (alerts.h): ctx is the
 * registry; *value = current (last minute), *samples = samples_1m. Returns
 * false when the last minute has no samples.
 */
bool md_metrics_alert_value(void *ctx, enum md_metric metric, double *value, uint64_t *samples);

/* The figures of the last tick: pools (has_pool false when absent) and cache. */
void md_metrics_last_sample(struct md_metrics *m, struct md_metrics_sample *out);

/* Seconds since md_metrics_new (by the registry's clock). */
double md_metrics_uptime_seconds(struct md_metrics *m);

/* ---- Prometheus exposition ----------------------------------------------- */

/* One alert's state for memoryd_alert_firing{alert} (name borrowed). */
struct md_metrics_alert {
    const char *name;
    bool firing;
};

/*
 * What the registry cannot see itself; the caller fills it (every member is
 * optional). Cache and pool figures are taken from here when present, else
 * from the last tick.
 */
struct md_metrics_extra {
    bool has_cache;
    struct md_cache_stats cache;
    bool has_pool[MD_STORE_COUNT];
    struct md_pool_stats pool[MD_STORE_COUNT];
    const struct md_metrics_alert *alerts; /* n_alerts entries, borrowed */
    size_t n_alerts;
    bool has_webhook_stats;
    uint64_t webhook_sent, webhook_failed, webhook_dropped; /* alerts notifier counters */
    bool has_handlers; /* HTTP pool mode: the handler threads (memoryd/workpool.h) */
    int handler_threads, handler_busy, handler_queued;
    double uptime_seconds; /* < 0: the registry's own */
    const char *version;   /* NULL: MD_VERSION_STRING */
};

/* Initialise extra to "nothing extra" (uptime -1). */
void md_metrics_extra_init(struct md_metrics_extra *x);

/*
 * Append the Prometheus text format 0.0.4 to out: HELP and TYPE for every
 * family, series only once touched. x may be NULL. MD_E_LIMIT / MD_E_NOMEM
 * when out cannot hold it (out keeps what was appended).
 */
MD_MUSTCHECK enum md_status md_metrics_prometheus(struct md_metrics *m, struct md_buf *out,
                                                  const struct md_metrics_extra *x);

/* Content-Type of the exposition. */
#define MD_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- store instrumentation ----------------------------------------------- */

struct md_ltm;

/*
 * Wrap a store so that every call is timed and counted in m (ops forwarded,
 * pool_stats untimed). The wrapper owns inner: destroying the wrapper
 * destroys inner. Backend-specific functions (md_ltm_neo4j_pool_stats …)
 * need the inner pointer: keep it, or use md_metrics_unwrap_*(). NULL + err
 * on OOM (inner untouched, still the caller's).
 */
struct md_stm *md_metrics_wrap_stm(struct md_metrics *m, struct md_stm *inner,
                                   struct md_error *err);
struct md_ltm *md_metrics_wrap_ltm(struct md_metrics *m, struct md_ltm *inner,
                                   struct md_error *err);

/* The wrapped store of a wrapper, or s itself when s is not a wrapper. */
struct md_stm *md_metrics_unwrap_stm(struct md_stm *s);
struct md_ltm *md_metrics_unwrap_ltm(struct md_ltm *l);

#endif /* MD_METRICS_H */
