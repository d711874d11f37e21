#!/usr/bin/env python3
"""Turns one run of bench/all.sh into markdown, ready for BENCHMARKS.md. Usage: report.py DIR

DIR is the run's results folder: machine.env and load.txt (written by all.sh), check/ (from
bench/check.sh), run/ (bench/run.sh) and daemon/ (bench/daemon.sh), each with its log. A part
that did not run, or failed, shows as "not measured" instead of stopping the report."""
import json
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import daemon_report  # noqa: E402  (latencies, percentiles and the detailed daemon table)

TOOLS = ["cronwarden", "cron", "yacron", "chronic"]
NA = "n/a"
NOT = "not measured"


def kv(path):
    try:
        return dict(l.split("=", 1) for l in path.read_text().splitlines() if "=" in l)
    except FileNotFoundError:
        return {}


def ms(v):
    return f"{v:.2f} ms" if abs(v) < 10 else f"{v:.0f} ms"


def verdict(ok):
    return "pass" if ok else "**MISS**"


def hyperfine(path):
    """name -> {mean, stddev, median, min, max, cpu (mean user + system)} in ms, from hyperfine's JSON."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    out = {}
    for r in data["results"]:
        name = r.get("command_name") or r["command"]
        out[name] = {k: (r.get(k) or 0) * 1000 for k in ("mean", "stddev", "median", "min", "max", "user", "system")}
        out[name]["cpu"] = out[name]["user"] + out[name]["system"]
        out[name]["runs"] = len(r.get("times") or [])
    return out


def capture(path):
    """label -> (best seconds, that run's GB/s, peak RSS in MiB over all runs, number of runs)."""
    runs = {}
    try:
        for line in path.read_text().splitlines():
            label, secs, kib = line.split()
            runs.setdefault(label, []).append((float(secs), int(kib)))
    except FileNotFoundError:
        return {}
    return {
        label: (min(s for s, _ in r), 2**30 / max(min(s for s, _ in r), 1e-9) / 1e9,
                max(k for _, k in r) / 1024, len(r))
        for label, r in runs.items()
    }


def smaps_groups(path, label=None):
    """Groups /proc/PID/smaps by what is mapped: {group: {Rss, Pss, Shared, Private, Anon}}.
    The executable is the file of the first mapping; its groups are named `label` (default: its
    file name)."""
    groups = {}
    cur = None
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    head = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")
    first = lines[0].split() if lines else []
    exe = first[5] if len(first) > 5 else ""
    exe_name = label or exe.rsplit("/", 1)[-1]
    for line in lines:
        if head.match(line):
            f = line.split()
            perms, name = f[1], (f[5] if len(f) > 5 else "")
            base = name.rsplit("/", 1)[-1]
            if name.startswith("/"):
                kind = "code" if "x" in perms else ("data, relocated" if "w" in perms else "read-only data")
                if name == exe:
                    cur = f"{exe_name} executable: {kind}"
                elif base.startswith("libc.so"):
                    cur = f"libc.so.6: {kind}"
                elif base.startswith("ld-linux"):
                    cur = f"ld.so: {kind}"
                else:
                    cur = f"other libraries ({kind})"
            elif name == "[heap]":
                cur = "[heap] (malloc)"
            elif name == "[stack]":
                cur = "[stack] (main thread)"
            elif name.startswith("["):
                cur = name
            else:
                cur = "anonymous (thread stacks, mmap'd malloc)"
            groups.setdefault(cur, {"Rss": 0, "Pss": 0, "Shared": 0, "Private": 0, "Anon": 0})
            continue
        if cur is None or ":" not in line:
            continue
        key, _, rest = line.partition(":")
        try:
            v = int(rest.split()[0])
        except (ValueError, IndexError):
            continue
        g = groups[cur]
        if key == "Rss":
            g["Rss"] += v
        elif key == "Pss":
            g["Pss"] += v
        elif key in ("Shared_Clean", "Shared_Dirty"):
            g["Shared"] += v
        elif key in ("Private_Clean", "Private_Dirty"):
            g["Private"] += v
        elif key == "Anonymous":
            g["Anon"] += v
    return groups


def main():
    d = Path(sys.argv[1])
    m = kv(d / "machine.env")
    out = []
    p = out.append

    # ---- collect -------------------------------------------------------------------------
    row = {}  # key -> (metric, target, {tool: cell})
    notes = []

    # daemon
    dd = d / "daemon"
    meta = kv(dd / "meta")
    if meta.get("m0"):
        m0, burst = int(meta["m0"]), int(meta["burst"])
        window = float(meta["window"])
        minutes = {m0, m0 + 60, m0 + 120}
        seconds = {x + s for x in minutes for s in range(1, 60)}
        cells = {}
        for tool in ("cronwarden", "cron", "yacron"):
            lat, missed = daemon_report.latencies(daemon_report.starts(dd / tool / "single.txt"), minutes, 60)
            minute_cell = (f"`* * * * *`: max {ms(lat[-1])} of n={len(lat)}" if lat else "`* * * * *`: no samples") + (
                f", {missed} missed" if missed else "")
            if tool == "cronwarden":
                ps, pmiss = daemon_report.latencies(daemon_report.starts(dd / tool / "persec.txt"), seconds, 1)
                if ps:
                    p99 = daemon_report.pct(ps, 0.99)
                    ok = p99 < 5 and not pmiss and not missed and lat and lat[-1] < 5
                    cells[tool] = (f"{verdict(ok)}: p99 {ms(p99)} (per-second job, n={len(ps)}"
                                   f"{f', {pmiss} missed' if pmiss else ''}; p50 {ms(daemon_report.pct(ps, .5))}); {minute_cell}")
                else:
                    cells[tool] = "no samples"
            else:
                cells[tool] = (f"{verdict(bool(lat) and lat[-1] < 5 and not missed)}: {minute_cell} "
                               "(minute granularity only)") if lat else minute_cell
        cells["chronic"] = NA
        row["lat1"] = ("Start latency after the scheduled instant, 1 job (p99)", "< 5 ms", cells)
        fl, _ = daemon_report.latencies(daemon_report.starts(dd / "floor" / "persec.txt"),
                                        {s + 0.5 for s in seconds}, 1, 0.5)
        fb = [(t - burst - 30) * 1000 for t in daemon_report.starts(dd / "floor" / "burst.txt")]
        if fl:
            notes.append(f"Machine floor during the same run (a python loop: sleep, then posix_spawn of the same "
                         f"`sh -c 'date ...'` job, half a second off the daemons' instants, bench/daemon_floor.py): "
                         f"p99 {ms(daemon_report.pct(fl, .99))}, p50 {ms(daemon_report.pct(fl, .5))} (n={len(fl)})"
                         + (f"; 100 at once: last started after {ms(fb[-1])}" if fb else "") + ".")
        cells = {}
        for tool in ("cronwarden", "cron", "yacron"):
            b = daemon_report.starts(dd / tool / "burst.txt")
            if b:
                lat = [(t - burst) * 1000 for t in b]
                ok = len(b) == 100 and lat[-1] < 250
                cells[tool] = f"{verdict(ok)}: last {ms(lat[-1])} ({len(b)}/100 started; first {ms(lat[0])})"
            else:
                cells[tool] = "**MISS**: 0/100 started"
        cells["chronic"] = NA
        row["lat100"] = ("100 jobs due at the same instant: start latency of the last", "< 250 ms", cells)
        cells, pss_cells, priv_cells = {}, {}, {}
        for tool in ("cronwarden", "cron", "yacron"):
            rss = meta.get(f"{tool}_rss_kb")
            cells[tool] = f"{verdict(int(rss) < 2560)}: {int(rss) / 1024:.2f} MiB ({rss} kB)" if rss else NOT
            g = smaps_groups(dd / f"{tool}.smaps")
            if g:
                pss = sum(v["Pss"] for v in g.values())
                priv = sum(v["Private"] for v in g.values())
                pss_cells[tool] = f"PSS {pss / 1024:.2f} MiB; private {priv / 1024:.2f} MiB"
            else:
                pss_cells[tool] = NOT
        cells["chronic"] = pss_cells["chronic"] = NA
        row["rss"] = ("Idle RSS (VmRSS), 100 jobs scheduled `0 0 1 1 *`", "< 2.5 MiB", cells)
        row["pss"] = ("Idle memory, same processes: PSS (shared pages divided among their users) and "
                      "private (this process's own pages)", "(no target)", pss_cells)
        cells = {}
        for tool in ("cronwarden", "cron", "yacron"):
            csw = meta.get(f"{tool}_csw")
            if csw:
                per = int(csw) * 60 / window
                cells[tool] = (f"{verdict(per <= 1)}: {per:.1f} / min ({csw} context switches in {window:.0f} s, "
                               f"{meta.get(f'{tool}_threads', '?')} threads)")
            else:
                cells[tool] = NOT
        cells["chronic"] = NA
        row["wake"] = ("Idle wake-ups, same processes (context switches of all threads)", "<= 1 / min", cells)
        try:
            lines = (dd / "meta").read_text().splitlines()
        except FileNotFoundError:
            lines = []
        killed = [l.split("=", 1)[1] for l in lines if l.startswith("killed=")]
        for l in lines:
            if l.startswith("died="):
                notes.append(f"**Warning**: {l[5:]} (phase b: idle) exited during the idle window, so the idle "
                             "rows are not measured; daemon/logs-b/ has the daemons' logs.")
        for k in killed:
            notes.append(f"**Warning**: {k} (phase a: latency, b: idle) did not exit within 10 s of SIGTERM and "
                         f"was killed; daemon/{k}.hang in the results folder has its threads' kernel stacks, "
                         "daemon/logs-*/ the daemons' logs.")
    else:
        for k, name, t in (("lat1", "Start latency, 1 job (p99)", "< 5 ms"),
                           ("lat100", "Last of 100 simultaneous jobs", "< 250 ms"),
                           ("rss", "Idle RSS, 100 jobs", "< 2.5 MiB"),
                           ("wake", "Idle wake-ups", "<= 1 / min")):
            row[k] = (name, t, {x: NOT for x in TOOLS})

    # run overhead
    hf = hyperfine(d / "run" / "overhead.json")
    if hf.get("true"):
        base = hf["true"]["median"]
        cells = {"cron": NA, "yacron": NA}
        for tool in ("cronwarden", "chronic"):
            r = hf.get(tool)
            if r:
                over = r["median"] - base
                cells[tool] = (f"{verdict(over < 3)}: {ms(over)} (median {ms(r['median'])} vs "
                               f"{ms(base)} for `/bin/true`; mean {ms(r['mean'])} ± {ms(r['stddev'])})")
            else:
                cells[tool] = NOT
        row["run"] = ("`run` overhead over `/bin/true` itself (medians of 300 runs)", "< 3 ms", cells)
    else:
        row["run"] = ("`run` overhead", "< 3 ms", {x: NOT for x in TOOLS})

    cap = capture(d / "run" / "capture.txt")
    if cap:
        cells = {"cron": NA, "yacron": NA}
        for tool, label in (("cronwarden", "cronwarden"), ("chronic", "chronic")):
            if label in cap:
                secs, gbs, mib, n = cap[label]
                ok = gbs >= 1 and mib <= 10
                cells[tool] = f"{verdict(ok)}: {gbs:.2f} GB/s ({secs:.2f} s, best of {n}), peak RSS {mib:.1f} MiB (max of {n})"
            else:
                cells[tool] = NOT
        row["capture"] = ("Output capture of a job printing 1 GiB: throughput, peak RSS", ">= 1 GB/s within 10 MB", cells)
        if "head" in cap:
            secs, gbs, mib, n = cap["head"]
            notes.append(f"The same `head -c 1GiB /dev/zero` straight to /dev/null: {gbs:.2f} GB/s ({secs:.2f} s) "
                         "on this machine.")
    else:
        row["capture"] = ("Output capture, 1 GiB", ">= 1 GB/s within 10 MB", {x: NOT for x in TOOLS})

    ck = hyperfine(d / "check" / "check.json")
    sizes = kv(d / "check" / "sizes")
    for t in ("typical", "heavy"):
        r = ck.get(t)
        size = f"{int(sizes[t + '_bytes']) / 1e6:.1f} MB" if sizes.get(t + "_bytes") else "?"
        desc = {"typical": "schedule and command, a zone and retries on some jobs",
                "heavy": "env, params and verify on every job"}[t]
        cell = (f"{verdict(r['mean'] < 100)}: {ms(r['mean'])} ± {ms(r['stddev'])} (median {ms(r['median'])}, "
                f"min {ms(r['min'])}, {r['runs']} runs; CPU user+sys {ms(r['cpu'])})") if r else NOT
        row["check_" + t] = (f"`check` of 10,000 jobs, {t} table ({size}: {desc})", "< 100 ms",
                             {"cronwarden": cell, "cron": NA, "yacron": NA, "chronic": NA})

    # ---- print ---------------------------------------------------------------------------
    p("## Machine\n")
    p(f"- {m.get('nproc', '?')} cores: {m.get('cpu', '?')}; {m.get('mem', '?')} memory; "
      f"virtualisation: {m.get('virt', '?')}")
    p(f"- {m.get('os', '?')}, kernel {m.get('kernel', '?')}, {m.get('glibc', '?')}; temp dirs on {m.get('tmpfs', '?')}")
    p(f"- cronwarden {m.get('cronwarden', '?')} (`--release`; {m.get('rustc', '?')})")
    p(f"- Debian cron {m.get('cron', '?')}; yacron {m.get('yacron', '?')} on {m.get('python', '?')} (venv bench/.venv); "
      f"chronic from moreutils {m.get('moreutils', '?')}; hyperfine {m.get('hyperfine', '?')}; GNU time {m.get('gnutime', '?')}")
    p(f"- Run: {m.get('started', '?')} to {m.get('ended', '?')}, {m.get('duration', '?')}, `{m.get('command', 'bench/all.sh')}`")
    p("")
    p("Load (`uptime`) around each part. Other work on the machine shows up in every latency and time below:\n")
    p("| when | uptime |")
    p("|---|---|")
    try:
        for line in (d / "load.txt").read_text().splitlines():
            when, _, up = line.partition("|")
            p(f"| {when.strip()} | `{up.strip()}` |")
    except FileNotFoundError:
        p("| ? | not recorded |")
    p("")
    p("## Results\n")
    p("| metric | target | cronwarden | cron | yacron | chronic |")
    p("|---|---|---|---|---|---|")
    for k in ("lat1", "lat100", "rss", "pss", "wake", "run", "capture", "check_typical", "check_heavy"):
        if k in row:
            name, target, cells = row[k]
            p(f"| {name} | {target} | " + " | ".join(cells.get(t, NA) for t in TOOLS) + " |")
    p("")
    p("pass / **MISS** is against the target of the row, for every tool it applies to. n/a: the tool has no "
      "such function (cron and yacron have no one-shot `run` or `check`; chronic is no scheduler). "
      "MiB = 1024 kB as /proc reports it. Latencies are wall-clock times at which the job's "
      "`date +%s.%N` ran, minus the scheduled instant: they include fork and exec of `/bin/sh` and "
      "`date`, the same for every tool.")
    for n in notes:
        p("")
        p(n)
    p("")

    p("## Details\n")
    if meta.get("m0"):
        p("### Daemons (bench/daemon.sh, bench/daemon_report.py)\n")
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            sys.argv = ["daemon_report.py", str(dd)]
            daemon_report.main()
        p(buf.getvalue().rstrip())
        p("")
        p("### Idle memory by mapping (from /proc/PID/smaps after the idle window, kB)\n")
        for tool in ("cronwarden", "cron", "yacron"):
            g = smaps_groups(dd / f"{tool}.smaps", label=tool if tool != "yacron" else None)
            if not g:
                continue
            tot = {k: sum(v[k] for v in g.values()) for k in ("Rss", "Pss", "Shared", "Private", "Anon")}
            p(f"{tool}: RSS {tot['Rss']} kB = shared {tot['Shared']} + private {tot['Private']}; "
              f"PSS {tot['Pss']} kB; anonymous {tot['Anon']} kB, file-backed {tot['Rss'] - tot['Anon']} kB.\n")
            if tool == "yacron":
                continue
            p("| mapping | RSS | PSS | shared | private | anonymous |")
            p("|---|---|---|---|---|---|")
            for name, v in sorted(g.items(), key=lambda kv_: -kv_[1]["Rss"]):
                if v["Rss"]:
                    p(f"| {name} | {v['Rss']} | {v['Pss']} | {v['Shared']} | {v['Private']} | {v['Anon']} |")
            p("")
    if hf:
        p("### `run` overhead (bench/run.sh, hyperfine -N, 300 runs, 20 warm-up)\n")
        p("| command | mean | ± | median | min | max | CPU user+sys (mean) |")
        p("|---|---|---|---|---|---|---|")
        for name, r in hf.items():
            p(f"| {name} | {ms(r['mean'])} | {ms(r['stddev'])} | {ms(r['median'])} | {ms(r['min'])} | {ms(r['max'])} | {ms(r['cpu'])} |")
        p("")
    if cap:
        p("### 1 GiB of output (bench/run.sh, GNU time, best of 3)\n")
        p("| runner | best time | throughput | peak RSS (max of runs) |")
        p("|---|---|---|---|")
        for label, (secs, gbs, mib, n) in cap.items():
            p(f"| {label} | {secs:.2f} s | {gbs:.2f} GB/s | {mib:.1f} MiB |")
        p("")
    if ck:
        p("### `check` of 10,000 jobs (bench/check.sh, hyperfine -N, 30 runs, 3 warm-up)\n")
        p("| table | mean | ± | median | min | max | CPU user+sys (mean) |")
        p("|---|---|---|---|---|---|---|")
        for name, r in ck.items():
            p(f"| {name} | {ms(r['mean'])} | {ms(r['stddev'])} | {ms(r['median'])} | {ms(r['min'])} | {ms(r['max'])} | {ms(r['cpu'])} |")
        p("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
