"""
Redis faults under load (STM_BACKEND=redis, a real redis-server with appendonly yes and
appendfsync always):

- Redis SIGKILLed and restarted in the middle of a mixed write load (threads creating
  and updating entries): while it is down every STM call answers 503 within the
  configured timeouts, memoryd reconnects by itself, and every write acknowledged with
  a 2xx is there afterwards with exactly the acknowledged content (a ledger per entry).
- Redis SIGSTOPped for longer than the timeouts: STM calls fail in bounded time while
  the HTTP workers stay available: /health answers within 1 s and the embedded LTM
  routes keep being served throughout; service resumes on SIGCONT.

A 503 on a write means "outcome unknown" (spec, README): the ledger then allows both
the state before and the state after that write.
"""
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (RULES, TimedClient, check_entry, create, create_rule, entry_body, list_all,
                      ok, rule_body, stats, unique_domain, wait_for)

BASE = "/v1/stm/entries"
STATUSES = ("Compliant", "Non-Compliant", "Partially Compliant", "Pending")


def content(e):
    """The part of an entry a write decides (timestamps aside)."""
    if e is None:
        return None
    fb = e["human_feedback"]
    return (e["requirement_text"], json.dumps(e["initial_assessment"], sort_keys=True),
            json.dumps(fb, sort_keys=True) if fb is not None else None, e["final_status"])


class Ledger:
    """What the store may hold for every id, from the answers the clients got."""

    def __init__(self):
        self.lock = threading.Lock()
        self.possible = {}   # id -> set of content() values (None: absent)
        self.acked = {}      # id -> the last acknowledged entry, when no unknown write followed
        self.calls = []      # (phase, method, status, seconds, retry_after)

    def record(self, phase, method, resp, dt):
        with self.lock:
            self.calls.append((phase, method, resp.status, dt, resp.header("Retry-After")))

    def ack(self, sid, entry):
        with self.lock:
            self.possible[sid] = {content(entry)}
            self.acked[sid] = entry

    def unknown(self, sid, apply):
        with self.lock:
            before = self.possible.get(sid, {None})
            self.possible[sid] = before | {apply(c) for c in before if c is not None} | \
                ({apply(None)} if None in before and apply(None) is not None else set())
            self.acked.pop(sid, None)


def apply_patch_text(text):
    return lambda c: None if c is None else (text,) + c[1:]


def apply_feedback(fb, final):
    return lambda c: None if c is None else c[:2] + (json.dumps(fb, sort_keys=True), final)


def apply_final(final):
    return lambda c: None if c is None else c[:3] + (final,)


def span(sent_in, answered_in):
    """The phase a call belongs to: one phase when it was sent and answered in it, else
    "a->b" (a call in flight across a change, which may go either way)."""
    return sent_in if sent_in == answered_in else f"{sent_in}->{answered_in}"


def writer(d, ledger, stop, phase, tid, domain, bound):
    """Create entries and update the ones this thread created, until stop is set."""
    cl = TimedClient(d.port, timeout=bound + 5)
    mine = []  # ids whose create was acknowledged
    n = 0
    rnd = random.Random(tid)
    try:
        while not stop.is_set():
            sent_in = phase[0]
            op = rnd.random()
            if not mine or op < 0.4:
                n += 1
                sid = f"{domain}_r{n}_w{tid}"
                body = entry_body(sid, requirement_text=f"requirement {sid} v0")
                resp, dt = cl.request("POST", BASE, body)
                ledger.record(span(sent_in, phase[0]), "POST", resp, dt)
                if resp.status == 201:
                    ledger.ack(sid, resp.json["data"]["stm_entry"])
                    mine.append(sid)
                else:
                    created = (body["requirement_text"],
                               json.dumps(body["initial_assessment"], sort_keys=True), None, None)
                    ledger.unknown(sid, lambda c, created=created: created if c is None else c)
                continue
            sid = rnd.choice(mine)
            if op < 0.7:
                text = f"requirement {sid} v{n}-{rnd.random():.6f}"
                resp, dt = cl.request("PATCH", f"{BASE}/{sid}", {"requirement_text": text})
                change = apply_patch_text(text)
            elif op < 0.9:
                fb = {"decision": f"d{n}", "rationale": f"r{rnd.random():.6f}",
                      "suggestion": "s"}
                final = rnd.choice(STATUSES)
                resp, dt = cl.request("PUT", f"{BASE}/{sid}/feedback", dict(fb,
                                                                            final_status=final))
                change = apply_feedback(fb, final)
            else:
                final = rnd.choice(STATUSES)
                resp, dt = cl.request("PATCH", f"{BASE}/{sid}", {"final_status": final})
                change = apply_final(final)
            ledger.record(span(sent_in, phase[0]), "write", resp, dt)
            if resp.status == 200:
                ledger.ack(sid, resp.json["data"]["stm_entry"])
            else:
                ledger.unknown(sid, change)
    finally:
        cl.close()


def bound_seconds(d):
    """Worst case of one STM call: a socket timeout, a dial (connect + handshake read),
    one retried read, plus 1 s of slack."""
    t = float(d.env["REDIS_SOCKET_TIMEOUT"])
    c = float(d.env["REDIS_SOCKET_CONNECT_TIMEOUT"])
    return 2 * t + c + 1


def test_redis_killed_and_restarted_under_write_load_loses_no_acknowledged_write(daemon,
                                                                                fresh_redis):
    d = daemon(stm="redis", redis=fresh_redis, CACHE_MAX_ENTRIES="0", API_WORKERS="8",
               REDIS_SOCKET_TIMEOUT="2", REDIS_SOCKET_CONNECT_TIMEOUT="1")
    bound = bound_seconds(d)
    ledger, stop, phase = Ledger(), threading.Event(), ["before"]
    domain = unique_domain()
    threads = [threading.Thread(target=writer, args=(d, ledger, stop, phase, t, domain, bound))
               for t in range(6)]
    for t in threads:
        t.start()
    def acked(ph):
        return sum(1 for c in ledger.calls if c[0] == ph and c[2] in (200, 201))

    try:
        wait_for(lambda: acked("before") >= 100, 30, interval=0.05,
                 what="100 acknowledged writes before the kill")
        phase[0] = "killing"  # calls sent now may be answered by Redis or not
        fresh_redis.kill()    # returns once the process is reaped: Redis is gone
        phase[0] = "down"
        time.sleep(2.5)
        phase[0] = "restarting"
        fresh_redis.restart()
        t_up = time.monotonic()
        phase[0] = "after"
        wait_for(lambda: acked("after") >= 1, 15, interval=0.05,
                 what="a write to succeed after Redis came back (memoryd reconnecting)")
        recovered_in = time.monotonic() - t_up
        wait_for(lambda: acked("after") >= 100, 30, interval=0.05,
                 what="100 acknowledged writes after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads), "a client thread hangs"
    calls = ledger.calls
    by_phase = {p: [c for c in calls if c[0] == p] for p in ("before", "down", "after")}
    assert all(by_phase.values()), {p: len(v) for p, v in by_phase.items()}
    # Every call got an answer in bounded time: 2xx, or 503 with Retry-After.
    for ph, method, status, dt, ra in calls:
        assert status in (200, 201, 503), (ph, method, status, dt)
        assert dt < bound, f"{method} took {dt:.2f}s in phase {ph} (bound {bound}s)"
        if status == 503:
            assert ra and ra.isdigit(), (ph, method, ra)
    before_bad = [c for c in by_phase["before"] if c[2] not in (200, 201)]
    assert not before_bad, f"failures before the fault: {before_bad[:5]}"
    down = by_phase["down"]  # sent and answered while Redis was dead
    assert down and all(c[2] == 503 for c in down), sorted({c[2] for c in down})
    assert recovered_in < 10, f"memoryd needed {recovered_in:.1f}s to use Redis again"

    # The ledger against the store, through the API and in Redis itself.
    present = {}
    for sid, possible in ledger.possible.items():
        r = d.get(f"{BASE}/{sid}")
        if r.status == 404:
            assert None in possible, f"acknowledged entry {sid} is gone"
            continue
        e = check_entry(ok(r)["stm_entry"])
        present[sid] = e
        assert content(e) in possible, f"{sid}: {content(e)} not in {possible}"
        if sid in ledger.acked:
            assert e == ledger.acked[sid], f"{sid} differs from its acknowledged state"
        raw = fresh_redis.command_db(d.redis_db, "GET", f"stm:{sid}")
        assert raw is not None and json.loads(raw) == e, sid
    listed = {e["scenario_id"] for e in list_all(d, domain=domain)}
    assert listed == set(present), "the listing disagrees with the entries"
    assert stats(d)["total_entries"] == len(present)


@pytest.mark.parametrize("mode", ["pool", "per-connection"])
def test_redis_paused_longer_than_the_timeouts_workers_stay_available(daemon, fresh_redis, mode):
    """More concurrent STM calls than API_WORKERS hit a hung Redis: each fails in bounded
    time, and meanwhile /health answers within 1 s (spec §5) and the LTM routes that do
    not read STM (search, concepts, history) keep being served by the embedded store —
    in both thread modes (pool: the event threads never wait on Redis)."""
    d = daemon(stm="redis", redis=fresh_redis, CACHE_MAX_ENTRIES="0", API_WORKERS="4",
               REDIS_SOCKET_TIMEOUT="2", REDIS_SOCKET_CONNECT_TIMEOUT="1", API_THREAD_MODE=mode)
    bound = bound_seconds(d)
    sids = [create(d)["scenario_id"] for _ in range(3)]
    rule = create_rule(d, rule_body([sids[0]], concepts=("availability", "uptime")))
    ltm_reads = [f"{RULES}?q=availability", "/v1/ltm/concepts", f"{RULES}/{rule['rule_id']}/history",
                 "/v1/ltm/concepts/uptime/rules", f"{RULES}?policy={rule['policy']}"]
    stm_results, probe_results, ltm_results = [], [], []
    stop = threading.Event()

    def stm_load(i):
        cl = TimedClient(d.port, timeout=bound + 5)
        rnd = random.Random(i)
        while not stop.is_set():
            sid = rnd.choice(sids)
            call = rnd.choice([("GET", f"{BASE}/{sid}", None), ("GET", "/v1/stm/stats", None),
                               ("GET", BASE + "?limit=5", None),
                               ("PATCH", f"{BASE}/{sid}", {"requirement_text": f"t{i}"}),
                               ("POST", BASE, entry_body())])
            resp, dt = cl.request(*call)
            stm_results.append((call[0], call[1], resp.status, dt))
        cl.close()

    fresh_redis.pause()
    paused_at = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futs = [pool.submit(stm_load, i) for i in range(8)]
            time.sleep(0.2)  # the STM calls are in: more of them than workers
            n = 0
            while time.monotonic() - paused_at < 6:
                r, dt = TimedClient(d.port, 30).request("GET", "/health")
                probe_results.append((r.status, dt, r))
                r, dt = TimedClient(d.port, 30).request("GET", ltm_reads[n % len(ltm_reads)])
                ltm_results.append((ltm_reads[n % len(ltm_reads)], r.status, dt))
                n += 1
                time.sleep(0.1)
            stop.set()
            for f in futs:
                f.result(timeout=bound + 30)
    finally:
        stop.set()
        fresh_redis.resume()
    # Collect every violation first: the summary says how the workers fared.
    assert len(stm_results) >= 8 and probe_results, (stm_results, probe_results)
    problems = []
    if len(probe_results) < 10:
        problems.append(f"only {len(probe_results)} rounds of /health + other-tier calls "
                        f"completed during the fault (every round waited for busy workers)")
    wrong = [(m, p, s) for m, p, s, dt in stm_results if s not in (200, 201, 503)]
    if wrong:
        problems.append(f"STM calls answered neither 2xx nor 503: {wrong[:5]}")
    late = sorted(round(dt, 1) for m, p, s, dt in stm_results if dt >= bound)
    if late:
        problems.append(f"{len(late)} of {len(stm_results)} STM calls took longer than the "
                        f"bound of {bound}s (up to {late[-1]}s)")
    if sum(1 for r in stm_results if r[2] == 503) < 8:
        problems.append("fewer than 8 STM calls answered 503")
    slow = sorted(round(dt, 2) for s, dt, _ in probe_results if dt >= 1.0)
    if slow:
        problems.append(f"/health took >= 1 s in {len(slow)} of {len(probe_results)} probes "
                        f"(up to {slow[-1]}s)")
    if any(r.json["data"]["components"]["ltm"]["status"] != "healthy"
           for s, dt, r in probe_results):
        problems.append("/health reported the embedded LTM store unhealthy")
    if probe_results[-1][2].json["data"]["components"]["stm"]["status"] != "unhealthy":
        problems.append("/health did not report the STM store unhealthy")
    bad = sorted((p, s, round(dt, 2)) for p, s, dt in ltm_results if s != 200 or dt >= 1.0)
    if bad:
        problems.append(f"{len(bad)} of {len(ltm_results)} embedded LTM reads failed or took "
                        f">= 1 s: {bad[-5:]}")
    assert not problems, (f"while Redis was paused (API_THREAD_MODE={mode}, "
                          f"API_WORKERS=4, 8 STM clients, "
                          f"REDIS_SOCKET_TIMEOUT={d.env['REDIS_SOCKET_TIMEOUT']}s):\n- " +
                          "\n- ".join(problems))
    # SIGCONT: STM works again by itself, and the store is consistent.
    wait_for(lambda: TimedClient(d.port, 10).request("GET", "/v1/stm/stats")[0].status == 200, 15,
             what="STM to answer again after SIGCONT")
    entries = list_all(d)
    assert len(entries) == stats(d)["total_entries"]
    for e in entries:
        assert ok(d.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"] == check_entry(e)
    e = create(d)
    assert ok(d.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"] == e
    wait_for(lambda: TimedClient(d.port, 10).request("GET", "/health")[0].status == 200 and
             TimedClient(d.port, 10).request("GET", "/ready")[0].status == 200, 10,
             what="/health and /ready to recover")
