#!/usr/bin/env python3
"""Turns the raw samples of bench/daemon.sh into its markdown table. Usage: daemon_report.py DIR

The floor column comes from daemon_floor.py (half a second, or 30 s, after its own instants).
DIR/meta holds key=value lines written by daemon.sh (the scheduled instants and the idle
measurements); DIR/TOOL/{single,persec,burst}.txt hold one `date +%s.%N` line per job start."""
import math
import sys
from pathlib import Path

TOOLS = ["cronwarden", "cron", "yacron", "floor"]
TARGETS = {
    "single": "",
    "persec": "p99 < 5 ms",
    "burst": "last < 250 ms",
    "rss": "< 2.5 MiB",
    "wake": "<= 1 / min",
}


def starts(path):
    try:
        return sorted(float(x) for x in path.read_text().split())
    except FileNotFoundError:
        return []


def pct(sorted_ms, q):
    """Nearest-rank percentile."""
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


def ms(v):
    return f"{v:.2f} ms" if abs(v) < 10 else f"{v:.0f} ms"


def latencies(samples, instants, period, offset=0.0):
    """Latency of each sample after the latest expected instant at or before it (within
    `period`, instants at `offset` past a multiple of it); returns (sorted latencies in ms,
    number of instants without a start)."""
    lat, hit = [], set()
    for t in samples:
        s = math.floor((t - offset) / period) * period + offset
        if s in instants and s not in hit:
            hit.add(s)
            lat.append((t - s) * 1000)
    return sorted(lat), len(instants) - len(hit)


def main():
    d = Path(sys.argv[1])
    meta = dict(
        line.split("=", 1) for line in (d / "meta").read_text().splitlines() if "=" in line
    )
    m0, burst = int(meta["m0"]), int(meta["burst"])
    minutes = {m0, m0 + 60, m0 + 120}
    seconds = {m + s for m in minutes for s in range(1, 60)}
    window = float(meta["window"])
    rows = {k: [] for k in ["single", "persec", "burst", "rss", "wake"]}
    for tool in TOOLS:
        if tool == "floor":
            rows["single"].append("see the row below")
            lat, missed = latencies(starts(d / tool / "persec.txt"),
                                    {s + 0.5 for s in seconds}, 1, 0.5)
            rows["persec"].append(f"n={len(lat)}: p50 {ms(pct(lat, .5))}, p99 {ms(pct(lat, .99))}, "
                                  f"max {ms(lat[-1])}" if lat else "no samples")
            b = starts(d / tool / "burst.txt")
            lat = [(t - burst - 30) * 1000 for t in b]
            rows["burst"].append(f"{len(b)}/100 started; first {ms(lat[0])}, median "
                                 f"{ms(pct(lat, .5))}, **last {ms(lat[-1])}**" if b else "none")
            rows["rss"].append("")
            rows["wake"].append("")
            continue
        lat, missed = latencies(starts(d / tool / "single.txt"), minutes, 60)
        cell = "no samples" if not lat else f"p50 {ms(pct(lat, .5))}, max {ms(lat[-1])}"
        rows["single"].append(cell + (f" ({missed} missed)" if missed else ""))

        if tool == "cronwarden":
            lat, missed = latencies(starts(d / tool / "persec.txt"), seconds, 1)
            cell = "no samples" if not lat else (
                f"n={len(lat)}: p50 {ms(pct(lat, .5))}, p99 {ms(pct(lat, .99))}, "
                f"max {ms(lat[-1])}")
            rows["persec"].append(cell + (f" ({missed} missed)" if missed else ""))
        else:
            rows["persec"].append("n/a (minute granularity)")

        b = starts(d / tool / "burst.txt")
        if b:
            lat = [(t - burst) * 1000 for t in b]
            rows["burst"].append(
                f"{len(b)}/100 started; first {ms(lat[0])}, median {ms(pct(lat, .5))}, "
                f"**last {ms(lat[-1])}**")
        else:
            rows["burst"].append("0/100 started")

        rss = meta.get(f"{tool}_rss_kb")
        rows["rss"].append(f"{int(rss) / 1024:.2f} MiB ({rss} kB)" if rss else "n/a")
        csw = meta.get(f"{tool}_csw")
        thr = meta.get(f"{tool}_threads", "?")
        rows["wake"].append(
            f"{int(csw) * 60 / window:.1f} / min ({csw} in {window:.0f} s, {thr} threads)"
            if csw else "n/a")

    names = {
        "single": "1. start latency, one `* * * * *` job (3 minutes)",
        "persec": "1. start latency, per-second job (seconds 1-59 of the same 3 minutes)",
        "burst": "2. 100 jobs due the same minute: start latency",
        "rss": "3. idle VmRSS, 100 jobs `0 0 1 1 *`",
        "wake": "4. idle wake-ups (context switches, all threads)",
    }
    heads = [t if t != "floor" else "floor (sleep + posix_spawn)" for t in TOOLS]
    print("| measure | " + " | ".join(heads) + " | target (cronwarden) |")
    print("|---|" + "---|" * len(TOOLS) + "---|")
    for k, cells in rows.items():
        print(f"| {names[k]} | " + " | ".join(cells) + f" | {TARGETS[k]} |")


if __name__ == "__main__":
    main()
