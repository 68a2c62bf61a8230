/*
 * redis_io.c — hiredis without its allocation traps (see redis_io.h).
 *
 * Connecting: getaddrinfo(), a non-blocking connect() per address bounded by
 * what is left of the timeout, then the socket is made blocking again and
 * handed to redisConnectFd(). Sending: the bytes redisAppend*() queued in
 * c->obuf are written here with send(MSG_NOSIGNAL) — a closed peer is an
 * error, not a SIGPIPE — and the buffer is emptied in place; a buffer that
 * grew beyond OBUF_KEEP (a large EVAL) is swapped for a fresh empty one when
 * that allocation succeeds, so an idle pooled connection does not keep it.
 */
#define MD_REDIS_IO_RAW /* this file is the one that may use the raw calls */
#include "memoryd/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/sds.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "memoryd/clock.h"
#include "memoryd/redis_io.h"

/* Output and read buffers larger than this are not kept between commands. */
#define OBUF_KEEP (64 * 1024)
#define RBUF_KEEP (64 * 1024)

/* Set c's error the way hiredis does for an I/O error, keeping errno. */
static void io_error(redisContext *c, const char *what)
{
    int e = errno;
    c->err = REDIS_ERR_IO;
    snprintf(c->errstr, sizeof(c->errstr), "%s: %s", what, strerror(e));
    errno = e; /* md_redis_timed_out() reads it */
}

/* connect() fd to ai within deadline_ms (monotonic); 0, or an errno value. */
static int connect_one(int fd, const struct addrinfo *ai, int64_t deadline_ms)
{
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;
    for (;;) {
        int64_t left = deadline_ms - md_mono_ms();
        if (left <= 0)
            return ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int rc = poll(&pfd, 1, (int)MD_MIN(left, (int64_t)INT32_MAX));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return errno;
        if (rc == 0)
            return ETIMEDOUT;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            return errno;
        return soerr;
    }
}

/* A connected blocking socket, or -1 with *why set (errno value or EAI_*). */
static int open_socket(const char *host, int port, int64_t timeout_ms, int *why, bool *gai)
{
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        *gai = rc != EAI_SYSTEM;
        *why = rc == EAI_SYSTEM ? errno : rc;
        return -1;
    }
    int64_t deadline = md_mono_ms() + timeout_ms;
    int fd = -1;
    *why = ECONNREFUSED;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            *why = errno;
            continue;
        }
        *why = connect_one(fd, ai, deadline);
        if (*why == 0)
            break;
        close(fd);
        fd = -1;
        if (*why == ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    int one = 1;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        *why = errno;
        close(fd);
        return -1;
    }
    return fd;
}

enum md_status md_redis_connect(const char *host, int port, int64_t timeout_ms,
                                redisContext **out, struct md_error *err)
{
    *out = NULL;
    int why = 0;
    bool gai = false;
    int fd = open_socket(host, port, timeout_ms, &why, &gai);
    if (fd < 0) {
        if (gai && why == EAI_MEMORY)
            return md_error_set(err, MD_E_NOMEM, "out of memory connecting to redis");
        bool timed_out = !gai && why == ETIMEDOUT;
        md_error_set(err, timed_out ? MD_E_TIMEOUT : MD_E_UNAVAIL,
                     timed_out ? "redis did not answer in time" : "redis unavailable");
        md_error_detail(err, "cannot connect to redis '%.100s:%d': %.100s", host, port,
                        timed_out ? "connect timed out" : gai ? gai_strerror(why) : strerror(why));
        return err->code;
    }
    redisContext *c = redisConnectFd(fd);
    if (!c) {
        close(fd);
        return md_error_set(err, MD_E_NOMEM, "out of memory connecting to redis");
    }
    c->reader->maxbuf = 0; /* md_redis_get_reply() shrinks it, with a checked allocation */
    *out = c;
    return MD_OK;
}

/* Write c->obuf to the socket and empty it; REDIS_ERR with c->err set. */
static int flush(redisContext *c)
{
    if (c->err)
        return REDIS_ERR;
    size_t len = sdslen(c->obuf), off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, c->obuf + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EPIPE;
            io_error(c, "write");
            return REDIS_ERR;
        }
        off += (size_t)n;
    }
    if (sdsalloc(c->obuf) > OBUF_KEEP) {
        sds fresh = sdsempty();
        if (fresh) {
            sdsfree(c->obuf);
            c->obuf = fresh;
            return REDIS_OK;
        }
    }
    sdsclear(c->obuf);
    return REDIS_OK;
}

/* Drop a large read buffer once everything in it has been parsed. */
static void shrink_reader(redisContext *c)
{
    redisReader *r = c->reader;
    if (r->pos != r->len || sdsalloc(r->buf) <= RBUF_KEEP)
        return;
    sds fresh = sdsempty();
    if (!fresh)
        return; /* keep the big one: correct, only larger */
    sdsfree(r->buf);
    r->buf = fresh;
    r->pos = 0;
    r->len = 0;
}

int md_redis_get_reply(redisContext *c, void **reply)
{
    *reply = NULL;
    if (flush(c) != REDIS_OK)
        return REDIS_ERR;
    if (redisGetReply(c, reply) != REDIS_OK)
        return REDIS_ERR;
    shrink_reader(c);
    return REDIS_OK;
}

static redisReply *reply_of(redisContext *c)
{
    void *r = NULL;
    return md_redis_get_reply(c, &r) == REDIS_OK ? r : NULL;
}

redisReply *md_redis_command(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(c, fmt, ap);
    va_end(ap);
    return rc == REDIS_OK ? reply_of(c) : NULL;
}

redisReply *md_redis_command_argv(redisContext *c, int argc, const char **argv,
                                  const size_t *len)
{
    return redisAppendCommandArgv(c, argc, argv, len) == REDIS_OK ? reply_of(c) : NULL;
}
