/*
 * alerts.c — alert rules, their state machine, the evaluator thread and the
 * webhook notifier.
 *
 * DESIGN
 * Rules sit in one fixed array (MD_ALERT_MAX_RULES) of md_alert_status in
 * creation order, guarded by `lock`. An evaluation first reads the six
 * metric values through value_fn with no lock held, then takes `lock`,
 * moves every rule's state and copies each transition into a heap event,
 * releases `lock`, and only then logs and queues the events. So the rule
 * lock never covers value_fn, logging or I/O.
 *
 * The notifier thread owns the network: it pops events from a bounded FIFO
 * (`q_lock`, `q_cond`) and POSTs them with one libcurl easy handle (reused
 * for keep-alive), at most two attempts, each bounded by the timeout. A full
 * queue drops the new event (counted, logged). The evaluator thread sleeps
 * on `ev_cond` for the interval so that md_alerts_free() wakes it at once.
 *
 * Lock order: `lock` and `q_lock` are never held together; `ev_lock` only
 * guards the evaluator's stop flag.
 */
#include "memoryd/compat.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>

#include "memoryd/alerts.h"
#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/log.h"
#include "memoryd/text.h"

#ifndef MD_VERSION_STRING
#define MD_VERSION_STRING "0.0.0"
#endif

#define WHERE "alerts"
#define BODY_MAX 4096

/* The seed's default rules (PERFORMANCE_THRESHOLDS, spec §5). */
static const struct {
    const char *name;
    enum md_metric metric;
    enum md_alert_cmp cmp;
    double threshold;
    int64_t duration_seconds;
} default_rules[] = {
    {"High STM Response Time", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 100.0, 60},
    {"High LTM Response Time", MD_METRIC_LTM_RESPONSE_TIME_MS, MD_ALERT_GT, 500.0, 60},
    {"High API Response Time", MD_METRIC_API_RESPONSE_TIME_MS, MD_ALERT_GT, 1000.0, 60},
    {"Low Cache Hit Rate", MD_METRIC_CACHE_HIT_RATE_PERCENT, MD_ALERT_LT, 70.0, 300},
    {"High Error Rate", MD_METRIC_ERROR_RATE_PERCENT, MD_ALERT_GT, 1.0, 120},
    {"High Connection Pool Utilization", MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT,
     MD_ALERT_GT, 80.0, 60},
};

/* A transition on its way to the log and the webhook. */
struct event {
    struct md_alert_rule rule;
    bool firing;     /* false: resolved */
    bool has_value;
    double value;
    int64_t since_ms;
    int64_t at_ms;
    char *body;      /* owned: the webhook JSON */
};

struct md_alerts {
    md_alert_value_fn value_fn;
    void *value_ctx;
    char default_url[MD_ALERT_URL_MAX + 1];
    long timeout_ms;
    int interval_s;
    bool evaluate;
    int64_t retry_delay_ms;

    pthread_mutex_t lock; /* guards rules and n_rules */
    struct md_alert_status *rules; /* MD_ALERT_MAX_RULES slots */
    size_t n_rules;

    /* notifier */
    pthread_mutex_t q_lock;
    pthread_cond_t q_cond; /* new event, stop, or idle */
    struct event **queue;  /* ring of q_cap */
    size_t q_cap, q_head, q_len;
    bool q_busy;           /* a delivery is in progress */
    bool q_stop;
    pthread_t notifier;
    bool notifier_started;
    atomic_uint_fast64_t n_queued, n_sent, n_failed, n_dropped, n_retried;

    /* evaluator */
    pthread_mutex_t ev_lock;
    pthread_cond_t ev_cond;
    bool ev_stop;
    pthread_t evaluator;
    bool evaluator_started;
};

/* ---- names and small helpers -------------------------------------------------- */

const char *md_alert_cmp_name(enum md_alert_cmp cmp)
{
    switch (cmp) {
    case MD_ALERT_GT:
        return "gt";
    case MD_ALERT_LT:
        return "lt";
    case MD_ALERT_EQ:
        return "eq";
    }
    return "gt";
}

const char *md_alert_state_name(enum md_alert_state state)
{
    switch (state) {
    case MD_ALERT_INACTIVE:
        return "inactive";
    case MD_ALERT_PENDING:
        return "pending";
    case MD_ALERT_FIRING:
        return "firing";
    }
    return "inactive";
}

uint64_t md_alert_min_samples(enum md_metric metric)
{
    switch (metric) {
    case MD_METRIC_CACHE_HIT_RATE_PERCENT:
        return 100; /* lookups in the last minute */
    case MD_METRIC_STM_RESPONSE_TIME_MS:
    case MD_METRIC_LTM_RESPONSE_TIME_MS:
    case MD_METRIC_API_RESPONSE_TIME_MS:
    case MD_METRIC_ERROR_RATE_PERCENT:
    case MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT:
    case MD_METRIC_COUNT:
        break;
    }
    return 10;
}

static bool compare(enum md_alert_cmp cmp, double v, double t)
{
    switch (cmp) {
    case MD_ALERT_GT:
        return v > t;
    case MD_ALERT_LT:
        return v < t;
    case MD_ALERT_EQ:
        return fabs(v - t) <= 1e-9 * fmax(1.0, fabs(t));
    }
    return false;
}

static const char *severity_of(const struct md_alert_status *s, int64_t now_ms)
{
    if (s->state == MD_ALERT_FIRING && now_ms - s->fired_ms >= MD_ALERT_CRITICAL_AFTER_S * 1000)
        return "critical";
    if (s->state != MD_ALERT_INACTIVE)
        return "warning";
    return NULL;
}

/* Shortest %.Ng that reads back as v (JSON number); "null" when not finite. */
static void fmt_number(char *buf, size_t cap, double v)
{
    if (!isfinite(v)) {
        snprintf(buf, cap, "null");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

bool md_alert_name_valid(const char *name)
{
    if (!name)
        return false;
    size_t len = strlen(name);
    if (len == 0 || len > MD_ALERT_NAME_BYTES || !md_utf8_valid(name, len))
        return false;
    size_t cps = md_utf8_count(name, len);
    return cps >= 1 && cps <= MD_ALERT_NAME_MAX && !md_str_has_ctl(name, len) &&
           !md_str_blank(name);
}

/* http(s)://host… with no spaces or control characters; sets *host_at, *host_end. */
static bool url_valid(const char *url, const char **host_at, const char **host_end)
{
    size_t len = strlen(url);
    if (len == 0 || len > MD_ALERT_URL_MAX || !md_utf8_valid(url, len) ||
        md_str_has_ctl(url, len) || strchr(url, ' '))
        return false;
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0)
        p = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        p = url + 8;
    else
        return false;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    const char *host = at ? at + 1 : p;
    if (host >= end || *host == ':')
        return false;
    if (host_at)
        *host_at = host;
    if (host_end)
        *host_end = end;
    return true;
}

/* scheme://host[:port] of a valid URL, without user info, path or query. */
static void url_origin(const char *url, char *out, size_t cap)
{
    const char *host, *end;
    if (!url_valid(url, &host, &end)) {
        snprintf(out, cap, "%s", "");
        return;
    }
    size_t scheme_len = (size_t)(strstr(url, "://") - url) + 3;
    snprintf(out, cap, "%.*s%.*s", (int)scheme_len, url, (int)(end - host), host);
}

static enum md_status validate_rule(const struct md_alert_rule *r, struct md_error *err)
{
    if (!md_alert_name_valid(r->name))
        return md_error_set_field(err, MD_E_INVAL, "name",
                                  "name must be 1-100 characters without control characters");
    if ((int)r->metric < 0 || r->metric >= MD_METRIC_COUNT)
        return md_error_set_field(err, MD_E_INVAL, "metric_name", "unknown metric_name");
    if (!isfinite(r->threshold))
        return md_error_set_field(err, MD_E_INVAL, "threshold", "threshold must be a number");
    if (r->cmp != MD_ALERT_GT && r->cmp != MD_ALERT_LT && r->cmp != MD_ALERT_EQ)
        return md_error_set_field(err, MD_E_INVAL, "comparison",
                                  "comparison must be one of gt, lt, eq");
    if (r->duration_seconds < 0 || r->duration_seconds > MD_ALERT_MAX_DURATION)
        return md_error_set_field(err, MD_E_INVAL, "duration_seconds",
                                  "duration_seconds must be an integer in 0..%d",
                                  MD_ALERT_MAX_DURATION);
    if (r->webhook_url[0] && !url_valid(r->webhook_url, NULL, NULL))
        return md_error_set_field(err, MD_E_INVAL, "webhook_url",
                                  "webhook_url must be an http(s) URL of at most %d characters",
                                  MD_ALERT_URL_MAX);
    return MD_OK;
}

/* ---- options ------------------------------------------------------------------ */

void md_alerts_options_from_config(const struct md_config *cfg, struct md_alerts_options *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->webhook_url = cfg->alert_webhook_url;
    opt->webhook_timeout_s = cfg->alert_webhook_timeout;
    opt->interval_s = (int)cfg->metrics_collection_interval;
    opt->evaluate = cfg->performance_alerts_enabled;
}

/* ---- notifier ------------------------------------------------------------------ */

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    MD_UNUSED(ptr);
    MD_UNUSED(ud);
    return size * nmemb;
}

/* One POST; true on 2xx. *retry tells whether a second attempt makes sense. */
static bool post_once(struct md_alerts *a, CURL *h, const struct event *ev, const char *url,
                      bool *retry, char *why, size_t why_cap)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (!hdrs) {
        snprintf(why, why_cap, "out of memory");
        *retry = false;
        return false;
    }
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, ev->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(ev->body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, a->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, a->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "memoryd/" MD_VERSION_STRING);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        snprintf(why, why_cap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        *retry = true;
        return false;
    }
    if (code >= 200 && code <= 299)
        return true;
    snprintf(why, why_cap, "HTTP %ld", code);
    *retry = code == 429 || code >= 500;
    return false;
}

/* Sleep up to ms unless md_alerts_free() asks the notifier to stop. */
static void notifier_pause(struct md_alerts *a, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&a->q_lock);
    while (!a->q_stop) {
        if (pthread_cond_timedwait(&a->q_cond, &a->q_lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&a->q_lock);
}

static void deliver(struct md_alerts *a, CURL *h, const struct event *ev)
{
    const char *url = ev->rule.webhook_url[0] ? ev->rule.webhook_url : a->default_url;
    char origin[256], why[CURL_ERROR_SIZE + 32] = "";
    url_origin(url, origin, sizeof(origin));
    bool retry = false;
    if (h && post_once(a, h, ev, url, &retry, why, sizeof(why))) {
        atomic_fetch_add(&a->n_sent, 1);
        return;
    }
    if (!h)
        snprintf(why, sizeof(why), "cannot create a curl handle");
    if (h && retry) {
        atomic_fetch_add(&a->n_retried, 1);
        if (a->retry_delay_ms > 0)
            notifier_pause(a, a->retry_delay_ms);
        if (post_once(a, h, ev, url, &retry, why, sizeof(why))) {
            atomic_fetch_add(&a->n_sent, 1);
            return;
        }
    }
    atomic_fetch_add(&a->n_failed, 1);
    /* Only the origin is logged: paths and queries of webhook URLs carry tokens. */
    md_log_warn(WHERE, "webhook for alert '%s' (%s) to %s failed: %s", ev->rule.name,
                ev->firing ? "firing" : "resolved", origin, why);
}

static void *notifier_main(void *arg)
{
    struct md_alerts *a = arg;
    pthread_setname_np(pthread_self(), "md-alert-hook");
    CURL *h = curl_easy_init();
    pthread_mutex_lock(&a->q_lock);
    for (;;) {
        while (!a->q_stop && a->q_len == 0)
            pthread_cond_wait(&a->q_cond, &a->q_lock);
        if (a->q_stop)
            break;
        struct event *ev = a->queue[a->q_head];
        a->q_head = (a->q_head + 1) % a->q_cap;
        a->q_len--;
        a->q_busy = true;
        pthread_mutex_unlock(&a->q_lock);
        deliver(a, h, ev);
        free(ev->body);
        free(ev);
        pthread_mutex_lock(&a->q_lock);
        a->q_busy = false;
        pthread_cond_broadcast(&a->q_cond);
    }
    pthread_mutex_unlock(&a->q_lock);
    if (h)
        curl_easy_cleanup(h);
    return NULL;
}

/* Queue ev (ownership passes); drop it when the queue is full or stopping. */
static void enqueue(struct md_alerts *a, struct event *ev)
{
    bool queued = false;
    pthread_mutex_lock(&a->q_lock);
    if (!a->q_stop && a->q_len < a->q_cap) {
        a->queue[(a->q_head + a->q_len) % a->q_cap] = ev;
        a->q_len++;
        queued = true;
        pthread_cond_broadcast(&a->q_cond);
    }
    pthread_mutex_unlock(&a->q_lock);
    if (queued) {
        atomic_fetch_add(&a->n_queued, 1);
        return;
    }
    atomic_fetch_add(&a->n_dropped, 1);
    md_log_warn(WHERE, "webhook queue full: dropped the %s notification of alert '%s'",
                ev->firing ? "firing" : "resolved", ev->rule.name);
    free(ev->body);
    free(ev);
}

bool md_alerts_notifier_wait_idle(struct md_alerts *a, int64_t timeout_ms)
{
    int64_t deadline = md_mono_ms() + timeout_ms;
    pthread_mutex_lock(&a->q_lock);
    while (a->q_len > 0 || a->q_busy) {
        int64_t left = deadline - md_mono_ms();
        if (left <= 0)
            break;
        pthread_mutex_unlock(&a->q_lock);
        md_sleep_ms(MD_MIN(left, 5));
        pthread_mutex_lock(&a->q_lock);
    }
    bool idle = a->q_len == 0 && !a->q_busy;
    pthread_mutex_unlock(&a->q_lock);
    return idle;
}

void md_alerts_notifier_stats(struct md_alerts *a, struct md_alerts_notifier_stats *out)
{
    out->queued = atomic_load(&a->n_queued);
    out->sent = atomic_load(&a->n_sent);
    out->failed = atomic_load(&a->n_failed);
    out->dropped = atomic_load(&a->n_dropped);
    out->retried = atomic_load(&a->n_retried);
}

/* ---- evaluation ------------------------------------------------------------------ */

static char *build_body(const struct event *ev)
{
    struct md_buf b;
    md_buf_init(&b, BODY_MAX);
    char value[40], threshold[40], since[MD_ISO8601_LEN], at[MD_ISO8601_LEN];
    if (ev->has_value)
        fmt_number(value, sizeof(value), ev->value);
    else
        snprintf(value, sizeof(value), "null");
    fmt_number(threshold, sizeof(threshold), ev->rule.threshold);
    md_iso8601(ev->since_ms, since);
    md_iso8601(ev->at_ms, at);
    enum md_status st = md_buf_puts(&b, "{\"alert\":");
    if (st == MD_OK)
        st = md_buf_json_str(&b, ev->rule.name, strlen(ev->rule.name));
    if (st == MD_OK)
        st = md_buf_printf(&b,
                           ",\"metric\":\"%s\",\"state\":\"%s\",\"value\":%s,\"threshold\":%s,"
                           "\"comparison\":\"%s\",\"duration_seconds\":%lld,\"since\":\"%s\","
                           "\"timestamp\":\"%s\"}",
                           md_metric_name(ev->rule.metric), ev->firing ? "firing" : "resolved",
                           value, threshold, md_alert_cmp_name(ev->rule.cmp),
                           (long long)ev->rule.duration_seconds, since, at);
    if (st != MD_OK) {
        md_buf_release(&b);
        return NULL;
    }
    return md_buf_take(&b, NULL);
}

static struct event *new_event(const struct md_alert_status *s, bool firing, int64_t now_ms)
{
    struct event *ev = malloc(sizeof(*ev));
    if (!ev)
        return NULL;
    ev->rule = s->rule;
    ev->firing = firing;
    ev->has_value = s->has_value;
    ev->value = s->value;
    ev->since_ms = s->since_ms;
    ev->at_ms = now_ms;
    ev->body = NULL;
    return ev;
}

static void log_event(const struct event *ev)
{
    char value[40], threshold[40];
    if (ev->has_value)
        fmt_number(value, sizeof(value), ev->value);
    else
        snprintf(value, sizeof(value), "n/a");
    fmt_number(threshold, sizeof(threshold), ev->rule.threshold);
    if (ev->firing)
        md_log_warn(WHERE, "alert '%s' firing: %s = %s (%s %s for %llds)", ev->rule.name,
                    md_metric_name(ev->rule.metric), value, md_alert_cmp_name(ev->rule.cmp),
                    threshold, (long long)ev->rule.duration_seconds);
    else
        md_log_info(WHERE, "alert '%s' resolved: %s = %s (%s %s)", ev->rule.name,
                    md_metric_name(ev->rule.metric), value, md_alert_cmp_name(ev->rule.cmp),
                    threshold);
}

void md_alerts_evaluate(struct md_alerts *a, int64_t now_ms)
{
    bool has[MD_METRIC_COUNT];
    double value[MD_METRIC_COUNT];
    uint64_t samples[MD_METRIC_COUNT];
    for (int i = 0; i < MD_METRIC_COUNT; i++) {
        value[i] = (double)NAN;
        samples[i] = 0;
        has[i] = a->value_fn(a->value_ctx, (enum md_metric)i, &value[i], &samples[i]) &&
                 isfinite(value[i]);
        if (!has[i])
            samples[i] = 0;
    }

    struct event *events[MD_ALERT_MAX_RULES];
    size_t n_events = 0;
    size_t lost = 0;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->n_rules; i++) {
        struct md_alert_status *s = &a->rules[i];
        if (!s->rule.enabled)
            continue;
        enum md_metric mt = s->rule.metric;
        s->has_value = has[mt];
        s->value = has[mt] ? value[mt] : (double)NAN;
        s->samples = samples[mt];
        bool holds = has[mt] && samples[mt] >= md_alert_min_samples(mt) &&
                     compare(s->rule.cmp, value[mt], s->rule.threshold);
        bool fire = false, resolve = false;
        if (holds) {
            if (s->state == MD_ALERT_INACTIVE) {
                s->state = MD_ALERT_PENDING;
                s->since_ms = now_ms;
            }
            if (s->state == MD_ALERT_PENDING &&
                now_ms - s->since_ms >= s->rule.duration_seconds * 1000) {
                s->state = MD_ALERT_FIRING;
                s->fired_ms = now_ms;
                fire = true;
            }
        } else {
            resolve = s->state == MD_ALERT_FIRING;
            s->state = MD_ALERT_INACTIVE;
        }
        if (!fire && !resolve)
            continue;
        struct event *ev = new_event(s, fire, now_ms);
        if (ev)
            events[n_events++] = ev;
        else
            lost++;
        if (resolve) {
            s->since_ms = 0;
            s->fired_ms = 0;
        }
    }
    pthread_mutex_unlock(&a->lock);

    if (lost)
        md_log_error(WHERE, "out of memory: %zu alert transition(s) not reported", lost);
    for (size_t i = 0; i < n_events; i++) {
        struct event *ev = events[i];
        log_event(ev);
        if (!ev->rule.webhook_url[0] && !a->default_url[0]) {
            free(ev);
            continue;
        }
        ev->body = build_body(ev);
        if (!ev->body) {
            md_log_error(WHERE, "out of memory: webhook of alert '%s' not sent", ev->rule.name);
            free(ev);
            continue;
        }
        enqueue(a, ev);
    }
}

static void *evaluator_main(void *arg)
{
    struct md_alerts *a = arg;
    pthread_setname_np(pthread_self(), "md-alert-eval");
    pthread_mutex_lock(&a->ev_lock);
    while (!a->ev_stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += a->interval_s;
        while (!a->ev_stop) {
            if (pthread_cond_timedwait(&a->ev_cond, &a->ev_lock, &until) == ETIMEDOUT)
                break;
        }
        if (a->ev_stop)
            break;
        pthread_mutex_unlock(&a->ev_lock);
        md_alerts_evaluate(a, md_now_ms());
        pthread_mutex_lock(&a->ev_lock);
    }
    pthread_mutex_unlock(&a->ev_lock);
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------------------- */

static bool init_cond_mono(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return false;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool ok = pthread_cond_init(c, &ca) == 0;
    pthread_condattr_destroy(&ca);
    return ok;
}

struct md_alerts *md_alerts_new(const struct md_alerts_options *opt, struct md_error *err)
{
    if (!opt || !opt->value_fn) {
        md_error_set(err, MD_E_INVAL, "alerts: no metric source");
        return NULL;
    }
    if (opt->webhook_url && opt->webhook_url[0] && !url_valid(opt->webhook_url, NULL, NULL)) {
        md_error_set(err, MD_E_INVAL, "ALERT_WEBHOOK_URL must be an http(s) URL");
        return NULL;
    }
    struct md_alerts *a = calloc(1, sizeof(*a));
    if (!a) {
        md_error_set(err, MD_E_NOMEM, "out of memory building the alert rules");
        return NULL;
    }
    a->value_fn = opt->value_fn;
    a->value_ctx = opt->value_ctx;
    snprintf(a->default_url, sizeof(a->default_url), "%s", opt->webhook_url ? opt->webhook_url
                                                                            : "");
    double t = opt->webhook_timeout_s > 0 ? opt->webhook_timeout_s : 2.0;
    a->timeout_ms = (long)ceil(t * 1000.0);
    a->interval_s = opt->interval_s > 0 ? opt->interval_s : 60;
    a->evaluate = opt->evaluate;
    if (opt->retry_delay_ms < 0)
        a->retry_delay_ms = 0;
    else
        a->retry_delay_ms = opt->retry_delay_ms == 0 ? 500 : opt->retry_delay_ms;
    a->q_cap = opt->queue_cap ? opt->queue_cap : 64;
    a->rules = calloc(MD_ALERT_MAX_RULES, sizeof(*a->rules));
    a->queue = calloc(a->q_cap, sizeof(*a->queue));
    if (!a->rules || !a->queue) {
        md_error_set(err, MD_E_NOMEM, "out of memory building the alert rules");
        goto fail_mem;
    }
    if (pthread_mutex_init(&a->lock, NULL) != 0)
        goto fail_mem;
    if (pthread_mutex_init(&a->q_lock, NULL) != 0)
        goto fail_lock;
    if (!init_cond_mono(&a->q_cond))
        goto fail_qlock;
    if (pthread_mutex_init(&a->ev_lock, NULL) != 0)
        goto fail_qcond;
    if (!init_cond_mono(&a->ev_cond))
        goto fail_evlock;

    if (!opt->no_defaults) {
        for (size_t i = 0; i < MD_ARRAY_LEN(default_rules); i++) {
            struct md_alert_status *s = &a->rules[a->n_rules++];
            snprintf(s->rule.name, sizeof(s->rule.name), "%s", default_rules[i].name);
            s->rule.metric = default_rules[i].metric;
            s->rule.cmp = default_rules[i].cmp;
            s->rule.threshold = default_rules[i].threshold;
            s->rule.duration_seconds = default_rules[i].duration_seconds;
            s->rule.enabled = true;
        }
    }
    int rc = pthread_create(&a->notifier, NULL, notifier_main, a);
    if (rc != 0) {
        md_error_set(err, MD_E_INTERNAL, "cannot start the alert notifier thread: error %d", rc);
        goto fail_all;
    }
    a->notifier_started = true;
    return a;

fail_all:
    pthread_cond_destroy(&a->ev_cond);
fail_evlock:
    pthread_mutex_destroy(&a->ev_lock);
fail_qcond:
    pthread_cond_destroy(&a->q_cond);
fail_qlock:
    pthread_mutex_destroy(&a->q_lock);
fail_lock:
    pthread_mutex_destroy(&a->lock);
fail_mem:
    if (err && err->code == MD_OK)
        md_error_set(err, MD_E_INTERNAL, "cannot initialise the alert rules");
    free(a->rules);
    free(a->queue);
    free(a);
    return NULL;
}

enum md_status md_alerts_start(struct md_alerts *a, struct md_error *err)
{
    if (!a->evaluate || a->evaluator_started)
        return MD_OK;
    int rc = pthread_create(&a->evaluator, NULL, evaluator_main, a);
    if (rc != 0)
        return md_error_set(err, MD_E_INTERNAL, "cannot start the alert evaluator: error %d",
                            rc);
    a->evaluator_started = true;
    return MD_OK;
}

void md_alerts_free(struct md_alerts *a)
{
    if (!a)
        return;
    if (a->evaluator_started) {
        pthread_mutex_lock(&a->ev_lock);
        a->ev_stop = true;
        pthread_cond_broadcast(&a->ev_cond);
        pthread_mutex_unlock(&a->ev_lock);
        pthread_join(a->evaluator, NULL);
    }
    if (a->notifier_started) {
        pthread_mutex_lock(&a->q_lock);
        a->q_stop = true;
        pthread_cond_broadcast(&a->q_cond);
        pthread_mutex_unlock(&a->q_lock);
        pthread_join(a->notifier, NULL);
    }
    if (a->q_len > 0)
        md_log_warn(WHERE, "shutting down: %zu alert webhook(s) not delivered", a->q_len);
    while (a->q_len > 0) {
        struct event *ev = a->queue[a->q_head];
        a->q_head = (a->q_head + 1) % a->q_cap;
        a->q_len--;
        free(ev->body);
        free(ev);
    }
    pthread_cond_destroy(&a->ev_cond);
    pthread_mutex_destroy(&a->ev_lock);
    pthread_cond_destroy(&a->q_cond);
    pthread_mutex_destroy(&a->q_lock);
    pthread_mutex_destroy(&a->lock);
    free(a->rules);
    free(a->queue);
    free(a);
}

/* ---- rules --------------------------------------------------------------------------- */

static ssize_t find_rule(const struct md_alerts *a, const char *name)
{
    for (size_t i = 0; i < a->n_rules; i++)
        if (strcmp(a->rules[i].rule.name, name) == 0)
            return (ssize_t)i;
    return -1;
}

enum md_status md_alerts_add(struct md_alerts *a, const struct md_alert_rule *rule,
                             struct md_alert_status *out, struct md_error *err)
{
    enum md_status st = validate_rule(rule, err);
    if (st != MD_OK)
        return st;
    pthread_mutex_lock(&a->lock);
    if (find_rule(a, rule->name) >= 0) {
        pthread_mutex_unlock(&a->lock);
        return md_error_set_field(err, MD_E_CONFLICT, "name", "an alert rule with this name "
                                                              "already exists");
    }
    if (a->n_rules >= MD_ALERT_MAX_RULES) {
        pthread_mutex_unlock(&a->lock);
        return md_error_set(err, MD_E_CONFLICT, "too many alert rules (at most %d)",
                            MD_ALERT_MAX_RULES);
    }
    struct md_alert_status *s = &a->rules[a->n_rules++];
    memset(s, 0, sizeof(*s));
    s->rule = *rule;
    s->value = (double)NAN;
    if (out)
        *out = *s;
    pthread_mutex_unlock(&a->lock);
    return MD_OK;
}

enum md_status md_alerts_delete(struct md_alerts *a, const char *name, struct md_error *err)
{
    if (!md_alert_name_valid(name))
        return md_error_set_field(err, MD_E_INVAL, "name",
                                  "name must be 1-100 characters without control characters");
    pthread_mutex_lock(&a->lock);
    ssize_t i = find_rule(a, name);
    if (i < 0) {
        pthread_mutex_unlock(&a->lock);
        return md_error_set(err, MD_E_NOTFOUND, "no alert rule with this name");
    }
    memmove(&a->rules[i], &a->rules[i + 1], (a->n_rules - (size_t)i - 1) * sizeof(*a->rules));
    a->n_rules--;
    pthread_mutex_unlock(&a->lock);
    return MD_OK;
}

enum md_status md_alerts_list(struct md_alerts *a, int64_t now_ms, struct md_alert_list *out)
{
    memset(out, 0, sizeof(*out));
    struct md_alert_status *items = malloc(MD_ALERT_MAX_RULES * sizeof(*items));
    struct md_metrics_alert *flags = malloc(MD_ALERT_MAX_RULES * sizeof(*flags));
    if (!items || !flags) {
        free(items);
        free(flags);
        return MD_E_NOMEM;
    }
    pthread_mutex_lock(&a->lock);
    size_t n = a->n_rules;
    memcpy(items, a->rules, n * sizeof(*items));
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; i < n; i++) {
        items[i].severity = severity_of(&items[i], now_ms);
        flags[i].name = items[i].rule.name;
        flags[i].firing = items[i].state == MD_ALERT_FIRING;
    }
    out->items = items;
    out->flags = flags;
    out->n = n;
    return MD_OK;
}

void md_alert_list_release(struct md_alert_list *l)
{
    if (!l)
        return;
    free(l->items);
    free(l->flags);
    memset(l, 0, sizeof(*l));
}

void md_alerts_fill_extra(struct md_alerts *a, const struct md_alert_list *l,
                          struct md_metrics_extra *x)
{
    if (l) {
        x->alerts = l->flags;
        x->n_alerts = l->n;
    }
    if (a) {
        struct md_alerts_notifier_stats ns;
        md_alerts_notifier_stats(a, &ns);
        x->has_webhook_stats = true;
        x->webhook_sent = ns.sent;
        x->webhook_failed = ns.failed;
        x->webhook_dropped = ns.dropped;
    }
}

/* ---- JSON input ------------------------------------------------------------------------- */

enum md_status md_alert_rule_parse(const json_t *body, struct md_alert_rule *out,
                                   struct md_error *err)
{
    static const char *const known[] = {"name",      "metric_name", "threshold", "comparison",
                                        "duration_seconds", "enabled", "webhook_url"};
    memset(out, 0, sizeof(*out));
    out->duration_seconds = 60;
    out->enabled = true;
    if (!json_is_object(body))
        return md_error_set(err, MD_E_INVAL, "body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)(uintptr_t)body, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < MD_ARRAY_LEN(known) && !ok; i++)
            ok = strcmp(key, known[i]) == 0;
        if (!ok)
            return md_error_set_field(err, MD_E_INVAL, key, "unknown field");
    }
    static const char *const required[] = {"name", "metric_name", "threshold", "comparison"};
    for (size_t i = 0; i < MD_ARRAY_LEN(required); i++)
        if (!json_object_get(body, required[i]) || json_is_null(json_object_get(body, required[i])))
            return md_error_set_field(err, MD_E_INVAL, required[i], "%s is required",
                                      required[i]);

    v = json_object_get(body, "name");
    if (!json_is_string(v))
        return md_error_set_field(err, MD_E_INVAL, "name", "name must be a string");
    if (!md_alert_name_valid(json_string_value(v)) ||
        strlen(json_string_value(v)) != json_string_length(v))
        return md_error_set_field(err, MD_E_INVAL, "name",
                                  "name must be 1-100 characters without control characters");
    snprintf(out->name, sizeof(out->name), "%s", json_string_value(v));

    v = json_object_get(body, "metric_name");
    if (!json_is_string(v) || !md_metric_parse(json_string_value(v), &out->metric))
        return md_error_set_field(err, MD_E_INVAL, "metric_name",
                                  "metric_name must be one of stm_response_time_ms, "
                                  "ltm_response_time_ms, api_response_time_ms, "
                                  "cache_hit_rate_percent, error_rate_percent, "
                                  "connection_pool_utilization_percent");

    v = json_object_get(body, "threshold");
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return md_error_set_field(err, MD_E_INVAL, "threshold", "threshold must be a number");
    out->threshold = json_number_value(v);

    v = json_object_get(body, "comparison");
    const char *c = json_is_string(v) ? json_string_value(v) : "";
    if (strcmp(c, "gt") == 0)
        out->cmp = MD_ALERT_GT;
    else if (strcmp(c, "lt") == 0)
        out->cmp = MD_ALERT_LT;
    else if (strcmp(c, "eq") == 0)
        out->cmp = MD_ALERT_EQ;
    else
        return md_error_set_field(err, MD_E_INVAL, "comparison",
                                  "comparison must be one of gt, lt, eq");

    v = json_object_get(body, "duration_seconds");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > MD_ALERT_MAX_DURATION)
            return md_error_set_field(err, MD_E_INVAL, "duration_seconds",
                                      "duration_seconds must be an integer in 0..%d",
                                      MD_ALERT_MAX_DURATION);
        out->duration_seconds = (int64_t)json_integer_value(v);
    }
    v = json_object_get(body, "enabled");
    if (v) {
        if (!json_is_boolean(v))
            return md_error_set_field(err, MD_E_INVAL, "enabled", "enabled must be a boolean");
        out->enabled = json_is_true(v);
    }
    v = json_object_get(body, "webhook_url");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            !url_valid(json_string_value(v), NULL, NULL))
            return md_error_set_field(err, MD_E_INVAL, "webhook_url",
                                      "webhook_url must be an http(s) URL of at most %d "
                                      "characters",
                                      MD_ALERT_URL_MAX);
        snprintf(out->webhook_url, sizeof(out->webhook_url), "%s", json_string_value(v));
    }
    return MD_OK;
}

/* ---- JSON output ------------------------------------------------------------------------ */

static json_t *iso_or_null(int64_t ms, bool present)
{
    if (!present)
        return json_null();
    char buf[MD_ISO8601_LEN];
    md_iso8601(ms, buf);
    return json_string(buf);
}

static json_t *num_or_null(bool present, double v)
{
    return present && isfinite(v) ? json_real(v) : json_null();
}

json_t *md_alert_rule_json(const struct md_alert_status *s)
{
    json_t *url = json_null();
    if (s->rule.webhook_url[0]) {
        char origin[MD_ALERT_URL_MAX + 1];
        url_origin(s->rule.webhook_url, origin, sizeof(origin));
        url = json_string(origin);
    }
    bool active = s->state != MD_ALERT_INACTIVE;
    return json_pack("{s:s, s:s, s:f, s:s, s:I, s:b, s:o, s:s, s:o}", "name", s->rule.name,
                     "metric_name", md_metric_name(s->rule.metric), "threshold",
                     s->rule.threshold, "comparison", md_alert_cmp_name(s->rule.cmp),
                     "duration_seconds", (json_int_t)s->rule.duration_seconds, "enabled",
                     (int)s->rule.enabled, "webhook_url", url, "state",
                     md_alert_state_name(s->state), "since", iso_or_null(s->since_ms, active));
}

json_t *md_alerts_list_json(const struct md_alert_list *l)
{
    json_t *active = json_array();
    json_t *rules = json_array();
    json_t *out = json_object();
    if (!active || !rules || !out)
        goto fail;
    for (size_t i = 0; i < l->n; i++) {
        const struct md_alert_status *s = &l->items[i];
        if (json_array_append_new(rules, md_alert_rule_json(s)) != 0)
            goto fail;
        if (s->state == MD_ALERT_INACTIVE)
            continue;
        json_t *a = json_pack("{s:s, s:s, s:f, s:s, s:I, s:s, s:o, s:o, s:s}", "name",
                              s->rule.name, "metric", md_metric_name(s->rule.metric),
                              "threshold", s->rule.threshold, "comparison",
                              md_alert_cmp_name(s->rule.cmp), "duration_seconds",
                              (json_int_t)s->rule.duration_seconds, "state",
                              md_alert_state_name(s->state), "since",
                              iso_or_null(s->since_ms, true), "value",
                              num_or_null(s->has_value, s->value), "severity",
                              s->severity ? s->severity : "warning");
        if (json_array_append_new(active, a) != 0)
            goto fail;
    }
    if (json_object_set_new(out, "active", active) != 0) {
        active = NULL;
        goto fail;
    }
    active = NULL;
    if (json_object_set_new(out, "rules", rules) != 0) {
        rules = NULL;
        goto fail;
    }
    return out;
fail:
    json_decref(active);
    json_decref(rules);
    json_decref(out);
    return NULL;
}

json_t *md_alerts_dashboard_json(const struct md_alert_list *l)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (size_t i = 0; l && i < l->n; i++) {
        const struct md_alert_status *s = &l->items[i];
        if (s->state == MD_ALERT_INACTIVE)
            continue;
        json_t *a = json_pack("{s:s, s:s, s:f, s:I, s:s, s:o, s:s}", "name", s->rule.name,
                              "metric", md_metric_name(s->rule.metric), "threshold",
                              s->rule.threshold, "duration_seconds",
                              (json_int_t)s->rule.duration_seconds, "state",
                              md_alert_state_name(s->state), "since",
                              iso_or_null(s->since_ms, true), "severity",
                              s->severity ? s->severity : "warning");
        if (json_array_append_new(arr, a) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
