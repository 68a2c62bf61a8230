/* test_json_load.c — md_json_load accepts what jansson accepts and builds the same trees. */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memoryd/json_load.h"

/* Both parsers on data; true when they agree (same verdict, equal trees). */
static bool agree(const char *data, size_t len, unsigned ours_flags, size_t jansson_flags)
{
    const char *why = NULL;
    size_t pos = 0;
    json_t *ours = md_json_load(data, len, ours_flags, &why, &pos);
    json_error_t jerr;
    json_t *theirs = json_loadb(data, len, jansson_flags, &jerr);
    bool same = (!ours == !theirs) && (!ours || json_equal(ours, theirs));
    if (!same)
        fprintf(stderr, "disagree on [%.*s] (flags %u): ours %s (%s), jansson %s (%s)\n",
                (int)MD_MIN(len, 200), data, ours_flags, ours ? "ok" : "refused", why ? why : "-",
                theirs ? "ok" : "refused", theirs ? "-" : jerr.text);
    if (!ours)
        assert_non_null(why); /* every refusal says why */
    json_decref(ours);
    json_decref(theirs);
    return same;
}

static bool agree_all_modes(const char *data, size_t len)
{
    return agree(data, len, 0, 0) && agree(data, len, MD_JSON_LOAD_ANY, JSON_DECODE_ANY) &&
           agree(data, len, MD_JSON_LOAD_REJECT_DUPS, JSON_REJECT_DUPLICATES);
}

/* Neo4j's answer to one rule, as the store receives it. */
static const char neo4j_rule[] =
    "{\"results\":[{\"columns\":[\"rule\",\"sources\",\"policies\"],\"data\":[{\"row\":"
    "[[\"GDPR_Consent_Withdrawal_01\",\"GDPR\",\"Consent must be as easy to withdraw as to "
    "give \\u2014 \\\"one click\\\".\",0.92,3,1795791589105,1795791589105,[[0,\"consent\","
    "\"consent\"],[1,\"withdrawal of consent\",\"withdrawal of consent\"]],[\"ecommerce_r1_"
    "consent\"]],[[\"ecommerce_r1_consent\",\"ab12\",true,\"approved\",1795791589105]],"
    "[\"GDPR\"]],\"meta\":[null,null,null]}]}],\"errors\":[],\"lastBookmarks\":[\"FB:kc"
    "wQwefX4DEgR0G9IQipkVlEtckBTZA=\"]}";

static void test_valid_documents_agree(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{}", "[]", " \t\r\n[ ] \n", "[1]", "{\"a\":{}}", "[true,false,null]",
        "[0,-0,1,-1,12345678901,-9223372036854775808,9223372036854775807]",
        "[0.5,-0.0,1e3,1E-3,2.5e+10,-1.25E2,1e-400,123456789012345678901234567890.5]",
        "[\"\",\"a\",\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"\\u0041\\u00e9\\u20ac\"]",
        "[\"\\ud83d\\ude00\",\"\\uD834\\uDD1E\",\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]",
        "{\"a\":1,\"a\":2}", "{\"\":0}", "{\"k\\u00e9y\":\"v\",\"k\xc3\xa9y\":1}",
        "[[[[[[[[[[[]]]]]]]]]]]", "{\"a\":[{\"b\":[{\"c\":null}]}]}",
        "[0.1000000000000000055511151231257827021181583404541015625]",
        neo4j_rule,
    };
    for (size_t i = 0; i < MD_ARRAY_LEN(docs); i++) {
        assert_true(agree_all_modes(docs[i], strlen(docs[i])));
        json_t *v = md_json_load(docs[i], strlen(docs[i]), 0, NULL, NULL);
        assert_non_null(v);
        json_decref(v);
    }
}

static void test_invalid_documents_are_refused_like_jansson(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "", " ", "1", "\"top\"", "null", "[", "]", "{", "[1,]", "[,1]", "{\"a\":1,}",
        "{\"a\"}", "{\"a\" 1}", "{a:1}", "{1:1}", "[01]", "[-]", "[1.]", "[.5]", "[1e]",
        "[1e+]", "[+1]", "[NaN]", "[Infinity]", "[tru]", "[truex]", "[nul]", "[1]x", "[1] [2]",
        "[\"a]", "[\"\\x\"]", "[\"\\u12\"]", "[\"\\u12G4\"]", "[\"\\u0000\"]", "[\"\\ud800\"]",
        "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]", "[\"\\ud800x\"]", "[\"a\tb\"]", "[\"a\nb\"]",
        "[9223372036854775808]", "[-9223372036854775809]", "[1e400]", "[-1e400]",
        "[\"\xff\"]", "[\"\xc3\"]", "[\"\xed\xa0\x80\"]", "[\"\xc0\xaf\"]", "[1]\xff",
        "{\"a\":1,\"a\":2}", /* refused only with REJECT_DUPS: checked in all modes */
        "[1,2", "{\"a\":", "[\"\\", "[\"\\u",
    };
    for (size_t i = 0; i < MD_ARRAY_LEN(docs); i++)
        assert_true(agree_all_modes(docs[i], strlen(docs[i])));
    /* NUL bytes, inside and outside strings, are always refused (jansson 2.14
     * drops a NUL that follows a number: "[0,2,3\0]" parses there; found by
     * fuzz_json_load, tests/fuzz/regressions/fuzz_json_load/) */
    static const struct {
        const char *s;
        size_t n;
    } nul[] = {{"[\"a\0b\"]", 7}, {"[1]\0", 4}, {"[\0]", 3}, {"[0,2,3\0]", 8}, {"{\"a\":1\0}", 9}};
    for (size_t i = 0; i < MD_ARRAY_LEN(nul); i++) {
        for (unsigned flags = 0; flags < 4; flags++) {
            const char *why2 = NULL;
            assert_null(md_json_load(nul[i].s, nul[i].n, flags, &why2, NULL));
            assert_non_null(why2);
        }
    }
    const char *why = NULL;
    assert_null(md_json_load("{\"a\":1,\"a\":2}", 13, MD_JSON_LOAD_REJECT_DUPS, &why, NULL));
    assert_string_equal(why, "duplicate object key");
}

static void test_depth_limit_matches_jansson(void **state)
{
    (void)state;
    /* every value counts a level: n arrays around a scalar is n + 1 levels */
    size_t sizes[] = {MD_JSON_LOAD_MAX_DEPTH - 1, MD_JSON_LOAD_MAX_DEPTH,
                      MD_JSON_LOAD_MAX_DEPTH + 1};
    for (size_t k = 0; k < MD_ARRAY_LEN(sizes); k++) {
        for (int scalar = 0; scalar < 2; scalar++) {
            size_t n = sizes[k];
            char *doc = malloc(2 * n + 2);
            assert_non_null(doc);
            size_t o = 0;
            for (size_t i = 0; i < n; i++)
                doc[o++] = '[';
            if (scalar)
                doc[o++] = '1';
            for (size_t i = 0; i < n; i++)
                doc[o++] = ']';
            assert_true(agree(doc, o, 0, 0));
            free(doc);
        }
    }
}

/* xorshift64*: a fixed sequence, so a failure reproduces */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Mutations of real documents: flipped, inserted, deleted and duplicated bytes
 * (8 000 rounds: half a second natively, well under a minute under valgrind). */
#define ROUNDS 8000

static void test_mutated_documents_agree(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\",:\\/u0123456789abcdefABCDEF.eE+- \t\nntrufalsx\xc3\xa9"
                                   "\xed\xa0\x80\xff";
    const size_t base_len = sizeof(neo4j_rule) - 1;
    char *doc = malloc(2 * base_len + 64);
    assert_non_null(doc);
    size_t refused = 0;
    for (int round = 0; round < ROUNDS; round++) {
        size_t len = base_len;
        memcpy(doc, neo4j_rule, len);
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits && len > 1; e++) {
            size_t at = rnd() % len;
            char c = alphabet[rnd() % (sizeof(alphabet) - 1)];
            switch (rnd() % 4) {
            case 0: doc[at] = c; break;
            case 1:
                memmove(doc + at + 1, doc + at, len - at);
                doc[at] = c;
                len++;
                break;
            case 2:
                memmove(doc + at, doc + at + 1, len - at - 1);
                len--;
                break;
            default: { /* duplicate a short span (keys, numbers, brackets) */
                size_t span = 1 + rnd() % 8;
                if (at + span > len)
                    span = len - at;
                memmove(doc + at + span, doc + at, len - at);
                len += span;
                break;
            }
            }
        }
        bool ok = agree_all_modes(doc, len);
        assert_true(ok);
        json_error_t jerr;
        json_t *t = json_loadb(doc, len, 0, &jerr);
        refused += t == NULL;
        json_decref(t);
    }
    /* the mutations exercised both verdicts */
    assert_true(refused > ROUNDS / 20 && refused < ROUNDS - ROUNDS / 20);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_documents_agree),
        cmocka_unit_test(test_invalid_documents_are_refused_like_jansson),
        cmocka_unit_test(test_depth_limit_matches_jansson),
        cmocka_unit_test(test_mutated_documents_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
