#!/usr/bin/env bash
# One command from a fresh clone to a running calibration service on the embedded default:
# creates ./.venv, installs somcal, then `somcal quickstart` generates the COSMOS-like mock,
# ingests its photometry, trains a 75x150 map, ingests its spectroscopic sample, computes
# coverage and targets, writes the plots to ./var/plots and serves the API and dashboard on
# SQLite (./var/somcal.db) at http://127.0.0.1:8000.
#
# Usage: bash scripts/quickstart.sh [--no-serve] [other `somcal quickstart` options]
#        e.g. --n-galaxies 500000, --port 8080, --database-url postgresql+psycopg://...
# Needs Python 3.11 or newer (PYTHON=/path/to/python to choose one).
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found; install Python 3.11+ or set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: somcal needs Python 3.11+, $PYTHON is $("$PYTHON" -V 2>&1);" \
        "set PYTHON=/path/to/python3.11" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$PYTHON" -V 2>&1)"
    "$PYTHON" -m venv .venv
fi
# Installed only when missing or when pyproject.toml changed since the last install.
stamp=.venv/.somcal-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! .venv/bin/python -c 'import app.cli' 2>/dev/null; then
    echo "installing somcal and its dependencies into .venv (a few minutes the first time)"
    .venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
    .venv/bin/python -m pip install --quiet -e .
    touch "$stamp"
fi
echo "setup done in $(($(date +%s) - started)) s"

exec .venv/bin/somcal quickstart "$@"
