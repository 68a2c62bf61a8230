/*
 * router.h — the route table: method + path pattern -> handler.
 *
 * Patterns are literal segments and `{name}` captures, e.g.
 * "/v1/stm/entries/{id}/feedback". Matching works on the raw (still
 * percent-encoded) path, one segment at a time, so an encoded '/' inside an
 * id never changes the route; each capture is then percent-decoded. A
 * capture that does not decode (bad escape, NUL byte) or is longer than
 * MD_ROUTE_PARAM_MAX is flagged invalid: the handler answers 400, never 404.
 *
 * A router is built once at start-up and read-only afterwards (thread-safe).
 */
#ifndef MD_ROUTER_H
#define MD_ROUTER_H

#include "memoryd/compat.h"
#include "memoryd/status.h"

#define MD_ROUTE_MAX_PARAMS 2
#define MD_ROUTE_PARAM_MAX 512
#define MD_ROUTE_MAX_SEGMENTS 8

enum md_http_method {
    MD_M_GET = 1 << 0,
    MD_M_POST = 1 << 1,
    MD_M_PUT = 1 << 2,
    MD_M_PATCH = 1 << 3,
    MD_M_DELETE = 1 << 4,
    MD_M_HEAD = 1 << 5,
    MD_M_OPTIONS = 1 << 6,
};

/* Method from its name ("GET"); 0 for anything else. */
enum md_http_method md_http_method_parse(const char *name);

/* Name of a single method bit ("PATCH"). */
const char *md_http_method_name(enum md_http_method m);

/* Route flags: what the HTTP layer does before calling the handler. */
enum md_route_flags {
    MD_ROUTE_AUTH = 1 << 0,          /* needs an API key when keys are configured */
    MD_ROUTE_BODY = 1 << 1,          /* takes a JSON object body (required) */
    MD_ROUTE_BODY_OPTIONAL = 1 << 2, /* takes a JSON object body (may be absent) */
    MD_ROUTE_OPS_AUTH = 1 << 3,      /* needs a key only when METRICS_REQUIRE_AUTH */
    MD_ROUTE_NO_ACCESS_LOG = 1 << 4, /* (unused by default) */
    MD_ROUTE_INLINE = 1 << 5,        /* never blocks: runs on the event thread (pool mode) */
};

struct md_req;
struct md_resp;
typedef void (*md_handler_fn)(struct md_req *req, struct md_resp *resp);

struct md_route {
    enum md_http_method method;
    const char *pattern; /* static string */
    md_handler_fn handler;
    unsigned flags;      /* enum md_route_flags */
    /* A cacheable GET: the envelope message of its answers, also of those
     * served from the cache without the handler (md_http_hooks.answer_inline);
     * NULL when the route's answers are not cached. */
    const char *cache_message;
};

/* Result of a match: captures are decoded, NUL-terminated, owned by the match. */
struct md_route_match {
    const struct md_route *route;
    size_t n_params;
    char params[MD_ROUTE_MAX_PARAMS][MD_ROUTE_PARAM_MAX + 1];
    bool param_valid[MD_ROUTE_MAX_PARAMS];
    unsigned allowed; /* for MD_ROUTE_WRONG_METHOD: the methods the path supports */
};

enum md_route_result { MD_ROUTE_FOUND, MD_ROUTE_WRONG_METHOD, MD_ROUTE_NOT_FOUND };

struct md_router;

/* Build a router over routes[0..n) (borrowed; must outlive the router). */
struct md_router *md_router_new(const struct md_route *routes, size_t n, struct md_error *err);
void md_router_free(struct md_router *r);

/*
 * Match method and the raw path (no query string). HEAD matches GET routes.
 * On MD_ROUTE_WRONG_METHOD, m->allowed lists the methods of the path.
 */
enum md_route_result md_router_match(const struct md_router *r, enum md_http_method method,
                                     const char *path, struct md_route_match *m);

/* Write "GET, HEAD, POST" style text for an allowed-methods mask. */
void md_http_methods_text(unsigned mask, char *out, size_t cap);

#endif /* MD_ROUTER_H */
