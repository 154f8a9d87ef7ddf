#!/usr/bin/env bash
# `synthdeid deid --model MODEL` end to end (read, predict, surrogates, write) on many notes: the
# MEDDOCAN test set's 250 documents repeated REPEAT times under distinct ids (default 40: 10,000
# notes), given as a directory of plain .txt files (no spans in) and written as BRAT. Prints deid's
# own summary line (documents/s over the whole run, p50 / p95 / max per document), wall and CPU
# time (user + sys), the rayon threads and the load average before and after; checks that every
# note came out. Prints no document text: deid's stderr holds counts and times only.
# BENCHMARKS.md › "Encoder inference path (issue 29)" names the model and the results.
#
#   bash scripts/deid_throughput/bench.sh MODEL [REPEAT] [DEID FLAGS…]   # env: DATA=../shared/data/meddocan/test SYNTHDEID_BIN=… KEEP=DIR
# e.g. `… bench.sh M 40 --precision bf16 --jobs 2`.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=$(realpath "$1"); REPEAT=${2:-40}; shift; shift || true
DATA=$(realpath "${DATA:-../shared/data/meddocan/test}")
BIN=$(realpath "${SYNTHDEID_BIN:-target/release/synthdeid}")
if [ -n "${KEEP:-}" ]; then W=$KEEP; mkdir -p "$W"; else W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; fi
rm -rf "$W/in" "$W/out"
python3 - "$DATA" "$W/in" "$REPEAT" <<'PYEOF'
import os, shutil, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst)
names = sorted(f for f in os.listdir(src) if f.endswith(".txt"))
for k in range(1, n + 1):
    for f in names:
        shutil.copyfile(os.path.join(src, f), os.path.join(dst, f"{f[:-4]}-r{k}.txt"))
PYEOF
NOTES=$(find "$W/in" -name '*.txt' | wc -l)
echo "notes: $NOTES ($(du -sh "$W/in" | cut -f1)); model: $MODEL; flags: ${*:-none}; rayon threads: ${RAYON_NUM_THREADS:-$(nproc)} of $(nproc) cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
TIMEFORMAT='wall %R s, CPU user %U s + sys %S s'
{ time "$BIN" deid --model "$MODEL" --input "$W/in" --out "$W/out" --key bench "$@" 2>"$W/log"; } 2>"$W/time" || { tail -5 "$W/log"; exit 1; }
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E '^(speed|de-identified)' "$W/log" | sed 's/^/deid: /'
echo "time: $(cat "$W/time")"
OUT=$(find "$W/out" -name '*.txt' | wc -l)
[ "$OUT" -eq "$NOTES" ] || { echo "wrote $OUT of $NOTES notes"; exit 1; }
echo "wrote $OUT notes"
