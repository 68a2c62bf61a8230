/* test_workpool.c — the elastic thread pool: every job once, growth, cap, shrink, stop. */
#include "memoryd/compat.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "memoryd/clock.h"
#include "memoryd/workpool.h"

/* A gate jobs wait at until the test opens it. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    atomic_int waiting; /* jobs currently at the gate */
    atomic_int max_waiting;
};

struct job {
    struct md_work work;
    struct gate *gate; /* NULL: do not wait */
    atomic_int *ran;
};

static void job_fn(struct md_work *w)
{
    struct job *j = (struct job *)w;
    if (j->gate) {
        struct gate *g = j->gate;
        int now = atomic_fetch_add(&g->waiting, 1) + 1;
        int seen = atomic_load(&g->max_waiting);
        while (now > seen && !atomic_compare_exchange_weak(&g->max_waiting, &seen, now))
            ;
        pthread_mutex_lock(&g->mu);
        while (!g->open)
            pthread_cond_wait(&g->cv, &g->mu);
        pthread_mutex_unlock(&g->mu);
        atomic_fetch_sub(&g->waiting, 1);
    }
    atomic_fetch_add(j->ran, 1);
}

static void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = false;
    atomic_init(&g->waiting, 0);
    atomic_init(&g->max_waiting, 0);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

/* Wait up to ms for *v to reach want. */
static bool reaches(atomic_int *v, int want, int ms)
{
    int64_t end = md_mono_ms() + ms;
    while (atomic_load(v) < want && md_mono_ms() < end)
        md_sleep_ms(2);
    return atomic_load(v) >= want;
}

static void test_every_job_runs_once(void **state)
{
    (void)state;
    struct md_error err;
    struct md_workpool *p = md_workpool_start(2, 8, 1000, 0, &err);
    assert_non_null(p);
    enum { N = 5000 };
    struct job *jobs = calloc(N, sizeof(*jobs));
    assert_non_null(jobs);
    atomic_int ran;
    atomic_init(&ran, 0);
    for (int i = 0; i < N; i++) {
        jobs[i].work.fn = job_fn;
        jobs[i].ran = &ran;
        assert_true(md_workpool_submit(p, &jobs[i].work));
    }
    md_workpool_drain(p);
    assert_int_equal(atomic_load(&ran), N);
    struct md_workpool_stats st;
    md_workpool_stats(p, &st);
    assert_int_equal(st.busy, 0);
    assert_int_equal(st.queued, 0);
    assert_true(st.threads >= 2 && st.threads <= 8);
    md_workpool_stop(p);
    free(jobs);
}

/* Blocked jobs never wait behind each other while the cap allows a thread. */
static void test_grows_for_blocked_jobs_up_to_the_cap(void **state)
{
    (void)state;
    struct md_error err;
    struct md_workpool *p = md_workpool_start(1, 6, 1000, 256 * 1024, &err);
    assert_non_null(p);
    struct gate g;
    gate_init(&g);
    atomic_int ran;
    atomic_init(&ran, 0);
    struct job jobs[10];
    for (int i = 0; i < 10; i++) {
        jobs[i] = (struct job){.work.fn = job_fn, .gate = &g, .ran = &ran};
        assert_true(md_workpool_submit(p, &jobs[i].work));
    }
    assert_true(reaches(&g.waiting, 6, 5000)); /* six at once: one thread each */
    md_sleep_ms(50);
    assert_int_equal(atomic_load(&g.waiting), 6); /* never a seventh */
    struct md_workpool_stats st;
    md_workpool_stats(p, &st);
    assert_int_equal(st.threads, 6);
    assert_int_equal(st.busy, 6);
    assert_int_equal(st.queued, 4);
    assert_int_equal(atomic_load(&ran), 0);
    gate_open(&g);
    md_workpool_drain(p);
    assert_int_equal(atomic_load(&ran), 10);
    assert_int_equal(atomic_load(&g.max_waiting), 6);
    md_workpool_stop(p);
    gate_destroy(&g);
}

static void test_idle_threads_beyond_min_retire(void **state)
{
    (void)state;
    struct md_error err;
    struct md_workpool *p = md_workpool_start(1, 5, 50, 0, &err);
    assert_non_null(p);
    for (int round = 0; round < 3; round++) { /* retirees are joined by later ones */
        struct gate g;
        gate_init(&g);
        atomic_int ran;
        atomic_init(&ran, 0);
        struct job jobs[5];
        for (int i = 0; i < 5; i++) {
            jobs[i] = (struct job){.work.fn = job_fn, .gate = &g, .ran = &ran};
            assert_true(md_workpool_submit(p, &jobs[i].work));
        }
        assert_true(reaches(&g.waiting, 5, 5000));
        gate_open(&g);
        md_workpool_drain(p);
        assert_int_equal(atomic_load(&ran), 5);
        struct md_workpool_stats st;
        int64_t end = md_mono_ms() + 5000;
        do {
            md_sleep_ms(10);
            md_workpool_stats(p, &st);
        } while (st.threads > 1 && md_mono_ms() < end);
        assert_int_equal(st.threads, 1);
        gate_destroy(&g);
    }
    md_workpool_stop(p);
}

static void test_stop_runs_what_was_queued(void **state)
{
    (void)state;
    struct md_error err;
    struct md_workpool *p = md_workpool_start(0, 1, 1000, 0, &err);
    assert_non_null(p);
    struct gate g;
    gate_init(&g);
    atomic_int ran;
    atomic_init(&ran, 0);
    struct job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){.work.fn = job_fn, .gate = &g, .ran = &ran};
        assert_true(md_workpool_submit(p, &jobs[i].work));
    }
    assert_true(reaches(&g.waiting, 1, 5000));
    gate_open(&g);
    md_workpool_stop(p); /* joins after the queue is empty */
    assert_int_equal(atomic_load(&ran), 4);
    gate_destroy(&g);
}

static void test_close_refuses_new_jobs_and_waits_for_running_ones(void **state)
{
    (void)state;
    struct md_error err;
    struct md_workpool *p = md_workpool_start(1, 2, 1000, 0, &err);
    assert_non_null(p);
    atomic_int ran;
    atomic_init(&ran, 0);
    struct job jobs[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (struct job){.work.fn = job_fn, .ran = &ran};
        assert_true(md_workpool_submit(p, &jobs[i].work));
    }
    md_workpool_close(p);
    assert_int_equal(atomic_load(&ran), 3);
    struct job late = {.work.fn = job_fn, .ran = &ran};
    assert_false(md_workpool_submit(p, &late.work));
    md_workpool_stop(p);
    assert_int_equal(atomic_load(&ran), 3);
}

static void test_bad_sizes_are_refused(void **state)
{
    (void)state;
    struct md_error err;
    md_error_clear(&err);
    assert_null(md_workpool_start(2, 1, 1000, 0, &err));
    assert_int_equal(err.code, MD_E_INVAL);
    assert_null(md_workpool_start(0, 0, 1000, 0, &err));
    assert_null(md_workpool_start(-1, 4, 1000, 0, &err));
    assert_null(md_workpool_start(1, 4, 0, 0, &err));
    md_workpool_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_job_runs_once),
        cmocka_unit_test(test_grows_for_blocked_jobs_up_to_the_cap),
        cmocka_unit_test(test_idle_threads_beyond_min_retire),
        cmocka_unit_test(test_stop_runs_what_was_queued),
        cmocka_unit_test(test_close_refuses_new_jobs_and_waits_for_running_ones),
        cmocka_unit_test(test_bad_sizes_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
