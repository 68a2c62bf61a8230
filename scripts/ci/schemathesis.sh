#!/usr/bin/env bash
# scripts/ci/schemathesis.sh — property-based API test of a live memoryd against its own
# OpenAPI document, with schemathesis (PyPI), on real Redis and Neo4j.
#
#   scripts/ci/schemathesis.sh                       # build/memoryd
#   MEMORYD_BIN=build-asan/memoryd scripts/ci/schemathesis.sh
#
# Builds nothing. It:
#   1. makes (or reuses) the virtualenv .venv-schemathesis with the pinned packages of
#      tests/schemathesis/requirements.txt (quiet; skipped when already installed);
#   2. starts a redis-server on a free loopback port in a temporary directory;
#   3. uses the Neo4j of NEO4J_URI / NEO4J_USERNAME / NEO4J_PASSWORD (as scripts/test.sh
#      exports them), or starts tests/neo4j/server.sh itself when NEO4J_URI is unset (and
#      stops it at the end if it was not already running); the graph is emptied first;
#   4. starts memoryd with STM_BACKEND=redis, LTM_BACKEND=neo4j and an API key (given to
#      schemathesis as `Authorization: Bearer`), the other settings at their defaults;
#   5. seeds a little data through the API (tests/schemathesis/seed.py) so that
#      operations on existing ids are exercised (tests/schemathesis/hooks.py);
#   6. runs `schemathesis run` on the document served at /openapi.json with the checks
#      not_a_server_error, status_code_conformance, content_type_conformance,
#      response_headers_conformance and response_schema_conformance, a bounded number
#      of examples per operation, a fixed seed, and the stateful phase following the
#      document's links;
#   7. stops everything (trap), requires memoryd to exit 0 with no sanitizer report in its
#      log, and exits non-zero on any failure.
#
# Environment:
#   MEMORYD_BIN                  daemon under test (default build/memoryd)
#   SCHEMATHESIS_MAX_EXAMPLES    examples per operation (default 40)
#   SCHEMATHESIS_SEED            Hypothesis seed (default 20261126)
#   SCHEMATHESIS_WORKERS         concurrent workers (default 1: deterministic order)
#   SCHEMATHESIS_ARTIFACTS       directory that receives the memoryd log, the JUnit XML,
#                                the seeded ids and calls.jsonl (every request and answer,
#                                truncated) of the run (default: none kept)
#   NEO4J_URI, NEO4J_USERNAME, NEO4J_PASSWORD, NEO4J_STATE_DIR   see tests/neo4j/README.md
#   ASAN_OPTIONS, UBSAN_OPTIONS  passed to memoryd (defaults as in scripts/test.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
T0=$SECONDS

MEMORYD_BIN=${MEMORYD_BIN:-$ROOT/build/memoryd}
[[ $MEMORYD_BIN == /* ]] || MEMORYD_BIN=$ROOT/$MEMORYD_BIN
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-40}
SEED=${SCHEMATHESIS_SEED:-20261126}
WORKERS=${SCHEMATHESIS_WORKERS:-1}
VENV=$ROOT/.venv-schemathesis
REQ=$ROOT/tests/schemathesis/requirements.txt
PYTHON=${PYTHON:-python3}

log() { printf '[schemathesis.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[[ -x $MEMORYD_BIN ]] || die "no memoryd binary at $MEMORYD_BIN (build it first, or set MEMORYD_BIN)"
command -v redis-server >/dev/null || die "redis-server not found (scripts/install-deps.sh --dev)"
command -v curl >/dev/null || die "curl not found"

# ---------------------------------------------------------------- virtualenv (quiet, idempotent)
venv() {
    local py=$VENV/bin/python want stamp=$VENV/.requirements.sha256 out
    want=$({ sha256sum "$REQ" | cut -d' ' -f1; "$PYTHON" -c 'import sys; print(sys.version)'; } |
        sha256sum | cut -d' ' -f1)
    if [[ -x $py && -f $stamp && $(<"$stamp") == "$want" ]] && "$py" -c 'import schemathesis' 2>/dev/null; then
        return 0
    fi
    if [[ -d $VENV ]] && ! "$py" -c 'import sys' 2>/dev/null; then
        rm -rf "$VENV"
    fi
    if [[ ! -x $py ]]; then
        "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
            die "$PYTHON cannot create virtualenvs (Debian: apt-get install python3-venv)"
        out=$("$PYTHON" -m venv --clear "$VENV" 2>&1) || { printf '%s\n' "$out" >&2; die "python3 -m venv failed"; }
    fi
    out=$(PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$py" -m pip install --quiet --requirement "$REQ" 2>&1) ||
        { printf '%s\n' "$out" >&2; die "pip install -r $REQ failed"; }
    printf '%s\n' "$want" >"$stamp"
    log "installed $("$VENV/bin/schemathesis" --version) into $VENV"
}
venv
"$VENV/bin/python" -c 'import schemathesis' || die "the virtualenv has no schemathesis"

# ---------------------------------------------------------------- state and cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/memoryd-schemathesis.XXXXXX")
REDIS_PID='' MEMORYD_PID='' NEO4J_OWNED=0 MEMORYD_STOPPED=0

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

stop_pid() { # stop_pid <pid> <seconds>: SIGTERM, SIGKILL after the grace time
    local pid=$1 grace=$2 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $MEMORYD_PID && $MEMORYD_STOPPED == 0 ]]; then
        stop_pid "$MEMORYD_PID" 30
        wait "$MEMORYD_PID" 2>/dev/null || true
    fi
    if [[ -n $REDIS_PID ]]; then
        stop_pid "$REDIS_PID" 10
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    if [[ $NEO4J_OWNED == 1 ]]; then
        tests/neo4j/server.sh stop >/dev/null 2>&1 || true
    fi
    if [[ -n ${SCHEMATHESIS_ARTIFACTS:-} ]]; then
        mkdir -p "$SCHEMATHESIS_ARTIFACTS"
        cp -f "$TMP"/memoryd.log "$TMP"/junit.xml "$TMP"/calls.jsonl "$TMP"/seeds.json \
            "$SCHEMATHESIS_ARTIFACTS"/ 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- Redis
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
    --maxmemory-policy noeviction --loglevel warning --logfile "$TMP/redis.log" &
REDIS_PID=$!
redis_ping() {
    local line
    { exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT"; } 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 line <&3 || line=''
    exec 3<&- 3>&-
    [[ $line == +PONG* ]]
}
for ((i = 0; i < 100; i++)); do
    redis_ping && break
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited: $(cat "$TMP/redis.log" 2>/dev/null)"
    sleep 0.1
done
redis_ping || die "redis-server did not answer PING on port $REDIS_PORT"
log "redis-server on 127.0.0.1:$REDIS_PORT"

# ---------------------------------------------------------------- Neo4j
if [[ -z ${NEO4J_URI:-} ]]; then
    tests/neo4j/server.sh status >/dev/null 2>&1 || NEO4J_OWNED=1
    out=$(tests/neo4j/server.sh start) || die "tests/neo4j/server.sh start failed"
    NEO4J_USERNAME=$(sed -n 's/^NEO4J_USERNAME=//p' <<<"$out")
    NEO4J_PASSWORD=$(sed -n 's/^NEO4J_PASSWORD=//p' <<<"$out")
    NEO4J_URI=$(tail -n1 <<<"$out")
fi
NEO4J_USERNAME=${NEO4J_USERNAME:-neo4j}
NEO4J_PASSWORD=${NEO4J_PASSWORD:-}
cypher() { # cypher <statement>: run it in its own transaction; fail on any error
    local body
    body=$(curl -sS --max-time 120 -u "$NEO4J_USERNAME:$NEO4J_PASSWORD" \
        -H 'Content-Type: application/json' -H 'Accept: application/json' \
        --data "{\"statements\":[{\"statement\":\"$1\"}]}" \
        "${NEO4J_URI%/}/db/neo4j/tx/commit") || return 1
    [[ $body == *'"errors":[]'* ]] || { printf '%s\n' "$body" >&2; return 1; }
}
cypher 'MATCH (n) DETACH DELETE n' || die "Neo4j at $NEO4J_URI cannot be reached or emptied"
log "Neo4j at $NEO4J_URI (graph emptied)"

# ---------------------------------------------------------------- memoryd
API_PORT=$(free_port)
API_KEY="schemathesis-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
BASE=http://127.0.0.1:$API_PORT
# A clean environment: only what the daemon needs. Alert webhooks (schemathesis creates
# alert rules with arbitrary http(s) URLs, and alerts may fire under its load) go to a
# proxy on a closed loopback port, so nothing leaves the machine; Neo4j (loopback) is
# reached directly.
dead_port=$(free_port)
env -i PATH="$PATH" HOME="${HOME:-/root}" \
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    http_proxy="http://127.0.0.1:$dead_port" https_proxy="http://127.0.0.1:$dead_port" \
    HTTPS_PROXY="http://127.0.0.1:$dead_port" ALL_PROXY="http://127.0.0.1:$dead_port" \
    no_proxy="127.0.0.1,localhost,::1" NO_PROXY="127.0.0.1,localhost,::1" \
    API_HOST=127.0.0.1 API_PORT="$API_PORT" API_WORKERS=4 API_KEYS="$API_KEY" \
    DATA_DIR="$TMP/data" LOG_LEVEL=info \
    STM_BACKEND=redis LTM_BACKEND=neo4j \
    REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" REDIS_DB=0 REDIS_PASSWORD='' \
    REDIS_SOCKET_TIMEOUT=5 REDIS_SOCKET_CONNECT_TIMEOUT=5 \
    NEO4J_URI="$NEO4J_URI" NEO4J_USERNAME="$NEO4J_USERNAME" NEO4J_PASSWORD="$NEO4J_PASSWORD" \
    "$MEMORYD_BIN" >"$TMP/memoryd.log" 2>&1 &
MEMORYD_PID=$!
ready=0
for ((i = 0; i < 600; i++)); do
    kill -0 "$MEMORYD_PID" 2>/dev/null || { tail -n 40 "$TMP/memoryd.log" >&2; die "memoryd exited during start-up"; }
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/ready") == 200 ]]; then
        ready=1
        break
    fi
    sleep 0.1
done
[[ $ready == 1 ]] || { tail -n 40 "$TMP/memoryd.log" >&2; die "memoryd not ready within 60 s"; }
log "memoryd $MEMORYD_BIN ready at $BASE (STM redis, LTM neo4j, API key required)"
ready_lines=$(wc -l <"$TMP/memoryd.log")  # the 503s of /ready while starting are expected

# ---------------------------------------------------------------- seed
"$VENV/bin/python" tests/schemathesis/seed.py "$BASE" "$API_KEY" "$TMP/seeds.json" >&2 ||
    die "seeding failed"

# ---------------------------------------------------------------- schemathesis
log "schemathesis: $MAX_EXAMPLES examples per operation, seed $SEED, $WORKERS worker(s)"
set +e
(
    cd "$TMP"  # hypothesis and schemathesis write nothing into the work tree
    PYTHONPATH="$ROOT/tests/schemathesis" SCHEMATHESIS_HOOKS=hooks \
        MEMORYD_SCHEMATHESIS_SEEDS="$TMP/seeds.json" MEMORYD_SCHEMATHESIS_LOG="$TMP/calls.jsonl" \
        "$VENV/bin/schemathesis" run "$BASE/openapi.json" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
        --header "Authorization: Bearer $API_KEY" \
        --data-generation-method positive \
        --stateful links --stateful-recursion-limit 1 \
        --workers "$WORKERS" \
        --hypothesis-max-examples "$MAX_EXAMPLES" \
        --hypothesis-seed "$SEED" \
        --hypothesis-database none \
        --hypothesis-deadline 30000 \
        --hypothesis-suppress-health-check too_slow,filter_too_much,data_too_large \
        --request-timeout 20000 \
        --validate-schema true \
        --junit-xml "$TMP/junit.xml" \
        --schemathesis-io-telemetry false \
        --no-color
)
st_rc=$?
set -e

# ---------------------------------------------------------------- stop memoryd, check its log
kill -TERM "$MEMORYD_PID" 2>/dev/null || true
md_rc=0
for ((i = 0; i < 300; i++)); do
    kill -0 "$MEMORYD_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$MEMORYD_PID" 2>/dev/null; then
    kill -KILL "$MEMORYD_PID" 2>/dev/null || true
    md_rc=timeout
fi
if [[ $md_rc == 0 ]]; then
    wait "$MEMORYD_PID" || md_rc=$?
else
    wait "$MEMORYD_PID" 2>/dev/null || true
fi
MEMORYD_STOPPED=1

failed=0
if [[ $st_rc != 0 ]]; then
    log "schemathesis reported failures (exit $st_rc)"
    failed=1
fi
if [[ $md_rc != 0 ]]; then
    log "memoryd did not exit cleanly on SIGTERM ($md_rc); end of its log:"
    tail -n 60 "$TMP/memoryd.log" >&2
    failed=1
fi
if grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|WARNING: ThreadSanitizer' "$TMP/memoryd.log"; then
    log "sanitizer report in the memoryd log:"
    grep -n -A 40 -E 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|WARNING: ThreadSanitizer' \
        "$TMP/memoryd.log" | head -n 120 >&2
    failed=1
fi
# Zero 5xx, also outside what schemathesis checked (seeding): the access log after start-up.
n5xx=$(tail -n "+$((ready_lines + 1))" "$TMP/memoryd.log" | grep -cE 'access: [A-Z]+ [^ ]+ 5[0-9][0-9] ' || true)
if [[ $n5xx != 0 ]]; then
    log "memoryd answered $n5xx request(s) with a 5xx:"
    tail -n "+$((ready_lines + 1))" "$TMP/memoryd.log" | grep -E 'access: [A-Z]+ [^ ]+ 5[0-9][0-9] ' | head -n 20 >&2
    failed=1
fi
if [[ $failed != 0 ]]; then
    log "FAILED after $((SECONDS - T0)) s (memoryd answered $n5xx request(s) with a 5xx)"
    exit 1
fi
log "passed in $((SECONDS - T0)) s ($MEMORYD_BIN)"
