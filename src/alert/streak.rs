//! Streaks, and which channels heard of them.
//!
//! A job has three kinds of streak: failed runs in a row (a `failure` or `lost` run starts
//! or extends it; a `success` or `warning` ends it), skipped runs in a row (any run that goes
//! through ends it) and `stale` (from its deadline until the next success). They are kept in
//! `state_dir/alerts/JOB.streaks`. Per job and channel, `state_dir/alerts/JOB.CHANNEL.heard`
//! keeps which streaks' alerts the channel got (so that a streak's end sends a recovery to
//! those channels only) and, per event kind, when its last alert went out and how many were
//! suppressed since (`min_interval`).
//!
//! Files of earlier versions (`JOB.failing`: a failure streak; `JOB.CHANNEL.throttle`) are
//! read once and removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::facts::Ended;
use crate::config::{AlertChannel, AlertEvent};
use crate::record::{Outcome, RunRecord};

/// The stale streak whose alert was raised (it lasts until the next success).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Stale {
    /// The deadline that passed.
    pub(super) deadline: Timestamp,
    /// The last success it was measured from (`None`: the job never succeeded); another
    /// one means another streak.
    pub(super) last_success: Option<String>,
}

/// A job's streaks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Streaks {
    /// Failed runs in a row up to the latest (0: the latest run did not fail), and the first.
    #[serde(default)]
    pub(super) failures: u64,
    #[serde(default)]
    pub(super) failing_since: Option<String>,
    /// Skipped runs in a row up to the latest (0: the latest run went through), and the first.
    #[serde(default)]
    pub(super) skips: u64,
    #[serde(default)]
    pub(super) skipped_since: Option<String>,
    #[serde(default)]
    pub(super) stale: Option<Stale>,
    /// Read from an earlier version's `JOB.failing` (see [`Files::take_over`]).
    #[serde(skip)]
    pub(super) legacy: bool,
}

impl Streaks {
    /// Takes a finished run into account; the streaks it ended.
    pub(super) fn advance(&mut self, rec: &RunRecord) -> Vec<Ended> {
        let mut ended = Vec::new();
        if rec.outcome != Outcome::Skipped && self.skips > 0 {
            ended.push(Ended {
                streak: "skipped".to_string(),
                runs: self.skips,
                since: self.skipped_since.take(),
            });
            self.skips = 0;
        }
        match rec.outcome {
            Outcome::Skipped => {
                if self.skips == 0 {
                    self.skipped_since = Some(rec.run_id.clone());
                }
                self.skips += 1;
            }
            Outcome::Failure | Outcome::Lost => {
                if self.failures == 0 {
                    self.failing_since = Some(rec.run_id.clone());
                }
                self.failures += 1;
            }
            Outcome::Success | Outcome::Warning => {
                if self.failures > 0 {
                    ended.push(Ended {
                        streak: "failure".to_string(),
                        runs: self.failures,
                        since: self.failing_since.take(),
                    });
                    self.failures = 0;
                }
                if let Some(s) = self.stale.take() {
                    ended.push(Ended {
                        streak: "stale".to_string(),
                        runs: 0,
                        since: Some(s.deadline.to_string()),
                    });
                }
            }
            // Stopped by a signal: neither a failure nor a success.
            Outcome::Interrupted => {}
        }
        ended
    }
}

/// When the last alert of a kind went out to a channel, and how many were suppressed since.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Throttle {
    pub(super) last_sent: Option<Timestamp>,
    pub(super) suppressed: u64,
}

/// What a channel heard of a job's streaks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Heard {
    /// The streaks whose alert it got: `failure`, `skipped`, `stale`.
    #[serde(default)]
    pub(super) told: BTreeSet<String>,
    /// Per event kind, for `min_interval`.
    #[serde(default)]
    pub(super) throttle: BTreeMap<String, Throttle>,
}

impl Heard {
    /// `min_interval` for an alert of `kind` now: `Some(how many were suppressed before
    /// it)` when it goes out (and it is counted as sent), `None` when it is suppressed (and
    /// counted as such).
    pub(super) fn pass(&mut self, kind: &str, interval: Duration, now: Timestamp) -> Option<u64> {
        let t = self.throttle.entry(kind.to_string()).or_default();
        let within = !interval.is_zero()
            && t.last_sent.is_some_and(|l| {
                now.duration_since(l) < jiff::SignedDuration::try_from(interval).unwrap_or_default()
            });
        if within {
            t.suppressed += 1;
            return None;
        }
        let suppressed = t.suppressed;
        *t = Throttle {
            last_sent: Some(now),
            suppressed: 0,
        };
        Some(suppressed)
    }

    /// An alert of `kind` that goes out whatever `min_interval` says (the first a channel
    /// hears of a failure streak): its interval starts now. How many were suppressed before.
    pub(super) fn restart(&mut self, kind: &str, now: Timestamp) -> u64 {
        let t = self.throttle.entry(kind.to_string()).or_default();
        let suppressed = t.suppressed;
        *t = Throttle {
            last_sent: Some(now),
            suppressed: 0,
        };
        suppressed
    }

    /// The streaks among `ended` that it heard of (they are forgotten: they are over).
    pub(super) fn ended(&mut self, ended: &[Ended]) -> Vec<Ended> {
        ended
            .iter()
            .filter(|e| self.told.remove(&e.streak))
            .cloned()
            .collect()
    }
}

/// What a channel is sent for one run.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// Each event that goes out, with how many alerts of its kind were suppressed before it.
    pub(super) sent: Vec<(AlertEvent, u64)>,
    /// The events `min_interval` suppressed.
    pub(super) suppressed: Vec<AlertEvent>,
    /// The streaks the run ended that the channel heard of (its recovery tells them).
    pub(super) recovered: Vec<Ended>,
}

/// What a channel is sent for one run. `events` are the run's events that this channel's
/// `on` asks for (recovery aside); `streaks` are the job's after the run, `ended` the
/// streaks the run ended.
pub(super) fn plan_run(
    ch: &AlertChannel,
    heard: &mut Heard,
    events: &[AlertEvent],
    streaks: &Streaks,
    ended: &[Ended],
    now: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    for ev in events {
        let sent = match ev {
            AlertEvent::Failure => failure(ch, heard, streaks, now),
            AlertEvent::Skipped => {
                let sent = heard.pass("skipped", ch.min_interval, now);
                if sent.is_some() {
                    heard.told.insert("skipped".to_string());
                }
                sent
            }
            AlertEvent::Warning => heard.pass("warning", ch.min_interval, now),
            _ => Some(0),
        };
        match sent {
            Some(n) => plan.sent.push((*ev, n)),
            // Below `after_failures` is not suppressed: the channel asked not to hear yet.
            None if *ev == AlertEvent::Failure
                && streaks.failures < u64::from(ch.after_failures.max(1)) => {}
            None => plan.suppressed.push(*ev),
        }
    }
    plan.recovered = heard.ended(ended);
    plan
}

/// A failure alert to `ch`, with `after_failures` and `min_interval`: `None` when it does
/// not go out, else how many were suppressed before it.
fn failure(ch: &AlertChannel, heard: &mut Heard, streaks: &Streaks, now: Timestamp) -> Option<u64> {
    if streaks.failures < u64::from(ch.after_failures.max(1)) {
        return None;
    }
    if heard.told.insert("failure".to_string()) {
        // The first failure of a streak the channel hears of always goes out.
        return Some(heard.restart("failure", now));
    }
    heard.pass("failure", ch.min_interval, now)
}

/// The files of one job's streaks in the state directory.
pub(super) struct Files {
    dir: PathBuf,
    job: String,
}

fn read_json<T: for<'de> Deserialize<'de>>(p: &Path) -> Option<T> {
    std::fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

impl Files {
    pub(super) fn new(state_dir: &Path, job: &str) -> Files {
        Files {
            dir: state_dir.join("alerts"),
            job: job.to_string(),
        }
    }

    fn streaks_path(&self) -> PathBuf {
        self.dir.join(format!("{}.streaks", self.job))
    }

    fn heard_path(&self, channel: &str) -> PathBuf {
        self.dir.join(format!("{}.{channel}.heard", self.job))
    }

    /// The job's streaks (none when nothing was kept, or it cannot be read).
    pub(super) fn streaks(&self) -> Streaks {
        if let Some(s) = read_json(&self.streaks_path()) {
            return s;
        }
        let legacy = self.dir.join(format!("{}.failing", self.job));
        match std::fs::read_to_string(legacy) {
            Ok(first) => Streaks {
                failures: 1,
                failing_since: Some(first.trim().to_string()).filter(|f| !f.is_empty()),
                legacy: true,
                ..Default::default()
            },
            Err(_) => Streaks::default(),
        }
    }

    /// Keeps the job's streaks.
    pub(super) fn save_streaks(&self, s: &Streaks) {
        if let Ok(b) = serde_json::to_vec(s) {
            let _ = crate::files::write_replace(&self.streaks_path(), &b);
        }
    }

    /// Takes over the failure streak of an earlier version's `JOB.failing` (when `s` was
    /// read from one): the job's `channels` that alert on failures were told of it, so they
    /// get its recovery. Then it is kept in this version's files and the old file goes.
    pub(super) fn take_over(&self, s: &mut Streaks, channels: &[&AlertChannel]) {
        if !s.legacy {
            return;
        }
        for ch in channels
            .iter()
            .filter(|c| c.on.contains(&AlertEvent::Failure))
        {
            let mut h = self.heard(ch);
            h.told.insert("failure".to_string());
            self.save_heard(&ch.name, &h);
        }
        s.legacy = false;
        self.save_streaks(s);
        let _ = std::fs::remove_file(self.dir.join(format!("{}.failing", self.job)));
    }

    /// What the channel heard of the job's streaks.
    pub(super) fn heard(&self, ch: &AlertChannel) -> Heard {
        read_json(&self.heard_path(&ch.name)).unwrap_or_default()
    }

    /// Keeps what the channel heard (an earlier version's throttle file goes).
    pub(super) fn save_heard(&self, channel: &str, h: &Heard) {
        if let Ok(b) = serde_json::to_vec(h) {
            let _ = crate::files::write_replace(&self.heard_path(channel), &b);
        }
        let old = self.dir.join(format!("{}.{channel}.throttle", self.job));
        let _ = std::fs::remove_file(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AlertKind, CommandLine};
    use crate::record::tests::rec;

    fn channel(on: &[AlertEvent], after_failures: u32, min_interval: Duration) -> AlertChannel {
        AlertChannel {
            name: "c".to_string(),
            kind: AlertKind::Command {
                command: CommandLine::Shell("true".into()),
                timeout: Duration::from_secs(1),
            },
            on: on.to_vec(),
            min_interval,
            after_failures,
        }
    }

    fn run(id: &str, outcome: Outcome) -> RunRecord {
        let mut r = rec(id);
        r.outcome = outcome;
        r
    }

    /// Per run: the events sent (with their suppressed counts) and the recovery's streaks.
    type Replayed = Vec<(Vec<(AlertEvent, u64)>, Vec<String>)>;

    /// What a channel gets for each run of `outcomes` (its events as `on` allows them, one
    /// second apart): per run, the events sent and the streaks a recovery ends.
    fn replay(ch: &AlertChannel, outcomes: &[Outcome]) -> Replayed {
        let (mut streaks, mut heard) = (Streaks::default(), Heard::default());
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("instant");
        outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let r = run(&format!("r{i}"), *o);
                let was_skipping = streaks.skips > 0;
                let ended = streaks.advance(&r);
                let mut events = match o {
                    Outcome::Failure | Outcome::Lost => vec![AlertEvent::Failure],
                    Outcome::Warning => vec![AlertEvent::Warning],
                    Outcome::Success => vec![AlertEvent::Success],
                    Outcome::Skipped if !was_skipping => vec![AlertEvent::Skipped],
                    _ => vec![],
                };
                events.retain(|e| ch.on.contains(e));
                let now = t0 + jiff::SignedDuration::from_secs(i as i64);
                let plan = plan_run(ch, &mut heard, &events, &streaks, &ended, now);
                let recovered = plan.recovered.iter().map(|e| e.describe()).collect();
                (plan.sent, recovered)
            })
            .collect()
    }

    use Outcome::{Failure, Skipped, Success, Warning};

    #[test]
    fn a_skip_streak_alerts_once_and_its_end_recovers() {
        let ch = channel(
            &[AlertEvent::Skipped, AlertEvent::Recovery],
            1,
            Duration::ZERO,
        );
        let got = replay(&ch, &[Skipped, Skipped, Skipped, Failure, Skipped]);
        assert_eq!(got[0], (vec![(AlertEvent::Skipped, 0)], vec![]));
        assert_eq!(got[1], (vec![], vec![]));
        assert_eq!(got[2], (vec![], vec![]));
        // A run went through (it failed: this channel does not hear of that).
        assert_eq!(
            got[3],
            (vec![], vec!["ran again after 3 skipped runs".to_string()])
        );
        // A new streak alerts again.
        assert_eq!(got[4], (vec![(AlertEvent::Skipped, 0)], vec![]));
    }

    #[test]
    fn after_failures_hears_only_from_the_nth_failure_and_then_the_recovery() {
        let ch = channel(
            &[AlertEvent::Failure, AlertEvent::Recovery],
            3,
            Duration::ZERO,
        );
        let got = replay(&ch, &[Failure, Failure, Failure, Failure, Success]);
        let sent: Vec<usize> = got
            .iter()
            .enumerate()
            .filter(|(_, g)| !g.0.is_empty())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(sent, [2, 3]);
        assert_eq!(got[4].1, ["succeeded after 4 failures"]);
        // Two failures, then a success: the channel heard of nothing, so no recovery.
        let got = replay(&ch, &[Failure, Failure, Success]);
        assert!(
            got.iter().all(|g| g.0.is_empty() && g.1.is_empty()),
            "{got:?}"
        );
    }

    #[test]
    fn a_warning_ends_a_failure_streak_and_is_told_only_when_asked() {
        let ch = channel(
            &[AlertEvent::Failure, AlertEvent::Recovery],
            1,
            Duration::ZERO,
        );
        let got = replay(&ch, &[Failure, Warning]);
        assert_eq!(got[0].0, [(AlertEvent::Failure, 0)]);
        assert_eq!(
            got[1],
            (vec![], vec!["succeeded after 1 failure".to_string()])
        );
        let ch = channel(&[AlertEvent::Warning], 1, Duration::ZERO);
        let got = replay(&ch, &[Warning, Success, Failure]);
        assert_eq!(got[0].0, [(AlertEvent::Warning, 0)]);
        assert!(got[1].0.is_empty() && got[2].0.is_empty(), "{got:?}");
    }

    #[test]
    fn min_interval_counts_per_kind() {
        let on = [
            AlertEvent::Failure,
            AlertEvent::Skipped,
            AlertEvent::Recovery,
        ];
        let ch = channel(&on, 1, Duration::from_secs(3600));
        let got = replay(
            &ch,
            &[
                Failure, Failure, Skipped, Skipped, Success, Skipped, Success,
            ],
        );
        // The first failure of the streak goes, the second is within the interval; the
        // skipped alert is of another kind, so it goes all the same.
        assert_eq!(got[0].0, [(AlertEvent::Failure, 0)]);
        assert!(got[1].0.is_empty());
        assert_eq!(got[2].0, [(AlertEvent::Skipped, 0)]);
        assert_eq!(
            got[4].1,
            [
                "ran again after 2 skipped runs",
                "succeeded after 2 failures"
            ]
        );
        // A second skip streak within the hour is suppressed, and so is its recovery.
        assert_eq!(got[5], (vec![], vec![]));
        assert_eq!(got[6], (vec![], vec![]));
    }

    #[test]
    fn a_suppressed_alert_is_counted_in_the_next_one_of_its_kind() {
        let mut h = Heard::default();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("instant");
        let min = jiff::SignedDuration::from_secs(60);
        let hour = Duration::from_secs(3600);
        assert_eq!(h.pass("warning", hour, t0), Some(0));
        assert_eq!(h.pass("warning", hour, t0 + min), None);
        assert_eq!(h.pass("warning", hour, t0 + min * 2), None);
        assert_eq!(h.pass("slow", hour, t0 + min * 2), Some(0));
        assert_eq!(h.pass("warning", hour, t0 + min * 61), Some(2));
        assert_eq!(h.pass("warning", Duration::ZERO, t0 + min * 62), Some(0));
    }

    #[test]
    fn a_stale_streak_ends_at_the_next_success_only() {
        let mut s = Streaks {
            stale: Some(Stale {
                deadline: "2026-01-02T00:00:00Z".parse().expect("instant"),
                last_success: None,
            }),
            ..Default::default()
        };
        assert!(s.advance(&run("f", Failure)).is_empty());
        assert!(s.advance(&run("k", Skipped)).is_empty());
        let ended = s.advance(&run("w", Warning));
        let kinds: Vec<&str> = ended.iter().map(|e| e.streak.as_str()).collect();
        assert_eq!(kinds, ["skipped", "failure", "stale"]);
        assert_eq!(ended[2].since.as_deref(), Some("2026-01-02T00:00:00Z"));
        assert_eq!(s, Streaks::default());
    }

    #[test]
    fn an_earlier_versions_failure_streak_is_taken_over() {
        let d = std::env::temp_dir().join(format!("cw-streak-legacy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("alerts")).expect("mkdir");
        std::fs::write(d.join("alerts/j.failing"), "r-1").expect("write");
        std::fs::write(d.join("alerts/j.c.throttle"), "{}").expect("write");
        let f = Files::new(&d, "j");
        let mut s = f.streaks();
        assert_eq!((s.failures, s.legacy), (1, true));
        let ch = channel(
            &[AlertEvent::Failure, AlertEvent::Recovery],
            1,
            Duration::ZERO,
        );
        let mut quiet = channel(&[AlertEvent::Skipped], 1, Duration::ZERO);
        quiet.name = "q".to_string();
        f.take_over(&mut s, &[&ch, &quiet]);
        assert!(!s.legacy);
        assert!(!d.join("alerts/j.failing").exists());
        assert!(!d.join("alerts/j.c.throttle").exists());
        assert_eq!(f.streaks(), s);
        assert!(f.heard(&quiet).told.is_empty());
        let mut h = f.heard(&ch);
        assert!(h.told.contains("failure"));
        let ended = s.advance(&run("r-2", Success));
        assert_eq!(h.ended(&ended).len(), 1);
        f.save_streaks(&s);
        assert_eq!(f.streaks(), Streaks::default());
        let _ = std::fs::remove_dir_all(&d);
    }
}
