"""
Soak: a mixed STM + LTM load with cache churn for MEMORYD_SOAK_SECONDS (default 60; CI's
long run sets 600), loopback only, against one memoryd (STM on Redis when the Redis
backend is tested, else embedded; LTM embedded; a small answers cache with a short TTL so
that entries are stored, hit, invalidated and evicted all the time).

memoryd's RSS (/proc/<pid>/status VmRSS) and open descriptors (/proc/<pid>/fd) are
sampled every few seconds. Expected: no 5xx and no request without an answer, and after
the warm-up (the first third of the run) memory and descriptors stay flat:

  RSS  max(last third) <= max(second third) * 1.10 + 4 MiB
  fds  max(after warm-up) <= the count at the end of the warm-up + 8

The working set is bounded (every client deletes its oldest entries and rules), so
growth beyond that is a leak, not data. Under AddressSanitizer or ThreadSanitizer the
RSS criterion is not applied (freed memory is held in the sanitizer's quarantine, so RSS
grows by design); LeakSanitizer checks leaks when the daemon exits instead.
"""
import os
import random
import threading
import time
import uuid

from conftest import (MEMORYD_BIN, RULES, STM_BACKENDS, TimedClient, entry_body, proc_fd_count,
                      proc_rss_kib, unique_domain)

SECONDS = float(os.environ.get("MEMORYD_SOAK_SECONDS", "60"))
CLIENTS = 6
MAX_LIVE_ENTRIES = 40  # per client
MAX_LIVE_RULES = 15    # per client
STATUSES = ("Compliant", "Non-Compliant", "Partially Compliant", "Pending")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.by_status = {}
        self.bad = []  # (method, path, status, body) of 5xx / unanswered

    def add(self, method, path, resp):
        with self.lock:
            self.count += 1
            self.by_status[resp.status] = self.by_status.get(resp.status, 0) + 1
            if resp.status is None or resp.status >= 500:
                self.bad.append((method, path, resp.status, resp.body[:300]))


def client_loop(port, stats, stop, tid, domain, policy):
    rnd = random.Random(tid)
    cl = TimedClient(port, timeout=30)
    entries, rules = [], []
    n = 0

    def call(method, path, body=None):
        resp, _ = cl.request(method, path, body)
        stats.add(method, path, resp)
        return resp

    try:
        while not stop.is_set():
            n += 1
            x = rnd.random()
            if x < 0.15 or not entries:
                sid = f"{domain}_r{n}_c{tid}"
                r = call("POST", "/v1/stm/entries",
                         entry_body(sid, requirement_text=f"soak {sid} " + "x" * rnd.randint(10, 2000),
                                    ttl_seconds=rnd.randint(60, 600)))
                if r.status == 201:
                    entries.append(sid)
                if len(entries) > MAX_LIVE_ENTRIES:
                    call("DELETE", f"/v1/stm/entries/{entries.pop(0)}")
            elif x < 0.40:  # cached reads: hits, and misses after invalidations/evictions
                call("GET", f"/v1/stm/entries/{rnd.choice(entries)}")
            elif x < 0.48:
                call("PATCH", f"/v1/stm/entries/{rnd.choice(entries)}",
                     {"requirement_text": f"soak patch {n} {rnd.random()}"})
            elif x < 0.53:
                call("PUT", f"/v1/stm/entries/{rnd.choice(entries)}/feedback",
                     {"decision": f"d{n}", "rationale": "r", "suggestion": "s",
                      "final_status": rnd.choice(STATUSES)})
            elif x < 0.58:
                q = rnd.choice([f"domain={domain}", "has_feedback=true", "status=Pending",
                                f"final_status=Compliant&limit=5", "limit=20"])
                call("GET", f"/v1/stm/entries?{q}")
            elif x < 0.60:
                call("GET", "/v1/stm/stats")
            elif x < 0.67 or not rules:
                rid = f"{policy}_C{tid}n{n}_01"
                r = call("POST", RULES, {
                    "rule_id": rid, "rule_text": f"soak rule {n} about retention and consent",
                    "related_concepts": [f"topic {rnd.randint(0, 30)}", "soak"],
                    "source_scenario_ids": [rnd.choice(entries)],
                    "confidence_score": round(rnd.random(), 3)})
                if r.status == 201:
                    rules.append(rid)
                if len(rules) > MAX_LIVE_RULES:
                    call("DELETE", f"{RULES}/{rules.pop(0)}")
            elif x < 0.78:
                call("GET", rnd.choice([f"{RULES}/{rnd.choice(rules)}",
                                        f"{RULES}?q=retention+topic&limit=5",
                                        f"{RULES}?concepts=soak&limit=10",
                                        f"{RULES}/{rnd.choice(rules)}/history",
                                        f"{RULES}/{rnd.choice(rules)}/audit",
                                        "/v1/ltm/concepts?limit=20",
                                        f"/v1/trace/{rnd.choice(entries)}"]))
            elif x < 0.84:
                call("PATCH", f"{RULES}/{rnd.choice(rules)}",
                     rnd.choice([{"rule_text": f"soak rule text {n}"},
                                 {"confidence_score": round(rnd.random(), 3)},
                                 {"related_concepts": [f"topic {rnd.randint(0, 30)}", "soak"]}]))
            elif x < 0.86:
                call("POST", "/v1/cache/invalidate",
                     rnd.choice([{}, {"prefix": "/v1/ltm/"}, {"prefix": "/v1/stm/"}]))
            elif x < 0.90:
                call("GET", rnd.choice(["/health", "/ready", "/metrics", "/v1/stats",
                                        "/v1/dashboard", "/v1/alerts", "/v1/integrity"]))
            elif x < 0.95:  # errors are part of the mix too (4xx, never 5xx)
                call("GET", rnd.choice(["/v1/stm/entries/soak_r1_missing", "/v1/nowhere",
                                        "/v1/stm/entries?limit=0", f"{RULES}/Bad-Id"]))
            else:  # a fresh connection now and then
                cl.close()
                call("GET", "/health")
    finally:
        cl.close()


def sanitized_binary():
    with open(MEMORYD_BIN, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


def thirds(samples):
    k = len(samples) // 3
    return samples[:k], samples[k:2 * k], samples[2 * k:]


def test_soak_memory_and_descriptors_stay_flat(daemon):
    stm = "redis" if "redis" in STM_BACKENDS else "embedded"
    d = daemon(stm=stm, CACHE_MAX_ENTRIES="300", CACHE_TTL_SECONDS="2",
               MEMORY_STM_MIN_TTL_SECONDS="1", API_WORKERS="4", LOG_ACCESS="false")
    pid = d.proc.pid
    stats, stop = Stats(), threading.Event()
    domain, policy = unique_domain(), "SK" + uuid.uuid4().hex[:8].upper()
    threads = [threading.Thread(target=client_loop,
                                args=(d.port, stats, stop, t, domain, policy))
               for t in range(CLIENTS)]
    interval = max(2.0, SECONDS / 40)
    samples = []  # (t, rss_kib, fds)
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        while time.monotonic() - t0 < SECONDS:
            time.sleep(interval)
            assert d.proc.poll() is None, f"memoryd died:\n{d.read_log()[-3000:]}"
            samples.append((time.monotonic() - t0, proc_rss_kib(pid), proc_fd_count(pid)))
            assert not stats.bad, f"5xx or unanswered requests: {stats.bad[:5]}"
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads), "a client hangs"
    assert len(samples) >= 9, samples
    warm, mid, last = thirds(samples)
    rss_mid = max(s[1] for s in mid)
    rss_last = max(s[1] for s in last)
    fd_base = warm[-1][2]
    fd_max = max(s[2] for s in mid + last)
    summary = (f"soak {SECONDS:.0f}s ({stm} STM): {stats.count} requests "
               f"({stats.count / SECONDS:.0f}/s), statuses {sorted(stats.by_status.items(), key=str)}; "
               f"RSS KiB warm-up max {max(s[1] for s in warm)}, mid max {rss_mid}, "
               f"last max {rss_last}; fds base {fd_base}, max {fd_max}")
    print(summary)
    assert not stats.bad, f"5xx or unanswered requests: {stats.bad[:5]}"
    assert stats.count >= 20 * SECONDS, f"load too light: {summary}"
    if not sanitized_binary():
        assert rss_last <= rss_mid * 1.10 + 4096, f"RSS grows: {summary}\n{samples}"
    assert fd_max <= fd_base + 8, f"descriptors grow: {summary}\n{samples}"
