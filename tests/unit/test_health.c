/*
 * test_health.c — the store probes behind /health, against fake stores.
 */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "memoryd/app.h"
#include "memoryd/health.h"
#include "memoryd/ltm.h"
#include "memoryd/stm.h"

/* A ping that takes 50 ms: the first probe is still running right after start. */
static enum md_status slow_ping(void *self, struct md_error *err)
{
    (void)self;
    (void)err;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    return MD_OK;
}

static const struct md_stm_ops stm_ops = {.backend = "embedded", .ping = slow_ping};
static const struct md_ltm_ops ltm_ops = {.backend = "embedded", .ping = slow_ping};

/* Start-up waits for the first probes, so /health never reads "not probed yet". */
static void test_start_waits_for_first_probes(void **state)
{
    (void)state;
    struct md_stm stm = {&stm_ops};
    struct md_ltm ltm = {&ltm_ops};
    struct md_app app;
    memset(&app, 0, sizeof(app));
    app.stm = &stm;
    app.ltm = &ltm;
    struct md_error err;
    struct md_health *h = md_health_start(&app, 60.0, &err);
    assert_non_null(h);
    struct md_component_health s, l;
    md_health_get(h, &s, &l);
    assert_int_equal(s.status, MD_HEALTHY);
    assert_int_equal(l.status, MD_HEALTHY);
    assert_string_equal(s.message, "ok");
    assert_true(s.checked_ms > 0 && l.checked_ms > 0);
    assert_true(s.latency_ms >= 40.0);
    md_health_stop(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_waits_for_first_probes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
