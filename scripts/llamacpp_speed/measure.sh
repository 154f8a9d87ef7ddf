# Sourced by the compare scripts: run a benchmark command only when the machine is quiet, and say
# how busy the rest of the machine was while it ran.
#
#   measure CMD...   waits (at most IDLE_WAIT seconds, default 1200) until the CPUs are less than
#                    IDLE_BUSY percent busy (default 15) over 5 s, runs CMD, and prints after its
#                    output a line "# others: X.XX cores busy (Y.Y s on N cores)": the CPU time spent
#                    by every other process during the run, per second of it (0 = quiet machine; on
#                    a 2-core box 1.0 means half the machine was taken).

# busy and total jiffies of all CPUs (user nice system irq softirq steal; + idle iowait).
_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

wait_idle() {
  local limit=${IDLE_WAIT:-1200} max=${IDLE_BUSY:-15} waited=0 b0 t0 b1 t1 pct
  while :; do
    read -r b0 t0 < <(_jiffies); sleep 5; read -r b1 t1 < <(_jiffies)
    pct=$(( 100 * (b1 - b0) / (t1 - t0 > 0 ? t1 - t0 : 1) ))
    if [ "$pct" -lt "$max" ]; then return 0; fi
    waited=$((waited + 5))
    if [ "$waited" -ge "$limit" ]; then echo "# still ${pct}% busy after ${waited} s: measuring anyway"; return 0; fi
  done
}

measure() {
  wait_idle
  local tick cores b0 b1 t tmp rc=0
  tick=$(getconf CLK_TCK); cores=$(nproc)
  tmp=$(mktemp)
  read -r b0 _ < <(_jiffies)
  /usr/bin/time -f '%U %S %e' -o "$tmp" "$@" || rc=$?
  read -r b1 _ < <(_jiffies)
  awk -v b="$((b1 - b0))" -v tick="$tick" -v n="$cores" -v up="$(uptime)" '{ours = $1 + $2; all = b / tick; others = all - ours; if (others < 0) others = 0;
      printf "# others: %.2f cores busy (%.1f s of %.1f s on %d cores; ours %.1f s CPU);%s\n", others / $3, others, $3, n, ours, substr(up, index(up, "load"))}' "$tmp"
  rm -f "$tmp"
  return $rc
}
