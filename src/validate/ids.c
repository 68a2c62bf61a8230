/*
 * ids.c — statuses, scenario ids and rule ids (spec §2 and §6).
 *
 * The grammars are matched by hand-written scanners rather than regex: they
 * are short, allocation-free, and a fuzz target can drive them directly.
 */
#include "memoryd/compat.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "memoryd/ids.h"

static const char *const verdict_names[MD_VERDICT_COUNT] = {
    "Compliant", "Non-Compliant", "Partially Compliant", "Pending"};

const char *md_verdict_name(enum md_verdict v)
{
    if (v < 0 || v >= MD_VERDICT_COUNT)
        return "";
    return verdict_names[v];
}

bool md_verdict_parse(const char *s, enum md_verdict *out)
{
    static const struct {
        const char *alias;
        enum md_verdict v;
    } aliases[] = {
        {"Compliant", MD_VERDICT_COMPLIANT},
        {"Non-Compliant", MD_VERDICT_NON_COMPLIANT},
        {"NonCompliant", MD_VERDICT_NON_COMPLIANT},
        {"Non Compliant", MD_VERDICT_NON_COMPLIANT},
        {"Partially Compliant", MD_VERDICT_PARTIAL},
        {"PartiallyCompliant", MD_VERDICT_PARTIAL},
        {"Partial", MD_VERDICT_PARTIAL},
        {"Pending", MD_VERDICT_PENDING},
    };
    if (!s)
        return false;
    for (size_t i = 0; i < MD_ARRAY_LEN(aliases); i++)
        if (strcasecmp(s, aliases[i].alias) == 0) {
            *out = aliases[i].v;
            return true;
        }
    return false;
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ^[a-z][a-z0-9]{0,31}_r[0-9]{1,6}_[a-z0-9]+(_[a-z0-9]+)*$, length ≤ 128 */
bool md_scenario_id_valid(const char *id)
{
    if (!id)
        return false;
    size_t len = strlen(id);
    if (len == 0 || len > MD_SCENARIO_ID_MAX)
        return false;
    const char *p = id;
    if (!(*p >= 'a' && *p <= 'z'))
        return false;
    size_t n = 0;
    while (is_lower_alnum(*p)) {
        p++;
        n++;
    }
    if (n > MD_DOMAIN_MAX || *p++ != '_' || *p++ != 'r')
        return false;
    n = 0;
    while (is_digit(*p)) {
        p++;
        n++;
    }
    if (n < 1 || n > 6 || *p != '_')
        return false;
    /* one or more '_'-separated non-empty [a-z0-9]+ groups to the end */
    while (*p == '_') {
        p++;
        n = 0;
        while (is_lower_alnum(*p)) {
            p++;
            n++;
        }
        if (n == 0)
            return false;
    }
    return *p == '\0';
}

/* ^[A-Z][A-Z0-9]{0,15}(_[A-Za-z0-9]+)+_[0-9]{2,4}$, length ≤ 128 */
bool md_rule_id_valid(const char *id)
{
    if (!id)
        return false;
    size_t len = strlen(id);
    if (len == 0 || len > MD_RULE_ID_MAX)
        return false;
    const char *p = id;
    if (!(*p >= 'A' && *p <= 'Z'))
        return false;
    size_t n = 0;
    while ((*p >= 'A' && *p <= 'Z') || is_digit(*p)) {
        p++;
        n++;
    }
    if (n > MD_POLICY_MAX || *p != '_')
        return false;
    /* Split the rest into '_'-separated groups; the last must be 2–4 digits
     * and at least one group must precede it. */
    size_t groups = 0;
    const char *last = NULL;
    size_t last_len = 0;
    while (*p == '_') {
        p++;
        const char *g = p;
        while (is_alnum(*p))
            p++;
        if (p == g)
            return false;
        groups++;
        last = g;
        last_len = (size_t)(p - g);
    }
    if (*p != '\0' || groups < 2 || last_len < 2 || last_len > 4)
        return false;
    for (size_t i = 0; i < last_len; i++)
        if (!is_digit(last[i]))
            return false;
    return true;
}

enum md_status md_domain_clean(const char *domain, char out[MD_DOMAIN_MAX + 1],
                               struct md_error *err)
{
    size_t n = 0;
    for (const char *p = domain; *p; p++) {
        char c = (char)tolower((unsigned char)*p);
        if (!is_lower_alnum(c) || ((unsigned char)*p & 0x80))
            continue;
        if (n == MD_DOMAIN_MAX)
            return md_error_set_field(err, MD_E_INVAL, "domain",
                                      "domain has more than %d letters and digits", MD_DOMAIN_MAX);
        out[n++] = c;
    }
    out[n] = '\0';
    if (n == 0 || !(out[0] >= 'a' && out[0] <= 'z'))
        return md_error_set_field(err, MD_E_INVAL, "domain",
                                  "domain must start with a letter after dropping characters "
                                  "outside [a-z0-9]");
    return MD_OK;
}

/* "R007" -> "r7"; no digits -> "r1"; more than 6 digits -> error. */
static enum md_status requirement_part(const char *req, char out[8], struct md_error *err)
{
    const char *p = req ? req : "";
    while (*p && !is_digit(*p))
        p++;
    if (!*p) {
        snprintf(out, 8, "r1");
        return MD_OK;
    }
    while (*p == '0' && is_digit(p[1]))
        p++;
    size_t n = 0;
    while (is_digit(p[n]))
        n++;
    if (n > 6)
        return md_error_set_field(err, MD_E_INVAL, "requirement_number",
                                  "requirement number has more than 6 digits");
    out[0] = 'r';
    memcpy(out + 1, p, n);
    out[n + 1] = '\0';
    return MD_OK;
}

/* Concept slug: lower case, runs outside [a-z0-9] -> '_', trimmed, cut to 40,
 * trailing '_' trimmed again; empty -> "general". */
static void concept_slug(const char *concept, char out[MD_CONCEPT_SLUG_MAX + 1])
{
    size_t n = 0;
    bool pending_sep = false;
    for (const char *p = concept ? concept : ""; *p && n < MD_CONCEPT_SLUG_MAX; p++) {
        char c = (char)tolower((unsigned char)*p);
        if ((unsigned char)*p & 0x80 || !is_lower_alnum(c)) {
            pending_sep = n > 0;
            continue;
        }
        if (pending_sep) {
            out[n++] = '_';
            pending_sep = false;
            if (n == MD_CONCEPT_SLUG_MAX)
                break;
        }
        out[n++] = c;
    }
    while (n > 0 && out[n - 1] == '_')
        n--;
    out[n] = '\0';
    if (n == 0)
        memcpy(out, "general", sizeof("general"));
}

enum md_status md_scenario_id_generate(const char *domain, const char *requirement_number,
                                       const char *key_concept, char out[MD_SCENARIO_ID_MAX + 1],
                                       struct md_error *err)
{
    char dom[MD_DOMAIN_MAX + 1], req[8], slug[MD_CONCEPT_SLUG_MAX + 1];
    enum md_status st = md_domain_clean(domain, dom, err);
    if (st != MD_OK)
        return st;
    st = requirement_part(requirement_number, req, err);
    if (st != MD_OK)
        return st;
    concept_slug(key_concept, slug);
    snprintf(out, MD_SCENARIO_ID_MAX + 1, "%s_%s_%s", dom, req, slug);
    return MD_OK;
}

bool md_scenario_id_with_suffix(const char *base, unsigned n, char out[MD_SCENARIO_ID_MAX + 1])
{
    int w = snprintf(out, MD_SCENARIO_ID_MAX + 1, "%s_%u", base, n);
    return w > 0 && w <= MD_SCENARIO_ID_MAX;
}

void md_scenario_id_domain(const char *id, char out[MD_DOMAIN_MAX + 1])
{
    size_t n = 0;
    while (id[n] && id[n] != '_' && n < MD_DOMAIN_MAX) {
        out[n] = id[n];
        n++;
    }
    out[n] = '\0';
}

enum md_status md_rule_id_prefix(const char *policy, const char *key_concept,
                                 char out[MD_RULE_ID_MAX + 1], struct md_error *err)
{
    char pol[MD_POLICY_MAX + 1];
    size_t n = 0;
    for (const char *p = policy ? policy : ""; *p; p++) {
        if ((unsigned char)*p & 0x80 || !is_alnum(*p))
            continue;
        if (n == MD_POLICY_MAX)
            return md_error_set_field(err, MD_E_INVAL, "policy",
                                      "policy has more than %d letters and digits", MD_POLICY_MAX);
        pol[n++] = (char)toupper((unsigned char)*p);
    }
    pol[n] = '\0';
    if (n == 0 || !(pol[0] >= 'A' && pol[0] <= 'Z'))
        return md_error_set_field(err, MD_E_INVAL, "policy",
                                  "policy must start with a letter after dropping "
                                  "non-alphanumeric characters");
    /* CamelCase words: each alphanumeric run gets its first character
     * upper-cased and keeps the rest as given. Room is left for "_NNNN". */
    size_t o = (size_t)snprintf(out, MD_RULE_ID_MAX + 1, "%s_", pol);
    size_t words = 0;
    bool in_word = false;
    for (const char *p = key_concept ? key_concept : ""; *p; p++) {
        bool alnum = !((unsigned char)*p & 0x80) && is_alnum(*p);
        if (!alnum) {
            in_word = false;
            continue;
        }
        if (o >= MD_RULE_ID_MAX - 5)
            return md_error_set_field(err, MD_E_INVAL, "key_concept",
                                      "key concept is too long for a rule id");
        out[o++] = in_word ? *p : (char)toupper((unsigned char)*p);
        if (!in_word)
            words++;
        in_word = true;
    }
    out[o] = '\0';
    if (words == 0)
        return md_error_set_field(err, MD_E_INVAL, "key_concept",
                                  "key concept needs at least one letter or digit");
    return MD_OK;
}

void md_rule_id_policy(const char *rule_id, char out[MD_POLICY_MAX + 1])
{
    size_t n = 0;
    while (rule_id[n] && rule_id[n] != '_' && n < MD_POLICY_MAX) {
        out[n] = rule_id[n];
        n++;
    }
    out[n] = '\0';
}
