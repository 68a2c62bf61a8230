/*
 * log.c — the stderr sink.
 *
 * DESIGN: formatting happens into a fixed stack buffer and the line goes out
 * with a single write(2), which the kernel keeps whole for pipes up to
 * PIPE_BUF and in practice for terminals and files too. No lock, no heap:
 * logging works on the out-of-memory path. The level and format are plain
 * variables written once before any thread starts (md_log_setup) and read
 * with relaxed atomics afterwards.
 */
#include "memoryd/compat.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/log.h"

#define LINE_MAX_BYTES 4096

static atomic_int g_level = MD_LOG_INFO;
static atomic_int g_format = MD_LOG_TEXT;
static atomic_int g_fd = 2;

void md_log_setup(enum md_log_level level, enum md_log_format format, int fd)
{
    atomic_store(&g_level, (int)level);
    atomic_store(&g_format, (int)format);
    atomic_store(&g_fd, fd);
}

bool md_log_enabled(enum md_log_level level)
{
    return (int)level >= atomic_load_explicit(&g_level, memory_order_relaxed);
}

bool md_log_level_parse(const char *s, enum md_log_level *out)
{
    static const struct {
        const char *name;
        enum md_log_level level;
    } names[] = {{"debug", MD_LOG_DEBUG},     {"info", MD_LOG_INFO},
                 {"warning", MD_LOG_WARNING}, {"warn", MD_LOG_WARNING},
                 {"error", MD_LOG_ERROR},     {"critical", MD_LOG_CRITICAL}};
    for (size_t i = 0; i < MD_ARRAY_LEN(names); i++)
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return true;
        }
    return false;
}

const char *md_log_level_name(enum md_log_level level)
{
    switch (level) {
    case MD_LOG_DEBUG: return "DEBUG";
    case MD_LOG_INFO: return "INFO";
    case MD_LOG_WARNING: return "WARNING";
    case MD_LOG_ERROR: return "ERROR";
    case MD_LOG_CRITICAL: return "CRITICAL";
    }
    return "INFO";
}

/* Append s as JSON string content (no quotes) into line[*pos..cap). */
static void json_escape_into(char *line, size_t *pos, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;
    for (; *s && p + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            line[p++] = '\\';
            line[p++] = (char)c;
        } else if (c < 0x20) {
            memcpy(line + p, "\\u00", 4);
            line[p + 4] = hex[c >> 4];
            line[p + 5] = hex[c & 15];
            p += 6;
        } else {
            line[p++] = (char)c;
        }
    }
    *pos = p;
}

static void append_raw(char *line, size_t *pos, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n > cap - *pos - 2)
        n = cap - *pos - 2;
    memcpy(line + *pos, s, n);
    *pos += n;
}

/* Append the decimal digits of v (the access log's hot path avoids printf). */
static void append_int(char *line, size_t *pos, size_t cap, long long v)
{
    char digits[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[n++] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u && n < sizeof(digits));
    if (v < 0 && n < sizeof(digits))
        digits[n++] = '-';
    while (n > 0 && *pos + 2 < cap)
        line[(*pos)++] = digits[--n];
}

/* Text lines must stay one line: replace control characters by spaces. */
static void sanitize_text(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20)
            *s = ' ';
}

static void emit(enum md_log_level level, const char *where, const char *request_id,
                 const char *msg)
{
    char ts[MD_ISO8601_LEN];
    md_iso8601(md_now_ms(), ts);
    char line[LINE_MAX_BYTES];
    size_t pos = 0;
    if (atomic_load_explicit(&g_format, memory_order_relaxed) == MD_LOG_JSON) {
        append_raw(line, &pos, sizeof(line), "{\"timestamp\":\"");
        append_raw(line, &pos, sizeof(line), ts);
        append_raw(line, &pos, sizeof(line), "\",\"level\":\"");
        append_raw(line, &pos, sizeof(line), md_log_level_name(level));
        append_raw(line, &pos, sizeof(line), "\",\"component\":\"");
        json_escape_into(line, &pos, sizeof(line), where);
        if (request_id) {
            append_raw(line, &pos, sizeof(line), "\",\"request_id\":\"");
            json_escape_into(line, &pos, sizeof(line), request_id);
        }
        append_raw(line, &pos, sizeof(line), "\",\"message\":\"");
        json_escape_into(line, &pos, sizeof(line) - 3, msg);
        append_raw(line, &pos, sizeof(line), "\"}");
    } else {
        int n = snprintf(line, sizeof(line), "%s %-8s %s%s%s%s: %s", ts, md_log_level_name(level),
                         where, request_id ? " [" : "", request_id ? request_id : "",
                         request_id ? "]" : "", msg);
        pos = n < 0 ? 0 : MD_MIN((size_t)n, sizeof(line) - 2);
        line[pos] = '\0';
        sanitize_text(line);
    }
    line[pos++] = '\n';
    ssize_t w = write(atomic_load_explicit(&g_fd, memory_order_relaxed), line, pos);
    (void)w; /* nowhere to report a failed log write */
}

void md_log_write(enum md_log_level level, const char *where, const char *request_id,
                  const char *fmt, ...)
{
    if (!md_log_enabled(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = '\0';
    va_end(ap);
    emit(level, where, request_id, msg);
}

void md_log_access(const char *method, const char *path, int status, int64_t duration_us,
                   const char *request_id)
{
    if (!md_log_enabled(MD_LOG_INFO))
        return;
    char ts[MD_ISO8601_LEN];
    md_iso8601(md_now_ms(), ts);
    char line[LINE_MAX_BYTES];
    size_t pos = 0;
    if (atomic_load_explicit(&g_format, memory_order_relaxed) == MD_LOG_JSON) {
        append_raw(line, &pos, sizeof(line), "{\"timestamp\":\"");
        append_raw(line, &pos, sizeof(line), ts);
        append_raw(line, &pos, sizeof(line), "\",\"level\":\"INFO\",\"component\":\"access\","
                                             "\"method\":\"");
        json_escape_into(line, &pos, sizeof(line) - 200, method);
        append_raw(line, &pos, sizeof(line), "\",\"path\":\"");
        json_escape_into(line, &pos, sizeof(line) - 200, path);
        append_raw(line, &pos, sizeof(line), "\",\"status\":");
        append_int(line, &pos, sizeof(line), status);
        append_raw(line, &pos, sizeof(line), ",\"duration_us\":");
        append_int(line, &pos, sizeof(line), (long long)duration_us);
        append_raw(line, &pos, sizeof(line), ",\"request_id\":\"");
        json_escape_into(line, &pos, sizeof(line) - 4, request_id);
        append_raw(line, &pos, sizeof(line), "\"}");
    } else {
        /* "<ts> INFO     access: <method> <path> <status> <µs>us <request id>" */
        append_raw(line, &pos, sizeof(line), ts);
        append_raw(line, &pos, sizeof(line), " INFO     access: ");
        append_raw(line, &pos, sizeof(line), method);
        append_raw(line, &pos, sizeof(line), " ");
        append_raw(line, &pos, sizeof(line), path);
        append_raw(line, &pos, sizeof(line), " ");
        append_int(line, &pos, sizeof(line), status);
        append_raw(line, &pos, sizeof(line), " ");
        append_int(line, &pos, sizeof(line), (long long)duration_us);
        append_raw(line, &pos, sizeof(line), "us ");
        append_raw(line, &pos, sizeof(line), request_id);
        line[pos] = '\0';
        sanitize_text(line);
    }
    line[pos++] = '\n';
    ssize_t w = write(atomic_load_explicit(&g_fd, memory_order_relaxed), line, pos);
    (void)w;
}
