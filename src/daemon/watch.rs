//! The staleness watchdog (`expect_success_within`), the failure streaks, and the daemon's
//! health as `health` (control socket), `GET /healthz` and the metrics tell it.
//!
//! Each enabled job has a view: the end of its last success (or warning), its first
//! appearance, its failure streak, and the deadline already alerted. Views are read from the
//! coordinator's history at start (and for new jobs at a reload; `coord::standing`) and kept
//! up to date by the ends of the runs this daemon sees. Only the views with something in
//! them are kept (an `expect_success_within`, a success, a streak...): a job that never ran
//! and is not expected to succeed has the empty view, which costs nothing per job. The loop
//! sleeps until the nearest deadline not yet alerted as it sleeps until its next instant
//! ([`Watch::next_deadline`]): watching adds no wake-up of its own. When a deadline passes,
//! a thread reads the job's history again (a success of another process, or of another
//! fleet node, moves the deadline) and, if it did pass, alerts `stale` once: not again until
//! a later success (kept in `state_dir/watch/JOB.json`, so not after a restart either). A paused job goes
//! stale like any other: a job paused and forgotten is one the watchdog is for.
//!
//! Streaks count the runs this daemon saw end, from the history at its start; in fleet mode
//! the runs of other nodes count from the next time the job's history is read (at its
//! deadline). The loop's liveness ([`Beat`]) is when it last went to sleep, and for how long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::Shared;
use crate::config::{Config, Job};
use crate::control::{Health, JobHealth};
use crate::coord::Coordinator;
use crate::coord::standing::{self, Read, Watched, deadline, from_history};
use crate::log::{Level, Logger};
use crate::record::RunRecord;
use crate::sync::lock;
use crate::units::format_duration;

/// How long after a failed read of a job's history its deadline is looked at again.
const RETRY: Duration = Duration::from_secs(60);

/// How late the loop may be, beyond the sleep it planned, before it counts as stuck.
const LOOP_GRACE: Duration = Duration::from_secs(30);

/// What the daemon knows of one job's health.
#[derive(Clone, Debug, Default, PartialEq)]
struct View {
    within: Option<Duration>,
    /// When the last success (or warning) ended.
    last_success: Option<Timestamp>,
    /// The job's first appearance (its deadline's start while it never succeeded).
    first_seen: Option<Timestamp>,
    streak: u32,
    /// The start of the deadline alerted `stale` (none again until a success moves it).
    alerted: Option<Timestamp>,
    /// Run ends seen: a history read while a run ended does not replace the streak.
    ends: u64,
    /// A thread is reading the history about the deadline.
    checking: bool,
    /// The history could not be read: not looked at again before this instant.
    retry_at: Option<Timestamp>,
    /// Read at start from the newest records only, which a failure streak fills: a check
    /// reads the rest at once (off the loop), for the streak and the last success.
    partial: bool,
}

impl View {
    fn basis(&self) -> Option<Timestamp> {
        self.last_success.or(self.first_seen)
    }

    fn deadline(&self) -> Option<Timestamp> {
        deadline(self.basis()?, self.within?)
    }

    /// The deadline still to act on: not alerted yet, no check under way (a partial view:
    /// at once).
    fn pending(&self) -> Option<Timestamp> {
        if self.checking {
            return None;
        }
        let d = match self.partial {
            true => Timestamp::MIN,
            false => self.deadline()?,
        };
        if !self.partial && self.alerted.is_some() && self.alerted == self.basis() {
            return None;
        }
        Some(self.retry_at.map_or(d, |r| r.max(d)))
    }

    /// Nothing in it: the view of a job that is not expected to succeed and of which
    /// nothing is known (not kept).
    fn is_empty(&self) -> bool {
        *self == View::default()
    }

    fn health(&self, job: &str, threshold: u32, now: Timestamp) -> JobHealth {
        let stale_deadline = self.deadline();
        JobHealth {
            job: job.to_string(),
            failure_streak: self.streak,
            streak_threshold: threshold,
            expect_success_within: self.within.map(format_duration),
            last_success: self.last_success,
            stale_deadline,
            stale: stale_deadline.is_some_and(|d| now >= d),
        }
    }
}

/// What a check settled: to keep a first appearance (found now), and the deadline passed
/// (with its start) to alert.
struct Settled {
    first_seen: bool,
    stale: Option<(Timestamp, Timestamp)>,
    view: View,
}

/// The views of the enabled jobs of the table in force, by job name: the views that are not
/// empty (a job without one has the empty view).
pub(super) struct Watch {
    views: Mutex<HashMap<Box<str>, View>>,
}

impl Watch {
    /// The views of `cfg`'s jobs, from their histories.
    pub(super) fn load(cfg: &Config, coord: &dyn Coordinator, log: &Logger) -> Watch {
        let now = Timestamp::now();
        let views = watched(cfg)
            .map(|j| (j.name.as_str().into(), view(cfg, j, coord, log, now)))
            .filter(|(_, v): &(Box<str>, View)| !v.is_empty())
            .collect();
        Watch {
            views: Mutex::new(views),
        }
    }

    /// A new table `cfg` in place of `old`: views of jobs that are new (or newly expected to
    /// succeed) are read from their histories; the others keep what is known of them.
    pub(super) fn reload(&self, old: &Config, cfg: &Config, coord: &dyn Coordinator, log: &Logger) {
        let now = Timestamp::now();
        // Watched before (enabled in the old table), and then expected to succeed.
        let known = |name: &str| {
            let job = old.job(name).filter(|j| j.enabled)?;
            Some(job.expect.success_within.is_some())
        };
        let read = |j: &Job| match known(&j.name) {
            None => true,
            Some(expected) => !expected && j.expect.success_within.is_some(),
        };
        // Read outside the lock: runs that end meanwhile still find their views.
        let mut fresh: HashMap<&str, View> = watched(cfg)
            .filter(|j| read(j))
            .map(|j| (j.name.as_str(), view(cfg, j, coord, log, now)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let mut views = lock(&self.views);
        let mut old_views = std::mem::take(&mut *views);
        for job in watched(cfg) {
            let o = old_views.remove(job.name.as_str()).unwrap_or_default();
            let f = fresh.remove(job.name.as_str()).unwrap_or_default();
            let mut v = match (known(&job.name), read(job)) {
                // Newly expected to succeed: its first appearance (or, behind a long
                // failure streak, a check at once to find it).
                (Some(_), true) => View {
                    first_seen: f.first_seen,
                    alerted: f.alerted,
                    partial: f.partial,
                    ..o
                },
                (Some(_), false) => o,
                (None, _) => f,
            };
            v.within = job.expect.success_within;
            if !v.is_empty() {
                views.insert(job.name.as_str().into(), v);
            }
        }
        views.shrink_to_fit();
    }

    /// A run of a job of `cfg` ended (this daemon's, or one it took over): counted if the
    /// job is watched.
    pub(super) fn ended(&self, cfg: &Config, rec: &RunRecord) {
        let mut views = lock(&self.views);
        if !views.contains_key(rec.job.as_str()) {
            let Some(job) = cfg.job(&rec.job).filter(|j| j.enabled) else {
                return;
            };
            let v = View {
                within: job.expect.success_within,
                ..View::default()
            };
            views.insert(rec.job.as_str().into(), v);
        }
        let Some(v) = views.get_mut(rec.job.as_str()) else {
            return;
        };
        v.ends += 1;
        if rec.outcome.succeeded() {
            // A later success moves the deadline's start: alerted no longer.
            let end = rec.ended.parse().unwrap_or_else(|_| Timestamp::now());
            v.last_success = Some(v.last_success.map_or(end, |l| l.max(end)));
            v.streak = 0;
        } else if rec.outcome.failed() {
            v.streak = v.streak.saturating_add(1);
        }
    }

    /// The nearest deadline not yet alerted (the loop sleeps no longer).
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        lock(&self.views).values().filter_map(View::pending).min()
    }

    /// The jobs whose deadline passed by `now`, handed to a check (not due again meanwhile).
    fn take_due(&self, now: Timestamp) -> Vec<String> {
        let mut views = lock(&self.views);
        let mut due = Vec::new();
        for (name, v) in views.iter_mut() {
            if v.pending().is_some_and(|d| d <= now) {
                v.checking = true;
                v.retry_at = None;
                due.push(name.to_string());
            }
        }
        due
    }

    /// Run ends seen of `job` so far.
    fn ends(&self, job: &str) -> u64 {
        lock(&self.views).get(job).map_or(0, |v| v.ends)
    }

    /// The check of `job` could not read its history: looked at again at `at`.
    fn retry(&self, job: &str, at: Timestamp) {
        if let Some(v) = lock(&self.views).get_mut(job) {
            v.checking = false;
            v.retry_at = Some(at);
        }
    }

    /// The check of `job` read its whole standing (after `ends` run ends): what is newer is
    /// kept, and what the check is to do is returned with the view.
    fn settle(&self, job: &str, read: &Read, ends: u64, now: Timestamp) -> Option<Settled> {
        let mut views = lock(&self.views);
        let v = views.get_mut(job)?;
        v.checking = false;
        v.partial = false;
        let st = &read.standing;
        if let Some(end) = st.last_success_end()
            && v.last_success.is_none_or(|l| l < end)
        {
            v.last_success = Some(end);
        }
        if v.ends == ends {
            v.streak = st.failure_streak;
        }
        let first_seen = v.within.is_some() && v.first_seen.is_none();
        if first_seen {
            v.first_seen = Some(read.oldest.map_or(now, |o| o.min(now)));
        }
        let mut out = Settled {
            first_seen,
            stale: None,
            view: v.clone(),
        };
        if let (Some(basis), Some(d)) = (v.basis(), v.deadline())
            && d <= now
            && v.alerted != Some(basis)
        {
            v.alerted = Some(basis);
            out.stale = Some((d, basis));
            out.view = v.clone();
        }
        Some(out)
    }

    /// Every watched job of `cfg`'s health at `now`, by name.
    pub(super) fn health(&self, cfg: &Config, now: Timestamp) -> Vec<JobHealth> {
        let views = lock(&self.views);
        let empty = View::default();
        let mut out: Vec<JobHealth> = watched(cfg)
            .map(|j| {
                let v = views.get(j.name.as_str()).unwrap_or(&empty);
                v.health(&j.name, standing::threshold(cfg, j), now)
            })
            .collect();
        out.sort_by(|a, b| a.job.cmp(&b.job));
        out
    }
}

/// The jobs watched: the enabled ones.
fn watched(cfg: &Config) -> impl Iterator<Item = &Job> {
    cfg.jobs.iter().filter(|j| j.enabled)
}

/// A job's view from its newest records and its file in `state_dir/watch` (whose first
/// appearance is written when a job expected to succeed is watched for the first time).
/// Behind a failure streak longer than those records, the view is partial: a check reads
/// the rest at once, off the loop.
fn view(cfg: &Config, job: &Job, coord: &dyn Coordinator, log: &Logger, now: Timestamp) -> View {
    let f = [("job", job.name.to_string())];
    let read = standing::recent(coord, &cfg.settings, &job.name).unwrap_or_else(|e| {
        let msg = format!("cannot read the history: {e}; streak and last success unknown");
        log.log(Level::Warn, "watch", &f, &msg);
        Read {
            whole: true,
            ..Read::default()
        }
    });
    let state_dir = &cfg.settings.state_dir;
    let mut kept = standing::read_watched(state_dir, &job.name);
    if job.expect.success_within.is_some() && kept.first_seen.is_none() && read.whole {
        kept.first_seen = Some(read.oldest.map_or(now, |o| o.min(now)));
        keep(state_dir, &job.name, &kept, log);
    }
    View {
        within: job.expect.success_within,
        last_success: read.standing.last_success_end(),
        first_seen: kept.first_seen,
        streak: read.standing.failure_streak,
        alerted: kept.alerted,
        partial: !read.whole,
        ..View::default()
    }
}

/// Writes what is kept of `job`, or logs why it cannot (after a restart, its first
/// appearance would count from then, or its deadline be alerted again).
fn keep(state_dir: &std::path::Path, job: &str, kept: &Watched, log: &Logger) {
    if let Err(e) = standing::write_watched(state_dir, job, kept) {
        let msg = format!("cannot keep its deadline in the state directory: {e}");
        log.log(Level::Warn, "watch", &[("job", job.to_string())], &msg);
    }
}

/// At a wake-up of the loop: the deadlines that passed are checked against the histories
/// in a thread of their own (the loop never waits for a history).
pub(super) fn check_due(shared: &Arc<Shared>) {
    let due = shared.watch.take_due(Timestamp::now());
    if due.is_empty() {
        return;
    }
    let (sh, jobs) = (Arc::clone(shared), due.clone());
    let spawned = std::thread::Builder::new()
        .name("stale".into())
        .spawn(move || {
            for job in &jobs {
                confirm(&sh, job);
            }
        });
    if let Err(e) = spawned {
        let msg = format!("cannot start a thread to check deadlines: {e}; again in 1m");
        shared.log.log(Level::Error, "watch", &[], &msg);
        let at = retry_at(Timestamp::now());
        for job in &due {
            shared.watch.retry(job, at);
        }
    }
}

fn retry_at(now: Timestamp) -> Timestamp {
    deadline(now, RETRY).unwrap_or(now)
}

/// `job`'s deadline passed (or its view is partial): its whole standing is read from its
/// history; unless that has a newer success, the job is stale, alerted once (and kept as
/// alerted).
fn confirm(shared: &Shared, name: &str) {
    let cfg = shared.current();
    let f = [("job", name.to_string())];
    let ends = shared.watch.ends(name);
    let read = match from_history(&*shared.coord, &cfg.settings, name, None) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("cannot read the history to check the deadline: {e}; again in 1m");
            shared.log.log(Level::Warn, "watch", &f, &msg);
            shared.watch.retry(name, retry_at(Timestamp::now()));
            return;
        }
    };
    let Some(settled) = shared.watch.settle(name, &read, ends, Timestamp::now()) else {
        return;
    };
    let v = &settled.view;
    if settled.first_seen || settled.stale.is_some() {
        let kept = Watched {
            first_seen: v.first_seen,
            alerted: v.alerted,
        };
        keep(&cfg.settings.state_dir, name, &kept, &shared.log);
    }
    let (Some((deadline, basis)), Some(job)) = (settled.stale, cfg.job(name)) else {
        return;
    };
    let since = match v.last_success {
        Some(t) => format!("no success since {t}"),
        None => format!("no success since it was first seen at {basis}"),
    };
    let within = v.within.map(format_duration).unwrap_or_default();
    let fields = [
        ("job", name.to_string()),
        ("deadline", deadline.to_string()),
    ];
    let msg = format!("{since} (expect_success_within {within})");
    shared.log.log(Level::Warn, "stale", &fields, &msg);
    shared
        .ctx(&cfg)
        .alerts()
        .on_stale(job, read.standing.last_success.as_ref(), deadline);
}

/// When the loop last went to sleep, and for how long it meant to.
pub(super) struct Beat(Mutex<(Instant, Duration)>);

impl Default for Beat {
    fn default() -> Beat {
        Beat(Mutex::new((Instant::now(), Duration::ZERO)))
    }
}

impl Beat {
    /// The loop goes to sleep for `sleep`.
    pub(super) fn sleeps(&self, sleep: Duration) {
        *lock(&self.0) = (Instant::now(), sleep);
    }

    /// Why the loop seems stuck: it should have woken more than [`LOOP_GRACE`] ago.
    fn problem(&self) -> Option<String> {
        let (at, sleep) = *lock(&self.0);
        let late = at.elapsed().checked_sub(sleep)?;
        (late > LOOP_GRACE).then(|| {
            format!(
                "the daemon's loop has not woken for {} (it meant to sleep {})",
                format_duration(Duration::from_secs(at.elapsed().as_secs())),
                format_duration(sleep)
            )
        })
    }
}

/// The daemon's health now: its loop alive, no job stale, no streak at its threshold.
pub(super) fn health(shared: &Shared) -> Health {
    Health::new(
        shared.beat.problem().into_iter().collect(),
        shared.watch.health(&shared.current(), Timestamp::now()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::rec;
    use crate::record::{Outcome, Standing};

    fn t(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    /// A watch of one job `j` expected to succeed within 10 s, first seen at 00:00:00.
    fn watch() -> Watch {
        let v = View {
            within: Some(Duration::from_secs(10)),
            first_seen: Some(t("2026-01-01T00:00:00Z")),
            ..View::default()
        };
        Watch {
            views: Mutex::new(HashMap::from([("j".into(), v)])),
        }
    }

    /// A table of `jobs` (`[jobs.NAME]` followed by its keys, schedule and command given).
    fn table(name: &str, jobs: &[(&str, &str)]) -> Config {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cw-watch-{}-{name}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut text = format!("[settings]\nstate_dir = {:?}\n", dir.join("state"));
        for (job, keys) in jobs {
            text.push_str(&format!(
                "[jobs.{job}]\nschedule = \"@daily\"\ncommand = \"true\"\n{keys}\n"
            ));
        }
        let path = dir.join("jobs.toml");
        std::fs::write(&path, text).expect("write table");
        let loaded = crate::config::load(&path, crate::config::LoadOptions { as_root: false });
        loaded
            .config
            .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
    }

    /// The directory of a [`table`], removed.
    fn remove(c: &Config) {
        if let Some(dir) = c.settings.state_dir.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// The table of [`watch`]: `j` expected to succeed within 10 s.
    fn cfg() -> Config {
        let c = table("j", &[("j", "expect_success_within = \"10s\"")]);
        remove(&c);
        c
    }

    /// A whole read of a history whose standing is `standing`.
    fn read(standing: Standing) -> Read {
        Read {
            standing,
            oldest: None,
            whole: true,
        }
    }

    fn ended(w: &Watch, outcome: Outcome, at: &str) {
        w.ended(
            &cfg(),
            &RunRecord {
                outcome,
                ended: at.to_string(),
                ..rec("r")
            },
        );
    }

    #[test]
    fn a_deadline_is_due_once_and_again_only_after_a_later_success() {
        let w = watch();
        assert_eq!(w.next_deadline(), Some(t("2026-01-01T00:00:10Z")));
        assert!(w.take_due(t("2026-01-01T00:00:09Z")).is_empty());
        ended(&w, Outcome::Failure, "2026-01-01T00:00:05Z");
        assert_eq!(w.take_due(t("2026-01-01T00:00:10Z")), ["j"]);
        // Being checked: not due again, and not a deadline the loop sleeps for.
        assert_eq!(w.next_deadline(), None);
        assert!(w.take_due(t("2026-01-01T00:01:00Z")).is_empty());
        // The history holds no success: stale, alerted once.
        let st = Standing {
            failure_streak: 1,
            last_success: None,
        };
        let ends = w.ends("j");
        let settled = w.settle("j", &read(st), ends, t("2026-01-01T00:00:10Z"));
        let (d, basis) = settled.and_then(|s| s.stale).expect("stale");
        assert_eq!(
            (d, basis),
            (t("2026-01-01T00:00:10Z"), t("2026-01-01T00:00:00Z"))
        );
        assert_eq!(w.next_deadline(), None);
        assert!(w.take_due(t("2026-01-02T00:00:00Z")).is_empty());
        let h = &w.health(&cfg(), t("2026-01-01T00:00:11Z"))[0];
        assert!(h.stale && h.failure_streak == 1, "{h:?}");
        // A success (a warning counts) moves the deadline: due again 10 s after it.
        ended(&w, Outcome::Warning, "2026-01-01T00:01:00Z");
        assert_eq!(w.next_deadline(), Some(t("2026-01-01T00:01:10Z")));
        assert!(!w.health(&cfg(), t("2026-01-01T00:01:01Z"))[0].stale);
        assert_eq!(
            w.health(&cfg(), t("2026-01-01T00:01:01Z"))[0].failure_streak,
            0
        );
        assert_eq!(w.take_due(t("2026-01-01T00:01:10Z")), ["j"]);
    }

    #[test]
    fn a_success_in_the_history_that_the_daemon_did_not_see_moves_the_deadline() {
        let w = watch();
        assert_eq!(w.take_due(t("2026-01-01T00:00:10Z")), ["j"]);
        // Another process (or fleet node) succeeded at 00:00:08: not stale, due at 00:00:18.
        let st = Standing {
            failure_streak: 0,
            last_success: Some(RunRecord {
                ended: "2026-01-01T00:00:08Z".to_string(),
                ..rec("other")
            }),
        };
        let settled = w.settle("j", &read(st), 0, t("2026-01-01T00:00:10Z"));
        assert!(settled.is_some_and(|s| s.stale.is_none()));
        assert_eq!(w.next_deadline(), Some(t("2026-01-01T00:00:18Z")));
    }

    #[test]
    fn a_run_that_ends_during_a_check_keeps_its_streak_and_a_failed_read_waits() {
        let w = watch();
        assert_eq!(w.take_due(t("2026-01-01T00:00:10Z")), ["j"]);
        let ends = w.ends("j");
        ended(&w, Outcome::Failure, "2026-01-01T00:00:10Z");
        ended(&w, Outcome::Failure, "2026-01-01T00:00:11Z");
        // The history was read before those two ended: its streak (0) does not replace 2.
        let settled = w.settle(
            "j",
            &read(Standing::default()),
            ends,
            t("2026-01-01T00:00:12Z"),
        );
        assert!(settled.is_some_and(|s| s.stale.is_some()));
        assert_eq!(
            w.health(&cfg(), t("2026-01-01T00:00:12Z"))[0].failure_streak,
            2
        );
        // Skipped and interrupted runs leave the streak alone.
        ended(&w, Outcome::Skipped, "2026-01-01T00:00:13Z");
        ended(&w, Outcome::Interrupted, "2026-01-01T00:00:14Z");
        assert_eq!(
            w.health(&cfg(), t("2026-01-01T00:00:14Z"))[0].failure_streak,
            2
        );
        // A check that cannot read the history is due again at its retry, not before.
        let w = watch();
        assert_eq!(w.take_due(t("2026-01-01T00:00:10Z")), ["j"]);
        w.retry("j", t("2026-01-01T00:01:10Z"));
        assert_eq!(w.next_deadline(), Some(t("2026-01-01T00:01:10Z")));
        assert!(w.take_due(t("2026-01-01T00:01:09Z")).is_empty());
        assert_eq!(w.take_due(t("2026-01-01T00:01:10Z")), ["j"]);
    }

    #[test]
    fn a_partial_view_is_checked_at_once_and_gets_the_whole_streak_and_first_appearance() {
        let w = watch();
        if let Some(v) = lock(&w.views).get_mut("j") {
            *v = View {
                first_seen: None,
                streak: 64,
                partial: true,
                ..v.clone()
            };
        }
        assert_eq!(w.next_deadline(), Some(Timestamp::MIN));
        assert_eq!(w.take_due(t("2026-01-01T00:00:00Z")), ["j"]);
        // The whole history: 500 failures since the oldest record, an hour before now.
        let whole = Read {
            standing: Standing {
                failure_streak: 500,
                last_success: None,
            },
            oldest: Some(t("2026-01-01T00:00:00Z")),
            whole: true,
        };
        let s = w
            .settle("j", &whole, 0, t("2026-01-01T01:00:00Z"))
            .expect("settled");
        assert!(s.first_seen, "a first appearance to keep");
        assert_eq!(s.view.first_seen, Some(t("2026-01-01T00:00:00Z")));
        assert_eq!(
            s.stale,
            Some((t("2026-01-01T00:00:10Z"), t("2026-01-01T00:00:00Z")))
        );
        assert_eq!(
            w.health(&cfg(), t("2026-01-01T01:00:00Z"))[0].failure_streak,
            500
        );
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn only_views_with_something_in_them_are_kept_and_every_enabled_job_has_health() {
        let c = table(
            "sparse",
            &[
                ("idle", ""),
                ("off", "enabled = false"),
                ("j", "expect_success_within = \"10s\""),
            ],
        );
        let w = Watch::load(&c, &crate::coord::Local::default(), &Logger::stderr());
        // `j` is expected to succeed (first seen now); `idle` has the empty view.
        let kept: Vec<String> = lock(&w.views).keys().map(|k| k.to_string()).collect();
        assert_eq!(kept, ["j"]);
        let h = w.health(&c, Timestamp::now());
        let names: Vec<&str> = h.iter().map(|h| h.job.as_str()).collect();
        assert_eq!(names, ["idle", "j"]);
        assert!(
            h[0].failure_streak == 0 && h[0].streak_threshold == 1,
            "{h:?}"
        );
        // A failure of `idle` gives it a view; a disabled job's or an unknown one's none.
        for job in ["idle", "off", "gone"] {
            let failed = RunRecord {
                outcome: Outcome::Failure,
                ..rec(job)
            };
            w.ended(
                &c,
                &RunRecord {
                    job: job.into(),
                    ..failed
                },
            );
        }
        assert_eq!(lock(&w.views).len(), 2);
        assert_eq!(w.health(&c, Timestamp::now())[0].failure_streak, 1);
        // A reload keeps what is known of the jobs still watched, and only theirs.
        let c2 = table("sparse2", &[("idle", ""), ("new", "")]);
        w.reload(&c, &c2, &crate::coord::Local::default(), &Logger::stderr());
        let kept: Vec<String> = lock(&w.views).keys().map(|k| k.to_string()).collect();
        assert_eq!(kept, ["idle"]);
        let h = w.health(&c2, Timestamp::now());
        assert_eq!((h[0].job.as_str(), h[0].failure_streak), ("idle", 1));
        assert_eq!((h[1].job.as_str(), h[1].failure_streak), ("new", 0));
        remove(&c);
        remove(&c2);
    }

    #[test]
    fn the_loop_is_alive_while_it_wakes_within_its_grace() {
        let b = Beat::default();
        b.sleeps(Duration::from_secs(60));
        assert_eq!(b.problem(), None);
        *lock(&b.0) = (
            Instant::now() - Duration::from_secs(100),
            Duration::from_secs(60),
        );
        let p = b.problem().expect("stuck");
        assert!(p.contains("has not woken for 1m40s"), "{p}");
    }
}
