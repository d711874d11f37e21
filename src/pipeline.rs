//! Pipelines: a job and the jobs that come `after` it, run as one pipeline run that shares
//! the root's scheduled instant (so `{{ ds }}` is the same in every step).
//!
//! A step starts by its `trigger` rule, concurrently up to `max_concurrent`: `all_success`
//! (the default) once its parents in this run have all succeeded (a `warning` is a
//! success), `all_done` once they have all ended however, `one_failed` as soon as one failed
//! for good. When a step fails for good, the `all_success` steps downstream of it are
//! recorded as skipped and independent branches go on; a `one_failed` step whose parents all
//! ended without a failure is recorded as skipped ("no parent failed"), which is no failure
//! of the pipeline run. A parent that is not part of this pipeline run (a fan-in whose other
//! parent hangs below another root) does not hold a step back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc;

use jiff::Timestamp;

use crate::config::{Config, Job, TriggerRule};
use crate::execute::{self, Ctx, RunReport, RunRequest};
use crate::exit;
use crate::record::{Outcome, RunRecord};
use crate::runner::Interrupt;

/// The steps of a pipeline run rooted at `root`: it and, unless `only`, its descendants, in
/// table order.
pub(crate) fn members<'c>(cfg: &'c Config, root: &str, only: bool) -> Vec<&'c Job> {
    let mut set: BTreeSet<&str> = BTreeSet::new();
    set.insert(root);
    if !only {
        let mut queue = vec![root.to_string()];
        while let Some(j) = queue.pop() {
            for c in cfg.children(&j) {
                if c.enabled && set.insert(c.name.as_str()) {
                    queue.push(c.name.to_string());
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
pub(crate) type Tails = (Vec<u8>, Vec<u8>);

/// How a pipeline run ended.
pub(crate) struct PipelineReport {
    /// Every step's record, in the order they ended.
    pub(crate) steps: Vec<RunRecord>,
    pub(crate) exit_code: u8,
}

/// What a pipeline run is: its root, instant, the root's parameters, and what started it.
pub(crate) struct Start<'a> {
    pub(crate) root: &'a Job,
    pub(crate) scheduled: Timestamp,
    /// `--param` values for the root.
    pub(crate) params: BTreeMap<String, String>,
    /// Only the root, not what comes after it.
    pub(crate) only: bool,
    pub(crate) trigger: &'static str,
    /// Steps with `depends_on_past` are held back by it (scheduled runs, `run
    /// --respect-past`).
    pub(crate) respect_past: bool,
}

/// Runs the pipeline rooted at `start.root` for one scheduled instant.
pub(crate) fn run(ctx: Ctx<'_>, start: Start<'_>, interrupt: &Interrupt) -> PipelineReport {
    Pipeline::new(ctx, &start, interrupt).run(None)
}

/// Runs what comes after `root` once the root itself has run (the daemon runs the root
/// through its own path first): `root_record` is its record. `respect_past`: whether the
/// steps' `depends_on_past` holds them back (a scheduled run).
pub(crate) fn run_downstream(
    ctx: Ctx<'_>,
    (root, scheduled, respect_past): (&Job, Timestamp, bool),
    root_record: RunRecord,
    root_tails: Tails,
    interrupt: &Interrupt,
) -> PipelineReport {
    let start = Start {
        root,
        scheduled,
        params: BTreeMap::new(),
        only: false,
        trigger: "pipeline",
        respect_past,
    };
    Pipeline::new(ctx, &start, interrupt).run(Some((root_record, root_tails)))
}

/// One pipeline run in progress.
struct Pipeline<'a> {
    ctx: Ctx<'a>,
    start: &'a Start<'a>,
    interrupt: &'a Interrupt,
    steps: Vec<&'a Job>,
    /// Parents that count: those in this run (the root waits for none).
    parents: HashMap<&'a str, Vec<&'a str>>,
    done: HashMap<String, Outcome>,
    /// Steps skipped because a step above them failed (Airflow's `upstream_failed`): a
    /// failure to the `one_failed` steps below them.
    upstream_failed: BTreeSet<String>,
    /// Steps skipped that are no failure of the run by themselves: `one_failed` steps with
    /// no failed parent, and steps below a skip (which counts, or not, on its own).
    not_needed: BTreeSet<String>,
    started: BTreeSet<String>,
    records: Vec<RunRecord>,
    root_exit: Option<u8>,
    /// Steps with steps below them: their alerts go out at the end.
    deferred: Vec<(String, RunRecord, Tails)>,
    /// The results of the jobs above the root (not in this run), from their records for
    /// the same instant: a later step run alone (`run --only`, `--at`) gets them too.
    outside: BTreeMap<String, String>,
}

impl<'a> Pipeline<'a> {
    fn new(ctx: Ctx<'a>, start: &'a Start<'a>, interrupt: &'a Interrupt) -> Pipeline<'a> {
        let steps = members(ctx.cfg, &start.root.name, start.only);
        let in_run: BTreeSet<&str> = steps.iter().map(|j| j.name.as_str()).collect();
        let parents = steps
            .iter()
            .map(|j| {
                let p = if j.name == start.root.name {
                    Vec::new()
                } else {
                    j.after()
                        .iter()
                        .map(String::as_str)
                        .filter(|a| in_run.contains(a))
                        .collect()
                };
                (j.name.as_str(), p)
            })
            .collect();
        Pipeline {
            ctx,
            start,
            interrupt,
            steps,
            parents,
            done: HashMap::new(),
            upstream_failed: BTreeSet::new(),
            not_needed: BTreeSet::new(),
            started: BTreeSet::new(),
            records: Vec::new(),
            root_exit: None,
            deferred: Vec::new(),
            outside: outside_results(ctx, &start.root.name, start.scheduled),
        }
    }

    /// The results a step is given: those of the jobs above it, from this run (or from the
    /// records of the jobs above the root).
    fn upstream(&self, job: &Job) -> BTreeMap<String, String> {
        let cfg = self.ctx.cfg;
        let mut out: BTreeMap<String, String> = self
            .outside
            .iter()
            .filter(|(j, _)| descends(cfg, &job.name, j))
            .map(|(j, r)| (j.clone(), r.clone()))
            .collect();
        for r in &self.records {
            if let Some(result) = &r.facts.result
                && descends(cfg, &job.name, &r.job)
            {
                out.insert(r.job.clone(), result.clone());
            }
        }
        out
    }

    fn has_below(&self, name: &str) -> bool {
        self.steps
            .iter()
            .any(|s| self.parents[s.name.as_str()].contains(&name))
    }

    fn run(mut self, root_done: Option<(RunRecord, Tails)>) -> PipelineReport {
        let root = self.start.root;
        if let Some((rec, tails)) = root_done {
            self.deferred
                .push((root.name.to_string(), rec.clone(), tails));
            self.done.insert(root.name.to_string(), rec.outcome);
            self.root_exit = Some(if rec.outcome.ended_well() { 0 } else { 1 });
            self.records.push(rec);
        }
        let limit = self.ctx.cfg.settings.max_concurrent.max(1);
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<(String, RunReport)>();
            let mut running = 0usize;
            loop {
                self.skip_below_failures();
                for j in self.ready() {
                    if running >= limit || self.interrupt.received().is_some() {
                        break;
                    }
                    running += 1;
                    self.started.insert(j.name.to_string());
                    let req = self.request(j);
                    let (tx, ctx, interrupt) = (tx.clone(), self.ctx, self.interrupt);
                    scope.spawn(move || {
                        let r = execute::execute(ctx, req, interrupt);
                        let _ = tx.send((j.name.to_string(), r));
                    });
                }
                if running == 0 {
                    break;
                }
                let Ok((name, r)) = rx.recv() else { break };
                running -= 1;
                self.step_ended(name, r);
            }
        });
        self.send_deferred_alerts();
        self.report()
    }

    /// Steps whose `trigger` rule can no longer be met are skipped, recorded with the reason:
    /// below a failure or a skip (`all_success`), or with no failed parent (`one_failed`).
    fn skip_below_failures(&mut self) {
        let mut changed = true;
        while changed {
            changed = false;
            for j in self.steps.clone() {
                if self.started.contains(j.name.as_str()) || self.done.contains_key(j.name.as_str())
                {
                    continue;
                }
                let Verdict::Skip(why, kind) = self.verdict(j) else {
                    continue;
                };
                let mut req = self.request(j);
                req.alerts = false;
                let r = execute::not_run(self.ctx, &req, &execute::new_run_id(), why, None);
                self.records.push(r.record);
                self.done.insert(j.name.to_string(), Outcome::Skipped);
                match kind {
                    SkipKind::UpstreamFailed => self.upstream_failed.insert(j.name.to_string()),
                    SkipKind::UpstreamSkipped | SkipKind::NotNeeded => {
                        self.not_needed.insert(j.name.to_string())
                    }
                };
                changed = true;
            }
        }
    }

    /// Whether a parent failed for good: it failed, was lost or interrupted, or was skipped
    /// because of a failure above it.
    fn failed(&self, parent: &str) -> bool {
        match self.done.get(parent) {
            Some(Outcome::Skipped) => self.upstream_failed.contains(parent),
            Some(o) => !o.ended_well(),
            None => false,
        }
    }

    /// What the step's `trigger` rule says now, from its parents in this run.
    fn verdict(&self, j: &Job) -> Verdict {
        let parents = &self.parents[j.name.as_str()];
        let all_done = parents.iter().all(|p| self.done.contains_key(*p));
        let failed = parents.iter().find(|p| self.failed(p));
        match j.trigger {
            TriggerRule::AllSuccess => {
                if let Some(bad) = failed {
                    // Below a step skipped for a failure above it: that failure goes on down.
                    let why = match self.done.get(*bad) {
                        Some(Outcome::Skipped) => format!("upstream {bad} was skipped"),
                        _ => format!("upstream {bad} failed"),
                    };
                    return Verdict::Skip(why, SkipKind::UpstreamFailed);
                }
                let skipped = parents
                    .iter()
                    .find(|p| self.done.get(**p) == Some(&Outcome::Skipped));
                match skipped {
                    Some(p) => Verdict::Skip(
                        format!("upstream {p} was skipped"),
                        SkipKind::UpstreamSkipped,
                    ),
                    None if all_done => Verdict::Run,
                    None => Verdict::Wait,
                }
            }
            TriggerRule::AllDone if all_done => Verdict::Run,
            TriggerRule::AllDone => Verdict::Wait,
            TriggerRule::OneFailed if failed.is_some() => Verdict::Run,
            TriggerRule::OneFailed if all_done => {
                Verdict::Skip("no parent failed".to_string(), SkipKind::NotNeeded)
            }
            TriggerRule::OneFailed => Verdict::Wait,
        }
    }

    /// The steps whose `trigger` rule lets them start now, not started yet.
    fn ready(&self) -> Vec<&'a Job> {
        self.steps
            .iter()
            .copied()
            .filter(|j| {
                !self.started.contains(j.name.as_str()) && !self.done.contains_key(j.name.as_str())
            })
            .filter(|j| matches!(self.verdict(j), Verdict::Run))
            .collect()
    }

    fn request(&self, job: &'a Job) -> RunRequest<'a> {
        RunRequest {
            job,
            scheduled: self.start.scheduled,
            params: if job.name == self.start.root.name {
                self.start.params.clone()
            } else {
                BTreeMap::new()
            },
            trigger: self.start.trigger,
            // A step with steps below it alerts at the end of the pipeline run.
            alerts: !self.has_below(&job.name),
            first_attempt: 1,
            respect_past: self.start.respect_past,
            upstream: self.upstream(job),
        }
    }

    fn step_ended(&mut self, name: String, r: RunReport) {
        self.started.remove(&name);
        if name == self.start.root.name {
            self.root_exit = Some(r.exit_code);
        }
        if self.has_below(&name) {
            self.deferred
                .push((name.clone(), r.record.clone(), r.tails));
        }
        self.done.insert(name, r.record.outcome);
        self.records.push(r.record);
    }

    /// Alerts of steps with steps below them: a failure alert also lists what was skipped.
    fn send_deferred_alerts(&mut self) {
        let cfg = self.ctx.cfg;
        for (name, mut rec, tails) in std::mem::take(&mut self.deferred) {
            let Some(job) = cfg.job(&name) else { continue };
            if rec.outcome == Outcome::Failure {
                let skipped: Vec<&str> = self
                    .records
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
            self.ctx.alerts().after_run(job, &rec, (&tails.0, &tails.1));
        }
    }

    fn report(self) -> PipelineReport {
        let failed = self.records.iter().any(|r| match r.outcome {
            Outcome::Failure | Outcome::Lost | Outcome::Interrupted => true,
            Outcome::Skipped => !self.not_needed.contains(&r.job),
            Outcome::Success | Outcome::Warning => false,
        });
        let exit_code = match (self.root_exit, failed) {
            // The root's own code tells locked (75) and interrupted (130/143) apart.
            (Some(code), _) if code != 0 => code,
            (_, true) => self
                .interrupt
                .received()
                .map_or(exit::JOB_FAILED, exit::for_signal),
            _ => exit::OK,
        };
        PipelineReport {
            steps: self.records,
            exit_code,
        }
    }
}

/// The results of the jobs above `root` for the instant `scheduled`: for each, the newest
/// of its records for that instant that holds one (none when the history cannot be read).
fn outside_results(ctx: Ctx<'_>, root: &str, scheduled: Timestamp) -> BTreeMap<String, String> {
    let cfg = ctx.cfg;
    let mut out = BTreeMap::new();
    for job in cfg.jobs.iter().filter(|j| descends(cfg, root, &j.name)) {
        let Ok(runs) = ctx.coord.history(&cfg.settings, &job.name, 200) else {
            continue;
        };
        let same = runs.iter().rev().find(|r| {
            r.facts.result.is_some()
                && r.scheduled
                    .parse::<Timestamp>()
                    .is_ok_and(|t| t == scheduled)
        });
        if let Some(r) = same.and_then(|r| r.facts.result.clone()) {
            out.insert(job.name.to_string(), r);
        }
    }
    out
}

/// What a step's `trigger` rule says of it now.
enum Verdict {
    Wait,
    Run,
    Skip(String, SkipKind),
}

/// Why a step is skipped, for the steps below it.
enum SkipKind {
    UpstreamFailed,
    UpstreamSkipped,
    NotNeeded,
}

/// Whether `job` comes (directly or not) after `ancestor`.
fn descends(cfg: &Config, job: &str, ancestor: &str) -> bool {
    let mut stack = vec![job.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(j) = stack.pop() {
        let Some(jj) = cfg.job(&j) else { continue };
        for p in jj.after() {
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
