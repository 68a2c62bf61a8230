/*
 * clock.h — time sources and ISO-8601 formatting.
 *
 * Wall-clock time (md_now_ms) stamps data; the monotonic clock (md_mono_*)
 * measures durations and deadlines, so that NTP steps never distort latency
 * figures or timeouts. All functions are thread-safe and allocation-free.
 */
#ifndef MD_CLOCK_H
#define MD_CLOCK_H

#include "memoryd/compat.h"

/* Buffer size for md_iso8601: "2026-11-26T15:28:56.123Z" + NUL. */
#define MD_ISO8601_LEN 25

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t md_now_ms(void);

/* Monotonic microseconds / milliseconds since an arbitrary origin. */
int64_t md_mono_us(void);
int64_t md_mono_ms(void);

/* Format epoch milliseconds as ISO-8601 UTC with milliseconds and 'Z'. */
void md_iso8601(int64_t epoch_ms, char out[MD_ISO8601_LEN]);

/*
 * Parse the exact format md_iso8601 writes. Returns false (and leaves *out
 * alone) on anything else.
 */
bool md_iso8601_parse(const char *s, int64_t *out);

/* Sleep for ms milliseconds, restarting on EINTR. */
void md_sleep_ms(int64_t ms);

#endif /* MD_CLOCK_H */
