"""
Rules, their versions, concepts, evidence snapshots and links survive a daemon
restart on both LTM backends (embedded: the same DATA_DIR; Neo4j: the same
graph) — after SIGTERM and after SIGKILL. Every read answers byte for byte as
before, and id generation continues where it was.
"""
import pytest

from conftest import (RULES, create, entry_body, err, give_feedback, ok, promote, rule_body,
                      unique_domain)

STM = "/v1/stm/entries"


def snapshot(d, rids, sids):
    """The bodies' data of every read that shows LTM state (timestamps are data too)."""
    reads = {}
    for rid in rids:
        for path in ("", "/history", "/audit"):
            reads[f"{RULES}/{rid}{path}"] = ok(d.get(f"{RULES}/{rid}{path}"))
    for sid in sids:
        reads[f"/v1/trace/{sid}"] = ok(d.get(f"/v1/trace/{sid}"))
        r = d.get(f"{STM}/{sid}")
        reads[f"{STM}/{sid}"] = ok(r) if r.status != 404 else None
    for q in ("", "?limit=1", "?q=retention", "?concepts=consent", "?policy=hipaa"):
        reads[RULES + q] = ok(d.get(RULES + q))
    reads["/v1/ltm/concepts"] = ok(d.get("/v1/ltm/concepts"))
    reads["/v1/ltm/concepts/consent/rules"] = ok(d.get("/v1/ltm/concepts/consent/rules"))
    reads["/v1/integrity"] = {k: v for k, v in ok(d.get("/v1/integrity")).items()
                              if k != "checked_at"}
    return reads


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_rules_survive_a_restart(ltm_daemon, how):
    d = ltm_daemon
    sid = create(d, entry_body(f"{unique_domain()}_r1_retention"))["scenario_id"]
    give_feedback(d, sid, final_status="Non-Compliant")
    r1 = promote(d, sid, {"rule_text": "Retention is event based.",
                          "related_concepts": ["data retention", "Consent"],
                          "policy": "GDPR", "key_concept": "event based retention",
                          "confidence_score": 0.9})["rule_id"]
    ghost = f"{unique_domain()}_r2_ghost"
    r2 = ok(d.post(RULES, rule_body([ghost], rule_id="HIPAA_Phi_Access_01",
                                    concepts=["consent", "phi"], confidence_score=0.4)),
            201)["ltm_rule"]["rule_id"]
    ok(d.patch(f"{RULES}/{r1}", {"rule_text": "Retention is event based (3 years).",
                                 "related_concepts": ["data retention", "consent",
                                                      "storage limitation"]}))
    ok(d.patch(f"{RULES}/{r2}", {"add_source_scenario_ids": [sid]}))
    before = snapshot(d, [r1, r2], [sid, ghost])
    if how == "sigterm":
        d.restart()
    else:
        d.kill()
        d.start()
    after = snapshot(d, [r1, r2], [sid, ghost])
    assert after.keys() == before.keys()
    for path in before:
        assert after[path] == before[path], path
    # generation continues with the lowest free number
    again = promote(d, sid, {"rule_text": "x", "related_concepts": ["y"], "policy": "GDPR",
                             "key_concept": "event based retention"})
    assert again["rule_id"] == "GDPR_EventBasedRetention_02"
    assert sorted(ok(d.get(f"{STM}/{sid}"))["traceability"]["related_ltm_rules"]) == \
        sorted([r1, r2, again["rule_id"]])
    assert d.delete(f"{RULES}/{r2}").status == 204
    d.restart()
    err(d.get(f"{RULES}/{r2}"), 404, "not_found")
    err(d.get("/v1/ltm/concepts/phi/rules"), 404, "not_found")  # orphan gone for good
    assert ok(d.get(f"{RULES}/{r1}"))["ltm_rule"] == before[f"{RULES}/{r1}"]["ltm_rule"]
