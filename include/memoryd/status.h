/*
 * status.h — the one status type of memoryd and the error detail record.
 *
 * Every fallible function returns enum md_status (MD_OK == 0) and, when it
 * can say more, fills a caller-owned struct md_error. The error record is a
 * fixed-size value: no allocation, safe to fill on an out-of-memory path.
 * Lower layers only fill it; the layer that handles the error logs it once
 * (the API layer, or the background thread that retries).
 *
 * Messages follow git style: lowercase, no final period, failure first,
 * subject quoted. They may reach clients, so they never carry secrets or raw
 * upstream (driver) text — that goes into `detail`, which is only logged.
 */
#ifndef MD_STATUS_H
#define MD_STATUS_H

#include "memoryd/compat.h"

enum md_status {
    MD_OK = 0,
    MD_E_NOMEM,    /* allocation failed: answered 503, daemon keeps serving */
    MD_E_INVAL,    /* caller input invalid: 400 validation_error */
    MD_E_NOTFOUND, /* 404 not_found */
    MD_E_CONFLICT, /* 409 conflict */
    MD_E_TIMEOUT,  /* upstream did not answer in time: 503 */
    MD_E_UNAVAIL,  /* upstream down or pool exhausted: 503 */
    MD_E_PROTO,    /* upstream answered something we cannot use: 503 */
    MD_E_IO,       /* local I/O failure: 503 */
    MD_E_LIMIT,    /* a size cap was hit: 413 */
    MD_E_INTERNAL, /* a bug: 500 */
};

#define MD_ERROR_MSG_MAX 240
#define MD_ERROR_FIELD_MAX 96
#define MD_ERROR_DETAIL_MAX 240

struct md_error {
    enum md_status code;
    char field[MD_ERROR_FIELD_MAX];   /* offending field ("" if none), dotted */
    char msg[MD_ERROR_MSG_MAX];       /* client-safe message */
    char detail[MD_ERROR_DETAIL_MAX]; /* operator-only detail (logged, never sent) */
};

/* Static name of a status ("MD_E_NOTFOUND" -> "not found"). Never NULL. */
const char *md_status_str(enum md_status st);

/* Reset an error record to MD_OK with empty strings. Accepts NULL. */
void md_error_clear(struct md_error *err);

/*
 * Fill err (may be NULL) with code and a printf-formatted client-safe
 * message; clears field and detail. Returns code so that callers can write
 * `return md_error_set(err, MD_E_INVAL, "...")`.
 */
enum md_status md_error_set(struct md_error *err, enum md_status code, const char *fmt, ...)
    MD_PRINTF(3, 4);

/* As md_error_set, also naming the offending field (dotted path). */
enum md_status md_error_set_field(struct md_error *err, enum md_status code, const char *field,
                                  const char *fmt, ...) MD_PRINTF(4, 5);

/* Set the operator-only detail of an already-filled error. Accepts NULL. */
void md_error_detail(struct md_error *err, const char *fmt, ...) MD_PRINTF(2, 3);

#endif /* MD_STATUS_H */
