#!/usr/bin/env bash
# The fleet partition lab in full (tests/fleet-lab/run.sh --full): every outage three times
# per scenario and longer observation, about three times as long as the short version. Prints each scenario's checks with
# their evidence and a summary table (docs/fleet.md, "The partition lab").
#
# Usage (as root): bench/fleet-partitions.sh [SCENARIO...]   (the names: --list)
set -euo pipefail
exec bash "$(dirname "$0")/../tests/fleet-lab/run.sh" --full "$@"
