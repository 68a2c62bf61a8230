/*
 * http.h — the HTTP front: libmicrohttpd behind a small request/response
 * model that handlers see instead of MHD.
 *
 * The server owns one struct md_req per request, allocated on MHD's first
 * access-handler call and freed in its completion callback. Before a handler
 * runs, the server has matched the route (404/405), asked the authorize hook
 * (401/429), checked Content-Type (415), bounded the body while it arrived
 * (413) and parsed a JSON body with the depth limit (400). Handlers fill a
 * struct md_resp; the server turns it into an MHD response, adds
 * X-Request-Id and writes the access log.
 *
 * Threading, pool mode (the default): API_WORKERS event threads own the
 * connections and never wait on a store. They answer what needs no store
 * themselves (routes flagged MD_ROUTE_INLINE, errors decided before the
 * handler, and cache hits through the answer_inline hook); every other
 * request is suspended and its handler runs on a handler thread from an
 * elastic pool (memoryd/workpool.h, at most one per connection), after
 * which the event thread sends the answer. A store that hangs holds only
 * handler threads: /health, cache hits and the other tier keep answering.
 * Per-connection mode: one thread per connection runs everything.
 * A handler may block on a store only under that store's timeouts.
 * md_http_server_stop() stops accepting, waits for in-flight requests up to
 * a timeout (and for running handlers, which store timeouts bound), then
 * closes every connection.
 */
#ifndef MD_HTTP_H
#define MD_HTTP_H

#include <jansson.h>

#include "memoryd/buf.h"
#include "memoryd/compat.h"
#include "memoryd/router.h"
#include "memoryd/status.h"

#define MD_REQUEST_ID_MAX 64
#define MD_MAX_QUERY_PARAMS 32
#define MD_RESP_MAX_HEADERS 6

struct md_query_param {
    char *key;   /* owned by the request, decoded */
    char *value; /* owned by the request, decoded ("" for "?flag") */
};

struct md_req {
    void *app;                  /* borrowed: the application context */
    enum md_http_method method;
    const char *path;           /* raw path, borrowed from MHD for the request's life */
    struct md_route_match match; /* route and decoded captures */
    struct md_query_param query[MD_MAX_QUERY_PARAMS];
    size_t n_query;
    json_t *body;               /* parsed JSON object body, or NULL (owned by the request) */
    char request_id[MD_REQUEST_ID_MAX + 1];
    char client_ip[64];         /* numeric client address: use md_req_client_ip() */
    int64_t start_us;           /* monotonic, for durations */
    int64_t now_ms;             /* wall clock at arrival: one clock reading per request */
    const char *(*header)(const struct md_req *req, const char *name); /* header lookup */
    void *conn;                 /* opaque: the MHD connection */
};

struct md_resp_header {
    char name[32];
    char value[256];
};

struct md_resp {
    int status;
    const char *content_type;   /* static string; default application/json */
    struct md_buf body;         /* owned body (capped) */
    const char *static_body;    /* alternatively a static body (not copied, not freed) */
    size_t static_len;
    struct md_resp_header headers[MD_RESP_MAX_HEADERS];
    size_t n_headers;
    char fallback[512];         /* inline body used when the heap fails (no allocation) */
};

/* Value of a decoded query parameter, or NULL if absent (first occurrence). */
const char *md_req_query(const struct md_req *req, const char *key);

/* The client's numeric address ("" if unknown), formatted on first use. */
const char *md_req_client_ip(struct md_req *req);

/* Value of a request header (case-insensitive name), or NULL. */
const char *md_req_header(const struct md_req *req, const char *name);

/* Add a response header (copied, truncated to fit). */
void md_resp_header(struct md_resp *resp, const char *name, const char *value);

/* Hooks from the application into the server (all optional, may be NULL). */
struct md_http_hooks {
    void *ctx;
    /*
     * Called after routing, before the body is read. Return 0 to go on, or
     * an HTTP status (401, 429, …) after filling resp to refuse the request.
     */
    int (*authorize)(void *ctx, struct md_req *req, struct md_resp *resp);
    /*
     * Pool mode, for a GET route without MD_ROUTE_INLINE: answer from memory
     * (never blocking) and return true, or return false to have the handler
     * run on a handler thread. Called on an event thread, after authorize.
     */
    bool (*answer_inline)(void *ctx, struct md_req *req, struct md_resp *resp);
    /* Called once per finished request, from the worker thread. */
    void (*observe)(void *ctx, const struct md_req *req, int status, int64_t duration_us);
};

struct md_http_options {
    const char *host;
    int port;
    bool thread_per_connection; /* else `workers` event threads + handler threads */
    int workers;
    int min_handler_threads;    /* pool mode: handler threads kept when idle */
    size_t max_body_bytes;
    int max_connections;
    int max_connections_per_ip; /* 0: unlimited */
    int connection_timeout_s;
    bool access_log;
};

struct md_http_server;

/*
 * Start listening and serving routes (borrowed; must outlive the server).
 * NULL + err when the address cannot be bound or MHD fails to start.
 */
struct md_http_server *md_http_server_start(const struct md_http_options *opt,
                                            const struct md_router *router,
                                            const struct md_http_hooks *hooks, void *app,
                                            struct md_error *err);

/* The port actually bound (useful with port 0 in tests). */
int md_http_server_port(const struct md_http_server *s);

/* Requests currently being processed. */
int md_http_server_in_flight(const struct md_http_server *s);

/* Pool mode: handler threads running / busy and requests waiting for one; false otherwise. */
bool md_http_server_handler_stats(const struct md_http_server *s, int *threads, int *busy,
                                  int *queued);

/*
 * Graceful stop: stop accepting, wait up to grace_ms for in-flight requests,
 * then shut MHD down and free the server. Accepts NULL.
 */
void md_http_server_stop(struct md_http_server *s, int64_t grace_ms);

#endif /* MD_HTTP_H */
