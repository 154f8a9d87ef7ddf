#!/usr/bin/env bash
# Creates (once) and prints the path of the Python environment that serves a GGUF model through
# llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`), used by the tests of
# `lm generate --backend openai` (crates/lm/tests/openai_backend.rs) and by the throughput
# benchmark (BENCHMARKS.md).
#
#   scripts/llama_server/env.sh          # prints the venv directory; its bin/python runs the server
#
# The venv is ${SYNTHDEID_PYENV:-~/.cache/synthdeid/pyenv}/llama-server (scripts/lib/pyenv.sh). If pip
# must compile llama.cpp (no wheel in pip's cache), it builds a CPU-only library with AVX-512 on and
# AMX off (the native build crashes on this kind of VM; see scripts/llamacpp_speed/speed.py).
set -euo pipefail
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}"
exec "$(dirname "$0")/../lib/pyenv.sh" llama-server "llama-cpp-python[server]==0.3.36" "the llama.cpp server"
