#!/usr/bin/env bash
# Fleet mode under load: 1,000 jobs due at the same instant, on 3 nodes sharing one
# PostgreSQL, next to the same table on a single host (no [cluster]).
#
# Prints, for each mode: dispatch latency (attempt start - scheduled instant) p50/p99/max
# over the 1,000 runs, the last run's start, how many runs each node took, and claims per
# second (the 1,000 winning claims over the span in which they were committed; each node
# claims an instant's ticks in one INSERT per rank).
#
# Usage: bench/fleet.sh [JOBS]   (as root, or as a user who can run initdb; Debian's
# postgresql server package is installed when missing). Takes about 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-1000}
NODES=3

pgbin=""
if command -v initdb >/dev/null 2>&1; then
  pgbin=$(dirname "$(readlink -f "$(command -v initdb)")")
else
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
fi
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
cargo build --release --quiet
BIN=$PWD/target/release/cronwarden

work=$(mktemp -d /tmp/cw-fleet-bench.XXXXXX)
chmod 755 "$work"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown nobody "$work"
  as_pg=(runuser -u nobody --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pgbin/initdb" -A trust -U postgres --no-sync -D "$work/data" >/dev/null
"${as_pg[@]}" "$pgbin/postgres" -D "$work/data" -p "$port" -k "$work" \
  -c listen_addresses=127.0.0.1 -c max_connections=200 >"$work/pg.log" 2>&1 &
pgpid=$!
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  kill -INT "$pgpid" 2>/dev/null || true
  wait "$pgpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
  psql -qAt -h 127.0.0.1 -p "$port" -U postgres -c 'select 1' >/dev/null 2>&1 && break
  sleep 0.1
done
URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"

# table DIR NODE|"" : 1,000 jobs, all due at second 0 of every minute.
table() {
  local dir=$1 node=$2
  mkdir -p "$dir"
  {
    printf '[settings]\nstate_dir = "%s/state"\nlock_dir = "%s/locks"\nlog_file = "%s/log"\n' "$dir" "$dir" "$dir"
    printf 'max_concurrent = %d\ntimezone = "UTC"\n\n' $((JOBS + 24))
    if [ -n "$node" ]; then
      printf '[cluster]\npostgres_url = "%s"\nnode = "%s"\n\n' "$URL" "$node"
    fi
    for i in $(seq "$JOBS"); do
      printf '[jobs.j%04d]\nschedule = "0 * * * * *"\ncommand = ["/bin/true"]\n' "$i"
    done
  } >"$dir/jobs.toml"
}

# Starts the daemons at least 15 s before a minute boundary, waits for the minute's runs.
run_minute() {
  local n=$(( $(date +%s) % 60 ))
  if [ "$n" -gt 40 ]; then sleep $((62 - n)); fi
  for t in "$@"; do
    "$BIN" -c "$t" daemon 2>>"$work/daemon.err" &
    pids+=($!)
  done
  local boundary=$(( ($(date +%s) / 60 + 1) * 60 ))
  sleep $(( boundary - $(date +%s) + 12 ))
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  echo "$boundary"
}

echo "== single host: $JOBS jobs due at one instant"
table "$work/single" ""
b1=$(run_minute "$work/single/jobs.toml")

echo "== fleet: $NODES nodes, one PostgreSQL, $JOBS jobs due at one instant"
tables=()
for n in $(seq $NODES); do
  table "$work/n$n" "n$n"
  tables+=("$work/n$n/jobs.toml")
done
# The schema exists before the clock starts (the first node creates it).
"$BIN" -c "${tables[0]}" status >/dev/null
b2=$(run_minute "${tables[@]}")

psql -qAt -h 127.0.0.1 -p "$port" -U postgres -F ' ' -c \
  "select extract(epoch from min(claimed)), extract(epoch from max(claimed)), count(*)
   from cronwarden_claims where scheduled_ms = ${b2}000" >"$work/claims"

python3 - "$work" "$b1" "$b2" "$NODES" "$JOBS" <<'EOF'
import json, sys, glob, os, statistics
work, b1, b2, nodes, jobs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
from datetime import datetime
def t(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
def lat(dirs, boundary):
    out, per = [], {}
    for d in dirs:
        for f in glob.glob(os.path.join(d, "state/history/*.jsonl")):
            for line in open(f):
                r = json.loads(line)
                if abs(t(r["scheduled"]) - boundary) > 0.5 or not r["attempts"]:
                    continue
                out.append((t(r["attempts"][0]["started"]) - boundary) * 1000)
                per[os.path.basename(d)] = per.get(os.path.basename(d), 0) + 1
    out.sort()
    return out, per
def pct(xs, p):
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
rows = []
for name, dirs, b in [("single host", [os.path.join(work, "single")], b1),
                      (f"fleet, {nodes} nodes", [os.path.join(work, f"n{i}") for i in range(1, nodes + 1)], b2)]:
    xs, per = lat(dirs, b)
    if not xs:
        rows.append((name, "no runs recorded", "", "", "", ""))
        continue
    rows.append((name, f"{len(xs)}/{jobs}", f"{pct(xs,50):.1f}", f"{pct(xs,99):.1f}", f"{xs[-1]:.1f}",
                 ", ".join(f"{k}: {v}" for k, v in sorted(per.items()))))
c0, c1, n = open(os.path.join(work, "claims")).read().split()
span = float(c1) - float(c0)
print()
print("| mode | runs | dispatch p50 ms | p99 ms | last ms | runs per node |")
print("|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
print()
# Each node claims its ticks of an instant in one INSERT per rank, so the span is what the
# claims took, not a rate limit; the rate is given over that span (at least 1 ms).
print(f"claims: {n} won of {int(n) * nodes} attempts (one INSERT per node and rank), all "
      f"committed within {span*1000:.1f} ms, i.e. at least {int(n) / max(span, 1e-3):.0f} claims/s")
EOF
