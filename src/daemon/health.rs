//! Whether the daemon can write its state directory. Every dispatch mark is the probe. When
//! one cannot be written (a full or read-only disk), the run goes on all the same; the
//! condition is logged once, told once to each alert channel (with `on` including
//! "failure") of the jobs whose ticks meet it, and shown by `status` (through the control
//! socket, which needs no file); when a mark can be written again, the recovery is logged
//! and told to the same channels.
//!
//! Why the run goes on: the mark is there so that a daemon that crashes and restarts does
//! not run an instant twice. Refusing to run without it turns a full disk into a silent stop
//! of every job, which no operator of cron would expect; running unmarked can run an
//! instant twice only if the daemon also crashes meanwhile (and then only with `catchup`):
//! a rarer and smaller harm, and the alert says so.

use std::sync::{Arc, Mutex};

use jiff::Timestamp;

use super::Shared;
use crate::config::AlertEvent;
use crate::log::Level;
use crate::record::{Outcome, RunRecord};
use crate::schedule::format_rfc3339;
use crate::sync::lock;

/// The state directory's condition, as the dispatch marks find it.
#[derive(Default)]
pub(super) struct Health {
    trouble: Mutex<Option<Trouble>>,
}

/// A stretch of time in which dispatch marks could not be written.
struct Trouble {
    since: Timestamp,
    error: String,
    /// Runs that went on without their mark.
    unmarked: u64,
    /// The channels told, each with the job it was told about.
    told: Vec<(String, String)>,
}

impl Trouble {
    fn describe(&self) -> String {
        format!(
            "{} (since {}; {} run(s) started unrecorded)",
            self.error, self.since, self.unmarked
        )
    }
}

impl Health {
    /// What is wrong now, for `status` (none when the state directory can be written).
    pub(super) fn problem(&self) -> Option<String> {
        lock(&self.trouble).as_ref().map(Trouble::describe)
    }
}

/// A tick of `job` (its run `run_id`, scheduled at `scheduled`) was marked, or could not be
/// (`result`): the run goes on either way; a change of the condition is logged and alerted.
pub(super) fn marked(
    shared: &Arc<Shared>,
    job: &str,
    run_id: &str,
    scheduled: Timestamp,
    result: Result<(), String>,
) {
    let mut trouble = lock(&shared.health.trouble);
    let f = [("job", job.to_string()), ("run_id", run_id.to_string())];
    let error = match result {
        Ok(()) => {
            if let Some(t) = trouble.take() {
                let msg = format!(
                    "dispatch marks can be written again: {} runs went unrecorded since {} ({})",
                    t.unmarked, t.since, t.error
                );
                shared.log.log(Level::Warn, "state-recovered", &f, &msg);
                let reason = format!(
                    "{} can be written again; from {}, {} run(s) started unrecorded ({})",
                    shared.state_dir.display(),
                    t.since,
                    t.unmarked,
                    t.error
                );
                alert(
                    shared,
                    &t.told,
                    run_id,
                    scheduled,
                    "state-writable",
                    &reason,
                );
            }
            return;
        }
        Err(e) => e,
    };
    let t = trouble.get_or_insert_with(|| {
        let msg = format!(
            "{error}; running the jobs all the same: until it can be written, runs are not \
             recorded, and should the daemon crash meanwhile an instant could run again"
        );
        shared.log.log(Level::Error, "state", &f, &msg);
        Trouble {
            since: Timestamp::now(),
            error: error.clone(),
            unmarked: 0,
            told: Vec::new(),
        }
    });
    t.unmarked += 1;
    let cfg = shared.current();
    let new: Vec<(String, String)> = cfg
        .job(job)
        .map(|j| j.alert.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|name| !t.told.iter().any(|(told, _)| told == *name))
        .filter(|name| {
            cfg.alert(name)
                .is_some_and(|ch| ch.on.contains(&AlertEvent::Failure))
        })
        .map(|name| (name.clone(), job.to_string()))
        .collect();
    if !new.is_empty() {
        t.told.extend(new.iter().cloned());
        let reason = format!(
            "{}; jobs keep running, unrecorded, until state_dir can be written again",
            t.describe()
        );
        alert(shared, &new, run_id, scheduled, "state-unwritable", &reason);
    }
}

/// Sends `event` to each (channel, job) in a thread of its own: a slow channel must not
/// hold up the run. (Also the daemon's `clock` alert.)
pub(super) fn alert(
    shared: &Arc<Shared>,
    to: &[(String, String)],
    run_id: &str,
    scheduled: Timestamp,
    event: &'static str,
    reason: &str,
) {
    let (sh, to, run_id, reason) = (
        Arc::clone(shared),
        to.to_vec(),
        run_id.to_string(),
        reason.to_string(),
    );
    let spawned = std::thread::Builder::new()
        .name("state alert".into())
        .spawn(move || {
            let cfg = sh.current();
            for (channel, name) in &to {
                let Some(job) = cfg.job(name) else {
                    continue;
                };
                let now = Timestamp::now().to_string();
                let rec = RunRecord {
                    run_id: run_id.clone(),
                    job: name.clone(),
                    scheduled: format_rfc3339(scheduled, job.tz()),
                    started: now.clone(),
                    ended: now,
                    duration_ms: 0,
                    attempts: Vec::new(),
                    outcome: Outcome::Failure,
                    reason: Some(reason.clone()),
                    output: None,
                    trigger: "schedule".to_string(),
                    node: sh.coord.node().map(str::to_string),
                    skips: None,
                    facts: Default::default(),
                };
                sh.ctx(&cfg)
                    .alerts()
                    .state_dir(job, &rec, event, std::slice::from_ref(channel));
            }
        });
    if let Err(e) = spawned {
        let msg = format!("cannot start a thread to send {event} alerts: {e}");
        shared.log.log(Level::Error, "state", &[], &msg);
    }
}
