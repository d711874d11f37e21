#!/usr/bin/env bash
# Idle memory of one daemon with N jobs, for absolute figures (issue 21; BENCHMARKS.md,
# "Memory per job, third round"). bench/idle-mem.sh runs daemons of one binary side by side,
# which share the binary's pages and so lower each one's USS; here each binary runs one
# daemon (several binaries may run at once: they share no pages).
#
#   bench/idle-alone.sh OUT_DIR N BINARY...
#
# The table is bench/gen-idle-table.py's; smaps_rollup is read at 75 s (past the first
# once-a-minute wake-up). USS = Private_Clean + Private_Dirty. One line per binary.
set -euo pipefail
out=$1; n=$2; shift 2
here=$(dirname "$(realpath "$0")")
mkdir -p "$out"
python3 "$here/gen-idle-table.py" "$n" "$out" > "$out/jobs.toml"
rollup() { awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Private_(Clean|Dirty):/{u+=$2} END{printf "USS %d kB, PSS %d kB, RSS %d kB", u, p, r}' "/proc/$1/smaps_rollup"; }
pids=()
i=0
for bin in "$@"; do
  d="$out/d$i"; rm -rf "$d"; mkdir -p "$d"
  sed "s#$out/#$d/#g" "$out/jobs.toml" > "$d/jobs.toml"
  "$(realpath "$bin")" -c "$d/jobs.toml" daemon > "$d/out" 2>&1 &
  pids+=("$!")
  i=$((i + 1))
done
sleep 75
i=0
for bin in "$@"; do
  echo "N=$n $bin: $(rollup "${pids[$i]}")"
  i=$((i + 1))
done
for p in "${pids[@]}"; do kill -TERM "$p"; done
wait || true
