/*
 * conn_guard.h — deadlines for slow clients, and a budget for repetitive log lines.
 *
 * libmicrohttpd's connection timeout is an *idle* timeout: a client that sends
 * one byte of its headers every second is never idle, so it could hold a
 * connection (and a per-IP slot) forever ("slow loris"). The guard gives every
 * connection a deadline while memoryd waits for the client — for a complete
 * request head, then for the rest of the body — and shuts the socket down
 * (shutdown(2), never close(2): the descriptor stays libmicrohttpd's) when
 * the deadline passes; libmicrohttpd then sees EOF and closes the connection
 * itself. No deadline runs while a request is being handled or answered.
 *
 * Protocol with the HTTP server (all calls thread-safe):
 *   connection accepted      md_conn_guard_add()      (armed: headers due)
 *   headers in, body follows md_conn_guard_arm()      (body due)
 *   request complete         md_conn_guard_disarm()   (handling: no deadline)
 *   response sent            md_conn_guard_arm()      (next request due)
 *   connection closing       md_conn_guard_remove()   (before the fd is closed)
 * A sweeper thread checks the deadlines a few times per second.
 *
 * The log budget lets a source of repetitive warnings (libmicrohttpd refusing
 * connections under a flood) write a few lines per second and counts the rest.
 */
#ifndef MD_CONN_GUARD_H
#define MD_CONN_GUARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "memoryd/status.h"

struct md_conn_guard;
struct md_conn_watch;

/* Start the sweeper; timeout_ms > 0. NULL + err when out of memory or threads. */
struct md_conn_guard *md_conn_guard_start(int64_t timeout_ms, struct md_error *err);

/* Stop the sweeper and free the guard (every watch must have been removed). NULL ok. */
void md_conn_guard_stop(struct md_conn_guard *g);

/* Watch a new connection's socket, armed; NULL when out of memory (then unwatched). */
struct md_conn_watch *md_conn_guard_add(struct md_conn_guard *g, int fd);

/* Forget a connection; call before its descriptor is closed. NULL ok. */
void md_conn_guard_remove(struct md_conn_guard *g, struct md_conn_watch *w);

/* Deadline = now + timeout. NULL ok. */
void md_conn_guard_arm(struct md_conn_guard *g, struct md_conn_watch *w);

/* No deadline. NULL ok. */
void md_conn_guard_disarm(struct md_conn_watch *w);

/* Connections shut down for missing their deadline since start. */
uint64_t md_conn_guard_expired(const struct md_conn_guard *g);

/* At most `per_second` lines per second (token bucket of that size). */
struct md_log_budget {
    atomic_flag lock;
    int64_t window_ms; /* start of the current one-second window (monotonic) */
    int used;          /* lines written in the window */
    uint64_t suppressed; /* lines dropped since the last line written */
    int per_second;
};

#define MD_LOG_BUDGET_INIT(n) {ATOMIC_FLAG_INIT, 0, 0, 0, (n)}

/*
 * true: write this line (*dropped = how many were suppressed before it, to be
 * mentioned); false: drop it (counted).
 */
bool md_log_budget_take(struct md_log_budget *b, int64_t now_ms, uint64_t *dropped);

#endif
