/*
 * test_stm_redis.c — the Redis STM backend and its connection pool against a
 * real redis-server (CTest label "integration").
 *
 * The group setup starts its own `redis-server --port <free> --save ''
 * --appendonly no` in a temporary directory and kills it at the end; tests
 * that kill, restart or SIGSTOP the server restore it before they return.
 * Each test starts from an empty database (FLUSHALL) and a fresh store.
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/sds.h>

#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/ids.h"
#define MD_REDIS_IO_RAW /* drives Redis directly to stage states */
#include "memoryd/redis_pool.h"
#include "memoryd/stm.h"

/* ---- the throwaway server ------------------------------------------------------- */

static char g_dir[64];
static int g_port;
static pid_t g_pid = -1;
static pid_t g_aux_pid = -1; /* a second server of one test, killed at teardown too */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *raw_connect(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c)
        redisSetTimeout(c, tv);
    return c;
}

/* Start redis-server on port with extra arguments (NULL-terminated). */
static pid_t server_start(int port, const char *const *extra)
{
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", port);
    const char *argv[40];
    int n = 0;
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = port_s;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = g_dir;
    for (size_t i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        char *cargs[40];
        for (int i = 0; i <= n; i++)
            cargs[i] = argv[i] ? strdup(argv[i]) : NULL;
        execvp("redis-server", cargs);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    /* Wait until it answers (any reply to PING counts: NOAUTH too). */
    for (int i = 0; i < 200; i++) {
        redisContext *c = raw_connect(port);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            redisFree(c);
            if (r) {
                freeReplyObject(r);
                return pid;
            }
        }
        md_sleep_ms(25);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void server_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGCONT);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static int group_setup(void **state)
{
    MD_UNUSED(state);
    signal(SIGPIPE, SIG_IGN);
    snprintf(g_dir, sizeof(g_dir), "/tmp/md-redis-test-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    for (int attempt = 0; attempt < 5 && g_pid <= 0; attempt++) {
        g_port = free_port();
        if (g_port > 0)
            g_pid = server_start(g_port, NULL);
    }
    return g_pid > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    MD_UNUSED(state);
    server_kill(g_pid);
    g_pid = -1;
    server_kill(g_aux_pid);
    g_aux_pid = -1;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

/* ---- per-test store ------------------------------------------------------------- */

/* The tests' "now": the real clock at the start of each test, since Redis
 * itself expires keys by its own clock (PXAT). */
static int64_t T0;

static char g_host[] = "127.0.0.1";
static char g_empty[] = "";

static void config_init(struct md_config *cfg, int port)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->redis_host = g_host;
    cfg->redis_port = port;
    cfg->redis_db = 0;
    cfg->redis_username = g_empty;
    cfg->redis_password = g_empty;
    cfg->redis_max_connections = 8;
    cfg->redis_socket_timeout = 0.5;
    cfg->redis_socket_connect_timeout = 0.5;
    cfg->redis_health_check_interval = 30;
    cfg->redis_connection_acquisition_timeout = 2;
    cfg->redis_retry_on_timeout = true;
}

static redisReply *raw(const char *fmt, ...)
{
    redisContext *c = raw_connect(g_port);
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(r);
    return r;
}

static long long raw_int(const char *fmt, const char *arg)
{
    redisReply *r = raw(fmt, arg);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static struct md_stm *new_store(void)
{
    struct md_config cfg;
    config_init(&cfg, g_port);
    struct md_error err;
    md_error_clear(&err);
    struct md_stm *s = md_stm_redis_new(&cfg, &err);
    assert_non_null(s);
    return s;
}

static int test_setup(void **state)
{
    freeReplyObject(raw("CONFIG SET maxmemory 0"));
    freeReplyObject(raw("FLUSHALL"));
    T0 = md_now_ms();
    *state = new_store();
    return 0;
}

static int test_teardown(void **state)
{
    md_stm_destroy(*state);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------- */


static struct md_stm_new new_req(const char *id, bool generated, enum md_verdict st)
{
    struct md_stm_new in;
    memset(&in, 0, sizeof(in));
    snprintf(in.scenario_id, sizeof(in.scenario_id), "%s", id);
    in.generated = generated;
    in.requirement_text = "Users must give consent";
    in.status = st;
    in.rationale = "No consent banner";
    in.recommendation = "Add a banner";
    in.ttl_seconds = 3600;
    return in;
}

static enum md_status create(struct md_stm *s, const char *id, enum md_verdict st, int64_t now,
                             struct md_stm_view *v)
{
    struct md_stm_new in = new_req(id, false, st);
    struct md_error err;
    md_error_clear(&err);
    return s->ops->create(s, &in, now, v, &err);
}

static void create_ok(struct md_stm *s, const char *id, enum md_verdict st, int64_t now)
{
    struct md_stm_view v;
    assert_int_equal(create(s, id, st, now, &v), MD_OK);
    md_stm_view_release(&v);
}

static void put_str_or_null(struct md_buf *b, const char *s)
{
    if (!s)
        assert_int_equal(md_buf_puts(b, "null"), MD_OK);
    else
        assert_int_equal(md_buf_json_str(b, s, strlen(s)), MD_OK);
}

/* The canonical JSON an entry must have (built with the C encoder). */
static char *expected_json(const char *id, const char *text, const char *status,
                           const char *rationale, const char *recommendation,
                           const char *const fb[3], const char *final, int64_t created,
                           int64_t updated, int64_t expires)
{
    struct md_buf b;
    md_buf_init(&b, 1 << 20);
    char t[MD_ISO8601_LEN];
    assert_int_equal(md_buf_puts(&b, "{\"scenario_id\":"), MD_OK);
    put_str_or_null(&b, id);
    assert_int_equal(md_buf_puts(&b, ",\"requirement_text\":"), MD_OK);
    put_str_or_null(&b, text);
    assert_int_equal(md_buf_puts(&b, ",\"initial_assessment\":{\"status\":"), MD_OK);
    put_str_or_null(&b, status);
    assert_int_equal(md_buf_puts(&b, ",\"rationale\":"), MD_OK);
    put_str_or_null(&b, rationale);
    assert_int_equal(md_buf_puts(&b, ",\"recommendation\":"), MD_OK);
    put_str_or_null(&b, recommendation);
    assert_int_equal(md_buf_puts(&b, "},\"human_feedback\":"), MD_OK);
    if (fb) {
        assert_int_equal(md_buf_puts(&b, "{\"decision\":"), MD_OK);
        put_str_or_null(&b, fb[0]);
        assert_int_equal(md_buf_puts(&b, ",\"rationale\":"), MD_OK);
        put_str_or_null(&b, fb[1]);
        assert_int_equal(md_buf_puts(&b, ",\"suggestion\":"), MD_OK);
        put_str_or_null(&b, fb[2]);
        assert_int_equal(md_buf_putc(&b, '}'), MD_OK);
    } else {
        assert_int_equal(md_buf_puts(&b, "null"), MD_OK);
    }
    assert_int_equal(md_buf_puts(&b, ",\"final_status\":"), MD_OK);
    put_str_or_null(&b, final);
    md_iso8601(created, t);
    assert_int_equal(md_buf_printf(&b, ",\"created_at\":\"%s\"", t), MD_OK);
    md_iso8601(updated, t);
    assert_int_equal(md_buf_printf(&b, ",\"updated_at\":\"%s\"", t), MD_OK);
    md_iso8601(expires, t);
    assert_int_equal(md_buf_printf(&b, ",\"expires_at\":\"%s\"}", t), MD_OK);
    return md_buf_take(&b, NULL);
}

/* Page through a listing, collecting ids in order; returns the count. */
static size_t list_all(struct md_stm *s, const struct md_stm_filter *f, size_t limit,
                       int64_t now, char ids[][MD_SCENARIO_ID_MAX + 1], size_t cap,
                       size_t *pages)
{
    size_t n = 0;
    uint64_t after = 0;
    *pages = 0;
    for (;;) {
        struct md_stm_page p;
        struct md_error err;
        md_error_clear(&err);
        assert_int_equal(s->ops->list(s, f, limit, after, now, &p, &err), MD_OK);
        assert_true(p.count <= limit);
        (*pages)++;
        for (size_t i = 0; i < p.count; i++) {
            assert_true(n < cap);
            snprintf(ids[n++], MD_SCENARIO_ID_MAX + 1, "%s", p.items[i].scenario_id);
            assert_non_null(p.items[i].json);
            assert_int_equal(strlen(p.items[i].json), p.items[i].json_len);
        }
        after = p.next_seq;
        md_stm_page_release(&p);
        if (!after)
            break;
        assert_true(*pages < 1000);
    }
    return n;
}

static void stats(struct md_stm *s, int64_t now, struct md_stm_stats *out)
{
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(s->ops->stats(s, now, out, &err), MD_OK);
}

/* ---- tests: content ------------------------------------------------------------- */

static void test_create_get(void **state)
{
    struct md_stm *s = *state;
    struct md_stm_new in = new_req("ecommerce_r1_consent", false, MD_VERDICT_NON_COMPLIANT);
    in.requirement_text = "Quote \" backslash \\ slash / nl \n tab \t ctl \x01 del \x7f é 漢";
    struct md_stm_view v;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(s->ops->create(s, &in, T0, &v, &err), MD_OK);
    char *want = expected_json("ecommerce_r1_consent", in.requirement_text, "Non-Compliant",
                               in.rationale, in.recommendation, NULL, NULL, T0, T0,
                               T0 + 3600000);
    assert_string_equal(v.json, want);
    assert_string_equal(v.scenario_id, "ecommerce_r1_consent");
    assert_false(v.has_feedback);
    assert_int_equal(v.final_status, MD_VERDICT_NONE);
    assert_int_equal(v.expires_ms, T0 + 3600000);
    md_stm_view_release(&v);

    /* The key holds exactly the JSON, expiring at the entry's expiry. */
    redisReply *r = raw("GET stm:ecommerce_r1_consent");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
    assert_int_equal(raw_int("PEXPIRETIME %s", "stm:ecommerce_r1_consent"), T0 + 3600000);

    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", T0 + 5, &v, &err), MD_OK);
    assert_string_equal(v.json, want);
    assert_int_equal(v.n_links, 0);
    md_stm_view_release(&v);
    free(want);

    /* Create never overwrites. */
    assert_int_equal(create(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0 + 10, &v),
                     MD_E_CONFLICT);
    assert_int_equal(s->ops->get(s, "ecommerce_r1_unknown", T0, &v, &err), MD_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "ecommerce_r1_unknown"));

    /* A key written by another tool (no index) blocks the id too. */
    freeReplyObject(raw("SET stm:foreign_r1_x {}"));
    assert_int_equal(create(s, "foreign_r1_x", MD_VERDICT_COMPLIANT, T0, &v), MD_E_CONFLICT);
}

static void test_generated_ids(void **state)
{
    struct md_stm *s = *state;
    const char *want[] = {"hr_r2_pay", "hr_r2_pay_2", "hr_r2_pay_3"};
    for (int i = 0; i < 3; i++) {
        struct md_stm_new in = new_req("hr_r2_pay", true, MD_VERDICT_PENDING);
        struct md_stm_view v;
        struct md_error err;
        md_error_clear(&err);
        assert_int_equal(s->ops->create(s, &in, T0 + i, &v, &err), MD_OK);
        assert_string_equal(v.scenario_id, want[i]);
        assert_non_null(strstr(v.json, want[i]));
        md_stm_view_release(&v);
    }
    /* The lowest free suffix is taken again after a delete. */
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(s->ops->del(s, "hr_r2_pay_2", T0 + 5, &err), MD_OK);
    struct md_stm_new in = new_req("hr_r2_pay", true, MD_VERDICT_PENDING);
    struct md_stm_view v;
    assert_int_equal(s->ops->create(s, &in, T0 + 6, &v, &err), MD_OK);
    assert_string_equal(v.scenario_id, "hr_r2_pay_2");
    md_stm_view_release(&v);

    /* Past the first lookup batches: _2 … _40 taken, a gap at _23. */
    for (int i = 4; i <= 40; i++) {
        assert_int_equal(s->ops->create(s, &in, T0 + 7, &v, &err), MD_OK);
        md_stm_view_release(&v);
    }
    assert_int_equal(s->ops->del(s, "hr_r2_pay_23", T0 + 8, &err), MD_OK);
    assert_int_equal(s->ops->create(s, &in, T0 + 9, &v, &err), MD_OK);
    assert_string_equal(v.scenario_id, "hr_r2_pay_23");
    md_stm_view_release(&v);
    assert_int_equal(s->ops->create(s, &in, T0 + 9, &v, &err), MD_OK);
    assert_string_equal(v.scenario_id, "hr_r2_pay_41");
    md_stm_view_release(&v);

    /* A base at the length limit has no free suffix left. */
    char base[MD_SCENARIO_ID_MAX + 1];
    memset(base, 'a', MD_SCENARIO_ID_MAX);
    memcpy(base, "x_r1_", 5);
    base[MD_SCENARIO_ID_MAX] = '\0';
    in = new_req(base, true, MD_VERDICT_PENDING);
    assert_int_equal(s->ops->create(s, &in, T0, &v, &err), MD_OK);
    md_stm_view_release(&v);
    assert_int_equal(s->ops->create(s, &in, T0, &v, &err), MD_E_CONFLICT);
}

struct model_entry {
    char id[MD_SCENARIO_ID_MAX + 1];
    enum md_verdict status;
    enum md_verdict final;
    bool fb;
    const char *domain;
};

static bool model_match(const struct model_entry *e, const struct md_stm_filter *f)
{
    return (f->status == MD_VERDICT_NONE || f->status == e->status) &&
           (f->final_status == MD_VERDICT_NONE || f->final_status == e->final) &&
           (f->has_feedback < 0 || f->has_feedback == (int)e->fb) &&
           (!f->domain[0] || strcmp(f->domain, e->domain) == 0);
}

static void test_list_filters_paging(void **state)
{
    struct md_stm *s = *state;
    static const char *domains[] = {"ecommerce", "hr", "finance"};
    enum { N = 60 };
    static struct model_entry m[N];
    struct md_error err;
    md_error_clear(&err);
    for (int i = 0; i < N; i++) {
        m[i].domain = domains[i % 3];
        snprintf(m[i].id, sizeof(m[i].id), "%s_r%d_item", m[i].domain, i);
        m[i].status = (enum md_verdict)(i % 4);
        m[i].final = MD_VERDICT_NONE;
        create_ok(s, m[i].id, m[i].status, T0 + i);
        if (i % 5 == 0) {
            struct md_stm_feedback fb = {"ok", "because", "none", i % 10 == 0,
                                         (enum md_verdict)((i / 5) % 4)};
            struct md_stm_view v;
            assert_int_equal(s->ops->feedback(s, m[i].id, &fb, T0 + 100, &v, &err), MD_OK);
            md_stm_view_release(&v);
            m[i].fb = true;
            if (fb.set_final)
                m[i].final = fb.final_status;
        }
    }
    static char ids[N][MD_SCENARIO_ID_MAX + 1];
    struct md_stm_filter filters[12];
    size_t nf = 0;
    for (int k = 0; k < 12; k++)
        md_stm_filter_init(&filters[k]);
    nf++; /* 0: everything */
    filters[nf++].status = MD_VERDICT_PARTIAL;
    filters[nf++].final_status = MD_VERDICT_COMPLIANT;
    filters[nf++].has_feedback = 1;
    filters[nf++].has_feedback = 0;
    snprintf(filters[nf++].domain, MD_DOMAIN_MAX + 1, "hr");
    filters[nf].status = MD_VERDICT_COMPLIANT;
    filters[nf++].has_feedback = 1;
    filters[nf].status = MD_VERDICT_PENDING;
    snprintf(filters[nf++].domain, MD_DOMAIN_MAX + 1, "finance");
    snprintf(filters[nf++].domain, MD_DOMAIN_MAX + 1, "nosuch");
    static const size_t limits[] = {1, 7, 50, 1000};
    for (size_t k = 0; k < nf; k++) {
        for (size_t li = 0; li < MD_ARRAY_LEN(limits); li++) {
            size_t pages = 0;
            size_t n = list_all(s, &filters[k], limits[li], T0 + 200, ids, N, &pages);
            /* Exactly the matching entries, each once, newest first. */
            size_t at = 0;
            for (int i = N - 1; i >= 0; i--) {
                if (!model_match(&m[i], &filters[k]))
                    continue;
                assert_true(at < n);
                assert_string_equal(ids[at], m[i].id);
                at++;
            }
            assert_int_equal(at, n);
        }
    }
    /* Views carry the index facts. */
    struct md_stm_page p;
    md_stm_filter_init(&filters[0]);
    filters[0].has_feedback = 1;
    assert_int_equal(s->ops->list(s, &filters[0], 1, 0, T0 + 200, &p, &err), MD_OK);
    assert_int_equal(p.count, 1);
    assert_string_equal(p.items[0].scenario_id, m[55].id);
    assert_true(p.items[0].has_feedback);
    assert_int_equal(p.items[0].final_status, m[55].final);
    assert_int_equal(p.items[0].expires_ms, T0 + 55 + 3600000);
    assert_true(p.next_seq != 0);
    md_stm_page_release(&p);

    /* The last page says so (next_seq 0), also when it is exactly full. */
    md_stm_filter_init(&filters[0]);
    assert_int_equal(s->ops->list(s, &filters[0], N, 0, T0 + 200, &p, &err), MD_OK);
    assert_int_equal(p.count, N);
    assert_int_equal(p.next_seq, 0);
    md_stm_page_release(&p);

    /* Entries created while paging do not show up on later pages. */
    assert_int_equal(s->ops->list(s, &filters[0], 10, 0, T0 + 200, &p, &err), MD_OK);
    uint64_t next = p.next_seq;
    md_stm_page_release(&p);
    create_ok(s, "late_r1_entry", MD_VERDICT_COMPLIANT, T0 + 300);
    size_t seen = 10;
    while (next) {
        assert_int_equal(s->ops->list(s, &filters[0], 10, next, T0 + 300, &p, &err), MD_OK);
        for (size_t i = 0; i < p.count; i++)
            assert_string_not_equal(p.items[i].scenario_id, "late_r1_entry");
        seen += p.count;
        next = p.next_seq;
        md_stm_page_release(&p);
    }
    assert_int_equal(seen, N);

    /* Stats agree with the model. */
    struct md_stm_stats st;
    stats(s, T0 + 300, &st);
    assert_int_equal(st.total, N + 1);
    int64_t fbn = 0, by_st[MD_VERDICT_COUNT] = {0}, by_fin[MD_VERDICT_COUNT] = {0};
    for (int i = 0; i < N; i++) {
        fbn += m[i].fb;
        by_st[m[i].status]++;
        if (m[i].final != MD_VERDICT_NONE)
            by_fin[m[i].final]++;
    }
    by_st[MD_VERDICT_COMPLIANT]++;
    assert_int_equal(st.with_feedback, fbn);
    for (int i = 0; i < MD_VERDICT_COUNT; i++) {
        assert_int_equal(st.by_status[i], by_st[i]);
        assert_int_equal(st.by_final[i], by_fin[i]);
    }
}

static void test_list_sparse_filter_bounded(void **state)
{
    /* A filter matching little inside a large candidate set: pages may be
     * short while next_seq != 0, but paging visits every match once. */
    struct md_stm *s = *state;
    struct md_error err;
    md_error_clear(&err);
    enum { N = 700 };
    for (int i = 0; i < N; i++) {
        char id[64];
        snprintf(id, sizeof(id), "big_r%d_x", i);
        create_ok(s, id, i % 2 ? MD_VERDICT_PENDING : MD_VERDICT_COMPLIANT, T0);
        if (i % 100 == 7) {
            struct md_stm_feedback fb = {"d", "r", "s", false, MD_VERDICT_NONE};
            struct md_stm_view v;
            assert_int_equal(s->ops->feedback(s, id, &fb, T0, &v, &err), MD_OK);
            md_stm_view_release(&v);
        }
    }
    struct md_stm_filter f;
    md_stm_filter_init(&f);
    f.status = MD_VERDICT_PENDING; /* 350 candidates either way */
    f.has_feedback = 1;            /* ... of which 7 match */
    static char ids[N][MD_SCENARIO_ID_MAX + 1];
    size_t pages = 0;
    size_t n = list_all(s, &f, 2, T0 + 1, ids, N, &pages);
    assert_int_equal(n, 7);
    assert_string_equal(ids[0], "big_r607_x");
    assert_string_equal(ids[6], "big_r7_x");
    assert_true(pages >= 2);
}

static void test_patch_changed(void **state)
{
    struct md_stm *s = *state;
    struct md_error err;
    md_error_clear(&err);
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_NON_COMPLIANT, T0);
    struct md_stm_patch p;
    memset(&p, 0, sizeof(p));
    struct md_stm_view v;
    unsigned changed = 99;

    /* Same values: nothing changes, updated_at stays. */
    p.requirement_text = "Users must give consent";
    p.set_status = true;
    p.status = MD_VERDICT_NON_COMPLIANT;
    p.rationale = "No consent banner";
    p.set_final = true;
    p.final_status = MD_VERDICT_NONE;
    assert_int_equal(s->ops->patch(s, "ecommerce_r1_consent", &p, T0 + 1000, &v, &changed, &err),
                     MD_OK);
    assert_int_equal(changed, 0);
    char *want = expected_json("ecommerce_r1_consent", "Users must give consent",
                               "Non-Compliant", "No consent banner", "Add a banner", NULL, NULL,
                               T0, T0, T0 + 3600000);
    assert_string_equal(v.json, want);
    free(want);
    md_stm_view_release(&v);

    /* Status and final status change; the text does not. */
    p.status = MD_VERDICT_PARTIAL;
    p.final_status = MD_VERDICT_COMPLIANT;
    assert_int_equal(s->ops->patch(s, "ecommerce_r1_consent", &p, T0 + 2000, &v, &changed, &err),
                     MD_OK);
    assert_int_equal(changed, MD_STM_F_STATUS | MD_STM_F_FINAL_STATUS);
    assert_int_equal(v.final_status, MD_VERDICT_COMPLIANT);
    want = expected_json("ecommerce_r1_consent", "Users must give consent",
                         "Partially Compliant", "No consent banner", "Add a banner", NULL,
                         "Compliant", T0, T0 + 2000, T0 + 3600000);
    assert_string_equal(v.json, want);
    free(want);
    md_stm_view_release(&v);
    /* The TTL is kept. */
    assert_int_equal(raw_int("PEXPIRETIME %s", "stm:ecommerce_r1_consent"), T0 + 3600000);

    /* The index follows: filters and stats. */
    struct md_stm_filter f;
    md_stm_filter_init(&f);
    f.status = MD_VERDICT_PARTIAL;
    f.final_status = MD_VERDICT_COMPLIANT;
    struct md_stm_page pg;
    assert_int_equal(s->ops->list(s, &f, 10, 0, T0 + 2000, &pg, &err), MD_OK);
    assert_int_equal(pg.count, 1);
    md_stm_page_release(&pg);
    f.status = MD_VERDICT_NON_COMPLIANT;
    f.final_status = MD_VERDICT_NONE;
    assert_int_equal(s->ops->list(s, &f, 10, 0, T0 + 2000, &pg, &err), MD_OK);
    assert_int_equal(pg.count, 0);
    assert_int_equal(pg.next_seq, 0);
    md_stm_page_release(&pg);
    struct md_stm_stats st;
    stats(s, T0 + 2000, &st);
    assert_int_equal(st.by_status[MD_VERDICT_PARTIAL], 1);
    assert_int_equal(st.by_status[MD_VERDICT_NON_COMPLIANT], 0);
    assert_int_equal(st.by_final[MD_VERDICT_COMPLIANT], 1);

    /* Text fields one by one; final status back to null. */
    memset(&p, 0, sizeof(p));
    p.requirement_text = "New text";
    p.recommendation = "Another";
    p.set_final = true;
    p.final_status = MD_VERDICT_NONE;
    assert_int_equal(s->ops->patch(s, "ecommerce_r1_consent", &p, T0 + 3000, &v, &changed, &err),
                     MD_OK);
    assert_int_equal(changed,
                     MD_STM_F_REQUIREMENT_TEXT | MD_STM_F_RECOMMENDATION | MD_STM_F_FINAL_STATUS);
    assert_int_equal(v.final_status, MD_VERDICT_NONE);
    md_stm_view_release(&v);
    stats(s, T0 + 3000, &st);
    assert_int_equal(st.by_final[MD_VERDICT_COMPLIANT], 0);

    memset(&p, 0, sizeof(p));
    p.rationale = "R2";
    assert_int_equal(s->ops->patch(s, "ecommerce_r1_consent", &p, T0 + 4000, &v, &changed, &err),
                     MD_OK);
    assert_int_equal(changed, MD_STM_F_RATIONALE);
    md_stm_view_release(&v);

    assert_int_equal(s->ops->patch(s, "ecommerce_r1_nope", &p, T0, &v, &changed, &err),
                     MD_E_NOTFOUND);
}

static void test_feedback(void **state)
{
    struct md_stm *s = *state;
    struct md_error err;
    md_error_clear(&err);
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_NON_COMPLIANT, T0);
    struct md_stm_view v;
    const char *fb1[3] = {"Agree", "Right", "Keep"};
    struct md_stm_feedback fb = {fb1[0], fb1[1], fb1[2], true, MD_VERDICT_PARTIAL};
    assert_int_equal(s->ops->feedback(s, "ecommerce_r1_consent", &fb, T0 + 10, &v, &err), MD_OK);
    char *want = expected_json("ecommerce_r1_consent", "Users must give consent",
                               "Non-Compliant", "No consent banner", "Add a banner", fb1,
                               "Partially Compliant", T0, T0 + 10, T0 + 3600000);
    assert_string_equal(v.json, want);
    free(want);
    assert_true(v.has_feedback);
    assert_int_equal(v.final_status, MD_VERDICT_PARTIAL);
    md_stm_view_release(&v);

    /* Without final_status the old one stays; updated_at always moves. */
    const char *fb2[3] = {"Disagree", "Wrong \"quote\"", "Fix"};
    struct md_stm_feedback fb_keep = {fb2[0], fb2[1], fb2[2], false, MD_VERDICT_NONE};
    assert_int_equal(s->ops->feedback(s, "ecommerce_r1_consent", &fb_keep, T0 + 20, &v, &err),
                     MD_OK);
    want = expected_json("ecommerce_r1_consent", "Users must give consent", "Non-Compliant",
                         "No consent banner", "Add a banner", fb2, "Partially Compliant", T0,
                         T0 + 20, T0 + 3600000);
    assert_string_equal(v.json, want);
    free(want);
    md_stm_view_release(&v);

    /* null clears it. */
    struct md_stm_feedback fb_clear = {fb2[0], fb2[1], fb2[2], true, MD_VERDICT_NONE};
    assert_int_equal(s->ops->feedback(s, "ecommerce_r1_consent", &fb_clear, T0 + 30, &v, &err),
                     MD_OK);
    assert_int_equal(v.final_status, MD_VERDICT_NONE);
    assert_non_null(strstr(v.json, "\"final_status\":null"));
    md_stm_view_release(&v);
    assert_int_equal(raw_int("PEXPIRETIME %s", "stm:ecommerce_r1_consent"), T0 + 3600000);

    struct md_stm_stats st;
    stats(s, T0 + 30, &st);
    assert_int_equal(st.total, 1);
    assert_int_equal(st.with_feedback, 1);
    for (int i = 0; i < MD_VERDICT_COUNT; i++)
        assert_int_equal(st.by_final[i], 0);
    assert_int_equal(s->ops->feedback(s, "ecommerce_r1_nope", &fb, T0, &v, &err),
                     MD_E_NOTFOUND);
}

static void test_ttl_delete_links(void **state)
{
    struct md_stm *s = *state;
    struct md_error err;
    md_error_clear(&err);
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0);
    create_ok(s, "ecommerce_r2_other", MD_VERDICT_COMPLIANT, T0);

    /* Links: only for live entries, expiring with the entry. */
    assert_int_equal(s->ops->link_add(s, "ecommerce_r9_none", "GDPR_Consent_01", T0, &err),
                     MD_E_NOTFOUND);
    assert_int_equal(s->ops->link_add(s, "ecommerce_r1_consent", "GDPR_Consent_01", T0, &err),
                     MD_OK);
    assert_int_equal(s->ops->link_add(s, "ecommerce_r1_consent", "GDPR_Consent_02", T0, &err),
                     MD_OK);
    assert_int_equal(s->ops->link_add(s, "ecommerce_r2_other", "GDPR_Consent_01", T0, &err),
                     MD_OK);
    assert_int_equal(raw_int("PEXPIRETIME %s", "stm_ltm_links:ecommerce_r1_consent"),
                     T0 + 3600000);
    struct md_stm_view v;
    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", T0, &v, &err), MD_OK);
    assert_int_equal(v.n_links, 2);
    assert_true((strcmp(v.links[0], "GDPR_Consent_01") == 0 &&
                 strcmp(v.links[1], "GDPR_Consent_02") == 0) ||
                (strcmp(v.links[1], "GDPR_Consent_01") == 0 &&
                 strcmp(v.links[0], "GDPR_Consent_02") == 0));
    md_stm_view_release(&v);

    /* TTL moves entry, links and index; updated_at stays. */
    int64_t exp = 0;
    assert_int_equal(s->ops->set_ttl(s, "ecommerce_r1_consent", 120, T0 + 5000, &exp, &err),
                     MD_OK);
    assert_int_equal(exp, T0 + 5000 + 120000);
    assert_int_equal(raw_int("PEXPIRETIME %s", "stm:ecommerce_r1_consent"), exp);
    assert_int_equal(raw_int("PEXPIRETIME %s", "stm_ltm_links:ecommerce_r1_consent"), exp);
    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", T0 + 5000, &v, &err), MD_OK);
    char *want = expected_json("ecommerce_r1_consent", "Users must give consent", "Compliant",
                               "No consent banner", "Add a banner", NULL, NULL, T0, T0, exp);
    assert_string_equal(v.json, want);
    assert_int_equal(v.expires_ms, exp);
    free(want);
    md_stm_view_release(&v);
    /* Past the new expiry (long before the old one) it is gone everywhere. */
    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", exp, &v, &err), MD_E_NOTFOUND);
    struct md_stm_stats st;
    stats(s, exp, &st);
    assert_int_equal(st.total, 1);
    assert_int_equal(s->ops->set_ttl(s, "ecommerce_r1_nope", 120, T0, &exp, &err),
                     MD_E_NOTFOUND);

    /* links_remove: per listed scenario, missing ones are fine. */
    const char *ids[] = {"ecommerce_r2_other", "ecommerce_r7_missing"};
    assert_int_equal(s->ops->links_remove(s, "GDPR_Consent_01", ids, 2, &err), MD_OK);
    assert_int_equal(s->ops->get(s, "ecommerce_r2_other", T0, &v, &err), MD_OK);
    assert_int_equal(v.n_links, 0);
    md_stm_view_release(&v);

    /* Delete removes the entry, its links and its index state. */
    assert_int_equal(s->ops->link_add(s, "ecommerce_r2_other", "GDPR_X_01", T0, &err), MD_OK);
    assert_int_equal(s->ops->del(s, "ecommerce_r2_other", T0 + 1, &err), MD_OK);
    assert_int_equal(s->ops->del(s, "ecommerce_r2_other", T0 + 1, &err), MD_E_NOTFOUND);
    assert_int_equal(raw_int("EXISTS %s", "stm_ltm_links:ecommerce_r2_other"), 0);
    assert_int_equal(raw_int("EXISTS %s", "stm:ecommerce_r2_other"), 0);
    assert_int_equal(raw_int("HEXISTS memoryd:stm:meta %s", "ecommerce_r2_other"), 0);
    stats(s, T0 + 1, &st);
    assert_int_equal(st.total, 1);
}

struct each_seen {
    int n;
    int fb;
    int links;
};

static enum md_status each_cb(void *ctx, const char *id, bool has_feedback,
                              const char *const *links, size_t n_links)
{
    struct each_seen *e = ctx;
    assert_non_null(id);
    e->n++;
    e->fb += has_feedback;
    for (size_t i = 0; i < n_links; i++)
        assert_string_equal(links[i], "GDPR_Consent_01");
    e->links += (int)n_links;
    return MD_OK;
}

static void test_for_each(void **state)
{
    struct md_stm *s = *state;
    struct md_error err;
    md_error_clear(&err);
    enum { N = 1234 };
    for (int i = 0; i < N; i++) {
        char id[64];
        snprintf(id, sizeof(id), "each_r%d_x", i);
        create_ok(s, id, MD_VERDICT_COMPLIANT, T0);
        if (i % 10 == 0)
            assert_int_equal(s->ops->link_add(s, id, "GDPR_Consent_01", T0, &err), MD_OK);
        if (i % 4 == 0) {
            struct md_stm_feedback fb = {"d", "r", "s", false, MD_VERDICT_NONE};
            struct md_stm_view v;
            assert_int_equal(s->ops->feedback(s, id, &fb, T0, &v, &err), MD_OK);
            md_stm_view_release(&v);
        }
    }
    struct each_seen e = {0, 0, 0};
    assert_int_equal(s->ops->for_each(s, T0 + 1, each_cb, &e, &err), MD_OK);
    assert_int_equal(e.n, N);
    assert_int_equal(e.fb, (N + 3) / 4);
    assert_int_equal(e.links, (N + 9) / 10);
}

/* ---- tests: expiry -------------------------------------------------------------- */

static void test_expiry_logical(void **state)
{
    /* Expired by the caller's clock, still present in Redis: invisible at
     * once everywhere, and a create over it cleans its old index state. */
    struct md_stm *s = *state;
    struct md_error err;
    md_error_clear(&err);
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0);
    assert_int_equal(s->ops->link_add(s, "ecommerce_r1_consent", "GDPR_Consent_01", T0, &err),
                     MD_OK);
    int64_t exp = T0 + 3600000;
    struct md_stm_view v;
    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", exp - 1, &v, &err), MD_OK);
    md_stm_view_release(&v);
    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", exp, &v, &err), MD_E_NOTFOUND);
    struct md_stm_filter f;
    md_stm_filter_init(&f);
    struct md_stm_page p;
    assert_int_equal(s->ops->list(s, &f, 10, 0, exp, &p, &err), MD_OK);
    assert_int_equal(p.count, 0);
    md_stm_page_release(&p);
    struct md_stm_stats st;
    stats(s, exp, &st);
    assert_int_equal(st.total, 0);
    assert_int_equal(st.by_status[MD_VERDICT_COMPLIANT], 0);
    assert_int_equal(s->ops->link_add(s, "ecommerce_r1_consent", "X_Y_01", exp, &err),
                     MD_E_NOTFOUND);

    /* Re-create after expiry: a fresh entry without the old links. */
    assert_int_equal(create(s, "ecommerce_r1_consent", MD_VERDICT_PENDING, exp + 1, &v), MD_OK);
    md_stm_view_release(&v);
    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", exp + 2, &v, &err), MD_OK);
    assert_int_equal(v.n_links, 0);
    md_stm_view_release(&v);
    stats(s, exp + 2, &st);
    assert_int_equal(st.total, 1);
    assert_int_equal(st.by_status[MD_VERDICT_PENDING], 1);
    assert_int_equal(st.by_status[MD_VERDICT_COMPLIANT], 0);
    assert_int_equal(raw_int("ZCARD %s", "memoryd:stm:by_seq"), 1);
    assert_int_equal(raw_int("ZCARD %s", "memoryd:stm:by_seq:status:compliant"), 0);

    /* sweep() purges expired entries from every structure. */
    for (int i = 0; i < 30; i++) {
        char id[64];
        snprintf(id, sizeof(id), "old_r%d_x", i);
        create_ok(s, id, MD_VERDICT_NON_COMPLIANT, T0);
    }
    s->ops->sweep(s, exp + 5);
    assert_int_equal(raw_int("HLEN %s", "memoryd:stm:meta"), 1);
    assert_int_equal(raw_int("ZCARD %s", "memoryd:stm:by_exp"), 1);
    assert_int_equal(raw_int("EXISTS %s", "memoryd:stm:by_seq:domain:old"), 0);
    assert_int_equal(raw_int("EXISTS %s", "stm:old_r3_x"), 0);
}

/* alive_many gives get_many's verdict and expiry, without the entries. */
static void test_get_many_and_alive_many_agree(void **state)
{
    struct md_stm *s = *state;
    struct md_error err;
    md_error_clear(&err);
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0);          /* 1 h */
    create_ok(s, "ecommerce_r2_retention", MD_VERDICT_PENDING, T0 + 600000); /* 1 h later */
    assert_int_equal(s->ops->del(s, "ecommerce_r2_retention", T0 + 600001, &err), MD_OK);
    create_ok(s, "ecommerce_r3_erasure", MD_VERDICT_PENDING, T0 + 1200000);
    const char *ids[] = {"ecommerce_r1_consent", "ecommerce_r2_retention", "nobody_r9_here",
                         "ecommerce_r3_erasure", "ecommerce_r1_consent"};
    const size_t n = MD_ARRAY_LEN(ids);
    /* before r1 expires, after it, and after both */
    int64_t when[] = {T0 + 1000, T0 + 3600000, T0 + 1200000 + 3600000};
    int64_t want[][5] = {{T0 + 3600000, 0, 0, T0 + 4800000, T0 + 3600000},
                         {0, 0, 0, T0 + 4800000, 0},
                         {0, 0, 0, 0, 0}};
    for (size_t w = 0; w < MD_ARRAY_LEN(when); w++) {
        struct md_stm_view v[5];
        int64_t exp[5];
        memset(exp, 0x5a, sizeof(exp)); /* every slot is written */
        assert_int_equal(s->ops->get_many(s, ids, n, when[w], v, &err), MD_OK);
        assert_int_equal(s->ops->alive_many(s, ids, n, when[w], exp, &err), MD_OK);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(exp[i], want[w][i]);
            assert_int_equal(exp[i] != 0, v[i].json != NULL);
            if (v[i].json)
                assert_int_equal(exp[i], v[i].expires_ms);
            md_stm_view_release(&v[i]);
        }
    }
    assert_int_equal(s->ops->alive_many(s, ids, 0, T0, NULL, &err), MD_OK);
}

static void test_expiry_real(void **state)
{
    /* A 1-second TTL against the real clock: gone from get, list and stats
     * right after expiry (Redis itself drops the key). */
    struct md_stm *s = *state;
    struct md_error err;
    md_error_clear(&err);
    struct md_stm_new in = new_req("ecommerce_r1_short", false, MD_VERDICT_COMPLIANT);
    in.ttl_seconds = 1;
    struct md_stm_view v;
    int64_t now = md_now_ms();
    assert_int_equal(s->ops->create(s, &in, now, &v, &err), MD_OK);
    int64_t exp = v.expires_ms;
    md_stm_view_release(&v);
    create_ok(s, "ecommerce_r1_long", MD_VERDICT_COMPLIANT, now);
    assert_int_equal(s->ops->get(s, "ecommerce_r1_short", md_now_ms(), &v, &err), MD_OK);
    md_stm_view_release(&v);
    while (md_now_ms() <= exp)
        md_sleep_ms(10);
    now = md_now_ms();
    assert_int_equal(s->ops->get(s, "ecommerce_r1_short", now, &v, &err), MD_E_NOTFOUND);
    struct md_stm_filter f;
    md_stm_filter_init(&f);
    struct md_stm_page p;
    assert_int_equal(s->ops->list(s, &f, 10, 0, now, &p, &err), MD_OK);
    assert_int_equal(p.count, 1);
    assert_string_equal(p.items[0].scenario_id, "ecommerce_r1_long");
    md_stm_page_release(&p);
    struct md_stm_stats st;
    stats(s, now, &st);
    assert_int_equal(st.total, 1);
    assert_int_equal(st.by_status[MD_VERDICT_COMPLIANT], 1);
    /* Redis itself has dropped the key shortly after. */
    md_sleep_ms(5);
    assert_int_equal(raw_int("EXISTS %s", "stm:ecommerce_r1_short"), 0);
}

/* ---- tests: concurrency --------------------------------------------------------- */

struct create_job {
    struct md_stm *s;
    int count;
    char ids[50][MD_SCENARIO_ID_MAX + 1];
    int ok;
};

static void *create_thread(void *arg)
{
    struct create_job *j = arg;
    for (int i = 0; i < j->count; i++) {
        struct md_stm_new in = new_req("ecommerce_r1_consent", true, MD_VERDICT_PENDING);
        struct md_stm_view v;
        struct md_error err;
        md_error_clear(&err);
        if (j->s->ops->create(j->s, &in, md_now_ms(), &v, &err) == MD_OK) {
            snprintf(j->ids[j->ok++], MD_SCENARIO_ID_MAX + 1, "%s", v.scenario_id);
            md_stm_view_release(&v);
        }
    }
    return NULL;
}

static void test_concurrent_creates(void **state)
{
    struct md_stm *s = *state;
    enum { THREADS = 8, TOTAL = 50 };
    static struct create_job jobs[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].s = s;
        jobs[i].count = TOTAL / THREADS + (i < TOTAL % THREADS);
        assert_int_equal(pthread_create(&t[i], NULL, create_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* 50 distinct ids: exactly the base and _2 … _50. */
    bool seen[TOTAL + 1] = {false};
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        for (int k = 0; k < jobs[i].ok; k++) {
            const char *id = jobs[i].ids[k];
            int n = 1;
            if (strcmp(id, "ecommerce_r1_consent") != 0)
                assert_int_equal(sscanf(id, "ecommerce_r1_consent_%d", &n), 1);
            assert_true(n >= 1 && n <= TOTAL);
            assert_false(seen[n]);
            seen[n] = true;
            total++;
        }
    }
    assert_int_equal(total, TOTAL);
    assert_false(seen[0]);
    struct md_stm_stats st;
    stats(s, md_now_ms(), &st);
    assert_int_equal(st.total, TOTAL);
    struct md_pool_stats ps;
    s->ops->pool_stats(s, &ps);
    assert_int_equal(ps.max, 8);
    assert_true(ps.size >= 1 && ps.size <= 8);
    assert_int_equal(ps.in_use, 0);
}

struct fb_job {
    struct md_stm *s;
    int i;
    enum md_status st;
};

static void *feedback_thread(void *arg)
{
    struct fb_job *j = arg;
    char decision[32];
    snprintf(decision, sizeof(decision), "decision %d", j->i);
    struct md_stm_feedback fb = {decision, "rationale", "suggestion", true,
                                 (enum md_verdict)(j->i % 4)};
    struct md_stm_view v;
    struct md_error err;
    md_error_clear(&err);
    j->st = j->s->ops->feedback(j->s, "ecommerce_r1_consent", &fb, md_now_ms(), &v, &err);
    if (j->st == MD_OK)
        md_stm_view_release(&v);
    return NULL;
}

static void test_concurrent_feedback(void **state)
{
    struct md_stm *s = *state;
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_NON_COMPLIANT, md_now_ms());
    enum { N = 20 };
    struct fb_job jobs[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct fb_job){s, i, MD_E_INTERNAL};
        assert_int_equal(pthread_create(&t[i], NULL, feedback_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].st, MD_OK);
    }
    /* One consistent winner: the JSON's decision and final status belong to
     * the same update, and the index agrees with the JSON. */
    struct md_stm_view v;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", md_now_ms(), &v, &err), MD_OK);
    int winner = -1;
    const char *d = strstr(v.json, "\"decision\":\"decision ");
    assert_non_null(d);
    assert_int_equal(sscanf(d, "\"decision\":\"decision %d\"", &winner), 1);
    assert_true(winner >= 0 && winner < N);
    enum md_verdict fin = (enum md_verdict)(winner % 4);
    assert_int_equal(v.final_status, fin);
    char want[64];
    snprintf(want, sizeof(want), "\"final_status\":\"%s\"", md_verdict_name(fin));
    assert_non_null(strstr(v.json, want));
    assert_true(v.has_feedback);
    md_stm_view_release(&v);
    struct md_stm_stats st;
    stats(s, md_now_ms(), &st);
    assert_int_equal(st.total, 1);
    assert_int_equal(st.with_feedback, 1);
    for (int i = 0; i < MD_VERDICT_COUNT; i++)
        assert_int_equal(st.by_final[i], i == (int)fin ? 1 : 0);
    assert_int_equal(raw_int("ZCARD %s", "memoryd:stm:by_seq:feedback:0"), 0);
    assert_int_equal(raw_int("ZCARD %s", "memoryd:stm:by_seq:feedback:1"), 1);
}

/* ---- tests: failures ------------------------------------------------------------ */

static void test_noscript_fallback(void **state)
{
    struct md_stm *s = *state;
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0);
    freeReplyObject(raw("SCRIPT FLUSH"));
    struct md_stm_view v;
    struct md_error err;
    md_error_clear(&err);
    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", T0, &v, &err), MD_OK);
    md_stm_view_release(&v);
    create_ok(s, "ecommerce_r2_consent", MD_VERDICT_COMPLIANT, T0);
    assert_int_equal(s->ops->ping(s, &err), MD_OK);
}

static void test_redis_oom(void **state)
{
    /* Over maxmemory (noeviction) writes are refused up front, never half
     * applied; reads, deletes and purges still work. */
    struct md_stm *s = *state;
    struct md_error err;
    md_error_clear(&err);
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0);
    create_ok(s, "ecommerce_r2_consent", MD_VERDICT_COMPLIANT, T0);
    freeReplyObject(raw("CONFIG SET maxmemory-policy noeviction"));
    freeReplyObject(raw("CONFIG SET maxmemory 1"));
    struct md_stm_view v;
    assert_int_equal(create(s, "ecommerce_r3_consent", MD_VERDICT_COMPLIANT, T0, &v),
                     MD_E_UNAVAIL);
    struct md_stm_feedback fb = {"d", "r", "s", true, MD_VERDICT_PENDING};
    assert_int_equal(s->ops->feedback(s, "ecommerce_r1_consent", &fb, T0, &v, &err),
                     MD_E_UNAVAIL);
    assert_string_equal(err.msg, "stm store unavailable");
    assert_non_null(strstr(err.detail, "OOM"));
    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", T0, &v, &err), MD_OK);
    assert_false(v.has_feedback);
    md_stm_view_release(&v);
    struct md_stm_filter f;
    md_stm_filter_init(&f);
    struct md_stm_page p;
    assert_int_equal(s->ops->list(s, &f, 10, 0, T0, &p, &err), MD_OK);
    assert_int_equal(p.count, 2);
    md_stm_page_release(&p);
    struct md_stm_stats st;
    stats(s, T0, &st);
    assert_int_equal(st.total, 2);
    assert_int_equal(st.with_feedback, 0);
    assert_int_equal(s->ops->del(s, "ecommerce_r2_consent", T0, &err), MD_OK);
    freeReplyObject(raw("CONFIG SET maxmemory 0"));
    stats(s, T0, &st);
    assert_int_equal(st.total, 1);
    assert_int_equal(raw_int("ZCARD %s", "memoryd:stm:by_seq"), 1);
}

/* md_redis_connect/get_reply (redis_io.h): what they do instead of hiredis'
 * own connect and write, on a real server — a 1 MiB value each way (several
 * send()s, then the big buffers are let go), a pipeline, a refused port. */
static void test_redis_io(void **state)
{
    MD_UNUSED(state);
    struct md_error err;
    md_error_clear(&err);
    redisContext *c = NULL;
    assert_int_equal(md_redis_connect("127.0.0.1", g_port, 1000, &c, &err), MD_OK);
    assert_non_null(c);
    size_t n = 1u << 20;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + (i * 7) % 26);
    const char *set[3] = {"SET", "memoryd:test:big", big};
    size_t set_len[3] = {3, 16, n};
    redisReply *r = md_redis_command_argv(c, 3, set, set_len);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    assert_true(sdslen(c->obuf) == 0 && sdsalloc(c->obuf) <= 64 * 1024);
    r = md_redis_command(c, "GET %s", "memoryd:test:big");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, n);
    assert_memory_equal(r->str, big, n);
    freeReplyObject(r);
    free(big);
    assert_true(sdsalloc(c->reader->buf) <= 64 * 1024);
    /* a pipeline: both commands go out with the first read, the replies in order */
    assert_int_equal(redisAppendCommand(c, "PING"), REDIS_OK);
    assert_int_equal(redisAppendCommand(c, "ECHO %s", "second"), REDIS_OK);
    void *v1 = NULL, *v2 = NULL;
    assert_int_equal(md_redis_get_reply(c, &v1), REDIS_OK);
    assert_int_equal(md_redis_get_reply(c, &v2), REDIS_OK);
    assert_string_equal(((redisReply *)v1)->str, "PONG");
    assert_string_equal(((redisReply *)v2)->str, "second");
    freeReplyObject(v1);
    freeReplyObject(v2);
    redisFree(c);
    /* nobody listening */
    c = NULL;
    assert_int_equal(md_redis_connect("127.0.0.1", free_port(), 1000, &c, &err), MD_E_UNAVAIL);
    assert_null(c);
    assert_non_null(strstr(err.detail, "cannot connect to redis '127.0.0.1:"));
    /* a peer that went away: the command fails and says so */
    assert_int_equal(md_redis_connect("127.0.0.1", g_port, 1000, &c, &err), MD_OK);
    freeReplyObject(raw("CLIENT KILL TYPE normal SKIPME yes"));
    assert_null(md_redis_command(c, "PING"));
    assert_int_not_equal(c->err, 0);
    assert_true(c->errstr[0] != '\0');
    redisFree(c);
}

static void test_pool_acquisition(void **state)
{
    MD_UNUSED(state);
    struct md_redis_pool_options opt = {
        .host = "127.0.0.1",
        .port = g_port,
        .max_connections = 1,
        .connect_timeout_ms = 500,
        .socket_timeout_ms = 500,
        .health_check_interval_ms = 1,
        .acquisition_timeout_ms = 200,
    };
    struct md_error err;
    md_error_clear(&err);
    struct md_redis_pool *p = md_redis_pool_new(&opt, &err);
    assert_non_null(p);
    redisContext *c1 = NULL, *c2 = NULL;
    assert_int_equal(md_redis_pool_checkout(p, &c1, &err), MD_OK);
    int64_t t = md_mono_ms();
    assert_int_equal(md_redis_pool_checkout(p, &c2, &err), MD_E_UNAVAIL);
    int64_t took = md_mono_ms() - t;
    assert_true(took >= 190 && took < 1000);
    struct md_pool_stats ps;
    md_redis_pool_stats(p, &ps);
    assert_int_equal(ps.size, 1);
    assert_int_equal(ps.in_use, 1);
    assert_int_equal(ps.max, 1);
    assert_int_equal(ps.waits, 1);
    assert_int_equal(ps.timeouts, 1);
    md_redis_pool_checkin(p, c1, false);
    /* Reused (PINGed: idle longer than 1 ms). */
    md_sleep_ms(5);
    assert_int_equal(md_redis_pool_checkout(p, &c2, &err), MD_OK);
    assert_ptr_equal(c1, c2);
    /* A broken checkin closes it; the next checkout dials again. */
    md_redis_pool_checkin(p, c2, true);
    md_redis_pool_stats(p, &ps);
    assert_int_equal(ps.size, 0);
    assert_int_equal(md_redis_pool_checkout(p, &c1, &err), MD_OK);
    md_redis_pool_checkin(p, c1, false);
    md_redis_pool_free(p);

    /* Nothing listens: fail fast, then back off without dialling. */
    int dead = free_port();
    opt.port = dead;
    opt.max_connections = 4;
    p = md_redis_pool_new(&opt, &err);
    assert_non_null(p);
    t = md_mono_ms();
    assert_int_equal(md_redis_pool_checkout(p, &c1, &err), MD_E_UNAVAIL);
    assert_int_equal(md_redis_pool_checkout(p, &c1, &err), MD_E_UNAVAIL);
    assert_non_null(strstr(err.detail, "backoff"));
    assert_true(md_mono_ms() - t < 200);
    md_redis_pool_free(p);
}

/*
 * More callers than connections: each checkin hands its connection to one
 * waiter, and every waiter is served well within the acquisition timeout
 * (a lost wake-up would leave a waiter asleep until its deadline, 3 s, before
 * it looks again: no checkout may take that long).
 */
struct pool_user {
    struct md_redis_pool *p;
    int ok, failed;
    int64_t longest_ms; /* the longest checkout */
};

static void *pool_user_thread(void *arg)
{
    struct pool_user *u = arg;
    for (int i = 0; i < 200; i++) {
        redisContext *c = NULL;
        struct md_error err;
        md_error_clear(&err);
        int64_t t0 = md_mono_ms();
        enum md_status st = md_redis_pool_checkout(u->p, &c, &err);
        u->longest_ms = MD_MAX(u->longest_ms, md_mono_ms() - t0);
        if (st != MD_OK) {
            u->failed++;
            continue;
        }
        redisReply *r = redisCommand(c, "INCR memoryd:test:pool_users");
        bool good = r && r->type == REDIS_REPLY_INTEGER;
        if (r)
            freeReplyObject(r);
        md_redis_pool_checkin(u->p, c, !good);
        if (good)
            u->ok++;
        else
            u->failed++;
    }
    return NULL;
}

static void test_pool_waiters_all_served(void **state)
{
    MD_UNUSED(state);
    struct md_redis_pool_options opt = {
        .host = "127.0.0.1",
        .port = g_port,
        .max_connections = 2,
        .connect_timeout_ms = 1000,
        .socket_timeout_ms = 2000,
        .acquisition_timeout_ms = 3000,
    };
    struct md_error err;
    md_error_clear(&err);
    struct md_redis_pool *p = md_redis_pool_new(&opt, &err);
    assert_non_null(p);
    enum { USERS = 8 };
    struct pool_user u[USERS];
    pthread_t t[USERS];
    for (int i = 0; i < USERS; i++) {
        u[i] = (struct pool_user){p, 0, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, pool_user_thread, &u[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < USERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(u[i].failed, 0);
        assert_true(u[i].longest_ms < 2500);
        ok += u[i].ok;
    }
    assert_int_equal(ok, USERS * 200);
    struct md_pool_stats ps;
    md_redis_pool_stats(p, &ps);
    assert_int_equal(ps.max, 2);
    assert_true(ps.size <= 2);
    assert_int_equal(ps.in_use, 0);
    assert_true(ps.waits > 0); /* the callers did queue for the two connections */
    assert_int_equal(ps.timeouts, 0);
    md_redis_pool_free(p);
}

static void test_auth_select(void **state)
{
    MD_UNUSED(state);
    int port = free_port();
    static const char *const extra[] = {"--requirepass", "s3cret", "--user",     "alice",
                                        "on",            ">alicepw", "~*",        "&*",
                                        "+@all",         NULL};
    pid_t pid = server_start(port, extra);
    assert_true(pid > 0);
    g_aux_pid = pid;
    static char pw[] = "s3cret", user[] = "alice", upw[] = "alicepw", bad[] = "wrong";
    struct md_config cfg;
    struct md_error err;
    struct md_stm_view v;

    /* Password only (default user), database 3. */
    config_init(&cfg, port);
    cfg.redis_password = pw;
    cfg.redis_db = 3;
    md_error_clear(&err);
    struct md_stm *s = md_stm_redis_new(&cfg, &err);
    assert_non_null(s);
    assert_int_equal(create(s, "auth_r1_x", MD_VERDICT_COMPLIANT, T0, &v), MD_OK);
    md_stm_view_release(&v);
    md_stm_destroy(s);
    redisContext *c = raw_connect(port);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "AUTH s3cret");
    freeReplyObject(r);
    r = redisCommand(c, "SELECT 3");
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS stm:auth_r1_x");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);

    /* ACL user. */
    cfg.redis_username = user;
    cfg.redis_password = upw;
    s = md_stm_redis_new(&cfg, &err);
    assert_non_null(s);
    assert_int_equal(s->ops->get(s, "auth_r1_x", T0, &v, &err), MD_OK);
    md_stm_view_release(&v);
    md_stm_destroy(s);

    /* Wrong password: unavailable, no secret or Redis text in msg. */
    cfg.redis_password = bad;
    s = md_stm_redis_new(&cfg, &err);
    assert_non_null(s);
    md_error_clear(&err);
    assert_int_equal(s->ops->get(s, "auth_r1_x", T0, &v, &err), MD_E_UNAVAIL);
    assert_string_equal(err.msg, "stm store unavailable");
    assert_non_null(strstr(err.detail, "WRONGPASS"));
    assert_null(strstr(err.detail, "wrong"));
    md_stm_destroy(s);
    server_kill(pid);
    g_aux_pid = -1;
}

static void test_redis_killed(void **state)
{
    struct md_stm *s = *state;
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0);
    struct md_stm_view v;
    struct md_error err;
    md_error_clear(&err);
    server_kill(g_pid);
    g_pid = -1;
    /* Idle connections are dead; a dial is refused: fast failures. */
    for (int i = 0; i < 20; i++) {
        int64_t t = md_mono_ms();
        enum md_status st = s->ops->get(s, "ecommerce_r1_consent", T0, &v, &err);
        assert_int_equal(st, MD_E_UNAVAIL);
        assert_true(md_mono_ms() - t < 400);
        assert_string_equal(err.msg, "stm store unavailable");
        st = s->ops->create(s, &(struct md_stm_new){.scenario_id = "x_r1_y",
                                                    .status = MD_VERDICT_PENDING,
                                                    .ttl_seconds = 60},
                            T0, &v, &err);
        assert_int_equal(st, MD_E_UNAVAIL);
        assert_true(md_mono_ms() - t < 800);
    }
    assert_int_equal(s->ops->ping(s, &err), MD_E_UNAVAIL);

    /* Restart on the same port: the store recovers within the backoff cap. */
    g_pid = server_start(g_port, NULL);
    assert_true(g_pid > 0);
    int64_t t = md_mono_ms();
    enum md_status st;
    do {
        md_sleep_ms(20);
        st = create(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0, &v);
    } while (st != MD_OK && md_mono_ms() - t < 3000);
    assert_int_equal(st, MD_OK);
    md_stm_view_release(&v);
    assert_true(md_mono_ms() - t < 1500);
    assert_int_equal(s->ops->get(s, "ecommerce_r1_consent", T0, &v, &err), MD_OK);
    md_stm_view_release(&v);
}

static void test_redis_restarted_idle(void **state)
{
    /* Redis restarts while connections sit idle: the next calls succeed
     * (dead idle connections are detected without a failed request). */
    struct md_stm *s = *state;
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0);
    server_kill(g_pid);
    g_pid = server_start(g_port, NULL);
    assert_true(g_pid > 0);
    struct md_stm_view v;
    assert_int_equal(create(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0, &v), MD_OK);
    md_stm_view_release(&v);
}

static void test_redis_stopped(void **state)
{
    struct md_stm *s = *state; /* socket timeout 0.5 s, retry on timeout on */
    create_ok(s, "ecommerce_r1_consent", MD_VERDICT_COMPLIANT, T0);
    struct md_config cfg;
    config_init(&cfg, g_port);
    cfg.redis_retry_on_timeout = false;
    struct md_error err;
    md_error_clear(&err);
    struct md_stm *s2 = md_stm_redis_new(&cfg, &err);
    assert_non_null(s2);
    struct md_stm_view v;
    assert_int_equal(s2->ops->get(s2, "ecommerce_r1_consent", T0, &v, &err), MD_OK);
    md_stm_view_release(&v);

    kill(g_pid, SIGSTOP);
    /* Without retry: a timeout within the socket timeout. */
    int64_t t = md_mono_ms();
    assert_int_equal(s2->ops->get(s2, "ecommerce_r1_consent", T0, &v, &err), MD_E_TIMEOUT);
    int64_t took = md_mono_ms() - t;
    assert_string_equal(err.msg, "stm store did not answer in time");
    assert_true(took >= 450 && took < 1000);
    /* A write is never retried: one socket timeout. */
    t = md_mono_ms();
    assert_int_equal(create(s, "ecommerce_r2_consent", MD_VERDICT_COMPLIANT, T0, &v),
                     MD_E_TIMEOUT);
    took = md_mono_ms() - t;
    assert_true(took >= 450 && took < 1000);
    /* The timeout tripped the pool's breaker: the next call does not wait for
     * another socket timeout, it fails at once (workers stay free). */
    t = md_mono_ms();
    assert_int_equal(create(s, "ecommerce_r3_consent", MD_VERDICT_COMPLIANT, T0, &v),
                     MD_E_UNAVAIL);
    assert_true(md_mono_ms() - t < 100);
    md_sleep_ms(60); /* past the first backoff step: one caller may probe again */
    /* A read with retry on timeout: at most two socket timeouts (+ a dial). */
    t = md_mono_ms();
    enum md_status st = s->ops->get(s, "ecommerce_r1_consent", T0, &v, &err);
    assert_true(st == MD_E_TIMEOUT || st == MD_E_UNAVAIL);
    took = md_mono_ms() - t;
    assert_true(took < 1800);
    kill(g_pid, SIGCONT);

    /* Recovery: the next calls work again. */
    t = md_mono_ms();
    do {
        st = s->ops->get(s, "ecommerce_r1_consent", T0, &v, &err);
        if (st != MD_OK)
            md_sleep_ms(20);
    } while (st != MD_OK && md_mono_ms() - t < 3000);
    assert_int_equal(st, MD_OK);
    md_stm_view_release(&v);
    assert_int_equal(s2->ops->get(s2, "ecommerce_r1_consent", T0, &v, &err), MD_OK);
    md_stm_view_release(&v);
    md_stm_destroy(s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_generated_ids, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_list_filters_paging, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_list_sparse_filter_bounded, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_patch_changed, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_feedback, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_ttl_delete_links, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_for_each, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_expiry_logical, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_get_many_and_alive_many_agree, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_expiry_real, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_creates, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_feedback, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_noscript_fallback, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_redis_oom, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_redis_io, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_pool_acquisition, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_pool_waiters_all_served, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_auth_select, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_redis_killed, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_redis_restarted_idle, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_redis_stopped, test_setup, test_teardown),
    };
    return cmocka_run_group_tests_name("stm_redis", tests, group_setup, group_teardown);
}
