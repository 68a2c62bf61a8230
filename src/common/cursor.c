/* cursor.c — self-checking opaque cursors (see memoryd/cursor.h). */
#include "memoryd/compat.h"

#include <stdio.h>
#include <string.h>

#include "memoryd/cursor.h"
#include "memoryd/text.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = b64[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = b64[v & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64_val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

static bool b64_decode(const char *in, unsigned char *out, size_t cap, size_t *n)
{
    size_t len = strlen(in), o = 0;
    if (len % 4 == 1)
        return false;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        size_t chunk = MD_MIN(4, len - i);
        for (size_t k = 0; k < 4; k++) {
            int d = k < chunk ? b64_val(in[i + k]) : 0;
            if (d < 0)
                return false;
            v = (v << 6) | (uint32_t)d;
        }
        for (size_t k = 0; k + 1 < chunk; k++) {
            if (o == cap)
                return false;
            out[o++] = (unsigned char)(v >> (16 - 8 * k));
        }
    }
    *n = o;
    return true;
}

/* The key of the check values (set once at start-up, before threads). */
static char secret[129] = "memoryd-cursor-default-key";

void md_cursor_set_secret(const char *key)
{
    snprintf(secret, sizeof(secret), "%s", key);
}

/*
 * First 16 hex digits of HMAC-SHA256(secret, kind \n payload \n binding):
 * without the secret nobody can mint a cursor the server accepts. The
 * binding can be long (search filters), so it is hashed first.
 */
static void check_value(const char *kind, const char *payload, const char *binding, char out[17])
{
    char bind_hash[MD_SHA256_HEX_LEN];
    const char *b = binding ? binding : "";
    md_sha256_hex(b, strlen(b), bind_hash);
    char buf[MD_CURSOR_PAYLOAD_MAX + 256];
    int n = snprintf(buf, sizeof(buf), "memoryd-cursor-v1\n%s\n%s\n%s", kind, payload,
                     bind_hash);
    char hex[MD_SHA256_HEX_LEN];
    md_hmac_sha256_hex(secret, strlen(secret), buf,
                       n < 0 ? 0 : MD_MIN((size_t)n, sizeof(buf) - 1), hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

bool md_cursor_encode(const char *kind, const char *payload, const char *binding,
                      char out[MD_CURSOR_MAX + 1])
{
    size_t plen = strlen(payload);
    if (plen > MD_CURSOR_PAYLOAD_MAX)
        return false;
    char check[17];
    check_value(kind, payload, binding, check);
    unsigned char raw[MD_CURSOR_PAYLOAD_MAX + 20];
    memcpy(raw, payload, plen);
    raw[plen] = '.';
    memcpy(raw + plen + 1, check, 16);
    b64_encode(raw, plen + 17, out);
    return true;
}

bool md_cursor_decode(const char *kind, const char *cursor, const char *binding,
                      char payload[MD_CURSOR_PAYLOAD_MAX + 1])
{
    if (!cursor || strlen(cursor) > MD_CURSOR_MAX)
        return false;
    unsigned char raw[MD_CURSOR_MAX];
    size_t n;
    if (!b64_decode(cursor, raw, sizeof(raw), &n) || n < 17 || n - 17 > MD_CURSOR_PAYLOAD_MAX)
        return false;
    size_t plen = n - 17;
    if (raw[plen] != '.' || memchr(raw, '\0', n))
        return false;
    memcpy(payload, raw, plen);
    payload[plen] = '\0';
    char check[17];
    check_value(kind, payload, binding, check);
    return md_consttime_eq(check, 16, raw + plen + 1, 16);
}
