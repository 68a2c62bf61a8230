"""
The answers cache (src/api/api_cache.c, src/cache/): never a stale answer.

Every check follows one pattern: each read is made twice before a write and
the second read must be a cache hit (memoryd_cache_hits_total moves by one
per read, misses do not move), so the answer is known to sit in the cache;
then the write; then one read. That read must equal what the stores say —
the same read again after POST /v1/cache/invalidate has emptied the cache —
and, for the reads the write affects, differ from the cached answer (else
the check would prove nothing); the reads it does not affect must still be
served unchanged. Explicit assertions on the new values follow.

Covered: STM get after feedback / patch / ttl / delete / create-after-delete
(both STM backends); feedback and patch written through the cache (the next
read a hit equal to the stores), also under racing writers; LTM rule get, search (full-text and structured),
concepts, rules of a concept, history, audit and trace after create /
patch / add_source_scenario_ids / promote / delete, in_stm after the source
entry is created and deleted, related_ltm_rules after promote and delete,
audit's has_human_feedback after feedback (LTM embedded here; the LTM suite
covers Neo4j); answers depending on an entry that expires, also when the
read that cached them was slow (Redis paused); two daemons on one Redis
database and one Neo4j (peer invalidation over pub/sub, the explicit
invalidation reaching the peer, the resync after the subscription drops and
on the first subscription of a daemon that started while Redis was down);
POST /v1/cache/invalidate counts and validation.
"""
import http.client
import json
import threading
import time
import uuid
from urllib.parse import quote

from conftest import (TimedClient, cache_counters, create, create_rule, entry_body, err,
                      feedback_body, give_feedback, now_ms, ok, parse_ts, promote, rule_body,
                      unique_domain, unique_policy)

STM = "/v1/stm/entries"
RULES = "/v1/ltm/rules"


# --------------------------------------------------------------------------- helpers

def answer(resp):
    """What a read answered, comparable across reads: (status, data) or (status, error_type)."""
    assert resp.json is not None, f"not JSON: {resp!r}"
    if resp.status == 200:
        return 200, resp.json["data"]
    assert resp.json["status"] == "error", resp
    return resp.status, resp.json["error_type"]


def read_cached(d, paths, settle_s=1.0):
    """Read every path twice; the second round must be served from the cache.

    Returns {path: data}. Each path must answer 200 (only answers are cached).
    settle_s: on a Redis-backed daemon, invalidations of the peers' last
    writes may still be on their way (pub/sub is asynchronous), and a daemon
    that has just started clears its cache once it has subscribed; either can
    turn the second round into misses, so the two rounds are repeated for up
    to settle_s (a daemon that does not cache still fails)."""
    deadline = time.monotonic() + settle_s
    while True:
        first = {p: answer(d.get(p)) for p in paths}
        hits, misses, _ = cache_counters(d)
        second = {p: answer(d.get(p)) for p in paths}
        hits2, misses2, _ = cache_counters(d)
        for p in paths:
            assert first[p][0] == 200, f"GET {p} before the write: {first[p]}"
        if (hits2 - hits, misses2 - misses) == (len(paths), 0) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for p in paths:
        assert second[p] == first[p], f"GET {p} changed between two reads without a write"
    assert (hits2 - hits, misses2 - misses) == (len(paths), 0), \
        f"second reads of {len(paths)} paths: {hits2 - hits} hits, {misses2 - misses} misses " \
        f"(every one should have been a hit)"
    return {p: second[p][1] for p in paths}


def invalidate_all(d):
    data = ok(d.post("/v1/cache/invalidate"))
    assert set(data) == {"invalidated"}
    return data["invalidated"]


def through_write(d, changed, unchanged, write):
    """Cache `changed` + `unchanged`, run write(), then read each once.

    Every answer after the write must equal the stores' answer (read again
    with the cache emptied); `changed` reads must differ from their cached
    answer, `unchanged` ones must not. Returns {path: (status, data|error_type)}."""
    before = read_cached(d, list(changed) + list(unchanged))
    write()
    served = {p: answer(d.get(p)) for p in list(changed) + list(unchanged)}
    invalidate_all(d)
    truth = {p: answer(d.get(p)) for p in served}
    for p in served:
        assert served[p] == truth[p], \
            f"STALE: GET {p} after the write served\n  {json.dumps(served[p])}\n" \
            f"while the stores say\n  {json.dumps(truth[p])}"
    for p in changed:
        assert served[p] != (200, before[p]), \
            f"GET {p}: the write did not change this answer (the test expects it to)"
    for p in unchanged:
        assert served[p] == (200, before[p]), f"GET {p}: changed by a write that should not"
    return served


def run_threads(fn, n, timeout=60):
    """Run fn(0) … fn(n-1) in n threads at once and wait for them."""
    threads = [threading.Thread(target=fn, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)


def data_of(served, path):
    status, data = served[path]
    assert status == 200, f"GET {path}: {status} {data}"
    return data


def fb(decision="Change the status", final_status=None):
    b = feedback_body(decision=decision)
    if final_status is not None:
        b["final_status"] = final_status
    return b


# --------------------------------------------------------------------------- STM

def test_stm_get_is_never_stale_after_a_write(stm_daemon):
    d = stm_daemon
    sid = create(d)["scenario_id"]
    path = f"{STM}/{sid}"

    body = fb("Expert decision 1", final_status="Compliant")
    served = through_write(d, [path], [], lambda: ok(d.put(f"{path}/feedback", body)))
    e = data_of(served, path)["stm_entry"]
    assert e["human_feedback"] == {k: body[k] for k in ("decision", "rationale", "suggestion")}
    assert e["final_status"] == "Compliant"
    assert data_of(served, path)["traceability"]["has_human_feedback"] is True

    served = through_write(d, [path], [], lambda: ok(d.patch(path, {
        "requirement_text": "Patched requirement text.",
        "initial_assessment": {"status": "Pending"}})))
    e = data_of(served, path)["stm_entry"]
    assert e["requirement_text"] == "Patched requirement text."
    assert e["initial_assessment"]["status"] == "Pending"

    served = through_write(d, [path], [], lambda: ok(d.patch(path, {"final_status": None})))
    assert data_of(served, path)["stm_entry"]["final_status"] is None
    assert data_of(served, path)["traceability"]["final_status"] is None

    new_expiry = {}
    served = through_write(d, [path], [], lambda: new_expiry.update(
        ok(d.put(f"{path}/ttl", {"ttl_seconds": 7200}))))
    assert data_of(served, path)["stm_entry"]["expires_at"] == new_expiry["expires_at"]

    def delete():
        assert d.delete(path).status == 204
    served = through_write(d, [path], [], delete)
    assert served[path] == (404, "not_found")

    # Create after delete: the 404s must not have been remembered either.
    for _ in range(2):
        err(d.get(path), 404, "not_found")
    create(d, entry_body(sid, requirement_text="Created again after the delete."))
    r = ok(d.get(path))
    assert r["stm_entry"]["requirement_text"] == "Created again after the delete."
    assert r["stm_entry"]["human_feedback"] is None

    # And delete + create between two cached reads.
    def delete_and_create():
        assert d.delete(path).status == 204
        create(d, entry_body(sid, requirement_text="Third incarnation."))
    served = through_write(d, [path], [], delete_and_create)
    assert data_of(served, path)["stm_entry"]["requirement_text"] == "Third incarnation."


def read_counted(d, path):
    """GET path once; returns (status, data|error_type, hits moved, misses moved)."""
    h0, m0, _ = cache_counters(d)
    a = answer(d.get(path))
    h1, m1, _ = cache_counters(d)
    return a[0], a[1], h1 - h0, m1 - m0


def test_stm_updates_are_written_through(stm_daemon):
    """Feedback and a patch that changes something store the entry's new GET
    answer in the cache: the next read is a hit, equal to the stores' answer
    (links to promoted rules included, in their order)."""
    d = stm_daemon
    sid = create(d)["scenario_id"]
    path = f"{STM}/{sid}"
    ok(d.put(f"{path}/feedback", fb("First feedback")))  # promote needs it
    policy = unique_policy()
    rules = sorted(promote(d, sid, {"rule_text": f"Written-through rule {k}.",
                                    "related_concepts": [f"write through {k}"],
                                    "policy": policy, "key_concept": f"wt{k}"})["rule_id"]
                   for k in ("b", "a"))
    invalidate_all(d)

    def check_hit_equals_stores(what):
        status, served, hits, misses = read_counted(d, path)
        assert (hits, misses) == (1, 0), f"GET after {what}: {hits} hits, {misses} misses " \
                                         f"(the write should have stored the answer)"
        assert status == 200, served
        invalidate_all(d)
        status2, truth, hits2, misses2 = read_counted(d, path)
        assert (status2, hits2, misses2) == (200, 0, 1)
        assert served == truth, f"written-through answer after {what}\n  " \
                                f"{json.dumps(served)}\nwhile the stores say\n  {json.dumps(truth)}"
        return served

    ok(d.put(f"{path}/feedback", fb("Written through", final_status="Non-Compliant")))
    served = check_hit_equals_stores("feedback")
    assert served["traceability"] == {"related_ltm_rules": rules, "has_human_feedback": True,
                                      "final_status": "Non-Compliant"}
    assert served["stm_entry"]["human_feedback"]["decision"] == "Written through"

    ok(d.patch(path, {"requirement_text": "Patched and written through."}))
    served = check_hit_equals_stores("patch")
    assert served["stm_entry"]["requirement_text"] == "Patched and written through."
    assert served["traceability"]["related_ltm_rules"] == rules

    # creates are not written through (new entries are not being read yet)
    sid2 = create(d)["scenario_id"]
    status, _, hits, misses = read_counted(d, f"{STM}/{sid2}")
    assert (status, hits, misses) == (200, 0, 1)


def test_concurrent_updates_never_leave_a_stale_answer(stm_daemon):
    """Writers racing on one entry: whichever store write lands last, the
    cached answer afterwards is the stores' answer (a write-through only
    counts when no other write to the entry bumped in between)."""
    d = stm_daemon
    sid = create(d)["scenario_id"]
    path = f"{STM}/{sid}"
    for rnd in range(20):
        errors = []

        def writer(k):
            cl = TimedClient(d.port, 30)
            try:
                for i in range(6):
                    if (k + i) % 2:
                        body = fb(f"round {rnd} writer {k} write {i}")
                        r, _ = cl.request("PUT", f"{path}/feedback", body)
                    else:
                        r, _ = cl.request("PATCH", path,
                                          {"requirement_text": f"round {rnd} writer {k} write {i}"})
                    if r.status != 200:
                        errors.append((r.status, r.body[:200]))
                    cl.request("GET", path)  # readers in the mix
            finally:
                cl.close()

        run_threads(writer, 6)
        assert not errors, errors[:3]
        served = answer(d.get(path))
        invalidate_all(d)
        truth = answer(d.get(path))
        assert served == truth, f"round {rnd}: STALE after concurrent writes\n  " \
                                f"{json.dumps(served)}\nwhile the stores say\n  {json.dumps(truth)}"


def test_ltm_reads_are_never_stale_after_a_write(stm_daemon):
    """LTM embedded, both STM backends: every cached LTM (and cross-tier) read
    against every kind of LTM write."""
    d = stm_daemon
    dom = unique_domain()
    policy = unique_policy()
    word = "zyx" + uuid.uuid4().hex[:8].replace("0", "a")  # one unique full-text token
    c1, c2 = f"cache concept {word}", f"second concept {word}"
    s1 = create(d, entry_body(f"{dom}_r1_first"))["scenario_id"]
    s2 = create(d, entry_body(f"{dom}_r2_second"))["scenario_id"]
    give_feedback(d, s1, final_status="Compliant")
    give_feedback(d, s2, final_status="Non-Compliant")
    r1 = create_rule(d, rule_body([s1], concepts=[c1], policy=policy, key_concept="cache one",
                                  text=f"First rule about {word} retention."))["rule_id"]

    rule, hist, audit = f"{RULES}/{r1}", f"{RULES}/{r1}/history", f"{RULES}/{r1}/audit"
    q, pol = f"{RULES}?q={word}", f"{RULES}?policy={policy}"
    concepts, crules = "/v1/ltm/concepts", f"/v1/ltm/concepts/{quote(c1, safe='')}/rules"
    trace1, trace2 = f"/v1/trace/{s1}", f"/v1/trace/{s2}"
    stm1, stm2 = f"{STM}/{s1}", f"{STM}/{s2}"

    # 1. create: a second rule on the same concept, policy, word and source
    r2 = {}
    served = through_write(
        d, [q, pol, concepts, crules, audit, trace1, stm1], [rule, hist, trace2, stm2],
        lambda: r2.update(create_rule(d, rule_body(
            [s1], concepts=[c1], policy=policy, key_concept="cache two",
            text=f"Second rule about {word} consent."))))
    r2 = r2["rule_id"]
    assert {x["rule_id"] for x in data_of(served, q)["rules"]} == {r1, r2}
    assert {x["rule_id"] for x in data_of(served, pol)["rules"]} == {r1, r2}
    assert {x["rule_id"] for x in data_of(served, crules)["rules"]} == {r1, r2}
    assert {"name": c1, "rule_count": 2} in data_of(served, concepts)["concepts"]
    assert sorted(data_of(served, stm1)["traceability"]["related_ltm_rules"]) == sorted([r1, r2])
    assert data_of(served, trace1)["traceability_summary"]["derived_rules_count"] == 2

    # 2. patch: text and confidence
    new_text = f"First rule about {word} retention, revised."
    served = through_write(
        d, [rule, q, pol, crules, hist, audit, trace1], [concepts, stm1, trace2, stm2],
        lambda: ok(d.patch(rule, {"rule_text": new_text, "confidence_score": 0.9})))
    assert data_of(served, rule)["ltm_rule"]["rule_text"] == new_text
    assert data_of(served, rule)["ltm_rule"]["version"] == 2
    assert [v["version"] for v in data_of(served, hist)["versions"]] == [1, 2]
    assert data_of(served, audit)["audit_metadata"]["total_versions"] == 2
    assert data_of(served, audit)["audit_metadata"]["confidence_score"] == 0.9
    assert new_text in [x["rule_text"] for x in data_of(served, trace1)["derived_ltm_rules"]]

    # 3. add_source_scenario_ids: s2 becomes a source of r1
    served = through_write(
        d, [rule, hist, audit, trace1, trace2, stm2, q, pol, crules], [concepts, stm1],
        lambda: ok(d.patch(rule, {"add_source_scenario_ids": [s2]})))
    srcs = data_of(served, rule)["traceability"]["source_scenarios"]
    assert [(s["scenario_id"], s["in_stm"]) for s in srcs] == [(s1, True), (s2, True)]
    assert data_of(served, stm2)["traceability"]["related_ltm_rules"] == [r1]
    assert [x["rule_id"] for x in data_of(served, trace2)["derived_ltm_rules"]] == [r1]
    assert data_of(served, audit)["audit_metadata"]["source_count"] == 2

    # 4. promote s2 into a third rule (a new concept)
    r3 = {}
    served = through_write(
        d, [q, pol, concepts, trace2, stm2], [rule, hist, audit, crules, trace1, stm1],
        lambda: r3.update(promote(d, s2, {"rule_text": f"Promoted rule about {word}.",
                                          "related_concepts": [c2], "policy": policy,
                                          "key_concept": "cache three"})))
    r3 = r3["rule_id"]
    assert sorted(data_of(served, stm2)["traceability"]["related_ltm_rules"]) == sorted([r1, r3])
    assert {x["rule_id"] for x in data_of(served, trace2)["derived_ltm_rules"]} == {r1, r3}
    assert {x["rule_id"] for x in data_of(served, q)["rules"]} == {r1, r2, r3}
    assert {"name": c2, "rule_count": 1} in data_of(served, concepts)["concepts"]

    # 5. delete r1: gone from every read, and from both entries' related rules
    def delete_r1():
        assert d.delete(rule).status == 204
    served = through_write(
        d, [rule, hist, audit, q, pol, concepts, crules, trace1, trace2, stm1, stm2], [],
        delete_r1)
    for p in (rule, hist, audit):
        assert served[p] == (404, "not_found"), (p, served[p])
    assert {x["rule_id"] for x in data_of(served, q)["rules"]} == {r2, r3}
    assert {x["rule_id"] for x in data_of(served, crules)["rules"]} == {r2}
    assert {"name": c1, "rule_count": 1} in data_of(served, concepts)["concepts"]
    assert data_of(served, stm1)["traceability"]["related_ltm_rules"] == [r2]
    assert data_of(served, stm2)["traceability"]["related_ltm_rules"] == [r3]
    assert {x["rule_id"] for x in data_of(served, trace2)["derived_ltm_rules"]} == {r3}


def test_in_stm_and_has_human_feedback_follow_stm_writes(stm_daemon):
    d = stm_daemon
    dom = unique_domain()
    s3, s4 = f"{dom}_r3_later", f"{dom}_r4_reviewed"
    r4 = create_rule(d, sources=[s3])["rule_id"]  # s3 has no STM entry yet
    create(d, entry_body(s4))
    r5 = create_rule(d, sources=[s4])["rule_id"]
    rule4, trace3 = f"{RULES}/{r4}", f"/v1/trace/{s3}"
    audit5, trace4, stm4 = f"{RULES}/{r5}/audit", f"/v1/trace/{s4}", f"{STM}/{s4}"

    served = through_write(d, [rule4, trace3], [audit5],
                           lambda: create(d, entry_body(s3)))
    assert data_of(served, rule4)["traceability"]["source_scenarios"][0]["in_stm"] is True
    assert data_of(served, trace3)["traceability_summary"]["has_stm_entry"] is True
    assert data_of(served, trace3)["stm_entry"]["scenario_id"] == s3

    def delete_s3():
        assert d.delete(f"{STM}/{s3}").status == 204
    served = through_write(d, [rule4, trace3], [audit5], delete_s3)
    assert data_of(served, rule4)["traceability"]["source_scenarios"][0]["in_stm"] is False
    assert data_of(served, trace3)["stm_entry"] is None

    assert ok(d.get(audit5))["source_scenarios"][0]["has_human_feedback"] is False
    served = through_write(d, [audit5, trace4, stm4], [rule4],
                           lambda: give_feedback(d, s4, final_status="Compliant"))
    src = data_of(served, audit5)["source_scenarios"][0]
    assert src["has_human_feedback"] is True and src["final_status"] == "Compliant"
    assert data_of(served, trace4)["traceability_summary"]["has_human_feedback"] is True


def test_answers_depending_on_an_entry_never_outlive_it(stm_daemon):
    """A 2 s entry (MEMORY_STM_MIN_TTL_SECONDS=1): its GET, the rule get that
    shows it in_stm, its trace and the rule's audit are cached, and right after
    the expiry every one of them answers without it."""
    d = stm_daemon
    sid = create(d, entry_body(unique_domain() + "_r1_short", ttl_seconds=2))["scenario_id"]
    give_feedback(d, sid)
    rid = create_rule(d, sources=[sid])["rule_id"]
    stm, rule, trace, audit = (f"{STM}/{sid}", f"{RULES}/{rid}", f"/v1/trace/{sid}",
                               f"{RULES}/{rid}/audit")
    before = read_cached(d, [stm, rule, trace, audit])
    expires = parse_ts(before[stm]["stm_entry"]["expires_at"])
    assert before[rule]["traceability"]["source_scenarios"][0]["in_stm"] is True
    delay = (expires + 60 - now_ms()) / 1000.0
    assert delay > 0, "the entry expired before its answers were cached (slow machine?)"
    time.sleep(delay)

    err(d.get(stm), 404, "not_found")
    assert ok(d.get(rule))["traceability"]["source_scenarios"][0]["in_stm"] is False
    t = ok(d.get(trace))
    assert t["stm_entry"] is None and t["traceability_summary"]["has_stm_entry"] is False
    assert t["snapshot"] is not None  # evidence outlives STM
    a = ok(d.get(audit))
    assert a["source_scenarios"][0]["in_stm"] is False


# --------------------------------------------------------------------------- invalidate

def test_invalidate_counts_exactly_what_it_drops(daemon):
    d = daemon(MEMORY_STM_MIN_TTL_SECONDS="1")
    assert invalidate_all(d) == 0
    sids = [create(d)["scenario_id"] for _ in range(3)]
    rid = create_rule(d, sources=[sids[0]])["rule_id"]
    paths = [f"{STM}/{s}" for s in sids] + [f"{RULES}/{rid}", f"{RULES}/{rid}/history"]
    read_cached(d, paths)
    assert cache_counters(d)[2] == 5  # memoryd_cache_entries

    r = ok(d.post("/v1/cache/invalidate", {"prefix": "/v1/stm/entries/"}))
    assert r == {"invalidated": 3}
    assert cache_counters(d)[2] == 2
    # the LTM answers are still served from the cache, the STM ones are not
    h, m, _ = cache_counters(d)
    for p in paths:
        ok(d.get(p))
    h2, m2, _ = cache_counters(d)
    assert (h2 - h, m2 - m) == (2, 3)

    assert ok(d.post("/v1/cache/invalidate", {"prefix": "/v1/nothing/"})) == {"invalidated": 0}
    assert ok(d.post("/v1/cache/invalidate", {"prefix": f"{RULES}/{rid}/"})) == \
        {"invalidated": 1}
    assert ok(d.post("/v1/cache/invalidate", {})) == {"invalidated": 4}
    assert cache_counters(d)[2] == 0
    read_cached(d, paths[:2])
    assert ok(d.post("/v1/cache/invalidate", {"prefix": ""})) == {"invalidated": 2}
    read_cached(d, paths)
    assert invalidate_all(d) == 5  # no body at all
    assert invalidate_all(d) == 0


def test_invalidate_validation(daemon):
    d = daemon()
    sid = create(d)["scenario_id"]
    read_cached(d, [f"{STM}/{sid}"])
    for body, field in (({"prefix": 5}, "prefix"), ({"prefix": None}, "prefix"),
                        ({"prefix": ["/v1/"]}, "prefix"), ({"prefix": {"a": 1}}, "prefix"),
                        ({"prefix": True}, "prefix"), ({"prefix": "/v1/\n"}, "prefix"),
                        ({"prefix": "/v1/" + "x" * 600}, "prefix"),
                        ({"prefx": "/v1/"}, "prefx"), ({"prefix": "/v1/", "all": True}, "all")):
        err(d.post("/v1/cache/invalidate", body), 400, "validation_error", field)
    err(d.request("POST", "/v1/cache/invalidate", raw=b"[]",
                  headers={"Content-Type": "application/json"}), 400, "validation_error")
    err(d.request("POST", "/v1/cache/invalidate", raw=b'{"prefix":',
                  headers={"Content-Type": "application/json"}), 400, "validation_error")
    err(d.request("POST", "/v1/cache/invalidate", raw=b'{"prefix":"/v1/"}',
                  headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")
    err(d.post("/v1/cache/invalidate?prefix=/v1/", {}), 400, "validation_error", "prefix")
    # nothing was dropped by the refused requests
    assert cache_counters(d)[2] == 1
    assert invalidate_all(d) == 1


# --------------------------------------------------------------------------- peers

def poll(fn, timeout, what):
    """Call fn() until it returns a truthy value (returned) or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"within {timeout}s: {what}")


def test_two_daemons_on_one_redis_share_invalidations(daemon, neo4j_graph):
    """Daemons A and B on the same Redis database and the same Neo4j: what B
    writes, A serves within 2 s although A had it cached."""
    a = daemon(stm="redis", ltm="neo4j", neo4j=neo4j_graph)
    b = daemon(stm="redis", ltm="neo4j", neo4j=neo4j_graph, share_db=a)
    assert (a.redis.port, a.redis_db) == (b.redis.port, b.redis_db)
    sid = create(b)["scenario_id"]
    rid = create_rule(b, sources=[sid])["rule_id"]
    stm, rule, trace = f"{STM}/{sid}", f"{RULES}/{rid}", f"/v1/trace/{sid}"

    # STM: feedback written through B
    read_cached(a, [stm, rule, trace], settle_s=2)
    body = fb("Decided on daemon B", final_status="Compliant")
    ok(b.put(f"{stm}/feedback", body))
    poll(lambda: ok(a.get(stm))["stm_entry"]["final_status"] == "Compliant", 2,
         "daemon A still serves the entry as it was before B's feedback")
    assert ok(a.get(stm))["stm_entry"]["human_feedback"]["decision"] == "Decided on daemon B"
    poll(lambda: ok(a.get(trace))["traceability_summary"]["has_human_feedback"], 2,
         "daemon A still serves the trace as it was before B's feedback")

    # LTM: a patch through B
    read_cached(a, [rule, stm], settle_s=2)
    ok(b.patch(rule, {"rule_text": "Rewritten on daemon B.", "confidence_score": 0.75}))
    poll(lambda: ok(a.get(rule))["ltm_rule"]["rule_text"] == "Rewritten on daemon B.", 2,
         "daemon A still serves the rule as it was before B's patch")
    assert ok(a.get(rule))["ltm_rule"]["version"] == 2

    # LTM: a delete through B reaches A's rule get and the entry's related rules
    read_cached(a, [rule, stm], settle_s=2)
    assert ok(a.get(stm))["traceability"]["related_ltm_rules"] == [rid]
    assert b.delete(rule).status == 204
    poll(lambda: a.get(rule).status == 404, 2, "daemon A still serves the deleted rule")
    poll(lambda: ok(a.get(stm))["traceability"]["related_ltm_rules"] == [], 2,
         "daemon A still lists the deleted rule in related_ltm_rules")

    # STM: a delete through B reaches A's entry and the in_stm of a rule citing it
    rule2 = f"{RULES}/{create_rule(b, sources=[sid])['rule_id']}"
    read_cached(a, [stm, rule2], settle_s=2)
    assert ok(a.get(rule2))["traceability"]["source_scenarios"][0]["in_stm"] is True
    assert b.delete(stm).status == 204
    poll(lambda: a.get(stm).status == 404, 2, "daemon A still serves the deleted entry")
    poll(lambda: ok(a.get(rule2))["traceability"]["source_scenarios"][0]["in_stm"] is False, 2,
         "daemon A still shows the deleted entry in_stm")


def test_a_burst_of_writes_on_one_daemon_reaches_the_peer(daemon):
    """B's publisher merges queued invalidations into one message per burst: 16
    threads writing feedback through B at once, every entry A had cached shows the
    last write within 2 s of the burst's end."""
    a = daemon(stm="redis")
    b = daemon(stm="redis", share_db=a)
    sids = [create(b)["scenario_id"] for _ in range(48)]
    paths = [f"{STM}/{sid}" for sid in sids]
    read_cached(a, paths, settle_s=2)
    last = {}

    def writer(k):
        cl = TimedClient(b.port, 30)  # one connection per thread
        try:
            for i, sid in enumerate(sids[k::16]):
                decision = f"burst {k}-{i}"
                r, _ = cl.request("PUT", f"{STM}/{sid}/feedback",
                                  fb(decision, final_status="Compliant"))
                if r.status == 200:
                    last[sid] = decision
        finally:
            cl.close()
    run_threads(writer, 16)
    assert len(last) == len(sids)
    for sid, path in zip(sids, paths):
        poll(lambda: ok(a.get(path))["stm_entry"]["human_feedback"]["decision"] == last[sid],
             2, f"daemon A still serves {sid} as it was before B's burst")


def test_invalidate_on_one_daemon_drops_the_peers_entries(daemon):
    a = daemon(stm="redis")
    b = daemon(stm="redis", share_db=a)
    sids = [create(a)["scenario_id"] for _ in range(2)]
    rid = create_rule(a, sources=[sids[0]])["rule_id"]
    stm_paths = [f"{STM}/{s}" for s in sids]
    read_cached(a, stm_paths + [f"{RULES}/{rid}"], settle_s=2)
    assert cache_counters(a)[2] == 3

    # a prefix: only A's matching entries go
    assert ok(b.post("/v1/cache/invalidate", {"prefix": "/v1/ltm/"})) == {"invalidated": 0}
    poll(lambda: cache_counters(a)[2] == 2, 2, "B's prefix invalidation did not reach A")
    h, m, _ = cache_counters(a)
    for p in stm_paths:
        ok(a.get(p))
    assert cache_counters(a)[:2] == (h + 2, m)  # the STM answers stayed

    # everything
    assert ok(b.post("/v1/cache/invalidate")) == {"invalidated": 0}
    poll(lambda: cache_counters(a)[2] == 0, 2, "B's invalidation did not reach A")

    # and the other way round: B's own cache is dropped by A
    read_cached(b, stm_paths, settle_s=2)
    assert ok(a.post("/v1/cache/invalidate", {})) == {"invalidated": 0}
    poll(lambda: cache_counters(b)[2] == 0, 2, "A's invalidation did not reach B")


def redis_rewrite_entry(d, sid, **changes):
    """Change stm:{sid} behind memoryd's back (as another tool would): no pub/sub message."""
    key = f"stm:{sid}"
    entry = json.loads(d.redis.command_db(d.redis_db, "GET", key))
    entry.update(changes)
    assert d.redis.command_db(d.redis_db, "SET", key, json.dumps(entry, separators=(",", ":")),
                              "KEEPTTL") == "OK"


def test_resync_after_the_subscription_drops(daemon, fresh_redis):
    """When Redis restarts, a daemon's subscription drops and invalidations
    sent meanwhile are lost: on re-subscribing it must clear its cache."""
    a = daemon(stm="redis", redis=fresh_redis)
    sid = create(a)["scenario_id"]
    path = f"{STM}/{sid}"
    read_cached(a, [path])

    # Changed behind memoryd's back: A keeps serving its cached answer (the
    # cache is really in play, and nothing else drops it)...
    redis_rewrite_entry(a, sid, requirement_text="Changed while A was not listening.")
    time.sleep(0.3)
    h, _, _ = cache_counters(a)
    assert ok(a.get(path))["stm_entry"]["requirement_text"] != "Changed while A was not listening."
    assert cache_counters(a)[0] == h + 1

    # ...until its subscription drops: then it resyncs and answers fresh.
    fresh_redis.restart(kill=True)
    poll(lambda: (lambda r: r.status == 200 and r.json["data"]["stm_entry"]["requirement_text"]
                  == "Changed while A was not listening.")(a.get(path)), 10,
         "daemon A still serves its cached entry after Redis restarted (no resync)")
    assert cache_counters(a)[2] <= 1
    # and it keeps caching and invalidating as before
    read_cached(a, [path])
    ok(a.put(f"{path}/feedback", fb("After the resync")))
    assert ok(a.get(path))["stm_entry"]["human_feedback"]["decision"] == "After the resync"


def test_a_daemon_started_while_redis_is_down_resyncs_on_its_first_subscription(
        daemon, fresh_redis, neo4j_graph):
    """Daemon A starts while Redis is down and caches LTM answers (they need
    no Redis). Daemon B changes the rule meanwhile (an LTM-only write works
    without Redis) and stops before Redis is back, so its invalidation never
    leaves. A cannot know what it missed before it first subscribed: when it
    does subscribe it must clear its cache, as after any other gap."""
    b = daemon(stm="redis", redis=fresh_redis, ltm="neo4j", neo4j=neo4j_graph)
    sid = create(b)["scenario_id"]
    rid = create_rule(b, sources=[sid])["rule_id"]
    fresh_redis.kill()
    a = daemon(stm="redis", ltm="neo4j", neo4j=neo4j_graph, share_db=b)
    hist, search = f"{RULES}/{rid}/history", f"{RULES}?policy={rid.split('_')[0]}"
    read_cached(a, [hist, search])
    ok(b.patch(f"{RULES}/{rid}", {"rule_text": "Changed while Redis was down."}))
    b.stop()
    fresh_redis.restart(kill=True)
    poll(lambda: len(ok(a.get(hist))["versions"]) == 2, 10,
         "daemon A still serves the history it cached before its first subscription "
         "(no resync on the first subscription)")
    assert ok(a.get(search))["rules"][0]["rule_text"] == "Changed while Redis was down."


def _get_in_thread(port, path, out):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        out[path] = (r.status, json.loads(r.read()))
    finally:
        conn.close()


def test_a_slow_read_is_not_cached_past_the_entrys_expiry(daemon, fresh_redis):
    """The lifetime of a cached answer is bounded by the expiry of the entries it
    shows, counted from when the stores were read — not from when the (slow)
    request ends. Redis is paused while an STM get and a rule get read the
    entry, so both take 1.5 s; right after the entry expires, both must
    answer without it."""
    d = daemon(stm="redis", redis=fresh_redis, MEMORY_STM_MIN_TTL_SECONDS="1")
    sid = create(d, entry_body(unique_domain() + "_r1_slow", ttl_seconds=3))["scenario_id"]
    rid = create_rule(d, sources=[sid])["rule_id"]
    stm, rule = f"{STM}/{sid}", f"{RULES}/{rid}"
    invalidate_all(d)
    out = {}
    fresh_redis.pause()
    try:
        threads = [threading.Thread(target=_get_in_thread, args=(d.port, p, out))
                   for p in (stm, rule)]
        for t in threads:
            t.start()
        time.sleep(1.5)
    finally:
        fresh_redis.resume()
    for t in threads:
        t.join(20)
    assert out[stm][0] == 200 and out[rule][0] == 200, out
    expires = parse_ts(out[stm][1]["data"]["stm_entry"]["expires_at"])
    assert out[rule][1]["data"]["traceability"]["source_scenarios"][0]["in_stm"] is True
    assert now_ms() < expires - 300, "too slow: the entry is about to expire already"
    # both answers are in the cache now
    h, m, _ = cache_counters(d)
    ok(d.get(stm))
    ok(d.get(rule))
    assert cache_counters(d)[:2] == (h + 2, m), "the slow answers were not cached"
    time.sleep((expires + 60 - now_ms()) / 1000.0)
    err(d.get(stm), 404, "not_found")
    assert ok(d.get(rule))["traceability"]["source_scenarios"][0]["in_stm"] is False, \
        "the rule get cached during the slow read outlives the entry"
