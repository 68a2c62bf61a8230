"""
Integration test harness: real memoryd processes against real stores.

Everything here starts real processes: `redis-server` (from Debian's package)
on a free loopback port in a temporary directory, and the memoryd binary
under test (MEMORYD_BIN, default build/memoryd). Neo4j is provided by
tests/neo4j/server.sh (see the LTM tests). There is no stand-in for any store.

Fixtures
  redis_server   session-wide Redis, with kill/restart/pause helpers
  fresh_redis    a Redis started for one test (fault tests may kill it)
  daemon         factory: daemon(stm="embedded"|"redis", **settings) -> Daemon;
                 daemon(stm="redis", share_db=other) starts a peer on other's Redis db
  stm_daemon     a daemon per STM backend (parametrised: embedded, redis)
  neo4j          session-wide real Neo4j 5 (NEO4J_URI/_USERNAME/_PASSWORD from the
                 environment, else started with tests/neo4j/server.sh)
  neo4j_graph    the same, with the graph emptied before the test
  ltm_daemon     a daemon per LTM backend (embedded, neo4j), embedded STM
  tier_daemon    a daemon per (STM, LTM) pair for tests that span both tiers
  own_neo4j      a Neo4j of this session alone (own state dir, HTTPS too) that fault
                 tests may pause, crash and restart (own_neo4j_graph: graph emptied)

Each daemon runs in its own temporary DATA_DIR (or Redis logical database),
so tests never see each other's data. On teardown a daemon is stopped with
SIGTERM and must exit 0 with no sanitizer report in its log.
"""
import base64
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
from urllib.parse import urlencode, urlsplit

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MEMORYD_BIN = os.environ.get("MEMORYD_BIN", os.path.join(ROOT, "build", "memoryd"))
REDIS_SERVER = os.environ.get("REDIS_SERVER", shutil.which("redis-server") or "redis-server")
STM_BACKENDS = [b for b in os.environ.get("MEMORYD_STM_BACKENDS", "embedded,redis").split(",") if b]
LTM_BACKENDS = [b for b in os.environ.get("MEMORYD_LTM_BACKENDS", "embedded,neo4j").split(",") if b]
# (STM, LTM) pairs for the tests that span both tiers (promotion, links, trace, integrity).
TIER_PAIRS = [(s, l) for s, l in (("embedded", "embedded"), ("embedded", "neo4j"),
                                  ("redis", "neo4j"), ("redis", "embedded"))
              if s in STM_BACKENDS and l in LTM_BACKENDS]
NEO4J_SERVER_SH = os.path.join(ROOT, "tests", "neo4j", "server.sh")
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
        except (OSError, RuntimeError):  # RuntimeError: "LOADING" while the AOF replays
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


# --------------------------------------------------------------------------- Neo4j

class Neo4jServer:
    """A real Neo4j 5 reached over its HTTP transactional endpoint (basic auth).

    Tests use cypher() to look at the graph the way other tools would."""

    def __init__(self, uri, username, password, owned=False):
        self.uri = uri.rstrip("/")
        self.username = username
        self.password = password
        self.owned = owned  # started by this session (stopped at its end)
        u = urlsplit(self.uri)
        assert u.scheme in ("http", "https") and u.hostname, f"bad NEO4J_URI {uri!r}"
        self._scheme, self._host = u.scheme, u.hostname
        self._port = u.port or (7473 if u.scheme == "https" else 7474)
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "Authorization": "Basic " + token}

    def daemon_settings(self):
        return {"NEO4J_URI": self.uri, "NEO4J_USERNAME": self.username,
                "NEO4J_PASSWORD": self.password}

    def _connection(self, timeout):
        if self._scheme == "https":
            import ssl
            ctx = ssl.create_default_context(cafile=os.environ.get("NEO4J_CA_FILE") or None)
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=ctx)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def cypher(self, statement, timeout=60, **params):
        """Run one statement in its own transaction; return its rows (lists)."""
        body = json.dumps({"statements": [{"statement": statement, "parameters": params}]})
        conn = self._connection(timeout)
        try:
            conn.request("POST", "/db/neo4j/tx/commit", body=body.encode(), headers=self._headers)
            r = conn.getresponse()
            raw = r.read().decode("utf-8", "replace")
        finally:
            conn.close()
        assert r.status == 200, f"Neo4j answered {r.status}: {raw[:500]}"
        doc = json.loads(raw)
        assert not doc.get("errors"), f"Cypher failed: {doc['errors']} in {statement!r}"
        return [row["row"] for row in doc["results"][0]["data"]]

    def value(self, statement, **params):
        """The single value of a one-row, one-column query."""
        rows = self.cypher(statement, **params)
        assert len(rows) == 1 and len(rows[0]) == 1, rows
        return rows[0][0]

    def ping(self):
        try:
            return self.cypher("RETURN 1", timeout=5) == [[1]]
        except (OSError, AssertionError, ValueError):
            return False

    def clear(self):
        """Empty the graph (the schema stays)."""
        self.cypher("MATCH (n) DETACH DELETE n")


def _server_sh(*args, timeout=300):
    return subprocess.run([NEO4J_SERVER_SH, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def neo4j():
    """The session's Neo4j. NEO4J_URI (+ NEO4J_USERNAME, NEO4J_PASSWORD) from the
    environment when set (scripts/test.sh starts one); otherwise started here with
    tests/neo4j/server.sh (NEO4J_STATE_DIR etc. are honoured) and stopped at the end
    of the session, unless server.sh reused a server that was already running from
    the same state dir (someone else's: left alone). A Neo4j that cannot be reached
    or started fails the tests that need it; it is never skipped."""
    uri = os.environ.get("NEO4J_URI")
    if uri:
        server = Neo4jServer(uri, os.environ.get("NEO4J_USERNAME", "neo4j"),
                             os.environ.get("NEO4J_PASSWORD", ""))
        if not server.ping():
            pytest.fail(f"NEO4J_URI={uri} is set but Neo4j does not answer an authenticated "
                        "RETURN 1 (wrong credentials, or not running)", pytrace=False)
        yield server
        return
    was_running = _server_sh("status", timeout=60).returncode == 0
    try:
        res = _server_sh("start", timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail("tests/neo4j/server.sh start did not return within 600 s", pytrace=False)
    if res.returncode != 0:
        pytest.fail(f"tests/neo4j/server.sh start failed ({res.returncode}):\n"
                    f"{res.stderr[-4000:]}", pytrace=False)
    lines = [l for l in res.stdout.splitlines() if l.strip()]
    kv = dict(l.split("=", 1) for l in lines[:-1] if "=" in l)
    server = Neo4jServer(lines[-1].strip(), kv.get("NEO4J_USERNAME", "neo4j"),
                         kv.get("NEO4J_PASSWORD", ""), owned=not was_running)
    if not server.ping():
        pytest.fail(f"Neo4j started by server.sh at {server.uri} does not answer", pytrace=False)
    yield server
    if server.owned:
        _server_sh("stop", timeout=120)


@pytest.fixture
def neo4j_graph(neo4j):
    """The session's Neo4j with an empty graph. Every Neo4j-backed daemon shares the
    one database, so a test that uses one starts from a clean graph and no other
    Neo4j-backed daemon runs meanwhile (tests run one at a time)."""
    neo4j.clear()
    return neo4j


class OwnNeo4j(Neo4jServer):
    """A Neo4j for this test session alone (its own NEO4J_STATE_DIR, HTTPS on too), for
    the tests that pause, crash or restart Neo4j or reach it over TLS. The shared
    instance (`neo4j`) is never paused or restarted: other suites use it."""

    def __init__(self, state_dir, start_stdout):
        lines = [l for l in start_stdout.splitlines() if l.strip()]
        kv = dict(l.split("=", 1) for l in lines[:-1] if "=" in l)
        super().__init__(lines[-1].strip(), kv.get("NEO4J_USERNAME", "neo4j"),
                         kv.get("NEO4J_PASSWORD", ""), owned=True)
        self.state_dir = state_dir
        self.https_uri = kv["NEO4J_HTTPS_URI"]
        self.ca_file = kv["NEO4J_CA_FILE"]

    def _sh(self, *args, timeout=600):
        env = dict(os.environ, NEO4J_STATE_DIR=self.state_dir, NEO4J_TLS="1")
        for k in ("NEO4J_USERNAME", "NEO4J_PASSWORD"):
            env[k] = getattr(self, k.split("_")[1].lower())
        res = subprocess.run([NEO4J_SERVER_SH, *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=timeout, env=env)
        assert res.returncode == 0, f"server.sh {' '.join(args)} failed:\n{res.stderr[-3000:]}"
        return res

    @property
    def pid(self):
        with open(os.path.join(self.state_dir, "neo4j.pid")) as f:
            return int(f.read().strip())

    def pause(self):
        """SIGSTOP the Neo4j JVM (it accepts connections but answers nothing)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        try:
            os.kill(self.pid, signal.SIGCONT)
        except (ProcessLookupError, OSError):
            pass

    def restart(self, kill=True):
        """Stop (SIGKILL: a crash, or SIGTERM) and start again on the same data and ports
        (tests/neo4j/server.sh restart)."""
        self._sh("restart", "kill" if kill else "term")
        wait_for(self.ping, 60, interval=0.5, what="the restarted Neo4j to answer")

    def stop(self):
        self.resume()
        self._sh("stop", timeout=180)


@pytest.fixture(scope="session")
def own_neo4j():
    """The session's private Neo4j (see OwnNeo4j): HTTP and HTTPS (a throw-away CA), in
    .test-state/neo4j-own-<pid>, removed at the end of the session."""
    state_dir = os.path.join(ROOT, ".test-state", f"neo4j-own-{os.getpid()}")
    os.makedirs(state_dir, exist_ok=True)
    env = dict(os.environ, NEO4J_STATE_DIR=state_dir, NEO4J_TLS="1")
    for k in ("NEO4J_URI", "NEO4J_HTTP_PORT", "NEO4J_HTTPS_PORT"):
        env.pop(k, None)
    try:
        res = subprocess.run([NEO4J_SERVER_SH, "start"], cwd=ROOT, capture_output=True,
                             text=True, timeout=600, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("tests/neo4j/server.sh start (own instance) did not return within 600 s",
                    pytrace=False)
    if res.returncode != 0:
        pytest.fail(f"tests/neo4j/server.sh start (own instance) failed ({res.returncode}):\n"
                    f"{res.stderr[-4000:]}", pytrace=False)
    server = OwnNeo4j(state_dir, res.stdout)
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def own_neo4j_graph(own_neo4j):
    """The private Neo4j, running (never left paused by an earlier test), graph emptied."""
    own_neo4j.resume()
    if not own_neo4j.ping():
        own_neo4j.restart(kill=True)
    own_neo4j.clear()
    return own_neo4j


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
        self.preexec_fn = None  # run in the child before exec (e.g. resource limits)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MEMORYD_BIN], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.data_dir,
                                     preexec_fn=self.preexec_fn)
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

    def __call__(self, stm="embedded", ltm="embedded", start=True, neo4j=None, preexec_fn=None,
                 **settings):
        """neo4j: a Neo4jServer (the `neo4j` fixture); with ltm="neo4j" it supplies
        NEO4J_URI / NEO4J_USERNAME / NEO4J_PASSWORD unless they are given as settings.
        preexec_fn: run in the daemon's process before exec (resource limits)."""
        if neo4j is not None:
            settings = dict(neo4j.daemon_settings(), **settings)
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
        # share_db=<Daemon>: a peer of a daemon on the Redis STM backend — the same
        # Redis server and logical database (so the same data and the same cache
        # invalidation channel). The database stays the first daemon's allocation.
        share_db = settings.pop("share_db", None)
        if share_db is not None:
            assert stm == "redis" and share_db.backend == "redis", \
                "share_db: both daemons must use the Redis STM backend"
            assert "redis" not in settings, "share_db and redis= are exclusive"
            redis, db = share_db.redis, share_db.redis_db
            env.update({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
                        "REDIS_DB": str(db),
                        "REDIS_SOCKET_TIMEOUT": "2", "REDIS_SOCKET_CONNECT_TIMEOUT": "2"})
            if redis.password:
                env["REDIS_PASSWORD"] = redis.password
        elif stm == "redis":
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
        d.preexec_fn = preexec_fn
        d.backend, d.redis, d.redis_db = stm, redis, db
        d.ltm_backend, d.neo4j = ltm, (neo4j if ltm == "neo4j" else None)
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


def _ltm_daemon(request, factory, stm, ltm, **settings):
    if ltm == "neo4j":
        return factory(stm=stm, ltm="neo4j", neo4j=request.getfixturevalue("neo4j_graph"),
                       **settings)
    return factory(stm=stm, ltm=ltm, **settings)


@pytest.fixture(params=LTM_BACKENDS)
def ltm_daemon(request, daemon):
    """A fresh memoryd per test, once per LTM backend (embedded STM), with
    MEMORY_STM_MIN_TTL_SECONDS=1. On Neo4j the graph is empty at the start."""
    return _ltm_daemon(request, daemon, "embedded", request.param,
                       MEMORY_STM_MIN_TTL_SECONDS="1")


@pytest.fixture(params=TIER_PAIRS, ids=[f"{s}-{l}" for s, l in TIER_PAIRS])
def tier_daemon(request, daemon):
    """A fresh memoryd per test, once per (STM, LTM) backend pair, for what spans
    both tiers (promotion, stm_ltm_links, trace, integrity)."""
    stm, ltm = request.param
    return _ltm_daemon(request, daemon, stm, ltm, MEMORY_STM_MIN_TTL_SECONDS="1")


@pytest.fixture(scope="module", params=LTM_BACKENDS)
def shared_ltm_daemon(request, module_daemon):
    """One memoryd per LTM backend shared by a module's tests (embedded STM). On
    Neo4j the graph is emptied once, when it starts. Tests using it work on their
    own ids and policies (see unique_policy)."""
    if request.param == "neo4j":
        server = request.getfixturevalue("neo4j")
        server.clear()
        return module_daemon(ltm="neo4j", neo4j=server, MEMORY_STM_MIN_TTL_SECONDS="1")
    return module_daemon(MEMORY_STM_MIN_TTL_SECONDS="1")


def unique_policy():
    """A policy name no other test uses (letters and digits, starts with a letter)."""
    return "P" + uuid.uuid4().hex[:10].upper()


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


class TimedClient:
    """One kept-alive HTTP connection (load generators in the fault and soak suites):
    request() returns (Response, seconds); a request that got no answer at all comes
    back with status None (and the connection is re-opened on the next call)."""

    def __init__(self, port, timeout=30, source=None):
        self.port, self.timeout, self.source, self.conn = port, timeout, source, None
        self.retries = 0  # requests sent again after a kept-alive connection was found closed

    def request(self, method, path, body=None, headers=None):
        t0 = time.monotonic()
        hdrs = dict(headers or {})
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            reused = self.conn is not None
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=self.timeout,
                        source_address=(self.source, 0) if self.source else None)
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                resp = Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
                if r.will_close:
                    self.close()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A kept-alive connection the server had closed before reading this request
                # (what every HTTP client retries); a new connection gets no second chance.
                self.close()
                resp = Response(None, [], repr(e))
                if not reused:
                    break
                self.retries += 1
            except (OSError, http.client.HTTPException) as e:
                self.close()
                resp = Response(None, [], repr(e))
                break
        return resp, time.monotonic() - t0

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def proc_fd_count(pid):
    """Open file descriptors of a process (/proc/<pid>/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_rss_kib(pid):
    """Resident set size of a process in KiB (/proc/<pid>/status VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


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



# ---- LTM helpers (test_ltm_*.py, test_trace_*.py, test_corpus_journey.py) ------

RULE_ID_RE = re.compile(r"^[A-Z][A-Z0-9]{0,15}(_[A-Za-z0-9]+)+_[0-9]{2,4}$")
RULE_KEYS = {"rule_id", "policy", "rule_text", "related_concepts", "source_scenario_ids",
             "confidence_score", "version", "created_at", "updated_at"}
RULES = "/v1/ltm/rules"


def check_rule(r, with_score=False):
    """Assert the exact shape of an LTM rule (spec §4); return it."""
    keys = RULE_KEYS | ({"score"} if with_score else set())
    assert isinstance(r, dict) and set(r) == keys, f"rule keys {sorted(r)}"
    assert isinstance(r["rule_id"], str) and RULE_ID_RE.match(r["rule_id"]) and \
        len(r["rule_id"]) <= 128, r["rule_id"]
    assert r["policy"] == r["rule_id"].split("_")[0], r
    assert isinstance(r["rule_text"], str) and r["rule_text"].strip()
    assert isinstance(r["related_concepts"], list) and r["related_concepts"]
    assert all(isinstance(c, str) and c for c in r["related_concepts"])
    assert isinstance(r["source_scenario_ids"], list)
    assert all(isinstance(s, str) for s in r["source_scenario_ids"])
    assert len(set(r["source_scenario_ids"])) == len(r["source_scenario_ids"]), r
    c = r["confidence_score"]
    assert isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c <= 1, r
    assert isinstance(r["version"], int) and not isinstance(r["version"], bool) and \
        r["version"] >= 1, r
    assert parse_ts(r["created_at"]) <= parse_ts(r["updated_at"]), r
    if with_score:
        s = r["score"]
        assert isinstance(s, (int, float)) and not isinstance(s, bool), r
    return r


def rule_body(sources, concepts=("data retention",), rule_id=None, policy=None,
              key_concept=None, text="Personal data is kept only as long as needed.", **kw):
    """A valid POST /v1/ltm/rules body (rule_id, or policy [+ key_concept])."""
    b = {"rule_text": text, "related_concepts": list(concepts),
         "source_scenario_ids": list(sources)}
    if rule_id is not None:
        b["rule_id"] = rule_id
    if policy is not None:
        b["policy"] = policy
    if key_concept is not None:
        b["key_concept"] = key_concept
    if rule_id is None and policy is None:
        b["policy"] = unique_policy()
        b["key_concept"] = key_concept or "test rule"
    b.update(kw)
    return b


def create_rule(d, body=None, **kw):
    """POST /v1/ltm/rules; assert 201, Location and the rule's shape; return the rule."""
    if body is None:
        kw.setdefault("sources", [unique_domain() + "_r1_source"])
        body = rule_body(**kw)
    r = d.post(RULES, body)
    data = ok(r, 201)
    assert set(data) == {"ltm_rule"}, f"create data keys {sorted(data)}"
    rule = check_rule(data["ltm_rule"])
    assert r.header("Location") == f"{RULES}/{rule['rule_id']}", r.headers
    return rule


def get_rule(d, rule_id):
    """GET /v1/ltm/rules/{id} -> data ({ltm_rule, traceability})."""
    data = ok(d.get(f"{RULES}/{rule_id}"))
    assert set(data) == {"ltm_rule", "traceability"}, sorted(data)
    check_rule(data["ltm_rule"])
    return data


def feedback_body(**kw):
    b = {"decision": "Change status", "rationale": "The expert disagrees.",
         "suggestion": "Rewrite the requirement."}
    b.update(kw)
    return b


def give_feedback(d, sid, **kw):
    """PUT feedback on an STM entry; return the entry."""
    return ok(d.put(f"/v1/stm/entries/{sid}/feedback", feedback_body(**kw)))["stm_entry"]


def promote(d, sid, body):
    """POST /v1/stm/entries/{sid}/promote; assert 201 + Location; return the rule."""
    r = d.post(f"/v1/stm/entries/{sid}/promote", body)
    data = ok(r, 201)
    assert set(data) == {"ltm_rule"}, sorted(data)
    rule = check_rule(data["ltm_rule"])
    assert rule["source_scenario_ids"] == [sid], rule
    assert r.header("Location") == f"{RULES}/{rule['rule_id']}", r.headers
    return rule


def search_rules(d, limit=None, max_pages=1000, **params):
    """Page through GET /v1/ltm/rules; return (rules in order, search_type)."""
    out, cursor, kinds = [], None, set()
    for _ in range(max_pages):
        q = dict(params)
        if limit is not None:
            q["limit"] = limit
        if cursor:
            q["cursor"] = cursor
        data = ok(d.get(RULES + ("?" + urlencode(q) if q else "")))
        assert set(data) == {"rules", "count", "next_cursor", "search_type"}, sorted(data)
        assert data["count"] == len(data["rules"])
        assert data["count"] <= int(limit if limit is not None else 10)
        kinds.add(data["search_type"])
        for r in data["rules"]:
            check_rule(r, with_score="q" in params)
        out.extend(data["rules"])
        cursor = data["next_cursor"]
        if cursor is None:
            assert len(kinds) == 1, kinds
            return out, kinds.pop()
        assert isinstance(cursor, str) and cursor
        assert data["count"] > 0, "an empty page with a next_cursor"
    raise AssertionError(f"listing did not end within {max_pages} pages")


def links_of(d, sid):
    """The stm_ltm_links:{sid} set as Redis holds it (redis STM backend only)."""
    assert d.backend == "redis"
    return sorted(d.redis.command_db(d.redis_db, "SMEMBERS", f"stm_ltm_links:{sid}"))


def embedded_db(d):
    """A sqlite3 connection to an embedded daemon's database file (fault injection)."""
    import sqlite3
    con = sqlite3.connect(os.path.join(d.env["DATA_DIR"], "memoryd.db"), timeout=10,
                          isolation_level=None)
    con.execute("PRAGMA busy_timeout = 10000")
    return con


# ---- metrics helpers (test_cache.py, test_metrics.py, test_alerts.py, test_health.py) ----

class Scrape:
    """One GET /metrics, parsed with prometheus_client's text-format parser
    (prometheus-client from tests/requirements.txt; imported here so that the
    other suites do not need it)."""

    def __init__(self, resp):
        from prometheus_client.parser import text_string_to_metric_families
        assert resp.status == 200, f"/metrics: {resp!r}"
        self.resp = resp
        self.text = resp.body
        # A family per name; the parser drops `_total` from counter family names.
        self.families = {f.name: f for f in text_string_to_metric_families(resp.body)}
        self.samples = {}
        for f in self.families.values():
            for s in f.samples:
                key = (s.name, frozenset(s.labels.items()))
                assert key not in self.samples, f"duplicate series {s.name}{s.labels}"
                self.samples[key] = s.value

    def value(self, name, default=None, **labels):
        """The value of the series `name{labels}` (exactly those labels), else default."""
        return self.samples.get((name, frozenset(labels.items())), default)

    def series(self, name):
        """[(labels dict, value)] of every series of sample name `name`."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]


def scrape(d, headers=None):
    return Scrape(d.get("/metrics", headers=headers))


def cache_counters(d):
    """(hits, misses, entries) of memoryd's answers cache, from /metrics."""
    s = scrape(d)
    return (s.value("memoryd_cache_hits_total", 0.0), s.value("memoryd_cache_misses_total", 0.0),
            s.value("memoryd_cache_entries", 0.0))
