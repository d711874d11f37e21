#!/usr/bin/env python3
"""The floor column of bench/scale.sh: the daemon's jobs (`/bin/sh -c 'date +%s.%N >> FILE'`)
started by the simplest possible scheduler, a loop that sleeps until the instant and calls
posix_spawn (as bench/daemon_floor.py), off the daemon's instants so that they never compete.

Usage: scale_floor.py DIR P0 COUNT BURST. One job at P0 + k + 0.5 for k = 0 .. COUNT-1
(DIR/persec.txt: the daemon's per-second job runs at the whole seconds), and 100 at once at
BURST + 5 + 10 k for k = 0 .. 3 (DIR/burst.txt: the daemon's 100 are due at BURST + 10 k)."""
import sys

from daemon_floor import run

out, p0, count, burst = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
events = [(p0 + k + 0.5, "persec", 1) for k in range(count)]
events += [(burst + 5 + 10 * k, "burst", 100) for k in range(4)]
run(out, events)
