#!/usr/bin/env bash
# The test command: set up (or reuse) the project environment, check the code style (flake8 and isort with the
# settings in setup.cfg; the first one that fails stops the run with its findings), then run the test suite.
#   bash tools/run_tests.sh [pytest args...]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/tools/setup_env.sh"
PY="${MMLIGHT_VENV:-$REPO/.venv}/bin/python"
cd "$REPO"
LINT_PATHS=(mmlight tools tests configs benchmarks setup.py)
if ! "$PY" -m flake8 "${LINT_PATHS[@]}"; then
  echo "run_tests: flake8 found the problems above (settings: setup.cfg [flake8]); no test was run" >&2
  exit 1
fi
if ! "$PY" -m isort --check-only --diff "${LINT_PATHS[@]}"; then
  echo "run_tests: isort would reorder the imports above (settings: setup.cfg [isort]; fix with" \
    "'$PY -m isort ${LINT_PATHS[*]}'); no test was run" >&2
  exit 1
fi
exec "$PY" -m pytest tests -q -p no:cacheprovider "$@"
