"""
Resource bounds of the HTTP front against real sockets:

- slow clients: headers sent one byte per second ("slow loris"), a body trickling in,
  a connection that never sends anything, and a kept-alive connection left idle are
  all closed once API_CONNECTION_TIMEOUT has passed (2 s here), while the daemon keeps
  answering everybody else;
- API_MAX_CONNECTIONS_PER_IP: connections beyond it are closed at once, cleanly, while
  other addresses are served; API_MAX_CONNECTIONS: memoryd never holds more, keeps
  serving the clients it has, and the connections beyond wait in the kernel's listen
  queue until a slot frees up (libmicrohttpd stops accepting at the cap);
- 10 000 concurrent connection attempts (non-blocking sockets) are refused cleanly:
  the daemon stays up, answers /health afterwards, its open descriptors return to
  their baseline and its log does not grow by a line per refused connection. The
  same flood against a daemon whose descriptor limit is below its connection cap
  (accept() failing with EMFILE) is survived as well.
"""
import errno
import os
import resource
import select
import socket
import threading
import time

import pytest

from conftest import TimedClient, ok, proc_fd_count, wait_for



def healthy(d):
    """Wait for the first store probes: /health answers 503 ("not probed yet") until then.
    The connection used for it is closed again (it would take a slot)."""
    wait_for(lambda: d.get("/health").status == 200, 10, what="/health after start-up")
    if d.conn:
        d.conn.close()
        d.conn = None
    time.sleep(0.2)  # libmicrohttpd notices the close on its next poll
    return d

def connect(port, source=None, timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        s.bind((source, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def closed_by_server(s, wait):
    """True when the server closed s (EOF or reset) within `wait` seconds without
    sending anything; False when it is still open; data received is an error."""
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        return False
    try:
        data = s.recv(4096)
    except (ConnectionResetError, OSError):
        return True
    assert data == b"", f"the server answered instead of closing: {data[:200]!r}"
    return True


def time_until_closed(s, limit):
    t0 = time.monotonic()
    assert closed_by_server(s, limit), f"still open after {limit}s"
    return time.monotonic() - t0


def accepted_connections(pid, port):
    """TCP connections to `port` that process `pid` has accepted (holds a descriptor of):
    /proc/<pid>/fd socket inodes matched against /proc/net/tcp (ESTABLISHED or later).
    Connections still in the kernel's listen queue belong to no process."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            if local_port == port and fields[3] != "0A" and fields[9] in inodes:
                n += 1
    return n


def health(port, source=None, timeout=5):
    r, dt = TimedClient(port, timeout, source=source).request("GET", "/health")
    return r, dt


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------- slow clients

TIMEOUT = 2


@pytest.mark.parametrize("mode", ["per-connection", "pool"])
def test_slow_loris_and_idle_connections_are_closed_after_the_timeout(daemon, mode):
    d = daemon(API_CONNECTION_TIMEOUT=str(TIMEOUT), API_THREAD_MODE=mode)
    healthy(d)
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 40 + b"\r\n\r\n"
    results = {}

    def loris(name):
        """Headers one byte per second: never idle, never complete."""
        s = connect(d.port)
        t0 = time.monotonic()
        try:
            for i in range(len(head)):
                try:
                    s.sendall(head[i:i + 1])
                except (BrokenPipeError, ConnectionResetError):
                    break
                if closed_by_server(s, 1.0):
                    break
            results[name] = (time.monotonic() - t0, i)
        finally:
            s.close()

    def trickle(name):
        """A complete head, then a body one byte per second."""
        s = connect(d.port)
        s.sendall(b"POST /v1/stm/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nContent-Length: 200\r\n\r\n")
        t0 = time.monotonic()
        try:
            for i in range(200):
                try:
                    s.sendall(b" ")
                except (BrokenPipeError, ConnectionResetError):
                    break
                if closed_by_server(s, 1.0):
                    break
            results[name] = (time.monotonic() - t0, i)
        finally:
            s.close()

    def silent(name):
        s = connect(d.port)
        try:
            results[name] = (time_until_closed(s, TIMEOUT + 5), 0)
        finally:
            s.close()

    def idle_after_request(name):
        s = connect(d.port)
        try:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf or not buf.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                assert chunk, "closed before the answer"
                buf += chunk
            assert buf.startswith(b"HTTP/1.1 200"), buf[:100]
            results[name] = (time_until_closed(s, TIMEOUT + 5), 0)
        finally:
            s.close()

    threads = [threading.Thread(target=f, args=(f"{f.__name__}{i}",))
               for f in (loris, trickle, silent, idle_after_request) for i in range(3)]
    for t in threads:
        t.start()
    # Meanwhile everybody else is served, on fresh and on kept-alive connections,
    # and a kept-alive connection used more often than the timeout stays open.
    keep = TimedClient(d.port, 5)
    served = 0
    t_end = time.monotonic() + TIMEOUT + 2
    while time.monotonic() < t_end:
        r, dt = health(d.port)
        assert r.status == 200 and dt < 1.0, (r, dt)
        r, dt = keep.request("GET", "/v1/stm/stats")
        assert r.status == 200 and dt < 1.0, (r, dt)
        served += 1
        time.sleep(0.5)
    assert keep.retries == 0, "a kept-alive connection in use was closed"
    keep.close()
    for t in threads:
        t.join(TIMEOUT + 30)
    assert not any(t.is_alive() for t in threads)
    assert served >= 4
    for name, (took, sent) in sorted(results.items()):
        # closed once the timeout passed (sweeps run a few times per second), not before
        assert TIMEOUT - 0.3 <= took <= TIMEOUT + 1.5, f"{name}: closed after {took:.2f}s"
        if name.startswith("loris"):
            assert sent < TIMEOUT + 2, f"{name}: {sent} bytes accepted"
    assert len(results) == len(threads)
    wait_for(lambda: "did not send a complete request" in d.read_log(), 5,
             what="a log line about the closed slow connections")
    ok(d.get("/health"))


def test_a_handled_request_is_not_cut_by_the_timeout(daemon):
    """The deadline applies while memoryd waits for the client, never while it works:
    a large body that arrives promptly and a slow-to-read answer are fine."""
    d = daemon(API_CONNECTION_TIMEOUT=str(TIMEOUT))
    c = TimedClient(d.port, 10)
    for i in range(3):  # kept-alive connection reused across the timeout
        body = {"scenario_id": f"bounds_r{i + 1}_keep", "requirement_text": "x" * 9000,
                "initial_assessment": {"status": "Pending", "rationale": "r",
                                       "recommendation": "c"}}
        r, _ = c.request("POST", "/v1/stm/entries", body)
        assert r.status == 201, r
        time.sleep(TIMEOUT - 1)
    assert c.retries == 0
    r, _ = c.request("GET", "/v1/stm/entries?limit=3")
    assert r.status == 200 and len(r.json["data"]["entries"]) == 3


# --------------------------------------------------------------------------- caps

def open_idle(port, n, source=None):
    socks = []
    for _ in range(n):
        socks.append(connect(port, source))
    return socks


def test_per_address_cap(daemon):
    d = daemon(API_MAX_CONNECTIONS_PER_IP="4", API_CONNECTION_TIMEOUT="30")
    healthy(d)
    held = open_idle(d.port, 4)
    time.sleep(0.3)
    assert not any(closed_by_server(s, 0) for s in held), "a connection within the cap closed"
    extra = [connect(d.port) for _ in range(3)]
    assert all(closed_by_server(s, 2) for s in extra), "a connection beyond the cap stayed"
    for s in extra:
        s.close()
    # another address is served meanwhile, and the held connections still work
    for _ in range(5):
        r, dt = health(d.port, source="127.0.0.2")
        assert r.status == 200 and dt < 1, (r, dt)
    held[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert held[0].recv(12).startswith(b"HTTP/1.1 200")
    # a slot that frees up can be used again
    held.pop().close()
    wait_for(lambda: health(d.port)[0].status == 200, 5, what="a freed slot to be usable")
    for s in held:
        s.close()
    wait_for(lambda: all(health(d.port)[0].status == 200 for _ in range(6)), 5,
             what="the address to be served again")
    assert d.proc.poll() is None


def answered(s, wait):
    """True when an HTTP answer arrived on s within `wait` seconds."""
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        return False
    data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return True


@pytest.mark.parametrize("mode,workers", [("per-connection", 4), ("pool", 1), ("pool", 4)])
def test_total_cap(daemon, mode, workers):
    """At API_MAX_CONNECTIONS libmicrohttpd stops accepting: further connections wait in
    the kernel's listen queue (and beyond it the kernel drops their SYNs) instead of being
    served; the connections memoryd holds never exceed the cap, the clients it has keep
    being served, and the waiting ones are served as soon as slots free up."""
    cap = 8
    d = daemon(API_MAX_CONNECTIONS=str(cap), API_MAX_CONNECTIONS_PER_IP="0",
               API_CONNECTION_TIMEOUT="30", API_THREAD_MODE=mode, API_WORKERS=str(workers))
    pid = d.proc.pid
    keep = TimedClient(d.port, 5)
    # an established client (/health is 503 until the first store probes have run)
    wait_for(lambda: keep.request("GET", "/health")[0].status == 200, 10,
             what="/health to report the first probes")
    socks = open_idle(d.port, 3 * cap)
    for s in socks:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(1.0)
    served = [s for s in socks if answered(s, 0)]
    waiting = [s for s in socks if s not in served]
    # In pool mode libmicrohttpd splits the cap between its worker threads: with several
    # workers one may stop accepting a little before the total is reached.
    assert len(served) + 1 <= cap, f"{len(served)} + 1 connections served at once, cap {cap}"
    assert len(served) + 1 >= (cap if mode == "per-connection" or workers == 1 else cap // 2), \
        len(served)
    held = accepted_connections(pid, d.port)
    assert held <= cap, f"memoryd holds {held} connections, cap {cap}"
    assert not any(closed_by_server(s, 0) for s in waiting)
    # The established client keeps being served.
    for _ in range(5):
        r, dt = keep.request("GET", "/v1/stm/stats")
        assert r.status == 200 and dt < 1, (r, dt)
    assert keep.retries == 0
    # As the served clients leave, the waiting ones get their answers.
    for s in served:
        s.close()
    while waiting:
        progressed = [s for s in waiting if answered(s, 0)]
        if not progressed:
            ready, _, _ = select.select(waiting, [], [], 5)
            assert ready, f"{len(waiting)} waiting connections never served"
            continue
        for s in progressed:
            waiting.remove(s)
            s.close()
    wait_for(lambda: health(d.port)[0].status == 200, 5, what="new clients to be served")
    assert d.proc.poll() is None


# --------------------------------------------------------------------------- flood

def flood(port, n, hold):
    """Start n non-blocking connects, hold them `hold` seconds, close them all; return
    (started, refused_at_connect, closed_by_server, still_open)."""
    socks, refused = [], 0
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex(("127.0.0.1", port))
        if rc not in (0, errno.EINPROGRESS):
            refused += 1
            s.close()
            continue
        socks.append(s)
    time.sleep(hold)
    closed = still = 0
    for s in socks:
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            closed += 1
            continue
        try:
            data = s.recv(1)
            closed += 1
            assert data == b"", data
        except BlockingIOError:
            still += 1
        except OSError:
            closed += 1
    for s in socks:
        s.close()
    return len(socks), refused, closed, still


def libmicrohttpd_lines(d):
    return sum(1 for l in d.read_log().splitlines() if "libmicrohttpd" in l)


@pytest.mark.parametrize("mode,limit", [("per-connection", "raised"),
                                        ("per-connection", "below the cap"),
                                        ("pool", "raised")])
def test_flood_of_10000_connections_is_refused_cleanly(daemon, mode, limit):
    n = 10000
    have = raise_nofile()
    if have < n + 200:
        pytest.fail(f"RLIMIT_NOFILE of the test process is {have}: {n} sockets need more "
                    f"(raise the hard limit, e.g. `ulimit -Hn 65536`)", pytrace=False)
    if limit == "raised":
        # the daemon inherits the raised limit; its caps keep it far below it
        d = daemon(API_MAX_CONNECTIONS="2048", API_MAX_CONNECTIONS_PER_IP="0",
                   API_CONNECTION_TIMEOUT="5", API_THREAD_MODE=mode)
        healthy(d)
    else:
        # 256 descriptors but a cap of 4096 connections: accept() fails with EMFILE
        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        d = daemon(API_MAX_CONNECTIONS="4096", API_MAX_CONNECTIONS_PER_IP="0",
                   API_CONNECTION_TIMEOUT="5", API_THREAD_MODE=mode, preexec_fn=low_limit)
        healthy(d)
    pid = d.proc.pid
    for _ in range(3):
        ok(d.get("/health"))
        ok(d.get("/v1/stm/stats"))
    d.conn.close()
    d.conn = None
    time.sleep(0.5)
    baseline = proc_fd_count(pid)
    lines_before = libmicrohttpd_lines(d)
    started, refused, closed, still = flood(d.port, n, hold=3)
    assert d.proc.poll() is None, f"memoryd died during the flood:\n{d.read_log()[-3000:]}"
    assert started + refused == n
    # afterwards: alive, answering, descriptors back to the baseline
    wait_for(lambda: health(d.port)[0].status == 200, 15, what="/health after the flood")
    wait_for(lambda: proc_fd_count(pid) <= baseline + 2, 15, interval=0.2,
             what=f"memoryd's descriptors to return to {baseline}")
    for _ in range(5):
        r, dt = health(d.port)
        assert r.status == 200 and dt < 1.0, (r, dt)
    ok(d.get("/v1/stm/stats"))
    # the log grew by a bounded number of lines, not one per refused connection
    grown = libmicrohttpd_lines(d) - lines_before
    assert grown <= 100, f"{grown} libmicrohttpd log lines for one flood"
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    state = fields[0]
    assert state in ("S", "R"), state
    # nothing spins after the flood: little CPU over a quiet second
    t1 = int(fields[11]) + int(fields[12])
    time.sleep(1.0)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    spent = (int(fields[11]) + int(fields[12]) - t1) / os.sysconf("SC_CLK_TCK")
    assert spent < 0.5, f"memoryd used {spent:.2f}s of CPU in a quiet second after the flood"
