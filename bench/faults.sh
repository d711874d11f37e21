#!/bin/sh
# Soaks the fault-injection tests: runs them ROUNDS times (default 20), each round with a new
# seed for the random kill -9 moments. A failing round prints the seed;
# `CW_FAULT_SEED=N cargo test --test cli -- FILTERS` replays it.
#
# The default FILTERS are every kind of fault the tests inject: kill -9 of the daemon and of
# `run` at random moments and orphaned jobs, full and read-only disks, a state dir that turns
# read-only (faults::); silent and failing mail servers and webhooks, slow channels, a
# growing spool (alert_faults::); closed pipes (pipes::); SIGSTOP, clock steps, removed
# lock_dir and control socket, skips on the instant (daemon::).
#
#   bench/faults.sh [ROUNDS] [FILTER...]     e.g. bench/faults.sh 50 faults::kill_9
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-20}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- faults:: alert_faults:: pipes:: daemon::
cargo test -q --test cli --no-run
log=$(mktemp)
trap 'rm -f "$log"' EXIT
i=0
t0=$(date +%s)
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
    start=$(date +%s)
    if CW_FAULT_SEED=$seed cargo test -q --test cli -- "$@" >"$log" 2>&1; then
        n=$(grep -o '[0-9]* passed' "$log" | tail -1)
        echo "round $i/$rounds: ok ($n) in $(($(date +%s) - start)) s (CW_FAULT_SEED=$seed)"
    else
        cat "$log"
        echo "round $i/$rounds FAILED: replay with CW_FAULT_SEED=$seed cargo test --test cli -- $*"
        exit 1
    fi
done
echo "$rounds rounds passed in $(($(date +%s) - t0)) s: $*"
