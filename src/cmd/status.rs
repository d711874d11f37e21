//! `cronwarden status`: every job at a glance (running or idle, last and next run, failure
//! streak, stale deadline, success rate), from the state directory or the fleet (with or
//! without a running daemon).

use jiff::Timestamp;

use std::path::Path;

use super::job_args::find_job;
use super::list::{relative, render_kept};
use super::{CmdResult, Failure, connect, exit, load_or_fail, print};
use crate::config::Job;
use crate::control::JobHealth;
use crate::coord::status::{Health, JobStatus, job_status, json_value};
use crate::coord::{Doubt, Role};
use crate::lock;
use crate::record::{Outcome, RunRecord};
use crate::units::{format_cpu_seconds, format_size};

pub(super) fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// A run's duration and attempts as the tables show them: "-" where they are unknown (a lost
/// run's record, written ahead, has neither).
pub(super) fn duration_and_attempts(r: &RunRecord) -> (String, String) {
    let lost = r.outcome == Outcome::Lost;
    (
        if lost && r.duration_ms == 0 {
            "-".to_string()
        } else {
            duration(r.duration_ms)
        },
        if lost && r.attempts.is_empty() {
            "-".to_string()
        } else {
            r.attempt_count().to_string()
        },
    )
}

/// Whether process `id` exists (with `group`, a process of the group `id`): kill(2) with
/// no signal, where EPERM means it exists but is another user's.
fn exists(id: i32, group: bool) -> bool {
    use nix::sys::signal::{kill, killpg};
    use nix::unistd::Pid;
    if id <= 1 {
        return id == 1 && !group;
    }
    let r = if group {
        killpg(Pid::from_raw(id), None)
    } else {
        kill(Pid::from_raw(id), None)
    };
    r != Err(nix::errno::Errno::ESRCH) && (group || !zombie(id))
}

/// Whether process `pid` has died and waits to be reaped (state Z in /proc/PID/stat).
fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(false)
}

/// A run in progress, for the STATE column: who supervises it, and what the lock file alone
/// does not say: that its supervisor is gone (the job's processes, which inherited the lock,
/// still hold it), or that no attempt runs now (a retry wait, or the run is finishing).
/// Processes of another fleet node are not looked at; a fleet run whose node is silent, or
/// that its node no longer holds, is said so in short (the note below the table tells more).
fn running_text(h: &lock::Holder, node: Option<&str>, doubt: Option<&Doubt>) -> String {
    if let (Some(d), Some(n)) = (doubt, node) {
        return match d.kind {
            "unreachable" | "lost" => format!("running on {n}? ({n} {})", d.kind),
            "stopped" => format!("ended on {n}, unreported ({n} stopped)"),
            "fenced" => format!("fenced on {n}"),
            _ => format!("ended on {n}, unreported"),
        };
    }
    let mut s = format!("running since {}", h.since.as_deref().unwrap_or("?"));
    match (h.pid, node) {
        (Some(p), Some(n)) => s.push_str(&format!(" (pid {p}) on {n}")),
        (None, Some(n)) => s.push_str(&format!(" on {n}")),
        (Some(p), None) if !exists(p, false) => s.push_str(&format!(
            " (pid {p} is gone; the job's processes still hold the lock)"
        )),
        (Some(p), None) => {
            s.push_str(&format!(" (pid {p})"));
            // The lock names an attempt's group only while that attempt runs.
            if h.pgid.is_none_or(|g| !exists(g, true)) {
                s.push_str(", waiting to retry or finishing");
            }
        }
        (None, None) => {}
    }
    s
}

pub(super) fn exit_of(r: &RunRecord) -> String {
    match r.attempts.last() {
        Some(a) => match (a.exit_code, a.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => crate::runner::signal_name(s),
            _ => "-".to_string(),
        },
        None => "-".to_string(),
    }
}

impl JobStatus {
    /// The NEXT RUN column: when the job runs by itself next, or why it does not.
    pub(super) fn next_text(&self, now: Timestamp, daemon: Option<bool>) -> String {
        if !self.enabled {
            "disabled".to_string()
        } else if self.next.is_none() {
            "-".to_string()
        } else if self.paused {
            "paused".to_string()
        } else if daemon == Some(false) {
            "no daemon".to_string()
        } else {
            self.next
                .map_or_else(|| "-".to_string(), |t| relative(now, t))
        }
    }
}

/// `status [JOB | --tag T] [--json] [--nodes]`.
pub(super) fn status(
    path: &Path,
    (only, tag): (Option<&str>, Option<&str>),
    json: bool,
    nodes: bool,
) -> CmdResult {
    let cfg = load_or_fail(path)?;
    if nodes {
        let coord = connect(&cfg, Role::Client)?;
        let fleet = coord.node().is_some();
        return super::nodes::print(&coord.nodes(&cfg.settings)?, json, fleet);
    }
    super::job_args::check_tag(&cfg, tag)?;
    let jobs: Vec<&Job> = match only {
        Some(name) => vec![find_job(&cfg, name)?],
        None => cfg
            .jobs
            .iter()
            .filter(|j| tag.is_none_or(|t| j.has_tag(t)))
            .collect(),
    };
    let coord = connect(&cfg, Role::Client)?;
    let now = Timestamp::now();
    let mut running = coord.running(&cfg.settings, &jobs)?;
    let paused = coord.paused(&cfg.settings)?;
    let all: Vec<JobStatus> = jobs
        .iter()
        .map(|j| job_status(&cfg, &*coord, j, now, &paused, &mut running))
        .collect::<Result<_, _>>()?;
    let daemon = coord.daemon_running(&cfg.settings);
    let nodes = coord.nodes(&cfg.settings)?;
    if daemon == Some(false) {
        print::errln(format!(
            "no daemon is running for {}: no job runs by itself until one starts",
            path.display()
        ));
    }
    let health = daemon_health(&cfg.settings);
    if json {
        print_json(&all, daemon, &health)
    } else {
        print_table(&all, now, daemon)?;
        for s in &all {
            if let (Some(d), Some(h)) = (&s.doubt, &s.running) {
                let id = h.run_id.as_deref().unwrap_or("?");
                print::out(format!("{}: run {id}: {}\n", s.name, d.text))?;
            }
        }
        if !nodes.is_empty() {
            print::out(format!("\n{}", super::nodes::table_text(&nodes)))?;
        }
        if let Some((mode, why)) = &health.containment {
            print::out(format!("containment: {mode}: {why}\n"))?;
        }
        for p in &health.problems {
            print::out(format!(
                "state: the daemon cannot record runs: {p}; jobs keep running\n"
            ))?;
        }
        // The backend's own (fleet: nodes over the latency budget, skewed clocks).
        for n in coord.notes() {
            print::out(format!("{n}\n"))?;
        }
        Ok(exit::OK)
    }
}

/// What this host's daemon says of itself through its control socket: what keeps it from
/// doing its work fully (a state directory it cannot write, which it cannot record in a
/// file either) and how it contains runs; nothing when no daemon answers.
fn daemon_health(settings: &crate::config::Settings) -> Health {
    let req = crate::control::Request {
        cmd: "health".into(),
        ..Default::default()
    };
    match crate::control::request(settings, &req) {
        Ok(r) if r.ok => Health {
            problems: r.problems,
            containment: r.containment,
        },
        _ => Health::default(),
    }
}

fn print_json(all: &[JobStatus], daemon: Option<bool>, health: &Health) -> CmdResult {
    let text = serde_json::to_string_pretty(&json_value(all, daemon, health))
        .map_err(|e| Failure::usage(e.to_string()))?;
    print::out(format!("{text}\n"))?;
    Ok(exit::OK)
}

/// The columns of the text view, in order; CPU and PEAK (of the last run) are shown only
/// when a job's last run has one of them, STREAK (failed runs since the last success) when a
/// job has one, STALE (when the job goes, or went, stale without a success) when a job has
/// `expect_success_within`, TAGS when a job has tags.
const HEADER: [&str; 13] = [
    "JOB", "STATE", "LAST RUN", "OUTCOME", "STREAK", "DURATION", "CPU", "PEAK", "ATTEMPTS",
    "NEXT RUN", "STALE", "SUCCESS", "TAGS",
];

fn print_table(all: &[JobStatus], now: Timestamp, daemon: Option<bool>) -> CmdResult {
    print::out(table_text(all, now, daemon))?;
    Ok(exit::OK)
}

/// The text view: one row per job, with the columns of [`HEADER`] that apply.
fn table_text(all: &[JobStatus], now: Timestamp, daemon: Option<bool>) -> String {
    let rows: Vec<[String; 13]> = all.iter().map(|s| row(s, now, daemon)).collect();
    let tagged = all.iter().any(|s| !s.tags.is_empty());
    let usage = all.iter().any(|s| {
        s.last
            .as_ref()
            .is_some_and(|r| r.facts.usage != Default::default())
    });
    let streak = all.iter().any(|s| s.health.failure_streak > 0);
    let stale = all.iter().any(|s| s.health.expect_success_within.is_some());
    let keep: Vec<usize> = (0..HEADER.len())
        .filter(|i| match i {
            4 => streak,
            6 | 7 => usage,
            10 => stale,
            12 => tagged,
            _ => true,
        })
        .collect();
    render_kept(&HEADER, &rows, &keep)
}

/// The STALE cell: when the job goes stale ("in 25h 3m"), or since when it is ("3m 2s
/// ago"); "-" without `expect_success_within` (or a start to count from).
fn stale_text(h: &JobHealth, now: Timestamp) -> String {
    match h.stale_deadline {
        None => "-".to_string(),
        Some(d) if h.stale => relative(d, now).replacen("in ", "", 1) + " ago",
        Some(d) => relative(now, d),
    }
}

/// One job's cells, in the order of [`HEADER`].
fn row(s: &JobStatus, now: Timestamp, daemon: Option<bool>) -> [String; 13] {
    let state = match &s.running {
        Some(h) => running_text(h, s.node.as_deref(), s.doubt.as_ref()),
        None => "idle".to_string(),
    };
    let state = if s.paused {
        format!("{state}, paused")
    } else {
        state
    };
    let dash = || "-".to_string();
    let (when, outcome, (dur, attempts)) = match &s.last {
        Some(r) => (
            r.started
                .parse::<Timestamp>()
                .map(|t| relative(t, now).replacen("in ", "", 1) + " ago")
                .unwrap_or_else(|_| r.started.clone()),
            match &s.skipped_since {
                Some((n, _)) => format!("{} (then {n} skipped)", r.outcome.as_str()),
                None => r.outcome.as_str().to_string(),
            },
            duration_and_attempts(r),
        ),
        None => ("never".into(), dash(), (dash(), dash())),
    };
    let usage = s.last.as_ref().map(|r| &r.facts.usage);
    let cpu = usage.and_then(|u| u.cpu_seconds);
    let peak = usage.and_then(|u| u.peak_memory_bytes);
    let next = s.next_text(now, daemon);
    let rate = s
        .rate
        .map(|(ok, n)| format!("{}% of {n}", ok * 100 / n))
        .unwrap_or_else(dash);
    [
        s.name.clone(),
        state,
        when,
        outcome,
        s.health.failure_streak.to_string(),
        dur,
        cpu.map_or_else(dash, format_cpu_seconds),
        peak.map_or_else(dash, format_size),
        attempts,
        next,
        stale_text(&s.health, now),
        rate,
        s.tags.join(","),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::{rec, with_facts};

    fn idle(name: &str, last: Option<RunRecord>) -> JobStatus {
        JobStatus {
            name: name.to_string(),
            paused: false,
            running: None,
            node: None,
            doubt: None,
            last,
            skipped_since: None,
            next: None,
            enabled: true,
            rate: Some((0, 1)),
            health: JobHealth {
                job: name.to_string(),
                ..JobHealth::default()
            },
            tags: Vec::new(),
        }
    }

    #[test]
    fn the_last_runs_cpu_and_peak_are_columns_only_when_known() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().expect("instant");
        let plain = [idle("a", Some(rec("r1"))), idle("b", None)];
        let text = table_text(&plain, now, Some(true));
        assert!(!text.contains("CPU") && !text.contains("PEAK"), "{text}");
        assert!(
            text.lines()
                .next()
                .is_some_and(|h| h.contains(" DURATION  ATTEMPTS ")),
            "{text}"
        );
        let used = [idle("a", Some(with_facts("r2"))), idle("b", None)];
        let text = table_text(&used, now, Some(true));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains(" DURATION  CPU    PEAK     ATTEMPTS "),
            "{text}"
        );
        let a: Vec<&str> = lines[1].split_whitespace().collect();
        let at = a.iter().position(|c| *c == "failure").expect("outcome");
        // DURATION, CPU, PEAK, ATTEMPTS, then NEXT RUN and SUCCESS.
        assert_eq!(
            a[at + 1..],
            ["1.0s", "0.61s", "64.2MiB", "1", "-", "0%", "of", "1"]
        );
        let b: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            b[..],
            [
                "b", "idle", "never", "-", "-", "-", "-", "-", "-", "0%", "of", "1"
            ]
        );
    }

    #[test]
    fn streak_and_stale_are_columns_only_when_a_job_has_them() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().expect("instant");
        let failed = RunRecord {
            outcome: Outcome::Failure,
            ..rec("r1")
        };
        let mut a = idle("a", Some(failed));
        a.health.failure_streak = 3;
        a.health.expect_success_within = Some("1h".to_string());
        a.health.stale_deadline = "2026-01-01T00:58:30Z".parse().ok();
        a.health.stale = true;
        let mut b = idle("b", None);
        b.health.expect_success_within = Some("2h".to_string());
        b.health.stale_deadline = "2026-01-01T02:30:00Z".parse().ok();
        let text = table_text(&[a, b, idle("c", None)], now, Some(true));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains(" OUTCOME  STREAK  DURATION "), "{text}");
        assert!(
            lines[0].contains(" NEXT RUN  STALE       SUCCESS"),
            "{text}"
        );
        let cells = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let a = cells(lines[1]);
        let at = a.iter().position(|c| c == "failure").expect("outcome");
        assert_eq!(a[at + 1..at + 3], ["3", "1.0s"]);
        assert!(lines[1].contains(" 1m 30s ago "), "{text}");
        assert!(lines[2].contains(" in 1h 30m "), "{text}");
        // No expect_success_within: "-".
        assert_eq!(cells(lines[3])[..6], ["c", "idle", "never", "-", "0", "-"]);
        let none = table_text(&[idle("c", None)], now, Some(true));
        assert!(
            !none.contains("STREAK") && !none.contains("STALE"),
            "{none}"
        );
    }

    #[test]
    fn json_has_the_last_runs_cpu_and_peak() {
        let v = json_value(
            &[idle("a", Some(with_facts("r")))],
            Some(true),
            &Health::default(),
        );
        let last = &v[0]["last_run"];
        assert_eq!(last["run_id"], "r");
        assert_eq!(last["cpu_seconds"], 0.61);
        assert_eq!(last["peak_memory_bytes"], 67_318_989);
        assert_eq!(last["leftovers"][0]["pid"], 123);
        assert_eq!(last["attempts"][0]["cpu_seconds"], 0.25);
        let v = json_value(&[idle("a", Some(rec("r")))], Some(true), &Health::default());
        assert!(v[0]["last_run"].get("cpu_seconds").is_none(), "{v:#}");
    }

    #[test]
    fn a_fleet_run_in_doubt_is_not_shown_as_plainly_running() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().expect("instant");
        let holder = lock::Holder {
            pid: None,
            pgid: None,
            since: Some("2026-01-01T00:59:00Z".into()),
            run_id: Some("r9".into()),
        };
        let mut sure = idle("a", None);
        sure.running = Some(holder.clone());
        sure.node = Some("n1".into());
        let mut late = idle("b", None);
        late.running = Some(holder.clone());
        late.node = Some("n2".into());
        late.doubt = Some(Doubt {
            kind: "unreachable",
            text: "running on n2? n2 is unreachable: no heartbeat for 8.0s".into(),
        });
        let mut ended = idle("c", None);
        ended.running = Some(holder);
        ended.node = Some("n3".into());
        ended.doubt = Some(Doubt {
            kind: "unreported",
            text: "n3 is live but no longer holds its lease".into(),
        });
        let text = table_text(&[sure, late, ended], now, Some(true));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].contains("running since 2026-01-01T00:59:00Z on n1 "),
            "{text}"
        );
        assert!(
            lines[2].contains(" running on n2? (n2 unreachable) "),
            "{text}"
        );
        assert!(lines[3].contains(" ended on n3, unreported "), "{text}");
        assert!(!lines[3].contains("running"), "{text}");
    }

    #[test]
    fn json_says_a_run_in_doubt_is_unconfirmed_and_why() {
        let mut s = idle("b", None);
        s.running = Some(lock::Holder::default());
        s.node = Some("n2".into());
        s.doubt = Some(Doubt {
            kind: "lost",
            text: "running on n2? n2 is lost".into(),
        });
        let v = json_value(&[s, idle("c", None)], None, &Health::default());
        assert_eq!(v[0]["state"], "unconfirmed");
        assert_eq!(v[0]["running_node"], "n2");
        assert_eq!(v[0]["running_doubt"]["kind"], "lost");
        assert_eq!(v[0]["running_doubt"]["text"], "running on n2? n2 is lost");
        assert_eq!(v[1]["state"], "idle");
        assert!(v[1]["running_doubt"].is_null());
    }

    #[test]
    fn a_taken_over_run_counts_the_attempts_before_it() {
        let mut r = with_facts("r");
        assert_eq!(duration_and_attempts(&r).1, "1");
        r.attempts[0].attempt = 2;
        assert_eq!(duration_and_attempts(&r).1, "2");
    }
}
