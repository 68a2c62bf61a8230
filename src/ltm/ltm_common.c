/*
 * ltm_common.c — helpers both LTM backends and the API share: concept fold
 * keys, full-text word splitting and Lucene escaping, the evidence
 * completeness formula, and the release functions of ltm.h's result types.
 */
#include "memoryd/compat.h"

#include <stdlib.h>
#include <string.h>

#include "memoryd/ltm.h"
#include "memoryd/text.h"

/* ---- concept fold keys ------------------------------------------------- */

/* Simple lower-case mapping for the scripts concept names mostly use. */
static uint32_t fold(uint32_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c + 32;
    if (c < 0x80)
        return c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 32;
    if (c >= 0x100 && c <= 0x17F) {
        if (c == 0x130)
            return 'i';
        if (c == 0x178)
            return 0xFF;
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
            return (c & 1) ? c + 1 : c;
        if (c == 0x138 || c == 0x149 || c == 0x17F)
            return c;
        return (c & 1) ? c : c + 1;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2)
        return c + 32;
    if (c == 0x386)
        return 0x3AC;
    if (c >= 0x388 && c <= 0x38A)
        return c + 37;
    if (c == 0x38C)
        return 0x3CC;
    if (c == 0x38E || c == 0x38F)
        return c + 63;
    if (c >= 0x410 && c <= 0x42F)
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    return c;
}

static size_t decode(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0 && s[1]) {
        *cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
        return 2;
    }
    if ((s[0] & 0xF0) == 0xE0 && s[1] && s[2]) {
        *cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    if ((s[0] & 0xF8) == 0xF0 && s[1] && s[2] && s[3]) {
        *cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
              (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
        return 4;
    }
    *cp = s[0]; /* invalid byte: keep it as is */
    return 1;
}

void md_concept_key(const char *name, char out[MD_CONCEPT_KEY_MAX + 1])
{
    const unsigned char *s = (const unsigned char *)name;
    size_t o = 0;
    while (*s && o + 4 <= MD_CONCEPT_KEY_MAX) {
        uint32_t cp;
        s += decode(s, &cp);
        o += md_utf8_encode(fold(cp), out + o);
    }
    out[o] = '\0';
}

/* ---- evidence completeness ------------------------------------------------ */

double md_evidence_completeness(size_t sources, size_t available, size_t with_feedback,
                                int64_t total_versions)
{
    if (sources == 0)
        return 0.0;
    double n = (double)sources;
    double v = 0.4 * ((double)available / n) + 0.4 * ((double)with_feedback / n) +
               0.2 * (total_versions > 1 ? 1.0 : 0.5);
    return v > 1.0 ? 1.0 : v;
}

/* ---- full-text ------------------------------------------------------------- */

static bool word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

size_t md_fulltext_words(const char *q, char *buf, size_t buf_len, const char **words,
                         size_t max_words)
{
    size_t n = 0, o = 0;
    const unsigned char *p = (const unsigned char *)q;
    while (*p && n < max_words) {
        while (*p && !word_byte(*p))
            p++;
        const unsigned char *start = p;
        while (*p && word_byte(*p))
            p++;
        size_t len = (size_t)(p - start);
        if (len == 0)
            break;
        if (len > 64)
            len = 64;
        /* never cut a UTF-8 sequence in half */
        while (len > 0 && len < (size_t)(p - start) && (start[len] & 0xC0) == 0x80)
            len--;
        if (len == 0)
            continue; /* a run of 64+ continuation bytes (invalid UTF-8): no word */
        if (o + len + 1 > buf_len)
            break;
        char *w = buf + o;
        for (size_t i = 0; i < len; i++)
            w[i] = (char)(start[i] >= 'A' && start[i] <= 'Z' ? start[i] + 32 : start[i]);
        w[len] = '\0';
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(words[i], w) == 0;
        if (!dup) {
            words[n++] = w;
            o += len + 1;
        }
    }
    return n;
}

bool md_lucene_escape(const char *in, char *out, size_t cap)
{
    static const char special[] = "+-&|!(){}[]^\"~*?:\\/";
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        bool esc = strchr(special, *p) != NULL;
        if (o + (esc ? 2 : 1) + 1 > cap)
            return false;
        if (esc)
            out[o++] = '\\';
        out[o++] = *p;
    }
    if (o + 1 > cap)
        return false;
    out[o] = '\0';
    return true;
}

bool md_lucene_any(const char *const *words, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return false;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i) {
            if (o + 4 >= cap)
                return false;
            memcpy(out + o, " OR ", 4);
            o += 4;
        }
        /* Lucene reads upper-case AND, OR and NOT as operators: a word is
         * always a term, so write it in lower case (the analyzer lower-cases
         * terms anyway). */
        char lower[256];
        size_t len = 0;
        for (const char *p = words[i]; *p && len + 1 < sizeof(lower); p++)
            lower[len++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        lower[len] = '\0';
        if (!md_lucene_escape(lower, out + o, cap - o))
            return false;
        o += strlen(out + o);
    }
    return true;
}

/* ---- release functions --------------------------------------------------------- */

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void md_rule_release(struct md_rule *r)
{
    if (!r)
        return;
    free(r->rule_text);
    for (size_t i = 0; r->concepts && i < r->n_concepts; i++) {
        free(r->concepts[i].name);
        free(r->concepts[i].key);
    }
    free(r->concepts);
    free_strv(r->sources, r->n_sources);
    memset(r, 0, sizeof(*r));
}

void md_rule_list_release(struct md_rule_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; l->items && i < l->count; i++)
        md_rule_release(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

void md_rule_detail_release(struct md_rule_detail *d)
{
    if (!d)
        return;
    md_rule_release(&d->rule);
    free(d->sources);
    free_strv(d->policies, d->n_policies);
    memset(d, 0, sizeof(*d));
}

void md_rule_history_release(struct md_rule_history *h)
{
    if (!h)
        return;
    for (size_t i = 0; h->versions && i < h->count; i++) {
        free(h->versions[i].rule_text);
        free_strv(h->versions[i].concepts, h->versions[i].n_concepts);
        free_strv(h->versions[i].sources, h->versions[i].n_sources);
    }
    free(h->versions);
    memset(h, 0, sizeof(*h));
}

void md_concept_links_release(struct md_concept_links *links, size_t n)
{
    for (size_t i = 0; links && i < n; i++) {
        free(links[i].concept);
        free_strv(links[i].rule_ids, links[i].n_rule_ids);
    }
    free(links);
}

void md_concept_list_release(struct md_concept_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; l->items && i < l->count; i++) {
        free(l->items[i].name);
        free(l->items[i].key);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

void md_scenario_info_release(struct md_scenario_info *s)
{
    if (!s)
        return;
    free(s->snapshot_json);
    md_rule_list_release(&s->derived);
    memset(s, 0, sizeof(*s));
}

void md_ltm_stats_release(struct md_ltm_stats *s)
{
    if (!s)
        return;
    free_strv(s->policies, s->n_policies);
    free(s->policy_counts);
    memset(s, 0, sizeof(*s));
}

void md_pair_list_release(struct md_pair_list *p)
{
    if (!p)
        return;
    free(p->rule_ids);
    free(p->scenario_ids);
    memset(p, 0, sizeof(*p));
}
