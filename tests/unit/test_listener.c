/*
 * test_listener.c — memoryd's accept thread on real loopback sockets: the
 * connection cap (clients beyond it wait, never accepted-and-closed), room
 * made by a closed connection, a hand-over that is never reported opened
 * stops counting, and closing the listener refuses new clients at once.
 */
#include "memoryd/compat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "memoryd/clock.h"
#include "memoryd/listener.h"

/* The receiving side: keeps what it is handed, reports it opened unless told not to. */
struct receiver {
    pthread_mutex_t mu;
    struct md_listener *l;
    int fds[16];
    int n;
    bool report_opened;
};

static bool receive(void *ctx, int fd, const struct sockaddr *addr, socklen_t len)
{
    (void)addr;
    (void)len;
    struct receiver *r = ctx;
    pthread_mutex_lock(&r->mu);
    bool ok = r->n < 16;
    if (ok)
        r->fds[r->n++] = fd;
    pthread_mutex_unlock(&r->mu);
    if (!ok) {
        close(fd);
        return false;
    }
    if (r->report_opened)
        md_listener_opened(r->l);
    return true;
}

static int received(struct receiver *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Wait up to ms for at least n hand-overs; the count seen. */
static int wait_received(struct receiver *r, int n, int ms)
{
    int64_t until = md_mono_ms() + ms;
    while (received(r) < n && md_mono_ms() < until)
        md_sleep_ms(5);
    return received(r);
}

static struct md_listener *start(struct receiver *r, int max_open)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct md_error err;
    struct md_listener *l = md_listener_open((struct sockaddr *)&sa, sizeof(sa), 64, max_open,
                                             &err);
    assert_non_null(l);
    assert_true(md_listener_port(l) > 0);
    pthread_mutex_init(&r->mu, NULL);
    r->l = l;
    assert_true(md_listener_run(l, receive, r, &err));
    return l;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -errno;
    }
    return fd;
}

/* The client sees no EOF or reset within ms: its connection was not closed. */
static bool still_open(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 0;
}

static void finish(struct md_listener *l, struct receiver *r, int *clients, int n)
{
    md_listener_close(l);
    md_listener_free(l);
    for (int i = 0; i < r->n; i++)
        close(r->fds[i]);
    for (int i = 0; i < n; i++)
        if (clients[i] >= 0)
            close(clients[i]);
    pthread_mutex_destroy(&r->mu);
}

static void test_cap_holds_clients_in_the_queue_until_a_connection_closes(void **state)
{
    (void)state;
    struct receiver r = {.report_opened = true};
    struct md_listener *l = start(&r, 2);
    int port = md_listener_port(l);
    int c[3];
    for (int i = 0; i < 3; i++)
        c[i] = dial(port); /* the kernel completes all three handshakes */
    for (int i = 0; i < 3; i++)
        assert_true(c[i] >= 0);
    assert_int_equal(wait_received(&r, 2, 2000), 2);
    md_sleep_ms(400);
    assert_int_equal(received(&r), 2); /* the third waits in the listen queue ... */
    assert_true(still_open(c[2], 0));  /* ... and is not closed */
    md_listener_closed(l);             /* one of the two ends: room for the third */
    assert_int_equal(wait_received(&r, 3, 2000), 3);
    finish(l, &r, c, 3);
}

static void test_a_hand_over_never_reported_opened_stops_counting(void **state)
{
    (void)state;
    struct receiver r = {.report_opened = false}; /* the server "lost" them */
    struct md_listener *l = start(&r, 1);
    int port = md_listener_port(l);
    int c[2] = {dial(port), dial(port)};
    assert_true(c[0] >= 0 && c[1] >= 0);
    assert_int_equal(wait_received(&r, 1, 2000), 1);
    int64_t t0 = md_mono_ms();
    assert_int_equal(wait_received(&r, 2, 3000), 2); /* after the transit grace (1 s) */
    assert_true(md_mono_ms() - t0 >= 700);
    finish(l, &r, c, 2);
}

static void test_closing_refuses_new_clients_at_once(void **state)
{
    (void)state;
    struct receiver r = {.report_opened = true};
    struct md_listener *l = start(&r, 8);
    int port = md_listener_port(l);
    int c[1] = {dial(port)};
    assert_true(c[0] >= 0);
    assert_int_equal(wait_received(&r, 1, 2000), 1);
    int64_t t0 = md_mono_ms();
    md_listener_close(l); /* joins the accept thread */
    assert_true(md_mono_ms() - t0 < 1000);
    assert_int_equal(dial(port), -ECONNREFUSED);
    assert_true(still_open(r.fds[0], 0)); /* what was handed over is the receiver's */
    finish(l, &r, c, 1);
}

static void test_a_port_in_use_is_an_error(void **state)
{
    (void)state;
    struct receiver r = {.report_opened = true};
    struct md_listener *l = start(&r, 4);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)md_listener_port(l));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct md_error err;
    md_error_clear(&err);
    assert_null(md_listener_open((struct sockaddr *)&sa, sizeof(sa), 64, 4, &err));
    assert_non_null(strstr(err.msg, "in use"));
    finish(l, &r, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_holds_clients_in_the_queue_until_a_connection_closes),
        cmocka_unit_test(test_a_hand_over_never_reported_opened_stops_counting),
        cmocka_unit_test(test_closing_refuses_new_clients_at_once),
        cmocka_unit_test(test_a_port_in_use_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
