/*
 * query.h — splitting and decoding the query string of a request target.
 *
 * md_query_split() turns the raw text after the first '?' into decoded
 * key/value pairs with exactly the splitting rules libmicrohttpd 0.9.75
 * applies (MHD_parse_arguments_), so the HTTP layer can parse the query
 * itself and a fuzz target can drive the same code:
 *
 *   - parameters are separated by '&'; an empty piece between two '&' (or a
 *     leading one) is a parameter with an empty key, a final empty piece
 *     (after a trailing '&', or an empty query) is not a parameter;
 *   - a piece splits at its first '='; "flag" without '=' has the value "";
 *   - key and value are percent-decoded with '+' meaning a space.
 *
 * A decoded key or value with a bad escape, a NUL byte or invalid UTF-8
 * fails the whole query, as does a parameter beyond `max`. Pure: no I/O,
 * no locks; thread-safe.
 */
#ifndef MD_QUERY_H
#define MD_QUERY_H

#include "memoryd/compat.h"
#include "memoryd/http.h"
#include "memoryd/status.h"

/*
 * Split and decode query[0..len) (without the '?') into out[0..max).
 * On MD_OK, *n pairs are filled; each key and value is a new allocation
 * owned by the caller (release them with md_query_free). On failure
 * (MD_E_INVAL: malformed or too many parameters; MD_E_NOMEM) nothing is
 * left allocated and *n is 0.
 */
MD_MUSTCHECK enum md_status md_query_split(const char *query, size_t len,
                                           struct md_query_param *out, size_t max, size_t *n,
                                           struct md_error *err);

/* Free the strings of params[0..n) (as filled by md_query_split); accepts n == 0. */
void md_query_free(struct md_query_param *params, size_t n);

#endif /* MD_QUERY_H */
