#!/usr/bin/env bash
# Wall time of scripts/ray/driver.py with 1 and 2 workers (and of one plain process) on one
# generation job: a tiny GPT-2 (2 × 32, trained here in seconds on made-up notes), PROMPTS prompt
# documents × SAMPLES samples × NEW new tokens, 4 shards, ROUNDS alternating rounds. Checks that every
# run wrote the same bytes. Each shard process gets the machine's cores / workers rayon threads.
#
#   bash scripts/ray/bench.sh [ROUNDS]        # env: PROMPTS=160 SAMPLES=4 NEW=96 SYNTHDEID_BIN=…
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-1}
PROMPTS=${PROMPTS:-160}; SAMPLES=${SAMPLES:-4}; NEW=${NEW:-96}
BIN=$(realpath "${SYNTHDEID_BIN:-target/release/synthdeid}")
PY="$(scripts/ray/env.sh)/bin/python"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$PY" - "$W" "$PROMPTS" <<'PYEOF'
import json, sys
w, n = sys.argv[1], int(sys.argv[2])
words = ["paciente", "dolor", "fiebre", "Nombre:", "Edad:", "años", "varón", "mujer", "tratamiento", "alta"]
def doc(i):
    t = [words[(i * 7 + j * j + j) % len(words)] for j in range(40)]
    return {"id": f"d{i}", "text": f"Nombre: X{i}\n" + " ".join(t), "spans": []}
for name, r in [("train", range(12)), ("dev", range(12, 15)), ("prompts", range(100, 100 + n))]:
    open(f"{w}/{name}.jsonl", "w").write("".join(json.dumps(doc(i)) + "\n" for i in r))
PYEOF
"$BIN" lm train --train "$W/train.jsonl" --dev "$W/dev.jsonl" --out "$W/model" --generator gpt2 --preset tiny --vocab-size 300 \
    --hidden 32 --max-positions 128 --epochs 1 --block-size 32 --batch-size 4 --lr 3e-3 --no-progress >/dev/null 2>&1
GEN=(lm generate --model "$W/model" --prompts "$W/prompts.jsonl" --samples-per-prompt "$SAMPLES" --max-new-tokens "$NEW" --seed 3 --no-progress)
echo "prompts $PROMPTS × samples $SAMPLES × new tokens $NEW, 4 shards; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  t=$(date +%s.%N); "$BIN" "${GEN[@]}" --out "$W/one$r.jsonl" 2>/dev/null; e=$(date +%s.%N)
  echo "round $r: one process, no Ray: $(echo "$e - $t" | bc) s"
  for workers in 1 2; do
    t=$(date +%s.%N)
    RAY_USAGE_STATS_ENABLED=0 "$PY" scripts/ray/driver.py --workers $workers --shards 4 --synthdeid "$BIN" --out "$W/ray$workers-$r.jsonl" -- "${GEN[@]}" 2>"$W/log" || { cat "$W/log"; exit 1; }
    e=$(date +%s.%N)
    echo "round $r: Ray, $workers worker(s): $(echo "$e - $t" | bc) s wall ($(tail -1 "$W/log" | sed 's/.*workers: //; s/ ->.*//'))"
    cmp -s "$W/one$r.jsonl" "$W/ray$workers-$r.jsonl" || { echo "Ray with $workers worker(s) wrote other bytes"; exit 1; }
  done
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
