#!/usr/bin/env python3
"""Turns a run of bench/scale.sh into markdown: one table per size with cronwarden, cron and
floor columns and pass/MISS for each target of issue 21. Usage: scale_report.py DIR

DIR holds run.env and load.txt, and per size N a folder N/ with meta (key=value lines),
{cronwarden,cron}-{20s,65s}.rollup (/proc/PID/smaps_rollup), check.json (hyperfine) and
{cronwarden,floor}/{persec,burst}.txt (one `date +%s.%N` line per job start)."""
import json
import math
import sys
from pathlib import Path

MB = 1_000_000 / 1024  # kB (KiB, as /proc counts) in a decimal megabyte


def kv(path):
    try:
        return dict(l.split("=", 1) for l in path.read_text().splitlines() if "=" in l)
    except FileNotFoundError:
        return {}


def starts(path):
    try:
        return sorted(float(x) for x in path.read_text().split())
    except FileNotFoundError:
        return []


def rollup(path):
    """RSS, PSS, USS in kB, or None."""
    try:
        f = {l.split(":")[0]: int(l.split()[1]) for l in path.read_text().splitlines()[1:]}
    except FileNotFoundError:
        return None
    return f["Rss"], f["Pss"], f["Private_Clean"] + f["Private_Dirty"]


def pct(v, q):
    """Nearest-rank percentile of a sorted list."""
    return v[max(0, math.ceil(q * len(v)) - 1)]


def ms(v):
    return f"{v:.2f} ms" if abs(v) < 10 else f"{v:.0f} ms"


def kb(v):
    return f"{v} kB ({v / MB:.2f} MB)" if v >= 1000 else f"{v} kB"


def verdict(ok):
    return "pass" if ok else "**MISS**"


def persec(samples, p0, count, offset):
    """Latencies (ms, sorted) of the starts at p0 + k + offset, k < count; and how many of
    those instants had none."""
    lat, hit = [], set()
    for t in samples:
        k = math.floor(t - offset) - p0
        if 0 <= k < count and k not in hit:
            hit.add(k)
            lat.append((t - (p0 + k + offset)) * 1000)
    return sorted(lat), count - len(hit)


def check_cell(d):
    try:
        r = json.loads((d / "check.json").read_text())["results"][0]
    except (FileNotFoundError, KeyError, IndexError, ValueError):
        return "not measured"
    n = len(r["times"])
    return (f"mean {ms(r['mean'] * 1000)} ± {ms(r['stddev'] * 1000)}, min {ms(r['min'] * 1000)} "
            f"({n} runs)")


class Size:
    def __init__(self, d, n):
        self.d, self.n, self.meta = d, n, kv(d / "meta")
        self.mem = {(t, s): rollup(d / f"{t}-{s}.rollup")
                    for t in ("cronwarden", "cron") for s in ("20s", "65s")}

    def uss(self, tool):
        m = self.mem[(tool, "65s")]
        return m[2] if m else None


def memory_rows(s, smallest):
    rows = []
    for when, label in (("20s", "20 s after the start"), ("65s", "65 s (after the minute's wake-up)")):
        cells = []
        for tool in ("cronwarden", "cron"):
            m = s.mem[(tool, when)]
            cells.append(f"RSS {m[0]}, PSS {m[1]}, **USS {m[2]}** kB" if m else "not measured")
        rows.append((f"idle memory {label}", "", *cells, "", ""))
    cw, cr = s.uss("cronwarden"), s.uss("cron")
    if cw is not None and cr is not None:
        rows.append(("idle USS per job (USS / jobs)", "", f"{cw * 1024 / s.n:.0f} B",
                     f"{cr * 1024 / s.n:.0f} B", "", ""))
    b = smallest
    if b is not None and b.n < s.n and None not in (cw, cr, b.uss("cronwarden"), b.uss("cron")):
        per = {t: (s.uss(t) - b.uss(t)) * 1024 / (s.n - b.n) for t in ("cronwarden", "cron")}
        rows.append((f"idle USS per added job (vs {b.n} jobs)", "<= cron's",
                     f"{per['cronwarden']:.0f} B", f"{per['cron']:.0f} B", "",
                     verdict(per["cronwarden"] <= per["cron"])))
    if cw is not None and s.n == 100:
        rows.append(("idle USS, 100 jobs", "<= 1 MB", kb(cw), kb(cr) if cr else "", "",
                     verdict(cw <= MB)))
    if cw is not None and s.n == 100000:
        rows.append(("idle USS, 100,000 jobs", "<= 40 MB", kb(cw), kb(cr) if cr else "", "",
                     verdict(cw <= 40 * MB)))
    return rows


def latency_rows(s):
    m, d = s.meta, s.d
    if "burst" not in m:
        return [("start latency", "", "not measured", "", "", "")]
    p0, count, burst = int(m["p0"]), int(m["count"]), int(m["burst"])
    rows = []
    cw, cmiss = persec(starts(d / "cronwarden" / "persec.txt"), p0, count, 0.0)
    fl, fmiss = persec(starts(d / "floor" / "persec.txt"), p0, count, 0.5)

    def cell(lat, miss):
        if not lat:
            return "no samples"
        c = f"n={len(lat)}: p50 {ms(pct(lat, .5))}, **p99 {ms(pct(lat, .99))}**, max {ms(lat[-1])}"
        return c + (f" ({miss} missed)" if miss else "")
    ok = bool(cw) and bool(fl) and not cmiss and pct(cw, .99) <= pct(fl, .99) + 1.5
    rows.append(("per-second job: start latency", "p99 <= floor's + 1.5 ms", cell(cw, cmiss),
                 "n/a (minutes only)", cell(fl, fmiss), verdict(ok)))
    cb = bursts(starts(d / "cronwarden" / "burst.txt"), burst)
    fb = bursts(starts(d / "floor" / "burst.txt"), burst + 5)

    def bcell(lats):
        if not any(lats):
            return "none started"
        first = lats[0]
        lasts = [f"{ms(b[-1])}" for b in lats if b]
        c = (f"{sum(map(len, lats))}/{100 * BURSTS} started; median of the {BURSTS} instants' "
             f"last start **{ms(median_last(lats))}** (each: {', '.join(lasts)})")
        if first:
            c += f"; first instant: median {ms(pct(first, .5))}, last {ms(first[-1])}"
        return c
    complete = all(len(b) == 100 for b in cb + fb)
    c, f = median_last(cb), median_last(fb)
    ok = complete and c <= 1.3 * f
    ratio = f" ({c / f:.2f}x the floor)" if f > 0 and c > 0 else ""
    rows.append(("100 jobs due the same second (4 instants 10 s apart): start latency",
                 "last <= 1.3x floor's (median of the instants)", bcell(cb) + ratio,
                 "n/a (not measured)", bcell(fb), verdict(ok)))
    return rows


# The 100 jobs are due at BURST + 10 k, k < BURSTS (bench/scale_tables.py); the floor's 100
# at 5 s after each.
BURSTS = 4


def bursts(stamps, at):
    """Start latencies (ms, sorted) of each burst, from `at` + 10 k."""
    out = [[] for _ in range(BURSTS)]
    for t in stamps:
        k = int((t - at) // 10)
        if 0 <= k < BURSTS:
            out[k].append((t - at - 10 * k) * 1000)
    return [sorted(b) for b in out]


def median_last(lats):
    """The median over the bursts of each one's last start (0 when none started)."""
    lasts = sorted(b[-1] for b in lats if b)
    if not lasts:
        return 0.0
    mid = len(lasts) // 2
    return lasts[mid] if len(lasts) % 2 else (lasts[mid - 1] + lasts[mid]) / 2


def load_rows(s):
    m = s.meta
    size = int(m.get("table_bytes", 0))
    rows = [("`check` of the full table" + (f" ({size / 1e6:.1f} MB)" if size >= 1e6 else
                                            f" ({size / 1e3:.0f} kB)" if size else ""),
             "", check_cell(s.d), "n/a", "", "")]
    ready = []
    for k, label in (("idle_ready_s", "idle table"), ("active_ready_s", "full table")):
        if k in m:
            ready.append(f"{label} {ms(float(m[k]) * 1000)}")
    rows.append(("daemon start until ready (exec to READY=1)", "", "; ".join(ready) or
                 "not measured", "", "", ""))
    return rows


def main():
    out = Path(sys.argv[1])
    env = kv(out / "run.env")
    sizes = [Size(out / n, int(n)) for n in env.get("sizes", "").split()
             if (out / n).is_dir()]
    smallest = min(sizes, key=lambda s: s.n) if sizes else None
    p = print
    p(f"Scale (bench/scale.sh): cronwarden {env.get('cronwarden', '?')}, Debian cron "
      f"{env.get('cron', '?')}; {env.get('machine', '?')}; temp dir on {env.get('tmp', '?')}. "
      f"Run {env.get('started', '?')} to {env.get('ended', '?')} ({env.get('duration', '?')}).")
    p()
    for s in sizes:
        m = s.meta
        p(f"#### {s.n:,} jobs")
        p()
        p(f"{s.n:,} idle jobs `M H D Mon * /usr/local/bin/job-i --flag`, none due for months; "
          f"cron got the same jobs in {m.get('cron_files', '?')} file(s) of /etc/cron.d. The "
          "full table adds 100 jobs due at the same second (four times, 10 s apart) and one "
          "every second.")
        p()
        p("| measure | target | cronwarden | cron | floor (sleep + posix_spawn) | |")
        p("|---|---|---|---|---|---|")
        for r in load_rows(s) + memory_rows(s, smallest) + latency_rows(s):
            p("| " + " | ".join(r) + " |")
        p()
    p("USS = Private_Clean + Private_Dirty of /proc/PID/smaps_rollup, kB = 1024 bytes; "
      "MB = 10^6 bytes; the memory targets are judged on the 65 s sample. Latency = the "
      "time the job's `date +%s.%N` ran minus its instant. "
      "The floor starts the same commands half a second off the per-second instants and "
      "5 s after each of the 100's instants (the 100 are due four times, 10 s apart; the "
      "first is each job's first run, which makes its files: its output directory and "
      "dispatch mark).")
    p()
    p("Load (`uptime`) before and after each part:")
    p()
    p("| when | uptime |")
    p("|---|---|")
    try:
        for line in (out / "load.txt").read_text().splitlines():
            when, _, up = line.partition(" | ")
            p(f"| {when} | `{up.strip()}` |")
    except FileNotFoundError:
        p("| (no load.txt) | |")


if __name__ == "__main__":
    main()
