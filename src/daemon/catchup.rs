//! Catch-up runs: the instants a job missed (while the daemon was down, stopped or frozen, or
//! the machine suspended) that its `catchup` says to run. They run one after another, oldest
//! first, in one thread per job: none coalesces into another or is skipped because of
//! another, each waits for the daemon's own run of the job (`coord::OwnRun::Wait`), and each
//! is a run of its own in the history (trigger `catchup`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Shared;
use super::launch::{Launch, run_one};
use crate::log::Level;
use crate::sync::lock;

/// The catch-up runs waiting, per job (a job is here while its catch-up thread works).
#[derive(Default)]
pub(super) struct Catchups {
    queues: Mutex<HashMap<String, VecDeque<Launch>>>,
}

/// Queues a catch-up run of its job, in the order of the instants, and starts the job's
/// catch-up thread unless it is already working.
pub(super) fn push(shared: &Arc<Shared>, launch: Launch) {
    let job = launch.job.clone();
    {
        let mut queues = lock(&shared.catchups.queues);
        if let Some(q) = queues.get_mut(&job) {
            let at = q.partition_point(|l| l.scheduled <= launch.scheduled);
            q.insert(at, launch);
            return;
        }
        queues.insert(job.clone(), VecDeque::from([launch]));
    }
    shared.active.enter();
    let spawned = std::thread::Builder::new()
        .name(format!("catchup {job}"))
        .spawn({
            let shared = Arc::clone(shared);
            let job = job.clone();
            move || {
                crate::sync::finally(
                    || drain(&shared, &job),
                    |panicked| {
                        if panicked {
                            super::launch::panicked_run(&shared, &job);
                            // Its queue goes with it: the next catch-up starts a thread.
                            lock(&shared.catchups.queues).remove(&job);
                        }
                        shared.active.leave();
                    },
                );
            }
        });
    if let Err(e) = spawned {
        let n = lock(&shared.catchups.queues)
            .remove(&job)
            .map_or(0, |q| q.len());
        shared.active.leave();
        shared.log.log(
            Level::Error,
            "dispatch",
            &[("job", job)],
            &format!("cannot start a thread: {e}; {n} catch-up run(s) do not happen"),
        );
    }
}

/// Runs the job's queued catch-up runs, oldest first, until none is left (or the daemon
/// stops: what has not started then is recorded as interrupted, and left to the next
/// start's catch-up from the dispatch mark).
fn drain(shared: &Arc<Shared>, job: &str) {
    loop {
        let (next, left) = {
            let mut queues = lock(&shared.catchups.queues);
            let next = if shared.slots.is_closed() {
                None
            } else {
                queues.get_mut(job).and_then(VecDeque::pop_front)
            };
            let left = match next {
                None => queues.remove(job).unwrap_or_default(),
                Some(_) => VecDeque::new(),
            };
            (next, left)
        };
        if !left.is_empty() {
            let msg = format!(
                "the daemon is stopping: {} catch-up run(s) not started, each recorded as \
                 interrupted (the next start catches up from the last instant dispatched)",
                left.len()
            );
            shared
                .log
                .log(Level::Warn, "catchup", &[("job", job.to_string())], &msg);
            for l in &left {
                let reason = "the daemon stopped before this catch-up run started";
                super::launch::record_not_started(shared, l, reason);
            }
        }
        let Some(launch) = next else {
            return;
        };
        if launch.behind && !behind_pending(shared, job) {
            // Stopping: counted with the others not started.
            if let Some(q) = lock(&shared.catchups.queues).get_mut(job) {
                q.push_front(launch);
            }
            continue;
        }
        let cfg = shared.current();
        let jitter = cfg.job(job).and_then(|j| j.jitter);
        run_one(shared, &cfg, launch, jitter);
    }
}

/// Waits until the job's run that is waiting to start took its exclusion (the catch-up run
/// then waits for it as its own run, so it runs after it); false once the daemon stops.
fn behind_pending(shared: &Shared, job: &str) -> bool {
    while lock(&shared.pending).contains(job) {
        if shared.slots.is_closed() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
