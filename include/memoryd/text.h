/*
 * text.h — byte-level text helpers shared by the validators, the stores, the
 * JSON loader and the HTTP layer: UTF-8 checks, counting and encoding, hex
 * digits, SHA-256, percent decoding and random identifiers. All functions are
 * pure or thread-safe and allocate nothing unless they say so.
 */
#ifndef MD_TEXT_H
#define MD_TEXT_H

#include "memoryd/compat.h"

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool md_utf8_valid(const char *s, size_t len);

/* Number of code points in valid UTF-8 s[0..len). */
size_t md_utf8_count(const char *s, size_t len);

/*
 * Write code point cp (<= 0x10FFFF, not a surrogate: the caller checks) as
 * UTF-8 to out (room for 4 bytes); returns the number of bytes written.
 */
size_t md_utf8_encode(uint32_t cp, char out[4]);

/* The value of hex digit c (either case), or -1 when c is not one. */
int md_hex_value(char c);

/* True when s is empty or only ASCII whitespace. */
bool md_str_blank(const char *s);

/*
 * True when s has a control character: C0 (tab and newline included), DEL,
 * or C1 (U+0080..U+009F, as UTF-8).
 */
bool md_str_has_ctl(const char *s, size_t len);

/*
 * Copy the NUL-terminated src into dst[cap] (cap >= 1), truncating like
 * snprintf(dst, cap, "%s", src) but without its formatting cost. Returns
 * false when src was truncated.
 */
bool md_str_copy(char *dst, size_t cap, const char *src);

/* SHA-256 of data as 64 lowercase hex digits plus NUL. */
#define MD_SHA256_HEX_LEN 65
void md_sha256_hex(const void *data, size_t len, char out[MD_SHA256_HEX_LEN]);

/* HMAC-SHA256 (RFC 2104) of data under key, as 64 hex digits plus NUL. */
void md_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                        char out[MD_SHA256_HEX_LEN]);

/*
 * Percent-decode src[0..len) into dst (room for len+1 bytes); '+' becomes a
 * space when plus_is_space. Returns false on a malformed escape or when the
 * result contains a NUL byte. dst is NUL-terminated; *out_len gets its length.
 */
bool md_percent_decode(const char *src, size_t len, char *dst, size_t *out_len,
                       bool plus_is_space);

/*
 * Fill out with n random bytes from a per-thread generator seeded from the
 * kernel (getrandom). Not for secrets; good for request ids and jitter.
 */
void md_random_bytes(void *out, size_t n);

/* Uniform random integer in [0, bound) (bound > 0). */
uint64_t md_random_below(uint64_t bound);

/* Constant-time comparison of two byte strings (length leaks, content not). */
bool md_consttime_eq(const void *a, size_t alen, const void *b, size_t blen);

#endif /* MD_TEXT_H */
