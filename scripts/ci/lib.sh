# scripts/ci/lib.sh — shared by the CI stages that drive a daemon against the
# real stores (tsan.sh, valgrind.sh). Source it; it defines functions only.

# A free loopback TCP port.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# server_settings <work dir>: when redis-server exists, start a private one in
# <work dir>/redis (its pid appended to the caller's `pids` array, which the
# caller's cleanup kills) and add its settings to the caller's `extra` array;
# add the Neo4j settings when NEO4J_URI, NEO4J_USERNAME and NEO4J_PASSWORD are
# set. Leaves `extra` empty when neither store is available.
server_settings() {
    local dir=$1/redis rport
    extra=()
    if command -v redis-server >/dev/null; then
        rport=$(free_port)
        mkdir -p "$dir"
        redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$dir" >"$dir.log" 2>&1 &
        pids+=("$!")
        for _ in $(seq 1 50); do
            redis-cli -p "$rport" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
        extra+=(STM_BACKEND=redis REDIS_HOST=127.0.0.1 REDIS_PORT="$rport")
    fi
    if [ -n "${NEO4J_URI:-}" ] && [ -n "${NEO4J_USERNAME:-}" ] && [ -n "${NEO4J_PASSWORD:-}" ]; then
        extra+=(LTM_BACKEND=neo4j NEO4J_URI="$NEO4J_URI" NEO4J_USERNAME="$NEO4J_USERNAME"
            NEO4J_PASSWORD="$NEO4J_PASSWORD")
    fi
}
