/* status.c — status names and the error record helpers. */
#include "memoryd/compat.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "memoryd/status.h"

const char *md_status_str(enum md_status st)
{
    switch (st) {
    case MD_OK: return "ok";
    case MD_E_NOMEM: return "out of memory";
    case MD_E_INVAL: return "invalid input";
    case MD_E_NOTFOUND: return "not found";
    case MD_E_CONFLICT: return "conflict";
    case MD_E_TIMEOUT: return "timed out";
    case MD_E_UNAVAIL: return "unavailable";
    case MD_E_PROTO: return "protocol error";
    case MD_E_IO: return "i/o error";
    case MD_E_LIMIT: return "size limit exceeded";
    case MD_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}

void md_error_clear(struct md_error *err)
{
    if (!err)
        return;
    err->code = MD_OK;
    err->field[0] = '\0';
    err->msg[0] = '\0';
    err->detail[0] = '\0';
}

static void set_msg(struct md_error *err, const char *fmt, va_list ap) MD_PRINTF(2, 0);

static void set_msg(struct md_error *err, const char *fmt, va_list ap)
{
    if (vsnprintf(err->msg, sizeof(err->msg), fmt, ap) < 0)
        err->msg[0] = '\0';
}

enum md_status md_error_set(struct md_error *err, enum md_status code, const char *fmt, ...)
{
    if (!err)
        return code;
    md_error_clear(err);
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    set_msg(err, fmt, ap);
    va_end(ap);
    return code;
}

enum md_status md_error_set_field(struct md_error *err, enum md_status code, const char *field,
                                  const char *fmt, ...)
{
    if (!err)
        return code;
    md_error_clear(err);
    err->code = code;
    if (field)
        snprintf(err->field, sizeof(err->field), "%s", field);
    va_list ap;
    va_start(ap, fmt);
    set_msg(err, fmt, ap);
    va_end(ap);
    return code;
}

void md_error_detail(struct md_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(err->detail, sizeof(err->detail), fmt, ap) < 0)
        err->detail[0] = '\0';
    va_end(ap);
}
