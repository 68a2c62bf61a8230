#!/usr/bin/env bash
# CI stage: valgrind memcheck.
#
# A non-sanitized -O0 Debug build in build-valgrind/. Every unit test runs
# under
#   valgrind --error-exitcode=1 --leak-check=full
#            --show-leak-kinds=definite,indirect
#            --errors-for-leak-kinds=definite,indirect --track-origins=yes
#            --suppressions=tests/valgrind.supp
# (the Redis store tests too when redis-server is installed, test_ltm_neo4j
# when NEO4J_URI, NEO4J_USERNAME and NEO4J_PASSWORD are set). Then the daemon
# itself runs under valgrind on the embedded stores — and again with the
# Redis / Neo4j backends when those are available — while
# scripts/ci/exercise_api.py sends it requests of every kind (valid,
# invalid, oversized, hang-ups); it is stopped with SIGTERM and must exit 0
# with no error and no leak.
#
#   VALGRIND_JOBS=N      tests run in parallel (default: nproc)
#   VALGRIND_TIMEOUT=S   per program (default 1200 s)
#
# Idempotent; quiet on success (one summary line); bounded by the timeouts.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/ci/lib.sh
. scripts/ci/lib.sh
ROOT=$PWD
BUILD=$ROOT/build-valgrind
JOBS=${VALGRIND_JOBS:-$(nproc)}
TIMEOUT=${VALGRIND_TIMEOUT:-1200}

fail() { printf 'valgrind: %s\n' "$*" >&2; exit 1; }
command -v valgrind >/dev/null || fail "valgrind is missing (scripts/install-deps.sh --dev)"
start=$(date +%s)

VG=(valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --track-origins=yes
    --suppressions="$ROOT/tests/valgrind.supp")

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

log=$work/build.log
if ! cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O0 -g" \
        -DMD_SANITIZE= -DMD_WERROR=ON >"$log" 2>&1 ||
   ! cmake --build "$BUILD" -j"$(nproc)" >>"$log" 2>&1; then
    grep -E -B2 -A6 "error|Error" "$log" | head -60 >&2
    fail "build failed (see cmake --build build-valgrind)"
fi

# ---- unit tests ---------------------------------------------------------------------

have_redis=false
command -v redis-server >/dev/null && have_redis=true
have_neo4j=false
[ -n "${NEO4J_URI:-}" ] && [ -n "${NEO4J_USERNAME:-}" ] && [ -n "${NEO4J_PASSWORD:-}" ] &&
    have_neo4j=true

tests=()
for src in tests/unit/test_*.c; do
    t=$(basename "$src" .c)
    case $t in
        *_redis | test_redis_pool) $have_redis || continue ;;
        *_neo4j) $have_neo4j || continue ;;
    esac
    tests+=("$t")
done

export VG_WORK=$work VG_TIMEOUT=$TIMEOUT VG_UNIT_DIR=$BUILD/tests/unit
# one test: valgrind log and exit status into $VG_WORK/<test>.{log,rc}
run_one() { # run_one <test> <command…>
    local t=$1 rc=0
    shift
    (cd "$VG_UNIT_DIR" && timeout "$VG_TIMEOUT" "$@") >"$VG_WORK/$t.log" 2>&1 || rc=$?
    echo "$rc" >"$VG_WORK/$t.rc"
}
export -f run_one
printf '%s\n' "${tests[@]}" |
    xargs -P "$JOBS" -I{} bash -c 'run_one {} '"$(printf '%q ' "${VG[@]}")"' ./{}'

report() { # report <what> <log>: the errors and leaks valgrind found, else the log's end
    printf '\nvalgrind: %s FAILED\n' "$1" >&2
    local pat='==[0-9]+== (Invalid |Conditional jump|Use of uninitialised|Syscall param|Mismatched|Source and destination|Argument .* of function|[0-9,]+ (\([0-9,]+ direct, [0-9,]+ indirect\) )?bytes in [0-9,]+ blocks are (definitely|indirectly) lost)'
    if grep -qE "$pat" "$2"; then
        { grep -E -A25 "$pat" "$2" | head -150; } >&2 || true
        grep -E "ERROR SUMMARY" "$2" | tail -1 >&2 || true
    else
        tail -40 "$2" >&2 || true
    fi
}

failed=()
for t in "${tests[@]}"; do
    rc=$(cat "$work/$t.rc" 2>/dev/null || echo 99)
    if [ "$rc" -ne 0 ] || ! grep -q "ERROR SUMMARY: 0 errors" "$work/$t.log"; then
        report "$t (exit $rc)" "$work/$t.log"
        failed+=("$t")
    fi
done

# ---- the daemon -----------------------------------------------------------------------

# run_daemon <name> [SETTING=value…]: start under valgrind, drive, SIGTERM, check.
run_daemon() {
    local name=$1; shift
    local dlog=$work/daemon-$name.log data=$work/$name-data port pid rc=0 up=false
    mkdir -p "$data"
    port=$(free_port)
    # only these settings (secrets stay out of argv): nothing leaks in from the caller
    env -i PATH="$PATH" "$@" timeout "$TIMEOUT" "${VG[@]}" "$BUILD/memoryd" \
        --api-host 127.0.0.1 --api-port "$port" --api-workers 4 --data-dir "$data" \
        --env-file /dev/null >"$dlog" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 600); do # valgrind starts slowly: up to 2 minutes
        grep -q "listening on" "$dlog" && { up=true; break; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if ! $up; then
        report "daemon ($name) did not start" "$dlog"
        failed+=("daemon-$name")
        return
    fi
    if ! timeout "$TIMEOUT" python3 scripts/ci/exercise_api.py "http://127.0.0.1:$port" \
            --threads 2 >"$work/$name.client.log" 2>&1; then
        cat "$work/$name.client.log" >&2
        failed+=("daemon-$name (client)")
    fi
    # timeout(1) passes SIGTERM on to valgrind, which passes it to memoryd
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do # 2 minutes to drain, stop and check for leaks
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        echo "memoryd did not stop within 2 minutes of SIGTERM" >>"$dlog"
    fi
    wait "$pid" || rc=$?
    if [ "$rc" -ne 0 ] || ! grep -q "ERROR SUMMARY: 0 errors" "$dlog"; then
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
printf 'valgrind: ok — %d unit tests and the daemon, no errors or leaks (%ss)\n' \
    "${#tests[@]}" "$elapsed" >&2
