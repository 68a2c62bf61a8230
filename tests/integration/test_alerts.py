"""
Alert rules (spec §5 "Default alert rules", §6 "Alert rules"): the rule API,
and rules that fire and resolve against a real memoryd under real traffic,
with their webhooks received by a small HTTP server on loopback run by the
test (http.server in a thread).

When a condition stops holding (src/metrics/alerts.c): a rule compares the
metric's mean over the LAST MINUTE with its threshold, and does not hold
while that minute has fewer samples than the metric's minimum (10 requests
for api_response_time_ms, 100 lookups for cache_hit_rate_percent). So a
latency rule such as `api_response_time_ms gt 0.0001` fires under load but,
once the load stops, only resolves when the last minute has emptied (up to
60 s). The resolution is therefore shown with a rule that traffic can turn
false at once: `cache_hit_rate_percent lt 50` fires on 150 misses (0 %, with
more than the 100 lookups it needs) and resolves as soon as 600 hits lift the
last minute's hit rate to about 80 %.
"""
import http.server
import json
import threading
import time
from urllib.parse import quote

import pytest

from conftest import create, err, ok, parse_ts, scrape, unique_domain, wait_for

RULE_KEYS = {"name", "metric_name", "threshold", "comparison", "duration_seconds", "enabled",
             "webhook_url", "state", "since"}
EVENT_KEYS = {"alert", "metric", "state", "value", "threshold", "comparison",
              "duration_seconds", "since", "timestamp"}
DEFAULT_RULES = {  # spec §5: name -> (metric, comparison, threshold, duration)
    "High STM Response Time": ("stm_response_time_ms", "gt", 100, 60),
    "High LTM Response Time": ("ltm_response_time_ms", "gt", 500, 60),
    "High API Response Time": ("api_response_time_ms", "gt", 1000, 60),
    "Low Cache Hit Rate": ("cache_hit_rate_percent", "lt", 70, 300),
    "High Error Rate": ("error_rate_percent", "gt", 1, 120),
    "High Connection Pool Utilization": ("connection_pool_utilization_percent", "gt", 80, 60),
}


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records every POST it gets."""

    def __init__(self):
        self.events = []  # (path, headers, raw body)
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                with outer.cond:
                    outer.events.append((self.path, dict(self.headers.items()), raw))
                    outer.cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def find(self, alert, state):
        with self.cond:
            for path, headers, raw in self.events:
                body = json.loads(raw)
                if body.get("alert") == alert and body.get("state") == state:
                    return path, headers, body
        return None

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    yield r
    r.close()


def add_rule(d, **body):
    data = ok(d.post("/v1/alerts/rules", body), 201)
    assert set(data) == {"rule"}, sorted(data)
    assert set(data["rule"]) == RULE_KEYS, sorted(data["rule"])
    return data["rule"]


def alerts(d):
    data = ok(d.get("/v1/alerts"))
    assert set(data) == {"active", "rules"}, sorted(data)
    return data


def rule_named(d, name):
    return next((r for r in alerts(d)["rules"] if r["name"] == name), None)


def check_event(ev, name, metric, state, threshold, comparison, duration):
    path, headers, body = ev
    assert set(body) == EVENT_KEYS, f"webhook body keys {sorted(body)}"
    assert headers.get("Content-Type", "").split(";")[0] == "application/json", headers
    assert (body["alert"], body["metric"], body["state"]) == (name, metric, state), body
    assert body["threshold"] == threshold and body["comparison"] == comparison, body
    assert body["duration_seconds"] == duration, body
    assert isinstance(body["value"], (int, float)) and not isinstance(body["value"], bool), body
    since, at = parse_ts(body["since"]), parse_ts(body["timestamp"])
    assert since <= at, body
    return body


def wait_event(receiver, name, state, timeout, load=None):
    """Wait for the `state` webhook of alert `name`, calling load() meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = receiver.find(name, state)
        if ev:
            return ev
        if load:
            load()
        else:
            time.sleep(0.05)
    raise AssertionError(f"no '{state}' webhook for alert {name!r} within {timeout}s; "
                         f"received: {[json.loads(e[2]) for e in receiver.events]}")


def test_a_rule_fires_under_load_and_another_resolves(daemon, receiver):
    d = daemon(METRICS_COLLECTION_INTERVAL="1")
    t0 = int(time.time() * 1000)

    # 1. a latency rule that any traffic breaks: fires under >= 10 requests/s
    hook = receiver.url("/hooks/latency?token=s3cret-token")
    rule = add_rule(d, name="api_latency_probe", metric_name="api_response_time_ms",
                    threshold=0.0001, comparison="gt", duration_seconds=1, webhook_url=hook)
    assert rule == {"name": "api_latency_probe", "metric_name": "api_response_time_ms",
                    "threshold": 0.0001, "comparison": "gt", "duration_seconds": 1,
                    "enabled": True, "webhook_url": f"http://127.0.0.1:{receiver.port}",
                    "state": "inactive", "since": None}

    def load():  # about 50 requests/s on a /v1 route
        for _ in range(5):
            ok(d.get("/v1/stm/stats"))
        time.sleep(0.1)
    ev = wait_event(receiver, "api_latency_probe", "firing", 20, load)
    body = check_event(ev, "api_latency_probe", "api_response_time_ms", "firing", 0.0001, "gt", 1)
    assert ev[0] == "/hooks/latency?token=s3cret-token", ev[0]  # the URL as given
    assert body["value"] > 0.0001
    fired_since = parse_ts(body["since"])
    assert t0 <= fired_since and parse_ts(body["timestamp"]) - fired_since >= 1000, body

    listed = alerts(d)
    active = [a for a in listed["active"] if a["name"] == "api_latency_probe"]
    assert len(active) == 1 and active[0]["state"] == "firing", listed["active"]
    assert parse_ts(active[0]["since"]) == fired_since
    assert rule_named(d, "api_latency_probe")["state"] == "firing"
    assert "s3cret-token" not in json.dumps(listed)
    assert scrape(d).value("memoryd_alert_firing", alert="api_latency_probe") == 1
    dash = ok(d.get("/v1/dashboard"))
    shown = [a for a in dash["alerts"] if a["name"] == "api_latency_probe"]
    assert len(shown) == 1 and shown[0]["state"] == "firing" and \
        shown[0]["severity"] == "warning", dash["alerts"]
    assert dash["system_health"] in ("warning", "critical"), dash["system_health"]

    # 2. a hit-rate rule: 150 misses make it fire, 600 hits resolve it
    add_rule(d, name="cache_hit_probe", metric_name="cache_hit_rate_percent", threshold=50,
             comparison="lt", duration_seconds=1, webhook_url=receiver.url("/hooks/cache"))
    dom = unique_domain()
    for i in range(150):
        err(d.get(f"/v1/stm/entries/{dom}_r{i}_missing"), 404, "not_found")
    ev = wait_event(receiver, "cache_hit_probe", "firing", 20)
    fired = check_event(ev, "cache_hit_probe", "cache_hit_rate_percent", "firing", 50, "lt", 1)
    assert fired["value"] == 0, fired
    assert ev[0] == "/hooks/cache"
    assert rule_named(d, "cache_hit_probe")["state"] == "firing"
    assert scrape(d).value("memoryd_alert_firing", alert="cache_hit_probe") == 1

    sid = create(d)["scenario_id"]
    for _ in range(600):
        ok(d.get(f"/v1/stm/entries/{sid}"))
    ev = wait_event(receiver, "cache_hit_probe", "resolved", 20)
    resolved = check_event(ev, "cache_hit_probe", "cache_hit_rate_percent", "resolved", 50,
                           "lt", 1)
    assert resolved["value"] >= 50, resolved
    assert resolved["since"] == fired["since"], (fired, resolved)
    assert parse_ts(resolved["timestamp"]) > parse_ts(fired["timestamp"])
    r = rule_named(d, "cache_hit_probe")
    assert r["state"] == "inactive" and r["since"] is None, r
    assert "cache_hit_probe" not in [a["name"] for a in alerts(d)["active"]]
    assert scrape(d).value("memoryd_alert_firing", alert="cache_hit_probe") == 0
    assert not [a for a in ok(d.get("/v1/dashboard"))["alerts"] if a["name"] == "cache_hit_probe"]
    # exactly one transition each way, delivered once
    hooks = [json.loads(e[2]) for e in receiver.events if json.loads(e[2])["alert"] ==
             "cache_hit_probe"]
    assert [h["state"] for h in hooks] == ["firing", "resolved"], hooks
    # the notifier counts a delivery once the receiver has answered it
    wait_for(lambda: scrape(d).value("memoryd_alert_webhook_deliveries_total", result="sent")
             == len(receiver.events) == 3, 5, what="3 webhook deliveries counted as sent")
    assert scrape(d).value("memoryd_alert_webhook_deliveries_total", result="failed") == 0


def test_alert_rule_api(daemon):
    d = daemon()
    listed = alerts(d)
    assert listed["active"] == []
    got = {r["name"]: (r["metric_name"], r["comparison"], r["threshold"],
                       r["duration_seconds"]) for r in listed["rules"]}
    assert got == DEFAULT_RULES
    assert all(r["enabled"] and r["state"] == "inactive" and r["since"] is None
               for r in listed["rules"])

    # defaults of the optional fields
    r = add_rule(d, name="my_rule_1", metric_name="error_rate_percent", threshold=5,
                 comparison="gt")
    assert r == {"name": "my_rule_1", "metric_name": "error_rate_percent", "threshold": 5,
                 "comparison": "gt", "duration_seconds": 60, "enabled": True,
                 "webhook_url": None, "state": "inactive", "since": None}
    r = add_rule(d, name="Räte unter 90 %", metric_name="cache_hit_rate_percent",
                 threshold=90.5, comparison="eq", duration_seconds=0, enabled=False,
                 webhook_url=None)
    assert (r["enabled"], r["duration_seconds"], r["comparison"]) == (False, 0, "eq")

    err(d.post("/v1/alerts/rules", {"name": "my_rule_1", "metric_name": "api_response_time_ms",
                                    "threshold": 1, "comparison": "lt"}), 409, "conflict")
    base = {"name": "bad_rule", "metric_name": "api_response_time_ms", "threshold": 1,
            "comparison": "gt"}
    for change, field in (
            ({"metric_name": "api_latency"}, "metric_name"),
            ({"metric_name": "API_RESPONSE_TIME_MS"}, "metric_name"),
            ({"metric_name": 3}, "metric_name"),
            ({"comparison": "ge"}, "comparison"), ({"comparison": "GT"}, "comparison"),
            ({"comparison": ">"}, "comparison"), ({"comparison": None}, "comparison"),
            ({"threshold": "5"}, "threshold"), ({"threshold": None}, "threshold"),
            ({"threshold": True}, "threshold"),
            ({"duration_seconds": 1.5}, "duration_seconds"),
            ({"duration_seconds": -1}, "duration_seconds"),
            ({"duration_seconds": "60"}, "duration_seconds"),
            ({"enabled": "yes"}, "enabled"),
            ({"webhook_url": "ftp://127.0.0.1/x"}, "webhook_url"),
            ({"webhook_url": "not a url"}, "webhook_url"),
            ({"webhook_url": 5}, "webhook_url"),
            ({"name": ""}, "name"), ({"name": "   "}, "name"), ({"name": "a\nb"}, "name"),
            ({"name": "x" * 101}, "name"), ({"name": 7}, "name"),
            ({"severity": "high"}, "severity")):
        body = dict(base, **change)
        err(d.post("/v1/alerts/rules", body), 400, "validation_error", field)
    for missing in ("name", "metric_name", "threshold", "comparison"):
        body = {k: v for k, v in base.items() if k != missing}
        err(d.post("/v1/alerts/rules", body), 400, "validation_error", missing)
    assert rule_named(d, "bad_rule") is None

    # delete: unknown 404, known 204 and gone (also from /metrics), again 404
    err(d.delete("/v1/alerts/rules/no_such_rule"), 404, "not_found")
    assert d.delete("/v1/alerts/rules/my_rule_1").status == 204
    assert rule_named(d, "my_rule_1") is None
    assert scrape(d).value("memoryd_alert_firing", alert="my_rule_1") is None
    err(d.delete("/v1/alerts/rules/my_rule_1"), 404, "not_found")
    # names with spaces and non-ASCII characters, percent-encoded in the path
    for name in ("High STM Response Time", "Räte unter 90 %"):
        r = d.delete("/v1/alerts/rules/" + quote(name, safe=""))
        assert r.status == 204, (name, r)
        assert rule_named(d, name) is None
    names = [r["name"] for r in alerts(d)["rules"]]
    assert names == [n for n in DEFAULT_RULES if n != "High STM Response Time"]
    # a deleted name can be used again
    add_rule(d, name="my_rule_1", metric_name="stm_response_time_ms", threshold=1,
             comparison="gt")
    assert [r["name"] for r in alerts(d)["rules"]][-1] == "my_rule_1"
