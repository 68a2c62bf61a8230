#!/usr/bin/env bash
# bench/profile.sh — exact instruction counts per request (valgrind callgrind),
# memoryd next to the baseline servers, per operation.
#
#   bench/profile.sh [OUTDIR]      (default: build-prof/profile)
#
# Builds memoryd RelWithDebInfo in build-prof/ (same flags as Release plus -g),
# starts a private redis-server, runs memoryd (STM on Redis, LTM embedded, or on
# Neo4j with PROFILE_NEO4J=1) under callgrind with collection off, loads a small
# data set, and for each operation: zero the counters, send N requests at
# concurrency 1, dump. The same for baseline_mhd bare/get/set. Then prints
# instructions per request and each dump's top functions (inclusive and
# exclusive) from callgrind_annotate. perf counters are not available in these
# guests; callgrind's counts are exact and repeatable (noise-free).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-$ROOT/build-prof/profile}
N=${PROFILE_N:-2000}
mkdir -p "$OUT"
rm -f "$OUT"/callgrind.out.* "$OUT"/*.txt

log() { printf '[profile %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

cmake -S . -B build-prof -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMD_BUILD_TESTS=OFF -DMD_WERROR=OFF >/dev/null
cmake --build build-prof -j"$(nproc)" --target memoryd >/dev/null
B=build-prof/bench
mkdir -p $B
cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -o $B/loadgen bench/loadgen.c -lm
# shellcheck disable=SC2046
cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -o $B/baseline_mhd bench/baseline_mhd.c \
    $(pkg-config --cflags --libs libmicrohttpd hiredis jansson) -lpthread
python3 bench/gen_data.py "$OUT/data" --stm 2000 --rules 200 >/dev/null
D=$OUT/data
seq 0 1999 >"$D/bkeys.txt"
LISTS=(--list stm_id="$D/stm_ids.txt" --list rule_id="$D/rule_ids.txt" --list src_id="$D/src_ids.txt"
    --list q="$D/queries.txt" --list fb="$D/feedback.jsonl" --list stm_tail="$D/stm_tails.txt"
    --list rule_tail="$D/rule_tails.txt" --list stm_body="$D/stm_bodies.jsonl"
    --list rule_body="$D/rule_bodies.jsonl" --list bkey="$D/bkeys.txt")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
RDIR=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$RDIR"
}
trap cleanup EXIT
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$RDIR" --save "" --appendonly no \
    --loglevel warning &
PIDS+=($!)
sleep 0.5
python3 - <<'EOF' | redis-cli -p "$RPORT" --pipe >/dev/null
import json, sys
v = json.dumps({"scenario_id": "x" * 40, "text": "y" * 1400})[:1500]
for i in range(2000):
    k = f"bench:v:{i}"
    sys.stdout.write(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n${len(v)}\r\n{v}\r\n")
EOF

VG=(valgrind --tool=callgrind --instr-atstart=no --dump-instr=no --separate-threads=no)

wait_port() { # url
    for _ in $(seq 1 600); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    return 1
}

run() { # name url spec count
    local name=$1 url=$2 spec=$3 count=$4 pid=$5
    callgrind_control -i on "$pid" >/dev/null
    # a few requests with instrumentation on before zeroing (the switch is lazy)
    $B/loadgen --url "$url" --spec "bench/specs/$spec.spec" "${LISTS[@]}" --conns 1 \
        --count 50 --tag "w$RANDOM" --out /dev/null 2>/dev/null || true
    callgrind_control -z "$pid" >/dev/null
    $B/loadgen --url "$url" --spec "bench/specs/$spec.spec" "${LISTS[@]}" --conns 1 \
        --count "$count" --tag "p$RANDOM" --out "$OUT/$name.loadgen.json" 2>/dev/null || true
    callgrind_control -d "$name" "$pid" >/dev/null
    callgrind_control -i off "$pid" >/dev/null
    sleep 0.3
    local f
    f=$(ls -t "$OUT"/callgrind.out."$pid".* | head -1)
    mv "$f" "$OUT/$name.callgrind"
    local ir
    ir=$(callgrind_annotate "$OUT/$name.callgrind" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
    [[ $ir =~ ^[0-9]+$ ]] || ir=0
    callgrind_annotate --inclusive=yes "$OUT/$name.callgrind" 2>/dev/null | head -70 >"$OUT/$name.inclusive.txt" || true
    callgrind_annotate "$OUT/$name.callgrind" 2>/dev/null | head -60 >"$OUT/$name.self.txt" || true
    # memset of MHD's per-connection pool: callgrind counts `rep stosb` per byte, which
    # overstates its real cost, so it is also shown separately
    local ms
    # (read from the inclusive list: memset is a leaf, and with thread-per-connection the
    # exclusive list can credit everything to clone)
    ms=$(awk '/memset/ {gsub(",","",$1); if ($1+0 > m) m=$1+0} END {print m+0}' \
        "$OUT/$name.inclusive.txt")
    printf '%-28s %6d req %9d instr/req  (memset %7d, rest %8d)\n' "$name" "$count" \
        "$((ir / count))" "$((ms / count))" "$(((ir - ms) / count))" | tee -a "$OUT/summary.txt"
}

# ---- baselines
for mode in bare get set; do
    "${VG[@]}" --callgrind-out-file="$OUT/callgrind.out.%p" $B/baseline_mhd --mode $mode \
        --threads 2 --redis 127.0.0.1:"$RPORT" >"$OUT/base_$mode.port" 2>"$OUT/base_$mode.vg" &
    bp=$!
    PIDS+=($bp)
    for _ in $(seq 1 300); do [[ -s $OUT/base_$mode.port ]] && break; sleep 0.1; done
    url=http://127.0.0.1:$(cat "$OUT/base_$mode.port")
    spec=base_bare
    [[ $mode == get ]] && spec=base_get
    [[ $mode == set ]] && spec=base_set
    $B/loadgen --url "$url" --spec bench/specs/$spec.spec "${LISTS[@]}" --conns 1 --count 200 \
        --out /dev/null 2>/dev/null || true
    run "baseline_$mode" "$url" $spec "$N" $bp
    kill $bp
    wait $bp 2>/dev/null || true
done

# ---- memoryd
start_md() { # name extra-env...
    local name=$1
    shift
    MPORT=$(free_port)
    env API_PORT="$MPORT" API_HOST=127.0.0.1 STM_BACKEND=redis REDIS_HOST=127.0.0.1 \
        REDIS_PORT="$RPORT" REDIS_DB=2 DATA_DIR="$OUT/md-data" "$@" \
        "${VG[@]}" --callgrind-out-file="$OUT/callgrind.out.%p" build-prof/memoryd \
        >"$OUT/memoryd-$name.log" 2>&1 &
    MPID=$!
    PIDS+=($MPID)
    wait_port "http://127.0.0.1:$MPORT/health"
    MURL=http://127.0.0.1:$MPORT
}
stop_md() {
    kill "$MPID"
    wait "$MPID" 2>/dev/null || true
}

rm -rf "$OUT/md-data"
redis-cli -p "$RPORT" -n 2 flushdb >/dev/null
LTM_ENV=(LTM_BACKEND=embedded)
if [[ ${PROFILE_NEO4J:-0} == 1 ]]; then
    n4=$(NEO4J_STATE_DIR=$ROOT/.test-state/neo4j-bench tests/neo4j/server.sh start)
    LTM_ENV=(LTM_BACKEND=neo4j NEO4J_URI="$(tail -n1 <<<"$n4")"
        NEO4J_USERNAME="$(sed -n 's/^NEO4J_USERNAME=//p' <<<"$n4")"
        NEO4J_PASSWORD="$(sed -n 's/^NEO4J_PASSWORD=//p' <<<"$n4")")
fi
log "memoryd (defaults) under callgrind"
start_md default "${LTM_ENV[@]}"
$B/loadgen --url "$MURL" --spec bench/specs/load_stm.spec "${LISTS[@]}" --conns 4 --count 2000 --out /dev/null
$B/loadgen --url "$MURL" --spec bench/specs/load_rules.spec "${LISTS[@]}" --conns 2 --count 200 --out /dev/null
$B/loadgen --url "$MURL" --spec bench/specs/warm_stm.spec "${LISTS[@]}" --conns 4 --count 2000 --out /dev/null
$B/loadgen --url "$MURL" --spec bench/specs/warm_rules.spec "${LISTS[@]}" --conns 4 --count 200 --out /dev/null
$B/loadgen --url "$MURL" --spec bench/specs/warm_queries.spec "${LISTS[@]}" --conns 1 --count 50 --out /dev/null
run md_stm_get_cached "$MURL" stm_get "$N" "$MPID"
run md_ltm_search_cached "$MURL" ltm_search "$N" "$MPID"
run md_rule_get_cached "$MURL" rule_get "$N" "$MPID"
run md_stm_feedback "$MURL" stm_feedback "$N" "$MPID"
run md_stm_create "$MURL" stm_create "$N" "$MPID"
stop_md
log "memoryd (CACHE_MAX_ENTRIES=0) under callgrind"
start_md nocache "${LTM_ENV[@]}" CACHE_MAX_ENTRIES=0
run md_stm_get_uncached "$MURL" stm_get "$N" "$MPID"
run md_ltm_search_uncached "$MURL" ltm_search "$((N / 4))" "$MPID"
run md_rule_get_uncached "$MURL" rule_get "$((N / 4))" "$MPID"
stop_md
if [[ ${PROFILE_NEO4J:-0} == 1 ]]; then
    NEO4J_STATE_DIR=$ROOT/.test-state/neo4j-bench tests/neo4j/server.sh stop >/dev/null 2>&1 || true
fi
log "summary in $OUT/summary.txt; top functions in $OUT/*.inclusive.txt and *.self.txt"
cat "$OUT/summary.txt"
