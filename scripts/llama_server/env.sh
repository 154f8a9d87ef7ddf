#!/usr/bin/env bash
# Creates (once) and prints the path of the Python environment that serves a GGUF model through
# llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`), used by the tests of
# `lm generate --backend openai` (crates/lm/tests/openai_backend.rs) and by the throughput
# benchmark (BENCHMARKS.md).
#
#   scripts/llama_server/env.sh          # prints the venv directory; its bin/python runs the server
#
# The venv lives in ${SYNTHDEID_PYENV:-~/.cache/synthdeid/pyenv}/llama-server and is reused while its
# stamp matches the pinned requirement below. If pip must compile llama.cpp (no wheel in pip's
# cache), it builds a CPU-only library with AVX-512 on and AMX off (the native build crashes on this
# kind of VM; see scripts/llamacpp_speed/speed.py). Needs python3 with the venv module.
set -euo pipefail

REQ="llama-cpp-python[server]==0.3.36"
ROOT="${SYNTHDEID_PYENV:-$HOME/.cache/synthdeid/pyenv}"
VENV="$ROOT/llama-server"
STAMP="$VENV/.synthdeid-stamp"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQ" && -x "$VENV/bin/python" ]]; then
  echo "$VENV"
  exit 0
fi

PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "scripts/llama_server/env.sh: $PY not found: install Python 3 (with its venv module) to run the llama.cpp server" >&2
  exit 2
fi
if ! "$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then
  echo "scripts/llama_server/env.sh: $PY has no venv/ensurepip module: install it (e.g. apt-get install python3-venv)" >&2
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
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}"
"$TMP/bin/python" -m pip install --quiet --disable-pip-version-check "$REQ" >&2
echo "$REQ" > "$TMP/.synthdeid-stamp"
rm -rf "$VENV"
mv "$TMP" "$VENV"
trap - EXIT
echo "$VENV"
