/*
 * json_load.h — a fast JSON parser that builds jansson values.
 *
 * jansson's own parser reads its input through a per-character stream
 * callback: about 60 MB/s on these machines, 44 µs for Neo4j's 2.7 KB answer
 * to one rule — a tenth of memoryd's whole CPU time for an uncached rule read
 * (bench/README). md_json_load() walks the buffer directly and accepts exactly
 * what json_loadb(data, len, flags, …) accepts (RFC 8259 text; no NUL in
 * strings; integers that fit json_int_t; one value and only whitespace after
 * it), with the same values; tests/unit/test_json_load.c and the
 * fuzz_json_load target check that against jansson itself.
 *
 * The result is an ordinary json_t tree (owned by the caller: json_decref).
 */
#ifndef MD_JSON_LOAD_H
#define MD_JSON_LOAD_H

#include <jansson.h>

#include "memoryd/compat.h"

/* Nesting deeper than this is refused (jansson's own limit). */
#define MD_JSON_LOAD_MAX_DEPTH 2048

enum md_json_load_flags {
    MD_JSON_LOAD_ANY = 1,         /* any value at the top (default: object or array) */
    MD_JSON_LOAD_REJECT_DUPS = 2, /* a key twice in one object is an error (default: last wins) */
};

/* The description md_json_load() gives when memory ran out (compare the pointer). */
extern const char md_json_load_oom[];

/*
 * Parse data[0..len). On error returns NULL and, when err_out is given,
 * points it at a static description and *err_pos at the byte offset where
 * the parse stopped. Also NULL when memory runs out (*err_out is then
 * md_json_load_oom).
 */
json_t *md_json_load(const char *data, size_t len, unsigned flags, const char **err_out,
                     size_t *err_pos);

#endif /* MD_JSON_LOAD_H */
