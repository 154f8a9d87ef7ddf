"""Runs llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) with llama.cpp's
extra weight buffer types off.

    "$(scripts/llama_server/env.sh)/bin/python" scripts/llama_server/serve.py \
        --model ~/.cache/synthdeid/models/gemma-3-270m/model.gguf --host 127.0.0.1 --port 8000

Every argument goes to the server unchanged. Why the wrapper: a llama-cpp-python wheel built with
`GGML_NATIVE=ON` on a CPU with AMX (as pip's cache on the 2-core VM holds one) crashes in its first
decode (SIGSEGV in the AMX matrix multiply, see scripts/llamacpp_speed/speed.py); the AMX kernels are
reached only through the extra buffer types (`use_extra_bufts`), which the server's settings do not
expose. With them off every build runs the plain CPU kernels.
"""
import runpy

import llama_cpp.llama_cpp as C

_default = C.llama_model_default_params


def _params():
    p = _default()
    p.use_extra_bufts = False
    return p


C.llama_model_default_params = _params
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
