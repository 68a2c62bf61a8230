"""
memoryd itself SIGKILLed in the middle of a mixed STM + LTM write load on the embedded
store (both tiers in DATA_DIR/memoryd.db), four times in a row: after each kill the
SQLite file passes `PRAGMA integrity_check` (python's sqlite3 module, before memoryd
runs again), memoryd starts again on it, and every write acknowledged with a 2xx is
there with its acknowledged content (a write that got no answer may or may not be).

With EMBEDDED_SYNCHRONOUS=normal (the harness default) SQLite may lose the last commits
on a power loss, never on a process crash; with full it syncs every commit. Both run.
"""
import os
import sqlite3
import threading
import time
import uuid

import pytest

from conftest import RULES, check_entry, check_rule, create, entry_body, list_all, ok, wait_for
from test_faults_neo4j import RuleLedger, ltm_writer, state
from test_faults_redis import Ledger, content, writer

BASE = "/v1/stm/entries"


def integrity(path):
    con = sqlite3.connect(path, timeout=10)
    try:
        rows = con.execute("PRAGMA integrity_check").fetchall()
        fk = con.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows], fk


@pytest.mark.parametrize("sync", ["normal", "full"])
def test_memoryd_killed_under_mixed_load_keeps_a_sound_file_and_every_acknowledged_write(
        daemon, sync):
    d = daemon(EMBEDDED_SYNCHRONOUS=sync, API_WORKERS="8", CACHE_MAX_ENTRIES="0")
    db = os.path.join(d.env["DATA_DIR"], "memoryd.db")
    sources = [create(d, entry_body(f"crash_r{i}_source"))["scenario_id"] for i in range(1, 7)]
    stm, ltm = Ledger(), RuleLedger()
    domain = "k" + uuid.uuid4().hex[:10]
    policy = "KC" + uuid.uuid4().hex[:8].upper()
    for cycle in range(4):
        stop, phase = threading.Event(), ["before"]
        threads = [threading.Thread(target=writer, args=(d, stm, stop, phase, 10 * cycle + t,
                                                         domain, 30))
                   for t in range(4)]
        threads += [threading.Thread(target=ltm_writer, args=(d, ltm, stop, phase,
                                                              10 * cycle + t, policy, sources, 30))
                    for t in range(2)]
        n0 = len(stm.calls) + len(ltm.calls)
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(stm.calls) + len(ltm.calls) - n0 >= 300, 60, interval=0.02,
                     what="300 writes under way")
            phase[0] = "killed"
            d.kill()  # SIGKILL with requests in flight
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert not any(t.is_alive() for t in threads)
        rows, fk = integrity(db)
        assert rows == ["ok"], f"cycle {cycle}: integrity_check: {rows[:10]}"
        assert fk == [], f"cycle {cycle}: foreign_key_check: {fk[:10]}"
        d.start()
        wait_for(lambda: d.get("/ready").status == 200, 15, what="memoryd to be ready again")

    for ph, method, status, dt in [c[:4] for c in stm.calls + ltm.calls]:
        if ph == "before":
            assert status in (200, 201), (ph, method, status)
        else:  # in flight when memoryd died: no answer, or an answer just before
            assert status in (200, 201, None), (ph, method, status)
    assert sum(1 for c in stm.calls if c[2] in (200, 201)) >= 100
    assert len(ltm.acked_creates) >= 5

    # STM: every acknowledged write is there as acknowledged.
    for sid, possible in stm.possible.items():
        r = d.get(f"{BASE}/{sid}")
        if r.status == 404:
            assert None in possible, f"acknowledged entry {sid} is gone"
            continue
        e = check_entry(ok(r)["stm_entry"])
        assert content(e) in possible, f"{sid}: {content(e)} not in {possible}"
        if sid in stm.acked:
            assert e == stm.acked[sid], f"{sid} differs from its acknowledged state"
    listed = {e["scenario_id"] for e in list_all(d, domain=domain)}
    present = {sid for sid in stm.possible if d.get(f"{BASE}/{sid}").status == 200}
    assert listed == present
    # LTM: every acknowledged create is there; every rule is in a state a client saw
    # acknowledged, or one an unanswered write would have produced.
    for rid, possible in ltm.possible.items():
        r = d.get(f"{RULES}/{rid}")
        if r.status == 404:
            assert None in possible and rid not in ltm.acked_creates, f"rule {rid} is gone"
            continue
        rule = check_rule(ok(r)["ltm_rule"])
        assert state(rule) in possible, f"{rid}: {state(rule)} not in {possible}"
        hist = ok(d.get(f"{RULES}/{rid}/history"))["versions"]
        assert [v["version"] for v in hist] == list(range(1, rule["version"] + 1)), (rid, hist)
    integrity_report = ok(d.get("/v1/integrity"))
    assert integrity_report["statistics"]["broken_links"] == 0, integrity_report
    assert integrity_report["statistics"]["orphaned_ltm_rules"] == 0, integrity_report
