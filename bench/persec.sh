#!/usr/bin/env bash
# The per-second job's start latency over SECONDS samples (issue 21), beside the floor's
# loop (bench/daemon_floor.py, half a second off the whole seconds) in the same minutes:
# bench/scale.sh does the same beside the rest of its parts (200 samples); this alone.
# Prints p50, p90, p99 and max for both, and the samples over 6 ms with their index.
# Usage: bench/persec.sh BIN [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1; secs=${2:-180}
dir=$(mktemp -d); chmod 0755 "$dir"; mkdir -p "$dir/cw" "$dir/fl"; pid=""
cleanup() { [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true; sleep 0.3; rm -rf "$dir"; }
trap cleanup EXIT
# 100 idle jobs and the per-second job (the 100 burst jobs left out).
python3 bench/scale_tables.py cronwarden 100 "$dir" "$(( $(date +%s) + 7200 ))" "$dir/cw" |
  awk '/^\[jobs.burst-/ { skip = 1 } /^\[jobs.persec\]/ { skip = 0 } !skip' > "$dir/jobs.toml"
"$bin" -c "$dir/jobs.toml" daemon 2> "$dir/daemon.err" & pid=$!
p0=$(( $(date +%s) + 3 ))
(cd bench && python3 -c "
from daemon_floor import run
run('$dir/fl', [($p0 + k + 0.5, 'persec', 1) for k in range($secs)])")
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
python3 - "$dir" "$p0" "$secs" <<'PY'
import math, sys
d, p0, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for who, f, off in (("cronwarden", "cw/persec.txt", 0.0), ("floor", "fl/persec.txt", 0.5)):
    lat = []
    for line in open(f"{d}/{f}"):
        t = float(line)
        k = math.floor(t - off) - p0
        if 0 <= k < n:
            lat.append(((t - (p0 + k + off)) * 1000, k))
    v = sorted(x for x, _ in lat)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    slow = sorted(((round(x, 1), k) for x, k in lat if x > 6), key=lambda z: z[1])
    print(f"{who}: n={len(v)} p50 {q(.5):.2f} p90 {q(.9):.2f} p99 {q(.99):.2f} "
          f"max {v[-1]:.2f} ms; over 6 ms: {slow}")
PY
