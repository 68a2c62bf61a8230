"""
LTM rules on a fresh daemon per test, on both LTM backends (`ltm_daemon`):
generated rule ids, reading a rule with its traceability, PATCH (versions,
history, timestamps, stale concept edges), DELETE (orphan Concept and Policy
nodes go, Scenario nodes stay), concepts and their rules.

On Neo4j the graph itself is inspected with Cypher over HTTP as well, the way
other tools see it; on the embedded backend the same facts are checked
through the API (concept listing, concept rules, trace).
"""
import time
from urllib.parse import quote

import pytest

from conftest import (RULES, check_rule, create_rule, err, get_rule, ok, parse_ts, rule_body,
                      unique_domain)


def sid(n=1, concept="source"):
    return f"{unique_domain()}_r{n}_{concept}"


def concepts_listing(d, limit=None):
    """Every concept of /v1/ltm/concepts, paged; [(name, rule_count)]."""
    out, cursor = [], None
    for _ in range(1000):
        q = []
        if limit:
            q.append(f"limit={limit}")
        if cursor:
            q.append("cursor=" + quote(cursor))
        data = ok(d.get("/v1/ltm/concepts" + ("?" + "&".join(q) if q else "")))
        assert set(data) == {"concepts", "count", "next_cursor"}, sorted(data)
        assert data["count"] == len(data["concepts"])
        if limit:
            assert data["count"] <= limit
        for c in data["concepts"]:
            assert set(c) == {"name", "rule_count"}, c
            assert isinstance(c["rule_count"], int) and c["rule_count"] >= 1, c
        out.extend((c["name"], c["rule_count"]) for c in data["concepts"])
        cursor = data["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("concept listing did not end")


def concept_rules(d, name):
    data = ok(d.get(f"/v1/ltm/concepts/{quote(name)}/rules"))
    assert set(data) == {"concept", "rules", "count"}, sorted(data)
    assert data["count"] == len(data["rules"])
    for r in data["rules"]:
        check_rule(r)
    return data


def graph_count(d, label, **props):
    where = " AND ".join(f"toLower(n.{k}) = toLower(${k})" for k in props) or "true"
    return d.neo4j.value(f"MATCH (n:{label}) WHERE {where} RETURN count(n)", **props)


# --------------------------------------------------------------------------- generated ids

def test_generated_rule_ids_take_the_lowest_free_number(ltm_daemon):
    d = ltm_daemon

    def gen(policy="gdpr", key="event based retention"):
        return create_rule(d, rule_body([sid()], policy=policy, key_concept=key))["rule_id"]

    assert gen() == "GDPR_EventBasedRetention_01"
    assert gen() == "GDPR_EventBasedRetention_02"
    assert gen("GDPR", "Event-Based retention!") == "GDPR_EventBasedRetention_03"
    assert ok(d.get(f"{RULES}/GDPR_EventBasedRetention_02"))
    assert d.delete(f"{RULES}/GDPR_EventBasedRetention_02").status == 204
    assert gen() == "GDPR_EventBasedRetention_02"  # the lowest free one again
    assert gen() == "GDPR_EventBasedRetention_04"
    # an explicit id takes a number; generation skips it and fills the gap below
    create_rule(d, rule_body([sid()], rule_id="GDPR_Minimisation_02"))
    assert gen("gdpr", "minimisation") == "GDPR_Minimisation_01"
    assert gen("gdpr", "minimisation") == "GDPR_Minimisation_03"
    # other prefixes and policies count separately
    assert gen("g.d.p.r", "event based retention qualified") == \
        "GDPR_EventBasedRetentionQualified_01"
    assert gen("ccpa", "event based retention") == "CCPA_EventBasedRetention_01"


@pytest.mark.parametrize("policy,key,expected", [
    ("gdpr", "SHA256 hashing", "GDPR_SHA256Hashing_01"),
    ("GDPR", "event based retention", "GDPR_EventBasedRetention_01"),
    ("Gdpr", "event BASED retention", "GDPR_EventBASEDRetention_01"),
    (" g-d/p r ", "data-minimisation: storage", "GDPR_DataMinimisationStorage_01"),
    ("iso27001", "access   control", "ISO27001_AccessControl_01"),
    ("hipaa", "phi at rest", "HIPAA_PhiAtRest_01"),
    ("gdpr", "Article 5(1)(e)", "GDPR_Article51E_01"),
    ("gdpr", "données personnelles", "GDPR_DonnEsPersonnelles_01"),
])
def test_generated_id_words(ltm_daemon, policy, key, expected):
    """Spec §2/§6: policy upper-cased without non-alphanumerics; each alphanumeric run
    of the concept gets its first character upper-cased and keeps the rest."""
    rule = create_rule(ltm_daemon, rule_body([sid()], policy=policy, key_concept=key))
    assert rule["rule_id"] == expected
    assert rule["policy"] == expected.split("_")[0]
    assert get_rule(ltm_daemon, expected)["traceability"]["governing_policies"] == \
        [expected.split("_")[0]]


# --------------------------------------------------------------------------- read one rule

def test_get_rule_with_traceability(ltm_daemon):
    d = ltm_daemon
    live = ok(d.post("/v1/stm/entries", {
        "scenario_id": sid(1, "live"), "requirement_text": "Stores data.",
        "initial_assessment": {"status": "Pending", "rationale": "r", "recommendation": "m"}}),
        201)["stm_entry"]["scenario_id"]
    gone = sid(2, "never_in_stm")
    rule = create_rule(d, rule_body([gone, live], rule_id="GDPR_Trace_Read_01",
                                    concepts=["Data Retention", "storage limitation"],
                                    confidence_score=0.8))
    assert sorted(rule["source_scenario_ids"]) == sorted([gone, live])
    data = get_rule(d, "GDPR_Trace_Read_01")
    assert data["ltm_rule"] == rule
    tr = data["traceability"]
    assert set(tr) == {"related_concepts", "source_scenarios", "governing_policies"}
    assert tr["related_concepts"] == ["Data Retention", "storage limitation"]
    assert tr["governing_policies"] == ["GDPR"]
    by_id = {s["scenario_id"]: s for s in tr["source_scenarios"]}
    assert sorted(by_id) == sorted([gone, live])
    for s in tr["source_scenarios"]:
        assert set(s) == {"scenario_id", "in_stm", "has_snapshot"}, s
    assert by_id[live] == {"scenario_id": live, "in_stm": True, "has_snapshot": True}
    assert by_id[gone] == {"scenario_id": gone, "in_stm": False, "has_snapshot": False}
    # the live entry deleted: no longer in STM, the snapshot stays
    assert d.delete(f"/v1/stm/entries/{live}").status == 204
    tr = get_rule(d, "GDPR_Trace_Read_01")["traceability"]
    by_id = {s["scenario_id"]: s for s in tr["source_scenarios"]}
    assert by_id[live] == {"scenario_id": live, "in_stm": False, "has_snapshot": True}


def test_concept_identity_is_case_insensitive_across_rules(ltm_daemon):
    """One Concept per case-folded name; it keeps its first spelling, and each rule
    keeps its own spelling of it."""
    d = ltm_daemon
    a = create_rule(d, rule_body([sid()], rule_id="GDPR_Case_A_01",
                                 concepts=["Data Retention", "Consent"]))
    b = create_rule(d, rule_body([sid()], rule_id="GDPR_Case_B_01",
                                 concepts=["DATA retention"]))
    assert a["related_concepts"] == ["Data Retention", "Consent"]
    assert b["related_concepts"] == ["DATA retention"]
    assert sorted(concepts_listing(d)) == [("Consent", 1), ("Data Retention", 2)]
    for spelling in ("data retention", "DATA RETENTION", "Data Retention", " data retention "):
        got = concept_rules(d, spelling)
        assert got["concept"] == "Data Retention"
        assert sorted(r["rule_id"] for r in got["rules"]) == ["GDPR_Case_A_01", "GDPR_Case_B_01"]
    if d.ltm_backend == "neo4j":
        assert graph_count(d, "Concept", name="data retention") == 1
        assert d.neo4j.value("MATCH (c:Concept) RETURN count(c)") == 2


# --------------------------------------------------------------------------- concepts

def test_concepts_listing_counts_rules_and_pages(ltm_daemon):
    d = ltm_daemon
    plan = {"GDPR_Pg_A_01": ["alpha", "beta", "gamma"], "GDPR_Pg_B_01": ["Beta", "delta"],
            "GDPR_Pg_C_01": ["gamma", "epsilon", "BETA"], "GDPR_Pg_D_01": ["zeta"],
            "GDPR_Pg_E_01": ["éclair", "Ωmega", "äpfel"]}
    for rid, cs in plan.items():
        create_rule(d, rule_body([sid()], rule_id=rid, concepts=cs))
    expected = sorted([("alpha", 1), ("beta", 3), ("gamma", 2), ("delta", 1), ("epsilon", 1),
                       ("zeta", 1), ("éclair", 1), ("Ωmega", 1), ("äpfel", 1)])
    full = concepts_listing(d)
    assert sorted(full) == expected
    assert len({n.lower() for n, _ in full}) == len(full)  # each exactly once
    for limit in (1, 2, 4, 1000):
        assert concepts_listing(d, limit) == full, limit  # same order, every one once
    # the default page is the whole (small) list
    data = ok(d.get("/v1/ltm/concepts"))
    assert data["next_cursor"] is None and data["count"] == len(expected)


@pytest.mark.parametrize("q,field", [("limit=0", "limit"), ("limit=1001", "limit"),
                                     ("limit=-1", "limit"), ("limit=1.5", "limit"),
                                     ("limit=abc", "limit"), ("limit=", "limit"),
                                     ("cursor=abc", "cursor"), ("cursor=", "cursor"),
                                     ("limit=1&limit=2", "limit"), ("x=1", "x")])
def test_concepts_listing_rejects_bad_parameters(ltm_daemon, q, field):
    err(ltm_daemon.get("/v1/ltm/concepts?" + q), 400, "validation_error", field)


def test_concept_cursor_is_opaque_and_checked(ltm_daemon):
    d = ltm_daemon
    create_rule(d, rule_body([sid()], rule_id="GDPR_Cur_01", concepts=["a1", "a2", "a3"]))
    page = ok(d.get("/v1/ltm/concepts?limit=1"))
    cur = page["next_cursor"]
    assert isinstance(cur, str) and "a1" not in cur  # opaque
    ok(d.get("/v1/ltm/concepts?limit=1&cursor=" + quote(cur)))
    for forged in (cur[:-1], cur[:-2] + ("A" if cur[-2] != "A" else "B") + cur[-1],
                   cur + "x", "YTE", "a1", "0"):
        err(d.get("/v1/ltm/concepts?limit=1&cursor=" + quote(forged)), 400,
            "validation_error", "cursor")
    # a cursor of another listing is not one of this one
    rules_page = ok(d.get(f"{RULES}?limit=1"))
    create_rule(d, rule_body([sid()], rule_id="GDPR_Cur_02"))
    rules_cur = ok(d.get(f"{RULES}?limit=1"))["next_cursor"]
    assert rules_page and rules_cur
    err(d.get("/v1/ltm/concepts?cursor=" + quote(rules_cur)), 400, "validation_error",
        "cursor")
    err(d.get(f"{RULES}?limit=1&cursor=" + quote(cur)), 400, "validation_error", "cursor")


def test_concept_rules_exact_name_confidence_descending(ltm_daemon):
    d = ltm_daemon
    for rid, conf, cs in (("GDPR_Cr_Low_01", 0.2, ["password hashing"]),
                          ("GDPR_Cr_High_01", 0.95, ["Password Hashing", "salt"]),
                          ("GDPR_Cr_Mid_01", 0.6, ["PASSWORD HASHING"]),
                          ("GDPR_Cr_Other_01", 0.99, ["password", "hashing"])):
        create_rule(d, rule_body([sid()], rule_id=rid, concepts=cs, confidence_score=conf))
    got = concept_rules(d, "Password hashing")
    assert got["concept"] == "password hashing"  # the first spelling
    assert [r["rule_id"] for r in got["rules"]] == ["GDPR_Cr_High_01", "GDPR_Cr_Mid_01",
                                                    "GDPR_Cr_Low_01"]
    assert got["count"] == 3
    # whole names only: "password" is its own concept, "hash" is none
    assert [r["rule_id"] for r in concept_rules(d, "PASSWORD")["rules"]] == ["GDPR_Cr_Other_01"]
    for unknown in ("hash", "password hashin", "password  hashing", "passwordhashing"):
        err(d.get(f"/v1/ltm/concepts/{quote(unknown)}/rules"), 404, "not_found")


# --------------------------------------------------------------------------- PATCH

def test_patch_bumps_version_keeps_history_and_created_at(ltm_daemon):
    d = ltm_daemon
    v1 = create_rule(d, rule_body([sid()], rule_id="GDPR_Patch_01", text="first text",
                                  concepts=["alpha", "beta"], confidence_score=0.4))
    time.sleep(0.005)
    r = ok(d.patch(f"{RULES}/GDPR_Patch_01", {"rule_text": "second text"}))
    assert set(r) == {"ltm_rule", "changed"} and r["changed"] is True
    v2 = check_rule(r["ltm_rule"])
    assert v2["version"] == 2 and v2["rule_text"] == "second text"
    assert v2["created_at"] == v1["created_at"]
    assert parse_ts(v2["updated_at"]) > parse_ts(v1["updated_at"])
    assert {k: v2[k] for k in ("related_concepts", "confidence_score", "source_scenario_ids")} \
        == {k: v1[k] for k in ("related_concepts", "confidence_score", "source_scenario_ids")}
    time.sleep(0.005)
    v3 = check_rule(ok(d.patch(f"{RULES}/GDPR_Patch_01", {"confidence_score": 0.9}))["ltm_rule"])
    assert v3["version"] == 3 and v3["confidence_score"] == 0.9
    time.sleep(0.005)
    v4 = check_rule(ok(d.patch(f"{RULES}/GDPR_Patch_01", {
        "rule_text": "fourth text", "confidence_score": 0.7,
        "related_concepts": ["beta", "gamma"]}))["ltm_rule"])
    assert v4["version"] == 4
    assert v4["related_concepts"] == ["beta", "gamma"]
    assert v4["created_at"] == v1["created_at"]
    assert parse_ts(v1["updated_at"]) < parse_ts(v2["updated_at"]) < \
        parse_ts(v3["updated_at"]) < parse_ts(v4["updated_at"])
    assert get_rule(d, "GDPR_Patch_01")["ltm_rule"] == v4

    hist = ok(d.get(f"{RULES}/GDPR_Patch_01/history"))
    versions = hist["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3, 4]  # oldest first, current last
    for v, rule in zip(versions, (v1, v2, v3, v4)):
        assert v["rule_id"] == "GDPR_Patch_01"
        assert v["rule_text"] == rule["rule_text"]
        assert v["confidence_score"] == rule["confidence_score"]
        assert v["related_concepts"] == rule["related_concepts"]
        assert v["source_scenario_ids"] == rule["source_scenario_ids"]
        assert v["recorded_at"] == rule["updated_at"]
    assert set(hist) == {"rule_id", "total_versions", "versions"}
    assert hist["rule_id"] == "GDPR_Patch_01" and hist["total_versions"] == 4


def test_patch_that_changes_nothing_keeps_version_and_updated_at(ltm_daemon):
    d = ltm_daemon
    v1 = create_rule(d, rule_body([sid()], rule_id="GDPR_Noop_01", text="same",
                                  concepts=["alpha", "beta"], confidence_score=0.5))
    for body in ({}, {"rule_text": "same"}, {"confidence_score": 0.5},
                 {"related_concepts": ["alpha", "beta"]},
                 {"related_concepts": [" alpha ", "beta"]},
                 {"add_source_scenario_ids": []},
                 {"add_source_scenario_ids": v1["source_scenario_ids"]},
                 {"rule_text": "same", "confidence_score": 0.5,
                  "related_concepts": ["alpha", "beta"]}):
        time.sleep(0.002)
        r = ok(d.patch(f"{RULES}/GDPR_Noop_01", body))
        assert r["changed"] is False, body
        assert r["ltm_rule"] == v1, body
    assert len(ok(d.get(f"{RULES}/GDPR_Noop_01/history"))["versions"]) == 1
    assert get_rule(d, "GDPR_Noop_01")["ltm_rule"] == v1


def test_patch_replacing_concepts_leaves_no_stale_edge(ltm_daemon):
    d = ltm_daemon
    create_rule(d, rule_body([sid()], rule_id="GDPR_Edges_01",
                             concepts=["keep me", "drop me", "shared"]))
    create_rule(d, rule_body([sid()], rule_id="GDPR_Other_01", concepts=["SHARED"]))
    r = ok(d.patch(f"{RULES}/GDPR_Edges_01", {"related_concepts": ["Keep Me", "brand new"]}))
    assert r["changed"] is True
    assert r["ltm_rule"]["related_concepts"] == ["Keep Me", "brand new"]
    assert r["ltm_rule"]["version"] == 2
    assert get_rule(d, "GDPR_Edges_01")["ltm_rule"]["related_concepts"] == \
        ["Keep Me", "brand new"]
    # "drop me" had no other rule: gone; "shared" still has GDPR_Other_01
    assert sorted(concepts_listing(d)) == [("brand new", 1), ("keep me", 1), ("shared", 1)]
    err(d.get("/v1/ltm/concepts/drop%20me/rules"), 404, "not_found")
    assert [x["rule_id"] for x in concept_rules(d, "shared")["rules"]] == ["GDPR_Other_01"]
    assert [x["rule_id"] for x in concept_rules(d, "keep me")["rules"]] == ["GDPR_Edges_01"]
    # the structured concept filter agrees
    assert ok(d.get(f"{RULES}?concepts=drop%20me"))["rules"] == []
    if d.ltm_backend == "neo4j":
        names = [row[0] for row in d.neo4j.cypher(
            "MATCH (r:Rule {rule_id:$id})-[:RELATES_TO]->(c) RETURN c.name", id="GDPR_Edges_01")]
        assert sorted(n.lower() for n in names) == ["brand new", "keep me"]
        assert d.neo4j.value("MATCH (r:Rule {rule_id:$id})-[e:RELATES_TO]->() RETURN count(e)",
                             id="GDPR_Edges_01") == 2
        assert graph_count(d, "Concept", name="drop me") == 0
        assert graph_count(d, "Concept", name="shared") == 1
        assert d.neo4j.value("MATCH (c:Concept) WHERE NOT (c)<-[:RELATES_TO]-() "
                             "RETURN count(c)") == 0
        assert d.neo4j.value("MATCH (v:RuleVersion {rule_id:$id}) RETURN count(v)",
                             id="GDPR_Edges_01") == 1
    # dropping a concept that another rule keeps does not remove it
    ok(d.patch(f"{RULES}/GDPR_Other_01", {"related_concepts": ["brand new"]}))
    assert sorted(concepts_listing(d)) == [("brand new", 2), ("keep me", 1)]
    if d.ltm_backend == "neo4j":
        assert graph_count(d, "Concept", name="shared") == 0


# --------------------------------------------------------------------------- DELETE

def test_delete_removes_orphans_and_keeps_scenarios(ltm_daemon):
    d = ltm_daemon
    s1, s2 = sid(1, "one"), sid(2, "two")
    create_rule(d, rule_body([s1, s2], rule_id="HIPAA_Solo_01", concepts=["only here", "both"]))
    create_rule(d, rule_body([s2], rule_id="GDPR_Keep_01", concepts=["BOTH"]))
    create_rule(d, rule_body([s2], rule_id="GDPR_Gone_01", concepts=["gone too"]))
    ok(d.patch(f"{RULES}/HIPAA_Solo_01", {"rule_text": "a second version"}))
    stats = ok(d.get("/v1/stats"))["ltm_stats"]
    assert stats["rules_by_policy"] == {"GDPR": 2, "HIPAA": 1}
    assert stats["total_rules"] == 3 and stats["total_concepts"] == 3

    r = d.delete(f"{RULES}/HIPAA_Solo_01")
    assert r.status == 204 and r.body == "", r
    for path in ("", "/history", "/audit"):
        err(d.get(f"{RULES}/HIPAA_Solo_01{path}"), 404, "not_found")
    err(d.delete(f"{RULES}/HIPAA_Solo_01"), 404, "not_found")
    err(d.patch(f"{RULES}/HIPAA_Solo_01", {"rule_text": "x"}), 404, "not_found")
    assert sorted(concepts_listing(d)) == [("both", 1), ("gone too", 1)]
    err(d.get("/v1/ltm/concepts/only%20here/rules"), 404, "not_found")
    stats = ok(d.get("/v1/stats"))["ltm_stats"]
    assert stats["rules_by_policy"] == {"GDPR": 2}
    assert stats["total_rules"] == 2 and stats["total_concepts"] == 2
    # the scenarios are still known to LTM (evidence stays)
    for s in (s1, s2):
        tr = ok(d.get(f"/v1/trace/{s}"))
        assert tr["stm_entry"] is None
        assert "HIPAA_Solo_01" not in [x["rule_id"] for x in tr["derived_ltm_rules"]]
    assert ok(d.get(f"/v1/trace/{s1}"))["derived_ltm_rules"] == []
    if d.ltm_backend == "neo4j":
        n = d.neo4j
        assert n.value("MATCH (r:Rule {rule_id:'HIPAA_Solo_01'}) RETURN count(r)") == 0
        assert n.value("MATCH (p:Policy {name:'HIPAA'}) RETURN count(p)") == 0
        assert n.value("MATCH (p:Policy {name:'GDPR'}) RETURN count(p)") == 1
        assert graph_count(d, "Concept", name="only here") == 0
        assert graph_count(d, "Concept", name="both") == 1
        assert n.value("MATCH (v:RuleVersion {rule_id:'HIPAA_Solo_01'}) RETURN count(v)") == 0
        assert sorted(row[0] for row in n.cypher("MATCH (s:Scenario) RETURN s.scenario_id")) == \
            sorted([s1, s2])

    assert d.delete(f"{RULES}/GDPR_Gone_01").status == 204
    assert d.delete(f"{RULES}/GDPR_Keep_01").status == 204
    assert concepts_listing(d) == []
    stats = ok(d.get("/v1/stats"))["ltm_stats"]
    assert stats["total_rules"] == 0 and stats["rules_by_policy"] == {}
    assert stats["total_concepts"] == 0
    if d.ltm_backend == "neo4j":
        assert d.neo4j.value("MATCH (p:Policy) RETURN count(p)") == 0
        assert d.neo4j.value("MATCH (c:Concept) RETURN count(c)") == 0
        assert d.neo4j.value("MATCH (s:Scenario) RETURN count(s)") == 2
    for s in (s1, s2):  # Scenario nodes stay: LTM still knows them
        tr = ok(d.get(f"/v1/trace/{s}"))
        assert tr["derived_ltm_rules"] == []
        assert tr["traceability_summary"]["derived_rules_count"] == 0


def test_concurrent_generated_ids_are_distinct(ltm_daemon):
    """Parallel creates of one prefix (each on its own connection) never share an id
    and fill the numbers from 01 without a gap."""
    import http.client
    import json
    import threading

    d = ltm_daemon
    n = 12
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
        body = json.dumps(rule_body([sid(i + 1)], policy="gdpr", key_concept="race",
                                    text=f"rule number {i}")).encode()
        barrier.wait()
        conn.request("POST", RULES, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        results[i] = (r.status, json.loads(r.read()))
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert all(r is not None and r[0] == 201 for r in results), results
    got = sorted(r[1]["data"]["ltm_rule"]["rule_id"] for r in results)
    assert got == ["GDPR_Race_%02d" % i for i in range(1, n + 1)]
    texts = {r[1]["data"]["ltm_rule"]["rule_id"]: r[1]["data"]["ltm_rule"]["rule_text"]
             for r in results}
    for rid, text in texts.items():
        assert get_rule(d, rid)["ltm_rule"]["rule_text"] == text


def test_concept_names_with_reserved_characters_in_the_path(ltm_daemon):
    """A concept name may hold '/', '?', '#', '%', '+' or non-ASCII letters: percent-
    encoded in the path it names exactly that concept."""
    d = ltm_daemon
    names = ["TCP/IP security", "why?", "C# code", "100% consent", "a+b", "Löschkonzept",
             "право"]
    create_rule(d, rule_body([sid()], rule_id="GDPR_Reserved_01", concepts=names))
    for name in names:
        for spelling in (name, name.upper()):
            got = ok(d.get("/v1/ltm/concepts/" + quote(spelling, safe="") + "/rules"))
            assert got["concept"] == name, spelling
            assert [r["rule_id"] for r in got["rules"]] == ["GDPR_Reserved_01"]
    err(d.get("/v1/ltm/concepts/TCP/rules"), 404, "not_found")
    r = d.get("/v1/ltm/concepts/TCP/IP%20security/rules")  # a raw '/' is a path separator
    assert r.status == 404, r


def test_concurrent_patches_of_one_rule_lose_no_version(ltm_daemon):
    """Parallel PATCHes of one rule: each one a version of its own, none lost."""
    import http.client
    import json
    import threading

    d = ltm_daemon
    create_rule(d, rule_body([sid()], rule_id="GDPR_Busy_01", text="text 0"))
    n = 10
    barrier = threading.Barrier(n)
    statuses = [None] * n

    def worker(i):
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
        body = json.dumps({"rule_text": f"text {i + 1}"}).encode()
        barrier.wait()
        conn.request("PATCH", f"{RULES}/GDPR_Busy_01", body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        statuses[i] = (r.status, json.loads(r.read()))
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert all(s is not None and s[0] == 200 for s in statuses), statuses
    assert sorted(s[1]["data"]["ltm_rule"]["version"] for s in statuses) == \
        list(range(2, n + 2))
    hist = ok(d.get(f"{RULES}/GDPR_Busy_01/history"))["versions"]
    assert [v["version"] for v in hist] == list(range(1, n + 2))
    assert sorted(v["rule_text"] for v in hist) == sorted(f"text {i}" for i in range(n + 1))
    final = get_rule(d, "GDPR_Busy_01")["ltm_rule"]
    assert final["version"] == n + 1 and final["rule_text"] == hist[-1]["rule_text"]
