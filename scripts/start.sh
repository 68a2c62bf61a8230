#!/usr/bin/env bash
# Build memoryd (Release, hardened) and start it in the foreground on the
# embedded store: both tiers in DATA_DIR/memoryd.db (default ./data). Any
# setting may be passed as an environment variable or a flag:
#   scripts/start.sh --api-port 9000
# Stop with Ctrl-C (SIGINT) or SIGTERM: in-flight requests finish first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DMD_BUILD_TESTS=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null
export DATA_DIR=${DATA_DIR:-$PWD/data}
echo "memoryd: serving on http://${API_HOST:-127.0.0.1}:${API_PORT:-8000} (data in $DATA_DIR)" >&2
exec build-release/memoryd "$@"
