#!/usr/bin/env bash
# Idle memory of one daemon with 100 jobs, as the binary sits in the page cache (issue 21;
# BENCHMARKS.md, "Idle memory with 100 jobs, round 2").
#
#   bench/idle-copies.sh OUT_DIR ROUNDS BINARY...
#
# In each round, for MODE in fresh and dropped: every BINARY at once, each as a copy of its
# own (so no two daemons share pages; several binaries may run side by side), with the table
# of bench/gen-idle-table.py. "fresh": the copy as `cp` left it in the page cache; "dropped":
# the copy fsynced and dropped from the page cache (posix_fadvise DONTNEED) before the
# start, so exec reads it back by readahead, as after a reboot. A fault in a file mapping
# maps the whole page-cache folio around the page, and the folios differ between the two.
# Prints USS and PSS (smaps_rollup, USS = Private_Clean + Private_Dirty) at 20, 75 and
# 125 s (past the old once-a-minute wake-ups), and keeps in OUT_DIR/R-MODE-I/resident the
# resident 4 KiB pages of the binary's mappings at 125 s (bench/resident.py).
set -euo pipefail
out=$1; rounds=$2; shift 2
here=$(dirname "$(realpath "$0")")
one() {
  local bin=$1 d=$2 mode=$3
  rm -rf "$d"; mkdir -p "$d"
  cp "$bin" "$d/cw"
  if [ "$mode" = dropped ]; then
    python3 -c 'import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)' "$d/cw"
  fi
  python3 "$here/gen-idle-table.py" 100 "$d" > "$d/jobs.toml"
  "$d/cw" -c "$d/jobs.toml" daemon > "$d/out" 2>&1 &
  local pid=$!
  uss() { awk '/^Pss:/{p=$2} /^Private_(Clean|Dirty):/{u+=$2} END{printf "USS %d PSS %d", u, p}' "/proc/$pid/smaps_rollup"; }
  sleep 20; local a; a=$(uss); sleep 55; local b; b=$(uss); sleep 50; local c; c=$(uss)
  python3 "$here/resident.py" "$pid" "$d/cw" > "$d/resident"
  kill -TERM "$pid"; wait "$pid" || true
  echo "$bin $mode: 20 s $a | 75 s $b | 125 s $c"
}
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  for mode in fresh dropped; do
    i=0
    for bin in "$@"; do one "$(realpath "$bin")" "$out/$r-$mode-$i" "$mode" & i=$((i + 1)); done
    wait
  done
done
