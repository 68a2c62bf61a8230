/* test_config.c — sources, precedence, typed validation, masking, the example file. */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "memoryd/config.h"

static char tmpdir[] = "/tmp/memoryd-cfg-XXXXXX";

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmpdir))
        return -1;
    /* run from an empty directory so that no stray ./.env is picked up */
    return chdir(tmpdir);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static enum md_status load(struct md_config *cfg, int argc, const char **argv, const char **env,
                           struct md_error *err)
{
    enum md_cfg_action action;
    return md_config_load(cfg, argc, (char **)(uintptr_t)argv, (char **)(uintptr_t)env, &action,
                          err);
}

static void test_defaults(void **state)
{
    (void)state;
    struct md_config cfg;
    struct md_error err;
    const char *argv[] = {"memoryd", NULL};
    const char *env[] = {NULL};
    assert_int_equal(load(&cfg, 1, argv, env, &err), MD_OK);
    assert_string_equal(cfg.api_host, "127.0.0.1");
    assert_int_equal(cfg.api_port, 8000);
    assert_int_equal(cfg.stm_backend, MD_STM_EMBEDDED);
    assert_int_equal(cfg.ltm_backend, MD_LTM_EMBEDDED);
    assert_int_equal(cfg.memory_stm_ttl_hours, 24);
    assert_int_equal(cfg.api_thread_mode, MD_THREADS_POOL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN); /* API_WORKERS=0: one per CPU */
    assert_int_equal(cfg.api_workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    assert_int_equal(cfg.redis_max_connections, 50);
    assert_true(cfg.redis_socket_timeout == 30.0);
    assert_true(cfg.redis_retry_on_timeout);
    assert_int_equal(cfg.neo4j_max_connection_pool_size, 100);
    assert_string_equal(cfg.neo4j_http_base, "http://localhost:7474");
    assert_true(cfg.neo4j_uri_mapped);
    assert_int_equal(cfg.metrics_collection_interval, 60);
    assert_true(cfg.performance_alerts_enabled);
    assert_int_equal(cfg.n_api_keys, 0);
    for (int k = 0; k < MD_CFG_COUNT; k++)
        assert_int_equal(cfg.source[k], MD_SRC_DEFAULT);
    md_config_release(&cfg);
}

static void test_precedence(void **state)
{
    (void)state;
    write_file("m.conf", "# comment\n[api]\nport = 9001\nworkers = 3\n[redis]\nhost = fromfile\n"
                         "db = 2\n[log]\nlevel = debug\n");
    write_file("m.env", "export API_PORT=9002\nREDIS_HOST='fromdotenv'\nUNRELATED=1\n"
                        "API_WORKERS=\"5\"\n");
    const char *env[] = {"API_PORT=9003", "OTHER=x", NULL};
    const char *argv[] = {"memoryd", "--config", "m.conf", "--env-file=m.env", "--api-port",
                          "9004", NULL};
    struct md_config cfg;
    struct md_error err;
    assert_int_equal(load(&cfg, 6, argv, env, &err), MD_OK);
    assert_int_equal(cfg.api_port, 9004); /* flag beats env beats .env beats file */
    assert_int_equal(cfg.source[MD_CFGK_API_PORT], MD_SRC_FLAG);
    assert_string_equal(cfg.redis_host, "fromdotenv");
    assert_int_equal(cfg.source[MD_CFGK_REDIS_HOST], MD_SRC_DOTENV);
    assert_int_equal(cfg.api_workers, 5);
    assert_int_equal(cfg.redis_db, 2);
    assert_int_equal(cfg.source[MD_CFGK_REDIS_DB], MD_SRC_FILE);
    assert_int_equal(cfg.log_level, 0);
    md_config_release(&cfg);

    const char *argv2[] = {"memoryd", "--config", "m.conf", "--env-file=m.env", NULL};
    assert_int_equal(load(&cfg, 4, argv2, env, &err), MD_OK);
    assert_int_equal(cfg.api_port, 9003);
    assert_int_equal(cfg.source[MD_CFGK_API_PORT], MD_SRC_ENV);
    md_config_release(&cfg);
}

static void expect_error(const char **argv, int argc, const char **env, const char *needle)
{
    struct md_config cfg;
    struct md_error err;
    assert_int_not_equal(load(&cfg, argc, argv, env, &err), MD_OK);
    if (!strstr(err.msg, needle))
        fail_msg("error '%s' does not mention '%s'", err.msg, needle);
}

static void test_bad_values_named(void **state)
{
    (void)state;
    const char *argv[] = {"memoryd", NULL};
    const char *e1[] = {"API_PORT=70000", NULL};
    expect_error(argv, 1, e1, "API_PORT");
    expect_error(argv, 1, e1, "70000");
    expect_error(argv, 1, e1, "1..65535");
    const char *e2[] = {"STM_BACKEND=memcached", NULL};
    expect_error(argv, 1, e2, "embedded|redis");
    const char *e3[] = {"REDIS_RETRY_ON_TIMEOUT=maybe", NULL};
    expect_error(argv, 1, e3, "REDIS_RETRY_ON_TIMEOUT");
    const char *e4[] = {"REDIS_SOCKET_TIMEOUT=-1", NULL};
    expect_error(argv, 1, e4, "REDIS_SOCKET_TIMEOUT");
    const char *e5[] = {"API_PORT=80x", NULL};
    expect_error(argv, 1, e5, "environment");
    const char *e6[] = {"NEO4J_URI=ftp://x", NULL};
    expect_error(argv, 1, e6, "NEO4J_URI");
    const char *e7[] = {"LOG_LEVEL=loud", NULL};
    expect_error(argv, 1, e7, "LOG_LEVEL");
    const char *e8[] = {"MEMORY_STM_TTL_HOURS=0", NULL};
    expect_error(argv, 1, e8, "MEMORY_STM_TTL_HOURS");
    const char *e9[] = {"API_WORKERS=", NULL};
    expect_error(argv, 1, e9, "API_WORKERS");
    const char *argv2[] = {"memoryd", "--no-such-option", NULL};
    const char *none[] = {NULL};
    expect_error(argv2, 2, none, "--no-such-option");
    const char *argv3[] = {"memoryd", "--config", "/nonexistent/m.conf", NULL};
    expect_error(argv3, 3, none, "/nonexistent/m.conf");
    write_file("bad.conf", "[api]\nprot = 1\n");
    const char *argv4[] = {"memoryd", "--config", "bad.conf", NULL};
    expect_error(argv4, 3, none, "bad.conf:2");
    write_file("bad2.conf", "[api]\nport = 0\n");
    const char *argv5[] = {"memoryd", "--config", "bad2.conf", NULL};
    expect_error(argv5, 3, none, "bad2.conf:2");
}

static void test_secrets_never_echoed(void **state)
{
    (void)state;
    const char *argv[] = {"memoryd", NULL};
    const char *env[] = {"API_KEYS=good-key, other-key ,", "REDIS_PASSWORD=s3cret-pw",
                         "NEO4J_PASSWORD=neo-pw", NULL};
    struct md_config cfg;
    struct md_error err;
    assert_int_equal(load(&cfg, 1, argv, env, &err), MD_OK);
    assert_int_equal(cfg.n_api_keys, 2);
    assert_string_equal(cfg.api_key_list[0], "good-key");
    assert_string_equal(cfg.api_key_list[1], "other-key");
    struct md_buf b;
    md_buf_init(&b, 1 << 20);
    assert_int_equal(md_config_dump(&cfg, &b), MD_OK);
    assert_null(strstr(b.data, "s3cret-pw"));
    assert_null(strstr(b.data, "neo-pw"));
    assert_null(strstr(b.data, "good-key"));
    assert_non_null(strstr(b.data, "REDIS_PASSWORD=********"));
    assert_non_null(strstr(b.data, "API_PORT=8000  # default"));
    md_buf_release(&b);
    md_config_release(&cfg);
    /* a bad secret value is reported without the value */
    const char *env2[] = {"API_KEYS=has space-in-it", NULL};
    assert_int_not_equal(load(&cfg, 1, argv, env2, &err), MD_OK);
    assert_non_null(strstr(err.msg, "API_KEYS"));
    assert_null(strstr(err.msg, "space-in-it"));
}

static void test_neo4j_uri_forms(void **state)
{
    (void)state;
    static const struct {
        const char *uri;
        const char *base;
        bool mapped;
    } cases[] = {
        {"http://127.0.0.1:7475", "http://127.0.0.1:7475", false},
        {"https://db.example.com", "https://db.example.com:7473", false},
        {"http://db:7474/", "http://db:7474", false},
        {"bolt://neo4j:7687", "http://neo4j:7474", true},
        {"neo4j+s://db.example.com:7687", "https://db.example.com:7473", true},
        {"http://[::1]:7474", "http://[::1]:7474", false},
    };
    for (size_t i = 0; i < MD_ARRAY_LEN(cases); i++) {
        char var[256];
        snprintf(var, sizeof(var), "NEO4J_URI=%s", cases[i].uri);
        const char *argv[] = {"memoryd", NULL};
        const char *env[] = {var, NULL};
        struct md_config cfg;
        struct md_error err;
        assert_int_equal(load(&cfg, 1, argv, env, &err), MD_OK);
        assert_string_equal(cfg.neo4j_http_base, cases[i].base);
        assert_int_equal(cfg.neo4j_uri_mapped, cases[i].mapped);
        md_config_release(&cfg);
    }
    static const char *const bad[] = {"http://", "http://user:pw@host:7474", "http://h:0",
                                      "http://h:99999", "http://h:7474/path", "neo4j"};
    for (size_t i = 0; i < MD_ARRAY_LEN(bad); i++) {
        char var[256];
        snprintf(var, sizeof(var), "NEO4J_URI=%s", bad[i]);
        const char *argv[] = {"memoryd", NULL};
        const char *env[] = {var, NULL};
        expect_error(argv, 1, env, "NEO4J_URI");
    }
}

static void test_actions_and_bool_flags(void **state)
{
    (void)state;
    struct md_config cfg;
    struct md_error err;
    enum md_cfg_action action;
    const char *argv[] = {"memoryd", "--check-config", "--log-access", NULL};
    const char *env[] = {NULL};
    assert_int_equal(md_config_load(&cfg, 3, (char **)(uintptr_t)argv, (char **)(uintptr_t)env,
                                    &action, &err),
                     MD_OK);
    assert_int_equal(action, MD_CFG_CHECK);
    assert_true(cfg.log_access);
    md_config_release(&cfg);
    const char *argv2[] = {"memoryd", "--version", NULL};
    assert_int_equal(md_config_load(&cfg, 2, (char **)(uintptr_t)argv2, (char **)(uintptr_t)env,
                                    &action, &err),
                     MD_OK);
    assert_int_equal(action, MD_CFG_VERSION);
    md_config_release(&cfg);
}

/* Every setting of the table is documented in .env.example and the ini example. */
static void test_examples_cover_every_setting(void **state)
{
    (void)state;
    static const char *const files[] = {MD_SOURCE_DIR "/.env.example",
                                        MD_SOURCE_DIR "/config/memoryd.conf.example"};
    for (size_t f = 0; f < MD_ARRAY_LEN(files); f++) {
        FILE *fp = fopen(files[f], "r");
        if (!fp)
            fail_msg("cannot open %s", files[f]);
        static char text[1 << 17];
        size_t n = fread(text, 1, sizeof(text) - 1, fp);
        text[n] = '\0';
        fclose(fp);
        for (int k = 0; k < MD_CFG_COUNT; k++) {
            const char *name = md_config_key_name(k);
            char needle[160];
            if (f == 0) {
                snprintf(needle, sizeof(needle), "%s=", name);
            } else {
                /* ini form: "key =" under its section; check the key part */
                const char *us = strchr(name, '_');
                size_t o = 0;
                for (const char *p = us + 1; *p && o + 1 < sizeof(needle); p++)
                    needle[o++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
                needle[o] = '\0';
                strncat(needle, " =", sizeof(needle) - strlen(needle) - 1);
            }
            if (!strstr(text, needle))
                fail_msg("%s does not document %s", files[f], name);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_bad_values_named),
        cmocka_unit_test(test_secrets_never_echoed),
        cmocka_unit_test(test_neo4j_uri_forms),
        cmocka_unit_test(test_actions_and_bool_flags),
        cmocka_unit_test(test_examples_cover_every_setting),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
