"""
Durability and lifecycle:
  - entries survive a daemon restart, graceful (SIGTERM) or not (SIGKILL):
    embedded with the same DATA_DIR, redis with the same Redis database;
  - on Redis, entries survive a Redis restart (appendonly yes, appendfsync
    always; killed with SIGKILL) while the daemon keeps running;
  - the Redis data is the documented layout (spec §3: key stm:{id} holding the
    entry's compact JSON, with the entry's TTL), and listing/stats never use
    KEYS or SCAN;
  - graceful shutdown: SIGTERM while requests are in flight lets them finish,
    refuses new connections, and exits 0.
"""
import json
import socket
import time

import pytest

from conftest import (_parse_raw_response, check_entry, create, entry_body, get_raw, ids,
                      list_all, now_ms, ok, parse_ts, raw_member, stats, wait_for)

BASE = "/v1/stm/entries"
FB = {"decision": "Change", "rationale": "Unsalted hashes.", "suggestion": "Salt them."}


def populate(d):
    """A few entries in different states; returns their ids, oldest first."""
    made = []
    for i, st in enumerate(["Compliant", "Non-Compliant", "Partial", "Pending"]):
        b = entry_body(domain="Dura Bility", requirement_number=i + 1, key_concept="k",
                       ttl_seconds=3600 * (i + 1))
        b["initial_assessment"]["status"] = st
        b["requirement_text"] = f"Requirement {i}: ünïcödé ✓ \"quoted\""
        made.append(create(d, b)["scenario_id"])
    ok(d.put(f"{BASE}/{made[0]}/feedback", dict(FB, final_status="Partially Compliant")))
    ok(d.put(f"{BASE}/{made[2]}/feedback", FB))
    ok(d.patch(f"{BASE}/{made[1]}", {"final_status": "Compliant", "requirement_text": "patched"}))
    extra = create(d, entry_body("dura_r9_deleted"))["scenario_id"]
    assert d.delete(f"{BASE}/{extra}").status == 204
    return made


def snapshot(d, made):
    return {"raw": {sid: get_raw(d, sid) for sid in made},
            "list": list_all(d),
            "list_fb": ids(list_all(d, has_feedback="true")),
            "stats": stats(d)}


def assert_same(d, made, snap):
    for sid in made:
        assert get_raw(d, sid) == snap["raw"][sid], f"{sid} changed across the restart"
    assert list_all(d) == snap["list"]
    assert ids(list_all(d, has_feedback="true")) == snap["list_fb"]
    assert stats(d) == snap["stats"]
    assert get_raw(d, "dura_r9_deleted")[0] == 404


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_entries_survive_daemon_restart(stm_daemon, how):
    d = stm_daemon
    made = populate(d)
    snap = snapshot(d, made)
    assert snap["stats"]["total_entries"] == 4 and snap["stats"]["entries_with_feedback"] == 2
    first = ok(d.get(BASE + "?limit=2"))
    assert first["next_cursor"]
    if how == "sigterm":
        d.restart()
    else:
        d.kill()
        d.start()
    assert_same(d, made, snap)
    # A cursor issued before the restart continues the listing after it.
    rest, cursor = [], first["next_cursor"]
    while cursor:
        page = ok(d.get(BASE + "?limit=2&cursor=" + cursor))
        rest += page["entries"]
        cursor = page["next_cursor"]
    assert ids(first["entries"] + rest) == ids(snap["list"])
    # Generation continues from what is stored; writes work.
    gen = create(d, entry_body(domain="dura-bility", requirement_number=1, key_concept="k"))
    assert gen["scenario_id"] == "durability_r1_k_2"
    e = ok(d.put(f"{BASE}/{made[3]}/feedback", FB))["stm_entry"]
    assert e["expires_at"] == json.loads(snap["raw"][made[3]][1])["expires_at"]


def test_entries_survive_a_redis_restart(daemon, fresh_redis):
    d = daemon(stm="redis", redis=fresh_redis, MEMORY_STM_MIN_TTL_SECONDS="1")
    made = populate(d)
    snap = snapshot(d, made)
    for kill in (True, False):  # SIGKILL, then a clean SHUTDOWN
        fresh_redis.restart(kill=kill)
        # The daemon was not restarted: it reconnects by itself.
        wait_for(lambda: d.get(f"{BASE}/{made[0]}").status == 200, 10,
                 what="memoryd to serve again after the Redis restart")
        assert_same(d, made, snap)
    gen = create(d, entry_body(domain="durability", requirement_number=4, key_concept="k"))
    assert gen["scenario_id"] == "durability_r4_k_2"
    for sid in made:
        pttl = fresh_redis.command_db(d.redis_db, "PTTL", f"stm:{sid}")
        x = parse_ts(json.loads(snap["raw"][sid][1])["expires_at"])
        assert abs((now_ms() + pttl) - x) < 2000, f"{sid}: key TTL lost across the restart"


# --------------------------------------------------------------------------- Redis layout

def test_redis_layout_is_the_documented_one(daemon, fresh_redis):
    d = daemon(stm="redis", redis=fresh_redis, MEMORY_STM_MIN_TTL_SECONDS="1")
    e = create(d, entry_body("layout_r1_consent", ttl_seconds=600))
    sid = e["scenario_id"]
    ok(d.put(f"{BASE}/{sid}/feedback", dict(FB, final_status="Non-Compliant")))
    r = d.get(f"{BASE}/{sid}")
    api_raw = raw_member(r.body, "stm_entry")
    stored = fresh_redis.command_db(d.redis_db, "GET", f"stm:{sid}")
    assert stored == api_raw, "stm:{id} does not hold the entry's compact JSON"
    assert json.loads(stored) == ok(r)["stm_entry"]
    pttl = fresh_redis.command_db(d.redis_db, "PTTL", f"stm:{sid}")
    x = parse_ts(e["expires_at"])
    assert abs((now_ms() + pttl) - x) < 1000, (pttl, e["expires_at"])
    assert fresh_redis.command_db(d.redis_db, "SMEMBERS", f"stm_ltm_links:{sid}") == []
    assert d.delete(f"{BASE}/{sid}").status == 204
    assert fresh_redis.command_db(d.redis_db, "EXISTS", f"stm:{sid}") == 0


def test_redis_listing_and_stats_never_scan_the_keyspace(daemon, fresh_redis):
    d = daemon(stm="redis", redis=fresh_redis, MEMORY_STM_MIN_TTL_SECONDS="1")
    fresh_redis.command("CONFIG", "RESETSTAT")
    made = [create(d, entry_body(domain="scan", requirement_number=i, key_concept="k",
                                 ttl_seconds=1 if i < 3 else 3600))["scenario_id"]
            for i in range(10)]
    ok(d.put(f"{BASE}/{made[5]}/feedback", dict(FB, final_status="Compliant")))
    time.sleep(1.2)  # three of them expire
    assert len(list_all(d)) == 7
    assert len(list_all(d, limit=2, status="Non-Compliant", domain="scan")) == 7
    assert ids(list_all(d, has_feedback="true")) == [made[5]]
    assert ids(list_all(d, final_status="Compliant")) == [made[5]]
    assert stats(d)["total_entries"] == 7
    ok(d.get(f"{BASE}/{made[6]}"))
    info = fresh_redis.command("INFO", "commandstats")
    used = {line.split(":")[0][len("cmdstat_"):] for line in info.splitlines()
            if line.startswith("cmdstat_")}
    assert "keys" not in used, "memoryd used KEYS"
    assert "scan" not in used, "memoryd used SCAN over the keyspace"


# --------------------------------------------------------------------------- shutdown

def test_sigterm_lets_in_flight_requests_finish(stm_daemon):
    d = stm_daemon
    create(d)  # the store is warm; one entry before
    idle = socket.create_connection(("127.0.0.1", d.port), timeout=10)  # idle keep-alive
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _parse_raw_response(idle, "GET", 10).status == 200
    n = 6
    bodies = [json.dumps(entry_body(f"inflight_r{i}_x")).encode() for i in range(n)]
    socks = []
    for b in bodies:
        s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        s.sendall(("POST /v1/stm/entries HTTP/1.1\r\nHost: x\r\n"
                   "Content-Type: application/json\r\nConnection: close\r\n"
                   f"Content-Length: {len(b)}\r\n\r\n").encode() + b[:10])
        socks.append(s)
    time.sleep(0.5)  # headers read: these requests are in flight
    d.signal_stop()

    def refused():
        try:
            socket.create_connection(("127.0.0.1", d.port), timeout=0.5).close()
            return False
        except OSError:
            return True
    wait_for(refused, 5, what="memoryd to stop accepting connections after SIGTERM")
    assert d.proc.poll() is None, "memoryd exited with requests in flight"
    for s, b in zip(socks, bodies):
        s.sendall(b[10:])
    results = []
    for s in socks:
        results.append(_parse_raw_response(s, "POST", 20))
        s.close()
    t_done = time.monotonic()
    for i, r in enumerate(results):
        e = ok(r, 201)["stm_entry"]
        assert e["scenario_id"] == f"inflight_r{i}_x"
    d.wait_stopped(0, timeout=20)  # exit code 0, clean log
    assert time.monotonic() - t_done < 5, "an idle keep-alive connection held up the exit"
    idle.close()
    # What the in-flight requests wrote was kept.
    d.start()
    for i in range(n):
        check_entry(ok(d.get(f"{BASE}/inflight_r{i}_x"))["stm_entry"])
    assert stats(d)["total_entries"] == n + 1
