#!/usr/bin/env python3
"""Drive a running memoryd with requests of every kind (for scripts/ci/tsan.sh
and scripts/ci/valgrind.sh, which run the daemon under a checker).

    exercise_api.py BASE_URL [--threads N] [--rounds N]

Every route of the API is called with valid and with invalid input, plus the
HTTP-level edge cases (404, 405, 415, 413, bad JSON, deep JSON, bad and
over-long query strings, HEAD, an oversized header block, a client that
hangs up mid-body). With --threads, N workers run the whole sequence at the
same time on their own ids, so the daemon's shared state (cache, metrics,
pools, the embedded store) is used concurrently.

Exits 1 (with the offending requests listed) when any answer is a 5xx, a
status outside what the request can legitimately get, or not JSON where JSON
is due; 0 otherwise. Standard library only.
"""
import http.client
import json
import socket
import sys
import threading
import urllib.parse

FAILURES = []
LOCK = threading.Lock()


def fail(msg):
    with LOCK:
        FAILURES.append(msg)


class Client:
    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def raw(self, method, path, body=None, headers=None):
        """One request on a keep-alive connection; returns (status, headers, bytes)."""
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, r, data
            except (ConnectionError, http.client.HTTPException, socket.timeout) as e:
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    fail(f"{method} {path}: {e!r}")
                    return 0, None, b""
        return 0, None, b""

    def call(self, method, path, body=None, want=(200,), headers=None, json_body=True):
        status, r, data = self.raw(method, path, body, headers)
        if status == 0:
            return None
        if status not in want:
            fail(f"{method} {path}: HTTP {status} (want {want}): {data[:300]!r}")
        if status >= 500 and status not in want:
            return None
        if json_body and status != 204 and method != "HEAD":
            try:
                doc = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                fail(f"{method} {path}: HTTP {status} body is not JSON ({e}): {data[:200]!r}")
                return None
            return doc
        return data


def sequence(base, tag):
    """Every kind of request once; tag keeps the ids of concurrent workers apart."""
    c = Client(base)
    sid = f"fz{tag}_r1_consent"
    ia = {"status": "Non-Compliant", "rationale": "no banner", "recommendation": "add one"}
    entry = {"scenario_id": sid, "requirement_text": "Obtain consent before tracking",
             "initial_assessment": ia, "ttl_seconds": 3600}
    # --- STM
    c.call("DELETE", f"/v1/stm/entries/{sid}", want=(204, 404))
    c.call("POST", "/v1/stm/entries", entry, want=(201,))
    c.call("POST", "/v1/stm/entries", entry, want=(409,))
    gen = c.call("POST", "/v1/stm/entries",
                 {"domain": f"FZ-{tag}", "requirement_number": "R007", "key_concept": "Data retention",
                  "requirement_text": "Delete data after 30 days — müssen",
                  "initial_assessment": {"status": "partial", "rationale": "r", "recommendation": "s"}},
                 want=(201,))
    gen_id = gen["data"]["stm_entry"]["scenario_id"] if gen else f"fz{tag}_r7_data_retention"
    c.call("POST", "/v1/stm/entries", {"scenario_id": "Bad Id", "requirement_text": "t",
                                       "initial_assessment": ia}, want=(400,))
    c.call("POST", "/v1/stm/entries", {"scenario_id": sid, "requirement_text": "t",
                                       "initial_assessment": dict(ia, extra=1)}, want=(400,))
    c.call("GET", f"/v1/stm/entries/{sid}", want=(200,))
    c.call("GET", "/v1/stm/entries/BAD%2Fid", want=(400,))
    c.call("GET", f"/v1/stm/entries/fz{tag}_r9_nothing", want=(404,))
    c.call("PATCH", f"/v1/stm/entries/{sid}",
           {"requirement_text": "Obtain explicit consent", "initial_assessment": {"status": "Pending"},
            "final_status": None}, want=(200,))
    c.call("PATCH", f"/v1/stm/entries/{sid}", {"scenario_id": "x_r1_y"}, want=(400,))
    c.call("PUT", f"/v1/stm/entries/{sid}/feedback",
           {"decision": "Partially Compliant", "rationale": "pre-ticked box",
            "suggestion": "untick it", "final_status": "Partially Compliant"}, want=(200,))
    c.call("PUT", f"/v1/stm/entries/{sid}/feedback", {"decision": " "}, want=(400,))
    c.call("PUT", f"/v1/stm/entries/{sid}/ttl", {"ttl_seconds": 7200}, want=(200,))
    c.call("PUT", f"/v1/stm/entries/{sid}/ttl", {"ttl_seconds": "7200"}, want=(400,))
    page = c.call("GET", f"/v1/stm/entries?domain=fz{tag}&limit=1", want=(200,))
    cur = page and page["data"]["next_cursor"]
    if cur:
        c.call("GET", f"/v1/stm/entries?domain=fz{tag}&limit=1&cursor={cur}", want=(200,))
    c.call("GET", "/v1/stm/entries?status=Pending&final_status=partial&has_feedback=true", want=(200,))
    c.call("GET", "/v1/stm/entries?cursor=forged", want=(400,))
    c.call("GET", "/v1/stm/entries?limit=0", want=(400,))
    c.call("GET", "/v1/stm/stats", want=(200,))
    # --- LTM
    rid = f"FZ{tag}_Consent_Unbundled_01"
    c.call("DELETE", f"/v1/ltm/rules/{rid}", want=(204, 404))
    c.call("POST", "/v1/ltm/rules",
           {"rule_id": rid, "rule_text": "Consent must be unbundled from other terms",
            "related_concepts": ["consent", "Unbundling", "Данные"],
            "source_scenario_ids": [sid, gen_id], "confidence_score": 0.8}, want=(201,))
    c.call("POST", "/v1/ltm/rules",
           {"rule_id": rid, "rule_text": "t", "related_concepts": ["c"],
            "source_scenario_ids": [sid]}, want=(409,))
    c.call("POST", "/v1/ltm/rules",
           {"rule_text": "t", "related_concepts": ["Consent", "CONSENT"],
            "source_scenario_ids": [sid], "policy": "gdpr"}, want=(400,))
    promoted = c.call("POST", f"/v1/stm/entries/{sid}/promote",
                      {"rule_text": "Pre-ticked boxes are not consent", "related_concepts": ["consent"],
                       "policy": f"FZ{tag}", "key_concept": "pre ticked boxes"}, want=(201,))
    c.call("POST", f"/v1/stm/entries/{gen_id}/promote",
           {"rule_text": "x", "related_concepts": ["c"], "policy": "P"}, want=(409,))
    c.call("GET", f"/v1/ltm/rules/{rid}", want=(200,))
    c.call("GET", "/v1/ltm/rules/not-a-rule", want=(400,))
    c.call("PATCH", f"/v1/ltm/rules/{rid}",
           {"rule_text": "Consent must be unbundled", "confidence_score": 0.9,
            "related_concepts": ["consent", "bundling"], "add_source_scenario_ids": [gen_id]},
           want=(200,))
    c.call("PATCH", f"/v1/ltm/rules/{rid}", {"confidence_score": 2}, want=(400,))
    c.call("GET", f"/v1/ltm/rules?q=consent%20unbundled&policy=fz{tag}&min_confidence=0.1&limit=1",
           want=(200,))
    s = c.call("GET", "/v1/ltm/rules?concepts=Consent,bundling&limit=1", want=(200,))
    if s and s["data"]["next_cursor"]:
        c.call("GET", f"/v1/ltm/rules?concepts=Consent,bundling&limit=1&cursor={s['data']['next_cursor']}",
               want=(200,))
    c.call("GET", "/v1/ltm/rules?q=%20%20", want=(400,))
    cp = c.call("GET", "/v1/ltm/concepts?limit=1", want=(200,))
    if cp and cp["data"]["next_cursor"]:
        c.call("GET", f"/v1/ltm/concepts?limit=1&cursor={cp['data']['next_cursor']}", want=(200,))
    c.call("GET", "/v1/ltm/concepts/CONSENT/rules", want=(200,))
    c.call("GET", "/v1/ltm/concepts/no%20such%20concept%20here/rules", want=(404,))
    c.call("GET", f"/v1/ltm/rules/{rid}/history", want=(200,))
    c.call("GET", f"/v1/ltm/rules/{rid}/audit", want=(200,))
    c.call("GET", f"/v1/trace/{sid}", want=(200,))
    c.call("GET", f"/v1/trace/fz{tag}_r9_unknown", want=(404,))
    c.call("GET", "/v1/integrity", want=(200,))
    c.call("GET", "/v1/stats", want=(200,))
    # --- operations
    c.call("GET", "/v1/dashboard", want=(200,))
    c.call("GET", "/v1/alerts", want=(200,))
    name = f"fz {tag} slow"
    c.call("POST", "/v1/alerts/rules",
           {"name": name, "metric_name": "stm_response_time_ms", "threshold": 50,
            "comparison": "gt", "duration_seconds": 60, "enabled": True}, want=(201,))
    c.call("POST", "/v1/alerts/rules", {"name": name, "metric_name": "nope"}, want=(400,))
    c.call("DELETE", "/v1/alerts/rules/" + urllib.parse.quote(name), want=(204,))
    c.call("POST", "/v1/cache/invalidate", {"prefix": "/v1/ltm"}, want=(200,))
    c.call("POST", "/v1/cache/invalidate", want=(200,))
    c.call("GET", "/health", want=(200,))
    c.call("GET", "/ready", want=(200,))
    c.call("GET", "/metrics", want=(200,), json_body=False)
    c.call("GET", "/dashboard", want=(200,), json_body=False)
    c.call("GET", "/openapi.json", want=(200,))
    c.call("HEAD", "/v1/stm/stats", want=(200,), json_body=False)
    # --- HTTP edge cases
    c.call("GET", "/no/such/route", want=(404,))
    c.call("PUT", "/v1/stm/entries", want=(405,))
    c.call("POST", "/v1/stm/entries", b'{"a":1}', headers={"Content-Type": "text/plain"},
           want=(415,))
    c.call("POST", "/v1/stm/entries", b"{not json", headers={"Content-Type": "application/json"},
           want=(400,))
    c.call("POST", "/v1/stm/entries", b'{"a":"\\u16\xde\x87\x03}',
           headers={"Content-Type": "application/json"}, want=(400,))
    c.call("POST", "/v1/stm/entries", ("[" * 40 + "]" * 40).encode(),
           headers={"Content-Type": "application/json"}, want=(400,))
    too_big(base)
    c.call("GET", "/v1/stm/stats?x=%ZZ", want=(400,))
    c.call("GET", "/v1/stm/stats?" + "&".join(["a=1"] * 40), want=(400,))
    c.call("GET", "/v1/stm/stats?" + "a" * 9000, want=(400,))
    c.call("GET", "/v1/stm/stats", headers={"X-Request-Id": "fuzz-" + str(tag)}, want=(200,))
    # --- cleanup
    if promoted:
        c.call("DELETE", f"/v1/ltm/rules/{promoted['data']['ltm_rule']['rule_id']}", want=(204,))
    c.call("DELETE", f"/v1/ltm/rules/{rid}", want=(204,))
    c.call("DELETE", f"/v1/stm/entries/{sid}", want=(204,))
    c.call("DELETE", f"/v1/stm/entries/{gen_id}", want=(204,))
    if c.conn:
        c.conn.close()


def too_big(base):
    """A declared body over the limit is refused at once (413), before it is sent."""
    u = urllib.parse.urlparse(base)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    s.sendall(b"POST /v1/stm/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 2097152\r\n\r\n{")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    if not data.startswith(b"HTTP/1.1 413"):
        fail(f"declared 2 MiB body: {data[:100]!r}")


def rude_clients(base):
    """Connections the daemon must clean up after: huge headers, hang-ups."""
    u = urllib.parse.urlparse(base)
    # a header block larger than libmicrohttpd's per-connection memory
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    s.sendall(b"GET /v1/stm/stats?limit=1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()
    # hang up after the headers and half the body
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    s.sendall(b"POST /v1/stm/entries?x=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"scenario_id\":")
    s.close()
    # hang up in the middle of the request line
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    s.sendall(b"GET /v1/stm/entries?limit=")
    s.close()


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    base = args[0]
    threads = int(args[args.index("--threads") + 1]) if "--threads" in args else 1
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 1

    def worker(i):
        for r in range(rounds):
            sequence(base, f"{i}0{r}")  # digits: valid in scenario ids and policies

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    rude_clients(base)
    for t in ts:
        t.join()
    Client(base).call("GET", "/health", want=(200,))  # still serving after all that
    if FAILURES:
        print(f"exercise_api: {len(FAILURES)} unexpected answer(s):", file=sys.stderr)
        for f in FAILURES[:40]:
            print("  " + f, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
