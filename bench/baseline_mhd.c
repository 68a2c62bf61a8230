/*
 * baseline_mhd.c — the ceilings memoryd is measured against, on the same
 * HTTP library (libmicrohttpd) memoryd uses.
 *
 *   --mode bare  answer every request with a fixed 50-byte JSON body: the
 *                ceiling of the HTTP layer.
 *   --mode get   GET /get/<key>: one synchronous hiredis GET on the worker's
 *                own Redis connection, the value (≈1.5 KB) as the body: the
 *                ceiling of a Redis-backed read.
 *   --mode set   PUT|POST /set/<key> with a JSON body: parse it with jansson,
 *                serialise it compactly, SET key value EX 86400, answer the
 *                50-byte JSON: the ceiling of a Redis-backed write.
 *
 * Best configuration found for the 2-vCPU machines (see bench/README.md):
 * MHD's internal thread pool with epoll, --threads 4 for the Redis modes
 * (handlers block on Redis, so more workers than cores help) and 2 for bare;
 * the connection memory limit is set explicitly (32 KiB). The response is
 * queued on the last call of the access handler, never on the first one
 * (MHD 0.9.75 answers "Connection: close" otherwise).
 *
 * Prints the bound port on stdout, then serves until SIGTERM/SIGINT.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum mode { M_BARE, M_GET, M_SET };

static enum mode g_mode = M_BARE;
static const char *g_redis_host = "127.0.0.1";
static int g_redis_port = 6379;

static const char OK_BODY[] = "{\"status\":\"success\",\"data\":{\"pong\":true},\"n\":1234}";
static struct MHD_Response *ok_resp, *nf_resp, *err_resp;

static __thread redisContext *tl_redis;

static redisContext *redis(void)
{
    if (tl_redis && !tl_redis->err)
        return tl_redis;
    if (tl_redis)
        redisFree(tl_redis);
    tl_redis = redisConnect(g_redis_host, g_redis_port);
    if (!tl_redis || tl_redis->err) {
        if (tl_redis)
            redisFree(tl_redis);
        tl_redis = NULL;
    }
    return tl_redis;
}

struct req {
    size_t len;
    char body[8192];
    bool overflow;
};

static char first_call_mark;

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req_cls)
{
    (void)cls;
    (void)version;
    (void)method;
    if (!*req_cls) {
        /* first call: headers only; never queue here (keep-alive pitfall) */
        if (g_mode == M_SET) {
            struct req *r = calloc(1, sizeof(*r));
            if (!r)
                return MHD_NO;
            *req_cls = r;
        } else {
            *req_cls = &first_call_mark;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (g_mode == M_SET) {
            struct req *r = *req_cls;
            if (r->len + *upload_size < sizeof(r->body)) {
                memcpy(r->body + r->len, upload, *upload_size);
                r->len += *upload_size;
            } else {
                r->overflow = true;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (g_mode == M_BARE)
        return MHD_queue_response(conn, MHD_HTTP_OK, ok_resp);
    if (g_mode == M_GET) {
        if (strncmp(url, "/get/", 5) != 0)
            return MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, nf_resp);
        redisContext *c = redis();
        redisReply *rep = c ? redisCommand(c, "GET %s", url + 5) : NULL;
        if (!rep)
            return MHD_queue_response(conn, MHD_HTTP_SERVICE_UNAVAILABLE, err_resp);
        enum MHD_Result ok;
        if (rep->type == REDIS_REPLY_STRING) {
            struct MHD_Response *r =
                MHD_create_response_from_buffer(rep->len, rep->str, MHD_RESPMEM_MUST_COPY);
            MHD_add_response_header(r, "Content-Type", "application/json");
            ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
            MHD_destroy_response(r);
        } else {
            ok = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, nf_resp);
        }
        freeReplyObject(rep);
        return ok;
    }
    /* M_SET */
    struct req *r = *req_cls;
    if (strncmp(url, "/set/", 5) != 0 || r->overflow)
        return MHD_queue_response(conn, MHD_HTTP_BAD_REQUEST, err_resp);
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->len, 0, &jerr);
    if (!doc || !json_is_object(doc)) {
        json_decref(doc);
        return MHD_queue_response(conn, MHD_HTTP_BAD_REQUEST, err_resp);
    }
    char *compact = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    redisContext *c = redis();
    redisReply *rep =
        c && compact ? redisCommand(c, "SET %s %s EX 86400", url + 5, compact) : NULL;
    free(compact);
    if (!rep)
        return MHD_queue_response(conn, MHD_HTTP_SERVICE_UNAVAILABLE, err_resp);
    enum MHD_Result ok = MHD_queue_response(
        conn, rep->type == REDIS_REPLY_ERROR ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK,
        rep->type == REDIS_REPLY_ERROR ? err_resp : ok_resp);
    freeReplyObject(rep);
    return ok;
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    if (*req_cls && *req_cls != &first_call_mark)
        free(*req_cls);
    *req_cls = NULL;
}

static struct MHD_Response *fixed(const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body,
                                        MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    return r;
}

int main(int argc, char **argv)
{
    int port = 0, threads = 2;
    bool use_epoll = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--port") == 0)
            port = atoi(v), i++;
        else if (strcmp(a, "--threads") == 0)
            threads = atoi(v), i++;
        else if (strcmp(a, "--poll") == 0)
            use_epoll = false;
        else if (strcmp(a, "--epoll") == 0)
            use_epoll = true;
        else if (strcmp(a, "--mode") == 0) {
            i++;
            if (strcmp(v, "bare") == 0)
                g_mode = M_BARE;
            else if (strcmp(v, "get") == 0)
                g_mode = M_GET;
            else if (strcmp(v, "set") == 0)
                g_mode = M_SET;
            else {
                fprintf(stderr, "baseline_mhd: unknown mode '%s'\n", v);
                return 1;
            }
        } else if (strcmp(a, "--redis") == 0) {
            i++;
            static char host[256];
            const char *colon = strrchr(v, ':');
            if (!colon) {
                fprintf(stderr, "baseline_mhd: --redis HOST:PORT\n");
                return 1;
            }
            snprintf(host, sizeof(host), "%.*s", (int)(colon - v), v);
            g_redis_host = host;
            g_redis_port = atoi(colon + 1);
        } else {
            fprintf(stderr, "usage: baseline_mhd [--mode bare|get|set] [--port P] "
                            "[--threads N] [--epoll|--poll] [--redis HOST:PORT]\n");
            return 1;
        }
    }
    ok_resp = fixed(OK_BODY);
    nf_resp = fixed("{\"status\":\"error\",\"error_type\":\"not_found\"}");
    err_resp = fixed("{\"status\":\"error\",\"error_type\":\"storage_unavailable\"}");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                     (use_epoll ? MHD_USE_EPOLL : MHD_USE_POLL);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)threads, MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_CONNECTION_TIMEOUT,
        60u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
        completed, NULL, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "baseline_mhd: cannot start on port %d\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("%u\n", info ? (unsigned)info->port : (unsigned)port);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
