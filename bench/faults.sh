#!/bin/sh
# Soaks the fault-injection tests (tests/cli/faults.rs): runs them ROUNDS times (default 20),
# each round with a new seed for the random kill -9 moments. A failing round prints the
# seed; `CW_FAULT_SEED=N cargo test --test cli faults::` replays it.
#
#   bench/faults.sh [ROUNDS] [TEST-FILTER]     e.g. bench/faults.sh 50 faults::kill_9
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-20}
filter=${2:-faults::}
cargo test -q --test cli --no-run
log=$(mktemp)
trap 'rm -f "$log"' EXIT
i=0
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
    start=$(date +%s)
    if CW_FAULT_SEED=$seed cargo test -q --test cli "$filter" >"$log" 2>&1; then
        echo "round $i/$rounds: ok in $(($(date +%s) - start)) s (CW_FAULT_SEED=$seed)"
    else
        cat "$log"
        echo "round $i/$rounds FAILED: replay with CW_FAULT_SEED=$seed cargo test --test cli $filter"
        exit 1
    fi
done
echo "$rounds rounds passed"
