/*
 * main.c — start-up order, the signal loop and the shutdown order.
 *
 * Start-up: configuration (a bad value stops here with a message naming it),
 * logging, signal mask (every thread inherits it: signals are taken only by
 * sigwait() below, as ordinary code), libcurl's global state (before any
 * thread), the stores, the janitor, and last the HTTP server.
 * Shutdown (SIGTERM/SIGINT): stop accepting and let in-flight requests
 * finish (API_SHUTDOWN_TIMEOUT), then stop the background thread, close the
 * stores and exit 0 — the reverse of start-up.
 */
#include "memoryd/compat.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h> /* environ */

#include "memoryd/alerts.h"
#include "memoryd/api.h"
#include "memoryd/app.h"
#include "memoryd/cache.h"
#include "memoryd/cache_sync.h"
#include "memoryd/clock.h"
#include "memoryd/config.h"
#include "memoryd/cursor.h"
#include "memoryd/health.h"
#include "memoryd/http.h"
#include "memoryd/janitor.h"
#include "memoryd/log.h"
#include "memoryd/ltm.h"
#include "memoryd/metrics.h"
#include "memoryd/ratelimit.h"
#include "memoryd/redis_io.h"
#include "memoryd/router.h"
#include "memoryd/sqlite_db.h"
#include "memoryd/stm.h"
#include "memoryd/text.h"


#define EXIT_CONFIG 2 /* bad settings or arguments */
#define EXIT_START 1  /* could not start (port in use, store unusable) */

struct daemon {
    struct md_config cfg;
    struct md_app app;
    struct md_router *router;
    struct md_janitor *janitor;
    struct md_http_server *http;
};

static int load_config(struct daemon *d, int argc, char **argv)
{
    struct md_error err;
    md_error_clear(&err);
    enum md_cfg_action action;
    if (md_config_load(&d->cfg, argc, argv, environ, &action, &err) != MD_OK) {
        fprintf(stderr, "memoryd: %s\n", err.msg);
        return EXIT_CONFIG;
    }
    switch (action) {
    case MD_CFG_HELP:
        md_config_usage(stdout, argv[0]);
        return 0;
    case MD_CFG_VERSION:
        printf("memoryd %s\n", MD_VERSION_STRING);
        return 0;
    case MD_CFG_CHECK: {
        struct md_buf b;
        md_buf_init(&b, 1 << 20);
        int rc = md_config_dump(&d->cfg, &b) == MD_OK ? 0 : EXIT_START;
        if (rc == 0)
            printf("configuration is valid\n%s", b.data ? b.data : "");
        md_buf_release(&b);
        return rc;
    }
    case MD_CFG_RUN: return -1;
    }
    return -1;
}

static int open_stores(struct daemon *d)
{
    struct md_config *cfg = &d->cfg;
    struct md_error err;
    md_error_clear(&err);
    if (cfg->stm_backend == MD_STM_EMBEDDED || cfg->ltm_backend == MD_LTM_EMBEDDED) {
        struct md_sqlite_options so = {
            .data_dir = cfg->data_dir,
            .pool_size = (int)cfg->api_workers + 2,
            .synchronous_full = cfg->embedded_synchronous == MD_SYNC_FULL,
            .busy_timeout_ms = 5000,
        };
        d->app.sqlite = md_sqlite_open(&so, &err);
        if (!d->app.sqlite) {
            md_log_crit("main", "cannot open the embedded store in '%s': %s%s%s", cfg->data_dir,
                        err.msg, err.detail[0] ? ": " : "", err.detail);
            return EXIT_START;
        }
    }
    if (cfg->stm_backend == MD_STM_REDIS)
        d->app.stm = md_stm_redis_new(cfg, &err);
    else
        d->app.stm = md_stm_sqlite_new(d->app.sqlite, &err);
    if (!d->app.stm) {
        md_log_crit("main", "cannot set up the STM store: %s%s%s", err.msg,
                    err.detail[0] ? ": " : "", err.detail);
        return EXIT_START;
    }
    if (cfg->ltm_backend == MD_LTM_NEO4J)
        d->app.ltm = md_ltm_neo4j_new(cfg, &err);
    else
        d->app.ltm = md_ltm_sqlite_new(d->app.sqlite, &err);
    if (!d->app.ltm) {
        md_log_crit("main", "cannot set up the LTM store: %s%s%s", err.msg,
                    err.detail[0] ? ": " : "", err.detail);
        return EXIT_START;
    }
    /* Every store call is timed and counted from here on. */
    size_t n_routes;
    const struct md_route *routes = md_api_routes(&n_routes);
    d->app.metrics = md_metrics_new(routes, n_routes, &err);
    if (!d->app.metrics) {
        md_log_crit("main", "cannot set up metrics: %s", err.msg);
        return EXIT_START;
    }
    struct md_stm *stm = md_metrics_wrap_stm(d->app.metrics, d->app.stm, &err);
    struct md_ltm *ltm = stm ? md_metrics_wrap_ltm(d->app.metrics, d->app.ltm, &err) : NULL;
    if (!stm || !ltm) {
        if (stm)
            d->app.stm = stm;
        md_log_crit("main", "cannot set up metrics: %s", err.msg);
        return EXIT_START;
    }
    d->app.stm = stm;
    d->app.ltm_inner = d->app.ltm;
    d->app.ltm = ltm;
    /* One attempt now; if the store is not up yet the janitor keeps trying
     * and /ready answers 503 until the schema is in place. */
    if (d->app.ltm->ops->ensure_schema(d->app.ltm, &err) == MD_OK)
        atomic_store(&d->app.ltm_schema_ready, true);
    else
        md_log_warn("main", "LTM schema not in place yet (%s%s%s); retrying in the background",
                    err.msg, err.detail[0] ? ": " : "", err.detail);
    return 0;
}

/* The cache, peer invalidation, alerts, health probes and the limiter. */
static int start_services(struct daemon *d)
{
    struct md_config *cfg = &d->cfg;
    struct md_error err;
    md_error_clear(&err);
    struct md_cache_options co = {
        .max_entries = (size_t)cfg->cache_max_entries,
        .max_bytes = (size_t)cfg->cache_max_bytes,
        .ttl_ms = cfg->cache_ttl_seconds * 1000,
    };
    d->app.cache = md_cache_new(&co, &err);
    if (!d->app.cache) {
        md_log_crit("main", "cannot set up the cache: %s", err.msg);
        return EXIT_START;
    }
    if (cfg->stm_backend == MD_STM_REDIS && cfg->cache_max_entries > 0) {
        d->app.cache_sync = md_cache_sync_start(d->app.cache, cfg, &err);
        if (!d->app.cache_sync) {
            md_log_crit("main", "cannot start cache invalidation sharing: %s", err.msg);
            return EXIT_START;
        }
    }
    struct md_alerts_options ao;
    md_alerts_options_from_config(cfg, &ao);
    ao.value_fn = md_metrics_alert_value;
    ao.value_ctx = d->app.metrics;
    d->app.alerts = md_alerts_new(&ao, &err);
    if (!d->app.alerts || md_alerts_start(d->app.alerts, &err) != MD_OK) {
        md_log_crit("main", "cannot start alerts: %s", err.msg);
        return EXIT_START;
    }
    d->app.health = md_health_start(&d->app, cfg->health_probe_interval, &err);
    if (!d->app.health) {
        md_log_crit("main", "cannot start the health probes: %s", err.msg);
        return EXIT_START;
    }
    d->app.ratelimit = md_ratelimit_new(cfg->rate_limit_rps, cfg->rate_limit_burst);
    if (cfg->rate_limit_rps > 0 && !d->app.ratelimit) {
        md_log_crit("main", "out of memory setting up the rate limiter");
        return EXIT_START;
    }
    return 0;
}

static int start_serving(struct daemon *d)
{
    struct md_config *cfg = &d->cfg;
    struct md_error err;
    md_error_clear(&err);
    size_t n_routes;
    const struct md_route *routes = md_api_routes(&n_routes);
    d->router = md_router_new(routes, n_routes, &err);
    if (!d->router) {
        md_log_crit("main", "cannot build the route table: %s", err.msg);
        return EXIT_START;
    }
    d->janitor = md_janitor_start(&d->app, &err);
    if (!d->janitor) {
        md_log_crit("main", "%s", err.msg);
        return EXIT_START;
    }
    struct md_http_options ho = {
        .host = cfg->api_host,
        .port = (int)cfg->api_port,
        .thread_per_connection = cfg->api_thread_mode == MD_THREADS_PER_CONNECTION,
        .workers = (int)cfg->api_workers,
        .min_handler_threads = (int)cfg->api_workers,
        .max_body_bytes = (size_t)cfg->api_max_request_size,
        .max_connections = (int)cfg->api_max_connections,
        .max_connections_per_ip = (int)cfg->api_max_connections_per_ip,
        .connection_timeout_s = (int)cfg->api_connection_timeout,
        .access_log = cfg->log_access,
    };
    struct md_http_hooks hooks = {
        .ctx = &d->app,
        .authorize = md_api_authorize,
        .answer_inline = md_api_answer_inline,
        .observe = md_api_observe};
    d->http = md_http_server_start(&ho, d->router, &hooks, &d->app, &err);
    if (!d->http) {
        md_log_crit("main", "%s", err.msg);
        return EXIT_START;
    }
    atomic_store(&d->app.http, d->http);
    char threads[48];
    if (cfg->api_thread_mode == MD_THREADS_PER_CONNECTION)
        snprintf(threads, sizeof(threads), "one per connection");
    else
        snprintf(threads, sizeof(threads), "pool: %d event threads + handlers",
                 (int)cfg->api_workers);
    md_log_info("main", "memoryd %s listening on %s:%d (stm=%s, ltm=%s, threads=%s)",
                MD_VERSION_STRING, cfg->api_host, md_http_server_port(d->http),
                d->app.stm->ops->backend, d->app.ltm->ops->backend, threads);
    return 0;
}

static void shutdown_all(struct daemon *d)
{
    atomic_store(&d->app.http, NULL);
    md_http_server_stop(d->http, d->cfg.api_shutdown_timeout * 1000);
    d->http = NULL;
    md_janitor_stop(d->janitor);
    d->janitor = NULL;
    md_health_stop(d->app.health);
    d->app.health = NULL;
    md_alerts_free(d->app.alerts);
    d->app.alerts = NULL;
    md_cache_sync_stop(d->app.cache_sync);
    d->app.cache_sync = NULL;
    md_ratelimit_free(d->app.ratelimit);
    d->app.ratelimit = NULL;
    md_ltm_destroy(d->app.ltm);
    d->app.ltm = NULL;
    md_stm_destroy(d->app.stm);
    d->app.stm = NULL;
    md_sqlite_close(d->app.sqlite);
    d->app.sqlite = NULL;
    md_cache_free(d->app.cache);
    d->app.cache = NULL;
    md_metrics_free(d->app.metrics);
    d->app.metrics = NULL;
    md_router_free(d->router);
    d->router = NULL;
}

/*
 * Cursors are signed with CURSOR_SECRET. Without one, memoryd keeps a random
 * key in the STM store itself — a file in DATA_DIR for the embedded store,
 * the key memoryd:cursor_secret (SET NX) in Redis — so that cursors survive
 * restarts and work across every instance sharing the store. Only if that
 * fails does it fall back to a key of its own (logged).
 */
static void random_hex(char out[65])
{
    unsigned char raw[32];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        md_random_bytes(raw, sizeof(raw));
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static bool secret_from_file(const struct md_config *cfg, char key[65])
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/cursor_secret", cfg->data_dir);
    char fresh[65];
    random_hex(fresh);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        bool ok = write(fd, fresh, 64) == 64 && fsync(fd) == 0;
        close(fd);
        if (!ok)
            return false;
    }
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(key, 1, 64, f);
    fclose(f);
    key[n] = '\0';
    return n == 64;
}

static bool secret_from_redis(const struct md_config *cfg, char key[65])
{
    struct timeval tv = {(time_t)cfg->redis_socket_connect_timeout, 0};
    if (tv.tv_sec < 1)
        tv.tv_sec = 1;
    redisContext *c = NULL;
    struct md_error err;
    md_error_clear(&err);
    bool ok = md_redis_connect(cfg->redis_host, (int)cfg->redis_port, (int64_t)tv.tv_sec * 1000,
                               &c, &err) == MD_OK;
    redisReply *r = NULL;
    if (ok) {
        redisSetTimeout(c, tv);
        if (cfg->redis_password[0]) {
            r = cfg->redis_username[0]
                    ? md_redis_command(c, "AUTH %s %s", cfg->redis_username, cfg->redis_password)
                    : md_redis_command(c, "AUTH %s", cfg->redis_password);
            ok = r && r->type != REDIS_REPLY_ERROR;
            if (r)
                freeReplyObject(r);
        }
    }
    if (ok) {
        r = md_redis_command(c, "SELECT %lld", (long long)cfg->redis_db);
        ok = r && r->type != REDIS_REPLY_ERROR;
        if (r)
            freeReplyObject(r);
    }
    char fresh[65];
    random_hex(fresh);
    if (ok) {
        r = md_redis_command(c, "SET memoryd:cursor_secret %s NX", fresh);
        ok = r && r->type != REDIS_REPLY_ERROR;
        if (r)
            freeReplyObject(r);
    }
    if (ok) {
        r = md_redis_command(c, "GET memoryd:cursor_secret");
        ok = r && r->type == REDIS_REPLY_STRING && r->len == 64;
        if (ok)
            memcpy(key, r->str, 65);
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static void set_cursor_secret(const struct md_config *cfg)
{
    if (cfg->cursor_secret[0]) {
        md_cursor_set_secret(cfg->cursor_secret);
        return;
    }
    char key[65];
    bool shared = cfg->stm_backend == MD_STM_REDIS ? secret_from_redis(cfg, key)
                                                   : secret_from_file(cfg, key);
    if (!shared) {
        random_hex(key);
        md_log_warn("main", "cannot keep the cursor key in the STM store; using a key of this "
                            "process (set CURSOR_SECRET so that cursors survive restarts)");
    }
    md_cursor_set_secret(key);
}

/* Wait for SIGTERM/SIGINT; SIGHUP is acknowledged (settings need a restart). */
static void wait_for_shutdown(const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            md_log_warn("main", "SIGHUP ignored: settings are read at start-up; restart memoryd "
                                "to apply changes");
            continue;
        }
        md_log_info("main", "received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
}

/*
 * glibc gives threads that allocate under contention arenas of their own, up
 * to 8 per CPU, and memory freed into one arena is not reused by another. In
 * pool mode a request is allocated on an event thread and answered on a
 * handler thread, and handler threads come and go: bound the arenas (2 per
 * CPU) so that RSS stays flat. An operator's MALLOC_ARENA_MAX wins.
 */
static void bound_malloc_arenas(void)
{
    if (getenv("MALLOC_ARENA_MAX"))
        return;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, cpus > 0 ? (int)MD_MIN(2 * cpus, 128) : 2);
}

int main(int argc, char **argv)
{
    bound_malloc_arenas(); /* before any thread starts */
    struct daemon d;
    memset(&d, 0, sizeof(d));
    int rc = load_config(&d, argc, argv);
    if (rc >= 0) {
        md_config_release(&d.cfg);
        return rc;
    }
    md_log_setup((enum md_log_level)d.cfg.log_level, (enum md_log_format)d.cfg.log_format, 2);
    umask(027);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!md_log_buffer_start((int)(d.cfg.log_access_flush_interval * 1000.0 + 0.5)))
        md_log_warn("main", "cannot start the access-log flusher thread; access lines are "
                            "written unbuffered");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        md_log_crit("main", "cannot initialise libcurl");
        md_log_buffer_stop();
        md_config_release(&d.cfg);
        return EXIT_START;
    }
    d.app.cfg = &d.cfg;
    d.app.started_ms = md_now_ms();
    d.app.started_mono_ms = md_mono_ms();
    if (d.cfg.neo4j_uri_mapped && d.cfg.ltm_backend == MD_LTM_NEO4J)
        md_log_info("main", "NEO4J_URI '%s' is a Bolt URI; using Neo4j's HTTP API at %s",
                    d.cfg.neo4j_uri, d.cfg.neo4j_http_base);

    rc = open_stores(&d);
    if (rc == 0)
        set_cursor_secret(&d.cfg);
    if (rc == 0)
        rc = start_services(&d);
    if (rc == 0)
        rc = start_serving(&d);
    if (rc == 0)
        wait_for_shutdown(&set);
    shutdown_all(&d);
    md_log_buffer_stop(); /* the last access lines */
    curl_global_cleanup();
    md_config_release(&d.cfg);
    if (rc == 0)
        md_log_info("main", "stopped");
    return rc;
}
