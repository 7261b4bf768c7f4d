#!/usr/bin/env bash
# Install the platform and start it on the embedded default (SQLite + local files under ./var) with demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/esante serve --demo "$@"
