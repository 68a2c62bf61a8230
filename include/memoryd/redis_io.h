/*
 * redis_io.h — connecting to Redis and running commands with hiredis without
 * the two places where Debian 12's hiredis 0.14.1 cannot survive a failed
 * allocation.
 *
 *  - redisConnect*() copy the host name and the timeout with hi_strdup() /
 *    hi_malloc(), which abort() the process when malloc fails
 *    (HIREDIS_OOM_HANDLER). md_redis_connect() opens the socket itself and
 *    wraps it with redisConnectFd(), which allocates only with checks.
 *  - redisBufferWrite(), called by redisGetReply() and so by every blocking
 *    redisCommand*(), replaces the output buffer with an unchecked
 *    sdsempty() after each complete write and reads its length at once: a
 *    NULL there is a segfault. md_redis_get_reply() writes the output buffer
 *    itself and empties it in place (sdsclear, no allocation), so hiredis
 *    never has anything to write.
 *  - redisReaderFeed() assert()s that an sdsempty() replacing a large idle
 *    read buffer succeeded. Contexts made here turn that off (maxbuf 0) and
 *    md_redis_get_reply() shrinks the buffer itself, with a checked
 *    allocation.
 *
 * Every hiredis use in memoryd goes through these functions; the raw calls
 * are poisoned below for the files that include this header (tests that
 * talk to Redis directly define MD_REDIS_IO_RAW first).
 *
 * Thread safety: as hiredis — one context, one thread at a time.
 */
#ifndef MD_REDIS_IO_H
#define MD_REDIS_IO_H

#include <hiredis/hiredis.h>
#include <stdint.h>

#include "memoryd/compat.h"
#include "memoryd/status.h"

/*
 * A blocking context connected to host:port (TCP_NODELAY, close-on-exec)
 * within timeout_ms, with no I/O timeout set yet. On failure *out = NULL and
 * err says MD_E_NOMEM, MD_E_TIMEOUT or MD_E_UNAVAIL ("cannot connect to
 * redis 'host:port': <reason>" in its detail).
 */
MD_MUSTCHECK enum md_status md_redis_connect(const char *host, int port, int64_t timeout_ms,
                                             redisContext **out, struct md_error *err);

/*
 * redisGetReply() for contexts made by md_redis_connect(): sends what the
 * redisAppend*() calls queued, then reads one reply. REDIS_ERR with c->err
 * and c->errstr set on failure (REDIS_ERR_OOM when out of memory,
 * REDIS_ERR_IO with errno kept on a socket error or timeout).
 */
int md_redis_get_reply(redisContext *c, void **reply);

/* redisCommand() / redisCommandArgv() through md_redis_get_reply() (the
 * format is hiredis' own: %s, %b with a length, %d ...; NULL on failure). */
redisReply *md_redis_command(redisContext *c, const char *fmt, ...);
redisReply *md_redis_command_argv(redisContext *c, int argc, const char **argv,
                                  const size_t *len);

#if !defined(MD_REDIS_IO_RAW) && defined(__GNUC__)
#pragma GCC poison redisCommand redisCommandArgv redisvCommand redisGetReply
#pragma GCC poison redisConnect redisConnectWithTimeout redisConnectNonBlock
#pragma GCC poison redisConnectBindNonBlock redisConnectUnix redisConnectUnixWithTimeout
#pragma GCC poison redisBufferWrite
#endif

#endif /* MD_REDIS_IO_H */
