"""
Security settings against real processes: API keys (API_KEYS, API_KEYS_FILE,
METRICS_REQUIRE_AUTH), keys and store passwords never in the log, in
`--check-config` or in an answer; the per-client rate limit (RATE_LIMIT_RPS,
RATE_LIMIT_BURST); Redis AUTH (requirepass and an ACL user); Neo4j over https
with a private CA (NEO4J_CA_FILE) — on the session's own Neo4j (own_neo4j), which
serves HTTPS with a throw-away CA.

Authentication is checked functionally (the constant-time comparison is a code
property: src/api/api.c compares SHA-256 digests with md_consttime_eq).
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import (MEMORYD_BIN, MISSING, RULES, RedisServer, Response, _read, _send,
                      check_rule, create, create_rule, entry_body, err, ok, rule_body,
                      unique_domain, wait_for)

BASE = "/v1/stm/entries"
KEY1 = "k1-Alpha-7f3c9e1d5b"
KEY2 = "k2-Bravo-0a6d2f8e4c"
FILE_KEY1 = "fk1-Charlie-93b1c7e5a2"
FILE_KEY2 = "fk2-Delta-48e0f6a2c9"
WRONG = "wr-Echo-5c2e8a0f7b"



def healthy(d):
    """Wait for the first store probes: /health answers 503 ("not probed yet") until then."""
    wait_for(lambda: d.get("/health").status == 200, 10, what="/health after start-up")
    return d

def one_shot(port, method, path, body=None, headers=None, source=None, timeout=30):
    """One request on a fresh connection (optionally from another loopback address)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
    finally:
        conn.close()


def bearer(key):
    return {"Authorization": "Bearer " + key}


def assert_unauthorized(r, *secrets):
    err(r, 401, "unauthorized", MISSING)
    www = r.header("WWW-Authenticate") or ""
    assert www.lower().startswith("bearer"), f"WWW-Authenticate {www!r}"
    for s in secrets:
        assert s not in r.body, "a key is echoed in a 401"


def assert_not_in_log(d, secrets, where="memoryd log"):
    log = d.read_log()
    assert log, "empty log: nothing was checked"
    for s in secrets:
        assert s not in log, f"a secret ({s[:3]}…) appears in the {where}"


def keys_file(*lines):
    fd, path = tempfile.mkstemp(prefix="memoryd-keys-")
    with os.fdopen(fd, "w") as f:
        f.write("".join(l + "\n" for l in lines))
    os.chmod(path, 0o600)
    return path


def run_memoryd(env, *args, timeout=30):
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            e[k] = os.environ[k]
    e.update(env)
    with tempfile.TemporaryDirectory(prefix="memoryd-sec-") as cwd:
        e.setdefault("DATA_DIR", os.path.join(cwd, "data"))
        return subprocess.run([MEMORYD_BIN, *args], env=e, cwd=cwd, capture_output=True,
                              text=True, timeout=timeout)


# --------------------------------------------------------------------------- API keys

OPS_ROUTES = ["/metrics", "/dashboard", "/openapi.json"]


def v1_calls(sid, rid):
    fb = {"decision": "d", "rationale": "r", "suggestion": "s"}
    return [("GET", BASE, None), ("POST", BASE, entry_body()), ("GET", f"{BASE}/{sid}", None),
            ("PATCH", f"{BASE}/{sid}", {"final_status": None}),
            ("PUT", f"{BASE}/{sid}/feedback", fb), ("PUT", f"{BASE}/{sid}/ttl",
                                                     {"ttl_seconds": 100}),
            ("DELETE", f"{BASE}/{sid}", None), ("GET", "/v1/stm/stats", None),
            ("POST", f"{BASE}/{sid}/promote", {"policy": "GDPR", "rule_text": "t",
                                                "related_concepts": ["c"]}),
            ("POST", RULES, rule_body([sid])), ("GET", RULES, None),
            ("GET", f"{RULES}/{rid}", None), ("PATCH", f"{RULES}/{rid}", {"rule_text": "x"}),
            ("DELETE", f"{RULES}/{rid}", None), ("GET", f"{RULES}/{rid}/history", None),
            ("GET", f"{RULES}/{rid}/audit", None), ("GET", "/v1/ltm/concepts", None),
            ("GET", "/v1/ltm/concepts/consent/rules", None), ("GET", f"/v1/trace/{sid}", None),
            ("GET", "/v1/integrity", None), ("GET", "/v1/stats", None),
            ("GET", "/v1/dashboard", None), ("GET", "/v1/alerts", None),
            ("POST", "/v1/alerts/rules", {"name": "x", "metric_name": "m", "threshold": 1,
                                          "comparison": "gt"}),
            ("DELETE", "/v1/alerts/rules/x", None), ("POST", "/v1/cache/invalidate", {})]


def test_keys_guard_every_v1_route_and_ops_stay_open(daemon):
    d = daemon(API_KEYS=f"{KEY1}, {KEY2}")
    healthy(d)
    sid = ok(d.post(BASE, entry_body(), headers=bearer(KEY1)), 201)["stm_entry"]["scenario_id"]
    r = d.post(RULES, rule_body([sid]), headers={"X-API-Key": KEY2})
    rid = check_rule(ok(r, 201)["ltm_rule"])["rule_id"]
    bad = [{}, bearer(WRONG), {"X-API-Key": WRONG}, bearer(KEY1[:-1]), bearer(KEY1 + "x"),
           {"Authorization": KEY1}, {"Authorization": "Basic " + KEY1},
           {"Authorization": f"Bearer {KEY1},{KEY2}"}, {"X-API-Key": KEY1.upper()}]
    for method, path, body in v1_calls(sid, rid):
        for hdrs in bad:
            assert_unauthorized(d.request(method, path, body=body, headers=hdrs), KEY1, KEY2,
                                WRONG)
    # Nothing above reached a store: the entry and the rule are unchanged.
    assert ok(d.get(f"{BASE}/{sid}", headers=bearer(KEY2)))["stm_entry"]["final_status"] is None
    assert ok(d.get(f"{RULES}/{rid}", headers=bearer(KEY1)))["ltm_rule"]["version"] == 1
    # Both keys, both headers, the scheme in any case.
    for hdrs in (bearer(KEY1), bearer(KEY2), {"X-API-Key": KEY1}, {"X-API-Key": KEY2},
                 {"Authorization": "bearer " + KEY1}, {"Authorization": "BEARER " + KEY2}):
        ok(d.get("/v1/stats", headers=hdrs))
    # Probes and (METRICS_REQUIRE_AUTH=false) the ops pages stay open, keys or not.
    for hdrs in ({}, bearer(WRONG)):
        ok(d.get("/health", headers=hdrs))
        assert d.get("/ready", headers=hdrs).status == 200
        for path in OPS_ROUTES:
            assert d.get(path, headers=hdrs).status == 200, path


def test_metrics_require_auth(daemon):
    d = daemon(API_KEYS=KEY1, METRICS_REQUIRE_AUTH="true")
    healthy(d)
    for path in OPS_ROUTES:
        for hdrs in ({}, bearer(WRONG), {"X-API-Key": WRONG}):
            assert_unauthorized(d.get(path, headers=hdrs), KEY1, WRONG)
        for hdrs in (bearer(KEY1), {"X-API-Key": KEY1}):
            r = d.get(path, headers=hdrs)
            assert r.status == 200, (path, r)
    assert "memoryd_build_info" in d.get("/metrics", headers=bearer(KEY1)).body
    # Probes never need a key.
    ok(d.get("/health"))
    assert d.get("/ready").status == 200


def test_keys_from_a_file(daemon):
    path = keys_file("# memoryd API keys", "", f"  {FILE_KEY1}  ", "# a comment line",
                     FILE_KEY2 + "\r", "")
    try:
        d = daemon(API_KEYS=KEY1, API_KEYS_FILE=path)
        for key in (KEY1, FILE_KEY1, FILE_KEY2):
            ok(d.get("/v1/stm/stats", headers=bearer(key)))
            ok(d.get("/v1/stm/stats", headers={"X-API-Key": key}))
        for key in (WRONG, "# memoryd API keys", "#", FILE_KEY1 + " "):
            assert_unauthorized(d.get("/v1/stm/stats", headers=bearer(key)), FILE_KEY1)
        assert_unauthorized(d.get("/v1/stm/stats"))
        # A file alone is enough.
        d2 = daemon(API_KEYS_FILE=path)
        ok(d2.get("/v1/stm/stats", headers=bearer(FILE_KEY2)))
        assert_unauthorized(d2.get("/v1/stm/stats", headers=bearer(KEY1)))
        d.stop()
        d2.stop()
        for dd in (d, d2):
            assert_not_in_log(dd, (KEY1, FILE_KEY1, FILE_KEY2, WRONG))
    finally:
        os.unlink(path)


SECRET_LINE = "s3cr3t-in-a-bad-line"


@pytest.mark.parametrize("case", ["missing", "unreadable_dir", "space", "non_ascii", "too_long",
                                  "only_comments", "empty"])
def test_a_bad_keys_file_stops_start_up_without_showing_a_key(case):
    tmp = tempfile.mkdtemp(prefix="memoryd-keys-")
    path = os.path.join(tmp, "keys")
    lines = {"space": [FILE_KEY1, f"{SECRET_LINE} x"],
             "non_ascii": [FILE_KEY1, SECRET_LINE + "\u00e9"],
             "too_long": [FILE_KEY1, SECRET_LINE + "x" * 600],
             "only_comments": ["# " + SECRET_LINE, "   ", "#"],
             "empty": []}.get(case)
    if lines is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(l + "\n" for l in lines))
    elif case == "unreadable_dir":
        path = tmp  # a directory, not a file
    try:
        for args in ((), ("--check-config",)):
            res = run_memoryd({"API_KEYS_FILE": path, "API_KEYS": KEY1}, *args)
            out = res.stdout + res.stderr
            assert res.returncode == 2, f"{case} {args}: exit {res.returncode}\n{out}"
            assert "API_KEYS_FILE" in out and path in out, out
            line = [l for l in out.splitlines() if "API_KEYS_FILE" in l]
            assert len(line) == 1 and line[0].startswith("memoryd: "), out
            for s in (SECRET_LINE, FILE_KEY1, KEY1):
                assert s not in out, f"{case}: a key is shown: {out}"
            if case in ("space", "non_ascii", "too_long"):
                assert "line 2" in out, out
            if case in ("only_comments", "empty"):
                assert "no key" in out, out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_check_config_masks_every_secret():
    secrets = {"API_KEYS": f"{KEY1},{KEY2}", "REDIS_PASSWORD": "redis-Pw-8c1e77",
               "NEO4J_PASSWORD": "neo4j-Pw-3a9f02", "CURSOR_SECRET": "cursor-Sec-5d71b4"}
    path = keys_file(FILE_KEY1)
    try:
        res = run_memoryd(dict(secrets, API_KEYS_FILE=path), "--check-config")
        out = res.stdout + res.stderr
        assert res.returncode == 0 and out.startswith("configuration is valid"), out
        for name, value in secrets.items():
            for part in value.split(","):
                assert part not in out, f"{name} is shown by --check-config"
            assert re.search(rf"^{name}=\*+ ", out, re.M), f"{name} not masked:\n{out}"
        assert FILE_KEY1 not in out
        assert f"API_KEYS_FILE={path}" in out  # the path is not a secret
        # the same as command-line flags
        res = run_memoryd({}, "--api-keys", KEY1, "--redis-password", "redis-Pw-8c1e77",
                          "--check-config")
        assert res.returncode == 0, res.stderr
        assert KEY1 not in res.stdout and "redis-Pw-8c1e77" not in res.stdout
    finally:
        os.unlink(path)


def test_keys_and_passwords_never_reach_the_log_or_an_answer(daemon, redis_server):
    path = keys_file(FILE_KEY1)
    cursor_secret = "cursor-Sec-1e4b9d77"
    try:
        d = daemon(stm="redis", API_KEYS=f"{KEY1},{KEY2}", API_KEYS_FILE=path,
                   LOG_LEVEL="debug", LOG_ACCESS="true", CURSOR_SECRET=cursor_secret,
                   RATE_LIMIT_RPS="1000", RATE_LIMIT_BURST="1000")
        secrets = (KEY1, KEY2, FILE_KEY1, WRONG, cursor_secret)
        bodies = []
        sid = ok(d.post(BASE, entry_body(), headers=bearer(KEY1)), 201)["stm_entry"][
            "scenario_id"]
        r = d.post(RULES, rule_body([sid]), headers={"X-API-Key": FILE_KEY1})
        rid = ok(r, 201)["ltm_rule"]["rule_id"]
        for i, (method, path_, body) in enumerate(v1_calls(sid, rid)):
            for hdrs in (bearer(WRONG), {"X-API-Key": WRONG}, {}, bearer(KEY1 + "0"),
                         bearer([KEY1, KEY2, FILE_KEY1][i % 3])):
                r = d.request(method, path_, body=body, headers=hdrs)
                assert r.status < 500, (method, path_, r)
                bodies.append(r.body)
        # keys in places where they do not belong: a query string, a request id, a body
        for target in (f"/dashboard?key={KEY2}", f"/v1/stm/stats?api_key={KEY2}",
                       f"{BASE}?cursor={KEY2}"):
            r = d.get(target, headers=bearer(KEY1))
            bodies.append(r.body)
        bodies.append(d.post(BASE, {"scenario_id": KEY2}, headers=bearer(KEY1)).body)
        for path_ in ("/health", "/ready", "/metrics", "/v1/stats", "/v1/dashboard",
                      "/openapi.json"):
            bodies.append(d.get(path_, headers=bearer(KEY1)).body)
        d.stop()
        for b in bodies:
            for s in secrets:
                assert s not in b.replace(f"key={KEY2}", ""), "a secret in an answer"
        assert_not_in_log(d, secrets + (KEY2,))
        log = d.read_log()
        assert " 401 " in log or '"status":401' in log, "the failures were not logged at all"
    finally:
        os.unlink(path)


# --------------------------------------------------------------------------- rate limit

def drain(send, burst):
    """Send `burst` requests (all must pass), then until one is limited (a slow machine
    may have earned a token back meanwhile: at most two more pass); return the 429."""
    for _ in range(burst):
        ok(send())
    for _ in range(3):
        r = send()
        if r.status == 429:
            return r
        ok(r)
    raise AssertionError("no 429 after the burst")


def test_rate_limit_burst_then_429_per_key_and_recovery(daemon):
    # 0.5 token/s: a refill every 2 s; 5 requests at once are allowed.
    d = daemon(API_KEYS=f"{KEY1},{KEY2}", RATE_LIMIT_RPS="0.5", RATE_LIMIT_BURST="5")
    healthy(d)
    r = drain(lambda: d.get("/v1/stm/stats", headers=bearer(KEY1)), 5)
    err(r, 429, "rate_limited", MISSING)
    ra = r.header("Retry-After")
    assert ra is not None and ra.isdigit() and 1 <= int(ra) <= 2, f"Retry-After {ra!r}"
    assert KEY1 not in r.body
    # Every route under the key is limited (the bucket is the key's, not the route's),
    # whichever header carries the key. /metrics does not check keys here
    # (METRICS_REQUIRE_AUTH=false), so it counts against the client address instead.
    for path in ("/v1/stats", RULES, "/v1/dashboard"):
        err(d.get(path, headers={"X-API-Key": KEY1}), 429, "rate_limited")
    assert d.get("/metrics", headers={"X-API-Key": KEY1}).status == 200
    # Another key has its own bucket.
    err(drain(lambda: d.get("/v1/stm/stats", headers=bearer(KEY2)), 5), 429, "rate_limited")
    # Probes are never limited.
    for _ in range(30):
        ok(d.get("/health", headers=bearer(KEY1)))
        assert d.get("/ready", headers=bearer(KEY1)).status == 200
    # A wrong key is refused as such (401), and it does not spend the real key's tokens.
    assert_unauthorized(d.get("/v1/stm/stats", headers=bearer(WRONG)))
    # After Retry-After seconds the key works again.
    time.sleep(int(ra) + 0.1)
    ok(d.get("/v1/stm/stats", headers=bearer(KEY1)))


def test_rate_limit_per_client_address_without_keys(daemon):
    d = daemon(RATE_LIMIT_RPS="0.5", RATE_LIMIT_BURST="3")
    healthy(d)
    r = drain(lambda: one_shot(d.port, "GET", "/v1/stm/stats"), 3)
    err(r, 429, "rate_limited")
    assert (r.header("Retry-After") or "").isdigit()
    # A key sent to a daemon without keys is not checked and does not open a new bucket.
    err(one_shot(d.port, "GET", "/v1/stm/stats", headers=bearer("anything")), 429,
        "rate_limited")
    # Another client address has its own bucket.
    err(drain(lambda: one_shot(d.port, "GET", "/v1/stm/stats", source="127.0.0.2"), 3), 429,
        "rate_limited")
    for _ in range(20):
        ok(one_shot(d.port, "GET", "/health"))
    time.sleep(int(r.header("Retry-After")) + 0.1)
    ok(one_shot(d.port, "GET", "/v1/stm/stats"))


def test_rate_limit_under_parallel_load_admits_exactly_the_burst(daemon):
    from concurrent.futures import ThreadPoolExecutor
    d = daemon(API_KEYS=KEY1, RATE_LIMIT_RPS="0.01", RATE_LIMIT_BURST="20", API_WORKERS="8")
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda _: one_shot(d.port, "GET", "/v1/stm/stats",
                                                 headers=bearer(KEY1)).status, range(60)))
    assert codes.count(200) == 20 and codes.count(429) == 40, sorted(set(codes))


# --------------------------------------------------------------------------- Redis AUTH

REDIS_PW = "redis-Auth-Pw-6e2a91"


def stm_roundtrip(d):
    e = create(d, entry_body(unique_domain() + "_r1_auth"))
    got = ok(d.get(f"{BASE}/{e['scenario_id']}"))["stm_entry"]
    assert got == e
    assert ok(d.get("/v1/stm/stats"))["total_entries"] >= 1
    assert d.delete(f"{BASE}/{e['scenario_id']}").status == 204


def assert_redis_refused(d, secrets):
    for method, path, body in (("POST", BASE, entry_body()), ("GET", "/v1/stm/stats", None),
                               ("GET", f"{BASE}/x_r1_y", None)):
        t0 = time.monotonic()
        r = one_shot(d.port, method, path, body)
        err(r, 503, "storage_unavailable")
        assert (r.header("Retry-After") or "").isdigit()
        assert time.monotonic() - t0 < 5
        for s in secrets:
            assert s not in r.body
    wait_for(lambda: one_shot(d.port, "GET", "/ready").status == 503, 5,
             what="/ready to report the refused Redis")


def auth_log_lines(d):
    return [l for l in d.read_log().splitlines()
            if re.search(r"redis", l, re.I) and re.search(r"AUTH|WRONGPASS|password|NOAUTH", l)]


def test_redis_requirepass(daemon):
    server = RedisServer(password=REDIS_PW).start()
    try:
        good = daemon(stm="redis", redis=server)  # REDIS_PASSWORD from the harness
        stm_roundtrip(good)
        wait_for(lambda: one_shot(good.port, "GET", "/ready").status == 200, 10,
                 what="/ready (first probes)")
        wrong = "wrong-Redis-Pw-55d0"
        bad = daemon(stm="redis", redis=server, REDIS_PASSWORD=wrong)
        assert_redis_refused(bad, (REDIS_PW, wrong))
        nopw = daemon(stm="redis", redis=server, REDIS_PASSWORD="")
        assert_redis_refused(nopw, (REDIS_PW,))
        for dd in (good, bad, nopw):
            dd.stop()
            assert_not_in_log(dd, (REDIS_PW, wrong))
        lines = auth_log_lines(bad)
        assert lines, "no log line explains the refused Redis AUTH:\n" + bad.read_log()[-3000:]
        assert any("WRONGPASS" in l or "AUTH failed" in l for l in lines), lines
        assert auth_log_lines(nopw), nopw.read_log()[-3000:]
    finally:
        server.cleanup()


ACL_RULES = ("~stm:* ~stm_ltm_links:* ~memoryd:* &memoryd:* +@read +@write +@scripting "
             "+@transaction +@connection +@pubsub +select -@dangerous")  # as in SECURITY.md


class AclRedis(RedisServer):
    """redis-server whose default user is off: memoryd's ACL user with only the rights
    SECURITY.md recommends, and an admin user for the harness's own commands."""

    def __init__(self, user, password):
        super().__init__()
        self.admin_password = "admin-" + password
        acl = os.path.join(self.dir, "users.acl")
        with open(acl, "w") as f:
            f.write(f"user default off\n"
                    f"user {user} on >{password} {ACL_RULES}\n"
                    f"user admin on >{self.admin_password} ~* &* +@all\n")
        self.extra_args = ["--aclfile", acl]

    def _auth(self, f):
        _send(f, ["AUTH", "admin", self.admin_password])
        _read(f)

    def command(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            f = s.makefile("rwb")
            self._auth(f)
            _send(f, [str(a) for a in args])
            return _read(f)

    def command_db(self, db, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            f = s.makefile("rwb")
            self._auth(f)
            _send(f, ["SELECT", str(db)])
            _read(f)
            _send(f, [str(a) for a in args])
            return _read(f)


def test_redis_acl_user_with_least_privilege(daemon):
    pw = "acl-User-Pw-2b8e40"
    server = AclRedis("memoryd", pw).start()
    try:
        good = daemon(stm="redis", redis=server, REDIS_USERNAME="memoryd", REDIS_PASSWORD=pw)
        wait_for(lambda: one_shot(good.port, "GET", "/ready").status == 200, 10,
                 what="/ready (first probes)")
        # every kind of STM call, the STM side of promote, and the cache's pub/sub
        r = good.post(BASE, entry_body(unique_domain() + "_r1_acl"))
        assert r.status == 201, (r, good.read_log()[-2000:])
        e = r.json["data"]["stm_entry"]
        sid = e["scenario_id"]
        ok(good.patch(f"{BASE}/{sid}", {"requirement_text": "changed"}))
        ok(good.put(f"{BASE}/{sid}/feedback", {"decision": "d", "rationale": "r",
                                                "suggestion": "s", "final_status": "Pending"}))
        ok(good.put(f"{BASE}/{sid}/ttl", {"ttl_seconds": 3600}))
        assert len(ok(good.get(BASE + "?has_feedback=true"))["entries"]) == 1
        assert ok(good.get("/v1/stm/stats"))["total_entries"] == 1
        rule = ok(good.post(f"{BASE}/{sid}/promote", {"policy": "GDPR", "key_concept": "acl",
                                                      "rule_text": "least privilege",
                                                      "related_concepts": ["acl"]}), 201)
        links = ok(good.get(f"{BASE}/{sid}"))["traceability"]["related_ltm_rules"]
        assert links == [rule["ltm_rule"]["rule_id"]]
        ok(good.post("/v1/cache/invalidate", {}))
        assert good.delete(f"{BASE}/{sid}").status == 204
        wrong_pw = daemon(stm="redis", redis=server, REDIS_USERNAME="memoryd",
                          REDIS_PASSWORD="not-" + pw)
        assert_redis_refused(wrong_pw, (pw,))
        wrong_user = daemon(stm="redis", redis=server, REDIS_USERNAME="someone",
                            REDIS_PASSWORD=pw)
        assert_redis_refused(wrong_user, (pw,))
        for dd in (good, wrong_pw, wrong_user):
            dd.stop()
            assert_not_in_log(dd, (pw, "not-" + pw))
        assert auth_log_lines(wrong_pw), wrong_pw.read_log()[-3000:]
        # nothing went wrong for the right user: no AUTH or permission trouble at all
        trouble = [l for l in good.read_log().splitlines()
                   if re.search(r"NOPERM|NOAUTH|WRONGPASS|AUTH failed|redis unavailable", l)]
        assert not trouble, trouble
    finally:
        server.cleanup()


# --------------------------------------------------------------------------- Neo4j https

def neo4j_tls_settings(server, **kw):
    s = {"NEO4J_URI": server.https_uri, "NEO4J_USERNAME": server.username,
         "NEO4J_PASSWORD": server.password, "NEO4J_CONNECTION_TIMEOUT": "3",
         "NEO4J_QUERY_TIMEOUT": "10", "NEO4J_MAX_RETRY_TIME": "1"}
    s.update(kw)
    return s


def test_neo4j_over_https_with_a_private_ca(daemon, own_neo4j_graph):
    server = own_neo4j_graph
    assert server.https_uri.startswith("https://")
    # A fresh Neo4j plans each statement on first use (seconds on a busy machine).
    d = daemon(ltm="neo4j", **neo4j_tls_settings(server, NEO4J_CA_FILE=server.ca_file,
                                                  NEO4J_QUERY_TIMEOUT="60"))
    wait_for(lambda: one_shot(d.port, "GET", "/ready").status == 200, 120, interval=0.5,
             what="/ready over https")
    sid = create(d)["scenario_id"]
    rule = create_rule(d, rule_body([sid], concepts=("transport security", "TLS")))
    got = ok(d.get(f"{RULES}/{rule['rule_id']}"))["ltm_rule"]
    assert got == rule
    found = ok(d.get(RULES + "?q=transport"))["rules"]
    assert [r["rule_id"] for r in found] == [rule["rule_id"]]
    # the rule is in the private Neo4j (checked over plain HTTP from the test)
    assert server.value("MATCH (r:Rule {rule_id: $id}) RETURN count(r)",
                        id=rule["rule_id"]) == 1
    d.stop()
    assert_not_in_log(d, (server.password,))


@pytest.mark.parametrize("ca", ["system store", "another CA"])
def test_neo4j_https_certificate_rejected(daemon, own_neo4j_graph, ca):
    server = own_neo4j_graph
    settings = neo4j_tls_settings(server)
    other = None
    if ca == "another CA":
        other = tempfile.mkdtemp(prefix="memoryd-ca-")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", os.path.join(other, "k.pem"), "-out",
                        os.path.join(other, "ca.pem"), "-subj", "/CN=not the test CA"],
                       check=True, capture_output=True)
        settings["NEO4J_CA_FILE"] = os.path.join(other, "ca.pem")
    try:
        d = daemon(ltm="neo4j", **settings)
        for _ in range(10):  # /ready stays 503 (never healthy at some point)
            r = one_shot(d.port, "GET", "/ready")
            assert r.status == 503, r
            time.sleep(0.2)
        for method, path, body in (("POST", RULES, rule_body([unique_domain() + "_r1_x"])),
                                   ("GET", RULES, None), ("GET", f"{RULES}/GDPR_Tls_01", None)):
            t0 = time.monotonic()
            r = one_shot(d.port, method, path, body)
            err(r, 503, "storage_unavailable")
            assert time.monotonic() - t0 < 10
            assert server.password not in r.body
            assert not re.search(r"curl|SSL|certificate problem", r.json["message"]), r.body
        h = one_shot(d.port, "GET", "/health").json["data"]
        assert h["components"]["ltm"]["status"] == "unhealthy", h
        assert h["components"]["stm"]["status"] == "healthy", h
        # Nothing was written through the rejected connection.
        assert server.value("MATCH (r:Rule) RETURN count(r)") == 0
        d.stop()
        assert_not_in_log(d, (server.password,))
        log = d.read_log()
        assert re.search(r"certificate|tls|ssl", log, re.I), \
            "no log line names the certificate problem:\n" + log[-3000:]
    finally:
        if other:
            shutil.rmtree(other, ignore_errors=True)
