/*
 * app.h — the application context: every long-lived part of a running
 * memoryd, wired together by main() and borrowed by the HTTP handlers.
 *
 * main() fills it before the HTTP server starts and tears it down after the
 * server has stopped, so handlers may use every member without locking; the
 * members themselves are thread-safe.
 */
#ifndef MD_APP_H
#define MD_APP_H

#include <stdatomic.h>

#include "memoryd/compat.h"

struct md_config;
struct md_stm;
struct md_ltm;
struct md_sqlite;

struct md_app {
    const struct md_config *cfg; /* borrowed, immutable */
    struct md_stm *stm;          /* STM store (owned by main) */
    struct md_ltm *ltm;          /* LTM store (owned by main) */
    atomic_bool ltm_schema_ready; /* set once the LTM schema is in place (janitor) */
    struct md_sqlite *sqlite;    /* embedded database, or NULL when unused */
    int64_t started_ms;          /* wall clock at start-up */
    int64_t started_mono_ms;     /* monotonic clock at start-up */
};

#endif /* MD_APP_H */
