"""
Paging (spec §1 "Lists", §6 cursor rules): with limit 1, 2 and 7, paging
returns every matching entry exactly once, newest first, for several filter
sets; cursors the server did not issue — garbled, forged, or issued for
another filter set — are 400. Both STM backends.
"""
import base64
import hashlib
from urllib.parse import quote, urlencode

import pytest

from conftest import create, entry_body, err, ids, list_all, ok

BASE = "/v1/stm/entries"
FB = {"decision": "d", "rationale": "r", "suggestion": "s"}


@pytest.fixture
def corpus(stm_daemon):
    """23 entries over two domains, four statuses, some with feedback. Oldest first."""
    d = stm_daemon
    made = []
    statuses = ["Compliant", "Non-Compliant", "Partially Compliant", "Pending", "Non-Compliant"]
    for i in range(23):
        b = entry_body(domain="alpha" if i % 3 else "Beta-Shop", requirement_number=i,
                       key_concept="paging")
        b["initial_assessment"]["status"] = statuses[i % 5]
        e = create(d, b)
        made.append({"id": e["scenario_id"], "status": statuses[i % 5],
                     "domain": "alpha" if i % 3 else "betashop", "fb": i % 4 == 0,
                     "final": "Compliant" if i % 8 == 0 else None})
        if i % 4 == 0:
            fb = dict(FB, final_status="Compliant") if i % 8 == 0 else FB
            ok(d.put(f"{BASE}/{e['scenario_id']}/feedback", fb))
    return d, made


FILTERS = [
    {},
    {"status": "Non-Compliant"},
    {"has_feedback": "true"},
    {"has_feedback": "false"},
    {"domain": "Beta-Shop"},
    {"status": "Compliant", "domain": "alpha"},
    {"final_status": "Compliant"},
    {"status": "Pending", "has_feedback": "true", "domain": "betashop"},
]


def expected(made, f):
    out = []
    for m in reversed(made):  # newest first
        if "status" in f and m["status"] != f["status"]:
            continue
        if "has_feedback" in f and m["fb"] != (f["has_feedback"] == "true"):
            continue
        if "domain" in f and m["domain"] != f["domain"].lower().replace("-", ""):
            continue
        if "final_status" in f and m["final"] != f["final_status"]:
            continue
        out.append(m["id"])
    return out


@pytest.mark.parametrize("limit", [1, 2, 7])
def test_paging_returns_every_entry_once_newest_first(corpus, limit):
    d, made = corpus
    for f in FILTERS:
        want = expected(made, f)
        got = ids(list_all(d, limit=limit, max_pages=3 * len(made) + 5, **f))
        assert got == want, (limit, f)
        assert len(set(got)) == len(got)
    # A limit as large as the whole list: one page, and null next_cursor.
    data = ok(d.get(BASE + "?limit=1000"))
    assert ids(data["entries"]) == [m["id"] for m in reversed(made)]
    assert data["next_cursor"] is None


def first_page(d, **f):
    data = ok(d.get(BASE + "?" + urlencode(dict(f, limit=2))))
    assert data["next_cursor"], data
    return data["next_cursor"], ids(data["entries"])


def first_cursor(d, **f):
    return first_page(d, **f)[0]


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_garbled_and_forged_cursors_are_400(corpus):
    d, made = corpus
    c = first_cursor(d)
    flipped = c[:5] + ("A" if c[5] != "A" else "B") + c[6:]
    forged_payloads = [b"1", b"18446744073709551615", b"0", b"-1", b"999999." + b"0" * 16,
                       b"5." + hashlib.sha256(b"5").hexdigest()[:16].encode()]
    bad = ["garbage", "AAAA", "!!!!", c[:-1], c + "A", c + "AAAA", flipped, c[::-1],
           c.upper(), c.lower(), "A" * 4000, "=" * 8, c + "=", " " + c, "null", "0", "-1"]
    bad += [b64(p) for p in forged_payloads]
    for cur in bad:
        if cur == c:
            continue
        err(d.get(f"{BASE}?limit=2&cursor={quote(cur, safe='')}"), 400, "validation_error",
            "cursor")
    for raw in ("%FF%FE", "%00", "%", "a%zz"):
        err(d.get(f"{BASE}?limit=2&cursor={raw}"), 400, "validation_error")
    # The real one still works, with any limit (limit is not part of the filter set).
    ok(d.get(f"{BASE}?limit=2&cursor={c}"))
    ok(d.get(f"{BASE}?limit=5&cursor={c}"))


def test_cursor_from_another_filter_set_is_400(corpus):
    d, made = corpus
    c_none = first_cursor(d)
    c_nc, nc_first = first_page(d, status="Non-Compliant")
    c_dom = first_cursor(d, domain="alpha")
    c_fb = first_cursor(d, has_feedback="false")
    mismatches = [
        (c_none, {"status": "Non-Compliant"}), (c_none, {"domain": "alpha"}),
        (c_none, {"has_feedback": "true"}), (c_nc, {}), (c_nc, {"status": "Compliant"}),
        (c_nc, {"status": "Non-Compliant", "domain": "alpha"}),
        (c_nc, {"final_status": "Non-Compliant"}), (c_dom, {"domain": "betashop"}),
        (c_dom, {}), (c_fb, {"has_feedback": "true"}), (c_fb, {}),
    ]
    for cur, f in mismatches:
        err(d.get(BASE + "?" + urlencode(dict(f, limit=2, cursor=cur))), 400,
            "validation_error", "cursor")
    # The same filter set spelled differently is the same canonical set: accepted.
    for cur, f in [(c_nc, {"status": "noncompliant"}), (c_nc, {"status": "Non Compliant"}),
                   (c_dom, {"domain": "ALPHA"}), (c_dom, {"domain": "a-l-p-h-a"})]:
        page = ok(d.get(BASE + "?" + urlencode(dict(f, limit=2, cursor=cur))))
        assert page["count"] >= 0
    # And continuing with the right filters yields the rest of the right list.
    rest, cur = [], c_nc
    while cur:
        page = ok(d.get(BASE + "?" + urlencode({"status": "NonCompliant", "limit": 2,
                                                 "cursor": cur})))
        rest += ids(page["entries"])
        cur = page["next_cursor"]
    assert nc_first + rest == expected(made, {"status": "Non-Compliant"})


def test_cursor_forged_with_the_servers_own_check_is_400(corpus):
    """A client that knows how cursors are built (the source is public) must still not be
    able to make one: the check value has to depend on something only the server knows."""
    d, made = corpus
    c = first_cursor(d)
    try:
        payload = base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)).decode().rpartition(".")[0]
    except ValueError:
        payload = ""
    seq = int(payload) if payload.isdigit() else 1

    def make(p, binding="{}"):  # the construction in src/common/cursor.c
        h = hashlib.sha256(f"memoryd-cursor-v1\nstm\n{p}\n{binding}".encode()).hexdigest()
        return b64(f"{p}.{h[:16]}".encode())
    for p in {seq + 1, max(seq - 1, 1), 10 ** 9}:
        forged = make(str(p))
        if forged != c:
            err(d.get(f"{BASE}?limit=2&cursor={forged}"), 400, "validation_error", "cursor")
