/*
 * health.h — background store probes for /health and /ready.
 *
 * One prober thread per store pings it every HEALTH_PROBE_INTERVAL with the
 * store's own timeouts and records the outcome. Readers (/health, /ready,
 * the dashboard) never touch a store: they read the latest outcome, so they
 * answer at once even while a store hangs. A probe that has been waiting
 * for longer than MD_HEALTH_STUCK_MS counts as a failure right away, before
 * the store's timeout ends it.
 *
 * Thread safety: md_health_get() may be called from any thread.
 */
#ifndef MD_HEALTH_H
#define MD_HEALTH_H

#include "memoryd/compat.h"
#include "memoryd/status.h"

#define MD_HEALTH_STUCK_MS 800

struct md_app;
struct md_health;

enum md_health_status { MD_HEALTHY = 0, MD_DEGRADED, MD_UNHEALTHY };

struct md_component_health {
    const char *backend;          /* static */
    enum md_health_status status;
    double latency_ms;            /* of the last finished probe */
    int64_t checked_ms;           /* wall clock of the last finished probe (0: never) */
    char message[MD_ERROR_MSG_MAX];
};

/*
 * Start probing app->stm and app->ltm (borrowed; must outlive the prober).
 * Returns once both have answered a first probe, or after MD_HEALTH_STUCK_MS.
 */
struct md_health *md_health_start(struct md_app *app, double interval_s, struct md_error *err);

/* Stop and join the probers (accepts NULL). */
void md_health_stop(struct md_health *h);

/* Latest state of the two stores. Never blocks on a store. */
void md_health_get(struct md_health *h, struct md_component_health *stm,
                   struct md_component_health *ltm);

/* Lower-case name ("healthy"). */
const char *md_health_status_name(enum md_health_status s);

#endif /* MD_HEALTH_H */
