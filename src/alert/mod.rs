//! Alerts: who hears about a run, and when.
//!
//! After a run, [`Alerts::after_run`] decides which events it is (a final `failure`, a run
//! recorded `lost`, a `warning`, a `success`, the first `skipped` run of a streak, the
//! `recovery` that ends a streak, any `output`), applies each channel's `after_failures` and
//! its `min_interval` per kind of event (the next alert of the kind says how many were
//! suppressed), and queues the alerts in the spool. [`Alerts::on_slow`] and
//! [`Alerts::on_stale`] do the same for a run that takes too long and a job whose last
//! success is too old. Nothing is sent in the run's thread: the
//! outbox's thread delivers (in the daemon, for its whole life; in `cronwarden run`, while
//! and after its job), so a slow channel never holds a job's lock or delays a run. What
//! cannot be delivered waits in the spool, bounded per channel, coalesced per job and
//! event, and retried with a backoff per channel, by whichever cronwarden process runs
//! jobs.
//!
//! Channels: `email` (lettre over rustls: smtp:// with STARTTLS when offered, smtps://,
//! `?tls=required`, or a local sendmail), `command` and `webhook` (JSON or Slack).
//!
//! Files: `message` (what an alert says), `mail` and `slack` (an alert as a mail and as a
//! Slack message), `facts` (the facts behind an event beyond its run's record), `streak`
//! (the job's streaks, and which channels heard of them), `deliver` (the channels), `spool`
//! (where alerts wait, with their bounds), `outbox` (the delivery thread), `pass` (one
//! round of deliveries), `ping` (healthcheck pings), this file (which
//! events a run is and who hears of them).

mod deliver;
mod facts;
mod mail;
mod message;
mod outbox;
mod pass;
mod ping;
mod slack;
mod spool;
mod streak;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;

pub(crate) use deliver::test;
pub(crate) use message::Alert;
pub(crate) use outbox::Outbox;
pub(crate) use pass::serve;
pub(crate) use ping::{Ping, USER_AGENT, end_ping, ping};
pub(crate) use spool::{spool_dir, spool_size};

use crate::config::{AlertChannel, AlertEvent, Config, Job};
use crate::coord::Coordinator;
use crate::log::{Level, Logger};
use crate::record::{Outcome, RunRecord};
use facts::{EventFacts, Holder};
use message::make_alert;
use spool::{Queued, Spool};
use streak::{Files, Stale};

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
        self.fleet_incident("node-lost", job, rec);
    }

    /// Tells the job's failure channels that a run ran twice: its node finished it but could
    /// not report it before another node declared that node lost and ran it again (sent by
    /// the node that finished it first, once it reached the database).
    pub(crate) fn ran_twice(&self, job: &Job, twice: &crate::coord::RanTwice) {
        let mut rec = twice.record.clone();
        rec.reason = Some(twice.reason.clone());
        self.fleet_incident("ran-twice", job, &rec);
    }

    /// A fleet `event` about `rec`, once across the fleet, to the job's failure channels.
    fn fleet_incident(&self, event: &str, job: &Job, rec: &RunRecord) {
        if !self.coord.first_alert(&rec.run_id, event) {
            return;
        }
        for name in &job.alert {
            let Some(ch) = self.cfg.alert(name) else {
                continue;
            };
            if ch.on.contains(&AlertEvent::Failure) {
                let alert = make_alert(event, job, rec, (&[], &[]), 0, self.cfg);
                self.queue(ch, alert);
            }
        }
    }

    /// Tells these channels of the job about the daemon's state directory: it cannot be
    /// written (`state-unwritable`) or can be again (`state-writable`); `rec` is the tick
    /// that found it, and its reason says what is wrong. Also the daemon's other conditions
    /// that are no run's (`clock`: a fleet node's clock off the database's).
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
    pub(crate) fn on_slow(
        &self,
        job: &Job,
        so_far: &RunRecord,
        elapsed: Duration,
        usual: Option<Duration>,
    ) {
        let facts = EventFacts {
            elapsed: Some(elapsed),
            usual,
            ..Default::default()
        };
        self.tell_kind(job, AlertEvent::Slow, so_far, &facts, &so_far.run_id);
    }

    /// The job's last success (`None`: it never succeeded) is older than its
    /// `expect_success_within`, whose deadline passed at `deadline`: `stale`, once until
    /// the next success. The streak is kept in the state directory, so that a restarted
    /// daemon does not tell the same streak again; the next success ends it (`after_run`
    /// sends its recovery).
    pub(crate) fn on_stale(
        &self,
        job: &Job,
        last_success: Option<&RunRecord>,
        deadline: Timestamp,
    ) {
        let files = Files::new(&self.cfg.settings.state_dir, &job.name);
        let mut streaks = self.streaks(job, &files);
        let last_id = last_success.map(|r| r.run_id.clone());
        if streaks
            .stale
            .as_ref()
            .is_some_and(|s| s.last_success == last_id)
        {
            return;
        }
        streaks.stale = Some(Stale {
            deadline,
            last_success: last_id.clone(),
        });
        files.save_streaks(&streaks);
        let facts = EventFacts {
            last_success: last_success.map(facts::last_success),
            deadline: Some(crate::schedule::format_rfc3339(deadline, job.tz())),
            expected_within: job.expect.success_within,
            ..Default::default()
        };
        let rec = self.stale_record(job, deadline);
        // One alert per stale streak in a fleet: the streak is named by the last success
        // every node reads from the fleet's history (the deadline of a job that never
        // succeeded counts from when each node first saw it, which may differ).
        let since = last_id.as_deref().unwrap_or("never");
        let key = format!("{}@stale-since-{since}", job.name);
        self.tell_kind(job, AlertEvent::Stale, &rec, &facts, &key);
    }

    /// Instants of the job no node could claim when they were due (`missed`): `rec` names
    /// them and says why and what becomes of them (its scheduled instant is the first of
    /// them). Once per occasion across a fleet (`key`, e.g. the job and its first missed
    /// instant), within each channel's `min_interval`.
    pub(crate) fn on_missed(&self, job: &Job, rec: &RunRecord, key: &str) {
        self.tell_kind(job, AlertEvent::Missed, rec, &EventFacts::default(), key);
    }

    /// Queues an alert of `ev` (slow, stale, missed) to the job's channels whose `on` includes it,
    /// each within its `min_interval` for the kind; `key` names the occasion (in a fleet,
    /// one node only sends it). A channel told of a `stale` streak gets its recovery.
    fn tell_kind(&self, job: &Job, ev: AlertEvent, rec: &RunRecord, facts: &EventFacts, key: &str) {
        let wanted = |name: &String| self.cfg.alert(name).filter(|ch| ch.on.contains(&ev));
        if !job.alert.iter().any(|n| wanted(n).is_some()) || !self.coord.first_alert(key, ev.name())
        {
            return;
        }
        let files = Files::new(&self.cfg.settings.state_dir, &job.name);
        let now = Timestamp::now();
        for ch in job.alert.iter().filter_map(wanted) {
            let mut heard = files.heard(ch);
            let sent = heard.pass(ev.name(), ch.min_interval, now);
            if sent.is_some() && ev == AlertEvent::Stale {
                heard.told.insert(ev.name().to_string());
            }
            files.save_heard(&ch.name, &heard);
            match sent {
                Some(suppressed) => {
                    let mut alert =
                        make_alert(ev.name(), job, rec, (&[], &[]), suppressed, self.cfg);
                    alert.facts = facts.clone();
                    self.queue(ch, alert);
                }
                None => self.suppressed(job, ch, ev),
            }
        }
    }

    /// The record a `stale` alert carries: no run, the job and the deadline (as its
    /// scheduled instant).
    fn stale_record(&self, job: &Job, deadline: Timestamp) -> RunRecord {
        let now = Timestamp::now().to_string();
        RunRecord {
            run_id: format!("stale-{}", deadline.strftime("%Y%m%dT%H%M%S")),
            job: job.name.to_string(),
            scheduled: crate::schedule::format_rfc3339(deadline, job.tz()),
            started: now.clone(),
            ended: now,
            duration_ms: 0,
            attempts: Vec::new(),
            outcome: Outcome::Failure,
            reason: None,
            output: None,
            trigger: "schedule".to_string(),
            node: self.coord.node().map(str::to_string),
            skips: None,
            facts: Default::default(),
        }
    }

    /// Queues the alerts a finished run calls for (the outbox delivers them): its events,
    /// as each channel's `on`, `after_failures` and `min_interval` let them through, and one
    /// recovery per channel for the streaks it ends that the channel heard of.
    pub(crate) fn after_run(&self, job: &Job, rec: &RunRecord, tails: (&[u8], &[u8])) {
        let files = Files::new(&self.cfg.settings.state_dir, &job.name);
        let before = self.streaks(job, &files);
        let mut streaks = before.clone();
        let ended = streaks.advance(rec);
        if streaks != before {
            files.save_streaks(&streaks);
        }
        let mut events = Vec::new();
        match rec.outcome {
            Outcome::Failure | Outcome::Lost => events.push(AlertEvent::Failure),
            Outcome::Warning => events.push(AlertEvent::Warning),
            Outcome::Success => events.push(AlertEvent::Success),
            // Only the first skip of a streak alerts.
            Outcome::Skipped if before.skips == 0 => events.push(AlertEvent::Skipped),
            Outcome::Skipped | Outcome::Interrupted => {}
        }
        if !ended.is_empty() {
            events.push(AlertEvent::Recovery);
        }
        if !tails.0.is_empty() || !tails.1.is_empty() {
            events.push(AlertEvent::Output);
        }
        // Each event of a run is sent once (in a fleet, by one node only).
        events.retain(|e| self.coord.first_alert(&rec.run_id, e.name()));
        let facts = if events.contains(&AlertEvent::Skipped) {
            self.skip_facts(job, rec)
        } else {
            EventFacts::default()
        };
        let now = Timestamp::now();
        for name in &job.alert {
            let Some(ch) = self.cfg.alert(name) else {
                continue;
            };
            let mut heard = files.heard(ch);
            let told_before = heard.clone();
            let wanted: Vec<AlertEvent> = events
                .iter()
                .copied()
                .filter(|e| *e != AlertEvent::Recovery && ch.on.contains(e))
                .collect();
            let plan = streak::plan_run(ch, &mut heard, &wanted, &streaks, &ended, now);
            if heard != told_before {
                files.save_heard(&ch.name, &heard);
            }
            for ev in plan.suppressed {
                self.suppressed(job, ch, ev);
            }
            for (ev, suppressed) in plan.sent {
                let mut alert = make_alert(ev.name(), job, rec, tails, suppressed, self.cfg);
                alert.facts = facts.clone();
                self.queue(ch, alert);
            }
            if !plan.recovered.is_empty()
                && ch.on.contains(&AlertEvent::Recovery)
                && events.contains(&AlertEvent::Recovery)
            {
                let mut alert = make_alert("recovery", job, rec, tails, 0, self.cfg);
                alert.facts.ended = plan.recovered;
                self.queue(ch, alert);
            }
        }
    }

    /// The job's streaks (those of an earlier version taken over).
    fn streaks(&self, job: &Job, files: &Files) -> streak::Streaks {
        let mut s = files.streaks();
        if s.legacy {
            let channels: Vec<&AlertChannel> =
                job.alert.iter().filter_map(|n| self.cfg.alert(n)).collect();
            files.take_over(&mut s, &channels);
        }
        s
    }

    /// The facts of a skip: who held the job (from the skip's reason, the lock file and
    /// `/proc`).
    fn skip_facts(&self, job: &Job, rec: &RunRecord) -> EventFacts {
        let lock = crate::lock::held_by(&self.cfg.settings.lock_dir, &job.name);
        EventFacts {
            holder: rec
                .reason
                .as_deref()
                .and_then(|r| Holder::from_reason(r, lock.as_ref(), Timestamp::now())),
            ..Default::default()
        }
    }

    /// Logs an alert suppressed by the channel's `min_interval`.
    fn suppressed(&self, job: &Job, ch: &AlertChannel, ev: AlertEvent) {
        self.log.log(
            Level::Info,
            "alert-suppressed",
            &[
                ("job", job.name.to_string()),
                ("channel", ch.name.clone()),
                ("event", ev.name().to_string()),
            ],
            "within min_interval",
        );
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::rec;
    use std::path::PathBuf;

    /// A table with these channels and a job `j` alerting through all of them, in a
    /// directory of its own; the log, the local backend and an outbox nobody serves (the
    /// tests read what was queued from the spool).
    struct Setup {
        dir: PathBuf,
        cfg: Config,
        log: Logger,
        coord: crate::coord::Local,
        outbox: Outbox,
    }

    impl Setup {
        fn new(tag: &str, channels: &[(&str, &str)]) -> Setup {
            let dir = std::env::temp_dir().join(format!("cw-alerts-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("mkdir");
            let d = dir.display();
            let mut table = format!(
                "[settings]\ntimezone = \"UTC\"\nstate_dir = \"{d}/state\"\nlock_dir = \"{d}/run\"\n\n"
            );
            for (name, keys) in channels {
                table.push_str(&format!(
                    "[alerts.{name}]\ntype = \"command\"\ncommand = \"true\"\n{keys}\n\n"
                ));
            }
            let names: Vec<String> = channels.iter().map(|(n, _)| format!("{n:?}")).collect();
            table.push_str(&format!(
                "[jobs.j]\nschedule = \"@daily\"\ncommand = \"true\"\n\
                 expect_success_within = \"1d\"\nalert = [{}]\n",
                names.join(", ")
            ));
            let path = dir.join("jobs.toml");
            std::fs::write(&path, table).expect("write table");
            let loaded = crate::config::load(&path, crate::config::LoadOptions { as_root: false });
            let cfg = loaded
                .config
                .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
            Setup {
                dir,
                cfg,
                log: Logger::new(None, crate::config::LogFormat::Text),
                coord: crate::coord::Local::default(),
                outbox: Outbox::new(),
            }
        }

        fn alerts(&self) -> Alerts<'_> {
            Alerts {
                cfg: &self.cfg,
                log: &self.log,
                coord: &self.coord,
                outbox: &self.outbox,
            }
        }

        fn job(&self) -> &Job {
            self.cfg.job("j").expect("job j")
        }

        /// A run of `j` ended so.
        fn run(&self, id: &str, outcome: Outcome, reason: Option<&str>) {
            let mut r = rec(id);
            r.outcome = outcome;
            r.reason = reason.map(str::to_string);
            self.alerts().after_run(self.job(), &r, (&[], &[]));
        }

        /// What was queued for the channel since the last look (taken out of the spool).
        fn take(&self, channel: &str) -> Vec<Alert> {
            let spool = Spool::new(&self.cfg, &self.log);
            let mut out = Vec::new();
            while let Ok(Some(c)) = spool.claim(channel) {
                out.push(c.entry.alert.clone());
                spool.delivered(c).expect("delivered");
            }
            out
        }

        /// The events queued for the channel since the last look.
        fn events(&self, channel: &str) -> Vec<String> {
            self.take(channel).into_iter().map(|a| a.event).collect()
        }
    }

    impl Drop for Setup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const HELD: &str = "another run holds the lock: pid 1 since 2026-01-01T00:00:00Z \
                        (run 20260101T000000-abc123)";

    #[test]
    fn a_warning_goes_only_to_the_channel_that_asked_for_it() {
        let s = Setup::new(
            "warning",
            &[
                ("warn", "on = [\"warning\"]"),
                ("fail", "on = [\"failure\", \"recovery\"]"),
            ],
        );
        s.run("r1", Outcome::Warning, Some("exit 3 (a warning code)"));
        let got = s.take("warn");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].event, "warning");
        let subject = got[0].subject();
        assert!(
            subject.starts_with("[cronwarden] WARNING j on "),
            "{subject}"
        );
        assert!(subject.ends_with(": exit 3 (a warning code)"), "{subject}");
        assert!(
            got[0].body().contains("outcome:    warning\n"),
            "{}",
            got[0].body()
        );
        assert!(s.events("fail").is_empty());
        // A warning counts as a success for the failure streak: it ends one.
        s.run("r2", Outcome::Failure, Some("exit 1"));
        assert_eq!(s.events("fail"), ["failure"]);
        s.run("r3", Outcome::Warning, Some("exit 3 (a warning code)"));
        let got = s.take("fail");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].subject().ends_with(": succeeded after 1 failure"),
            "{}",
            got[0].subject()
        );
        assert_eq!(s.events("warn"), ["warning"]);
    }

    #[test]
    fn a_skip_streak_alerts_once_naming_the_holder_and_recovers_when_a_run_goes_through() {
        let s = Setup::new(
            "skipped",
            &[("ops", "on = [\"skipped\", \"recovery\"]"), ("plain", "")],
        );
        for i in 0..3 {
            s.run(&format!("s{i}"), Outcome::Skipped, Some(HELD));
        }
        let got = s.take("ops");
        assert_eq!(got.len(), 1, "{got:?}");
        let a = &got[0];
        assert_eq!(a.event, "skipped");
        assert_eq!(a.run.run_id, "s0");
        let h = a.facts.holder.as_ref().expect("the holder");
        assert_eq!(h.run_id.as_deref(), Some("20260101T000000-abc123"));
        assert_eq!(h.pid, Some(1));
        assert!(h.age_seconds.is_some_and(|s| s > 0), "{h:?}");
        let subject = a.subject();
        assert!(
            subject.starts_with("[cronwarden] SKIPPED j on ")
                && subject
                    .contains("another run holds it (run 20260101T000000-abc123, pid 1, for "),
            "{subject}"
        );
        let body = a.body();
        assert!(
            body.contains(
                "held by:    run 20260101T000000-abc123, pid 1 since 2026-01-01T00:00:00Z ("
            ),
            "{body}"
        );
        assert!(body.contains("its command: "), "{body}");
        let v = a.json();
        assert_eq!(v["event"], "skipped");
        assert_eq!(v["holder"]["run_id"], "20260101T000000-abc123");
        assert_eq!(v["holder"]["pid"], 1);
        // The default `on` has `skipped`, but no `recovery`.
        assert_eq!(s.events("plain"), ["skipped"]);
        s.run("r1", Outcome::Success, None);
        let got = s.take("ops");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].event, "recovery");
        assert!(
            got[0]
                .subject()
                .ends_with(": ran again after 3 skipped runs"),
            "{}",
            got[0].subject()
        );
        assert!(s.events("plain").is_empty());
        // The next streak alerts again.
        s.run("s3", Outcome::Skipped, Some(HELD));
        assert_eq!(s.events("ops"), ["skipped"]);
    }

    #[test]
    fn after_failures_3_hears_only_the_third_failure_then_the_recovery() {
        let s = Setup::new(
            "escalate",
            &[
                (
                    "late",
                    "on = [\"failure\", \"recovery\"]\nafter_failures = 3",
                ),
                ("early", "on = [\"failure\", \"recovery\"]"),
            ],
        );
        // (Each look takes what was queued: the spool would let a newer failure alert of
        // the job replace a waiting one.)
        for i in 1..=2 {
            s.run(&format!("f{i}"), Outcome::Failure, Some("exit 1"));
            assert!(s.events("late").is_empty(), "after failure {i}");
            assert_eq!(s.events("early"), ["failure"]);
        }
        s.run("f3", Outcome::Failure, Some("exit 1"));
        let got = s.take("late");
        assert_eq!(
            got.iter()
                .map(|a| a.run.run_id.as_str())
                .collect::<Vec<_>>(),
            ["f3"]
        );
        assert_eq!(s.events("early"), ["failure"]);
        s.run("ok", Outcome::Success, None);
        let got = s.take("late");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].subject().ends_with(": succeeded after 3 failures"),
            "{}",
            got[0].subject()
        );
        assert_eq!(got[0].facts.ended[0].since.as_deref(), Some("f1"));
        assert_eq!(s.events("early"), ["recovery"]);
        // Two failures and a success: `late` heard of nothing, so no recovery either.
        s.run("g1", Outcome::Failure, Some("exit 1"));
        s.run("g2", Outcome::Failure, Some("exit 1"));
        s.run("ok2", Outcome::Success, None);
        assert!(s.events("late").is_empty());
        assert_eq!(s.events("early"), ["failure", "recovery"]);
    }

    #[test]
    fn stale_is_told_once_per_streak_even_after_a_restart_and_recovers_at_the_next_success() {
        let s = Setup::new("stale", &[("ops", "on = [\"stale\", \"recovery\"]")]);
        let mut last = rec("ok-1");
        last.ended = "2026-01-01T00:00:01Z".to_string();
        let deadline: Timestamp = "2026-01-02T00:00:01Z".parse().expect("instant");
        s.alerts().on_stale(s.job(), Some(&last), deadline);
        let got = s.take("ops");
        assert_eq!(got.len(), 1, "{got:?}");
        let a = &got[0];
        assert_eq!(a.event, "stale");
        let subject = a.subject();
        assert!(
            subject.starts_with("[cronwarden] STALE j on ")
                && subject.ends_with(": no success since 2026-01-01T00:00:01Z"),
            "{subject}"
        );
        let body = a.body();
        assert!(
            body.contains("last success: run ok-1 ended 2026-01-01T00:00:01Z\n"),
            "{body}"
        );
        assert!(
            body.contains("deadline:   2026-01-02T00:00:01+00:00 (expect_success_within 1d)\n"),
            "{body}"
        );
        assert!(
            !body.contains("outcome:") && !body.contains("run id:"),
            "{body}"
        );
        let v = a.json();
        assert_eq!(v["last_success"]["run_id"], "ok-1");
        assert_eq!(v["expected_within_seconds"], 86400.0);
        assert!(v["run_id"].is_null() && v["outcome"].is_null(), "{v:#}");
        // The same streak again (a daemon that restarted and computed a later deadline):
        // nothing, from another `Alerts` too.
        let later = deadline + jiff::SignedDuration::from_hours(1);
        s.alerts().on_stale(s.job(), Some(&last), later);
        assert!(s.events("ops").is_empty());
        // A failure does not end it; a success does, with a recovery.
        s.run("f1", Outcome::Failure, Some("exit 1"));
        s.run("ok-2", Outcome::Success, None);
        let got = s.take("ops");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0]
                .subject()
                .ends_with(": succeeded again, no longer stale"),
            "{}",
            got[0].subject()
        );
        // A new streak (measured from the new success) is told again.
        s.alerts().on_stale(s.job(), Some(&rec("ok-2")), later);
        assert_eq!(s.events("ops"), ["stale"]);
    }

    #[test]
    fn a_job_that_never_succeeded_is_stale_too() {
        let s = Setup::new("never", &[("ops", "")]);
        let deadline: Timestamp = "2026-01-02T00:00:00Z".parse().expect("instant");
        s.alerts().on_stale(s.job(), None, deadline);
        let got = s.take("ops");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].subject().contains(": never succeeded (deadline "),
            "{}",
            got[0].subject()
        );
        assert!(
            got[0].body().contains("last success: never\n"),
            "{}",
            got[0].body()
        );
    }

    #[test]
    fn slow_goes_to_the_channels_that_ask_and_says_how_long() {
        let s = Setup::new(
            "slow",
            &[
                ("ops", "on = [\"slow\"]\nmin_interval = \"1h\""),
                ("plain", ""),
            ],
        );
        let mut so_far = rec("r1");
        so_far.outcome = Outcome::Lost;
        let (hour, usual) = (Duration::from_secs(3600), Duration::from_secs(35 * 60));
        s.alerts().on_slow(s.job(), &so_far, hour, Some(usual));
        let got = s.take("ops");
        assert_eq!(got.len(), 1, "{got:?}");
        let subject = got[0].subject();
        assert!(
            subject.starts_with("[cronwarden] SLOW j on ")
                && subject.ends_with(": running for 1h (usually 35m)"),
            "{subject}"
        );
        assert!(
            got[0].body().contains("outcome:    running\n"),
            "{}",
            got[0].body()
        );
        assert_eq!(got[0].json()["elapsed_seconds"], 3600.0);
        assert_eq!(got[0].json()["usual_seconds"], 2100.0);
        assert!(s.events("plain").is_empty());
        // `min_interval` applies to slow alerts: the next run's, within the hour, is
        // suppressed.
        s.alerts().on_slow(s.job(), &rec("r2"), hour, None);
        assert!(s.events("ops").is_empty());
    }

    #[test]
    fn success_alerts_every_successful_run_when_asked() {
        let s = Setup::new("success", &[("ops", "on = [\"success\"]")]);
        s.run("r1", Outcome::Success, None);
        let got = s.take("ops");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].subject().starts_with("[cronwarden] SUCCEEDED j on "));
        s.run("r2", Outcome::Failure, Some("exit 1"));
        assert!(s.events("ops").is_empty());
        s.run("r3", Outcome::Success, None);
        assert_eq!(s.events("ops"), ["success"]);
    }
}
