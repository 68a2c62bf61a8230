/*
 * sqlite_db.c — the embedded database file and its connection pool.
 *
 * DESIGN. One SQLite file, DATA_DIR/memoryd.db, in WAL mode, opened by
 * `pool_size` connections at start-up. A connection is leased to one thread
 * at a time (checkout/checkin), so the connections are opened with
 * SQLITE_OPEN_NOMUTEX and SQLite never has to lock them internally.
 *
 * Locks, in the order they may be taken:
 *   1. the write token (db->writing, guarded by db->write_mu) — owned by a
 *      lease from md_sqlite_begin() to md_sqlite_commit()/rollback() (or
 *      checkin). In-process writers queue on its condition variable instead
 *      of polling SQLite's file lock in the busy handler, whose millisecond
 *      sleeps would otherwise dominate write latency under contention. It is
 *      the only thing held while SQL runs; it is awaited with a monotonic
 *      deadline (busy_timeout_ms), so a caller that misuses it gets
 *      MD_E_UNAVAIL instead of a deadlock. write_mu itself is held only to
 *      flip the flag.
 *   2. db->lock — guards the free list and the counters; held only for a
 *      few instructions, never while SQL runs.
 *
 * Each connection caches its prepared statements in a fixed open-addressing
 * table keyed by the SQL text pointer (string literals, so pointer identity
 * is cheap and stable). Statements beyond the table are still served, from
 * an overflow list that is finalized at checkin, so a full table costs speed
 * and never correctness.
 *
 * Migrations run once at open, on the first connection, inside BEGIN
 * EXCLUSIVE, keyed by PRAGMA user_version (see `migrations` below).
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "memoryd/sqlite_db.h"

#define DB_FILE_NAME "memoryd.db"
#define STMT_CACHE_SLOTS 128 /* power of two */
#define CHECK_TIMEOUT_MS 2000

/*
 * Schema migrations. Entry i moves the file from user_version i to i + 1;
 * md_sqlite_open() applies every missing step in one exclusive transaction.
 * APPEND new versions at the end (version 2 = the LTM tables); never edit a
 * step that has shipped, since files in the field already ran it.
 */
static const char *const migrations[] = {
    /* version 1: short-term memory (src/stm/stm_sqlite.c) */
    "CREATE TABLE stm_entries ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT," /* creation order, never reused */
    "  scenario_id TEXT NOT NULL UNIQUE,"
    "  domain TEXT NOT NULL,"                  /* text before the first '_' */
    "  status TEXT NOT NULL,"                  /* initial status, canonical name */
    "  final_status TEXT,"                     /* canonical name or NULL */
    "  has_feedback INTEGER NOT NULL DEFAULT 0 CHECK (has_feedback IN (0, 1)),"
    "  created_ms INTEGER NOT NULL,"           /* epoch ms */
    "  expires_ms INTEGER NOT NULL,"           /* epoch ms; live while > now */
    "  body TEXT NOT NULL"                     /* canonical entry JSON (stm.h) */
    ");"
    /* live-row filter of every query, the sweep, and a covering index for stats */
    "CREATE INDEX stm_entries_expiry"
    "  ON stm_entries (expires_ms, status, final_status, has_feedback);"
    /* newest-first listings per filter */
    "CREATE INDEX stm_entries_domain ON stm_entries (domain, seq);"
    "CREATE INDEX stm_entries_status ON stm_entries (status, seq);"
    "CREATE INDEX stm_entries_final ON stm_entries (final_status, seq);"
    "CREATE INDEX stm_entries_feedback ON stm_entries (has_feedback, seq);"
    /* rule ids derived from an entry (Redis: stm_ltm_links:{id}) */
    "CREATE TABLE stm_links ("
    "  scenario_id TEXT NOT NULL"
    "    REFERENCES stm_entries (scenario_id) ON DELETE CASCADE,"
    "  rule_id TEXT NOT NULL,"
    "  PRIMARY KEY (scenario_id, rule_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX stm_links_rule ON stm_links (rule_id);",
    /* version 2: long-term memory (src/ltm/ltm_sqlite.c; design notes there) */
    "CREATE TABLE ltm_policies ("
    "  name TEXT PRIMARY KEY"                  /* rule id part before the first '_' */
    ") WITHOUT ROWID;"
    "CREATE TABLE ltm_rules ("
    "  id INTEGER PRIMARY KEY,"                /* rowid: key of the FTS rows and the links */
    "  rule_id TEXT NOT NULL UNIQUE,"
    "  policy TEXT NOT NULL REFERENCES ltm_policies (name),"
    "  rule_text TEXT NOT NULL,"
    "  concept_names TEXT NOT NULL,"           /* the rule's spellings, newline-joined */
    "  confidence REAL NOT NULL CHECK (confidence >= 0 AND confidence <= 1),"
    "  version INTEGER NOT NULL CHECK (version >= 1),"
    "  created_ms INTEGER NOT NULL,"           /* epoch ms */
    "  updated_ms INTEGER NOT NULL"
    ");"
    /* listing order (confidence, updated_at desc, rule_id) overall and per policy */
    "CREATE INDEX ltm_rules_rank ON ltm_rules (confidence DESC, updated_ms DESC, rule_id);"
    "CREATE INDEX ltm_rules_policy"
    "  ON ltm_rules (policy, confidence DESC, updated_ms DESC, rule_id);"
    "CREATE TABLE ltm_concepts ("
    "  key TEXT PRIMARY KEY,"                  /* fold key (md_concept_key) */
    "  name TEXT NOT NULL"                     /* the spelling it was first created with */
    ") WITHOUT ROWID;"
    "CREATE TABLE ltm_rule_concepts ("
    "  rule INTEGER NOT NULL REFERENCES ltm_rules (id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL REFERENCES ltm_concepts (key),"
    "  name TEXT NOT NULL,"                    /* this rule's spelling */
    "  pos INTEGER NOT NULL,"                  /* this rule's order, from 0 */
    "  PRIMARY KEY (rule, key)"
    ") WITHOUT ROWID;"
    "CREATE INDEX ltm_rule_concepts_key ON ltm_rule_concepts (key, rule);"
    "CREATE TABLE ltm_scenarios ("
    "  scenario_id TEXT PRIMARY KEY,"
    "  snapshot_json TEXT,"                    /* canonical STM entry JSON, or NULL */
    "  snapshot_sha256 TEXT,"
    "  snapshot_ms INTEGER,"
    "  has_feedback INTEGER NOT NULL DEFAULT 0 CHECK (has_feedback IN (0, 1)),"
    "  final_status TEXT"                      /* canonical name or NULL */
    ");"
    "CREATE INDEX ltm_scenarios_unsnapshotted ON ltm_scenarios (scenario_id)"
    "  WHERE snapshot_json IS NULL;"
    "CREATE TABLE ltm_rule_sources ("
    "  rule INTEGER NOT NULL REFERENCES ltm_rules (id) ON DELETE CASCADE,"
    "  scenario_id TEXT NOT NULL REFERENCES ltm_scenarios (scenario_id),"
    "  PRIMARY KEY (rule, scenario_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX ltm_rule_sources_scenario ON ltm_rule_sources (scenario_id, rule);"
    "CREATE TABLE ltm_rule_versions ("        /* one row per previous state of a rule */
    "  rule INTEGER NOT NULL REFERENCES ltm_rules (id) ON DELETE CASCADE,"
    "  version INTEGER NOT NULL,"
    "  rule_text TEXT NOT NULL,"
    "  confidence REAL NOT NULL,"
    "  concepts_json TEXT NOT NULL,"           /* JSON array of the rule's names, in order */
    "  sources_json TEXT NOT NULL,"            /* JSON array of scenario ids, sorted */
    "  recorded_ms INTEGER NOT NULL,"          /* when that state was written (its updated_ms) */
    "  PRIMARY KEY (rule, version)"
    ");"
    /* full text over rule text and concept names; rows written by ltm_sqlite.c in the
     * same transactions (FTS5 is not usable from triggers with trusted_schema=OFF) */
    "CREATE VIRTUAL TABLE ltm_rules_fts USING fts5("
    "  rule_text, concept_names, content='ltm_rules', content_rowid='id',"
    "  tokenize='unicode61 remove_diacritics 0');",
};

struct stmt_slot {
    const char *sql; /* cache key (pointer identity); NULL = empty slot */
    sqlite3_stmt *st;
};

struct stmt_extra {
    const char *sql;
    sqlite3_stmt *st;
    struct stmt_extra *next;
};

struct md_sqlite_conn {
    struct md_sqlite *db;
    sqlite3 *h;
    struct stmt_slot cache[STMT_CACHE_SLOTS];
    struct stmt_extra *extra; /* uncached statements of this lease, finalized at checkin */
    bool in_write;            /* owns the write token (md_sqlite_begin) */
};

struct md_sqlite {
    char path[PATH_MAX];
    int size;
    int busy_timeout_ms;
    struct md_sqlite_conn *conns; /* size entries */

    pthread_mutex_t write_mu;  /* guards writing (see DESIGN) */
    pthread_cond_t write_free; /* signalled when the write token is returned */
    bool writing;              /* a lease owns the write token */

    pthread_mutex_t lock;  /* guards everything below */
    pthread_cond_t avail;  /* signalled at checkin */
    struct md_sqlite_conn **idle; /* stack of free connections */
    int n_idle;
    uint64_t waits;    /* checkouts that had to wait */
    uint64_t timeouts; /* checkouts that gave up */
};

/* ---- errors ----------------------------------------------------------------------------- */

enum md_status md_sqlite_error(struct md_sqlite_conn *c, int rc, const char *what,
                               struct md_error *err)
{
    enum md_status st;
    const char *why;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        st = MD_E_UNAVAIL;
        why = "embedded store busy";
        break;
    case SQLITE_NOMEM:
        st = MD_E_NOMEM;
        why = "out of memory";
        break;
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_PERM:
        st = MD_E_IO;
        why = "embedded store i/o error";
        break;
    case SQLITE_CONSTRAINT:
        st = MD_E_CONFLICT;
        why = "conflicting data";
        break;
    default:
        st = MD_E_INTERNAL;
        why = "embedded store error";
        break;
    }
    md_error_set(err, st, "%s failed: %s", what ? what : "database operation", why);
    md_error_detail(err, "sqlite rc %d (%s): %s", rc, sqlite3_errstr(rc),
                    c && c->h ? sqlite3_errmsg(c->h) : "-");
    return st;
}

/* ---- statement cache -------------------------------------------------------------------- */

static size_t slot_of(const char *sql)
{
    uint64_t k = (uint64_t)(uintptr_t)sql;
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    return (size_t)(k & (STMT_CACHE_SLOTS - 1));
}

static void reset_stmt(sqlite3_stmt *st)
{
    (void)sqlite3_reset(st); /* returns the last step's error, already handled */
    (void)sqlite3_clear_bindings(st);
}

sqlite3_stmt *md_sqlite_prepare(struct md_sqlite_conn *c, const char *sql, struct md_error *err)
{
    size_t i = slot_of(sql);
    struct stmt_slot *free_slot = NULL;
    for (size_t n = 0; n < STMT_CACHE_SLOTS; n++, i = (i + 1) & (STMT_CACHE_SLOTS - 1)) {
        if (c->cache[i].sql == sql) {
            reset_stmt(c->cache[i].st);
            return c->cache[i].st;
        }
        if (!c->cache[i].sql) {
            free_slot = &c->cache[i];
            break;
        }
    }
    if (!free_slot) {
        for (struct stmt_extra *x = c->extra; x; x = x->next)
            if (x->sql == sql) {
                reset_stmt(x->st);
                return x->st;
            }
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(c->h, sql, -1, free_slot ? SQLITE_PREPARE_PERSISTENT : 0, &st,
                                NULL);
    if (rc != SQLITE_OK || !st) {
        sqlite3_finalize(st);
        md_sqlite_error(c, rc == SQLITE_OK ? SQLITE_MISUSE : rc, "preparing a statement", err);
        return NULL;
    }
    if (free_slot) {
        free_slot->sql = sql;
        free_slot->st = st;
        return st;
    }
    struct stmt_extra *x = malloc(sizeof(*x));
    if (!x) {
        sqlite3_finalize(st);
        md_error_set(err, MD_E_NOMEM, "out of memory preparing a statement");
        return NULL;
    }
    x->sql = sql;
    x->st = st;
    x->next = c->extra;
    c->extra = x;
    return st;
}

static void drop_extra(struct md_sqlite_conn *c)
{
    while (c->extra) {
        struct stmt_extra *x = c->extra;
        c->extra = x->next;
        sqlite3_finalize(x->st);
        free(x);
    }
}

/* Reset every statement still running on the connection (ends its read). */
static void reset_busy(struct md_sqlite_conn *c)
{
    for (sqlite3_stmt *st = sqlite3_next_stmt(c->h, NULL); st; st = sqlite3_next_stmt(c->h, st))
        if (sqlite3_stmt_busy(st))
            (void)sqlite3_reset(st);
}

/* ---- transactions ----------------------------------------------------------------------- */

static int exec_cached(struct md_sqlite_conn *c, const char *sql)
{
    sqlite3_stmt *st = md_sqlite_prepare(c, sql, NULL);
    if (!st)
        return sqlite3_errcode(c->h) != SQLITE_OK ? sqlite3_errcode(c->h) : SQLITE_NOMEM;
    int rc = sqlite3_step(st);
    (void)sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void deadline_after(int64_t ms, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Take the write token, waiting up to the busy timeout. */
static bool acquire_write(struct md_sqlite *db)
{
    struct timespec until;
    deadline_after(db->busy_timeout_ms, &until);
    bool ok = true;
    pthread_mutex_lock(&db->write_mu);
    while (db->writing && ok)
        ok = pthread_cond_timedwait(&db->write_free, &db->write_mu, &until) != ETIMEDOUT ||
             !db->writing;
    if (ok)
        db->writing = true;
    pthread_mutex_unlock(&db->write_mu);
    return ok;
}

static void release_write(struct md_sqlite_conn *c)
{
    if (!c->in_write)
        return;
    c->in_write = false;
    pthread_mutex_lock(&c->db->write_mu);
    c->db->writing = false;
    pthread_cond_signal(&c->db->write_free);
    pthread_mutex_unlock(&c->db->write_mu);
}

enum md_status md_sqlite_begin(struct md_sqlite_conn *c, struct md_error *err)
{
    if (c->in_write || !sqlite3_get_autocommit(c->h))
        return md_error_set(err, MD_E_INTERNAL, "transaction already open on this connection");
    if (!acquire_write(c->db))
        return md_error_set(err, MD_E_UNAVAIL,
                            "embedded store busy: no write slot within %d ms",
                            c->db->busy_timeout_ms);
    c->in_write = true;
    int rc = exec_cached(c, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) {
        release_write(c);
        return md_sqlite_error(c, rc, "starting a transaction", err);
    }
    return MD_OK;
}

enum md_status md_sqlite_commit(struct md_sqlite_conn *c, struct md_error *err)
{
    reset_busy(c);
    int rc = exec_cached(c, "COMMIT");
    if (rc != SQLITE_OK) {
        enum md_status st = md_sqlite_error(c, rc, "committing a transaction", err);
        md_sqlite_rollback(c);
        return st;
    }
    release_write(c);
    return MD_OK;
}

void md_sqlite_rollback(struct md_sqlite_conn *c)
{
    reset_busy(c);
    if (!sqlite3_get_autocommit(c->h))
        (void)exec_cached(c, "ROLLBACK");
    release_write(c);
}

/* ---- pool ------------------------------------------------------------------------------- */

enum md_status md_sqlite_checkout(struct md_sqlite *db, int64_t timeout_ms,
                                  struct md_sqlite_conn **out, struct md_error *err)
{
    struct timespec until;
    deadline_after(timeout_ms > 0 ? timeout_ms : 0, &until);
    bool waited = false;
    pthread_mutex_lock(&db->lock);
    while (db->n_idle == 0) {
        if (!waited) {
            waited = true;
            db->waits++;
        }
        int rc = timeout_ms > 0 ? pthread_cond_timedwait(&db->avail, &db->lock, &until)
                                : ETIMEDOUT;
        if (rc == ETIMEDOUT && db->n_idle == 0) {
            db->timeouts++;
            pthread_mutex_unlock(&db->lock);
            *out = NULL;
            return md_error_set(err, MD_E_UNAVAIL,
                                "embedded store busy: no free connection within %lld ms",
                                (long long)(timeout_ms > 0 ? timeout_ms : 0));
        }
    }
    *out = db->idle[--db->n_idle];
    pthread_mutex_unlock(&db->lock);
    return MD_OK;
}

void md_sqlite_checkin(struct md_sqlite *db, struct md_sqlite_conn *c)
{
    if (!c)
        return;
    md_sqlite_rollback(c); /* resets running statements, ends any transaction */
    drop_extra(c);
    pthread_mutex_lock(&db->lock);
    db->idle[db->n_idle++] = c;
    pthread_cond_signal(&db->avail);
    pthread_mutex_unlock(&db->lock);
}

sqlite3 *md_sqlite_handle(struct md_sqlite_conn *c)
{
    return c->h;
}

void md_sqlite_pool_stats(struct md_sqlite *db, int *size, int *in_use, uint64_t *waits)
{
    pthread_mutex_lock(&db->lock);
    if (size)
        *size = db->size;
    if (in_use)
        *in_use = db->size - db->n_idle;
    if (waits)
        *waits = db->waits;
    pthread_mutex_unlock(&db->lock);
}

uint64_t md_sqlite_pool_timeouts(struct md_sqlite *db)
{
    pthread_mutex_lock(&db->lock);
    uint64_t n = db->timeouts;
    pthread_mutex_unlock(&db->lock);
    return n;
}

/* ---- open / close ----------------------------------------------------------------------- */

static const char *errno_text(int e, char *buf, size_t len)
{
    return strerror_r(e, buf, len); /* GNU variant: returns the message */
}

/* mkdir -p with mode 0750 for every directory created. */
static enum md_status make_dir(const char *dir, struct md_error *err)
{
    char path[PATH_MAX], ebuf[128];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof(path))
        return md_error_set(err, MD_E_INVAL, "data directory path '%s' is empty or too long",
                            dir);
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST) {
            int e = errno;
            md_error_set(err, MD_E_IO, "cannot create data directory '%s'", path);
            md_error_detail(err, "mkdir: %s", errno_text(e, ebuf, sizeof(ebuf)));
            return MD_E_IO;
        }
        path[i] = saved;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        int e = errno;
        md_error_set(err, MD_E_IO, "data directory '%s' is not a directory", dir);
        md_error_detail(err, "stat: %s", errno_text(e, ebuf, sizeof(ebuf)));
        return MD_E_IO;
    }
    return MD_OK;
}

/* Create the file with mode 0640 (SQLite gives -wal and -shm the same mode). */
static enum md_status touch_file(const char *path, struct md_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        char ebuf[128];
        int e = errno;
        md_error_set(err, MD_E_IO, "cannot open database file '%s'", path);
        md_error_detail(err, "open: %s", errno_text(e, ebuf, sizeof(ebuf)));
        return MD_E_IO;
    }
    close(fd);
    return MD_OK;
}

static enum md_status exec_sql(sqlite3 *h, const char *sql, const char *what,
                               struct md_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return MD_OK;
    struct md_sqlite_conn tmp = {.h = h};
    enum md_status st = md_sqlite_error(&tmp, rc, what, err);
    if (msg)
        md_error_detail(err, "sqlite rc %d: %s", rc, msg);
    sqlite3_free(msg);
    return st;
}

static int user_version(sqlite3 *h)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static enum md_status migrate(sqlite3 *h, struct md_error *err)
{
    const int target = (int)MD_ARRAY_LEN(migrations);
    enum md_status st = exec_sql(h, "BEGIN EXCLUSIVE", "locking the database for migration", err);
    if (st != MD_OK)
        return st;
    int v = user_version(h);
    if (v < 0) {
        st = md_error_set(err, MD_E_IO, "cannot read the database schema version");
        md_error_detail(err, "%s", sqlite3_errmsg(h));
        goto out;
    }
    if (v > target) {
        st = md_error_set(err, MD_E_INTERNAL,
                          "database schema version %d is newer than this memoryd supports (%d)",
                          v, target);
        goto out;
    }
    for (; v < target; v++) {
        char what[64], pragma[64];
        snprintf(what, sizeof(what), "schema migration to version %d", v + 1);
        st = exec_sql(h, migrations[v], what, err);
        if (st == MD_OK) {
            snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
            st = exec_sql(h, pragma, what, err);
        }
        if (st != MD_OK)
            goto out;
    }
    st = exec_sql(h, "COMMIT", "committing the schema migration", err);
out:
    if (st != MD_OK && !sqlite3_get_autocommit(h))
        (void)sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

static enum md_status open_conn(struct md_sqlite *db, struct md_sqlite_conn *c,
                                const struct md_sqlite_options *opt, bool first,
                                struct md_error *err)
{
    c->db = db;
    int rc = sqlite3_open_v2(db->path, &c->h,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        enum md_status st = md_sqlite_error(c, rc, "opening the database", err);
        md_error_set(err, st, "cannot open database file '%s'", db->path);
        md_error_detail(err, "sqlite rc %d: %s", rc,
                        c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
        return st;
    }
    sqlite3_extended_result_codes(c->h, 1);
    sqlite3_busy_timeout(c->h, db->busy_timeout_ms);
    (void)sqlite3_db_config(c->h, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    char pragmas[160];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA foreign_keys = ON; PRAGMA synchronous = %s; PRAGMA trusted_schema = OFF;",
             opt->synchronous_full ? "FULL" : "NORMAL");
    enum md_status st = exec_sql(c->h, pragmas, "configuring the database connection", err);
    if (st != MD_OK || !first)
        return st;

    /* journal_mode is persistent in the file: set it once, and check it took */
    sqlite3_stmt *jm = NULL;
    rc = sqlite3_prepare_v2(c->h, "PRAGMA journal_mode = WAL", -1, &jm, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(jm);
    if (rc != SQLITE_ROW) {
        st = md_sqlite_error(c, rc, "switching the database to WAL mode", err);
    } else {
        const unsigned char *mode = sqlite3_column_text(jm, 0);
        if (!mode || strcmp((const char *)mode, "wal") != 0) {
            st = md_error_set(err, MD_E_IO, "cannot switch database '%s' to WAL mode",
                              db->path);
            md_error_detail(err, "journal_mode is '%s'", mode ? (const char *)mode : "?");
        }
    }
    sqlite3_finalize(jm);
    if (st == MD_OK)
        st = migrate(c->h, err);
    return st;
}

struct md_sqlite *md_sqlite_open(const struct md_sqlite_options *opt, struct md_error *err)
{
    if (!opt || !opt->data_dir || !opt->data_dir[0] || opt->pool_size < 1) {
        md_error_set(err, MD_E_INVAL, "embedded store needs a data directory and a pool size");
        return NULL;
    }
    if (!sqlite3_threadsafe()) {
        md_error_set(err, MD_E_INTERNAL, "the SQLite library was built without thread support");
        return NULL;
    }
    struct md_sqlite *db = calloc(1, sizeof(*db));
    if (!db) {
        md_error_set(err, MD_E_NOMEM, "out of memory opening the embedded store");
        return NULL;
    }
    db->size = opt->pool_size;
    db->busy_timeout_ms = opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : 5000;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&db->lock, NULL);
    pthread_mutex_init(&db->write_mu, NULL);
    pthread_cond_init(&db->avail, &ca);
    pthread_cond_init(&db->write_free, &ca);
    pthread_condattr_destroy(&ca);

    int n = snprintf(db->path, sizeof(db->path), "%s/%s", opt->data_dir, DB_FILE_NAME);
    if (n < 0 || (size_t)n >= sizeof(db->path)) {
        md_error_set(err, MD_E_INVAL, "data directory path '%s' is too long", opt->data_dir);
        goto fail;
    }
    if (make_dir(opt->data_dir, err) != MD_OK || touch_file(db->path, err) != MD_OK)
        goto fail;
    db->conns = calloc((size_t)db->size, sizeof(*db->conns));
    db->idle = calloc((size_t)db->size, sizeof(*db->idle));
    if (!db->conns || !db->idle) {
        md_error_set(err, MD_E_NOMEM, "out of memory opening the embedded store");
        goto fail;
    }
    for (int i = 0; i < db->size; i++) {
        if (open_conn(db, &db->conns[i], opt, i == 0, err) != MD_OK)
            goto fail;
        db->idle[db->n_idle++] = &db->conns[i];
    }
    return db;
fail:
    md_sqlite_close(db);
    return NULL;
}

void md_sqlite_close(struct md_sqlite *db)
{
    if (!db)
        return;
    for (int i = 0; db->conns && i < db->size; i++) {
        struct md_sqlite_conn *c = &db->conns[i];
        if (!c->h)
            continue;
        drop_extra(c);
        for (size_t k = 0; k < STMT_CACHE_SLOTS; k++)
            sqlite3_finalize(c->cache[k].st);
        sqlite3_close_v2(c->h);
    }
    free(db->conns);
    free(db->idle);
    pthread_cond_destroy(&db->avail);
    pthread_mutex_destroy(&db->lock);
    pthread_cond_destroy(&db->write_free);
    pthread_mutex_destroy(&db->write_mu);
    free(db);
}

/* ---- integrity -------------------------------------------------------------------------- */

enum md_status md_sqlite_check(struct md_sqlite *db, struct md_error *err)
{
    static const char sql[] = "PRAGMA quick_check";
    struct md_sqlite_conn *c;
    enum md_status st = md_sqlite_checkout(db, CHECK_TIMEOUT_MS, &c, err);
    if (st != MD_OK)
        return st;
    sqlite3_stmt *q = md_sqlite_prepare(c, sql, err);
    if (!q) {
        st = err ? err->code : MD_E_INTERNAL;
        goto out;
    }
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        st = md_sqlite_error(c, rc, "database integrity check", err);
        goto out;
    }
    const unsigned char *res = sqlite3_column_text(q, 0);
    if (!res || strcmp((const char *)res, "ok") != 0) {
        st = md_error_set(err, MD_E_IO, "embedded database '%s' failed its integrity check",
                          db->path);
        md_error_detail(err, "quick_check: %s", res ? (const char *)res : "(null)");
    }
out:
    md_sqlite_checkin(db, c);
    return st;
}

sqlite3_stmt *md_sqlite_prep(struct md_sqlite_conn *c, const char *sql, enum md_status *st,
                             struct md_error *err)
{
    sqlite3_stmt *q = md_sqlite_prepare(c, sql, err);
    if (!q)
        *st = err && err->code != MD_OK ? err->code : MD_E_INTERNAL;
    return q;
}

int md_sqlite_bind_text(sqlite3_stmt *q, int i, const char *s)
{
    return s ? sqlite3_bind_text(q, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(q, i);
}

char *md_sqlite_col_dup(sqlite3_stmt *q, int i, size_t *len_out)
{
    const unsigned char *s = sqlite3_column_text(q, i);
    size_t len = s ? (size_t)sqlite3_column_bytes(q, i) : 0;
    char *p = malloc(len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    if (len_out)
        *len_out = len;
    return p;
}
