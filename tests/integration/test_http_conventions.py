"""
HTTP conventions of spec §1 and §6 on the STM routes: envelopes, routing
(404 / 405 + Allow), X-Request-Id, 415, 413 (declared, streamed and chunked
bodies), API keys, and escaped slashes in ids. Runs on both STM backends
(API keys: embedded only — authentication happens before any store is used).
"""
import json
import re

import pytest

from conftest import (MISSING, REQUEST_ID_RE, STM_BACKENDS, chunked, create, entry_body, err,
                      get_raw, health_ok, ok, raw_request, stats, streamed_request, wait_for)

BASE = "/v1/stm/entries"
SID = "{sid}"  # placeholder replaced by a real, existing id


@pytest.fixture
def entry(shared_stm_daemon):
    """A stored entry whose bytes must not change, and the store size around the test."""
    d = shared_stm_daemon
    e = create(d)
    sid = e["scenario_id"]
    before = get_raw(d, sid)
    n = stats(d)["total_entries"]
    yield e
    assert get_raw(d, sid) == before, "a refused request changed a stored entry"
    assert stats(d)["total_entries"] == n, "a refused request stored or deleted something"
    health_ok(d)


# --------------------------------------------------------------------------- envelopes

def test_success_and_error_envelopes(shared_stm_daemon, entry):
    d = shared_stm_daemon
    ok(d.get("/v1/stm/stats"))
    ok(d.get(f"{BASE}/{entry['scenario_id']}"))
    ok(d.get(BASE + "?limit=1"))
    j = err(d.get(f"{BASE}/ecommerce_r1_not_there"), 404, "not_found")
    assert "field" not in j or j["field"] == "scenario_id"
    err(d.get("/v1/nowhere"), 404, "not_found", MISSING)
    # messages do not echo the raw request
    r = d.get(f"{BASE}/<script>alert(1)<%2Fscript>")
    err(r, 400, "validation_error", "scenario_id")
    assert "<script>" not in r.body


def test_health_answers(shared_stm_daemon):
    d = shared_stm_daemon
    # /health reports the background probes (every second): allow a first probe slowed
    # down by a sanitizer build to be replaced by a normal one.
    wait_for(lambda: ok(d.get("/health"))["overall_status"] == "healthy", 5,
             what="/health to report healthy")
    assert d.get("/ready").status == 200


# --------------------------------------------------------------------------- routing

@pytest.mark.parametrize("path", [
    "/", "/v1", "/v1/", "/v1/stm", "/v1/stm/entry", "/v2/stm/entries", "/V1/stm/stats",
    "/v1/STM/stats", "/v1/stm/stats/", "/v1/stm/stats/x", "/v1/stm/entries/a_r1_b/x",
    "/v1/stm/entries/a_r1_b/feedback/x", "/v1/stm/entries/a_r1_b/ttl/", "/health/x",
    "/v1/stm%2Fstats", "/v1/stm/entries%2Fa_r1_b", "/a/b/c/d/e/f/g/h/i/j/k", "/favicon.ico",
    "/v1/stm/entries/a_r1_b/promote/x",
])
def test_unknown_route_is_404(shared_stm_daemon, entry, path):
    d = shared_stm_daemon
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        body = entry_body() if method in ("POST", "PUT", "PATCH") else None
        err(d.request(method, path, body=body), 404, "not_found", MISSING)


ALLOW = [
    ("DELETE", BASE, {"GET", "POST"}),
    ("PUT", BASE, {"GET", "POST"}),
    ("PATCH", BASE, {"GET", "POST"}),
    ("POST", f"{BASE}/{SID}", {"GET", "PATCH", "DELETE"}),
    ("PUT", f"{BASE}/{SID}", {"GET", "PATCH", "DELETE"}),
    ("GET", f"{BASE}/{SID}/feedback", {"PUT"}),
    ("POST", f"{BASE}/{SID}/feedback", {"PUT"}),
    ("PATCH", f"{BASE}/{SID}/feedback", {"PUT"}),
    ("DELETE", f"{BASE}/{SID}/feedback", {"PUT"}),
    ("GET", f"{BASE}/{SID}/ttl", {"PUT"}),
    ("DELETE", f"{BASE}/{SID}/ttl", {"PUT"}),
    ("POST", "/v1/stm/stats", {"GET"}),
    ("DELETE", "/v1/stm/stats", {"GET"}),
    ("POST", "/health", {"GET"}),
    ("PUT", "/ready", {"GET"}),
]


def allow_set(resp):
    allow = resp.header("Allow")
    assert allow, f"405 without Allow: {resp!r}"
    methods = [m.strip() for m in allow.split(",")]
    assert all(re.fullmatch(r"[A-Z]+", m) for m in methods), allow
    return set(methods) - {"HEAD", "OPTIONS"}


@pytest.mark.parametrize("method,path,allowed", ALLOW)
def test_wrong_method_is_405_with_allow(shared_stm_daemon, entry, method, path, allowed):
    d = shared_stm_daemon
    path = path.replace(SID, entry["scenario_id"])
    body = entry_body() if method in ("POST", "PUT", "PATCH") else None
    r = d.request(method, path, body=body)
    err(r, 405, "method_not_allowed", MISSING)
    assert allow_set(r) == allowed


def test_unknown_method(shared_stm_daemon, entry):
    """A method the server does not know is a wrong method on a known path (405 with
    the right Allow), and an unknown route is still 404."""
    d = shared_stm_daemon
    r = raw_request(d.port, "FROB", BASE)
    err(r, 405, "method_not_allowed", MISSING)
    assert allow_set(r) == {"GET", "POST"}
    r = raw_request(d.port, "FROB", f"{BASE}/{entry['scenario_id']}/ttl")
    err(r, 405, "method_not_allowed", MISSING)
    assert allow_set(r) == {"PUT"}
    err(raw_request(d.port, "FROB", "/v1/nowhere"), 404, "not_found", MISSING)


def test_head_on_get_routes(shared_stm_daemon, entry):
    d = shared_stm_daemon
    for path in ("/health", "/v1/stm/stats", BASE, f"{BASE}/{entry['scenario_id']}"):
        r = d.request("HEAD", path)
        assert r.status == 200, (path, r)
        assert r.body == ""
        assert REQUEST_ID_RE.match(r.header("X-Request-Id") or "")
    assert d.request("HEAD", f"{BASE}/ecommerce_r1_not_there").status == 404


def test_escaped_slash_does_not_change_the_route(shared_stm_daemon, entry):
    d = shared_stm_daemon
    sid = entry["scenario_id"]
    err(d.get(f"{BASE}/{sid}%2Ffeedback"), 400, "validation_error", "scenario_id")
    err(d.get(f"{BASE}/{sid}%2fttl"), 400, "validation_error", "scenario_id")
    err(d.patch(f"{BASE}/{sid}%2F", {}), 400, "validation_error", "scenario_id")
    err(d.delete(f"{BASE}/{sid}%2F..%2F{sid}"), 400, "validation_error", "scenario_id")
    # PUT .../{id}%2Fttl stays on the {id} route, which has no PUT: not a TTL update.
    r = d.put(f"{BASE}/{sid}%2Fttl", {"ttl_seconds": 100})
    err(r, 405, "method_not_allowed")
    assert allow_set(r) == {"GET", "PATCH", "DELETE"}


# --------------------------------------------------------------------------- X-Request-Id

@pytest.mark.parametrize("value", ["a", "abc-123", "A.b_c-9", "x" * 64, "0", "...", "_-_",
                                   "0123456789abcdefABCDEF"])
def test_request_id_valid_is_echoed(shared_stm_daemon, value):
    d = shared_stm_daemon
    for method, path in (("GET", "/v1/stm/stats"), ("GET", "/v1/nowhere"),
                         ("DELETE", "/v1/stm/stats"), ("GET", f"{BASE}/BAD")):
        r = d.request(method, path, headers={"X-Request-Id": value})
        assert r.header("X-Request-Id") == value, (method, path, r.headers)


@pytest.mark.parametrize("value", ["x" * 65, "has space", "a/b", "a,b", "<x>", "a:b", "ä",
                                   "", "a\tb", "a;b", "%41", "x" * 1000])
def test_request_id_invalid_is_replaced(shared_stm_daemon, value):
    d = shared_stm_daemon
    seen = set()
    for path in ("/v1/stm/stats", "/v1/nowhere", "/health"):
        r = d.request("GET", path, headers={"X-Request-Id": value})
        rid = r.header("X-Request-Id")
        assert rid and REQUEST_ID_RE.match(rid), rid
        assert rid != value and rid.strip() != value.strip()
        seen.add(rid)
    assert len(seen) == 3, "generated request ids repeat"


def test_request_id_generated_when_absent_and_unique(shared_stm_daemon):
    d = shared_stm_daemon
    got = [d.get("/v1/stm/stats").header("X-Request-Id") for _ in range(20)]
    assert all(g and REQUEST_ID_RE.match(g) for g in got)
    assert len(set(got)) == 20


# --------------------------------------------------------------------------- 415

BAD_TYPES = [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx",
             "application/json-patch+json", "text/json", "multipart/form-data; boundary=x",
             "application/javascript", "application/xml", "json", "application", "*/*",
             "application/ json", "application/json, text/plain"]
GOOD_TYPES = ["application/json", "application/json; charset=utf-8",
              "application/json;charset=UTF-8", "APPLICATION/JSON", "Application/Json; charset=utf-8"]


@pytest.mark.parametrize("ctype", BAD_TYPES)
def test_body_without_json_content_type_is_415(shared_stm_daemon, entry, ctype):
    d = shared_stm_daemon
    sid = entry["scenario_id"]
    hdrs = {} if ctype is None else {"Content-Type": ctype}
    for method, path, body in (
            ("POST", BASE, entry_body()),
            ("PATCH", f"{BASE}/{sid}", {"requirement_text": "changed"}),
            ("PUT", f"{BASE}/{sid}/feedback", {"decision": "d", "rationale": "r",
                                               "suggestion": "s"}),
            ("PUT", f"{BASE}/{sid}/ttl", {"ttl_seconds": 100})):
        r = d.request(method, path, raw=json.dumps(body).encode(), headers=hdrs)
        err(r, 415, "unsupported_media_type", MISSING)


@pytest.mark.parametrize("ctype", GOOD_TYPES)
def test_json_content_types_accepted(shared_stm_daemon, ctype):
    d = shared_stm_daemon
    body = entry_body()
    r = d.request("POST", BASE, raw=json.dumps(body).encode(), headers={"Content-Type": ctype})
    e = ok(r, 201)["stm_entry"]
    assert e["scenario_id"] == body["scenario_id"]
    r = d.request("PATCH", f"{BASE}/{e['scenario_id']}", raw=b'{"requirement_text":"new"}',
                  headers={"Content-Type": ctype})
    assert ok(r)["updated_fields"] == ["requirement_text"]


# --------------------------------------------------------------------------- 413

MIB = 1024 * 1024


def padded_create(size):
    """A valid create body of exactly `size` bytes (JSON padded with spaces)."""
    raw = json.dumps(entry_body()).encode()
    assert len(raw) < size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def test_body_at_the_limit_is_accepted_one_more_byte_is_413(shared_stm_daemon, entry):
    d = shared_stm_daemon
    body = padded_create(MIB)
    e = ok(d.request("POST", BASE, raw=body, headers={"Content-Type": "application/json"}), 201)
    assert d.delete(f"{BASE}/{e['stm_entry']['scenario_id']}").status == 204
    body = padded_create(MIB + 1)
    head = (f"POST {BASE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    r, _ = streamed_request(d.port, head, [body[i:i + 65536] for i in range(0, len(body), 65536)])
    err(r, 413, "payload_too_large", MISSING)


def test_10_mib_declared_body_is_413_early(shared_stm_daemon, entry):
    d = shared_stm_daemon
    total = 10 * MIB
    head = (f"POST {BASE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {total}\r\nX-Request-Id: big-declared\r\n\r\n").encode()
    block = b" " * 65536
    r, sent = streamed_request(d.port, head, (block for _ in range(total // len(block))))
    err(r, 413, "payload_too_large", MISSING)
    assert r.header("X-Request-Id") == "big-declared"
    assert sent < total, "the server waited for the whole 10 MiB body before answering"


def test_10_mib_chunked_body_is_413(shared_stm_daemon, entry):
    d = shared_stm_daemon
    total = 10 * MIB
    head = (f"POST {BASE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\nX-Request-Id: big-chunked\r\n\r\n").encode()
    body = b"{" + b" " * (total - 2) + b"}"
    r, sent = streamed_request(d.port, head, chunked(body))
    err(r, 413, "payload_too_large", MISSING)
    assert r.header("X-Request-Id") == "big-chunked"
    # With chunked coding the server may drain the rest before answering (without
    # buffering it); either way the client gets the 413.


def test_small_chunked_body_is_accepted(shared_stm_daemon):
    d = shared_stm_daemon
    body = json.dumps(entry_body()).encode()
    head = (f"POST {BASE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    r, _ = streamed_request(d.port, head, chunked(body, size=7))
    assert ok(r, 201)["stm_entry"]["scenario_id"] == json.loads(body)["scenario_id"]


@pytest.mark.parametrize("backend", STM_BACKENDS[:1])
def test_configured_request_size_limit(daemon, backend):
    d = daemon(stm=backend, API_MAX_REQUEST_SIZE="4096")
    ok(d.request("POST", BASE, raw=padded_create(4096),
                 headers={"Content-Type": "application/json"}), 201)
    body = padded_create(4097)
    head = (f"POST {BASE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    err(streamed_request(d.port, head, [body])[0], 413, "payload_too_large")
    head = (f"POST {BASE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n").encode()
    err(streamed_request(d.port, head, chunked(body, 1000))[0], 413, "payload_too_large")
    assert stats(d)["total_entries"] == 1


# --------------------------------------------------------------------------- API keys

def test_api_keys(daemon):
    d = daemon(stm="embedded", API_KEYS="key-one,key-two")
    good = {"Authorization": "Bearer key-one"}
    e = ok(d.post(BASE, entry_body(), headers=good), 201)["stm_entry"]
    sid = e["scenario_id"]
    fb = {"decision": "d", "rationale": "r", "suggestion": "s"}
    routes = [("GET", BASE, None), ("POST", BASE, entry_body()),
              ("GET", f"{BASE}/{sid}", None), ("PATCH", f"{BASE}/{sid}", {"final_status": None}),
              ("PUT", f"{BASE}/{sid}/feedback", fb), ("PUT", f"{BASE}/{sid}/ttl",
                                                       {"ttl_seconds": 100}),
              ("DELETE", f"{BASE}/{sid}", None), ("GET", "/v1/stm/stats", None)]
    bad_headers = [{}, {"Authorization": "Bearer wrong-key"}, {"X-API-Key": "wrong-key"},
                   {"Authorization": "Bearer "}, {"Authorization": "key-one"},
                   {"Authorization": "Basic a2V5LW9uZTo="}, {"Authorization": "Bearer key-on"},
                   {"Authorization": "Bearer key-one,key-two"}, {"X-API-Key": ""},
                   {"Authorization": "Bearer key-one2"}, {"X-API-Key": "KEY-ONE"}]
    for method, path, body in routes:
        for hdrs in bad_headers:
            r = d.request(method, path, body=body, headers=dict(hdrs, **{"X-Request-Id": "a1"}))
            err(r, 401, "unauthorized", MISSING)
            www = r.header("WWW-Authenticate") or ""
            assert www.lower().startswith("bearer"), r.headers
            assert r.header("X-Request-Id") == "a1"
            assert "wrong-key" not in r.body and "key-one" not in r.body
    # Nothing above reached the store.
    assert ok(d.get(f"{BASE}/{sid}", headers=good))["stm_entry"] == e
    assert ok(d.get("/v1/stm/stats", headers=good))["total_entries"] == 1
    # Good keys, both headers, scheme case-insensitive.
    for hdrs in (good, {"Authorization": "Bearer key-two"}, {"X-API-Key": "key-one"},
                 {"X-API-Key": "key-two"}, {"Authorization": "bearer key-one"}):
        ok(d.get("/v1/stm/stats", headers=hdrs))
    # /health and /ready stay open, with or without a (wrong) key.
    for hdrs in ({}, {"Authorization": "Bearer wrong"}):
        ok(d.get("/health", headers=hdrs))
        assert d.get("/ready", headers=hdrs).status == 200
    assert d.delete(f"{BASE}/{sid}", headers={"X-API-Key": "key-two"}).status == 204


def test_without_api_keys_routes_are_open(shared_stm_daemon):
    ok(shared_stm_daemon.get("/v1/stm/stats", headers={"Authorization": "Bearer anything"}))


# --------------------------------------------------------------------------- access log

@pytest.mark.parametrize("fmt", ["text", "json"])
def test_one_access_log_line_per_request(daemon, fmt):
    """Every request leaves exactly one access line: method, path, status, µs, request id."""
    d = daemon(LOG_FORMAT=fmt)
    calls = [("GET", "/health", 200), ("GET", f"{BASE}/nosuch_r1_entry", 404),
             ("DELETE", "/health", 405), ("POST", BASE, 400)]
    rids = []
    for i, (method, path, status) in enumerate(calls):
        rid = f"accesslog-{fmt}-{i}"
        r = d.request(method, path, body={} if method == "POST" else None,
                      headers={"X-Request-Id": rid})
        assert r.status == status, (method, path, r.status)
        rids.append(rid)

    def lines():
        return [ln for ln in d.read_log().splitlines() if "accesslog-" in ln]
    wait_for(lambda: len(lines()) >= len(calls), 5, what="the access log lines")
    got = lines()
    assert len(got) == len(calls), got
    for (method, path, status), rid, line in zip(calls, rids, got):
        if fmt == "json":
            rec = json.loads(line)
            assert rec["component"] == "access" and rec["level"] == "INFO", rec
            assert (rec["method"], rec["path"], rec["status"], rec["request_id"]) == \
                (method, path, status, rid), rec
            assert isinstance(rec["duration_us"], int) and 0 <= rec["duration_us"] < 10**7, rec
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["timestamp"]), rec
        else:
            m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) INFO +access: "
                             r"(\S+) (\S+) (\d{3}) (\d+)us (\S+)", line)
            assert m, line
            assert (m[2], m[3], int(m[4]), m[6]) == (method, path, status, rid), line
            assert int(m[5]) < 10**7, line
