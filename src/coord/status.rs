//! What `status` tells of each job (running or idle, last and next run, failure streak,
//! stale deadline, success rate), as the coordinator's history and run state say it: built
//! here, below the command layer, so that `status --json` and the daemon's status page
//! (`/api/status`) show the same data.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

use super::{Coordinator, Running, standing};
use crate::config::{Config, Job};
use crate::control::JobHealth;
use crate::exit::Failure;
use crate::lock;
use crate::record::{Outcome, RunRecord};

/// How many recent runs the success rate covers.
pub(crate) const RATE_WINDOW: usize = 20;

pub(crate) struct JobStatus {
    pub(crate) name: String,
    pub(crate) paused: bool,
    pub(crate) running: Option<lock::Holder>,
    /// Fleet mode: the node the running run is on.
    pub(crate) node: Option<String>,
    /// The last real run (a skip only when there was none).
    pub(crate) last: Option<RunRecord>,
    /// Skips since the last real run: how many, and the newest of them.
    pub(crate) skipped_since: Option<(u64, RunRecord)>,
    pub(crate) next: Option<Timestamp>,
    pub(crate) enabled: bool,
    pub(crate) rate: Option<(usize, usize)>,
    /// Its failure streak and stale deadline.
    pub(crate) health: JobHealth,
}

pub(crate) fn job_status(
    cfg: &Config,
    coord: &dyn Coordinator,
    job: &Job,
    now: Timestamp,
    paused: &HashSet<String>,
    running: &mut HashMap<String, Running>,
) -> Result<JobStatus, Failure> {
    let runs = coord.history(&cfg.settings, &job.name, RATE_WINDOW * 2)?;
    let recent = Some((runs.as_slice(), RATE_WINDOW * 2));
    let read = standing::from_history(coord, &cfg.settings, &job.name, recent)?;
    let first_seen = standing::read_watched(&cfg.settings.state_dir, &job.name).first_seen;
    let first_seen = first_seen.or(read.oldest);
    let health = standing::job_health(cfg, job, &read.standing, first_seen, now);
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
    let running = match job.overlap {
        crate::config::Overlap::Allow => None,
        _ => running.remove(&job.name),
    };
    // Skips (one record per streak) never hide the last real run.
    let real = runs.iter().rposition(|r| r.outcome != Outcome::Skipped);
    let skips = &runs[real.map_or(runs.len(), |i| i + 1)..];
    let skipped_since = match (real, skips.last()) {
        (Some(_), Some(newest)) => {
            let count = skips.iter().map(RunRecord::runs).sum();
            Some((count, newest.clone()))
        }
        _ => None,
    };
    Ok(JobStatus {
        name: job.name.clone(),
        paused: paused.contains(&job.name),
        node: running.as_ref().and_then(|r| r.node.clone()),
        running: running.map(|r| r.holder),
        last: real.and_then(|i| runs.get(i)).or(runs.last()).cloned(),
        skipped_since,
        next: job
            .schedule
            .as_ref()
            .filter(|_| job.enabled)
            .and_then(|s| s.next_after(now)),
        enabled: job.enabled,
        rate: (!finished.is_empty()).then_some((ok, finished.len())),
        health,
    })
}

/// The daemon's answer to `health`.
#[derive(Default)]
pub(crate) struct Health {
    pub(crate) problems: Vec<String>,
    /// "cgroup" or "process", and why.
    pub(crate) containment: Option<(String, String)>,
}

/// What `status --json` prints: one object per job. `last_run` is the run's whole record,
/// with its `cpu_seconds` and `peak_memory_bytes` when they are known; `failure_streak` the
/// failed runs since the last success; `stale_deadline` (with `expect_success_within`) when
/// the job goes stale without a success, and `stale` whether it passed; `containment` is how
/// the daemon contains runs (when one answers).
pub(crate) fn json_value(
    all: &[JobStatus],
    daemon: Option<bool>,
    health: &Health,
) -> serde_json::Value {
    let problems = &health.problems;
    let containment = health
        .containment
        .as_ref()
        .map(|(mode, why)| serde_json::json!({"mode": mode, "why": why}));
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
                "daemon_running": daemon,
                "last_run": s.last,
                "skipped_since_last_run": s.skipped_since.as_ref().map(|(n, r)| {
                    serde_json::json!({
                        "count": n,
                        "last": r.skips.as_ref().map_or(&r.started, |k| &k.last_started),
                        "reason": r.reason,
                    })
                }),
                "next_run": s.next.map(|t| t.to_string()),
                "success_rate": s.rate.map(|(ok, n)| ok as f64 / n as f64),
                "failure_streak": s.health.failure_streak,
                "stale_deadline": s.health.stale_deadline.map(|t| t.to_string()),
                "stale": s.health.stale,
                "state_problem": problems.first(),
                "rate_runs": s.rate.map(|(_, n)| n),
                "containment": containment,
            })
        })
        .collect();
    serde_json::Value::Array(v)
}
