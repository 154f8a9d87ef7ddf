#!/usr/bin/env bash
# Creates (once) and prints the path of a cached Python environment holding one pinned requirement:
#
#   scripts/lib/pyenv.sh NAME REQUIREMENT WHAT      # e.g. ray "ray==2.60.0" "the Ray driver"
#
# The venv lives in ${SYNTHDEID_PYENV:-~/.cache/synthdeid/pyenv}/NAME and is reused while its stamp
# matches REQUIREMENT. One builder at a time (tests run in parallel); it is built under a temporary
# name and renamed, so a killed install leaves no half-made venv. Needs python3 with the venv
# module; WHAT names what the environment is for in the errors. Settings pip reads (CMAKE_ARGS, …)
# pass through from the caller.
set -euo pipefail

NAME="$1"
REQ="$2"
WHAT="$3"
ROOT="${SYNTHDEID_PYENV:-$HOME/.cache/synthdeid/pyenv}"
VENV="$ROOT/$NAME"
STAMP="$VENV/.synthdeid-stamp"
ready() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQ" && -x "$VENV/bin/python" ]]; }

if ready; then
  echo "$VENV"
  exit 0
fi

PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "scripts/lib/pyenv.sh: $PY not found: install Python 3 (with its venv module) to run $WHAT" >&2
  exit 2
fi
if ! "$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then
  echo "scripts/lib/pyenv.sh: $PY has no venv/ensurepip module: install it (e.g. apt-get install python3-venv)" >&2
  exit 2
fi

mkdir -p "$ROOT"
exec 9>"$VENV.lock"
flock 9
if ready; then
  echo "$VENV"
  exit 0
fi
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
