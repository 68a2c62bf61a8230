/*
 * fuzz_config.c — md_config_load on an ini file, a .env file, argv and envp
 * built from the input.
 *
 * Input: byte 0 holds flags — 1: pass --config fuzz.ini, 2: pass
 * --env-file fuzz.env, 4: write ./.env (read when no --env-file is given),
 * 8: the planted secrets are invalid values. The rest is split at lines
 * that are exactly "%%" into: ini text, .env text, argv (one per line),
 * envp (one per line).
 *
 * The files live in a private directory on tmpfs ($MD_FUZZ_TMPDIR, else a
 * new one under /dev/shm), which is also the working directory (so corpus
 * and artifact paths given to this target must be absolute), so ./.env and relative file names in the
 * input (API_KEYS_FILE=fuzz.env …) stay inside it. Inputs with a '/' that
 * is not part of "://" are skipped: they could name /dev/zero or a FIFO,
 * which the loader would read forever — a property of any file-reading
 * program, not a bug.
 *
 * Invariants:
 *   - failure leaves cfg all zero with a message; success can be dumped,
 *     and the dump (secrets aside) loads again to the same dump;
 *   - secrets planted in the environment never appear in an error message
 *     or in the dump;
 *   - no leaks on any path (LeakSanitizer).
 */
#include "memoryd/compat.h"

#include <errno.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "memoryd/buf.h"
#include "memoryd/config.h"

#define MARKER "Zq8mark"

static char dir[4096];
static bool own_dir;

static void cleanup(void)
{
    static const char *const files[] = {"fuzz.ini", "fuzz.env", ".env", "fuzz-none.env"};
    for (size_t i = 0; i < MD_ARRAY_LEN(files); i++)
        unlink(files[i]);
    if (own_dir && chdir("/") == 0)
        rmdir(dir);
}

/* Work in $MD_FUZZ_TMPDIR (scripts/ci/fuzz.sh makes one on tmpfs) or a new /dev/shm dir. */
static void init_once(void)
{
    if (dir[0])
        return;
    const char *given = getenv("MD_FUZZ_TMPDIR");
    if (given && *given) {
        snprintf(dir, sizeof(dir), "%s", given);
    } else {
        snprintf(dir, sizeof(dir), "/dev/shm/md-fuzz-config-XXXXXX");
        if (!mkdtemp(dir)) {
            snprintf(dir, sizeof(dir), "/tmp/md-fuzz-config-XXXXXX");
            FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
        }
        own_dir = true;
    }
    FUZZ_CHECK(chdir(dir) == 0, "chdir %s: %s", dir, strerror(errno));
    atexit(cleanup);
}

static void write_file(const char *name, const char *text, size_t len)
{
    FILE *f = fopen(name, "w");
    FUZZ_CHECK(f != NULL, "cannot write %s/%s: %s", dir, name, strerror(errno));
    FUZZ_CHECK(fwrite(text, 1, len, f) == len, "short write");
    fclose(f);
}

/* Split s into lines (in place); returns the count stored in v[0..cap). */
static size_t lines(char *s, char **v, size_t cap)
{
    size_t n = 0;
    while (*s && n < cap) {
        v[n++] = s;
        char *nl = strchr(s, '\n');
        if (!nl)
            break;
        *nl = '\0';
        s = nl + 1;
    }
    return n;
}

static bool safe_paths(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '/')
            continue;
        bool in_scheme = (i >= 1 && data[i - 1] == ':' && i + 1 < size && data[i + 1] == '/') ||
                         (i >= 2 && data[i - 2] == ':' && data[i - 1] == '/');
        if (!in_scheme)
            return false;
    }
    return true;
}

/* Dump lines "NAME=value  # source" back into envp strings (secrets dropped). */
static size_t dump_to_env(char *dump, char **env, size_t cap)
{
    size_t n = 0;
    char *line = dump;
    while (line && *line && n < cap) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *hash = strstr(line, "  # ");
        char *last = hash;
        while (hash) { /* the comment is the last "  # " */
            last = hash;
            hash = strstr(hash + 1, "  # ");
        }
        if (last)
            *last = '\0';
        char *eq = strchr(line, '=');
        bool secret = false;
        for (int k = 0; eq && k < MD_CFG_COUNT; k++)
            if (md_config_key_secret((enum md_cfg_key)k) &&
                strlen(md_config_key_name((enum md_cfg_key)k)) == (size_t)(eq - line) &&
                strncmp(line, md_config_key_name((enum md_cfg_key)k), (size_t)(eq - line)) == 0)
                secret = true;
        if (eq && !secret)
            env[n++] = line;
        line = nl ? nl + 1 : NULL;
    }
    return n;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static void check_reload(const struct md_config *cfg, const char *dump)
{
    for (const char *p = dump; *p; p++)
        if (*p == '\r')
            return; /* a value with a line break does not survive a line format */
    size_t lines_n = 0;
    for (const char *p = dump; *p; p++)
        lines_n += *p == '\n';
    if (lines_n != MD_CFG_COUNT)
        return; /* a value with an embedded newline: same */
    char *copy = strdup(dump);
    FUZZ_CHECK(copy != NULL, "out of memory");
    char *env[MD_CFG_COUNT + 8];
    size_t n = dump_to_env(copy, env, MD_CFG_COUNT);
    /* secrets and key files are not in the dump: carry them over */
    char keys[1200], pw[1200], rpw[1200], cs[1200];
    snprintf(keys, sizeof(keys), "API_KEYS=%s", cfg->api_keys);
    snprintf(pw, sizeof(pw), "NEO4J_PASSWORD=%s", cfg->neo4j_password);
    snprintf(rpw, sizeof(rpw), "REDIS_PASSWORD=%s", cfg->redis_password);
    snprintf(cs, sizeof(cs), "CURSOR_SECRET=%s", cfg->cursor_secret);
    env[n++] = keys;
    env[n++] = pw;
    env[n++] = rpw;
    env[n++] = cs;
    env[n] = NULL;
    char arg0[] = "memoryd", envfile[] = "--env-file=fuzz-none.env";
    char *argv[] = {arg0, envfile, NULL};
    write_file("fuzz-none.env", "", 0);
    struct md_config again;
    enum md_cfg_action action;
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = md_config_load(&again, 2, argv, env, &action, &err);
    if (strlen(cfg->api_keys) < 1100 && strlen(cfg->neo4j_password) < 1100 &&
        strlen(cfg->redis_password) < 1100 && strlen(cfg->cursor_secret) < 1100) {
        FUZZ_CHECK(st == MD_OK, "a dumped configuration does not load again: %s\n%s", err.msg,
                   dump);
        struct md_buf b;
        md_buf_init(&b, 1 << 20);
        FUZZ_CHECK(md_config_dump(&again, &b) == MD_OK, "dump");
        /* compare values only (sources differ) */
        char *x = strdup(dump), *y = strdup(b.data);
        FUZZ_CHECK(x && y, "out of memory");
        char *xv[MD_CFG_COUNT + 1], *yv[MD_CFG_COUNT + 1];
        size_t xn = dump_to_env(x, xv, MD_CFG_COUNT), yn = dump_to_env(y, yv, MD_CFG_COUNT);
        FUZZ_CHECK(xn == yn, "dump sizes differ");
        for (size_t i = 0; i < xn; i++)
            FUZZ_CHECK(strcmp(xv[i], yv[i]) == 0, "reloaded value differs: '%s' vs '%s'", xv[i],
                       yv[i]);
        free(x);
        free(y);
        md_buf_release(&b);
    }
    if (st == MD_OK)
        md_config_release(&again);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size < 1 || size > 16384 || !safe_paths(data, size))
        return 0;
    unsigned flags = data[0];
    char *text = fuzz_strndup(data + 1, size - 1);
    if (!text)
        return 0;
    bool marker_in_input = strstr(text, MARKER) != NULL;
    /* sections separated by "%%" lines */
    static char empty[] = "";
    char *part[4] = {text, empty, empty, empty};
    char *p = text;
    for (size_t i = 1; i < 4; i++) {
        char *sep = strstr(p, "\n%%\n");
        if (!sep)
            break;
        *sep = '\0';
        part[i] = sep + 4;
        p = part[i];
    }
    unlink(".env");
    write_file("fuzz.ini", part[0], strlen(part[0]));
    write_file("fuzz.env", part[1], strlen(part[1]));
    if (flags & 4)
        write_file(".env", part[1], strlen(part[1]));

    char *argv[40], *envp[40];
    size_t argc = 0, envc = 0;
    char arg0[] = "memoryd", cfgflag[] = "--config=fuzz.ini", envflag[] = "--env-file";
    char envname[] = "fuzz.env";
    argv[argc++] = arg0;
    if (flags & 1)
        argv[argc++] = cfgflag;
    if (flags & 2) {
        argv[argc++] = envflag;
        argv[argc++] = envname;
    }
    argc += lines(part[2], argv + argc, 30);
    argv[argc] = NULL;
    /* planted secrets first; the input's own environment may override them */
    char sec[4][64];
    for (int k = 0, s = 0; k < MD_CFG_COUNT && s < 4; k++)
        if (md_config_key_secret((enum md_cfg_key)k)) {
            snprintf(sec[s], sizeof(sec[s]), "%s=%s", md_config_key_name((enum md_cfg_key)k),
                     (flags & 8) ? MARKER " \001bad" : MARKER "-value");
            envp[envc++] = sec[s++];
        }
    envc += lines(part[3], envp + envc, 30);
    envp[envc] = NULL;

    struct md_config cfg;
    memset(&cfg, 0x5A, sizeof(cfg));
    enum md_cfg_action action;
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = md_config_load(&cfg, (int)argc, argv, envp, &action, &err);
    if (st != MD_OK) {
        FUZZ_CHECK(err.code == st && err.msg[0], "failure without a message");
        FUZZ_CHECK(all_zero(&cfg, sizeof(cfg)), "failed load left cfg set");
        if (!marker_in_input)
            FUZZ_CHECK(!strstr(err.msg, MARKER), "a secret leaked into '%s'", err.msg);
        md_config_release(&cfg); /* accepted on a zeroed config */
        free(text);
        return 0;
    }
    if (action == MD_CFG_HELP || action == MD_CFG_VERSION) {
        FUZZ_CHECK(all_zero(&cfg, sizeof(cfg)), "help/version left cfg set");
        free(text);
        return 0;
    }
    struct md_buf b;
    md_buf_init(&b, 1 << 20);
    FUZZ_CHECK(md_config_dump(&cfg, &b) == MD_OK, "dump failed");
    if (!marker_in_input)
        FUZZ_CHECK(!strstr(b.data, MARKER), "a secret leaked into the dump");
    FUZZ_CHECK(cfg.neo4j_http_base && strncmp(cfg.neo4j_http_base, "http", 4) == 0,
               "neo4j base '%s'", cfg.neo4j_http_base ? cfg.neo4j_http_base : "(null)");
    for (size_t i = 0; i < cfg.n_api_keys; i++)
        FUZZ_CHECK(cfg.api_key_list[i][0] && strlen(cfg.api_key_list[i]) <= 512,
                   "api key %zu", i);
    check_reload(&cfg, b.data);
    md_buf_release(&b);
    md_config_release(&cfg);
    free(text);
    return 0;
}
