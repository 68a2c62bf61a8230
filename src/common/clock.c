/* clock.c — wall and monotonic clocks, ISO-8601 (UTC, ms, 'Z'). */
#include "memoryd/compat.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "memoryd/clock.h"

int64_t md_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t md_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t md_mono_ms(void)
{
    return md_mono_us() / 1000;
}

/* Days since 1970-01-01 -> civil date (Howard Hinnant's algorithm). */
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static int64_t days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void format_iso8601(int64_t epoch_ms, char out[MD_ISO8601_LEN])
{
    int64_t secs = epoch_ms >= 0 ? epoch_ms / 1000 : (epoch_ms - 999) / 1000;
    int ms = (int)(epoch_ms - secs * 1000);
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int sod = (int)(secs - days * 86400);
    int y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    /* Hand-formatted: this runs several times per request (envelope, access
     * log), and snprintf costs ten times as much. */
    unsigned fields[7] = {(unsigned)y % 10000u,         mo % 100u,
                          d % 100u,                     (unsigned)(sod / 3600) % 24u,
                          (unsigned)(sod / 60) % 60u,   (unsigned)sod % 60u,
                          (unsigned)ms % 1000u};
    static const unsigned width[7] = {4, 2, 2, 2, 2, 2, 3};
    static const char sep[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    char *o = out;
    for (int f = 0; f < 7; f++) {
        for (unsigned i = width[f]; i-- > 0;) {
            o[i] = (char)('0' + fields[f] % 10u);
            fields[f] /= 10u;
        }
        o += width[f];
        *o++ = sep[f];
    }
    *o = '\0';
}

/*
 * Each thread keeps the text of the last second it formatted: requests stamp
 * the envelope and the access line in the same second, so most calls only
 * write the milliseconds.
 */
static _Thread_local int64_t t_sec = INT64_MIN;
static _Thread_local char t_text[MD_ISO8601_LEN];

void md_iso8601(int64_t epoch_ms, char out[MD_ISO8601_LEN])
{
    int64_t secs = epoch_ms >= 0 ? epoch_ms / 1000 : (epoch_ms - 999) / 1000;
    if (secs != t_sec) {
        format_iso8601(secs * 1000, t_text);
        t_sec = secs;
    }
    unsigned ms = (unsigned)(epoch_ms - secs * 1000);
    memcpy(out, t_text, 20); /* "YYYY-MM-DDTHH:MM:SS." */
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool md_iso8601_parse(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se, ms;
    if (!s || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) || s[13] != ':' ||
        !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se) || s[19] != '.' ||
        !digits(s + 20, 3, &ms) || s[23] != 'Z' || s[24] != '\0')
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return false;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *out = ((days * 86400) + h * 3600 + mi * 60 + se) * 1000 + ms;
    return true;
}

void md_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}
