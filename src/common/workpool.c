/*
 * workpool.c — an elastic pool of threads for work that may block (see workpool.h).
 *
 * One mutex guards the queue and the counters; jobs are short compared with
 * the lock hold times (a few pointer moves). Every thread is joinable and
 * listed: a thread that retires after idling unlinks itself and parks its
 * record in `retired`, where the next thread to retire (or stop) joins it —
 * so at most one exited thread is ever left unjoined, and stop joins all.
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "memoryd/workpool.h"

struct thread_rec {
    pthread_t tid;
    struct md_workpool *pool;
    struct thread_rec *next;
};

struct md_workpool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a job was queued, or the pool stops */
    pthread_cond_t idle_cv; /* nothing queued and nothing running (drain) */
    pthread_attr_t attr;
    struct md_work *head, *tail;
    int queued, idle, busy, threads;
    int min, max, idle_ms;
    unsigned long long started;
    bool closed;   /* no new jobs (md_workpool_close) */
    bool stopping; /* threads leave once the queue is empty */
    struct thread_rec *live;    /* every running thread */
    struct thread_rec *retired; /* exited after idling, not joined yet */
};

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Called with the lock held; releases it. */
static void retire(struct md_workpool *p, struct thread_rec *self)
{
    for (struct thread_rec **pp = &p->live; *pp; pp = &(*pp)->next)
        if (*pp == self) {
            *pp = self->next;
            break;
        }
    struct thread_rec *prev = p->retired;
    p->retired = self;
    p->threads--;
    pthread_mutex_unlock(&p->mu);
    if (prev) {
        pthread_join(prev->tid, NULL);
        free(prev);
    }
}

static void *worker_main(void *arg)
{
    struct thread_rec *self = arg;
    struct md_workpool *p = self->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping) {
            int rc = 0;
            p->idle++;
            if (p->threads > p->min) {
                struct timespec ts;
                deadline_in(&ts, p->idle_ms);
                rc = pthread_cond_timedwait(&p->work_cv, &p->mu, &ts);
            } else {
                pthread_cond_wait(&p->work_cv, &p->mu);
            }
            p->idle--;
            if (rc == ETIMEDOUT && !p->head && !p->stopping && p->threads > p->min) {
                retire(p, self);
                return NULL;
            }
        }
        struct md_work *w = p->head;
        if (!w)
            break; /* stopping, and the queue is empty */
        p->head = w->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        p->busy++;
        pthread_mutex_unlock(&p->mu);
        w->fn(w); /* w may be gone after this: never touched again */
        pthread_mutex_lock(&p->mu);
        p->busy--;
        if (p->busy == 0 && !p->head)
            pthread_cond_broadcast(&p->idle_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Start one more thread; called with the lock held. */
static bool spawn(struct md_workpool *p)
{
    struct thread_rec *t = calloc(1, sizeof(*t));
    if (!t)
        return false;
    t->pool = p;
    if (pthread_create(&t->tid, &p->attr, worker_main, t) != 0) {
        free(t);
        return false;
    }
    t->next = p->live;
    p->live = t;
    p->threads++;
    p->started++;
    return true;
}

struct md_workpool *md_workpool_start(int min_threads, int max_threads, int idle_ms,
                                      size_t stack_bytes, struct md_error *err)
{
    if (max_threads < 1 || min_threads < 0 || min_threads > max_threads || idle_ms < 1) {
        md_error_set(err, MD_E_INVAL, "work pool: bad sizes (min %d, max %d, idle %d ms)",
                     min_threads, max_threads, idle_ms);
        return NULL;
    }
    struct md_workpool *p = calloc(1, sizeof(*p));
    if (!p) {
        md_error_set(err, MD_E_NOMEM, "out of memory starting the work pool");
        return NULL;
    }
    p->min = min_threads;
    p->max = max_threads;
    p->idle_ms = idle_ms;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, &ca);
    pthread_cond_init(&p->idle_cv, NULL);
    pthread_condattr_destroy(&ca);
    pthread_attr_init(&p->attr);
    if (stack_bytes > 0)
        pthread_attr_setstacksize(&p->attr, stack_bytes);
    pthread_mutex_lock(&p->mu);
    bool ok = true;
    for (int i = 0; i < min_threads && ok; i++)
        ok = spawn(p);
    pthread_mutex_unlock(&p->mu);
    if (!ok) {
        md_workpool_stop(p);
        md_error_set(err, MD_E_NOMEM, "cannot start %d work pool threads", min_threads);
        return NULL;
    }
    return p;
}

bool md_workpool_submit(struct md_workpool *p, struct md_work *w)
{
    w->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->closed || p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return false;
    }
    if (p->tail)
        p->tail->next = w;
    else
        p->head = w;
    p->tail = w;
    p->queued++;
    /* Idle threads already signalled count against the jobs queued before. */
    if (p->idle < p->queued && p->threads < p->max && !spawn(p) && p->threads == 0) {
        /* no thread at all, and none can start: nothing else can be queued either */
        p->head = p->tail = NULL;
        p->queued = 0;
        pthread_mutex_unlock(&p->mu);
        return false;
    }
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    return true;
}

void md_workpool_drain(struct md_workpool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->queued > 0 || p->busy > 0)
        pthread_cond_wait(&p->idle_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void md_workpool_close(struct md_workpool *p)
{
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    pthread_mutex_unlock(&p->mu);
    md_workpool_drain(p);
}

void md_workpool_stats(struct md_workpool *p, struct md_workpool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->threads = p->threads;
    out->busy = p->busy;
    out->queued = p->queued;
    out->max_threads = p->max;
    out->started = p->started;
    pthread_mutex_unlock(&p->mu);
}

void md_workpool_stop(struct md_workpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work_cv);
    /* No thread retires once stopping is set: the list is final. */
    struct thread_rec *live = p->live, *retired = p->retired;
    p->live = p->retired = NULL;
    pthread_mutex_unlock(&p->mu);
    while (live) {
        struct thread_rec *next = live->next;
        pthread_join(live->tid, NULL);
        free(live);
        live = next;
    }
    if (retired) {
        pthread_join(retired->tid, NULL);
        free(retired);
    }
    pthread_attr_destroy(&p->attr);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->idle_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
