#!/usr/bin/env bash
# Side-by-side generation speed of our generator and llama.cpp on the same GGUF (Gemma-3-270M
# Q4_K_M by default), alternating the two so that both see the same host. Each run waits for a
# quiet machine and then reports how many cores other processes took meanwhile
# (scripts/llamacpp_speed/measure.sh).
#
#     PYTHON=/work/llamaenv/bin/python bash scripts/llamacpp_speed/compare.sh [rounds]
#
# PYTHON: a Python with llama-cpp-python (CPU build). MODEL: the GGUF (default: the cached
# gemma-3-270m, fetched by `synthdeid models fetch gemma-3-270m`). STEP=1 adds our per-stage
# split of a decoding step (`gguf_speed step`) to each round. SPEED_FTZ=1 reaches our side: denormals
# flushed to zero (see crates/bench/src/bin/gguf_speed.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/llamacpp_speed/measure.sh
PYTHON=${PYTHON:-python3}
ROUNDS=${1:-2}
MODEL=${MODEL:-$HOME/.cache/synthdeid/models/gemma-3-270m/model.gguf}
cargo build --release -q -p bench --bin gguf_speed
for r in $(seq "$ROUNDS"); do
  echo "== round $r ($(date -u +%H:%M:%S))"
  measure target/release/gguf_speed generate --model "$MODEL" 2>&1 | grep -E '^(ours|#)'
  measure "$PYTHON" scripts/llamacpp_speed/speed.py "$MODEL" --threads 2 2>&1 | grep -E '^(llama.cpp (prefill|generate|step)|#)'
  if [ "${STEP:-0}" = 1 ]; then
    measure target/release/gguf_speed step --model "$MODEL" 2>&1 | grep -E '^(ours step|#)'
  fi
done
