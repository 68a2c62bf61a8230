/*
 * neo4j_client.c — libcurl + jansson client for Neo4j 5's HTTP API.
 *
 * DESIGN
 * A client owns a fixed array of max_connections slots. A slot is one curl
 * easy handle (with its own one-connection cache, so its keep-alive
 * connection stays with it), a request buffer and a capped response buffer,
 * all reused from request to request. Slots get their handle lazily, on
 * their first checkout; idle slots sit on a LIFO stack so that the most
 * recently used (warm) connection is handed out first. The pool mutex only
 * guards the stack and the counters: a transfer runs without any lock.
 *
 * Every handle is configured once (headers, credentials, TLS, timeouts,
 * write callback); a request only sets the URL, the body and the timeout.
 * Connections older than max_lifetime are not reused (CURLOPT_MAXLIFETIME_CONN):
 * curl closes them and dials a fresh one on the next request of that slot.
 * The query timeout is also sent as `max-execution-time`, so that Neo4j
 * stops the transaction when memoryd has given up on it.
 *
 * Retries: a request that failed with a transient error (Neo.TransientError.*
 * or HTTP 503) is sent again after an exponential backoff with jitter
 * (25 ms doubling to 1 s) while the retry budget (max_retry) lasts. Each
 * attempt is bounded by the query timeout; requests whose fate is unknown
 * (timeouts, lost connections) are never repeated.
 */
#include "memoryd/compat.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memoryd/clock.h"
#include "memoryd/json_load.h"
#include "memoryd/neo4j_client.h"
#include "memoryd/stm.h"
#include "memoryd/text.h"

#define URL_MAX 1024
#define REQUEST_MAX (64u * 1024u * 1024u) /* bytes of one request body */
#define KEEP_RESPONSE_BUF (1u << 20)      /* larger response buffers are freed after use */
#define BACKOFF_FIRST_MS 25
#define BACKOFF_MAX_MS 1000

struct slot {
    CURL *h;            /* NULL until the slot is first checked out */
    struct slot *next;  /* idle stack link */
    struct md_buf req;  /* request body, reused */
    struct md_buf resp; /* response body, capped at max_response */
    enum md_status resp_st; /* why the write callback refused data */
    char errbuf[CURL_ERROR_SIZE];
};

struct md_neo4j {
    char *username;
    char *password;
    char *ca_file; /* NULL: system store */
    char url_commit[URL_MAX]; /* {base}/db/{db}/tx/commit */
    char url_tx[URL_MAX];     /* {base}/db/{db}/tx */
    struct curl_slist *headers;
    int64_t lifetime_ms;
    int64_t acq_ms;
    int64_t connect_ms;
    int64_t query_ms;
    int64_t retry_ms;
    size_t max_response;

    /* Pool. Lock order: mu is a leaf lock; nothing else is taken under it. */
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* signalled when a slot goes back to idle */
    struct slot *slots;   /* max of them */
    int max;
    int created;          /* slots[0..created) have a handle */
    int in_use;           /* slots checked out */
    struct slot *idle;    /* stack of idle slots with a handle */
    uint64_t waits;       /* checkouts that had to wait */
    uint64_t timeouts;    /* checkouts that gave up */
};

struct md_neo4j_tx {
    struct md_neo4j *c;
    struct slot *s;    /* leased for the whole transaction */
    char url[URL_MAX]; /* {base}/db/{db}/tx/{id} */
    bool open;         /* the server may still hold the transaction */
    bool transient;    /* the last failure may succeed if the transaction is retried */
};

/* ---- pure helpers ------------------------------------------------------------ */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

enum md_neo4j_class md_neo4j_classify(const char *code)
{
    if (!code || !*code)
        return MD_NEO4J_C_CLIENT;
    if (has_prefix(code, "Neo.TransientError.")) {
        /* Killed on purpose (admin, shutdown): retrying would fight the operator. */
        if (strcmp(code, "Neo.TransientError.Transaction.Terminated") == 0 ||
            strcmp(code, "Neo.TransientError.Transaction.LockClientStopped") == 0)
            return MD_NEO4J_C_UNAVAIL;
        return MD_NEO4J_C_TRANSIENT;
    }
    if (has_prefix(code, "Neo.ClientError.")) {
        if (strcmp(code, "Neo.ClientError.Schema.ConstraintValidationFailed") == 0)
            return MD_NEO4J_C_CONFLICT;
        if (has_prefix(code, "Neo.ClientError.Security."))
            return MD_NEO4J_C_AUTH;
        if (has_prefix(code, "Neo.ClientError.Transaction.TransactionTimedOut") ||
            strcmp(code, "Neo.ClientError.Transaction.TransactionNotFound") == 0)
            return MD_NEO4J_C_TIMEOUT;
        if (strcmp(code, "Neo.ClientError.Database.DatabaseNotFound") == 0)
            return MD_NEO4J_C_UNAVAIL;
        /* A cluster switching leaders: the drivers retry these too. */
        if (strcmp(code, "Neo.ClientError.Cluster.NotALeader") == 0 ||
            strcmp(code, "Neo.ClientError.General.ForbiddenOnReadOnlyDatabase") == 0)
            return MD_NEO4J_C_TRANSIENT;
        return MD_NEO4J_C_CLIENT;
    }
    return MD_NEO4J_C_UNAVAIL; /* Neo.DatabaseError.* and anything unknown */
}

bool md_neo4j_url(const char *base, const char *database, const char *suffix, char *out,
                  size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    size_t o = 0;
    if (blen + 4 >= cap)
        return false;
    memcpy(out, base, blen);
    o = blen;
    memcpy(out + o, "/db/", 4);
    o += 4;
    for (const unsigned char *p = (const unsigned char *)database; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-';
        if (o + (plain ? 1 : 3) >= cap)
            return false;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    size_t slen = strlen(suffix);
    if (o + slen >= cap)
        return false;
    memcpy(out + o, suffix, slen + 1);
    return true;
}

struct dump_ctx {
    struct md_buf *b;
    enum md_status st;
};

static int dump_cb(const char *buffer, size_t size, void *data)
{
    struct dump_ctx *d = data;
    d->st = md_buf_append(d->b, buffer, size);
    return d->st == MD_OK ? 0 : -1;
}

enum md_status md_neo4j_body(const struct md_neo4j_stmt *stmts, size_t n, struct md_buf *out)
{
    enum md_status st = md_buf_puts(out, "{\"statements\":[");
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        st = md_buf_puts(out, i ? ",{\"statement\":" : "{\"statement\":");
        if (st == MD_OK)
            st = md_buf_json_str(out, stmts[i].cypher, strlen(stmts[i].cypher));
        if (st == MD_OK && stmts[i].params) {
            st = md_buf_puts(out, ",\"parameters\":");
            struct dump_ctx d = {out, MD_OK};
            /* jansson's dump fails only when it cannot allocate (its cycle check keeps a
             * hashtable) or on values memoryd never builds (cycles, invalid UTF-8) */
            if (st == MD_OK && json_dump_callback(stmts[i].params, dump_cb, &d, JSON_COMPACT) != 0)
                st = d.st != MD_OK ? d.st : MD_E_NOMEM;
        }
        if (st == MD_OK)
            st = md_buf_puts(out, ",\"resultDataContents\":[\"row\"]}");
    }
    if (st == MD_OK)
        st = md_buf_puts(out, "]}");
    return st;
}

bool md_neo4j_tx_id(const char *commit_url, char *out, size_t cap)
{
    if (!commit_url)
        return false;
    const char *p = NULL;
    for (const char *q = strstr(commit_url, "/tx/"); q; q = strstr(q + 1, "/tx/"))
        p = q + 4;
    if (!p)
        return false;
    size_t len = 0;
    while (p[len] >= '0' && p[len] <= '9')
        len++;
    if (len == 0 || len >= cap || (p[len] != '\0' && p[len] != '/'))
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

/* Fill err from a Neo4j error code; the message stays client-safe. */
static enum md_status code_error(const char *code, const char *message, long http,
                                 bool *transient, struct md_error *err)
{
    enum md_status st;
    switch (md_neo4j_classify(code)) {
    case MD_NEO4J_C_TRANSIENT:
        *transient = true;
        st = md_error_set(err, MD_E_UNAVAIL, "ltm store is busy");
        break;
    case MD_NEO4J_C_CONFLICT:
        st = md_error_set(err, MD_E_CONFLICT, "ltm store refused a duplicate");
        break;
    case MD_NEO4J_C_AUTH:
        st = md_error_set(err, MD_E_UNAVAIL, "ltm store rejected memoryd's credentials");
        break;
    case MD_NEO4J_C_TIMEOUT:
        st = md_error_set(err, MD_E_TIMEOUT, "ltm store did not answer in time");
        break;
    case MD_NEO4J_C_UNAVAIL:
        st = md_error_set(err, MD_E_UNAVAIL, "ltm store unavailable");
        break;
    case MD_NEO4J_C_CLIENT:
    default:
        st = md_error_set(err, MD_E_INTERNAL, "ltm store rejected a query");
        break;
    }
    md_error_detail(err, "neo4j HTTP %ld %s: %.160s", http, code ? code : "(no code)",
                    message ? message : "");
    return st;
}

enum md_status md_neo4j_parse(long http_status, const char *body, size_t len,
                              struct md_neo4j_result *res, bool *transient, struct md_error *err)
{
    *transient = false;
    res->root = NULL;
    res->http_status = http_status;
    res->code[0] = '\0';

    json_t *root = NULL;
    const char *why = NULL;
    size_t at = 0;
    if (body && len > 0) /* md_json_load: jansson's grammar, ~5x its speed (json_load.h) */
        root = md_json_load(body, len, 0, &why, &at);
    if (!root && why == md_json_load_oom) /* our memory, not Neo4j's answer, failed */
        return md_error_set(err, MD_E_NOMEM, "out of memory reading the ltm store's answer");

    const char *code = NULL;
    const char *message = NULL;
    json_t *errors = json_object_get(root, "errors");
    if (json_is_array(errors) && json_array_size(errors) > 0) {
        json_t *e0 = json_array_get(errors, 0);
        code = json_string_value(json_object_get(e0, "code"));
        message = json_string_value(json_object_get(e0, "message"));
        if (!code)
            code = "";
    }
    enum md_status st = MD_OK;
    if (http_status == 401 || http_status == 403) {
        st = md_error_set(err, MD_E_UNAVAIL, "ltm store rejected memoryd's credentials");
        md_error_detail(err, "neo4j HTTP %ld %s: %.160s", http_status, code ? code : "",
                        message ? message : "");
    } else if (code) {
        st = code_error(code, message, http_status, transient, err);
    } else if (http_status == 503) {
        *transient = true;
        st = md_error_set(err, MD_E_UNAVAIL, "ltm store is busy");
        md_error_detail(err, "neo4j HTTP 503");
    } else if (http_status >= 500) {
        st = md_error_set(err, MD_E_UNAVAIL, "ltm store unavailable");
        md_error_detail(err, "neo4j HTTP %ld", http_status);
    } else if (http_status < 200 || http_status >= 300) {
        st = md_error_set(err, MD_E_PROTO, "ltm store answered unexpectedly");
        md_error_detail(err, "neo4j HTTP %ld", http_status);
    } else if (!json_is_object(root) || !json_is_array(json_object_get(root, "results"))) {
        st = md_error_set(err, MD_E_PROTO, "ltm store answered unexpectedly");
        if (!root && body && len > 0)
            md_error_detail(err, "neo4j answer is not JSON: %s (at byte %zu)", why, at);
        else
            md_error_detail(err, "neo4j answer has no results array");
    }
    if (code)
        snprintf(res->code, sizeof(res->code), "%s", code);
    if (st != MD_OK) {
        json_decref(root);
        return st;
    }
    res->root = root;
    return MD_OK;
}

void md_neo4j_result_release(struct md_neo4j_result *res)
{
    if (!res)
        return;
    json_decref(res->root);
    memset(res, 0, sizeof(*res));
}

static json_t *stmt_data(const struct md_neo4j_result *res, size_t stmt)
{
    if (!res || !res->root)
        return NULL;
    json_t *r = json_array_get(json_object_get(res->root, "results"), stmt);
    json_t *data = json_object_get(r, "data");
    return json_is_array(data) ? data : NULL;
}

size_t md_neo4j_rows(const struct md_neo4j_result *res, size_t stmt)
{
    return json_array_size(stmt_data(res, stmt));
}

json_t *md_neo4j_row(const struct md_neo4j_result *res, size_t stmt, size_t i)
{
    json_t *row = json_object_get(json_array_get(stmt_data(res, stmt), i), "row");
    return json_is_array(row) ? row : NULL;
}

/* ---- the pool ------------------------------------------------------------------ */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct slot *s = userdata;
    size_t n = size * nmemb;
    enum md_status st = md_buf_append(&s->resp, ptr, n);
    if (st != MD_OK) {
        s->resp_st = st;
        return 0; /* CURLE_WRITE_ERROR */
    }
    return n;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Configure a new easy handle once; requests only set URL, body and timeout. */
static bool handle_init(struct md_neo4j *c, struct slot *s)
{
    CURL *h = curl_easy_init();
    if (!h)
        return false;
    long lifetime_s = (long)((c->lifetime_ms + 999) / 1000);
    bool ok = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_ms) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_USERNAME, c->username) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_PASSWORD, c->password) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_WRITEDATA, s) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 60L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 20L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 1L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_MAXLIFETIME_CONN, lifetime_s) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) ==
                  CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
              (!c->ca_file || curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file) == CURLE_OK);
    if (!ok) {
        curl_easy_cleanup(h);
        return false;
    }
    s->h = h;
    return true;
}

static void deadline_ts(int64_t ms, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static enum md_status checkout(struct md_neo4j *c, struct slot **out, struct md_error *err)
{
    struct timespec ts;
    bool waited = false;
    struct slot *s = NULL;
    enum md_status st = MD_OK;

    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->idle) {
            s = c->idle;
            c->idle = s->next;
            break;
        }
        if (c->created < c->max) {
            s = &c->slots[c->created];
            if (!handle_init(c, s)) {
                s = NULL;
                st = md_error_set(err, MD_E_NOMEM, "out of memory");
                md_error_detail(err, "neo4j: cannot create a curl handle");
                break;
            }
            c->created++;
            break;
        }
        if (!waited) {
            waited = true;
            c->waits++;
            deadline_ts(c->acq_ms, &ts);
        }
        int rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        if (rc == ETIMEDOUT && !c->idle && c->created >= c->max) {
            c->timeouts++;
            st = md_error_set(err, MD_E_UNAVAIL, "no ltm store connection free in time");
            md_error_detail(err, "neo4j pool: all %d connections busy for %lld ms", c->max,
                            (long long)c->acq_ms);
            break;
        }
    }
    if (s)
        c->in_use++;
    pthread_mutex_unlock(&c->mu);
    *out = s;
    return st;
}

static void checkin(struct md_neo4j *c, struct slot *s)
{
    /* A buffer that once held a huge answer is not kept for the next one. */
    if (s->resp.cap > KEEP_RESPONSE_BUF)
        md_buf_release(&s->resp);
    if (s->req.cap > KEEP_RESPONSE_BUF)
        md_buf_release(&s->req);
    pthread_mutex_lock(&c->mu);
    s->next = c->idle;
    c->idle = s;
    c->in_use--;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static enum md_status curl_error(CURLcode rc, const struct slot *s, struct md_error *err)
{
    enum md_status st;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        st = md_error_set(err, MD_E_TIMEOUT, "ltm store did not answer in time");
        break;
    case CURLE_WRITE_ERROR:
        if (s->resp_st == MD_E_NOMEM)
            st = md_error_set(err, MD_E_NOMEM, "out of memory");
        else
            st = md_error_set(err, MD_E_PROTO, "ltm store answer too large");
        break;
    case CURLE_OUT_OF_MEMORY:
        st = md_error_set(err, MD_E_NOMEM, "out of memory");
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        st = md_error_set(err, MD_E_UNAVAIL, "ltm store tls handshake failed");
        break;
    default:
        st = md_error_set(err, MD_E_UNAVAIL, "ltm store unreachable");
        break;
    }
    md_error_detail(err, "neo4j: curl error %d: %.180s", (int)rc,
                    s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
    return st;
}

/*
 * One HTTP exchange on a leased slot whose request body is in s->req
 * (method NULL: POST). Fills res on success.
 */
static enum md_status perform(struct slot *s, const char *url,
                              const char *method, int64_t timeout_ms,
                              struct md_neo4j_result *res, bool *transient, bool *reached,
                              struct md_error *err)
{
    *transient = false;
    *reached = false;
    res->root = NULL;
    res->http_status = 0;
    res->code[0] = '\0';
    md_buf_reset(&s->resp);
    s->resp_st = MD_OK;
    s->errbuf[0] = '\0';
    const char *body = s->req.data ? s->req.data : "";
    if (curl_easy_setopt(s->h, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->req.len) != CURLE_OK ||
        curl_easy_setopt(s->h, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
        curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, (long)MD_MAX(timeout_ms, 1)) != CURLE_OK)
        return md_error_set(err, MD_E_NOMEM, "out of memory");
    CURLcode rc = curl_easy_perform(s->h);
    if (rc != CURLE_OK)
        return curl_error(rc, s, err);
    long http = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &http);
    *reached = true;
    return md_neo4j_parse(http, s->resp.data, s->resp.len, res, transient, err);
}

/* Serialise the statements into the slot's request buffer. */
static enum md_status build_body(struct slot *s, const struct md_neo4j_stmt *stmts, size_t n,
                                 struct md_error *err)
{
    md_buf_reset(&s->req);
    enum md_status st = md_neo4j_body(stmts, n, &s->req);
    if (st == MD_E_LIMIT)
        return md_error_set(err, MD_E_LIMIT, "ltm request too large");
    if (st == MD_E_NOMEM)
        return md_error_set(err, MD_E_NOMEM, "out of memory");
    if (st != MD_OK)
        return md_error_set(err, MD_E_INTERNAL, "cannot encode an ltm request");
    return MD_OK;
}

/* Exponential backoff with jitter: [d/2, d] with d = 25 ms · 2^attempt, ≤ 1 s. */
static int64_t backoff_ms(unsigned attempt)
{
    int64_t d = BACKOFF_FIRST_MS;
    for (unsigned i = 0; i < attempt && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    return d / 2 + (int64_t)md_random_below((uint64_t)(d / 2) + 1);
}

/* True when another attempt fits in the retry budget that began at start. */
static bool retry_wait(const struct md_neo4j *c, int64_t start, unsigned attempt)
{
    int64_t delay = backoff_ms(attempt);
    if (md_mono_ms() - start + delay >= c->retry_ms)
        return false;
    md_sleep_ms(delay);
    return true;
}

enum md_status md_neo4j_run(struct md_neo4j *c, const struct md_neo4j_stmt *stmts, size_t n,
                            struct md_neo4j_result *res, struct md_error *err)
{
    memset(res, 0, sizeof(*res));
    int64_t start = md_mono_ms();
    for (unsigned attempt = 0;; attempt++) {
        struct slot *s;
        bool transient = false, reached = false;
        enum md_status st = checkout(c, &s, err);
        if (st != MD_OK)
            return st;
        st = build_body(s, stmts, n, err);
        if (st == MD_OK)
            st = perform(s, c->url_commit, NULL, c->query_ms, res, &transient, &reached, err);
        checkin(c, s);
        if (st == MD_OK || !transient || !retry_wait(c, start, attempt))
            return st;
    }
}

/* ---- explicit transactions ----------------------------------------------------- */

static enum md_status tx_begin(struct md_neo4j *c, const struct md_neo4j_stmt *stmts, size_t n,
                               struct md_neo4j_tx **out, struct md_neo4j_result *res,
                               bool *transient, struct md_error *err)
{
    memset(res, 0, sizeof(*res));
    *out = NULL;
    *transient = false;
    struct md_neo4j_tx *tx = calloc(1, sizeof(*tx));
    if (!tx)
        return md_error_set(err, MD_E_NOMEM, "out of memory");
    tx->c = c;
    bool reached = false;
    char id[32];
    enum md_status st = checkout(c, &tx->s, err);
    if (st != MD_OK) {
        free(tx);
        return st;
    }
    st = build_body(tx->s, stmts, n, err);
    if (st == MD_OK)
        st = perform(tx->s, c->url_tx, NULL, c->query_ms, res, transient, &reached, err);
    if (st == MD_OK) {
        const char *commit = json_string_value(json_object_get(res->root, "commit"));
        if (!md_neo4j_tx_id(commit, id, sizeof(id)) ||
            snprintf(tx->url, sizeof(tx->url), "%s/%s", c->url_tx, id) >= (int)sizeof(tx->url)) {
            st = md_error_set(err, MD_E_PROTO, "ltm store answered unexpectedly");
            md_error_detail(err, "neo4j: no transaction id in the answer to begin");
            md_neo4j_result_release(res);
        }
    }
    if (st != MD_OK) {
        /* A begin that failed is either rolled back by Neo4j or expires there. */
        checkin(c, tx->s);
        free(tx);
        return st;
    }
    tx->open = true;
    *out = tx;
    return MD_OK;
}

enum md_status md_neo4j_tx_begin(struct md_neo4j *c, const struct md_neo4j_stmt *stmts, size_t n,
                                 struct md_neo4j_tx **tx, struct md_neo4j_result *res,
                                 struct md_error *err)
{
    bool transient;
    return tx_begin(c, stmts, n, tx, res, &transient, err);
}

static enum md_status tx_post(struct md_neo4j_tx *tx, const char *url,
                              const struct md_neo4j_stmt *stmts, size_t n,
                              struct md_neo4j_result *res, struct md_error *err)
{
    memset(res, 0, sizeof(*res));
    tx->transient = false;
    if (!tx->open)
        return md_error_set(err, MD_E_INTERNAL, "ltm transaction is closed");
    bool reached = false;
    enum md_status st = build_body(tx->s, stmts, n, err);
    if (st == MD_OK)
        st = perform(tx->s, url, NULL, tx->c->query_ms, res, &tx->transient, &reached,
                     err);
    /* Neo4j rolls the transaction back on any error it reports. */
    if (st != MD_OK && reached)
        tx->open = false;
    return st;
}

enum md_status md_neo4j_tx_run(struct md_neo4j_tx *tx, const struct md_neo4j_stmt *stmts,
                               size_t n, struct md_neo4j_result *res, struct md_error *err)
{
    return tx_post(tx, tx->url, stmts, n, res, err);
}

enum md_status md_neo4j_tx_commit(struct md_neo4j_tx *tx, const struct md_neo4j_stmt *stmts,
                                  size_t n, struct md_neo4j_result *res, struct md_error *err)
{
    char url[URL_MAX + 8];
    snprintf(url, sizeof(url), "%s/commit", tx->url);
    enum md_status st = tx_post(tx, url, stmts, n, res, err);
    if (st != MD_OK)
        return st;
    tx->open = false;
    checkin(tx->c, tx->s);
    free(tx);
    return MD_OK;
}

void md_neo4j_tx_rollback(struct md_neo4j_tx *tx)
{
    if (!tx)
        return;
    if (tx->open) {
        struct md_neo4j_result res;
        struct md_error e;
        bool transient, reached;
        md_buf_reset(&tx->s->req);
        memset(&res, 0, sizeof(res));
        if (perform(tx->s, tx->url, "DELETE", MD_MIN(tx->c->query_ms, 5000), &res,
                    &transient, &reached, &e) == MD_OK)
            md_neo4j_result_release(&res);
    }
    checkin(tx->c, tx->s);
    free(tx);
}

bool md_neo4j_tx_transient(const struct md_neo4j_tx *tx)
{
    return tx && tx->transient;
}

enum md_status md_neo4j_transact(struct md_neo4j *c, md_neo4j_tx_fn fn, void *arg,
                                 struct md_error *err)
{
    int64_t start = md_mono_ms();
    for (unsigned attempt = 0;; attempt++) {
        struct md_neo4j_tx *tx;
        struct md_neo4j_result res;
        bool transient = false;
        enum md_status st = tx_begin(c, NULL, 0, &tx, &res, &transient, err);
        md_neo4j_result_release(&res);
        if (st == MD_OK) {
            st = fn(tx, arg, err);
            if (st == MD_OK) {
                st = md_neo4j_tx_commit(tx, NULL, 0, &res, err);
                md_neo4j_result_release(&res);
                if (st == MD_OK)
                    return MD_OK;
            }
            transient = md_neo4j_tx_transient(tx);
            md_neo4j_tx_rollback(tx);
        }
        if (!transient || !retry_wait(c, start, attempt))
            return st;
    }
}

/* ---- construction ------------------------------------------------------------- */

void md_neo4j_pool_stats(struct md_neo4j *c, struct md_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    out->size = c->created;
    out->in_use = c->in_use;
    out->max = c->max;
    out->waits = c->waits;
    out->timeouts = c->timeouts;
    pthread_mutex_unlock(&c->mu);
}

static bool add_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *n = curl_slist_append(*list, h);
    if (!n)
        return false;
    *list = n;
    return true;
}

struct md_neo4j *md_neo4j_new(const struct md_neo4j_options *opt, struct md_error *err)
{
    if (!opt->base_url || !*opt->base_url || !opt->database || !*opt->database ||
        opt->max_connections < 1) {
        md_error_set(err, MD_E_INVAL, "invalid neo4j client options");
        return NULL;
    }
    if (!has_prefix(opt->base_url, "http://") && !has_prefix(opt->base_url, "https://")) {
        md_error_set(err, MD_E_INVAL, "neo4j url must start with http:// or https://");
        return NULL;
    }
    struct md_neo4j *c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    c->max = opt->max_connections;
    c->lifetime_ms = MD_MAX(opt->max_lifetime_ms, 1000);
    c->acq_ms = MD_MAX(opt->acquisition_timeout_ms, 1);
    c->connect_ms = MD_MAX(opt->connect_timeout_ms, 1);
    c->query_ms = MD_MAX(opt->query_timeout_ms, 1);
    c->retry_ms = MD_MAX(opt->max_retry_ms, 0);
    c->max_response = opt->max_response ? opt->max_response : MD_NEO4J_MAX_RESPONSE;
    if (!md_neo4j_url(opt->base_url, opt->database, "/tx/commit", c->url_commit,
                      sizeof(c->url_commit)) ||
        !md_neo4j_url(opt->base_url, opt->database, "/tx", c->url_tx, sizeof(c->url_tx))) {
        free(c);
        md_error_set(err, MD_E_INVAL, "neo4j url too long");
        return NULL;
    }
    c->username = strdup(opt->username ? opt->username : "");
    c->password = strdup(opt->password ? opt->password : "");
    if (opt->ca_file && *opt->ca_file)
        c->ca_file = dup_or_null(opt->ca_file);
    c->slots = calloc((size_t)c->max, sizeof(*c->slots));
    if (!c->username || !c->password || (opt->ca_file && *opt->ca_file && !c->ca_file) ||
        !c->slots)
        goto oom;
    for (int i = 0; i < c->max; i++) {
        md_buf_init(&c->slots[i].req, REQUEST_MAX);
        md_buf_init(&c->slots[i].resp, c->max_response);
    }
    char exec_time[64];
    snprintf(exec_time, sizeof(exec_time), "max-execution-time: %lld", (long long)c->query_ms);
    if (!add_header(&c->headers, "Content-Type: application/json") ||
        !add_header(&c->headers, "Accept: application/json;charset=UTF-8") ||
        !add_header(&c->headers, "Expect:") ||
        !add_header(&c->headers, "User-Agent: memoryd/" MD_VERSION_STRING) ||
        !add_header(&c->headers, exec_time))
        goto oom;

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->mu, NULL);
    return c;

oom:
    if (c) {
        curl_slist_free_all(c->headers);
        free(c->slots);
        free(c->username);
        if (c->password)
            memset(c->password, 0, strlen(c->password));
        free(c->password);
        free(c->ca_file);
        free(c);
    }
    md_error_set(err, MD_E_NOMEM, "out of memory");
    return NULL;
}

void md_neo4j_free(struct md_neo4j *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->max; i++) {
        if (c->slots[i].h)
            curl_easy_cleanup(c->slots[i].h);
        md_buf_release(&c->slots[i].req);
        md_buf_release(&c->slots[i].resp);
    }
    free(c->slots);
    curl_slist_free_all(c->headers);
    free(c->username);
    memset(c->password, 0, strlen(c->password));
    free(c->password);
    free(c->ca_file);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
