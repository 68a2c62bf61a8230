#!/usr/bin/env bash
# CI stage: libFuzzer smoke run.
#
# Builds the fuzz targets of tests/fuzz/ with clang (-DMD_SANITIZE=fuzzer:
# ASan + UBSan + libFuzzer) in build-fuzz/, replays every saved regression
# input (tests/fuzz/regressions/<target>/) through its target, then fuzzes
# each target for FUZZ_SECONDS seconds starting from its seed corpus
# (tests/fuzz/corpus/<target>/). Any crash, sanitizer report, leak, timeout,
# out-of-memory or broken invariant fails the stage; the offending input is
# kept under build-fuzz/fuzz-out/<target>/artifacts/.
#
#   FUZZ_SECONDS=30     fuzzing time per target (9 targets: about 5 minutes)
#   FUZZ_TARGETS="api json …"   a subset (names without the fuzz_ prefix)
#
# Idempotent: the working corpus under build-fuzz/fuzz-out/ grows from run
# to run; delete it for a fresh start. Quiet on success (one summary line).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=$ROOT/build-fuzz
OUT=$BUILD/fuzz-out
SECS=${FUZZ_SECONDS:-30}
TARGETS=${FUZZ_TARGETS:-"api json json_load ids router query neo4j config cursor"}
JOBS=$(nproc)

fail() { printf 'fuzz: %s\n' "$*" >&2; exit 1; }

command -v clang >/dev/null || fail "clang is missing (scripts/install-deps.sh --dev)"
start=$(date +%s)

log=$(mktemp)
tmpdir=$(mktemp -d -p /dev/shm md-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$log" "$tmpdir"' EXIT
if ! CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DMD_SANITIZE=fuzzer \
        -DMD_BUILD_TESTS=OFF >"$log" 2>&1 ||
   ! cmake --build "$BUILD" -j"$JOBS" --target fuzz_all >>"$log" 2>&1; then
    grep -E -B2 -A6 "error|Error" "$log" | head -60 >&2
    fail "build failed (full log: cmake --build build-fuzz --target fuzz_all)"
fi

# Sensible input sizes: requests and Neo4j answers can be large, ids and
# cursors are short.
max_len() {
    case $1 in
        api | json | neo4j) echo 16384 ;;
        config | query) echo 4096 ;;
        router) echo 2048 ;;
        *) echo 1024 ;;
    esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export MD_FUZZ_TMPDIR=$tmpdir # fuzz_config's ini/.env files (tmpfs)

report() { # report <target> <log file> <what>
    printf '\nfuzz: fuzz_%s FAILED (%s)\n' "$1" "$3" >&2
    # the finding itself: invariant message, sanitizer report or libFuzzer's verdict
    if grep -a -q -E "FUZZ INVARIANT|ERROR: |runtime error:" "$2"; then
        { grep -a -E -A25 "FUZZ INVARIANT|ERROR: |runtime error:" "$2" | head -60; } >&2 || true
        grep -a -E "Test unit written|^Running: " "$2" | tail -2 >&2 || true
    else
        tail -40 "$2" >&2 || true
    fi
}

failed=()
n_reg=0
for t in $TARGETS; do
    bin=$BUILD/tests/fuzz/fuzz_$t
    [ -x "$bin" ] || fail "no such target: fuzz_$t"
    dir=$OUT/$t
    mkdir -p "$dir/corpus" "$dir/artifacts"
    tlog=$dir/log

    # 1. every saved regression input, once (files as arguments: no fuzzing)
    regs=()
    if [ -d "$ROOT/tests/fuzz/regressions/fuzz_$t" ]; then
        while IFS= read -r -d '' f; do regs+=("$f"); done \
            < <(find "$ROOT/tests/fuzz/regressions/fuzz_$t" -type f -print0 | sort -z)
    fi
    if [ ${#regs[@]} -gt 0 ]; then
        n_reg=$((n_reg + ${#regs[@]}))
        if ! "$bin" -timeout=10 -rss_limit_mb=2048 "${regs[@]}" >"$tlog" 2>&1; then
            report "$t" "$tlog" "a regression input fails again"
            failed+=("$t")
            continue
        fi
    fi

    # 2. fuzz from the seeds (the working corpus dir first: new inputs go there)
    if ! "$bin" -max_total_time="$SECS" -max_len="$(max_len "$t")" -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
            "$dir/corpus" "$ROOT/tests/fuzz/corpus/fuzz_$t" >"$tlog" 2>&1; then
        report "$t" "$tlog" "finding saved in $dir/artifacts/"
        printf 'reproduce: %s %s/artifacts/<file>\n' "$bin" "$dir" >&2
        failed+=("$t")
    fi
done

elapsed=$(($(date +%s) - start))
if [ ${#failed[@]} -gt 0 ]; then
    fail "${#failed[@]} target(s) with findings: ${failed[*]} (${elapsed}s)"
fi
printf 'fuzz: ok — %d targets, %d regression inputs, %ss each (%ss total)\n' \
    "$(wc -w <<<"$TARGETS")" "$n_reg" "$SECS" "$elapsed" >&2
