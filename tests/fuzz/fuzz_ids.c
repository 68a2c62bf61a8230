/*
 * fuzz_ids.c — the id grammars, the id generators and the text helpers of
 * LTM search (ids.h, ltm.h).
 *
 * Input: newline-separated fields
 *   domain \n requirement_number \n key_concept \n policy \n free text
 * (missing fields are NULL, which the generators accept).
 *
 * Invariants:
 *   - md_scenario_id_valid / md_rule_id_valid agree with POSIX regular
 *     expressions of the spec §2 grammars (a differential oracle);
 *   - a generated scenario id (and every suffixed variant that fits)
 *     satisfies the scenario grammar; a generated rule id prefix plus
 *     "_NN" satisfies the rule grammar and carries the cleaned policy;
 *   - md_domain_clean keeps exactly the lower-cased ASCII letters and digits;
 *   - md_concept_key output is valid UTF-8, idempotent, and blind to ASCII
 *     case;
 *   - md_fulltext_words gives distinct, non-empty, lower-case words of word
 *     characters only, each at most 64 bytes and valid UTF-8 when the query is;
 *   - md_lucene_escape / md_lucene_any output has no unescaped Lucene
 *     special character, unescapes back to its input, and joins exactly the
 *     given words with " OR ";
 *   - md_verdict_parse accepts every canonical name it prints.
 */
#include "memoryd/compat.h"

#include <regex.h>

#include "fuzz_common.h"
#include "memoryd/ids.h"
#include "memoryd/ltm.h"
#include "memoryd/text.h"

#define LUCENE_SPECIAL "+-&|!(){}[]^\"~*?:\\/"

static regex_t scenario_re, rule_re, domain_re;

static void init_once(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    int rc = regcomp(&scenario_re, "^[a-z][a-z0-9]{0,31}_r[0-9]{1,6}_[a-z0-9]+(_[a-z0-9]+)*$",
                     REG_EXTENDED | REG_NOSUB);
    rc |= regcomp(&rule_re, "^[A-Z][A-Z0-9]{0,15}(_[A-Za-z0-9]+)+_[0-9]{2,4}$",
                  REG_EXTENDED | REG_NOSUB);
    rc |= regcomp(&domain_re, "^[a-z][a-z0-9]{0,31}$", REG_EXTENDED | REG_NOSUB);
    FUZZ_CHECK(rc == 0, "regcomp failed");
}

static bool rx_match(const regex_t *re, const char *s)
{
    return regexec(re, s, 0, NULL, 0) == 0;
}

static bool scenario_ref(const char *s)
{
    return strlen(s) <= MD_SCENARIO_ID_MAX && rx_match(&scenario_re, s);
}

static bool rule_ref(const char *s)
{
    return strlen(s) <= MD_RULE_ID_MAX && rx_match(&rule_re, s);
}

static void check_grammars(const char *s)
{
    FUZZ_CHECK(md_scenario_id_valid(s) == scenario_ref(s), "scenario_id '%s': scanner %d, regex %d",
               s, md_scenario_id_valid(s), scenario_ref(s));
    FUZZ_CHECK(md_rule_id_valid(s) == rule_ref(s), "rule_id '%s': scanner %d, regex %d", s,
               md_rule_id_valid(s), rule_ref(s));
    if (md_scenario_id_valid(s)) {
        char dom[MD_DOMAIN_MAX + 1];
        md_scenario_id_domain(s, dom);
        FUZZ_CHECK(strncmp(s, dom, strlen(dom)) == 0 && s[strlen(dom)] == '_',
                   "domain part '%s' of '%s'", dom, s);
    }
    if (md_rule_id_valid(s)) {
        char pol[MD_POLICY_MAX + 1];
        md_rule_id_policy(s, pol);
        FUZZ_CHECK(strncmp(s, pol, strlen(pol)) == 0 && s[strlen(pol)] == '_',
                   "policy part '%s' of '%s'", pol, s);
    }
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static void check_domain(const char *domain)
{
    char out[MD_DOMAIN_MAX + 1];
    struct md_error err;
    md_error_clear(&err);
    enum md_status st = md_domain_clean(domain, out, &err);
    /* reference: lower-cased ASCII letters and digits, in order */
    char ref[4096];
    size_t n = 0;
    for (const char *p = domain; *p && n + 1 < sizeof(ref); p++) {
        char c = *p >= 'A' && *p <= 'Z' ? (char)(*p + 32) : *p;
        if (is_lower_alnum(c))
            ref[n++] = c;
    }
    ref[n] = '\0';
    bool ok = n >= 1 && n <= MD_DOMAIN_MAX && ref[0] >= 'a' && ref[0] <= 'z';
    if (strlen(domain) < sizeof(ref) - 1)
        FUZZ_CHECK((st == MD_OK) == ok, "md_domain_clean('%s') = %d, reference '%s'", domain,
                   (int)st, ref);
    if (st == MD_OK) {
        FUZZ_CHECK(strcmp(out, ref) == 0, "md_domain_clean('%s') = '%s', want '%s'", domain, out,
                   ref);
        FUZZ_CHECK(rx_match(&domain_re, out), "cleaned domain '%s'", out);
    } else {
        FUZZ_CHECK(err.code == st && err.msg[0] && strcmp(err.field, "domain") == 0,
                   "error record of md_domain_clean");
    }
}

static void check_generate(const char *domain, const char *req, const char *concept)
{
    char id[MD_SCENARIO_ID_MAX + 1];
    struct md_error err;
    md_error_clear(&err);
    if (md_scenario_id_generate(domain, req, concept, id, &err) != MD_OK) {
        FUZZ_CHECK(err.msg[0] && err.field[0], "generate failed without a message");
        return;
    }
    FUZZ_CHECK(md_scenario_id_valid(id) && scenario_ref(id),
               "generated scenario_id '%s' (domain '%s', req '%s', concept '%s') is invalid", id,
               domain, req ? req : "(null)", concept ? concept : "(null)");
    static const unsigned suffixes[] = {2, 3, 10, 99, 1000, 4294967295u};
    for (size_t i = 0; i < MD_ARRAY_LEN(suffixes); i++) {
        char with[MD_SCENARIO_ID_MAX + 1];
        bool fits = md_scenario_id_with_suffix(id, suffixes[i], with);
        char want[MD_SCENARIO_ID_MAX + 32];
        int w = snprintf(want, sizeof(want), "%s_%u", id, suffixes[i]);
        FUZZ_CHECK(fits == (w <= MD_SCENARIO_ID_MAX), "suffix %u on '%s': fits %d", suffixes[i],
                   id, fits);
        if (fits)
            FUZZ_CHECK(md_scenario_id_valid(with) && strcmp(with, want) == 0,
                       "suffixed scenario_id '%s' is invalid", with);
    }
}

static void check_rule_prefix(const char *policy, const char *concept)
{
    char prefix[MD_RULE_ID_MAX + 1];
    struct md_error err;
    md_error_clear(&err);
    if (md_rule_id_prefix(policy, concept, prefix, &err) != MD_OK) {
        FUZZ_CHECK(err.msg[0] && err.field[0], "rule prefix failed without a message");
        return;
    }
    /* the store appends the lowest free "_NN" (two digits, up to four) */
    static const char *const nn[] = {"_01", "_99", "_100", "_9999"};
    for (size_t i = 0; i < MD_ARRAY_LEN(nn); i++) {
        char id[MD_RULE_ID_MAX + 8];
        snprintf(id, sizeof(id), "%s%s", prefix, nn[i]);
        FUZZ_CHECK(md_rule_id_valid(id) && rule_ref(id),
                   "generated rule id '%s' (policy '%s', concept '%s') is invalid", id,
                   policy ? policy : "(null)", concept ? concept : "(null)");
    }
    char pol[MD_POLICY_MAX + 1], ref[MD_POLICY_MAX + 1];
    md_rule_id_policy(prefix, pol);
    size_t n = 0;
    for (const char *p = policy ? policy : ""; *p && n < MD_POLICY_MAX; p++) {
        char c = *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p;
        if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            ref[n++] = c;
    }
    ref[n] = '\0';
    FUZZ_CHECK(strcmp(pol, ref) == 0, "policy of '%s' is '%s', want '%s'", prefix, pol, ref);
}

static void check_concept_key(const char *name)
{
    char key[MD_CONCEPT_KEY_MAX + 1], again[MD_CONCEPT_KEY_MAX + 1];
    md_concept_key(name, key); /* any bytes: must not crash or overflow */
    FUZZ_CHECK(strlen(key) <= MD_CONCEPT_KEY_MAX, "concept key too long");
    size_t len = strlen(name);
    if (!md_utf8_valid(name, len) || md_utf8_count(name, len) > MD_CONCEPT_NAME_MAX)
        return; /* the contract covers valid names of at most 100 code points */
    FUZZ_CHECK(md_utf8_valid(key, strlen(key)), "concept key of '%s' is not UTF-8", name);
    md_concept_key(key, again);
    FUZZ_CHECK(strcmp(key, again) == 0, "concept key not idempotent: '%s' -> '%s' -> '%s'", name,
               key, again);
    char upper[4 * MD_CONCEPT_NAME_MAX + 1];
    size_t i = 0;
    for (; name[i] && i < sizeof(upper) - 1; i++)
        upper[i] = name[i] >= 'a' && name[i] <= 'z' ? (char)(name[i] - 32) : name[i];
    upper[i] = '\0';
    md_concept_key(upper, again);
    FUZZ_CHECK(strcmp(key, again) == 0, "concept key depends on ASCII case: '%s' vs '%s'", key,
               again);
}

static bool word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* Every special character of out is escaped, and unescaping gives back in. */
static void check_escaped(const char *in, const char *out)
{
    size_t o = 0;
    for (size_t i = 0; out[i]; i++) {
        char c = out[i];
        if (c == '\\') {
            FUZZ_CHECK(out[i + 1] && strchr(LUCENE_SPECIAL, out[i + 1]),
                       "escape of a non-special character in '%s'", out);
            c = out[++i];
        } else {
            FUZZ_CHECK(!strchr(LUCENE_SPECIAL, c), "unescaped '%c' in '%s'", c, out);
        }
        FUZZ_CHECK(in[o] == c, "'%s' does not unescape to '%s'", out, in);
        o++;
    }
    FUZZ_CHECK(in[o] == '\0', "'%s' does not unescape to '%s'", out, in);
}

static void check_fulltext(const char *q)
{
    size_t qlen = strlen(q);
    char *buf = malloc(qlen * 4 + 64);
    const char *words[32];
    if (!buf)
        return;
    size_t n = md_fulltext_words(q, buf, qlen * 4 + 64, words, MD_ARRAY_LEN(words));
    FUZZ_CHECK(n <= MD_ARRAY_LEN(words), "too many words");
    bool q_utf8 = md_utf8_valid(q, qlen);
    for (size_t i = 0; i < n; i++) {
        size_t wl = strlen(words[i]);
        FUZZ_CHECK(wl >= 1 && wl <= 64, "word %zu of '%s' has %zu bytes", i, q, wl);
        for (size_t k = 0; k < wl; k++)
            FUZZ_CHECK(word_byte((unsigned char)words[i][k]), "word '%s' has byte 0x%02x",
                       words[i], (unsigned char)words[i][k]);
        if (q_utf8)
            FUZZ_CHECK(md_utf8_valid(words[i], wl), "word '%s' of a UTF-8 query is not UTF-8",
                       words[i]);
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(words[i], words[k]) != 0, "duplicate word '%s'", words[i]);
    }
    /* the Lucene query of the words: "w1 OR w2 …", every word a plain term */
    char lucene[8192];
    if (md_lucene_any(words, n, lucene, sizeof(lucene))) {
        const char *p = lucene;
        for (size_t i = 0; i < n; i++) {
            const char *sep = strstr(p, " OR ");
            size_t len = sep ? (size_t)(sep - p) : strlen(p);
            char term[1024];
            FUZZ_CHECK(len < sizeof(term), "term too long");
            memcpy(term, p, len);
            term[len] = '\0';
            check_escaped(words[i], term);
            FUZZ_CHECK((i + 1 < n) == (sep != NULL), "lucene '%s' has the wrong number of terms",
                       lucene);
            p = sep ? sep + 4 : p + len;
        }
        FUZZ_CHECK(*p == '\0', "trailing text in lucene query '%s'", lucene);
    }
    free(buf);
    /* escaping arbitrary text (up to the buffer) */
    char esc[4096];
    if (qlen < sizeof(esc) / 2 && md_lucene_escape(q, esc, sizeof(esc)))
        check_escaped(q, esc);
    FUZZ_CHECK(!md_lucene_escape("a", esc, 1), "escape into a 1-byte buffer succeeded");
}

static void check_verdict(const char *s)
{
    enum md_verdict v;
    if (md_verdict_parse(s, &v)) {
        FUZZ_CHECK(v >= 0 && v < MD_VERDICT_COUNT, "verdict %d out of range", (int)v);
        enum md_verdict again;
        FUZZ_CHECK(md_verdict_parse(md_verdict_name(v), &again) && again == v,
                   "canonical name of '%s' does not parse back", s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size > 8192)
        return 0;
    char *f[5] = {NULL, NULL, NULL, NULL, NULL};
    size_t pos = 0;
    for (size_t i = 0; i < 5 && pos < size; i++) {
        f[i] = fuzz_field(data, size, &pos, '\n');
        if (!f[i])
            goto out;
    }
    const char *domain = f[0] ? f[0] : "";
    for (size_t i = 0; i < 5; i++)
        if (f[i]) {
            check_grammars(f[i]);
            check_verdict(f[i]);
        }
    check_domain(domain);
    check_generate(domain, f[1], f[2]);
    check_rule_prefix(f[3], f[2]);
    check_concept_key(f[2] ? f[2] : domain);
    check_fulltext(f[4] ? f[4] : domain);
out:
    for (size_t i = 0; i < 5; i++)
        free(f[i]);
    return 0;
}
