#!/usr/bin/env bash
# USS of one daemon with N idle jobs across SIGHUP reloads (issue 21, BENCHMARKS.md "Memory
# per job, fifth round"): read 25 s after the start and 25 s after each of RELOADS (default 3)
# reloads, each sent once the one before is logged as done. The table is
# bench/gen-idle-table.py's, unchanged between reloads (the same jobs are built anew).
#
#   bench/reload-mem.sh OUT_DIR N BINARY
#
# USS = Private_Clean + Private_Dirty of /proc/PID/smaps_rollup. One line per reading.
set -euo pipefail
out=$1; n=$2; bin=$(realpath "$3")
reloads=${RELOADS:-3}
here=$(dirname "$(realpath "$0")")
rm -rf "$out"; mkdir -p "$out"
python3 "$here/gen-idle-table.py" "$n" "$out" > "$out/jobs.toml"
uss() { awk '/^Private_(Clean|Dirty):/{u+=$2} END{print u}' "/proc/$1/smaps_rollup"; }
"$bin" -c "$out/jobs.toml" daemon > "$out/stderr" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
# Wait for events, not for time: the start, then each reload, is seen in the log.
logged() { [ -f "$out/log" ] && [ "$(grep -c "$1" "$out/log")" -ge "$2" ]; }
until logged 'daemon-start' 1; do sleep 0.2; done
sleep 25
line="N=$n $3: USS kB at start $(uss $pid)"
for i in $(seq 1 "$reloads"); do
  kill -HUP $pid
  until logged 'new table loaded' "$i"; do sleep 0.2; done
  sleep 25
  line="$line, after reload $i $(uss $pid)"
done
echo "$line"
