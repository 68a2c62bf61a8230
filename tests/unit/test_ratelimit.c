/* test_ratelimit.c — token bucket arithmetic, isolation between clients, bounds. */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "memoryd/ratelimit.h"

static void test_off(void **state)
{
    (void)state;
    assert_null(md_ratelimit_new(0, 10));
}

static void test_burst_then_rate(void **state)
{
    (void)state;
    struct md_ratelimit *rl = md_ratelimit_new(2.0, 5);
    int retry = 0;
    for (int i = 0; i < 5; i++)
        assert_true(md_ratelimit_take(rl, "key-a", 1000, &retry));
    assert_false(md_ratelimit_take(rl, "key-a", 1000, &retry));
    assert_int_equal(retry, 1);
    /* another client is unaffected */
    assert_true(md_ratelimit_take(rl, "key-b", 1000, &retry));
    /* 2 rps: after 500 ms one token is back, not two */
    assert_true(md_ratelimit_take(rl, "key-a", 1500, &retry));
    assert_false(md_ratelimit_take(rl, "key-a", 1500, &retry));
    /* after a long idle the bucket is full again, but never above burst */
    for (int i = 0; i < 5; i++)
        assert_true(md_ratelimit_take(rl, "key-a", 100000, &retry));
    assert_false(md_ratelimit_take(rl, "key-a", 100000, &retry));
    md_ratelimit_free(rl);
}

static void test_slow_rate_retry_after(void **state)
{
    (void)state;
    struct md_ratelimit *rl = md_ratelimit_new(0.1, 1); /* one per 10 s */
    int retry = 0;
    assert_true(md_ratelimit_take(rl, "c", 0, &retry));
    assert_false(md_ratelimit_take(rl, "c", 0, &retry));
    assert_int_equal(retry, 10);
    md_ratelimit_free(rl);
}

static void test_many_clients_bounded(void **state)
{
    (void)state;
    struct md_ratelimit *rl = md_ratelimit_new(1.0, 1);
    int retry;
    char name[32];
    /* Far more clients than slots, all busy at once: a fresh client is
     * admitted anyway (fail open when the table is full)… */
    for (int i = 0; i < 100000; i++) {
        snprintf(name, sizeof(name), "client-%d", i);
        assert_true(md_ratelimit_take(rl, name, 0, &retry));
    }
    assert_true(md_ratelimit_take(rl, "repeat", 0, &retry));
    assert_true(md_ratelimit_take(rl, "repeat", 0, &retry));
    /* …and once those buckets refilled (idle), their slots are recycled and
     * a client is tracked and throttled again. */
    assert_true(md_ratelimit_take(rl, "repeat", 5000, &retry));
    assert_false(md_ratelimit_take(rl, "repeat", 5000, &retry));
    md_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_slow_rate_retry_after),
        cmocka_unit_test(test_many_clients_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
