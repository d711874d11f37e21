#!/usr/bin/env bash
# A quick look at 100 jobs due at the same second (issue 21), without the rest of
# bench/scale.sh: a daemon with the table of bench/scale_tables.py (100 idle jobs, the 100
# `date +%s.%N >> FILE` jobs, the per-second job), on a new state directory.
#   first:  the 100 fire once, 4 s after the start: every job's first run (it also makes the
#           job's dispatch mark, lock file and output directory), as in scale.sh;
#   second: the second time the 100 fire, 10 s later (the table has them due four times, 10 s
#           apart, as in scale.sh): the files a run makes every time.
# Prints the first, median and last start after the instant, and the daemon's CPU from 1 s
# before the instant until the 100 have started: as root with a cgroup2 mount, the daemon
# runs in a cgroup of its own and its CPU is `usage_usec` of that cgroup's cpu.stat minus
# its jobs' cgroups (microseconds); else utime + stime of /proc/PID/stat (all its threads,
# not the jobs'; 10 ms ticks). No floor: compare binaries alternately, in the same minutes.
# Usage: bench/burst.sh BIN [first|second] [LABEL]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1; mode=${2:-first}; label=${3:-$mode}
dir=$(mktemp -d); chmod 0755 "$dir"; mkdir -p "$dir/cw"
pid=""
cg=""
mnt=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
if [ "$(id -u)" = 0 ] && [ -n "$mnt" ] && mkdir "$mnt/cwburst$$" 2>/dev/null; then cg=$mnt/cwburst$$; fi
cleanup() {
  [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
  if [ -n "$cg" ]; then
    sleep 0.5; rmdir "$cg"/cronwarden/* "$cg"/cronwarden "$cg" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
now=$(date +%s); b1=$((now + 4)); b2=$b1
if [ "$mode" = second ]; then
  b2=$((b1 + 10))
  # Both instants in one minute (the schedule's minute and hour are the first one's).
  if [ $((b2 % 60)) -lt $((b1 % 60)) ]; then
    sleep $((60 - now % 60 + 1)); now=$(date +%s); b1=$((now + 4)); b2=$((b1 + 10))
  fi
fi
python3 bench/scale_tables.py cronwarden 100 "$dir" "$b1" "$dir/cw" > "$dir/jobs.toml"
want=100; [ "$mode" = second ] && want=200
if [ -n "$cg" ]; then
  ( echo "$BASHPID" > "$cg/cgroup.procs"; exec "$bin" -c "$dir/jobs.toml" daemon 2> "$dir/daemon.err" ) & pid=$!
  usec() { awk '/^usage_usec/ { print $2 }' "$1/cpu.stat" 2>/dev/null || echo 0; }
  cpu() { echo $(( $(usec "$cg") - $(usec "$cg/cronwarden") )); }; per_s=1000000
else
  "$bin" -c "$dir/jobs.toml" daemon 2> "$dir/daemon.err" & pid=$!
  cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }; per_s=$(getconf CLK_TCK)
fi
sleep $((b2 - $(date +%s) - 1)); c0=$(cpu)
for _ in $(seq 60); do
  [ "$(cat "$dir/cw/burst.txt" 2>/dev/null | wc -l)" -ge "$want" ] && break
  sleep 0.2
done
c1=$(cpu)
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
python3 - "$dir/cw/burst.txt" "$b2" "$label" "$((c1 - c0))" "$per_s" <<'PY'
import sys
path, b, label, ticks, hz = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ts = sorted(float(l) for l in open(path) if l.strip() and float(l) >= b)
ms = lambda t: (t - b) * 1000
print(f"{label}: {len(ts)}/100 started; first {ms(ts[0]):.0f} ms, median {ms(ts[len(ts) // 2]):.0f} ms, "
      f"last {ms(ts[-1]):.0f} ms; daemon CPU {ticks * 1000 // hz} ms")
PY
