//! The outbox: the thread that delivers the spooled alerts, apart from the runs that raise
//! them. A run only queues its alerts (`Alerts::after_run`, into the spool) and wakes this
//! thread; a slow or silent channel therefore never holds a job's lock, delays a job's
//! start or the next run.
//!
//! The daemon keeps one for its whole life; `cronwarden run` keeps one while its job runs
//! (it retries what earlier processes spooled meanwhile) and then gives it a budget to
//! deliver what is due. Stopping lets the delivery in flight finish (each is bounded by its
//! channel's `timeout`) and leaves the rest in the spool, for the next process.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::Stats;
use super::message::Alert;
use crate::sync::lock;

/// How many alerts that could not be written to the spool are held in memory at most.
const MAX_HELD: usize = 100;
/// How many runs (and channels) the outbox remembers having told about a broken channel,
/// and how many deliveries it remembers to decide it.
const MAX_TOLD: usize = 256;
/// The longest the thread sleeps while alerts wait for a backing-off channel (with none
/// waiting, it sleeps until woken; the daemon wakes it for alerts other processes spooled).
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// Deliver as alerts come.
    No,
    /// Deliver what is due, starting nothing after the instant; then stop.
    Drain(Instant),
    /// Finish the deliveries in flight and stop.
    Now,
}

struct Ctl {
    /// Something happened since the thread last looked (an alert was queued, a channel's
    /// thread is done, the end was asked for).
    dirty: bool,
    end: End,
}

/// The delivery thread's controls, shared with everything that queues alerts.
pub(crate) struct Outbox {
    stats: Arc<Stats>,
    ctl: Mutex<Ctl>,
    cv: Condvar,
    /// Alerts the spool could not take (a full or read-only state directory): delivered from
    /// memory, lost if the process stops first.
    held: Mutex<VecDeque<(String, Alert)>>,
    /// Runs already told about a broken channel (each run and channel once).
    told: Mutex<VecDeque<String>>,
    /// The latest deliveries of each recent run: run id, channel, error (`None`: delivered).
    ledger: Mutex<VecDeque<(String, String, Option<String>)>>,
    /// Deliveries in flight.
    sending: AtomicUsize,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new()
    }
}

impl Outbox {
    pub(crate) fn new() -> Outbox {
        Outbox {
            stats: Arc::new(Stats::default()),
            ctl: Mutex::new(Ctl {
                dirty: true,
                end: End::No,
            }),
            cv: Condvar::new(),
            held: Mutex::new(VecDeque::new()),
            told: Mutex::new(VecDeque::new()),
            ledger: Mutex::new(VecDeque::new()),
            sending: AtomicUsize::new(0),
        }
    }

    /// The delivery counters (the daemon's metrics show them).
    pub(crate) fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Something was queued (by this process or, seen by the daemon, by another one).
    pub(crate) fn wake(&self) {
        lock(&self.ctl).dirty = true;
        self.cv.notify_all();
    }

    /// Whether nothing waits to be delivered: the spool in `state` is empty and no alert is
    /// held in memory.
    pub(crate) fn is_idle(&self, state: &std::path::Path) -> bool {
        self.held_count() == 0 && super::spool_size(state) == 0
    }

    /// Finish the deliveries in flight and stop; what waits stays in the spool. How many
    /// deliveries are in flight.
    pub(crate) fn stop(&self) -> usize {
        let mut c = lock(&self.ctl);
        c.end = End::Now;
        c.dirty = true;
        drop(c);
        self.cv.notify_all();
        self.sending.load(Ordering::SeqCst)
    }

    /// Counts a delivery in flight while `f` runs.
    pub(super) fn sending<R>(&self, f: impl FnOnce() -> R) -> R {
        self.sending.fetch_add(1, Ordering::SeqCst);
        let r = f();
        self.sending.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// Deliver what is due, starting no delivery after `budget`; then stop.
    pub(crate) fn drain(&self, budget: Duration) {
        let mut c = lock(&self.ctl);
        if c.end != End::Now {
            c.end = End::Drain(Instant::now() + budget);
        }
        c.dirty = true;
        drop(c);
        self.cv.notify_all();
    }

    pub(super) fn end(&self) -> End {
        lock(&self.ctl).end
    }

    /// Whether no new delivery may start now.
    pub(super) fn closed(&self) -> bool {
        match self.end() {
            End::No => false,
            End::Drain(by) => Instant::now() >= by,
            End::Now => true,
        }
    }

    /// Sleeps until woken (something was queued, a channel's thread is done, the end is
    /// asked for) or `until` (without one, until woken).
    pub(super) fn wait(&self, until: Option<Timestamp>) {
        let deadline = until.map(|t| {
            let left = Duration::try_from(t.duration_since(Timestamp::now()))
                .unwrap_or(Duration::ZERO)
                .min(MAX_WAIT);
            Instant::now() + left
        });
        let mut c = lock(&self.ctl);
        while !c.dirty {
            c = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match self.cv.wait_timeout(c, left) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    }
                }
                None => match self.cv.wait(c) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                },
            };
        }
        c.dirty = false;
    }

    /// Keeps an alert the spool could not take, to deliver from memory.
    pub(super) fn hold(&self, channel: &str, alert: Alert) -> Option<Alert> {
        let mut held = lock(&self.held);
        held.push_back((channel.to_string(), alert));
        let dropped = (held.len() > MAX_HELD)
            .then(|| held.pop_front())
            .flatten()
            .map(|(_, a)| a);
        drop(held);
        self.wake();
        dropped
    }

    /// The held alerts of a channel (taken out; failed ones are held again).
    pub(super) fn take_held(&self, channel: &str) -> Vec<Alert> {
        let mut held = lock(&self.held);
        let (mine, rest): (VecDeque<_>, VecDeque<_>) =
            held.drain(..).partition(|(c, _)| c == channel);
        *held = rest;
        mine.into_iter().map(|(_, a)| a).collect()
    }

    pub(super) fn held_count(&self) -> usize {
        lock(&self.held).len()
    }

    /// Records how a delivery of a run's alert through a channel ended; every channel's
    /// latest outcome for that run.
    pub(super) fn record_outcome(
        &self,
        run_id: &str,
        channel: &str,
        error: Option<&str>,
    ) -> Vec<(String, Option<String>)> {
        let mut ledger = lock(&self.ledger);
        ledger.retain(|(r, c, _)| !(r == run_id && c == channel));
        ledger.push_back((
            run_id.to_string(),
            channel.to_string(),
            error.map(str::to_string),
        ));
        while ledger.len() > MAX_TOLD {
            ledger.pop_front();
        }
        ledger
            .iter()
            .filter(|(r, _, _)| r == run_id)
            .map(|(_, c, e)| (c.clone(), e.clone()))
            .collect()
    }

    /// True the first time a run is told about; false after.
    pub(super) fn first_telling(&self, run_id: &str) -> bool {
        let mut told = lock(&self.told);
        if told.iter().any(|r| r == run_id) {
            return false;
        }
        told.push_back(run_id.to_string());
        if told.len() > MAX_TOLD {
            told.pop_front();
        }
        true
    }
}
