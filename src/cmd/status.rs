//! `cronwarden status` and `cronwarden history`: what ran and how it went, from the state
//! directory (with or without a running daemon).

use jiff::Timestamp;

use super::list::{relative, render_table};
use super::run::find_job;
use super::{CmdResult, Failure, exit};
use crate::config::{Config, Job};
use crate::lock;
use crate::record::{self, Outcome, RunRecord};
use crate::schedule::format_rfc3339;

/// How many recent runs the success rate covers.
const RATE_WINDOW: usize = 20;

fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

fn exit_of(r: &RunRecord) -> String {
    match r.attempts.last() {
        Some(a) => match (a.exit_code, a.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => crate::runner::signal_name(s),
            _ => "-".to_string(),
        },
        None => "-".to_string(),
    }
}

/// Running (with the holder's pid and start) when the job's lock is held, else idle.
fn running(cfg: &Config, job: &Job) -> Option<lock::Holder> {
    lock::held_by(&cfg.settings.lock_dir, &job.name)
}

struct JobStatus {
    name: String,
    paused: bool,
    running: Option<lock::Holder>,
    /// Fleet mode: the node the running run is on.
    node: Option<String>,
    last: Option<RunRecord>,
    next: Option<Timestamp>,
    rate: Option<(usize, usize)>,
}

/// Fleet mode: what the database says about every node's runs.
struct FleetView {
    fleet: &'static crate::fleet::Fleet,
    leases: std::collections::HashMap<String, crate::fleet::LeaseHolder>,
}

fn job_status(
    cfg: &Config,
    job: &Job,
    now: Timestamp,
    paused: &std::collections::HashSet<String>,
    fleet: Option<&FleetView>,
) -> Result<JobStatus, Failure> {
    let runs = match fleet {
        Some(v) => v
            .fleet
            .history(&job.name, RATE_WINDOW * 2)
            .map_err(fleet_failure)?,
        None => record::read(&cfg.settings.state_dir, &job.name).unwrap_or_default(),
    };
    let lease = fleet.and_then(|v| v.leases.get(&job.name));
    let finished: Vec<&RunRecord> = runs
        .iter()
        .rev()
        .filter(|r| r.outcome != Outcome::Skipped)
        .take(RATE_WINDOW)
        .collect();
    let ok = finished
        .iter()
        .filter(|r| r.outcome == Outcome::Success)
        .count();
    Ok(JobStatus {
        name: job.name.clone(),
        paused: paused.contains(&job.name),
        running: if job.overlap == crate::config::Overlap::Allow {
            None
        } else if let Some(l) = lease {
            Some(lock::Holder {
                pid: None,
                pgid: None,
                since: Some(l.since.clone()),
                run_id: Some(l.run_id.clone()),
            })
        } else if fleet.is_some() {
            None
        } else {
            running(cfg, job)
        },
        node: lease.map(|l| l.node.clone()),
        last: runs.last().cloned(),
        next: job
            .schedule
            .as_ref()
            .filter(|_| job.enabled)
            .and_then(|s| s.next_after(now)),
        rate: (!finished.is_empty()).then_some((ok, finished.len())),
    })
}

fn fleet_failure(e: String) -> Failure {
    Failure {
        code: exit::NO_DAEMON,
        message: format!("fleet database: {e}"),
    }
}

pub fn status(cfg: &Config, only: Option<&str>, json: bool) -> CmdResult {
    let jobs: Vec<&Job> = match only {
        Some(name) => vec![find_job(cfg, name)?],
        None => cfg.jobs.iter().collect(),
    };
    let now = Timestamp::now();
    let view = match crate::fleet::get() {
        Some(f) => Some(FleetView {
            fleet: f,
            leases: f.leases().map_err(fleet_failure)?,
        }),
        None => None,
    };
    let paused = match &view {
        Some(v) => v.fleet.paused().map_err(fleet_failure)?,
        None => crate::daemon::read_paused(&cfg.settings.state_dir),
    };
    let all: Vec<JobStatus> = jobs
        .iter()
        .map(|j| job_status(cfg, j, now, &paused, view.as_ref()))
        .collect::<Result<_, _>>()?;
    if json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|s| {
                serde_json::json!({
                    "job": s.name,
                    "state": if s.running.is_some() { "running" } else { "idle" },
                    "paused": s.paused,
                    "running_since": s.running.as_ref().and_then(|h| h.since.clone()),
                    "running_pid": s.running.as_ref().and_then(|h| h.pid),
                    "running_node": s.node,
                    "last_run": s.last,
                    "next_run": s.next.map(|t| t.to_string()),
                    "success_rate": s.rate.map(|(ok, n)| ok as f64 / n as f64),
                    "rate_runs": s.rate.map(|(_, n)| n),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Failure::usage(e.to_string()))?
        );
        return Ok(exit::OK);
    }
    let header = [
        "JOB", "STATE", "LAST RUN", "OUTCOME", "DURATION", "ATTEMPTS", "NEXT RUN", "SUCCESS",
    ];
    let rows: Vec<[String; 8]> = all
        .iter()
        .map(|s| {
            let state = match &s.running {
                Some(h) => format!(
                    "running since {}{}{}",
                    h.since.as_deref().unwrap_or("?"),
                    h.pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                    s.node
                        .as_ref()
                        .map(|n| format!(" on {n}"))
                        .unwrap_or_default()
                ),
                None => "idle".to_string(),
            };
            let state = if s.paused {
                format!("{state}, paused")
            } else {
                state
            };
            let (when, outcome, dur, attempts) = match &s.last {
                Some(r) => (
                    r.started
                        .parse::<Timestamp>()
                        .map(|t| relative(t, now).replacen("in ", "", 1) + " ago")
                        .unwrap_or_else(|_| r.started.clone()),
                    r.outcome.as_str().to_string(),
                    duration(r.duration_ms),
                    r.attempts.len().to_string(),
                ),
                None => ("never".into(), "-".into(), "-".into(), "-".into()),
            };
            let next = s
                .next
                .map(|t| relative(now, t))
                .unwrap_or_else(|| "-".to_string());
            let rate = s
                .rate
                .map(|(ok, n)| format!("{}% of {n}", ok * 100 / n))
                .unwrap_or_else(|| "-".to_string());
            [
                s.name.clone(),
                state,
                when,
                outcome,
                dur,
                attempts,
                next,
                rate,
            ]
        })
        .collect();
    print!("{}", render_table(&header, &rows));
    Ok(exit::OK)
}

pub fn history(cfg: &Config, name: &str, count: usize, json: bool) -> CmdResult {
    let job = find_job(cfg, name)?;
    let runs = match crate::fleet::get() {
        Some(f) => f.history(&job.name, count).map_err(fleet_failure)?,
        None => record::read(&cfg.settings.state_dir, &job.name).map_err(|e| Failure {
            code: exit::JOB_FAILED,
            message: format!("reading the history of {name}: {e}"),
        })?,
    };
    let recent = &runs[runs.len().saturating_sub(count)..];
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(recent).map_err(|e| Failure::usage(e.to_string()))?
        );
        return Ok(exit::OK);
    }
    let fleet = crate::fleet::get().is_some();
    let header = [
        "RUN ID",
        "SCHEDULED",
        "STARTED",
        "DURATION",
        "ATTEMPTS",
        "EXIT",
        "OUTCOME",
        "REASON",
        "NODE",
    ];
    let rows: Vec<[String; 9]> = recent
        .iter()
        .map(|r| {
            let started = r
                .started
                .parse::<Timestamp>()
                .map(|t| format_rfc3339(t, &job.tz))
                .unwrap_or_else(|_| r.started.clone());
            [
                r.run_id.clone(),
                r.scheduled.clone(),
                started,
                duration(r.duration_ms),
                r.attempts.len().to_string(),
                exit_of(r),
                r.outcome.as_str().to_string(),
                r.reason.clone().unwrap_or_default(),
                r.node.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if fleet {
        print!("{}", render_table(&header, &rows));
    } else {
        let h8: [&str; 8] = std::array::from_fn(|i| header[i]);
        let rows: Vec<[String; 8]> = rows
            .into_iter()
            .map(|r| std::array::from_fn(|i| r[i].clone()))
            .collect();
        print!("{}", render_table(&h8, &rows));
    }
    Ok(exit::OK)
}
