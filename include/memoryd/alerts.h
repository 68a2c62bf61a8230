/*
 * alerts.h — alert rules over the seed's six metrics, their state machine,
 * and webhook delivery (spec §5 "Default alert rules", §6 "Alert rules").
 *
 * A rule compares one metric's `current` value (the last minute, see
 * md_metrics_window) with a threshold. Per rule:
 *
 *   inactive --holds--> pending (since = first evaluation it held)
 *   pending  --held for >= duration_seconds--> firing  (duration 0: at once)
 *   pending  --stops holding--> inactive               (silently)
 *   firing   --stops holding--> inactive               ("resolved")
 *
 * A later breach starts a new pending period. The condition does NOT hold
 * when the metric has fewer samples in the last minute than its minimum
 * (md_alert_min_samples: 10 calls/requests for the latencies and the error
 * rate, 100 lookups for the cache hit rate, 10 pool ticks for the pool
 * utilisation) — a rule never fires on too little data. `eq` holds when
 * |value − threshold| <= 1e-9 · max(1, |threshold|).
 *
 * Transitions to firing and resolved are logged and POSTed as JSON to the
 * rule's webhook_url, else the default one (ALERT_WEBHOOK_URL), if any:
 *   {"alert","metric","state":"firing"|"resolved","value","threshold",
 *    "comparison","duration_seconds","since","timestamp"}
 * Deliveries run on a notifier thread behind a bounded queue (full: the
 * event is dropped, counted and logged); each takes at most the webhook
 * timeout, with one retry on a transport error, 429 or 5xx. The evaluator
 * never waits for the network.
 *
 * Severity of an active alert: "warning" while pending or firing for less
 * than 10 minutes, "critical" once it has been firing for 10 minutes.
 *
 * Rules live in memory: per instance, lost at restart, the six defaults
 * re-created at start-up. At most MD_ALERT_MAX_RULES rules.
 *
 * Thread safety: every function is thread-safe. One mutex guards the rules;
 * it is never held while calling value_fn, logging or doing I/O.
 */
#ifndef MD_ALERTS_H
#define MD_ALERTS_H

#include <jansson.h>

#include "memoryd/compat.h"
#include "memoryd/metrics.h"
#include "memoryd/status.h"

struct md_config;

#define MD_ALERT_NAME_MAX 100                    /* code points */
#define MD_ALERT_NAME_BYTES (MD_ALERT_NAME_MAX * 4) /* UTF-8 bytes, without NUL */
#define MD_ALERT_URL_MAX 2048
#define MD_ALERT_MAX_RULES 100
#define MD_ALERT_MAX_DURATION 604800 /* seconds (7 days) */
#define MD_ALERT_CRITICAL_AFTER_S 600

enum md_alert_cmp { MD_ALERT_GT = 0, MD_ALERT_LT, MD_ALERT_EQ };
enum md_alert_state { MD_ALERT_INACTIVE = 0, MD_ALERT_PENDING, MD_ALERT_FIRING };

/* A rule as given (all members owned by the struct). */
struct md_alert_rule {
    char name[MD_ALERT_NAME_BYTES + 1];
    enum md_metric metric;
    double threshold;
    enum md_alert_cmp cmp;
    int64_t duration_seconds;
    bool enabled;
    char webhook_url[MD_ALERT_URL_MAX + 1]; /* "" = use the default */
};

/* A rule and its state at one moment. */
struct md_alert_status {
    struct md_alert_rule rule;
    enum md_alert_state state;
    int64_t since_ms;  /* pending/firing: when the condition started holding */
    int64_t fired_ms;  /* firing: when it started firing */
    bool has_value;    /* value of the last evaluation (false: no samples) */
    double value;
    uint64_t samples;  /* samples behind that value (last minute) */
    const char *severity; /* "warning" | "critical" for active alerts, else NULL */
};

/*
 * Where the values come from (md_metrics_alert_value fits): *value = the
 * metric's current value, *samples = its samples in the last minute; return
 * false when there is no value.
 */
typedef bool (*md_alert_value_fn)(void *ctx, enum md_metric metric, double *value,
                                  uint64_t *samples);

struct md_alerts_options {
    md_alert_value_fn value_fn; /* required */
    void *value_ctx;
    const char *webhook_url;    /* default URL ("" / NULL: none); copied */
    double webhook_timeout_s;   /* per attempt; <= 0: 2 s */
    int interval_s;             /* evaluator period; <= 0: 60 */
    bool evaluate;              /* md_alerts_start() runs the evaluator thread */
    size_t queue_cap;           /* webhook queue bound; 0: 64 */
    int64_t retry_delay_ms;     /* pause before the one retry; < 0: 0, 0: 500 */
    bool no_defaults;           /* start with no rules (tests) */
};

/* Options from the configuration (value_fn left for the caller to set). */
void md_alerts_options_from_config(const struct md_config *cfg, struct md_alerts_options *opt);

/* Minimum samples in the last minute before a rule on metric can hold. */
uint64_t md_alert_min_samples(enum md_metric metric);

/* "gt" | "lt" | "eq"; "inactive" | "pending" | "firing". */
const char *md_alert_cmp_name(enum md_alert_cmp cmp);
const char *md_alert_state_name(enum md_alert_state state);

struct md_alerts;

/*
 * Build the rule set (the six default rules unless opt->no_defaults) and
 * start the notifier thread. NULL + err on failure. curl_global_init must
 * have run (main does it before any thread starts).
 */
struct md_alerts *md_alerts_new(const struct md_alerts_options *opt, struct md_error *err);

/* Start the evaluator thread when opt->evaluate (no-op otherwise). */
MD_MUSTCHECK enum md_status md_alerts_start(struct md_alerts *a, struct md_error *err);

/*
 * Stop both threads and free everything (accepts NULL). A delivery in
 * progress finishes (bounded by the timeout); queued ones are dropped.
 */
void md_alerts_free(struct md_alerts *a);

/*
 * Evaluate every enabled rule at wall-clock now_ms (epoch ms): read each
 * metric once through value_fn, move the states, log and queue webhooks for
 * the transitions. The evaluator thread calls it; tests call it directly.
 */
void md_alerts_evaluate(struct md_alerts *a, int64_t now_ms);

/*
 * Validate a POST /v1/alerts/rules body into out: name, metric_name,
 * threshold, comparison required; duration_seconds (integer, default 60,
 * 0..MD_ALERT_MAX_DURATION), enabled (default true), webhook_url (http(s),
 * or null) optional; unknown members rejected. MD_E_INVAL with err->field.
 */
MD_MUSTCHECK enum md_status md_alert_rule_parse(const json_t *body, struct md_alert_rule *out,
                                                struct md_error *err);

/* Validate a rule name (1..100 code points, UTF-8, no control characters). */
bool md_alert_name_valid(const char *name);

/*
 * Add a validated rule. MD_E_CONFLICT when the name exists or the set holds
 * MD_ALERT_MAX_RULES rules; MD_E_INVAL when the rule does not validate.
 * out (may be NULL) receives its status.
 */
MD_MUSTCHECK enum md_status md_alerts_add(struct md_alerts *a, const struct md_alert_rule *rule,
                                          struct md_alert_status *out, struct md_error *err);

/* Delete a rule by exact name: MD_E_INVAL (malformed name), MD_E_NOTFOUND. */
MD_MUSTCHECK enum md_status md_alerts_delete(struct md_alerts *a, const char *name,
                                             struct md_error *err);

/* A snapshot of every rule with its state, in creation order. */
struct md_alert_list {
    struct md_alert_status *items; /* owned, n entries */
    struct md_metrics_alert *flags; /* owned, n entries; names point into items */
    size_t n;
};

/* Take a snapshot (severity as of now_ms). MD_E_NOMEM on failure (out empty). */
MD_MUSTCHECK enum md_status md_alerts_list(struct md_alerts *a, int64_t now_ms,
                                           struct md_alert_list *out);
void md_alert_list_release(struct md_alert_list *l);

/* Webhook notifier counters (since start). */
struct md_alerts_notifier_stats {
    uint64_t queued, sent, failed, dropped, retried;
};
void md_alerts_notifier_stats(struct md_alerts *a, struct md_alerts_notifier_stats *out);

/*
 * Wait until the webhook queue is empty and no delivery is in progress, at
 * most timeout_ms. True when idle (tests, orderly shutdown).
 */
bool md_alerts_notifier_wait_idle(struct md_alerts *a, int64_t timeout_ms);

/* ---- JSON builders (new references; NULL on OOM) ---- */

/* GET /v1/alerts data: {active: [...], rules: [...]}. */
json_t *md_alerts_list_json(const struct md_alert_list *l);

/*
 * One rule: {name, metric_name, threshold, comparison, duration_seconds,
 * enabled, webhook_url, state, since}. webhook_url shows only the origin
 * (scheme://host[:port]) so that tokens in the path or query never leak;
 * null when the rule has none.
 */
json_t *md_alert_rule_json(const struct md_alert_status *s);

/*
 * The dashboard's alerts: the active (pending or firing) ones as
 * {name, metric, threshold, duration_seconds, state, since, severity}.
 */
json_t *md_alerts_dashboard_json(const struct md_alert_list *l);

/* Fill the alert part of a metrics extra (flags borrowed from l). */
void md_alerts_fill_extra(struct md_alerts *a, const struct md_alert_list *l,
                          struct md_metrics_extra *x);

#endif /* MD_ALERTS_H */
