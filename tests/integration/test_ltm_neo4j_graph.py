"""
The Neo4j graph is the documented one (spec §4), so that other tools reading
it keep working: schema objects by name (made idempotently at start-up),
labels, properties and relationship types of Rule, Concept, Policy, Scenario
(with its evidence snapshot) and RuleVersion — checked with Cypher over HTTP.
"""
import hashlib

from conftest import (RULES, create, entry_body, get_raw, give_feedback, ok, parse_ts,
                      promote, rule_body, unique_domain)

STM = "/v1/stm/entries"


def test_schema_objects_exist_and_start_up_is_idempotent(daemon, neo4j_graph):
    n = neo4j_graph
    d = daemon(ltm="neo4j", neo4j=n)
    constraints = {row[0]: row[1:] for row in n.cypher(
        "SHOW CONSTRAINTS YIELD name, type, labelsOrTypes, properties "
        "RETURN name, type, labelsOrTypes, properties")}
    for name, label, prop in (("rule_id_unique", "Rule", "rule_id"),
                              ("concept_name_unique", "Concept", "name"),
                              ("scenario_id_unique", "Scenario", "scenario_id"),
                              ("policy_name_unique", "Policy", "name")):
        assert name in constraints, sorted(constraints)
        kind, labels, props = constraints[name]
        assert kind == "UNIQUENESS" and labels == [label] and props == [prop], (name,
                                                                               constraints[name])
    indexes = {row[0]: row[1:] for row in n.cypher(
        "SHOW INDEXES YIELD name, type, labelsOrTypes, properties, state "
        "RETURN name, type, labelsOrTypes, properties, state")}
    for name in ("rule_confidence_index", "rule_created_index", "rule_updated_index"):
        assert name in indexes, sorted(indexes)
        assert indexes[name][0] == "RANGE" and indexes[name][1] == ["Rule"], indexes[name]
    assert indexes["rule_confidence_index"][2] == ["confidence_score"]
    assert indexes["ruleTextSearch"][:3] == ["FULLTEXT", ["Rule"], ["rule_text"]]
    assert indexes["conceptSearch"][:3] == ["FULLTEXT", ["Concept"], ["name"]]
    assert all(v[3] == "ONLINE" for v in indexes.values()), indexes
    before = sorted(indexes)
    # a second daemon on the same database, and a restart: nothing new, nothing broken
    d2 = daemon(ltm="neo4j", neo4j=n)
    d.restart()
    after = sorted(row[0] for row in n.cypher("SHOW INDEXES YIELD name RETURN name"))
    assert after == before
    for x in (d, d2):
        ok(x.get("/ready"))
        ok(x.get(RULES))


def test_graph_layout_is_the_documented_one(daemon, neo4j_graph):
    n = neo4j_graph
    d = daemon(ltm="neo4j", neo4j=n, MEMORY_STM_MIN_TTL_SECONDS="1")
    sid = create(d, entry_body(f"{unique_domain()}_r2_data_retention"))["scenario_id"]
    give_feedback(d, sid, final_status="Non-Compliant")
    raw = get_raw(d, sid)[1]
    rule = promote(d, sid, {"rule_text": "Retention is event based.",
                            "related_concepts": ["Data Retention", "storage limitation"],
                            "policy": "GDPR", "key_concept": "retention event based",
                            "confidence_score": 0.9})
    rid = rule["rule_id"]
    assert rid == "GDPR_RetentionEventBased_01"

    props = n.value("MATCH (r:Rule {rule_id:$id}) RETURN properties(r)", id=rid)
    for k in ("rule_id", "rule_text", "confidence_score", "version", "created_at",
              "updated_at"):
        assert props[k] == rule[k], (k, props)
    assert n.value("MATCH (p:Policy)-[:GOVERNS]->(:Rule {rule_id:$id}) RETURN p.name",
                   id=rid) == "GDPR"
    assert sorted(row[0] for row in n.cypher(
        "MATCH (:Rule {rule_id:$id})-[:RELATES_TO]->(c:Concept) RETURN c.name", id=rid)) == \
        ["Data Retention", "storage limitation"]
    scen = n.value("MATCH (:Rule {rule_id:$id})-[:DERIVED_FROM]->(s:Scenario) "
                   "RETURN properties(s)", id=rid)
    assert scen["scenario_id"] == sid
    # the evidence copied onto the Scenario node, and its SHA-256
    assert scen["snapshot_json"] == raw
    assert scen["snapshot_sha256"] == hashlib.sha256(raw.encode()).hexdigest()

    ok(d.patch(f"{RULES}/{rid}", {"rule_text": "Retention is event based (3 years).",
                                  "confidence_score": 0.95}))
    rows = n.cypher("MATCH (:Rule {rule_id:$id})-[:HAS_VERSION]->(v:RuleVersion) "
                    "RETURN properties(v)", id=rid)
    assert len(rows) == 1
    v = rows[0][0]
    assert {"rule_id", "version", "rule_text", "confidence_score", "related_concepts",
            "source_scenario_ids", "recorded_at"} <= set(v), v
    assert (v["rule_id"], v["version"], v["rule_text"], v["confidence_score"]) == \
        (rid, 1, "Retention is event based.", 0.9)
    assert v["related_concepts"] == ["Data Retention", "storage limitation"]
    assert v["source_scenario_ids"] == [sid]
    assert v["recorded_at"] == rule["updated_at"]
    now = n.value("MATCH (r:Rule {rule_id:$id}) RETURN properties(r)", id=rid)
    assert now["version"] == 2 and now["created_at"] == rule["created_at"]
    assert parse_ts(now["updated_at"]) >= parse_ts(rule["updated_at"])
    # no other labels or relationship types than the documented ones
    labels = {row[0] for row in n.cypher("MATCH (x) UNWIND labels(x) AS l RETURN DISTINCT l")}
    assert labels == {"Rule", "Concept", "Policy", "Scenario", "RuleVersion"}, labels
    types = {row[0] for row in n.cypher("MATCH ()-[e]->() RETURN DISTINCT type(e)")}
    assert types == {"GOVERNS", "RELATES_TO", "DERIVED_FROM", "HAS_VERSION"}, types
    # a rule created directly also gets its Policy, Concepts and Scenario
    ghost = f"{unique_domain()}_r1_ghost"
    ok(d.post(RULES, rule_body([ghost], rule_id="CCPA_Notice_01", concepts=["notice"])), 201)
    assert n.value("MATCH (p:Policy {name:'CCPA'})-[:GOVERNS]->(r:Rule) RETURN r.rule_id") == \
        "CCPA_Notice_01"
    assert n.value("MATCH (s:Scenario {scenario_id:$s}) RETURN s.snapshot_sha256",
                   s=ghost) is None
