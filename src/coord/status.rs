//! What `status` tells of each job (running or idle, last and next run, failure streak,
//! stale deadline, success rate), as the coordinator's history and run state say it: built
//! here, below the command layer, so that `status --json` and the daemon's status page
//! (`/api/status`) show the same data.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

use super::{Coordinator, Doubt, Running, standing};
use crate::config::{Config, Job};
use crate::control::JobHealth;
use crate::exit::Failure;
use crate::lock;
use crate::record::{Outcome, RunRecord};

/// How many recent runs the success rate covers.
pub(crate) const RATE_WINDOW: usize = 20;

/// How many skips after the last real run `status` reads past, at most, for the success
/// rate (in a fleet each skip is a row).
const MAX_SKIPS_READ: usize = 10_000;

pub(crate) struct JobStatus {
    pub(crate) name: String,
    pub(crate) paused: bool,
    pub(crate) running: Option<lock::Holder>,
    /// Fleet mode: the node the running run is on.
    pub(crate) node: Option<String>,
    /// Fleet mode: why the run may not be running after all.
    pub(crate) doubt: Option<Doubt>,
    /// The last real run (a skip only when there was none).
    pub(crate) last: Option<RunRecord>,
    /// Skips since the last real run: how many, and the newest of them.
    pub(crate) skipped_since: Option<(u64, RunRecord)>,
    pub(crate) next: Option<Timestamp>,
    pub(crate) enabled: bool,
    pub(crate) rate: Option<(usize, usize)>,
    /// Its failure streak and stale deadline.
    pub(crate) health: JobHealth,
    pub(crate) tags: Vec<String>,
}

pub(crate) fn job_status(
    cfg: &Config,
    coord: &dyn Coordinator,
    job: &Job,
    now: Timestamp,
    paused: &HashSet<String>,
    running: &mut HashMap<String, Running>,
) -> Result<JobStatus, Failure> {
    // Skips never hide the last real run, however many came after it (read apart from the
    // recent runs: in a fleet every skip is a row of its own); and the recent runs read
    // reach past those skips, so that the success rate is of real runs.
    let last = coord.last_result(&cfg.settings, &job.name)?;
    let skips = usize::try_from(last.skipped).unwrap_or(usize::MAX);
    let asked = RATE_WINDOW * 2 + skips.min(MAX_SKIPS_READ);
    let runs = coord.history(&cfg.settings, &job.name, asked)?;
    let recent = Some((runs.as_slice(), asked));
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
        _ => running.remove(job.name.as_str()),
    };
    let skipped_since = match (&last.real, last.newest_skip.clone()) {
        (Some(_), Some(newest)) => Some((last.skipped, newest)),
        _ => None,
    };
    Ok(JobStatus {
        name: job.name.to_string(),
        paused: paused.contains(job.name.as_str()),
        node: running.as_ref().and_then(|r| r.node.clone()),
        doubt: running.as_ref().and_then(|r| r.doubt.clone()),
        running: running.map(|r| r.holder),
        last: last.real.or(last.newest_skip),
        skipped_since,
        // With a fixed jitter, when the run starts.
        next: job
            .next_start(&cfg.host_name(), now)
            .filter(|_| job.enabled),
        tags: job.tags().to_vec(),
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

/// What `status --json` prints: one object per job. `state` is `running`, `idle`, or in a
/// fleet `unconfirmed` when the run's row says it runs but its node is silent or no longer
/// holds it (`running_doubt` says what is known). `last_run` is the run's whole record,
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
                "state": match (&s.running, &s.doubt) {
                    (None, _) => "idle",
                    (Some(_), None) => "running",
                    (Some(_), Some(_)) => "unconfirmed",
                },
                "running_doubt": s.doubt.as_ref().map(|d| {
                    serde_json::json!({"kind": d.kind, "text": d.text})
                }),
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
                "tags": s.tags,
            })
        })
        .collect();
    serde_json::Value::Array(v)
}
