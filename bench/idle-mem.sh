#!/usr/bin/env bash
# Idle memory per job and a per-second job's start latency against the size of the table
# (issue 21; BENCHMARKS.md, "Idle memory by USS and PSS").
#
#   bench/idle-mem.sh BINARY OUT_DIR N...
#
# For each N, side by side: a table of N idle jobs (bench/gen-idle-table.py) plus one job
# `* * * * * *` that appends `date +%s.%N` to a file. The daemon runs 75 s (past its first
# once-a-minute wake-up); smaps_rollup is read at 20 s and at 75 s (USS = Private_Clean +
# Private_Dirty), and the latency of each tick is the fraction of a second at which its `date`
# ran after the scheduled whole second. Prints one line per N.
set -euo pipefail
bin=$(realpath "$1"); out=$2; shift 2
here=$(dirname "$(realpath "$0")")
mkdir -p "$out"
rollup() { awk '/^Pss:/{p=$2} /^Private_(Clean|Dirty):/{u+=$2} END{printf "%d %d", u, p}' "/proc/$1/smaps_rollup"; }
pids=()
for n in "$@"; do
  d="$out/n$n"; rm -rf "$d"; mkdir -p "$d"
  python3 "$here/gen-idle-table.py" "$n" "$d" > "$d/jobs.toml"
  printf '[jobs.tick]\nschedule = "* * * * * *"\ncommand = "date +%%s.%%N >> %s/ticks"\n' "$d" >> "$d/jobs.toml"
  "$bin" -c "$d/jobs.toml" daemon > "$d/out" 2>&1 &
  pids+=("$!")
done
sleep 20
i=0; for n in "$@"; do rollup "${pids[$i]}" > "$out/n$n/at20"; i=$((i+1)); done
# The tick job starts every second: only ticks from 25 s to 70 s are counted (after the load).
sleep 5; i=0; for n in "$@"; do wc -l < "$out/n$n/ticks" > "$out/n$n/skip" 2>/dev/null || echo 0 > "$out/n$n/skip"; i=$((i+1)); done
sleep 50
i=0; for n in "$@"; do rollup "${pids[$i]}" > "$out/n$n/at75"; i=$((i+1)); done
for p in "${pids[@]}"; do kill -TERM "$p"; done
wait || true
for n in "$@"; do
  d="$out/n$n"
  lat=$(tail -n +"$(( $(cat "$d/skip") + 1 ))" "$d/ticks" | head -n 45 | awk '{f=$1-int($1); print f*1000}' | sort -n |
    awk '{a[NR]=$1} END{printf "ticks %d median %.2f ms p90 %.2f ms max %.2f ms", NR, a[int(NR/2)+1], a[int(NR*0.9)], a[NR]}')
  read -r u20 p20 < "$d/at20"; read -r u75 p75 < "$d/at75"
  echo "N=$n USS/PSS kB at 20 s: $u20/$p20, at 75 s: $u75/$p75; tick latency: $lat"
done
