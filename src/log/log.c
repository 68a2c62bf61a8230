/*
 * log.c — the stderr sink.
 *
 * DESIGN: formatting happens into a fixed stack buffer and the line goes out
 * with a single write(2), which the kernel keeps whole for pipes up to
 * PIPE_BUF and in practice for terminals and files too. No heap: logging
 * works on the out-of-memory path. The level and format are plain
 * variables written once before any thread starts (md_log_setup) and read
 * with relaxed atomics afterwards.
 *
 * Access lines are the one record written per request, so they may go
 * through g_acc instead: one buffer behind one mutex (the critical section is
 * a memcpy of ~150 bytes) and a flusher thread that sleeps until a line has
 * waited flush_ms. Every other record takes the same lock and writes the
 * buffer out before itself, so the sink's order stays the order of events.
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <pthread.h>
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

#define ACCESS_BUF_BYTES (64 * 1024)

/* The access-log buffer; `lock` guards every field but `on`. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* flusher: the first line came in, or stop */
    atomic_bool on;      /* lines go to the buffer (the flusher runs) */
    bool stopping;
    pthread_t thread;
    int64_t flush_ms;
    int64_t oldest_ms; /* md_mono_ms() when the oldest buffered line came */
    size_t len;
    char data[ACCESS_BUF_BYTES];
} g_acc = {.lock = PTHREAD_MUTEX_INITIALIZER};

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

/* write(2) all of it; a log sink that fails has nowhere to report to. */
static void write_all(const char *p, size_t n)
{
    int fd = atomic_load_explicit(&g_fd, memory_order_relaxed);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void flush_locked(void)
{
    write_all(g_acc.data, g_acc.len);
    g_acc.len = 0;
}

/* A record other than an access line: never delayed, never overtaken. */
static void sink_record(const char *line, size_t n)
{
    if (!atomic_load_explicit(&g_acc.on, memory_order_acquire)) {
        write_all(line, n);
        return;
    }
    pthread_mutex_lock(&g_acc.lock);
    flush_locked();
    write_all(line, n);
    pthread_mutex_unlock(&g_acc.lock);
}

static void sink_access(const char *line, size_t n)
{
    if (atomic_load_explicit(&g_acc.on, memory_order_acquire)) {
        pthread_mutex_lock(&g_acc.lock);
        /* re-checked under the lock: md_log_buffer_stop() may have flushed already */
        if (atomic_load_explicit(&g_acc.on, memory_order_relaxed)) {
            if (g_acc.len + n > sizeof(g_acc.data))
                flush_locked();
            if (g_acc.len == 0) {
                g_acc.oldest_ms = md_mono_ms();
                pthread_cond_signal(&g_acc.wake);
            }
            memcpy(g_acc.data + g_acc.len, line, n);
            g_acc.len += n;
            pthread_mutex_unlock(&g_acc.lock);
            return;
        }
        pthread_mutex_unlock(&g_acc.lock);
    }
    write_all(line, n);
}

static void *flusher(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "md-logflush");
    pthread_mutex_lock(&g_acc.lock);
    while (!g_acc.stopping) {
        if (g_acc.len == 0) {
            pthread_cond_wait(&g_acc.wake, &g_acc.lock);
            continue;
        }
        int64_t due = g_acc.oldest_ms + g_acc.flush_ms;
        int64_t now = md_mono_ms();
        if (now >= due) {
            flush_locked();
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (due - now) * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&g_acc.wake, &g_acc.lock, &ts);
    }
    pthread_mutex_unlock(&g_acc.lock);
    return NULL;
}

bool md_log_buffer_start(int flush_ms)
{
    if (flush_ms <= 0 || atomic_load(&g_acc.on))
        return true;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&g_acc.wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return false;
    g_acc.flush_ms = flush_ms;
    g_acc.stopping = false;
    g_acc.len = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    rc = pthread_create(&g_acc.thread, &attr, flusher, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_cond_destroy(&g_acc.wake);
        return false;
    }
    atomic_store(&g_acc.on, true);
    return true;
}

void md_log_flush(void)
{
    if (!atomic_load(&g_acc.on))
        return;
    pthread_mutex_lock(&g_acc.lock);
    flush_locked();
    pthread_mutex_unlock(&g_acc.lock);
}

void md_log_buffer_stop(void)
{
    if (!atomic_load(&g_acc.on))
        return;
    pthread_mutex_lock(&g_acc.lock);
    atomic_store(&g_acc.on, false);
    flush_locked();
    g_acc.stopping = true;
    pthread_cond_signal(&g_acc.wake);
    pthread_mutex_unlock(&g_acc.lock);
    pthread_join(g_acc.thread, NULL);
    pthread_cond_destroy(&g_acc.wake);
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
    sink_record(line, pos);
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
    sink_access(line, pos);
}
