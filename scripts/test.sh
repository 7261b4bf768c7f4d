#!/usr/bin/env bash
# Install everything and run the whole test suite (lint, types, tests on SQLite and PostgreSQL).
# Works on a fresh machine: creates .venv, installs pinned dependencies, starts PostgreSQL if none listens.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"

PG_URL=${ESANTE_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}
export ESANTE_TEST_PG_URL="$PG_URL"
./scripts/ensure-postgres.sh "$PG_URL"

echo "== ruff"; .venv/bin/ruff check src tests bench scripts
.venv/bin/ruff format --check src tests bench scripts
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest -q "$@"
