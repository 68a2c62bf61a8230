"""
LTM request contract (spec §4, §2, §6) on both LTM backends: bodies, status
codes, envelopes, `Location`, `field` on every 400, 404/409, malformed ids in
paths, query parameters, methods and media types — for POST/GET/PATCH/DELETE
/v1/ltm/rules, history, audit, concepts, trace and POST …/promote.

One daemon per LTM backend serves the whole module (`shared_ltm_daemon`): every
test works on its own ids and policy names, and every refused request is
checked to have stored nothing.
"""
import json
from urllib.parse import quote

import pytest

from conftest import (LTM_BACKENDS, MISSING, RULES, check_rule, create, create_rule, err,
                      get_rule, give_feedback, now_ms, ok, parse_ts, raw_request, rule_body,
                      search_rules, unique_domain, unique_policy)

STM = "/v1/stm/entries"


def fresh_rule_id(concept="Case"):
    return f"{unique_policy()}_{concept}_01"


def fresh_sid():
    return unique_domain() + "_r1_case"


def assert_absent(d, rule_id):
    err(d.get(f"{RULES}/{rule_id}"), 404, "not_found")


# --------------------------------------------------------------------------- create: success

def test_create_with_explicit_id_returns_201_location_and_the_rule(shared_ltm_daemon):
    d = shared_ltm_daemon
    rid, sid = fresh_rule_id("Retention_EventBased"), fresh_sid()
    body = {"rule_id": rid, "rule_text": "Retention is event based.",
            "related_concepts": ["  data retention ", "Storage Limitation"],
            "source_scenario_ids": [sid], "confidence_score": 0.75}
    t0 = now_ms()
    r = d.post(RULES, body)
    data = ok(r, 201)
    assert r.header("Location") == f"{RULES}/{rid}"
    assert set(data) == {"ltm_rule"}
    rule = check_rule(data["ltm_rule"])
    assert rule["rule_id"] == rid
    assert rule["policy"] == rid.split("_")[0]
    assert rule["rule_text"] == "Retention is event based."
    assert rule["related_concepts"] == ["data retention", "Storage Limitation"]  # trimmed, order
    assert rule["source_scenario_ids"] == [sid]
    assert rule["confidence_score"] == 0.75
    assert rule["version"] == 1
    assert rule["created_at"] == rule["updated_at"]
    assert t0 - 5 <= parse_ts(rule["created_at"]) <= now_ms() + 5
    got = get_rule(d, rid)
    assert got["ltm_rule"] == rule


def test_create_defaults_confidence_to_one_half(shared_ltm_daemon):
    d = shared_ltm_daemon
    body = rule_body([fresh_sid()])
    assert "confidence_score" not in body
    assert create_rule(d, body)["confidence_score"] == 0.5


@pytest.mark.parametrize("value", [0, 0.0, 1, 1.0, 0.123456789])
def test_confidence_boundaries_accepted(shared_ltm_daemon, value):
    d = shared_ltm_daemon
    rule = create_rule(d, rule_body([fresh_sid()], confidence_score=value))
    assert rule["confidence_score"] == pytest.approx(value, abs=1e-12)


def test_limits_exactly_at_the_boundaries_are_accepted(shared_ltm_daemon):
    d = shared_ltm_daemon
    pol = "A" + unique_policy()[1:6] + "BCDEFGHIJK"  # 16 characters
    assert len(pol) == 16
    rid = pol + "_X_9999"
    text = "é" * 10_000  # 10 000 code points, 20 000 bytes
    concepts = ["c%02d" % i for i in range(19)] + [" " + "ü" * 100 + " "]
    rule = create_rule(d, {"rule_id": rid, "rule_text": text, "related_concepts": concepts,
                           "source_scenario_ids": [fresh_sid()]})
    assert rule["rule_id"] == rid and rule["policy"] == pol
    assert rule["rule_text"] == text
    assert rule["related_concepts"] == concepts[:19] + ["ü" * 100]
    long_id = unique_policy() + "_" + "L" * 113 + "_01"
    assert len(long_id) == 128
    assert create_rule(d, rule_body([fresh_sid()], rule_id=long_id))["rule_id"] == long_id
    long_sid = "a_r1_" + "b" * 123
    assert len(long_sid) == 128
    rule = create_rule(d, rule_body([long_sid]))
    assert rule["source_scenario_ids"] == [long_sid]


def test_unicode_concepts_and_text_round_trip(shared_ltm_daemon):
    d = shared_ltm_daemon
    concepts = ["Datenübertragbarkeit", "Право на забвение", "δεδομένα", "个人数据", "🔒 lock"]
    text = "Löschung nach Ablauf — «право» 个人数据 🔒"
    rule = create_rule(d, rule_body([fresh_sid()], concepts=concepts, text=text))
    assert rule["related_concepts"] == concepts
    assert rule["rule_text"] == text
    assert get_rule(d, rule["rule_id"])["ltm_rule"] == rule


def test_policy_without_key_concept_uses_the_first_concept(shared_ltm_daemon):
    """Decision (spec silent): key_concept is optional; the first concept names the rule."""
    d = shared_ltm_daemon
    pol = unique_policy()
    rule = create_rule(d, {"policy": pol.lower(), "rule_text": "x",
                           "related_concepts": ["data minimisation", "purpose"],
                           "source_scenario_ids": [fresh_sid()]})
    assert rule["rule_id"] == f"{pol}_DataMinimisation_01"


def test_duplicate_explicit_id_is_409_and_never_overwrites(shared_ltm_daemon):
    d = shared_ltm_daemon
    rid = fresh_rule_id()
    first = create_rule(d, rule_body([fresh_sid()], rule_id=rid, text="the original"))
    r = d.post(RULES, rule_body([fresh_sid()], rule_id=rid, text="an impostor",
                                concepts=["other"]))
    err(r, 409, "conflict", "rule_id")
    assert get_rule(d, rid)["ltm_rule"] == first


# --------------------------------------------------------------------------- create: 400s

def _base(rid, sid):
    return {"rule_id": rid, "rule_text": "A valid rule text.",
            "related_concepts": ["alpha", "beta"], "source_scenario_ids": [sid]}


def _set(**kv):
    def f(b):
        b.update(kv)
    return f


def _drop(*keys):
    def f(b):
        for k in keys:
            b.pop(k, None)
    return f


def _generated(policy=None, key_concept=None):
    def f(b):
        b.pop("rule_id")
        if policy is not None:
            b["policy"] = policy
        if key_concept is not None:
            b["key_concept"] = key_concept
    return f


CREATE_CASES = [
    # unknown fields (server-managed ones included)
    ("unknown field", _set(colour="blue"), "colour"),
    ("version is server-managed", _set(version=2), "version"),
    ("created_at is server-managed", _set(created_at="2026-01-01T00:00:00.000Z"), "created_at"),
    ("source_scenario_id singular", _set(source_scenario_id="ecommerce_r1_x"),
     "source_scenario_id"),
    # rule_text
    ("rule_text missing", _drop("rule_text"), "rule_text"),
    ("rule_text null", _set(rule_text=None), "rule_text"),
    ("rule_text number", _set(rule_text=5), "rule_text"),
    ("rule_text array", _set(rule_text=["x"]), "rule_text"),
    ("rule_text object", _set(rule_text={"x": 1}), "rule_text"),
    ("rule_text empty", _set(rule_text=""), "rule_text"),
    ("rule_text blank", _set(rule_text=" \t\r\n "), "rule_text"),
    ("rule_text 10001 chars", _set(rule_text="x" * 10_001), "rule_text"),
    ("rule_text 10001 code points", _set(rule_text="€" * 10_001), "rule_text"),
    # related_concepts
    ("concepts missing", _drop("related_concepts"), "related_concepts"),
    ("concepts null", _set(related_concepts=None), "related_concepts"),
    ("concepts string", _set(related_concepts="alpha"), "related_concepts"),
    ("concepts object", _set(related_concepts={"alpha": 1}), "related_concepts"),
    ("concepts empty", _set(related_concepts=[]), "related_concepts"),
    ("concept number", _set(related_concepts=[5]), "related_concepts[0]"),
    ("concept null", _set(related_concepts=["alpha", None]), "related_concepts[1]"),
    ("concept nested list", _set(related_concepts=["alpha", ["b"]]), "related_concepts[1]"),
    ("concept empty", _set(related_concepts=["alpha", ""]), "related_concepts[1]"),
    ("concept blank", _set(related_concepts=["alpha", "   "]), "related_concepts[1]"),
    ("concept 101 chars", _set(related_concepts=["x" * 101]), "related_concepts[0]"),
    ("concept 101 code points", _set(related_concepts=["ß" * 101]), "related_concepts[0]"),
    ("concept with BEL", _set(related_concepts=["a\u0007b"]), "related_concepts[0]"),
    ("concept with newline", _set(related_concepts=["alpha", "a\nb"]), "related_concepts[1]"),
    ("concept with tab", _set(related_concepts=["a\tb"]), "related_concepts[0]"),
    ("concept with DEL", _set(related_concepts=["a\u007fb"]), "related_concepts[0]"),
    ("concept with C1 NEL", _set(related_concepts=["a\u0085b"]), "related_concepts[0]"),
    ("concept with C1 CSI", _set(related_concepts=["a\u009bb"]), "related_concepts[0]"),
    ("concept duplicate", _set(related_concepts=["alpha", "alpha"]), "related_concepts[1]"),
    ("concept duplicate in case", _set(related_concepts=["Data Retention", "data retention"]),
     "related_concepts[1]"),
    ("concept duplicate after trim", _set(related_concepts=["data", " DATA "]),
     "related_concepts[1]"),
    ("concept duplicate Latin-1 case", _set(related_concepts=["x", "ÉTÉ", "été"]),
     "related_concepts[2]"),
    ("concept duplicate Cyrillic case", _set(related_concepts=["ПРАВО", "право"]),
     "related_concepts[1]"),
    ("concept duplicate Greek case", _set(related_concepts=["ΔΕΔΟΜΈΝΑ", "δεδομένα"]),
     "related_concepts[1]"),
    ("21 concepts", _set(related_concepts=["c%d" % i for i in range(21)]), "related_concepts"),
    # source_scenario_ids
    ("sources missing", _drop("source_scenario_ids"), "source_scenario_ids"),
    ("sources null", _set(source_scenario_ids=None), "source_scenario_ids"),
    ("sources string", _set(source_scenario_ids="ecommerce_r1_x"), "source_scenario_ids"),
    ("sources empty", _set(source_scenario_ids=[]), "source_scenario_ids"),
    ("source number", _set(source_scenario_ids=[7]), "source_scenario_ids[0]"),
    ("source upper case", _set(source_scenario_ids=["Ecommerce_r1_x"]), "source_scenario_ids[0]"),
    ("source without concept", _set(source_scenario_ids=["ecommerce_r1"]),
     "source_scenario_ids[0]"),
    ("source without r", _set(source_scenario_ids=["ecommerce_1_x"]), "source_scenario_ids[0]"),
    ("source 129 chars", _set(source_scenario_ids=["a_r1_" + "b" * 124]),
     "source_scenario_ids[0]"),
    ("source with space", _set(source_scenario_ids=["ecommerce_r1_a b"]),
     "source_scenario_ids[0]"),
    ("source duplicate", _set(source_scenario_ids=["ecommerce_r1_a", "ecommerce_r1_a"]),
     "source_scenario_ids[1]"),
    ("101 sources", _set(source_scenario_ids=["s_r1_c%d" % i for i in range(101)]),
     "source_scenario_ids"),
    # rule_id grammar
    ("rule_id lower-case policy", _set(rule_id="gdpr_Consent_01"), "rule_id"),
    ("rule_id without concept", _set(rule_id="GDPR_01"), "rule_id"),
    ("rule_id one digit", _set(rule_id="GDPR_Consent_1"), "rule_id"),
    ("rule_id five digits", _set(rule_id="GDPR_Consent_12345"), "rule_id"),
    ("rule_id no number", _set(rule_id="GDPR_Consent"), "rule_id"),
    ("rule_id hyphen", _set(rule_id="GDPR_Event-Based_01"), "rule_id"),
    ("rule_id space", _set(rule_id="GDPR_Event Based_01"), "rule_id"),
    ("rule_id digit first", _set(rule_id="1GDPR_Consent_01"), "rule_id"),
    ("rule_id 17-char policy", _set(rule_id="ABCDEFGHIJKLMNOPQ_Consent_01"), "rule_id"),
    ("rule_id 129 chars", _set(rule_id="GDPR_" + "C" * 121 + "_01"), "rule_id"),
    ("rule_id empty", _set(rule_id=""), "rule_id"),
    ("rule_id number", _set(rule_id=1), "rule_id"),
    ("rule_id null", _set(rule_id=None), "rule_id"),
    ("rule_id non-ASCII", _set(rule_id="GDPR_Cönsent_01"), "rule_id"),
    # rule_id / policy / key_concept combinations
    ("rule_id with policy", _set(policy="GDPR"), "rule_id"),
    ("rule_id with key_concept", _set(key_concept="consent"), "rule_id"),
    ("neither rule_id nor policy", _drop("rule_id"), "rule_id"),
    ("key_concept alone", _generated(key_concept="consent"), "rule_id"),
    ("policy digits only", _generated(policy="123", key_concept="x"), "policy"),
    ("policy punctuation only", _generated(policy="--", key_concept="x"), "policy"),
    ("policy 17 characters", _generated(policy="ABCDEFGHIJKLMNOPQ", key_concept="x"), "policy"),
    ("policy empty", _generated(policy="", key_concept="x"), "policy"),
    ("policy number", _generated(policy=5, key_concept="x"), "policy"),
    ("policy with control char", _generated(policy="GD\u0001PR", key_concept="x"), "policy"),
    ("key_concept punctuation only", _generated(policy="GDPR", key_concept="!!! ..."),
     "key_concept"),
    ("key_concept number", _generated(policy="GDPR", key_concept=5), "key_concept"),
    ("key_concept control char", _generated(policy="GDPR", key_concept="a\u0002b"),
     "key_concept"),
    ("key_concept blank", _generated(policy="GDPR", key_concept="   "), "key_concept"),
    # confidence_score
    ("confidence below 0", _set(confidence_score=-0.01), "confidence_score"),
    ("confidence above 1", _set(confidence_score=1.0001), "confidence_score"),
    ("confidence 2", _set(confidence_score=2), "confidence_score"),
    ("confidence string", _set(confidence_score="0.9"), "confidence_score"),
    ("confidence bool", _set(confidence_score=True), "confidence_score"),
    ("confidence null", _set(confidence_score=None), "confidence_score"),
    ("confidence array", _set(confidence_score=[0.5]), "confidence_score"),
    ("confidence object", _set(confidence_score={"v": 0.5}), "confidence_score"),
]


@pytest.mark.parametrize("mutate,field", [c[1:] for c in CREATE_CASES],
                         ids=[c[0] for c in CREATE_CASES])
def test_create_rejects_with_field(shared_ltm_daemon, mutate, field):
    d = shared_ltm_daemon
    rid, sid = fresh_rule_id(), fresh_sid()
    body = _base(rid, sid)
    mutate(body)
    err(d.post(RULES, body), 400, "validation_error", field)
    assert_absent(d, rid)
    assert search_rules(d, limit=100, policy=rid.split("_")[0])[0] == []
    err(d.get(f"/v1/trace/{sid}"), 404, "not_found")  # no Scenario made either


def test_create_reports_the_first_unknown_field_in_document_order(shared_ltm_daemon):
    d = shared_ltm_daemon
    rid = fresh_rule_id()
    raw = ('{"rule_id":"%s","zeta":1,"rule_text":"x","alpha":2,"related_concepts":["a"],'
           '"source_scenario_ids":["%s"]}' % (rid, fresh_sid()))
    r = d.post(RULES, raw=raw.encode(), headers={"Content-Type": "application/json"})
    err(r, 400, "validation_error", "zeta")
    assert_absent(d, rid)


@pytest.mark.parametrize("raw", [b'{"rule_text": "x", "confidence_score": 1e999}',
                                 b'{"rule_text": "x", "confidence_score": NaN}',
                                 b'{"rule_text": "x", "confidence_score": Infinity}',
                                 b'{"rule_text": "x", "confidence_score": -0.5e1}',
                                 b'{"rule_text": "x", "confidence_score": 0x1}'])
def test_confidence_that_is_not_a_finite_json_number_is_400(shared_ltm_daemon, raw):
    d = shared_ltm_daemon
    r = d.post(RULES, raw=raw, headers={"Content-Type": "application/json"})
    err(r, 400, "validation_error")


def test_configured_concept_limit_is_enforced(daemon, request):
    """MEMORY_MAX_RELATED_CONCEPTS (here 3) bounds create, promote and PATCH."""
    for ltm in LTM_BACKENDS:
        if ltm == "neo4j":
            d = daemon(ltm="neo4j", neo4j=request.getfixturevalue("neo4j_graph"),
                       MEMORY_MAX_RELATED_CONCEPTS="3")
        else:
            d = daemon(MEMORY_MAX_RELATED_CONCEPTS="3")
        sid = create(d)["scenario_id"]
        give_feedback(d, sid)
        four = ["a", "b", "c", "d"]
        err(d.post(RULES, rule_body([sid], concepts=four)), 400, "validation_error",
            "related_concepts")
        err(d.post(f"{STM}/{sid}/promote", {"rule_text": "x", "related_concepts": four,
                                            "policy": "GDPR"}),
            400, "validation_error", "related_concepts")
        rule = create_rule(d, rule_body([sid], concepts=four[:3]))
        err(d.patch(f"{RULES}/{rule['rule_id']}", {"related_concepts": four}), 400,
            "validation_error", "related_concepts")
        assert get_rule(d, rule["rule_id"])["ltm_rule"] == rule
        d.stop()


# --------------------------------------------------------------------------- promote: 400s

PROMOTE_CASES = [
    ("source_scenario_ids is not a promote field", _set(source_scenario_ids=["a_r1_b"]),
     "source_scenario_ids"),
    ("unknown field", _set(extra=True), "extra"),
    ("rule_text missing", _drop("rule_text"), "rule_text"),
    ("rule_text blank", _set(rule_text="  "), "rule_text"),
    ("rule_text too long", _set(rule_text="y" * 10_001), "rule_text"),
    ("concepts missing", _drop("related_concepts"), "related_concepts"),
    ("concepts empty", _set(related_concepts=[]), "related_concepts"),
    ("concepts case duplicates", _set(related_concepts=["Consent", "CONSENT"]),
     "related_concepts[1]"),
    ("concept control char", _set(related_concepts=["a\u001fb"]), "related_concepts[0]"),
    ("concept too long", _set(related_concepts=["z" * 101]), "related_concepts[0]"),
    ("21 concepts", _set(related_concepts=["k%d" % i for i in range(21)]), "related_concepts"),
    ("neither rule_id nor policy", _drop("policy", "key_concept"), "rule_id"),
    ("rule_id and policy", _set(rule_id="GDPR_Consent_01"), "rule_id"),
    ("bad rule_id", lambda b: (b.pop("policy"), b.pop("key_concept"),
                               b.update(rule_id="GDPR_consent")), "rule_id"),
    ("bad policy", _set(policy="9"), "policy"),
    ("confidence above 1", _set(confidence_score=1.5), "confidence_score"),
    ("confidence negative", _set(confidence_score=-1), "confidence_score"),
    ("confidence string", _set(confidence_score="high"), "confidence_score"),
]


@pytest.mark.parametrize("mutate,field", [c[1:] for c in PROMOTE_CASES],
                         ids=[c[0] for c in PROMOTE_CASES])
def test_promote_rejects_with_field(shared_ltm_daemon, mutate, field):
    d = shared_ltm_daemon
    pol = unique_policy()
    sid = create(d)["scenario_id"]
    give_feedback(d, sid)
    body = {"rule_text": "Consent must be granular.", "related_concepts": ["consent"],
            "policy": pol, "key_concept": "granular consent"}
    mutate(body)
    err(d.post(f"{STM}/{sid}/promote", body), 400, "validation_error", field)
    assert search_rules(d, limit=100, policy=pol)[0] == []
    tr = ok(d.get(f"/v1/trace/{sid}"))
    assert tr["derived_ltm_rules"] == [] and tr["snapshot"] is None
    assert ok(d.get(f"{STM}/{sid}"))["traceability"]["related_ltm_rules"] == []


def test_promote_errors_404_409(shared_ltm_daemon):
    d = shared_ltm_daemon
    pol = unique_policy()
    body = {"rule_text": "x", "related_concepts": ["consent"], "policy": pol}
    # unknown (well-formed) entry -> 404
    err(d.post(f"{STM}/{fresh_sid()}/promote", body), 404, "not_found")
    # an entry without human feedback -> 409, nothing stored
    sid = create(d)["scenario_id"]
    err(d.post(f"{STM}/{sid}/promote", body), 409, "conflict")
    assert search_rules(d, limit=100, policy=pol)[0] == []
    # with feedback -> 201
    give_feedback(d, sid)
    first = check_rule(ok(d.post(f"{STM}/{sid}/promote", body), 201)["ltm_rule"])
    # the rule id exists -> 409, the rule unchanged
    r = d.post(f"{STM}/{sid}/promote", {"rule_text": "other", "related_concepts": ["b"],
                                        "rule_id": first["rule_id"]})
    err(r, 409, "conflict", "rule_id")
    assert get_rule(d, first["rule_id"])["ltm_rule"] == first


# --------------------------------------------------------------------------- ids in paths

BAD_RULE_IDS = ["bad", "gdpr_Consent_01", "GDPR_Consent_1", "GDPR_01", "GDPR_Consent_12345",
                "GDPR_Con%20sent_01", "GDPR_C%C3%B6nsent_01", "GDPR_" + "C" * 121 + "_01",
                "GDPR_Consent_01%00", "%2E%2E", "GDPR_Consent_01%0A"]
BAD_SCENARIO_IDS = ["bad", "Ecommerce_r1_x", "ecommerce_r1", "ecommerce_rx_y", "ecommerce_r1_",
                    "a_r1_" + "b" * 124, "ecommerce_r1_%C3%A9", "ecommerce_r1_x%20",
                    "1ecommerce_r1_x", "ecommerce_r1234567_x"]


@pytest.mark.parametrize("bad", BAD_RULE_IDS)
def test_malformed_rule_id_in_path_is_400_never_404(shared_ltm_daemon, bad):
    d = shared_ltm_daemon
    err(d.get(f"{RULES}/{bad}"), 400, "validation_error", "rule_id")
    err(d.get(f"{RULES}/{bad}/history"), 400, "validation_error", "rule_id")
    err(d.get(f"{RULES}/{bad}/audit"), 400, "validation_error", "rule_id")
    err(d.delete(f"{RULES}/{bad}"), 400, "validation_error", "rule_id")
    err(d.patch(f"{RULES}/{bad}", {"confidence_score": 0.1}), 400, "validation_error", "rule_id")


@pytest.mark.parametrize("bad", BAD_SCENARIO_IDS)
def test_malformed_scenario_id_in_path_is_400_never_404(shared_ltm_daemon, bad):
    d = shared_ltm_daemon
    err(d.get(f"/v1/trace/{bad}"), 400, "validation_error", "scenario_id")
    err(d.post(f"{STM}/{bad}/promote", {"rule_text": "x", "related_concepts": ["a"],
                                        "policy": "GDPR"}),
        400, "validation_error", "scenario_id")


@pytest.mark.parametrize("bad", ["%20%20", "x" * 101, "a%07b", "a%0Ab", "a%C2%85b", "%FF%FE",
                                 "%C3"])
def test_malformed_concept_name_in_path_is_400(shared_ltm_daemon, bad):
    err(shared_ltm_daemon.get(f"/v1/ltm/concepts/{bad}/rules"), 400, "validation_error", "name")


def test_unknown_ids_are_404(shared_ltm_daemon):
    d = shared_ltm_daemon
    rid = fresh_rule_id()
    for r in (d.get(f"{RULES}/{rid}"), d.get(f"{RULES}/{rid}/history"),
              d.get(f"{RULES}/{rid}/audit"), d.delete(f"{RULES}/{rid}"),
              d.patch(f"{RULES}/{rid}", {"confidence_score": 0.3}),
              d.get(f"/v1/ltm/concepts/{quote('no such concept ' + rid)}/rules"),
              d.get(f"/v1/trace/{fresh_sid()}")):
        err(r, 404, "not_found", None)
    assert_absent(d, rid)


# --------------------------------------------------------------------------- PATCH: 400s

PATCH_CASES = [
    ("rule_id is not patchable", {"rule_id": "GDPR_Other_01"}, "rule_id"),
    ("version is not patchable", {"version": 9}, "version"),
    ("policy is not patchable", {"policy": "CCPA"}, "policy"),
    ("source_scenario_ids is not patchable", {"source_scenario_ids": ["a_r1_b"]},
     "source_scenario_ids"),
    ("unknown field", {"confidence_score": 0.2, "confidence": 0.2}, "confidence"),
    ("rule_text blank", {"rule_text": " "}, "rule_text"),
    ("rule_text null", {"rule_text": None}, "rule_text"),
    ("rule_text too long", {"rule_text": "q" * 10_001}, "rule_text"),
    ("confidence above 1", {"confidence_score": 1.01}, "confidence_score"),
    ("confidence below 0", {"confidence_score": -0.0001}, "confidence_score"),
    ("confidence string", {"confidence_score": "1"}, "confidence_score"),
    ("confidence null", {"confidence_score": None}, "confidence_score"),
    ("concepts empty", {"related_concepts": []}, "related_concepts"),
    ("concepts null", {"related_concepts": None}, "related_concepts"),
    ("concepts case duplicates", {"related_concepts": ["Gamma", "gAMMA"]}, "related_concepts[1]"),
    ("concept control char", {"related_concepts": ["ok", "bad\u0001"]}, "related_concepts[1]"),
    ("21 concepts", {"related_concepts": ["n%d" % i for i in range(21)]}, "related_concepts"),
    ("add sources not a list", {"add_source_scenario_ids": "a_r1_b"}, "add_source_scenario_ids"),
    ("add source malformed", {"add_source_scenario_ids": ["a_r1_b", "A_r1_b"]},
     "add_source_scenario_ids[1]"),
    ("add source duplicate", {"add_source_scenario_ids": ["a_r1_b", "a_r1_b"]},
     "add_source_scenario_ids[1]"),
    ("add source number", {"add_source_scenario_ids": [1]}, "add_source_scenario_ids[0]"),
    ("add 101 sources", {"add_source_scenario_ids": ["s_r1_c%d" % i for i in range(101)]},
     "add_source_scenario_ids"),
    ("concepts nested 40 deep", {"related_concepts": json.loads("[" * 40 + '"x"' + "]" * 40)},
     None),
]


@pytest.mark.parametrize("body,field", [c[1:] for c in PATCH_CASES],
                         ids=[c[0] for c in PATCH_CASES])
def test_patch_rejects_with_field_and_changes_nothing(shared_ltm_daemon, body, field):
    d = shared_ltm_daemon
    rule = create_rule(d, rule_body([fresh_sid()], concepts=["alpha", "beta"]))
    err(d.patch(f"{RULES}/{rule['rule_id']}", body), 400, "validation_error", field)
    assert get_rule(d, rule["rule_id"])["ltm_rule"] == rule
    hist = ok(d.get(f"{RULES}/{rule['rule_id']}/history"))
    assert len(hist["versions"]) == 1


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"null", b"{", b'{"rule_text": "a",}', b""])
def test_patch_body_must_be_a_json_object(shared_ltm_daemon, raw):
    d = shared_ltm_daemon
    rule = create_rule(d)
    r = d.patch(f"{RULES}/{rule['rule_id']}", raw=raw,
                headers={"Content-Type": "application/json"})
    err(r, 400, "validation_error")
    assert get_rule(d, rule["rule_id"])["ltm_rule"] == rule


# --------------------------------------------------------------------------- query, media, methods

@pytest.mark.parametrize("path", ["{rules}/{rid}?x=1", "{rules}/{rid}/history?verbose=true",
                                  "{rules}/{rid}/audit?a=b", "/v1/integrity?full=1",
                                  "/v1/trace/{sid}?x=", "/v1/ltm/concepts?sort=name",
                                  "/v1/ltm/concepts/consent/rules?limit=5",
                                  "{rules}?order=asc", "/v1/stats?x=1"])
def test_unknown_query_parameters_are_400(shared_ltm_daemon, path):
    d = shared_ltm_daemon
    rule = create_rule(d)
    path = path.format(rules=RULES, rid=rule["rule_id"], sid=rule["source_scenario_ids"][0])
    name = path.split("?")[1].split("=")[0]
    err(d.get(path), 400, "validation_error", name)


def test_ltm_writes_need_a_json_content_type(shared_ltm_daemon):
    d = shared_ltm_daemon
    rule = create_rule(d)
    body = json.dumps(rule_body([fresh_sid()])).encode()
    for ctype in (None, "text/plain", "application/x-www-form-urlencoded"):
        hdrs = {"Content-Type": ctype} if ctype else {}
        err(d.post(RULES, raw=body, headers=hdrs), 415, "unsupported_media_type")
        err(d.patch(f"{RULES}/{rule['rule_id']}", raw=b'{"confidence_score": 0.9}',
                    headers=hdrs), 415, "unsupported_media_type")
    ok(d.post(RULES, raw=body, headers={"Content-Type": "application/json; charset=utf-8"}), 201)
    assert get_rule(d, rule["rule_id"])["ltm_rule"] == rule


def test_wrong_methods_are_405_with_allow(shared_ltm_daemon):
    d = shared_ltm_daemon
    rid, sid = fresh_rule_id(), fresh_sid()
    cases = [("PUT", RULES, {"GET", "POST"}), ("DELETE", RULES, {"GET", "POST"}),
             ("PUT", f"{RULES}/{rid}", {"GET", "PATCH", "DELETE"}),
             ("POST", f"{RULES}/{rid}", {"GET", "PATCH", "DELETE"}),
             ("POST", f"{RULES}/{rid}/history", {"GET"}),
             ("DELETE", f"{RULES}/{rid}/audit", {"GET"}),
             ("POST", "/v1/ltm/concepts", {"GET"}),
             ("PATCH", "/v1/ltm/concepts/consent/rules", {"GET"}),
             ("GET", f"{STM}/{sid}/promote", {"POST"}),
             ("POST", f"/v1/trace/{sid}", {"GET"}),
             ("DELETE", "/v1/integrity", {"GET"})]
    for method, path, allowed in cases:
        r = d.request(method, path, body={} if method in ("POST", "PUT", "PATCH") else None)
        err(r, 405, "method_not_allowed", MISSING)
        got = {m.strip() for m in (r.header("Allow") or "").split(",")}
        assert allowed <= got <= allowed | {"HEAD", "OPTIONS"}, (method, path, got)


def test_unknown_ltm_routes_are_404(shared_ltm_daemon):
    d = shared_ltm_daemon
    for path in ("/v1/ltm", "/v1/ltm/", "/v1/ltm/rule", f"{RULES}/{fresh_rule_id()}/versions",
                 "/v1/ltm/concepts/consent", "/v1/trace", "/v1/integrity/x"):
        err(d.get(path), 404, "not_found")


def test_raw_hostile_paths_get_the_json_envelope(shared_ltm_daemon):
    d = shared_ltm_daemon
    for target in (f"{RULES}/GDPR_X_01/../../../etc/passwd", f"{RULES}/%00",
                   f"{RULES}/GDPR_%ZZ_01", "/v1/trace/%", "/v1/ltm/concepts/%E0%A4/rules"):
        r = raw_request(d.port, "GET", target)
        assert r.status in (400, 404), (target, r)
        assert r.json and r.json["status"] == "error", (target, r)
