"""
GET /health and GET /ready (spec §5, §6 "Health and readiness") against real
stores that fail for real: a Redis paused with SIGSTOP (it hangs: every
command waits for its socket timeout), a Redis killed, and an LTM on a Neo4j
URI where nothing listens.

/health must answer within 1 s every time, whatever the stores do (the
probes run in the background); 200 while at least one store answers
(`degraded` when some fail), 503 with the error envelope — and still the full
report in `data` — when none does. /ready is 503 while a store is down or the
LTM schema is not in place, and 200 again once they are back.
"""
import time

from conftest import REQUEST_ID_RE, free_port, ok, parse_ts, now_ms, scrape

COMPONENT_KEYS = {"backend", "status", "latency_ms", "message"}
STATUSES = ("healthy", "degraded", "unhealthy")


def timed_get(d, path):
    t = time.monotonic()
    r = d.get(path, timeout=10)
    return r, time.monotonic() - t


def check_report(data, stm_backend, ltm_backend):
    """The /health report: exact keys, components with exact keys."""
    assert set(data) == {"overall_status", "version", "uptime_seconds", "components"}, \
        sorted(data)
    assert data["overall_status"] in STATUSES
    assert isinstance(data["version"], str) and data["version"]
    assert isinstance(data["uptime_seconds"], int) and data["uptime_seconds"] >= 0
    comps = data["components"]
    assert set(comps) == {"stm", "ltm", "cache"}, sorted(comps)
    for name, c in comps.items():
        assert set(c) == COMPONENT_KEYS, (name, sorted(c))
        assert isinstance(c["backend"], str) and c["backend"], (name, c)
        assert c["status"] in STATUSES, (name, c)
        lat = c["latency_ms"]
        assert isinstance(lat, (int, float)) and not isinstance(lat, bool) and lat >= 0, (name, c)
        assert isinstance(c["message"], str) and c["message"], (name, c)
    assert comps["stm"]["backend"] == stm_backend and comps["ltm"]["backend"] == ltm_backend
    assert comps["cache"]["status"] == "healthy"
    return data


def check_503(r, what):
    """503 with the error envelope + data (spec §6 "Health and readiness")."""
    assert r.status == 503, f"{what}: {r!r}"
    assert (r.header("Content-Type") or "").split(";")[0] == "application/json"
    assert REQUEST_ID_RE.match(r.header("X-Request-Id") or "")
    assert r.header("Retry-After"), r.headers
    j = r.json
    assert j is not None and set(j) == {"status", "error_type", "message", "data",
                                        "timestamp"}, r
    assert j["status"] == "error" and j["error_type"] == "storage_unavailable", j
    assert isinstance(j["message"], str) and j["message"]
    assert abs(parse_ts(j["timestamp"]) - now_ms()) < 60_000
    assert isinstance(j["data"], dict) and j["data"], j
    return j["data"]


def health(d):
    """(HTTP status, report) of one GET /health, which must take under 1 s."""
    r, took = timed_get(d, "/health")
    assert took < 1.0, f"/health took {took:.2f}s"
    if r.status == 200:
        return 200, ok(r)
    return r.status, check_503(r, "/health")


def poll_health(d, pred, timeout, what):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        status, data = health(d)
        seen.append((status, data["overall_status"], data["components"]["stm"]["status"],
                     data["components"]["ltm"]["status"]))
        if pred(status, data):
            return status, data
        time.sleep(0.1)
    raise AssertionError(f"/health never showed {what} within {timeout}s; saw {seen[-5:]}")


def ready(d):
    r, took = timed_get(d, "/ready")
    assert took < 1.0, f"/ready took {took:.2f}s"
    if r.status == 200:
        ok(r)
        return 200
    check_503(r, "/ready")
    return r.status


def poll_ready(d, want, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready(d) == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"/ready never answered {want} within {timeout}s")


def test_healthy_report(stm_daemon):
    d = stm_daemon
    status, data = poll_health(d, lambda s, x: x["overall_status"] == "healthy", 5, "healthy")
    check_report(data, d.backend, "embedded")
    assert status == 200
    for c in ("stm", "ltm"):
        assert data["components"][c]["status"] == "healthy"
    assert data["components"]["cache"]["backend"]
    version = scrape(d).series("memoryd_build_info")[0][0]["version"]
    assert data["version"] == version
    poll_ready(d, 200, 5)
    r = d.get("/ready")
    assert ok(r) is not None
    # query parameters are refused like everywhere else
    assert d.get("/health?verbose=1").status == 400


def test_redis_paused_health_answers_fast_and_degrades(daemon, fresh_redis):
    d = daemon(stm="redis", redis=fresh_redis)  # REDIS_SOCKET_TIMEOUT=2
    poll_health(d, lambda s, x: x["overall_status"] == "healthy", 5, "healthy")
    poll_ready(d, 200, 5)
    fresh_redis.pause()
    try:
        paused_at = time.monotonic()
        status, data = poll_health(
            d, lambda s, x: x["components"]["stm"]["status"] == "unhealthy", 3,
            "stm unhealthy while Redis is paused")
        check_report(data, "redis", "embedded")
        assert status == 200 and data["overall_status"] == "degraded", data
        assert data["components"]["ltm"]["status"] == "healthy", data
        assert d.get("/health").json["status"] == "success"
        poll_ready(d, 503, 3)
        # stays degraded, and fast, for as long as Redis hangs (beyond its timeouts)
        while time.monotonic() - paused_at < 5:
            status, data = health(d)
            assert (status, data["overall_status"]) == (200, "degraded"), data
            assert data["components"]["stm"]["status"] == "unhealthy", data
            assert ready(d) == 503
            time.sleep(0.2)
    finally:
        fresh_redis.resume()
    poll_health(d, lambda s, x: x["overall_status"] == "healthy", 10, "healthy after resume")
    poll_ready(d, 200, 5)


def test_no_store_reachable_is_503_with_the_full_report(daemon, fresh_redis):
    """Redis up, Neo4j where nothing listens: degraded and not ready; Redis
    killed too: 503 unhealthy; Redis back: degraded again."""
    d = daemon(stm="redis", redis=fresh_redis, ltm="neo4j",
               NEO4J_URI=f"http://127.0.0.1:{free_port()}", NEO4J_USERNAME="neo4j",
               NEO4J_PASSWORD="not-the-password", NEO4J_CONNECTION_TIMEOUT="1",
               NEO4J_QUERY_TIMEOUT="1", REDIS_SOCKET_TIMEOUT="1",
               REDIS_SOCKET_CONNECT_TIMEOUT="1")
    status, data = poll_health(
        d, lambda s, x: x["components"]["stm"]["status"] == "healthy" and
        x["components"]["ltm"]["status"] == "unhealthy", 5, "stm healthy, ltm unhealthy")
    check_report(data, "redis", "neo4j")
    assert (status, data["overall_status"]) == (200, "degraded")
    assert ready(d) == 503
    r = d.get("/ready")
    assert r.json["data"]  # the readiness report comes along

    fresh_redis.kill()
    status, data = poll_health(d, lambda s, x: s == 503, 5, "503 with both stores down")
    check_report(data, "redis", "neo4j")
    assert data["overall_status"] == "unhealthy"
    assert data["components"]["stm"]["status"] == "unhealthy"
    assert data["components"]["ltm"]["status"] == "unhealthy"
    for c in ("stm", "ltm"):  # client-safe messages: no secrets, no raw driver text
        assert "not-the-password" not in data["components"][c]["message"]
    for _ in range(5):  # every answer fast and the same
        status, data = health(d)
        assert (status, data["overall_status"]) == (503, "unhealthy")
    assert ready(d) == 503

    fresh_redis.restart(kill=True)
    status, data = poll_health(d, lambda s, x: s == 200, 10, "200 once Redis is back")
    assert data["overall_status"] == "degraded"
    assert data["components"]["stm"]["status"] == "healthy"
    assert ready(d) == 503  # Neo4j still down, schema not in place
