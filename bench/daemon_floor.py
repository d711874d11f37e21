#!/usr/bin/env python3
"""The floor column of bench/daemon.sh: the same job (`/bin/sh -c 'date +%s.%N >> FILE'`)
started by the simplest possible scheduler, a loop that sleeps until the instant and calls
posix_spawn, so the table shows what this machine can do at that moment.

Usage: daemon_floor.py DIR M0 BURST. Runs at half-second offsets, so that it never competes
with the daemons' own jobs: at s + 0.5 for s = 1..59 of the minutes M0, M0+60, M0+120
(DIR/persec.txt), and 100 spawns at once at BURST + 30 (DIR/burst.txt)."""
import os
import sys
import time


def run(out, events):
    """Sleeps until each (instant, name, count) event in turn and posix_spawns `count` copies
    of the job, appending to OUT/NAME.txt; events already past are skipped."""
    for at, name, n in sorted(events):
        delay = at - time.time()
        if delay < 0:
            continue
        time.sleep(delay)
        argv = ["sh", "-c", f"date +%s.%N >> {out}/{name}.txt"]
        pids = [os.posix_spawn("/bin/sh", argv, os.environ) for _ in range(n)]
        for p in pids:
            os.waitpid(p, 0)


if __name__ == "__main__":
    out, m0, burst = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    events = [(m + s + 0.5, "persec", 1) for m in (m0, m0 + 60, m0 + 120) for s in range(1, 60)]
    events.append((burst + 30, "burst", 100))
    run(out, events)
