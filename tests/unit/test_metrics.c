/*
 * test_metrics.c — the metrics registry: labels, histogram percentiles
 * against exact ones, window roll-over on an injected clock, ratio metrics,
 * concurrent exact totals, the Prometheus exposition parsed back, the store
 * wrappers, and the dashboard's status colouring and shape.
 */
#include "memoryd/compat.h"

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/dashboard.h"
#include "memoryd/ltm.h"
#include "memoryd/metrics.h"
#include "memoryd/stm.h"

/* ---- fixtures ------------------------------------------------------------ */

static void h_dummy(struct md_req *req, struct md_resp *resp)
{
    (void)req;
    (void)resp;
}

static const struct md_route routes[] = {
    {MD_M_GET, "/v1/stm/entries/{id}", h_dummy, 0, NULL},     /* 0 */
    {MD_M_PATCH, "/v1/stm/entries/{id}", h_dummy, 0, NULL},   /* 1: same pattern */
    {MD_M_GET, "/health", h_dummy, 0, NULL},                  /* 2: not /v1 */
    {MD_M_POST, "/v1/we\"ird\\pa\nth", h_dummy, 0, NULL},     /* 3: needs escaping */
};

static int64_t fake_ms;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_ms;
}

static struct md_metrics *make(void)
{
    struct md_error err;
    md_error_clear(&err);
    struct md_metrics *m = md_metrics_new(routes, MD_ARRAY_LEN(routes), &err);
    assert_non_null(m);
    fake_ms = 1000000; /* second 1000 */
    md_metrics_set_clock(m, fake_clock, NULL);
    return m;
}

static void advance_s(int64_t s)
{
    fake_ms += s * 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank p-quantile of n values. */
static double exact_quantile(int64_t *v, size_t n, double q)
{
    qsort(v, n, sizeof(*v), cmp_i64);
    size_t rank = (size_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    return (double)v[rank - 1];
}

static void assert_close(double got, double want, double rel)
{
    if (fabs(got - want) > rel * fabs(want)) {
        print_error("got %.6f, want %.6f (±%.2f%%)\n", got, want, rel * 100);
        fail();
    }
}

/* ---- names and buckets ---------------------------------------------------- */

static void test_labels_and_names(void **state)
{
    (void)state;
    assert_string_equal(md_metrics_status_label(200), "200");
    assert_string_equal(md_metrics_status_label(503), "503");
    assert_string_equal(md_metrics_status_label(429), "429");
    assert_string_equal(md_metrics_status_label(302), "3xx");
    assert_string_equal(md_metrics_status_label(502), "5xx");
    assert_string_equal(md_metrics_status_label(418), "4xx");
    assert_string_equal(md_metrics_status_label(101), "1xx");
    assert_string_equal(md_metrics_status_label(206), "2xx");
    assert_string_equal(md_metrics_status_label(0), "other");
    assert_string_equal(md_metrics_status_label(600), "other");
    assert_string_equal(md_metrics_status_label(-5), "other");

    enum md_metric mt;
    assert_true(md_metric_parse("cache_hit_rate_percent", &mt));
    assert_int_equal(mt, MD_METRIC_CACHE_HIT_RATE_PERCENT);
    assert_false(md_metric_parse("cache_hit_rate", &mt));
    assert_false(md_metric_parse("", &mt));
    assert_string_equal(md_metric_name(MD_METRIC_ERROR_RATE_PERCENT), "error_rate_percent");
    assert_true(md_metric_threshold(MD_METRIC_STM_RESPONSE_TIME_MS) == 100.0);
    assert_true(md_metric_threshold(MD_METRIC_LTM_RESPONSE_TIME_MS) == 500.0);
    assert_true(md_metric_threshold(MD_METRIC_API_RESPONSE_TIME_MS) == 1000.0);
    assert_true(md_metric_threshold(MD_METRIC_CACHE_HIT_RATE_PERCENT) == 70.0);
    assert_true(md_metric_threshold(MD_METRIC_ERROR_RATE_PERCENT) == 1.0);
    assert_true(md_metric_threshold(MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT) == 80.0);
    assert_false(md_metric_lower_is_better(MD_METRIC_CACHE_HIT_RATE_PERCENT));
    assert_true(md_metric_lower_is_better(MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT));

    assert_string_equal(md_metrics_op_name(MD_STORE_STM, MD_STM_OP_get_many), "get_many");
    assert_string_equal(md_metrics_op_name(MD_STORE_LTM, MD_LTM_OP_ensure_schema),
                        "ensure_schema");
    assert_string_equal(md_metrics_op_name(MD_STORE_LTM, 999), "");

    assert_false(md_metrics_store_failed(MD_OK));
    assert_false(md_metrics_store_failed(MD_E_NOTFOUND));
    assert_false(md_metrics_store_failed(MD_E_CONFLICT));
    assert_true(md_metrics_store_failed(MD_E_UNAVAIL));
    assert_true(md_metrics_store_failed(MD_E_TIMEOUT));
    assert_true(md_metrics_store_failed(MD_E_INTERNAL));

    struct md_metrics *m = make();
    assert_int_equal(md_metrics_route_index(m, &routes[2]), 2);
    assert_int_equal(md_metrics_route_index(m, NULL), -1);
    struct md_route other = routes[0];
    assert_int_equal(md_metrics_route_index(m, &other), -1);
    md_metrics_free(m);
}

/* ---- percentiles ----------------------------------------------------------- */

static void check_p95(const int64_t *us, size_t n, bool via_http)
{
    struct md_metrics *m = make();
    int64_t *copy = malloc(n * sizeof(*copy));
    assert_non_null(copy);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (via_http)
            md_metrics_http(m, 0, MD_M_GET, 200, us[i]);
        else
            md_metrics_store(m, MD_STORE_STM, MD_STM_OP_get, true, us[i]);
        copy[i] = us[i];
        sum += (double)us[i];
    }
    md_metrics_tick(m, NULL);
    struct md_window w;
    md_metrics_window(m, via_http ? MD_METRIC_API_RESPONSE_TIME_MS
                                  : MD_METRIC_STM_RESPONSE_TIME_MS,
                      &w);
    assert_int_equal(w.samples_1m, n);
    assert_int_equal(w.samples_15m, n);
    double want_p95 = exact_quantile(copy, n, 0.95) / 1000.0;
    assert_close(w.p95, want_p95, 0.032);
    assert_close(w.p95_1m, want_p95, 0.032);
    assert_close(w.average, sum / (double)n / 1000.0, 1e-12);
    assert_close(w.current, sum / (double)n / 1000.0, 1e-12);
    free(copy);
    md_metrics_free(m);
}

static void test_p95_uniform(void **state)
{
    (void)state;
    size_t n = 1000;
    int64_t *v = malloc(n * sizeof(*v));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)(i + 1) * 1000; /* 1..1000 ms */
    check_p95(v, n, false);
    check_p95(v, n, true);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)(i + 1) * 7; /* 7 µs .. 7 ms: the small buckets */
    check_p95(v, n, false);
    free(v);
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static void test_p95_skewed(void **state)
{
    (void)state;
    size_t n = 20000;
    int64_t *v = malloc(n * sizeof(*v));
    assert_non_null(v);
    uint64_t seed = 42;
    /* 92 % fast (0.2–3 ms), 8 % slow (150 ms – 4 s, log-uniform-ish). */
    for (size_t i = 0; i < n; i++) {
        if (lcg(&seed) % 100 < 92)
            v[i] = 200 + (int64_t)(lcg(&seed) % 2800);
        else
            v[i] = (int64_t)(150000.0 * pow(26.0, (double)(lcg(&seed) % 10000) / 10000.0));
    }
    check_p95(v, n, false);
    /* Exponential-like tail. */
    for (size_t i = 0; i < n; i++) {
        double u = ((double)(lcg(&seed) % 1000000) + 0.5) / 1000000.0;
        v[i] = 1 + (int64_t)(-log(u) * 20000.0);
    }
    check_p95(v, n, false);
    free(v);
}

static void test_p95_single_value(void **state)
{
    (void)state;
    int64_t v[50];
    for (size_t i = 0; i < 50; i++)
        v[i] = 1234;
    struct md_metrics *m = make();
    for (size_t i = 0; i < 50; i++)
        md_metrics_store(m, MD_STORE_LTM, MD_LTM_OP_search, true, v[i]);
    md_metrics_tick(m, NULL);
    struct md_window w;
    md_metrics_window(m, MD_METRIC_LTM_RESPONSE_TIME_MS, &w);
    assert_true(w.p95 == 1.234);       /* exact: clamped to [min, max] */
    assert_true(w.average == 1.234);
    /* One sample. */
    advance_s(1000);
    md_metrics_store(m, MD_STORE_LTM, MD_LTM_OP_get, true, 987654);
    md_metrics_tick(m, NULL);
    md_metrics_window(m, MD_METRIC_LTM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_15m, 1);
    assert_true(w.p95 == 987.654);
    assert_true(w.current == 987.654);
    md_metrics_free(m);
    check_p95(v, 50, false);
}

/* ---- windows ----------------------------------------------------------------- */

static void test_window_empty_is_nan(void **state)
{
    (void)state;
    struct md_metrics *m = make();
    for (int i = 0; i < MD_METRIC_COUNT; i++) {
        struct md_window w;
        md_metrics_window(m, (enum md_metric)i, &w);
        assert_int_equal(w.samples_1m, 0);
        assert_int_equal(w.samples_15m, 0);
        assert_true(isnan(w.current) && isnan(w.average) && isnan(w.p95) && isnan(w.p95_1m));
        double v;
        uint64_t n;
        assert_false(md_metrics_alert_value(m, (enum md_metric)i, &v, &n));
    }
    md_metrics_tick(m, NULL);
    struct md_window w;
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_true(isnan(w.current));
    md_metrics_free(m);
}

static void test_window_rollover_exact(void **state)
{
    (void)state;
    struct md_metrics *m = make();
    struct md_window w;
    /* Second T: 3 samples of 10 ms. */
    for (int i = 0; i < 3; i++)
        md_metrics_store(m, MD_STORE_STM, MD_STM_OP_create, true, 10000);
    md_metrics_tick(m, NULL);
    /* Ticks every second, no traffic: still in `current` for 59 more seconds. */
    for (int s = 1; s <= 59; s++) {
        advance_s(1);
        md_metrics_tick(m, NULL);
        md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
        assert_int_equal(w.samples_1m, 3);
        assert_int_equal(w.samples_15m, 3);
    }
    advance_s(1); /* T+60: out of the last minute, still in 15 minutes */
    md_metrics_tick(m, NULL);
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_1m, 0);
    assert_true(isnan(w.current));
    assert_int_equal(w.samples_15m, 3);
    assert_true(w.average == 10.0);
    /* T+899: last second in the window; T+900: gone. */
    for (int s = 61; s <= 899; s++) {
        advance_s(1);
        md_metrics_tick(m, NULL);
    }
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_15m, 3);
    advance_s(1);
    md_metrics_tick(m, NULL);
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_15m, 0);
    assert_true(isnan(w.average) && isnan(w.p95));
    md_metrics_free(m);
}

static void test_window_steady_traffic(void **state)
{
    (void)state;
    struct md_metrics *m = make();
    struct md_window w;
    /* One sample per second of (second index) ms for 1000 seconds. */
    for (int s = 0; s < 1000; s++) {
        md_metrics_store(m, MD_STORE_STM, MD_STM_OP_get, true, (int64_t)(s + 1) * 1000);
        md_metrics_tick(m, NULL);
        md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
        assert_int_equal(w.samples_1m, (uint64_t)MD_MIN(s + 1, 60));
        assert_int_equal(w.samples_15m, (uint64_t)MD_MIN(s + 1, 900));
        advance_s(1);
    }
    advance_s(-1); /* back to the last tick's second */
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    /* Last minute holds 941..1000 ms, 15 minutes 101..1000 ms. */
    assert_close(w.current, (941.0 + 1000.0) / 2.0, 1e-12);
    assert_close(w.average, (101.0 + 1000.0) / 2.0, 1e-12);
    md_metrics_free(m);
}

static void test_window_stalled_janitor(void **state)
{
    (void)state;
    struct md_metrics *m = make();
    struct md_window w;
    md_metrics_store(m, MD_STORE_STM, MD_STM_OP_get, true, 5000);
    md_metrics_tick(m, NULL); /* second T */
    /* No tick for 5 minutes: the query still ages the slot by the clock. */
    advance_s(300);
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_1m, 0);
    assert_int_equal(w.samples_15m, 1);
    /* Exactly 900 s after T without a tick: gone, no stale lap. */
    advance_s(600);
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_15m, 0);
    /* Samples gathered during the stall land in the tick's second. */
    md_metrics_store(m, MD_STORE_STM, MD_STM_OP_get, true, 7000);
    md_metrics_store(m, MD_STORE_STM, MD_STM_OP_get, true, 9000);
    md_metrics_tick(m, NULL); /* T+900 reuses T's ring slot: cleared first */
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_1m, 2);
    assert_int_equal(w.samples_15m, 2);
    assert_true(w.average == 8.0);
    /* A gap shorter than the ring: skipped seconds are cleared, older ones kept. */
    advance_s(10);
    md_metrics_store(m, MD_STORE_STM, MD_STM_OP_get, true, 1000);
    md_metrics_tick(m, NULL);
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_1m, 3);
    /* Two ticks in one second accumulate into the same slot. */
    md_metrics_store(m, MD_STORE_STM, MD_STM_OP_get, true, 1000);
    md_metrics_tick(m, NULL);
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_1m, 4);
    /* A clock going backwards folds into the newest slot. */
    advance_s(-5);
    md_metrics_store(m, MD_STORE_STM, MD_STM_OP_get, true, 1000);
    md_metrics_tick(m, NULL);
    advance_s(5);
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_1m, 5);
    md_metrics_free(m);
}

static void test_background_ops_not_windowed(void **state)
{
    (void)state;
    struct md_metrics *m = make();
    md_metrics_store(m, MD_STORE_STM, MD_STM_OP_sweep, true, 5000000);
    md_metrics_store(m, MD_STORE_STM, MD_STM_OP_for_each, true, 5000000);
    md_metrics_store(m, MD_STORE_LTM, MD_LTM_OP_ensure_schema, false, 5000000);
    md_metrics_store(m, MD_STORE_LTM, 1000, true, 1); /* ignored */
    md_metrics_tick(m, NULL);
    struct md_window w;
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_15m, 0);
    md_metrics_window(m, MD_METRIC_LTM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_15m, 0);
    md_metrics_free(m);
}

static void test_ratio_metrics(void **state)
{
    (void)state;
    struct md_metrics *m = make();
    struct md_window w;
    struct md_metrics_sample s;
    memset(&s, 0, sizeof(s));
    s.has_cache = true;
    s.cache.hits = 80;
    s.cache.misses = 20;
    s.has_pool[MD_STORE_STM] = true;
    s.pool[MD_STORE_STM] = (struct md_pool_stats){10, 5, 10, 0, 0};
    md_metrics_tick(m, &s);
    md_metrics_window(m, MD_METRIC_CACHE_HIT_RATE_PERCENT, &w);
    assert_int_equal(w.samples_1m, 100);
    assert_true(w.current == 80.0);
    md_metrics_window(m, MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT, &w);
    assert_int_equal(w.samples_1m, 1);
    assert_true(w.current == 50.0);

    advance_s(1);
    s.cache.misses = 120; /* +0 hits, +100 misses */
    s.has_pool[MD_STORE_LTM] = true;
    s.pool[MD_STORE_LTM] = (struct md_pool_stats){10, 9, 10, 3, 1}; /* max over pools: 90 */
    md_metrics_tick(m, &s);
    md_metrics_window(m, MD_METRIC_CACHE_HIT_RATE_PERCENT, &w);
    assert_int_equal(w.samples_1m, 200);
    assert_true(w.current == 40.0);
    assert_true(w.p95 == 80.0); /* per-second values 80 and 0 */
    md_metrics_window(m, MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT, &w);
    assert_int_equal(w.samples_1m, 2);
    assert_true(w.current == 70.0);
    assert_true(w.p95 == 90.0);

    /* Counter restart (cache rebuilt): counts from zero again. */
    advance_s(1);
    s.cache.hits = 10;
    s.cache.misses = 0;
    s.has_pool[MD_STORE_STM] = s.has_pool[MD_STORE_LTM] = false;
    md_metrics_tick(m, &s);
    md_metrics_window(m, MD_METRIC_CACHE_HIT_RATE_PERCENT, &w);
    assert_int_equal(w.samples_1m, 210);
    assert_close(w.current, 100.0 * 90.0 / 210.0, 1e-12);
    md_metrics_window(m, MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT, &w);
    assert_int_equal(w.samples_1m, 2); /* no pool this tick: no sample */

    /* Pools with max 0 (embedded stores) never count. */
    struct md_metrics *m2 = make();
    struct md_metrics_sample z;
    memset(&z, 0, sizeof(z));
    z.has_pool[MD_STORE_STM] = true;
    md_metrics_tick(m2, &z);
    md_metrics_window(m2, MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT, &w);
    assert_int_equal(w.samples_15m, 0);
    assert_true(isnan(w.current));
    md_metrics_free(m2);
    md_metrics_free(m);
}

static void test_error_rate(void **state)
{
    (void)state;
    struct md_metrics *m = make();
    struct md_window w;
    for (int i = 0; i < 198; i++)
        md_metrics_http(m, 0, MD_M_GET, i % 2 ? 200 : 404, 1000);
    md_metrics_http(m, 1, MD_M_PATCH, 500, 1000);
    md_metrics_http(m, 1, MD_M_PATCH, 503, 1000);
    for (int i = 0; i < 50; i++) /* not /v1: ignored by the API windows */
        md_metrics_http(m, 2, MD_M_GET, 503, 1000);
    md_metrics_http(m, -1, MD_M_GET, 500, 1000); /* unmatched: ignored */
    md_metrics_tick(m, NULL);
    md_metrics_window(m, MD_METRIC_ERROR_RATE_PERCENT, &w);
    assert_int_equal(w.samples_1m, 200);
    assert_int_equal(w.errors_1m, 2);
    assert_true(w.current == 1.0);
    md_metrics_window(m, MD_METRIC_API_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_15m, 200);
    assert_int_equal(w.errors_15m, 2);
    double v;
    uint64_t n;
    assert_true(md_metrics_alert_value(m, MD_METRIC_ERROR_RATE_PERCENT, &v, &n));
    assert_true(v == 1.0);
    assert_int_equal(n, 200);
    md_metrics_free(m);
}

/* ---- concurrency ------------------------------------------------------------------ */

#define THREADS 8
#define PER_THREAD 50000

struct worker_arg {
    struct md_metrics *m;
    int id;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    for (int i = 0; i < PER_THREAD; i++) {
        md_metrics_http(a->m, i % 2, i % 2 ? MD_M_PATCH : MD_M_GET, i % 100 == 0 ? 500 : 200,
                        (int64_t)(i % 1000) + 1);
        md_metrics_store(a->m, MD_STORE_STM, MD_STM_OP_get, i % 10 != 0, 100);
        md_metrics_store(a->m, MD_STORE_LTM, MD_LTM_OP_search, true, 200);
    }
    return NULL;
}

struct ticker_arg {
    struct md_metrics *m;
    int stop; /* under lock */
    pthread_mutex_t lock;
};

static void *ticker(void *p)
{
    struct ticker_arg *t = p;
    for (;;) {
        pthread_mutex_lock(&t->lock);
        int stop = t->stop;
        pthread_mutex_unlock(&t->lock);
        if (stop)
            break;
        md_metrics_tick(t->m, NULL);
        struct md_window w;
        md_metrics_window(t->m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
        md_sleep_ms(1);
    }
    return NULL;
}

static uint64_t prom_value(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    if (!p)
        return UINT64_MAX;
    p += strlen(series);
    assert_true(*p == ' ');
    return strtoull(p + 1, NULL, 10);
}

static void test_concurrent_exact_totals(void **state)
{
    (void)state;
    struct md_error err;
    struct md_metrics *m = md_metrics_new(routes, MD_ARRAY_LEN(routes), &err);
    assert_non_null(m);
    /* Real monotonic clock: ticks run concurrently with the writers. */
    struct ticker_arg t = {m, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t tt, th[THREADS];
    struct worker_arg args[THREADS];
    assert_int_equal(pthread_create(&tt, NULL, ticker, &t), 0);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct worker_arg){m, i};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_lock(&t.lock);
    t.stop = 1;
    pthread_mutex_unlock(&t.lock);
    pthread_join(tt, NULL);
    md_metrics_tick(m, NULL);

    uint64_t total = (uint64_t)THREADS * PER_THREAD;
    struct md_window w;
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_15m, total);
    assert_int_equal(w.errors_15m, total / 10);
    assert_true(w.average == 0.1);
    md_metrics_window(m, MD_METRIC_LTM_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_15m, total);
    md_metrics_window(m, MD_METRIC_API_RESPONSE_TIME_MS, &w);
    assert_int_equal(w.samples_15m, total);
    assert_int_equal(w.errors_15m, total / 100);

    struct md_buf b;
    md_buf_init(&b, 4 << 20);
    assert_int_equal(md_metrics_prometheus(m, &b, NULL), MD_OK);
    const char *txt = b.data;
    uint64_t get200 = prom_value(
        txt, "memoryd_http_requests_total{route=\"/v1/stm/entries/{id}\",method=\"GET\","
             "status=\"200\"}");
    uint64_t get500 = prom_value(
        txt, "memoryd_http_requests_total{route=\"/v1/stm/entries/{id}\",method=\"GET\","
             "status=\"500\"}");
    uint64_t patch200 = prom_value(
        txt, "memoryd_http_requests_total{route=\"/v1/stm/entries/{id}\",method=\"PATCH\","
             "status=\"200\"}");
    assert_int_equal(get200 + get500 + patch200, total);
    assert_int_equal(get500, total / 100);
    assert_int_equal(prom_value(txt, "memoryd_store_errors_total{store=\"stm\",op=\"get\"}"),
                     total / 10);
    assert_int_equal(
        prom_value(txt, "memoryd_store_call_duration_seconds_count{store=\"ltm\",op=\"search\"}"),
        total);
    md_buf_release(&b);
    md_metrics_free(m);
}

/* ---- Prometheus exposition ----------------------------------------------------------- */

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

#define MAX_FAMILIES 128

struct families {
    char help[MAX_FAMILIES][96];
    char type_name[MAX_FAMILIES][96];
    char type[MAX_FAMILIES][16];
    size_t n_help, n_type;
};

static const char *family_type(const struct families *f, const char *name)
{
    for (size_t i = 0; i < f->n_type; i++)
        if (strcmp(f->type_name[i], name) == 0)
            return f->type[i];
    return NULL;
}

/*
 * Parse one sample line `name{k="v",...} value` strictly; returns the metric
 * name in name_out and the unescaped labels appended to labels_out as
 * `k=v;`. Fails the test on any syntax error.
 */
static void parse_sample(const char *line, char *name_out, size_t name_cap, char *labels_out,
                         size_t labels_cap, double *value)
{
    const char *p = line;
    size_t n = 0;
    assert_true(name_char(*p, true));
    while (name_char(*p, n == 0) && n + 1 < name_cap)
        name_out[n++] = *p++;
    name_out[n] = 0;
    labels_out[0] = 0;
    size_t ln = 0;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            assert_true(name_char(*p, true));
            while (name_char(*p, false)) {
                assert_true(ln + 2 < labels_cap);
                labels_out[ln++] = *p++;
            }
            assert_true(*p == '=');
            labels_out[ln++] = *p++;
            assert_true(*p == '"');
            p++;
            while (*p != '"') {
                assert_true(*p != 0 && *p != '\n');
                char c = *p++;
                if (c == '\\') {
                    c = *p++;
                    assert_true(c == '\\' || c == '"' || c == 'n');
                    if (c == 'n')
                        c = '\n';
                }
                assert_true(ln + 2 < labels_cap);
                labels_out[ln++] = c;
            }
            p++;
            labels_out[ln++] = ';';
            labels_out[ln] = 0;
            if (*p == ',')
                p++;
            else
                assert_true(*p == '}');
        }
        p++;
    }
    assert_true(*p == ' ');
    p++;
    if (strcmp(p, "+Inf") == 0)
        *value = INFINITY;
    else if (strcmp(p, "-Inf") == 0)
        *value = -INFINITY;
    else if (strcmp(p, "NaN") == 0)
        *value = NAN;
    else {
        char *end;
        *value = strtod(p, &end);
        assert_true(end != p && *end == 0);
    }
}

static const char *base_family(const struct families *f, const char *name, char *buf, size_t cap)
{
    if (family_type(f, name))
        return name;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3; i++) {
        size_t nl = strlen(name), sl = strlen(suffixes[i]);
        if (nl > sl && strcmp(name + nl - sl, suffixes[i]) == 0) {
            snprintf(buf, cap, "%.*s", (int)(nl - sl), name);
            const char *t = family_type(f, buf);
            if (t && strcmp(t, "histogram") == 0)
                return buf;
        }
    }
    return NULL;
}

static void test_prometheus_exposition(void **state)
{
    (void)state;
    struct md_metrics *m = make();
    md_metrics_http(m, 0, MD_M_GET, 200, 150);
    md_metrics_http(m, 0, MD_M_HEAD, 200, 150);
    md_metrics_http(m, 1, MD_M_PATCH, 409, 3000);
    md_metrics_http(m, 3, MD_M_POST, 201, 20000000); /* 20 s: only in +Inf */
    md_metrics_http(m, -1, (enum md_http_method)0, 404, 10);
    md_metrics_http(m, 2, MD_M_GET, 302, 10);
    md_metrics_store(m, MD_STORE_STM, MD_STM_OP_get, false, 250);
    md_metrics_store(m, MD_STORE_LTM, MD_LTM_OP_search, true, 1000000);
    struct md_metrics_sample s;
    memset(&s, 0, sizeof(s));
    s.has_cache = true;
    s.cache = (struct md_cache_stats){.hits = 7, .misses = 3, .evictions = 2, .entries = 5,
                                      .bytes = 999};
    s.has_pool[MD_STORE_STM] = true;
    s.pool[MD_STORE_STM] = (struct md_pool_stats){4, 2, 50, 11, 1};
    md_metrics_tick(m, &s);
    advance_s(61);

    struct md_metrics_extra x;
    md_metrics_extra_init(&x);
    struct md_metrics_alert alerts[] = {{"High STM Response Time", true},
                                        {"we\"ird\\na\nme_1", false}};
    x.alerts = alerts;
    x.n_alerts = 2;
    x.has_webhook_stats = true;
    x.webhook_sent = 3;
    x.version = "9.8.7";

    struct md_buf b;
    md_buf_init(&b, 1 << 20);
    assert_int_equal(md_metrics_prometheus(m, &b, &x), MD_OK);
    assert_non_null(b.data);
    assert_true(b.len > 0 && b.data[b.len - 1] == '\n');

    struct families *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    char *text = strdup(b.data);
    assert_non_null(text);
    /* Pass 1: HELP and TYPE lines. */
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[96], type[16];
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%95s", name), 1);
            assert_true(f->n_help < MAX_FAMILIES);
            snprintf(f->help[f->n_help++], 96, "%s", name);
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%95s %15s", name, type), 2);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            assert_null(family_type(f, name)); /* each family once */
            assert_true(f->n_type < MAX_FAMILIES);
            snprintf(f->type_name[f->n_type], 96, "%s", name);
            snprintf(f->type[f->n_type++], 16, "%s", type);
        } else {
            assert_true(line[0] != '#');
        }
    }
    assert_int_equal(f->n_help, f->n_type);
    for (size_t i = 0; i < f->n_type; i++)
        assert_string_equal(f->help[i], f->type_name[i]);

    /* The spec's names (§6) and ours. */
    static const char *const required[][2] = {
        {"memoryd_http_requests_total", "counter"},
        {"memoryd_http_request_duration_seconds", "histogram"},
        {"memoryd_store_call_duration_seconds", "histogram"},
        {"memoryd_store_errors_total", "counter"},
        {"memoryd_cache_hits_total", "counter"},
        {"memoryd_cache_misses_total", "counter"},
        {"memoryd_cache_evictions_total", "counter"},
        {"memoryd_cache_entries", "gauge"},
        {"memoryd_pool_connections", "gauge"},
        {"memoryd_pool_waits_total", "counter"},
        {"memoryd_alert_firing", "gauge"},
        {"memoryd_build_info", "gauge"},
        {"memoryd_uptime_seconds", "gauge"},
        {"memoryd_window_stm_response_time_ms", "gauge"},
        {"memoryd_window_ltm_response_time_ms", "gauge"},
        {"memoryd_window_api_response_time_ms", "gauge"},
        {"memoryd_window_cache_hit_rate_percent", "gauge"},
        {"memoryd_window_error_rate_percent", "gauge"},
        {"memoryd_window_connection_pool_utilization_percent", "gauge"},
    };
    for (size_t i = 0; i < MD_ARRAY_LEN(required); i++) {
        const char *t = family_type(f, required[i][0]);
        if (!t)
            print_error("missing family %s\n", required[i][0]);
        assert_non_null(t);
        assert_string_equal(t, required[i][1]);
    }

    /* Pass 2: every sample line parses and belongs to a declared family. */
    free(text);
    text = strdup(b.data);
    assert_non_null(text);
    size_t samples = 0;
    bool saw_weird_route = false, saw_weird_alert = false, saw_head = false, saw_other = false;
    double prev_bucket = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char name[128], labels[1024], fam[128];
        double v;
        parse_sample(line, name, sizeof(name), labels, sizeof(labels), &v);
        const char *base = base_family(f, name, fam, sizeof(fam));
        if (!base)
            print_error("undeclared series %s\n", name);
        assert_non_null(base);
        assert_true(strncmp(name, "memoryd_", 8) == 0);
        samples++;
        if (strstr(labels, "route=/v1/we\"ird\\pa\nth;"))
            saw_weird_route = true;
        if (strstr(labels, "alert=we\"ird\\na\nme_1;"))
            saw_weird_alert = true;
        if (strstr(labels, "method=HEAD;"))
            saw_head = true;
        if (strstr(labels, "route=unmatched;method=OTHER;status=404;"))
            saw_other = true;
        /* Raw paths never appear; routes are patterns or "unmatched". */
        const char *r = strstr(labels, "route=");
        if (r)
            assert_true(r[6] == '/' || strncmp(r + 6, "unmatched;", 10) == 0);
        /* Buckets are cumulative within a series. */
        if (strstr(name, "_bucket")) {
            if (strstr(labels, "le=0.0001;"))
                prev_bucket = -1;
            assert_true(v >= prev_bucket);
            prev_bucket = v;
        }
    }
    assert_true(samples > 40);
    assert_true(saw_weird_route);
    assert_true(saw_weird_alert);
    assert_true(saw_head);
    assert_true(saw_other);

    /* Spot values. */
    const char *t = b.data;
    assert_non_null(strstr(t, "memoryd_build_info{version=\"9.8.7\"} 1\n"));
    assert_non_null(strstr(t, "memoryd_uptime_seconds 61\n"));
    assert_non_null(strstr(t, "memoryd_cache_hits_total 7\n"));
    assert_non_null(strstr(t, "memoryd_cache_misses_total 3\n"));
    assert_non_null(strstr(t, "memoryd_cache_evictions_total 2\n"));
    assert_non_null(strstr(t, "memoryd_cache_entries 5\n"));
    assert_non_null(strstr(t, "memoryd_pool_connections{store=\"stm\",state=\"open\"} 4\n"));
    assert_non_null(strstr(t, "memoryd_pool_connections{store=\"stm\",state=\"in_use\"} 2\n"));
    assert_non_null(strstr(t, "memoryd_pool_connections{store=\"stm\",state=\"max\"} 50\n"));
    assert_null(strstr(t, "store=\"ltm\",state="));
    assert_non_null(strstr(t, "memoryd_pool_waits_total{store=\"stm\"} 11\n"));
    assert_non_null(strstr(t, "memoryd_alert_firing{alert=\"High STM Response Time\"} 1\n"));
    assert_non_null(strstr(t, "memoryd_alert_firing{alert=\"we\\\"ird\\\\na\\nme_1\"} 0\n"));
    assert_non_null(strstr(t, "memoryd_alert_webhook_deliveries_total{result=\"sent\"} 3\n"));
    assert_non_null(strstr(t, "memoryd_http_requests_total{route=\"/v1/stm/entries/{id}\","
                              "method=\"PATCH\",status=\"409\"} 1\n"));
    assert_non_null(strstr(t, "memoryd_http_requests_total{route=\"/health\",method=\"GET\","
                              "status=\"3xx\"} 1\n"));
    assert_non_null(strstr(t, "memoryd_http_request_duration_seconds_bucket{route=\"/v1/stm/"
                              "entries/{id}\",method=\"GET\",le=\"0.0001\"} 0\n"));
    assert_non_null(strstr(t, "memoryd_http_request_duration_seconds_bucket{route=\"/v1/stm/"
                              "entries/{id}\",method=\"GET\",le=\"0.00025\"} 1\n"));
    assert_non_null(strstr(t, "memoryd_http_request_duration_seconds_sum{route=\"/v1/stm/"
                              "entries/{id}\",method=\"GET\"} 0.00015\n"));
    assert_non_null(strstr(t, "memoryd_http_request_duration_seconds_bucket{route=\"/v1/we\\\""
                              "ird\\\\pa\\nth\",method=\"POST\",le=\"10\"} 0\n"));
    assert_non_null(strstr(t, "memoryd_http_request_duration_seconds_bucket{route=\"/v1/we\\\""
                              "ird\\\\pa\\nth\",method=\"POST\",le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(t, "memoryd_store_errors_total{store=\"stm\",op=\"get\"} 1\n"));
    assert_non_null(strstr(t, "memoryd_store_errors_total{store=\"ltm\",op=\"search\"} 0\n"));
    assert_non_null(strstr(t, "memoryd_store_call_duration_seconds_bucket{store=\"stm\","
                              "op=\"get\",le=\"0.00025\"} 1\n"));
    assert_non_null(strstr(t, "memoryd_store_call_duration_seconds_sum{store=\"ltm\","
                              "op=\"search\"} 1\n"));
    /* Untouched series are absent; windows older than 1 minute show 15m only. */
    assert_null(strstr(t, "op=\"create\""));
    assert_null(strstr(t, "memoryd_window_stm_response_time_ms{window=\"1m\""));
    assert_non_null(strstr(t, "memoryd_window_stm_response_time_ms{window=\"15m\","
                              "stat=\"avg\"} 0.25\n"));
    assert_non_null(strstr(t, "memoryd_window_samples{metric=\"stm_response_time_ms\","
                              "window=\"15m\"} 1\n"));
    assert_non_null(strstr(t, "memoryd_window_cache_hit_rate_percent{window=\"15m\","
                              "stat=\"avg\"} 70\n"));

    /* Without extra: last tick's figures, no alerts; and the buffer cap is honoured. */
    md_buf_reset(&b);
    assert_int_equal(md_metrics_prometheus(m, &b, NULL), MD_OK);
    assert_non_null(strstr(b.data, "memoryd_cache_hits_total 7\n"));
    assert_non_null(strstr(b.data, "# TYPE memoryd_alert_firing gauge\n"));
    assert_null(strstr(b.data, "memoryd_alert_firing{"));
    struct md_buf small;
    md_buf_init(&small, 100);
    assert_int_equal(md_metrics_prometheus(m, &small, NULL), MD_E_LIMIT);
    md_buf_release(&small);

    free(text);
    free(f);
    md_buf_release(&b);
    md_metrics_free(m);
}

/* ---- store wrappers ------------------------------------------------------------------------ */

struct fake_stm {
    struct md_stm base;
    int destroyed;
    int pings;
};

static int fake_destroyed;

static enum md_status fake_get(void *self, const char *id, int64_t now_ms, struct md_stm_view *out,
                               struct md_error *err)
{
    (void)self;
    (void)now_ms;
    (void)out;
    (void)err;
    return strcmp(id, "missing") == 0 ? MD_E_NOTFOUND : MD_OK;
}

static enum md_status fake_ping(void *self, struct md_error *err)
{
    (void)err;
    ((struct fake_stm *)self)->pings++;
    return MD_E_UNAVAIL;
}

static void fake_pool_stats(void *self, struct md_pool_stats *out)
{
    (void)self;
    *out = (struct md_pool_stats){1, 1, 7, 0, 0};
}

static void fake_destroy(void *self)
{
    fake_destroyed++;
    free(self);
}

static const struct md_stm_ops fake_ops = {
    .backend = "redis",
    .get = fake_get,
    .ping = fake_ping,
    .pool_stats = fake_pool_stats,
    .destroy = fake_destroy,
};

static void test_store_wrapper(void **state)
{
    (void)state;
    struct md_metrics *m = make();
    struct fake_stm *inner = calloc(1, sizeof(*inner));
    assert_non_null(inner);
    inner->base.ops = &fake_ops;
    struct md_error err;
    md_error_clear(&err);
    struct md_stm *w = md_metrics_wrap_stm(m, &inner->base, &err);
    assert_non_null(w);
    assert_string_equal(w->ops->backend, "redis");
    assert_ptr_equal(md_metrics_unwrap_stm(w), &inner->base);
    assert_ptr_equal(md_metrics_unwrap_stm(&inner->base), &inner->base);
    struct md_stm_view v;
    assert_int_equal(w->ops->get(w, "x", 0, &v, &err), MD_OK);
    assert_int_equal(w->ops->get(w, "missing", 0, &v, &err), MD_E_NOTFOUND);
    assert_int_equal(w->ops->ping(w, &err), MD_E_UNAVAIL);
    assert_int_equal(inner->pings, 1);
    struct md_pool_stats ps;
    w->ops->pool_stats(w, &ps);
    assert_int_equal(ps.max, 7);
    md_metrics_tick(m, NULL);
    struct md_window win;
    md_metrics_window(m, MD_METRIC_STM_RESPONSE_TIME_MS, &win);
    assert_int_equal(win.samples_1m, 3);
    assert_int_equal(win.errors_1m, 1); /* only the ping: NOTFOUND is an answer */
    struct md_buf b;
    md_buf_init(&b, 1 << 20);
    assert_int_equal(md_metrics_prometheus(m, &b, NULL), MD_OK);
    assert_non_null(strstr(b.data, "memoryd_store_errors_total{store=\"stm\",op=\"get\"} 0\n"));
    assert_non_null(strstr(b.data, "memoryd_store_errors_total{store=\"stm\",op=\"ping\"} 1\n"));
    assert_non_null(strstr(b.data, "memoryd_store_call_duration_seconds_count{store=\"stm\","
                                   "op=\"get\"} 2\n"));
    md_buf_release(&b);
    fake_destroyed = 0;
    md_stm_destroy(w);
    assert_int_equal(fake_destroyed, 1);
    md_metrics_free(m);
}

/* ---- dashboard ------------------------------------------------------------------------------ */

static void test_dashboard_status_boundaries(void **state)
{
    (void)state;
    /* Lower is better: good <= 0.7 t, warning <= t, critical above. */
    static const enum md_metric lower[] = {
        MD_METRIC_STM_RESPONSE_TIME_MS, MD_METRIC_LTM_RESPONSE_TIME_MS,
        MD_METRIC_API_RESPONSE_TIME_MS, MD_METRIC_ERROR_RATE_PERCENT,
        MD_METRIC_CONNECTION_POOL_UTILIZATION_PERCENT};
    for (size_t i = 0; i < MD_ARRAY_LEN(lower); i++) {
        double t = md_metric_threshold(lower[i]);
        assert_string_equal(md_dashboard_status(lower[i], 0.0), "good");
        assert_string_equal(md_dashboard_status(lower[i], 0.7 * t), "good");
        assert_string_equal(md_dashboard_status(lower[i], t * 7 / 10), "good");
        assert_string_equal(md_dashboard_status(lower[i], 0.7 * t * 1.001), "warning");
        assert_string_equal(md_dashboard_status(lower[i], t), "warning");
        assert_string_equal(md_dashboard_status(lower[i], t * 1.001), "critical");
        assert_string_equal(md_dashboard_status(lower[i], NAN), "unknown");
    }
    /* Higher is better: good >= t, warning >= 0.8 t, critical below. */
    enum md_metric hr = MD_METRIC_CACHE_HIT_RATE_PERCENT;
    assert_string_equal(md_dashboard_status(hr, 100.0), "good");
    assert_string_equal(md_dashboard_status(hr, 70.0), "good");
    assert_string_equal(md_dashboard_status(hr, 69.99), "warning");
    assert_string_equal(md_dashboard_status(hr, 0.8 * 70.0), "warning");
    assert_string_equal(md_dashboard_status(hr, 56.0), "warning");
    assert_string_equal(md_dashboard_status(hr, 55.99), "critical");
    assert_string_equal(md_dashboard_status(hr, 0.0), "critical");
    assert_string_equal(md_dashboard_status(hr, NAN), "unknown");
}

static json_t *dash(struct md_metrics *m, const struct md_alert_list *l, const char *stm_backend,
                    const char *ltm_backend)
{
    struct md_dashboard_info info = {stm_backend, ltm_backend};
    int64_t now;
    assert_true(md_iso8601_parse("2026-11-26T15:28:56.123Z", &now));
    json_t *d = md_dashboard_json(m, l, &info, now);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "timestamp")),
                        "2026-11-26T15:28:56.123Z");
    assert_int_equal(json_object_size(d), 5);
    return d;
}

static json_t *km(json_t *d, const char *name)
{
    json_t *o = json_object_get(json_object_get(d, "key_metrics"), name);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 5);
    return o;
}

static void test_dashboard_json(void **state)
{
    (void)state;
    struct md_metrics *m = make();
    /* Empty: every metric unknown with nulls; healthy. */
    json_t *d = dash(m, NULL, "embedded", "embedded");
    assert_string_equal(json_string_value(json_object_get(d, "system_health")), "healthy");
    assert_int_equal(json_array_size(json_object_get(d, "alerts")), 0);
    assert_int_equal(json_object_size(json_object_get(d, "key_metrics")), 6);
    for (int i = 0; i < MD_METRIC_COUNT; i++) {
        json_t *o = km(d, md_metric_name((enum md_metric)i));
        assert_true(json_is_null(json_object_get(o, "current")));
        assert_true(json_is_null(json_object_get(o, "average")));
        assert_true(json_is_null(json_object_get(o, "p95")));
        assert_string_equal(json_string_value(json_object_get(o, "status")), "unknown");
        assert_true(json_real_value(json_object_get(o, "threshold")) ==
                    md_metric_threshold((enum md_metric)i));
    }
    json_t *cp = json_object_get(d, "component_performance");
    assert_int_equal(json_object_size(cp), 5);
    assert_true(json_is_false(json_object_get(json_object_get(cp, "redis"), "configured")));
    assert_true(json_is_false(json_object_get(json_object_get(cp, "neo4j"), "configured")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(cp, "stm"), "calls")),
                     0);
    assert_true(json_is_null(json_object_get(json_object_get(cp, "stm"), "avg_ms")));
    json_decref(d);

    /* A cache with fewer lookups than the alert minimum: a 0 % hit rate is no signal. */
    struct md_metrics_sample few;
    memset(&few, 0, sizeof(few));
    few.has_cache = true;
    few.cache.misses = 5;
    md_metrics_tick(m, &few);
    d = dash(m, NULL, "redis", "embedded");
    assert_string_equal(json_string_value(json_object_get(km(d, "cache_hit_rate_percent"),
                                                          "status")),
                        "unknown");
    assert_true(json_real_value(json_object_get(km(d, "cache_hit_rate_percent"), "current")) ==
                0.0);
    json_decref(d);

    /* STM at 80 ms (warning), LTM 600 ms (critical), cache 90 % (good), pool 50 % (good). */
    for (int i = 0; i < 20; i++) {
        md_metrics_store(m, MD_STORE_STM, MD_STM_OP_get, i != 0, 80000);
        md_metrics_store(m, MD_STORE_LTM, MD_LTM_OP_get, true, 600000);
        md_metrics_http(m, 0, MD_M_GET, 200, 1000);
    }
    struct md_metrics_sample s;
    memset(&s, 0, sizeof(s));
    s.has_cache = true;
    s.cache.hits = 90;
    s.cache.misses = 10;
    s.has_pool[MD_STORE_STM] = true;
    s.pool[MD_STORE_STM] = (struct md_pool_stats){20, 10, 20, 5, 0};
    md_metrics_tick(m, &s);
    d = dash(m, NULL, "redis", "embedded");
    assert_string_equal(json_string_value(json_object_get(d, "system_health")), "critical");
    json_t *o = km(d, "stm_response_time_ms");
    assert_true(json_real_value(json_object_get(o, "current")) == 80.0);
    assert_true(json_real_value(json_object_get(o, "average")) == 80.0);
    assert_true(json_real_value(json_object_get(o, "p95")) == 80.0);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "warning");
    assert_string_equal(json_string_value(json_object_get(km(d, "ltm_response_time_ms"),
                                                          "status")),
                        "critical");
    assert_string_equal(json_string_value(json_object_get(km(d, "cache_hit_rate_percent"),
                                                          "status")),
                        "good");
    assert_string_equal(json_string_value(json_object_get(km(d, "error_rate_percent"),
                                                          "status")),
                        "good");
    assert_string_equal(
        json_string_value(json_object_get(km(d, "connection_pool_utilization_percent"),
                                          "status")),
        "good");
    cp = json_object_get(d, "component_performance");
    json_t *stm = json_object_get(cp, "stm");
    assert_int_equal(json_integer_value(json_object_get(stm, "calls")), 20);
    assert_int_equal(json_integer_value(json_object_get(stm, "errors")), 1);
    assert_string_equal(json_string_value(json_object_get(stm, "backend")), "redis");
    json_t *redis = json_object_get(cp, "redis");
    assert_true(json_is_true(json_object_get(redis, "configured")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(redis, "pool"), "in_use")),
                     10);
    assert_true(json_real_value(json_object_get(redis, "utilization_percent")) == 50.0);
    assert_true(json_real_value(json_object_get(redis, "avg_ms")) == 80.0);
    assert_true(json_is_false(json_object_get(json_object_get(cp, "neo4j"), "configured")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(cp, "api"), "calls")),
                     20);
    json_decref(d);

    /* Two minutes later: current empty, status judged on the 15-minute average. */
    advance_s(120);
    d = dash(m, NULL, "redis", "neo4j");
    o = km(d, "stm_response_time_ms");
    assert_true(json_is_null(json_object_get(o, "current")));
    assert_true(json_real_value(json_object_get(o, "average")) == 80.0);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "warning");
    json_t *neo = json_object_get(json_object_get(d, "component_performance"), "neo4j");
    assert_true(json_is_true(json_object_get(neo, "configured")));
    assert_true(json_is_null(json_object_get(neo, "pool")));
    json_decref(d);

    /* Only warnings: system health "warning"; an active alert alone makes "warning" too. */
    struct md_metrics *m2 = make();
    for (int i = 0; i < 10; i++)
        md_metrics_store(m2, MD_STORE_STM, MD_STM_OP_get, true, 90000);
    md_metrics_tick(m2, NULL);
    d = dash(m2, NULL, "embedded", "embedded");
    assert_string_equal(json_string_value(json_object_get(d, "system_health")), "warning");
    json_decref(d);
    struct md_metrics *m3 = make();
    struct md_alert_status st[2];
    memset(st, 0, sizeof(st));
    snprintf(st[0].rule.name, sizeof(st[0].rule.name), "a_pending");
    st[0].state = MD_ALERT_PENDING;
    st[0].severity = "warning";
    snprintf(st[1].rule.name, sizeof(st[1].rule.name), "b_quiet");
    struct md_alert_list l = {st, NULL, 2};
    d = dash(m3, &l, "embedded", "embedded");
    assert_string_equal(json_string_value(json_object_get(d, "system_health")), "warning");
    json_t *al = json_object_get(d, "alerts");
    assert_int_equal(json_array_size(al), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(al, 0), "name")),
                        "a_pending");
    json_decref(d);
    st[0].state = MD_ALERT_FIRING;
    st[0].severity = "critical";
    d = dash(m3, &l, "embedded", "embedded");
    assert_string_equal(json_string_value(json_object_get(d, "system_health")), "critical");
    json_decref(d);
    md_metrics_free(m3);
    md_metrics_free(m2);
    md_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels_and_names),
        cmocka_unit_test(test_p95_uniform),
        cmocka_unit_test(test_p95_skewed),
        cmocka_unit_test(test_p95_single_value),
        cmocka_unit_test(test_window_empty_is_nan),
        cmocka_unit_test(test_window_rollover_exact),
        cmocka_unit_test(test_window_steady_traffic),
        cmocka_unit_test(test_window_stalled_janitor),
        cmocka_unit_test(test_background_ops_not_windowed),
        cmocka_unit_test(test_ratio_metrics),
        cmocka_unit_test(test_error_rate),
        cmocka_unit_test(test_concurrent_exact_totals),
        cmocka_unit_test(test_prometheus_exposition),
        cmocka_unit_test(test_store_wrapper),
        cmocka_unit_test(test_dashboard_status_boundaries),
        cmocka_unit_test(test_dashboard_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
