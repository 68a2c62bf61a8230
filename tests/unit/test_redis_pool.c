/*
 * test_redis_pool.c — the hiredis pool without a server (label "unit"):
 * option checks, fail-fast dials against a closed port, the reconnect
 * backoff and the figures. Behaviour against a live Redis (leases, waits,
 * health checks, kill/stop) is covered by test_stm_redis.
 */
#include "memoryd/compat.h"

#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "memoryd/clock.h"
#include "memoryd/redis_pool.h"
#include "memoryd/stm.h"

/* A port on which nothing listens (bound, then released). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static struct md_redis_pool_options options(int port)
{
    struct md_redis_pool_options o = {
        .host = "127.0.0.1",
        .port = port,
        .username = "",
        .password = "secret-never-shown",
        .max_connections = 4,
        .connect_timeout_ms = 500,
        .socket_timeout_ms = 500,
        .health_check_interval_ms = 1000,
        .acquisition_timeout_ms = 100,
    };
    return o;
}

static void test_invalid_options(void **state)
{
    MD_UNUSED(state);
    struct md_error err;
    md_error_clear(&err);
    struct md_redis_pool_options o = options(6379);
    o.max_connections = 0;
    assert_null(md_redis_pool_new(&o, &err));
    assert_int_equal(err.code, MD_E_INVAL);
    o = options(0);
    assert_null(md_redis_pool_new(&o, &err));
    o = options(6379);
    o.host = "";
    assert_null(md_redis_pool_new(&o, &err));
    assert_null(md_redis_pool_new(NULL, &err));
    md_redis_pool_free(NULL);
}

static void test_refused_then_backoff(void **state)
{
    MD_UNUSED(state);
    struct md_redis_pool_options o = options(closed_port());
    struct md_error err;
    md_error_clear(&err);
    struct md_redis_pool *p = md_redis_pool_new(&o, &err);
    assert_non_null(p);
    /* Nothing dialled yet. */
    struct md_pool_stats ps;
    md_redis_pool_stats(p, &ps);
    assert_int_equal(ps.size, 0);
    assert_int_equal(ps.max, 4);

    redisContext *c = NULL;
    assert_int_equal(md_redis_pool_checkout(p, &c, &err), MD_E_UNAVAIL);
    int64_t t = md_mono_ms();
    assert_null(c);
    assert_string_equal(err.msg, "redis unavailable");
    assert_non_null(strstr(err.detail, "cannot connect"));
    assert_null(strstr(err.detail, "secret"));
    /* Within the 50 ms backoff: no dial, immediate failure naming the cause
     * (checked only while surely inside it, for slow sanitizer runs). */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(md_redis_pool_checkout(p, &c, &err), MD_E_UNAVAIL);
        if (md_mono_ms() - t < 40)
            assert_non_null(strstr(err.detail, "backoff"));
    }
    /* After the backoff one dial is tried again (and fails again). */
    md_sleep_ms(60);
    assert_int_equal(md_redis_pool_checkout(p, &c, &err), MD_E_UNAVAIL);
    assert_non_null(strstr(err.detail, "cannot connect"));
    /* The steps double: 100 ms now. */
    t = md_mono_ms();
    md_sleep_ms(60);
    assert_int_equal(md_redis_pool_checkout(p, &c, &err), MD_E_UNAVAIL);
    if (md_mono_ms() - t < 90)
        assert_non_null(strstr(err.detail, "backoff"));
    md_redis_pool_stats(p, &ps);
    assert_int_equal(ps.size, 0);
    assert_int_equal(ps.in_use, 0);
    assert_int_equal(ps.waits, 0);
    assert_int_equal(ps.timeouts, 0);
    md_redis_pool_free(p);
}

static void test_unresolvable_host(void **state)
{
    MD_UNUSED(state);
    struct md_redis_pool_options o = options(6379);
    o.host = "no-such-host.invalid";
    struct md_error err;
    md_error_clear(&err);
    struct md_redis_pool *p = md_redis_pool_new(&o, &err);
    assert_non_null(p);
    redisContext *c = NULL;
    assert_int_equal(md_redis_pool_checkout(p, &c, &err), MD_E_UNAVAIL);
    assert_non_null(strstr(err.detail, "no-such-host.invalid"));
    md_redis_pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_options),
        cmocka_unit_test(test_refused_then_backoff),
        cmocka_unit_test(test_unresolvable_host),
    };
    return cmocka_run_group_tests_name("redis_pool", tests, NULL, NULL);
}
