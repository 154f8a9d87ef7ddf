#!/usr/bin/env bash
# Side-by-side speed of synthdeid's Rust stack and PyTorch 2.15 + transformers on this machine,
# alternating the two so that both see the same host (this VM's speed drifts by ±20% over an
# hour). Needs a Python with torch and transformers: PYTHON=/path/to/python (default python3).
#
#     bash scripts/pytorch_speed/compare.sh [rounds]
#     bash scripts/pytorch_speed/compare.sh gemma-lora [rounds]
#     bash scripts/pytorch_speed/compare.sh encoder [rounds]
#
# `gemma-lora`: only LoRA training of the real Gemma-3-270M (rank 16 on q_proj/v_proj, batch 8 x 256;
# `gguf_speed lora` against `speed.py gemma-lora`, PyTorch + PEFT), each run after the machine is
# quiet, with the cores other processes took meanwhile (scripts/llamacpp_speed/measure.sh);
# SPEED_STEPS steps after a warm-up (default 3); SPEED_FTZ=1 flushes denormals on our side (see
# crates/bench/src/bin/gguf_speed.rs). Needs peft beside torch and transformers.
#
# `encoder`: encoder prediction only (the inference path), MiniLM-L6 shape, BERT-base and the
# multilingual-E5-small checkpoint (E5=DIR), alternating with `speed.py` per row; ours in f32 and bf16.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
if [ "${1:-}" = gemma-lora ]; then
  source scripts/llamacpp_speed/measure.sh
  MODEL=${MODEL:-$HOME/.cache/synthdeid/models/gemma-3-270m/model.gguf}
  cargo build --release -q -p bench --bin gguf_speed
  for r in $(seq "${2:-2}"); do
    echo "== round $r ($(date -u +%H:%M:%S))"
    measure target/release/gguf_speed lora --model "$MODEL" 2>&1 | grep -E '^(ours lora train|#)'
    measure "$PYTHON" scripts/pytorch_speed/speed.py gemma-lora "$MODEL" 2>&1 | grep -E '^(pytorch gemma-lora train|#)'
  done
  exit 0
fi
if [ "${1:-}" = encoder ]; then
  # Encoder prediction only (issue 29): the MiniLM-L6 shape, BERT-base, and the multilingual-E5-small
  # checkpoint (E5=DIR, default the models cache), ours (the inference path) then PyTorch, per round.
  E5=${E5:-$HOME/.cache/synthdeid/models/multilingual-e5-small}
  # Both sides at each weight format (PRECISIONS="f32 bf16" by default; our bf16 needs AVX-512 BF16, else it runs f32).
  PRECISIONS=${PRECISIONS:-f32 bf16}
  cargo build --release -q -p bench --bin encoder_speed
  for r in $(seq "${2:-2}"); do
    echo "== round $r ($(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg))"
    for p in $PRECISIONS; do
      target/release/encoder_speed --predict-only --skip-eval-path --steps 6 --precision "$p" | tail -1
    done
    for p in $PRECISIONS; do SPEED_DTYPE=$p "$PYTHON" scripts/pytorch_speed/speed.py encoder-predict 2>&1 | grep '^pytorch'; done
    for p in $PRECISIONS; do
      target/release/encoder_speed --predict-only --skip-eval-path --layers 12 --hidden 768 --heads 12 --ffn 3072 --steps 3 --precision "$p" | tail -1
    done
    for p in $PRECISIONS; do SPEED_DTYPE=$p "$PYTHON" scripts/pytorch_speed/speed.py bert-base-predict 2>&1 | grep '^pytorch'; done
    if [ -d "$E5" ]; then
      for p in $PRECISIONS; do
        target/release/encoder_speed --predict-only --skip-eval-path --model "$E5" --steps 6 --precision "$p" | tail -1
      done
      for p in $PRECISIONS; do SPEED_DTYPE=$p "$PYTHON" scripts/pytorch_speed/speed.py e5 "$E5" 2>&1 | grep '^pytorch'; done
    fi
  done
  exit 0
fi
ROUNDS=${1:-2}
cargo build --release -q -p bench --bin lm_speed --bin encoder_speed
for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  target/release/encoder_speed --steps 4 | tail -1
  "$PYTHON" scripts/pytorch_speed/speed.py encoder 2>&1 | grep '^pytorch'
  target/release/lm_speed all | tail -3
  "$PYTHON" scripts/pytorch_speed/speed.py gpt2-train 2>&1 | grep '^pytorch'
  "$PYTHON" scripts/pytorch_speed/speed.py gpt2-generate 2>&1 | grep '^pytorch'
done
if [ "${BERT_BASE:-0}" = 1 ]; then
  target/release/encoder_speed --layers 12 --hidden 768 --heads 12 --ffn 3072 --steps 3 | tail -1
  "$PYTHON" scripts/pytorch_speed/speed.py bert-base 2>&1 | grep '^pytorch'
fi
