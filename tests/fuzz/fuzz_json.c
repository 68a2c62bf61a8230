/*
 * fuzz_json.c — request body parsing (md_json_parse_object) and the field
 * getters of json_body.h, on every member of whatever object parses.
 *
 * Input: the raw request body.
 *
 * Invariants:
 *   - md_json_parse_object accepts exactly the bodies that are valid UTF-8,
 *     free of NUL bytes, at most MD_JSON_MAX_DEPTH deep, and that jansson
 *     parses (duplicate keys rejected) into an object;
 *   - md_json_depth equals the real depth of every document that parses;
 *   - each getter's success means what its header says (type, bounds,
 *     blankness, length in code points or bytes, control characters), and a
 *     failure fills a record whose field names the member and whose error
 *     envelope (what the client gets) is valid JSON and UTF-8 — messages
 *     quote client bytes (jansson's error text, unknown member names) and
 *     may cut them mid-character.
 */
#include "memoryd/compat.h"

#include <math.h>

#include "fuzz_common.h"
#include "memoryd/envelope.h"
#include "memoryd/json_body.h"
#include "memoryd/text.h"

static size_t tree_depth(const json_t *v)
{
    size_t best = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)(uintptr_t)v, k, m)
        {
            (void)k;
            size_t d = tree_depth(m);
            best = d > best ? d : best;
        }
        return best + 1;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            size_t d = tree_depth(json_array_get(v, i));
            best = d > best ? d : best;
        }
        return best + 1;
    }
    return 0;
}

/* The error envelope a client gets for err is one valid JSON document (UTF-8 included). */
static void check_envelope(const struct md_error *err)
{
    struct md_resp resp;
    memset(&resp, 0, sizeof(resp));
    md_buf_init(&resp.body, MD_RESP_MAX_BYTES);
    md_resp_from_error(&resp, err);
    json_error_t jerr;
    json_t *doc = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
    FUZZ_CHECK(doc && json_is_object(doc), "error envelope is not JSON (%s): %s", jerr.text,
               resp.body.data);
    const char *msg = json_string_value(json_object_get(doc, "message"));
    FUZZ_CHECK(msg && msg[0], "error envelope without a message");
    json_decref(doc);
    md_buf_release(&resp.body);
}

static void check_error(const struct md_error *err, enum md_status st, const char *prefix,
                        const char *name)
{
    FUZZ_CHECK(err->code == st && err->msg[0], "error record not filled (status %d)", (int)st);
    check_envelope(err);
    if (!name)
        return;
    char want[MD_ERROR_FIELD_MAX * 2];
    bool dotted = prefix && *prefix;
    snprintf(want, sizeof(want), "%s%s%s", dotted ? prefix : "", dotted ? "." : "", name);
    if (strlen(want) < MD_ERROR_FIELD_MAX - 1 && !md_str_has_ctl(name, strlen(name)))
        FUZZ_CHECK(strcmp(err->field, want) == 0, "field '%s', want '%s'", err->field, want);
}

static void check_member(json_t *obj, const char *name, const char *prefix)
{
    struct md_error err;
    json_t *v = json_object_get(obj, name);
    static const size_t max_cps[] = {1, 5, MD_TEXT_MAX};
    for (size_t i = 0; i < MD_ARRAY_LEN(max_cps); i++) {
        const char *s = NULL;
        md_error_clear(&err);
        enum md_status st = md_json_text(obj, name, prefix, true, max_cps[i], &s, &err);
        if (st == MD_OK) {
            FUZZ_CHECK(json_is_string(v) && s == json_string_value(v), "text: not the string");
            size_t len = json_string_length(v);
            FUZZ_CHECK(!md_str_blank(s) && md_utf8_count(s, len) <= max_cps[i],
                       "text '%s' accepted with max %zu", s, max_cps[i]);
        } else {
            FUZZ_CHECK(s == NULL, "text: out set on failure");
            check_error(&err, st, prefix, name);
        }
        md_error_clear(&err);
        st = md_json_short(obj, name, prefix, true, max_cps[i] * 20, &s, &err);
        if (st == MD_OK) {
            size_t len = json_string_length(v);
            FUZZ_CHECK(json_is_string(v) && len >= 1 && len <= max_cps[i] * 20 &&
                           !md_str_blank(s) && !md_str_has_ctl(s, len),
                       "short string '%s' accepted", s);
        } else {
            check_error(&err, st, prefix, name);
        }
    }
    for (int allow_null = 0; allow_null < 2; allow_null++) {
        enum md_verdict vd;
        bool present;
        md_error_clear(&err);
        enum md_status st =
            md_json_verdict(obj, name, prefix, false, allow_null, &vd, &present, &err);
        FUZZ_CHECK(present == (v != NULL) || st != MD_OK, "verdict: present flag");
        if (st == MD_OK) {
            if (!v)
                FUZZ_CHECK(vd == MD_VERDICT_NONE && !present, "absent verdict");
            else if (json_is_null(v))
                FUZZ_CHECK(allow_null && vd == MD_VERDICT_NONE, "null verdict accepted");
            else
                FUZZ_CHECK(vd >= 0 && vd < MD_VERDICT_COUNT && json_is_string(v),
                           "verdict %d from a non-status", (int)vd);
        } else {
            check_error(&err, st, prefix, name);
        }
    }
    static const int64_t bounds[][2] = {{0, 100}, {-5, 5}, {INT64_MIN, INT64_MAX}};
    for (size_t i = 0; i < MD_ARRAY_LEN(bounds); i++) {
        int64_t n = 777;
        bool present;
        md_error_clear(&err);
        enum md_status st =
            md_json_int(obj, name, prefix, false, bounds[i][0], bounds[i][1], &n, &present, &err);
        if (st == MD_OK && present)
            FUZZ_CHECK(json_is_integer(v) && n == json_integer_value(v) && n >= bounds[i][0] &&
                           n <= bounds[i][1],
                       "integer %lld accepted", (long long)n);
        else if (st != MD_OK)
            check_error(&err, st, prefix, name);
        double x = 7.5;
        md_error_clear(&err);
        st = md_json_number(obj, name, prefix, false, (double)bounds[i][0] / 10.0,
                            (double)bounds[i][1] / 10.0, &x, &present, &err);
        if (st == MD_OK && present)
            FUZZ_CHECK(json_is_number(v) && isfinite(x) && x >= (double)bounds[i][0] / 10.0 &&
                           x <= (double)bounds[i][1] / 10.0,
                       "number %g accepted", x);
        else if (st != MD_OK)
            check_error(&err, st, prefix, name);
    }
    bool b, present;
    md_error_clear(&err);
    enum md_status st = md_json_bool(obj, name, prefix, true, &b, &present, &err);
    if (st == MD_OK)
        FUZZ_CHECK(json_is_boolean(v) && b == json_is_true(v), "bool accepted");
    else
        check_error(&err, st, prefix, name);
    json_t *o = NULL;
    md_error_clear(&err);
    st = md_json_object(obj, name, prefix, true, &o, &err);
    if (st == MD_OK)
        FUZZ_CHECK(json_is_object(o) && o == v, "object accepted");
    else
        check_error(&err, st, prefix, name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    const char *body = (const char *)data;
    json_t *obj = NULL;
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = md_json_parse_object(body, size, &obj, &err);

    /* reference acceptance */
    json_error_t jerr;
    json_t *ref = NULL;
    bool pre = size > 0 && md_utf8_valid(body, size) && !memchr(body, '\0', size);
    if (pre)
        ref = json_loadb(body, size, JSON_REJECT_DUPLICATES, &jerr);
    if (ref)
        FUZZ_CHECK(md_json_depth(body, size) == tree_depth(ref), "depth %zu, real %zu",
                   md_json_depth(body, size), tree_depth(ref));
    bool want = ref && json_is_object(ref) && tree_depth(ref) <= MD_JSON_MAX_DEPTH;
    json_decref(ref);
    FUZZ_CHECK((st == MD_OK) == want, "md_json_parse_object = %d, reference %d (%s)", (int)st,
               want, err.msg);
    if (st != MD_OK) {
        FUZZ_CHECK(obj == NULL, "object returned on failure");
        check_error(&err, st, NULL, NULL);
        return 0;
    }
    FUZZ_CHECK(json_is_object(obj), "not an object");

    /* every getter on every member, at the top level and one level down */
    const char *allowed[4] = {NULL, NULL, NULL, NULL};
    size_t n_allowed = 0;
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        if (n_allowed < 3)
            allowed[n_allowed++] = key;
        check_member(obj, key, NULL);
        if (json_is_object(value)) {
            const char *k2;
            json_t *v2;
            json_object_foreach(value, k2, v2)
            {
                (void)v2;
                check_member(value, k2, key);
            }
        }
    }
    check_member(obj, "absent_member", "p");
    md_error_clear(&err);
    st = md_json_only(obj, allowed, "prefix", &err);
    if (st == MD_OK)
        FUZZ_CHECK(json_object_size(obj) <= 3, "md_json_only let an unknown member through");
    else
        check_error(&err, st, NULL, NULL);
    json_decref(obj);
    return 0;
}
