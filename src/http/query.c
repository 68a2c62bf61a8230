/*
 * query.c — query string splitting with libmicrohttpd's rules (see query.h).
 *
 * libmicrohttpd 0.9.75 splits the query in place (MHD_parse_arguments_):
 * '&' ends a parameter, the first '=' of a parameter ends its key, and a
 * parameter that is the empty rest of the string after a '&' is dropped.
 * The server installs an identity unescape callback, so the pieces reach
 * us exactly as sent, '+' already turned into a space by MHD_unescape_plus;
 * md_percent_decode(.., plus_is_space) does both in one pass.
 */
#include "memoryd/compat.h"

#include <stdlib.h>
#include <string.h>

#include "memoryd/query.h"
#include "memoryd/text.h"

/* Decode s[0..len) into a new string; NULL + *bad when malformed. */
static char *decode_piece(const char *s, size_t len, bool *bad)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t n;
    if (!md_percent_decode(s, len, out, &n, true) || !md_utf8_valid(out, n)) {
        free(out);
        *bad = true;
        return NULL;
    }
    return out;
}

enum md_status md_query_split(const char *query, size_t len, struct md_query_param *out,
                              size_t max, size_t *n, struct md_error *err)
{
    *n = 0;
    const char *p = query, *end = query + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (*n == max) {
            md_query_free(out, *n);
            *n = 0;
            return md_error_set(err, MD_E_INVAL, "more than %zu query parameters", max);
        }
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        size_t klen = eq ? (size_t)(eq - p) : (size_t)(stop - p);
        const char *v = eq ? eq + 1 : stop;
        bool bad = false;
        char *key = decode_piece(p, klen, &bad);
        char *value = key ? decode_piece(v, (size_t)(stop - v), &bad) : NULL;
        if (!key || !value) {
            free(key);
            md_query_free(out, *n);
            *n = 0;
            if (bad)
                return md_error_set(err, MD_E_INVAL, "malformed query string (bad escape, "
                                    "invalid UTF-8 or a NUL byte)");
            return md_error_set(err, MD_E_NOMEM, "out of memory, try again");
        }
        out[*n].key = key;
        out[*n].value = value;
        (*n)++;
        if (!amp)
            break;
        p = amp + 1; /* a '&' at the very end leaves p == end: no empty parameter */
    }
    return MD_OK;
}

void md_query_free(struct md_query_param *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(params[i].key);
        free(params[i].value);
        params[i].key = params[i].value = NULL;
    }
}
