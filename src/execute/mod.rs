//! One run of a job, start to end: exclusion, attempts with retries, verification, record,
//! alerts. `cronwarden run` calls this directly; the daemon calls the very same functions.
//!
//! Files: `spec` (what an attempt is started with), `attempts` (the attempts and retries),
//! `credentials` (the run's private copies of the files `credentials` names), `past`
//! (`depends_on_past`), `result_file` (`CRONWARDEN_RESULT_FILE`),
//! `marker` (the run marker that lets the next supervisor finish a run whose supervisor
//! died), `orphan` (finishing such runs), this file (the run around them).

mod attempts;
pub(crate) mod credentials;
pub(crate) mod marker;
pub(crate) mod orphan;
pub(crate) mod past;
mod result_file;
mod spec;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use jiff::Timestamp;

use crate::alert::{self, Alerts, Ping};
use crate::config::{Config, Job};
use crate::contain::{Containment, Scope};
use crate::coord::{Coordinator, Exclusion, OwnRun, RunStart};
use crate::lock::Holder;
use crate::log::{Level, Logger};
use crate::output::Output;
use crate::policy;
use crate::record::{AttemptRecord, Outcome, RunRecord};
use crate::runner::Interrupt;
use crate::schedule::format_rfc3339;

/// How many runs' output files are kept per job.
const KEEP_OUTPUTS: usize = 20;

/// What a run is handed by whoever starts it (`cronwarden run`, the daemon): the table,
/// the log, the coordination backend, the outbox its alerts go to (delivered by the
/// outbox's thread, never by the run) and how its processes are contained.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) log: &'a Logger,
    pub(crate) coord: &'a dyn Coordinator,
    pub(crate) outbox: &'a alert::Outbox,
    pub(crate) contain: &'a Containment,
}

impl<'a> Ctx<'a> {
    pub(crate) fn alerts(&self) -> Alerts<'a> {
        Alerts {
            cfg: self.cfg,
            log: self.log,
            coord: self.coord,
            outbox: self.outbox,
        }
    }
}

/// What to run.
pub(crate) struct RunRequest<'a> {
    pub(crate) job: &'a Job,
    /// The logical scheduled instant (`{{ ds }}`, `{{ ts }}`).
    pub(crate) scheduled: Timestamp,
    /// `--param K=V` values over the job's declared defaults.
    pub(crate) params: BTreeMap<String, String>,
    /// What started it, for the record: "run", "schedule", ...
    pub(crate) trigger: &'static str,
    /// Send its alerts at the end (a pipeline step with steps below it leaves that to the
    /// pipeline, whose failure alert also lists what was skipped).
    pub(crate) alerts: bool,
    /// The first attempt's number: 1, or where a run taken over from a lost node goes on.
    pub(crate) first_attempt: u32,
    /// Held back by `depends_on_past` (scheduled runs, and `run --respect-past`).
    pub(crate) respect_past: bool,
    /// The results of the steps above it in its pipeline run, by job
    /// (`{{ upstream.JOB }}`, `CRONWARDEN_UPSTREAM_JOB`).
    pub(crate) upstream: BTreeMap<String, String>,
}

/// How a run ended.
pub(crate) struct RunReport {
    pub(crate) record: RunRecord,
    /// The exit code `cronwarden run` returns for it.
    pub(crate) exit_code: u8,
    /// The kept tails of stdout and stderr (for alerts sent later).
    pub(crate) tails: (Vec<u8>, Vec<u8>),
}

/// A new run id: the start time and a random suffix, so ids sort by start. 48 random bits:
/// with 24, the 100 ids of 100 jobs due at the same second shared one with a chance of 1 in
/// 3,400 (the daemon then started one of the two runs and lost the other without a word,
/// and two runs would have written one marker file); with 48, 1 in 5.6e10.
pub(crate) fn new_run_id() -> String {
    let now = Timestamp::now();
    let r = policy::random_u64() >> 16;
    format!("{}-{r:012x}", now.strftime("%Y%m%dT%H%M%S"))
}

fn fields(job: &str, run_id: &str) -> Vec<(&'static str, String)> {
    vec![("job", job.to_string()), ("run_id", run_id.to_string())]
}

/// The facts every record of one run shares, to make its record at any point.
struct RunFacts<'a> {
    req: &'a RunRequest<'a>,
    run_id: &'a str,
    started: Timestamp,
    node: Option<String>,
}

impl RunFacts<'_> {
    fn record(
        &self,
        outcome: Outcome,
        reason: Option<String>,
        attempts: Vec<AttemptRecord>,
        output: Option<String>,
    ) -> RunRecord {
        let job = self.req.job;
        RunRecord {
            run_id: self.run_id.to_string(),
            job: job.name.to_string(),
            scheduled: format_rfc3339(self.req.scheduled, job.tz()),
            started: self.started.to_string(),
            ended: Timestamp::now().to_string(),
            duration_ms: (Timestamp::now() - self.started)
                .total(jiff::Unit::Millisecond)
                .map_or(0, |v| v.max(0.0) as u64),
            attempts,
            outcome,
            reason,
            output,
            trigger: self.req.trigger.to_string(),
            node: self.node.clone(),
            skips: None,
            facts: Default::default(),
        }
    }
}

/// What a run can have ready before its instant (the daemon hands runs over a little
/// early): the first attempt's cgroup, with the job's limits written to it, the identity
/// the job runs as (its passwd entry, groups and `env_file`s) and the file its marker is
/// to be. Nothing in it decides whether the run happens; dropped unused (a run skipped or
/// stopped), its cgroup goes and its file becomes a spare.
pub(crate) struct Ready<'a> {
    scope: Scope<'a>,
    who: Result<spec::Identity, String>,
    marker: marker::MarkerFile,
    made: Instant,
}

/// How long a [`Ready`] identity stays good: one got longer ago (the run waited for its
/// lock, `overlap = "queue"`, or for a `max_concurrent` slot) is looked up again at the
/// run's start, so that the run reads its `env_file`s as they are when it starts.
const READY_FOR: std::time::Duration = std::time::Duration::from_secs(1);

impl<'a> Ready<'a> {
    pub(crate) fn new(ctx: Ctx<'a>, req: &RunRequest<'a>, run_id: &str) -> Self {
        let mut scope = Scope::new(ctx.contain, req.job, run_id);
        scope.begin(req.first_attempt.max(1));
        let state_dir = &ctx.cfg.settings.state_dir;
        Ready {
            scope,
            who: spec::identity(req.job),
            marker: marker::MarkerFile::ready(state_dir, &req.job.name, run_id),
            made: Instant::now(),
        }
    }

    /// What the run starts with: its scope, its identity (looked up again when this is
    /// older than [`READY_FOR`]) and its marker's file.
    fn open(
        self,
        job: &Job,
    ) -> (
        Scope<'a>,
        Result<spec::Identity, String>,
        marker::MarkerFile,
    ) {
        let who = if self.made.elapsed() > READY_FOR {
            spec::identity(job)
        } else {
            self.who
        };
        (self.scope, who, self.marker)
    }
}

/// Runs a job through the whole path and records it.
pub(crate) fn execute(ctx: Ctx<'_>, req: RunRequest<'_>, interrupt: &Interrupt) -> RunReport {
    let run_id = new_run_id();
    let settings = &ctx.cfg.settings;
    let own = OwnRun::Overlap;
    match ctx
        .coord
        .acquire(settings, req.job, ctx.log, &run_id, interrupt, own)
    {
        // Decided with the job's exclusion held: a run of it still going has ended.
        Ok(exclusion) => match req
            .respect_past
            .then(|| past::blocker(ctx, req.job, req.scheduled))
            .flatten()
        {
            Some(reason) => {
                drop(exclusion);
                not_run(ctx, &req, &run_id, reason, None)
            }
            None => {
                let ready = Ready::new(ctx, &req, &run_id);
                execute_locked(ctx, &req, &run_id, (exclusion, ready), interrupt)
            }
        },
        Err(reason) => not_run(ctx, &req, &run_id, reason, interrupt.received()),
    }
}

/// Records a run that did not happen: skipped (the lock is held) or interrupted while
/// waiting for it.
pub(crate) fn not_run(
    ctx: Ctx<'_>,
    req: &RunRequest<'_>,
    run_id: &str,
    reason: String,
    interrupted: Option<i32>,
) -> RunReport {
    let job = req.job;
    let outcome = if interrupted.is_some() {
        Outcome::Interrupted
    } else {
        Outcome::Skipped
    };
    let mut f = fields(&job.name, run_id);
    f.push(("scheduled", format_rfc3339(req.scheduled, job.tz())));
    ctx.log.log(Level::Warn, outcome.as_str(), &f, &reason);
    let facts = RunFacts {
        req,
        run_id,
        started: Timestamp::now(),
        node: ctx.coord.node().map(str::to_string),
    };
    let mut rec = facts.record(outcome, Some(reason), Vec::new(), None);
    rec.ended = rec.started.clone();
    rec.duration_ms = 0;
    ctx.coord.record(&ctx.cfg.settings, &rec, ctx.log);
    // A skip is an event (`skipped`, at the first of a streak; a pipeline step with steps
    // below it leaves that to the pipeline).
    if outcome == Outcome::Skipped && req.alerts {
        ctx.alerts().after_run(job, &rec, (&[], &[]));
    }
    RunReport {
        exit_code: outcome.exit_code(interrupted),
        record: rec,
        tails: (Vec::new(), Vec::new()),
    }
}

/// The run itself, once its exclusion (if any) is held. Its healthcheck pings go out
/// beside it: the start ping in a thread of its own (a healthcheck server that is down,
/// retried for up to half a minute, never delays the job), the end ping after the job's
/// lock is let go (it never holds the job).
pub(crate) fn execute_locked<'a>(
    ctx: Ctx<'a>,
    req: &RunRequest<'a>,
    run_id: &str,
    held: (Option<Exclusion>, Ready<'a>),
    interrupt: &Interrupt,
) -> RunReport {
    let (job, log) = (req.job, ctx.log);
    let url = job.healthcheck_url();
    let ca_file = ctx.cfg.settings.healthcheck_ca_file.as_deref();
    std::thread::scope(|s| {
        let start = url.map(|u| {
            s.spawn(move || alert::ping(u, Ping::Start, run_id, &[], log, &job.name, ca_file))
        });
        let (report, fenced) = run_locked(ctx, req, run_id, held, interrupt);
        if let Some(h) = start {
            let _ = h.join();
        }
        // A fenced run is left for the node that takes it over, which ends it.
        if let Some(u) = url
            && !fenced
            && let Some((what, body)) =
                alert::end_ping(&report.record, (&report.tails.0, &report.tails.1))
        {
            alert::ping(u, what, run_id, &body, log, &job.name, ca_file);
        }
        report
    })
}

/// [`execute_locked`] without its pings; whether the run was fenced (fleet mode).
fn run_locked<'a>(
    ctx: Ctx<'a>,
    req: &RunRequest<'a>,
    run_id: &str,
    (mut exclusion, ready): (Option<Exclusion>, Ready<'a>),
    interrupt: &Interrupt,
) -> (RunReport, bool) {
    let job = req.job;
    let (mut scope, who, marker) = ready.open(job);
    let facts = RunFacts {
        req,
        run_id,
        started: Timestamp::now(),
        node: ctx.coord.node().map(str::to_string),
    };
    let t0 = Instant::now();
    let mut f = fields(&job.name, run_id);
    f.push(("scheduled", format_rfc3339(req.scheduled, job.tz())));
    let start = RunStart {
        run_id,
        job: &job.name,
        trigger: req.trigger,
        scheduled: req.scheduled,
        params: &req.params,
        attempt: req.first_attempt.max(1),
    };
    ctx.coord.run_started(&start, ctx.log);
    // A backend that can stop the run from outside (a fenced fleet lease) adds a source.
    let stop = exclusion
        .as_mut()
        .and_then(|x| x.guard.as_mut())
        .and_then(|g| g.stop_source());
    let stopped_interrupt;
    let interrupt = match stop.map(|s| interrupt.with_source(s, libc::SIGTERM)) {
        Some(Ok(i)) => {
            stopped_interrupt = i;
            &stopped_interrupt
        }
        _ => interrupt,
    };
    let holder = Holder {
        pid: Some(std::process::id() as i32),
        pgid: None,
        since: Some(facts.started.to_string()),
        run_id: Some(run_id.to_string()),
    };
    if let Some(x) = exclusion.as_mut() {
        x.lock.set_holder(&holder);
    }
    let state_dir = &ctx.cfg.settings.state_dir;
    // While it runs, a marker says so: should this process die, the next supervisor keeps
    // the attempt's deadline and records the run when it ends.
    let mut marker =
        marker::RunMarker::start(marker, facts.record(Outcome::Lost, None, Vec::new(), None));
    let output_dir = output_dir(state_dir, &job.name);
    let mut out = Output::new(&output_dir, run_id, job.output_limit);
    if job.output_to_log {
        out.forward_to(crate::output::Forward::new(ctx.log, &job.name, run_id));
    }
    let mut run = attempts::Attempts {
        ctx,
        facts: &facts,
        fields: &f,
        exclusion: exclusion.as_mut(),
        holder,
        marker: &mut marker,
        out: &mut out,
        scope: &mut scope,
        interrupt,
        started: t0,
        found: Default::default(),
    };
    let (attempts, mut outcome, mut reason) = run.run(who);
    let found = std::mem::take(&mut run.found);
    let contained = contained(ctx, &f, &scope, &attempts);
    drop(scope);
    let fenced = exclusion
        .as_ref()
        .and_then(|x| x.guard.as_ref())
        .and_then(|g| g.fenced());
    if let Some(why) = &fenced {
        outcome = Outcome::Interrupted;
        reason = Some(why.clone());
    }
    let output = out.finish().map(|p| p.to_string_lossy().into_owned());
    if let Some(e) = &out.error {
        ctx.log.log(Level::Warn, "output", &f, e);
    }
    let mut rec = facts.record(outcome, reason, attempts, output);
    rec.facts = contained;
    rec.facts.fired = found.fired;
    rec.facts.verified_sizes = found.verified_sizes;
    rec.facts.result = found.result;
    let tails = (out.stdout.bytes(), out.stderr.bytes());
    finish(ctx, req, &rec, &f, fenced.is_some(), &tails);
    marker.remove();
    if rec.output.is_some() {
        // A new file: the oldest beyond the kept number go (a silent run made none).
        prune_outputs(&output_dir);
    }
    if let Some(age) = job.output_max_age {
        prune_old_outputs(&output_dir, age);
    }
    let exit_code = outcome.exit_code(interrupt.received());
    drop(exclusion);
    let report = RunReport {
        record: rec,
        exit_code,
        tails,
    };
    (report, fenced.is_some())
}

/// What the run's containment saw, for its record: the usage of all its attempts, the
/// processes left behind (logged, one line each) and the limits not applied (logged).
fn contained(
    ctx: Ctx<'_>,
    f: &[(&'static str, String)],
    scope: &Scope<'_>,
    attempts: &[AttemptRecord],
) -> crate::record::RunFacts {
    for l in &scope.leftovers {
        let msg = format!(
            "{} a process left behind: {} (pid {})",
            l.action, l.command, l.pid
        );
        ctx.log.log(Level::Warn, "leftover", f, &msg);
    }
    for why in &scope.not_applied {
        ctx.log.log(Level::Warn, "limits", f, why);
    }
    crate::record::RunFacts {
        usage: attempts
            .iter()
            .fold(Default::default(), |u: crate::record::Usage, a| {
                u.and(&a.usage)
            }),
        leftovers: scope.leftovers.clone(),
        limits_not_applied: scope.not_applied.clone(),
        ..Default::default()
    }
}

/// Logs the end of a run, records it, and tells whoever listens (alerts, healthchecks).
fn finish(
    ctx: Ctx<'_>,
    req: &RunRequest<'_>,
    rec: &RunRecord,
    f: &[(&'static str, String)],
    fenced: bool,
    tails: &(Vec<u8>, Vec<u8>),
) {
    let job = req.job;
    let mut endf = f.to_vec();
    endf.push(("outcome", rec.outcome.as_str().to_string()));
    endf.push(("attempts", rec.attempt_count().to_string()));
    let level = match rec.outcome {
        Outcome::Success => Level::Info,
        Outcome::Warning => Level::Warn,
        _ => Level::Error,
    };
    let reason = rec.reason.as_deref().unwrap_or("");
    ctx.log.log(level, "run-end", &endf, reason);
    let settings = &ctx.cfg.settings;
    if fenced {
        // Left for whoever takes it over (it records it lost, alerts, retries).
        ctx.coord.abandon(settings, rec, ctx.log);
    } else {
        ctx.coord.record(settings, rec, ctx.log);
    }
    if req.alerts && !fenced {
        ctx.alerts().after_run(job, rec, (&tails.0, &tails.1));
    }
}

/// Keeps the newest outputs of a job (run ids sort by start time).
fn prune_outputs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log"))
        .collect();
    if names.len() <= KEEP_OUTPUTS {
        return;
    }
    names.sort();
    for n in &names[..names.len() - KEEP_OUTPUTS] {
        let _ = std::fs::remove_file(dir.join(n));
    }
}

/// Removes the job's output files last written more than `age` ago (`output_max_age`);
/// returns how many. Called at the end of each run and by the daemon's housekeeping.
pub(crate) fn prune_old_outputs(dir: &Path, age: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let Some(before) = std::time::SystemTime::now().checked_sub(age) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < before);
        if name.to_string_lossy().ends_with(".log") && old && std::fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// The directory of a job's output files.
pub(crate) fn output_dir(state_dir: &Path, job: &str) -> std::path::PathBuf {
    state_dir.join("output").join(job)
}

#[cfg(test)]
mod tests {
    use super::new_run_id;

    #[test]
    fn run_ids_made_in_one_second_do_not_repeat() {
        // 10,000 ids, nearly all in one second: with a 24-bit suffix two of them were the
        // same with a chance of 95 %; with 48 bits, of 1 in 5.6 million.
        let ids: Vec<String> = (0..10_000).map(|_| new_run_id()).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        let (time, suffix) = ids[0].split_once('-').expect("TIME-SUFFIX");
        assert_eq!(time.len(), 15, "{}", ids[0]);
        assert_eq!(suffix.len(), 12, "{}", ids[0]);
        assert!(suffix.bytes().all(|b| b.is_ascii_hexdigit()), "{}", ids[0]);
    }
}
