#!/usr/bin/env bash
# Install what memoryd needs from Debian 12 packages. Idempotent: packages that
# are already installed are skipped, and apt-get update runs only when
# something is missing.
#
#   scripts/install-deps.sh            build + run memoryd (the first README command)
#   scripts/install-deps.sh --dev      also everything the tests and benchmarks use
set -euo pipefail

mode=${1:-runtime}

runtime_pkgs=(
    build-essential cmake pkg-config ca-certificates curl
    libmicrohttpd-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev libsqlite3-dev
)
dev_pkgs=(
    libcmocka-dev redis-server valgrind clang libclang-rt-14-dev
    python3 python3-venv python3-pytest openssl procps psmisc iproute2
    default-jdk-headless maven wrk chromium
)

pkgs=("${runtime_pkgs[@]}")
if [ "$mode" = "--dev" ]; then
    pkgs+=("${dev_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

# The machine may already have a JDK / Maven / pytest outside Debian's
# packages (the CI image does); use those instead of installing a second copy.
filtered=()
for p in "${missing[@]}"; do
    case "$p" in
        default-jdk-headless) command -v java >/dev/null && java -version 2>&1 | grep -q '"1[7-9]\|"2[0-9]' && continue ;;
        maven) command -v mvn >/dev/null && continue ;;
        python3) command -v python3 >/dev/null && continue ;;
        python3-pytest) python3 -c 'import pytest' 2>/dev/null && continue ;;
        python3-venv) python3 -c 'import venv, ensurepip' 2>/dev/null && continue ;;
    esac
    filtered+=("$p")
done

if [ ${#filtered[@]} -eq 0 ]; then
    echo "install-deps: everything needed is installed" >&2
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
        exec sudo "$0" "$@"
    fi
    echo "install-deps: missing packages (${filtered[*]}); run as root" >&2
    exit 1
fi

echo "install-deps: installing ${filtered[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
# Debian starts redis-server as a service on install; the tests start their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    systemctl stop redis-server || true
fi
echo "install-deps: done" >&2
