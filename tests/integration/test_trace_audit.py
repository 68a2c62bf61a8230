"""
Traceability across the tiers on every (STM, LTM) backend pair
(`tier_daemon`): GET /v1/trace/{scenario_id} with a live entry, after the entry
expires (MEMORY_STM_MIN_TTL_SECONDS=1, ttl 1–2 s) and after it is deleted
(evidence outlives STM: the snapshot's SHA-256 is the SHA-256 of the entry JSON
as it was when linked); and GET /v1/ltm/rules/{id}/audit: every field, and
evidence_completeness exactly per spec §4 in several situations.

evidence_completeness = 0.4·(sources with a live entry or a snapshot / sources)
  + 0.4·(sources with human feedback / sources) + 0.2·(1.0 if total_versions > 1
  else 0.5), capped at 1.
"""
import hashlib
import time

import pytest

from conftest import (RULES, check_entry, check_rule, create, entry_body, err, get_raw,
                      give_feedback, ok, parse_ts, promote, raw_member, rule_body,
                      unique_domain, wait_for)

STM = "/v1/stm/entries"
TRACE_KEYS = {"scenario_id", "stm_entry", "snapshot", "derived_ltm_rules",
              "traceability_summary"}
SUMMARY_KEYS = {"has_stm_entry", "has_snapshot", "has_human_feedback", "derived_rules_count",
                "final_status"}
AUDIT_KEYS = {"rule", "version_history", "source_scenarios", "concept_relationships",
              "audit_metadata"}
META_KEYS = {"total_versions", "source_count", "concept_count", "confidence_score",
             "last_updated", "evidence_completeness"}


def completeness(sources, available, feedback, versions):
    if sources == 0:
        return 0.0
    return min(1.0, 0.4 * available / sources + 0.4 * feedback / sources +
               0.2 * (1.0 if versions > 1 else 0.5))


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def trace(d, sid):
    r = d.get(f"/v1/trace/{sid}")
    data = ok(r)
    assert set(data) == TRACE_KEYS, sorted(data)
    assert data["scenario_id"] == sid
    s = data["traceability_summary"]
    assert set(s) == SUMMARY_KEYS, sorted(s)
    assert s["has_stm_entry"] is (data["stm_entry"] is not None)
    assert s["has_snapshot"] is (data["snapshot"] is not None)
    assert s["derived_rules_count"] == len(data["derived_ltm_rules"])
    for rule in data["derived_ltm_rules"]:
        check_rule(rule)
        assert sid in rule["source_scenario_ids"]
    if data["stm_entry"] is not None:
        check_entry(data["stm_entry"])
    if data["snapshot"] is not None:
        snap = data["snapshot"]
        assert set(snap) == {"entry", "sha256", "captured_at"}, sorted(snap)
        check_entry(snap["entry"])
        raw = raw_member(r.body[r.body.index('"snapshot":'):], "entry")
        assert snap["sha256"] == sha(raw)  # the stored evidence hashes to its digest
        parse_ts(snap["captured_at"])
        data["_snapshot_raw"] = raw
    return data


def audit(d, rid):
    data = ok(d.get(f"{RULES}/{rid}/audit"))
    assert set(data) == AUDIT_KEYS, sorted(data)
    check_rule(data["rule"])
    m = data["audit_metadata"]
    assert set(m) == META_KEYS, sorted(m)
    assert m["total_versions"] == len(data["version_history"])
    assert m["source_count"] == len(data["rule"]["source_scenario_ids"])
    assert m["concept_count"] == len(data["rule"]["related_concepts"])
    assert m["confidence_score"] == data["rule"]["confidence_score"]
    assert m["last_updated"] == data["rule"]["updated_at"]
    assert [v["version"] for v in data["version_history"]] == \
        list(range(1, m["total_versions"] + 1))
    assert data["version_history"][-1]["rule_text"] == data["rule"]["rule_text"]
    assert sorted(s["scenario_id"] for s in data["source_scenarios"]) == \
        sorted(data["rule"]["source_scenario_ids"])
    for s in data["source_scenarios"]:
        base = {"scenario_id", "in_stm", "has_snapshot", "has_human_feedback", "final_status"}
        assert set(s) in (base, base | {"snapshot_sha256"}), s
        assert ("snapshot_sha256" in s) is s["has_snapshot"], s
    assert sorted(data["concept_relationships"]) == sorted(data["rule"]["related_concepts"])
    return data


def expected_completeness(data):
    srcs = data["source_scenarios"]
    n = len(srcs)
    avail = sum(1 for s in srcs if s["in_stm"] or s["has_snapshot"])
    fb = sum(1 for s in srcs if s["has_human_feedback"])
    return completeness(n, avail, fb, data["audit_metadata"]["total_versions"])


def new_entry(d, concept="case", **kw):
    return create(d, entry_body(f"{unique_domain()}_r1_{concept}", **kw))["scenario_id"]


PROMOTE = {"rule_text": "Passwords are hashed with a per-user salt.",
           "related_concepts": ["password hashing", "GDPR Article 32"], "policy": "GDPR",
           "key_concept": "salted hashing", "confidence_score": 0.9}


# --------------------------------------------------------------------------- trace

def test_trace_of_a_live_entry_without_rules(tier_daemon):
    d = tier_daemon
    sid = new_entry(d)
    data = trace(d, sid)
    assert data["stm_entry"] == ok(d.get(f"{STM}/{sid}"))["stm_entry"]
    assert data["snapshot"] is None and data["derived_ltm_rules"] == []
    assert data["traceability_summary"] == {"has_stm_entry": True, "has_snapshot": False,
                                            "has_human_feedback": False,
                                            "derived_rules_count": 0, "final_status": None}
    give_feedback(d, sid, final_status="partial")
    assert trace(d, sid)["traceability_summary"] == {
        "has_stm_entry": True, "has_snapshot": False, "has_human_feedback": True,
        "derived_rules_count": 0, "final_status": "Partially Compliant"}


def test_trace_is_404_only_when_neither_tier_knows_the_scenario(tier_daemon):
    d = tier_daemon
    err(d.get(f"/v1/trace/{unique_domain()}_r1_nobody"), 404, "not_found")
    # known to LTM only (a rule cites it; it never was in STM)
    ghost = f"{unique_domain()}_r1_ghost"
    rule = check_rule(ok(d.post(RULES, rule_body([ghost], rule_id="GDPR_Ghost_01")), 201)
                      ["ltm_rule"])
    data = trace(d, ghost)
    assert data["stm_entry"] is None and data["snapshot"] is None
    assert data["derived_ltm_rules"] == [rule]
    assert data["traceability_summary"] == {"has_stm_entry": False, "has_snapshot": False,
                                            "has_human_feedback": False,
                                            "derived_rules_count": 1, "final_status": None}
    # an entry that expired without ever being linked is forgotten
    sid = new_entry(d)
    trace(d, sid)
    ok(d.put(f"{STM}/{sid}/ttl", {"ttl_seconds": 1}))
    wait_for(lambda: d.get(f"{STM}/{sid}").status == 404, 3, what="the entry to expire")
    err(d.get(f"/v1/trace/{sid}"), 404, "not_found")


@pytest.mark.parametrize("how", ["expired", "deleted"])
def test_evidence_outlives_the_stm_entry(tier_daemon, how):
    d = tier_daemon
    sid = new_entry(d, ttl_seconds=60)
    give_feedback(d, sid, decision="Change status", final_status="Partially Compliant")
    _, raw_at_link = get_raw(d, sid)
    rule = promote(d, sid, PROMOTE)
    live = trace(d, sid)
    assert live["stm_entry"] is not None
    assert live["_snapshot_raw"] == raw_at_link
    assert live["snapshot"]["sha256"] == sha(raw_at_link)
    assert live["snapshot"]["entry"] == live["stm_entry"]
    assert live["traceability_summary"] == {"has_stm_entry": True, "has_snapshot": True,
                                            "has_human_feedback": True,
                                            "derived_rules_count": 1,
                                            "final_status": "Partially Compliant"}
    # the live entry wins while it lives: a later change shows in the summary
    give_feedback(d, sid, decision="Approved", final_status="Compliant")
    now = trace(d, sid)
    assert now["traceability_summary"]["final_status"] == "Compliant"
    assert now["stm_entry"]["final_status"] == "Compliant"
    assert now["_snapshot_raw"] == raw_at_link  # the evidence is what was linked

    # reads made while the entry lives (a cache must not outlive the entry); the
    # TTL is cut to 2 s only now, so that a slow start cannot expire it earlier
    ok(d.put(f"{STM}/{sid}/ttl", {"ttl_seconds": 2}))
    assert ok(d.get(f"{RULES}/{rule['rule_id']}"))["traceability"]["source_scenarios"] == [
        {"scenario_id": sid, "in_stm": True, "has_snapshot": True}]
    assert audit(d, rule["rule_id"])["source_scenarios"][0]["in_stm"] is True
    if how == "expired":
        wait_for(lambda: d.get(f"{STM}/{sid}").status == 404, 4, what="the entry to expire")
    else:
        assert d.delete(f"{STM}/{sid}").status == 204
    err(d.get(f"{STM}/{sid}"), 404, "not_found")
    after = trace(d, sid)
    assert after["stm_entry"] is None
    assert after["_snapshot_raw"] == raw_at_link
    assert after["snapshot"]["sha256"] == sha(raw_at_link)
    assert after["snapshot"]["entry"]["human_feedback"]["decision"] == "Change status"
    assert [r["rule_id"] for r in after["derived_ltm_rules"]] == [rule["rule_id"]]
    # the summary comes from the snapshot now
    assert after["traceability_summary"] == {"has_stm_entry": False, "has_snapshot": True,
                                             "has_human_feedback": True,
                                             "derived_rules_count": 1,
                                             "final_status": "Partially Compliant"}
    a = audit(d, rule["rule_id"])
    assert a["source_scenarios"] == [{"scenario_id": sid, "in_stm": False, "has_snapshot": True,
                                      "has_human_feedback": True,
                                      "final_status": "Partially Compliant",
                                      "snapshot_sha256": sha(raw_at_link)}]
    assert a["audit_metadata"]["evidence_completeness"] == pytest.approx(0.9, abs=1e-4)
    integ = ok(d.get("/v1/integrity"))
    assert integ["integrity_status"] == "PASS", integ
    assert integ["statistics"]["broken_links"] == 0
    assert ok(d.get(f"{RULES}/{rule['rule_id']}"))["traceability"]["source_scenarios"] == [
        {"scenario_id": sid, "in_stm": False, "has_snapshot": True}]
    if d.backend == "redis":
        assert d.redis.command_db(d.redis_db, "EXISTS", f"stm:{sid}") == 0


def test_trace_after_expiry_without_feedback_snapshot(tier_daemon):
    """A rule created from a live entry without feedback: after expiry the snapshot
    says there was none, and the final status it had."""
    d = tier_daemon
    sid = new_entry(d)
    ok(d.patch(f"{STM}/{sid}", {"final_status": "Non-Compliant"}))
    raw = get_raw(d, sid)[1]
    ok(d.post(RULES, rule_body([sid], rule_id="GDPR_NoFeedback_01")), 201)
    ok(d.put(f"{STM}/{sid}/ttl", {"ttl_seconds": 1}))
    wait_for(lambda: d.get(f"{STM}/{sid}").status == 404, 3, what="the entry to expire")
    data = trace(d, sid)
    assert data["_snapshot_raw"] == raw
    assert data["traceability_summary"] == {"has_stm_entry": False, "has_snapshot": True,
                                            "has_human_feedback": False,
                                            "derived_rules_count": 1,
                                            "final_status": "Non-Compliant"}


# --------------------------------------------------------------------------- audit

def test_audit_fields(tier_daemon):
    d = tier_daemon
    sid = new_entry(d)
    give_feedback(d, sid, final_status="Non-Compliant")
    raw = get_raw(d, sid)[1]
    rule = promote(d, sid, PROMOTE)
    rid = rule["rule_id"]
    other = check_rule(ok(d.post(RULES, rule_body([f"{unique_domain()}_r1_x"],
                                                  rule_id="GDPR_Other_Hashing_01",
                                                  concepts=["Password Hashing", "pepper"])),
                          201)["ltm_rule"])
    a = audit(d, rid)
    assert a["rule"] == rule
    assert a["version_history"] == [{
        "rule_id": rid, "version": 1, "rule_text": rule["rule_text"],
        "confidence_score": 0.9, "related_concepts": rule["related_concepts"],
        "source_scenario_ids": [sid], "recorded_at": rule["updated_at"]}]
    assert a["source_scenarios"] == [{"scenario_id": sid, "in_stm": True, "has_snapshot": True,
                                      "has_human_feedback": True,
                                      "final_status": "Non-Compliant",
                                      "snapshot_sha256": sha(raw)}]
    assert a["concept_relationships"] == {"password hashing": [other["rule_id"]],
                                          "GDPR Article 32": []}
    assert a["audit_metadata"] == {"total_versions": 1, "source_count": 1, "concept_count": 2,
                                   "confidence_score": 0.9, "last_updated": rule["updated_at"],
                                   "evidence_completeness": 0.9}
    # after a change: two versions, the current one last
    time.sleep(0.003)
    v2 = ok(d.patch(f"{RULES}/{rid}", {"confidence_score": 0.95,
                                       "related_concepts": ["password hashing", "salt"]}))
    v2 = v2["ltm_rule"]
    a = audit(d, rid)
    assert a["rule"] == v2
    assert [v["confidence_score"] for v in a["version_history"]] == [0.9, 0.95]
    assert a["version_history"][0]["related_concepts"] == ["password hashing",
                                                           "GDPR Article 32"]
    assert a["version_history"][1]["recorded_at"] == v2["updated_at"]
    assert a["concept_relationships"] == {"password hashing": [other["rule_id"]], "salt": []}
    assert a["audit_metadata"] == {"total_versions": 2, "source_count": 1, "concept_count": 2,
                                   "confidence_score": 0.95, "last_updated": v2["updated_at"],
                                   "evidence_completeness": 1.0}
    assert ok(d.get(f"{RULES}/{rid}/history"))["versions"] == a["version_history"]


def test_evidence_completeness_in_every_situation(tier_daemon):
    d = tier_daemon
    ghost = lambda n: f"{unique_domain()}_r{n}_ghost"  # noqa: E731 (never in STM)

    def check(rid, value):
        a = audit(d, rid)
        got = a["audit_metadata"]["evidence_completeness"]
        assert got == pytest.approx(value, abs=1e-4), (rid, a)
        assert got == pytest.approx(expected_completeness(a), abs=1e-4)
        return a

    # 1. no STM entry and no snapshot: 0.4·0 + 0.4·0 + 0.2·0.5
    ok(d.post(RULES, rule_body([ghost(1)], rule_id="GDPR_Ev_None_01")), 201)
    check("GDPR_Ev_None_01", 0.1)
    # 2. the STM entry is live, without feedback: 0.4·1 + 0 + 0.1
    live = new_entry(d, "live")
    ok(d.post(RULES, rule_body([live], rule_id="GDPR_Ev_Live_01")), 201)
    check("GDPR_Ev_Live_01", 0.5)
    # ... feedback arrives later on the live entry: counted (0.9)
    give_feedback(d, live)
    check("GDPR_Ev_Live_01", 0.9)
    # 3. with feedback from the start (promotion): 0.4 + 0.4 + 0.1
    fb = new_entry(d, "feedback")
    give_feedback(d, fb)
    promote(d, fb, {"rule_text": "x", "related_concepts": ["c"],
                    "rule_id": "GDPR_Ev_Feedback_01"})
    check("GDPR_Ev_Feedback_01", 0.9)
    # 4. with version history: the last term becomes 0.2·1.0 (capped at 1)
    ok(d.patch(f"{RULES}/GDPR_Ev_Feedback_01", {"rule_text": "x, revised"}))
    check("GDPR_Ev_Feedback_01", 1.0)
    ok(d.patch(f"{RULES}/GDPR_Ev_None_01", {"confidence_score": 0.6}))
    check("GDPR_Ev_None_01", 0.2)
    # 5. several sources: two with feedback, one live without, one unknown
    fb2 = new_entry(d, "feedback_two")
    give_feedback(d, fb2)
    plain = new_entry(d, "plain")
    ok(d.post(RULES, rule_body([fb, fb2, plain, ghost(2)], rule_id="GDPR_Ev_Multi_01")), 201)
    a = check("GDPR_Ev_Multi_01", 0.4 * 3 / 4 + 0.4 * 2 / 4 + 0.1)  # 0.6
    assert a["audit_metadata"]["source_count"] == 4
    ok(d.patch(f"{RULES}/GDPR_Ev_Multi_01", {"confidence_score": 0.1}))
    check("GDPR_Ev_Multi_01", 0.7)
    # three sources, two available, one with feedback, one version: 0.6 (the seed's example)
    ok(d.post(RULES, rule_body([fb, plain, ghost(3)], rule_id="GDPR_Ev_Seed_01")), 201)
    check("GDPR_Ev_Seed_01", 0.4 * 2 / 3 + 0.4 * 1 / 3 + 0.1)
    # the entries gone: available and feedback now come from the snapshots
    for sid in (fb, fb2, plain, live):
        assert d.delete(f"{STM}/{sid}").status == 204
    check("GDPR_Ev_Multi_01", 0.7)
    check("GDPR_Ev_Live_01", 0.5)  # its snapshot was taken before the feedback
    check("GDPR_Ev_Feedback_01", 1.0)
    check("GDPR_Ev_Seed_01", 0.4 * 2 / 3 + 0.4 * 1 / 3 + 0.1)


def test_audit_total_versions_counts_the_current_one(tier_daemon):
    d = tier_daemon
    rid = check_rule(ok(d.post(RULES, rule_body([f"{unique_domain()}_r1_v"],
                                                rule_id="GDPR_Versions_01")), 201)
                     ["ltm_rule"])["rule_id"]
    for n in range(1, 5):
        a = audit(d, rid)
        assert a["audit_metadata"]["total_versions"] == n
        assert len(ok(d.get(f"{RULES}/{rid}/history"))["versions"]) == n
        assert a["rule"]["version"] == n
        ok(d.patch(f"{RULES}/{rid}", {"rule_text": f"text {n + 1}"}))
