/*
 * config.h — the settings of memoryd, loaded once at start-up.
 *
 * One table (config_keys.def) defines every setting: name, type, bounds,
 * default, whether it is secret, and a doc line. md_config_load() merges the
 * sources, strongest first: command-line flags, the process environment, a
 * .env file, an ini file (--config), the defaults. Every value, defaults
 * included, goes through the same parser and validator; a bad value fails the
 * load with a message naming the setting, the value (unless secret), where it
 * came from and what is allowed.
 *
 * A loaded struct md_config is immutable and may be read from any thread
 * without locking. It owns its strings; md_config_release() frees them.
 */
#ifndef MD_CONFIG_H
#define MD_CONFIG_H

#include <stdio.h>

#include "memoryd/buf.h"
#include "memoryd/compat.h"
#include "memoryd/status.h"

enum md_cfg_flags {
    MD_CFGF_SECRET = 1 << 0,
};

enum md_cfg_type { MD_CFG_T_STR, MD_CFG_T_INT, MD_CFG_T_DOUBLE, MD_CFG_T_BOOL, MD_CFG_T_ENUM };

/* Where a setting's effective value came from. */
enum md_cfg_source { MD_SRC_DEFAULT = 0, MD_SRC_FILE, MD_SRC_DOTENV, MD_SRC_ENV, MD_SRC_FLAG };

/* Indices of the settings, in table order. */
enum md_cfg_key {
#define MD_CFG(name, type, field, def, lo, hi, flags, choices, doc) MD_CFGK_##name,
#include "memoryd/config_keys.def"
#undef MD_CFG
    MD_CFG_COUNT
};

#define MD_CFG_FIELD_STR char *
#define MD_CFG_FIELD_INT int64_t
#define MD_CFG_FIELD_DOUBLE double
#define MD_CFG_FIELD_BOOL bool
#define MD_CFG_FIELD_ENUM int

/* Values of the ENUM settings, in the order of their choices. */
enum md_stm_backend { MD_STM_EMBEDDED = 0, MD_STM_REDIS = 1 };
enum md_ltm_backend { MD_LTM_EMBEDDED = 0, MD_LTM_NEO4J = 1 };
enum md_sync_mode { MD_SYNC_FULL = 0, MD_SYNC_NORMAL = 1 };
enum md_thread_mode { MD_THREADS_PER_CONNECTION = 0, MD_THREADS_POOL = 1 };

struct md_config {
#define MD_CFG(name, type, field, def, lo, hi, flags, choices, doc) MD_CFG_FIELD_##type field;
#include "memoryd/config_keys.def"
#undef MD_CFG
    enum md_cfg_source source[MD_CFG_COUNT]; /* where each value came from */
    char *config_file;                       /* owned; "" when none was given */
    char *env_file;                          /* owned; "" when none was read */
    /* Derived by validation (not settings of their own): */
    char **api_key_list;   /* owned: API_KEYS split on ',' and trimmed */
    size_t n_api_keys;
    char *neo4j_http_base; /* owned: "http(s)://host:port" derived from NEO4J_URI */
    bool neo4j_uri_mapped; /* NEO4J_URI was bolt:// or neo4j:// and got mapped */
};

/* What main() should do after a successful load. */
enum md_cfg_action { MD_CFG_RUN = 0, MD_CFG_HELP, MD_CFG_VERSION, MD_CFG_CHECK };

/*
 * Load the configuration from argv (flags), envp (NULL-terminated
 * "NAME=value" array), the .env file (--env-file PATH, else ./.env when it
 * exists) and the ini file (--config PATH). On failure returns MD_E_INVAL
 * (or MD_E_IO for an unreadable file, MD_E_NOMEM) with err->msg ready to
 * print; cfg is then empty and need not be released.
 */
MD_MUSTCHECK enum md_status md_config_load(struct md_config *cfg, int argc, char **argv,
                                           char **envp, enum md_cfg_action *action,
                                           struct md_error *err);

/* Free everything cfg owns (accepts a zeroed struct). */
void md_config_release(struct md_config *cfg);

/*
 * Append the effective configuration as "NAME=value  # source" lines, secrets
 * masked ("********" when set, "" when empty).
 */
MD_MUSTCHECK enum md_status md_config_dump(const struct md_config *cfg, struct md_buf *out);

/* Print --help: usage, then every setting with its default and doc line. */
void md_config_usage(FILE *out, const char *argv0);

/* Table access for tools and tests. */
const char *md_config_key_name(enum md_cfg_key k);
enum md_cfg_type md_config_key_type(enum md_cfg_key k);
bool md_config_key_secret(enum md_cfg_key k);
const char *md_config_key_default(enum md_cfg_key k);
const char *md_config_key_doc(enum md_cfg_key k);
const char *md_cfg_source_name(enum md_cfg_source s);

#endif /* MD_CONFIG_H */
