/*
 * dashboard.c — GET /v1/dashboard data from the metrics windows and the
 * alert states (rules of judgement in dashboard.h).
 */
#include "memoryd/compat.h"

#include <math.h>
#include <string.h>

#include "memoryd/clock.h"
#include "memoryd/alerts.h"
#include "memoryd/dashboard.h"

#define REL_EPS 1e-9

enum level { LV_UNKNOWN = 0, LV_GOOD, LV_WARNING, LV_CRITICAL };

static const char *level_name(enum level l)
{
    switch (l) {
    case LV_GOOD:
        return "good";
    case LV_WARNING:
        return "warning";
    case LV_CRITICAL:
        return "critical";
    case LV_UNKNOWN:
        break;
    }
    return "unknown";
}

static enum level judge(enum md_metric metric, double v)
{
    if (isnan(v))
        return LV_UNKNOWN;
    double t = md_metric_threshold(metric);
    double eps = REL_EPS * fmax(1.0, fabs(t));
    if (md_metric_lower_is_better(metric)) {
        if (v <= 0.7 * t + eps)
            return LV_GOOD;
        if (v <= t + eps)
            return LV_WARNING;
        return LV_CRITICAL;
    }
    if (v >= t - eps)
        return LV_GOOD;
    if (v >= 0.8 * t - eps)
        return LV_WARNING;
    return LV_CRITICAL;
}

const char *md_dashboard_status(enum md_metric metric, double value)
{
    return level_name(judge(metric, value));
}

static json_t *num(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

/*
 * Judge current, else average; unknown with no samples in 15 minutes. The
 * hit rate of a cache that has seen fewer lookups than the alert rule needs
 * is no signal either (a quiet daemon would read "critical"): unknown too.
 */
static enum level judge_window(enum md_metric metric, const struct md_window *w)
{
    if (w->samples_15m == 0)
        return LV_UNKNOWN;
    if (metric == MD_METRIC_CACHE_HIT_RATE_PERCENT &&
        w->samples_15m < md_alert_min_samples(metric))
        return LV_UNKNOWN;
    return judge(metric, !isnan(w->current) ? w->current : w->average);
}

static json_t *key_metric(enum md_metric metric, const struct md_window *w, enum level lv)
{
    bool none = w->samples_15m == 0;
    double current = none ? (double)NAN : w->current;
    double average = none ? (double)NAN : w->average;
    double p95 = none ? (double)NAN : w->p95;
    return json_pack("{s:o, s:o, s:o, s:f, s:s}", "current", num(current), "average",
                     num(average), "p95", num(p95), "threshold", md_metric_threshold(metric),
                     "status", level_name(lv));
}

static json_t *latency_component(const struct md_window *w, const char *backend)
{
    json_t *o = json_pack("{s:I, s:I, s:o, s:o}", "calls", (json_int_t)w->samples_15m, "errors",
                          (json_int_t)w->errors_15m, "avg_ms", num(w->average), "p95_ms",
                          num(w->p95));
    if (o && backend && json_object_set_new(o, "backend", json_string(backend)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *pool_json(const struct md_metrics_sample *s, int store)
{
    if (!s->has_pool[store] || s->pool[store].max <= 0)
        return json_null();
    const struct md_pool_stats *p = &s->pool[store];
    return json_pack("{s:i, s:i, s:i, s:I, s:I}", "open", p->size, "in_use", p->in_use, "max",
                     p->max, "waits", (json_int_t)p->waits, "timeouts", (json_int_t)p->timeouts);
}

static json_t *backend_component(bool configured, const char *backs,
                                 const struct md_window *store_w,
                                 const struct md_metrics_sample *s, int store)
{
    if (!configured)
        return json_pack("{s:b}", "configured", 0);
    double util = (double)NAN;
    if (s->has_pool[store] && s->pool[store].max > 0)
        util = 100.0 * (double)s->pool[store].in_use / (double)s->pool[store].max;
    return json_pack("{s:b, s:s, s:o, s:o, s:I, s:I, s:o, s:o}", "configured", 1, "backs", backs,
                     "pool", pool_json(s, store), "utilization_percent", num(util), "calls",
                     (json_int_t)store_w->samples_15m, "errors", (json_int_t)store_w->errors_15m,
                     "avg_ms", num(store_w->average), "p95_ms", num(store_w->p95));
}

json_t *md_dashboard_json(struct md_metrics *m, const struct md_alert_list *alerts,
                          const struct md_dashboard_info *info, int64_t now_ms)
{
    struct md_window w[MD_METRIC_COUNT];
    enum level lv[MD_METRIC_COUNT];
    enum level health = LV_GOOD;
    for (int i = 0; i < MD_METRIC_COUNT; i++) {
        md_metrics_window(m, (enum md_metric)i, &w[i]);
        lv[i] = judge_window((enum md_metric)i, &w[i]);
        if (lv[i] == LV_CRITICAL || (lv[i] == LV_WARNING && health != LV_CRITICAL))
            health = lv[i];
    }
    for (size_t i = 0; alerts && i < alerts->n; i++) {
        const struct md_alert_status *s = &alerts->items[i];
        if (s->state == MD_ALERT_INACTIVE)
            continue;
        if (s->severity && strcmp(s->severity, "critical") == 0 && s->state == MD_ALERT_FIRING)
            health = LV_CRITICAL;
        else if (health != LV_CRITICAL)
            health = LV_WARNING;
    }
    const char *health_name = health == LV_CRITICAL  ? "critical"
                              : health == LV_WARNING ? "warning"
                                                     : "healthy";

    struct md_metrics_sample last;
    md_metrics_last_sample(m, &last);
    const char *stm_backend = info && info->stm_backend ? info->stm_backend : "embedded";
    const char *ltm_backend = info && info->ltm_backend ? info->ltm_backend : "embedded";

    json_t *key = json_object();
    if (!key)
        return NULL;
    for (int i = 0; i < MD_METRIC_COUNT; i++) {
        if (json_object_set_new(key, md_metric_name((enum md_metric)i),
                                key_metric((enum md_metric)i, &w[i], lv[i])) != 0) {
            json_decref(key);
            return NULL;
        }
    }
    const struct md_window *ws = &w[MD_METRIC_STM_RESPONSE_TIME_MS];
    const struct md_window *wl = &w[MD_METRIC_LTM_RESPONSE_TIME_MS];
    const struct md_window *wa = &w[MD_METRIC_API_RESPONSE_TIME_MS];
    json_t *components = json_pack(
        "{s:o, s:o, s:o, s:o, s:o}", "stm", latency_component(ws, stm_backend), "ltm",
        latency_component(wl, ltm_backend), "api", latency_component(wa, NULL), "redis",
        backend_component(strcmp(stm_backend, "redis") == 0, "stm", ws, &last, MD_STORE_STM),
        "neo4j",
        backend_component(strcmp(ltm_backend, "neo4j") == 0, "ltm", wl, &last, MD_STORE_LTM));
    char ts[MD_ISO8601_LEN];
    md_iso8601(now_ms, ts);
    return json_pack("{s:s, s:s, s:o, s:o, s:o}", "timestamp", ts, "system_health", health_name,
                     "alerts", md_alerts_dashboard_json(alerts), "key_metrics", key,
                     "component_performance", components);
}
