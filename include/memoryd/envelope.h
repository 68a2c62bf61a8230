/*
 * envelope.h — the JSON envelopes of spec §1 and the status -> HTTP table.
 *
 *   success: {"status":"success","message":…,"data":…,"timestamp":…}
 *   error:   {"status":"error","error_type":…,"message":…,"field":…,"timestamp":…}
 *
 * Building an error response never fails: when the heap is exhausted the
 * body is rendered into the response's inline fallback buffer. Success
 * builders return MD_E_NOMEM / MD_E_LIMIT so the caller can answer 503.
 */
#ifndef MD_ENVELOPE_H
#define MD_ENVELOPE_H

#include <jansson.h>

#include "memoryd/compat.h"
#include "memoryd/http.h"
#include "memoryd/status.h"

/* Largest response body memoryd builds (lists of 1000 entries fit). */
#define MD_RESP_MAX_BYTES (64u * 1024u * 1024u)

/* HTTP status and error_type of a status code (MD_E_INVAL -> 400, "validation_error"). */
int md_status_http(enum md_status st);
const char *md_status_error_type(enum md_status st);

/*
 * Success envelope around data_json[0..len) — a JSON value the caller
 * vouches for (passed through unparsed).
 */
MD_MUSTCHECK enum md_status md_resp_success_raw(struct md_resp *resp, int status,
                                                const char *message, const char *data_json,
                                                size_t len);

/*
 * The same envelope in two halves, for data the caller appends to resp->body
 * itself in between (a cache hit is copied once, straight from the cache):
 * begin writes everything up to "data":, end closes the envelope and sets the
 * status. On an error either half releases resp->body.
 */
MD_MUSTCHECK enum md_status md_resp_success_begin(struct md_resp *resp, const char *message);
MD_MUSTCHECK enum md_status md_resp_success_end(struct md_resp *resp, int status);

/* Success envelope around a jansson value (reference stolen, even on error). */
MD_MUSTCHECK enum md_status md_resp_success_json(struct md_resp *resp, int status,
                                                 const char *message, json_t *data);

/*
 * Error envelope. field may be NULL. data (may be NULL; reference stolen)
 * adds a "data" member — /health and /ready keep their report in 503s.
 */
void md_resp_error_data(struct md_resp *resp, int status, const char *error_type,
                        const char *message, const char *field, json_t *data);

static inline void md_resp_error(struct md_resp *resp, int status, const char *error_type,
                                 const char *message, const char *field)
{
    md_resp_error_data(resp, status, error_type, message, field, NULL);
}

/*
 * Error envelope from a status record: HTTP status and error_type from the
 * table, err->msg as message (a generic one when empty), err->field, and
 * Retry-After: 1 on 503.
 */
void md_resp_from_error(struct md_resp *resp, const struct md_error *err);

#endif /* MD_ENVELOPE_H */
