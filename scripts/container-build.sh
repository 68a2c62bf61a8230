#!/usr/bin/env bash
# The build the Dockerfile runs, step for step; CI runs this same script on
# the host so that the container build cannot rot while no Docker engine is
# around. Usage: scripts/container-build.sh <install-prefix>
set -euo pipefail
prefix=${1:?usage: container-build.sh <install-prefix>}
cmake -S . -B build-container -DCMAKE_BUILD_TYPE=Release -DMD_BUILD_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build build-container -j"$(nproc)" >/dev/null
cmake --install build-container --strip >/dev/null
"$prefix/bin/memoryd" --version
