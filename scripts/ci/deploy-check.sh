#!/usr/bin/env bash
# Keep the deployment files true without a Docker engine: run the very steps
# the Dockerfile runs (same package lists, same build script, same user
# model, same HEALTHCHECK), start Redis with the repository's redis.conf, and
# check docker-compose.yml and the systemd unit for what they promise.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/memoryd-deploy.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "deploy-check: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# 1. The Dockerfile's package lists are installed (build stage and runtime stage).
for list in config/container/build-packages.txt config/container/runtime-packages.txt; do
    grep -q "$list" Dockerfile || fail "Dockerfile does not use $list"
    for p in $(grep -v '^#' "$list"); do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            fail "package '$p' of $list is not installable/installed"
    done
done

# 2. The build stage's command, verbatim.
grep -q 'RUN scripts/container-build.sh /opt/memoryd' Dockerfile || fail "Dockerfile build step changed"
scripts/container-build.sh "$work/opt" >/dev/null

# 3. The runtime stage: a non-root user, the Dockerfile's ENV, its HEALTHCHECK.
grep -q '^USER memoryd' Dockerfile || fail "Dockerfile must run as the memoryd user"
id memoryd >/dev/null 2>&1 || useradd --system --home-dir /var/lib/memoryd --shell /usr/sbin/nologin memoryd
mkdir -p "$work/data" && chown memoryd "$work/data"
port=$(free_port)
chmod o+rx "$work" "$work/opt" "$work/opt/bin"
( cd "$work/data" && exec setpriv --reuid=memoryd --regid="$(id -g memoryd)" --init-groups \
    env -i PATH=/usr/bin:/bin API_HOST=127.0.0.1 API_PORT="$port" DATA_DIR="$work/data" \
    LOG_FORMAT=json "$work/opt/bin/memoryd" ) >"$work/memoryd.log" 2>&1 &
pids+=($!)
ok=""
for _ in $(seq 1 100); do
    if API_PORT=$port scripts/healthcheck.sh 2>/dev/null; then ok=1; break; fi
    sleep 0.1
done
[ -n "$ok" ] || { cat "$work/memoryd.log" >&2; fail "HEALTHCHECK never passed"; }
grep -q '"level":"INFO"' "$work/memoryd.log" || fail "LOG_FORMAT=json did not give JSON logs"
kill -TERM "${pids[0]}"
wait "${pids[0]}" || fail "memoryd did not exit 0 on SIGTERM"
pids=()

# 4. redis.conf is valid for this Redis and never evicts STM data.
rport=$(free_port)
redis-server ./redis.conf --port "$rport" --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(redis-cli -p "$rport" config get maxmemory-policy | tail -1)" = noeviction ] ||
    fail "redis.conf must set maxmemory-policy noeviction"
[ "$(redis-cli -p "$rport" config get appendonly | tail -1)" = yes ] || fail "redis.conf: appendonly"
redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
wait 2>/dev/null || true
pids=()

# 5. docker-compose.yml: services, health gates, secrets only from .env.
python3 - <<'PY'
import re, sys
text = open("docker-compose.yml").read()
def need(cond, msg):
    if not cond:
        sys.exit("deploy-check: docker-compose.yml: " + msg)
for svc in ("redis:", "neo4j:", "memoryd:"):
    need(re.search(r"^  " + svc, text, re.M), "missing service " + svc)
need(text.count("condition: service_healthy") >= 2, "memoryd must wait for healthy stores")
need("./redis.conf:/usr/local/etc/redis/redis.conf" in text, "redis must use redis.conf")
for var in ("REDIS_PASSWORD", "NEO4J_PASSWORD", "API_KEYS"):
    need("${%s:?" % var in text, var + " must come from .env (${VAR:?…})")
need(not re.search(r"password\s*[:=]\s*['\"]?[A-Za-z0-9]", text, re.I) or
     re.search(r"PASSWORD: \$\{", text), "no literal passwords")
need('"127.0.0.1:8000:8000"' in text, "publish memoryd on loopback only")
need("memoryd-healthcheck" in text, "memoryd healthcheck")
PY

# 6. The systemd unit runs the installed binary as a non-root user, stops with SIGTERM.
for k in '^User=memoryd' '^ExecStart=/usr/local/bin/memoryd' '^KillSignal=SIGTERM' \
         '^NoNewPrivileges=yes' '^ProtectSystem=strict'; do
    grep -q "$k" config/memoryd.service || fail "config/memoryd.service: missing $k"
done
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify config/memoryd.service 2>&1 | grep -v 'not executable\|No such file\|memoryd.env' | grep -i error && fail "systemd-analyze reports errors" || true
fi
echo "deploy-check: Dockerfile steps, redis.conf, compose file and systemd unit OK" >&2
