/*
 * http_server.c — libmicrohttpd glue: request lifecycle, limits, responses.
 *
 * DESIGN
 * MHD calls the access handler several times per request: once when the
 * headers are in (we allocate the request context, route, authorize and
 * check the declared body), once per chunk of body (appended to a capped
 * buffer), and once more when the upload is complete (we parse the body,
 * run the handler and queue the response). Queuing only on that last call
 * keeps connections alive (MHD 0.9.75 answers "Connection: close" to a
 * response queued before it has seen the whole request). The one exception
 * is a refusal of a request that carries a body (413, 415, 401 …): that
 * response goes out at once and MHD closes the connection instead of
 * reading a body nobody wants. A body that only overflows while arriving
 * (chunked) cannot be answered mid-upload (MHD refuses to queue then): the
 * rest is drained unbuffered and the 413 goes out on the final call.
 *
 * The URL is matched raw: an identity unescape callback stops MHD from
 * percent-decoding, so "%2F" inside an id cannot change the route; the
 * router and the query parser decode each piece themselves. The query string
 * is copied when MHD first shows us the request target (uri_seen) and split
 * by md_query_split(), which applies MHD's own splitting rules.
 *
 * Pool mode (the default): memoryd's own accept thread (listener.h) hands
 * each connection to one of API_WORKERS epoll event threads, where the
 * access handler runs; they must never wait on a store. On the final call a
 * request is answered there when nothing can block (a refusal, a route
 * flagged MD_ROUTE_INLINE, a cache hit through hooks.answer_inline);
 * otherwise the connection is suspended (MHD_suspend_connection, before the
 * job is queued, so the job cannot resume it first), the handler runs on a
 * handler thread (memoryd/workpool.h), and the job resumes the connection;
 * MHD then calls the access handler once more and the answer is queued from
 * the event thread. While a job runs, only the job touches the request
 * context: MHD calls nothing for a suspended connection, and resuming goes
 * through MHD's mutex, which orders the job's writes before the event
 * thread's reads.
 *
 * Ownership: struct req_ctx is allocated in uri_seen (the first callback of
 * a request), set up on the first access-handler call and freed in the
 * completion callback, together with everything hanging off it (raw query,
 * body buffer, parsed JSON, decoded query strings). Response bodies are
 * handed to MHD with MHD_RESPMEM_MUST_FREE.
 */
#include "memoryd/compat.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "memoryd/clock.h"
#include "memoryd/conn_guard.h"
#include "memoryd/envelope.h"
#include "memoryd/http.h"
#include "memoryd/json_body.h"
#include "memoryd/listener.h"
#include "memoryd/log.h"
#include "memoryd/query.h"
#include "memoryd/text.h"
#include "memoryd/workpool.h"

struct md_http_server {
    struct MHD_Daemon *daemon;
    const struct md_router *router;
    struct md_http_hooks hooks;
    void *app;
    struct md_http_options opt;
    atomic_int in_flight;
    int port;
    struct MHD_Response *oom_response; /* prebuilt 503 for when a request cannot allocate */
    struct md_conn_guard *guard; /* deadlines for slow clients (see conn_guard.h) */
    struct md_workpool *handlers; /* pool mode: where handlers that may block run; else NULL */
    struct md_listener *listener; /* pool mode: our listening socket (listener.h); else NULL */
};

/* PH_RUNNING: the handler runs on a handler thread, the connection is suspended. */
enum phase { PH_NEW = 0, PH_BODY, PH_RUNNING, PH_QUEUED };

/*
 * Query strings longer than this, or with more '&'-separated parameters
 * than MD_MAX_QUERY_PARAMS, are refused with 400 before libmicrohttpd parses
 * them (see uri_seen()).
 */
#define MAX_QUERY_BYTES 8192

struct req_ctx {
    struct md_work work;  /* first member: the job of PH_RUNNING (see run_job) */
    struct md_http_server *srv;
    struct md_req req;
    struct md_resp resp;
    struct md_buf body;
    enum phase phase;
    bool decided;    /* resp holds the final answer already (refusal) */
    bool has_body;   /* the request declares or sends a body */
    bool wants_body; /* the route takes a JSON body */
    bool overflow;   /* body exceeded the cap */
    bool query_refused; /* the query string was too long (see uri_seen) */
    char *raw_query;    /* owned: the query string as sent, or NULL (see uri_seen) */
};

/* ---- request contexts --------------------------------------------------- */

/*
 * A request context is 4 KiB: too big for glibc's per-thread cache, so each
 * calloc/free went through the shared arena (~5 k instructions a request in
 * callgrind, zeroing included).
 * Each thread keeps one spare instead: an event thread frees a context in the
 * completion callback and takes it back for the next request. The spare is
 * freed when its thread exits (key destructor), or by ctx_spare_drop() on a
 * thread that outlives the server (the one that calls MHD_stop_daemon).
 */
static pthread_key_t ctx_spare_key;
static bool ctx_spare_ok;
static pthread_once_t ctx_spare_once = PTHREAD_ONCE_INIT;

static void ctx_spare_init(void)
{
    ctx_spare_ok = pthread_key_create(&ctx_spare_key, free) == 0;
}

static struct req_ctx *ctx_new(void)
{
    pthread_once(&ctx_spare_once, ctx_spare_init);
    struct req_ctx *ctx = ctx_spare_ok ? pthread_getspecific(ctx_spare_key) : NULL;
    if (!ctx)
        return calloc(1, sizeof(*ctx));
    pthread_setspecific(ctx_spare_key, NULL);
    memset(ctx, 0, sizeof(*ctx));
    return ctx;
}

static void ctx_free(struct req_ctx *ctx)
{
    if (ctx_spare_ok && !pthread_getspecific(ctx_spare_key) &&
        pthread_setspecific(ctx_spare_key, ctx) == 0)
        return;
    free(ctx);
}

static void ctx_spare_drop(void)
{
    if (!ctx_spare_ok)
        return;
    free(pthread_getspecific(ctx_spare_key));
    pthread_setspecific(ctx_spare_key, NULL);
}

/* ---- small helpers ------------------------------------------------------- */

const char *md_req_query(const struct md_req *req, const char *key)
{
    for (size_t i = 0; i < req->n_query; i++)
        if (strcmp(req->query[i].key, key) == 0)
            return req->query[i].value;
    return NULL;
}

const char *md_req_header(const struct md_req *req, const char *name)
{
    return req->header ? req->header(req, name) : NULL;
}

static const char *mhd_header(const struct md_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void md_resp_header(struct md_resp *resp, const char *name, const char *value)
{
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0) {
            md_str_copy(resp->headers[i].value, sizeof(resp->headers[i].value), value);
            return;
        }
    if (resp->n_headers == MD_RESP_MAX_HEADERS)
        return;
    struct md_resp_header *h = &resp->headers[resp->n_headers++];
    md_str_copy(h->name, sizeof(h->name), name);
    md_str_copy(h->value, sizeof(h->value), value);
}

/* X-Request-Id: the client's if it is 1–64 chars of [A-Za-z0-9._-], else 32 random hex. */
static void assign_request_id(struct md_req *req)
{
    const char *given = md_req_header(req, "X-Request-Id");
    if (given) {
        size_t n = strlen(given);
        bool ok = n >= 1 && n <= MD_REQUEST_ID_MAX;
        for (size_t i = 0; ok && i < n; i++) {
            char c = given[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        }
        if (ok) {
            memcpy(req->request_id, given, n + 1);
            return;
        }
    }
    unsigned char raw[16];
    static const char hex[] = "0123456789abcdef";
    md_random_bytes(raw, sizeof(raw));
    for (size_t i = 0; i < sizeof(raw); i++) {
        req->request_id[2 * i] = hex[raw[i] >> 4];
        req->request_id[2 * i + 1] = hex[raw[i] & 15];
    }
    req->request_id[32] = '\0';
}

/* ---- query string --------------------------------------------------------- */

static void free_query(struct md_req *req)
{
    md_query_free(req->query, req->n_query);
    req->n_query = 0;
}

/* ---- responses ------------------------------------------------------------ */

/* The libmicrohttpd response for ctx->resp with all its headers; NULL when out of memory. */
static struct MHD_Response *build_response(struct req_ctx *ctx)
{
    struct md_resp *r = &ctx->resp;
    struct MHD_Response *mr;
    if (r->static_body == r->fallback && r->static_body) {
        mr = MHD_create_response_from_buffer(r->static_len, r->fallback, MHD_RESPMEM_MUST_COPY);
    } else if (r->static_body) {
        mr = MHD_create_response_from_buffer(r->static_len, (void *)(uintptr_t)r->static_body,
                                             MHD_RESPMEM_PERSISTENT);
    } else {
        size_t len;
        char *body = md_buf_take(&r->body, &len);
        mr = body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE) : NULL;
        if (!mr)
            free(body);
    }
    if (!mr)
        return NULL;
    /* a header that cannot be copied fails the whole response: never a partial answer */
    bool ok = MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                                      r->content_type ? r->content_type : "application/json") ==
                  MHD_YES &&
              MHD_add_response_header(mr, "X-Request-Id", ctx->req.request_id) == MHD_YES &&
              MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_YES;
    for (size_t i = 0; ok && i < r->n_headers; i++)
        ok = MHD_add_response_header(mr, r->headers[i].name, r->headers[i].value) == MHD_YES;
    if (!ok) {
        MHD_destroy_response(mr);
        return NULL;
    }
    return mr;
}

/*
 * Queue ctx->resp. Out of memory, the answer is replaced by a 503: first the
 * full error envelope (its body falls back to the heap-free one in
 * resp->fallback), and when even that cannot be built, the 503 prebuilt at
 * start-up (no timestamp, no X-Request-Id: documented in the README).
 */
static enum MHD_Result queue(struct req_ctx *ctx, struct MHD_Connection *conn)
{
    struct MHD_Response *mr = build_response(ctx);
    if (!mr) {
        ctx->resp.n_headers = 0;
        md_resp_error(&ctx->resp, 503, "storage_unavailable", "out of memory, try again", NULL);
        mr = build_response(ctx);
    }
    ctx->phase = PH_QUEUED;
    if (!mr) {
        ctx->resp.status = 503;
        return MHD_queue_response(conn, 503, ctx->srv->oom_response);
    }
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)ctx->resp.status, mr);
    MHD_destroy_response(mr);
    return ok;
}

static void refuse(struct req_ctx *ctx, int status, const char *type, const char *msg)
{
    md_resp_error(&ctx->resp, status, type, msg, NULL);
    ctx->decided = true;
}

/* ---- the request lifecycle -------------------------------------------------- */

static bool declares_body(struct md_req *req, int64_t *content_length)
{
    *content_length = -1;
    const char *cl = md_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = md_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl) {
        char *end;
        long long n = strtoll(cl, &end, 10);
        if (end != cl && *end == '\0' && n >= 0)
            *content_length = n;
    }
    return (*content_length > 0) || (te && strcasestr(te, "chunked"));
}

static bool is_json_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return false;
    ct += n;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

const char *md_req_client_ip(struct md_req *req)
{
    /* formatted on first use only (the rate limiter): most requests never need it */
    if (!req->client_ip[0] && req->conn) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr &&
            getnameinfo(ci->client_addr,
                        ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                               : sizeof(struct sockaddr_in),
                        req->client_ip, sizeof(req->client_ip), NULL, 0, NI_NUMERICHOST) != 0)
            req->client_ip[0] = '\0';
    }
    return req->client_ip;
}

/* First call: everything that can be decided from the request line and headers. */
static void on_headers(struct req_ctx *ctx, const char *method, const char *url)
{
    struct md_http_server *s = ctx->srv;
    struct md_req *req = &ctx->req;
    req->path = url;
    req->method = md_http_method_parse(method);
    assign_request_id(req);
    int64_t clen;
    ctx->has_body = declares_body(req, &clen);

    /* An unknown method (0) matches no route: a known path answers 405 with its methods. */
    enum md_route_result rr = md_router_match(s->router, req->method, url, &req->match);
    if (rr == MD_ROUTE_NOT_FOUND) {
        refuse(ctx, 404, "not_found", "no such route");
        return;
    }
    if (rr != MD_ROUTE_FOUND) {
        char allow[96];
        md_http_methods_text(req->match.allowed ? req->match.allowed : MD_M_GET, allow,
                             sizeof(allow));
        refuse(ctx, 405, "method_not_allowed", "method not allowed on this route");
        md_resp_header(&ctx->resp, "Allow", allow);
        return;
    }
    if (ctx->query_refused) {
        refuse(ctx, 400, "validation_error", "query string too long (more than 8192 bytes or "
                                             "32 parameters)");
        return;
    }
    if (ctx->raw_query) {
        struct md_error qerr;
        enum md_status qst = md_query_split(ctx->raw_query, strlen(ctx->raw_query), req->query,
                                            MD_MAX_QUERY_PARAMS, &req->n_query, &qerr);
        if (qst == MD_E_NOMEM) {
            refuse(ctx, 503, "storage_unavailable", "out of memory, try again");
            return;
        }
        if (qst != MD_OK) {
            refuse(ctx, 400, "validation_error",
                   "malformed query string (bad escape, invalid UTF-8 or too many parameters)");
            return;
        }
    }
    if (s->hooks.authorize) {
        int st = s->hooks.authorize(s->hooks.ctx, req, &ctx->resp);
        if (st != 0) {
            ctx->decided = true;
            return;
        }
    }
    unsigned flags = req->match.route->flags;
    ctx->wants_body = (flags & (MD_ROUTE_BODY | MD_ROUTE_BODY_OPTIONAL)) != 0;
    if (ctx->has_body && ctx->wants_body &&
        !is_json_type(md_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        refuse(ctx, 415, "unsupported_media_type",
               "request body must be sent with Content-Type: application/json");
        return;
    }
    if (clen > 0 && (uint64_t)clen > s->opt.max_body_bytes) {
        refuse(ctx, 413, "payload_too_large", "request body exceeds API_MAX_REQUEST_SIZE");
        return;
    }
}

static void run_handler(struct req_ctx *ctx)
{
    struct md_req *req = &ctx->req;
    unsigned flags = req->match.route->flags;
    if (ctx->body.len > 0 && ctx->wants_body) {
        struct md_error err;
        md_error_clear(&err);
        if (md_json_parse_object(ctx->body.data, ctx->body.len, &req->body, &err) != MD_OK) {
            md_resp_from_error(&ctx->resp, &err);
            return;
        }
    } else if ((flags & MD_ROUTE_BODY) && ctx->body.len == 0) {
        md_resp_error(&ctx->resp, 400, "validation_error",
                      "a JSON object body is required (Content-Type: application/json)", NULL);
        return;
    }
    req->match.route->handler(req, &ctx->resp);
    if (ctx->resp.status == 0) /* a handler that forgot to answer is a bug */
        md_resp_error(&ctx->resp, 500, "internal_error", "internal error", NULL);
}

/* Pool mode: a job on a handler thread; the connection stays suspended until it ends. */
static void run_job(struct md_work *w)
{
    struct req_ctx *ctx = (struct req_ctx *)w;
    run_handler(ctx);
    MHD_resume_connection(ctx->req.conn); /* ctx is the event thread's again */
}

/* Pool mode: can the event thread answer this request without waiting on a store? */
static bool answer_here(struct req_ctx *ctx)
{
    struct md_http_server *s = ctx->srv;
    const struct md_route *route = ctx->req.match.route;
    if (route->flags & MD_ROUTE_INLINE) {
        run_handler(ctx);
        return true;
    }
    return ctx->req.method == MD_M_GET && s->hooks.answer_inline &&
           s->hooks.answer_inline(s->hooks.ctx, &ctx->req, &ctx->resp);
}

/*
 * The request is complete and not refused: answer it now, or (pool mode) hand
 * it to a handler thread and leave the connection suspended until it is done.
 */
static enum MHD_Result dispatch(struct req_ctx *ctx, struct MHD_Connection *conn)
{
    struct md_http_server *s = ctx->srv;
    if (!s->handlers) {
        run_handler(ctx);
        return queue(ctx, conn);
    }
    if (answer_here(ctx))
        return queue(ctx, conn);
    ctx->phase = PH_RUNNING;
    ctx->work.fn = run_job;
    MHD_suspend_connection(conn);
    if (md_workpool_submit(s->handlers, &ctx->work))
        return MHD_YES;
    /* no handler thread can start (out of threads or memory): answer 503 here */
    MHD_resume_connection(conn);
    refuse(ctx, 503, "storage_unavailable", "server overloaded, try again");
    md_resp_header(&ctx->resp, "Retry-After", "1");
    return MHD_YES; /* queued on the call that follows the resume */
}

/* ---- slow clients (see conn_guard.h) ------------------------------------------ */

static struct md_conn_watch *conn_watch(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        conn ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
    return ci ? ci->socket_context : NULL;
}

/* A connection is accepted (watch it: its first request is due) or goes away. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct md_http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? md_conn_guard_add(s->guard, ci->connect_fd) : NULL;
        if (s->listener)
            md_listener_opened(s->listener);
        return;
    }
    /* libmicrohttpd closes the descriptor only after this returns. */
    md_conn_guard_remove(s->guard, *socket_context);
    *socket_context = NULL;
    if (s->listener)
        md_listener_closed(s->listener);
}

/* Pool mode: the listener hands each accepted connection to libmicrohttpd. */
static bool hand_to_mhd(void *cls, int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    struct md_http_server *s = cls;
    return MHD_add_connection(s->daemon, fd, addr, addrlen) == MHD_YES; /* MHD_NO: closed */
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    (void)version;
    struct md_http_server *s = cls;
    struct req_ctx *ctx = *req_cls;
    if (!ctx) /* uri_seen could not allocate it */
        return MHD_queue_response(conn, 503, s->oom_response);
    if (ctx->phase == PH_NEW) {
        atomic_fetch_add(&s->in_flight, 1);
        ctx->srv = s;
        ctx->req.app = s->app;
        ctx->req.conn = conn;
        ctx->req.header = mhd_header;
        ctx->req.start_us = md_mono_us();
        ctx->req.now_ms = md_now_ms();
        md_buf_init(&ctx->body, s->opt.max_body_bytes);
        md_buf_init(&ctx->resp.body, MD_RESP_MAX_BYTES);
        on_headers(ctx, method, url);
        ctx->phase = PH_BODY;
        /* The head is in: a body still to come is due within the connection timeout. */
        if (ctx->has_body && !ctx->decided)
            md_conn_guard_arm(s->guard, conn_watch(conn));
        else
            md_conn_guard_disarm(conn_watch(conn));
        if (ctx->decided && ctx->has_body)
            return queue(ctx, conn); /* refuse now; MHD closes instead of reading the body */
        return MHD_YES;
    }
    if (ctx->phase == PH_QUEUED) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ctx->phase == PH_RUNNING) /* resumed: the handler thread has answered */
        return queue(ctx, conn);
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ctx->decided || !ctx->wants_body)
            return MHD_YES; /* discard: nobody reads this body */
        /* MHD cannot queue a response while a body is still arriving (chunked
         * bodies only overflow here): decide now, drain the rest unbuffered,
         * answer on the final call. */
        enum md_status st = md_buf_append(&ctx->body, upload_data, n);
        if (st == MD_E_LIMIT) {
            refuse(ctx, 413, "payload_too_large", "request body exceeds API_MAX_REQUEST_SIZE");
            md_buf_release(&ctx->body);
        } else if (st != MD_OK) {
            refuse(ctx, 503, "storage_unavailable", "out of memory, try again");
            md_buf_release(&ctx->body);
        }
        return MHD_YES;
    }
    md_conn_guard_disarm(conn_watch(conn)); /* the request is complete: no deadline now */
    if (!ctx->decided)
        return dispatch(ctx, conn);
    return queue(ctx, conn);
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct md_http_server *s = cls;
    struct req_ctx *ctx = *req_cls;
    *req_cls = NULL;
    md_conn_guard_arm(s->guard, conn_watch(conn)); /* the next request is due */
    if (!ctx)
        return;
    if (ctx->phase == PH_NEW) { /* libmicrohttpd answered or dropped it before any handler call */
        free(ctx->raw_query);
        ctx_free(ctx);
        return;
    }
    int status = ctx->resp.status ? ctx->resp.status : 499; /* 499: client went away */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && ctx->phase != PH_QUEUED)
        status = 499;
    int64_t dur = md_mono_us() - ctx->req.start_us;
    if (s->hooks.observe)
        s->hooks.observe(s->hooks.ctx, &ctx->req, status, dur);
    if (s->opt.access_log)
        md_log_access(ctx->req.method ? md_http_method_name(ctx->req.method) : "?",
                      ctx->req.path ? ctx->req.path : "?", status, dur, ctx->req.request_id);
    json_decref(ctx->req.body);
    free_query(&ctx->req);
    free(ctx->raw_query);
    md_buf_release(&ctx->body);
    md_buf_release(&ctx->resp.body);
    ctx_free(ctx);
    atomic_fetch_sub(&s->in_flight, 1);
}

/*
 * Called by libmicrohttpd with the request target before it parses the query
 * parameters; its result becomes *req_cls, so this is where the request
 * context is born (NULL: out of memory, answered 503 by the access handler).
 * The query string is copied for md_query_split(). libmicrohttpd 0.9.75
 * also keeps one header record per parameter in the connection's memory
 * pool; a query with thousands of parameters exhausts the pool, and it then
 * drops the connection without an answer. An over-long query is therefore
 * cut here, in the connection's own buffer (which libmicrohttpd itself
 * rewrites in place next), so that nothing is parsed, and the request is
 * marked to be answered 400 with a JSON error.
 */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct req_ctx *ctx = ctx_new();
    if (!ctx)
        return NULL;
    char *q = strchr(uri, '?');
    if (!q)
        return ctx;
    size_t params = 1, len = strlen(q + 1);
    for (const char *p = q + 1; *p; p++)
        params += *p == '&';
    if (len <= MAX_QUERY_BYTES && params <= MD_MAX_QUERY_PARAMS) {
        ctx->raw_query = strdup(q + 1);
        if (!ctx->raw_query) {
            ctx_free(ctx);
            return NULL;
        }
        return ctx;
    }
    q[1] = '\0';
    ctx->query_refused = true;
    return ctx;
}

/* Keep the URL and arguments exactly as sent: decoding is ours (see DESIGN). */
static size_t identity_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) MD_PRINTF(2, 0);

/*
 * libmicrohttpd writes one line per refused connection ("Server reached
 * connection limit"): a connection flood would flood the log too. A few lines
 * per second get through; the count of the others goes with the next one.
 */
static struct md_log_budget mhd_log_budget = MD_LOG_BUDGET_INIT(5);

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    uint64_t dropped;
    if (!md_log_budget_take(&mhd_log_budget, md_mono_ms(), &dropped))
        return;
    char msg[512];
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        return;
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    if (dropped > 0)
        md_log_warn("http", "libmicrohttpd: %s (%llu more libmicrohttpd message(s) suppressed)",
                    msg, (unsigned long long)dropped);
    else
        md_log_warn("http", "libmicrohttpd: %s", msg);
}

/* ---- start / stop ------------------------------------------------------------ */

static bool resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                    struct md_error *err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || !res) {
        md_error_set(err, MD_E_INVAL, "cannot resolve API_HOST '%s': %s", host, gai_strerror(rc));
        return false;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

struct md_http_server *md_http_server_start(const struct md_http_options *opt,
                                            const struct md_router *router,
                                            const struct md_http_hooks *hooks, void *app,
                                            struct md_error *err)
{
    struct md_http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        md_error_set(err, MD_E_NOMEM, "out of memory starting the HTTP server");
        return NULL;
    }
    s->router = router;
    if (hooks)
        s->hooks = *hooks;
    s->app = app;
    s->opt = *opt;
    static const char oom_body[] =
        "{\"status\":\"error\",\"error_type\":\"storage_unavailable\","
        "\"message\":\"out of memory, try again\"}";
    s->oom_response = MHD_create_response_from_buffer(sizeof(oom_body) - 1, (void *)(uintptr_t)oom_body,
                                                      MHD_RESPMEM_PERSISTENT);
    if (!s->oom_response) {
        free(s);
        md_error_set(err, MD_E_NOMEM, "out of memory starting the HTTP server");
        return NULL;
    }
    MHD_add_response_header(s->oom_response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(s->oom_response, "Retry-After", "1");

    struct sockaddr_storage ss;
    socklen_t sslen;
    if (!resolve(opt->host, opt->port, &ss, &sslen, err))
        goto fail;
    s->guard = md_conn_guard_start((int64_t)opt->connection_timeout_s * 1000, err);
    if (!s->guard)
        goto fail;
    if (!opt->thread_per_connection) {
        /* one handler thread per connection at most; idle extras leave after 30 s */
        int max = opt->max_connections > 0 ? opt->max_connections : 1;
        int min = opt->min_handler_threads < max ? opt->min_handler_threads : max;
        s->handlers = md_workpool_start(min, max, 30000, (size_t)512 * 1024, err);
        if (!s->handlers)
            goto fail;
    }
    /*
     * Event threads never wait on a store (see DESIGN), so a hanging store
     * cannot delay /health or the other tier. Pool mode: epoll event threads
     * and our own listening socket (listener.h says why); the listener
     * enforces API_MAX_CONNECTIONS, and libmicrohttpd's own limit must never
     * refuse a connection the listener admitted: it splits its limit between
     * the event threads, and it counts a connection until its cleanup, which
     * follows the close notification the listener counts by. So each event
     * thread may hold twice the cap. Per-connection mode keeps libmicrohttpd's select() and its
     * listener: with poll() its listening thread accepts past
     * API_MAX_CONNECTIONS and resets the extra clients instead of leaving
     * them in the listen queue. select() serves descriptors below FD_SETSIZE
     * (1024) only, which the API_MAX_CONNECTIONS doc states.
     */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    unsigned mhd_limit = (unsigned)opt->max_connections;
    struct MHD_OptionItem listen_opts[3] = {{MHD_OPTION_END, 0, NULL}};
    if (opt->thread_per_connection) {
        flags |= MHD_USE_THREAD_PER_CONNECTION;
        if (ss.ss_family == AF_INET6)
            flags |= MHD_USE_IPv6;
        listen_opts[0] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
        listen_opts[1] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL};
        listen_opts[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    } else {
        flags |= MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET;
        s->listener = md_listener_open((struct sockaddr *)&ss, sslen, 1024, opt->max_connections,
                                       err);
        if (!s->listener) {
            char why[sizeof(err->msg)];
            md_str_copy(why, sizeof(why), err->msg);
            md_error_set(err, MD_E_IO, "cannot listen on '%s' port %d: %s", opt->host,
                         opt->port, why);
            goto fail;
        }
        int64_t workers = opt->workers > 0 ? opt->workers : 1;
        mhd_limit =
            (unsigned)MD_MIN((int64_t)opt->max_connections * 2 * workers, (int64_t)INT32_MAX);
    }
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)opt->port, NULL, NULL, access_handler, s,
        /* the logger goes first so that MHD reports option errors through it */
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_ARRAY, listen_opts,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(opt->thread_per_connection ? 0 : opt->workers),
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024), MHD_OPTION_CONNECTION_LIMIT,
        mhd_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)opt->max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opt->connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
        completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_URI_LOG_CALLBACK, uri_seen, NULL, MHD_OPTION_UNESCAPE_CALLBACK,
        identity_unescape, NULL, MHD_OPTION_END);
    if (!s->daemon) {
        md_error_set(err, MD_E_IO, "cannot listen on '%s' port %d (in use, or not permitted)",
                     opt->host, opt->port);
        goto fail;
    }
    if (s->listener) {
        s->port = md_listener_port(s->listener);
        if (!md_listener_run(s->listener, hand_to_mhd, s, err)) {
            md_workpool_close(s->handlers);
            MHD_stop_daemon(s->daemon);
            goto fail;
        }
    } else {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
        s->port = info ? info->port : opt->port;
    }
    return s;
fail:
    md_listener_free(s->listener);
    md_workpool_stop(s->handlers);
    md_conn_guard_stop(s->guard);
    MHD_destroy_response(s->oom_response);
    free(s);
    return NULL;
}

int md_http_server_port(const struct md_http_server *s)
{
    return s->port;
}

int md_http_server_in_flight(const struct md_http_server *s)
{
    return atomic_load(&((struct md_http_server *)(uintptr_t)s)->in_flight);
}

bool md_http_server_handler_stats(const struct md_http_server *s, int *threads, int *busy,
                                  int *queued)
{
    if (!s || !s->handlers)
        return false;
    struct md_workpool_stats st;
    md_workpool_stats(s->handlers, &st);
    *threads = st.threads;
    *busy = st.busy;
    *queued = st.queued;
    return true;
}

void md_http_server_stop(struct md_http_server *s, int64_t grace_ms)
{
    if (!s)
        return;
    /*
     * Stop listening first: new connections are refused from now on. Pool
     * mode closes its own socket (listener.h). Per-connection mode quiesces
     * libmicrohttpd's (select(): no epoll race); MHD's threads may still use
     * the quiesced socket, and MHD's manual says not to close it before
     * MHD_stop_daemon(): shutdown() stops listening at once while the fd
     * stays valid; it is closed after MHD_stop_daemon().
     */
    MHD_socket ls = MHD_INVALID_SOCKET;
    if (s->listener)
        md_listener_close(s->listener);
    else
        ls = MHD_quiesce_daemon(s->daemon);
    if (ls != MHD_INVALID_SOCKET)
        shutdown(ls, SHUT_RDWR);
    int64_t deadline = md_mono_ms() + grace_ms;
    while (atomic_load(&s->in_flight) > 0 && md_mono_ms() < deadline)
        md_sleep_ms(10);
    int left = atomic_load(&s->in_flight);
    if (left > 0)
        md_log_warn("http", "closing with %d request(s) still in flight after %lld ms", left,
                    (long long)grace_ms);
    /* libmicrohttpd must not be stopped with a connection suspended: take no
     * new jobs (a request arriving now is answered 503), let the running
     * handlers finish (each is bounded by its store's timeouts) and resume
     * their connections first. */
    if (s->handlers)
        md_workpool_close(s->handlers);
    MHD_stop_daemon(s->daemon);
    ctx_spare_drop(); /* completions of the last connections may run on this thread */
    md_workpool_stop(s->handlers); /* idle by now: joins the threads */
    md_conn_guard_stop(s->guard); /* after MHD: every connection has been removed */
    md_listener_free(s->listener); /* after MHD: its last md_listener_closed() is done */
    if (ls != MHD_INVALID_SOCKET)
        close(ls);
    MHD_destroy_response(s->oom_response);
    free(s);
}
