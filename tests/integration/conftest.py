"""
Integration test harness: real memoryd processes against real stores.

Everything here starts real processes: `redis-server` (from Debian's package)
on a free loopback port in a temporary directory, and the memoryd binary
under test (MEMORYD_BIN, default build/memoryd). Neo4j is provided by
tests/neo4j/server.sh (see the LTM tests). There is no stand-in for any store.

Fixtures
  redis_server   session-wide Redis, with kill/restart/pause helpers
  fresh_redis    a Redis started for one test (fault tests may kill it)
  daemon         factory: daemon(stm="embedded"|"redis", **settings) -> Daemon
  stm_daemon     a daemon per STM backend (parametrised: embedded, redis)

Each daemon runs in its own temporary DATA_DIR (or Redis logical database),
so tests never see each other's data. On teardown a daemon is stopped with
SIGTERM and must exit 0 with no sanitizer report in its log.
"""
import calendar
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from urllib.parse import urlencode

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MEMORYD_BIN = os.environ.get("MEMORYD_BIN", os.path.join(ROOT, "build", "memoryd"))
REDIS_SERVER = os.environ.get("REDIS_SERVER", shutil.which("redis-server") or "redis-server")
STM_BACKENDS = [b for b in os.environ.get("MEMORYD_STM_BACKENDS", "embedded,redis").split(",") if b]
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "WARNING: ThreadSanitizer")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --------------------------------------------------------------------------- Redis

class RedisServer:
    """A real redis-server process on a free loopback port."""

    def __init__(self, extra_args=(), password=None):
        self.dir = tempfile.mkdtemp(prefix="memoryd-redis-")
        self.port = free_port()
        self.password = password
        self.extra_args = list(extra_args)
        self.proc = None
        # db 0 is left alone; each daemon takes its own logical db. memoryd accepts
        # REDIS_DB 0..15 only, so databases are recycled (flushed) when a test's
        # daemons are gone.
        self.free_dbs = list(range(1, 16))

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "yes",
                "--appendfsync", "always", "--databases", "64",
                "--maxmemory-policy", "noeviction", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.extra_args
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.ping, 10, what=f"redis-server on port {self.port}")
        return self

    def ping(self):
        try:
            return self.command("PING") in ("PONG", b"PONG")
        except OSError:
            return False

    def command(self, *args):
        """Minimal RESP client (tests inspect keys the way other tools would)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            f = s.makefile("rwb")
            if self.password:
                _send(f, ["AUTH", self.password])
                _read(f)
            _send(f, [str(a) for a in args])
            return _read(f)

    def command_db(self, db, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            f = s.makefile("rwb")
            if self.password:
                _send(f, ["AUTH", self.password])
                _read(f)
            _send(f, ["SELECT", str(db)])
            _read(f)
            _send(f, [str(a) for a in args])
            return _read(f)

    def allocate_db(self):
        assert self.free_dbs, "out of Redis logical databases (memoryd takes REDIS_DB 0..15)"
        return self.free_dbs.pop(0)

    def release_db(self, db):
        """Flush a database and hand it back for another test (best effort when down)."""
        try:
            self.command_db(db, "FLUSHDB")
        except (OSError, RuntimeError, ConnectionError):
            pass
        if db not in self.free_dbs:
            self.free_dbs.append(db)

    def restart(self, kill=True):
        """Stop (SIGKILL by default, else SIGTERM) and start again on the same port and dir.

        appendonly yes + appendfsync always: every acknowledged write survives."""
        if kill:
            self.kill()
        else:
            self.stop()
        if getattr(self, "log", None) and not self.log.closed:
            self.log.close()
        return self.start()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.kill()
            self.proc.wait(5)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "log", None):
            self.log.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _send(f, args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    f.write(b"".join(out))
    f.flush()


def _read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RuntimeError(f"unexpected RESP reply {line!r}")


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def fresh_redis():
    server = RedisServer().start()
    yield server
    server.cleanup()


# --------------------------------------------------------------------------- memoryd

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def data(self):
        return self.json["data"]

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class Daemon:
    """A memoryd process. request() speaks HTTP/1.1 over a kept-alive connection."""

    def __init__(self, env, data_dir, log_path):
        self.env = env
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = int(env["API_PORT"])
        self.proc = None
        self.conn = None
        self.exit_codes = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MEMORYD_BIN], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.data_dir)
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"memoryd exited with {self.proc.returncode}:\n{self.read_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_for(up, timeout, what="memoryd to listen")
        return self

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, raw=None, timeout=30):
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                resp = Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
                if r.will_close:
                    self.conn.close()
                    self.conn = None
                return resp
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def signal_stop(self):
        """Send SIGTERM and return at once (tests of in-flight requests); finish with
        wait_stopped(), which makes the same checks as stop()."""
        if self.conn:
            self.conn.close()
            self.conn = None
        self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, expect_code=0, timeout=30):
        self._wait_exit(expect_code, timeout)

    def stop(self, expect_code=0, timeout=30):
        """SIGTERM; the daemon must exit with expect_code and a clean log."""
        if self.conn:
            self.conn.close()
            self.conn = None
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        self._wait_exit(expect_code, timeout)

    def _wait_exit(self, expect_code, timeout):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            self.log.close()
            raise AssertionError("memoryd did not exit within %ss of SIGTERM" % timeout)
        self.log.close()
        self.exit_codes.append(code)
        log = self.read_log()
        for marker in SANITIZER_MARKERS:
            assert marker not in log, f"sanitizer report in memoryd log:\n{log[-6000:]}"
        assert code == expect_code, f"memoryd exited {code}, log:\n{log[-4000:]}"

    def kill(self):
        if self.conn:
            self.conn.close()
            self.conn = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
            self.log.close()

    def restart(self):
        self.stop()
        return self.start()


class DaemonFactory:
    def __init__(self, redis_server):
        self.redis = redis_server
        self.daemons = []
        self.dirs = []
        self.dbs = []  # (RedisServer, db) handed out, released on cleanup

    def __call__(self, stm="embedded", ltm="embedded", start=True, **settings):
        data_dir = tempfile.mkdtemp(prefix="memoryd-it-")
        self.dirs.append(data_dir)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "API_HOST": "127.0.0.1", "API_PORT": str(free_port()),
               "DATA_DIR": os.path.join(data_dir, "data"), "STM_BACKEND": stm,
               "LTM_BACKEND": ltm, "LOG_LEVEL": "info", "API_WORKERS": "4",
               "EMBEDDED_SYNCHRONOUS": "normal"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        redis, db = None, None
        if stm == "redis":
            redis = settings.pop("redis", None) or self.redis
            db = redis.allocate_db()
            self.dbs.append((redis, db))
            env.update({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
                        "REDIS_DB": str(db),
                        "REDIS_SOCKET_TIMEOUT": "2", "REDIS_SOCKET_CONNECT_TIMEOUT": "2"})
            if redis.password:
                env["REDIS_PASSWORD"] = redis.password
        env.update({k: str(v) for k, v in settings.items()})
        d = Daemon(env, data_dir, os.path.join(data_dir, "memoryd.log"))
        d.backend, d.redis, d.redis_db = stm, redis, db
        self.daemons.append(d)
        return d.start() if start else d

    def cleanup(self):
        errors = []
        for d in self.daemons:
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
        for p in self.dirs:
            shutil.rmtree(p, ignore_errors=True)
        for redis, db in self.dbs:
            redis.release_db(db)
        self.dbs = []
        if errors:
            raise AssertionError("\n\n".join(errors))


@pytest.fixture
def daemon(redis_server):
    factory = DaemonFactory(redis_server)
    yield factory
    factory.cleanup()


@pytest.fixture(params=STM_BACKENDS)
def stm_daemon(request, daemon):
    """A fresh memoryd per test, once per STM backend."""
    return daemon(stm=request.param, MEMORY_STM_MIN_TTL_SECONDS="1")


@pytest.fixture(scope="module")
def module_daemon(redis_server):
    """Like `daemon`, but the daemons live until the end of the test module."""
    factory = DaemonFactory(redis_server)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module", params=STM_BACKENDS)
def shared_stm_daemon(request, module_daemon):
    """One memoryd per STM backend shared by a module's tests (same settings as
    stm_daemon). Tests using it must not depend on global counts other tests change:
    they use their own ids/domains, or compare counts before and after."""
    return module_daemon(stm=request.param, MEMORY_STM_MIN_TTL_SECONDS="1")


def unique_domain():
    """A domain no other test uses: tests filter on it to stay independent."""
    return "t" + uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------- helpers
# Shared by the STM / HTTP-convention suites (test_http_*.py, test_stm_*.py,
# test_hostile_input.py): `from conftest import ...`.

ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
STATUSES = ("Compliant", "Non-Compliant", "Partially Compliant", "Pending")
ENTRY_KEYS = {"scenario_id", "requirement_text", "initial_assessment", "human_feedback",
              "final_status", "created_at", "updated_at", "expires_at"}
MISSING = object()  # "the key must be absent"


def parse_ts(s):
    """ISO-8601 'YYYY-MM-DDTHH:MM:SS.mmmZ' -> epoch milliseconds (asserts the format)."""
    assert isinstance(s, str) and ISO_RE.match(s), f"not ISO-8601 UTC with ms and Z: {s!r}"
    secs = calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000 + int(s[20:23])


def now_ms():
    return int(time.time() * 1000)


def _common_checks(resp):
    rid = resp.header("X-Request-Id")
    assert rid and REQUEST_ID_RE.match(rid), f"bad or missing X-Request-Id {rid!r}: {resp!r}"
    ctype = resp.header("Content-Type") or ""
    assert ctype.split(";")[0].strip().lower() == "application/json", \
        f"Content-Type {ctype!r}: {resp!r}"
    assert resp.json is not None, f"body is not JSON: {resp!r}"
    ts = resp.json.get("timestamp")
    t = parse_ts(ts)
    assert abs(t - now_ms()) < 60_000, f"envelope timestamp {ts} is not now"


def ok(resp, status=200):
    """Assert a success envelope {status, message, data, timestamp}; return data."""
    assert resp.status == status, f"expected {status}, got {resp!r}"
    _common_checks(resp)
    j = resp.json
    assert set(j) == {"status", "message", "data", "timestamp"}, f"envelope keys {sorted(j)}"
    assert j["status"] == "success"
    assert isinstance(j["message"], str) and j["message"], "empty message"
    return j["data"]


def err(resp, status, error_type, field=None):
    """Assert an error envelope {status, error_type, message, [field], timestamp}.

    field: None = don't care; MISSING = must be absent; a string = must equal."""
    assert resp.status == status, f"expected {status} {error_type}, got {resp!r}"
    _common_checks(resp)
    j = resp.json
    keys = set(j)
    assert keys in ({"status", "error_type", "message", "timestamp"},
                    {"status", "error_type", "message", "field", "timestamp"}), \
        f"error envelope keys {sorted(keys)}: {resp!r}"
    assert j["status"] == "error"
    assert j["error_type"] == error_type, f"error_type {j['error_type']!r}: {resp!r}"
    assert isinstance(j["message"], str) and j["message"], "empty message"
    if "field" in j:
        assert isinstance(j["field"], str) and j["field"], f"bad field {j['field']!r}"
    if field is MISSING:
        assert "field" not in j, f"unexpected field: {resp!r}"
    elif field is not None:
        assert j.get("field") == field, f"expected field {field!r}: {resp!r}"
    return j


def check_entry(e, ttl=None):
    """Assert the exact shape of an STM entry (and expires_at = created_at + ttl)."""
    assert isinstance(e, dict) and set(e) == ENTRY_KEYS, f"entry keys {sorted(e)}"
    assert isinstance(e["scenario_id"], str)
    assert isinstance(e["requirement_text"], str) and e["requirement_text"].strip()
    ia = e["initial_assessment"]
    assert isinstance(ia, dict) and set(ia) == {"status", "rationale", "recommendation"}, ia
    assert ia["status"] in STATUSES
    fb = e["human_feedback"]
    assert fb is None or (isinstance(fb, dict) and
                          set(fb) == {"decision", "rationale", "suggestion"}), fb
    assert e["final_status"] is None or e["final_status"] in STATUSES
    c, u, x = parse_ts(e["created_at"]), parse_ts(e["updated_at"]), parse_ts(e["expires_at"])
    assert c <= u, f"updated_at before created_at: {e}"
    if ttl is not None:
        assert x - c == ttl * 1000, f"expires_at != created_at + {ttl}s: {e}"
    return e


def entry_body(scenario_id=None, **kw):
    """A valid create body; scenario_id=None and no domain -> a fresh unique id."""
    b = {"requirement_text": "The system stores personal data.",
         "initial_assessment": {"status": "Non-Compliant",
                                "rationale": "No retention period is defined.",
                                "recommendation": "Define a retention period."}}
    if scenario_id is None and "domain" not in kw:
        scenario_id = unique_domain() + "_r1_test"
    if scenario_id is not None:
        b["scenario_id"] = scenario_id
    b.update(kw)
    return b


def create(d, body=None, **kw):
    """POST a create (default: a fresh valid entry); assert 201; return the entry."""
    r = d.post("/v1/stm/entries", body if body is not None else entry_body(**kw))
    data = ok(r, 201)
    assert set(data) == {"stm_entry"}, f"create data keys {sorted(data)}"
    e = check_entry(data["stm_entry"])
    assert r.header("Location") == "/v1/stm/entries/" + e["scenario_id"], r.headers
    return e


def raw_member(body, name):
    """The exact text of the first JSON member `name` in a response body (byte-exact)."""
    key = json.dumps(name) + ":"
    i = body.index(key) + len(key)
    _, end = json.JSONDecoder().raw_decode(body, i)
    return body[i:end]


def get_raw(d, sid):
    """(status, exact text of data.stm_entry or None)."""
    r = d.get("/v1/stm/entries/" + sid)
    return r.status, (raw_member(r.body, "stm_entry") if r.status == 200 else None)


def stats(d):
    d_ = ok(d.get("/v1/stm/stats"))
    return d_


def list_all(d, limit=None, max_pages=1000, **filters):
    """Page through GET /v1/stm/entries; return the entries in order."""
    out, cursor = [], None
    for _ in range(max_pages):
        q = dict(filters)
        if limit is not None:
            q["limit"] = limit
        if cursor:
            q["cursor"] = cursor
        r = d.get("/v1/stm/entries" + ("?" + urlencode(q) if q else ""))
        data = ok(r)
        assert set(data) == {"entries", "count", "next_cursor", "filters"}, sorted(data)
        assert data["count"] == len(data["entries"])
        if limit is not None:
            assert data["count"] <= int(limit)
        out.extend(data["entries"])
        cursor = data["next_cursor"]
        if cursor is None:
            return out
        assert isinstance(cursor, str) and cursor
    raise AssertionError(f"listing did not end within {max_pages} pages")


def ids(entries):
    return [e["scenario_id"] for e in entries]


def health_ok(d):
    r = d.get("/health")
    assert r.status == 200, f"/health after the request: {r!r}"


# ---- raw HTTP (for what http.client refuses to send) -------------------------

def _parse_raw_response(sock, method, timeout):
    sock.settimeout(timeout)
    hr = http.client.HTTPResponse(sock, method=method)
    hr.begin()
    body = hr.read().decode("utf-8", "replace")
    return Response(hr.status, hr.getheaders(), body)


def raw_http(port, data, method="GET", timeout=10):
    """Send raw bytes as one request on a new connection; parse the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _parse_raw_response(s, method, timeout)


def raw_request(port, method, target, headers=(), body=b"", timeout=10):
    """Build an HTTP/1.1 request byte by byte (target and headers unchecked)."""
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for k, v in headers:
        head += f"{k}: {v}\r\n"
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        head += f"Content-Length: {len(body)}\r\n"
    data = head.encode("latin-1") + b"\r\n" + body
    return raw_http(port, data, method=method, timeout=timeout)


def streamed_request(port, head, chunks, timeout=20):
    """Send head, then body chunks, until the server answers (or all is sent).

    Stops sending as soon as the response starts arriving, the way a careful
    client would; returns (Response, bytes_of_body_sent)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent = 0
    try:
        s.sendall(head)
        deadline = time.monotonic() + timeout
        it = iter(chunks)
        pending = b""
        while time.monotonic() < deadline:
            r, w, _ = select.select([s], [s], [], 0.5)
            if r:
                break
            if w:
                if not pending:
                    pending = next(it, None)
                    if pending is None:
                        break
                try:
                    n = s.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += n
                pending = pending[n:]
        return _parse_raw_response(s, "POST", timeout), sent
    finally:
        s.close()


def chunked(data, size=65536):
    """HTTP/1.1 chunked transfer coding of data, as an iterator of byte strings."""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        yield b"%x\r\n" % len(part) + part + b"\r\n"
    yield b"0\r\n\r\n"

