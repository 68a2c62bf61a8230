"""
TTL semantics (spec §3): an entry lives ttl_seconds from creation; updates
keep expires_at; only PUT …/ttl changes it; an expired entry is gone from
every read, list and count at once (not at the next sweep). Uses the
stm_daemon fixture (MEMORY_STM_MIN_TTL_SECONDS=1) so the waits stay short.
On Redis, the key's own TTL is checked as well.
"""
import time

from conftest import check_entry, create, entry_body, err, ids, list_all, now_ms, ok, parse_ts, stats

BASE = "/v1/stm/entries"
FB = {"decision": "d", "rationale": "r", "suggestion": "s"}


def sleep_until_ms(t_ms, margin_ms=150):
    delay = (t_ms + margin_ms - now_ms()) / 1000.0
    if delay > 0:
        time.sleep(delay)


def test_expiry_extension_and_shortening(stm_daemon):
    d = stm_daemon
    dom = "ttl"
    short = create(d, entry_body(f"{dom}_r1_short", ttl_seconds=2))
    check_entry(short, ttl=2)
    extended = create(d, entry_body(f"{dom}_r2_extended", ttl_seconds=2))
    shortened = create(d, entry_body(f"{dom}_r3_shortened", ttl_seconds=3600))
    stays = create(d, entry_body(f"{dom}_r4_stays"))
    with_fb = create(d, entry_body(f"{dom}_r5_feedback", ttl_seconds=2))
    ok(d.put(f"{BASE}/{with_fb['scenario_id']}/feedback", dict(FB, final_status="Compliant")))

    t0 = now_ms()
    ext = ok(d.put(f"{BASE}/{extended['scenario_id']}/ttl", {"ttl_seconds": 60}))
    assert t0 + 60_000 - 5 <= parse_ts(ext["expires_at"]) <= now_ms() + 60_000 + 5
    shr = ok(d.put(f"{BASE}/{shortened['scenario_id']}/ttl", {"ttl_seconds": 2}))
    assert parse_ts(shr["expires_at"]) <= now_ms() + 2_000 + 5

    s = stats(d)
    assert s["total_entries"] == 5 and s["entries_with_feedback"] == 1
    assert s["final_status_breakdown"]["Compliant"] == 1

    latest = max(parse_ts(short["expires_at"]), parse_ts(shr["expires_at"]),
                 parse_ts(with_fb["expires_at"]))
    sleep_until_ms(latest)

    gone = [short["scenario_id"], shortened["scenario_id"], with_fb["scenario_id"]]
    for sid in gone:
        err(d.get(f"{BASE}/{sid}"), 404, "not_found")
    live = [stays["scenario_id"], extended["scenario_id"]]
    assert ids(list_all(d)) == live
    assert ids(list_all(d, limit=1)) == live
    assert ids(list_all(d, has_feedback="true")) == []
    assert ids(list_all(d, final_status="Compliant")) == []
    assert ids(list_all(d, domain=dom)) == live
    s = stats(d)
    assert s == {"total_entries": 2, "entries_with_feedback": 0, "entries_without_feedback": 2,
                 "status_breakdown": {"Compliant": 0, "Non-Compliant": 2,
                                      "Partially Compliant": 0, "Pending": 0},
                 "final_status_breakdown": {"Compliant": 0, "Non-Compliant": 0,
                                            "Partially Compliant": 0, "Pending": 0}}
    got = ok(d.get(f"{BASE}/{extended['scenario_id']}"))["stm_entry"]
    assert got["expires_at"] == ext["expires_at"]

    # Expired entries cannot be updated, extended or deleted...
    sid = short["scenario_id"]
    err(d.patch(f"{BASE}/{sid}", {"requirement_text": "x"}), 404, "not_found")
    err(d.put(f"{BASE}/{sid}/feedback", FB), 404, "not_found")
    err(d.put(f"{BASE}/{sid}/ttl", {"ttl_seconds": 100}), 404, "not_found")
    err(d.delete(f"{BASE}/{sid}"), 404, "not_found")
    # ...and their ids are free again: a given id, and a generated base.
    again = create(d, entry_body(sid, requirement_text="second life"))
    assert again["human_feedback"] is None and again["requirement_text"] == "second life"
    gen = create(d, entry_body(domain=dom, requirement_number=3, key_concept="shortened"))
    assert gen["scenario_id"] == shortened["scenario_id"]
    assert stats(d)["total_entries"] == 4
    if d.backend == "redis":
        assert d.redis.command_db(d.redis_db, "EXISTS", f"stm:{with_fb['scenario_id']}") == 0


def test_updates_keep_expires_at(stm_daemon):
    d = stm_daemon
    e = create(d, entry_body(ttl_seconds=3))
    sid = e["scenario_id"]
    x = e["expires_at"]
    time.sleep(0.05)
    steps = [lambda: d.patch(f"{BASE}/{sid}", {"requirement_text": "changed"}),
             lambda: d.patch(f"{BASE}/{sid}", {"final_status": "Pending"}),
             lambda: d.patch(f"{BASE}/{sid}", {}),
             lambda: d.put(f"{BASE}/{sid}/feedback", FB),
             lambda: d.put(f"{BASE}/{sid}/feedback", dict(FB, final_status=None))]
    for step in steps:
        got = ok(step())["stm_entry"]
        assert got["expires_at"] == x
        assert ok(d.get(f"{BASE}/{sid}"))["stm_entry"]["expires_at"] == x
    if d.backend == "redis":
        pttl = d.redis.command_db(d.redis_db, "PTTL", f"stm:{sid}")
        remaining = parse_ts(x) - now_ms()
        assert 0 < pttl <= remaining + 50, (pttl, remaining)
        assert pttl >= remaining - 1000, "Redis key TTL was not kept by the updates"
    # The updates did not reset the lifetime: the entry still expires on time.
    sleep_until_ms(parse_ts(x))
    err(d.get(f"{BASE}/{sid}"), 404, "not_found")
    assert stats(d)["total_entries"] == 0
    assert list_all(d) == []
