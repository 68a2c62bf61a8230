#!/usr/bin/env python3
"""Seed a live memoryd with a little data before schemathesis runs against it.

  seed.py BASE_URL API_KEY OUT_JSON

Creates, through the public API only (so the seeding itself goes through the same
validation and stores as any client): STM entries with and without human feedback, a
generated id, rules created directly, by promotion and with a version history, and
alert rules. Every call must answer exactly the expected status; anything else stops
the run (exit 1) with the answer printed. The ids are written to OUT_JSON for the hooks
(tests/schemathesis/hooks.py), which hand them to schemathesis as path parameters so
that GET/PATCH/PUT/POST on existing resources are exercised, not only 404s. DELETEs
get their own disposable ids, so they never remove what the other operations use.

Standard library only (it runs in the schemathesis virtualenv, but needs nothing of it).
"""
import http.client
import json
import sys
from urllib.parse import quote, urlsplit

TEXT = ("Users must give explicit, unbundled consent before their personal data is "
        "processed for marketing.")


class Client:
    def __init__(self, base_url, api_key):
        u = urlsplit(base_url)
        self.host, self.port = u.hostname, u.port or 80
        self.headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    def call(self, method, path, body=None, expect=200):
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            raw = r.read().decode("utf-8", "replace")
        finally:
            conn.close()
        if r.status != expect:
            sys.exit(f"seed.py: {method} {path} answered {r.status}, expected {expect}:\n{raw}")
        return json.loads(raw) if raw else None


def entry(scenario_id=None, status="Non-Compliant", **extra):
    body = {"requirement_text": TEXT,
            "initial_assessment": {"status": status,
                                   "rationale": "The sign-up form bundles consent with the "
                                                "terms of service.",
                                   "recommendation": "Add a separate, unticked consent box."}}
    if scenario_id:
        body["scenario_id"] = scenario_id
    body.update(extra)
    return body


FEEDBACK = {"decision": "Partially agree", "rationale": "Consent is separate but pre-ticked.",
            "suggestion": "Untick the box by default.", "final_status": "Partially Compliant"}


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    c = Client(argv[1], argv[2])
    E, R = "/v1/stm/entries", "/v1/ltm/rules"

    # ---- STM: entries the tests read and change (never deleted by them)
    keep = ["ecommerce_r1_consent", "ecommerce_r2_data_retention", "healthcare_r3_audit_logging"]
    for sid, st in zip(keep, ("Non-Compliant", "Partially Compliant", "Compliant")):
        c.call("POST", E, entry(sid, st), expect=201)
    generated = c.call("POST", E, entry(None, "Pending", domain="Banking", requirement_number="R1",
                                        key_concept="KYC checks"), expect=201)
    keep.append(generated["data"]["stm_entry"]["scenario_id"])  # banking_r1_kyc_checks
    for sid in keep[:2]:
        c.call("PUT", f"{E}/{sid}/feedback", FEEDBACK, expect=200)
    c.call("PATCH", f"{E}/{keep[2]}", {"final_status": "Compliant"}, expect=200)

    # ---- STM: disposable entries, for DELETE (one with feedback, one linked to a rule)
    # (two sets: the stateful phase's DELETEs draw from them too)
    words = ("one", "two", "three", "four", "five", "six")
    scratch = [f"scratch_r{i + 1}_{w}" for i, w in enumerate(words)]
    for sid in scratch:
        c.call("POST", E, entry(sid), expect=201)
    c.call("PUT", f"{E}/{scratch[0]}/feedback", FEEDBACK, expect=200)

    # ---- LTM: rules the tests read and change
    rules = []
    r = c.call("POST", f"{E}/ecommerce_r1_consent/promote",
               {"rule_id": "GDPR_Consent_Unbundled_01", "rule_text": TEXT,
                "related_concepts": ["consent", "data processing"], "confidence_score": 0.8},
               expect=201)
    rules.append(r["data"]["ltm_rule"]["rule_id"])
    r = c.call("POST", R, {"policy": "GDPR", "key_concept": "retention event based",
                           "rule_text": "Delete personal data when the retention event occurs.",
                           "related_concepts": ["data retention", "storage limitation"],
                           "source_scenario_ids": ["ecommerce_r2_data_retention"],
                           "confidence_score": 0.9}, expect=201)
    rules.append(r["data"]["ltm_rule"]["rule_id"])  # GDPR_RetentionEventBased_01
    c.call("PATCH", f"{R}/{quote(rules[-1])}",
           {"confidence_score": 0.95, "add_source_scenario_ids": ["banking_r1_kyc_checks"]},
           expect=200)
    r = c.call("POST", R, {"rule_id": "HIPAA_Audit_Logging_01",
                           "rule_text": "Log every access to health records.",
                           "related_concepts": ["audit logging", "data processing"],
                           "source_scenario_ids": ["healthcare_r3_audit_logging",
                                                   "healthcare_r9_expired"]}, expect=201)
    rules.append(r["data"]["ltm_rule"]["rule_id"])

    # ---- LTM: disposable rules, for DELETE
    scratch_rules = []
    for i, name in enumerate(w.capitalize() for w in words):
        r = c.call("POST", R, {"rule_id": f"SCRATCH_Rule_{name}_01",
                               "rule_text": f"Scratch rule {name}.",
                               "related_concepts": ["scratch", f"scratch {name.lower()}"],
                               "source_scenario_ids": [scratch[i]]}, expect=201)
        scratch_rules.append(r["data"]["ltm_rule"]["rule_id"])

    # ---- alert rules, for DELETE (no webhook)
    alerts = []
    for name in (f"seeded alert {w}" for w in words):
        r = c.call("POST", "/v1/alerts/rules",
                   {"name": name, "metric_name": "api_response_time_ms", "threshold": 5000,
                    "comparison": "gt", "duration_seconds": 60}, expect=201)
        alerts.append(r["data"]["rule"]["name"])

    concepts = [x["name"] for x in c.call("GET", "/v1/ltm/concepts")["data"]["concepts"]]
    seeds = {
        "scenario_ids": keep,
        "disposable_scenario_ids": scratch,
        "rule_ids": rules,
        "disposable_rule_ids": scratch_rules,
        "concepts": concepts,
        "disposable_alert_names": alerts,
    }
    with open(argv[3], "w") as f:
        json.dump(seeds, f, indent=1)
    print(f"seeded {len(keep) + len(scratch)} STM entries, {len(rules) + len(scratch_rules)} "
          f"rules, {len(concepts)} concepts, {len(alerts)} alert rules")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
