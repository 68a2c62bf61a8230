"""
The sample corpus from STM to LTM and back, on every (STM, LTM) backend pair:

  R1–R5 (parsed_compliance_results.json) become STM case files with generated
  ids; the legal expert's feedback (human_feedback.txt, parsed, not copied) is
  applied to R2 and R4 (R4's final status: Partially Compliant); R2 and R4 are
  promoted into rules with confidence 0.9 (the design's "2 LTM rules for R2
  and R4"); then search by the feedback's words, concept queries, traces,
  related_ltm_rules, audit, stats and integrity are checked — and once the STM
  entries have expired, trace and audit still work from the snapshots.

The parsing of the two files and the choice of R2's final status (the expert
confirms the finding: Non-Compliant) are those of test_stm_corpus.py.
"""
import hashlib
from urllib.parse import quote

import pytest

from conftest import (RULES, check_rule, create, err, get_raw, get_rule, ok, promote,
                      raw_member, search_rules, wait_for)
from test_stm_corpus import CHOSEN_CONCEPTS, load_requirements, parse_feedback

STM = "/v1/stm/entries"
IDS = {"R1": "ecommerce_r1_consent", "R2": "ecommerce_r2_data_retention",
       "R3": "ecommerce_r3_data_access", "R4": "ecommerce_r4_password_hashing",
       "R5": "ecommerce_r5_third_party_sharing"}
R2_RULE, R4_RULE = "GDPR_EventBasedRetention_01", "GDPR_SaltedPasswordHashing_01"
R2_CONCEPTS = ["data retention", "storage limitation", "GDPR Article 5(1)(e)"]
R4_CONCEPTS = ["password hashing", "GDPR Article 32", "rainbow table attacks", "salted hashing"]


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def trace(d, sid):
    r = d.get(f"/v1/trace/{sid}")
    data = ok(r)
    raw = None
    if data["snapshot"] is not None:
        raw = raw_member(r.body[r.body.index('"snapshot":'):], "entry")
    return data, raw


def rule_ids(rules):
    return [r["rule_id"] for r in rules]


def test_corpus_from_stm_to_ltm_and_after_expiry(tier_daemon):
    d = tier_daemon
    reqs = load_requirements()
    feedback = parse_feedback()
    assert sorted(feedback) == ["R2", "R4"]
    concepts = dict(CHOSEN_CONCEPTS, **{k: v["concept"] for k, v in feedback.items()})

    # 1. R1–R5 into STM with generated ids
    made = {}
    for r in reqs:
        e = create(d, {"domain": "E-Commerce", "requirement_number": r["requirement_number"],
                       "key_concept": concepts[r["requirement_number"]],
                       "requirement_text": r["requirement_text"],
                       "initial_assessment": {"status": r["status"],
                                              "rationale": r["rationale"],
                                              "recommendation": r["recommendation"]}})
        made[r["requirement_number"]] = e["scenario_id"]
    assert made == IDS

    # 2. the expert's feedback on R2 and R4
    initial = {r["requirement_number"]: r["status"] for r in reqs}
    final = {}
    for req, f in feedback.items():
        final[req] = f["final_status"] or initial[req]
        e = ok(d.put(f"{STM}/{IDS[req]}/feedback", {
            "decision": f["decision"], "rationale": f["rationale"],
            "suggestion": f["suggestion"], "final_status": final[req]}))["stm_entry"]
        assert e["final_status"] == final[req]
    assert final == {"R2": "Non-Compliant", "R4": "Partially Compliant"}

    # 3. promotion of the two generalisable corrections
    raw_at_link = {req: get_raw(d, IDS[req])[1] for req in ("R2", "R4")}
    r2 = promote(d, IDS["R2"], {
        "rule_text": "Personal data retention must be event-based rather than a fixed, "
                     "arbitrary period. " + feedback["R2"]["suggestion"],
        "related_concepts": R2_CONCEPTS, "policy": "GDPR",
        "key_concept": "event based retention", "confidence_score": 0.9})
    r4 = promote(d, IDS["R4"], {
        "rule_text": feedback["R4"]["rationale"] + " " + feedback["R4"]["suggestion"],
        "related_concepts": R4_CONCEPTS, "policy": "gdpr",
        "key_concept": "salted password hashing", "confidence_score": 0.9})
    assert (r2["rule_id"], r4["rule_id"]) == (R2_RULE, R4_RULE)
    assert r2["related_concepts"] == R2_CONCEPTS and r4["related_concepts"] == R4_CONCEPTS
    assert r2["confidence_score"] == r4["confidence_score"] == 0.9
    for req in ("R1", "R3", "R5"):  # no feedback: nothing to promote
        err(d.post(f"{STM}/{IDS[req]}/promote", {"rule_text": "x", "related_concepts": ["y"],
                                                  "policy": "GDPR"}), 409, "conflict")

    # 4. search by words of the feedback
    def found(**q):
        return rule_ids(search_rules(d, limit=100, **q)[0])

    assert found(q="rainbow") == [R4_RULE]
    assert found(q="salted SHA-256") == [R4_RULE]
    assert found(q="event-based retention") == [R2_RULE]
    assert found(q="last login or transaction") == [R2_RULE]
    assert found(q="inactive deletion") == [R2_RULE]
    assert sorted(found(q="GDPR")) == [R2_RULE, R4_RULE]
    both = search_rules(d, limit=100, q="retention rainbow hashing")[0]
    assert sorted(rule_ids(both)) == [R2_RULE, R4_RULE]
    assert found(q="marketing consent checkbox") == []  # R1 was never promoted
    assert sorted(found(policy="gdpr", min_confidence="0.9")) == [R2_RULE, R4_RULE]
    assert found(concepts="Storage Limitation") == [R2_RULE]
    assert sorted(found(concepts="gdpr article 32,GDPR ARTICLE 5(1)(E)")) == [R2_RULE, R4_RULE]

    # 5. concepts
    listing = ok(d.get("/v1/ltm/concepts?limit=1000"))
    assert sorted((c["name"], c["rule_count"]) for c in listing["concepts"]) == \
        sorted((c, 1) for c in R2_CONCEPTS + R4_CONCEPTS)
    got = ok(d.get("/v1/ltm/concepts/" + quote("gdpr article 32") + "/rules"))
    assert got["concept"] == "GDPR Article 32" and rule_ids(got["rules"]) == [R4_RULE]
    got = ok(d.get("/v1/ltm/concepts/" + quote("Data Retention") + "/rules"))
    assert rule_ids(got["rules"]) == [R2_RULE]
    err(d.get("/v1/ltm/concepts/consent/rules"), 404, "not_found")

    # 6. both directions of traceability while STM lives
    for req, rid in (("R2", R2_RULE), ("R4", R4_RULE)):
        data = ok(d.get(f"{STM}/{IDS[req]}"))
        assert data["traceability"] == {"related_ltm_rules": [rid], "has_human_feedback": True,
                                        "final_status": final[req]}
        if d.backend == "redis":
            assert d.redis.command_db(d.redis_db, "SMEMBERS",
                                      f"stm_ltm_links:{IDS[req]}") == [rid]
        tr, raw = trace(d, IDS[req])
        assert rule_ids(tr["derived_ltm_rules"]) == [rid]
        assert raw == raw_at_link[req] and tr["snapshot"]["sha256"] == sha(raw)
        assert tr["traceability_summary"] == {"has_stm_entry": True, "has_snapshot": True,
                                              "has_human_feedback": True,
                                              "derived_rules_count": 1,
                                              "final_status": final[req]}
        assert get_rule(d, rid)["traceability"] == {
            "related_concepts": R2_CONCEPTS if req == "R2" else R4_CONCEPTS,
            "source_scenarios": [{"scenario_id": IDS[req], "in_stm": True,
                                  "has_snapshot": True}],
            "governing_policies": ["GDPR"]}
        meta = ok(d.get(f"{RULES}/{rid}/audit"))["audit_metadata"]
        assert meta["evidence_completeness"] == pytest.approx(0.9, abs=1e-4)
        assert meta["total_versions"] == 1 and meta["source_count"] == 1
    for req in ("R1", "R3", "R5"):
        assert ok(d.get(f"{STM}/{IDS[req]}"))["traceability"]["related_ltm_rules"] == []
        tr, _ = trace(d, IDS[req])
        assert tr["derived_ltm_rules"] == [] and tr["snapshot"] is None

    integ = ok(d.get("/v1/integrity"))
    assert integ["integrity_status"] == "PASS"
    assert integ["statistics"] == {"total_stm_entries": 5, "total_ltm_rules": 2,
                                   "orphaned_stm_entries": 0, "orphaned_ltm_rules": 0,
                                   "broken_links": 0}
    stats = ok(d.get("/v1/stats"))
    assert stats["ltm_stats"]["total_rules"] == 2
    assert stats["ltm_stats"]["rules_by_policy"] == {"GDPR": 2}
    assert stats["ltm_stats"]["average_confidence"] == pytest.approx(0.9)
    assert stats["ltm_stats"]["total_concepts"] == 7
    assert stats["stm_stats"]["entries_with_feedback"] == 2
    assert stats["system_info"]["stm_backend"] == d.backend
    assert stats["system_info"]["ltm_backend"] == d.ltm_backend

    # a refinement of R4's rule: version history completes its evidence
    v2 = ok(d.patch(f"{RULES}/{R4_RULE}", {"confidence_score": 0.95}))["ltm_rule"]
    assert v2["version"] == 2
    assert ok(d.get(f"{RULES}/{R4_RULE}/audit"))["audit_metadata"]["evidence_completeness"] \
        == pytest.approx(1.0)

    # 7. STM expires; the evidence does not
    for sid in IDS.values():
        ok(d.put(f"{STM}/{sid}/ttl", {"ttl_seconds": 1}))
    wait_for(lambda: all(d.get(f"{STM}/{s}").status == 404 for s in IDS.values()), 4,
             what="the corpus entries to expire")
    assert ok(d.get("/v1/stm/stats"))["total_entries"] == 0
    for req, rid in (("R2", R2_RULE), ("R4", R4_RULE)):
        tr, raw = trace(d, IDS[req])
        assert tr["stm_entry"] is None
        assert raw == raw_at_link[req] and tr["snapshot"]["sha256"] == sha(raw)
        snap_entry = tr["snapshot"]["entry"]
        assert snap_entry["human_feedback"]["suggestion"] == feedback[req]["suggestion"]
        assert snap_entry["initial_assessment"]["status"] == initial[req]
        assert tr["traceability_summary"] == {"has_stm_entry": False, "has_snapshot": True,
                                              "has_human_feedback": True,
                                              "derived_rules_count": 1,
                                              "final_status": final[req]}
        assert rule_ids(tr["derived_ltm_rules"]) == [rid]
        a = ok(d.get(f"{RULES}/{rid}/audit"))
        assert a["source_scenarios"][0]["in_stm"] is False
        assert a["source_scenarios"][0]["has_snapshot"] is True
        assert a["source_scenarios"][0]["has_human_feedback"] is True
        assert a["source_scenarios"][0]["final_status"] == final[req]
        assert a["audit_metadata"]["evidence_completeness"] == \
            pytest.approx(1.0 if req == "R4" else 0.9, abs=1e-4)
        check_rule(a["rule"])
    for req in ("R1", "R3", "R5"):  # never linked: forgotten with STM
        err(d.get(f"/v1/trace/{IDS[req]}"), 404, "not_found")
    integ = ok(d.get("/v1/integrity"))
    assert integ["integrity_status"] == "PASS", integ
    assert integ["statistics"] == {"total_stm_entries": 0, "total_ltm_rules": 2,
                                   "orphaned_stm_entries": 0, "orphaned_ltm_rules": 0,
                                   "broken_links": 0}
    assert found(q="rainbow") == [R4_RULE]
    if d.backend == "redis":
        for sid in IDS.values():
            assert d.redis.command_db(d.redis_db, "EXISTS", f"stm:{sid}") == 0
    if d.ltm_backend == "neo4j":
        rows = d.neo4j.cypher("MATCH (s:Scenario) RETURN s.scenario_id, s.snapshot_sha256 "
                              "ORDER BY s.scenario_id")
        assert rows == [[IDS["R2"], sha(raw_at_link["R2"])], [IDS["R4"], sha(raw_at_link["R4"])]]
        assert d.neo4j.value("MATCH (:Rule)-[:DERIVED_FROM]->(s:Scenario) "
                             "RETURN count(s)") == 2
