/*
 * json_load.c — recursive-descent JSON parser over a buffer, building jansson values.
 *
 * DESIGN: the grammar and the edge cases follow jansson's load.c (so that the
 * two accept the same texts and build the same trees): the top value is an
 * object or an array unless MD_JSON_LOAD_ANY; every value counts one level of
 * depth and more than MD_JSON_LOAD_MAX_DEPTH is refused; numbers without a
 * fraction or exponent are json_int_t (out of range is an error), others are
 * doubles from strtod (an overflow to ±HUGE_VAL is an error, an underflow is
 * not); "0" may not be followed by a digit; strings may not hold control
 * characters, invalid UTF-8, lone surrogates or \u0000. The whole buffer is
 * checked as UTF-8 once up front, so the string scanner only looks for '"',
 * '\\' and control bytes. Strings without escapes are copied once, straight
 * from the buffer; the others are decoded into a scratch buffer first.
 *
 * Recursion depth is bounded by MD_JSON_LOAD_MAX_DEPTH; each level uses a
 * small fixed frame (no arrays on the stack), well inside the 512 KiB stacks
 * of handler threads.
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memoryd/json_load.h"
#include "memoryd/text.h"

const char md_json_load_oom[] = "out of memory";

struct parser {
    const char *start, *p, *end;
    unsigned flags;
    unsigned depth;
    const char *err;
    char *scratch; /* decoded strings with escapes; grown as needed, freed at the end */
    size_t scratch_cap;
};

static json_t *parse_value(struct parser *ps);

static json_t *fail(struct parser *ps, const char *msg)
{
    if (!ps->err)
        ps->err = msg;
    return NULL;
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* Four hex digits at s (s + 4 <= end checked by the caller); -1 if not hex. */
static long hex4(const char *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = md_hex_value(s[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

static bool scratch_reserve(struct parser *ps, size_t need)
{
    if (need <= ps->scratch_cap)
        return true;
    size_t cap = ps->scratch_cap ? ps->scratch_cap : 256;
    while (cap < need)
        cap *= 2;
    char *n = realloc(ps->scratch, cap);
    if (!n)
        return false;
    ps->scratch = n;
    ps->scratch_cap = cap;
    return true;
}

/* One \uXXXX escape (or a surrogate pair) at ps->p (just past the 'u'). */
/* fail() for the helpers that answer a bool. */
static bool failed(struct parser *ps, const char *msg)
{
    fail(ps, msg);
    return false;
}

static bool decode_u(struct parser *ps, unsigned long *cp)
{
    if (ps->end - ps->p < 4 || (*cp = (unsigned long)hex4(ps->p)) > 0xFFFF)
        return failed(ps, "invalid \\u escape");
    ps->p += 4;
    if (*cp == 0)
        return failed(ps, "\\u0000 is not allowed");
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return failed(ps, "invalid Unicode (lone low surrogate)");
    if (*cp < 0xD800 || *cp > 0xDBFF)
        return true;
    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u')
        return failed(ps, "invalid Unicode (lone high surrogate)");
    long lo = hex4(ps->p + 2);
    if (lo < 0xDC00 || lo > 0xDFFF)
        return failed(ps, "invalid Unicode (bad low surrogate)");
    ps->p += 6;
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
    return true;
}

/*
 * The string at ps->p (just past the opening quote). On success *out and *len
 * point at the content: into the input when it has no escapes, else into
 * ps->scratch (valid until the next string).
 */
static bool scan_string(struct parser *ps, const char **out, size_t *len)
{
    const char *s = ps->p;
    const char *q = s;
    while (q < ps->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
        q++;
    if (q < ps->end && *q == '"') { /* the common case: no escapes */
        *out = s;
        *len = (size_t)(q - s);
        ps->p = q + 1;
        return true;
    }
    /* escapes: decode into scratch; the output is never longer than the input */
    size_t o = (size_t)(q - s);
    if (!scratch_reserve(ps, (size_t)(ps->end - s) + 1))
        return failed(ps, md_json_load_oom);
    memcpy(ps->scratch, s, o);
    ps->p = q;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            *out = ps->scratch;
            *len = o;
            return true;
        }
        if (c < 0x20)
            return failed(ps, "control character in a string");
        if (c != '\\') {
            ps->scratch[o++] = (char)c;
            ps->p++;
            continue;
        }
        if (++ps->p >= ps->end)
            break;
        char e = *ps->p++;
        switch (e) {
        case '"': ps->scratch[o++] = '"'; break;
        case '\\': ps->scratch[o++] = '\\'; break;
        case '/': ps->scratch[o++] = '/'; break;
        case 'b': ps->scratch[o++] = '\b'; break;
        case 'f': ps->scratch[o++] = '\f'; break;
        case 'n': ps->scratch[o++] = '\n'; break;
        case 'r': ps->scratch[o++] = '\r'; break;
        case 't': ps->scratch[o++] = '\t'; break;
        case 'u': {
            unsigned long cp;
            if (!decode_u(ps, &cp))
                return false;
            /* 6 bytes of escape become at most 4 of UTF-8 */
            o += md_utf8_encode((uint32_t)cp, ps->scratch + o);
            break;
        }
        default: return failed(ps, "invalid escape in a string");
        }
    }
    return failed(ps, "unterminated string");
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static json_t *parse_number(struct parser *ps)
{
    const char *s = ps->p, *q = s, *e = ps->end;
    bool real = false;
    if (q < e && *q == '-')
        q++;
    if (q < e && *q == '0') {
        q++;
        if (q < e && is_digit(*q))
            return fail(ps, "invalid number (leading zero)");
    } else if (q < e && is_digit(*q)) {
        while (q < e && is_digit(*q))
            q++;
    } else {
        return fail(ps, "invalid token");
    }
    if (q < e && *q == '.') {
        q++;
        if (q >= e || !is_digit(*q))
            return fail(ps, "invalid number (digit expected after '.')");
        while (q < e && is_digit(*q))
            q++;
        real = true;
    }
    if (q < e && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < e && (*q == '+' || *q == '-'))
            q++;
        if (q >= e || !is_digit(*q))
            return fail(ps, "invalid number (digit expected in the exponent)");
        while (q < e && is_digit(*q))
            q++;
        real = true;
    }
    /* strtoll/strtod need a terminated copy; numbers are short, long ones go to the heap */
    size_t n = (size_t)(q - s);
    char small[64];
    char *text = n < sizeof(small) ? small : malloc(n + 1);
    if (!text)
        return fail(ps, md_json_load_oom);
    memcpy(text, s, n);
    text[n] = '\0';
    json_t *v;
    errno = 0;
    if (!real) {
        long long iv = strtoll(text, NULL, 10);
        v = errno == ERANGE ? fail(ps, "integer out of range") : json_integer((json_int_t)iv);
    } else {
        double d = strtod(text, NULL);
        v = (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
                ? fail(ps, "real number overflow")
                : json_real(d);
    }
    if (text != small)
        free(text);
    if (!v)
        return fail(ps, md_json_load_oom);
    ps->p = q;
    return v;
}

static json_t *parse_literal(struct parser *ps, const char *word, size_t n, json_t *value)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, "invalid token");
    ps->p += n;
    return value ? value : fail(ps, md_json_load_oom);
}

static json_t *parse_array(struct parser *ps)
{
    json_t *a = json_array();
    if (!a)
        return fail(ps, md_json_load_oom);
    ps->p++; /* '[' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return a;
    }
    for (;;) {
        json_t *v = parse_value(ps);
        if (!v || json_array_append_new(a, v) != 0)
            break;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return a;
        }
        fail(ps, "',' or ']' expected");
        break;
    }
    fail(ps, md_json_load_oom);
    json_decref(a);
    return NULL;
}

static json_t *parse_object(struct parser *ps)
{
    json_t *o = json_object();
    if (!o)
        return fail(ps, md_json_load_oom);
    ps->p++; /* '{' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return o;
    }
    for (;;) {
        if (ps->p >= ps->end || *ps->p != '"') {
            fail(ps, "string or '}' expected");
            break;
        }
        ps->p++;
        const char *k;
        size_t klen;
        if (!scan_string(ps, &k, &klen))
            break;
        /* the key may live in scratch, which the value's strings reuse: copy it */
        char small[128];
        char *key = klen < sizeof(small) ? small : malloc(klen + 1);
        if (!key) {
            fail(ps, md_json_load_oom);
            break;
        }
        memcpy(key, k, klen);
        key[klen] = '\0';
        bool ok = false;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            fail(ps, "':' expected");
        } else if ((ps->flags & MD_JSON_LOAD_REJECT_DUPS) && json_object_getn(o, key, klen)) {
            fail(ps, "duplicate object key");
        } else {
            ps->p++;
            json_t *v = parse_value(ps);
            ok = v && json_object_setn_new_nocheck(o, key, klen, v) == 0;
        }
        if (key != small)
            free(key);
        if (!ok)
            break;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            return o;
        }
        fail(ps, "',' or '}' expected");
        break;
    }
    fail(ps, md_json_load_oom);
    json_decref(o);
    return NULL;
}

static json_t *parse_value(struct parser *ps)
{
    if (++ps->depth > MD_JSON_LOAD_MAX_DEPTH)
        return fail(ps, "maximum nesting depth reached");
    skip_ws(ps);
    json_t *v;
    if (ps->p >= ps->end) {
        v = fail(ps, "unexpected end of input");
    } else {
        switch (*ps->p) {
        case '{': v = parse_object(ps); break;
        case '[': v = parse_array(ps); break;
        case '"': {
            ps->p++;
            const char *s;
            size_t n;
            v = NULL;
            if (scan_string(ps, &s, &n) && !(v = json_stringn_nocheck(s, n)))
                fail(ps, md_json_load_oom);
            break;
        }
        case 't': v = parse_literal(ps, "true", 4, json_true()); break;
        case 'f': v = parse_literal(ps, "false", 5, json_false()); break;
        case 'n': v = parse_literal(ps, "null", 4, json_null()); break;
        default: v = parse_number(ps); break;
        }
    }
    ps->depth--;
    return v;
}

json_t *md_json_load(const char *data, size_t len, unsigned flags, const char **err_out,
                     size_t *err_pos)
{
    struct parser ps = {.start = data, .p = data, .end = data + len, .flags = flags};
    json_t *v = NULL;
    if (!data || !md_utf8_valid(data, len)) {
        fail(&ps, "invalid UTF-8");
    } else {
        skip_ws(&ps);
        if (!(flags & MD_JSON_LOAD_ANY) &&
            (ps.p >= ps.end || (*ps.p != '{' && *ps.p != '[')))
            fail(&ps, "'[' or '{' expected");
        else
            v = parse_value(&ps);
        if (v) {
            skip_ws(&ps);
            if (ps.p != ps.end) {
                fail(&ps, "end of input expected");
                json_decref(v);
                v = NULL;
            }
        }
    }
    free(ps.scratch);
    if (!v) {
        if (err_out)
            *err_out = ps.err ? ps.err : "invalid JSON";
        if (err_pos)
            *err_pos = (size_t)(ps.p - ps.start);
    }
    return v;
}
