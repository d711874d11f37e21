#!/usr/bin/env python3
"""Writes a job table with N jobs (default 10,000) to stdout. Used by bench/check.sh.

  gen-table.py N          "heavy": every job also has env, params and a verify check, every
                          fifth is a pipeline step (about 280 bytes a job)
  gen-table.py N --lean   "typical": schedule and command, a zone on every fourth job and
                          retries on every third (about 100 bytes a job)
"""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
if "--lean" in sys.argv:
    zones = ["UTC", "Europe/Berlin", "America/New_York"]
    scheds = ["0 3 * * *", "*/15 * * * *", "30 2 * * mon-fri", "0 0 1 * *", "@hourly"]
    out = ["[settings]", 'timezone = "Europe/Berlin"', ""]
    for i in range(n):
        out.append(f"[jobs.job-{i:05d}]")
        out.append(f'schedule = "{scheds[i % 5]}"')
        out.append(f'command = ["/usr/local/bin/task", "--id", "{i}"]')
        if i % 3 == 0:
            out.append("retries = 2")
        if i % 4 == 0:
            out.append(f'timezone = "{zones[i % 3]}"')
        out.append("")
    print("\n".join(out))
    sys.exit(0)
zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
scheds = ["0 3 * * *", "*/15 * * * *", "30 2 * * mon-fri", "0 0 1 * *", "15,45 9-17 * * 1-5",
          "@hourly", "@every 90m", "0 */6 * * *", "5 4 * * sun", "0 0 29 2 */7"]
out = ["[settings]", 'timezone = "Europe/Berlin"', "",
       "[defaults]", 'timeout = "1h"', "retries = 2", 'alert = ["ops"]', "",
       "[alerts.ops]", 'type = "email"', 'smtp_url = "smtp://127.0.0.1:2525"',
       'from = "cron@example.com"', 'to = ["ops@example.com"]', ""]
for i in range(n):
    out.append(f"[jobs.job-{i:05d}]")
    if i % 5 == 4:
        out.append(f'after = ["job-{i - 1:05d}"]')
    else:
        out.append(f'schedule = "{scheds[i % len(scheds)]}"')
        out.append(f'timezone = "{zones[i % len(zones)]}"')
    out.append(f'command = ["/usr/local/bin/task", "--id", "{i}", "--day", "{{{{ ds }}}}"]')
    out.append('env = { MODE = "{{ params.mode }}" }')
    out.append('params = { mode = "full" }')
    out.append(f'verify = {{ files = ["/var/tmp/out-{i}-{{{{ ds_nodash }}}}.csv"], min_size = "1KiB" }}')
    out.append("")
print("\n".join(out))
