#!/usr/bin/env bash
# The one test command: install what is missing, build, start the real
# services the tests need (Redis is started per test by the harness; Neo4j 5
# by tests/neo4j/server.sh), and run every test. Stages, in order:
#
#   unit          cmocka unit tests (debug build, -Werror) and the store tests
#                 against a real redis-server and the real Neo4j
#   integration   the API suites (tests/integration) on every backend
#   asan          unit + integration again under ASan+UBSan
#   deploy        the Dockerfile's steps, redis.conf, compose file, systemd unit
#   fuzz          libFuzzer targets, bounded time each (ASan+UBSan)
#   tsan          the concurrency tests under ThreadSanitizer
#   valgrind      unit tests and a short daemon run under memcheck
#   schemathesis  property-based API tests from the OpenAPI document
#   bench         the benchmark in smoke mode (seconds; CI does not judge speed)
#
# Idempotent; safe to re-run. MEMORYD_TEST_STAGES="unit integration" runs a
# subset while developing (CI runs all). MEMORYD_SOAK_SECONDS sets the soak
# test's length on the debug build (default 60 s; CI's run sets 600); the
# ASan run always soaks for 60 s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ALL_STAGES="unit integration asan deploy fuzz tsan valgrind schemathesis bench"
STAGES=${MEMORYD_TEST_STAGES:-$ALL_STAGES}
JOBS=$(nproc)
export PYTHONDONTWRITEBYTECODE=1
started=$(date +%s)

log() { printf '\n=== %s [%s, +%ss]\n' "$*" "$(date -u +%H:%M:%S)" "$(( $(date +%s) - started ))" >&2; }
want() { [[ " $STAGES " == *" $1 "* ]]; }

log "installing dependencies"
scripts/install-deps.sh --dev
log "fetching Neo4j (Maven Central; cached after the first run)"
tests/neo4j/server.sh fetch >/dev/null
log "preparing the Python test environment"
PY=$(scripts/ci/pyenv.sh)
export PY

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

# A real Neo4j 5 for everything that talks to one; its credentials and URI
# are exported for the test programs.
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
    MEMORYD_BIN=$bin "$PY" -m pytest -q -p no:cacheprovider tests/integration "$@"
}

if want unit || want integration || want asan || want schemathesis || want tsan || want bench; then
    log "starting Neo4j"
    start_neo4j
fi

if want unit || want integration || want schemathesis; then
    log "building (Debug)"
    build build -DCMAKE_BUILD_TYPE=Debug
fi

if want unit; then
    log "unit tests"
    (cd build && ctest -L unit -j"$JOBS" --output-on-failure)
    log "store tests against a real redis-server and Neo4j"
    (cd build && ctest -L integration --output-on-failure)
fi

if want integration; then
    log "integration tests (real Redis and Neo4j)"
    pytest_run "$ROOT/build/memoryd"
fi

if want asan; then
    log "building with ASan+UBSan"
    build build-asan -DCMAKE_BUILD_TYPE=Debug -DMD_SANITIZE=address,undefined
    (
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        log "unit and store tests under ASan+UBSan"
        (cd build-asan && ctest -L "unit|integration" -j"$JOBS" --output-on-failure)
        log "integration tests under ASan+UBSan"
        # the long soak runs once, on the debug build; under ASan it keeps its default length.
        # test_oom.py runs on the debug build only: its LD_PRELOAD allocator shim cannot
        # sit in front of ASan's allocator.
        MEMORYD_SOAK_SECONDS=60 pytest_run "$ROOT/build-asan/memoryd" \
            --ignore=tests/integration/test_oom.py
    )
fi

if want deploy; then
    log "deployment files (Dockerfile steps, redis.conf, compose, systemd)"
    scripts/ci/deploy-check.sh
fi

if want fuzz; then
    log "fuzzing (libFuzzer, bounded)"
    scripts/ci/fuzz.sh
fi

if want tsan; then
    log "ThreadSanitizer"
    scripts/ci/tsan.sh
fi

if want valgrind; then
    log "valgrind memcheck"
    scripts/ci/valgrind.sh
fi

if want schemathesis; then
    log "schemathesis against a live daemon (Redis + Neo4j)"
    MEMORYD_BIN="$ROOT/build/memoryd" scripts/ci/schemathesis.sh
fi

if want bench; then
    log "benchmark smoke run"
    bench/run.sh --smoke
fi

log "all tests passed"
