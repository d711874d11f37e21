//! Pipelines: a job and the jobs that come `after` it, run as one pipeline run that shares
//! the root's scheduled instant (so `{{ ds }}` is the same in every step).
//!
//! Steps whose parents in this run have all succeeded start, concurrently up to
//! `max_concurrent`; when a step fails for good, everything downstream of it is recorded as
//! skipped and independent branches go on. A parent that is not part of this pipeline run
//! (a fan-in whose other parent hangs below another root) does not hold a step back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc;

use jiff::Timestamp;

use crate::config::{Config, Job};
use crate::execute::{self, RunReport, RunRequest};
use crate::log::Logger;
use crate::record::{Outcome, RunRecord};
use crate::runner::Interrupt;

/// The steps of a pipeline run rooted at `root`: it and, unless `only`, its descendants, in
/// table order.
pub fn members<'c>(cfg: &'c Config, root: &str, only: bool) -> Vec<&'c Job> {
    let mut set: BTreeSet<&str> = BTreeSet::new();
    set.insert(root);
    if !only {
        let mut queue = vec![root.to_string()];
        while let Some(j) = queue.pop() {
            for c in cfg.children(&j) {
                if c.enabled && set.insert(c.name.as_str()) {
                    queue.push(c.name.clone());
                }
            }
        }
    }
    cfg.jobs
        .iter()
        .filter(|j| set.contains(j.name.as_str()))
        .collect()
}

/// The kept stdout and stderr tails of a step (for its alerts).
pub type Tails = (Vec<u8>, Vec<u8>);

/// How a pipeline run ended.
pub struct PipelineReport {
    /// Every step's record, in the order they ended.
    pub steps: Vec<RunRecord>,
    pub exit_code: u8,
}

/// Runs the pipeline rooted at `root` for one scheduled instant. `params` go to the root.
#[allow(clippy::too_many_arguments)]
pub fn run(
    cfg: &Config,
    root: &Job,
    scheduled: Timestamp,
    params: BTreeMap<String, String>,
    only: bool,
    trigger: &'static str,
    log: &Logger,
    interrupt: &Interrupt,
) -> PipelineReport {
    run_from(
        cfg, root, scheduled, params, only, trigger, log, interrupt, None,
    )
}

/// Runs what comes after `root` once the root itself has run (the daemon runs the root
/// through its own path first): `root_record` is its record.
pub fn run_downstream(
    cfg: &Config,
    root: &Job,
    scheduled: Timestamp,
    root_record: RunRecord,
    root_tails: Tails,
    log: &Logger,
    interrupt: &Interrupt,
) -> PipelineReport {
    run_from(
        cfg,
        root,
        scheduled,
        BTreeMap::new(),
        false,
        "pipeline",
        log,
        interrupt,
        Some((root_record, root_tails)),
    )
}

#[allow(clippy::too_many_arguments)]
fn run_from(
    cfg: &Config,
    root: &Job,
    scheduled: Timestamp,
    params: BTreeMap<String, String>,
    only: bool,
    trigger: &'static str,
    log: &Logger,
    interrupt: &Interrupt,
    root_done: Option<(RunRecord, Tails)>,
) -> PipelineReport {
    let steps = members(cfg, &root.name, only);
    let in_run: BTreeSet<&str> = steps.iter().map(|j| j.name.as_str()).collect();
    // Parents that count: those in this run (the root waits for none).
    let parents: HashMap<&str, Vec<&str>> = steps
        .iter()
        .map(|j| {
            let p = if j.name == root.name {
                Vec::new()
            } else {
                j.after
                    .iter()
                    .map(String::as_str)
                    .filter(|a| in_run.contains(a))
                    .collect()
            };
            (j.name.as_str(), p)
        })
        .collect();
    let mut done: HashMap<String, Outcome> = HashMap::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let mut records = Vec::new();
    let mut root_exit = None;
    let mut deferred: Vec<(String, RunRecord, Tails)> = Vec::new();
    if let Some((rec, tails)) = root_done {
        deferred.push((root.name.clone(), rec.clone(), tails));
        done.insert(root.name.clone(), rec.outcome);
        root_exit = Some(if rec.outcome == Outcome::Success {
            0
        } else {
            1
        });
        records.push(rec);
    }
    let limit = cfg.settings.max_concurrent.max(1);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(String, RunReport)>();
        let mut running = 0usize;
        loop {
            // Steps below a failure (or a skip) are skipped, recorded with the reason.
            let mut changed = true;
            while changed {
                changed = false;
                for j in &steps {
                    if started.contains(&j.name) || done.contains_key(&j.name) {
                        continue;
                    }
                    if let Some(bad) = parents[j.name.as_str()]
                        .iter()
                        .find(|p| done.get(**p).is_some_and(|o| *o != Outcome::Success))
                    {
                        let why = match done.get(*bad) {
                            Some(Outcome::Skipped) => format!("upstream {bad} was skipped"),
                            _ => format!("upstream {bad} failed"),
                        };
                        let req = RunRequest {
                            job: j,
                            scheduled,
                            params: BTreeMap::new(),
                            trigger,
                            alerts: false,
                            first_attempt: 1,
                        };
                        let r = execute::not_run(cfg, &req, &execute::new_run_id(), why, None, log);
                        records.push(r.record);
                        done.insert(j.name.clone(), Outcome::Skipped);
                        changed = true;
                    }
                }
            }
            // Start what is ready.
            for j in &steps {
                if running >= limit || interrupt.received().is_some() {
                    break;
                }
                if started.contains(&j.name) || done.contains_key(&j.name) {
                    continue;
                }
                let ready = parents[j.name.as_str()]
                    .iter()
                    .all(|p| done.get(*p) == Some(&Outcome::Success));
                if !ready {
                    continue;
                }
                started.insert(j.name.clone());
                running += 1;
                let tx = tx.clone();
                let step_params = if j.name == root.name {
                    params.clone()
                } else {
                    BTreeMap::new()
                };
                let job: &Job = j;
                // A step with steps below it alerts at the end of the pipeline run.
                let has_below = steps
                    .iter()
                    .any(|s| parents[s.name.as_str()].contains(&job.name.as_str()));
                scope.spawn(move || {
                    let r = execute::execute(
                        cfg,
                        RunRequest {
                            job,
                            scheduled,
                            params: step_params,
                            trigger,
                            alerts: !has_below,
                            first_attempt: 1,
                        },
                        log,
                        interrupt,
                    );
                    let _ = tx.send((job.name.clone(), r));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((name, r)) = rx.recv() else { break };
            running -= 1;
            started.remove(&name);
            if name == root.name {
                root_exit = Some(r.exit_code);
            }
            let has_below = steps
                .iter()
                .any(|s| parents[s.name.as_str()].contains(&name.as_str()));
            if has_below {
                deferred.push((name.clone(), r.record.clone(), r.tails));
            }
            done.insert(name, r.record.outcome);
            records.push(r.record);
        }
    });
    // Alerts of steps with steps below them: a failure alert also lists what was skipped.
    for (name, mut rec, tails) in deferred {
        let Some(job) = cfg.job(&name) else { continue };
        if rec.outcome == Outcome::Failure {
            let skipped: Vec<&str> = records
                .iter()
                .filter(|r| {
                    r.outcome == Outcome::Skipped
                        && r.reason
                            .as_deref()
                            .is_some_and(|why| why.starts_with("upstream "))
                        && descends(cfg, &r.job, &name)
                })
                .map(|r| r.job.as_str())
                .collect();
            if !skipped.is_empty() {
                rec.reason = Some(format!(
                    "{}; skipped below it: {}",
                    rec.reason.as_deref().unwrap_or("failed"),
                    skipped.join(", ")
                ));
            }
        }
        crate::alert::after_run(cfg, job, &rec, (&tails.0, &tails.1), log);
    }
    let failed = records.iter().any(|r| {
        matches!(
            r.outcome,
            Outcome::Failure | Outcome::Lost | Outcome::Skipped | Outcome::Interrupted
        )
    });
    let exit_code = match (root_exit, failed) {
        // The root's own code tells locked (75) and interrupted (130/143) apart.
        (Some(code), _) if code != 0 => code,
        (_, true) => match interrupt.received() {
            Some(sig) if sig == libc::SIGINT => crate::cmd::exit::SIGINT,
            Some(_) => crate::cmd::exit::SIGTERM,
            None => crate::cmd::exit::JOB_FAILED,
        },
        _ => crate::cmd::exit::OK,
    };
    PipelineReport {
        steps: records,
        exit_code,
    }
}

/// Whether `job` comes (directly or not) after `ancestor`.
fn descends(cfg: &Config, job: &str, ancestor: &str) -> bool {
    let mut stack = vec![job.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(j) = stack.pop() {
        let Some(jj) = cfg.job(&j) else { continue };
        for p in &jj.after {
            if p == ancestor {
                return true;
            }
            if seen.insert(p.clone()) {
                stack.push(p.clone());
            }
        }
    }
    false
}
