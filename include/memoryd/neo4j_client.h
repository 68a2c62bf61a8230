/*
 * neo4j_client.h — a small client for Neo4j 5's HTTP transactional endpoint.
 *
 * One md_neo4j_run() is one HTTP request and one transaction: the statements
 * are POSTed together to {base}/db/{database}/tx/commit and run in order;
 * either all of them commit or none does. Explicit transactions
 * (md_neo4j_tx_*: POST /tx, /tx/{id}, /tx/{id}/commit, DELETE /tx/{id}) are
 * there for the rare call that must read something, decide in C, and write
 * within one transaction; prefer one request where Cypher can do the work.
 *
 * Connections: a pool of at most max_connections libcurl easy handles (a
 * mutex + condition variable guard the idle stack; checkout waits up to the
 * acquisition timeout, then MD_E_UNAVAIL). Each handle keeps its HTTP
 * keep-alive connection and re-opens it after max_lifetime. The mutex is
 * never held during a transfer. curl_global_init() must have been called
 * (main does it before starting threads).
 *
 * Errors (the `errors` array is read even on HTTP 200):
 *   HTTP 401/403, Neo.ClientError.Security.*        MD_E_UNAVAIL (credentials)
 *   refused connection, DNS, TLS, lost connection   MD_E_UNAVAIL
 *   curl or server-side timeout                     MD_E_TIMEOUT
 *   Neo.TransientError.*, HTTP 503                  retried with exponential backoff and
 *                                                   jitter for up to max_retry, then MD_E_UNAVAIL
 *   Neo.ClientError.Schema.ConstraintValidationFailed  MD_E_CONFLICT
 *   other Neo.ClientError.*                         MD_E_INTERNAL (a bug in our Cypher)
 *   Neo.DatabaseError.*, database not found, 5xx    MD_E_UNAVAIL
 *   unparsable or oversized answer                  MD_E_PROTO
 * Messages are client-safe and never carry Neo4j's text; the Neo4j code and
 * message go to err->detail (never the password).
 *
 * Thread safety: a client is shared by all threads; a result or a
 * transaction belongs to the thread that got it.
 */
#ifndef MD_NEO4J_CLIENT_H
#define MD_NEO4J_CLIENT_H

#include <jansson.h>

#include "memoryd/buf.h"
#include "memoryd/compat.h"
#include "memoryd/status.h"

struct md_neo4j;
struct md_neo4j_tx;
struct md_pool_stats;
struct md_ltm;

#define MD_NEO4J_MAX_RESPONSE (64u * 1024u * 1024u) /* bytes of one answer */
#define MD_NEO4J_CODE_MAX 96                          /* "Neo.ClientError.X.Y" */

struct md_neo4j_options {
    const char *base_url;      /* "http(s)://host:port", no trailing path */
    const char *database;      /* "neo4j" */
    const char *username;
    const char *password;      /* copied; never logged */
    const char *ca_file;       /* "" or NULL: the system CA store */
    int max_connections;
    int64_t max_lifetime_ms;   /* re-open a connection older than this */
    int64_t acquisition_timeout_ms;
    int64_t connect_timeout_ms;
    int64_t query_timeout_ms;  /* one HTTP request; also sent as max-execution-time */
    int64_t max_retry_ms;      /* budget for retrying transient errors; 0: never */
    size_t max_response;       /* 0: MD_NEO4J_MAX_RESPONSE */
};

/* One statement of a request; everything user-supplied goes in params. */
struct md_neo4j_stmt {
    const char *cypher; /* borrowed */
    json_t *params;     /* borrowed JSON object, or NULL */
};

/*
 * The parsed answer of a request: root is the whole JSON document; rows are
 * walked with md_neo4j_rows() / md_neo4j_row(). On failure, code holds the
 * Neo4j error code ("" if there was none) and root may be NULL.
 */
struct md_neo4j_result {
    json_t *root;                   /* owned */
    long http_status;
    char code[MD_NEO4J_CODE_MAX];
};

/* How a Neo4j error code is handled (see the table above). */
enum md_neo4j_class {
    MD_NEO4J_C_TRANSIENT = 0, /* retry the transaction */
    MD_NEO4J_C_CONFLICT,      /* a uniqueness constraint refused a write */
    MD_NEO4J_C_AUTH,          /* credentials refused / not allowed */
    MD_NEO4J_C_TIMEOUT,       /* the server stopped a transaction that took too long */
    MD_NEO4J_C_UNAVAIL,       /* database missing or failing */
    MD_NEO4J_C_CLIENT,        /* our request or Cypher is wrong */
};

/*
 * Create a client (copies every string of opt). Connects to nothing: the
 * first request does. NULL + err (MD_E_INVAL, MD_E_NOMEM) on failure.
 */
struct md_neo4j *md_neo4j_new(const struct md_neo4j_options *opt, struct md_error *err);

/* Close every connection. No request may be in flight. Accepts NULL. */
void md_neo4j_free(struct md_neo4j *c);

/*
 * Run n statements (n ≥ 1) as one transaction in one request, retrying
 * transient failures. On MD_OK, res holds the answer (release it with
 * md_neo4j_result_release); on failure res is released already except for
 * res->code and res->http_status.
 */
MD_MUSTCHECK enum md_status md_neo4j_run(struct md_neo4j *c, const struct md_neo4j_stmt *stmts,
                                         size_t n, struct md_neo4j_result *res,
                                         struct md_error *err);

/* Free what res owns; res is zeroed (accepts a zeroed or NULL res). */
void md_neo4j_result_release(struct md_neo4j_result *res);

/* Number of rows statement `stmt` returned (0 when it has no result). */
size_t md_neo4j_rows(const struct md_neo4j_result *res, size_t stmt);

/* Row i of statement stmt: a borrowed JSON array of its columns, or NULL. */
json_t *md_neo4j_row(const struct md_neo4j_result *res, size_t stmt, size_t i);

/*
 * Explicit transactions. begin opens one (and may run statements: n ≥ 0),
 * run adds statements, commit runs the last statements (n ≥ 0) and commits.
 * The transaction keeps one pooled connection until commit or rollback.
 * After a failed begin nothing needs freeing; after a failed run or commit
 * the caller still calls md_neo4j_tx_rollback(), which always frees tx
 * (commit frees it on success). Transient failures are not retried here:
 * md_neo4j_tx_transient() tells whether the whole transaction may be
 * retried (md_neo4j_transact does it).
 */
MD_MUSTCHECK enum md_status md_neo4j_tx_begin(struct md_neo4j *c,
                                              const struct md_neo4j_stmt *stmts, size_t n,
                                              struct md_neo4j_tx **tx,
                                              struct md_neo4j_result *res, struct md_error *err);
MD_MUSTCHECK enum md_status md_neo4j_tx_run(struct md_neo4j_tx *tx,
                                            const struct md_neo4j_stmt *stmts, size_t n,
                                            struct md_neo4j_result *res, struct md_error *err);
MD_MUSTCHECK enum md_status md_neo4j_tx_commit(struct md_neo4j_tx *tx,
                                               const struct md_neo4j_stmt *stmts, size_t n,
                                               struct md_neo4j_result *res,
                                               struct md_error *err);
void md_neo4j_tx_rollback(struct md_neo4j_tx *tx);
bool md_neo4j_tx_transient(const struct md_neo4j_tx *tx);

/*
 * Run fn inside an explicit transaction and commit it; on a transient
 * failure (deadlock, lock timeout, 503…) roll back and run fn again, with
 * backoff, within the retry budget. fn returns MD_OK to commit.
 */
typedef enum md_status (*md_neo4j_tx_fn)(struct md_neo4j_tx *tx, void *arg,
                                         struct md_error *err);
MD_MUSTCHECK enum md_status md_neo4j_transact(struct md_neo4j *c, md_neo4j_tx_fn fn, void *arg,
                                              struct md_error *err);

/* Pool figures for metrics. */
void md_neo4j_pool_stats(struct md_neo4j *c, struct md_pool_stats *out);

/* Pool figures of a Neo4j LTM backend (l from md_ltm_neo4j_new). */
void md_ltm_neo4j_pool_stats(struct md_ltm *l, struct md_pool_stats *out);

/* ---- pure building blocks (exposed for unit tests) ---------------------- */

/* Classify a Neo4j status code ("Neo.TransientError.…"). */
enum md_neo4j_class md_neo4j_classify(const char *code);

/*
 * "{base}/db/{database}{suffix}" into out (the database name
 * percent-encoded outside [A-Za-z0-9._-]; a trailing '/' of base dropped).
 * Returns false when it does not fit.
 */
bool md_neo4j_url(const char *base, const char *database, const char *suffix, char *out,
                  size_t cap);

/*
 * Append the request body {"statements":[{"statement":…,"parameters":…,
 * "resultDataContents":["row"]},…]} to out.
 */
MD_MUSTCHECK enum md_status md_neo4j_body(const struct md_neo4j_stmt *stmts, size_t n,
                                          struct md_buf *out);

/*
 * Parse an answer (HTTP status, body) into res and map it to a status as in
 * the table above. *transient tells whether a retry may succeed. On failure
 * res->root is NULL and res->code/http_status are set.
 */
MD_MUSTCHECK enum md_status md_neo4j_parse(long http_status, const char *body, size_t len,
                                           struct md_neo4j_result *res, bool *transient,
                                           struct md_error *err);

/* Transaction id from a "commit" URL (".../tx/123/commit"); false if none. */
bool md_neo4j_tx_id(const char *commit_url, char *out, size_t cap);

#endif /* MD_NEO4J_CLIENT_H */
