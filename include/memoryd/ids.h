/*
 * ids.h — the vocabulary of the API (spec §2): assessment statuses, scenario
 * ids and rule ids, their grammars and their generators.
 *
 * Everything here is pure: no allocation, no locks, no I/O. Output buffers
 * are caller-owned and sized by the MD_*_MAX constants (+1 for the NUL).
 */
#ifndef MD_IDS_H
#define MD_IDS_H

#include "memoryd/compat.h"
#include "memoryd/status.h"

#define MD_SCENARIO_ID_MAX 128
#define MD_RULE_ID_MAX 128
#define MD_DOMAIN_MAX 32
#define MD_CONCEPT_SLUG_MAX 40
#define MD_POLICY_MAX 16
#define MD_CONCEPT_NAME_MAX 100 /* code points */
#define MD_TEXT_MAX 10000       /* code points */

/* Canonical assessment statuses; MD_VERDICT_NONE marks "null" / "absent". */
enum md_verdict {
    MD_VERDICT_NONE = -1,
    MD_VERDICT_COMPLIANT = 0,
    MD_VERDICT_NON_COMPLIANT,
    MD_VERDICT_PARTIAL,
    MD_VERDICT_PENDING,
    MD_VERDICT_COUNT
};

/* Canonical spelling ("Partially Compliant"); "" for MD_VERDICT_NONE. */
const char *md_verdict_name(enum md_verdict v);

/*
 * Parse a status case-insensitively, with the aliases of spec §2 (Partial,
 * PartiallyCompliant, NonCompliant, Non Compliant). Surrounding whitespace is
 * not accepted. Returns false for anything else.
 */
bool md_verdict_parse(const char *s, enum md_verdict *out);

/* True when id matches the scenario_id grammar of spec §2 (≤ 128 chars). */
bool md_scenario_id_valid(const char *id);

/* True when id matches the rule_id grammar of spec §2 (≤ 128 chars). */
bool md_rule_id_valid(const char *id);

/*
 * Clean a domain as generation does: lower-case, drop every character outside
 * [a-z0-9]. Fails (MD_E_INVAL with a message) when the result is empty, does
 * not start with a letter or is longer than 32 characters.
 */
MD_MUSTCHECK enum md_status md_domain_clean(const char *domain, char out[MD_DOMAIN_MAX + 1],
                                            struct md_error *err);

/*
 * Build the base scenario id "{domain}_r{n}_{concept}" from the generation
 * inputs of spec §2/§6. requirement_number and key_concept may be NULL. The
 * uniqueness suffix (_2, _3 …) is the store's job. Errors name the field.
 */
MD_MUSTCHECK enum md_status md_scenario_id_generate(const char *domain,
                                                    const char *requirement_number,
                                                    const char *key_concept,
                                                    char out[MD_SCENARIO_ID_MAX + 1],
                                                    struct md_error *err);

/*
 * Append the uniqueness suffix n (n ≥ 2) to base: "base_n". Returns false if
 * the result would exceed the scenario_id length limit.
 */
bool md_scenario_id_with_suffix(const char *base, unsigned n, char out[MD_SCENARIO_ID_MAX + 1]);

/* Domain part of a valid scenario id (the text before the first '_'). */
void md_scenario_id_domain(const char *id, char out[MD_DOMAIN_MAX + 1]);

/*
 * Rule id prefix "{POLICY}_{ConceptWords}" from policy and key concept
 * (spec §2/§6): policy upper-cased with non-alphanumerics dropped (1–16
 * chars, starting with a letter); concept as CamelCase words of its
 * alphanumeric runs. The store appends "_NN", the lowest free number.
 */
MD_MUSTCHECK enum md_status md_rule_id_prefix(const char *policy, const char *key_concept,
                                              char out[MD_RULE_ID_MAX + 1], struct md_error *err);

/* Policy part of a valid rule id (text before the first '_'). */
void md_rule_id_policy(const char *rule_id, char out[MD_POLICY_MAX + 1]);

#endif /* MD_IDS_H */
