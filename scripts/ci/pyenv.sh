#!/usr/bin/env bash
# scripts/ci/pyenv.sh — the Python environment of the integration tests.
#
# Creates (or updates) the virtualenv .venv-test at the repository root with
# `python3 -m venv` and installs tests/requirements.txt into it (pinned
# versions, from PyPI). Idempotent and quiet: when the virtualenv already has
# exactly these requirements (a stamp holds their hash), nothing is run.
# Prints the virtualenv's python on stdout (the only output on success);
# pip's output goes to stderr only when something fails.
#
#   PY=$(scripts/ci/pyenv.sh) && "$PY" -m pytest tests/integration
#
# Environment: PYTHON (default python3) is the interpreter the virtualenv is
# made from; MEMORYD_VENV (default <repo>/.venv-test) its directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${MEMORYD_VENV:-$ROOT/.venv-test}
REQ=$ROOT/tests/requirements.txt
PYTHON=${PYTHON:-python3}
PY=$VENV/bin/python
STAMP=$VENV/.requirements.sha256

die() { printf 'pyenv.sh: %s\n' "$*" >&2; exit 1; }

[[ -f $REQ ]] || die "missing $REQ"
[[ $VENV != / && $VENV != "$ROOT" && $VENV != "$HOME" ]] || die "refusing to use $VENV as the virtualenv"
want=$( { sha256sum "$REQ" | cut -d' ' -f1; "$PYTHON" -c 'import sys; print(sys.version)'; } \
        | sha256sum | cut -d' ' -f1)

if [[ -x $PY && -f $STAMP && $(cat "$STAMP") == "$want" ]] && "$PY" -c 'import sys' 2>/dev/null; then
    printf '%s\n' "$PY"
    exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() { # run quietly; show the output only on failure
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        die "failed: $*"
    fi
}

# A virtualenv made by another interpreter (or a broken one) is made anew.
base_version=$("$PYTHON" -c 'import sys; print(sys.version)')
if [[ -d $VENV ]] && [[ $("$PY" -c 'import sys; print(sys.version)' 2>/dev/null) != "$base_version" ]]; then
    rm -rf "$VENV"
fi
if [[ ! -x $PY ]]; then
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
        die "$PYTHON cannot create virtualenvs (Debian: apt-get install python3-venv)"
    run "$PYTHON" -m venv --clear "$VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
run "$PY" -m pip install --quiet --requirement "$REQ"
"$PY" -c 'import pytest, prometheus_client' 2>/dev/null || die "the virtualenv lacks pytest or prometheus_client"
printf '%s\n' "$want" >"$STAMP"
printf '%s\n' "$PY"
