/*
 * dashboard.h — the data of GET /v1/dashboard (spec §5, §6 "Dashboard values").
 *
 *   {timestamp, system_health, alerts: [...],
 *    key_metrics: {<six seed metrics>: {current, average, p95, threshold, status}},
 *    component_performance: {stm, ltm, api, redis, neo4j}}
 *
 * over the metrics registry's 15-minute window. `current` is the mean of the
 * last minute, `average` and `p95` cover 15 minutes (md_metrics_window).
 *
 * Status (md_dashboard_status): lower is better for the response times, the
 * error rate and the pool utilisation — good <= 0.7·threshold, warning <=
 * threshold, else critical; higher is better for the cache hit rate — good
 * >= threshold, warning >= 0.8·threshold, else critical (boundaries compared
 * with a 1e-9 relative tolerance, so 0.7·threshold itself is good). The
 * status judges `current`, or `average` when the last minute had no
 * samples; with no samples in 15 minutes current/average/p95 are null and
 * the status is "unknown".
 *
 * system_health: "critical" when an alert is firing with severity critical
 * or a key metric is critical; else "warning" when an alert is pending or
 * firing or a key metric is warning; else "healthy".
 *
 * component_performance: stm, ltm and api give {calls, errors, avg_ms,
 * p95_ms} over 15 minutes (stm/ltm add their backend; api errors are 5xx
 * answers). redis and neo4j give {configured: true, backs, pool, calls,
 * errors, avg_ms, p95_ms, utilization_percent} for the store they back, or
 * {configured: false} when that backend is not in use.
 *
 * Thread-safe; allocates the result only.
 */
#ifndef MD_DASHBOARD_H
#define MD_DASHBOARD_H

#include <jansson.h>

#include "memoryd/alerts.h"
#include "memoryd/compat.h"
#include "memoryd/metrics.h"

struct md_dashboard_info {
    const char *stm_backend; /* md_stm_ops.backend: "redis" | "embedded" */
    const char *ltm_backend; /* md_ltm_ops.backend: "neo4j" | "embedded" */
};

/* "good" | "warning" | "critical" | "unknown" (value NAN) for metric's threshold. */
const char *md_dashboard_status(enum md_metric metric, double value);

/*
 * Build the dashboard data at wall-clock now_ms. alerts (may be NULL: no
 * alerts) is a snapshot from md_alerts_list. New reference; NULL on OOM.
 */
json_t *md_dashboard_json(struct md_metrics *m, const struct md_alert_list *alerts,
                          const struct md_dashboard_info *info, int64_t now_ms);

#endif /* MD_DASHBOARD_H */
