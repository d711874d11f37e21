//! Alerts: who hears about a run, and when.
//!
//! After a run, [`Alerts::after_run`] decides which events it is (a final `failure`, a run
//! recorded `lost`, the `recovery` that ends a failure streak, any `output`), applies each
//! channel's `min_interval` within a failure streak (the next alert says how many were
//! suppressed), and queues the alert in the spool. Nothing is sent in the run's thread: the
//! outbox's thread delivers (in the daemon, for its whole life; in `cronwarden run`, while
//! and after its job), so a slow channel never holds a job's lock or delays a run. What
//! cannot be delivered waits in the spool, bounded per channel, coalesced per job and
//! event, and retried with a backoff per channel, by whichever cronwarden process runs
//! jobs.
//!
//! Channels: `email` (lettre over rustls: smtp:// with STARTTLS when offered, smtps://,
//! `?tls=required`, or a local sendmail), `command` and `webhook` (JSON or Slack).
//!
//! Files: `message` (what an alert says), `deliver` (the channels), `spool` (where alerts
//! wait, with their bounds), `outbox` (the delivery thread), `pass` (one round of
//! deliveries), `ping` (healthcheck pings), this file (which events a run is and who hears
//! of them).

mod deliver;
mod message;
mod outbox;
mod pass;
mod ping;
mod spool;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub(crate) use deliver::test;
pub(crate) use message::Alert;
pub(crate) use outbox::Outbox;
pub(crate) use pass::serve;
pub(crate) use ping::{Ping, ping};
pub(crate) use spool::spool_size;

use crate::config::{AlertChannel, AlertEvent, Config, Job};
use crate::coord::Coordinator;
use crate::log::{Level, Logger};
use crate::record::{Outcome, RunRecord};
use message::make_alert;
use spool::{Queued, Spool};

/// Counters of this process's deliveries (the daemon's metrics show them).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    failures: AtomicU64,
}

impl Stats {
    /// Deliveries that failed since this process started.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// What raising alerts needs: the table (channels, state directory), the log, the
/// coordination backend (in a fleet each event of a run is sent by one node only) and the
/// outbox whose thread delivers them.
#[derive(Clone, Copy)]
pub(crate) struct Alerts<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) log: &'a Logger,
    pub(crate) coord: &'a dyn Coordinator,
    pub(crate) outbox: &'a Outbox,
}

/// Per job and channel: the failure streak's last alert and how many were suppressed since.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Throttle {
    last_sent: Option<Timestamp>,
    suppressed: u64,
}

fn state_path(state: &Path, what: &str) -> PathBuf {
    state.join("alerts").join(what)
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(p: &Path) -> T {
    std::fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn event_name(e: AlertEvent) -> &'static str {
    e.name()
}

impl Alerts<'_> {
    /// Sends the `retry` alerts for a failed attempt that will be retried (only to channels
    /// whose `on` includes "retry"; never throttled: the user asked for each one).
    pub(crate) fn on_retry(&self, job: &Job, so_far: &RunRecord, tails: (&[u8], &[u8])) {
        for name in &job.alert {
            let Some(ch) = self.cfg.alert(name) else {
                continue;
            };
            if ch.on.contains(&AlertEvent::Retry) {
                let alert = make_alert("retry", job, so_far, tails, 0, self.cfg);
                self.queue(ch, alert);
            }
        }
    }

    /// Tells the job's failure channels that the node running `rec` was lost (sent by the
    /// one node that took the run over).
    pub(crate) fn node_lost(&self, job: &Job, rec: &RunRecord) {
        if !self.coord.first_alert(&rec.run_id, "node-lost") {
            return;
        }
        for name in &job.alert {
            let Some(ch) = self.cfg.alert(name) else {
                continue;
            };
            if ch.on.contains(&AlertEvent::Failure) {
                let alert = make_alert("node-lost", job, rec, (&[], &[]), 0, self.cfg);
                self.queue(ch, alert);
            }
        }
    }

    /// Tells these channels of the job about the daemon's state directory: it cannot be
    /// written (`state-unwritable`) or can be again (`state-writable`); `rec` is the tick
    /// that found it, and its reason says what is wrong.
    pub(crate) fn state_dir(&self, job: &Job, rec: &RunRecord, event: &str, channels: &[String]) {
        for name in channels {
            if let Some(ch) = self.cfg.alert(name) {
                let alert = make_alert(event, job, rec, (&[], &[]), 0, self.cfg);
                self.queue(ch, alert);
            }
        }
    }

    /// A run still going after its `warn_after`: `slow`, once per run (it is not stopped).
    /// `so_far` is the run's record as it stands; `usual` the job's usual duration (the
    /// median of its last successful runs), when known.
    #[allow(
        dead_code,
        reason = "called by the run path (issue 18, branch run18); remove when merged"
    )]
    pub(crate) fn on_slow(
        &self,
        job: &Job,
        so_far: &RunRecord,
        elapsed: std::time::Duration,
        usual: Option<std::time::Duration>,
    ) {
        let _ = (job, so_far, elapsed, usual);
    }

    /// The job's last success (`None`: it never succeeded) is older than its
    /// `expect_success_within`, whose deadline passed at `deadline`: `stale`, once until
    /// the next success.
    pub(crate) fn on_stale(
        &self,
        job: &Job,
        last_success: Option<&RunRecord>,
        deadline: Timestamp,
    ) {
        let _ = (job, last_success, deadline);
    }

    /// Queues the alerts a finished run calls for (the outbox delivers them).
    pub(crate) fn after_run(&self, job: &Job, rec: &RunRecord, tails: (&[u8], &[u8])) {
        let was_failing = self.update_streak(job, rec);
        let mut events = Vec::new();
        if matches!(rec.outcome, Outcome::Failure | Outcome::Lost) {
            events.push(AlertEvent::Failure);
        }
        if rec.outcome == Outcome::Success && was_failing {
            events.push(AlertEvent::Recovery);
        }
        if !tails.0.is_empty() || !tails.1.is_empty() {
            events.push(AlertEvent::Output);
        }
        // Each event of a run is sent once (in a fleet, by one node only).
        events.retain(|e| self.coord.first_alert(&rec.run_id, event_name(*e)));
        for name in &job.alert {
            let Some(ch) = self.cfg.alert(name) else {
                continue;
            };
            for ev in events.iter().filter(|e| ch.on.contains(e)) {
                let Some(suppressed) = self.throttle(job, ch, *ev, was_failing) else {
                    continue;
                };
                let alert = make_alert(event_name(*ev), job, rec, tails, suppressed, self.cfg);
                self.queue(ch, alert);
            }
        }
    }

    /// Puts an alert in the spool for its channel and wakes the outbox. The spool says
    /// whether it replaced an older one or waits for a failing channel; when the spool
    /// cannot be written (a full disk), the alert is held in memory instead.
    fn queue(&self, ch: &AlertChannel, alert: Alert) {
        let f = [
            ("job", alert.job.clone()),
            ("channel", ch.name.clone()),
            ("event", alert.event.clone()),
            ("run_id", alert.run.run_id.clone()),
        ];
        match Spool::new(self.cfg, self.log).put(&ch.name, alert.clone()) {
            Ok(Queued::Waiting) => {}
            Ok(Queued::Coalesced(n)) => self.log.log(
                Level::Info,
                "alert-coalesced",
                &f,
                &format!(
                    "replaces the waiting {} alert of an earlier run; it stands for {n}",
                    alert.event
                ),
            ),
            Ok(Queued::ChannelFailing(how)) => self.log.log(
                Level::Warn,
                "alert-spooled",
                &f,
                &format!(
                    "[alerts.{}] is {how}; the alert waits in the spool",
                    ch.name
                ),
            ),
            Err(e) => {
                let msg = format!(
                    "cannot write the alert spool: {e}; the alert is held in memory (lost if \
                     this process stops before it goes out)"
                );
                self.log.log(Level::Error, "alert-spool", &f, &msg);
                if let Some(lost) = self.outbox.hold(&ch.name, alert) {
                    let msg = format!("too many alerts held in memory: {}", lost.subject());
                    self.log.log(Level::Error, "alert-lost", &f, &msg);
                }
            }
        }
        self.outbox.wake();
    }

    /// Keeps the job's failure streak (a recovery is the first success after a failure);
    /// whether the job was failing before this run.
    fn update_streak(&self, job: &Job, rec: &RunRecord) -> bool {
        let state = &self.cfg.settings.state_dir;
        let streak_file = state_path(state, &format!("{}.failing", job.name));
        let was_failing = streak_file.exists();
        let failed = matches!(rec.outcome, Outcome::Failure | Outcome::Lost);
        if failed && !was_failing {
            let _ = crate::files::write_replace(&streak_file, rec.run_id.as_bytes());
        } else if rec.outcome == Outcome::Success && was_failing {
            let _ = std::fs::remove_file(&streak_file);
        }
        was_failing
    }

    /// A channel's `min_interval` within a failure streak: `None` when this alert is
    /// suppressed, else how many were suppressed before it.
    fn throttle(
        &self,
        job: &Job,
        ch: &AlertChannel,
        ev: AlertEvent,
        was_failing: bool,
    ) -> Option<u64> {
        let state = &self.cfg.settings.state_dir;
        let throttle_file = state_path(state, &format!("{}.{}.throttle", job.name, ch.name));
        if ev == AlertEvent::Recovery {
            let _ = std::fs::remove_file(&throttle_file);
        }
        if ev != AlertEvent::Failure || ch.min_interval.is_zero() {
            return Some(0);
        }
        let mut t: Throttle = read_json(&throttle_file);
        let now = Timestamp::now();
        let within = t.last_sent.is_some_and(|l| {
            now.duration_since(l)
                < jiff::SignedDuration::try_from(ch.min_interval).unwrap_or_default()
        });
        let suppressed = t.suppressed;
        if within && was_failing {
            t.suppressed += 1;
            self.log.log(
                Level::Info,
                "alert-suppressed",
                &[("job", job.name.clone()), ("channel", ch.name.clone())],
                &format!("within min_interval ({} so far)", t.suppressed),
            );
        } else {
            t = Throttle {
                last_sent: Some(now),
                suppressed: 0,
            };
        }
        if let Ok(b) = serde_json::to_vec(&t) {
            let _ = crate::files::write_replace(&throttle_file, &b);
        }
        (!(within && was_failing)).then_some(suppressed)
    }
}
