"""
STM contract: every row and every error of spec §3 (promote excepted), the
vocabulary of §2 and the fine points of §6, plus the server decisions where
the spec is silent (see README.md). Every test runs on both STM backends.
"""
import json
import time
from urllib.parse import quote, urlencode

import pytest

from conftest import (STATUSES, STM_BACKENDS, check_entry, create, entry_body, err, get_raw,
                      ids, list_all, now_ms, ok, parse_ts, stats, unique_domain)

BASE = "/v1/stm/entries"
DAY = 86400


def stored_count(d):
    return stats(d)["total_entries"]


# =========================================================================== POST create

def test_create_with_given_id(stm_daemon):
    d = stm_daemon
    sid = unique_domain() + "_r1_data_retention"
    body = entry_body(sid, requirement_text="Data is kept forever.",
                      initial_assessment={"status": "Non-Compliant",
                                          "rationale": "Storage limitation, Art. 5(1)(e).",
                                          "recommendation": "Define a retention period."})
    t0 = now_ms()
    r = d.post(BASE, body)
    t1 = now_ms()
    data = ok(r, 201)
    assert set(data) == {"stm_entry"}
    e = check_entry(data["stm_entry"], ttl=DAY)  # default MEMORY_STM_TTL_HOURS = 24
    assert r.header("Location") == f"/v1/stm/entries/{sid}"
    assert e["scenario_id"] == sid
    assert e["requirement_text"] == "Data is kept forever."
    assert e["initial_assessment"] == body["initial_assessment"]
    assert e["human_feedback"] is None and e["final_status"] is None
    assert e["created_at"] == e["updated_at"]
    assert t0 - 5 <= parse_ts(e["created_at"]) <= t1 + 5
    # The Location resolves to the same entry.
    got = ok(d.get(r.header("Location")))
    assert got["stm_entry"] == e


def test_create_conflict_never_overwrites(stm_daemon):
    d = stm_daemon
    e = create(d)
    sid = e["scenario_id"]
    _, before = get_raw(d, sid)
    r = d.post(BASE, entry_body(sid, requirement_text="Something else entirely."))
    err(r, 409, "conflict")
    assert get_raw(d, sid) == (200, before)
    assert stored_count(d) == 1


@pytest.mark.parametrize("alias,canonical", [
    ("Compliant", "Compliant"), ("compliant", "Compliant"), ("COMPLIANT", "Compliant"),
    ("Non-Compliant", "Non-Compliant"), ("non-compliant", "Non-Compliant"),
    ("NonCompliant", "Non-Compliant"), ("Non Compliant", "Non-Compliant"),
    ("noncompliant", "Non-Compliant"),
    ("Partially Compliant", "Partially Compliant"), ("partially compliant", "Partially Compliant"),
    ("Partial", "Partially Compliant"), ("partial", "Partially Compliant"),
    ("PartiallyCompliant", "Partially Compliant"),
    ("Pending", "Pending"), ("PENDING", "Pending"),
])
def test_create_status_aliases_stored_canonical(shared_stm_daemon, alias, canonical):
    d = shared_stm_daemon
    body = entry_body()
    body["initial_assessment"]["status"] = alias
    e = create(d, body)
    assert e["initial_assessment"]["status"] == canonical
    assert ok(d.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"]["initial_assessment"][
        "status"] == canonical


@pytest.mark.parametrize("bad", ["Compliantt", "Partly", " Compliant", "Compliant ", "",
                                 "Non_Compliant", "yes"])
def test_create_bad_status(shared_stm_daemon, bad):
    d = shared_stm_daemon
    n = stored_count(d)
    body = entry_body()
    body["initial_assessment"]["status"] = bad
    err(d.post(BASE, body), 400, "validation_error", "initial_assessment.status")
    assert stored_count(d) == n


def test_generated_ids(stm_daemon):
    d = stm_daemon
    long_concept = "abcdefghij" * 3 + "abcdefghi" + " tail of the concept"  # 39 + sep + ...
    cases = [
        ({"domain": "E-Commerce", "requirement_number": "R1", "key_concept": "Consent"},
         "ecommerce_r1_consent"),
        ({"domain": "ecommerce", "requirement_number": "req 12", "key_concept": "data retention"},
         "ecommerce_r12_data_retention"),
        ({"domain": "ecommerce", "requirement_number": 3, "key_concept": "  Data   Access!! "},
         "ecommerce_r3_data_access"),
        ({"domain": "ecommerce", "requirement_number": "R007", "key_concept": "x"},
         "ecommerce_r7_x"),
        ({"domain": "ecommerce", "requirement_number": "none", "key_concept": "y"},
         "ecommerce_r1_y"),
        ({"domain": "ecommerce", "requirement_number": "R999999", "key_concept": "z"},
         "ecommerce_r999999_z"),
        ({"domain": "shop"}, "shop_r1_general"),
        ({"domain": "shop", "key_concept": "!!!"}, "shop_r1_general_2"),
        ({"domain": "shop", "requirement_number": "R2", "key_concept": long_concept},
         "shop_r2_" + "abcdefghij" * 3 + "abcdefghi"),
        ({"domain": "shop", "requirement_number": 4, "key_concept": "Données personnelles"},
         "shop_r4_donn_es_personnelles"),
        ({"domain": "Über Shop", "requirement_number": "R5", "key_concept": "a-b_c d"},
         "bershop_r5_a_b_c_d"),
        ({"domain": "A" * 32, "requirement_number": 0, "key_concept": "k"},
         "a" * 32 + "_r0_k"),
    ]
    for extra, want in cases:
        body = entry_body(**extra)
        assert "scenario_id" not in body
        e = create(d, body)
        assert e["scenario_id"] == want, (extra, e["scenario_id"])
    assert stored_count(d) == len(cases)


@pytest.mark.parametrize("extra,field", [
    ({"domain": "123shop"}, "domain"),
    ({"domain": "-+-"}, "domain"),
    ({"domain": "a" * 33}, "domain"),
    ({"domain": "   "}, "domain"),
    ({"domain": ""}, "domain"),
    ({"domain": 5}, "domain"),
    ({"domain": "shop", "requirement_number": "R1234567"}, "requirement_number"),
    ({"domain": "shop", "requirement_number": -1}, "requirement_number"),
    ({"domain": "shop", "requirement_number": 1.5}, "requirement_number"),
    ({"domain": "shop", "requirement_number": True}, "requirement_number"),
    ({"domain": "shop", "requirement_number": ["R1"]}, "requirement_number"),
    ({"domain": "shop", "key_concept": 7}, "key_concept"),
    ({"domain": "shop", "key_concept": {"a": 1}}, "key_concept"),
])
def test_generation_input_errors(shared_stm_daemon, extra, field):
    d = shared_stm_daemon
    n = stored_count(d)
    err(d.post(BASE, entry_body(**extra)), 400, "validation_error", field)
    assert stored_count(d) == n


def test_generated_suffix_is_lowest_free(stm_daemon):
    d = stm_daemon
    dom = unique_domain()
    gen = {"domain": dom, "requirement_number": "R9", "key_concept": "audit log"}
    base = f"{dom}_r9_audit_log"
    got = [create(d, entry_body(**gen))["scenario_id"] for _ in range(3)]
    assert got == [base, base + "_2", base + "_3"]
    assert d.delete(f"{BASE}/{base}_2").status == 204
    assert create(d, entry_body(**gen))["scenario_id"] == base + "_2"
    assert d.delete(f"{BASE}/{base}").status == 204
    assert create(d, entry_body(**gen))["scenario_id"] == base
    assert create(d, entry_body(**gen))["scenario_id"] == base + "_4"
    # An explicitly given id is honoured even if it looks like a suffixed one...
    other = f"{dom}_r8_x_2"
    assert create(d, entry_body(other))["scenario_id"] == other
    # ...and generation still starts at the free base, then skips the taken _2.
    gen8 = {"domain": dom, "requirement_number": 8, "key_concept": "x"}
    assert create(d, entry_body(**gen8))["scenario_id"] == f"{dom}_r8_x"
    assert create(d, entry_body(**gen8))["scenario_id"] == f"{dom}_r8_x_3"


@pytest.mark.parametrize("extra", [
    {"domain": "shop"},
    {"requirement_number": "R1"},
    {"requirement_number": 1},
    {"key_concept": "consent"},
    {"domain": "shop", "requirement_number": "R1", "key_concept": "consent"},
])
def test_scenario_id_with_generation_inputs_is_400(shared_stm_daemon, extra):
    d = shared_stm_daemon
    n = stored_count(d)
    body = entry_body(unique_domain() + "_r1_x", **extra)
    err(d.post(BASE, body), 400, "validation_error", "scenario_id")
    assert stored_count(d) == n


def test_neither_scenario_id_nor_domain_is_400(shared_stm_daemon):
    d = shared_stm_daemon
    n = stored_count(d)
    for extra in ({}, {"requirement_number": "R1", "key_concept": "consent"}):
        body = entry_body(**extra)
        del body["scenario_id"]
        err(d.post(BASE, body), 400, "validation_error", "scenario_id")
    assert stored_count(d) == n


@pytest.mark.parametrize("mutate,field", [
    (lambda b: b.pop("requirement_text"), "requirement_text"),
    (lambda b: b.update(requirement_text=""), "requirement_text"),
    (lambda b: b.update(requirement_text="  \t\n "), "requirement_text"),
    (lambda b: b.update(requirement_text=None), "requirement_text"),
    (lambda b: b.update(requirement_text=42), "requirement_text"),
    (lambda b: b.update(requirement_text=["a"]), "requirement_text"),
    (lambda b: b.update(requirement_text={"a": "b"}), "requirement_text"),
    (lambda b: b.update(requirement_text=True), "requirement_text"),
    (lambda b: b.update(requirement_text="x" * 10001), "requirement_text"),
    (lambda b: b.pop("initial_assessment"), "initial_assessment"),
    (lambda b: b.update(initial_assessment=None), "initial_assessment"),
    (lambda b: b.update(initial_assessment="Compliant"), "initial_assessment"),
    (lambda b: b.update(initial_assessment=[]), "initial_assessment"),
    (lambda b: b["initial_assessment"].pop("status"), "initial_assessment.status"),
    (lambda b: b["initial_assessment"].update(status=None), "initial_assessment.status"),
    (lambda b: b["initial_assessment"].update(status=1), "initial_assessment.status"),
    (lambda b: b["initial_assessment"].pop("rationale"), "initial_assessment.rationale"),
    (lambda b: b["initial_assessment"].update(rationale=" "), "initial_assessment.rationale"),
    (lambda b: b["initial_assessment"].update(rationale=3.5), "initial_assessment.rationale"),
    (lambda b: b["initial_assessment"].pop("recommendation"),
     "initial_assessment.recommendation"),
    (lambda b: b["initial_assessment"].update(recommendation=""),
     "initial_assessment.recommendation"),
    (lambda b: b["initial_assessment"].update(recommendation=["x"]),
     "initial_assessment.recommendation"),
    (lambda b: b["initial_assessment"].update(recommendation="é" * 10001),
     "initial_assessment.recommendation"),
    (lambda b: b["initial_assessment"].update(foo="bar"), "initial_assessment.foo"),
    (lambda b: b.update(scenario_id=5), "scenario_id"),
    (lambda b: b.update(scenario_id=""), "scenario_id"),
    (lambda b: b.update(scenario_id=None), "scenario_id"),
    (lambda b: b.update(scenario_id="Ecommerce_r1_x"), "scenario_id"),
    (lambda b: b.update(scenario_id="ecommerce_r1_x:y"), "scenario_id"),
    (lambda b: b.update(scenario_id="ecommerce_1_x"), "scenario_id"),
    (lambda b: b.update(scenario_id="ecommerce_r1234567_x"), "scenario_id"),
    (lambda b: b.update(scenario_id="ecommerce_r1_x__y"), "scenario_id"),
    (lambda b: b.update(scenario_id="ecommerce_r1_x_"), "scenario_id"),
    (lambda b: b.update(scenario_id="a" * 33 + "_r1_x"), "scenario_id"),
    (lambda b: b.update(scenario_id="a_r1_" + "x" * 124), "scenario_id"),  # 129 chars
    (lambda b: b.update(ttl_seconds="3600"), "ttl_seconds"),
    (lambda b: b.update(ttl_seconds=3600.0), "ttl_seconds"),
    (lambda b: b.update(ttl_seconds=3600.5), "ttl_seconds"),
    (lambda b: b.update(ttl_seconds=0), "ttl_seconds"),
    (lambda b: b.update(ttl_seconds=-60), "ttl_seconds"),
    (lambda b: b.update(ttl_seconds=31536001), "ttl_seconds"),
    (lambda b: b.update(ttl_seconds=True), "ttl_seconds"),
    (lambda b: b.update(ttl_seconds=None), "ttl_seconds"),
    (lambda b: b.update(human_feedback=None), "human_feedback"),
    (lambda b: b.update(final_status="Compliant"), "final_status"),
    (lambda b: b.update(created_at="2020-01-01T00:00:00.000Z"), "created_at"),
    (lambda b: b.update(expires_at="2020-01-01T00:00:00.000Z"), "expires_at"),
])
def test_create_field_errors(shared_stm_daemon, mutate, field):
    d = shared_stm_daemon
    n = stored_count(d)
    body = entry_body()
    mutate(body)
    err(d.post(BASE, body), 400, "validation_error", field)
    assert stored_count(d) == n


def test_text_limits_count_code_points(shared_stm_daemon):
    d = shared_stm_daemon
    for text in ("x" * 10000, "é" * 10000, "\U0001F600" * 10000):
        e = create(d, entry_body(requirement_text=text))
        assert ok(d.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"]["requirement_text"] == text
    for text in ("é" * 10001, "\U0001F600" * 10001):
        err(d.post(BASE, entry_body(requirement_text=text)), 400, "validation_error",
            "requirement_text")


def test_texts_are_kept_exactly(shared_stm_daemon):
    d = shared_stm_daemon
    text = ('Quotes " and \\ backslashes, <html> & \'single\', tabs\tand\nnew lines, '
            'unicode ✓ Ω 漢字 \U0001F512, and JSON-looking {"a": [1, 2]}')
    body = entry_body(requirement_text=text)
    body["initial_assessment"]["rationale"] = "  leading and trailing spaces  "
    e = create(d, body)
    got = ok(d.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"]
    assert got["requirement_text"] == text
    assert got["initial_assessment"]["rationale"] == "  leading and trailing spaces  "


@pytest.mark.parametrize("requirement_number", ["R1", 1, 0, "1"])
def test_requirement_number_string_or_non_negative_integer(shared_stm_daemon,
                                                           requirement_number):
    d = shared_stm_daemon
    dom = unique_domain()
    e = create(d, entry_body(domain=dom, requirement_number=requirement_number,
                             key_concept="k"))
    n = "0" if requirement_number == 0 else "1"
    assert e["scenario_id"] == f"{dom}_r{n}_k"


# --------------------------------------------------------------------------- TTL bounds

@pytest.mark.parametrize("backend", STM_BACKENDS)
def test_ttl_bounds_on_a_default_daemon(daemon, backend):
    """MEMORY_STM_MIN_TTL_SECONDS not lowered: ttl_seconds must be in [60, 31536000]."""
    d = daemon(stm=backend)
    for bad in (1, 59, 31536001):
        err(d.post(BASE, entry_body(ttl_seconds=bad)), 400, "validation_error", "ttl_seconds")
    assert stored_count(d) == 0
    lo = create(d, entry_body(ttl_seconds=60))
    check_entry(lo, ttl=60)
    hi = create(d, entry_body(ttl_seconds=31536000))
    check_entry(hi, ttl=31536000)
    for bad in (0, 59, 31536001):
        err(d.put(f"{BASE}/{lo['scenario_id']}/ttl", {"ttl_seconds": bad}), 400,
            "validation_error", "ttl_seconds")
    assert ok(d.get(f"{BASE}/{lo['scenario_id']}"))["stm_entry"] == lo
    t0 = now_ms()
    data = ok(d.put(f"{BASE}/{lo['scenario_id']}/ttl", {"ttl_seconds": 60}))
    assert t0 + 60000 - 5 <= parse_ts(data["expires_at"]) <= now_ms() + 60000 + 5


@pytest.mark.parametrize("backend", STM_BACKENDS)
def test_default_ttl_follows_memory_stm_ttl_hours(daemon, backend):
    d = daemon(stm=backend, MEMORY_STM_TTL_HOURS="2")
    check_entry(create(d), ttl=7200)
    check_entry(create(d, entry_body(ttl_seconds=120)), ttl=120)


def test_ttl_minimum_lowered_for_tests(stm_daemon):
    d = stm_daemon
    check_entry(create(d, entry_body(ttl_seconds=1)), ttl=1)
    check_entry(create(d, entry_body(ttl_seconds=31536000)), ttl=31536000)
    err(d.post(BASE, entry_body(ttl_seconds=0)), 400, "validation_error", "ttl_seconds")


# =========================================================================== GET one

def test_get_entry_and_traceability(stm_daemon):
    d = stm_daemon
    e = create(d)
    sid = e["scenario_id"]
    data = ok(d.get(f"{BASE}/{sid}"))
    assert set(data) == {"stm_entry", "traceability"}
    assert data["stm_entry"] == e
    assert data["traceability"] == {"related_ltm_rules": [], "has_human_feedback": False,
                                    "final_status": None}
    ok(d.put(f"{BASE}/{sid}/feedback", {"decision": "d", "rationale": "r", "suggestion": "s",
                                         "final_status": "partial"}))
    data = ok(d.get(f"{BASE}/{sid}"))
    assert data["traceability"] == {"related_ltm_rules": [], "has_human_feedback": True,
                                    "final_status": "Partially Compliant"}
    assert data["stm_entry"]["final_status"] == "Partially Compliant"


def test_get_unknown_id_is_404(stm_daemon):
    d = stm_daemon
    err(d.get(f"{BASE}/ecommerce_r1_nothing_here"), 404, "not_found")
    err(d.get(f"{BASE}/{'a' * 32}_r123456_{'b' * 87}"), 404, "not_found")  # 128 chars: valid


BAD_IDS = [
    "Ecommerce_r1_consent", "ecommerce_R1_consent", "ecommerce_r1_Consent",
    "ecommerce_r1_con:sent", "ecommerce_r1_con*", "*", "ecommerce:r1:consent",
    "ecommerce_r1_con%20sent", "%20ecommerce_r1_consent", "ecommerce_r1_consent%20",
    "ecommerce_r1_", "ecommerce_r_consent", "ecommerce_rx_consent", "ecommerce_r1234567_c",
    "1commerce_r1_consent", "_r1_consent", "ecommerce__r1_consent", "ecommerce_r1__consent",
    "ecommerce_r1_consent_", "ecommerce-r1-consent", "ecommerce_r1_con.sent", "..", ".",
    "a" * 33 + "_r1_c", "a_r1_" + "c" * 124, "a_r1_" + "c" * 2000, "x" * 600,
    "ecommerce_r1_con%2Fsent", "ecommerce_r1_consent%2F", "%2e%2e", "ecommerce_r1_c%00",
    "ecommerce_r1_c%zz", "ecommerce_r1_c%", "ecommerce_r1_%C3%A9", "stm:ecommerce_r1_c",
    "ecommerce_r1_c%0A", "ecommerce_r1_c'", "ecommerce_r1_c%22",
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_malformed_id_in_path_is_400_never_404(shared_stm_daemon, bad):
    d = shared_stm_daemon
    n = stored_count(d)
    fb = {"decision": "d", "rationale": "r", "suggestion": "s"}
    for method, suffix, body in (("GET", "", None), ("PATCH", "", {}),
                                 ("DELETE", "", None), ("PUT", "/feedback", fb),
                                 ("PUT", "/ttl", {"ttl_seconds": 100})):
        r = d.request(method, f"{BASE}/{bad}{suffix}", body=body)
        err(r, 400, "validation_error", "scenario_id")
    assert stored_count(d) == n


# =========================================================================== list

def test_list_shape_filters_and_order(stm_daemon):
    d = stm_daemon
    data = ok(d.get(BASE))
    assert data == {"entries": [], "count": 0, "next_cursor": None, "filters": {}}
    dom = unique_domain()
    made = []
    for i, st in enumerate(["Compliant", "Non-Compliant", "Partially Compliant", "Pending",
                            "Non-Compliant"]):
        body = entry_body(domain=dom, requirement_number=i + 1, key_concept="c")
        body["initial_assessment"]["status"] = st
        made.append(create(d, body))
    other_body = entry_body()  # another domain
    other_body["initial_assessment"]["status"] = "Compliant"
    other = create(d, other_body)
    ok(d.put(f"{BASE}/{made[1]['scenario_id']}/feedback",
             {"decision": "d", "rationale": "r", "suggestion": "s", "final_status": "Compliant"}))
    ok(d.put(f"{BASE}/{made[4]['scenario_id']}/feedback",
             {"decision": "d", "rationale": "r", "suggestion": "s"}))
    want_all = [other["scenario_id"]] + [m["scenario_id"] for m in reversed(made)]

    data = ok(d.get(BASE))
    assert data["count"] == 6 and data["next_cursor"] is None and data["filters"] == {}
    assert ids(data["entries"]) == want_all  # newest first
    for e in data["entries"]:
        check_entry(e)
        assert e == ok(d.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"]

    def q(**params):
        return ok(d.get(BASE + "?" + urlencode(params)))

    r = q(status="Non-Compliant")
    assert ids(r["entries"]) == [made[4]["scenario_id"], made[1]["scenario_id"]]
    assert r["filters"] == {"status": "Non-Compliant"}
    r = q(status="partial")
    assert ids(r["entries"]) == [made[2]["scenario_id"]]
    assert r["filters"] == {"status": "Partially Compliant"}
    r = q(final_status="compliant")
    assert ids(r["entries"]) == [made[1]["scenario_id"]]
    assert r["filters"] == {"final_status": "Compliant"}
    r = q(has_feedback="true")
    assert ids(r["entries"]) == [made[4]["scenario_id"], made[1]["scenario_id"]]
    assert r["filters"] == {"has_feedback": True}
    r = q(has_feedback="false")
    assert ids(r["entries"]) == [other["scenario_id"], made[3]["scenario_id"],
                                 made[2]["scenario_id"], made[0]["scenario_id"]]
    assert r["filters"] == {"has_feedback": False}
    r = q(domain=dom.upper())
    assert ids(r["entries"]) == [m["scenario_id"] for m in reversed(made)]
    assert r["filters"] == {"domain": dom}
    r = q(domain="-".join(dom))  # cleaned like generation
    assert ids(r["entries"]) == [m["scenario_id"] for m in reversed(made)]
    assert r["filters"] == {"domain": dom}
    r = q(status="NonCompliant", has_feedback="false", domain=dom)
    assert ids(r["entries"]) == []
    assert r["filters"] == {"status": "Non-Compliant", "has_feedback": False, "domain": dom}
    r = q(status="Non Compliant", final_status="Compliant", has_feedback="true", domain=dom,
          limit=10)
    assert ids(r["entries"]) == [made[1]["scenario_id"]]
    assert r["filters"] == {"status": "Non-Compliant", "final_status": "Compliant",
                            "has_feedback": True, "domain": dom}
    # '+' and %20 both decode to a space in a query string.
    r = ok(d.get(BASE + "?status=Partially+Compliant"))
    assert ids(r["entries"]) == [made[2]["scenario_id"]]
    r = ok(d.get(BASE + "?status=Partially%20Compliant"))
    assert r["filters"] == {"status": "Partially Compliant"}
    r = q(domain="zz" + dom)
    assert r == {"entries": [], "count": 0, "next_cursor": None, "filters": {"domain": "zz" + dom}}
    r = q(status="Pending", limit=1)
    assert ids(r["entries"]) == [made[3]["scenario_id"]]


def test_list_default_limit_is_50(stm_daemon):
    d = stm_daemon
    made = [create(d, entry_body(f"bulk_r{i}_x"))["scenario_id"] for i in range(1, 52)]
    data = ok(d.get(BASE))
    assert 1 <= data["count"] <= 50
    assert data["next_cursor"] is not None
    assert ids(list_all(d)) == list(reversed(made))
    big = ok(d.get(BASE + "?limit=1000"))
    assert ids(big["entries"]) == list(reversed(made))[:big["count"]]
    assert ids(list_all(d, limit=1000)) == list(reversed(made))


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"),
    ("limit=1.5", "limit"), ("limit=1e2", "limit"), ("limit=%2B5", "limit"),
    ("limit=+5", "limit"), ("limit=", "limit"), ("limit", "limit"), ("limit=0x10", "limit"),
    ("limit=99999999999999999999999", "limit"), ("limit=%205", "limit"),
    ("limit=5%20", "limit"),
    ("status=bogus", "status"), ("status=", "status"), ("status=Compliant%20", "status"),
    ("final_status=bogus", "final_status"), ("final_status=null", "final_status"),
    ("has_feedback=True", "has_feedback"), ("has_feedback=1", "has_feedback"),
    ("has_feedback=yes", "has_feedback"), ("has_feedback=", "has_feedback"),
    ("has_feedback=FALSE", "has_feedback"),
    ("domain=123", "domain"), ("domain=", "domain"), ("domain=" + "a" * 33, "domain"),
    ("foo=bar", "foo"), ("Status=Compliant", "Status"), ("limit=5&sort=asc", "sort"),
    ("q=x", "q"), ("cursor=garbage", "cursor"), ("cursor=", "cursor"),
    ("limit=1&limit=2", "limit"), ("status=Compliant&status=Pending", "status"),
    ("domain=a&domain=a", "domain"), ("has_feedback=true&has_feedback=true", "has_feedback"),
])
def test_list_query_errors(shared_stm_daemon, query, field):
    d = shared_stm_daemon
    err(d.get(f"{BASE}?{query}"), 400, "validation_error", field)


def test_list_accepts_decimal_limits(shared_stm_daemon):
    d = shared_stm_daemon
    for lim in ("1", "007", "50", "1000"):
        data = ok(d.get(f"{BASE}?limit={lim}"))
        assert data["count"] <= int(lim)
        assert "limit" not in data["filters"]


# =========================================================================== PATCH

def test_patch_updated_fields_and_timestamps(stm_daemon):
    d = stm_daemon
    e = create(d, entry_body(ttl_seconds=3600))
    sid = e["scenario_id"]
    url = f"{BASE}/{sid}"
    time.sleep(0.02)

    # Body order differs from the canonical order of updated_fields.
    r = d.patch(url, {"final_status": "partial",
                      "initial_assessment": {"recommendation": "New rec.", "status": "Pending"},
                      "requirement_text": "New text."})
    data = ok(r)
    assert set(data) == {"stm_entry", "updated_fields"}
    assert data["updated_fields"] == ["requirement_text", "initial_assessment.status",
                                      "initial_assessment.recommendation", "final_status"]
    p = check_entry(data["stm_entry"])
    assert p["requirement_text"] == "New text."
    assert p["initial_assessment"] == {"status": "Pending",
                                       "rationale": e["initial_assessment"]["rationale"],
                                       "recommendation": "New rec."}
    assert p["final_status"] == "Partially Compliant"
    assert p["human_feedback"] is None
    assert p["created_at"] == e["created_at"] and p["expires_at"] == e["expires_at"]
    assert parse_ts(p["updated_at"]) > parse_ts(e["updated_at"])
    assert ok(d.get(url))["stm_entry"] == p

    # Same values again (aliases included): nothing changes, updated_at kept.
    time.sleep(0.02)
    for body in ({}, {"requirement_text": "New text."},
                 {"initial_assessment": {"status": "pending", "recommendation": "New rec."}},
                 {"final_status": "Partial"}):
        data = ok(d.patch(url, body))
        assert data["updated_fields"] == [], body
        assert data["stm_entry"] == p, body
    assert ok(d.get(url))["stm_entry"] == p

    # Only what changed is listed.
    time.sleep(0.02)
    data = ok(d.patch(url, {"requirement_text": "New text.",
                            "initial_assessment": {"rationale": "Other rationale.",
                                                   "status": "Pending"},
                            "final_status": None}))
    assert data["updated_fields"] == ["initial_assessment.rationale", "final_status"]
    q = data["stm_entry"]
    assert q["final_status"] is None
    assert q["initial_assessment"]["rationale"] == "Other rationale."
    assert parse_ts(q["updated_at"]) > parse_ts(p["updated_at"])
    assert q["expires_at"] == e["expires_at"] and q["created_at"] == e["created_at"]

    # null again: no change.
    data = ok(d.patch(url, {"final_status": None}))
    assert data["updated_fields"] == [] and data["stm_entry"] == q
    data = ok(d.patch(url, {"final_status": "NonCompliant"}))
    assert data["updated_fields"] == ["final_status"]
    assert data["stm_entry"]["final_status"] == "Non-Compliant"
    assert ok(d.get(url))["traceability"]["final_status"] == "Non-Compliant"


def test_patch_keeps_feedback(stm_daemon):
    d = stm_daemon
    sid = create(d)["scenario_id"]
    fb = {"decision": "d1", "rationale": "r1", "suggestion": "s1"}
    ok(d.put(f"{BASE}/{sid}/feedback", fb))
    data = ok(d.patch(f"{BASE}/{sid}", {"requirement_text": "changed"}))
    assert data["stm_entry"]["human_feedback"] == fb
    assert data["updated_fields"] == ["requirement_text"]


@pytest.mark.parametrize("body,field", [
    ({"scenario_id": "ecommerce_r1_other"}, "scenario_id"),
    ({"human_feedback": {"decision": "d", "rationale": "r", "suggestion": "s"}},
     "human_feedback"),
    ({"human_feedback": None}, "human_feedback"),
    ({"created_at": "2020-01-01T00:00:00.000Z"}, "created_at"),
    ({"updated_at": "2020-01-01T00:00:00.000Z"}, "updated_at"),
    ({"expires_at": "2030-01-01T00:00:00.000Z"}, "expires_at"),
    ({"ttl_seconds": 100}, "ttl_seconds"),
    ({"domain": "shop"}, "domain"),
    ({"foo": 1}, "foo"),
    ({"requirement_text": ""}, "requirement_text"),
    ({"requirement_text": "   "}, "requirement_text"),
    ({"requirement_text": None}, "requirement_text"),
    ({"requirement_text": 5}, "requirement_text"),
    ({"requirement_text": "x" * 10001}, "requirement_text"),
    ({"initial_assessment": None}, "initial_assessment"),
    ({"initial_assessment": "Compliant"}, "initial_assessment"),
    ({"initial_assessment": {"status": "bogus"}}, "initial_assessment.status"),
    ({"initial_assessment": {"status": None}}, "initial_assessment.status"),
    ({"initial_assessment": {"rationale": ""}}, "initial_assessment.rationale"),
    ({"initial_assessment": {"recommendation": 1}}, "initial_assessment.recommendation"),
    ({"initial_assessment": {"foo": "x"}}, "initial_assessment.foo"),
    ({"initial_assessment": {"status": "Compliant", "bar": 1}}, "initial_assessment.bar"),
    ({"final_status": "bogus"}, "final_status"),
    ({"final_status": ""}, "final_status"),
    ({"final_status": 1}, "final_status"),
    ({"final_status": ["Compliant"]}, "final_status"),
    ({"requirement_text": "ok", "zzz": 1, "aaa": 2}, "zzz"),
])
def test_patch_errors_change_nothing(shared_stm_daemon, body, field):
    d = shared_stm_daemon
    e = create(d)
    sid = e["scenario_id"]
    _, before = get_raw(d, sid)
    err(d.patch(f"{BASE}/{sid}", body), 400, "validation_error", field)
    assert get_raw(d, sid) == (200, before)


def test_patch_without_body_and_unknown_id(stm_daemon):
    d = stm_daemon
    sid = create(d)["scenario_id"]
    _, before = get_raw(d, sid)
    err(d.request("PATCH", f"{BASE}/{sid}"), 400, "validation_error")
    err(d.request("PATCH", f"{BASE}/{sid}", raw=b"", headers={"Content-Type": "application/json"}),
        400, "validation_error")
    assert get_raw(d, sid) == (200, before)
    err(d.patch(f"{BASE}/ecommerce_r1_unknown", {"requirement_text": "x"}), 404, "not_found")
    err(d.patch(f"{BASE}/ecommerce_r1_unknown", {}), 404, "not_found")
    assert stored_count(d) == 1


# =========================================================================== feedback

def test_feedback_semantics(stm_daemon):
    d = stm_daemon
    e = create(d, entry_body(ttl_seconds=7200))
    sid = e["scenario_id"]
    url = f"{BASE}/{sid}/feedback"
    fb1 = {"decision": "Keep", "rationale": "Correct.", "suggestion": "None."}
    time.sleep(0.02)
    data = ok(d.put(url, fb1))
    assert set(data) == {"stm_entry"}
    a = check_entry(data["stm_entry"])
    assert a["human_feedback"] == fb1
    assert a["final_status"] is None  # absent final_status keeps the old one (null)
    assert a["initial_assessment"] == e["initial_assessment"]
    assert a["requirement_text"] == e["requirement_text"]
    assert a["created_at"] == e["created_at"] and a["expires_at"] == e["expires_at"]
    assert parse_ts(a["updated_at"]) > parse_ts(e["updated_at"])
    assert ok(d.get(f"{BASE}/{sid}"))["stm_entry"] == a

    time.sleep(0.02)
    fb2 = {"decision": "Change", "rationale": "Unsalted.", "suggestion": "Salt it.",
           "final_status": "partially compliant"}
    b = ok(d.put(url, fb2))["stm_entry"]
    assert b["human_feedback"] == {k: fb2[k] for k in ("decision", "rationale", "suggestion")}
    assert b["final_status"] == "Partially Compliant"
    assert parse_ts(b["updated_at"]) > parse_ts(a["updated_at"])
    assert b["initial_assessment"]["status"] == e["initial_assessment"]["status"]

    # Without final_status: the previous final status stays; updated_at always bumps.
    time.sleep(0.02)
    c = ok(d.put(url, fb1))["stm_entry"]
    assert c["final_status"] == "Partially Compliant" and c["human_feedback"] == fb1
    assert parse_ts(c["updated_at"]) > parse_ts(b["updated_at"])
    time.sleep(0.02)
    c2 = ok(d.put(url, fb1))["stm_entry"]  # identical payload: still bumps updated_at
    assert parse_ts(c2["updated_at"]) > parse_ts(c["updated_at"])
    assert {k: v for k, v in c2.items() if k != "updated_at"} == \
        {k: v for k, v in c.items() if k != "updated_at"}

    # null clears it.
    dd = ok(d.put(url, dict(fb1, final_status=None)))["stm_entry"]
    assert dd["final_status"] is None and dd["human_feedback"] == fb1
    assert dd["expires_at"] == e["expires_at"]
    tr = ok(d.get(f"{BASE}/{sid}"))["traceability"]
    assert tr == {"related_ltm_rules": [], "has_human_feedback": True, "final_status": None}


@pytest.mark.parametrize("mutate,field", [
    (lambda b: b.pop("decision"), "decision"),
    (lambda b: b.pop("rationale"), "rationale"),
    (lambda b: b.pop("suggestion"), "suggestion"),
    (lambda b: b.update(decision=""), "decision"),
    (lambda b: b.update(rationale="  "), "rationale"),
    (lambda b: b.update(suggestion=None), "suggestion"),
    (lambda b: b.update(decision=1), "decision"),
    (lambda b: b.update(rationale=["x"]), "rationale"),
    (lambda b: b.update(suggestion={"a": 1}), "suggestion"),
    (lambda b: b.update(decision="x" * 10001), "decision"),
    (lambda b: b.update(final_status="bogus"), "final_status"),
    (lambda b: b.update(final_status=3), "final_status"),
    (lambda b: b.update(final_status=""), "final_status"),
    (lambda b: b.update(human_feedback={}), "human_feedback"),
    (lambda b: b.update(scenario_id="a_r1_b"), "scenario_id"),
    (lambda b: b.update(foo=None), "foo"),
])
def test_feedback_errors_change_nothing(shared_stm_daemon, mutate, field):
    d = shared_stm_daemon
    sid = create(d)["scenario_id"]
    _, before = get_raw(d, sid)
    body = {"decision": "d", "rationale": "r", "suggestion": "s"}
    mutate(body)
    err(d.put(f"{BASE}/{sid}/feedback", body), 400, "validation_error", field)
    assert get_raw(d, sid) == (200, before)


def test_feedback_unknown_id_and_missing_body(stm_daemon):
    d = stm_daemon
    fb = {"decision": "d", "rationale": "r", "suggestion": "s"}
    err(d.put(f"{BASE}/ecommerce_r1_unknown/feedback", fb), 404, "not_found")
    sid = create(d)["scenario_id"]
    err(d.request("PUT", f"{BASE}/{sid}/feedback"), 400, "validation_error")
    assert ok(d.get(f"{BASE}/{sid}"))["stm_entry"]["human_feedback"] is None
    assert stored_count(d) == 1


# =========================================================================== PUT ttl

def test_put_ttl(stm_daemon):
    d = stm_daemon
    e = create(d, entry_body(ttl_seconds=100))
    sid = e["scenario_id"]
    t0 = now_ms()
    r = d.put(f"{BASE}/{sid}/ttl", {"ttl_seconds": 5000})
    t1 = now_ms()
    data = ok(r)
    assert set(data) == {"scenario_id", "expires_at"}
    assert data["scenario_id"] == sid
    x = parse_ts(data["expires_at"])
    assert t0 + 5_000_000 - 5 <= x <= t1 + 5_000_000 + 5
    got = ok(d.get(f"{BASE}/{sid}"))["stm_entry"]
    assert got["expires_at"] == data["expires_at"]
    assert got["created_at"] == e["created_at"]
    # Shortening is allowed too: only PUT ttl changes the lifetime.
    data = ok(d.put(f"{BASE}/{sid}/ttl", {"ttl_seconds": 30}))
    assert parse_ts(data["expires_at"]) <= now_ms() + 30_000 + 5
    assert ok(d.get(f"{BASE}/{sid}"))["stm_entry"]["expires_at"] == data["expires_at"]


@pytest.mark.parametrize("body,field", [
    ({}, "ttl_seconds"), ({"ttl_seconds": None}, "ttl_seconds"),
    ({"ttl_seconds": "100"}, "ttl_seconds"), ({"ttl_seconds": 100.0}, "ttl_seconds"),
    ({"ttl_seconds": 0}, "ttl_seconds"), ({"ttl_seconds": -1}, "ttl_seconds"),
    ({"ttl_seconds": 31536001}, "ttl_seconds"), ({"ttl_seconds": [100]}, "ttl_seconds"),
    ({"ttl_seconds": False}, "ttl_seconds"),
    ({"ttl_seconds": 100, "hours": 1}, "hours"), ({"ttl": 100}, "ttl"),
])
def test_put_ttl_errors_change_nothing(shared_stm_daemon, body, field):
    d = shared_stm_daemon
    sid = create(d)["scenario_id"]
    _, before = get_raw(d, sid)
    err(d.put(f"{BASE}/{sid}/ttl", body), 400, "validation_error", field)
    assert get_raw(d, sid) == (200, before)


def test_put_ttl_unknown_id(stm_daemon):
    d = stm_daemon
    err(d.put(f"{BASE}/ecommerce_r1_unknown/ttl", {"ttl_seconds": 100}), 404, "not_found")
    assert stored_count(d) == 0


# =========================================================================== DELETE

def test_delete(stm_daemon):
    d = stm_daemon
    keep = create(d)
    gone = create(d)
    r = d.delete(f"{BASE}/{gone['scenario_id']}")
    assert r.status == 204, r
    assert r.body == ""
    assert r.header("X-Request-Id")
    err(d.get(f"{BASE}/{gone['scenario_id']}"), 404, "not_found")
    err(d.delete(f"{BASE}/{gone['scenario_id']}"), 404, "not_found")
    err(d.patch(f"{BASE}/{gone['scenario_id']}", {}), 404, "not_found")
    err(d.put(f"{BASE}/{gone['scenario_id']}/ttl", {"ttl_seconds": 100}), 404, "not_found")
    err(d.put(f"{BASE}/{gone['scenario_id']}/feedback",
              {"decision": "d", "rationale": "r", "suggestion": "s"}), 404, "not_found")
    assert ids(list_all(d)) == [keep["scenario_id"]]
    assert stored_count(d) == 1
    # The id can be used again, as a fresh entry.
    again = create(d, entry_body(gone["scenario_id"], requirement_text="Second life."))
    assert again["requirement_text"] == "Second life."
    assert again["human_feedback"] is None
    err(d.delete(f"{BASE}/ecommerce_r1_never_existed"), 404, "not_found")


# =========================================================================== stats

def test_stats(stm_daemon):
    d = stm_daemon
    zero = {s: 0 for s in STATUSES}
    data = stats(d)
    assert data == {"total_entries": 0, "entries_with_feedback": 0,
                    "entries_without_feedback": 0, "status_breakdown": zero,
                    "final_status_breakdown": zero}
    made = []
    for st in ("Compliant", "Compliant", "Pending", "Partial", "NonCompliant"):
        b = entry_body()
        b["initial_assessment"]["status"] = st
        made.append(create(d, b)["scenario_id"])
    fb = {"decision": "d", "rationale": "r", "suggestion": "s"}
    ok(d.put(f"{BASE}/{made[0]}/feedback", dict(fb, final_status="Non-Compliant")))
    ok(d.put(f"{BASE}/{made[2]}/feedback", fb))
    ok(d.patch(f"{BASE}/{made[3]}", {"final_status": "Pending"}))
    assert d.delete(f"{BASE}/{made[1]}").status == 204
    data = stats(d)
    assert data == {
        "total_entries": 4, "entries_with_feedback": 2, "entries_without_feedback": 2,
        "status_breakdown": {"Compliant": 1, "Non-Compliant": 1, "Partially Compliant": 1,
                             "Pending": 1},
        "final_status_breakdown": {"Compliant": 0, "Non-Compliant": 1,
                                   "Partially Compliant": 0, "Pending": 1}}
    # A PATCH of the initial status moves the entry between buckets.
    ok(d.patch(f"{BASE}/{made[4]}", {"initial_assessment": {"status": "Compliant"}}))
    ok(d.put(f"{BASE}/{made[0]}/feedback", dict(fb, final_status=None)))
    data = stats(d)
    assert data["status_breakdown"] == {"Compliant": 2, "Non-Compliant": 0,
                                        "Partially Compliant": 1, "Pending": 1}
    assert data["final_status_breakdown"] == {"Compliant": 0, "Non-Compliant": 0,
                                              "Partially Compliant": 0, "Pending": 1}
    assert data["entries_with_feedback"] == 2


# =========================================================================== query strings

@pytest.mark.parametrize("method,path,body", [
    ("GET", "/v1/stm/stats", None),
    ("GET", BASE + "/{id}", None),
    ("POST", BASE, "create"),
    ("PATCH", BASE + "/{id}", {}),
    ("PUT", BASE + "/{id}/feedback", {"decision": "d", "rationale": "r", "suggestion": "s"}),
    ("PUT", BASE + "/{id}/ttl", {"ttl_seconds": 100}),
    ("DELETE", BASE + "/{id}", None),
])
def test_unknown_query_parameters_are_400_on_every_route(shared_stm_daemon, method, path, body):
    """Decision: an unknown query parameter is 400 with field = its name, on every route;
    a request refused this way changes nothing."""
    d = shared_stm_daemon
    e = create(d)
    sid = e["scenario_id"]
    _, before = get_raw(d, sid)
    n = stored_count(d)
    url = path.replace("{id}", sid)
    b = entry_body() if body == "create" else body
    err(d.request(method, url + "?foo=1", body=b), 400, "validation_error", "foo")
    err(d.request(method, url + "?verbose", body=b), 400, "validation_error", "verbose")
    assert get_raw(d, sid) == (200, before)
    assert stored_count(d) == n


def test_path_id_is_percent_decoded_once(shared_stm_daemon):
    """An id spelled with percent escapes of allowed characters is the same id."""
    d = shared_stm_daemon
    e = create(d)
    sid = e["scenario_id"]
    enc = "".join("%%%02X" % ord(c) for c in sid)
    assert ok(d.get(f"{BASE}/{enc}"))["stm_entry"] == e
    assert ok(d.get(f"{BASE}/{quote(sid)}"))["stm_entry"] == e


# ---------------------------------------------------------------- feedback splicing

LOOKALIKE = ('",x,"human_feedback":{"decision":"forged"},"final_status":"Compliant",'
             '"created_at":"2000-01-01T00:00:00.000Z","updated_at":"2000-01-01T00:00:00.000Z",'
             '"expires_at":"2000-01-01T00:00:00.000Z"}')


def test_feedback_keeps_every_field_when_texts_look_like_the_entrys_json(stm_daemon):
    """The Redis feedback script splices the stored entry at ',"human_feedback":' and
    rebuilds its tail: client text that imitates those spots (quotes, keys, timestamps)
    must come back exactly, and the entry's own fields must stay right (both backends
    must agree)."""
    d = stm_daemon
    body = entry_body(requirement_text="Req " + LOOKALIKE)
    body["initial_assessment"]["rationale"] = "Why " + LOOKALIKE
    body["initial_assessment"]["recommendation"] = LOOKALIKE + ' \\ \n\t "end"'
    e = create(d, body)
    sid = e["scenario_id"]
    for i, final in enumerate([None, "Compliant", "unset"]):
        fb = {"decision": f"D{i} " + LOOKALIKE, "rationale": LOOKALIKE + f" R{i}",
              "suggestion": "S \u00e9\u4e2d\U0001F600 " + LOOKALIKE}
        if final == "unset":
            fb["final_status"] = None
        elif final:
            fb["final_status"] = final
        time.sleep(0.002)
        out = ok(d.put(f"/v1/stm/entries/{sid}/feedback", fb))["stm_entry"]
        got = ok(d.get(f"/v1/stm/entries/{sid}"))["stm_entry"]
        assert got == out
        assert got["requirement_text"] == body["requirement_text"]
        assert got["initial_assessment"] == {**body["initial_assessment"],
                                             "status": got["initial_assessment"]["status"]}
        assert got["human_feedback"] == {k: fb[k] for k in ("decision", "rationale", "suggestion")}
        assert got["created_at"] == e["created_at"] and got["expires_at"] == e["expires_at"]
        assert got["updated_at"] > e["updated_at"]
        want_final = {0: None, 1: "Compliant", 2: None}[i]
        assert got["final_status"] == want_final
        # the entry's text is still the canonical compact JSON of these fields
        status, raw = get_raw(d, sid)
        assert status == 200
        assert raw == json.dumps(got, separators=(",", ":"), ensure_ascii=False)
        assert list(json.loads(raw)) == ["scenario_id", "requirement_text", "initial_assessment",
                                         "human_feedback", "final_status", "created_at",
                                         "updated_at", "expires_at"]


def test_feedback_on_an_entry_another_tool_rewrote(daemon):
    """An entry rewritten behind memoryd's back in another JSON layout (spaces, \\u escapes,
    other key order) is not spliced: it is decoded and written back canonical."""
    d = daemon(stm="redis")
    sid = create(d, entry_body(requirement_text="Caf\u00e9 text"))["scenario_id"]
    key = f"stm:{sid}"
    entry = json.loads(d.redis.command_db(d.redis_db, "GET", key))
    relaid = json.dumps(dict(reversed(list(entry.items()))))  # ", " and ": ", \u00e9
    assert d.redis.command_db(d.redis_db, "SET", key, relaid, "KEEPTTL") == "OK"
    fb = {"decision": "Agree", "rationale": "Because", "suggestion": "None",
          "final_status": "Non-Compliant"}
    out = ok(d.put(f"/v1/stm/entries/{sid}/feedback", fb))["stm_entry"]
    assert out["requirement_text"] == "Caf\u00e9 text"
    assert out["human_feedback"] == {"decision": "Agree", "rationale": "Because",
                                     "suggestion": "None"}
    assert out["final_status"] == "Non-Compliant"
    stored = d.redis.command_db(d.redis_db, "GET", key)
    assert list(json.loads(stored)) == ["scenario_id", "requirement_text", "initial_assessment",
                                        "human_feedback", "final_status", "created_at",
                                        "updated_at", "expires_at"]
    assert ", " not in stored and "\\u00e9" not in stored
