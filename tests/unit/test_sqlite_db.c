/*
 * test_sqlite_db.c — the embedded database file: creation of DATA_DIR,
 * pragmas, migrations (idempotent, data kept across reopen), the connection
 * pool (timeouts, waiting, stats), the statement cache (including overflow),
 * transactions and the error mapping. Each test works in its own temporary
 * directory under /tmp.
 */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memoryd/clock.h"
#include "memoryd/sqlite_db.h"

struct fixture {
    char root[64];     /* mkdtemp directory */
    char data_dir[128]; /* root/data/sub: not existing before open */
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    snprintf(fx->root, sizeof(fx->root), "/tmp/md_sqlite_db_XXXXXX");
    if (!mkdtemp(fx->root)) {
        free(fx);
        return -1;
    }
    snprintf(fx->data_dir, sizeof(fx->data_dir), "%s/data/sub", fx->root);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    nftw(fx->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static struct md_sqlite *open_db(struct fixture *fx, int pool, bool full)
{
    struct md_sqlite_options o = {
        .data_dir = fx->data_dir,
        .pool_size = pool,
        .synchronous_full = full,
        .busy_timeout_ms = 2000,
    };
    struct md_error err;
    md_error_clear(&err);
    struct md_sqlite *db = md_sqlite_open(&o, &err);
    if (!db)
        fail_msg("open failed: %s (%s)", err.msg, err.detail);
    return db;
}

static int64_t pragma_int(struct md_sqlite_conn *c, const char *sql)
{
    sqlite3_stmt *st = md_sqlite_prepare(c, sql, NULL);
    assert_non_null(st);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

static void exec_ok(struct md_sqlite_conn *c, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(md_sqlite_handle(c), sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* ---- open, pragmas, migrations ---------------------------------------------------------- */

static void test_open_creates_dir_and_migrates(void **state)
{
    struct fixture *fx = *state;
    struct md_sqlite *db = open_db(fx, 2, true);
    struct stat sb;
    assert_int_equal(stat(fx->data_dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0750);
    char path[256];
    snprintf(path, sizeof(path), "%s/memoryd.db", fx->data_dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0027, 0); /* 0640: never group-writable or world-readable */

    struct md_sqlite_conn *c;
    struct md_error err;
    assert_int_equal(md_sqlite_checkout(db, 100, &c, &err), MD_OK);
    assert_true(pragma_int(c, "PRAGMA user_version") >= 1);
    assert_int_equal(pragma_int(c, "PRAGMA foreign_keys"), 1);
    assert_int_equal(pragma_int(c, "PRAGMA synchronous"), 2); /* FULL */
    sqlite3_stmt *st = md_sqlite_prepare(c, "PRAGMA journal_mode", NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_reset(st);
    assert_int_equal(pragma_int(c, "SELECT count(*) FROM sqlite_schema WHERE name IN "
                                   "('stm_entries', 'stm_links')"),
                     2);
    md_sqlite_checkin(db, c);

    /* every connection of the pool got the per-connection pragmas */
    struct md_sqlite_conn *c1, *c2;
    assert_int_equal(md_sqlite_checkout(db, 100, &c1, &err), MD_OK);
    assert_int_equal(md_sqlite_checkout(db, 100, &c2, &err), MD_OK);
    assert_int_equal(pragma_int(c2, "PRAGMA foreign_keys"), 1);
    assert_int_equal(pragma_int(c1, "PRAGMA foreign_keys"), 1);
    md_sqlite_checkin(db, c1);
    md_sqlite_checkin(db, c2);
    assert_int_equal(md_sqlite_check(db, &err), MD_OK);
    md_sqlite_close(db);

    /* NORMAL when asked */
    db = open_db(fx, 1, false);
    assert_int_equal(md_sqlite_checkout(db, 100, &c, &err), MD_OK);
    assert_int_equal(pragma_int(c, "PRAGMA synchronous"), 1);
    md_sqlite_checkin(db, c);
    md_sqlite_close(db);
}

static void test_migrate_idempotent_and_reopen_keeps_data(void **state)
{
    struct fixture *fx = *state;
    struct md_sqlite *db = open_db(fx, 1, false);
    struct md_sqlite_conn *c;
    struct md_error err;
    assert_int_equal(md_sqlite_checkout(db, 100, &c, &err), MD_OK);
    int64_t version = pragma_int(c, "PRAGMA user_version");
    exec_ok(c, "INSERT INTO stm_entries (scenario_id, domain, status, created_ms, expires_ms,"
               " body) VALUES ('a_r1_x', 'a', 'Compliant', 1, 2, '{}')");
    exec_ok(c, "INSERT INTO stm_links VALUES ('a_r1_x', 'GDPR_X_01')");
    md_sqlite_checkin(db, c);
    md_sqlite_close(db);

    for (int round = 0; round < 2; round++) {
        db = open_db(fx, 3, false);
        assert_int_equal(md_sqlite_checkout(db, 100, &c, &err), MD_OK);
        assert_int_equal(pragma_int(c, "PRAGMA user_version"), version);
        assert_int_equal(pragma_int(c, "SELECT count(*) FROM stm_entries"), 1);
        assert_int_equal(pragma_int(c, "SELECT count(*) FROM stm_links"), 1);
        md_sqlite_checkin(db, c);
        md_sqlite_close(db);
    }
}

static void test_newer_schema_refused(void **state)
{
    struct fixture *fx = *state;
    struct md_sqlite *db = open_db(fx, 1, false);
    struct md_sqlite_conn *c;
    struct md_error err;
    assert_int_equal(md_sqlite_checkout(db, 100, &c, &err), MD_OK);
    exec_ok(c, "PRAGMA user_version = 999");
    md_sqlite_checkin(db, c);
    md_sqlite_close(db);

    struct md_sqlite_options o = {.data_dir = fx->data_dir, .pool_size = 1};
    md_error_clear(&err);
    assert_null(md_sqlite_open(&o, &err));
    assert_int_equal(err.code, MD_E_INTERNAL);
    assert_non_null(strstr(err.msg, "999"));
}

static void test_bad_data_dir(void **state)
{
    struct fixture *fx = *state;
    char file[128];
    snprintf(file, sizeof(file), "%s/plainfile", fx->root);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    struct md_error err;

    /* DATA_DIR is a file */
    struct md_sqlite_options o = {.data_dir = file, .pool_size = 1};
    md_error_clear(&err);
    assert_null(md_sqlite_open(&o, &err));
    assert_int_equal(err.code, MD_E_IO);
    assert_non_null(strstr(err.msg, file));

    /* DATA_DIR below a file cannot be created */
    char below[160];
    snprintf(below, sizeof(below), "%s/sub", file);
    o.data_dir = below;
    md_error_clear(&err);
    assert_null(md_sqlite_open(&o, &err));
    assert_int_equal(err.code, MD_E_IO);
    assert_non_null(strstr(err.msg, "cannot create data directory"));
    assert_non_null(strstr(err.msg, file));

    /* nonsense options */
    o.data_dir = fx->data_dir;
    o.pool_size = 0;
    assert_null(md_sqlite_open(&o, &err));
    assert_int_equal(err.code, MD_E_INVAL);
}

/* ---- pool ------------------------------------------------------------------------------- */

static void test_checkout_timeout(void **state)
{
    struct fixture *fx = *state;
    struct md_sqlite *db = open_db(fx, 2, false);
    struct md_sqlite_conn *a, *b, *c;
    struct md_error err;
    assert_int_equal(md_sqlite_checkout(db, 100, &a, &err), MD_OK);
    assert_int_equal(md_sqlite_checkout(db, 100, &b, &err), MD_OK);
    assert_ptr_not_equal(a, b);
    int size, in_use;
    uint64_t waits;
    md_sqlite_pool_stats(db, &size, &in_use, &waits);
    assert_int_equal(size, 2);
    assert_int_equal(in_use, 2);
    assert_int_equal(waits, 0);

    int64_t t0 = md_mono_ms();
    md_error_clear(&err);
    assert_int_equal(md_sqlite_checkout(db, 60, &c, &err), MD_E_UNAVAIL);
    int64_t took = md_mono_ms() - t0;
    assert_true(took >= 55);
    assert_true(took < 2000);
    assert_null(c);
    assert_int_equal(err.code, MD_E_UNAVAIL);
    assert_null(strstr(err.msg, "sqlite"));
    /* zero timeout: no wait at all */
    assert_int_equal(md_sqlite_checkout(db, 0, &c, &err), MD_E_UNAVAIL);
    md_sqlite_pool_stats(db, &size, &in_use, &waits);
    assert_int_equal(waits, 2);
    assert_int_equal(md_sqlite_pool_timeouts(db), 2);

    md_sqlite_checkin(db, b);
    assert_int_equal(md_sqlite_checkout(db, 0, &c, &err), MD_OK);
    assert_ptr_equal(c, b);
    md_sqlite_checkin(db, c);
    md_sqlite_checkin(db, a);
    md_sqlite_pool_stats(db, &size, &in_use, &waits);
    assert_int_equal(in_use, 0);
    md_sqlite_close(db);
}

struct late_return {
    struct md_sqlite *db;
    struct md_sqlite_conn *c;
};

static void *return_later(void *arg)
{
    struct late_return *lr = arg;
    md_sleep_ms(50);
    md_sqlite_checkin(lr->db, lr->c);
    return NULL;
}

static void test_checkout_waits_for_checkin(void **state)
{
    struct fixture *fx = *state;
    struct md_sqlite *db = open_db(fx, 1, false);
    struct md_sqlite_conn *a, *b;
    struct md_error err;
    assert_int_equal(md_sqlite_checkout(db, 100, &a, &err), MD_OK);
    struct late_return lr = {db, a};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, return_later, &lr), 0);
    assert_int_equal(md_sqlite_checkout(db, 5000, &b, &err), MD_OK);
    assert_ptr_equal(a, b);
    pthread_join(t, NULL);
    uint64_t waits;
    md_sqlite_pool_stats(db, NULL, NULL, &waits);
    assert_int_equal(waits, 1);
    assert_int_equal(md_sqlite_pool_timeouts(db), 0);
    md_sqlite_checkin(db, b);
    md_sqlite_close(db);
}

/* ---- statement cache -------------------------------------------------------------------- */

#define MANY_SQL 200
static char many_sql[MANY_SQL][48];

static void test_statement_cache(void **state)
{
    struct fixture *fx = *state;
    struct md_sqlite *db = open_db(fx, 1, false);
    struct md_sqlite_conn *c;
    struct md_error err;
    assert_int_equal(md_sqlite_checkout(db, 100, &c, &err), MD_OK);

    static const char q1[] = "SELECT ?1 UNION ALL SELECT 2";
    static const char q1_copy[] = "SELECT ?1 UNION ALL SELECT 2";
    sqlite3_stmt *s1 = md_sqlite_prepare(c, q1, &err);
    assert_non_null(s1);
    assert_int_equal(sqlite3_bind_int(s1, 1, 7), SQLITE_OK);
    assert_int_equal(sqlite3_step(s1), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s1, 0), 7);
    /* same pointer: same statement, reset and bindings cleared */
    sqlite3_stmt *s1b = md_sqlite_prepare(c, q1, &err);
    assert_ptr_equal(s1, s1b);
    assert_int_equal(sqlite3_step(s1b), SQLITE_ROW);
    assert_int_equal(sqlite3_column_type(s1b, 0), SQLITE_NULL);
    /* the key is the pointer, not the text */
    sqlite3_stmt *s2 = md_sqlite_prepare(c, q1_copy, &err);
    assert_non_null(s2);
    assert_ptr_not_equal(s1, s2);

    /* a statement left running is reset at checkin (no read transaction kept) */
    md_sqlite_checkin(db, c);
    assert_false(sqlite3_stmt_busy(s1));
    assert_int_equal(md_sqlite_checkout(db, 100, &c, &err), MD_OK);
    assert_ptr_equal(md_sqlite_prepare(c, q1, &err), s1); /* kept across leases */

    /* more distinct statements than cache slots: all work, overflow reused in a lease */
    for (int i = 0; i < MANY_SQL; i++)
        snprintf(many_sql[i], sizeof(many_sql[i]), "SELECT %d", i);
    sqlite3_stmt *first[MANY_SQL];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < MANY_SQL; i++) {
            sqlite3_stmt *st = md_sqlite_prepare(c, many_sql[i], &err);
            assert_non_null(st);
            if (round == 0)
                first[i] = st;
            else
                assert_ptr_equal(st, first[i]);
            assert_int_equal(sqlite3_step(st), SQLITE_ROW);
            assert_int_equal(sqlite3_column_int(st, 0), i);
        }
    md_sqlite_checkin(db, c);
    assert_int_equal(md_sqlite_checkout(db, 100, &c, &err), MD_OK);
    for (int i = 0; i < MANY_SQL; i++) {
        sqlite3_stmt *st = md_sqlite_prepare(c, many_sql[i], &err);
        assert_non_null(st);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), i);
    }

    /* a syntax error is reported without SQLite text in msg */
    static const char bad[] = "SELEKT 1";
    md_error_clear(&err);
    assert_null(md_sqlite_prepare(c, bad, &err));
    assert_int_equal(err.code, MD_E_INTERNAL);
    assert_null(strstr(err.msg, "syntax"));
    assert_non_null(strstr(err.detail, "syntax"));
    md_sqlite_checkin(db, c);
    md_sqlite_close(db);
}

/* ---- transactions and errors ------------------------------------------------------------ */

static void test_transactions(void **state)
{
    struct fixture *fx = *state;
    struct md_sqlite *db = open_db(fx, 2, false);
    struct md_sqlite_conn *a, *b;
    struct md_error err;
    assert_int_equal(md_sqlite_checkout(db, 100, &a, &err), MD_OK);
    assert_int_equal(md_sqlite_checkout(db, 100, &b, &err), MD_OK);

    assert_int_equal(md_sqlite_begin(a, &err), MD_OK);
    assert_int_equal(md_sqlite_begin(a, &err), MD_E_INTERNAL); /* no nesting */
    exec_ok(a, "INSERT INTO stm_entries (scenario_id, domain, status, created_ms, expires_ms,"
               " body) VALUES ('a_r1_x', 'a', 'Compliant', 1, 2, '{}')");
    /* b does not see uncommitted data (WAL snapshot) */
    assert_int_equal(pragma_int(b, "SELECT count(*) FROM stm_entries"), 0);
    assert_int_equal(md_sqlite_commit(a, &err), MD_OK);
    assert_int_equal(pragma_int(b, "SELECT count(*) FROM stm_entries"), 1);

    assert_int_equal(md_sqlite_begin(a, &err), MD_OK);
    exec_ok(a, "DELETE FROM stm_entries");
    md_sqlite_rollback(a);
    assert_int_equal(pragma_int(b, "SELECT count(*) FROM stm_entries"), 1);

    /* a failing statement maps to a status; constraint -> conflict */
    assert_int_equal(md_sqlite_begin(a, &err), MD_OK);
    static const char dup[] = "INSERT INTO stm_entries (scenario_id, domain, status, created_ms,"
                              " expires_ms, body) VALUES ('a_r1_x', 'a', 'Compliant', 1, 2, '{}')";
    sqlite3_stmt *st = md_sqlite_prepare(a, dup, &err);
    assert_non_null(st);
    int rc = sqlite3_step(st);
    assert_int_equal(rc & 0xff, SQLITE_CONSTRAINT);
    md_error_clear(&err);
    assert_int_equal(md_sqlite_error(a, rc, "adding a row", &err), MD_E_CONFLICT);
    assert_string_equal(err.msg, "adding a row failed: conflicting data");
    assert_non_null(strstr(err.detail, "UNIQUE"));
    /* an open transaction is rolled back at checkin and the write lock released */
    exec_ok(a, "DELETE FROM stm_entries");
    md_sqlite_checkin(db, a);
    assert_int_equal(pragma_int(b, "SELECT count(*) FROM stm_entries"), 1);
    assert_int_equal(md_sqlite_begin(b, &err), MD_OK);
    assert_int_equal(md_sqlite_commit(b, &err), MD_OK);

    /* while one lease writes, another lease's begin waits and then gives up */
    assert_int_equal(md_sqlite_checkout(db, 100, &a, &err), MD_OK);
    assert_int_equal(md_sqlite_begin(a, &err), MD_OK);
    int64_t t0 = md_mono_ms();
    assert_int_equal(md_sqlite_begin(b, &err), MD_E_UNAVAIL); /* busy_timeout 2000 ms */
    assert_true(md_mono_ms() - t0 >= 1900);
    assert_int_equal(md_sqlite_commit(a, &err), MD_OK);
    assert_int_equal(md_sqlite_begin(b, &err), MD_OK);
    md_sqlite_rollback(b);
    md_sqlite_checkin(db, a);
    md_sqlite_checkin(db, b);
    md_sqlite_close(db);
}

static void test_error_mapping(void **state)
{
    (void)state;
    static const struct {
        int rc;
        enum md_status st;
    } cases[] = {
        {SQLITE_BUSY, MD_E_UNAVAIL},        {SQLITE_LOCKED, MD_E_UNAVAIL},
        {SQLITE_BUSY_SNAPSHOT, MD_E_UNAVAIL}, {SQLITE_NOMEM, MD_E_NOMEM},
        {SQLITE_FULL, MD_E_IO},             {SQLITE_IOERR_WRITE, MD_E_IO},
        {SQLITE_CANTOPEN, MD_E_IO},         {SQLITE_CONSTRAINT_UNIQUE, MD_E_CONFLICT},
        {SQLITE_ERROR, MD_E_INTERNAL},      {SQLITE_MISUSE, MD_E_INTERNAL},
    };
    for (size_t i = 0; i < MD_ARRAY_LEN(cases); i++) {
        struct md_error err;
        md_error_clear(&err);
        assert_int_equal(md_sqlite_error(NULL, cases[i].rc, "testing", &err), cases[i].st);
        assert_int_equal(err.code, cases[i].st);
        assert_non_null(strstr(err.msg, "testing failed"));
        assert_non_null(strstr(err.detail, sqlite3_errstr(cases[i].rc)));
        if (cases[i].st != MD_E_NOMEM) /* "out of memory" is also our own wording */
            assert_null(strstr(err.msg, sqlite3_errstr(cases[i].rc)));
    }
    assert_int_equal(md_sqlite_error(NULL, SQLITE_BUSY, "x", NULL), MD_E_UNAVAIL);
}

int main(void)
{
    umask(022); /* the modes checked above assume a usual umask */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_dir_and_migrates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_idempotent_and_reopen_keeps_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkout_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkout_waits_for_checkin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test(test_error_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
