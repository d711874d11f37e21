#!/usr/bin/env bash
# Idle memory per job, and a per-second job's start latency against the size of the table
# (issue 21; BENCHMARKS.md, "Idle memory by USS and PSS").
#
#   bench/idle-mem.sh BINARY OUT_DIR N...
#
# For each N, two daemons side by side: one with a table of N idle jobs
# (bench/gen-idle-table.py) for the memory, one with the same table plus a job `* * * * * *`
# that appends `date +%s.%N` to a file for the latency. Each runs 75 s (past the first
# once-a-minute wake-up). The idle one's smaps_rollup is read at 20 s and 75 s (USS =
# Private_Clean + Private_Dirty); the latency of a tick is how far past its whole second its
# `date` ran, over the ticks from 25 s to 70 s. Prints one line per N.
set -euo pipefail
bin=$(realpath "$1"); out=$2; shift 2
here=$(dirname "$(realpath "$0")")
mkdir -p "$out"
rollup() { awk '/^Pss:/{p=$2} /^Private_(Clean|Dirty):/{u+=$2} END{printf "%d %d\n", u, p}' "/proc/$1/smaps_rollup"; }
pids=()
for n in "$@"; do
  for kind in idle tick; do
    d="$out/$kind$n"; rm -rf "$d"; mkdir -p "$d"
    python3 "$here/gen-idle-table.py" "$n" "$d" > "$d/jobs.toml"
    if [ "$kind" = tick ]; then
      printf '[jobs.tick]\nschedule = "* * * * * *"\ncommand = "date +%%s.%%N >> %s/ticks"\n' "$d" >> "$d/jobs.toml"
    fi
    "$bin" -c "$d/jobs.toml" daemon > "$d/out" 2>&1 &
    pids+=("$!")
    echo "$!" > "$d/pid"
  done
done
sleep 20
for n in "$@"; do rollup "$(cat "$out/idle$n/pid")" > "$out/idle$n/at20"; done
sleep 5
for n in "$@"; do (wc -l < "$out/tick$n/ticks" 2>/dev/null || echo 0) > "$out/tick$n/skip"; done
sleep 50
for n in "$@"; do rollup "$(cat "$out/idle$n/pid")" > "$out/idle$n/at75"; done
for p in "${pids[@]}"; do kill -TERM "$p"; done
wait || true
for n in "$@"; do
  t="$out/tick$n"
  lat=$(awk -v skip="$(cat "$t/skip")" 'NR > skip && NR <= skip + 45 {f=$1-int($1); print f*1000}' "$t/ticks" | sort -n |
    awk '{a[NR]=$1} END{printf "%d ticks, median %.2f ms, p90 %.2f ms, max %.2f ms", NR, a[int(NR/2)+1], a[int(NR*0.9)], a[NR]}')
  read -r u20 p20 < "$out/idle$n/at20"; read -r u75 p75 < "$out/idle$n/at75"
  echo "N=$n: USS/PSS kB at 20 s $u20/$p20, at 75 s $u75/$p75; tick latency: $lat"
done
