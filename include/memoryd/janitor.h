/*
 * janitor.h — the background housekeeping thread.
 *
 * One thread on a fixed one-second tick runs periodic jobs: sweeping expired
 * STM entries out of the stores' indexes. It never runs request work and
 * holds no lock across store calls. md_janitor_stop() wakes it and joins.
 */
#ifndef MD_JANITOR_H
#define MD_JANITOR_H

#include "memoryd/compat.h"
#include "memoryd/status.h"

struct md_app;
struct md_janitor;

/* Start the thread over app (borrowed; must outlive the janitor). */
struct md_janitor *md_janitor_start(struct md_app *app, struct md_error *err);

/* Stop and join (accepts NULL). */
void md_janitor_stop(struct md_janitor *j);

#endif /* MD_JANITOR_H */
