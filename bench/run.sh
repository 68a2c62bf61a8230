#!/usr/bin/env bash
# bench/run.sh — memoryd's benchmark, with its ceilings measured in the same run.
#
#   bench/run.sh            the full run (~15–25 min on 2 cores): both backends,
#                           concurrency 1/16/64, 10 000 STM entries + 2 000 rules;
#                           writes bench/results/latest.{json,md}
#   bench/run.sh --smoke    the same steps end to end in well under a minute of
#                           measuring (tiny data set, 1 s per measurement), for CI:
#                           exits non-zero only when something errors, never on speed;
#                           writes bench/results/smoke.{json,md}
#   BENCH_LONG=1 bench/run.sh   adds a 10-minute mixed run (RSS growth check)
#
# It installs nothing beyond scripts/install-deps.sh --dev (called only when a
# tool is missing), builds memoryd Release in build-bench/ and the bench tools in
# build-bench/bench/, starts its own redis-server on a free port and Neo4j with
# tests/neo4j/server.sh (own state dir .test-state/neo4j-bench), and stops all of
# them at the end. More knobs: see the top of bench/driver.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SMOKE=0
KEEP=()
for a in "$@"; do
    case $a in
    --smoke) SMOKE=1 ;;
    --keep) KEEP=(--keep) ;;
    -h | --help)
        sed -n '2,18p' "$0"
        exit 0
        ;;
    *)
        echo "usage: bench/run.sh [--smoke] [--keep]" >&2
        exit 2
        ;;
    esac
done

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

missing=0
for tool in cmake cc pkg-config redis-server redis-cli redis-benchmark java curl python3; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
done
for pc in libmicrohttpd hiredis jansson libcurl sqlite3; do
    pkg-config --exists "$pc" 2>/dev/null || missing=1
done
if ((missing)); then
    log "installing missing dependencies (scripts/install-deps.sh --dev)"
    scripts/install-deps.sh --dev
fi

BUILD=$ROOT/build-bench
JOBS=$(nproc)
log "building memoryd (Release) in build-bench/"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMD_BUILD_TESTS=OFF -DMD_WERROR=OFF >/dev/null
if ! out=$(cmake --build "$BUILD" -j"$JOBS" --target memoryd 2>&1); then
    printf '%s\n' "$out" | grep -E -B2 -A6 "error" | head -60 >&2
    exit 1
fi

log "building the bench tools in build-bench/bench/"
mkdir -p "$BUILD/bench"
CFLAGS=(-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Werror)
# shellcheck disable=SC2046
cc "${CFLAGS[@]}" -o "$BUILD/bench/loadgen" bench/loadgen.c -lm
# shellcheck disable=SC2046
cc "${CFLAGS[@]}" -o "$BUILD/bench/baseline_mhd" bench/baseline_mhd.c \
    $(pkg-config --cflags --libs libmicrohttpd hiredis jansson) -lpthread
# the header holds every statement; only two are used here
cc -O1 -std=c11 -Wall -Wno-unused-const-variable -Wno-unused-variable -Isrc/ltm \
    -o "$BUILD/bench/cypher_dump" bench/cypher_dump.c

args=(--bin-dir "$BUILD/bench" --memoryd "$BUILD/memoryd" --out "$ROOT/bench/results" "${KEEP[@]}")
if ((SMOKE)); then
    args+=(--smoke)
    log "smoke run (CI): every step end to end on a tiny data set; speed is not judged"
else
    log "tests/neo4j/server.sh fetch (cached after the first run)"
fi
tests/neo4j/server.sh fetch >/dev/null 2>&1 || true
exec python3 bench/driver.py "${args[@]}"
