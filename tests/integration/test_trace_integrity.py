"""
GET /v1/integrity on every (STM, LTM) backend pair (`tier_daemon`).

  orphaned_stm_entries  live entries with human feedback and no derived rule
                        (reported, still PASS)
  orphaned_ltm_rules    rules without a source scenario
  broken_links          link-set members naming a missing rule, plus sources
                        with neither a live STM entry nor a snapshot
  PASS iff orphaned_ltm_rules == 0 and broken_links == 0

States the API cannot produce (a link naming a missing rule, a rule without
sources) are made behind the daemon's back, the way a stray tool would: on
Redis with SADD into `stm_ltm_links:{id}`, on Neo4j with Cypher over HTTP, in
the embedded store with SQL on its database file.
"""
from conftest import (RULES, create, embedded_db, entry_body, give_feedback, ok, promote,
                      rule_body, unique_domain, wait_for)

STM = "/v1/stm/entries"
STAT_KEYS = {"total_stm_entries", "total_ltm_rules", "orphaned_stm_entries",
             "orphaned_ltm_rules", "broken_links"}


def integrity(d):
    data = ok(d.get("/v1/integrity"))
    # spec keys, plus issues_total and checked_at (the server's additions)
    assert {"integrity_status", "statistics", "issues"} <= set(data) <= \
        {"integrity_status", "statistics", "issues", "issues_total", "checked_at"}, sorted(data)
    assert data["integrity_status"] in ("PASS", "ISSUES_FOUND")
    st = data["statistics"]
    assert set(st) == STAT_KEYS, sorted(st)
    assert all(isinstance(v, int) and v >= 0 for v in st.values()), st
    assert isinstance(data["issues"], list) and all(isinstance(i, str) for i in data["issues"])
    passed = st["orphaned_ltm_rules"] == 0 and st["broken_links"] == 0
    assert data["integrity_status"] == ("PASS" if passed else "ISSUES_FOUND"), data
    return data


def stats_of(d):
    return integrity(d)["statistics"]


def new_entry(d, concept="case", **kw):
    return create(d, entry_body(f"{unique_domain()}_r1_{concept}", **kw))["scenario_id"]


def sql(d, statement, *args):
    con = embedded_db(d)
    try:
        return con.execute(statement, args).fetchall()
    finally:
        con.close()


def add_link(d, sid, rule_id):
    """Put rule_id into the entry's link set directly in the STM store."""
    if d.backend == "redis":
        assert d.redis.command_db(d.redis_db, "SADD", f"stm_ltm_links:{sid}", rule_id) == 1
    else:
        sql(d, "INSERT INTO stm_links (scenario_id, rule_id) VALUES (?, ?)", sid, rule_id)


def remove_link(d, sid, rule_id):
    if d.backend == "redis":
        assert d.redis.command_db(d.redis_db, "SREM", f"stm_ltm_links:{sid}", rule_id) == 1
    else:
        sql(d, "DELETE FROM stm_links WHERE scenario_id = ? AND rule_id = ?", sid, rule_id)


def drop_rule_sources(d, rule_id):
    """Remove every source of a rule directly in the LTM store."""
    if d.ltm_backend == "neo4j":
        d.neo4j.cypher("MATCH (:Rule {rule_id:$id})-[e:DERIVED_FROM]->() DELETE e", id=rule_id)
    else:
        sql(d, "DELETE FROM ltm_rule_sources WHERE rule = "
               "(SELECT id FROM ltm_rules WHERE rule_id = ?)", rule_id)


PROMOTE = {"rule_text": "Consent is asked for each purpose separately.",
           "related_concepts": ["consent"], "policy": "GDPR", "key_concept": "granular consent"}


def test_clean_state_passes(tier_daemon):
    d = tier_daemon
    data = integrity(d)
    assert data["integrity_status"] == "PASS"
    assert data["statistics"] == dict.fromkeys(STAT_KEYS, 0)
    assert data["issues"] == []


def test_linked_evidence_passes(tier_daemon):
    d = tier_daemon
    a, b = new_entry(d, "a"), new_entry(d, "b")
    new_entry(d, "unlinked")  # no feedback: neither orphan nor broken
    give_feedback(d, a)
    rid = promote(d, a, PROMOTE)["rule_id"]
    ok(d.patch(f"{RULES}/{rid}", {"add_source_scenario_ids": [b]}))
    data = integrity(d)
    assert data["integrity_status"] == "PASS"
    assert data["statistics"] == {"total_stm_entries": 3, "total_ltm_rules": 1,
                                  "orphaned_stm_entries": 0, "orphaned_ltm_rules": 0,
                                  "broken_links": 0}
    assert data["issues"] == []


def test_orphaned_stm_entries_are_reported_but_pass(tier_daemon):
    d = tier_daemon
    lonely1, lonely2, linked, plain = (new_entry(d, n) for n in ("l1", "l2", "linked", "plain"))
    for sid in (lonely1, lonely2, linked):
        give_feedback(d, sid)
    promote(d, linked, PROMOTE)
    data = integrity(d)
    assert data["integrity_status"] == "PASS"
    assert data["statistics"] == {"total_stm_entries": 4, "total_ltm_rules": 1,
                                  "orphaned_stm_entries": 2, "orphaned_ltm_rules": 0,
                                  "broken_links": 0}
    text = " ".join(data["issues"])
    assert lonely1 in text and lonely2 in text and linked not in text and plain not in text
    # promoting one of them resolves it
    promote(d, lonely1, dict(PROMOTE, key_concept="second"))
    assert stats_of(d)["orphaned_stm_entries"] == 1
    # an expired orphan is gone from the count (and from total_stm_entries)
    short = new_entry(d, "short")
    give_feedback(d, short)
    assert stats_of(d)["orphaned_stm_entries"] == 2
    ok(d.put(f"{STM}/{short}/ttl", {"ttl_seconds": 1}))
    wait_for(lambda: d.get(f"{STM}/{short}").status == 404, 3, what="the entry to expire")
    st = stats_of(d)
    assert st["orphaned_stm_entries"] == 1 and st["total_stm_entries"] == 4


def test_source_with_neither_entry_nor_snapshot_is_a_broken_link(tier_daemon):
    d = tier_daemon
    ghost = f"{unique_domain()}_r1_never"
    live = new_entry(d, "live")
    ok(d.post(RULES, rule_body([ghost, live], rule_id="GDPR_Broken_01")), 201)
    data = integrity(d)
    assert data["integrity_status"] == "ISSUES_FOUND"
    assert data["statistics"] == {"total_stm_entries": 1, "total_ltm_rules": 1,
                                  "orphaned_stm_entries": 0, "orphaned_ltm_rules": 0,
                                  "broken_links": 1}
    assert any(ghost in i and "GDPR_Broken_01" in i for i in data["issues"]), data["issues"]
    assert not any(live in i for i in data["issues"])
    # the scenario appears in STM: the source is available again
    create(d, entry_body(ghost))
    assert integrity(d)["integrity_status"] == "PASS"
    # ... and disappears (it was never snapshotted): broken again
    assert d.delete(f"{STM}/{ghost}").status == 204
    assert stats_of(d)["broken_links"] == 1
    # linking it while it lives snapshots it: no longer broken when it goes
    create(d, entry_body(ghost))
    ok(d.patch(f"{RULES}/GDPR_Broken_01", {"add_source_scenario_ids": [ghost]}))
    assert d.delete(f"{STM}/{ghost}").status == 204
    assert integrity(d)["integrity_status"] == "PASS"
    # a second rule citing another missing scenario, and one citing two
    ok(d.post(RULES, rule_body([f"{unique_domain()}_r2_never"], rule_id="GDPR_Broken_02")), 201)
    ok(d.post(RULES, rule_body([f"{unique_domain()}_r3_never", f"{unique_domain()}_r4_never"],
                               rule_id="GDPR_Broken_03")), 201)
    assert stats_of(d)["broken_links"] == 3
    assert d.delete(f"{RULES}/GDPR_Broken_02").status == 204
    assert d.delete(f"{RULES}/GDPR_Broken_03").status == 204
    assert integrity(d)["integrity_status"] == "PASS"


def test_link_naming_a_missing_rule_is_a_broken_link(tier_daemon):
    d = tier_daemon
    sid = new_entry(d)
    give_feedback(d, sid)
    rid = promote(d, sid, PROMOTE)["rule_id"]
    assert integrity(d)["integrity_status"] == "PASS"
    add_link(d, sid, "GDPR_Bogus_Rule_99")
    data = integrity(d)
    assert data["integrity_status"] == "ISSUES_FOUND"
    assert data["statistics"] == {"total_stm_entries": 1, "total_ltm_rules": 1,
                                  "orphaned_stm_entries": 0, "orphaned_ltm_rules": 0,
                                  "broken_links": 1}
    assert any("GDPR_Bogus_Rule_99" in i and sid in i for i in data["issues"]), data["issues"]
    remove_link(d, sid, "GDPR_Bogus_Rule_99")
    assert integrity(d)["integrity_status"] == "PASS"
    # the same when a linked rule vanishes from LTM behind the daemon's back
    other = new_entry(d, "other")
    add_link(d, other, "GDPR_Ghost_Rule_01")
    add_link(d, other, rid)
    st = stats_of(d)
    assert st["broken_links"] == 1 and st["orphaned_stm_entries"] == 0


def test_rule_without_sources_is_an_orphaned_ltm_rule(tier_daemon):
    d = tier_daemon
    ghost = f"{unique_domain()}_r1_src"
    ok(d.post(RULES, rule_body([ghost], rule_id="GDPR_Orphan_01")), 201)
    sid = new_entry(d)
    give_feedback(d, sid)
    promote(d, sid, PROMOTE)
    assert stats_of(d)["broken_links"] == 1
    drop_rule_sources(d, "GDPR_Orphan_01")
    data = integrity(d)
    assert data["integrity_status"] == "ISSUES_FOUND"
    assert data["statistics"] == {"total_stm_entries": 1, "total_ltm_rules": 2,
                                  "orphaned_stm_entries": 0, "orphaned_ltm_rules": 1,
                                  "broken_links": 0}
    assert data["issues"]
    a = ok(d.get(f"{RULES}/GDPR_Orphan_01/audit"))
    assert a["audit_metadata"]["source_count"] == 0
    assert a["audit_metadata"]["evidence_completeness"] == 0  # spec: 0 without sources
    assert d.delete(f"{RULES}/GDPR_Orphan_01").status == 204
    assert integrity(d)["integrity_status"] == "PASS"


def test_integrity_after_everything_expires(tier_daemon):
    """Evidence outlives STM: a day later nothing is a broken link (the seed's flaw)."""
    d = tier_daemon
    sids = [new_entry(d, f"e{i}") for i in range(3)]
    rids = []
    for sid in sids[:2]:
        give_feedback(d, sid)
        rids.append(promote(d, sid, dict(PROMOTE, key_concept=sid))["rule_id"])
    ok(d.patch(f"{RULES}/{rids[0]}", {"add_source_scenario_ids": [sids[2]]}))
    for sid in sids:
        ok(d.put(f"{STM}/{sid}/ttl", {"ttl_seconds": 1}))
    wait_for(lambda: all(d.get(f"{STM}/{s}").status == 404 for s in sids), 3,
             what="the entries to expire")
    data = integrity(d)
    assert data["integrity_status"] == "PASS", data
    assert data["statistics"] == {"total_stm_entries": 0, "total_ltm_rules": 2,
                                  "orphaned_stm_entries": 0, "orphaned_ltm_rules": 0,
                                  "broken_links": 0}
