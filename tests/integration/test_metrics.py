"""
GET /metrics (spec §5, §6 "Metric names"), GET /v1/dashboard and GET /dashboard.

The exposition is parsed with a real Prometheus text-format parser
(prometheus_client.parser.text_string_to_metric_families, pinned in
tests/requirements.txt): every family of spec §6 with its type, histogram
invariants, counters that move by exactly what the traffic did (requests
per route PATTERN, method and status; latency histogram counts; store call
counts; cache hits and misses; store errors), the content type, and
METRICS_REQUIRE_AUTH. The dashboard: the exact shape of spec §5, nulls and
"unknown" before there are samples, numbers and statuses by the rule of §6
after, system_health.
"""
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import (TimedClient, create, create_rule, entry_body, err, ok, parse_ts,
                      now_ms, scrape, unique_domain, wait_for)

STM = "/v1/stm/entries"
ID_ROUTE = "/v1/stm/entries/{id}"

# spec §6: family name as exposed -> type
SPEC_FAMILIES = {
    "memoryd_http_requests_total": "counter",
    "memoryd_http_request_duration_seconds": "histogram",
    "memoryd_store_call_duration_seconds": "histogram",
    "memoryd_store_errors_total": "counter",
    "memoryd_cache_hits_total": "counter",
    "memoryd_cache_misses_total": "counter",
    "memoryd_cache_evictions_total": "counter",
    "memoryd_cache_entries": "gauge",
    "memoryd_pool_connections": "gauge",
    "memoryd_http_handler_threads": "gauge",
    "memoryd_http_handler_queue": "gauge",
    "memoryd_alert_firing": "gauge",
    "memoryd_build_info": "gauge",
}
ROUTE_PATTERNS = {
    "/v1/stm/entries", "/v1/stm/entries/{id}", "/v1/stm/entries/{id}/feedback",
    "/v1/stm/entries/{id}/ttl", "/v1/stm/stats", "/v1/stm/entries/{id}/promote",
    "/v1/ltm/rules", "/v1/ltm/rules/{id}", "/v1/ltm/rules/{id}/history",
    "/v1/ltm/rules/{id}/audit", "/v1/ltm/concepts", "/v1/ltm/concepts/{name}/rules",
    "/v1/trace/{scenario_id}", "/v1/integrity", "/v1/stats", "/v1/dashboard", "/v1/alerts",
    "/v1/alerts/rules", "/v1/alerts/rules/{name}", "/v1/cache/invalidate", "/health", "/ready",
    "/metrics", "/dashboard", "/openapi.json", "unmatched"}
DEFAULT_ALERTS = ("High STM Response Time", "High LTM Response Time", "High API Response Time",
                  "Low Cache Hit Rate", "High Error Rate", "High Connection Pool Utilization")
KEY_METRICS = {  # name -> (threshold, lower is better)
    "stm_response_time_ms": (100.0, True),
    "ltm_response_time_ms": (500.0, True),
    "api_response_time_ms": (1000.0, True),
    "cache_hit_rate_percent": (70.0, False),
    "error_rate_percent": (1.0, True),
    "connection_pool_utilization_percent": (80.0, True),
}


def family(sc, name):
    """The parsed family of an exposed name (the parser drops `_total` from counters)."""
    key = name[:-len("_total")] if SPEC_FAMILIES.get(name) == "counter" else name
    assert key in sc.families, f"family {name} missing from /metrics"
    return sc.families[key]


def delta(after, before, name, **labels):
    return after.value(name, 0.0, **labels) - before.value(name, 0.0, **labels)


def check_histograms(sc, name):
    """Per series: le ascending ending in +Inf, cumulative counts, +Inf == _count, _sum >= 0."""
    fam = family(sc, name)
    series = {}
    for s in fam.samples:
        key = frozenset((k, v) for k, v in s.labels.items() if k != "le")
        series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if s.name == name + "_bucket":
            series[key]["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name == name + "_sum":
            series[key]["sum"] = s.value
        elif s.name == name + "_count":
            series[key]["count"] = s.value
        else:
            raise AssertionError(f"unexpected sample {s.name} in histogram {name}")
    for key, h in series.items():
        les = [le for le, _ in h["buckets"]]
        assert les == sorted(les) and les[-1] == math.inf, f"{name}{dict(key)} buckets {les}"
        counts = [c for _, c in h["buckets"]]
        assert counts == sorted(counts), f"{name}{dict(key)}: buckets not cumulative {counts}"
        assert h["count"] == counts[-1], f"{name}{dict(key)}: _count != +Inf bucket"
        assert h["sum"] is not None and h["sum"] >= 0
    return series


# --------------------------------------------------------------------------- exposition

def test_exposition_has_every_family_of_the_spec(stm_daemon):
    d = stm_daemon
    sid = create(d)["scenario_id"]
    ok(d.get(f"{STM}/{sid}"))
    create_rule(d, sources=[sid])
    r = d.get("/metrics")
    assert r.status == 200
    ctype = r.header("Content-Type") or ""
    params = [p.strip().lower() for p in ctype.split(";")]
    assert params[0] == "text/plain" and "version=0.0.4" in params[1:], ctype
    assert set(params[1:]) <= {"version=0.0.4", "charset=utf-8"}, ctype
    assert r.header("X-Request-Id")
    # pool figures come from the janitor's tick (about once a second)
    wait_for(lambda: scrape(d).series("memoryd_pool_connections"), 5,
             what="memoryd_pool_connections series after the first metrics tick")
    sc = scrape(d)
    for name, typ in SPEC_FAMILIES.items():
        fam = family(sc, name)
        assert fam.type == typ, f"{name}: type {fam.type}, spec says {typ}"
        assert f"# TYPE {name} {typ}\n" in sc.text, f"no '# TYPE {name} {typ}' line"
        assert re.search(rf"^# HELP {name} \S", sc.text, re.M), f"no HELP for {name}"

    version = ok(d.get("/health"))["version"]
    assert sc.series("memoryd_build_info") == [({"version": version}, 1.0)]
    firing = dict((l["alert"], v) for l, v in sc.series("memoryd_alert_firing"))
    assert firing == {a: 0.0 for a in DEFAULT_ALERTS}
    for name in ("memoryd_http_request_duration_seconds", "memoryd_store_call_duration_seconds"):
        check_histograms(sc, name)
    for labels, _ in sc.series("memoryd_http_requests_total"):
        assert set(labels) == {"route", "method", "status"}, labels
        assert labels["route"] in ROUTE_PATTERNS, f"route label {labels['route']!r}"
    for labels, _ in sc.series("memoryd_http_request_duration_seconds_count"):
        assert set(labels) == {"route", "method"} and labels["route"] in ROUTE_PATTERNS
    for labels, _ in sc.series("memoryd_store_call_duration_seconds_count"):
        assert set(labels) == {"store", "op"} and labels["store"] in ("stm", "ltm"), labels
    assert {l["op"] for l, _ in sc.series("memoryd_store_call_duration_seconds_count")
            if l["store"] == "stm"} >= {"create", "get"}
    assert {l["op"] for l, _ in sc.series("memoryd_store_call_duration_seconds_count")
            if l["store"] == "ltm"} >= {"create"}
    for labels, v in sc.series("memoryd_store_errors_total"):
        assert set(labels) == {"store", "op"} and v == 0, (labels, v)
    for name in ("memoryd_cache_hits_total", "memoryd_cache_misses_total",
                 "memoryd_cache_evictions_total", "memoryd_cache_entries"):
        assert [l for l, _ in sc.series(name)] == [{}], f"{name}: one unlabelled series"
    pool = {l["state"]: v for l, v in sc.series("memoryd_pool_connections")
            if l["store"] == "stm"}
    if d.backend == "redis":
        assert set(pool) == {"open", "in_use", "max"}, pool
        assert pool["max"] == 50 and 1 <= pool["open"] <= 50 and 0 <= pool["in_use"] <= 50
    for labels, _ in sc.series("memoryd_pool_connections"):
        assert set(labels) == {"store", "state"}, labels


def test_counters_move_with_the_traffic(stm_daemon):
    d = stm_daemon
    dom = unique_domain()
    before = scrape(d)
    sids = [create(d, entry_body(f"{dom}_r{i}_metrics"))["scenario_id"] for i in (1, 2, 3)]
    for sid in sids:  # a miss then a hit each
        ok(d.get(f"{STM}/{sid}"))
        ok(d.get(f"{STM}/{sid}"))
    for i in (7, 8):
        err(d.get(f"{STM}/{dom}_r{i}_missing"), 404, "not_found")
    err(d.get(f"{STM}/Not-A-Valid-Id"), 400, "validation_error")
    ok(d.patch(f"{STM}/{sids[0]}", {"requirement_text": "Changed."}))
    err(d.get("/v1/no/such/route"), 404, "not_found")
    after = scrape(d)

    rq = "memoryd_http_requests_total"
    assert delta(after, before, rq, route=ID_ROUTE, method="GET", status="200") == 6
    assert delta(after, before, rq, route=ID_ROUTE, method="GET", status="404") == 2
    assert delta(after, before, rq, route=ID_ROUTE, method="GET", status="400") == 1
    assert delta(after, before, rq, route=ID_ROUTE, method="PATCH", status="200") == 1
    assert delta(after, before, rq, route=STM, method="POST", status="201") == 3
    assert delta(after, before, rq, route="unmatched", method="GET", status="404") == 1
    assert delta(after, before, rq, route="/metrics", method="GET", status="200") == 1
    for labels, _ in after.series(rq):  # never a raw path
        assert labels["route"] in ROUTE_PATTERNS, f"route label {labels['route']!r}"
        assert not any(s in labels["route"] for s in sids + ["Not-A-Valid-Id", "no/such"])

    h = "memoryd_http_request_duration_seconds"
    assert delta(after, before, h + "_count", route=ID_ROUTE, method="GET") == 9
    assert delta(after, before, h + "_count", route=STM, method="POST") == 3
    assert delta(after, before, h + "_sum", route=ID_ROUTE, method="GET") > 0
    assert delta(after, before, h + "_bucket", route=ID_ROUTE, method="GET", le="+Inf") == 9

    s = "memoryd_store_call_duration_seconds_count"
    assert delta(after, before, s, store="stm", op="create") == 3
    # 3 misses + 2 unknown ids reach the store; cache hits and the malformed id do not
    assert delta(after, before, s, store="stm", op="get") == 5
    assert delta(after, before, s, store="stm", op="patch") == 1
    assert delta(after, before, "memoryd_store_errors_total", store="stm", op="get") == 0
    assert delta(after, before, "memoryd_cache_hits_total") == 3
    assert delta(after, before, "memoryd_cache_misses_total") == 5
    # three answers were stored (the PATCH made one of them stale; stale answers are
    # dropped when next looked up, so it still counts here); 404/400 are never stored
    assert after.value("memoryd_cache_entries") == 3
    check_histograms(after, h)
    check_histograms(after, "memoryd_store_call_duration_seconds")


def test_store_errors_and_503s_are_counted(daemon, fresh_redis):
    d = daemon(stm="redis", redis=fresh_redis, REDIS_SOCKET_TIMEOUT="1",
               REDIS_SOCKET_CONNECT_TIMEOUT="1")
    sid = create(d)["scenario_id"]
    before = scrape(d)
    fresh_redis.kill()
    r = d.get(f"{STM}/{sid}x")
    err(r, 503, "storage_unavailable")
    after = scrape(d)
    assert delta(after, before, "memoryd_store_errors_total", store="stm", op="get") == 1
    assert delta(after, before, "memoryd_store_call_duration_seconds_count",
                 store="stm", op="get") == 1
    assert delta(after, before, "memoryd_http_requests_total", route=ID_ROUTE, method="GET",
                 status="503") == 1


def handler_gauges(d):
    sc = scrape(d)
    threads = {l["state"]: v for l, v in sc.series("memoryd_http_handler_threads")}
    queue = sc.series("memoryd_http_handler_queue")
    return threads, (queue[0][1] if queue else None)


def test_handler_thread_gauges_follow_blocked_requests(daemon, fresh_redis):
    """Pool mode: STM calls stuck on a paused Redis each hold a handler thread (the pool
    grows past API_WORKERS), while /metrics is answered by an event thread and shows them;
    once Redis resumes every thread is free again. Per-connection mode has no such gauges."""
    d = daemon(stm="redis", redis=fresh_redis, API_WORKERS="2", CACHE_MAX_ENTRIES="0",
               REDIS_SOCKET_TIMEOUT="10", REDIS_SOCKET_CONNECT_TIMEOUT="1")
    sids = [create(d)["scenario_id"] for _ in range(6)]
    threads, queue = handler_gauges(d)
    assert threads["running"] >= 2 and threads["busy"] == 0 and queue == 0, (threads, queue)
    fresh_redis.pause()
    pool = ThreadPoolExecutor(len(sids))
    try:
        futs = [pool.submit(lambda p: TimedClient(d.port, 30).request("GET", p),
                            f"{STM}/{sid}") for sid in sids]
        wait_for(lambda: handler_gauges(d)[0]["busy"] >= len(sids), 5,
                 what=f"{len(sids)} busy handler threads while Redis is paused")
        threads, queue = handler_gauges(d)
        assert threads["running"] >= len(sids) and queue == 0, (threads, queue)
    finally:
        fresh_redis.resume()
    for f in futs:
        r, _ = f.result(timeout=30)
        assert r.status in (200, 503), r
    pool.shutdown()
    wait_for(lambda: handler_gauges(d)[0]["busy"] == 0, 5, what="handler threads free again")
    pc = daemon(API_THREAD_MODE="per-connection")
    assert handler_gauges(pc) == ({}, None)
    assert "# TYPE memoryd_http_handler_threads gauge" in scrape(pc).text


def test_metrics_require_auth(daemon):
    d = daemon(API_KEYS="key-one,key-two", METRICS_REQUIRE_AUTH="true")
    for path in ("/metrics", "/dashboard", "/openapi.json", "/v1/dashboard", "/v1/alerts"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}):
            r = d.get(path, headers=headers)
            err(r, 401, "unauthorized")
            assert (r.header("WWW-Authenticate") or "").startswith("Bearer"), r.headers
        assert d.get(path, headers={"Authorization": "Bearer key-one"}).status == 200, path
        assert d.get(path, headers={"X-API-Key": "key-two"}).status == 200, path
    assert "key-one" not in d.get("/metrics", headers={"X-API-Key": "key-two"}).body
    for path in ("/health", "/ready"):
        wait_for(lambda: d.get(path).status == 200, 10, what=f"{path} 200 without a key")
        ok(d.get(path))

    # without METRICS_REQUIRE_AUTH the operational pages stay open, /v1 does not
    d2 = daemon(API_KEYS="key-one")
    for path in ("/metrics", "/dashboard", "/openapi.json"):
        assert d2.get(path).status == 200, path
    err(d2.get("/v1/dashboard"), 401, "unauthorized")
    # the /metrics scrape of an authorised client is counted like any request
    sc = scrape(d2)
    assert sc.value("memoryd_http_requests_total", route="/v1/dashboard", method="GET",
                    status="401") == 1


# --------------------------------------------------------------------------- dashboard

def judge(name, v):
    """Spec §6 "Dashboard values"."""
    if v is None:
        return "unknown"
    t, lower = KEY_METRICS[name]
    eps = 1e-9 * max(1.0, abs(t))
    if lower:
        return "good" if v <= 0.7 * t + eps else "warning" if v <= t + eps else "critical"
    return "good" if v >= t - eps else "warning" if v >= 0.8 * t - eps else "critical"


def check_dashboard(d, data, ltm_backend="embedded"):
    """The exact shape of spec §5 and the statuses of §6 (one project decision on
    top, dashboard.c: the hit rate of a cache with fewer than 100 lookups in the
    window — the minimum of the hit-rate alert — is "unknown", not judged)."""
    backend = d.backend
    lookups = scrape(d).value("memoryd_window_samples", metric="cache_hit_rate_percent",
                              window="15m")
    assert set(data) == {"timestamp", "system_health", "alerts", "key_metrics",
                         "component_performance"}, sorted(data)
    assert abs(parse_ts(data["timestamp"]) - now_ms()) < 60_000
    assert data["system_health"] in ("healthy", "warning", "critical")
    assert isinstance(data["alerts"], list)
    for a in data["alerts"]:
        assert set(a) == {"name", "metric", "threshold", "duration_seconds", "state", "since",
                          "severity"}, sorted(a)
        assert a["state"] in ("pending", "firing") and a["severity"] in ("warning", "critical")
        parse_ts(a["since"])
    km = data["key_metrics"]
    assert set(km) == set(KEY_METRICS), sorted(km)
    levels = []
    for name, m in km.items():
        assert set(m) == {"current", "average", "p95", "threshold", "status"}, (name, sorted(m))
        assert m["threshold"] == KEY_METRICS[name][0], (name, m)
        assert m["status"] in ("good", "warning", "critical", "unknown"), (name, m)
        nulls = [m[k] is None for k in ("current", "average", "p95")]
        if m["average"] is None:
            assert all(nulls) and m["status"] == "unknown", (name, m)
        else:
            for k in ("average", "p95") + (("current",) if m["current"] is not None else ()):
                assert isinstance(m[k], (int, float)) and not isinstance(m[k], bool), (name, m)
                assert m[k] >= 0, (name, m)
            judged = m["current"] if m["current"] is not None else m["average"]
            if name == "cache_hit_rate_percent" and lookups < 100:
                judged = None
            assert m["status"] == judge(name, judged), (name, m, lookups)
        levels.append(m["status"])
    # system_health by the rule of dashboard.h
    active = data["alerts"]
    if "critical" in levels or any(a["severity"] == "critical" and a["state"] == "firing"
                                   for a in active):
        want = "critical"
    elif "warning" in levels or active:
        want = "warning"
    else:
        want = "healthy"
    assert data["system_health"] == want, (data["system_health"], levels, active)
    cp = data["component_performance"]
    assert set(cp) == {"stm", "ltm", "api", "redis", "neo4j"}, sorted(cp)
    for k in ("stm", "ltm", "api"):
        assert {"calls", "errors", "avg_ms", "p95_ms"} <= set(cp[k]), (k, cp[k])
    assert cp["stm"]["backend"] == backend and cp["ltm"]["backend"] == ltm_backend
    assert cp["redis"]["configured"] is (backend == "redis")
    assert cp["neo4j"]["configured"] is (ltm_backend == "neo4j")
    if backend != "redis":
        assert cp["redis"] == {"configured": False}
    return km


def test_dashboard_before_and_after_traffic(stm_daemon):
    d = stm_daemon
    # Before any /v1 request: no API, error-rate or cache samples at all. (Store
    # latencies and the pool utilisation get samples from the health probes and
    # the pool ticks within a second of start-up, traffic or not.)
    km = check_dashboard(d, ok(d.get("/v1/dashboard")))
    for name in ("api_response_time_ms", "error_rate_percent", "cache_hit_rate_percent"):
        assert km[name] == {"current": None, "average": None, "p95": None,
                            "threshold": KEY_METRICS[name][0], "status": "unknown"}, \
            (name, km[name])

    sid = create(d)["scenario_id"]
    for _ in range(50):  # 1 miss, 49 hits
        ok(d.get(f"{STM}/{sid}"))
    dom = unique_domain()
    for i in range(10):  # 10 misses; a 404 is no error
        err(d.get(f"{STM}/{dom}_r{i}_none"), 404, "not_found")
    for _ in range(40):  # 40 hits: 89 of 100 lookups
        ok(d.get(f"{STM}/{sid}"))

    def settled():
        k = ok(d.get("/v1/dashboard"))["key_metrics"]
        return all(k[n]["current"] is not None for n in KEY_METRICS) and \
            k["cache_hit_rate_percent"]["current"] == 89.0 and k
    deadline = time.monotonic() + 10
    while not settled():
        assert time.monotonic() < deadline, ok(d.get("/v1/dashboard"))
        time.sleep(0.2)
    data = ok(d.get("/v1/dashboard"))
    km = check_dashboard(d, data)
    assert km["cache_hit_rate_percent"]["average"] == 89.0
    assert km["cache_hit_rate_percent"]["status"] == "good"
    assert 0 <= km["cache_hit_rate_percent"]["p95"] <= 100
    assert km["error_rate_percent"]["current"] == 0.0
    assert km["error_rate_percent"]["status"] == "good"
    assert km["api_response_time_ms"]["current"] > 0
    assert 0 <= km["connection_pool_utilization_percent"]["current"] <= 100
    cp = data["component_performance"]
    assert cp["api"]["calls"] >= 101 and cp["api"]["errors"] == 0
    assert cp["stm"]["calls"] >= 3
    if d.backend == "redis":
        assert cp["redis"]["backs"] == "stm" and cp["redis"]["pool"]["max"] == 50

