"""
Neo4j faults (LTM_BACKEND=neo4j, embedded STM), on the session's private Neo4j
(own_neo4j: its own state dir, so pausing or crashing it disturbs no other suite):

- The Neo4j JVM SIGSTOPped for longer than NEO4J_QUERY_TIMEOUT: LTM calls answer 503
  in bounded time, /health keeps answering within 1 s and the embedded STM routes keep
  being served; LTM works again after SIGCONT, with nothing half-written.
- Neo4j crashed (SIGKILL) and restarted on the same data (tests/neo4j/server.sh
  restart kill) in the middle of an LTM write load (creates with several concepts and
  sources, patches of text, confidence, concepts and sources): afterwards every rule
  that exists is whole — its Policy edge, all its concept edges, all its source edges
  and one RuleVersion per earlier version, exactly as the API describes it — every
  acknowledged create is there, and every rule is in a state the clients were told
  about (or the state an unanswered write would have produced).
"""
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import RULES, TimedClient, check_rule, create, entry_body, ok, wait_for

BASE = "/v1/stm/entries"


def neo4j_daemon(daemon, server, **kw):
    """A memoryd on the private Neo4j, ready (schema in place) and warmed up: Neo4j plans
    each Cypher statement on its first use, which can take seconds on a busy machine."""
    settings = dict(NEO4J_QUERY_TIMEOUT="3", NEO4J_CONNECTION_TIMEOUT="1",
                    NEO4J_MAX_RETRY_TIME="1", CACHE_MAX_ENTRIES="0", API_WORKERS="4")
    settings.update(kw)
    d = daemon(ltm="neo4j", neo4j=server, **settings)
    wait_for(lambda: d.get("/ready").status == 200, 120, interval=0.5,
             what="memoryd's LTM schema on the private Neo4j")
    sid = create(d, entry_body(f"warmup_r1_{uuid.uuid4().hex[:8]}"))["scenario_id"]
    rid = f"WARM{uuid.uuid4().hex[:6].upper()}_Up_01"

    def until(ok_codes, method, path, body=None):
        for _ in range(20):  # a slow first plan may time out: try again
            if d.request(method, path, body=body).status in ok_codes:
                return
        raise AssertionError(f"warm-up {method} {path} kept failing")

    until((201, 409), "POST", RULES, {"rule_id": rid, "rule_text": "warm up",
                                      "related_concepts": ["w"], "source_scenario_ids": [sid]})
    for body in ({"rule_text": "warm up 2"}, {"confidence_score": 0.7},
                 {"related_concepts": ["w", "x"]}, {"add_source_scenario_ids": [sid]},
                 {"related_concepts": ["w"]}):
        until((200,), "PATCH", f"{RULES}/{rid}", body)
    for path in (f"{RULES}/{rid}", f"{RULES}?q=warm", "/v1/ltm/concepts", "/v1/integrity",
                 f"{RULES}/{rid}/history"):
        until((200,), "GET", path)
    until((204, 404), "DELETE", f"{RULES}/{rid}")
    until((204,), "DELETE", f"{BASE}/{sid}")
    return d


def ltm_bound(d):
    """One LTM call: begin + statement + commit, each bounded by the query timeout, a
    rollback (bounded by it too), the transient-retry budget and 1 s of slack."""
    q = float(d.env["NEO4J_QUERY_TIMEOUT"])
    return 3 * q + float(d.env["NEO4J_MAX_RETRY_TIME"]) + 1


def graph_rules(server):
    """Every Rule with what the graph links to it."""
    rows = server.cypher(
        "MATCH (r:Rule) "
        "RETURN r.rule_id, r.policy, r.rule_text, r.confidence_score, r.version, "
        "[(p:Policy)-[:GOVERNS]->(r) | p.name], "
        "[(r)-[e:RELATES_TO]->(c:Concept) | [e.pos, e.name, c.key]], "
        "[(r)-[:DERIVED_FROM]->(s:Scenario) | s.scenario_id], "
        "[(r)-[:HAS_VERSION]->(v:RuleVersion) | v.version]")
    out = {}
    for rid, policy, text, conf, version, pols, concepts, sources, versions in rows:
        out[rid] = dict(policy=policy, text=text, conf=conf, version=version, policies=pols,
                        concepts=[n for _, n, _ in sorted(concepts)],
                        positions=sorted(p for p, _, _ in concepts), sources=sorted(sources),
                        versions=sorted(versions))
    return out


def settled_graph_rules(server, timeout=30):
    """graph_rules() once the graph has stopped changing. A write that memoryd gave up
    on (503: outcome unknown) may still sit in a paused Neo4j's socket and commit after
    SIGCONT; comparing the API with the graph while that backlog drains would compare
    two different moments."""
    deadline = time.monotonic() + timeout
    prev = graph_rules(server)
    while True:
        time.sleep(1.0)
        cur = graph_rules(server)
        if cur == prev:
            return cur
        assert time.monotonic() < deadline, "the graph kept changing with no client writing"
        prev = cur


def assert_graph_whole(server, d):
    """Every rule in the graph is whole and agrees with the API; no orphan nodes."""
    rules = settled_graph_rules(server)
    for rid, g in rules.items():
        assert g["policies"] == [rid.split("_")[0]] == [g["policy"]], (rid, g)
        assert g["concepts"] and g["positions"] == list(range(len(g["concepts"]))), (rid, g)
        assert g["sources"], (rid, g)
        assert g["versions"] == list(range(1, g["version"])), (rid, g)
        api = ok(d.get(f"{RULES}/{rid}"))["ltm_rule"]
        check_rule(api)
        assert api["related_concepts"] == g["concepts"], (rid, api, g)
        assert sorted(api["source_scenario_ids"]) == g["sources"], (rid, api, g)
        assert (api["rule_text"], api["confidence_score"], api["version"]) == \
            (g["text"], g["conf"], g["version"]), (rid, api, g)
    assert server.value("MATCH (c:Concept) WHERE NOT (c)<-[:RELATES_TO]-() "
                        "RETURN count(c)") == 0, "a Concept without rules was left behind"
    assert server.value("MATCH (p:Policy) WHERE NOT (p)-[:GOVERNS]->() "
                        "RETURN count(p)") == 0, "a Policy without rules was left behind"
    assert server.value("MATCH (v:RuleVersion) WHERE NOT ()-[:HAS_VERSION]->(v) "
                        "RETURN count(v)") == 0, "a RuleVersion without its rule"
    return rules


def state(rule):
    """What a write decides about a rule (timestamps aside)."""
    return (rule["rule_text"], round(float(rule["confidence_score"]), 6),
            tuple(rule["related_concepts"]), tuple(sorted(rule["source_scenario_ids"])),
            rule["version"])


def graph_state(g):
    return (g["text"], round(float(g["conf"]), 6), tuple(g["concepts"]), tuple(g["sources"]),
            g["version"])


class RuleLedger:
    def __init__(self):
        self.lock = threading.Lock()
        self.possible = {}  # rule_id -> set of state() (None: absent)
        self.acked_creates = set()
        self.calls = []     # (phase, op, status, seconds)

    def record(self, phase, op, status, dt):
        with self.lock:
            self.calls.append((phase, op, status, dt))

    def ack(self, rid, rule):
        with self.lock:
            self.possible[rid] = {state(rule)}

    def unknown(self, rid, apply):
        with self.lock:
            before = self.possible.get(rid, {None})
            self.possible[rid] = before | {apply(s) for s in before}


def ltm_writer(d, ledger, stop, phase, tid, policy, sources, bound):
    cl = TimedClient(d.port, timeout=bound + 10)
    rnd = random.Random(tid)
    mine, n = [], 0
    try:
        while not stop.is_set():
            if not mine or rnd.random() < 0.35:
                n += 1
                rid = f"{policy}_W{tid}_{n:04d}"
                concepts = [f"w{tid} concept {n} {k}" for k in range(rnd.randint(3, 5))] + \
                    ["shared topic"]
                srcs = rnd.sample(sources, rnd.randint(2, 3))
                body = {"rule_id": rid, "rule_text": f"rule {rid} text 0",
                        "related_concepts": concepts, "source_scenario_ids": srcs,
                        "confidence_score": 0.5}
                resp, dt = cl.request("POST", RULES, body)
                ledger.record(phase[0], "create", resp.status, dt)
                if resp.status == 201:
                    ledger.ack(rid, resp.json["data"]["ltm_rule"])
                    ledger.acked_creates.add(rid)
                    mine.append(rid)
                else:
                    created = (body["rule_text"], 0.5, tuple(concepts), tuple(sorted(srcs)), 1)
                    ledger.unknown(rid, lambda s, c=created: c if s is None else s)
            else:
                rid = rnd.choice(mine)
                kind = rnd.random()
                if kind < 0.3:
                    text = f"rule {rid} text {rnd.random():.8f}"
                    body = {"rule_text": text}
                    apply = (lambda s, t=text: None if s is None else
                             (t,) + s[1:4] + (s[4] + 1,))
                elif kind < 0.5:
                    conf = round(rnd.random(), 4)
                    body = {"confidence_score": conf}
                    apply = (lambda s, c=conf: None if s is None else
                             ((s[0], c) + s[2:4] + (s[4] + 1,) if abs(s[1] - c) > 1e-9 else s))
                elif kind < 0.8:
                    concepts = [f"w{tid} concept {rnd.randint(0, 50)} {k}"
                                for k in range(rnd.randint(1, 5))]
                    concepts = list(dict.fromkeys(concepts))
                    body = {"related_concepts": concepts}
                    apply = (lambda s, c=tuple(concepts): None if s is None else
                             (s[:2] + (c, s[3], s[4] + 1) if c != s[2] else s))
                else:
                    extra = rnd.sample(sources, 2)
                    body = {"add_source_scenario_ids": extra}
                    apply = (lambda s, e=tuple(extra): None if s is None else
                             (s[:3] + (tuple(sorted(set(s[3]) | set(e))),
                                       s[4] + (0 if set(e) <= set(s[3]) else 1))))
                resp, dt = cl.request("PATCH", f"{RULES}/{rid}", body)
                ledger.record(phase[0], "patch", resp.status, dt)
                if resp.status == 200:
                    ledger.ack(rid, resp.json["data"]["ltm_rule"])
                else:
                    ledger.unknown(rid, apply)
            if phase[0] == "down":
                time.sleep(0.05)  # do not spin while Neo4j is gone
    finally:
        cl.close()


def test_neo4j_crash_and_restart_during_ltm_writes_leaves_no_rule_half_written(
        daemon, own_neo4j_graph):
    server = own_neo4j_graph
    d = neo4j_daemon(daemon, server, NEO4J_QUERY_TIMEOUT="15", NEO4J_MAX_RETRY_TIME="10",
                     API_WORKERS="8")
    bound = ltm_bound(d)
    sources = [create(d, entry_body(f"neofault_r{i}_source"))["scenario_id"]
               for i in range(1, 9)]
    policy = "NF" + uuid.uuid4().hex[:8].upper()
    ledger, stop, phase = RuleLedger(), threading.Event(), ["before"]
    threads = [threading.Thread(target=ltm_writer,
                                args=(d, ledger, stop, phase, t, policy, sources, bound))
               for t in range(4)]
    for t in threads:
        t.start()
    def acked(ph):
        return sum(1 for c in ledger.calls if c[0] == ph and c[2] in (200, 201))

    try:
        # Load first (creates and patches under way on every thread), then crash.
        wait_for(lambda: acked("before") >= 30, 120, interval=0.1,
                 what="30 acknowledged LTM writes before the crash")
        phase[0] = "down"
        server.restart(kill=True)  # SIGKILL, then start again on the same data and ports
        phase[0] = "after"
        t_up = time.monotonic()
        wait_for(lambda: acked("after") >= 1, 60, interval=0.1,
                 what="an LTM write to succeed after Neo4j came back")
        recovered_in = time.monotonic() - t_up
        wait_for(lambda: acked("after") >= 20, 120, interval=0.1,
                 what="20 acknowledged LTM writes after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    assert not any(t.is_alive() for t in threads), "an LTM client hangs"
    calls = ledger.calls
    for ph, op, status, dt in calls:
        assert status in (200, 201, 503), (ph, op, status, dt)
        assert dt < bound, f"{op} took {dt:.2f}s in phase {ph} (bound {bound}s)"
    assert any(c[0] == "down" and c[2] == 503 for c in calls), "no call saw Neo4j down"
    assert recovered_in < 20, f"memoryd needed {recovered_in:.1f}s to use Neo4j again"
    assert len(ledger.acked_creates) >= 8, "load too light"

    rules = assert_graph_whole(server, d)
    for rid in ledger.acked_creates:
        assert rid in rules, f"acknowledged rule {rid} is gone"
    for rid, g in rules.items():
        assert rid in ledger.possible, f"a rule nobody created: {rid}"
        assert graph_state(g) in ledger.possible[rid], \
            f"{rid}: {graph_state(g)} is none of {ledger.possible[rid]}"
    for rid, possible in ledger.possible.items():
        if rid not in rules:
            assert None in possible, f"{rid} vanished"
    integrity = ok(d.get("/v1/integrity"))
    assert integrity["integrity_status"] == "PASS", integrity
    assert integrity["statistics"]["total_ltm_rules"] == len(rules)


def test_neo4j_paused_longer_than_the_query_timeout(daemon, own_neo4j_graph):
    server = own_neo4j_graph
    d = neo4j_daemon(daemon, server)
    bound = ltm_bound(d)
    sids = [create(d)["scenario_id"] for _ in range(2)]
    policy = "NP" + uuid.uuid4().hex[:8].upper()
    rule = ok(d.post(RULES, {"rule_id": f"{policy}_Paused_01", "rule_text": "before the pause",
                             "related_concepts": ["pause", "stop"],
                             "source_scenario_ids": sids}), 201)["ltm_rule"]
    ltm_results, probe_results, stm_results = [], [], []
    stop = threading.Event()

    def ltm_load(i):
        cl = TimedClient(d.port, timeout=bound + 10)
        rnd = random.Random(i)
        n = 0
        while not stop.is_set():
            n += 1
            call = rnd.choice([
                ("GET", f"{RULES}/{rule['rule_id']}", None), ("GET", f"{RULES}?q=pause", None),
                ("GET", "/v1/ltm/concepts", None),
                ("PATCH", f"{RULES}/{rule['rule_id']}", {"rule_text": f"t{i}-{n}"}),
                ("POST", RULES, {"rule_id": f"{policy}_L{i}_{n:04d}", "rule_text": "x",
                                 "related_concepts": ["pause", f"c{i}"],
                                 "source_scenario_ids": sids})])
            resp, dt = cl.request(*call)
            ltm_results.append((call[0], call[1], resp.status, dt))
        cl.close()

    server.pause()
    paused_at = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futs = [pool.submit(ltm_load, i) for i in range(8)]
            time.sleep(0.2)  # the LTM calls are in: more of them than workers
            n = 0
            while time.monotonic() - paused_at < 3 * float(d.env["NEO4J_QUERY_TIMEOUT"]) + 1:
                r, dt = TimedClient(d.port, 60).request("GET", "/health")
                probe_results.append((r.status, dt, r))
                if n % 2:
                    r, dt = TimedClient(d.port, 60).request("POST", BASE, entry_body())
                else:
                    r, dt = TimedClient(d.port, 60).request("GET", f"{BASE}/{sids[0]}")
                stm_results.append((r.status, dt))
                n += 1
                time.sleep(0.1)
            stop.set()
            for f in futs:
                f.result(timeout=bound + 60)
    finally:
        stop.set()
        server.resume()
    # Collect every violation first: the summary says how the workers fared.
    assert len(ltm_results) >= 8 and probe_results, (ltm_results, probe_results)
    problems = []
    if len(probe_results) < 10:
        problems.append(f"only {len(probe_results)} rounds of /health + other-tier calls "
                        f"completed during the fault (every round waited for busy workers)")
    wrong = [(m, p, s) for m, p, s, dt in ltm_results if s not in (200, 201, 503)]
    if wrong:
        problems.append(f"LTM calls answered neither 2xx nor 503: {wrong[:5]}")
    late = sorted(round(dt, 1) for m, p, s, dt in ltm_results if dt >= bound)
    if late:
        problems.append(f"{len(late)} of {len(ltm_results)} LTM calls took longer than the "
                        f"bound of {bound}s (up to {late[-1]}s)")
    if sum(1 for r in ltm_results if r[2] == 503) < 8:
        problems.append("fewer than 8 LTM calls answered 503")
    slow = sorted(round(dt, 2) for s, dt, _ in probe_results if dt >= 1.0)
    if slow:
        problems.append(f"/health took >= 1 s in {len(slow)} of {len(probe_results)} probes "
                        f"(up to {slow[-1]}s)")
    if probe_results[-1][2].json["data"]["components"]["ltm"]["status"] != "unhealthy":
        problems.append("/health did not report the LTM store unhealthy")
    bad = sorted((s, round(dt, 2)) for s, dt in stm_results if s not in (200, 201) or dt >= 1.0)
    if bad:
        problems.append(f"{len(bad)} of {len(stm_results)} embedded STM calls failed or took "
                        f">= 1 s: {bad[-5:]}")
    assert not problems, (f"while Neo4j was paused (API_THREAD_MODE="
                          f"{d.env.get('API_THREAD_MODE', 'pool (default)')}, "
                          f"API_WORKERS=4, 8 LTM clients, "
                          f"NEO4J_QUERY_TIMEOUT={d.env['NEO4J_QUERY_TIMEOUT']}s):\n- " +
                          "\n- ".join(problems))
    # SIGCONT: LTM works again by itself; whatever was written is whole.
    wait_for(lambda: TimedClient(d.port, 10).request("GET", f"{RULES}/{rule['rule_id']}")[0].status
             == 200, 30, what="LTM to answer again after SIGCONT")
    assert_graph_whole(server, d)
    ok(d.post(RULES, {"rule_id": f"{policy}_After_01", "rule_text": "after the pause",
                      "related_concepts": ["pause"], "source_scenario_ids": sids}), 201)
    wait_for(lambda: TimedClient(d.port, 10).request("GET", "/ready")[0].status == 200, 15,
             what="/ready to recover")
