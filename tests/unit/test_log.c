/* test_log.c — the log sink: line formats, and the buffered access log's order and flushing. */
#include "memoryd/compat.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "memoryd/clock.h"
#include "memoryd/log.h"

/*
 * pthread_create, failing on demand: this definition in the test executable
 * comes before libc's (and a sanitizer's) for every caller linked into it, and
 * forwards to the next one when not told to fail.
 */
static atomic_bool fail_thread_start;

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
                                 void *);

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    if (atomic_load(&fail_thread_start))
        return EAGAIN;
    pthread_create_fn next;
    void *sym = dlsym(RTLD_NEXT, "pthread_create");
    if (!sym)
        return ENOSYS;
    memcpy(&next, &sym, sizeof(next)); /* object to function pointer, without a cast ISO C lacks */
    return next(t, attr, fn, arg);
}

/* A pipe as the sink; the read end is non-blocking so "nothing yet" is observable. */
static int sink[2];

static int setup(void **state)
{
    (void)state;
    if (pipe(sink) != 0)
        return -1;
    fcntl(sink[0], F_SETFL, O_NONBLOCK);
    if (fcntl(sink[1], F_SETPIPE_SZ, 256 * 1024) < 0) /* room for the buffer-full test */
        return -1;
    md_log_setup(MD_LOG_INFO, MD_LOG_TEXT, sink[1]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    md_log_buffer_stop();
    md_log_setup(MD_LOG_INFO, MD_LOG_TEXT, 2);
    close(sink[0]);
    close(sink[1]);
    return 0;
}

/* Everything in the pipe now (NUL-terminated, at most cap-1 bytes). */
static size_t drain(char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(sink[0], out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break;
    }
    out[n] = '\0';
    return n;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_unbuffered_access_line_is_written_at_once(void **state)
{
    (void)state;
    md_log_access("GET", "/v1/stm/entries/a", 200, 123, "rid-1");
    char got[1024];
    drain(got, sizeof(got));
    assert_non_null(strstr(got, " INFO     access: GET /v1/stm/entries/a 200 123us rid-1\n"));
    assert_int_equal(count_lines(got), 1);
}

static void test_json_access_line(void **state)
{
    (void)state;
    md_log_setup(MD_LOG_INFO, MD_LOG_JSON, sink[1]);
    md_log_access("POST", "/v1/a\"b", 201, 7, "rid-2");
    char got[1024];
    drain(got, sizeof(got));
    assert_non_null(strstr(got, "\"component\":\"access\",\"method\":\"POST\","
                                "\"path\":\"/v1/a\\\"b\",\"status\":201,\"duration_us\":7,"
                                "\"request_id\":\"rid-2\"}\n"));
    md_log_setup(MD_LOG_INFO, MD_LOG_TEXT, sink[1]);
}

static void test_buffered_lines_wait_and_other_records_keep_the_order(void **state)
{
    (void)state;
    assert_true(md_log_buffer_start(60 * 1000)); /* nothing is due during this test */
    md_log_access("GET", "/one", 200, 1, "r1");
    md_log_access("GET", "/two", 200, 2, "r2");
    char got[4096];
    assert_int_equal(drain(got, sizeof(got)), 0); /* still buffered */
    md_log_warn("test", "a warning after two requests");
    drain(got, sizeof(got));
    const char *one = strstr(got, "access: GET /one 200");
    const char *two = strstr(got, "access: GET /two 200");
    const char *warn = strstr(got, "WARNING  test: a warning after two requests");
    assert_non_null(one);
    assert_non_null(two);
    assert_non_null(warn);
    assert_true(one < two && two < warn);
    assert_int_equal(count_lines(got), 3);

    md_log_access("GET", "/three", 200, 3, "r3");
    md_log_flush();
    drain(got, sizeof(got));
    assert_non_null(strstr(got, "access: GET /three 200"));
    md_log_access("GET", "/four", 200, 4, "r4");
    md_log_buffer_stop(); /* the last lines are written, not lost */
    drain(got, sizeof(got));
    assert_non_null(strstr(got, "access: GET /four 200"));
    md_log_access("GET", "/five", 200, 5, "r5"); /* unbuffered again */
    drain(got, sizeof(got));
    assert_non_null(strstr(got, "access: GET /five 200"));
}

static void test_flusher_that_cannot_start_leaves_lines_unbuffered(void **state)
{
    (void)state;
    atomic_store(&fail_thread_start, true);
    bool started = md_log_buffer_start(60 * 1000);
    atomic_store(&fail_thread_start, false);
    assert_false(started);
    md_log_access("GET", "/unbuffered", 200, 7, "r7"); /* written at once, not parked */
    char got[4096];
    drain(got, sizeof(got));
    assert_non_null(strstr(got, "access: GET /unbuffered 200 7us r7\n"));
    assert_int_equal(count_lines(got), 1);

    assert_true(md_log_buffer_start(60 * 1000)); /* nothing left half set up */
    md_log_access("GET", "/buffered", 200, 8, "r8");
    assert_int_equal(drain(got, sizeof(got)), 0);
    md_log_buffer_stop();
    drain(got, sizeof(got));
    assert_non_null(strstr(got, "access: GET /buffered 200 8us r8\n"));
}

static void test_flusher_writes_within_the_interval(void **state)
{
    (void)state;
    assert_true(md_log_buffer_start(50));
    int64_t t0 = md_mono_ms();
    md_log_access("GET", "/due", 200, 1, "r1");
    struct pollfd p = {.fd = sink[0], .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1); /* written by the flusher thread, not by us */
    int64_t waited = md_mono_ms() - t0;
    char got[1024];
    drain(got, sizeof(got));
    assert_non_null(strstr(got, "access: GET /due 200"));
    assert_true(waited >= 40); /* it did wait for the interval (allowing for clock steps) */
    /* and again after an idle period: the flusher sleeps until the next line */
    md_log_access("GET", "/later", 200, 1, "r2");
    assert_int_equal(poll(&p, 1, 5000), 1);
    drain(got, sizeof(got));
    assert_non_null(strstr(got, "access: GET /later 200"));
}

static void test_full_buffer_is_written_without_waiting(void **state)
{
    (void)state;
    assert_true(md_log_buffer_start(60 * 1000));
    char path[200];
    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    /* ~250 bytes a line: 64 KiB fills after ~260 lines */
    for (int i = 0; i < 400; i++)
        md_log_access("GET", path, 200, i, "rid");
    static char got[1 << 17];
    size_t n = drain(got, sizeof(got));
    assert_true(n > 32 * 1024);     /* the full buffer went out */
    assert_true(n < 400 * 240);     /* the rest still waits */
    assert_true(got[n - 1] == '\n'); /* whole lines only */
    size_t before = count_lines(got);
    md_log_buffer_stop();
    drain(got, sizeof(got));
    assert_int_equal(before + count_lines(got), 400); /* none lost, none doubled */
}

static void *write_lines(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 500; i++) {
        md_log_access("GET", "/many", 200, i, "rid");
        if (i % 100 == id)
            md_log_warn("test", "thread %d line %d", id, i);
    }
    return NULL;
}

/* Threads logging at once with the flusher running: every line once, whole. */
static void test_concurrent_writers_lose_nothing(void **state)
{
    (void)state;
    assert_true(md_log_buffer_start(1));
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, write_lines, (void *)(intptr_t)i), 0);
    static char got[1 << 18];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        n += drain(got + n, sizeof(got) - n);
    }
    md_log_buffer_stop();
    n += drain(got + n, sizeof(got) - n);
    size_t access = 0, warn = 0;
    for (char *line = got; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        access += strstr(line, " INFO     access: GET /many 200 ") != NULL;
        warn += strstr(line, " WARNING  test: thread ") != NULL;
        line = nl + 1;
    }
    assert_int_equal(access, 4 * 500);
    assert_int_equal(warn, 4 * 5);
}

static void test_level_gates_access_lines(void **state)
{
    (void)state;
    md_log_setup(MD_LOG_WARNING, MD_LOG_TEXT, sink[1]);
    md_log_access("GET", "/quiet", 200, 1, "r");
    md_log_info("test", "quiet too");
    char got[256];
    assert_int_equal(drain(got, sizeof(got)), 0);
    md_log_setup(MD_LOG_INFO, MD_LOG_TEXT, sink[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unbuffered_access_line_is_written_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_json_access_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffered_lines_wait_and_other_records_keep_the_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_flusher_that_cannot_start_leaves_lines_unbuffered,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_flusher_writes_within_the_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_buffer_is_written_without_waiting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_lose_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_gates_access_lines, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
