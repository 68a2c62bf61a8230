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

struct md_alerts;
struct md_cache;
struct md_cache_sync;
struct md_config;
struct md_health;
struct md_http_server;
struct md_ltm;
struct md_metrics;
struct md_ratelimit;
struct md_sqlite;
struct md_stm;

struct md_app {
    const struct md_config *cfg;      /* borrowed, immutable */
    struct md_stm *stm;               /* STM store, instrumented (owned by main) */
    struct md_ltm *ltm;               /* LTM store, instrumented (owned by main) */
    struct md_ltm *ltm_inner;         /* the backend under the instrumentation */
    struct md_sqlite *sqlite;         /* embedded database, or NULL when unused */
    struct md_cache *cache;           /* answers cache (owned by main) */
    struct md_cache_sync *cache_sync; /* peer invalidations (Redis STM only), or NULL */
    struct md_metrics *metrics;       /* metrics registry */
    struct md_alerts *alerts;         /* alert rules and evaluator */
    struct md_health *health;         /* background store probes */
    struct md_ratelimit *ratelimit;   /* per-client limiter, or NULL when off */
    atomic_bool ltm_schema_ready;     /* set once the LTM schema is in place (janitor) */
    /* the HTTP server once it serves (for its handler-thread gauges), else NULL */
    struct md_http_server *_Atomic http;
    int64_t started_ms;               /* wall clock at start-up */
    int64_t started_mono_ms;          /* monotonic clock at start-up */
};

#endif /* MD_APP_H */
