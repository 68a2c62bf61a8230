/*
 * fuzz_query.c — the query-string parser: md_query_split and
 * md_percent_decode.
 *
 * Input: byte 0 sets the parameter limit (0..39) and the '+' flag of the
 * direct md_percent_decode call; the rest is the raw query string (up to the
 * first NUL, as a request target never carries one).
 *
 * Invariants:
 *   - md_query_split splits exactly like libmicrohttpd 0.9.75's
 *     MHD_parse_arguments_ (re-implemented here as the oracle: in place,
 *     '+' to space, then our percent decoding and UTF-8 check per piece);
 *   - on failure nothing is left allocated (LeakSanitizer) and *n is 0;
 *   - md_percent_decode fails exactly on a malformed escape or a decoded
 *     NUL, never grows its input, and decoding the percent-encoding of its
 *     output gives the output back.
 */
#include "memoryd/compat.h"

#include "fuzz_common.h"
#include "memoryd/query.h"
#include "memoryd/text.h"

struct ref_param {
    char *key;
    char *value;
};

struct ref {
    struct ref_param p[64];
    size_t n;
    bool bad; /* a piece did not decode, or too many pieces */
};

static void ref_unescape_plus(char *s)
{
    for (; *s; s++)
        if (*s == '+')
            *s = ' ';
}

/* The callback MHD would call (the server's old add_query_param). */
static void ref_add(struct ref *r, size_t max, char *key, char *value)
{
    if (r->bad)
        return;
    if (r->n == max) {
        r->bad = true;
        return;
    }
    const char *v = value ? value : "";
    char *k = malloc(strlen(key) + 1), *d = malloc(strlen(v) + 1);
    FUZZ_CHECK(k && d, "out of memory in the oracle");
    if (!md_percent_decode(key, strlen(key), k, NULL, true) ||
        !md_percent_decode(v, strlen(v), d, NULL, true) || !md_utf8_valid(k, strlen(k)) ||
        !md_utf8_valid(d, strlen(d))) {
        free(k);
        free(d);
        r->bad = true;
        return;
    }
    r->p[r->n].key = k;
    r->p[r->n].value = d;
    r->n++;
}

/* MHD_parse_arguments_ (libmicrohttpd 0.9.75, internal.c), with an identity unescaper. */
static void ref_parse(char *args, size_t max, struct ref *r)
{
    while (args && args[0] != '\0') {
        char *equals = strchr(args, '=');
        char *amper = strchr(args, '&');
        if (!amper) {
            if (!equals) {
                ref_unescape_plus(args);
                ref_add(r, max, args, NULL);
                break;
            }
            equals[0] = '\0';
            equals++;
            ref_unescape_plus(args);
            ref_unescape_plus(equals);
            ref_add(r, max, args, equals);
            break;
        }
        amper[0] = '\0';
        amper++;
        if (!equals || equals >= amper) {
            ref_unescape_plus(args);
            ref_add(r, max, args, NULL);
            args = amper;
            continue;
        }
        equals[0] = '\0';
        equals++;
        ref_unescape_plus(args);
        ref_unescape_plus(equals);
        ref_add(r, max, args, equals);
        args = amper;
    }
}

static void ref_free(struct ref *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->p[i].key);
        free(r->p[i].value);
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void check_percent(const char *s, size_t len, bool plus)
{
    char *out = malloc(len + 1), *enc = malloc(3 * len + 1), *back = malloc(3 * len + 1);
    FUZZ_CHECK(out && enc && back, "out of memory");
    size_t olen = 12345;
    bool ok = md_percent_decode(s, len, out, &olen, plus);
    /* reference: well-formed escapes, no decoded NUL */
    bool want = true;
    for (size_t i = 0; i < len && want; i++) {
        if (s[i] == '%') {
            want = i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0 &&
                   (hexval(s[i + 1]) | hexval(s[i + 2])) != 0;
            i += 2;
        } else if (s[i] == '\0') {
            want = false;
        }
    }
    FUZZ_CHECK(ok == want, "md_percent_decode('%.*s') = %d, reference %d", (int)len, s, ok, want);
    if (ok) {
        FUZZ_CHECK(olen <= len && out[olen] == '\0' && strlen(out) == olen,
                   "decoded length %zu of %zu input bytes", olen, len);
        static const char hex[] = "0123456789ABCDEF";
        size_t e = 0;
        for (size_t i = 0; i < olen; i++) {
            enc[e++] = '%';
            enc[e++] = hex[(unsigned char)out[i] >> 4];
            enc[e++] = hex[(unsigned char)out[i] & 15];
        }
        size_t blen;
        FUZZ_CHECK(md_percent_decode(enc, e, back, &blen, plus) && blen == olen &&
                       memcmp(back, out, olen) == 0,
                   "percent round trip of '%s'", out);
    }
    free(out);
    free(enc);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16384)
        return 0;
    size_t max = data[0] % 40;
    bool plus = (data[0] & 0x80) != 0;
    char *q = fuzz_strndup(data + 1, size - 1);
    if (!q)
        return 0;
    size_t qlen = strlen(q);

    check_percent((const char *)data + 1, size - 1, plus); /* raw bytes, NULs included */

    struct md_query_param params[40];
    memset(params, 0, sizeof(params));
    size_t n = 999;
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = md_query_split(q, qlen, params, max, &n, &err);

    struct ref r;
    memset(&r, 0, sizeof(r));
    char *copy = fuzz_strndup((const uint8_t *)q, qlen);
    FUZZ_CHECK(copy != NULL, "out of memory");
    ref_parse(copy, max, &r);
    free(copy);

    FUZZ_CHECK((st == MD_OK) == !r.bad, "'%s' (max %zu): split %d, libmicrohttpd rules %s", q,
               max, (int)st, r.bad ? "refuse" : "accept");
    if (st == MD_OK) {
        FUZZ_CHECK(n == r.n, "'%s': %zu parameters, reference %zu", q, n, r.n);
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(strcmp(params[i].key, r.p[i].key) == 0 &&
                           strcmp(params[i].value, r.p[i].value) == 0,
                       "'%s' parameter %zu: '%s'='%s', reference '%s'='%s'", q, i, params[i].key,
                       params[i].value, r.p[i].key, r.p[i].value);
            FUZZ_CHECK(md_utf8_valid(params[i].key, strlen(params[i].key)) &&
                           md_utf8_valid(params[i].value, strlen(params[i].value)),
                       "parameter %zu is not UTF-8", i);
        }
        md_query_free(params, n);
    } else {
        FUZZ_CHECK(n == 0 && err.code == st && err.msg[0], "failure leaves *n %zu", n);
        for (size_t i = 0; i < MD_ARRAY_LEN(params); i++)
            FUZZ_CHECK(!params[i].key && !params[i].value, "failure left parameter %zu", i);
    }
    ref_free(&r);
    free(q);
    return 0;
}
