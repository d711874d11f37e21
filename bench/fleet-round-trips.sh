#!/usr/bin/env bash
# Round trips per fleet lease renewal, seen from the outside: one daemon node (heartbeat 1 s)
# on a throwaway PostgreSQL, its renewal thread ("fleet-renew") traced with strace for about
# 10 s. Each loop of that thread sends its statements, waits for the answers and sleeps, so
# per renewal (a clock_nanosleep): the writes to the socket, and the reads that returned
# data (a round trip is a write, then a wait for the answer).
#
# Usage: bench/fleet-round-trips.sh [BIN...]   (default: target/debug/cronwarden; give two
# binaries, an older and a newer, to compare; KEEP=PREFIX keeps the traces). As root (initdb runs as nobody); needs
# strace and PostgreSQL's server binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(target/debug/cronwarden)
pgbin=$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")")
work=$(mktemp -d /tmp/cw-rt.XXXXXX)
chmod 755 "$work"
chown nobody "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
runuser -u nobody -- "$pgbin/initdb" -A trust -U postgres --no-sync -D "$work/data" >/dev/null
runuser -u nobody -- "$pgbin/postgres" -D "$work/data" -p "$port" -k "$work" \
  -c listen_addresses=127.0.0.1 >"$work/pg.log" 2>&1 &
pgpid=$!
dpid=""
cleanup() {
  [ -n "$dpid" ] && kill -9 "$dpid" 2>/dev/null || true
  kill -INT "$pgpid" 2>/dev/null || true
  wait "$pgpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
  "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
  sleep 0.1
done
n=0
for bin in "${bins[@]}"; do
  n=$((n + 1))
  dir=$work/node$n
  mkdir -p "$dir"
  cat >"$dir/jobs.toml" <<TOML
[settings]
state_dir = "$dir/state"
lock_dir = "$dir/run"
log_file = "$dir/cronwarden.log"
[cluster]
postgres_url = "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
node = "n$n"
heartbeat = "1s"
dead_after = "4s"
[jobs.j]
schedule = "@manual"
command = ["/bin/true"]
TOML
  "$bin" -c "$dir/jobs.toml" daemon 2>"$dir/err" &
  dpid=$!
  tid=""
  for _ in $(seq 100); do
    tid=$(grep -l '^fleet-renew$' /proc/$dpid/task/*/comm 2>/dev/null | head -1 | cut -d/ -f5 || true)
    [ -n "$tid" ] && break
    sleep 0.1
  done
  sleep 2
  timeout -s INT 10 strace -q -p "$tid" -e trace=sendto,write,recvfrom,read,clock_nanosleep,nanosleep \
    -o "$dir/trace" || true
  kill -TERM "$dpid"; wait "$dpid" 2>/dev/null || true; dpid=""
  sleeps=$(grep -cE 'nanosleep\(' "$dir/trace" || true)
  writes=$(grep -cE '^(sendto|write)\(' "$dir/trace" || true)
  reads=$(grep -E '^(recvfrom|read)\(' "$dir/trace" | grep -cvE '= -1 ' || true)
  echo "$bin: $sleeps renewals; per renewal: $(python3 -c "print(f'{$writes/$sleeps:.1f} writes, {$reads/$sleeps:.1f} reads with data')")"
  grep -h "round trips to the database" "$dir/cronwarden.log" | sed 's/^/  log: /' || true
  if [ -n "${KEEP:-}" ]; then cp "$dir/trace" "$KEEP.$n"; fi
done
