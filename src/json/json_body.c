/*
 * json_body.c — request body parsing and field validation.
 *
 * jansson's own depth limit is 2048 and fixed at compile time, so the 32
 * level limit of the API is enforced by a flat scan before parsing: a body
 * that is 1 000 levels deep is rejected without recursion or allocation.
 */
#include "memoryd/compat.h"

#include <stdio.h>
#include <string.h>

#include "memoryd/json_body.h"
#include "memoryd/json_load.h"
#include "memoryd/text.h"

size_t md_json_depth(const char *data, size_t len)
{
    size_t depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return max;
}

enum md_status md_json_parse_object(const char *data, size_t len, json_t **out,
                                    struct md_error *err)
{
    *out = NULL;
    if (len == 0)
        return md_error_set(err, MD_E_INVAL, "request body is empty; a JSON object is required");
    if (!md_utf8_valid(data, len))
        return md_error_set(err, MD_E_INVAL, "request body is not valid UTF-8");
    if (memchr(data, '\0', len))
        return md_error_set(err, MD_E_INVAL, "request body contains a NUL byte");
    if (md_json_depth(data, len) > MD_JSON_MAX_DEPTH)
        return md_error_set(err, MD_E_INVAL, "JSON is nested deeper than %d levels",
                            MD_JSON_MAX_DEPTH);
    const char *why = NULL;
    size_t at = 0;
    json_t *v = md_json_load(data, len, MD_JSON_LOAD_REJECT_DUPS, &why, &at);
    if (!v && why == md_json_load_oom)
        return md_error_set(err, MD_E_NOMEM, "out of memory");
    if (!v) {
        /* where, for people: 1-based line and column (in bytes) of the offending byte */
        size_t line = 1, col = 1;
        for (size_t i = 0; i < at && i < len; i++, col++)
            if (data[i] == '\n') {
                line++;
                col = 0;
            }
        return md_error_set(err, MD_E_INVAL, "request body is not valid JSON: %s (line %zu, "
                            "column %zu)", why, line, col);
    }
    if (!json_is_object(v)) {
        json_decref(v);
        return md_error_set(err, MD_E_INVAL, "request body must be a JSON object");
    }
    *out = v;
    return MD_OK;
}

static void path(char *out, size_t cap, const char *prefix, const char *name)
{
    if (prefix && *prefix)
        snprintf(out, cap, "%s.%s", prefix, name);
    else
        snprintf(out, cap, "%s", name);
}

enum md_status md_json_only(json_t *obj, const char *const *allowed, const char *prefix,
                            struct md_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        (void)value;
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok) {
            char f[MD_ERROR_FIELD_MAX];
            /* Field names are client text: keep them printable in messages. */
            char shown[64];
            size_t o = 0;
            for (const char *p = key; *p && o + 1 < sizeof(shown); p++)
                shown[o++] = (unsigned char)*p < 0x20 ? '?' : *p;
            shown[o] = '\0';
            path(f, sizeof(f), prefix, shown);
            return md_error_set_field(err, MD_E_INVAL, f, "unknown field '%s'", f);
        }
    }
    return MD_OK;
}

/* Fetch a member; MD_E_INVAL when required and absent (or null). */
static enum md_status member(const json_t *obj, const char *name, const char *prefix,
                             bool required, bool null_is_absent, json_t **out,
                             struct md_error *err)
{
    *out = json_object_get(obj, name);
    if (*out && null_is_absent && json_is_null(*out))
        *out = NULL;
    if (!*out && required) {
        char f[MD_ERROR_FIELD_MAX];
        path(f, sizeof(f), prefix, name);
        return md_error_set_field(err, MD_E_INVAL, f, "field '%s' is required", f);
    }
    return MD_OK;
}

static enum md_status type_error(const char *prefix, const char *name, const char *what,
                                 struct md_error *err)
{
    char f[MD_ERROR_FIELD_MAX];
    path(f, sizeof(f), prefix, name);
    return md_error_set_field(err, MD_E_INVAL, f, "field '%s' must be %s", f, what);
}

enum md_status md_json_text(const json_t *obj, const char *name, const char *prefix,
                            bool required, size_t max_cp, const char **out, struct md_error *err)
{
    json_t *v;
    *out = NULL;
    enum md_status st = member(obj, name, prefix, required, false, &v, err);
    if (st != MD_OK || !v)
        return st;
    if (!json_is_string(v))
        return type_error(prefix, name, "a string", err);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (md_str_blank(s))
        return type_error(prefix, name, "a non-blank string", err);
    if (md_utf8_count(s, len) > max_cp) {
        char what[64];
        snprintf(what, sizeof(what), "at most %zu characters", max_cp);
        return type_error(prefix, name, what, err);
    }
    *out = s;
    return MD_OK;
}

enum md_status md_json_verdict(const json_t *obj, const char *name, const char *prefix,
                               bool required, bool allow_null, enum md_verdict *out,
                               bool *present, struct md_error *err)
{
    json_t *v;
    *out = MD_VERDICT_NONE;
    if (present)
        *present = false;
    enum md_status st = member(obj, name, prefix, required, false, &v, err);
    if (st != MD_OK || !v)
        return st;
    if (present)
        *present = true;
    if (json_is_null(v)) {
        if (allow_null)
            return MD_OK;
        return type_error(prefix, name,
                          "one of Compliant, Non-Compliant, Partially Compliant, Pending", err);
    }
    if (!json_is_string(v) || !md_verdict_parse(json_string_value(v), out))
        return type_error(prefix, name,
                          allow_null ? "one of Compliant, Non-Compliant, Partially Compliant, "
                                       "Pending, or null"
                                     : "one of Compliant, Non-Compliant, Partially Compliant, "
                                       "Pending",
                          err);
    return MD_OK;
}

enum md_status md_json_int(const json_t *obj, const char *name, const char *prefix,
                           bool required, int64_t lo, int64_t hi, int64_t *out, bool *present,
                           struct md_error *err)
{
    json_t *v;
    if (present)
        *present = false;
    enum md_status st = member(obj, name, prefix, required, false, &v, err);
    if (st != MD_OK || !v)
        return st;
    char what[96];
    snprintf(what, sizeof(what), "an integer in %lld..%lld", (long long)lo, (long long)hi);
    if (!json_is_integer(v))
        return type_error(prefix, name, what, err);
    json_int_t n = json_integer_value(v);
    if (n < lo || n > hi)
        return type_error(prefix, name, what, err);
    *out = n;
    if (present)
        *present = true;
    return MD_OK;
}

enum md_status md_json_number(const json_t *obj, const char *name, const char *prefix,
                              bool required, double lo, double hi, double *out, bool *present,
                              struct md_error *err)
{
    json_t *v;
    if (present)
        *present = false;
    enum md_status st = member(obj, name, prefix, required, false, &v, err);
    if (st != MD_OK || !v)
        return st;
    char what[96];
    snprintf(what, sizeof(what), "a number in [%g, %g]", lo, hi);
    if (!json_is_number(v))
        return type_error(prefix, name, what, err);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return type_error(prefix, name, what, err);
    *out = x;
    if (present)
        *present = true;
    return MD_OK;
}

enum md_status md_json_bool(const json_t *obj, const char *name, const char *prefix,
                            bool required, bool *out, bool *present, struct md_error *err)
{
    json_t *v;
    if (present)
        *present = false;
    enum md_status st = member(obj, name, prefix, required, false, &v, err);
    if (st != MD_OK || !v)
        return st;
    if (!json_is_boolean(v))
        return type_error(prefix, name, "true or false", err);
    *out = json_is_true(v);
    if (present)
        *present = true;
    return MD_OK;
}

enum md_status md_json_object(const json_t *obj, const char *name, const char *prefix,
                              bool required, json_t **out, struct md_error *err)
{
    enum md_status st = member(obj, name, prefix, required, false, out, err);
    if (st != MD_OK || !*out)
        return st;
    if (!json_is_object(*out)) {
        *out = NULL;
        return type_error(prefix, name, "an object", err);
    }
    return MD_OK;
}

enum md_status md_json_short(const json_t *obj, const char *name, const char *prefix,
                             bool required, size_t max_bytes, const char **out,
                             struct md_error *err)
{
    json_t *v;
    *out = NULL;
    enum md_status st = member(obj, name, prefix, required, false, &v, err);
    if (st != MD_OK || !v)
        return st;
    char what[96];
    snprintf(what, sizeof(what), "a non-blank string of at most %zu bytes without control "
             "characters", max_bytes);
    if (!json_is_string(v))
        return type_error(prefix, name, what, err);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 || len > max_bytes || md_str_blank(s) || md_str_has_ctl(s, len))
        return type_error(prefix, name, what, err);
    *out = s;
    return MD_OK;
}
