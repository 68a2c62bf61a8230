/*
 * test_alerts.c — alert rules: defaults, the state machine on an injected
 * clock and injected values, minimum samples, eq/lt/gt, disabled rules,
 * add/delete/conflict/limits, body validation, JSON builders, severity,
 * webhook delivery to a real loopback HTTP listener (exact body, retry,
 * failure, bounded queue), the evaluator thread, and concurrent use.
 */
#include "memoryd/compat.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "memoryd/alerts.h"
#include "memoryd/clock.h"
#include "memoryd/log.h"

/* ---- injected metric values ------------------------------------------------ */

struct fake_values {
    bool has[MD_METRIC_COUNT];
    double v[MD_METRIC_COUNT];
    uint64_t n[MD_METRIC_COUNT];
};

static bool fake_value(void *ctx, enum md_metric mt, double *v, uint64_t *n)
{
    const struct fake_values *f = ctx;
    *v = f->v[mt];
    *n = f->n[mt];
    return f->has[mt];
}

static void set_value(struct fake_values *f, enum md_metric mt, double v, uint64_t n)
{
    f->has[mt] = true;
    f->v[mt] = v;
    f->n[mt] = n;
}

static int64_t t0_ms(void)
{
    int64_t t;
    assert_true(md_iso8601_parse("2026-11-26T15:28:56.123Z", &t));
    return t;
}

static struct md_alerts *make_alerts(struct fake_values *f, bool defaults, const char *url)
{
    struct md_alerts_options o;
    memset(&o, 0, sizeof(o));
    o.value_fn = fake_value;
    o.value_ctx = f;
    o.no_defaults = !defaults;
    o.webhook_url = url;
    o.webhook_timeout_s = 5;
    o.retry_delay_ms = -1; /* retry at once */
    struct md_error err;
    md_error_clear(&err);
    struct md_alerts *a = md_alerts_new(&o, &err);
    assert_non_null(a);
    return a;
}

static struct md_alert_rule rule(const char *name, enum md_metric mt, enum md_alert_cmp cmp,
                                 double threshold, int64_t duration, const char *url)
{
    struct md_alert_rule r;
    memset(&r, 0, sizeof(r));
    snprintf(r.name, sizeof(r.name), "%s", name);
    r.metric = mt;
    r.cmp = cmp;
    r.threshold = threshold;
    r.duration_seconds = duration;
    r.enabled = true;
    snprintf(r.webhook_url, sizeof(r.webhook_url), "%s", url ? url : "");
    return r;
}

static void add(struct md_alerts *a, struct md_alert_rule r)
{
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(md_alerts_add(a, &r, NULL, &err), MD_OK);
}

/* State of rule `name` at now_ms (fails the test when absent). */
static struct md_alert_status state_of(struct md_alerts *a, const char *name, int64_t now_ms)
{
    struct md_alert_list l;
    assert_int_equal(md_alerts_list(a, now_ms, &l), MD_OK);
    struct md_alert_status out;
    bool found = false;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.items[i].rule.name, name) == 0) {
            out = l.items[i];
            found = true;
        }
    }
    md_alert_list_release(&l);
    assert_true(found);
    return out; /* severity points to a static string: safe to keep */
}

/* ---- a loopback HTTP listener ------------------------------------------------ */

#define MAX_REQS 16

struct listener {
    int fd;
    int port;
    pthread_t th;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;                       /* requests received */
    char head[MAX_REQS][2048];   /* request line + headers */
    char body[MAX_REQS][4096];
    int status[MAX_REQS];        /* answer to request i (0: 200) */
    bool hold;                   /* keep the answer back until released */
    bool stop;
};

static void *listener_main(void *p)
{
    struct listener *L = p;
    for (;;) {
        pthread_mutex_lock(&L->lock);
        bool stop = L->stop;
        pthread_mutex_unlock(&L->lock);
        if (stop)
            break;
        struct pollfd pfd = {L->fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int c = accept(L->fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[8192];
        size_t len = 0;
        char *hdr_end = NULL;
        while (len < sizeof(buf) - 1) {
            ssize_t r = recv(c, buf + len, sizeof(buf) - 1 - len, 0);
            if (r <= 0)
                break;
            len += (size_t)r;
            buf[len] = 0;
            hdr_end = strstr(buf, "\r\n\r\n");
            if (hdr_end) {
                const char *cl = strcasestr(buf, "Content-Length:");
                size_t want = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
                if (len >= (size_t)(hdr_end + 4 - buf) + want)
                    break;
            }
        }
        pthread_mutex_lock(&L->lock);
        int i = L->n < MAX_REQS ? L->n : MAX_REQS - 1;
        if (hdr_end) {
            snprintf(L->head[i], sizeof(L->head[i]), "%.*s", (int)(hdr_end - buf), buf);
            snprintf(L->body[i], sizeof(L->body[i]), "%s", hdr_end + 4);
        }
        L->n++;
        pthread_cond_broadcast(&L->cond);
        while (L->hold && !L->stop)
            pthread_cond_wait(&L->cond, &L->lock);
        int status = L->status[i] ? L->status[i] : 200;
        pthread_mutex_unlock(&L->lock);
        char resp[128];
        int rl = snprintf(resp, sizeof(resp),
                          "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                          status);
        (void)!send(c, resp, (size_t)rl, MSG_NOSIGNAL);
        close(c);
    }
    return NULL;
}

static void listener_start(struct listener *L)
{
    memset(L, 0, sizeof(*L));
    pthread_mutex_init(&L->lock, NULL);
    pthread_cond_init(&L->cond, NULL);
    L->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(L->fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    assert_int_equal(bind(L->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(L->fd, 16), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(L->fd, (struct sockaddr *)&sa, &sl), 0);
    L->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&L->th, NULL, listener_main, L), 0);
}

static void listener_stop(struct listener *L)
{
    pthread_mutex_lock(&L->lock);
    L->stop = true;
    pthread_cond_broadcast(&L->cond);
    pthread_mutex_unlock(&L->lock);
    pthread_join(L->th, NULL);
    close(L->fd);
    pthread_cond_destroy(&L->cond);
    pthread_mutex_destroy(&L->lock);
}

/* Wait until the listener has seen n requests (at most 10 s). */
static void listener_wait(struct listener *L, int n)
{
    pthread_mutex_lock(&L->lock);
    int64_t deadline = md_mono_ms() + 10000;
    while (L->n < n && md_mono_ms() < deadline) {
        pthread_mutex_unlock(&L->lock);
        md_sleep_ms(5);
        pthread_mutex_lock(&L->lock);
    }
    int got = L->n;
    pthread_mutex_unlock(&L->lock);
    assert_true(got >= n);
}

static void url_of(const struct listener *L, const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s", L->port, path);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    struct md_alerts *a = make_alerts(&f, true, NULL);
    struct md_alert_list l;
    assert_int_equal(md_alerts_list(a, t0_ms(), &l), MD_OK);
    assert_int_equal(l.n, 6);
    static const struct {
        const char *name, *metric, *cmp;
        double threshold;
        int64_t duration;
    } want[] = {
        {"High STM Response Time", "stm_response_time_ms", "gt", 100, 60},
        {"High LTM Response Time", "ltm_response_time_ms", "gt", 500, 60},
        {"High API Response Time", "api_response_time_ms", "gt", 1000, 60},
        {"Low Cache Hit Rate", "cache_hit_rate_percent", "lt", 70, 300},
        {"High Error Rate", "error_rate_percent", "gt", 1, 120},
        {"High Connection Pool Utilization", "connection_pool_utilization_percent", "gt", 80,
         60},
    };
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(l.items[i].rule.name, want[i].name);
        assert_string_equal(md_metric_name(l.items[i].rule.metric), want[i].metric);
        assert_string_equal(md_alert_cmp_name(l.items[i].rule.cmp), want[i].cmp);
        assert_true(l.items[i].rule.threshold == want[i].threshold);
        assert_int_equal(l.items[i].rule.duration_seconds, want[i].duration);
        assert_true(l.items[i].rule.enabled);
        assert_int_equal(l.items[i].state, MD_ALERT_INACTIVE);
        assert_null(l.items[i].severity);
        assert_string_equal(l.flags[i].name, want[i].name);
        assert_false(l.flags[i].firing);
    }
    md_alert_list_release(&l);
    md_alert_list_release(&l); /* idempotent */

    /* The cache rule needs 100 lookups; the others 10 samples. */
    assert_int_equal(md_alert_min_samples(MD_METRIC_CACHE_HIT_RATE_PERCENT), 100);
    assert_int_equal(md_alert_min_samples(MD_METRIC_STM_RESPONSE_TIME_MS), 10);
    assert_int_equal(md_alert_min_samples(MD_METRIC_ERROR_RATE_PERCENT), 10);
    assert_int_equal(md_alert_min_samples(MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT), 10);
    md_alerts_free(a);

    struct md_alerts_options o;
    memset(&o, 0, sizeof(o));
    struct md_error err;
    assert_null(md_alerts_new(&o, &err)); /* no value_fn */
    o.value_fn = fake_value;
    o.value_ctx = &f;
    o.webhook_url = "ftp://example.com/x";
    assert_null(md_alerts_new(&o, &err));
    assert_int_equal(err.code, MD_E_INVAL);
}

static void test_state_machine(void **state)
{
    (void)state;
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    struct md_alerts *a = make_alerts(&f, true, NULL);
    const char *R = "High STM Response Time";
    int64_t t = t0_ms();

    /* Nothing breached: inactive. */
    md_alerts_evaluate(a, t);
    assert_int_equal(state_of(a, R, t).state, MD_ALERT_INACTIVE);

    /* Breach: pending from t, firing once it has held for 60 s. */
    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 150.0, 20);
    md_alerts_evaluate(a, t);
    struct md_alert_status s = state_of(a, R, t);
    assert_int_equal(s.state, MD_ALERT_PENDING);
    assert_true(s.since_ms == t);
    assert_true(s.has_value && s.value == 150.0);
    assert_int_equal(s.samples, 20);
    assert_string_equal(s.severity, "warning");
    md_alerts_evaluate(a, t + 59999);
    assert_int_equal(state_of(a, R, t).state, MD_ALERT_PENDING);
    md_alerts_evaluate(a, t + 60000);
    s = state_of(a, R, t + 60000);
    assert_int_equal(s.state, MD_ALERT_FIRING);
    assert_true(s.since_ms == t);
    assert_true(s.fired_ms == t + 60000);
    assert_string_equal(s.severity, "warning");
    /* Severity: critical after 10 minutes of firing. */
    assert_string_equal(state_of(a, R, t + 60000 + 599999).severity, "warning");
    assert_string_equal(state_of(a, R, t + 60000 + 600000).severity, "critical");
    struct md_alert_list l;
    assert_int_equal(md_alerts_list(a, t + 60000, &l), MD_OK);
    assert_true(l.flags[0].firing);
    md_alert_list_release(&l);

    /* Still holding: stays firing. Condition clears: resolved at once -> inactive. */
    md_alerts_evaluate(a, t + 120000);
    assert_int_equal(state_of(a, R, t).state, MD_ALERT_FIRING);
    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 100.0, 20); /* gt 100: 100 does not hold */
    md_alerts_evaluate(a, t + 121000);
    s = state_of(a, R, t + 121000);
    assert_int_equal(s.state, MD_ALERT_INACTIVE);
    assert_null(s.severity);

    /* A later breach starts a new pending period. */
    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 101.0, 20);
    md_alerts_evaluate(a, t + 200000);
    s = state_of(a, R, t + 200000);
    assert_int_equal(s.state, MD_ALERT_PENDING);
    assert_true(s.since_ms == t + 200000);
    /* Pending -> inactive when it clears before the duration. */
    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 20.0, 20);
    md_alerts_evaluate(a, t + 230000);
    assert_int_equal(state_of(a, R, t).state, MD_ALERT_INACTIVE);
    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 500.0, 20);
    md_alerts_evaluate(a, t + 240000);
    md_alerts_evaluate(a, t + 299999);
    assert_int_equal(state_of(a, R, t).state, MD_ALERT_PENDING);
    md_alerts_evaluate(a, t + 300000);
    assert_int_equal(state_of(a, R, t).state, MD_ALERT_FIRING);

    /* Firing, then too few samples: the condition no longer holds -> resolved. */
    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 500.0, 9);
    md_alerts_evaluate(a, t + 301000);
    assert_int_equal(state_of(a, R, t).state, MD_ALERT_INACTIVE);
    /* And no value at all. */
    f.has[MD_METRIC_STM_RESPONSE_TIME_MS] = false;
    md_alerts_evaluate(a, t + 302000);
    s = state_of(a, R, t);
    assert_int_equal(s.state, MD_ALERT_INACTIVE);
    assert_false(s.has_value);

    struct md_alerts_notifier_stats ns;
    md_alerts_notifier_stats(a, &ns);
    assert_int_equal(ns.queued, 0); /* no webhook configured */
    md_alerts_free(a);
}

static void test_min_samples(void **state)
{
    (void)state;
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    struct md_alerts *a = make_alerts(&f, true, NULL);
    int64_t t = t0_ms();
    /* Way over the thresholds but with too few samples: never pending. */
    set_value(&f, MD_METRIC_LTM_RESPONSE_TIME_MS, 99999.0, 9);
    set_value(&f, MD_METRIC_ERROR_RATE_PERCENT, 100.0, 9);
    set_value(&f, MD_METRIC_CACHE_HIT_RATE_PERCENT, 0.0, 99);
    set_value(&f, MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT, 100.0, 9);
    for (int i = 0; i < 10; i++)
        md_alerts_evaluate(a, t + i * 60000);
    struct md_alert_list l;
    assert_int_equal(md_alerts_list(a, t, &l), MD_OK);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(l.items[i].state, MD_ALERT_INACTIVE);
    md_alert_list_release(&l);
    /* At the minimum: pending. */
    set_value(&f, MD_METRIC_CACHE_HIT_RATE_PERCENT, 0.0, 100);
    set_value(&f, MD_METRIC_ERROR_RATE_PERCENT, 100.0, 10);
    md_alerts_evaluate(a, t);
    assert_int_equal(state_of(a, "Low Cache Hit Rate", t).state, MD_ALERT_PENDING);
    assert_int_equal(state_of(a, "High Error Rate", t).state, MD_ALERT_PENDING);
    assert_int_equal(state_of(a, "High LTM Response Time", t).state, MD_ALERT_INACTIVE);
    /* Cache rule fires after its 300 s, the error rate after 120 s. */
    md_alerts_evaluate(a, t + 120000);
    assert_int_equal(state_of(a, "High Error Rate", t).state, MD_ALERT_FIRING);
    assert_int_equal(state_of(a, "Low Cache Hit Rate", t).state, MD_ALERT_PENDING);
    md_alerts_evaluate(a, t + 300000);
    assert_int_equal(state_of(a, "Low Cache Hit Rate", t).state, MD_ALERT_FIRING);
    md_alerts_free(a);
}

static void test_duration_zero_eq_lt_disabled(void **state)
{
    (void)state;
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    struct md_alerts *a = make_alerts(&f, false, NULL);
    int64_t t = t0_ms();
    add(a, rule("eq_50", MD_METRIC_API_RESPONSE_TIME_MS, MD_ALERT_EQ, 50.0, 0, NULL));
    add(a, rule("lt_10", MD_METRIC_API_RESPONSE_TIME_MS, MD_ALERT_LT, 10.0, 0, NULL));
    struct md_alert_rule off = rule("off", MD_METRIC_API_RESPONSE_TIME_MS, MD_ALERT_GT, 0.0, 0,
                                    NULL);
    off.enabled = false;
    add(a, off);

    set_value(&f, MD_METRIC_API_RESPONSE_TIME_MS, 50.0, 10);
    md_alerts_evaluate(a, t);
    struct md_alert_status s = state_of(a, "eq_50", t);
    assert_int_equal(s.state, MD_ALERT_FIRING); /* duration 0: the first evaluation */
    assert_true(s.since_ms == t && s.fired_ms == t);
    assert_int_equal(state_of(a, "lt_10", t).state, MD_ALERT_INACTIVE);
    assert_int_equal(state_of(a, "off", t).state, MD_ALERT_INACTIVE);
    set_value(&f, MD_METRIC_API_RESPONSE_TIME_MS, 50.0 + 1e-12, 10); /* eq within 1e-9 */
    md_alerts_evaluate(a, t + 1000);
    assert_int_equal(state_of(a, "eq_50", t).state, MD_ALERT_FIRING);
    set_value(&f, MD_METRIC_API_RESPONSE_TIME_MS, 50.1, 10);
    md_alerts_evaluate(a, t + 2000);
    assert_int_equal(state_of(a, "eq_50", t).state, MD_ALERT_INACTIVE);
    set_value(&f, MD_METRIC_API_RESPONSE_TIME_MS, 9.0, 10);
    md_alerts_evaluate(a, t + 3000);
    assert_int_equal(state_of(a, "lt_10", t).state, MD_ALERT_FIRING);
    assert_int_equal(state_of(a, "off", t).state, MD_ALERT_INACTIVE);
    md_alerts_free(a);
}

static void test_add_delete_conflict(void **state)
{
    (void)state;
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    struct md_alerts *a = make_alerts(&f, true, NULL);
    struct md_error err;
    md_error_clear(&err);
    struct md_alert_rule r = rule("my_rule_with_underscores", MD_METRIC_STM_RESPONSE_TIME_MS,
                                  MD_ALERT_GT, 5.0, 0, NULL);
    struct md_alert_status st;
    assert_int_equal(md_alerts_add(a, &r, &st, &err), MD_OK);
    assert_string_equal(st.rule.name, "my_rule_with_underscores");
    assert_int_equal(st.state, MD_ALERT_INACTIVE);
    assert_int_equal(md_alerts_add(a, &r, NULL, &err), MD_E_CONFLICT);
    assert_string_equal(err.field, "name");
    /* Default rule names conflict too. */
    struct md_alert_rule d = rule("High Error Rate", MD_METRIC_ERROR_RATE_PERCENT, MD_ALERT_GT,
                                  5.0, 0, NULL);
    assert_int_equal(md_alerts_add(a, &d, NULL, &err), MD_E_CONFLICT);

    /* Underscore names are found, listed and firing like any other. */
    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 6.0, 10);
    md_alerts_evaluate(a, t0_ms());
    assert_int_equal(state_of(a, "my_rule_with_underscores", t0_ms()).state, MD_ALERT_FIRING);
    struct md_alert_list l;
    assert_int_equal(md_alerts_list(a, t0_ms(), &l), MD_OK);
    json_t *j = md_alerts_list_json(&l);
    assert_non_null(j);
    json_t *active = json_object_get(j, "active");
    assert_int_equal(json_array_size(active), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(active, 0), "name")),
                        "my_rule_with_underscores");
    json_decref(j);
    md_alert_list_release(&l);

    assert_int_equal(md_alerts_delete(a, "my_rule_with_underscores", &err), MD_OK);
    assert_int_equal(md_alerts_delete(a, "my_rule_with_underscores", &err), MD_E_NOTFOUND);
    assert_int_equal(md_alerts_delete(a, "", &err), MD_E_INVAL);
    assert_int_equal(md_alerts_delete(a, "bad\x01name", &err), MD_E_INVAL);
    assert_int_equal(md_alerts_delete(a, "High Error Rate", &err), MD_OK); /* defaults too */
    assert_int_equal(md_alerts_list(a, t0_ms(), &l), MD_OK);
    assert_int_equal(l.n, 5);
    assert_string_equal(l.items[4].rule.name, "High Connection Pool Utilization");
    md_alert_list_release(&l);
    /* Re-adding after delete works; the rule starts inactive. */
    assert_int_equal(md_alerts_add(a, &r, NULL, &err), MD_OK);
    assert_int_equal(state_of(a, "my_rule_with_underscores", t0_ms()).state, MD_ALERT_INACTIVE);

    /* Bounded: at most MD_ALERT_MAX_RULES rules. */
    char name[32];
    for (int i = 6; i < MD_ALERT_MAX_RULES; i++) {
        snprintf(name, sizeof(name), "rule_%d", i);
        add(a, rule(name, MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 1.0, 1, NULL));
    }
    struct md_alert_rule extra = rule("one_too_many", MD_METRIC_STM_RESPONSE_TIME_MS,
                                      MD_ALERT_GT, 1.0, 1, NULL);
    assert_int_equal(md_alerts_add(a, &extra, NULL, &err), MD_E_CONFLICT);

    /* Invalid rules are refused by add as well. */
    assert_int_equal(md_alerts_delete(a, "rule_6", &err), MD_OK);
    struct md_alert_rule bad = rule("", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 1.0, 1,
                                    NULL);
    assert_int_equal(md_alerts_add(a, &bad, NULL, &err), MD_E_INVAL);
    bad = rule("x", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, NAN, 1, NULL);
    assert_int_equal(md_alerts_add(a, &bad, NULL, &err), MD_E_INVAL);
    assert_string_equal(err.field, "threshold");
    bad = rule("x", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 1, -1, NULL);
    assert_int_equal(md_alerts_add(a, &bad, NULL, &err), MD_E_INVAL);
    bad = rule("x", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 1, 1, "file:///etc/passwd");
    assert_int_equal(md_alerts_add(a, &bad, NULL, &err), MD_E_INVAL);
    assert_string_equal(err.field, "webhook_url");
    md_alerts_free(a);
}

static enum md_status parse(const char *json, struct md_alert_rule *r, struct md_error *err)
{
    json_error_t je;
    json_t *body = json_loads(json, JSON_ALLOW_NUL, &je);
    assert_non_null(body);
    md_error_clear(err);
    enum md_status st = md_alert_rule_parse(body, r, err);
    json_decref(body);
    return st;
}

static void expect_bad(const char *json, const char *field)
{
    struct md_alert_rule r;
    struct md_error err;
    if (parse(json, &r, &err) != MD_E_INVAL) {
        print_error("accepted: %s\n", json);
        fail();
    }
    assert_string_equal(err.field, field);
    assert_true(err.msg[0] != 0);
}

static void test_parse_rule(void **state)
{
    (void)state;
    struct md_alert_rule r;
    struct md_error err;
    assert_int_equal(parse("{\"name\":\"Slow_STM\",\"metric_name\":\"stm_response_time_ms\","
                           "\"threshold\":250,\"comparison\":\"gt\"}",
                           &r, &err),
                     MD_OK);
    assert_string_equal(r.name, "Slow_STM");
    assert_int_equal(r.metric, MD_METRIC_STM_RESPONSE_TIME_MS);
    assert_true(r.threshold == 250.0);
    assert_int_equal(r.cmp, MD_ALERT_GT);
    assert_int_equal(r.duration_seconds, 60); /* default */
    assert_true(r.enabled);                   /* default */
    assert_string_equal(r.webhook_url, "");
    assert_int_equal(parse("{\"name\":\"x\",\"metric_name\":\"cache_hit_rate_percent\","
                           "\"threshold\":0.5,\"comparison\":\"lt\",\"duration_seconds\":0,"
                           "\"enabled\":false,\"webhook_url\":\"https://h.example/x?t=1\"}",
                           &r, &err),
                     MD_OK);
    assert_int_equal(r.duration_seconds, 0);
    assert_false(r.enabled);
    assert_true(r.threshold == 0.5);
    assert_string_equal(r.webhook_url, "https://h.example/x?t=1");
    assert_int_equal(parse("{\"name\":\"x\",\"metric_name\":\"error_rate_percent\","
                           "\"threshold\":1,\"comparison\":\"eq\",\"webhook_url\":null}",
                           &r, &err),
                     MD_OK);
    assert_int_equal(r.cmp, MD_ALERT_EQ);
    /* 100 code points of 4-byte UTF-8: fine; 101: too long. */
    char name[512] = "";
    for (int i = 0; i < 100; i++)
        strcat(name, "\xF0\x9F\x98\x80");
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"name\":\"%s\",\"metric_name\":\"error_rate_percent\",\"threshold\":1,"
             "\"comparison\":\"gt\"}",
             name);
    assert_int_equal(parse(json, &r, &err), MD_OK);
    strcat(name, "a");
    snprintf(json, sizeof(json),
             "{\"name\":\"%s\",\"metric_name\":\"error_rate_percent\",\"threshold\":1,"
             "\"comparison\":\"gt\"}",
             name);
    expect_bad(json, "name");

    const char *base = "\"metric_name\":\"stm_response_time_ms\",\"threshold\":1,"
                       "\"comparison\":\"gt\"";
    char b[512];
    snprintf(b, sizeof(b), "{%s}", base);
    expect_bad(b, "name");
    snprintf(b, sizeof(b), "{\"name\":\"\",%s}", base);
    expect_bad(b, "name");
    snprintf(b, sizeof(b), "{\"name\":\"   \",%s}", base);
    expect_bad(b, "name");
    snprintf(b, sizeof(b), "{\"name\":\"a\\nb\",%s}", base);
    expect_bad(b, "name");
    snprintf(b, sizeof(b), "{\"name\":\"a\\u0000b\",%s}", base);
    expect_bad(b, "name");
    snprintf(b, sizeof(b), "{\"name\":7,%s}", base);
    expect_bad(b, "name");
    snprintf(b, sizeof(b), "{\"name\":\"x\",%s,\"severity\":\"high\"}", base);
    expect_bad(b, "severity");
    snprintf(b, sizeof(b), "{\"name\":\"x\",%s,\"duration_seconds\":1.5}", base);
    expect_bad(b, "duration_seconds");
    snprintf(b, sizeof(b), "{\"name\":\"x\",%s,\"duration_seconds\":-1}", base);
    expect_bad(b, "duration_seconds");
    snprintf(b, sizeof(b), "{\"name\":\"x\",%s,\"duration_seconds\":\"60\"}", base);
    expect_bad(b, "duration_seconds");
    snprintf(b, sizeof(b), "{\"name\":\"x\",%s,\"duration_seconds\":604801}", base);
    expect_bad(b, "duration_seconds");
    snprintf(b, sizeof(b), "{\"name\":\"x\",%s,\"enabled\":\"yes\"}", base);
    expect_bad(b, "enabled");
    snprintf(b, sizeof(b), "{\"name\":\"x\",%s,\"webhook_url\":\"ftp://h/x\"}", base);
    expect_bad(b, "webhook_url");
    snprintf(b, sizeof(b), "{\"name\":\"x\",%s,\"webhook_url\":\"http://\"}", base);
    expect_bad(b, "webhook_url");
    snprintf(b, sizeof(b), "{\"name\":\"x\",%s,\"webhook_url\":\"http://a b/\"}", base);
    expect_bad(b, "webhook_url");
    snprintf(b, sizeof(b), "{\"name\":\"x\",%s,\"webhook_url\":5}", base);
    expect_bad(b, "webhook_url");
    expect_bad("{\"name\":\"x\",\"metric_name\":\"cpu_percent\",\"threshold\":1,"
               "\"comparison\":\"gt\"}",
               "metric_name");
    expect_bad("{\"name\":\"x\",\"threshold\":1,\"comparison\":\"gt\"}", "metric_name");
    expect_bad("{\"name\":\"x\",\"metric_name\":\"error_rate_percent\",\"threshold\":\"1\","
               "\"comparison\":\"gt\"}",
               "threshold");
    expect_bad("{\"name\":\"x\",\"metric_name\":\"error_rate_percent\",\"comparison\":\"gt\"}",
               "threshold");
    expect_bad("{\"name\":\"x\",\"metric_name\":\"error_rate_percent\",\"threshold\":1,"
               "\"comparison\":\"ge\"}",
               "comparison");
    expect_bad("{\"name\":\"x\",\"metric_name\":\"error_rate_percent\",\"threshold\":1}",
               "comparison");
    json_t *arr = json_array();
    assert_int_equal(md_alert_rule_parse(arr, &r, &err), MD_E_INVAL);
    json_decref(arr);
}

static void test_json_builders(void **state)
{
    (void)state;
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    struct md_alerts *a = make_alerts(&f, true, NULL);
    add(a, rule("hooked", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 100.0, 0,
                "https://user:secret@hooks.example.com:8443/services/T0KEN?sig=abc"));
    int64_t t = t0_ms();
    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 150.5, 12);
    md_alerts_evaluate(a, t);
    struct md_alert_list l;
    assert_int_equal(md_alerts_list(a, t + 1000, &l), MD_OK);
    json_t *j = md_alerts_list_json(&l);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 2);
    json_t *rules = json_object_get(j, "rules");
    assert_int_equal(json_array_size(rules), 7);
    json_t *r0 = json_array_get(rules, 0);
    assert_int_equal(json_object_size(r0), 9);
    assert_string_equal(json_string_value(json_object_get(r0, "name")), "High STM Response Time");
    assert_string_equal(json_string_value(json_object_get(r0, "metric_name")),
                        "stm_response_time_ms");
    assert_true(json_number_value(json_object_get(r0, "threshold")) == 100.0);
    assert_string_equal(json_string_value(json_object_get(r0, "comparison")), "gt");
    assert_int_equal(json_integer_value(json_object_get(r0, "duration_seconds")), 60);
    assert_true(json_is_true(json_object_get(r0, "enabled")));
    assert_true(json_is_null(json_object_get(r0, "webhook_url")));
    assert_string_equal(json_string_value(json_object_get(r0, "state")), "pending");
    assert_string_equal(json_string_value(json_object_get(r0, "since")),
                        "2026-11-26T15:28:56.123Z");
    json_t *r6 = json_array_get(rules, 6);
    /* Only the origin of a webhook URL is shown. */
    assert_string_equal(json_string_value(json_object_get(r6, "webhook_url")),
                        "https://hooks.example.com:8443");
    char *dump = json_dumps(j, JSON_COMPACT);
    assert_non_null(dump);
    assert_null(strstr(dump, "secret"));
    assert_null(strstr(dump, "T0KEN"));
    free(dump);

    json_t *active = json_object_get(j, "active");
    assert_int_equal(json_array_size(active), 2);
    json_t *a0 = json_array_get(active, 0);
    assert_int_equal(json_object_size(a0), 9);
    assert_string_equal(json_string_value(json_object_get(a0, "name")), "High STM Response Time");
    assert_string_equal(json_string_value(json_object_get(a0, "metric")), "stm_response_time_ms");
    assert_string_equal(json_string_value(json_object_get(a0, "comparison")), "gt");
    assert_string_equal(json_string_value(json_object_get(a0, "state")), "pending");
    assert_string_equal(json_string_value(json_object_get(a0, "severity")), "warning");
    assert_true(json_number_value(json_object_get(a0, "value")) == 150.5);
    assert_int_equal(json_integer_value(json_object_get(a0, "duration_seconds")), 60);
    json_t *a1 = json_array_get(active, 1);
    assert_string_equal(json_string_value(json_object_get(a1, "state")), "firing");
    json_decref(j);

    json_t *d = md_alerts_dashboard_json(&l);
    assert_non_null(d);
    assert_int_equal(json_array_size(d), 2);
    json_t *d0 = json_array_get(d, 0);
    assert_int_equal(json_object_size(d0), 7);
    static const char *const keys[] = {"name",  "metric", "threshold", "duration_seconds",
                                       "state", "since",  "severity"};
    for (size_t i = 0; i < MD_ARRAY_LEN(keys); i++)
        assert_non_null(json_object_get(d0, keys[i]));
    json_decref(d);
    json_t *empty = md_alerts_dashboard_json(NULL);
    assert_int_equal(json_array_size(empty), 0);
    json_decref(empty);

    struct md_metrics_extra x;
    md_metrics_extra_init(&x);
    md_alerts_fill_extra(a, &l, &x);
    assert_int_equal(x.n_alerts, 7);
    assert_true(x.has_webhook_stats);
    assert_true(x.alerts[6].firing);
    assert_string_equal(x.alerts[6].name, "hooked");
    md_alert_list_release(&l);

    /* One rule, as POST answers it. */
    struct md_alert_status st = state_of(a, "Low Cache Hit Rate", t);
    json_t *one = md_alert_rule_json(&st);
    assert_string_equal(json_string_value(json_object_get(one, "state")), "inactive");
    assert_true(json_is_null(json_object_get(one, "since")));
    assert_int_equal(json_integer_value(json_object_get(one, "duration_seconds")), 300);
    json_decref(one);
    md_alerts_free(a);
}

static void test_webhook_exact_body(void **state)
{
    (void)state;
    struct listener L;
    listener_start(&L);
    char url[128], def[128];
    url_of(&L, "/hook?token=abc", url, sizeof(url));
    url_of(&L, "/default-hook", def, sizeof(def));
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    struct md_alerts *a = make_alerts(&f, false, def);
    add(a, rule("Hook_Test_1", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 100.0, 0, url));
    add(a, rule("Via \"default\" URL", MD_METRIC_CACHE_HIT_RATE_PERCENT, MD_ALERT_LT, 70.0, 300,
                NULL));
    int64_t t = t0_ms();

    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 150.0, 20);
    md_alerts_evaluate(a, t);
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    listener_wait(&L, 1);
    assert_string_equal(L.body[0],
                        "{\"alert\":\"Hook_Test_1\",\"metric\":\"stm_response_time_ms\","
                        "\"state\":\"firing\",\"value\":150,\"threshold\":100,"
                        "\"comparison\":\"gt\",\"duration_seconds\":0,"
                        "\"since\":\"2026-11-26T15:28:56.123Z\","
                        "\"timestamp\":\"2026-11-26T15:28:56.123Z\"}");
    assert_true(strncmp(L.head[0], "POST /hook?token=abc HTTP/1.1\r\n", 31) == 0);
    assert_non_null(strcasestr(L.head[0], "\r\nContent-Type: application/json"));

    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 99.25, 20);
    md_alerts_evaluate(a, t + 5000);
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    listener_wait(&L, 2);
    assert_string_equal(L.body[1],
                        "{\"alert\":\"Hook_Test_1\",\"metric\":\"stm_response_time_ms\","
                        "\"state\":\"resolved\",\"value\":99.25,\"threshold\":100,"
                        "\"comparison\":\"gt\",\"duration_seconds\":0,"
                        "\"since\":\"2026-11-26T15:28:56.123Z\","
                        "\"timestamp\":\"2026-11-26T15:29:01.123Z\"}");

    /* A rule without its own URL goes to ALERT_WEBHOOK_URL; pending sends nothing. */
    set_value(&f, MD_METRIC_CACHE_HIT_RATE_PERCENT, 12.5, 1000);
    md_alerts_evaluate(a, t + 10000);
    md_alerts_evaluate(a, t + 309999);
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    pthread_mutex_lock(&L.lock);
    assert_int_equal(L.n, 2);
    pthread_mutex_unlock(&L.lock);
    md_alerts_evaluate(a, t + 310000);
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    listener_wait(&L, 3);
    assert_true(strncmp(L.head[2], "POST /default-hook HTTP/1.1\r\n", 29) == 0);
    assert_string_equal(L.body[2],
                        "{\"alert\":\"Via \\\"default\\\" URL\",\"metric\":"
                        "\"cache_hit_rate_percent\",\"state\":\"firing\",\"value\":12.5,"
                        "\"threshold\":70,\"comparison\":\"lt\",\"duration_seconds\":300,"
                        "\"since\":\"2026-11-26T15:29:06.123Z\","
                        "\"timestamp\":\"2026-11-26T15:34:06.123Z\"}");
    /* Resolved because the lookups fell under 100: the value is still reported. */
    set_value(&f, MD_METRIC_CACHE_HIT_RATE_PERCENT, 12.5, 99);
    md_alerts_evaluate(a, t + 320000);
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    listener_wait(&L, 4);
    assert_non_null(strstr(L.body[3], "\"state\":\"resolved\",\"value\":12.5,"));
    /* And without any value: null. */
    md_alerts_evaluate(a, t + 330000);
    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 150.0, 20);
    md_alerts_evaluate(a, t + 340000);
    f.has[MD_METRIC_STM_RESPONSE_TIME_MS] = false;
    md_alerts_evaluate(a, t + 350000);
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    listener_wait(&L, 6);
    assert_non_null(strstr(L.body[5], "\"state\":\"resolved\",\"value\":null,"));

    struct md_alerts_notifier_stats ns;
    md_alerts_notifier_stats(a, &ns);
    assert_int_equal(ns.sent, 6);
    assert_int_equal(ns.failed, 0);
    assert_int_equal(ns.dropped, 0);
    md_alerts_free(a);
    listener_stop(&L);
}

static void test_webhook_retry_and_failure(void **state)
{
    (void)state;
    struct listener L;
    listener_start(&L);
    L.status[0] = 500; /* first attempt fails, the retry succeeds */
    L.status[2] = 404; /* not retried */
    L.status[3] = 503; /* retried once, fails again */
    L.status[4] = 503;
    char url[128];
    url_of(&L, "/h", url, sizeof(url));
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    struct md_alerts *a = make_alerts(&f, false, url);
    add(a, rule("r", MD_METRIC_ERROR_RATE_PERCENT, MD_ALERT_GT, 1.0, 0, NULL));
    int64_t t = t0_ms();
    set_value(&f, MD_METRIC_ERROR_RATE_PERCENT, 5.0, 100);
    md_alerts_evaluate(a, t);
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    listener_wait(&L, 2);
    assert_string_equal(L.body[0], L.body[1]);
    struct md_alerts_notifier_stats ns;
    md_alerts_notifier_stats(a, &ns);
    assert_int_equal(ns.sent, 1);
    assert_int_equal(ns.retried, 1);
    assert_int_equal(ns.failed, 0);

    set_value(&f, MD_METRIC_ERROR_RATE_PERCENT, 0.0, 100);
    md_alerts_evaluate(a, t + 1000); /* resolved -> 404, given up */
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    listener_wait(&L, 3);
    md_alerts_notifier_stats(a, &ns);
    assert_int_equal(ns.failed, 1);
    assert_int_equal(ns.retried, 1);

    set_value(&f, MD_METRIC_ERROR_RATE_PERCENT, 5.0, 100);
    md_alerts_evaluate(a, t + 2000); /* firing -> 503, 503: two attempts, failed */
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    listener_wait(&L, 5);
    md_alerts_notifier_stats(a, &ns);
    assert_int_equal(ns.failed, 2);
    assert_int_equal(ns.retried, 2);
    assert_int_equal(ns.sent, 1);
    pthread_mutex_lock(&L.lock);
    assert_int_equal(L.n, 5); /* never more than one retry */
    pthread_mutex_unlock(&L.lock);
    md_alerts_free(a);
    listener_stop(&L);

    /* Nobody listening: connection refused, retried once, counted as failed. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
    a = make_alerts(&f, false, url);
    add(a, rule("r", MD_METRIC_ERROR_RATE_PERCENT, MD_ALERT_GT, 1.0, 0, NULL));
    md_alerts_evaluate(a, t);
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    md_alerts_notifier_stats(a, &ns);
    assert_int_equal(ns.failed, 1);
    assert_int_equal(ns.retried, 1);
    assert_int_equal(ns.sent, 0);
    md_alerts_free(a);
}

static void test_webhook_queue_bounded(void **state)
{
    (void)state;
    struct listener L;
    listener_start(&L);
    L.hold = true;
    char url[128];
    url_of(&L, "/slow", url, sizeof(url));
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    struct md_alerts_options o;
    memset(&o, 0, sizeof(o));
    o.value_fn = fake_value;
    o.value_ctx = &f;
    o.no_defaults = true;
    o.webhook_url = url;
    o.webhook_timeout_s = 20;
    o.queue_cap = 1;
    struct md_error err;
    struct md_alerts *a = md_alerts_new(&o, &err);
    assert_non_null(a);
    set_value(&f, MD_METRIC_STM_RESPONSE_TIME_MS, 500.0, 50);
    int64_t t = t0_ms();
    add(a, rule("A", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 100.0, 0, NULL));
    md_alerts_evaluate(a, t);
    listener_wait(&L, 1); /* A is in flight, held by the listener; the queue is empty */
    add(a, rule("B", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 100.0, 0, NULL));
    add(a, rule("C", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 100.0, 0, NULL));
    add(a, rule("D", MD_METRIC_STM_RESPONSE_TIME_MS, MD_ALERT_GT, 100.0, 0, NULL));
    int64_t before = md_mono_ms();
    md_alerts_evaluate(a, t + 1000); /* B queued, C and D dropped — without blocking */
    assert_true(md_mono_ms() - before < 1000);
    assert_int_equal(state_of(a, "D", t).state, MD_ALERT_FIRING);
    struct md_alerts_notifier_stats ns;
    md_alerts_notifier_stats(a, &ns);
    assert_int_equal(ns.dropped, 2);
    assert_int_equal(ns.queued, 2);
    pthread_mutex_lock(&L.lock);
    L.hold = false;
    pthread_cond_broadcast(&L.cond);
    pthread_mutex_unlock(&L.lock);
    assert_true(md_alerts_notifier_wait_idle(a, 10000));
    listener_wait(&L, 2);
    assert_non_null(strstr(L.body[1], "\"alert\":\"B\""));
    md_alerts_notifier_stats(a, &ns);
    assert_int_equal(ns.sent, 2);
    md_alerts_free(a);
    listener_stop(&L);
}

static void test_evaluator_thread(void **state)
{
    (void)state;
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    set_value(&f, MD_METRIC_LTM_RESPONSE_TIME_MS, 900.0, 30);
    struct md_alerts_options o;
    memset(&o, 0, sizeof(o));
    o.value_fn = fake_value;
    o.value_ctx = &f;
    o.no_defaults = true;
    o.interval_s = 1;
    o.evaluate = true;
    struct md_error err;
    struct md_alerts *a = md_alerts_new(&o, &err);
    assert_non_null(a);
    add(a, rule("ltm_slow", MD_METRIC_LTM_RESPONSE_TIME_MS, MD_ALERT_GT, 500.0, 0, NULL));
    assert_int_equal(md_alerts_start(a, &err), MD_OK);
    assert_int_equal(md_alerts_start(a, &err), MD_OK); /* idempotent */
    int64_t deadline = md_mono_ms() + 5000;
    while (state_of(a, "ltm_slow", md_now_ms()).state != MD_ALERT_FIRING &&
           md_mono_ms() < deadline)
        md_sleep_ms(20);
    assert_int_equal(state_of(a, "ltm_slow", md_now_ms()).state, MD_ALERT_FIRING);
    int64_t t = md_mono_ms();
    md_alerts_free(a); /* wakes the evaluator at once */
    assert_true(md_mono_ms() - t < 1000);

    /* Disabled by configuration: start is a no-op. */
    o.evaluate = false;
    a = md_alerts_new(&o, &err);
    assert_non_null(a);
    assert_int_equal(md_alerts_start(a, &err), MD_OK);
    md_alerts_free(a);
}

/* ---- concurrency ------------------------------------------------------------ */

struct churn_arg {
    struct md_alerts *a;
    int id;
};

static void *churn(void *p)
{
    struct churn_arg *c = p;
    char name[32];
    struct md_error err;
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "t%d_rule_%d", c->id, i % 10);
        struct md_alert_rule r = rule(name, (enum md_metric)(i % MD_METRIC_COUNT), MD_ALERT_GT,
                                      1.0, i % 3, NULL);
        enum md_status st = md_alerts_add(c->a, &r, NULL, &err);
        assert_true(st == MD_OK || st == MD_E_CONFLICT);
        md_alerts_evaluate(c->a, t0_ms() + i * 1000);
        struct md_alert_list l;
        if (md_alerts_list(c->a, t0_ms(), &l) == MD_OK) {
            json_t *j = md_alerts_list_json(&l);
            json_decref(j);
            md_alert_list_release(&l);
        }
        if (i % 2) {
            st = md_alerts_delete(c->a, name, &err);
            assert_true(st == MD_OK || st == MD_E_NOTFOUND);
        }
    }
    return NULL;
}

static void test_concurrent_use(void **state)
{
    (void)state;
    struct fake_values f;
    memset(&f, 0, sizeof(f));
    for (int i = 0; i < MD_METRIC_COUNT; i++)
        set_value(&f, (enum md_metric)i, 5.0, 1000);
    struct md_alerts *a = make_alerts(&f, true, NULL);
    pthread_t th[4];
    struct churn_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct churn_arg){a, i};
        assert_int_equal(pthread_create(&th[i], NULL, churn, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct md_alert_list l;
    assert_int_equal(md_alerts_list(a, t0_ms(), &l), MD_OK);
    assert_true(l.n >= 6 && l.n <= MD_ALERT_MAX_RULES);
    md_alert_list_release(&l);
    md_alerts_free(a);
}

int main(void)
{
    /* The listener is on loopback: a proxy from the environment must not intercept. */
    static const char *const proxies[] = {"http_proxy", "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < MD_ARRAY_LEN(proxies); i++)
        unsetenv(proxies[i]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    md_log_setup(MD_LOG_CRITICAL, MD_LOG_TEXT, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_min_samples),
        cmocka_unit_test(test_duration_zero_eq_lt_disabled),
        cmocka_unit_test(test_add_delete_conflict),
        cmocka_unit_test(test_parse_rule),
        cmocka_unit_test(test_json_builders),
        cmocka_unit_test(test_webhook_exact_body),
        cmocka_unit_test(test_webhook_retry_and_failure),
        cmocka_unit_test(test_webhook_queue_bounded),
        cmocka_unit_test(test_evaluator_thread),
        cmocka_unit_test(test_concurrent_use),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
