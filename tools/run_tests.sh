#!/usr/bin/env bash
# The test command: set up (or reuse) the project environment, then run the test suite.
#   bash tools/run_tests.sh [pytest args...]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/tools/setup_env.sh"
PY="${MMLIGHT_VENV:-$REPO/.venv}/bin/python"
cd "$REPO"
exec "$PY" -m pytest tests -q -p no:cacheprovider "$@"
