/*
 * redis_pool.h — a bounded pool of synchronous hiredis connections.
 *
 * At most max_connections connections (slots): a stack of idle ones guarded
 * by one mutex and a condition variable. md_redis_pool_checkout() leases a
 * connected context (the most recently used idle one), dialling lazily (up
 * to max connections) and waiting up to the acquisition timeout when all are
 * busy. A slot idle for longer than the health-check interval is PINGed
 * before it is handed out. A caller that sees a dead context (ctx->err set,
 * or a timeout) checks it in with `broken = true`: the slot is closed and
 * re-dialled on a later checkout, with exponential backoff between failed
 * dials so that a dead Redis is not hammered. Every new connection runs AUTH
 * (when a password is set) and SELECT. No lock is ever held across network
 * I/O.
 *
 * Failure behaviour, so that callers answer in bounded time:
 *  - a failed dial starts an exponential backoff (50 ms doubling to 1 s);
 *    until it ends, checkouts that would have to dial fail at once with
 *    MD_E_UNAVAIL, and after it only one checkout at a time probes Redis
 *    (the others keep failing fast) until a dial succeeds again;
 *  - an idle connection whose peer has gone (Redis restarted or killed) is
 *    detected without a round trip (poll for EOF) and replaced on checkout;
 *  - every command is bounded by the socket timeout, every dial by the
 *    connect timeout plus the socket timeout, every wait for a busy pool by
 *    the acquisition timeout.
 *
 * Thread safety: all functions are thread-safe; a leased context belongs to
 * the caller until checkin. Never share a redisContext across threads.
 */
#ifndef MD_REDIS_POOL_H
#define MD_REDIS_POOL_H

#include <hiredis/hiredis.h>

#include "memoryd/redis_io.h"

#include "memoryd/compat.h"
#include "memoryd/status.h"

struct md_redis_pool;
struct md_pool_stats;

struct md_redis_pool_options {
    const char *host;
    int port;
    int db;
    const char *username;       /* "" or NULL: AUTH <password> */
    const char *password;       /* "" or NULL: no AUTH (borrowed for the pool's life) */
    int max_connections;
    int64_t connect_timeout_ms;
    int64_t socket_timeout_ms;
    int64_t health_check_interval_ms; /* 0: never PING idle connections */
    int64_t acquisition_timeout_ms;
    /*
     * Optional: run on every new connection after AUTH and SELECT (the STM
     * backend loads its Lua scripts here). A failure fails the dial.
     */
    enum md_status (*on_connect)(void *arg, redisContext *c, struct md_error *err);
    void *on_connect_arg;
};

/*
 * Create a pool (copies every string of opt). Dials nothing: the first
 * checkout connects. NULL + err (MD_E_NOMEM, MD_E_INVAL) on failure.
 */
struct md_redis_pool *md_redis_pool_new(const struct md_redis_pool_options *opt,
                                        struct md_error *err);

/* Close every connection. All leases must have been returned. Accepts NULL. */
void md_redis_pool_free(struct md_redis_pool *p);

/*
 * Lease a live connection or fail with MD_E_UNAVAIL (Redis unreachable, in
 * backoff, or no connection free within the acquisition timeout),
 * MD_E_TIMEOUT (a dial or health check timed out) or MD_E_NOMEM. The
 * context has the socket timeout set; err->detail carries hiredis' text.
 */
MD_MUSTCHECK enum md_status md_redis_pool_checkout(struct md_redis_pool *p, redisContext **out,
                                                   struct md_error *err);

/*
 * Return a lease; broken = true closes it (it is re-dialled later). A
 * context with c->err set is closed whatever `broken` says. Never blocks on
 * the network.
 */
void md_redis_pool_checkin(struct md_redis_pool *p, redisContext *c, bool broken);

/* Current figures (size = connections open, in_use = leased). */
void md_redis_pool_stats(struct md_redis_pool *p, struct md_pool_stats *out);

/*
 * True when the failed command on c (reply NULL, c->err set) failed by
 * running into the socket timeout, as opposed to a lost connection. Call it
 * right after the failing hiredis call: it reads errno.
 */
bool md_redis_timed_out(const redisContext *c);

#endif /* MD_REDIS_POOL_H */
