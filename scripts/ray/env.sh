#!/usr/bin/env bash
# Creates (once) and prints the path of the Python environment of the Ray driver
# (scripts/ray/driver.py): Ray from PyPI, nothing else.
#
#   scripts/ray/env.sh          # prints the venv directory; its bin/python runs the driver
#
# The venv lives in ${SYNTHDEID_PYENV:-~/.cache/synthdeid/pyenv}/ray and is reused while its stamp
# matches the pinned requirement below. Needs python3 with the venv module.
set -euo pipefail

REQ="ray==2.60.0"
ROOT="${SYNTHDEID_PYENV:-$HOME/.cache/synthdeid/pyenv}"
VENV="$ROOT/ray"
STAMP="$VENV/.synthdeid-stamp"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQ" && -x "$VENV/bin/python" ]]; then
  echo "$VENV"
  exit 0
fi

PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "scripts/ray/env.sh: $PY not found: install Python 3 (with its venv module) to run the Ray driver" >&2
  exit 2
fi
if ! "$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then
  echo "scripts/ray/env.sh: $PY has no venv/ensurepip module: install it (e.g. apt-get install python3-venv)" >&2
  exit 2
fi

mkdir -p "$ROOT"
# One builder at a time (tests run in parallel); a waiter then finds the finished venv.
exec 9>"$VENV.lock"
flock 9
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQ" && -x "$VENV/bin/python" ]]; then
  echo "$VENV"
  exit 0
fi
# Built under a temporary name, then renamed: a killed install leaves no half-made venv behind.
TMP="$VENV.tmp.$$"
rm -rf "$TMP"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m venv "$TMP" >&2
"$TMP/bin/python" -m pip install --quiet --disable-pip-version-check "$REQ" >&2
echo "$REQ" > "$TMP/.synthdeid-stamp"
rm -rf "$VENV"
mv "$TMP" "$VENV"
trap - EXIT
echo "$VENV"
