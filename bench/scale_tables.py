#!/usr/bin/env python3
"""The tables of bench/scale.sh: N idle jobs of the form `M H D Mon * /usr/local/bin/job-i
--flag` (as bench/gen-idle-table.py writes them), for cronwarden and for Debian's cron.

  scale_tables.py cronwarden N DIR > jobs.toml              # the N idle jobs only
  scale_tables.py cronwarden N DIR BURST OUT > jobs.toml    # and the 100 + 1 timed jobs
  scale_tables.py cron N CRON_D PREFIX                      # PREFIX-00, PREFIX-01, ... in CRON_D

Each idle job has its own instant, none of them due for months: the months are 4 to 6 after
the current one (gen-idle-table.py starts at January, which can be now). With BURST (a Unix
time) the table also has 100 jobs due at that second and 10, 20 and 30 s after it
(`S,S+10,S+20,S+30 M H * * *`, UTC: four bursts; BURST's second is at most 29) and one job every
second (`* * * * * *`), each `date +%s.%N >> OUT/burst.txt` or `OUT/persec.txt`, and
`max_concurrent = 128` so that the 100 may start at once (the default 64 queues 36 of them).

Debian's cron (3.0pl1-162) ignores a whole crontab file of more than 10,000 lines (10,003
loaded here, 10,004 not): it logs "crontab must not be longer than 10000 lines, this crontab
file will be ignored" and runs none of its jobs. So its jobs go into files of at most
CRON_LINES lines, named without dots (cron skips /etc/cron.d names with dots)."""
import os
import sys
import time

CRON_LINES = 5000
# How many times the 100 jobs are due, 10 s apart (the first burst is each job's first run).
BURSTS = 4


def instant(i, month_now):
    """Minute, hour, day, month of idle job i: all distinct for i < 120,960."""
    m, h, d = i % 60, (i // 60) % 24, (i // 1440) % 28 + 1
    mon = (month_now - 1 + 4 + (i // 40320) % 3) % 12 + 1
    return m, h, d, mon


def cronwarden(n, state, burst=None, out=None):
    month_now = time.gmtime().tm_mon
    lines = ["[settings]", 'timezone = "UTC"', f'state_dir = "{state}/state"',
             f'lock_dir = "{state}/run"', f'log_file = "{state}/log"']
    if burst is not None:
        lines.append("max_concurrent = 128")
    lines.append("")
    for i in range(n):
        m, h, d, mon = instant(i, month_now)
        lines.append(f'[jobs.j{i}]\nschedule = "{m} {h} {d} {mon} *"\n'
                     f'command = "/usr/local/bin/job-{i} --flag"\n')
    if burst is not None:
        t = time.gmtime(burst)
        for i in range(100):
            # (Wrapped into the minute for a BURST whose second is over 29: only `check`
            # reads such a table.)
            secs = ",".join(str(x) for x in sorted((t.tm_sec + 10 * k) % 60 for k in range(BURSTS)))
            lines.append(f'[jobs.burst-{i}]\nschedule = "{secs} {t.tm_min} {t.tm_hour} * * *"\n'
                         f'command = "date +%s.%N >> {out}/burst.txt"\n')
        lines.append(f'[jobs.persec]\nschedule = "* * * * * *"\n'
                     f'command = "date +%s.%N >> {out}/persec.txt"\n')
    sys.stdout.write("\n".join(lines))


def cron(n, cron_d, prefix):
    month_now = time.localtime().tm_mon
    files = []
    for k, start in enumerate(range(0, n, CRON_LINES)):
        path = os.path.join(cron_d, f"{prefix}-{k:02d}")
        with open(path, "w") as f:
            for i in range(start, min(n, start + CRON_LINES)):
                m, h, d, mon = instant(i, month_now)
                f.write(f"{m} {h} {d} {mon} * root /usr/local/bin/job-{i} --flag\n")
        os.chmod(path, 0o644)
        files.append(path)
    print(len(files))


def main():
    a = sys.argv[1:]
    if len(a) in (3, 5) and a[0] == "cronwarden":
        burst = (int(a[3]), a[4]) if len(a) == 5 else (None, None)
        cronwarden(int(a[1]), a[2], *burst)
    elif len(a) == 4 and a[0] == "cron":
        cron(int(a[1]), a[2], a[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
