//! Delivering from the spool: which channels have alerts due, one channel's round of
//! deliveries (oldest first, until none is left, one fails, or the outbox closes), the note
//! about a broken channel, when to look again, and what is left at the end.
//!
//! Each channel delivers in a thread of its own (`outbox::serve` starts them), so a silent
//! mail server never holds up the webhook.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

use super::deliver::{DeliveryError, deliver};
use super::message::Alert;
use super::outbox::{End, Outbox};
use super::spool::{Claim, Spool};
use crate::config::{AlertChannel, Config};
use crate::log::{Level, Logger};
use crate::sync::lock;

/// When alerts wait that no backoff times (held in memory because the spool cannot be
/// written, or left because it could not be changed), they are looked at again this much
/// later.
const RETRY_LATER: Duration = Duration::from_secs(5);

/// The spool as the delivery side sees it, with the table in force.
pub(super) struct Pass<'a> {
    cfg: &'a Config,
    log: &'a Logger,
    outbox: &'a Outbox,
    spool: Spool<'a>,
}

fn fields(channel: &str, a: &Alert) -> [(&'static str, String); 4] {
    [
        ("job", a.job.clone()),
        ("channel", channel.to_string()),
        ("event", a.event.clone()),
        ("run_id", a.run.run_id.clone()),
    ]
}

impl<'a> Pass<'a> {
    pub(super) fn new(cfg: &'a Config, log: &'a Logger, outbox: &'a Outbox) -> Pass<'a> {
        Pass {
            cfg,
            log,
            outbox,
            spool: Spool::new(cfg, log),
        }
    }

    /// Puts back in line what dead processes had taken, and drops the alerts of channels the
    /// table no longer has.
    pub(super) fn tidy(&self) {
        if let Err(e) = self.spool.recover() {
            let msg = format!("cannot read the alert spool: {e}");
            self.log.log(Level::Error, "alert-spool", &[], &msg);
        }
        for name in self.spool.channels() {
            if self.cfg.alert(&name).is_none()
                && let Err(e) = self.spool.drop_channel(&name)
            {
                let f = [("channel", name.clone())];
                let msg = format!("cannot drop the alerts of a removed channel: {e}");
                self.log.log(Level::Error, "alert-spool", &f, &msg);
            }
        }
    }

    /// The channels with something to deliver now: waiting alerts and no backoff, or alerts
    /// held in memory.
    pub(super) fn due(&self) -> Vec<String> {
        let now = Timestamp::now();
        let held = self.outbox.held_count() > 0;
        self.cfg
            .alerts
            .iter()
            .filter(|ch| {
                held || (!self.spool.waiting(&ch.name).is_empty()
                    && !self.spool.state(&ch.name).backing_off(now))
            })
            .map(|ch| ch.name.clone())
            .collect()
    }

    /// One delivery, counted as in flight while it lasts.
    fn send(&self, ch: &AlertChannel, alert: &Alert) -> Result<(), DeliveryError> {
        self.outbox
            .sending(|| deliver(ch, alert, self.outbox.stats()))
    }

    /// Delivers a channel's alerts, oldest first, until none is left, one fails or the
    /// outbox closes.
    pub(super) fn drain(&self, channel: &str) {
        let Some(ch) = self.cfg.alert(channel) else {
            return;
        };
        if !self.deliver_held(ch) {
            return;
        }
        while !self.outbox.closed() {
            let claim = match self.spool.claim(&ch.name) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    let f = [("channel", ch.name.clone())];
                    let msg = format!("cannot take an alert from the spool: {e}");
                    self.log.log(Level::Error, "alert-spool", &f, &msg);
                    break;
                }
            };
            if !self.deliver_claimed(ch, claim) {
                break;
            }
        }
    }

    /// One spooled alert through its channel; false when the channel failed.
    fn deliver_claimed(&self, ch: &AlertChannel, claim: Claim) -> bool {
        let mut alert = claim.entry.alert.clone();
        alert.dropped = claim.dropped.clone();
        alert.raised.get_or_insert(claim.entry.queued);
        let f = fields(&ch.name, &alert);
        match self.send(ch, &alert) {
            Ok(()) => {
                self.log
                    .log(Level::Info, "alert-sent", &f, &alert.subject());
                if let Err(e) = self.spool.delivered(claim) {
                    let msg = format!("sent, but the spool could not be updated: {e}");
                    self.log.log(Level::Error, "alert-spool", &f, &msg);
                }
                self.settled(ch, &alert, None);
                true
            }
            Err(e) => {
                let state = self.spool.failed(claim, &e.reason, e.permanent);
                self.settled(ch, &alert, Some(&e.reason));
                if e.permanent {
                    let msg = format!("{} (not retried)", e.reason);
                    self.log.log(Level::Error, "alert-failed", &f, &msg);
                    return true;
                }
                let next = match state {
                    Ok(st) => format!(
                        "; [alerts.{}] is tried again at {} ({} alert(s) wait for it)",
                        ch.name,
                        st.next_try.map(|t| t.to_string()).unwrap_or_default(),
                        self.spool.waiting(&ch.name).len()
                    ),
                    Err(e) => format!("; the spool could not be updated: {e}"),
                };
                let msg = format!("{}{next}", e.reason);
                self.log.log(Level::Warn, "alert-spooled", &f, &msg);
                false
            }
        }
    }

    /// Alerts the spool could not take, from memory; false when the channel failed.
    fn deliver_held(&self, ch: &AlertChannel) -> bool {
        let mut held = self.outbox.take_held(&ch.name).into_iter();
        for alert in held.by_ref() {
            if self.outbox.closed() {
                self.outbox.hold(&ch.name, alert);
                break;
            }
            let f = fields(&ch.name, &alert);
            match self.send(ch, &alert) {
                Ok(()) => {
                    self.log
                        .log(Level::Info, "alert-sent", &f, &alert.subject());
                    self.settled(ch, &alert, None);
                }
                Err(e) if e.permanent => {
                    let msg = format!("{} (not retried)", e.reason);
                    self.log.log(Level::Error, "alert-failed", &f, &msg);
                    self.settled(ch, &alert, Some(&e.reason));
                }
                Err(e) => {
                    let msg = format!("{}; held in memory for a later try", e.reason);
                    self.log.log(Level::Warn, "alert-spooled", &f, &msg);
                    self.settled(ch, &alert, Some(&e.reason));
                    self.outbox.hold(&ch.name, alert);
                    for rest in held {
                        self.outbox.hold(&ch.name, rest);
                    }
                    return false;
                }
            }
        }
        true
    }

    /// A delivery of a run's alert ended (`error`: it failed). When one of the job's channels
    /// worked and another failed, the one that works carries a note naming the broken ones,
    /// once per run and channel, so that a broken mail relay does not go unnoticed. Whichever
    /// of the two ends last sends it.
    fn settled(&self, ch: &AlertChannel, alert: &Alert, error: Option<&str>) {
        let run = self
            .outbox
            .record_outcome(&alert.run.run_id, &ch.name, error);
        let mut broken: Vec<String> = run
            .iter()
            .filter_map(|(c, e)| e.as_ref().map(|e| format!("[alerts.{c}]: {e}")))
            .collect();
        let working: Vec<&str> = run
            .iter()
            .filter(|(_, e)| e.is_none())
            .map(|(c, _)| c.as_str())
            .collect();
        if error.is_none() {
            broken.extend(self.failing_for_job(ch, alert, &run));
        }
        if broken.is_empty() {
            return;
        }
        for via in working {
            let Some(via_ch) = self.cfg.alert(via) else {
                continue;
            };
            if !self
                .outbox
                .first_telling(&format!("{}/{via}", alert.run.run_id))
            {
                continue;
            }
            let mut note = alert.clone();
            note.event = "channel-broken".to_string();
            note.coalesced = 0;
            note.since = None;
            note.dropped.clear();
            note.run.reason = Some(format!(
                "alert channel(s) failed: {} (undelivered alerts are spooled and retried)",
                broken.join("; ")
            ));
            if self.send(via_ch, &note).is_ok() {
                self.log.log(
                    Level::Warn,
                    "alert-channel-broken",
                    &[("job", alert.job.clone()), ("via", via.to_string())],
                    &broken.join("; "),
                );
            }
        }
    }

    /// The job's other channels that fail (backing off) and hold an alert of the job, but
    /// have not tried this run's.
    fn failing_for_job(
        &self,
        via: &AlertChannel,
        a: &Alert,
        tried: &[(String, Option<String>)],
    ) -> Vec<String> {
        let Some(job) = self.cfg.job(&a.job) else {
            return Vec::new();
        };
        job.alert
            .iter()
            .filter(|n| **n != via.name && !tried.iter().any(|(c, _)| c == *n))
            .filter_map(|n| {
                let st = self.spool.state(n);
                (st.failures > 0 && self.spool.holds_job(n, &job.name))
                    .then(|| format!("[alerts.{n}]: {}", st.last_error))
            })
            .collect()
    }

    /// When the thread should look again: the earliest instant a backing-off channel with
    /// waiting alerts may be tried. Alerts that wait although their channel is not backing
    /// off (being delivered, or the spool could not be changed), and alerts held in memory,
    /// are looked at again after `RETRY_LATER` (never in a tight loop).
    pub(super) fn wake_at(&self) -> Option<Timestamp> {
        let now = Timestamp::now();
        let later = now
            .checked_add(jiff::SignedDuration::try_from(RETRY_LATER).unwrap_or_default())
            .unwrap_or(now);
        let mut at = (self.outbox.held_count() > 0).then_some(later);
        for ch in &self.cfg.alerts {
            if self.spool.waiting(&ch.name).is_empty() {
                continue;
            }
            let t = match self.spool.state(&ch.name).next_try {
                Some(t) if t > now => t,
                _ => later,
            };
            at = Some(at.map_or(t, |a| a.min(t)));
        }
        at
    }

    /// Says what is left for a later process: alerts waiting in the spool, and alerts held
    /// in memory (lost now).
    pub(super) fn report_left(&self) {
        for ch in &self.cfg.alerts {
            let n = self.spool.waiting(&ch.name).len();
            if n == 0 {
                continue;
            }
            let st = self.spool.state(&ch.name);
            let how = if st.failures > 0 {
                st.describe()
            } else {
                "not tried yet".to_string()
            };
            self.log.log(
                Level::Warn,
                "alert-spool",
                &[("channel", ch.name.clone())],
                &format!(
                    "{n} alert(s) wait in the spool ([alerts.{}] {how}); the daemon or the \
                     next run retries them",
                    ch.name
                ),
            );
        }
        let held = self.outbox.held_count();
        if held > 0 {
            self.log.log(
                Level::Error,
                "alert-lost",
                &[],
                &format!("{held} alert(s) that the spool could not take were never delivered"),
            );
        }
    }
}

/// The delivery thread's loop: each channel with alerts due gets a thread that delivers
/// them (one at a time per channel, channels side by side); the loop sleeps until the next
/// channel may be tried, something is queued, or a channel's thread is done, until the
/// outbox is stopped (or drained). `current` is the table in force (the daemon's changes on
/// reload).
pub(crate) fn serve(outbox: &Outbox, current: &dyn Fn() -> Arc<Config>, log: &Logger) {
    // The channels whose thread is delivering; a thread takes its name out, then wakes the
    // loop.
    let busy: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    std::thread::scope(|s| {
        loop {
            let end = outbox.end();
            if end == End::Now {
                break;
            }
            // The table is let go before the wait: held through it, a reload's old table
            // (megabytes for a big one) would stay alive until the next alert woke the loop.
            let wake_at = {
                let cfg = current();
                let pass = Pass::new(&cfg, log, outbox);
                pass.tidy();
                if !outbox.closed() {
                    for name in pass.due() {
                        if !lock(&busy).insert(name.clone()) {
                            continue;
                        }
                        let (cfg, mine) = (Arc::clone(&cfg), &busy);
                        let spawned = std::thread::Builder::new()
                            .name(format!("alerts {name}"))
                            .spawn_scoped(s, {
                                let name = name.clone();
                                move || {
                                    Pass::new(&cfg, log, outbox).drain(&name);
                                    lock(mine).remove(&name);
                                    outbox.wake();
                                }
                            });
                        if let Err(e) = spawned {
                            lock(&busy).remove(&name);
                            let msg = format!("cannot start a delivery thread: {e}");
                            log.log(Level::Error, "alert-spool", &[], &msg);
                        }
                    }
                }
                // Draining: done once nothing is being delivered and nothing more is due (or
                // may start).
                if end != End::No && lock(&busy).is_empty() {
                    break;
                }
                pass.wake_at()
            };
            outbox.wait(wake_at);
        }
    });
    Pass::new(&current(), log, outbox).report_left();
}
