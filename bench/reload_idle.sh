#!/usr/bin/env bash
# Idle wake-ups with and without `reload_on_change` (issue 22): two daemons side by side, each
# with 100 jobs scheduled far away (`0 0 1 1 *`), one watching its table. After 10 s of
# settling, the voluntary + involuntary context switches of all their threads are counted
# over WINDOW seconds (default 120), as bench/daemon.sh counts them; then the watched table
# is edited once, to show that the watch works while it is measured.
# Usage: bench/reload_idle.sh   (builds the release binary unless CRONWARDEN_BIN names one)
set -euo pipefail
cd "$(dirname "$0")/.."
window=${WINDOW:-120}
if [ -n "${CRONWARDEN_BIN:-}" ]; then bin=$CRONWARDEN_BIN
else cargo build --release --quiet; bin=${CARGO_TARGET_DIR:-target}/release/cronwarden; fi
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
table() { # NAME EXTRA-SETTING
    mkdir -p "$dir/$1"
    {
        printf '[settings]\ntimezone = "UTC"\nstate_dir = "%s/state"\nlock_dir = "%s/run"\n' \
            "$dir/$1" "$dir/$1"
        printf 'log_file = "%s/cronwarden.log"\n%s\n\n' "$dir/$1" "$2"
        for i in $(seq 1 100); do
            printf '[jobs.j%s]\nschedule = "0 0 1 1 *"\ncommand = ["/bin/true"]\n\n' "$i"
        done
    } > "$dir/$1/jobs.toml"
}
table plain ""
table watched "reload_on_change = true"
for t in plain watched; do
    "$bin" -c "$dir/$t/jobs.toml" daemon 2>>"$dir/$t/stderr" &
    pids+=($!)
done
csw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'; }
sleep 10
a0=$(csw "${pids[0]}"); b0=$(csw "${pids[1]}")
sleep "$window"
a1=$(csw "${pids[0]}"); b1=$(csw "${pids[1]}")
echo "context switches in ${window} s: reload_on_change = false: $((a1 - a0)); true: $((b1 - b0))"
echo "# edited" >> "$dir/watched/jobs.toml"
for _ in $(seq 1 100); do
    grep -q ' reload: new table loaded' "$dir/watched/cronwarden.log" && break
    sleep 0.1
done
grep ' reload: new table loaded' "$dir/watched/cronwarden.log" ||
    { echo "reload_idle: the watched daemon did not reload" >&2; exit 1; }
