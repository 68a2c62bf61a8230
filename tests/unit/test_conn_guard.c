/* test_conn_guard.c — connection deadlines on real sockets, and the log budget. */
#include "memoryd/compat.h"

#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "memoryd/clock.h"
#include "memoryd/conn_guard.h"

/* true when the peer of fd sees end-of-file within ms (the guard shut fd down). */
static bool peer_sees_eof(int peer, int ms)
{
    struct pollfd p = {.fd = peer, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    char c;
    return read(peer, &c, 1) == 0;
}

static void test_armed_connection_is_shut_down_after_the_timeout(void **state)
{
    (void)state;
    struct md_error err;
    struct md_conn_guard *g = md_conn_guard_start(200, &err);
    assert_non_null(g);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int64_t t0 = md_mono_ms();
    struct md_conn_watch *w = md_conn_guard_add(g, sv[0]);
    assert_non_null(w);
    assert_false(peer_sees_eof(sv[1], 100)); /* not before the deadline */
    assert_true(peer_sees_eof(sv[1], 2000));
    int64_t took = md_mono_ms() - t0;
    assert_true(took >= 200 && took < 1500);
    assert_int_equal(md_conn_guard_expired(g), 1);
    md_conn_guard_remove(g, w); /* the descriptor is still ours to close */
    close(sv[0]);
    close(sv[1]);
    md_conn_guard_stop(g);
}

static void test_disarmed_and_rearmed(void **state)
{
    (void)state;
    struct md_error err;
    struct md_conn_guard *g = md_conn_guard_start(150, &err);
    assert_non_null(g);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct md_conn_watch *w = md_conn_guard_add(g, sv[0]);
    md_conn_guard_disarm(w); /* a request being handled has no deadline */
    assert_false(peer_sees_eof(sv[1], 500));
    for (int i = 0; i < 4; i++) { /* activity keeps pushing the deadline back */
        md_conn_guard_arm(g, w);
        assert_false(peer_sees_eof(sv[1], 60));
    }
    md_conn_guard_arm(g, w);
    assert_true(peer_sees_eof(sv[1], 2000));
    md_conn_guard_remove(g, w);
    close(sv[0]);
    close(sv[1]);
    md_conn_guard_stop(g);
}

static void test_many_watches_and_null_arguments(void **state)
{
    (void)state;
    struct md_error err;
    struct md_conn_guard *g = md_conn_guard_start(100, &err);
    assert_non_null(g);
    int fds[16][2];
    struct md_conn_watch *w[16];
    for (int i = 0; i < 16; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]), 0);
        w[i] = md_conn_guard_add(g, fds[i][0]);
        if (i % 2)
            md_conn_guard_disarm(w[i]);
    }
    /* remove from the middle, the head and the tail of the list */
    md_conn_guard_remove(g, w[5]);
    md_conn_guard_remove(g, w[15]);
    md_conn_guard_remove(g, w[0]);
    md_sleep_ms(600);
    for (int i = 1; i < 15; i++) {
        if (i == 5)
            continue;
        struct pollfd p = {.fd = fds[i][1], .events = POLLIN};
        bool eof = poll(&p, 1, 0) == 1;
        assert_int_equal(eof, i % 2 == 0);
    }
    for (int i = 0; i < 16; i++) {
        if (i != 0 && i != 5 && i != 15)
            md_conn_guard_remove(g, w[i]);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    assert_null(md_conn_guard_add(NULL, 3));
    assert_null(md_conn_guard_add(g, -1));
    md_conn_guard_remove(g, NULL);
    md_conn_guard_arm(g, NULL);
    md_conn_guard_disarm(NULL);
    md_conn_guard_stop(g);
    md_conn_guard_stop(NULL);
}

static void test_log_budget(void **state)
{
    (void)state;
    struct md_log_budget b = MD_LOG_BUDGET_INIT(3);
    uint64_t dropped = 99;
    for (int i = 0; i < 3; i++) {
        assert_true(md_log_budget_take(&b, 1000, &dropped));
        assert_int_equal(dropped, 0);
    }
    for (int i = 0; i < 10; i++)
        assert_false(md_log_budget_take(&b, 1500, &dropped));
    /* a new second: the next line carries the count of the dropped ones */
    assert_true(md_log_budget_take(&b, 2000, &dropped));
    assert_int_equal(dropped, 10);
    assert_true(md_log_budget_take(&b, 2001, &dropped));
    assert_int_equal(dropped, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_armed_connection_is_shut_down_after_the_timeout),
        cmocka_unit_test(test_disarmed_and_rearmed),
        cmocka_unit_test(test_many_watches_and_null_arguments),
        cmocka_unit_test(test_log_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
