#!/usr/bin/env bash
# The one test command: install what is missing, build, start the real
# services the tests need (Redis is started per test by the harness; Neo4j 5
# by tests/neo4j/server.sh), and run every test:
#
#   unit         cmocka unit tests (debug build, -Werror)
#   integration  the API contract suites against real Redis and Neo4j, on
#                every backend
#   asan         the unit and integration tests again under ASan+UBSan
#
# Idempotent; safe to re-run. MEMORYD_TEST_STAGES="unit integration" runs a
# subset while developing (CI always runs all of them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ALL_STAGES="unit integration asan"
STAGES=${MEMORYD_TEST_STAGES:-$ALL_STAGES}
JOBS=$(nproc)
export PYTHONDONTWRITEBYTECODE=1

log() { printf '\n=== %s [%s]\n' "$*" "$(date -u +%H:%M:%S)" >&2; }
want() { [[ " $STAGES " == *" $1 "* ]]; }

log "installing dependencies"
scripts/install-deps.sh --dev
log "fetching Neo4j (Maven Central; cached after the first run)"
tests/neo4j/server.sh fetch >/dev/null

build() { # build <dir> <cmake args...>
    local dir=$1; shift
    local out
    cmake -S . -B "$dir" -DMD_WERROR=ON "$@" >/dev/null
    if ! out=$(cmake --build "$dir" -j"$JOBS" 2>&1); then
        printf '%s\n' "$out" | grep -E -B2 -A6 "error|warning" | head -80 >&2
        return 1
    fi
}

cleanup() {
    tests/neo4j/server.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# A real Neo4j 5 for everything that talks to one (store tests, API suites,
# benchmarks). Its credentials and URI are exported for the test programs.
start_neo4j() {
    local out
    out=$(tests/neo4j/server.sh start)
    NEO4J_USERNAME=$(sed -n 's/^NEO4J_USERNAME=//p' <<<"$out")
    NEO4J_PASSWORD=$(sed -n 's/^NEO4J_PASSWORD=//p' <<<"$out")
    NEO4J_URI=$(tail -n1 <<<"$out")
    export NEO4J_USERNAME NEO4J_PASSWORD NEO4J_URI
    echo "neo4j: $NEO4J_URI" >&2
}

pytest_run() { # pytest_run <memoryd binary> <extra pytest args...>
    local bin=$1; shift
    MEMORYD_BIN=$bin python3 -m pytest -q -p no:cacheprovider tests/integration "$@"
}

if want unit || want integration; then
    log "building (Debug)"
    build build -DCMAKE_BUILD_TYPE=Debug
fi

if want unit || want integration || want asan; then
    log "starting Neo4j"
    start_neo4j
fi

if want unit; then
    log "unit tests"
    (cd build && ctest -L unit -j"$JOBS" --output-on-failure)
    log "store tests against a real redis-server"
    (cd build && ctest -L integration --output-on-failure)
fi

if want integration; then
    log "integration tests (real Redis)"
    pytest_run "$ROOT/build/memoryd"
fi

if want asan; then
    log "building with ASan+UBSan"
    build build-asan -DCMAKE_BUILD_TYPE=Debug -DMD_SANITIZE=address,undefined
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    log "unit tests under ASan+UBSan"
    (cd build-asan && ctest -L "unit|integration" -j"$JOBS" --output-on-failure)
    log "integration tests under ASan+UBSan"
    pytest_run "$ROOT/build-asan/memoryd"
fi

log "all tests passed"
