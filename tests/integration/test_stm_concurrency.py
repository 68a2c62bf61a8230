"""
Concurrency (spec §2 "two concurrent creates never get the same id", §3 "every
write is atomic"): parallel feedback, parallel creates of one generated id,
parallel creates of one given id, and mixed PATCH/feedback writers. Each
client thread has its own HTTP connection. Both STM backends.
"""
import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

from conftest import Response, STATUSES, check_entry, create, entry_body, ids, list_all, ok, stats

BASE = "/v1/stm/entries"


def one_shot(port, method, path, body=None, timeout=30):
    """One request on its own connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
    finally:
        conn.close()


def run_parallel(fn, args):
    """Run fn(*a) for every a at once (a barrier lines the threads up)."""
    barrier = threading.Barrier(len(args))

    def go(a):
        barrier.wait(timeout=30)
        return fn(*a)

    with ThreadPoolExecutor(max_workers=len(args)) as pool:
        return list(pool.map(go, args))


def test_20_parallel_feedback_updates(stm_daemon):
    d = stm_daemon
    e = create(d, entry_body(ttl_seconds=3600))
    sid = e["scenario_id"]
    statuses = list(STATUSES) + [None]
    payloads = [{"decision": f"decision {i}", "rationale": f"rationale {i} " + "r" * i,
                 "suggestion": f"suggestion {i}", "final_status": statuses[i % 5]}
                for i in range(20)]
    results = run_parallel(lambda p: one_shot(d.port, "PUT", f"{BASE}/{sid}/feedback", p),
                           [(p,) for p in payloads])
    for p, r in zip(payloads, results):
        got = check_entry(ok(r)["stm_entry"])
        # Each answer shows the entry as that write left it.
        assert got["human_feedback"] == {k: p[k] for k in ("decision", "rationale",
                                                           "suggestion")}
        assert got["final_status"] == p["final_status"]
    final = ok(d.get(f"{BASE}/{sid}"))
    entry = check_entry(final["stm_entry"])
    fb = entry["human_feedback"]
    matches = [p for p in payloads if {k: p[k] for k in ("decision", "rationale",
                                                          "suggestion")} == fb]
    assert len(matches) == 1, f"final feedback is none of the submitted payloads: {fb}"
    assert entry["final_status"] == matches[0]["final_status"], "feedback and final_status " \
        "come from different writes"
    assert final["traceability"] == {"related_ltm_rules": [], "has_human_feedback": True,
                                     "final_status": matches[0]["final_status"]}
    # Nothing else moved.
    for k in ("scenario_id", "requirement_text", "initial_assessment", "created_at",
              "expires_at"):
        assert entry[k] == e[k], k
    assert stats(d)["total_entries"] == 1
    assert stats(d)["entries_with_feedback"] == 1


def test_50_parallel_creates_get_distinct_ids(stm_daemon):
    d = stm_daemon
    body = entry_body(domain="E-Commerce", requirement_number="R2", key_concept="data retention")
    results = run_parallel(lambda i: one_shot(d.port, "POST", BASE,
                                              dict(body, requirement_text=f"run {i}")),
                           [(i,) for i in range(50)])
    base = "ecommerce_r2_data_retention"
    got = {}
    for i, r in enumerate(results):
        e = ok(r, 201)["stm_entry"]
        assert r.header("Location") == f"/v1/stm/entries/{e['scenario_id']}"
        assert e["requirement_text"] == f"run {i}"
        got[e["scenario_id"]] = i
    assert set(got) == {base} | {f"{base}_{n}" for n in range(2, 51)}
    # Every id holds the entry its own create wrote (no overwrite).
    for sid, i in got.items():
        assert ok(d.get(f"{BASE}/{sid}"))["stm_entry"]["requirement_text"] == f"run {i}"
    assert stats(d)["total_entries"] == 50
    assert sorted(ids(list_all(d, limit=7))) == sorted(got)
    assert create(d, body)["scenario_id"] == f"{base}_51"


def test_parallel_creates_of_one_given_id(stm_daemon):
    d = stm_daemon
    sid = "race_r1_given_id"
    results = run_parallel(lambda i: one_shot(d.port, "POST", BASE,
                                              entry_body(sid, requirement_text=f"writer {i}")),
                           [(i,) for i in range(20)])
    codes = sorted(r.status for r in results)
    assert codes == [201] + [409] * 19, codes
    winner = next(i for i, r in enumerate(results) if r.status == 201)
    assert ok(d.get(f"{BASE}/{sid}"))["stm_entry"]["requirement_text"] == f"writer {winner}"
    for r in results:
        if r.status == 409:
            assert r.json["error_type"] == "conflict"
    assert stats(d)["total_entries"] == 1


def test_concurrent_patch_and_feedback_lose_nothing(stm_daemon):
    """Writers touching different fields at once: every field keeps its last write."""
    d = stm_daemon
    e = create(d)
    sid = e["scenario_id"]
    patches = [{"requirement_text": "patched text"},
               {"initial_assessment": {"status": "Pending"}},
               {"initial_assessment": {"rationale": "patched rationale"}},
               {"initial_assessment": {"recommendation": "patched recommendation"}},
               {"final_status": "Compliant"}]
    fbs = [{"decision": f"d{i}", "rationale": f"r{i}", "suggestion": f"s{i}"} for i in range(5)]
    jobs = [("PATCH", f"{BASE}/{sid}", p) for p in patches] + \
           [("PUT", f"{BASE}/{sid}/feedback", f) for f in fbs]
    for _ in range(3):
        results = run_parallel(lambda m, p, b: one_shot(d.port, m, p, b), jobs)
        for r in results:
            ok(r)
    got = ok(d.get(f"{BASE}/{sid}"))["stm_entry"]
    assert got["requirement_text"] == "patched text"
    assert got["initial_assessment"] == {"status": "Pending", "rationale": "patched rationale",
                                         "recommendation": "patched recommendation"}
    assert got["final_status"] == "Compliant"  # feedback without final_status keeps it
    assert got["human_feedback"] in fbs
    assert got["expires_at"] == e["expires_at"] and got["created_at"] == e["created_at"]
    s = stats(d)
    assert s["status_breakdown"]["Pending"] == 1 and s["total_entries"] == 1
    assert s["final_status_breakdown"]["Compliant"] == 1


def test_parallel_deletes_and_reads(stm_daemon):
    """One DELETE wins (204), the others see 404; readers see the entry or 404, never junk."""
    d = stm_daemon
    sid = create(d)["scenario_id"]
    jobs = [("DELETE", f"{BASE}/{sid}")] * 10 + [("GET", f"{BASE}/{sid}")] * 10
    results = run_parallel(lambda m, p: one_shot(d.port, m, p), jobs)
    dels = sorted(r.status for r in results[:10])
    assert dels == [204] + [404] * 9, dels
    for r in results[10:]:
        assert r.status in (200, 404), r
        if r.status == 200:
            check_entry(ok(r)["stm_entry"])
    assert stats(d)["total_entries"] == 0
    assert list_all(d) == []
