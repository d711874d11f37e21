#!/usr/bin/env bash
# The 100 jobs of bench/scale_tables.py due every 5 s for a minute, in one daemon (issue 21):
# the last start after each instant, so that two binaries can be compared on 11 bursts each
# in the same minutes (a single burst moves by 20 ms or more on a small VM). The first burst
# (each job's first run, which makes its files) is shown on its own.
# Prints: LABEL: N bursts; first MS; rest median MS; the rest sorted.
# Usage: bench/bursts.sh BIN LABEL [IDLE_JOBS]   (alternate binaries: A B A B)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1; label=$2; n=${3:-100}
dir=$(mktemp -d); chmod 0755 "$dir"; mkdir -p "$dir/cw"; pid=""
cleanup() { [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true; sleep 0.3; rm -rf "$dir"; }
trap cleanup EXIT
# The table's burst jobs, due every 5 s instead of four times.
python3 bench/scale_tables.py cronwarden "$n" "$dir" "$(( $(date +%s) + 3600 ))" "$dir/cw" |
  sed -E 's|^schedule = "[0-9,]+ [0-9]+ [0-9]+ \* \* \*"|schedule = "*/5 * * * * *"|' > "$dir/jobs.toml"
"$bin" -c "$dir/jobs.toml" daemon 2> "$dir/daemon.err" & pid=$!
sleep 62
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
python3 - "$dir/cw/burst.txt" "$label" <<'PY'
import collections, statistics, sys
by = collections.defaultdict(list)
for line in open(sys.argv[1]):
    t = float(line)
    by[int(t) // 5 * 5].append(t)
last = [(max(v) - k) * 1000 for k, v in sorted(by.items()) if len(v) == 100]
rest = sorted(last[1:])
# A burst of fewer than 100 (not the window's last, cut by the daemon's stop) lost a run.
short = [(k, len(v)) for k, v in sorted(by.items())[:-1] if len(v) < 100]
print(f"{sys.argv[2]}: {len(last)} bursts; first {last[0]:.0f} ms; rest median "
      f"{statistics.median(rest):.0f} ms; sorted {[round(x) for x in rest]}"
      + (f"; INCOMPLETE bursts (instant, starts): {short}" if short else ""))
PY
