"""
Failed allocations on the request path (the bar: "a failed allocation answers 503 and
the daemon keeps serving"), proven end to end: memoryd runs with an allocator shim
(`failmalloc.c`, LD_PRELOAD) that, while armed, makes every Nth allocation of the whole
process fail — memoryd's own, libmicrohttpd's, jansson's, libcurl's, SQLite's and
glibc's alike. Under every 400th, 100th, 25th and 5th allocation failing, a client sends
a mix of reads and writes across both tiers, one fresh connection per request:

- memoryd never dies, never answers 500, and never answers a valid request with 4xx;
- every answer it manages to send is complete: a 2xx is the right data (a seeded entry or
  rule byte for byte as before), a 503 is `storage_unavailable` with `Retry-After` — the
  full error envelope, or, when even that cannot be allocated, the last-resort body
  prebuilt at start-up (no timestamp, no request id: documented in the README);
  a connection libmicrohttpd could not serve is closed without an answer; every request
  gets its answer or its close within CALL_TIMEOUT;
- disarmed, it serves normally again on its own: /health is 200, every seeded entry and
  rule is unchanged, every write acknowledged with 2xx is there with its content, and a
  write that got 503 or no answer is either absent or complete (spec: the outcome of a
  503'd write is unknown), never half there; the STM count matches what is stored;
- it exits 0 on SIGTERM with a clean log (the harness checks).

Runs with everything embedded (SQLite), with LTM on Neo4j (libcurl), and with STM on Redis
and LTM on Neo4j (hiredis and libcurl: production's set-up). Debian 12's hiredis 0.14.1 is
not safe against failed allocations by itself (its connect aborts through
HIREDIS_OOM_HANDLER, redisBufferWrite dereferences an unchecked sdsempty() after every
complete write); memoryd goes around both (src/store/redis_io.c), and before it did, this
test killed memoryd inside hiredis within seconds. The shim cannot sit in
front of ASan's allocator, so scripts/test.sh runs this module against the Debug build
only; against an ASan binary it fails with a message.
"""
import http.client
import mmap
import os
import shutil
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import (MEMORYD_BIN, RULES, Response, check_entry, check_rule, create, create_rule,
                      entry_body, err, get_raw, list_all, ok, raw_member, rule_body, stats,
                      unique_domain, unique_policy, wait_for)
from test_security import one_shot

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = "/v1/stm/entries"
# Every Nth allocation fails. A request makes a few dozen allocations (libmicrohttpd's
# connection, ours, the store's): at 1 in 400 most requests succeed, at 1 in 5 almost
# none does — both ends and the middle are exercised.
PERIODS = (400, 100, 25, 5)
# libmicrohttpd 0.9.75's poll() loop allocates its descriptor array on every pass; when
# that allocation failed on the pass that picked up a connection a handler thread had just
# resumed, the wake-up was lost and the answer waited for the next connection timeout
# (30 s by default). The event threads use epoll now (src/http/listener.h), whose loop
# does not allocate: no request may go unanswered for CALL_TIMEOUT.
CALL_TIMEOUT = 10
LAST_RESORT = {"status": "error", "error_type": "storage_unavailable",
               "message": "out of memory, try again"}


@pytest.fixture(scope="module")
def shim():
    if "libasan" in subprocess.run(["ldd", MEMORYD_BIN], capture_output=True,
                                   text=True).stdout:
        pytest.fail(f"{MEMORYD_BIN} is an ASan build: the LD_PRELOAD allocator shim cannot "
                    f"sit in front of ASan's allocator; run test_oom.py against build/memoryd",
                    pytrace=False)
    d = tempfile.mkdtemp(prefix="memoryd-oom-")
    so = os.path.join(d, "failmalloc.so")
    subprocess.run(["cc", "-O2", "-std=c11", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
                    "-o", so, os.path.join(HERE, "failmalloc.c")], check=True)
    yield so
    shutil.rmtree(d, ignore_errors=True)


class Control:
    """The shim's control page: period (0 = off) and the count of refused allocations."""

    def __init__(self, path):
        self.path = path
        with open(path, "wb") as f:
            f.write(b"\0" * 4096)
        self.f = open(path, "r+b")
        self.m = mmap.mmap(self.f.fileno(), 4096)

    def arm(self, period):
        self.m[0:4] = struct.pack("<I", period)

    def disarm(self):
        self.arm(0)

    def failed(self):
        return struct.unpack("<Q", self.m[8:16])[0]

    def close(self):
        self.m.close()
        self.f.close()


def call(port, method, path, body=None):
    """One request on a fresh connection: a Response, None when the connection was closed
    or reset without a complete answer, "stalled" when no answer came within
    CALL_TIMEOUT."""
    try:
        return one_shot(port, method, path, body, timeout=CALL_TIMEOUT)
    except TimeoutError:
        return "stalled"
    except (ConnectionError, http.client.HTTPException, OSError):
        return None


def check_503(a, path):
    assert a.header("Retry-After"), f"503 without Retry-After on {path}: {a!r}"
    if a.json == LAST_RESORT:
        return
    if path in ("/health", "/ready"):  # 503 with the report in data
        assert a.json and a.json.get("status") == "error", f"{path}: {a!r}"
        return
    err(a, 503, "storage_unavailable")


@pytest.mark.parametrize("backends", [("embedded", "embedded"), ("embedded", "neo4j"),
                                      ("redis", "neo4j")],
                         ids=["embedded", "embedded-neo4j", "redis-neo4j"])
def test_failed_allocations_answer_503_and_lose_nothing(daemon, request, shim, backends):
    stm, ltm = backends
    ctl = Control(os.path.join(tempfile.mkdtemp(prefix="memoryd-oomctl-"), "ctl"))
    kw = {}
    if ltm == "neo4j":
        kw["neo4j"] = request.getfixturevalue("neo4j_graph")
    d = daemon(stm=stm, ltm=ltm, LD_PRELOAD=shim, MD_FAILMALLOC_CTL=ctl.path,
               **kw)
    try:
        run(d, ctl)
    except AssertionError as e:
        time.sleep(0.5)  # access lines are written in batches
        raise AssertionError(f"{e}\n--- memoryd log (tail):\n{d.read_log()[-5000:]}") from None
    finally:
        ctl.disarm()
        ctl.close()


def run(d, ctl):
    domain, policy = unique_domain(), unique_policy()
    # ---- seed, disarmed
    seeded = [create(d, entry_body(f"{domain}_r{i}_seed"))["scenario_id"] for i in range(1, 9)]
    rules = [create_rule(d, rule_body(seeded[i:i + 2], policy=policy, key_concept=f"seed {i}",
                                      concepts=("data retention", f"concept {i}")))["rule_id"]
             for i in range(3)]
    entry_text = {sid: get_raw(d, sid) for sid in seeded}
    rule_text = {rid: raw_member(d.get(f"{RULES}/{rid}").body, "ltm_rule") for rid in rules}
    n_before = stats(d)["total_entries"]

    acked_entries, unknown_entries = {}, {}   # sid -> body sent
    acked_rules, unknown_rules = {}, {}       # rule_id -> body sent
    seen = {"2xx": 0, "503": 0, "dropped": 0, "stalled": 0}
    n = 0

    def requests(n):
        sid, rid = seeded[n % len(seeded)], rules[n % len(rules)]
        new_sid = f"{domain}_r{100 + n}_oom"
        new_rid = f"{policy}_OomRule{n}_01"
        return [
            ("GET", f"{BASE}/{sid}", None, ("entry", sid)),
            ("POST", BASE, entry_body(new_sid, requirement_text=f"requirement {new_sid}"),
             ("create", new_sid)),
            ("GET", f"{RULES}/{rid}", None, ("rule", rid)),
            ("GET", f"{RULES}?q=retention&limit=5", None, ("search", None)),
            ("POST", RULES, rule_body([sid], rule_id=new_rid, text=f"rule {new_rid} text",
                                      concepts=("data retention", f"oom {n}")),
             ("create_rule", new_rid)),
            ("GET", f"{BASE}?limit=5", None, ("list", None)),
            ("GET", f"/v1/trace/{sid}", None, ("trace", sid)),
            ("GET", "/health", None, ("health", None)),
            ("GET", "/metrics", None, ("metrics", None)),
        ]

    for period in PERIODS:
        ctl.arm(period)
        for _ in range(12):
            n += 1
            for method, path, body, (kind, key) in requests(n):
                a = call(d.port, method, path, body)
                assert d.proc.poll() is None, \
                    f"memoryd died under failing allocations:\n{d.read_log()[-4000:]}"
                if a is None or a == "stalled":
                    seen["dropped" if a is None else "stalled"] += 1
                    if a == "stalled":
                        print(f"stalled: {method} {path} (allocation period {period})")
                    if kind == "create":
                        unknown_entries[key] = body
                    elif kind == "create_rule":
                        unknown_rules[key] = body
                    continue
                assert a.status != 500, f"{method} {path} answered 500: {a!r}"
                if a.status == 503:
                    seen["503"] += 1
                    check_503(a, path)
                    if kind == "create":
                        unknown_entries[key] = body
                    elif kind == "create_rule":
                        unknown_rules[key] = body
                    continue
                assert 200 <= a.status < 300, f"{method} {path}: {a!r}"
                seen["2xx"] += 1
                check_2xx(a, kind, key, body, entry_text, rule_text, acked_entries, acked_rules)
    failed = ctl.failed()
    ctl.disarm()
    assert failed > 0, "the shim refused no allocation: the test proved nothing"
    assert seen["503"] + seen["dropped"] > 0, f"no request was hit: {seen}"
    assert seen["2xx"] > 0, f"nothing succeeded while armed: {seen}"
    assert seen["stalled"] == 0, f"requests without an answer after {CALL_TIMEOUT} s: {seen}"
    print(f"armed: {failed} allocations refused; answers {seen}")

    # ---- disarmed: service resumes by itself, and nothing was lost or corrupted
    wait_for(lambda: (call(d.port, "GET", "/health") or Response(0, [], "")).status == 200, 30,
             what="/health to be 200 again")
    for sid, text in entry_text.items():
        assert get_raw(d, sid) == text, f"seeded entry {sid} changed"
    for rid, text in rule_text.items():
        r = d.get(f"{RULES}/{rid}")
        assert r.status == 200 and raw_member(r.body, "ltm_rule") == text, \
            f"seeded rule {rid} changed: {r!r}"
    for sid, body in acked_entries.items():
        same_entry(ok(d.get(f"{BASE}/{sid}"))["stm_entry"], body)
    present = 0
    for sid, body in unknown_entries.items():
        r = d.get(f"{BASE}/{sid}")
        assert r.status in (200, 404), f"{sid}: {r!r}"
        if r.status == 200:
            present += 1
            same_entry(ok(r)["stm_entry"], body)
    for rid, body in acked_rules.items():
        same_rule(ok(d.get(f"{RULES}/{rid}"))["ltm_rule"], body)
    for rid, body in unknown_rules.items():
        r = d.get(f"{RULES}/{rid}")
        assert r.status in (200, 404), f"{rid}: {r!r}"
        if r.status == 200:
            same_rule(ok(r)["ltm_rule"], body)
    total = n_before + len(acked_entries) + present
    assert stats(d)["total_entries"] == total, (stats(d), total)
    assert len(list_all(d)) == total
    # and it keeps serving writes normally
    create(d, entry_body(f"{domain}_r999_after"))
    assert ctl.failed() == failed, "allocations refused while disarmed"


def same_entry(e, body):
    check_entry(e)
    assert e["scenario_id"] == body["scenario_id"]
    assert e["requirement_text"] == body["requirement_text"]
    assert e["initial_assessment"] == body["initial_assessment"]


def same_rule(r, body):
    check_rule(r)
    assert r["rule_id"] == body["rule_id"]
    assert r["rule_text"] == body["rule_text"]
    assert r["related_concepts"] == body["related_concepts"]
    assert r["source_scenario_ids"] == body["source_scenario_ids"]


def check_2xx(a, kind, key, body, entry_text, rule_text, acked_entries, acked_rules):
    if kind == "metrics":
        assert a.status == 200 and "memoryd_" in a.body, a
        return
    if kind == "health":
        assert a.json and a.json.get("status") == "success", a
        return
    expected = 201 if kind in ("create", "create_rule") else 200
    data = ok(a, expected)
    if kind == "entry":
        assert raw_member(a.body, "stm_entry") == entry_text[key][1], f"entry {key}: {a!r}"
    elif kind == "rule":
        assert raw_member(a.body, "ltm_rule") == rule_text[key], f"rule {key}: {a!r}"
    elif kind == "create":
        same_entry(data["stm_entry"], body)
        acked_entries[key] = body
    elif kind == "create_rule":
        same_rule(data["ltm_rule"], body)
        acked_rules[key] = body
    elif kind == "search":
        for r in data["rules"]:
            check_rule(r, with_score=True)
    elif kind == "list":
        for e in data["entries"]:
            check_entry(e)
    elif kind == "trace":
        assert data, a
