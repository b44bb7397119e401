#!/usr/bin/env bash
# Set up somcal in ./.venv and run the whole test suite (lint included).
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
.venv/bin/python -m pip install --quiet -e ".[dev]"

# The API tests run against real PostgreSQL as well as SQLite. Start the local cluster if it
# is installed but down; where there is none the PostgreSQL tests skip and say why.
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi

.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
