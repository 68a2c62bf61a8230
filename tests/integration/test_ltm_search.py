"""
GET /v1/ltm/rules on both LTM backends: paging returns every rule exactly once
(limits 1, 3, 7; structured and full-text; with filters), the order (score,
then confidence, then updated_at, all descending), the filters (concepts: any
match, whole names, case-insensitive; policy: case-insensitive;
min_confidence), search_type, `score` only with q, multi-word q (any word,
best matches first), hostile q (never 5xx), bad parameters and forged cursors.

One daemon per LTM backend holds one corpus for the whole module; the tests
only read it.
"""
import re
import time
from urllib.parse import quote, urlencode

import pytest

from conftest import (RULES, create_rule, err, ok, parse_ts, rule_body, search_rules,
                      unique_domain)

# rule_id -> (confidence, concepts, text). Ties in confidence are deliberate.
CORPUS = {
    "GDPR_Retention_EventBased_01": (0.9, ["data retention", "storage limitation"],
                                     "Personal data retention is event based: delete data "
                                     "three years after the last login."),
    "GDPR_Retention_Fixed_01": (0.6, ["Data Retention"],
                                "A fixed retention period is documented for each record."),
    "GDPR_Consent_Unbundled_01": (0.9, ["consent", "marketing"],
                                  "Consent for marketing is asked separately from the terms."),
    "GDPR_Consent_Withdrawal_01": (0.75, ["Consent"],
                                   "Withdrawing consent is as easy as giving it."),
    "GDPR_Security_SaltedHash_01": (0.95, ["password hashing", "GDPR Article 32"],
                                    "Passwords are stored with a salted hash."),
    "GDPR_Access_Dashboard_01": (0.5, ["right of access"],
                                 "Users can access and export their personal data."),
    "GDPR_Erasure_Request_01": (0.5, ["right to erasure"],
                                "Users can request erasure of their personal data."),
    "GDPR_Pseudo_01": (0.4, ["pseudonymisation"],
                       "Identifiers are replaced before analytics run."),
    "CCPA_OptOut_Sale_01": (0.8, ["opt out", "sale of data"],
                            "Consumers can opt out of the sale of their data."),
    "CCPA_Notice_Collection_01": (0.8, ["notice at collection"],
                                  "A notice at collection lists the categories collected."),
    "CCPA_Retention_Disclosure_01": (0.3, ["data retention"],
                                     "The retention period of each category is disclosed."),
    "HIPAA_Phi_Encryption_01": (0.99, ["encryption", "PHI"],
                                "Health data is encrypted at rest and in transit."),
    "HIPAA_Phi_Access_01": (0.7, ["right of access", "phi"],
                            "Patients get access to their health records."),
    "HIPAA_Audit_Log_01": (0.7, ["audit log"],
                           "Every access to health records is logged."),
    "ISO_Intl_Unicode_01": (0.55, ["Löschkonzept", "право на забвение"],
                            "Löschung personenbezogener Daten nach Ablauf; Забвение данных."),
    # multi-word ranking: same length, different word coverage
    "RANK_Both_01": (0.3, ["ranking"], "zebra quokka lorem ipsum"),
    "RANK_OneA_01": (0.9, ["ranking"], "zebra lorem ipsum dolor"),
    "RANK_OneB_01": (0.6, ["ranking"], "quokka lorem ipsum dolor"),
    "RANK_Equal_Two_01": (0.5, ["ranking"], "narwhal okapi sit amet"),
    "RANK_Equal_One_01": (0.5, ["ranking"], "narwhal sit amet elit"),
}


@pytest.fixture(scope="module")
def corpus(shared_ltm_daemon):
    d = shared_ltm_daemon
    made = {}
    for rid, (conf, concepts, text) in CORPUS.items():
        rule = create_rule(d, rule_body([f"{unique_domain()}_r1_src"], rule_id=rid,
                                        concepts=concepts, text=text, confidence_score=conf))
        made[rid] = rule
        time.sleep(0.003)  # distinct updated_at
    # an update moves a rule ahead of its confidence peers (updated_at desc)
    made["GDPR_Access_Dashboard_01"] = ok(d.patch(f"{RULES}/GDPR_Access_Dashboard_01",
                                                  {"rule_text": "Users can access, correct "
                                                   "and export their personal data."}))["ltm_rule"]
    return d, made


def key(r, with_score):
    return ((-r["score"],) if with_score else ()) + (-r["confidence_score"],
                                                     -parse_ts(r["updated_at"]))


def assert_ordered(rules, with_score):
    keys = [key(r, with_score) for r in rules]
    assert keys == sorted(keys), [(r["rule_id"], key(r, with_score)) for r in rules]


def ids(rules):
    return [r["rule_id"] for r in rules]


def words_of(rule):
    text = (rule["rule_text"] + " " + " ".join(rule["related_concepts"])).lower()
    return set(re.findall(r"\w+", text))


# --------------------------------------------------------------------------- structured

def test_structured_listing_is_complete_and_ordered(corpus):
    d, made = corpus
    rules, kind = search_rules(d, limit=100)
    assert kind == "structured"
    assert sorted(ids(rules)) == sorted(made)
    for r in rules:
        assert "score" not in r
        assert r == made[r["rule_id"]]
    assert_ordered(rules, False)
    # confidence ties: the more recently updated first
    assert ids(rules).index("GDPR_Access_Dashboard_01") < ids(rules).index(
        "GDPR_Erasure_Request_01")
    assert ids(rules).index("CCPA_Notice_Collection_01") < ids(rules).index("CCPA_OptOut_Sale_01")
    assert ids(rules)[0] == "HIPAA_Phi_Encryption_01"


def test_default_limit_is_10(corpus):
    d, made = corpus
    data = ok(d.get(RULES))
    assert data["count"] == 10 and len(data["rules"]) == 10
    assert isinstance(data["next_cursor"], str)
    assert data["search_type"] == "structured"


FILTER_SETS = [
    {},
    {"policy": "gdpr"},
    {"policy": "CCPA"},
    {"concepts": "data retention,CONSENT"},
    {"min_confidence": "0.7"},
    {"policy": "Gdpr", "min_confidence": "0.5", "concepts": "consent,right of access,"
                                                            "data retention"},
    {"q": "data"},
    {"q": "health records access"},
    {"q": "data consent", "policy": "gdpr"},
    {"q": "retention", "min_confidence": "0.5"},
    {"q": "access", "concepts": "right of access"},
]


@pytest.mark.parametrize("filters", FILTER_SETS, ids=[urlencode(f) or "all" for f in FILTER_SETS])
def test_paging_returns_every_rule_exactly_once(corpus, filters):
    d, _ = corpus
    full, kind = search_rules(d, limit=100, **filters)
    assert kind == ("fulltext" if "q" in filters else "structured")
    assert full, "the filter set should match something"
    assert_ordered(full, "q" in filters)
    for limit in (1, 3, 7):
        paged, kind2 = search_rules(d, limit=limit, **filters)
        assert kind2 == kind
        assert ids(paged) == ids(full), limit
        assert len(set(ids(paged))) == len(paged)


def test_cursor_may_continue_with_another_limit(corpus):
    d, _ = corpus
    full, _ = search_rules(d, limit=100)
    first = ok(d.get(f"{RULES}?limit=3"))
    rest, _ = search_rules(d, limit=5, cursor=first["next_cursor"])
    assert ids(first["rules"]) + ids(rest) == ids(full)


def test_policy_filter_is_case_insensitive(corpus):
    d, made = corpus
    for spelling in ("ccpa", "CCPA", "cCpA"):
        rules, _ = search_rules(d, limit=100, policy=spelling)
        assert sorted(ids(rules)) == sorted(r for r in made if r.startswith("CCPA_"))
    assert search_rules(d, limit=100, policy="SOX")[0] == []
    # the policy is the whole part before the first "_", not a prefix
    assert search_rules(d, limit=100, policy="GDP")[0] == []
    assert search_rules(d, limit=100, policy="RANK")[0] != []


def test_concepts_filter_any_match_whole_names_case_insensitive(corpus):
    d, made = corpus

    def having(*names):
        low = {n.lower() for n in names}
        return sorted(r for r, v in made.items()
                      if low & {c.lower() for c in v["related_concepts"]})

    for q, names in (("data retention", ["data retention"]),
                     ("DATA RETENTION", ["data retention"]),
                     ("consent,phi", ["consent", "phi"]),
                     (" consent , Right Of Access ", ["consent", "right of access"]),
                     ("Löschkonzept", ["löschkonzept"]),
                     ("ПРАВО НА ЗАБВЕНИЕ", ["право на забвение"]),
                     ("GDPR Article 32,nothing like this", ["gdpr article 32"])):
        rules, kind = search_rules(d, limit=100, concepts=q)
        assert kind == "structured"
        assert sorted(ids(rules)) == having(*names), q
        assert_ordered(rules, False)
    # whole names only: no substring or word matches
    for partial in ("data", "retention", "access", "right", "consent marketing"):
        assert search_rules(d, limit=100, concepts=partial)[0] == [], partial


def test_min_confidence_is_inclusive(corpus):
    d, made = corpus
    for mc in ("0", "0.5", "0.75", "0.8", "0.95", "0.99", "1", "1.0"):
        rules, _ = search_rules(d, limit=100, min_confidence=mc)
        assert sorted(ids(rules)) == sorted(r for r, v in made.items()
                                            if v["confidence_score"] >= float(mc)), mc


def test_filters_combine(corpus):
    d, made = corpus
    rules, _ = search_rules(d, limit=100, policy="gdpr", concepts="consent,data retention",
                            min_confidence="0.7")
    assert sorted(ids(rules)) == ["GDPR_Consent_Unbundled_01", "GDPR_Consent_Withdrawal_01",
                                  "GDPR_Retention_EventBased_01"]


# --------------------------------------------------------------------------- full text

def test_fulltext_has_score_and_search_type(corpus):
    d, _ = corpus
    data = ok(d.get(f"{RULES}?q=retention&limit=100"))
    assert data["search_type"] == "fulltext"
    assert data["rules"]
    for r in data["rules"]:
        assert isinstance(r["score"], (int, float)) and r["score"] > 0, r
    data = ok(d.get(f"{RULES}?concepts=consent&limit=100"))
    assert data["search_type"] == "structured"
    assert all("score" not in r for r in data["rules"])


def test_fulltext_matches_text_and_concept_names(corpus):
    d, made = corpus
    rules, _ = search_rules(d, limit=100, q="retention")
    expected = sorted(r for r, v in made.items() if "retention" in words_of(v))
    assert sorted(ids(rules)) == expected
    # a word that only appears in a concept name
    rules, _ = search_rules(d, limit=100, q="pseudonymisation")
    assert ids(rules) == ["GDPR_Pseudo_01"]
    rules, _ = search_rules(d, limit=100, q="MARKETING")
    assert ids(rules) == ["GDPR_Consent_Unbundled_01"]
    assert search_rules(d, limit=100, q="xylophone")[0] == []


def test_multiword_q_matches_any_word_best_first(corpus):
    d, _ = corpus
    rules, _ = search_rules(d, limit=100, q="zebra quokka")
    assert sorted(ids(rules)) == ["RANK_Both_01", "RANK_OneA_01", "RANK_OneB_01"]
    # the rule with both words first, although its confidence is the lowest
    assert ids(rules)[0] == "RANK_Both_01"
    assert rules[0]["score"] > rules[1]["score"]
    assert_ordered(rules, True)
    # all else equal (confidence, length): both words rank above one
    rules, _ = search_rules(d, limit=100, q="okapi narwhal")
    assert ids(rules) == ["RANK_Equal_Two_01", "RANK_Equal_One_01"]
    assert rules[0]["score"] > rules[1]["score"]
    # an unknown word does not hide matches of the others
    rules, _ = search_rules(d, limit=100, q="zebra xylophone")
    assert sorted(ids(rules)) == ["RANK_Both_01", "RANK_OneA_01"]


def test_fulltext_is_case_insensitive_and_unicode(corpus):
    d, _ = corpus
    for q in ("löschung", "LÖSCHUNG", "Löschung", "забвение", "ЗАБВЕНИЕ", "löschkonzept"):
        rules, _ = search_rules(d, limit=100, q=q)
        assert ids(rules) == ["ISO_Intl_Unicode_01"], q
    for q in ("ZEBRA", "Zebra"):
        assert sorted(ids(search_rules(d, limit=100, q=q)[0])) == ["RANK_Both_01",
                                                                    "RANK_OneA_01"]


HOSTILE_Q = ['"', '\\', '(', ')', 'AND', 'OR NOT', '*', '?', ':', '~', '^', '[', '{', '/',
             '"retention', 'retention"', '"retention"', '\\retention', '(retention', 'retention)',
             'retention AND', 'AND retention', 'OR NOT retention', 'NOT', 'retention*', 'ret*',
             'retention?', 'rule_text:retention', 'retention~', 'retention~2', 'retention^10',
             '[retention TO zebra]', '{retention}', '/retention/', '/.*/', 'retention && zebra',
             'retention || zebra', '!retention', '+retention -zebra', '-', '+', '&&', '||', '!',
             "' OR 1=1 --", "}) MATCH (n) DETACH DELETE n //", "$q", "%", "%00", "\u0000",
             '数据保护', 'данные', '🔒🔑', 'e\u0301', '\u202e', '\ufeff', 'ａｂｃ',
             'x' * 1000, ' '.join(['retention'] * 200)[:1000], '* ' * 400, 'a' * 999 + '"',
             '\\' * 1000, '"' * 1000, '( ' * 500]


@pytest.mark.parametrize("q", HOSTILE_Q, ids=range(len(HOSTILE_Q)))
def test_hostile_q_never_fails_the_server(corpus, q):
    d, made = corpus
    r = d.get(f"{RULES}?limit=100&q=" + quote(q, safe=""))
    assert r.status in (200, 400), r
    if r.status == 400:
        # a NUL byte makes the whole query string malformed (no single field at fault)
        err(r, 400, "validation_error", None if "\u0000" in q else "q")
        # only a q without any letter or digit, or an overlong one, is refused
        assert not re.search(r"\w", q.replace("_", "")) or len(q) > 1000, q
        return
    data = ok(r)
    assert data["search_type"] == "fulltext"
    found = set(ids(data["rules"]))
    assert found <= set(made)
    if "retention" in q.lower() and "ret*" not in q:
        assert {"GDPR_Retention_EventBased_01", "GDPR_Retention_Fixed_01"} <= found, q
    ok(d.get("/health"))
    assert len(search_rules(d, limit=100)[0]) == len(made)  # nothing was deleted


def test_overlong_or_blank_q_is_400(corpus):
    d, _ = corpus
    err(d.get(f"{RULES}?q=" + "a" * 1001), 400, "validation_error", "q")
    err(d.get(f"{RULES}?q=" + quote("ab " * 667)), 400, "validation_error", "q")
    # a query string over the server's 8 KiB cap: refused as a whole
    err(d.get(f"{RULES}?q=" + quote("ab " * 5000)), 400, "validation_error")
    for blank in ("", "%20", "%20%20%09"):
        err(d.get(f"{RULES}?q={blank}"), 400, "validation_error", "q")


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=-1", "limit"), ("limit=1.0", "limit"),
    ("limit=ten", "limit"), ("limit=", "limit"), ("limit=1e1", "limit"),
    ("min_confidence=1.01", "min_confidence"), ("min_confidence=-0.1", "min_confidence"),
    ("min_confidence=abc", "min_confidence"), ("min_confidence=", "min_confidence"),
    ("min_confidence=nan", "min_confidence"), ("min_confidence=inf", "min_confidence"),
    ("policy=", "policy"), ("policy=G%20D", "policy"), ("policy=GDPR_X", "policy"),
    ("policy=ABCDEFGHIJKLMNOPQ", "policy"),
    ("concepts=", "concepts"), ("concepts=a,,b", "concepts"), ("concepts=%07", "concepts"),
    ("concepts=" + ",".join("c%d" % i for i in range(21)), "concepts"),
    ("concepts=" + "x" * 101, "concepts"),
    ("cursor=abc", "cursor"), ("cursor=", "cursor"),
    ("q=a&q=b", "q"), ("limit=1&limit=2", "limit"),
    ("sort=score", "sort"), ("search_type=fulltext", "search_type"),
])
def test_bad_search_parameters_are_400(corpus, query, field):
    d, _ = corpus
    err(d.get(f"{RULES}?{query}"), 400, "validation_error", field)


def test_forged_or_foreign_cursors_are_400(corpus):
    d, _ = corpus
    page = ok(d.get(f"{RULES}?limit=2"))
    cur = page["next_cursor"]
    assert isinstance(cur, str) and "2" != cur
    flipped = cur[:5] + ("B" if cur[5] != "B" else "C") + cur[6:]
    for forged in (cur[:-1], cur + "A", flipped, cur[::-1], "2", "MTA", "eyJvZmZzZXQiOjJ9",
                   "A" * 200):
        err(d.get(f"{RULES}?limit=2&cursor=" + quote(forged, safe="")), 400,
            "validation_error", "cursor")
    # bound to its search: another filter set or q refuses it
    for other in ("policy=gdpr", "q=data", "concepts=consent", "min_confidence=0.1"):
        err(d.get(f"{RULES}?limit=2&{other}&cursor=" + quote(cur, safe="")), 400,
            "validation_error", "cursor")
    q_cur = ok(d.get(f"{RULES}?limit=1&q=data"))["next_cursor"]
    err(d.get(f"{RULES}?limit=1&q=consent&cursor=" + quote(q_cur, safe="")), 400,
        "validation_error", "cursor")
    ok(d.get(f"{RULES}?limit=1&q=DATA&cursor=" + quote(q_cur, safe="")))  # same words
