#!/usr/bin/env bash
# The Python package's checks, as CI runs them: ruff check, ruff format
# --check, mypy --strict and pytest (against the real porter binary).
#
#   clients/python/ci.sh
#
# Environment:
#   PYTHON        the interpreter to use (default python3; must be >= 3.9)
#   PORTER_PY_VENV  the virtual environment to create or reuse
#                 (default clients/python/.venv)
#   PORTER_BIN    the porter binary under test (default target/debug/porter;
#                 the tests fail, never skip, when it is missing)
#
# Every step runs even when one before it failed, so one run shows every
# problem; the exit status is non-zero if any failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here" || exit 1
python="${PYTHON:-python3}"
venv="${PORTER_PY_VENV:-$here/.venv}"

step() { printf '\n== %s\n' "$*"; }

if ! command -v "$python" >/dev/null || ! "$python" -c '' 2>/dev/null; then
    echo "ci.sh: cannot run $python (set PYTHON to a Python 3.9 or newer)" >&2
    exit 1
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || {
    echo "ci.sh: $python is older than 3.9" >&2
    exit 1
}

step "virtual environment in $venv"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" || exit 1
fi
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip || exit 1
"$py" -m pip install --quiet -r requirements-dev.txt || exit 1
# Installed as a user would (not editable), so the tests see what a wheel
# ships: py.typed included.
"$py" -m pip install --quiet --force-reinstall --no-deps . || exit 1

failed=()
run() {
    local name="$1"
    shift
    step "$name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

run "py.typed is shipped" "$py" -c '
import importlib.resources, sys
sys.exit(not importlib.resources.files("porter_client").joinpath("py.typed").is_file())'
run "ruff check" "$py" -m ruff check .
run "ruff format --check" "$py" -m ruff format --check .
if "$py" -c 'import mypy' 2>/dev/null; then
    run "mypy --strict" "$py" -m mypy --strict
else
    step "mypy --strict: skipped, mypy does not run on $("$py" --version); run ci.sh with a newer PYTHON too"
fi
run "pytest" "$py" -m pytest -p no:cacheprovider

echo
if [ "${#failed[@]}" -ne 0 ]; then
    echo "ci.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "ci.sh: all Python checks passed"
