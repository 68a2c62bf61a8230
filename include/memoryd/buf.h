/*
 * buf.h — growable byte buffer with a hard cap (curl dynbuf's "toobig").
 *
 * A struct md_buf is caller-owned storage: md_buf_init() cannot fail and
 * allocates nothing; appends grow the heap block up to `max` bytes and fail
 * with MD_E_LIMIT beyond it, or MD_E_NOMEM when malloc fails. The content is
 * always NUL-terminated once anything was appended (the NUL is not counted
 * in len and does not count against max). Not thread-safe: one owner.
 */
#ifndef MD_BUF_H
#define MD_BUF_H

#include <stdarg.h>

#include "memoryd/compat.h"
#include "memoryd/status.h"

struct md_buf {
    char *data; /* owned, NUL-terminated, NULL until the first append */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len */
};

/* Initialise an empty buffer that may grow to max bytes. */
void md_buf_init(struct md_buf *b, size_t max);

/* Free the contents; the buffer is empty (and reusable) afterwards. */
void md_buf_release(struct md_buf *b);

/* Drop the contents but keep the allocation. */
void md_buf_reset(struct md_buf *b);

MD_MUSTCHECK enum md_status md_buf_append(struct md_buf *b, const void *data, size_t len);
MD_MUSTCHECK enum md_status md_buf_puts(struct md_buf *b, const char *s);
MD_MUSTCHECK enum md_status md_buf_putc(struct md_buf *b, char c);
MD_MUSTCHECK enum md_status md_buf_printf(struct md_buf *b, const char *fmt, ...) MD_PRINTF(2, 3);
MD_MUSTCHECK enum md_status md_buf_vprintf(struct md_buf *b, const char *fmt, va_list ap)
    MD_PRINTF(2, 0);

/*
 * Append s (len bytes, valid UTF-8) as a JSON string literal with quotes,
 * escaping '"', '\\' and control characters. A malformed UTF-8 sequence
 * (which validated text never has, but a message quoting client bytes may)
 * is written as U+FFFD, so the output is always valid UTF-8 JSON.
 */
MD_MUSTCHECK enum md_status md_buf_json_str(struct md_buf *b, const char *s, size_t len);

/* md_buf_json_str of a NUL-terminated string (NULL is written as ""). */
MD_MUSTCHECK enum md_status md_buf_json_cstr(struct md_buf *b, const char *s);

/*
 * Hand the contents to the caller (owned; free() it) and leave the buffer
 * empty. Returns an allocated "" if nothing was appended, NULL on OOM.
 */
char *md_buf_take(struct md_buf *b, size_t *len_out);

#endif /* MD_BUF_H */
