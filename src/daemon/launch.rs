//! One run to start ([`Launch`]) and its thread from start to end: the instant marked as
//! dispatched, the jitter, the exact instant, the job's exclusion and a `max_concurrent`
//! slot, then the very same `execute_locked` path as `cronwarden run` (which writes the
//! run's marker); the jobs after it follow as one pipeline run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::Shared;
use crate::config::Config;
use crate::coord::{Exclusion, OwnRun};
use crate::execute::{self, Ctx, RunRequest};
use crate::log::Level;
use crate::record::{Outcome, RunRecord};
use crate::runner::Interrupt;
use crate::sync::lock;

/// One run to start.
pub(super) struct Launch {
    pub(super) job: String,
    pub(super) scheduled: Timestamp,
    /// "schedule", "catchup", "clock-step", "reboot", "start", "trigger", "takeover".
    pub(super) why: &'static str,
    pub(super) params: BTreeMap<String, String>,
    pub(super) run_id: String,
    /// Scheduler ticks are marked as dispatched; reboot, start and trigger runs are not ticks.
    pub(super) mark: bool,
    /// Scheduler ticks coalesce into a run that is still waiting (where the backend lets
    /// them: `Coordinator::ticks_coalesce`); catch-up runs and triggers never do.
    pub(super) coalesce: bool,
    /// A won tick that found a run of its job waiting to start and may not join it: it
    /// starts only once that run took its exclusion (so it runs after it).
    pub(super) behind: bool,
    /// Told the run's record when it ends (`trigger --wait`).
    pub(super) done: Option<std::sync::mpsc::Sender<RunRecord>>,
    /// 1, or the attempt a run taken over from a lost fleet node goes on with.
    pub(super) first_attempt: u32,
}

impl Launch {
    pub(super) fn tick(job: &str, scheduled: Timestamp, why: &'static str) -> Launch {
        Launch {
            job: job.to_string(),
            scheduled,
            why,
            params: Default::default(),
            run_id: execute::new_run_id(),
            mark: !matches!(why, "reboot" | "start"),
            coalesce: why != "catchup",
            behind: false,
            done: None,
            first_attempt: 1,
        }
    }

    /// A run of the schedule (`schedule`, `catchup`, `clock-step`): one a pause holds back.
    pub(super) fn is_tick(&self) -> bool {
        matches!(self.why, "schedule" | "catchup" | "clock-step")
    }

    /// An instant claimed late (after the backend was unreachable when it was due): a
    /// catch-up run with the run id it was claimed with.
    pub(super) fn late(tick: crate::coord::Tick) -> Launch {
        let mut l = Launch::tick(&tick.job, tick.scheduled, "catchup");
        l.run_id = tick.run_id;
        l
    }

    /// A run asked for now, outside the schedule (never coalesced, never marked).
    pub(super) fn request(job: String, params: BTreeMap<String, String>, run_id: String) -> Launch {
        Launch {
            job,
            scheduled: Timestamp::now(),
            why: "trigger",
            params,
            run_id,
            mark: false,
            coalesce: false,
            behind: false,
            done: None,
            first_attempt: 1,
        }
    }
}

/// One run in its thread, start to end (then the jobs after it).
pub(super) fn run_one(
    shared: &Arc<Shared>,
    cfg: &Config,
    launch: Launch,
    jitter: Option<Duration>,
) {
    let name = launch.job.as_str();
    let Some(job) = cfg.job(name) else {
        return;
    };
    let delay = jitter.map(|j| match job.fixed_delay(&cfg.host_name()) {
        Some(offset) => fixed_wait(shared, &launch, offset),
        None => j.mul_f64(crate::policy::random01()),
    });
    let (interrupt, jitter) = prepare(shared, delay);
    let ctx = shared.ctx(cfg);
    // A job with jobs after it alerts at the end of its pipeline run (the failure alert
    // then also lists what was skipped).
    let req = RunRequest {
        job,
        scheduled: launch.scheduled,
        params: launch.params.clone(),
        trigger: launch.why,
        alerts: cfg.children(name).is_empty(),
        first_attempt: launch.first_attempt,
        respect_past: launch.why != "trigger",
        // A root: nothing runs above it in its pipeline run.
        upstream: BTreeMap::new(),
    };
    // Whether another run is in the way (skip, queue, replace) is a question about the
    // instant itself: the run was handed over early (`LOOKAHEAD`), and has its cgroup and
    // identity ready by then, but looks at the job's exclusion only once its instant has
    // come. (`execute_locked` writes the run's marker.)
    let waited =
        wait_jitter(jitter, &interrupt).map(|()| execute::Ready::new(ctx, &req, &launch.run_id));
    let waited = waited.and_then(|ready| {
        wait_for_instant(&*shared.coord, launch.scheduled, &interrupt).map(|()| ready)
    });
    mark_dispatched(shared, &launch);
    let (exclusion, ready) = match waited {
        // A pause that came after the hand-over holds for this instant too: recorded as
        // skipped, without an alert (a claimed instant is never dropped without a record;
        // what was made ready goes with `waited`: the cgroup removed, the marker's file kept
        // as a spare).
        Ok(_) if launch.is_tick() && shared.paused.contains(name) => {
            let reason = "the job was paused after this run was handed over, before its instant";
            let quiet = RunRequest {
                alerts: false,
                ..req
            };
            let r = execute::not_run(ctx, &quiet, &launch.run_id, reason.to_string(), None);
            report(shared, &launch, r.record, false);
            return;
        }
        Ok(ready) => (admit(shared, ctx, &req, &launch, &interrupt), ready),
        Err(reason) => {
            let r = execute::not_run(ctx, &req, &launch.run_id, reason, interrupt.received());
            report(shared, &launch, r.record, false);
            return;
        }
    };
    let Some(exclusion) = exclusion else {
        // Recorded as not run (skipped or interrupted).
        return;
    };
    shared.metrics.started(name);
    let held = (exclusion, ready);
    let r = execute::execute_locked(ctx, &req, &launch.run_id, held, &interrupt);
    let (root_record, root_tails) = (r.record.clone(), r.tails);
    report(shared, &launch, r.record, true);
    shared.slots.release();
    // The jobs that come after it run as one pipeline run with its scheduled instant (after
    // a failure they are recorded as skipped).
    let ran = !matches!(root_record.outcome, Outcome::Skipped | Outcome::Interrupted);
    if ran && !cfg.children(name).is_empty() {
        let p = crate::pipeline::run_downstream(
            ctx,
            (job, launch.scheduled, req.respect_past),
            root_record,
            root_tails,
            &interrupt,
        );
        for step in p.steps.iter().skip(1) {
            shared.metrics.finished(&step.job, false, step);
            shared.watch.ended(cfg, step);
        }
    }
}

/// Logs a run whose thread panicked (a bug): without this the log would not say that the
/// run ended, and nothing else would (its record may be missing).
pub(super) fn panicked_run(shared: &Shared, job: &str) {
    shared.log.log(
        Level::Error,
        "dispatch",
        &[("job", job.to_string())],
        "the run's thread panicked (a bug in cronwarden; the message is on the daemon's \
         standard error): the run ends here, perhaps without its record",
    );
}

/// `jitter_mode = "fixed"`: the wait until the same offset after the scheduled instant every
/// time (an instant already past, as a catch-up's, starts at once). Logged with the offset.
fn fixed_wait(shared: &Shared, launch: &Launch, offset: Duration) -> Duration {
    let f = [
        ("job", launch.job.clone()),
        ("scheduled", launch.scheduled.to_string()),
        ("offset_ms", offset.as_millis().to_string()),
    ];
    let msg = "fixed jitter: the run starts this long after its scheduled instant";
    shared.log.log(Level::Info, "jitter", &f, msg);
    let start = launch.scheduled + offset;
    let wait = start.duration_since(Timestamp::now());
    Duration::try_from(wait).unwrap_or(Duration::ZERO)
}

/// Sets up the run's interrupt (the daemon's stop) and gives back the jitter's `delay` to
/// wait.
fn prepare(shared: &Shared, delay: Option<Duration>) -> (Interrupt, Duration) {
    let interrupt = Interrupt::on_stream(Arc::clone(&shared.stop), libc::SIGTERM);
    (interrupt, delay.unwrap_or(Duration::ZERO))
}

/// Marks a tick's instant as dispatched once the wait for it is over, whichever way (the
/// run starts, or is recorded as not run): a daemon killed before that (in the run's jitter,
/// or in the `LOOKAHEAD` before its instant) leaves the instant to the next daemon's
/// `catchup`, instead of counting it as dispatched with no run and no record. Without its
/// mark the run goes on all the same (`health` says why, and alerts).
fn mark_dispatched(shared: &Arc<Shared>, launch: &Launch) {
    if launch.mark {
        let marked = shared.marks.mark(&launch.job, launch.scheduled);
        super::health::marked(
            shared,
            &launch.job,
            &launch.run_id,
            launch.scheduled,
            marked,
        );
    }
}

/// Takes the job's exclusion, then a `max_concurrent` slot. `None` when the run does not
/// happen (it is then recorded and reported).
fn admit(
    shared: &Shared,
    ctx: Ctx<'_>,
    req: &RunRequest<'_>,
    launch: &Launch,
    interrupt: &Interrupt,
) -> Option<Option<Exclusion>> {
    let settings = &ctx.cfg.settings;
    let run_id = &launch.run_id;
    // A catch-up run waits for this daemon's own run of the job (missed instants run one
    // after another), and so does a run taken over from a lost node (a run owed, which a
    // skip would lose); any other run meets it as `overlap` says.
    let own = if launch.why == "catchup" || launch.why == "takeover" {
        OwnRun::Wait
    } else {
        OwnRun::Overlap
    };
    let exclusion = match ctx
        .coord
        .acquire(settings, req.job, ctx.log, run_id, interrupt, own)
    {
        Ok(x) => x,
        Err(reason) => {
            // Skipped: no pipeline run follows, so the job alerts its skip itself, also
            // when jobs come after it.
            let req = RunRequest {
                alerts: true,
                params: req.params.clone(),
                upstream: req.upstream.clone(),
                ..*req
            };
            let r = execute::not_run(ctx, &req, run_id, reason, interrupt.received());
            report(shared, launch, r.record, false);
            return None;
        }
    };
    if req.respect_past
        && let Some(reason) = execute::past::blocker(ctx, req.job, req.scheduled)
    {
        // As a skip for the lock: the job alerts it itself, no pipeline run follows.
        drop(exclusion);
        let req = RunRequest {
            alerts: true,
            params: req.params.clone(),
            upstream: req.upstream.clone(),
            ..*req
        };
        let r = execute::not_run(ctx, &req, run_id, reason, None);
        report(shared, launch, r.record, false);
        return None;
    }
    if !shared.slots.acquire() {
        // Shutting down before a slot came free: say so, the instant will not run.
        let reason = "the daemon stopped while the run waited for a max_concurrent slot";
        let r = execute::not_run(ctx, req, run_id, reason.to_string(), Some(libc::SIGTERM));
        report(shared, launch, r.record, false);
        return None;
    }
    if launch.coalesce {
        // No longer waiting: the next tick is a run of its own.
        lock(&shared.pending).remove(&launch.job);
    }
    Some(exclusion)
}

/// Waits out the jitter. A stop meanwhile is recorded by the caller (a claimed instant is
/// never dropped without a record).
fn wait_jitter(jitter: Duration, interrupt: &Interrupt) -> Result<(), String> {
    if !jitter.is_zero() && interrupt.sleep(jitter).is_some() {
        return Err("the daemon stopped before it started (during its jitter)".to_string());
    }
    Ok(())
}

/// Waits (handed over early, `LOOKAHEAD`) for the instant: nothing about the run is decided
/// before its instant, and it never starts before it, by the backend's time (a fleet node
/// with a skewed clock waits for the instant by the database's clock; looked at again after
/// each wait, since that time can move with a new clock offset). A stop meanwhile is
/// recorded by the caller.
fn wait_for_instant(
    coord: &dyn crate::coord::Coordinator,
    scheduled: Timestamp,
    interrupt: &Interrupt,
) -> Result<(), String> {
    while let Ok(early) = Duration::try_from(scheduled.duration_since(coord.now()))
        && !early.is_zero()
    {
        if interrupt.sleep(early).is_some() {
            return Err("the daemon stopped before it started".to_string());
        }
    }
    Ok(())
}

/// Records a run that does not start because the daemon stops (not alerted): an instant
/// claimed in a fleet is never dropped without a record.
pub(super) fn record_not_started(shared: &Arc<Shared>, launch: &Launch, reason: &str) {
    let cfg = shared.current();
    let Some(job) = cfg.job(&launch.job) else {
        return;
    };
    let req = RunRequest {
        job,
        scheduled: launch.scheduled,
        params: launch.params.clone(),
        trigger: launch.why,
        alerts: false,
        first_attempt: launch.first_attempt,
        respect_past: false,
        upstream: Default::default(),
    };
    let r = execute::not_run(
        shared.ctx(&cfg),
        &req,
        &launch.run_id,
        reason.to_string(),
        Some(libc::SIGTERM),
    );
    report(shared, launch, r.record, false);
}

/// A run's end, told to the metrics, the watchdog and whoever waits for it (`trigger
/// --wait`).
fn report(shared: &Shared, launch: &Launch, rec: RunRecord, was_running: bool) {
    shared.metrics.finished(&rec.job, was_running, &rec);
    shared.watch.ended(&shared.current(), &rec);
    if let Some(tx) = &launch.done {
        let _ = tx.send(rec);
    }
}
