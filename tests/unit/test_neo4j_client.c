/*
 * test_neo4j_client.c — the Neo4j HTTP client without Neo4j: error
 * classification, answer parsing (errors on HTTP 200 included), request
 * body and URL building, and the pool/retry/timeout machinery against a
 * scripted local HTTP responder (which only plays back canned answers; the
 * real server is exercised by test_ltm_neo4j).
 */
#include "memoryd/compat.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/neo4j_client.h"
#include "memoryd/stm.h"

/* ---- classification --------------------------------------------------------------- */

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(md_neo4j_classify("Neo.TransientError.Transaction.DeadlockDetected"),
                     MD_NEO4J_C_TRANSIENT);
    assert_int_equal(md_neo4j_classify("Neo.TransientError.General.DatabaseUnavailable"),
                     MD_NEO4J_C_TRANSIENT);
    assert_int_equal(md_neo4j_classify("Neo.TransientError.Transaction.LockAcquisitionTimeout"),
                     MD_NEO4J_C_TRANSIENT);
    assert_int_equal(md_neo4j_classify("Neo.TransientError.Transaction.Terminated"),
                     MD_NEO4J_C_UNAVAIL);
    assert_int_equal(md_neo4j_classify("Neo.TransientError.Transaction.LockClientStopped"),
                     MD_NEO4J_C_UNAVAIL);
    assert_int_equal(md_neo4j_classify("Neo.ClientError.Schema.ConstraintValidationFailed"),
                     MD_NEO4J_C_CONFLICT);
    assert_int_equal(md_neo4j_classify("Neo.ClientError.Security.Unauthorized"),
                     MD_NEO4J_C_AUTH);
    assert_int_equal(md_neo4j_classify("Neo.ClientError.Security.Forbidden"), MD_NEO4J_C_AUTH);
    assert_int_equal(
        md_neo4j_classify("Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration"),
        MD_NEO4J_C_TIMEOUT);
    assert_int_equal(md_neo4j_classify("Neo.ClientError.Transaction.TransactionTimedOut"),
                     MD_NEO4J_C_TIMEOUT);
    assert_int_equal(md_neo4j_classify("Neo.ClientError.Database.DatabaseNotFound"),
                     MD_NEO4J_C_UNAVAIL);
    assert_int_equal(md_neo4j_classify("Neo.ClientError.Statement.SyntaxError"),
                     MD_NEO4J_C_CLIENT);
    assert_int_equal(md_neo4j_classify("Neo.ClientError.Statement.ParameterMissing"),
                     MD_NEO4J_C_CLIENT);
    assert_int_equal(md_neo4j_classify("Neo.ClientError.Cluster.NotALeader"),
                     MD_NEO4J_C_TRANSIENT);
    assert_int_equal(md_neo4j_classify("Neo.DatabaseError.General.UnknownError"),
                     MD_NEO4J_C_UNAVAIL);
    assert_int_equal(md_neo4j_classify("Neo.DatabaseError.Schema.IndexDropFailed"),
                     MD_NEO4J_C_UNAVAIL);
    assert_int_equal(md_neo4j_classify(""), MD_NEO4J_C_CLIENT);
    assert_int_equal(md_neo4j_classify(NULL), MD_NEO4J_C_CLIENT);
    /* A prefix must match whole: no "Neo.TransientErrorX" tricks. */
    assert_int_equal(md_neo4j_classify("Neo.TransientErrors.X"), MD_NEO4J_C_UNAVAIL);
}

/* ---- URLs ------------------------------------------------------------------------------ */

static void test_url(void **state)
{
    (void)state;
    char out[128];
    assert_true(md_neo4j_url("http://db:7474", "neo4j", "/tx/commit", out, sizeof(out)));
    assert_string_equal(out, "http://db:7474/db/neo4j/tx/commit");
    assert_true(md_neo4j_url("https://db:7473//", "my-db.1", "/tx", out, sizeof(out)));
    assert_string_equal(out, "https://db:7473/db/my-db.1/tx");
    assert_true(md_neo4j_url("http://h:1", "a b/c?", "", out, sizeof(out)));
    assert_string_equal(out, "http://h:1/db/a%20b%2Fc%3F");
    /* exact fit and one byte short */
    const char *want = "http://h:1/db/x/tx";
    assert_true(md_neo4j_url("http://h:1", "x", "/tx", out, strlen(want) + 1));
    assert_string_equal(out, want);
    assert_false(md_neo4j_url("http://h:1", "x", "/tx", out, strlen(want)));
    assert_false(md_neo4j_url("http://h:1", "%%%%%%", "", out, 20));
}

/* ---- request bodies ------------------------------------------------------------------- */

static void test_body(void **state)
{
    (void)state;
    struct md_buf b;
    md_buf_init(&b, 1 << 20);
    json_t *p = json_pack("{s:s, s:f, s:I, s:[s,s], s:n, s:b}", "text",
                          "quote \" backslash \\ newline \n caf\xc3\xa9 \xf0\x9f\x98\x80", "conf",
                          0.9, "ms", (json_int_t)1764201600123LL, "ids", "a", "b", "none",
                          "flag", 1);
    assert_non_null(p);
    struct md_neo4j_stmt st[2] = {
        {"MATCH (r:Rule {rule_id: $id})\nRETURN \"x\" AS y", p},
        {"RETURN 1", NULL},
    };
    assert_int_equal(md_neo4j_body(st, 2, &b), MD_OK);

    json_error_t jerr;
    json_t *doc = json_loadb(b.data, b.len, 0, &jerr);
    assert_non_null(doc);
    json_t *stmts = json_object_get(doc, "statements");
    assert_int_equal(json_array_size(stmts), 2);
    json_t *s0 = json_array_get(stmts, 0);
    assert_string_equal(json_string_value(json_object_get(s0, "statement")), st[0].cypher);
    assert_true(json_equal(json_object_get(s0, "parameters"), p));
    json_t *rdc = json_object_get(s0, "resultDataContents");
    assert_int_equal(json_array_size(rdc), 1);
    assert_string_equal(json_string_value(json_array_get(rdc, 0)), "row");
    /* doubles survive exactly, integers stay integers */
    assert_true(json_real_value(json_object_get(json_object_get(s0, "parameters"), "conf")) ==
                0.9);
    assert_true(json_is_integer(json_object_get(json_object_get(s0, "parameters"), "ms")));
    json_t *s1 = json_array_get(stmts, 1);
    assert_null(json_object_get(s1, "parameters"));
    assert_string_equal(json_string_value(json_object_get(s1, "statement")), "RETURN 1");
    json_decref(doc);

    /* the cap is honoured */
    struct md_buf small;
    md_buf_init(&small, 40);
    assert_int_equal(md_neo4j_body(st, 2, &small), MD_E_LIMIT);
    md_buf_release(&small);

    /* zero statements: a valid empty list (explicit transaction begin/commit) */
    md_buf_reset(&b);
    assert_int_equal(md_neo4j_body(NULL, 0, &b), MD_OK);
    assert_string_equal(b.data, "{\"statements\":[]}");
    json_decref(p);
    md_buf_release(&b);
}

static void test_tx_id(void **state)
{
    (void)state;
    char id[16];
    assert_true(md_neo4j_tx_id("http://127.0.0.1:7474/db/neo4j/tx/42/commit", id, sizeof(id)));
    assert_string_equal(id, "42");
    assert_true(md_neo4j_tx_id("http://h/db/tx/tx/7/commit", id, sizeof(id)));
    assert_string_equal(id, "7");
    assert_true(md_neo4j_tx_id("/db/neo4j/tx/123", id, sizeof(id)));
    assert_string_equal(id, "123");
    assert_false(md_neo4j_tx_id("http://h/db/neo4j/tx/commit", id, sizeof(id)));
    assert_false(md_neo4j_tx_id("http://h/db/neo4j/tx/12x/commit", id, sizeof(id)));
    assert_false(md_neo4j_tx_id("http://h/", id, sizeof(id)));
    assert_false(md_neo4j_tx_id(NULL, id, sizeof(id)));
    assert_false(md_neo4j_tx_id("/tx/12345678901234567890/commit", id, sizeof(id)));
}

/* ---- answers ------------------------------------------------------------------------------ */

static enum md_status parse(long http, const char *body, struct md_neo4j_result *res,
                            bool *transient, struct md_error *err)
{
    md_error_clear(err);
    return md_neo4j_parse(http, body, body ? strlen(body) : 0, res, transient, err);
}

static void test_parse_rows(void **state)
{
    (void)state;
    struct md_neo4j_result res;
    struct md_error err;
    bool transient = true;
    const char *body =
        "{\"results\":[{\"columns\":[\"a\",\"b\"],\"data\":["
        "{\"row\":[1,\"x\"],\"meta\":[null,null]},{\"row\":[2.5,[\"p\",\"q\"]],\"meta\":[]}]},"
        "{\"columns\":[],\"data\":[]}],\"errors\":[],\"lastBookmarks\":[\"FB:x\"]}";
    assert_int_equal(parse(200, body, &res, &transient, &err), MD_OK);
    assert_false(transient);
    assert_string_equal(res.code, "");
    assert_int_equal(md_neo4j_rows(&res, 0), 2);
    assert_int_equal(md_neo4j_rows(&res, 1), 0);
    assert_int_equal(md_neo4j_rows(&res, 2), 0); /* no such statement */
    json_t *r0 = md_neo4j_row(&res, 0, 0);
    assert_non_null(r0);
    assert_int_equal(json_integer_value(json_array_get(r0, 0)), 1);
    assert_string_equal(json_string_value(json_array_get(r0, 1)), "x");
    json_t *r1 = md_neo4j_row(&res, 0, 1);
    assert_true(json_real_value(json_array_get(r1, 0)) == 2.5);
    assert_int_equal(json_array_size(json_array_get(r1, 1)), 2);
    assert_null(md_neo4j_row(&res, 0, 2));
    assert_null(md_neo4j_row(&res, 5, 0));
    md_neo4j_result_release(&res);
    assert_null(res.root);
    md_neo4j_result_release(&res); /* twice is fine */
    assert_null(md_neo4j_row(&res, 0, 0));
}

static void test_parse_errors_on_200(void **state)
{
    (void)state;
    struct md_neo4j_result res;
    struct md_error err;
    bool transient;

    /* Cypher failures come back as HTTP 200 with an errors array. */
    const char *conflict =
        "{\"results\":[],\"errors\":[{\"code\":\"Neo.ClientError.Schema."
        "ConstraintValidationFailed\",\"message\":\"Node(1) already exists with label `Rule` "
        "and property `rule_id` = 'GDPR_X_01'\"}]}";
    assert_int_equal(parse(200, conflict, &res, &transient, &err), MD_E_CONFLICT);
    assert_false(transient);
    assert_null(res.root);
    assert_string_equal(res.code, "Neo.ClientError.Schema.ConstraintValidationFailed");
    assert_null(strstr(err.msg, "already exists with label")); /* no Neo4j text for clients */
    assert_null(strstr(err.msg, "Neo."));
    assert_non_null(strstr(err.detail, "ConstraintValidationFailed"));
    assert_non_null(strstr(err.detail, "already exists"));

    const char *deadlock =
        "{\"results\":[{\"columns\":[\"x\"],\"data\":[]}],\"errors\":[{\"code\":"
        "\"Neo.TransientError.Transaction.DeadlockDetected\",\"message\":\"ForsetiClient[1] "
        "can't acquire ExclusiveLock\"}]}";
    assert_int_equal(parse(200, deadlock, &res, &transient, &err), MD_E_UNAVAIL);
    assert_true(transient);
    assert_null(strstr(err.msg, "Forseti"));

    const char *syntax = "{\"results\":[],\"errors\":[{\"code\":\"Neo.ClientError.Statement."
                         "SyntaxError\",\"message\":\"Invalid input 'X'\"}]}";
    assert_int_equal(parse(200, syntax, &res, &transient, &err), MD_E_INTERNAL);
    assert_false(transient);
    assert_null(strstr(err.msg, "Invalid input"));

    const char *dberr = "{\"results\":[],\"errors\":[{\"code\":\"Neo.DatabaseError.General."
                        "UnknownError\",\"message\":\"boom\"}]}";
    assert_int_equal(parse(200, dberr, &res, &transient, &err), MD_E_UNAVAIL);
    assert_false(transient);

    const char *timeout = "{\"results\":[],\"errors\":[{\"code\":\"Neo.ClientError.Transaction."
                          "TransactionTimedOutClientConfiguration\",\"message\":\"t\"}]}";
    assert_int_equal(parse(200, timeout, &res, &transient, &err), MD_E_TIMEOUT);

    /* An error object without a code is still an error (never MD_OK). */
    assert_int_equal(parse(200, "{\"results\":[],\"errors\":[{}]}", &res, &transient, &err),
                     MD_E_INTERNAL);
    /* Results plus errors: the errors win. */
    const char *both = "{\"results\":[{\"columns\":[\"a\"],\"data\":[{\"row\":[1]}]}],"
                       "\"errors\":[{\"code\":\"Neo.ClientError.Statement.ArithmeticError\","
                       "\"message\":\"/ by zero\"}]}";
    assert_int_equal(parse(200, both, &res, &transient, &err), MD_E_INTERNAL);
    assert_null(res.root);
}

static void test_parse_http_status(void **state)
{
    (void)state;
    struct md_neo4j_result res;
    struct md_error err;
    bool transient;

    const char *unauth = "{\"errors\":[{\"code\":\"Neo.ClientError.Security.Unauthorized\","
                         "\"message\":\"Invalid credential.\"}]}";
    assert_int_equal(parse(401, unauth, &res, &transient, &err), MD_E_UNAVAIL);
    assert_string_equal(err.msg, "ltm store rejected memoryd's credentials");
    assert_false(transient);
    assert_int_equal(res.http_status, 401);
    assert_int_equal(parse(403, "", &res, &transient, &err), MD_E_UNAVAIL);
    assert_string_equal(err.msg, "ltm store rejected memoryd's credentials");
    /* Neo.ClientError.Security.* on 200 means the same */
    const char *forbidden = "{\"results\":[],\"errors\":[{\"code\":\"Neo.ClientError.Security."
                            "Forbidden\",\"message\":\"no\"}]}";
    assert_int_equal(parse(200, forbidden, &res, &transient, &err), MD_E_UNAVAIL);
    assert_string_equal(err.msg, "ltm store rejected memoryd's credentials");

    assert_int_equal(parse(503, "Service Unavailable", &res, &transient, &err), MD_E_UNAVAIL);
    assert_true(transient);
    assert_int_equal(parse(503, NULL, &res, &transient, &err), MD_E_UNAVAIL);
    assert_true(transient);
    assert_int_equal(parse(500, "oops", &res, &transient, &err), MD_E_UNAVAIL);
    assert_false(transient);
    assert_int_equal(parse(502, NULL, &res, &transient, &err), MD_E_UNAVAIL);

    const char *nodb = "{\"results\":[],\"errors\":[{\"code\":\"Neo.ClientError.Database."
                       "DatabaseNotFound\",\"message\":\"The database requested does not "
                       "exists.\"}]}";
    assert_int_equal(parse(404, nodb, &res, &transient, &err), MD_E_UNAVAIL);
    assert_string_equal(res.code, "Neo.ClientError.Database.DatabaseNotFound");
    assert_int_equal(parse(404, "<html>not found</html>", &res, &transient, &err), MD_E_PROTO);
    assert_int_equal(parse(302, "", &res, &transient, &err), MD_E_PROTO);

    /* 200 but not the expected document */
    assert_int_equal(parse(200, "not json", &res, &transient, &err), MD_E_PROTO);
    assert_int_equal(parse(200, "", &res, &transient, &err), MD_E_PROTO);
    assert_int_equal(parse(200, "[1,2]", &res, &transient, &err), MD_E_PROTO);
    assert_int_equal(parse(200, "{\"errors\":[]}", &res, &transient, &err), MD_E_PROTO);
    assert_int_equal(parse(200, "{\"results\":{},\"errors\":[]}", &res, &transient, &err),
                     MD_E_PROTO);
    assert_int_equal(parse(200, "{\"results\":[],\"errors\":[]", &res, &transient, &err),
                     MD_E_PROTO);
    assert_null(res.root);
    /* 201 (begin of an explicit transaction) is fine */
    assert_int_equal(parse(201, "{\"commit\":\"http://h/db/neo4j/tx/3/commit\",\"results\":[],"
                                "\"errors\":[]}",
                           &res, &transient, &err),
                     MD_OK);
    md_neo4j_result_release(&res);
}

/* ---- a scripted local HTTP responder (for pool, timeout and retry mechanics) ------------- */

struct responder {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    const char *const *script; /* answers in turn; the last one repeats */
    size_t n_script;
    size_t requests;           /* requests seen */
    size_t conns;              /* connections accepted */
    bool silent;               /* accept, read, never answer */
    bool stop;
};

static bool read_request(int c, struct responder *r)
{
    char buf[65536];
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(c, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        size_t clen = 0;
        const char *cl = strcasestr(buf, "Content-Length:");
        if (cl)
            clen = (size_t)strtoul(cl + 15, NULL, 10);
        size_t have = len - (size_t)(end + 4 - buf);
        while (have < clen) {
            n = recv(c, buf, sizeof(buf), 0);
            if (n <= 0)
                return false;
            have += (size_t)n;
        }
        pthread_mutex_lock(&r->mu);
        r->requests++;
        pthread_mutex_unlock(&r->mu);
        return true;
    }
}

static void *responder_main(void *arg)
{
    struct responder *r = arg;
    for (;;) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        pthread_mutex_lock(&r->mu);
        bool stop = r->stop;
        r->conns++;
        pthread_mutex_unlock(&r->mu);
        if (stop) {
            close(c);
            return NULL;
        }
        while (read_request(c, r)) {
            if (r->silent) {
                char sink[256];
                while (recv(c, sink, sizeof(sink), 0) > 0) {
                }
                break;
            }
            pthread_mutex_lock(&r->mu);
            size_t k = MD_MIN(r->requests - 1, r->n_script - 1);
            pthread_mutex_unlock(&r->mu);
            const char *ans = r->script[k];
            if (send(c, ans, strlen(ans), MSG_NOSIGNAL) < 0)
                break;
        }
        close(c);
    }
}

static void responder_start(struct responder *r, const char *const *script, size_t n,
                            bool silent)
{
    memset(r, 0, sizeof(*r));
    r->script = script;
    r->n_script = n;
    r->silent = silent;
    pthread_mutex_init(&r->mu, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r->fd, 16), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &al), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, responder_main, r), 0);
}

static size_t responder_requests(struct responder *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->requests;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void responder_stop(struct responder *r)
{
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_mutex_unlock(&r->mu);
    shutdown(r->fd, SHUT_RDWR);
    close(r->fd);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
}

static struct md_neo4j *client_for(int port, int max, int64_t query_ms, int64_t retry_ms,
                                   int64_t acq_ms, size_t max_response)
{
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    struct md_neo4j_options opt = {
        .base_url = base,
        .database = "neo4j",
        .username = "neo4j",
        .password = "s3cret-pw",
        .max_connections = max,
        .max_lifetime_ms = 3600000,
        .acquisition_timeout_ms = acq_ms,
        .connect_timeout_ms = 1000,
        .query_timeout_ms = query_ms,
        .max_retry_ms = retry_ms,
        .max_response = max_response,
    };
    struct md_error err;
    struct md_neo4j *c = md_neo4j_new(&opt, &err);
    assert_non_null(c);
    return c;
}

#define OK_ANSWER                                                                                \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 78\r\n\r\n"            \
    "{\"results\":[{\"columns\":[\"1\"],\"data\":[{\"row\":[1],\"meta\":[null]}]}],\"errors\":[]}"
#define BUSY_ANSWER "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
#define DEADLOCK_ANSWER                                                                          \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 98\r\n\r\n"           \
    "{\"results\":[],\"errors\":[{\"code\":\"Neo.TransientError.Transaction.DeadlockDetected\","  \
    "\"message\":\"x\"}]}"

static const struct md_neo4j_stmt ping_stmt = {"RETURN 1", NULL};

static void test_retry_transient(void **state)
{
    (void)state;
    static const char *const script[] = {BUSY_ANSWER, DEADLOCK_ANSWER, OK_ANSWER};
    struct responder r;
    responder_start(&r, script, 3, false);
    struct md_neo4j *c = client_for(r.port, 2, 2000, 5000, 1000, 0);
    struct md_neo4j_result res;
    struct md_error err;
    assert_int_equal(md_neo4j_run(c, &ping_stmt, 1, &res, &err), MD_OK);
    assert_int_equal(responder_requests(&r), 3);
    assert_int_equal(json_integer_value(json_array_get(md_neo4j_row(&res, 0, 0), 0)), 1);
    md_neo4j_result_release(&res);
    md_neo4j_free(c);
    responder_stop(&r);

    /* With no retry budget a transient error is returned at once. */
    responder_start(&r, script, 3, false);
    c = client_for(r.port, 2, 2000, 0, 1000, 0);
    assert_int_equal(md_neo4j_run(c, &ping_stmt, 1, &res, &err), MD_E_UNAVAIL);
    assert_int_equal(responder_requests(&r), 1);
    md_neo4j_free(c);
    responder_stop(&r);

    /* A budget that runs out: bounded by it, not endless. */
    static const char *const busy[] = {BUSY_ANSWER};
    responder_start(&r, busy, 1, false);
    c = client_for(r.port, 2, 2000, 300, 1000, 0);
    int64_t t0 = md_mono_ms();
    assert_int_equal(md_neo4j_run(c, &ping_stmt, 1, &res, &err), MD_E_UNAVAIL);
    int64_t took = md_mono_ms() - t0;
    assert_true(took < 3000); /* 300 ms budget + one backoff, loose for sanitizers */
    assert_true(responder_requests(&r) >= 2);
    md_neo4j_free(c);
    responder_stop(&r);
}

static void test_keepalive_reuse(void **state)
{
    (void)state;
    static const char *const script[] = {OK_ANSWER};
    struct responder r;
    responder_start(&r, script, 1, false);
    struct md_neo4j *c = client_for(r.port, 1, 2000, 0, 1000, 0);
    struct md_neo4j_result res;
    struct md_error err;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(md_neo4j_run(c, &ping_stmt, 1, &res, &err), MD_OK);
        md_neo4j_result_release(&res);
    }
    assert_int_equal(responder_requests(&r), 5);
    pthread_mutex_lock(&r.mu);
    assert_int_equal(r.conns, 1); /* one kept-alive connection for all five */
    pthread_mutex_unlock(&r.mu);
    struct md_pool_stats ps;
    md_neo4j_pool_stats(c, &ps);
    assert_int_equal(ps.size, 1);
    assert_int_equal(ps.in_use, 0);
    assert_int_equal(ps.max, 1);
    md_neo4j_free(c);
    responder_stop(&r);

    /* A connection older than the maximum lifetime is replaced by a fresh one. */
    responder_start(&r, script, 1, false);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", r.port);
    struct md_neo4j_options opt = {.base_url = base, .database = "neo4j", .username = "u",
                                   .password = "p", .max_connections = 1,
                                   .max_lifetime_ms = 1000, .acquisition_timeout_ms = 1000,
                                   .connect_timeout_ms = 1000, .query_timeout_ms = 2000};
    c = md_neo4j_new(&opt, &err);
    assert_non_null(c);
    assert_int_equal(md_neo4j_run(c, &ping_stmt, 1, &res, &err), MD_OK);
    md_neo4j_result_release(&res);
    assert_int_equal(md_neo4j_run(c, &ping_stmt, 1, &res, &err), MD_OK);
    md_neo4j_result_release(&res);
    md_sleep_ms(2100);
    assert_int_equal(md_neo4j_run(c, &ping_stmt, 1, &res, &err), MD_OK);
    md_neo4j_result_release(&res);
    pthread_mutex_lock(&r.mu);
    assert_int_equal(r.conns, 2);
    pthread_mutex_unlock(&r.mu);
    md_neo4j_free(c);
    responder_stop(&r);
}

static void test_response_cap(void **state)
{
    (void)state;
    static const char *const script[] = {OK_ANSWER};
    struct responder r;
    responder_start(&r, script, 1, false);
    struct md_neo4j *c = client_for(r.port, 1, 2000, 0, 1000, 32);
    struct md_neo4j_result res;
    struct md_error err;
    assert_int_equal(md_neo4j_run(c, &ping_stmt, 1, &res, &err), MD_E_PROTO);
    assert_string_equal(err.msg, "ltm store answer too large");
    md_neo4j_free(c);
    responder_stop(&r);
}

struct hang_arg {
    struct md_neo4j *c;
    enum md_status st;
};

static void *hang_run(void *p)
{
    struct hang_arg *a = p;
    struct md_neo4j_result res;
    struct md_error err;
    a->st = md_neo4j_run(a->c, &ping_stmt, 1, &res, &err);
    if (a->st == MD_OK)
        md_neo4j_result_release(&res);
    return NULL;
}

static void test_timeout_and_pool_exhaustion(void **state)
{
    (void)state;
    static const char *const none[] = {""};
    struct responder r;
    responder_start(&r, none, 1, true);
    struct md_neo4j *c = client_for(r.port, 1, 800, 5000, 100, 0);

    /* One request hangs (server never answers) and holds the only connection. */
    struct hang_arg a = {c, MD_OK};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hang_run, &a), 0);
    while (responder_requests(&r) < 1)
        md_sleep_ms(5);

    /* The second caller gives up after the acquisition timeout. */
    struct md_neo4j_result res;
    struct md_error err;
    int64_t t0 = md_mono_ms();
    assert_int_equal(md_neo4j_run(c, &ping_stmt, 1, &res, &err), MD_E_UNAVAIL);
    int64_t took = md_mono_ms() - t0;
    assert_true(took >= 90 && took < 2000); /* loose: valgrind/sanitizers */
    assert_string_equal(err.msg, "no ltm store connection free in time");

    /* The hanging one times out (not retried: its fate is unknown). */
    pthread_join(t, NULL);
    assert_int_equal(a.st, MD_E_TIMEOUT);
    assert_int_equal(responder_requests(&r), 1);
    struct md_pool_stats ps;
    md_neo4j_pool_stats(c, &ps);
    assert_int_equal(ps.in_use, 0);
    assert_true(ps.waits >= 1);
    assert_true(ps.timeouts >= 1);
    md_neo4j_free(c);
    responder_stop(&r);
}

static void test_refused_fast(void **state)
{
    (void)state;
    /* Bind a port, then close it: nothing listens there. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    struct md_neo4j *c = client_for(ntohs(a.sin_port), 2, 2000, 5000, 1000, 0);
    struct md_neo4j_result res;
    struct md_error err;
    int64_t t0 = md_mono_ms();
    assert_int_equal(md_neo4j_run(c, &ping_stmt, 1, &res, &err), MD_E_UNAVAIL);
    assert_true(md_mono_ms() - t0 < 2000); /* not retried (that would take 5 s) */
    assert_string_equal(err.msg, "ltm store unreachable");
    assert_null(strstr(err.detail, "s3cret-pw"));
    md_neo4j_free(c);
}

static void test_bad_options(void **state)
{
    (void)state;
    struct md_error err;
    struct md_neo4j_options opt = {.base_url = "bolt://x:7687", .database = "neo4j",
                                   .max_connections = 1};
    assert_null(md_neo4j_new(&opt, &err));
    assert_int_equal(err.code, MD_E_INVAL);
    opt.base_url = "http://x:7474";
    opt.max_connections = 0;
    assert_null(md_neo4j_new(&opt, &err));
    opt.max_connections = 1;
    opt.database = "";
    assert_null(md_neo4j_new(&opt, &err));
    md_neo4j_free(NULL);
    md_neo4j_result_release(NULL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_tx_id),
        cmocka_unit_test(test_parse_rows),
        cmocka_unit_test(test_parse_errors_on_200),
        cmocka_unit_test(test_parse_http_status),
        cmocka_unit_test(test_retry_transient),
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_response_cap),
        cmocka_unit_test(test_timeout_and_pool_exhaustion),
        cmocka_unit_test(test_refused_fast),
        cmocka_unit_test(test_bad_options),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
