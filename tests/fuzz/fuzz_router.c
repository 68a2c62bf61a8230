/*
 * fuzz_router.c — md_router_match over the real route table (md_api_routes).
 *
 * Input: byte 0 picks the method (GET … OPTIONS, or 0 for an unknown one),
 * byte 1 the capacity handed to md_http_methods_text, the rest is the raw
 * path (up to the first NUL).
 *
 * Invariants, checked against a naive reference matcher written here:
 *   - the result (FOUND / WRONG_METHOD / NOT_FOUND), the route chosen (the
 *     first route of the table whose pattern and method match; HEAD matches
 *     GET routes) and the allowed-methods mask agree with the reference;
 *   - every capture is either valid — NUL-terminated, at most
 *     MD_ROUTE_PARAM_MAX bytes, equal to the percent-decoded segment — or
 *     flagged invalid with an empty string;
 *   - md_http_methods_text never writes past the capacity it is given.
 */
#include "memoryd/compat.h"

#include "fuzz_common.h"
#include "memoryd/api.h"
#include "memoryd/router.h"
#include "memoryd/text.h"

static const struct md_route *routes;
static size_t n_routes;
static struct md_router *router;

static void init_once(void)
{
    if (router)
        return;
    struct md_error err;
    routes = md_api_routes(&n_routes);
    router = md_router_new(routes, n_routes, &err);
    FUZZ_CHECK(router != NULL, "md_router_new: %s", err.msg);
}

/* Reference: split at '/', "/" has no segments; false when not a path or too many. */
static bool ref_split(const char *path, const char *seg[], size_t len[], size_t *n)
{
    *n = 0;
    if (path[0] != '/')
        return false;
    if (path[1] == '\0')
        return true;
    const char *p = path + 1;
    for (;;) {
        if (*n == MD_ROUTE_MAX_SEGMENTS)
            return false;
        const char *slash = strchr(p, '/');
        seg[*n] = p;
        len[*n] = slash ? (size_t)(slash - p) : strlen(p);
        (*n)++;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

static bool ref_path_matches(const char *pattern, const char *const seg[], const size_t len[],
                             size_t n)
{
    const char *pseg[MD_ROUTE_MAX_SEGMENTS];
    size_t plen[MD_ROUTE_MAX_SEGMENTS], pn;
    FUZZ_CHECK(ref_split(pattern, pseg, plen, &pn), "pattern '%s'", pattern);
    if (pn != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (pseg[i][0] == '{') {
            if (len[i] == 0)
                return false;
            continue;
        }
        if (plen[i] != len[i] || memcmp(pseg[i], seg[i], len[i]) != 0)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum md_http_method methods[] = {
        MD_M_GET,    MD_M_POST, MD_M_PUT, MD_M_PATCH, MD_M_DELETE,
        MD_M_HEAD,   MD_M_OPTIONS, 0};
    init_once();
    if (size < 2 || size > 16384)
        return 0;
    enum md_http_method method = methods[data[0] % MD_ARRAY_LEN(methods)];
    size_t text_cap = (size_t)data[1] % 97 + 1;
    char *path = fuzz_strndup(data + 2, size - 2);
    if (!path)
        return 0;

    struct md_route_match m;
    memset(&m, 0xA5, sizeof(m)); /* the matcher must not rely on a zeroed match */
    enum md_route_result rr = md_router_match(router, method, path, &m);

    /* reference */
    const char *seg[MD_ROUTE_MAX_SEGMENTS];
    size_t len[MD_ROUTE_MAX_SEGMENTS], n;
    const struct md_route *want = NULL;
    unsigned allowed = 0;
    enum md_http_method eff = method == MD_M_HEAD ? MD_M_GET : method;
    if (ref_split(path, seg, len, &n)) {
        for (size_t i = 0; i < n_routes; i++) {
            if (!ref_path_matches(routes[i].pattern, seg, len, n))
                continue;
            allowed |= routes[i].method;
            if (routes[i].method == MD_M_GET)
                allowed |= MD_M_HEAD;
            if (!want && routes[i].method == eff)
                want = &routes[i];
        }
    }
    enum md_route_result want_rr = want      ? MD_ROUTE_FOUND
                                   : allowed ? MD_ROUTE_WRONG_METHOD
                                             : MD_ROUTE_NOT_FOUND;
    FUZZ_CHECK(rr == want_rr, "'%s' %s: result %d, reference %d", md_http_method_name(method),
               path, (int)rr, (int)want_rr);
    if (rr != MD_ROUTE_FOUND)
        FUZZ_CHECK(m.route == NULL, "route set on a miss");
    FUZZ_CHECK(m.allowed == allowed, "'%s': allowed 0x%x, reference 0x%x", path, m.allowed,
               allowed);
    if (rr == MD_ROUTE_FOUND) {
        FUZZ_CHECK(m.route == want, "'%s': route '%s', reference '%s'", path, m.route->pattern,
                   want->pattern);
        /* captures, in order, against the reference decoding of their segments */
        const char *pseg[MD_ROUTE_MAX_SEGMENTS];
        size_t plen[MD_ROUTE_MAX_SEGMENTS], pn, k = 0;
        FUZZ_CHECK(ref_split(want->pattern, pseg, plen, &pn), "pattern");
        for (size_t i = 0; i < pn; i++) {
            if (pseg[i][0] != '{')
                continue;
            FUZZ_CHECK(k < m.n_params, "missing capture %zu", k);
            char dec[16384];
            size_t dlen = 0;
            bool ok = len[i] <= MD_ROUTE_PARAM_MAX &&
                      md_percent_decode(seg[i], len[i], dec, &dlen, false);
            FUZZ_CHECK(m.param_valid[k] == ok, "capture %zu of '%s': valid %d, reference %d", k,
                       path, m.param_valid[k], ok);
            size_t plen_k = strnlen(m.params[k], MD_ROUTE_PARAM_MAX + 1);
            FUZZ_CHECK(plen_k <= MD_ROUTE_PARAM_MAX, "capture %zu not terminated", k);
            if (ok)
                FUZZ_CHECK(plen_k == dlen && memcmp(m.params[k], dec, dlen) == 0,
                           "capture %zu of '%s' is '%s'", k, path, m.params[k]);
            else
                FUZZ_CHECK(m.params[k][0] == '\0', "invalid capture %zu not emptied", k);
            k++;
        }
        FUZZ_CHECK(k == m.n_params, "'%s': %zu captures, reference %zu", path, m.n_params, k);
    }

    /* the Allow header text, into a buffer of a fuzzed capacity with a guard */
    char text[128];
    memset(text, 0x5A, sizeof(text));
    md_http_methods_text(m.allowed | (unsigned)data[1], text, text_cap);
    FUZZ_CHECK(strnlen(text, text_cap) < text_cap, "methods text not terminated");
    for (size_t i = text_cap; i < sizeof(text); i++)
        FUZZ_CHECK(text[i] == 0x5A, "methods text wrote past its capacity %zu", text_cap);
    if (method)
        FUZZ_CHECK(md_http_method_parse(md_http_method_name(method)) == method,
                   "method name round trip");
    free(path);
    return 0;
}
