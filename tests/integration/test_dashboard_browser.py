"""
GET /dashboard in a real browser (spec §5): Debian's headless Chromium loads the page from a
real memoryd, lets it poll /v1/dashboard (virtual time: the page's 5-second timer fires
without waiting), and dumps the DOM and a screenshot. The DOM is compared with
GET /v1/dashboard fetched by the test around the browser run.

Also: the page is self-contained (no URL, no external script or stylesheet, under 40 KiB),
and it shows the daemon unreachable, an error answer, a lost and a recovered connection,
and works with API keys (?key=).

Chromium is required: a missing /usr/bin/chromium (scripts/install-deps.sh --dev installs
it) is a failure, never a skip. CHROMIUM=/path overrides the binary;
DASHBOARD_SCREENSHOT_DIR=/dir keeps copies of the screenshots.
"""
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from html.parser import HTMLParser

import pytest

from conftest import STM_BACKENDS, create, ok

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOT_DIR = os.environ.get("DASHBOARD_SCREENSHOT_DIR")
DASH = "\u2014"
METRICS = ("stm_response_time_ms", "ltm_response_time_ms", "api_response_time_ms",
           "cache_hit_rate_percent", "error_rate_percent", "connection_pool_utilization_percent")
STATUSES = ("good", "warning", "critical", "unknown")
COMPONENTS = ("stm", "ltm", "api", "redis", "neo4j")


# --------------------------------------------------------------------------- browser

def chromium():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"headless Chromium not found at {CHROMIUM}: the dashboard browser test "
                    "needs Debian's `chromium` package (scripts/install-deps.sh --dev), or "
                    "CHROMIUM=/path/to/chromium")
    return CHROMIUM


def run_browser(url, tmp_path, name="dashboard", budget_ms=8000):
    """Load url in headless Chromium; return (dumped DOM, screenshot path)."""
    binary = chromium()
    profile = tempfile.mkdtemp(prefix="memoryd-chromium-", dir=str(tmp_path))
    shot = os.path.join(str(tmp_path), name + ".png")
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}", "--dump-dom",
            f"--screenshot={shot}", "--window-size=1400,1000", url]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": profile,
           "XDG_CONFIG_HOME": profile, "XDG_CACHE_HOME": profile}
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"headless Chromium did not finish within 120 s loading {url}")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    dom = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0 and "<html" in dom, \
        f"chromium exited {p.returncode}; stderr tail:\n{p.stderr.decode(errors='replace')[-3000:]}"
    if SCREENSHOT_DIR and os.path.exists(shot):
        os.makedirs(SCREENSHOT_DIR, exist_ok=True)
        shutil.copy(shot, os.path.join(SCREENSHOT_DIR, name + ".png"))
    return dom, shot


def check_png(path, width=1400, height=1000):
    assert os.path.isfile(path), f"no screenshot at {path}"
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG"
    w, h = struct.unpack(">II", head[16:24])
    assert (w, h) == (width, height), f"screenshot is {w}x{h}"
    # a blank or error page compresses to a few KiB; the drawn dashboard is far larger
    assert os.path.getsize(path) > 30_000, f"screenshot suspiciously small: {os.path.getsize(path)} B"


# --------------------------------------------------------------------------- DOM

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def text(self):
        out = []
        for c in self.children:
            if isinstance(c, str):
                out.append(c)
            elif c.tag not in ("script", "style"):
                out.append(c.text())
        return "".join(out)

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag=None, cls=None):
        return [n for n in self.iter()
                if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)]

    def find(self, tag=None, cls=None):
        found = self.find_all(tag, cls)
        return found[0] if found else None


class Dom(HTMLParser):
    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.feed(html)
        self.close()
        self.ids = {n.attrs["id"]: n for n in self.root.iter() if n.attrs.get("id")}

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)

    def __getitem__(self, id_):
        assert id_ in self.ids, f"the page has no element #{id_}"
        return self.ids[id_]


def visible_text(dom):
    return " ".join(dom.root.text().split())


def check_no_garbage(dom):
    """No 'undefined' / 'NaN' / '[object' in any text or attribute (scripts excluded)."""
    text = visible_text(dom)
    for bad in ("undefined", "NaN", "[object"):
        assert bad not in text, f"the page shows {bad!r}: …{text[max(0, text.find(bad) - 80):][:200]}…"
    for n in dom.root.iter():
        if n.tag in ("script", "style"):
            continue
        for k, v in n.attrs.items():
            if v and k not in ("content",):
                assert "NaN" not in v and "undefined" not in v, f"<{n.tag} {k}={v!r}>"


def number(text):
    """The displayed number of a metric value ('1,234.5' -> 1234.5) or None for '—'."""
    t = text.strip()
    if t == DASH:
        return None
    assert re.fullmatch(r"-?[0-9][0-9,]*(\.[0-9]+)?", t), f"not a number: {t!r}"
    return float(t.replace(",", ""))


# --------------------------------------------------------------------------- daemon helpers

def dashboard(d, headers=None):
    data = ok(d.get("/v1/dashboard", headers=headers))
    assert set(data) >= {"system_health", "alerts", "key_metrics", "component_performance"}
    return data


def traffic(d):
    """A few STM entries, reads, a list and a 404, so every latency window has samples."""
    sids = [create(d)["scenario_id"] for _ in range(4)]
    for sid in sids:
        ok(d.get("/v1/stm/entries/" + sid))
    ok(d.get("/v1/stm/entries?limit=5"))
    assert d.get("/v1/stm/entries/nobody_r1_missing").status == 404
    ok(d.get("/v1/stm/stats"))


def wait_for_samples(d, headers=None, metric="api_response_time_ms", timeout=15):
    """The metrics registry samples periodically: wait until the metric has a current value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dashboard(d, headers)["key_metrics"][metric]["current"] is not None:
            return
        time.sleep(0.2)
    raise AssertionError(f"{metric} has no current value {timeout}s after traffic")


# --------------------------------------------------------------------------- page checks

def check_live_page(dom, before, after):
    """The DOM agrees with /v1/dashboard fetched before and after the browser run."""
    conn = dom["conn-status"]
    assert conn.attrs.get("data-state") == "ok", f"connection status {conn.attrs}: {conn.text()!r}"
    assert dom["conn-text"].text().strip() == "Live"
    banner = dom["conn-banner"]
    assert "show" not in banner.classes and not banner.text().strip(), banner.text()

    health = dom["health"]
    shown = health.text().strip()
    assert shown in (before["system_health"], after["system_health"]), \
        f"health badge {shown!r}, daemon said {before['system_health']!r}/{after['system_health']!r}"
    assert health.attrs.get("data-health") == shown
    assert "health-" + shown in health.classes
    assert health.attrs.get("aria-live") == "polite"

    for name in METRICS:
        card = dom["metric-" + name]
        b, a = before["key_metrics"][name], after["key_metrics"][name]
        status = card.attrs.get("data-status")
        assert status in STATUSES and status in (b["status"], a["status"]), \
            f"{name}: card status {status!r}, daemon said {b['status']!r}/{a['status']!r}"
        assert "s-" + status in card.classes, card.classes
        pill = card.find(cls="pill")
        assert pill is not None and pill.text().strip() == status
        value = number(dom[f"metric-{name}-current"].text())
        if b["current"] is None and a["current"] is None:
            assert value is None, f"{name}: shows {value} where the daemon has no samples"
        elif b["current"] is not None and a["current"] is not None:
            assert value is not None, f"{name}: shows — where the daemon has {a['current']}"
        for cls, key in (("average", "average"), ("p95", "p95")):
            cell = card.find("dd", cls).text().strip()
            if b[key] is None and a[key] is None:
                assert cell == DASH, f"{name} {cls}: {cell!r}"
            elif b[key] is not None and a[key] is not None:
                assert cell != DASH and re.match(r"[0-9]", cell), f"{name} {cls}: {cell!r}"
        thr = card.find("dd", "threshold").text()
        assert f"{a['threshold']:,g}" in thr, f"{name}: threshold cell {thr!r}, want {a['threshold']}"

    # traffic ran, so the API card shows a number and the chart has drawn lines
    assert number(dom["metric-api_response_time_ms-current"].text()) is not None
    chart = dom["latency-chart"]
    assert chart.tag == "svg"
    points = int(chart.attrs.get("data-points", "0"))
    assert points >= 2, f"the chart collected {points} samples in 8 s of virtual time (want 2)"
    paths = [p for p in chart.find_all("path", "series") if p.attrs.get("d", "").startswith("M")]
    assert any("c-api" in p.classes and "L" in p.attrs["d"] for p in paths), \
        f"no API line in the chart: {[p.attrs for p in paths]}"
    assert len(chart.find_all("text")) >= 4, "chart axes have no labels"
    for s in ("stm", "ltm", "api"):
        assert dom["legend-" + s].text().strip(), "empty legend entry"

    alerts = dom["alerts"]
    assert alerts.tag == "table"
    rows = dom["alerts-body"].find_all("tr")
    if not before["alerts"] and not after["alerts"]:
        assert len(rows) == 1 and rows[0].find("td", "empty") is not None
        assert "No alerts" in rows[0].text()
    else:
        assert len(rows) in (len(before["alerts"]), len(after["alerts"]))
        names = {al["name"] for al in before["alerts"] + after["alerts"]}
        for row in rows:
            shown = row.find("div", "main").text().strip()
            assert shown in names, f"alert row {shown!r} not in {names}"

    comps = dom["components"]
    assert comps.tag == "table"
    for c in COMPONENTS:
        row = dom["component-" + c]
        assert row.tag == "tr" and len(row.find_all("td")) == 6
        cp = after["component_performance"][c]
        if c in ("redis", "neo4j"):
            if cp.get("configured"):
                assert "backs " + cp["backs"].upper() in row.text(), row.text()
                assert number(row.find_all("td")[1].text()) is not None
            else:
                assert "not in use" in row.text()
        if c in ("stm", "ltm"):
            assert cp["backend"] in row.text()
    api_calls = number(dom["component-api"].find_all("td")[1].text())
    assert api_calls is not None and api_calls > 0

    assert dom["version"].text().strip() not in ("", DASH), "version not shown"
    assert dom["last-update"].text().strip() != "never"
    check_no_garbage(dom)


# --------------------------------------------------------------------------- tests

def test_page_is_self_contained(daemon):
    d = daemon(stm="embedded")
    r = d.get("/dashboard")
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith("text/html"), r.headers
    html = r.body
    assert html.lstrip().lower().startswith("<!doctype html>")
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "src", "api",
                           "dashboard.html"), encoding="utf-8") as f:
        assert html == f.read(), "GET /dashboard does not serve src/api/dashboard.html"
    assert len(html.encode()) <= 40 * 1024, f"page is {len(html.encode())} bytes"
    low = html.lower()
    assert not re.search(r"https?://", low), re.search(r".{40}https?://.{40}", low)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*//""", low), "protocol-relative URL"
    assert not re.search(r"<script[^>]*\bsrc\s*=", low), "external script"
    assert not re.search(r"<link[^>]*\bhref\s*=", low), "external stylesheet or icon"
    assert "@import" not in low and "url(" not in low, "CSS fetches something"
    assert "innerhtml" not in low and "outerhtml" not in low and "document.write" not in low, \
        "the page must insert data with textContent only"
    for id_ in ("health", "conn-status", "latency-chart", "alerts", "components"):
        assert f'id="{id_}"' in html, f"#{id_} missing"
    assert "prefers-color-scheme: dark" in html
    assert "cache: 'no-store'" in html and "X-API-Key" in html


@pytest.mark.parametrize("stm", STM_BACKENDS)
def test_dashboard_in_headless_chromium(daemon, tmp_path, stm):
    chromium()
    d = daemon(stm=stm)
    traffic(d)
    wait_for_samples(d)
    before = dashboard(d)
    name = "dashboard" if stm == "embedded" else "dashboard-" + stm
    dom_html, shot = run_browser(d.url + "/dashboard", tmp_path, name)
    after = dashboard(d)
    dom = Dom(dom_html)
    check_live_page(dom, before, after)
    check_png(shot)
    print(f"screenshot: {shot}")


def test_dashboard_with_api_keys(daemon, tmp_path):
    chromium()
    d = daemon(stm="embedded", API_KEYS="dash-key-1,other-key")
    hdr = {"X-API-Key": "dash-key-1"}
    r = d.post("/v1/stm/entries", {"scenario_id": "keyed_r1_dashboard",
                                   "requirement_text": "Keys are required.",
                                   "initial_assessment": {"status": "Pending", "rationale": "r",
                                                          "recommendation": "c"}}, headers=hdr)
    assert r.status == 201, r
    assert d.get("/v1/stm/entries/keyed_r1_dashboard", headers=hdr).status == 200
    assert d.get("/v1/dashboard").status == 401
    wait_for_samples(d, hdr)
    before = dashboard(d, headers=hdr)
    dom_html, _ = run_browser(d.url + "/dashboard?key=dash-key-1", tmp_path, "dashboard-keyed")
    after = dashboard(d, headers=hdr)
    check_live_page(Dom(dom_html), before, after)

    # without the key the page says so instead of drawing nothing
    dom = Dom(run_browser(d.url + "/dashboard", tmp_path, "dashboard-no-key")[0])
    assert dom["conn-status"].attrs.get("data-state") == "error"
    assert dom["conn-text"].text().strip() == "Error 401"
    banner = dom["conn-banner"]
    assert "show" in banner.classes and "unauthorized" in banner.text()
    assert "?key=" in banner.text()
    assert dom["health"].text().strip() == "unknown"
    check_no_garbage(dom)


# ---- the daemon unreachable / erroring -------------------------------------------------------

class PageServer:
    """Serves the daemon's own page bytes at /dashboard; every other request follows a script
    of behaviours, one per request to /v1/dashboard (the last one repeats):
      "proxy"  forward to the daemon (unreachable once it is stopped: then "drop")
      "drop"   close the connection without an answer (what a browser sees of a dead daemon)
      "503"    answer a storage_unavailable error envelope
    /health is forwarded (or dropped when the daemon is down)."""

    def __init__(self, page, daemon_port, script):
        self.page, self.port_up, self.script = page, daemon_port, list(script)
        self.calls = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, code, ctype, body, extra=()):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def drop(self):
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def forward(self, path):
                try:
                    c = http.client.HTTPConnection("127.0.0.1", owner.port_up, timeout=5)
                    hdrs = {k: v for k, v in self.headers.items() if k.lower() == "x-api-key"}
                    c.request("GET", path, headers=hdrs)
                    r = c.getresponse()
                    body = r.read()
                    c.close()
                except OSError:
                    return self.drop()
                self.answer(r.status, r.getheader("Content-Type", "application/json"), body)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/dashboard":
                    return self.answer(200, "text/html; charset=utf-8", owner.page)
                if path == "/v1/dashboard":
                    step = owner.script[min(len(owner.calls), len(owner.script) - 1)]
                    owner.calls.append(step)
                    if step == "drop":
                        return self.drop()
                    if step == "503":
                        body = json.dumps({"status": "error", "error_type": "storage_unavailable",
                                           "message": "the store did not answer in time",
                                           "timestamp": "2026-01-01T00:00:00.000Z"}).encode()
                        return self.answer(503, "application/json", body, [("Retry-After", "1")])
                    return self.forward(self.path)
                if path == "/health":
                    return self.forward(self.path)
                self.answer(404, "application/json", b'{"status":"error"}')

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_dashboard_when_daemon_is_down(daemon, tmp_path):
    chromium()
    d = daemon(stm="embedded")
    r = d.get("/dashboard")
    assert r.status == 200
    page = r.body.encode()
    d.stop()
    with socket.socket() as s:  # nobody listens on the daemon's port any more
        assert s.connect_ex(("127.0.0.1", d.port)) != 0
    with PageServer(page, d.port, ["proxy"]) as srv:
        dom_html, shot = run_browser(srv.url + "/dashboard", tmp_path, "dashboard-down")
    assert srv.calls, "the page never polled /v1/dashboard"
    dom = Dom(dom_html)
    conn = dom["conn-status"]
    assert conn.attrs.get("data-state") == "unreachable", conn.attrs
    assert dom["conn-text"].text().strip() == "Unreachable"
    banner = dom["conn-banner"]
    assert "show" in banner.classes and banner.attrs.get("role") == "alert"
    assert "Cannot reach memoryd" in banner.text()
    assert dom["health"].text().strip() == "unknown"
    assert dom["last-update"].text().strip() == "never"
    for name in METRICS:
        card = dom["metric-" + name]
        assert card.attrs.get("data-status") == "unknown"
        assert dom[f"metric-{name}-current"].text().strip() == DASH
    assert dom["latency-chart"].attrs.get("data-points") == "0"
    assert "stale" in dom["main"].classes
    check_no_garbage(dom)
    check_png(shot)


@pytest.mark.parametrize("script,final", [
    (["503"], "error"),
    (["drop", "proxy"], "ok"),        # unreachable at first, then the daemon answers
    (["503", "proxy"], "ok"),         # an error answer, then recovery
    (["proxy", "drop"], "unreachable"),  # live, then the daemon goes away
], ids=["error-answer", "recovers-from-unreachable", "recovers-from-error", "connection-lost"])
def test_dashboard_connection_states(daemon, tmp_path, script, final):
    chromium()
    d = daemon(stm="embedded")
    traffic(d)
    wait_for_samples(d)
    page = d.get("/dashboard").body.encode()
    with PageServer(page, d.port, script) as srv:
        dom_html, _ = run_browser(srv.url + "/dashboard", tmp_path, "dashboard-" + final)
    assert len(srv.calls) >= len(script), f"the page polled {srv.calls}, script {script}"
    dom = Dom(dom_html)
    conn = dom["conn-status"]
    assert conn.attrs.get("data-state") == final, (conn.attrs, conn.text(), srv.calls)
    banner = dom["conn-banner"]
    points = int(dom["latency-chart"].attrs.get("data-points", "-1"))
    if final == "ok":
        assert dom["conn-text"].text().strip() == "Live"
        assert "show" not in banner.classes
        assert "stale" not in dom["main"].classes
        assert dom["health"].text().strip() in ("healthy", "warning", "critical")
        assert number(dom["metric-api_response_time_ms-current"].text()) is not None
        assert points == srv.calls.count("proxy"), (points, srv.calls)
    elif final == "error":
        assert dom["conn-text"].text().strip() == "Error 503"
        assert "show" in banner.classes
        assert "storage_unavailable" in banner.text() and "503" in banner.text()
        assert dom["health"].text().strip() == "unknown"
        assert points == 0
    else:
        assert dom["conn-text"].text().strip() == "Unreachable"
        assert "show" in banner.classes and "Cannot reach memoryd" in banner.text()
        assert "Showing data from" in banner.text()  # the last good data stays, dimmed
        assert "stale" in dom["main"].classes
        assert dom["health"].text().strip() == "unknown"
        assert number(dom["metric-api_response_time_ms-current"].text()) is not None
        assert points == 1
        assert dom["last-update"].text().strip() != "never"
    check_no_garbage(dom)
