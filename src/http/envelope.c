/* envelope.c — response envelopes and the status -> HTTP mapping (spec §1). */
#include "memoryd/compat.h"

#include <stdio.h>
#include <string.h>

#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/envelope.h"

static const struct {
    enum md_status st;
    int http;
    const char *type;
    const char *generic;
} table[] = {
    {MD_E_INVAL, 400, "validation_error", "invalid request"},
    {MD_E_NOTFOUND, 404, "not_found", "not found"},
    {MD_E_CONFLICT, 409, "conflict", "conflict"},
    {MD_E_LIMIT, 413, "payload_too_large", "request body too large"},
    {MD_E_NOMEM, 503, "storage_unavailable", "out of memory, try again"},
    {MD_E_UNAVAIL, 503, "storage_unavailable", "storage unavailable"},
    {MD_E_TIMEOUT, 503, "storage_unavailable", "storage did not answer in time"},
    {MD_E_PROTO, 503, "storage_unavailable", "storage answered unexpectedly"},
    {MD_E_IO, 503, "storage_unavailable", "storage i/o error"},
    {MD_E_INTERNAL, 500, "internal_error", "internal error"},
};

static size_t find(enum md_status st)
{
    for (size_t i = 0; i < MD_ARRAY_LEN(table); i++)
        if (table[i].st == st)
            return i;
    return MD_ARRAY_LEN(table) - 1; /* internal_error */
}

int md_status_http(enum md_status st)
{
    return st == MD_OK ? 200 : table[find(st)].http;
}

const char *md_status_error_type(enum md_status st)
{
    return table[find(st)].type;
}

static enum md_status open_envelope(struct md_buf *b, const char *status)
{
    md_buf_reset(b);
    enum md_status st = md_buf_puts(b, "{\"status\":\"");
    if (st == MD_OK)
        st = md_buf_puts(b, status);
    return st == MD_OK ? md_buf_puts(b, "\"") : st;
}

static enum md_status close_envelope(struct md_buf *b)
{
    char ts[MD_ISO8601_LEN];
    md_iso8601(md_now_ms(), ts);
    enum md_status st = md_buf_puts(b, ",\"timestamp\":\"");
    if (st == MD_OK)
        st = md_buf_append(b, ts, MD_ISO8601_LEN - 1);
    return st == MD_OK ? md_buf_puts(b, "\"}") : st;
}

static enum md_status put_message(struct md_buf *b, const char *message)
{
    enum md_status st = md_buf_puts(b, ",\"message\":");
    return st == MD_OK ? md_buf_json_str(b, message, strlen(message)) : st;
}

enum md_status md_resp_success_begin(struct md_resp *resp, const char *message)
{
    struct md_buf *b = &resp->body;
    enum md_status st = open_envelope(b, "success");
    if (st == MD_OK)
        st = put_message(b, message);
    if (st == MD_OK)
        st = md_buf_puts(b, ",\"data\":");
    if (st != MD_OK)
        md_buf_release(b);
    return st;
}

enum md_status md_resp_success_end(struct md_resp *resp, int status)
{
    enum md_status st = close_envelope(&resp->body);
    if (st != MD_OK) {
        md_buf_release(&resp->body);
        return st;
    }
    resp->status = status;
    resp->content_type = "application/json";
    return MD_OK;
}

enum md_status md_resp_success_raw(struct md_resp *resp, int status, const char *message,
                                   const char *data_json, size_t len)
{
    enum md_status st = md_resp_success_begin(resp, message);
    if (st == MD_OK)
        st = md_buf_append(&resp->body, data_json, len);
    if (st != MD_OK) {
        md_buf_release(&resp->body);
        return st;
    }
    return md_resp_success_end(resp, status);
}

/* jansson dump callback appending to an md_buf. */
static int dump_to_buf(const char *buffer, size_t size, void *data)
{
    return md_buf_append(data, buffer, size) == MD_OK ? 0 : -1;
}

enum md_status md_resp_success_json(struct md_resp *resp, int status, const char *message,
                                    json_t *data)
{
    if (!data)
        return MD_E_NOMEM;
    struct md_buf *b = &resp->body;
    enum md_status st = open_envelope(b, "success");
    if (st == MD_OK)
        st = put_message(b, message);
    if (st == MD_OK)
        st = md_buf_puts(b, ",\"data\":");
    if (st == MD_OK && json_dump_callback(data, dump_to_buf, b, JSON_COMPACT) != 0)
        st = MD_E_NOMEM;
    if (st == MD_OK)
        st = close_envelope(b);
    json_decref(data);
    if (st != MD_OK) {
        md_buf_release(b);
        return st;
    }
    resp->status = status;
    resp->content_type = "application/json";
    return MD_OK;
}

/* Heap-free error body into resp->fallback (message and field truncated). */
static void fallback_error(struct md_resp *resp, const char *error_type, const char *message)
{
    char ts[MD_ISO8601_LEN];
    md_iso8601(md_now_ms(), ts);
    char msg[200];
    size_t o = 0;
    for (const char *p = message; *p && o + 2 < sizeof(msg); p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            msg[o++] = *p;
    msg[o] = '\0';
    int n = snprintf(resp->fallback, sizeof(resp->fallback),
                     "{\"status\":\"error\",\"error_type\":\"%s\",\"message\":\"%s\","
                     "\"timestamp\":\"%s\"}",
                     error_type, msg, ts);
    md_buf_release(&resp->body);
    resp->static_body = resp->fallback;
    resp->static_len = n < 0 ? 0 : MD_MIN((size_t)n, sizeof(resp->fallback) - 1);
}

void md_resp_error_data(struct md_resp *resp, int status, const char *error_type,
                        const char *message, const char *field, json_t *data)
{
    struct md_buf *b = &resp->body;
    resp->status = status;
    resp->content_type = "application/json";
    resp->static_body = NULL;
    enum md_status st = open_envelope(b, "error");
    if (st == MD_OK)
        st = md_buf_printf(b, ",\"error_type\":\"%s\"", error_type);
    if (st == MD_OK)
        st = put_message(b, message);
    if (st == MD_OK && field && *field) {
        st = md_buf_puts(b, ",\"field\":");
        if (st == MD_OK)
            st = md_buf_json_str(b, field, strlen(field));
    }
    if (st == MD_OK && data) {
        st = md_buf_puts(b, ",\"data\":");
        if (st == MD_OK && json_dump_callback(data, dump_to_buf, b, JSON_COMPACT) != 0)
            st = MD_E_NOMEM;
    }
    if (st == MD_OK)
        st = close_envelope(b);
    json_decref(data);
    if (st != MD_OK)
        fallback_error(resp, error_type, message);
    if (status == 503)
        md_resp_header(resp, "Retry-After", "1");
}

void md_resp_from_error(struct md_resp *resp, const struct md_error *err)
{
    enum md_status code = err->code == MD_OK ? MD_E_INTERNAL : err->code;
    size_t i = find(code);
    const char *msg = err->msg[0] ? err->msg : table[i].generic;
    md_resp_error(resp, table[i].http, table[i].type, msg, err->field[0] ? err->field : NULL);
}
