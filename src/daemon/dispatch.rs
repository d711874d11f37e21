//! From due instants (or a trigger) to run threads: the backend's claim, paused jobs, ticks
//! that join a run still waiting to start, and catch-up runs handed to their queue; each
//! run's thread is `launch`.

use std::collections::HashMap;
use std::sync::Arc;

use super::Shared;
use super::launch::{Launch, panicked_run, run_one};
use crate::config::Config;
use crate::coord::Tick;
use crate::log::Level;
use crate::scheduler::{Dispatch, Why};
use crate::sync::lock;

/// Starts the due instants: the backend decides which run here (all of them in local mode;
/// in fleet mode those this node claims).
pub(super) fn start_all(shared: &Arc<Shared>, cfg: &Arc<Config>, due: Vec<Dispatch>) {
    let mut launches: HashMap<String, Launch> = HashMap::new();
    let mut ticks = Vec::new();
    for d in due {
        if let Some(mut l) = tick_launch(shared, d) {
            // The launches are found again by run id: a second run with the same id would
            // replace the first, which would then never run.
            while launches.contains_key(&l.run_id) {
                l.run_id = crate::execute::new_run_id();
            }
            ticks.push(Tick {
                job: l.job.clone(),
                scheduled: l.scheduled,
                run_id: l.run_id.clone(),
            });
            launches.insert(l.run_id.clone(), l);
        }
    }
    let (sh, cf) = (Arc::clone(shared), Arc::clone(cfg));
    let won = Box::new(move |t: Tick| {
        if let Some(l) = launches.remove(&t.run_id) {
            dispatch(&sh, &cf, l);
        }
    });
    Arc::clone(&shared.coord).claim(ticks, won);
}

/// The launch of a due tick, or `None` when the job is paused here (the tick is then marked
/// as handled and logged).
fn tick_launch(shared: &Shared, d: Dispatch) -> Option<Launch> {
    let why = match d.why {
        Why::Scheduled => "schedule",
        Why::Catchup => "catchup",
        Why::ClockStep => "clock-step",
    };
    if shared.paused.contains(&d.job) {
        let _ = shared.marks.mark(&d.job, d.scheduled);
        shared.log.log(
            Level::Info,
            "paused",
            &[
                ("job", d.job.clone()),
                ("scheduled", d.scheduled.to_string()),
            ],
            "the job is paused; this tick does not run",
        );
        return None;
    }
    Some(Launch::tick(&d.job, d.scheduled, why))
}

/// Hands one run to a run thread (`pool`): jitter, exclusion, slot, run.
pub(super) fn dispatch(shared: &Arc<Shared>, cfg: &Arc<Config>, launch: Launch) {
    let Some(j) = cfg.job(&launch.job) else {
        let f = [
            ("job", launch.job.clone()),
            ("scheduled", launch.scheduled.to_string()),
        ];
        let msg = "the job is no longer in the table: this run does not happen";
        shared.log.log(Level::Warn, "dispatch", &f, msg);
        return;
    };
    if launch.why == "catchup" {
        // One after another, oldest first (`catchup`).
        super::catchup::push(shared, launch);
        return;
    }
    let job = launch.job.clone();
    let mut launch = launch;
    if launch.coalesce && !join_pending(shared, &mut launch) {
        return;
    }
    if launch.why == "catchup" {
        // A claimed instant that may not join the waiting run: it runs after it.
        super::catchup::push(shared, launch);
        return;
    }
    let jitter = if launch.why == "trigger" {
        None
    } else {
        j.jitter
    };
    let cfg = Arc::clone(cfg);
    shared.active.enter();
    let coalesce = launch.coalesce;
    let spawned = shared.pool.spawn(format!("job {job}"), {
        let shared = Arc::clone(shared);
        let job = job.clone();
        move || {
            let run = || run_one(&shared, &cfg, launch, jitter);
            crate::sync::finally(run, |panicked| {
                if panicked {
                    panicked_run(&shared, &job);
                }
                if coalesce {
                    lock(&shared.pending).remove(&job);
                }
                shared.active.leave();
            });
        }
    });
    if let Err(e) = spawned {
        if coalesce {
            lock(&shared.pending).remove(&job);
        }
        shared.active.leave();
        shared.log.log(
            Level::Error,
            "dispatch",
            &[("job", job)],
            &format!("cannot start a thread: {e}"),
        );
    }
}

/// A tick of a job with a run still waiting to start joins that run (its instant is marked
/// as handled); false then. Otherwise the job now has a waiting run. Where a won tick may
/// not coalesce ([`crate::coord::Coordinator::ticks_coalesce`]: in a fleet, the instant is
/// this node's obligation), it becomes a catch-up run instead: it runs after the waiting
/// run, never skipped because of it.
fn join_pending(shared: &Shared, launch: &mut Launch) -> bool {
    let job = &launch.job;
    let mut pending = lock(&shared.pending);
    if !pending.contains(job) {
        pending.insert(job.clone());
        return true;
    }
    drop(pending);
    if !shared.coord.ticks_coalesce() {
        launch.why = "catchup";
        launch.coalesce = false;
        launch.behind = true;
        shared.log.log(
            Level::Info,
            "queued",
            &[
                ("job", job.clone()),
                ("scheduled", launch.scheduled.to_string()),
                ("run_id", launch.run_id.clone()),
            ],
            "a run of this job is already waiting to start; this claimed instant runs after \
             it, as a catch-up run (no other node would run it)",
        );
        return true;
    }
    if launch.mark
        && let Err(e) = shared.marks.mark(job, launch.scheduled)
    {
        shared
            .log
            .log(Level::Error, "mark", &[("job", job.clone())], &e);
    }
    shared.log.log(
        Level::Info,
        "coalesced",
        &[
            ("job", job.clone()),
            ("scheduled", launch.scheduled.to_string()),
        ],
        "a run of this job is already waiting to start; this tick joins it",
    );
    false
}
