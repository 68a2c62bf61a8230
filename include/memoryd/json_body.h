/*
 * json_body.h — parsing request bodies and validating their fields.
 *
 * md_json_parse_object() is the only way a request body becomes JSON: it
 * checks UTF-8 first (clear message), bounds nesting to MD_JSON_MAX_DEPTH
 * with a scan that never recurses, rejects duplicate keys, NUL escapes and a
 * non-object top level, and only then parses (md_json_load: jansson's
 * grammar and trees at several times its speed).
 *
 * The field getters validate one member of an object and report errors with
 * the dotted field path (prefix + name) that spec §1 wants in "field". They
 * return borrowed pointers into the object (valid while it lives).
 */
#ifndef MD_JSON_BODY_H
#define MD_JSON_BODY_H

#include <jansson.h>

#include "memoryd/compat.h"
#include "memoryd/ids.h"
#include "memoryd/status.h"

#define MD_JSON_MAX_DEPTH 32

/* Parse data[0..len) into a new object reference (*out). MD_E_INVAL on bad input. */
MD_MUSTCHECK enum md_status md_json_parse_object(const char *data, size_t len, json_t **out,
                                                 struct md_error *err);

/* Depth of the deepest nesting in data (strings skipped); 0 for scalars. */
size_t md_json_depth(const char *data, size_t len);

/*
 * Reject members of obj not listed in allowed (NULL-terminated). The error
 * names the first unknown member in document order, as prefix + name.
 */
MD_MUSTCHECK enum md_status md_json_only(json_t *obj, const char *const *allowed,
                                         const char *prefix, struct md_error *err);

/*
 * A text field (spec §2 "Texts"): a string, not blank, at most max_cp code
 * points. *out = NULL when absent and !required.
 */
MD_MUSTCHECK enum md_status md_json_text(const json_t *obj, const char *name, const char *prefix,
                                         bool required, size_t max_cp, const char **out,
                                         struct md_error *err);

/*
 * An assessment status (canonicalised, aliases accepted). With allow_null,
 * JSON null gives MD_VERDICT_NONE and *present = true. *present tells whether
 * the member was there at all.
 */
MD_MUSTCHECK enum md_status md_json_verdict(const json_t *obj, const char *name,
                                            const char *prefix, bool required, bool allow_null,
                                            enum md_verdict *out, bool *present,
                                            struct md_error *err);

/* A JSON integer in [lo, hi]; *present false when absent. */
MD_MUSTCHECK enum md_status md_json_int(const json_t *obj, const char *name, const char *prefix,
                                        bool required, int64_t lo, int64_t hi, int64_t *out,
                                        bool *present, struct md_error *err);

/* A JSON number (integer or real) in [lo, hi]; *present false when absent. */
MD_MUSTCHECK enum md_status md_json_number(const json_t *obj, const char *name,
                                           const char *prefix, bool required, double lo,
                                           double hi, double *out, bool *present,
                                           struct md_error *err);

/* A JSON boolean; *present false when absent. */
MD_MUSTCHECK enum md_status md_json_bool(const json_t *obj, const char *name, const char *prefix,
                                         bool required, bool *out, bool *present,
                                         struct md_error *err);

/* An object member (borrowed) or NULL when absent and !required. */
MD_MUSTCHECK enum md_status md_json_object(const json_t *obj, const char *name,
                                           const char *prefix, bool required, json_t **out,
                                           struct md_error *err);

/*
 * A short string (identifiers, names): a string of 1..max_bytes bytes
 * without control characters. Blank strings are rejected.
 */
MD_MUSTCHECK enum md_status md_json_short(const json_t *obj, const char *name, const char *prefix,
                                          bool required, size_t max_bytes, const char **out,
                                          struct md_error *err);

#endif /* MD_JSON_BODY_H */
