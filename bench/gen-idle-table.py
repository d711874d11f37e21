#!/usr/bin/env python3
"""Writes a table of N idle jobs, one distinct `M H D Mon *` instant each (none due soon):
the table of the idle-memory figures (BENCHMARKS.md, "Idle memory by USS and PSS").

  gen-idle-table.py N STATE_DIR > table.toml
"""
import sys

n = int(sys.argv[1])
state = sys.argv[2]
out = ["[settings]", f'state_dir = "{state}/state"', f'lock_dir = "{state}/run"',
       f'log_file = "{state}/log"', ""]
for i in range(n):
    m, h, d, mon = i % 60, (i // 60) % 24, (i // 1440) % 28 + 1, (i // 40320) % 12 + 1
    out.append(f'[jobs.j{i}]\nschedule = "{m} {h} {d} {mon} *"\n'
               f'command = "/usr/local/bin/job-{i} --flag"\n')
print("\n".join(out))
