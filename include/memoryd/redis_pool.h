/*
 * redis_pool.h — a bounded pool of synchronous hiredis connections.
 *
 * A fixed array of slots guarded by one mutex and a condition variable.
 * md_redis_pool_checkout() leases a connected context, dialling lazily (up
 * to max connections) and waiting up to the acquisition timeout when all are
 * busy. A slot idle for longer than the health-check interval is PINGed
 * before it is handed out. A caller that sees a dead context (ctx->err set,
 * or a timeout) checks it in with `broken = true`: the slot is closed and
 * re-dialled on a later checkout, with exponential backoff between failed
 * dials so that a dead Redis is not hammered. Every new connection runs AUTH
 * (when a password is set) and SELECT. No lock is ever held across network
 * I/O.
 *
 * Thread safety: all functions are thread-safe; a leased context belongs to
 * the caller until checkin. Never share a redisContext across threads.
 */
#ifndef MD_REDIS_POOL_H
#define MD_REDIS_POOL_H

#include <hiredis/hiredis.h>

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
};

struct md_redis_pool *md_redis_pool_new(const struct md_redis_pool_options *opt,
                                        struct md_error *err);
void md_redis_pool_free(struct md_redis_pool *p);

/* Lease a live connection or fail with MD_E_UNAVAIL / MD_E_TIMEOUT. */
MD_MUSTCHECK enum md_status md_redis_pool_checkout(struct md_redis_pool *p, redisContext **out,
                                                   struct md_error *err);

/* Return a lease; broken = true closes it (it is re-dialled later). */
void md_redis_pool_checkin(struct md_redis_pool *p, redisContext *c, bool broken);

void md_redis_pool_stats(struct md_redis_pool *p, struct md_pool_stats *out);

#endif /* MD_REDIS_POOL_H */
