/*
 * log.h — leveled logging to stderr, as text or JSON lines.
 *
 * Each record is formatted into a stack buffer and written with one write(2)
 * so that lines from different threads never interleave. The sink state
 * (level, format) is set once at start-up by md_log_setup() before threads
 * start and only read afterwards; md_log_*() are thread-safe.
 *
 * Access-log lines may be buffered (md_log_buffer_start): they then collect
 * in one 64 KiB buffer that is written when it fills, when its oldest line
 * is flush_ms old (a small flusher thread owned by this module), before any
 * other record (so the order of lines is kept) and at md_log_buffer_stop().
 * One write(2) per request cost ~10 % of a cached read's CPU (bench/README).
 *
 * Never pass secrets (passwords, API keys) to these functions: nothing here
 * can mask them after the fact.
 */
#ifndef MD_LOG_H
#define MD_LOG_H

#include "memoryd/compat.h"

enum md_log_level {
    MD_LOG_DEBUG = 0,
    MD_LOG_INFO,
    MD_LOG_WARNING,
    MD_LOG_ERROR,
    MD_LOG_CRITICAL,
};

enum md_log_format {
    MD_LOG_TEXT = 0,
    MD_LOG_JSON,
};

/* Configure the sink. fd is normally 2 (stderr). */
void md_log_setup(enum md_log_level level, enum md_log_format format, int fd);

/* True when records at level would be written (gate expensive arguments). */
bool md_log_enabled(enum md_log_level level);

/* Parse "debug|info|warning|warn|error|critical" (any case). */
bool md_log_level_parse(const char *s, enum md_log_level *out);

/* Static upper-case name of a level ("INFO"). */
const char *md_log_level_name(enum md_log_level level);

/*
 * Write one record. `where` names the component ("stm.redis", "http");
 * request_id may be NULL. Messages over ~2 KiB are truncated.
 */
void md_log_write(enum md_log_level level, const char *where, const char *request_id,
                  const char *fmt, ...) MD_PRINTF(4, 5);

#define md_log_debug(where, ...)                                                                 \
    do {                                                                                         \
        if (md_log_enabled(MD_LOG_DEBUG))                                                        \
            md_log_write(MD_LOG_DEBUG, where, NULL, __VA_ARGS__);                                \
    } while (0)
#define md_log_info(where, ...) md_log_write(MD_LOG_INFO, where, NULL, __VA_ARGS__)
#define md_log_warn(where, ...) md_log_write(MD_LOG_WARNING, where, NULL, __VA_ARGS__)
#define md_log_error(where, ...) md_log_write(MD_LOG_ERROR, where, NULL, __VA_ARGS__)
#define md_log_crit(where, ...) md_log_write(MD_LOG_CRITICAL, where, NULL, __VA_ARGS__)

/*
 * Access log record: one line per HTTP request. Written at INFO level in
 * both formats with fixed fields (method, path, status, duration in µs,
 * request id) so that log pipelines can parse it.
 */
void md_log_access(const char *method, const char *path, int status, int64_t duration_us,
                   const char *request_id);

/*
 * Buffer access-log lines for at most flush_ms milliseconds (0: no buffering,
 * each line is written at once). Call after md_log_setup() and before other
 * threads log; false (and unbuffered logging) when the flusher thread cannot
 * start. A SIGKILL loses at most flush_ms of access lines.
 */
bool md_log_buffer_start(int flush_ms);

/* Write what is buffered now. */
void md_log_flush(void);

/* Flush, stop the flusher thread and write every later line at once. */
void md_log_buffer_stop(void);

#endif /* MD_LOG_H */
