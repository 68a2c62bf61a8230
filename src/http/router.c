/*
 * router.c — segment-wise matching of raw paths against route patterns.
 *
 * Routes are few (tens), so a linear scan over pre-split patterns is both
 * the simplest and, for this size, the fastest structure: no allocation per
 * request and a handful of short string compares.
 */
#include "memoryd/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memoryd/router.h"
#include "memoryd/text.h"

struct compiled {
    const struct md_route *route;
    size_t n_seg;
    const char *seg[MD_ROUTE_MAX_SEGMENTS]; /* NULL = capture */
    size_t seg_len[MD_ROUTE_MAX_SEGMENTS];
};

struct md_router {
    size_t n;
    struct compiled *routes;
};

enum md_http_method md_http_method_parse(const char *name)
{
    static const struct {
        const char *name;
        enum md_http_method m;
    } methods[] = {{"GET", MD_M_GET},     {"POST", MD_M_POST},     {"PUT", MD_M_PUT},
                   {"PATCH", MD_M_PATCH}, {"DELETE", MD_M_DELETE}, {"HEAD", MD_M_HEAD},
                   {"OPTIONS", MD_M_OPTIONS}};
    for (size_t i = 0; i < MD_ARRAY_LEN(methods); i++)
        if (strcmp(name, methods[i].name) == 0)
            return methods[i].m;
    return 0;
}

const char *md_http_method_name(enum md_http_method m)
{
    switch (m) {
    case MD_M_GET: return "GET";
    case MD_M_POST: return "POST";
    case MD_M_PUT: return "PUT";
    case MD_M_PATCH: return "PATCH";
    case MD_M_DELETE: return "DELETE";
    case MD_M_HEAD: return "HEAD";
    case MD_M_OPTIONS: return "OPTIONS";
    }
    return "?";
}

void md_http_methods_text(unsigned mask, char *out, size_t cap)
{
    static const enum md_http_method order[] = {MD_M_GET,   MD_M_HEAD,   MD_M_POST,
                                                MD_M_PUT,   MD_M_PATCH,  MD_M_DELETE,
                                                MD_M_OPTIONS};
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < MD_ARRAY_LEN(order); i++) {
        if (!(mask & order[i]))
            continue;
        int n = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", md_http_method_name(order[i]));
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
    }
}

/* Split "/a/b/c" into segments (pointers into s); false if too many. */
static bool split(const char *s, const char **seg, size_t *len, size_t *n)
{
    *n = 0;
    if (*s != '/')
        return false;
    if (s[1] == '\0')
        return true; /* "/" has no segments */
    while (*s == '/') {
        s++;
        if (*n == MD_ROUTE_MAX_SEGMENTS)
            return false;
        const char *start = s;
        while (*s && *s != '/')
            s++;
        seg[*n] = start;
        len[*n] = (size_t)(s - start);
        (*n)++;
    }
    return *s == '\0';
}

struct md_router *md_router_new(const struct md_route *routes, size_t n, struct md_error *err)
{
    struct md_router *r = calloc(1, sizeof(*r));
    struct compiled *c = calloc(n ? n : 1, sizeof(*c));
    if (!r || !c) {
        free(r);
        free(c);
        md_error_set(err, MD_E_NOMEM, "out of memory building the route table");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        c[i].route = &routes[i];
        if (!split(routes[i].pattern, c[i].seg, c[i].seg_len, &c[i].n_seg)) {
            md_error_set(err, MD_E_INTERNAL, "bad route pattern '%s'", routes[i].pattern);
            free(r);
            free(c);
            return NULL;
        }
        size_t caps = 0;
        for (size_t s = 0; s < c[i].n_seg; s++)
            if (c[i].seg[s][0] == '{') {
                c[i].seg[s] = NULL;
                caps++;
            }
        if (caps > MD_ROUTE_MAX_PARAMS) {
            md_error_set(err, MD_E_INTERNAL, "route '%s' has too many captures",
                         routes[i].pattern);
            free(r);
            free(c);
            return NULL;
        }
    }
    r->n = n;
    r->routes = c;
    return r;
}

void md_router_free(struct md_router *r)
{
    if (!r)
        return;
    free(r->routes);
    free(r);
}

static bool path_matches(const struct compiled *c, const char **seg, const size_t *len,
                         size_t n_seg)
{
    if (c->n_seg != n_seg)
        return false;
    for (size_t s = 0; s < n_seg; s++) {
        if (c->seg[s] == NULL) {
            if (len[s] == 0)
                return false; /* empty capture: "/v1/stm/entries//feedback" */
            continue;
        }
        if (c->seg_len[s] != len[s] || memcmp(c->seg[s], seg[s], len[s]) != 0)
            return false;
    }
    return true;
}

static void capture(const struct compiled *c, const char **seg, const size_t *len,
                    struct md_route_match *m)
{
    m->n_params = 0;
    for (size_t s = 0; s < c->n_seg; s++) {
        if (c->seg[s] != NULL)
            continue;
        size_t k = m->n_params++;
        size_t out_len;
        m->param_valid[k] = len[s] <= MD_ROUTE_PARAM_MAX &&
                            md_percent_decode(seg[s], len[s], m->params[k], &out_len, false);
        if (!m->param_valid[k])
            m->params[k][0] = '\0';
    }
}

enum md_route_result md_router_match(const struct md_router *r, enum md_http_method method,
                                     const char *path, struct md_route_match *m)
{
    const char *seg[MD_ROUTE_MAX_SEGMENTS];
    size_t len[MD_ROUTE_MAX_SEGMENTS], n_seg;
    m->route = NULL;
    m->allowed = 0;
    m->n_params = 0;
    if (!split(path, seg, len, &n_seg))
        return MD_ROUTE_NOT_FOUND;
    enum md_http_method want = method == MD_M_HEAD ? MD_M_GET : method;
    for (size_t i = 0; i < r->n; i++) {
        const struct compiled *c = &r->routes[i];
        if (!path_matches(c, seg, len, n_seg))
            continue;
        m->allowed |= c->route->method;
        if (c->route->method == MD_M_GET)
            m->allowed |= MD_M_HEAD;
        if (c->route->method == want && !m->route) {
            m->route = c->route;
            capture(c, seg, len, m);
        }
    }
    if (m->route)
        return MD_ROUTE_FOUND;
    return m->allowed ? MD_ROUTE_WRONG_METHOD : MD_ROUTE_NOT_FOUND;
}
