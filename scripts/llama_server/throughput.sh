#!/usr/bin/env bash
# Throughput of `lm generate` with the openai backend against llama-cpp-python's server vs local
# generation, on the same GGUF (Gemma-3-270M as `models fetch` leaves it), the same prompts (the first
# 3 words of the first PROMPTS MEDDOCAN dev documents) and the same settings (top-p 0.95, temperature
# 1.0, SAMPLES per prompt, at most NEW tokens), ROUNDS alternating rounds. Prints each run's
# tokens/s line (new tokens: ours count subword tokens, the server reports its usage).
#
#   bash scripts/llama_server/throughput.sh [ROUNDS]
#
# env: PROMPTS=8 SAMPLES=2 NEW=128; THREADS=2 (ours), SERVER_THREADS=2 (llama.cpp's: on a machine that
# other processes keep busy, 1 does better, since llama.cpp's OpenMP threads wait for each other).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-1}
PROMPTS=${PROMPTS:-8}; SAMPLES=${SAMPLES:-2}; NEW=${NEW:-128}; THREADS=${THREADS:-2}; SERVER_THREADS=${SERVER_THREADS:-$THREADS}
BIN=${SYNTHDEID_BIN:-target/release/synthdeid}
MODEL=${MODEL:-$HOME/.cache/synthdeid/models/gemma-3-270m}
DEV=${DEV:-../shared/data/meddocan/dev}
VENV=$(scripts/llama_server/env.sh)
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN" convert "$DEV" "$WORK/dev.jsonl" >/dev/null 2>&1
head -n "$PROMPTS" "$WORK/dev.jsonl" > "$WORK/prompts.jsonl"
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VENV/bin/python" scripts/llama_server/serve.py --model "$MODEL/model.gguf" --host 127.0.0.1 --port "$PORT" \
    --n_threads "$SERVER_THREADS" --n_threads_batch "$SERVER_THREADS" --n_ctx 2048 > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break; sleep 0.5; done
COMMON=(--prompts "$WORK/prompts.jsonl" --samples-per-prompt "$SAMPLES" --max-new-tokens "$NEW" --seed 1 --no-progress)
echo "prompts $PROMPTS, samples $SAMPLES, new tokens $NEW, threads ours $THREADS / server $SERVER_THREADS; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  RAYON_NUM_THREADS=$THREADS "$BIN" lm generate --model "$MODEL" "${COMMON[@]}" --batch-size 16 --out "$WORK/local$r.jsonl" 2>&1 | sed "s/^/local batch 16: /"
  "$BIN" lm generate --backend openai --base-url "http://127.0.0.1:$PORT" "${COMMON[@]}" --concurrency 1 --out "$WORK/server1-$r.jsonl" 2>&1 | sed "s/^/openai, llama.cpp server, concurrency 1: /"
  "$BIN" lm generate --backend openai --base-url "http://127.0.0.1:$PORT" "${COMMON[@]}" --concurrency 4 --out "$WORK/server4-$r.jsonl" 2>&1 | sed "s/^/openai, llama.cpp server, concurrency 4: /"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
