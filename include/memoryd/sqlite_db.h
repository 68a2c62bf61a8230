/*
 * sqlite_db.h — the embedded store's database file: one SQLite file
 * (DATA_DIR/memoryd.db, WAL mode) shared by the embedded STM and LTM
 * backends, with a small pool of connections.
 *
 * A connection is used by one thread at a time: md_sqlite_checkout() leases
 * one (waiting up to a timeout), md_sqlite_checkin() returns it. Each
 * connection keeps its prepared statements (md_sqlite_prepare caches them by
 * SQL text pointer), so hot statements are compiled once per connection.
 * Schema migrations run once at open, under an exclusive transaction, keyed
 * by PRAGMA user_version; both tiers' tables are created there.
 *
 * Thread safety: md_sqlite_* functions are thread-safe; a leased connection
 * belongs to the thread that checked it out until checkin.
 */
#ifndef MD_SQLITE_DB_H
#define MD_SQLITE_DB_H

#include <sqlite3.h>

#include "memoryd/compat.h"
#include "memoryd/status.h"

struct md_sqlite;
struct md_sqlite_conn; /* a leased connection */

struct md_sqlite_options {
    const char *data_dir;   /* created (0750) if missing */
    int pool_size;          /* connections, ≥ 1 */
    bool synchronous_full;  /* PRAGMA synchronous=FULL, else NORMAL */
    int busy_timeout_ms;    /* how long a writer waits for the write lock */
};

/* Open (creating and migrating as needed). NULL + err on failure. */
struct md_sqlite *md_sqlite_open(const struct md_sqlite_options *opt, struct md_error *err);

/* Close every connection. All leases must have been returned. Accepts NULL. */
void md_sqlite_close(struct md_sqlite *db);

/* Lease a connection, waiting up to timeout_ms; MD_E_UNAVAIL on timeout. */
MD_MUSTCHECK enum md_status md_sqlite_checkout(struct md_sqlite *db, int64_t timeout_ms,
                                               struct md_sqlite_conn **out,
                                               struct md_error *err);

/* Return a lease (resets its statements; rolls back an open transaction). */
void md_sqlite_checkin(struct md_sqlite *db, struct md_sqlite_conn *c);

/* The raw handle of a lease (borrowed until checkin). */
sqlite3 *md_sqlite_handle(struct md_sqlite_conn *c);

/*
 * Prepared statement for sql on this connection, compiled on first use and
 * cached; `sql` must be a string literal or otherwise outlive the database
 * (the pointer is the cache key). The statement is reset and its bindings
 * cleared. Do not finalize it. The cache holds 128 statements per
 * connection; beyond that a statement is kept only until checkin (slower,
 * still correct). NULL + err on failure.
 */
sqlite3_stmt *md_sqlite_prepare(struct md_sqlite_conn *c, const char *sql, struct md_error *err);

/* md_sqlite_prepare() that also sets *st from err on failure (for status chains). */
sqlite3_stmt *md_sqlite_prep(struct md_sqlite_conn *c, const char *sql, enum md_status *st,
                             struct md_error *err);

/* Bind s as static text, or NULL when s is NULL; an SQLite result code. */
int md_sqlite_bind_text(sqlite3_stmt *q, int i, const char *s);

/* Owned copy of text column i ("" for NULL), its length in *len_out if given; NULL on OOM. */
char *md_sqlite_col_dup(sqlite3_stmt *q, int i, size_t *len_out);

/*
 * BEGIN IMMEDIATE / COMMIT / ROLLBACK on a lease. md_sqlite_begin() first
 * takes the database's in-process write lock (waiting up to the busy timeout,
 * then MD_E_UNAVAIL), so writers of this process queue on a mutex instead of
 * polling SQLite's file lock; commit and rollback release it (a failed commit
 * rolls back). Do not begin on a second lease while holding one open.
 */
MD_MUSTCHECK enum md_status md_sqlite_begin(struct md_sqlite_conn *c, struct md_error *err);
MD_MUSTCHECK enum md_status md_sqlite_commit(struct md_sqlite_conn *c, struct md_error *err);
void md_sqlite_rollback(struct md_sqlite_conn *c);

/*
 * Map an SQLite result code to a status and fill err: BUSY/LOCKED ->
 * MD_E_UNAVAIL, NOMEM -> MD_E_NOMEM, FULL/IOERR/CANTOPEN (and READONLY,
 * CORRUPT, NOTADB, PERM) -> MD_E_IO, CONSTRAINT -> MD_E_CONFLICT, anything
 * else -> MD_E_INTERNAL. `c` may be NULL. The SQLite
 * message goes to err->detail only. `what` names the operation.
 */
enum md_status md_sqlite_error(struct md_sqlite_conn *c, int rc, const char *what,
                               struct md_error *err);

/* Pool figures for metrics. */
void md_sqlite_pool_stats(struct md_sqlite *db, int *size, int *in_use, uint64_t *waits);

/* Checkouts that gave up (MD_E_UNAVAIL), since open. */
uint64_t md_sqlite_pool_timeouts(struct md_sqlite *db);

/* PRAGMA quick_check on a fresh lease: MD_OK when the file is intact. */
MD_MUSTCHECK enum md_status md_sqlite_check(struct md_sqlite *db, struct md_error *err);

#endif /* MD_SQLITE_DB_H */
