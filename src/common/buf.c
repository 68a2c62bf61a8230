/* buf.c — capped growable buffer. See memoryd/buf.h for the contract. */
#include "memoryd/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memoryd/buf.h"
#include "memoryd/text.h"

void md_buf_init(struct md_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void md_buf_release(struct md_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void md_buf_reset(struct md_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Make room for `extra` more bytes plus the NUL terminator. */
static enum md_status reserve(struct md_buf *b, size_t extra)
{
    if (extra > b->max - b->len || b->len > b->max)
        return MD_E_LIMIT;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return MD_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return MD_E_NOMEM;
    b->data = p;
    b->cap = cap;
    return MD_OK;
}

enum md_status md_buf_append(struct md_buf *b, const void *data, size_t len)
{
    enum md_status st = reserve(b, len);
    if (st != MD_OK)
        return st;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return MD_OK;
}

enum md_status md_buf_puts(struct md_buf *b, const char *s)
{
    return md_buf_append(b, s, strlen(s));
}

enum md_status md_buf_putc(struct md_buf *b, char c)
{
    return md_buf_append(b, &c, 1);
}

enum md_status md_buf_vprintf(struct md_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return MD_E_INTERNAL;
    if ((size_t)n < sizeof(small))
        return md_buf_append(b, small, (size_t)n);
    enum md_status st = reserve(b, (size_t)n);
    if (st != MD_OK)
        return st;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return MD_OK;
}

enum md_status md_buf_printf(struct md_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum md_status st = md_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return st;
}

/* Length of the well-formed UTF-8 sequence at s[0..avail) (lead byte >= 0x80), or 0. */
static size_t utf8_seq(const char *s, size_t avail)
{
    unsigned char c = (unsigned char)s[0];
    size_t n = 0;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    return n && n <= avail && md_utf8_valid(s, n) ? n : 0;
}

enum md_status md_buf_json_str(struct md_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX (6 bytes), plus the quotes. */
    enum md_status st = reserve(b, len * 6 + 2);
    if (st != MD_OK)
        return st;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            /* Callers pass valid UTF-8, but an error message may quote client
             * bytes cut mid-character (jansson's error text, truncation): a
             * broken sequence becomes U+FFFD so the document stays UTF-8. */
            size_t n = utf8_seq(s + i, len - i);
            if (n == 0) {
                memcpy(o, "\\ufffd", 6);
                o += 6;
            } else {
                memcpy(o, s + i, n);
                o += n;
                i += n - 1;
            }
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c >= 0x20) {
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return MD_OK;
}

enum md_status md_buf_json_cstr(struct md_buf *b, const char *s)
{
    if (!s)
        s = "";
    return md_buf_json_str(b, s, strlen(s));
}

char *md_buf_take(struct md_buf *b, size_t *len_out)
{
    char *p = b->data;
    size_t len = b->len;
    if (!p) {
        p = calloc(1, 1);
        len = 0;
    }
    if (len_out)
        *len_out = len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
