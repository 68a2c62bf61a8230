#!/usr/bin/env bash
# CI stage: ThreadSanitizer.
#
# Builds memoryd and the concurrency-relevant unit tests with
# -DMD_SANITIZE=thread (gcc) in build-tsan/ and runs them with
# TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:
#
#   test_cache test_metrics test_alerts test_stm_sqlite test_ltm_sqlite test_workpool test_log
#   test_sqlite_db test_ratelimit test_conn_guard test_listener
#   test_stm_redis test_redis_pool   when redis-server is installed (they start their own)
#   test_ltm_neo4j      when NEO4J_URI, NEO4J_USERNAME and NEO4J_PASSWORD are set
#
# then starts the TSan-built daemon (embedded stores; and again with the Redis
# and Neo4j backends when those are available) and drives it with concurrent
# clients (scripts/ci/exercise_api.py), stops it with SIGTERM and requires a
# clean exit. Any ThreadSanitizer report fails the stage.
#
# Idempotent; quiet on success (one summary line); bounded (each program
# runs under a timeout).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/ci/lib.sh
. scripts/ci/lib.sh
ROOT=$PWD
BUILD=$ROOT/build-tsan
JOBS=$(nproc)
TEST_TIMEOUT=${TSAN_TEST_TIMEOUT:-600}

fail() { printf 'tsan: %s\n' "$*" >&2; exit 1; }
start=$(date +%s)

tests=(test_cache test_metrics test_alerts test_stm_sqlite test_ltm_sqlite test_sqlite_db test_workpool
    test_ratelimit test_log)
[ -f tests/unit/test_conn_guard.c ] && tests+=(test_conn_guard) # guard thread vs. workers
[ -f tests/unit/test_listener.c ] && tests+=(test_listener)     # accept thread vs. openers/closers
have_redis=false
if command -v redis-server >/dev/null; then
    have_redis=true
    tests+=(test_stm_redis test_redis_pool)
fi
have_neo4j=false
if [ -n "${NEO4J_URI:-}" ] && [ -n "${NEO4J_USERNAME:-}" ] && [ -n "${NEO4J_PASSWORD:-}" ]; then
    have_neo4j=true
    tests+=(test_ltm_neo4j)
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

log=$work/build.log
if ! cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DMD_SANITIZE=thread -DMD_WERROR=ON \
        >"$log" 2>&1 ||
   ! cmake --build "$BUILD" -j"$JOBS" --target memoryd "${tests[@]}" >>"$log" 2>&1; then
    grep -E -B2 -A6 "error|Error" "$log" | head -60 >&2
    fail "build failed (see cmake --build build-tsan)"
fi

# halt_on_error: the first report ends the program with exit code 66
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

report() { # report <what> <log>: the ThreadSanitizer report, else the log's end
    printf '\ntsan: %s FAILED\n' "$1" >&2
    if grep -q "ThreadSanitizer" "$2"; then
        { grep -A60 -E "WARNING: ThreadSanitizer|ERROR: ThreadSanitizer" "$2" | head -120; } >&2 ||
            true
    else
        tail -40 "$2" >&2 || true
    fi
}

failed=()
for t in "${tests[@]}"; do
    tlog=$work/$t.log
    if ! (cd "$BUILD/tests/unit" && timeout "$TEST_TIMEOUT" "./$t") >"$tlog" 2>&1 ||
       grep -q "ThreadSanitizer" "$tlog"; then
        report "$t" "$tlog"
        failed+=("$t")
    fi
done

# ---- the daemon under concurrent load --------------------------------------------

# run_daemon <name> [SETTING=value…]: start, drive, SIGTERM, check.
run_daemon() {
    local name=$1; shift
    local dlog=$work/$name.log data=$work/$name-data port pid rc=0 up=false
    mkdir -p "$data"
    port=$(free_port)
    # only these settings (secrets stay out of argv): nothing leaks in from the caller
    env -i PATH="$PATH" TSAN_OPTIONS="$TSAN_OPTIONS" "$@" \
        "$BUILD/memoryd" --api-host 127.0.0.1 --api-port "$port" --api-workers 4 \
        --data-dir "$data" --env-file /dev/null >"$dlog" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 300); do
        grep -q "listening on" "$dlog" && { up=true; break; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if ! $up; then
        report "daemon ($name) did not start" "$dlog"
        failed+=("daemon-$name")
        return
    fi
    if ! timeout 600 python3 scripts/ci/exercise_api.py "http://127.0.0.1:$port" \
            --threads 6 --rounds 2 >"$work/$name.client.log" 2>&1; then
        cat "$work/$name.client.log" >&2
        failed+=("daemon-$name (client)")
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do # 60 s to drain and stop
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        echo "memoryd did not stop within 60 s of SIGTERM" >>"$dlog"
    fi
    wait "$pid" || rc=$?
    if [ "$rc" -ne 0 ] || grep -q "ThreadSanitizer" "$dlog"; then
        report "daemon ($name, exit $rc)" "$dlog"
        failed+=("daemon-$name")
    fi
}

run_daemon embedded
server_settings "$work"
[ ${#extra[@]} -gt 0 ] && run_daemon servers "${extra[@]}"

elapsed=$(($(date +%s) - start))
if [ ${#failed[@]} -gt 0 ]; then
    fail "failed: ${failed[*]} (${elapsed}s)"
fi
printf 'tsan: ok — %d unit tests and the daemon under load, no reports (%ss)\n' \
    "${#tests[@]}" "$elapsed" >&2
