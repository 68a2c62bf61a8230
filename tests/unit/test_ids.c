/* test_ids.c — statuses, id grammars and generators (spec §2, §6). */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "memoryd/ids.h"

static void test_verdict_aliases(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        enum md_verdict want;
    } ok[] = {
        {"Compliant", MD_VERDICT_COMPLIANT},
        {"compliant", MD_VERDICT_COMPLIANT},
        {"COMPLIANT", MD_VERDICT_COMPLIANT},
        {"Non-Compliant", MD_VERDICT_NON_COMPLIANT},
        {"non-compliant", MD_VERDICT_NON_COMPLIANT},
        {"NonCompliant", MD_VERDICT_NON_COMPLIANT},
        {"Non Compliant", MD_VERDICT_NON_COMPLIANT},
        {"Partially Compliant", MD_VERDICT_PARTIAL},
        {"partially compliant", MD_VERDICT_PARTIAL},
        {"PartiallyCompliant", MD_VERDICT_PARTIAL},
        {"Partial", MD_VERDICT_PARTIAL},
        {"pending", MD_VERDICT_PENDING},
    };
    for (size_t i = 0; i < MD_ARRAY_LEN(ok); i++) {
        enum md_verdict v = MD_VERDICT_NONE;
        assert_true(md_verdict_parse(ok[i].in, &v));
        assert_int_equal(v, ok[i].want);
    }
    static const char *const bad[] = {"", " Compliant", "Compliant ", "Non_Compliant",
                                      "Partly", "NonCompliantX", "null", "Partially"};
    for (size_t i = 0; i < MD_ARRAY_LEN(bad); i++) {
        enum md_verdict v;
        assert_false(md_verdict_parse(bad[i], &v));
    }
    assert_false(md_verdict_parse(NULL, &(enum md_verdict){0}));
    assert_string_equal(md_verdict_name(MD_VERDICT_PARTIAL), "Partially Compliant");
    assert_string_equal(md_verdict_name(MD_VERDICT_NON_COMPLIANT), "Non-Compliant");
    assert_string_equal(md_verdict_name(MD_VERDICT_NONE), "");
}

static void test_scenario_id_grammar(void **state)
{
    (void)state;
    static const char *const valid[] = {
        "ecommerce_r1_consent", "ecommerce_r2_data_retention", "ecommerce_r1_consent_2",
        "a_r0_x", "a1234567890123456789012345678901_r123456_z", "inventory_r10_a_b_c_1"};
    for (size_t i = 0; i < MD_ARRAY_LEN(valid); i++)
        assert_true(md_scenario_id_valid(valid[i]));
    static const char *const invalid[] = {
        "", "ecommerce", "ecommerce_r1", "ecommerce_r1_", "ecommerce_r_consent",
        "Ecommerce_r1_consent", "1commerce_r1_consent", "ecommerce_R1_consent",
        "ecommerce_r1234567_consent", "ecommerce_r1__consent", "ecommerce_r1_consent_",
        "ecommerce_r1_Consent", "e-commerce_r1_consent", "ecommerce_r1_con:sent",
        "ecommerce_r1_con*sent", "ecommerce_r1_con sent", "ecommerce:r1_consent",
        "a12345678901234567890123456789012_r1_x", /* domain of 33 characters */
        "ecommerce_r1_caf\xc3\xa9", "_r1_consent", "stm:ecommerce_r1_consent"};
    for (size_t i = 0; i < MD_ARRAY_LEN(invalid); i++)
        assert_false(md_scenario_id_valid(invalid[i]));
    assert_false(md_scenario_id_valid(NULL));
    /* length limit: 128 valid, 129 invalid */
    char id[200] = "ecommerce_r1_";
    while (strlen(id) < 128)
        strcat(id, "a");
    assert_true(md_scenario_id_valid(id));
    strcat(id, "a");
    assert_false(md_scenario_id_valid(id));
}

static void gen_ok(const char *domain, const char *req, const char *concept, const char *want)
{
    char out[MD_SCENARIO_ID_MAX + 1];
    struct md_error err;
    assert_int_equal(md_scenario_id_generate(domain, req, concept, out, &err), MD_OK);
    assert_string_equal(out, want);
    assert_true(md_scenario_id_valid(out));
}

static void gen_bad(const char *domain, const char *req, const char *concept, const char *field)
{
    char out[MD_SCENARIO_ID_MAX + 1];
    struct md_error err;
    assert_int_equal(md_scenario_id_generate(domain, req, concept, out, &err), MD_E_INVAL);
    assert_string_equal(err.field, field);
    assert_true(strlen(err.msg) > 0);
}

static void test_scenario_id_generation(void **state)
{
    (void)state;
    gen_ok("E-Commerce", "R1", "consent", "ecommerce_r1_consent");
    gen_ok("ecommerce", "req 1", "Data Retention", "ecommerce_r1_data_retention");
    gen_ok("ecommerce", "1", "consent", "ecommerce_r1_consent");
    gen_ok("ecommerce", NULL, "consent", "ecommerce_r1_consent");
    gen_ok("ecommerce", "no digits", "consent", "ecommerce_r1_consent");
    gen_ok("ecommerce", "R007", "consent", "ecommerce_r7_consent");
    gen_ok("ecommerce", "R0", "consent", "ecommerce_r0_consent");
    gen_ok("ecommerce", "requirement_5 and 6", "x", "ecommerce_r5_x");
    gen_ok("ecommerce", "R123456", "x", "ecommerce_r123456_x");
    gen_ok("ecommerce", "R2", NULL, "ecommerce_r2_general");
    gen_ok("ecommerce", "R2", "", "ecommerce_r2_general");
    gen_ok("ecommerce", "R2", "!!!", "ecommerce_r2_general");
    gen_ok("ecommerce", "R2", "  --Third-Party   Sharing!! ", "ecommerce_r2_third_party_sharing");
    gen_ok("ecommerce", "R2", "Caf\xc3\xa9 au lait", "ecommerce_r2_caf_au_lait");
    gen_ok("User@Domain.com", "R1", "x", "userdomaincom_r1_x");
    /* concept cut to 40 characters, then trailing '_' trimmed */
    gen_ok("d", "1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbb",
           "d_r1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    gen_ok("d", "1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
           "d_r1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    gen_ok("abcdefghijklmnopqrstuvwxyz012345", "1", "x",
           "abcdefghijklmnopqrstuvwxyz012345_r1_x");
    gen_bad("1commerce", "R1", "x", "domain");
    gen_bad("", "R1", "x", "domain");
    gen_bad("---", "R1", "x", "domain");
    gen_bad("abcdefghijklmnopqrstuvwxyz0123456", "1", "x", "domain");
    gen_bad("ecommerce", "R1234567", "x", "requirement_number");
}

static void test_scenario_suffix_and_domain(void **state)
{
    (void)state;
    char out[MD_SCENARIO_ID_MAX + 1], dom[MD_DOMAIN_MAX + 1];
    assert_true(md_scenario_id_with_suffix("ecommerce_r1_consent", 2, out));
    assert_string_equal(out, "ecommerce_r1_consent_2");
    assert_true(md_scenario_id_valid(out));
    char base[MD_SCENARIO_ID_MAX + 1] = "ecommerce_r1_";
    while (strlen(base) < 127)
        strcat(base, "a");
    assert_false(md_scenario_id_with_suffix(base, 2, out));
    md_scenario_id_domain("ecommerce_r1_consent", dom);
    assert_string_equal(dom, "ecommerce");
}

static void test_rule_id_grammar(void **state)
{
    (void)state;
    static const char *const valid[] = {"GDPR_Consent_Unbundled_01", "GDPR_Retention_EventBased_01",
                                        "GDPR_Consent_Separate_01", "CCPA_x_1234",
                                        "A_b_00", "ABCDEFGHIJKLMNOP_Rule_99"};
    for (size_t i = 0; i < MD_ARRAY_LEN(valid); i++)
        assert_true(md_rule_id_valid(valid[i]));
    static const char *const invalid[] = {
        "", "GDPR", "GDPR_01", "GDPR_Consent", "GDPR_Consent_1", "GDPR_Consent_12345",
        "gdpr_consent_001", "GDPR_gdpr article_7_01", "Data Protection/GDPR Compliance_x_01",
        "GDPR__Consent_01", "GDPR_Consent_01_", "1GDPR_Consent_01", "ABCDEFGHIJKLMNOPQ_Rule_01",
        "GDPR_Consent_ab", "GDPR_Con-sent_01", "GDPR_Consent:01", "GDPR_Cons\xc3\xa9nt_01"};
    for (size_t i = 0; i < MD_ARRAY_LEN(invalid); i++)
        assert_false(md_rule_id_valid(invalid[i]));
}

static void prefix_ok(const char *policy, const char *concept, const char *want)
{
    char out[MD_RULE_ID_MAX + 1];
    struct md_error err;
    assert_int_equal(md_rule_id_prefix(policy, concept, out, &err), MD_OK);
    assert_string_equal(out, want);
    char full[MD_RULE_ID_MAX + 8];
    snprintf(full, sizeof(full), "%s_01", out);
    assert_true(md_rule_id_valid(full));
}

static void test_rule_id_prefix(void **state)
{
    (void)state;
    prefix_ok("GDPR", "event based retention", "GDPR_EventBasedRetention");
    prefix_ok("gdpr", "SHA256 hashing", "GDPR_SHA256Hashing");
    prefix_ok("Data-Protection", "consent", "DATAPROTECTION_Consent");
    prefix_ok("ccpa", "right to know (Art. 5)", "CCPA_RightToKnowArt5");
}

static void test_rule_id_prefix_errors(void **state)
{
    (void)state;
    char out[MD_RULE_ID_MAX + 1];
    struct md_error err;
    assert_int_equal(md_rule_id_prefix("", "x", out, &err), MD_E_INVAL);
    assert_string_equal(err.field, "policy");
    assert_int_equal(md_rule_id_prefix("9GDPR", "x", out, &err), MD_E_INVAL);
    assert_int_equal(md_rule_id_prefix("GDPR", "  ", out, &err), MD_E_INVAL);
    assert_string_equal(err.field, "key_concept");
    assert_int_equal(md_rule_id_prefix("ABCDEFGHIJKLMNOPQ", "x", out, &err), MD_E_INVAL);
    char policy[MD_POLICY_MAX + 1];
    md_rule_id_policy("GDPR_Consent_Unbundled_01", policy);
    assert_string_equal(policy, "GDPR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdict_aliases),
        cmocka_unit_test(test_scenario_id_grammar),
        cmocka_unit_test(test_scenario_id_generation),
        cmocka_unit_test(test_scenario_suffix_and_domain),
        cmocka_unit_test(test_rule_id_grammar),
        cmocka_unit_test(test_rule_id_prefix),
        cmocka_unit_test(test_rule_id_prefix_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
