"""
Faults of the Redis backend (spec §1 storage_unavailable, §3): with Redis
killed, paused, or refusing our password, every STM route answers 503
storage_unavailable with Retry-After within the configured timeouts, without
driver text or secrets in the message; /health keeps answering; input is
still validated (400) without the store; and the daemon recovers by itself
when Redis is back, with nothing half-written.
"""
import http.client
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import (RedisServer, Response, check_entry, create, entry_body, err, get_raw,
                      list_all, ok, stats, wait_for)

BASE = "/v1/stm/entries"
FB = {"decision": "d", "rationale": "r", "suggestion": "s"}
# Raw driver / OS text that must not reach a client (spec §1).
DRIVER_WORDS = re.compile(r"refused|errno|hiredis|ECONN|EPIPE|reset by peer|WRONGPASS|NOAUTH|"
                          r"invalid username|127\.0\.0\.1|localhost|:\d{2,5}\b", re.I)


def one_shot(port, method, path, body=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
    finally:
        conn.close()


def stm_calls(sid):
    return [("POST", BASE, entry_body()),
            ("POST", BASE, entry_body(domain="fault", requirement_number=1, key_concept="x")),
            ("GET", BASE, None), ("GET", BASE + "?status=Compliant&limit=3", None),
            ("GET", f"{BASE}/{sid}", None), ("GET", f"{BASE}/fault_r1_unknown", None),
            ("PATCH", f"{BASE}/{sid}", {"requirement_text": "during the outage"}),
            ("PUT", f"{BASE}/{sid}/feedback", dict(FB, final_status="Compliant")),
            ("PUT", f"{BASE}/{sid}/ttl", {"ttl_seconds": 100}),
            ("DELETE", f"{BASE}/{sid}", None), ("GET", "/v1/stm/stats", None)]


def bound_seconds(d):
    """The configured worst case: REDIS_SOCKET_TIMEOUT + REDIS_SOCKET_CONNECT_TIMEOUT + 1 s."""
    return float(d.env["REDIS_SOCKET_TIMEOUT"]) + float(d.env["REDIS_SOCKET_CONNECT_TIMEOUT"]) + 1


def assert_unavailable(r, elapsed, bound, secrets=()):
    err(r, 503, "storage_unavailable")
    ra = r.header("Retry-After")
    assert ra and ra.isdigit() and int(ra) >= 1, f"Retry-After {ra!r}"
    assert elapsed < bound, f"503 took {elapsed:.2f}s (bound {bound}s)"
    msg = r.json["message"]
    assert not DRIVER_WORDS.search(msg), f"driver text in the message: {msg!r}"
    for s in secrets:
        assert s not in r.body, "a secret is echoed"


def timed(port, method, path, body=None):
    t0 = time.monotonic()
    r = one_shot(port, method, path, body)
    return r, time.monotonic() - t0


def check_calls(d, calls, bound, secrets=()):
    for method, path, body in calls:
        r, dt = timed(d.port, method, path, body)
        try:
            assert_unavailable(r, dt, bound, secrets)
        except AssertionError as e:
            raise AssertionError(f"{method} {path}: {e}") from None


def check_health_during_outage(d, bound, secrets=()):
    # /health reports the background probers' latest results (probe interval 1 s, a
    # probe stuck for 0.8 s counts as failed): every answer comes within 1 s, and the
    # outage shows within a few probe intervals.
    deadline = time.monotonic() + 5
    while True:
        r, dt = timed(d.port, "GET", "/health")
        assert dt < 1.0, f"/health took {dt:.2f}s"
        if r.json["data"]["components"]["stm"]["status"] == "unhealthy" or \
                time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status in (200, 503), r
    assert r.header("X-Request-Id")
    j = r.json
    if r.status == 503:
        assert j["status"] == "error" and j["error_type"] == "storage_unavailable"
        assert r.header("Retry-After")
    assert j["data"]["overall_status"] in ("degraded", "unhealthy")
    assert j["data"]["components"]["stm"]["status"] == "unhealthy"
    assert not DRIVER_WORDS.search(j["data"]["components"]["stm"]["message"] or ""), j
    for s in secrets:
        assert s not in r.body
    assert one_shot(d.port, "GET", "/ready").status == 503


def check_validation_without_store(d, sid):
    """Bad input is refused (400) before the store is needed."""
    err(one_shot(d.port, "POST", BASE, {"requirement_text": "x"}), 400, "validation_error",
        "scenario_id")
    err(one_shot(d.port, "PATCH", f"{BASE}/{sid}", {"scenario_id": "a_r1_b"}), 400,
        "validation_error", "scenario_id")
    err(one_shot(d.port, "GET", f"{BASE}/Bad:Id"), 400, "validation_error", "scenario_id")
    err(one_shot(d.port, "GET", BASE + "?limit=0"), 400, "validation_error", "limit")


def recover(d, sid, before):
    wait_for(lambda: one_shot(d.port, "GET", f"{BASE}/{sid}").status == 200, 15,
             what="memoryd to recover after Redis came back")
    assert get_raw(d, sid) == before, "a write refused during the outage was applied"
    e = create(d)
    assert stats(d)["total_entries"] == 2
    assert d.delete(f"{BASE}/{e['scenario_id']}").status == 204
    wait_for(lambda: one_shot(d.port, "GET", "/health").json["data"]["overall_status"] ==
             "healthy", 5, what="/health to report healthy again")


def test_redis_killed(daemon, fresh_redis):
    # The answers cache is off: these tests hold every STM call to the store path.
    d = daemon(stm="redis", redis=fresh_redis, MEMORY_STM_MIN_TTL_SECONDS="1",
               CACHE_MAX_ENTRIES="0")
    sid = create(d)["scenario_id"]
    before = get_raw(d, sid)
    bound = bound_seconds(d)
    fresh_redis.kill()
    for _ in range(2):  # first with pooled connections, then after they were dropped
        check_calls(d, stm_calls(sid), bound)
    check_health_during_outage(d, bound)
    check_validation_without_store(d, sid)
    fresh_redis.restart()
    recover(d, sid, before)


def test_redis_paused(daemon, fresh_redis):
    """A Redis that accepts connections but never answers: the socket timeout applies.

    A write that timed out may still be carried out when Redis wakes up (its command
    was already sent), so afterwards the store is only checked to be consistent."""
    d = daemon(stm="redis", redis=fresh_redis, MEMORY_STM_MIN_TTL_SECONDS="1",
               CACHE_MAX_ENTRIES="0", REDIS_SOCKET_TIMEOUT="0.5",
               REDIS_SOCKET_CONNECT_TIMEOUT="0.5", API_WORKERS="16")
    sid = create(d)["scenario_id"]
    # One read may be retried once on a fresh connection (REDIS_RETRY_ON_TIMEOUT): allow
    # a second socket timeout on top of the usual bound.
    bound = bound_seconds(d) + float(d.env["REDIS_SOCKET_TIMEOUT"])
    fresh_redis.pause()
    try:
        calls = stm_calls(sid)
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            results = list(pool.map(lambda c: timed(d.port, *c), calls))
        for (r, dt), call in zip(results, calls):
            try:
                assert_unavailable(r, dt, bound)
            except AssertionError as e:
                raise AssertionError(f"{call[0]} {call[1]}: {e}") from None
        check_health_during_outage(d, bound)
        check_validation_without_store(d, sid)
    finally:
        fresh_redis.resume()
    wait_for(lambda: one_shot(d.port, "GET", "/v1/stm/stats").status == 200, 15,
             what="memoryd to recover after Redis woke up")
    entries = list_all(d)
    assert len(entries) == stats(d)["total_entries"]
    for e in entries:
        check_entry(e)
        assert ok(d.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"] == e
    e = create(d)
    assert ok(d.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"] == e
    assert one_shot(d.port, "GET", "/health").status == 200


def test_daemon_starts_while_redis_is_down(daemon, fresh_redis):
    fresh_redis.kill()
    # The answers cache is off: these tests hold every STM call to the store path.
    d = daemon(stm="redis", redis=fresh_redis, MEMORY_STM_MIN_TTL_SECONDS="1",
               CACHE_MAX_ENTRIES="0")
    bound = bound_seconds(d)
    check_calls(d, stm_calls("fault_r1_x"), bound)
    check_health_during_outage(d, bound)
    fresh_redis.restart()
    wait_for(lambda: one_shot(d.port, "GET", "/v1/stm/stats").status == 200, 15,
             what="memoryd to use Redis once it is up")
    e = create(d)
    assert ok(d.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"] == e


def test_wrong_redis_password_is_503_without_secrets(daemon):
    server = RedisServer(password="s3cret-Redis-Pa55").start()
    try:
        d = daemon(stm="redis", redis=server, REDIS_PASSWORD="wrong-Guess-Pa55")
        secrets = ("s3cret-Redis-Pa55", "wrong-Guess-Pa55")
        bound = bound_seconds(d)
        check_calls(d, stm_calls("fault_r1_x"), bound, secrets)
        check_health_during_outage(d, bound, secrets)
        good = daemon(stm="redis", redis=server)  # the right password from the harness
        e = create(good)
        assert ok(good.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"] == e
        d.stop()
        good.stop()
        for dd in (d, good):
            log = dd.read_log()
            for s in secrets:
                assert s not in log, "a Redis password was written to the log"
    finally:
        server.cleanup()
