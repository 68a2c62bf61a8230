/*
 * config.c — loading, validating and printing the settings table.
 *
 * DESIGN: each source (ini file, .env file, environment, flags) is first read
 * into a per-key "raw" string slot, stronger sources overwriting weaker ones
 * and remembering where the value came from. Only then is every key parsed
 * from its raw string — defaults included — by one typed parser with bounds,
 * and the cross-field checks run. So a default goes through exactly the code
 * a user value does, and an error always names the source of the bad value.
 */
#include "memoryd/compat.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

#include "memoryd/config.h"

/* ---- the table -------------------------------------------------------- */

struct key_def {
    const char *name;
    enum md_cfg_type type;
    size_t offset;
    const char *def;
    double lo, hi;
    unsigned flags;
    const char *choices;
    const char *doc;
};

#define MD_CFG_T_OF_STR MD_CFG_T_STR
#define MD_CFG_T_OF_INT MD_CFG_T_INT
#define MD_CFG_T_OF_DOUBLE MD_CFG_T_DOUBLE
#define MD_CFG_T_OF_BOOL MD_CFG_T_BOOL
#define MD_CFG_T_OF_ENUM MD_CFG_T_ENUM

static const struct key_def keys[MD_CFG_COUNT] = {
#define MD_CFG(name, type, field, def, lo, hi, flags, choices, doc)                               \
    {#name, MD_CFG_T_OF_##type, offsetof(struct md_config, field), def, lo, hi, flags, choices, doc},
#include "memoryd/config_keys.def"
#undef MD_CFG
};

const char *md_config_key_name(enum md_cfg_key k)
{
    return keys[k].name;
}

enum md_cfg_type md_config_key_type(enum md_cfg_key k)
{
    return keys[k].type;
}

bool md_config_key_secret(enum md_cfg_key k)
{
    return (keys[k].flags & MD_CFGF_SECRET) != 0;
}

const char *md_config_key_default(enum md_cfg_key k)
{
    return keys[k].def;
}

const char *md_config_key_doc(enum md_cfg_key k)
{
    return keys[k].doc;
}

const char *md_cfg_source_name(enum md_cfg_source s)
{
    switch (s) {
    case MD_SRC_DEFAULT: return "default";
    case MD_SRC_FILE: return "config file";
    case MD_SRC_DOTENV: return ".env file";
    case MD_SRC_ENV: return "environment";
    case MD_SRC_FLAG: return "command line";
    }
    return "?";
}

static int find_key(const char *name, size_t len)
{
    for (int i = 0; i < MD_CFG_COUNT; i++)
        if (strlen(keys[i].name) == len && strncmp(keys[i].name, name, len) == 0)
            return i;
    return -1;
}

/* ---- raw values -------------------------------------------------------- */

struct raw {
    char *value[MD_CFG_COUNT]; /* owned; NULL = not set by any source */
    enum md_cfg_source src[MD_CFG_COUNT];
    char *where[MD_CFG_COUNT]; /* owned: "file:line" for file sources, else NULL */
};

static void raw_release(struct raw *r)
{
    for (int i = 0; i < MD_CFG_COUNT; i++) {
        free(r->value[i]);
        free(r->where[i]);
    }
}

static enum md_status raw_set(struct raw *r, int k, const char *v, size_t vlen,
                              enum md_cfg_source src, const char *where, struct md_error *err)
{
    char *copy = strndup(v, vlen);
    char *wcopy = where ? strdup(where) : NULL;
    if (!copy || (where && !wcopy)) {
        free(copy);
        free(wcopy);
        return md_error_set(err, MD_E_NOMEM, "out of memory reading the configuration");
    }
    free(r->value[k]);
    free(r->where[k]);
    r->value[k] = copy;
    r->where[k] = wcopy;
    r->src[k] = src;
    return MD_OK;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Strip one level of matching quotes in place; returns the inner text. */
static char *unquote(char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v[n - 1] = '\0';
        return v + 1;
    }
    return v;
}

static FILE *open_file(const char *path, const char *what, struct md_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        md_error_set(err, MD_E_IO, "cannot read %s '%s': %s", what, path, strerror(errno));
    return f;
}

/*
 * ini file: "[section]" headers and "key = value" lines; '#' or ';' start a
 * comment line. [api] port maps to API_PORT. Unknown keys are errors, so a
 * typo never silently falls back to a default.
 */
static enum md_status read_ini(struct raw *r, const char *path, struct md_error *err)
{
    FILE *f = open_file(path, "config file", err);
    if (!f)
        return MD_E_IO;
    char line[4096], section[64] = "";
    int lineno = 0;
    enum md_status st = MD_OK;
    while (st == MD_OK && fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (!end || end[1] != '\0' || (size_t)(end - s - 1) >= sizeof(section)) {
                st = md_error_set(err, MD_E_INVAL, "%s:%d: malformed section header", path,
                                  lineno);
                break;
            }
            *end = '\0';
            snprintf(section, sizeof(section), "%s", trim(s + 1));
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            st = md_error_set(err, MD_E_INVAL, "%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = unquote(trim(eq + 1));
        char name[160];
        int n = snprintf(name, sizeof(name), "%s_%s", section, key);
        for (char *p = name; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        int k = (n > 0 && (size_t)n < sizeof(name) && section[0]) ? find_key(name, strlen(name))
                                                                  : -1;
        if (k < 0) {
            st = md_error_set(err, MD_E_INVAL, "%s:%d: unknown setting '%s' in section [%s]",
                              path, lineno, key, section);
            break;
        }
        char where[512];
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        st = raw_set(r, k, val, strlen(val), MD_SRC_FILE, where, err);
    }
    fclose(f);
    return st;
}

/*
 * .env file: NAME=value lines, optional "export " prefix, optional quotes,
 * '#' comments. Names that are not memoryd settings are ignored: the same
 * file usually feeds docker compose too.
 */
static enum md_status read_dotenv(struct raw *r, const char *path, struct md_error *err)
{
    FILE *f = open_file(path, ".env file", err);
    if (!f)
        return MD_E_IO;
    char line[4096];
    int lineno = 0;
    enum md_status st = MD_OK;
    while (st == MD_OK && fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq) {
            st = md_error_set(err, MD_E_INVAL, "%s:%d: expected NAME=value", path, lineno);
            break;
        }
        *eq = '\0';
        char *name = trim(s);
        int k = find_key(name, strlen(name));
        if (k < 0)
            continue;
        char *val = unquote(trim(eq + 1));
        char where[512];
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        st = raw_set(r, k, val, strlen(val), MD_SRC_DOTENV, where, err);
    }
    fclose(f);
    return st;
}

static enum md_status read_env(struct raw *r, char **envp, struct md_error *err)
{
    for (char **e = envp; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        int k = find_key(*e, (size_t)(eq - *e));
        if (k < 0)
            continue;
        enum md_status st = raw_set(r, k, eq + 1, strlen(eq + 1), MD_SRC_ENV, NULL, err);
        if (st != MD_OK)
            return st;
    }
    return MD_OK;
}

/* --api-port -> API_PORT */
static int flag_key(const char *flag, size_t len)
{
    char name[128];
    if (len >= sizeof(name))
        return -1;
    for (size_t i = 0; i < len; i++)
        name[i] = flag[i] == '-' ? '_' : (char)toupper((unsigned char)flag[i]);
    name[len] = '\0';
    return find_key(name, len);
}

struct cli {
    const char *config_file;
    const char *env_file;
    enum md_cfg_action action;
};

/* First pass over argv: the meta options; settings are applied later. */
static enum md_status scan_meta_flags(int argc, char **argv, struct cli *cli, struct md_error *err)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli->action = MD_CFG_HELP;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            if (cli->action != MD_CFG_HELP)
                cli->action = MD_CFG_VERSION;
        } else if (strcmp(a, "--check-config") == 0) {
            if (cli->action == MD_CFG_RUN)
                cli->action = MD_CFG_CHECK;
        } else if (strncmp(a, "--config", 8) == 0 || strncmp(a, "--env-file", 10) == 0) {
            bool is_config = a[2] == 'c';
            size_t base = is_config ? 8 : 10;
            const char *v = NULL;
            if (a[base] == '=')
                v = a + base + 1;
            else if (a[base] == '\0' && i + 1 < argc)
                v = argv[++i];
            else if (a[base] != '\0')
                continue; /* e.g. --config-something: a setting flag */
            if (!v || !*v)
                return md_error_set(err, MD_E_INVAL, "option '%s' needs a file name", a);
            if (is_config)
                cli->config_file = v;
            else
                cli->env_file = v;
        }
    }
    return MD_OK;
}

static bool is_meta_flag(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "--version") == 0 ||
           strcmp(a, "-V") == 0 || strcmp(a, "--check-config") == 0;
}

static enum md_status read_flags(struct raw *r, int argc, char **argv, struct md_error *err)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_meta_flag(a))
            continue;
        if (strcmp(a, "--config") == 0 || strcmp(a, "--env-file") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0 || strncmp(a, "--env-file=", 11) == 0)
            continue;
        if (strncmp(a, "--", 2) != 0)
            return md_error_set(err, MD_E_INVAL, "unexpected argument '%s' (see --help)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int k = flag_key(name, nlen);
        if (k < 0)
            return md_error_set(err, MD_E_INVAL, "unknown option '--%.*s' (see --help)",
                                (int)nlen, name);
        const char *v;
        if (eq)
            v = eq + 1;
        else if (keys[k].type == MD_CFG_T_BOOL)
            v = "true";
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return md_error_set(err, MD_E_INVAL, "option '--%.*s' needs a value", (int)nlen,
                                name);
        enum md_status st = raw_set(r, k, v, strlen(v), MD_SRC_FLAG, NULL, err);
        if (st != MD_OK)
            return st;
    }
    return MD_OK;
}

/* ---- typed parsing ------------------------------------------------------ */

static void *field_ptr(struct md_config *cfg, int k)
{
    return (char *)cfg + keys[k].offset;
}

/* Describe a key's value for an error message, hiding secrets. */
static void bad_value(struct md_error *err, const struct raw *r, int k, const char *allowed)
{
    const char *src = md_cfg_source_name(r->value[k] ? r->src[k] : MD_SRC_DEFAULT);
    char from[600];
    if (r->value[k] && r->where[k])
        snprintf(from, sizeof(from), "%s %s", src, r->where[k]);
    else
        snprintf(from, sizeof(from), "%s", src);
    const char *v = r->value[k] ? r->value[k] : keys[k].def;
    if (keys[k].flags & MD_CFGF_SECRET)
        md_error_set(err, MD_E_INVAL, "invalid value for %s (from %s): %s", keys[k].name, from,
                     allowed);
    else
        md_error_set(err, MD_E_INVAL, "invalid value '%.80s' for %s (from %s): %s", v,
                     keys[k].name, from, allowed);
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < MD_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Match s against "a|b|c" case-insensitively; index or -1. WARN aliases WARNING. */
static int parse_choice(const char *choices, const char *s)
{
    if (strcasecmp(s, "warn") == 0)
        s = "warning";
    int idx = 0;
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (strlen(s) == n && strncasecmp(p, s, n) == 0)
            return idx;
        idx++;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static enum md_status parse_key(struct md_config *cfg, const struct raw *r, int k,
                                struct md_error *err)
{
    const struct key_def *d = &keys[k];
    const char *v = r->value[k] ? r->value[k] : d->def;
    char allowed[256];
    switch (d->type) {
    case MD_CFG_T_STR: {
        char *copy = strdup(v);
        if (!copy)
            return md_error_set(err, MD_E_NOMEM, "out of memory reading the configuration");
        *(char **)field_ptr(cfg, k) = copy;
        return MD_OK;
    }
    case MD_CFG_T_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        snprintf(allowed, sizeof(allowed), "expected an integer in %.0f..%.0f", d->lo, d->hi);
        if (errno || end == v || *end != '\0' || (double)n < d->lo || (double)n > d->hi) {
            bad_value(err, r, k, allowed);
            return MD_E_INVAL;
        }
        *(int64_t *)field_ptr(cfg, k) = n;
        return MD_OK;
    }
    case MD_CFG_T_DOUBLE: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        snprintf(allowed, sizeof(allowed), "expected a number in %g..%g", d->lo, d->hi);
        if (errno || end == v || *end != '\0' || !isfinite(x) || x < d->lo || x > d->hi) {
            bad_value(err, r, k, allowed);
            return MD_E_INVAL;
        }
        *(double *)field_ptr(cfg, k) = x;
        return MD_OK;
    }
    case MD_CFG_T_BOOL: {
        bool b;
        if (!parse_bool(v, &b)) {
            bad_value(err, r, k, "expected true or false (also 1/0, yes/no, on/off)");
            return MD_E_INVAL;
        }
        *(bool *)field_ptr(cfg, k) = b;
        return MD_OK;
    }
    case MD_CFG_T_ENUM: {
        int idx = parse_choice(d->choices, v);
        if (idx < 0) {
            snprintf(allowed, sizeof(allowed), "expected one of %s", d->choices);
            bad_value(err, r, k, allowed);
            return MD_E_INVAL;
        }
        *(int *)field_ptr(cfg, k) = idx;
        return MD_OK;
    }
    }
    return md_error_set(err, MD_E_INTERNAL, "setting %s has an unknown type", d->name);
}

/* ---- cross-field validation and derived values ------------------------- */

static enum md_status split_api_keys(struct md_config *cfg, const struct raw *r,
                                     struct md_error *err)
{
    const char *s = cfg->api_keys;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    cfg->api_key_list = calloc(cap, sizeof(char *));
    if (!cfg->api_key_list)
        return md_error_set(err, MD_E_NOMEM, "out of memory reading the configuration");
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && isspace((unsigned char)*p)) {
            p++;
            n--;
        }
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            n--;
        if (n > 0) {
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7F) {
                    bad_value(err, r, MD_CFGK_API_KEYS,
                              "keys must be printable ASCII without spaces");
                    return MD_E_INVAL;
                }
            if (n > 512) {
                bad_value(err, r, MD_CFGK_API_KEYS, "a key may have at most 512 characters");
                return MD_E_INVAL;
            }
            char *key = strndup(p, n);
            if (!key)
                return md_error_set(err, MD_E_NOMEM, "out of memory reading the configuration");
            cfg->api_key_list[cfg->n_api_keys++] = key;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return MD_OK;
}

/* Append one key (trimmed line) to the key list; the list grows as needed. */
static enum md_status add_key(struct md_config *cfg, size_t *cap, const char *key, size_t n,
                              struct md_error *err)
{
    if (cfg->n_api_keys == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        char **v = realloc(cfg->api_key_list, ncap * sizeof(*v));
        if (!v)
            return md_error_set(err, MD_E_NOMEM, "out of memory reading the configuration");
        cfg->api_key_list = v;
        *cap = ncap;
    }
    char *k = strndup(key, n);
    if (!k)
        return md_error_set(err, MD_E_NOMEM, "out of memory reading the configuration");
    cfg->api_key_list[cfg->n_api_keys++] = k;
    return MD_OK;
}

/* API_KEYS_FILE: one key per line, '#' comments, blank lines ignored. */
static enum md_status read_api_keys_file(struct md_config *cfg, struct md_error *err)
{
    FILE *f = open_file(cfg->api_keys_file, "API_KEYS_FILE", err);
    if (!f)
        return MD_E_IO;
    size_t cap = cfg->n_api_keys, before = cfg->n_api_keys;
    char line[1024];
    int lineno = 0;
    enum md_status st = MD_OK;
    while (st == MD_OK && fgets(line, sizeof(line), f)) {
        lineno++;
        char *k = trim(line);
        if (*k == '\0' || *k == '#')
            continue;
        size_t n = strlen(k);
        bool ok = n <= 512;
        for (size_t i = 0; ok && i < n; i++)
            ok = (unsigned char)k[i] > 0x20 && (unsigned char)k[i] < 0x7F;
        if (!ok) {
            /* never echo the key itself */
            st = md_error_set(err, MD_E_INVAL, "API_KEYS_FILE '%s' line %d: a key must be 1 to 512 "
                              "printable ASCII characters without spaces", cfg->api_keys_file,
                              lineno);
            break;
        }
        st = add_key(cfg, &cap, k, n, err);
    }
    fclose(f);
    /* A key file without keys must not silently leave the API open. */
    if (st == MD_OK && cfg->n_api_keys == before)
        st = md_error_set(err, MD_E_INVAL, "API_KEYS_FILE '%s' holds no key (one key per line; "
                          "'#' starts a comment)", cfg->api_keys_file);
    return st;
}

/*
 * NEO4J_URI: http(s)://host[:port][/] is used as given; the seed's
 * bolt://host:7687, neo4j://host, bolt+s:// and neo4j+s:// forms map to the
 * HTTP API on the same host, port 7474 (http) or 7473 (https).
 */
static enum md_status derive_neo4j_base(struct md_config *cfg, const struct raw *r,
                                        struct md_error *err)
{
    static const struct {
        const char *scheme;
        const char *http;
        const char *port;
        bool mapped;
    } schemes[] = {
        {"http://", "http://", "7474", false},     {"https://", "https://", "7473", false},
        {"bolt://", "http://", "7474", true},      {"neo4j://", "http://", "7474", true},
        {"bolt+s://", "https://", "7473", true},   {"neo4j+s://", "https://", "7473", true},
        {"bolt+ssc://", "https://", "7473", true}, {"neo4j+ssc://", "https://", "7473", true},
    };
    const char *uri = cfg->neo4j_uri;
    const char *allowed = "expected http(s)://host[:port] (bolt:// and neo4j:// are mapped to "
                          "the HTTP port 7474)";
    for (size_t i = 0; i < MD_ARRAY_LEN(schemes); i++) {
        size_t sl = strlen(schemes[i].scheme);
        if (strncasecmp(uri, schemes[i].scheme, sl) != 0)
            continue;
        const char *host = uri + sl;
        size_t hlen = strcspn(host, "/?#");
        const char *rest = host + hlen;
        if (hlen == 0 || hlen > 253 || (*rest && strcmp(rest, "/") != 0) ||
            memchr(host, '@', hlen)) {
            bad_value(err, r, MD_CFGK_NEO4J_URI, allowed);
            return MD_E_INVAL;
        }
        /* host part may carry a port; for mapped schemes it is replaced. */
        const char *colon = NULL;
        if (host[0] == '[') {
            const char *close = memchr(host, ']', hlen);
            if (!close) {
                bad_value(err, r, MD_CFGK_NEO4J_URI, allowed);
                return MD_E_INVAL;
            }
            colon = (close + 1 < host + hlen && close[1] == ':') ? close + 1 : NULL;
        } else {
            colon = memchr(host, ':', hlen);
        }
        size_t name_len = colon ? (size_t)(colon - host) : hlen;
        const char *port = schemes[i].port;
        char portbuf[8];
        if (colon && !schemes[i].mapped) {
            size_t plen = hlen - name_len - 1;
            char *end;
            snprintf(portbuf, sizeof(portbuf), "%.*s", (int)MD_MIN(plen, 7), colon + 1);
            long pn = strtol(portbuf, &end, 10);
            if (plen == 0 || plen > 5 || *end || pn < 1 || pn > 65535) {
                bad_value(err, r, MD_CFGK_NEO4J_URI, allowed);
                return MD_E_INVAL;
            }
            port = portbuf;
        }
        size_t n = strlen(schemes[i].http) + name_len + strlen(port) + 2;
        cfg->neo4j_http_base = malloc(n);
        if (!cfg->neo4j_http_base)
            return md_error_set(err, MD_E_NOMEM, "out of memory reading the configuration");
        snprintf(cfg->neo4j_http_base, n, "%s%.*s:%s", schemes[i].http, (int)name_len, host,
                 port);
        cfg->neo4j_uri_mapped = schemes[i].mapped;
        return MD_OK;
    }
    bad_value(err, r, MD_CFGK_NEO4J_URI, allowed);
    return MD_E_INVAL;
}

static enum md_status validate(struct md_config *cfg, const struct raw *r, struct md_error *err)
{
    if (cfg->api_host[0] == '\0') {
        bad_value(err, r, MD_CFGK_API_HOST, "expected an address or host name");
        return MD_E_INVAL;
    }
    if (cfg->data_dir[0] == '\0') {
        bad_value(err, r, MD_CFGK_DATA_DIR, "expected a directory path");
        return MD_E_INVAL;
    }
    if (cfg->stm_backend == MD_STM_REDIS && cfg->redis_host[0] == '\0') {
        bad_value(err, r, MD_CFGK_REDIS_HOST, "expected a host name when STM_BACKEND=redis");
        return MD_E_INVAL;
    }
    if (cfg->neo4j_database[0] == '\0' || strpbrk(cfg->neo4j_database, "/?#% ")) {
        bad_value(err, r, MD_CFGK_NEO4J_DATABASE, "expected a database name");
        return MD_E_INVAL;
    }
    if (cfg->memory_stm_min_ttl_seconds > cfg->memory_stm_ttl_hours * 3600) {
        bad_value(err, r, MD_CFGK_MEMORY_STM_MIN_TTL_SECONDS,
                  "must not exceed MEMORY_STM_TTL_HOURS in seconds");
        return MD_E_INVAL;
    }
    if (cfg->api_workers == 0) { /* one event thread per online CPU */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->api_workers = n < 1 ? 1 : n > 256 ? 256 : n;
    }
    enum md_status st = split_api_keys(cfg, r, err);
    if (st == MD_OK && cfg->api_keys_file[0])
        st = read_api_keys_file(cfg, err);
    if (st != MD_OK)
        return st;
    if (cfg->alert_webhook_url[0] && strncasecmp(cfg->alert_webhook_url, "http://", 7) != 0 &&
        strncasecmp(cfg->alert_webhook_url, "https://", 8) != 0) {
        bad_value(err, r, MD_CFGK_ALERT_WEBHOOK_URL, "expected an http:// or https:// URL");
        return MD_E_INVAL;
    }
    return derive_neo4j_base(cfg, r, err);
}

/* ---- public entry points ----------------------------------------------- */

static enum md_status dup_or_empty(char **dst, const char *s, struct md_error *err)
{
    *dst = strdup(s ? s : "");
    return *dst ? MD_OK : md_error_set(err, MD_E_NOMEM, "out of memory reading the configuration");
}

static bool file_exists(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    fclose(f);
    return true;
}

enum md_status md_config_load(struct md_config *cfg, int argc, char **argv, char **envp,
                              enum md_cfg_action *action, struct md_error *err)
{
    memset(cfg, 0, sizeof(*cfg));
    struct raw r;
    memset(&r, 0, sizeof(r));
    struct cli cli = {NULL, NULL, MD_CFG_RUN};
    enum md_status st = scan_meta_flags(argc, argv, &cli, err);
    *action = cli.action;
    if (st != MD_OK || cli.action == MD_CFG_HELP || cli.action == MD_CFG_VERSION)
        goto out;
    const char *env_file = cli.env_file;
    if (!env_file && file_exists(".env"))
        env_file = ".env";
    if (cli.config_file)
        st = read_ini(&r, cli.config_file, err);
    if (st == MD_OK && env_file)
        st = read_dotenv(&r, env_file, err);
    if (st == MD_OK)
        st = read_env(&r, envp, err);
    if (st == MD_OK)
        st = read_flags(&r, argc, argv, err);
    for (int k = 0; st == MD_OK && k < MD_CFG_COUNT; k++) {
        st = parse_key(cfg, &r, k, err);
        cfg->source[k] = r.value[k] ? r.src[k] : MD_SRC_DEFAULT;
    }
    if (st == MD_OK)
        st = dup_or_empty(&cfg->config_file, cli.config_file, err);
    if (st == MD_OK)
        st = dup_or_empty(&cfg->env_file, env_file, err);
    if (st == MD_OK)
        st = validate(cfg, &r, err);
out:
    raw_release(&r);
    if (st != MD_OK)
        md_config_release(cfg);
    return st;
}

void md_config_release(struct md_config *cfg)
{
    if (!cfg)
        return;
    for (int k = 0; k < MD_CFG_COUNT; k++)
        if (keys[k].type == MD_CFG_T_STR) {
            char **p = field_ptr(cfg, k);
            free(*p);
            *p = NULL;
        }
    for (size_t i = 0; i < cfg->n_api_keys; i++)
        free(cfg->api_key_list[i]);
    free(cfg->api_key_list);
    free(cfg->config_file);
    free(cfg->env_file);
    free(cfg->neo4j_http_base);
    memset(cfg, 0, sizeof(*cfg));
}

/* Append the text of a choice by index. */
static enum md_status put_choice(struct md_buf *out, const char *choices, int idx)
{
    const char *p = choices;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, '|');
        if (p)
            p++;
    }
    if (!p)
        return md_buf_puts(out, "?");
    return md_buf_append(out, p, strcspn(p, "|"));
}

enum md_status md_config_dump(const struct md_config *cfg, struct md_buf *out)
{
    enum md_status st = MD_OK;
    for (int k = 0; st == MD_OK && k < MD_CFG_COUNT; k++) {
        const void *f = (const char *)cfg + keys[k].offset;
        st = md_buf_printf(out, "%s=", keys[k].name);
        if (st != MD_OK)
            break;
        switch (keys[k].type) {
        case MD_CFG_T_STR: {
            const char *s = *(char *const *)f;
            if (keys[k].flags & MD_CFGF_SECRET)
                st = md_buf_puts(out, s && *s ? "********" : "");
            else
                st = md_buf_puts(out, s ? s : "");
            break;
        }
        case MD_CFG_T_INT: st = md_buf_printf(out, "%lld", (long long)*(const int64_t *)f); break;
        case MD_CFG_T_DOUBLE: st = md_buf_printf(out, "%g", *(const double *)f); break;
        case MD_CFG_T_BOOL: st = md_buf_puts(out, *(const bool *)f ? "true" : "false"); break;
        case MD_CFG_T_ENUM: st = put_choice(out, keys[k].choices, *(const int *)f); break;
        }
        if (st == MD_OK)
            st = md_buf_printf(out, "  # %s\n", md_cfg_source_name(cfg->source[k]));
    }
    return st;
}

void md_config_usage(FILE *out, const char *argv0)
{
    fprintf(out,
            "usage: %s [options] [--SETTING=value ...]\n\n"
            "memoryd serves short-term and long-term memory for assessment agents over REST.\n\n"
            "options:\n"
            "  --config PATH      read settings from an ini file ([api] port = 8000)\n"
            "  --env-file PATH    read NAME=value settings from PATH (default: ./.env if present)\n"
            "  --check-config     validate the settings, print them (secrets masked), exit\n"
            "  --version          print the version and exit\n"
            "  --help             print this help and exit\n\n"
            "Every setting below is read from, strongest first: a flag (--api-port 9000),\n"
            "the environment (API_PORT=9000), the .env file, the ini file, the default.\n\n",
            argv0);
    for (int k = 0; k < MD_CFG_COUNT; k++) {
        char flag[128];
        size_t i = 0;
        for (const char *p = keys[k].name; *p && i + 1 < sizeof(flag); p++)
            flag[i++] = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
        flag[i] = '\0';
        fprintf(out, "  %-38s %s\n", keys[k].name, keys[k].doc);
        if (keys[k].type == MD_CFG_T_ENUM)
            fprintf(out, "  %-38s   one of %s; default %s; flag --%s\n", "", keys[k].choices,
                    keys[k].def, flag);
        else if (keys[k].type == MD_CFG_T_INT || keys[k].type == MD_CFG_T_DOUBLE)
            fprintf(out, "  %-38s   %g..%g; default %s; flag --%s\n", "", keys[k].lo, keys[k].hi,
                    keys[k].def, flag);
        else
            fprintf(out, "  %-38s   default '%s'%s; flag --%s\n", "", keys[k].def,
                    (keys[k].flags & MD_CFGF_SECRET) ? " (secret)" : "", flag);
    }
}
