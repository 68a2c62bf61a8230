/*
 * listener.c — memoryd's own listening socket and accept thread (see listener.h).
 *
 * Ownership: the listener owns the listening socket, the wake-up eventfd and
 * the accept thread; md_listener_close() joins the thread and closes the
 * socket, md_listener_free() closes the eventfd and frees the struct.
 * Accepted descriptors belong to hand() from the moment it is called.
 *
 * One mutex guards the counts (taken once per connection opened or closed,
 * never per request). The thread sleeps in poll() on the socket and the
 * eventfd while there is room, and on a condition variable while the cap is
 * reached (woken by md_listener_closed(), re-checked every 200 ms so that
 * connections lost in transit are forgotten after MD_TRANSIT_MS).
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "memoryd/clock.h"
#include "memoryd/conn_guard.h"
#include "memoryd/listener.h"
#include "memoryd/log.h"

#define MD_TRANSIT_MS 1000     /* a hand-over never opened after this is presumed lost */
#define MD_ROOM_RECHECK_MS 200 /* at the cap: how often the transit count is re-checked */
#define MD_ACCEPT_PAUSE_MS 100 /* after an accept error (out of descriptors …) */

struct md_listener {
    int fd;   /* the listening socket; -1 once closed */
    int wake; /* eventfd: written by md_listener_close() */
    int port;
    pthread_t tid;
    bool running; /* the thread was started and not joined yet */

    pthread_mutex_t mu;
    pthread_cond_t room_cv; /* a connection closed, or closing */
    int max_open;
    int open;          /* being served */
    int transit;       /* handed over, not yet reported opened */
    int64_t handed_ms; /* when the last connection was handed over */
    bool closing;

    md_listener_hand_fn hand;
    void *hand_ctx;
};

static struct md_log_budget accept_log_budget = MD_LOG_BUDGET_INIT(2);

struct md_listener *md_listener_open(const struct sockaddr *addr, socklen_t addrlen, int backlog,
                                     int max_open, struct md_error *err)
{
    struct md_listener *l = calloc(1, sizeof(*l));
    if (!l) {
        md_error_set(err, MD_E_NOMEM, "out of memory opening the listening socket");
        return NULL;
    }
    l->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    l->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->max_open = max_open > 0 ? max_open : 1;
    if (l->fd < 0 || l->wake < 0) {
        md_error_set(err, MD_E_IO, "cannot create the listening socket: %s", strerror(errno));
        goto fail;
    }
    int on = 1;
    /* SO_REUSEADDR: a restart binds at once despite connections in TIME_WAIT. */
    (void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (addr->sa_family == AF_INET6)
        (void)setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(l->fd, addr, addrlen) != 0 || listen(l->fd, backlog) != 0) {
        md_error_set(err, MD_E_IO, "%s", strerror(errno));
        goto fail;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(l->fd, (struct sockaddr *)&bound, &blen) == 0)
        l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->room_cv, &ca);
    pthread_condattr_destroy(&ca);
    return l;
fail:
    if (l->fd >= 0)
        close(l->fd);
    if (l->wake >= 0)
        close(l->wake);
    free(l);
    return NULL;
}

int md_listener_port(const struct md_listener *l)
{
    return l->port;
}

/* Wait (mutex held) until a connection may be accepted; false when closing. */
static bool wait_for_room(struct md_listener *l)
{
    for (;;) {
        if (l->closing)
            return false;
        if (l->transit > 0 && md_mono_ms() - l->handed_ms > MD_TRANSIT_MS)
            l->transit = 0; /* lost in the hand-over (see listener.h) */
        if (l->open + l->transit < l->max_open)
            return true;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)MD_ROOM_RECHECK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->room_cv, &l->mu, &ts);
    }
}

/* Sleep `ms` unless the listener is closed meanwhile; false when closing. */
static bool pause_accepting(struct md_listener *l, int ms)
{
    struct pollfd p = {.fd = l->wake, .events = POLLIN};
    return poll(&p, 1, ms) != 1; /* timeout or EINTR: go on; the eventfd: closing */
}

static void accept_failed(int e)
{
    uint64_t dropped;
    if (md_log_budget_take(&accept_log_budget, md_mono_ms(), &dropped))
        md_log_warn("http",
                    "accept() failed: %s; pausing %d ms (%llu similar message(s) suppressed)",
                    strerror(e), MD_ACCEPT_PAUSE_MS, (unsigned long long)dropped);
}

static void *accept_main(void *arg)
{
    struct md_listener *l = arg;
    pthread_setname_np(pthread_self(), "md-accept");
    for (;;) {
        pthread_mutex_lock(&l->mu);
        bool room = wait_for_room(l);
        pthread_mutex_unlock(&l->mu);
        if (!room)
            break;
        struct pollfd p[2] = {{.fd = l->fd, .events = POLLIN}, {.fd = l->wake, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) { /* EINTR; ENOMEM: pause rather than spin */
            if (errno != EINTR && !pause_accepting(l, MD_ACCEPT_PAUSE_MS))
                break;
            continue;
        }
        if (p[1].revents)
            break;
        if (!p[0].revents)
            continue;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            accept_failed(e);
            if (!pause_accepting(l, MD_ACCEPT_PAUSE_MS))
                break;
            continue;
        }
        pthread_mutex_lock(&l->mu);
        l->transit++; /* before the hand-over: the server may report it opened at once */
        l->handed_ms = md_mono_ms();
        pthread_mutex_unlock(&l->mu);
        if (!l->hand(l->hand_ctx, fd, (struct sockaddr *)&ss, len)) {
            pthread_mutex_lock(&l->mu);
            if (l->transit > 0)
                l->transit--;
            pthread_mutex_unlock(&l->mu);
        }
    }
    return NULL;
}

bool md_listener_run(struct md_listener *l, md_listener_hand_fn hand, void *ctx,
                     struct md_error *err)
{
    l->hand = hand;
    l->hand_ctx = ctx;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)256 * 1024);
    int rc = pthread_create(&l->tid, &attr, accept_main, l);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        md_error_set(err, MD_E_NOMEM, "cannot start the accept thread: %s", strerror(rc));
        return false;
    }
    l->running = true;
    return true;
}

void md_listener_opened(struct md_listener *l)
{
    pthread_mutex_lock(&l->mu);
    l->open++;
    if (l->transit > 0) /* 0: it was presumed lost (MD_TRANSIT_MS) and is counted now */
        l->transit--;
    pthread_mutex_unlock(&l->mu);
}

void md_listener_closed(struct md_listener *l)
{
    pthread_mutex_lock(&l->mu);
    l->open--;
    pthread_cond_signal(&l->room_cv);
    pthread_mutex_unlock(&l->mu);
}

void md_listener_close(struct md_listener *l)
{
    if (!l || l->fd < 0)
        return;
    pthread_mutex_lock(&l->mu);
    l->closing = true;
    pthread_cond_signal(&l->room_cv);
    pthread_mutex_unlock(&l->mu);
    uint64_t one = 1;
    ssize_t w = write(l->wake, &one, sizeof(one));
    (void)w; /* cannot fail short of counter overflow; `closing` is set anyway */
    if (l->running)
        pthread_join(l->tid, NULL);
    l->running = false;
    close(l->fd); /* from here on, connection attempts are refused by the kernel */
    l->fd = -1;
}

void md_listener_free(struct md_listener *l)
{
    if (!l)
        return;
    md_listener_close(l);
    close(l->wake);
    pthread_cond_destroy(&l->room_cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
