"""
Both tiers together, on every (STM, LTM) backend pair (`tier_daemon`):
POST /v1/stm/entries/{id}/promote, and the links between rules and STM
entries — `stm_ltm_links:{id}` (checked directly in Redis with the harness's
RESP client on the Redis backend), `related_ltm_rules` in STM reads, evidence
snapshots (SHA-256 of the entry JSON as it was when linked), PATCH
`add_source_scenario_ids`, and DELETE taking the rule out of every link set.
"""
import hashlib
import time

from conftest import (RULES, check_rule, create, entry_body, err, get_raw, get_rule,
                      give_feedback, ok, parse_ts, promote, raw_member, rule_body,
                      search_rules, unique_domain)

STM = "/v1/stm/entries"


def related(d, sid):
    data = ok(d.get(f"{STM}/{sid}"))
    return sorted(data["traceability"]["related_ltm_rules"])


def assert_links(d, sid, expected):
    """related_ltm_rules (and on Redis the stm_ltm_links set itself) == expected."""
    assert related(d, sid) == sorted(expected), sid
    if d.backend == "redis":
        members = d.redis.command_db(d.redis_db, "SMEMBERS", f"stm_ltm_links:{sid}")
        assert sorted(members) == sorted(expected), (sid, members)


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def snapshot_of(d, sid):
    """(snapshot dict, exact text of snapshot.entry) from /v1/trace."""
    r = d.get(f"/v1/trace/{sid}")
    data = ok(r)
    snap = data["snapshot"]
    if snap is None:
        return None, None
    return snap, raw_member(r.body[r.body.index('"snapshot":'):], "entry")


def new_entry(d, concept="case", **kw):
    return create(d, entry_body(f"{unique_domain()}_r1_{concept}", **kw))["scenario_id"]


PROMOTE = {"rule_text": "Retention periods are event based, not fixed.",
           "related_concepts": ["data retention", "storage limitation", "GDPR Article 5(1)(e)"],
           "policy": "gdpr", "key_concept": "event based retention"}


def test_promote_creates_a_rule_from_the_entry(tier_daemon):
    d = tier_daemon
    sid = new_entry(d)
    give_feedback(d, sid, final_status="Partially Compliant")
    _, raw_at_link = get_raw(d, sid)
    t0 = int(time.time() * 1000)
    rule = promote(d, sid, PROMOTE)
    assert rule["rule_id"] == "GDPR_EventBasedRetention_01"
    assert rule["policy"] == "GDPR"
    assert rule["rule_text"] == PROMOTE["rule_text"]
    assert rule["related_concepts"] == PROMOTE["related_concepts"]
    assert rule["source_scenario_ids"] == [sid]
    assert rule["confidence_score"] == 0.5 and rule["version"] == 1
    assert rule["created_at"] == rule["updated_at"]
    assert parse_ts(rule["created_at"]) >= t0 - 5
    assert get_rule(d, rule["rule_id"])["ltm_rule"] == rule
    assert_links(d, sid, [rule["rule_id"]])
    if d.backend == "redis":  # the link set lives exactly as long as its entry
        pttl_entry = d.redis.command_db(d.redis_db, "PTTL", f"stm:{sid}")
        pttl_links = d.redis.command_db(d.redis_db, "PTTL", f"stm_ltm_links:{sid}")
        assert pttl_entry > 0 and pttl_links > 0, (pttl_entry, pttl_links)
        assert abs(pttl_entry - pttl_links) < 200, (pttl_entry, pttl_links)
    tr = get_rule(d, rule["rule_id"])["traceability"]
    assert tr["source_scenarios"] == [{"scenario_id": sid, "in_stm": True, "has_snapshot": True}]
    snap, raw = snapshot_of(d, sid)
    assert raw == raw_at_link  # byte for byte the entry as it was
    assert snap["sha256"] == sha(raw_at_link)
    # promotion reads the entry; it does not change it
    assert get_raw(d, sid)[1] == raw_at_link

    # explicit id and confidence; a second rule from the same entry
    second = promote(d, sid, {"rule_text": "Inactive accounts are scheduled for deletion.",
                              "related_concepts": ["account deletion"],
                              "rule_id": "GDPR_Retention_Inactive_01",
                              "confidence_score": 0.9})
    assert second["rule_id"] == "GDPR_Retention_Inactive_01"
    assert second["confidence_score"] == 0.9
    assert_links(d, sid, ["GDPR_EventBasedRetention_01", "GDPR_Retention_Inactive_01"])
    # generated ids continue with the lowest free number
    assert promote(d, sid, PROMOTE)["rule_id"] == "GDPR_EventBasedRetention_02"


def test_promote_needs_a_live_entry_with_feedback(tier_daemon):
    d = tier_daemon
    err(d.post(f"{STM}/{unique_domain()}_r1_missing/promote", PROMOTE), 404, "not_found")
    sid = new_entry(d)
    r = d.post(f"{STM}/{sid}/promote", PROMOTE)
    err(r, 409, "conflict")
    assert search_rules(d, limit=100)[0] == []
    assert_links(d, sid, [])
    tr = ok(d.get(f"/v1/trace/{sid}"))
    assert tr["derived_ltm_rules"] == [] and tr["snapshot"] is None
    give_feedback(d, sid)
    rule = promote(d, sid, PROMOTE)
    # the id exists now
    err(d.post(f"{STM}/{sid}/promote", {"rule_text": "x", "related_concepts": ["y"],
                                        "rule_id": rule["rule_id"]}),
        409, "conflict", "rule_id")
    assert get_rule(d, rule["rule_id"])["ltm_rule"] == rule
    # a deleted entry cannot be promoted any more
    assert d.delete(f"{STM}/{sid}").status == 204
    err(d.post(f"{STM}/{sid}/promote", PROMOTE), 404, "not_found")


def test_promote_of_an_expired_entry_is_404(tier_daemon):
    d = tier_daemon
    sid = new_entry(d)
    give_feedback(d, sid)
    ok(d.put(f"{STM}/{sid}/ttl", {"ttl_seconds": 1}))
    time.sleep(1.1)
    err(d.get(f"{STM}/{sid}"), 404, "not_found")
    err(d.post(f"{STM}/{sid}/promote", PROMOTE), 404, "not_found")
    assert search_rules(d, limit=100)[0] == []


def test_link_set_expires_with_its_entry(tier_daemon):
    d = tier_daemon
    sid = new_entry(d)
    give_feedback(d, sid)
    rid = promote(d, sid, PROMOTE)["rule_id"]
    assert_links(d, sid, [rid])
    ok(d.put(f"{STM}/{sid}/ttl", {"ttl_seconds": 1}))
    time.sleep(1.1)
    err(d.get(f"{STM}/{sid}"), 404, "not_found")
    if d.backend == "redis":
        assert d.redis.command_db(d.redis_db, "EXISTS", f"stm_ltm_links:{sid}") == 0
    # a new entry with the same id starts without links
    create(d, entry_body(sid))
    assert_links(d, sid, [])
    assert [r["rule_id"] for r in ok(d.get(f"/v1/trace/{sid}"))["derived_ltm_rules"]] == [rid]


def test_create_rule_links_live_sources_only(tier_daemon):
    """POST /v1/ltm/rules links every source whose STM entry exists (feedback or not)."""
    d = tier_daemon
    live1, live2 = new_entry(d, "one"), new_entry(d, "two")
    give_feedback(d, live1)
    ghost = f"{unique_domain()}_r9_ghost"
    raw1, raw2 = get_raw(d, live1)[1], get_raw(d, live2)[1]
    rule = check_rule(ok(d.post(RULES, rule_body([live1, ghost, live2],
                                                  rule_id="GDPR_Multi_Source_01")), 201)
                      ["ltm_rule"])
    assert sorted(rule["source_scenario_ids"]) == sorted([live1, live2, ghost])
    assert_links(d, live1, ["GDPR_Multi_Source_01"])
    assert_links(d, live2, ["GDPR_Multi_Source_01"])
    if d.backend == "redis":
        assert d.redis.command_db(d.redis_db, "EXISTS", f"stm_ltm_links:{ghost}") == 0
    by_id = {s["scenario_id"]: s for s in get_rule(d, rule["rule_id"])["traceability"]
             ["source_scenarios"]}
    assert by_id[ghost] == {"scenario_id": ghost, "in_stm": False, "has_snapshot": False}
    assert by_id[live2] == {"scenario_id": live2, "in_stm": True, "has_snapshot": True}
    assert snapshot_of(d, live1)[0]["sha256"] == sha(raw1)
    assert snapshot_of(d, live2)[0]["sha256"] == sha(raw2)
    assert snapshot_of(d, ghost) == (None, None)


def test_add_source_scenario_ids_links_and_snapshots(tier_daemon):
    d = tier_daemon
    first = new_entry(d, "first")
    give_feedback(d, first)
    rule = promote(d, first, PROMOTE)
    rid = rule["rule_id"]
    second = new_entry(d, "second")
    raw_second = get_raw(d, second)[1]
    time.sleep(0.005)
    r = ok(d.patch(f"{RULES}/{rid}", {"add_source_scenario_ids": [second]}))
    assert r["changed"] is True
    v2 = check_rule(r["ltm_rule"])
    assert v2["version"] == 2
    assert sorted(v2["source_scenario_ids"]) == sorted([first, second])
    assert parse_ts(v2["updated_at"]) > parse_ts(rule["updated_at"])
    assert_links(d, second, [rid])
    assert_links(d, first, [rid])
    assert snapshot_of(d, second)[0]["sha256"] == sha(raw_second)
    hist = ok(d.get(f"{RULES}/{rid}/history"))["versions"]
    assert [v["source_scenario_ids"] for v in hist] == [[first], v2["source_scenario_ids"]]

    # linking an existing source again refreshes its snapshot from the live entry,
    # without a new version (nothing about the rule changed)
    old_snap, old_raw = snapshot_of(d, first)
    give_feedback(d, first, decision="Approved", final_status="Compliant")
    raw_now = get_raw(d, first)[1]
    assert raw_now != old_raw
    assert snapshot_of(d, first)[1] == old_raw  # not refreshed by the STM update itself
    r = ok(d.patch(f"{RULES}/{rid}", {"add_source_scenario_ids": [first]}))
    assert r["changed"] is False and r["ltm_rule"]["version"] == 2
    snap, raw = snapshot_of(d, first)
    assert raw == raw_now and snap["sha256"] == sha(raw_now)
    assert parse_ts(snap["captured_at"]) >= parse_ts(old_snap["captured_at"])
    assert_links(d, first, [rid])
    # a promotion from the entry refreshes it too
    give_feedback(d, first, decision="Needs revision", final_status="Non-Compliant")
    raw_now = get_raw(d, first)[1]
    promote(d, first, dict(PROMOTE, key_concept="another rule"))
    assert snapshot_of(d, first)[1] == raw_now
    # a source with no STM entry: added to the rule, no link, no snapshot
    ghost = f"{unique_domain()}_r2_ghost"
    r = ok(d.patch(f"{RULES}/{rid}", {"add_source_scenario_ids": [ghost]}))
    assert r["ltm_rule"]["version"] == 3
    assert ghost in r["ltm_rule"]["source_scenario_ids"]
    assert snapshot_of(d, ghost) == (None, None)
    if d.backend == "redis":
        assert d.redis.command_db(d.redis_db, "EXISTS", f"stm_ltm_links:{ghost}") == 0


def test_delete_takes_the_rule_out_of_every_link_set(tier_daemon):
    d = tier_daemon
    a, b = new_entry(d, "a"), new_entry(d, "b")
    give_feedback(d, a)
    give_feedback(d, b)
    r1 = promote(d, a, PROMOTE)["rule_id"]
    ok(d.patch(f"{RULES}/{r1}", {"add_source_scenario_ids": [b]}))
    r2 = promote(d, b, dict(PROMOTE, key_concept="other"))["rule_id"]
    assert_links(d, a, [r1])
    assert_links(d, b, [r1, r2])
    assert d.delete(f"{RULES}/{r1}").status == 204
    assert_links(d, a, [])
    assert_links(d, b, [r2])
    if d.backend == "redis":  # an empty set does not linger as a key
        assert d.redis.command_db(d.redis_db, "EXISTS", f"stm_ltm_links:{a}") == 0
    # the entries themselves are untouched
    for sid in (a, b):
        assert ok(d.get(f"{STM}/{sid}"))["stm_entry"]["human_feedback"] is not None
    tr = ok(d.get(f"/v1/trace/{b}"))
    assert [x["rule_id"] for x in tr["derived_ltm_rules"]] == [r2]
    assert d.delete(f"{RULES}/{r2}").status == 204
    assert_links(d, b, [])
    # deleting an STM entry leaves its rules (and their evidence) alone
    r3 = promote(d, a, PROMOTE)["rule_id"]
    assert d.delete(f"{STM}/{a}").status == 204
    rule = get_rule(d, r3)
    assert rule["traceability"]["source_scenarios"] == [
        {"scenario_id": a, "in_stm": False, "has_snapshot": True}]
    if d.backend == "redis":
        assert d.redis.command_db(d.redis_db, "EXISTS", f"stm_ltm_links:{a}") == 0
