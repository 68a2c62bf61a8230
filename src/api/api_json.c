/*
 * api_json.c — rendering of rules and other LTM values, shared by the LTM,
 * trace and integrity handlers. Output is compact JSON appended to a buffer.
 */
#include "memoryd/compat.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api_int.h"
#include "memoryd/clock.h"

enum md_status api_put_time(struct md_buf *b, int64_t ms)
{
    char iso[MD_ISO8601_LEN];
    md_iso8601(ms, iso);
    return md_buf_printf(b, "\"%s\"", iso);
}

enum md_status api_put_verdict(struct md_buf *b, enum md_verdict v)
{
    return v == MD_VERDICT_NONE ? md_buf_puts(b, "null") : md_buf_json_cstr(b, md_verdict_name(v));
}

/* Shortest decimal that round-trips (confidence 0.9 prints as 0.9). */
enum md_status api_put_double(struct md_buf *b, double x)
{
    if (!isfinite(x))
        return md_buf_puts(b, "0");
    char tmp[32];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, x);
        double back = 0;
        sscanf(tmp, "%lf", &back);
        if (back == x)
            break;
    }
    if (!strpbrk(tmp, ".eEn"))
        strncat(tmp, ".0", sizeof(tmp) - strlen(tmp) - 1);
    return md_buf_puts(b, tmp);
}

enum md_status api_put_strv(struct md_buf *b, char *const *v, size_t n)
{
    enum md_status st = md_buf_putc(b, '[');
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        if (i)
            st = md_buf_putc(b, ',');
        if (st == MD_OK)
            st = md_buf_json_cstr(b, v[i]);
    }
    return st == MD_OK ? md_buf_putc(b, ']') : st;
}

enum md_status api_put_concept_names(struct md_buf *b, const struct md_rule *r)
{
    enum md_status st = md_buf_putc(b, '[');
    for (size_t i = 0; st == MD_OK && i < r->n_concepts; i++) {
        if (i)
            st = md_buf_putc(b, ',');
        if (st == MD_OK)
            st = md_buf_json_cstr(b, r->concepts[i].name);
    }
    return st == MD_OK ? md_buf_putc(b, ']') : st;
}

enum md_status api_put_rule(struct md_buf *b, const struct md_rule *r, bool with_score)
{
    enum md_status st = md_buf_puts(b, "{\"rule_id\":");
    if (st == MD_OK)
        st = md_buf_json_cstr(b, r->rule_id);
    if (st == MD_OK)
        st = md_buf_puts(b, ",\"policy\":");
    if (st == MD_OK)
        st = md_buf_json_cstr(b, r->policy);
    if (st == MD_OK)
        st = md_buf_puts(b, ",\"rule_text\":");
    if (st == MD_OK)
        st = md_buf_json_cstr(b, r->rule_text ? r->rule_text : "");
    if (st == MD_OK)
        st = md_buf_puts(b, ",\"related_concepts\":");
    if (st == MD_OK)
        st = api_put_concept_names(b, r);
    if (st == MD_OK)
        st = md_buf_puts(b, ",\"source_scenario_ids\":");
    if (st == MD_OK)
        st = api_put_strv(b, r->sources, r->n_sources);
    if (st == MD_OK)
        st = md_buf_puts(b, ",\"confidence_score\":");
    if (st == MD_OK)
        st = api_put_double(b, r->confidence);
    if (st == MD_OK)
        st = md_buf_printf(b, ",\"version\":%lld,\"created_at\":", (long long)r->version);
    if (st == MD_OK)
        st = api_put_time(b, r->created_ms);
    if (st == MD_OK)
        st = md_buf_puts(b, ",\"updated_at\":");
    if (st == MD_OK)
        st = api_put_time(b, r->updated_ms);
    if (st == MD_OK && with_score) {
        st = md_buf_puts(b, ",\"score\":");
        if (st == MD_OK)
            st = api_put_double(b, r->score);
    }
    return st == MD_OK ? md_buf_putc(b, '}') : st;
}

enum md_status api_put_rules(struct md_buf *b, const struct md_rule *rules, size_t n,
                             bool with_score)
{
    enum md_status st = md_buf_putc(b, '[');
    for (size_t i = 0; st == MD_OK && i < n; i++) {
        if (i)
            st = md_buf_putc(b, ',');
        if (st == MD_OK)
            st = api_put_rule(b, &rules[i], with_score);
    }
    return st == MD_OK ? md_buf_putc(b, ']') : st;
}

void api_answer_buf(struct md_req *req, struct md_resp *resp, int status, const char *message,
                    struct md_buf *b, enum md_status st)
{
    if (st == MD_OK)
        st = md_resp_success_raw(resp, status, message, b->data ? b->data : "null",
                                 b->data ? b->len : 4);
    md_buf_release(b);
    if (st != MD_OK)
        api_oom(req, resp);
}
