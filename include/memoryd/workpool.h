/*
 * workpool.h — an elastic pool of threads for work that may block.
 *
 * The HTTP front runs a few event threads that must never wait on a store
 * (one hanging store would stall every connection they serve). Requests that
 * may block are handed to this pool instead: an idle thread takes the job; if
 * none is idle, a new thread starts, up to max_threads (the HTTP server passes
 * API_MAX_CONNECTIONS: each connection has at most one job, so a job never
 * waits behind another one while the cap allows a thread for it). Threads
 * beyond min_threads exit after idle_ms without work, so a burst of blocked
 * requests (a paused Redis) does not leave hundreds of threads behind.
 *
 * Jobs are intrusive (struct md_work lives inside the caller's request
 * context): submitting never allocates. The pool owns its threads; the caller
 * owns each job until its fn has run. fn runs exactly once, on a pool thread.
 */
#ifndef MD_WORKPOOL_H
#define MD_WORKPOOL_H

#include <stdbool.h>
#include <stddef.h>

#include "memoryd/status.h"

struct md_work {
    void (*fn)(struct md_work *w); /* set by the caller; runs on a pool thread */
    struct md_work *next;          /* the pool's queue link */
};

struct md_workpool_stats {
    int threads;  /* running threads */
    int busy;     /* threads running a job */
    int queued;   /* jobs waiting for a thread */
};

struct md_workpool;

/*
 * Start min_threads threads now (0 ≤ min ≤ max, max ≥ 1), each with a stack of
 * stack_bytes (0: the system default). NULL + err when threads cannot start.
 */
struct md_workpool *md_workpool_start(int min_threads, int max_threads, int idle_ms,
                                      size_t stack_bytes, struct md_error *err);

/*
 * Queue w (w->fn set). false, with nothing queued, when the pool is stopping
 * or has no thread and cannot start one (out of resources): the caller does
 * the work's failure path itself.
 */
bool md_workpool_submit(struct md_workpool *p, struct md_work *w);

/* Wait until no job is queued or running (new submissions may still come). */
void md_workpool_drain(struct md_workpool *p);

/* Refuse new jobs from now on, then wait until the queued and running ones are done. */
void md_workpool_close(struct md_workpool *p);

void md_workpool_stats(struct md_workpool *p, struct md_workpool_stats *out);

/* Refuse new jobs, run the queued ones, join every thread, free. NULL ok. */
void md_workpool_stop(struct md_workpool *p);

#endif /* MD_WORKPOOL_H */
