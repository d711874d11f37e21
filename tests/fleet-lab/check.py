#!/usr/bin/env python3
"""The fleet lab's checker: reads what one scenario left in its directory (the jobs' own
records, the alerts, the facts run.sh noted, the fleet's cronwarden_runs rows, the nodes'
logs) and prints one PASS/FAIL line per check with its evidence, then a SUMMARY line (a
row of the summary table). Exit status 1 when a check failed.

Usage: check.py SCENARIO DIR WINDOW_START WINDOW_END   (epoch seconds; instants in the
window are checked for exactly-once)

Environment: LAB_RAN_TWICE (regex, default 'ran[ -]twice'), LAB_MISSED_EVENT (default
missed), LAB_MAX_RT (round trips per renewal and per claim batch, default 1),
LAB_MAX_SESSIONS (default 10), LAB_DEAD_AFTER (default 5).
"""
import collections
import datetime
import json
import os
import re
import sys

SCEN, DIR, T_A, T_B = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if not 0 <= T_B - T_A <= 6 * 3600:
    sys.exit(f"check.py: the window {T_A}..{T_B} is not a lab run's")
RAN_TWICE = re.compile(os.environ.get("LAB_RAN_TWICE", r"ran[ -]twice"), re.I)
MISSED = os.environ.get("LAB_MISSED_EVENT", "missed")
MAX_RT = float(os.environ.get("LAB_MAX_RT", "1"))
MAX_SESSIONS = int(os.environ.get("LAB_MAX_SESSIONS", "10"))
DEAD_AFTER = float(os.environ.get("LAB_DEAD_AFTER", "5"))
# Renewal and claim statements, as the proxy sees their text.
RENEW_RE = re.compile(os.environ.get("LAB_RENEW_SQL", r"cronwarden_nodes\b.*\bSET\s+heartbeat"), re.I | re.S)
CLAIM_RE = re.compile(os.environ.get("LAB_CLAIM_SQL", r"INSERT\s+INTO\s+cronwarden_claims"), re.I | re.S)
PERIODS = {"tick": 1, "long": 5}

results = []  # (name, ok, evidence)
summary = []


def check(name, ok, evidence):
    results.append((name, ok, evidence))


def path(name):
    return os.path.join(DIR, name)


def lines(name):
    try:
        with open(path(name), errors="replace") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def epoch(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def hms(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%H:%M:%S")


# --- Inputs -----------------------------------------------------------------------------------

Rec = collections.namedtuple("Rec", "kind job node run attempt sched t")
records, overlaps = [], []
for l in lines("records"):
    f = l.split()
    if not f:
        continue
    if f[0] == "overlap":
        overlaps.append(l)
    elif f[0] in ("start", "end", "term") and len(f) == 7:
        records.append(Rec(f[0], f[1], f[2], f[3], int(f[4] or 0), epoch(f[5]), float(f[6])))

Alert = collections.namedtuple("Alert", "event job sched run node t subject msg")
alerts = []
for l in lines("alerts"):
    f = l.split("|", 7)
    if len(f) == 8:
        alerts.append(Alert(*f))

facts = [l.split() for l in lines("facts") if l.strip()]
runs = {}
for l in lines("runs.tsv"):
    f = l.split("\t")
    if len(f) >= 7:
        runs[f[0]] = {"job": f[1], "node": f[2], "state": f[3], "sched": int(f[4]) / 1000,
                      "attempt": f[5], "outcome": f[6], "reason": f[9] if len(f) > 9 else ""}
logs = lines("logs")

# --- Exactly once ----------------------------------------------------------------------------

by_instant = collections.defaultdict(list)
for r in records:
    by_instant[(r.job, r.sched)].append(r)


def expected(job):
    p = PERIODS[job]
    last = T_B - (6 if job == "long" else 0)
    t = T_A + (-T_A) % p
    while t <= last:
        yield float(t)
        t += p


def ran_twice_detected(run_ids, job):
    """A "ran twice" line naming one of the runs: in a node's log, an alert, or the reason
    of the run's record in cronwarden_runs."""
    if any(RAN_TWICE.search(runs.get(r, {}).get("reason", "")) for r in run_ids):
        return True
    for l in logs + [a.event + " " + a.subject + " " + a.msg + " " + a.run for a in alerts]:
        if RAN_TWICE.search(l) and any(r in l for r in run_ids):
            return True
    return False


missing, doubles, claimed_twice, detected = [], [], [], []
checked = 0
for job in PERIODS:
    for t in expected(job):
        checked += 1
        rs = sorted(by_instant.get((job, t), []), key=lambda r: r.t)
        starts = [r for r in rs if r.kind == "start"]
        if not starts:
            missing.append((job, t))
            continue
        if len({r.run for r in starts}) > 1:
            claimed_twice.append((job, t, sorted({r.run for r in starts})))
        ends = [r for r in rs if r.kind == "end"]
        # A copy that finished, and another start after it (or two finished copies): the
        # instant ran twice. A retry after a stopped (term) or killed copy is not a double.
        again = [s for s in starts if ends and s.t > ends[0].t]
        if len(ends) > 1 or again:
            d = (job, t, [f"{r.node}:{r.kind}@{hms(r.t)}" for r in rs])
            if ran_twice_detected({r.run for r in rs}, job):
                detected.append(d)
            else:
                doubles.append(d)

# Skips (overlap = "skip"): "warn skipped job=J run_id=R scheduled=T: another run holds
# ... (run HOLDER ...". A skip while the holder really ran is the job's overlap policy at
# work (alerted `skipped`); a skip on a lease whose run had ended more than a heartbeat
# before (by the jobs' own records) is a stale lease: the instant was lost.
SKIP_RE = re.compile(r"^(\S+) warn skipped job=(\S+) run_id=\S+ scheduled=(\S+): .*?\brun (\S+?)[,) ]")
last_stop = {}
for r in records:
    if r.kind in ("end", "term"):
        last_stop[r.run] = max(last_stop.get(r.run, 0.0), r.t)
legit_skips, stale_skips = set(), {}
for l in logs:
    m = SKIP_RE.search(l)
    if not m:
        continue
    at, job, sched, holder = epoch(m.group(1)), m.group(2), epoch(m.group(3)), m.group(4)
    ended = last_stop.get(holder)
    if ended is not None and ended < at - 1.0:
        stale_skips[(job, sched)] = f"{job}@{hms(sched)} skipped at {hms(at)} on the lease of {holder}, which ended at {hms(ended)}"
    else:
        legit_skips.add((job, sched))

# Instants a node coalesced into another run of the job ("coalesced job=J scheduled=T"):
# claimed, so no other node runs them.
COALESCED_RE = re.compile(r" coalesced job=(\S+) scheduled=(\S+?):\s")
coalesced = set()
for l in logs:
    m = COALESCED_RE.search(l)
    if m:
        coalesced.add((m.group(1), epoch(m.group(2))))

# Missing instants: alerted `missed` (naming the instant, or once per outage for the job).
missed_alerts = [a for a in alerts if a.event == MISSED]
unalerted, by_name, by_job = [], 0, 0
skipped_legit = [m for m in missing if m in legit_skips and m not in stale_skips]
missing = [m for m in missing if m not in skipped_legit]
# An instant its node had claimed when the lab stopped that node cleanly, before the run
# started: recorded `interrupted` with the reason (the daemon stopped), in the fleet's table;
# told, not silent (no other node runs it: docs/fleet.md says so).
stopped_with_node = [m for m in missing if any(
    r["job"] == m[0] and abs(r["sched"] - m[1]) < 0.5 and r["outcome"] == "interrupted"
    and "daemon stopped" in r["reason"] for r in runs.values())]
missing = [m for m in missing if m not in stopped_with_node]
for job, t in missing:
    iso = datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    named = [a for a in missed_alerts if a.job == job and (iso in a.sched or iso in a.msg)]
    if named:
        by_name += 1
    elif any(a.job == job for a in missed_alerts):
        by_job += 1
    else:
        unalerted.append((job, t))


def fmt_instants(xs, n=6):
    s = ", ".join(f"{j}@{hms(t)}" for j, t, *_ in xs[:n])
    return s + (f" (+{len(xs) - n} more)" if len(xs) > n else "")


allow_detected = SCEN == "drop-one-long"
check("exactly once", not unalerted and not doubles and not claimed_twice
      and (allow_detected or not detected),
      f"{checked} instants in {hms(T_A)}-{hms(T_B)}: {checked - len(missing) - len(stopped_with_node)} ran; "
      f"{len(missing)} missing ({by_name} alerted '{MISSED}' by instant, {by_job} by a "
      f"per-job '{MISSED}' alert, {len(unalerted)} not alerted"
      + (f": {fmt_instants(unalerted)}" if unalerted else "")
      + (f"; {len([m for m in unalerted if m in coalesced])} of them coalesced into another run"
         if any(m in coalesced for m in unalerted) else "") + "); "
      + (f"{len(skipped_legit)} skipped while the previous run still ran (overlap = skip); " if skipped_legit else "")
      + (f"{len(stopped_with_node)} recorded interrupted: its node was stopped before it started "
         f"({fmt_instants(stopped_with_node)}); " if stopped_with_node else "")
      + (f"stale-lease skips: {list(stale_skips.values())[:2]}; " if stale_skips else "")
      + f"{len(doubles) + len(detected)} ran twice ({len(detected)} detected and alerted)"
      + (f": {'; '.join(f'{j}@{hms(t)} {w}' for j, t, w in doubles[:4])}" if doubles else "")
      + (f"; claimed twice: {claimed_twice[:3]}" if claimed_twice else ""))

# --- No overlap --------------------------------------------------------------------------------

# (tick has overlap = "allow": copies of it may run at once; long and manual may not.)
EXCLUSIVE = ("long", "manual")
overlaps = [l for l in overlaps if l.split()[1] in EXCLUSIVE]
spans = collections.defaultdict(list)
for r in records:
    if r.kind == "start" and r.job in EXCLUSIVE:
        stop = [x.t for x in records if x.kind in ("end", "term") and x.run == r.run
                and x.attempt == r.attempt and x.node == r.node and x.t >= r.t]
        if stop:
            spans[r.job].append((r.t, min(stop), r.node, r.run))
crossing = []
for job, ss in spans.items():
    ss.sort()
    for a, b in zip(ss, ss[1:]):
        if b[0] < a[1]:
            crossing.append(f"{job} {a[2]}:{a[3]} until {hms(a[1])} and {b[2]}:{b[3]} from {hms(b[0])}")
check("no overlap", not overlaps and not crossing,
      f"{sum(len(s) for s in spans.values())} runs with both ends recorded; "
      f"{len(overlaps)} copies saw another alive, {len(crossing)} intervals crossed"
      + (f": {crossing[:2]} {overlaps[:2]}" if crossing or overlaps else ""))

# --- Every end in the fleet's table ------------------------------------------------------------

unrecorded = []
for r in records:
    if r.kind == "end" and r.job in PERIODS and T_A <= r.sched <= T_B:
        row = runs.get(r.run)
        # (Every lab job that reaches its end succeeded.)
        if not row or row["state"] != "done" or row["outcome"] != "success":
            unrecorded.append(f"{r.job}@{hms(r.sched)} {r.node}:{r.run} "
                              + (f"({row['state']} {row['outcome']})" if row else "(no row)"))
unrecorded_ids = {u.split()[1].split(":")[1] for u in unrecorded}
cut_runs = [f for f in facts if f[0] == "cut" and f[3] != "-"]
victims_not_done = []
for f in cut_runs:
    row = runs.get(f[3])
    ended = [r for r in records if r.kind == "end" and r.run == f[3] and r.node == f[2]]
    # Beyond the bound, the run may have been run again by another node: the node that
    # finished it first keeps its end beside the other's (run id RUN@INCARNATION), and the
    # double is detected and alerted.
    own = [v for k, v in runs.items() if k.startswith(f[3] + "@") and v["node"] == f[2]]
    kept_beside = any(v["state"] == "done" and v["outcome"] == "success" for v in own) \
        and ran_twice_detected({f[3]}, None)
    if ended and not kept_beside and not (row and row["state"] == "done" and row["node"] == f[2]
                                          and row["outcome"] == "success"):
        victims_not_done.append(f"{f[3]} ended on {f[2]} at {hms(ended[0].t)}; fleet row: "
                                + (f"{row['state']} {row['outcome']} on {row['node']}" if row else "none"))
# A NODE LOST alert about a run that had ended (by its own record) is false.
ended_at = {}
for r in records:
    if r.kind == "end":
        ended_at[r.run] = min(ended_at.get(r.run, r.t), r.t)
false_lost = [f"{a.run} ({a.job}@{hms(epoch(a.sched)) if a.sched else '?'}, ended {hms(ended_at[a.run])}, alerted {hms(float(a.t))} by {a.node})"
              for a in alerts if a.event == "node-lost" and a.run in ended_at and ended_at[a.run] < float(a.t)
              # (beyond the bound, a run that ran twice is told as such: that alert is due)
              and not ran_twice_detected({a.run}, a.job)]
check("ends recorded", not unrecorded and not victims_not_done and not false_lost,
      f"{len([r for r in records if r.kind == 'end' and r.job in PERIODS])} runs ended; "
      f"{len(unrecorded)} not 'done' with outcome success in cronwarden_runs"
      + (f": {unrecorded[:3]}" if unrecorded else "")
      + (f"; the cut runs: {victims_not_done}" if victims_not_done else
         (f"; the {len(cut_runs)} run(s) ending in a cut recorded done by their node" if cut_runs else ""))
      + (f"; {len(false_lost)} NODE LOST alert(s) about a run that had ended: {false_lost[:2]}" if false_lost else ""))

# --- Nothing left running ----------------------------------------------------------------------

fact = {f[0]: f[1:] for f in facts}
stuck_live = int(fact.get("stuck_live", ["0"])[0] or 0)
stuck_stopped = int(fact.get("stuck_stopped", ["0"])[0] or 0)
left = int(fact.get("leftovers", ["0"])[0] or 0)
check("nothing left running", stuck_live == 0 and stuck_stopped == 0 and left == 0,
      f"{stuck_live} run(s) 'running' for over 10 s with the fleet up, {stuck_stopped} 'running' "
      f"after every daemon stopped, {left} process(es) left")

# --- Sessions -----------------------------------------------------------------------------------

sess = [f[1:] for f in facts if f[0] == "sessions"]
bad, most, orph, slow = [], 0, 0, []
for rnd, node, count, orphans, took in sess:
    count, orphans, took = int(count), int(orphans), int(took)
    most, orph = max(most, count), max(orph, orphans)
    if count > MAX_SESSIONS or orphans > 0 or count < 0:
        bad.append(f"{node} after {rnd}: {count} sessions, {orphans} orphaned")
    if rnd != "end" and took < 0:
        slow.append(rnd)
check("no leaked sessions", not bad and not slow,
      f"at most {most} sessions per node (bound {MAX_SESSIONS}), at most {orph} orphaned "
      "(server sessions whose client socket is gone)"
      + (f"; not settled within 15 s after outage {', '.join(sorted(set(slow)))}" if slow else "")
      + (f": {bad[:3]}" if bad else ""))

problems = [" ".join(f[1:]) for f in facts if f[0] == "problem"] + lines("problems")
if problems:
    check("lab", False, "; ".join(problems))

# --- Scenario's own ------------------------------------------------------------------------------

if SCEN == "slow-link":
    n3log = lines("n3/daemon.log") + lines("manual.out") + lines("n3/stderr")
    # The fence's own log line (" fenced job=..."), not a warning that mentions fencing.
    fenced = [l for l in n3log if " fenced job=" in l]
    manual = [r for r in records if r.job == "manual" and r.kind == "start"]
    code = fact.get("manual_exit", ["?"])[0]
    check("slow node not fenced", not fenced and code == "0" and len(manual) == 1,
          f"`run manual` on n3 exited {code}, started {len(manual)} time(s)"
          + (f" ({', '.join(f'{r.node} attempt {r.attempt}' for r in manual)})" if manual else "")
          + f"; {len(fenced)} fence line(s) on n3" + (f": {fenced[0][:160]}" if fenced else ""))
    ages = [float(x) for x in lines("heartbeat_ages") if x.strip()]
    over = [a for a in ages if a > DEAD_AFTER]
    check("slow node's heartbeat", not over,
          f"{len(ages)} samples of n3's heartbeat age in the database: max "
          f"{max(ages) if ages else 0:.2f} s, {len(over)} over dead_after ({DEAD_AFTER:g} s)")
    # Round trips through the proxy.
    turns = collections.defaultdict(list)
    for l in lines("proxy.jsonl"):
        try:
            o = json.loads(l)
        except ValueError:
            continue
        if "turn" in o:
            turns[o["conn"]].append(o)
    renew_turns = renew_execs = claim_turns = claim_execs = 0
    per_conn = []
    for c, ts in turns.items():
        texts = [m for t in ts for m in t["msgs"]]
        if any(RENEW_RE.search(m[1]) for m in texts):
            # The connection that renews: its turns after the startup, per renewal.
            n = len([t for t in ts if not any(m[0] in ("startup", "ssl") for m in t["msgs"])])
            e = len([m for m in texts if m[0] in ("B", "Q") and RENEW_RE.search(m[1])])
            renew_turns += n
            renew_execs += e
            per_conn.append(f"conn {c}: {n} turns / {e} renewals")
        for t in ts:
            if any(CLAIM_RE.search(m[1]) for m in t["msgs"]):
                claim_turns += 1
            claim_execs += len([m for m in t["msgs"] if m[0] in ("B", "Q") and CLAIM_RE.search(m[1])])
    rt_renew = renew_turns / renew_execs if renew_execs else float("nan")
    rt_claim = claim_turns / claim_execs if claim_execs else float("nan")
    summary.append(f"{rt_renew:.1f} round trips per renewal, {rt_claim:.1f} per claim batch")
    check("round trips", renew_execs > 0 and rt_renew <= MAX_RT + 0.25 and (claim_execs == 0 or rt_claim <= MAX_RT + 0.25),
          f"through the proxy ({fact.get('delay', ['?'])[0]} ms each way): {rt_renew:.2f} round trips "
          f"per lease renewal ({renew_turns} turns / {renew_execs} renewals), {rt_claim:.2f} per claim "
          f"batch ({claim_turns} / {claim_execs}); allowed {MAX_RT:g}")

if SCEN == "skew":
    early = [r for r in records if r.kind == "start" and r.t < r.sched - 0.001]
    worst = max((r.sched - r.t for r in early), default=0.0)
    check("never early", not early,
          f"{len(early)} of {len([r for r in records if r.kind == 'start'])} starts before their "
          f"instant by the true clock (up to {worst:.1f} s early)"
          + (f", on {sorted({r.node for r in early})}" if early else ""))

# --- Output --------------------------------------------------------------------------------------

for name, ok, ev in results:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {ev}")
failed = [n for n, ok, _ in results if not ok]
ev = (f"{checked - len(missing) - len(stopped_with_node)}/{checked} instants ran, {len(missing)} missing ({len(unalerted)} "
      f"unalerted), {len(doubles) + len(detected)} twice ({len(detected)} detected), "
      f"{len(overlaps) + len(crossing)} overlaps, {len(unrecorded_ids | {v.split()[0] for v in victims_not_done})} ends not recorded by their node, "
      f"{stuck_live + stuck_stopped} stuck running, max {orph} orphaned sessions")
print(f"SUMMARY | {SCEN} | {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'} | "
      + "; ".join([ev] + summary) + " |")
sys.exit(1 if failed else 0)
