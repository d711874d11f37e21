//! The alert spool: every alert waits in `state_dir/spool/CHANNEL/` until its channel takes
//! it, so that sending never happens in the run that raised it and nothing is lost when the
//! process stops.
//!
//! - One file per waiting alert (`SEQ.EVENT.RUN_ID.JOB.json`: SEQ orders them as they were
//!   raised, and the rest lets the spool be listed without reading every file). A newer
//!   alert of the same job and event (from another run) replaces a waiting one and counts it
//!   (`coalesced`), so a job that keeps failing holds one place per channel, not one per run.
//! - At most `alert_spool_max_per_channel` alerts wait per channel; beyond that the oldest is
//!   dropped. An alert that waited longer than `alert_spool_max_age` for a failing channel is
//!   dropped. Each drop is logged, and counted in the channel's state so that the next alert
//!   delivered through it says so.
//! - The channel's state (`channel.state`): its failures in a row and when it is tried next.
//!   A channel backs off as a whole (5 s, doubling, at most 10 minutes): while it does, no
//!   alert of it is tried.
//! - Taking an alert to deliver renames it to `NAME.json.sending` and holds a flock on it;
//!   one that no process holds any more (the process died) goes back in line.
//!
//! Every change happens under a flock of `spool/.lock`, held for file operations only, never
//! while delivering: the daemon and any number of `cronwarden run` share the spool.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::message::Alert;
use crate::config::Config;
use crate::log::{Level, Logger};

/// The first backoff of a failing channel; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest a failing channel waits between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// A waiting alert.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Entry {
    /// The newest alert it stands for (`coalesced` counts the older ones).
    pub(super) alert: Alert,
    /// When the newest alert was raised.
    pub(super) queued: Timestamp,
}

/// A channel's delivery state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct ChannelState {
    /// Failed deliveries in a row (0: the channel works).
    pub(super) failures: u32,
    pub(super) failing_since: Option<Timestamp>,
    /// No alert of the channel is tried before this instant.
    pub(super) next_try: Option<Timestamp>,
    pub(super) last_error: String,
    /// Alerts dropped since the last delivery, by reason.
    pub(super) dropped: BTreeMap<String, u64>,
}

impl ChannelState {
    /// Whether the channel is backing off at `now`.
    pub(super) fn backing_off(&self, now: Timestamp) -> bool {
        self.next_try.is_some_and(|t| t > now)
    }

    /// "failing since T (REASON); next try at T2".
    pub(super) fn describe(&self) -> String {
        format!(
            "failing since {} ({}); next try at {}",
            self.failing_since
                .map(|t| t.to_string())
                .unwrap_or_default(),
            self.last_error,
            self.next_try.map(|t| t.to_string()).unwrap_or_default()
        )
    }
}

/// An alert taken for delivery: its file is `NAME.sending`, locked while this lives.
pub(super) struct Claim {
    pub(super) channel: String,
    path: PathBuf,
    pub(super) entry: Entry,
    /// The drops the delivered alert reports (subtracted once it is delivered).
    pub(super) dropped: BTreeMap<String, u64>,
    _held: File,
}

/// What became of a queued alert.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Queued {
    /// It waits; the channel works.
    Waiting,
    /// It replaced a waiting alert of the same job and event and stands for this many.
    Coalesced(u64),
    /// It waits for a failing channel.
    ChannelFailing(String),
}

/// A waiting alert as its file name tells it: `SEQ.EVENT.RUN_ID.JOB.json`, where SEQ is
/// the instant it was raised (nanoseconds, 20 digits) and a random part, so that names sort
/// in the order alerts were raised and the spool is listed without reading every file.
#[derive(Clone, Debug)]
pub(super) struct Waiting {
    path: PathBuf,
    seq: String,
    event: String,
    run_id: String,
    pub(super) job: String,
}

impl Waiting {
    fn parse(path: PathBuf) -> Option<Waiting> {
        let name = path.file_name()?.to_str()?;
        if name.starts_with('.') {
            return None;
        }
        let mut parts = name.strip_suffix(".json")?.splitn(4, '.');
        let (seq, event, run_id, job) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        Some(Waiting {
            seq: seq.to_string(),
            event: event.to_string(),
            run_id: run_id.to_string(),
            job: job.to_string(),
            path,
        })
    }

    /// When the newest alert it stands for was raised.
    fn queued(&self) -> Timestamp {
        self.seq
            .split_once('-')
            .and_then(|(n, _)| n.parse::<i128>().ok())
            .and_then(|n| Timestamp::from_nanosecond(n).ok())
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Same job and event, another run: the newer one replaces the older.
    fn coalesces(&self, a: &Alert) -> bool {
        self.job == a.job && self.event == part(&a.event) && self.run_id != part(&a.run.run_id)
    }
}

/// A file name part: no dots (they separate the parts).
fn part(s: &str) -> String {
    s.replace('.', "_")
}

/// The spool of one state directory, with the table's bounds.
pub(super) struct Spool<'a> {
    dir: PathBuf,
    log: &'a Logger,
    max_per_channel: usize,
    max_age: Duration,
}

/// The spool directory of a state directory.
pub(crate) fn spool_dir(state: &Path) -> PathBuf {
    state.join("spool")
}

/// How many alerts wait in the spool (in flight ones too).
pub(crate) fn spool_size(state: &Path) -> usize {
    let Ok(dir) = fs::read_dir(spool_dir(state)) else {
        return 0;
    };
    dir.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| fs::read_dir(e.path()).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && (name.ends_with(".json") || name.ends_with(".sending"))
        })
        .count()
}

/// A new alert's file name.
fn file_name(at: Timestamp, a: &Alert) -> String {
    let r = (crate::policy::random01() * f64::from(u32::MAX)) as u32;
    format!(
        "{:020}-{r:08x}.{}.{}.{}.json",
        at.as_nanosecond().max(0),
        part(&a.event),
        part(&a.run.run_id),
        a.job
    )
}

/// `older` folded into `newer`: `newer` stands for both.
fn merge(older: &Entry, mut newer: Entry) -> Entry {
    newer.alert.coalesced += older.alert.coalesced + 1;
    let older_since = older
        .alert
        .since
        .clone()
        .unwrap_or_else(|| older.queued.to_string());
    newer.alert.since = Some(match newer.alert.since.take() {
        Some(s) if s < older_since => s,
        _ => older_since,
    });
    newer
}

fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

fn write_entry(path: &Path, entry: &Entry) -> io::Result<()> {
    let bytes = serde_json::to_vec(entry).map_err(io::Error::other)?;
    // Without fsync: this is on the run's path; only a power loss can take it back.
    crate::files::write_replace(path, &bytes)
}

impl<'a> Spool<'a> {
    pub(super) fn new(cfg: &Config, log: &'a Logger) -> Spool<'a> {
        Spool {
            dir: spool_dir(&cfg.settings.state_dir),
            log,
            max_per_channel: cfg.settings.alert_spool_max_per_channel.max(1),
            max_age: cfg.settings.alert_spool_max_age,
        }
    }

    fn channel_dir(&self, channel: &str) -> PathBuf {
        self.dir.join(channel)
    }

    fn state_path(&self, channel: &str) -> PathBuf {
        self.channel_dir(channel).join("channel.state")
    }

    /// Runs `f` holding the spool's lock (file operations only, never a delivery).
    fn locked<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        crate::files::ensure_dir(&self.dir)?;
        let lock = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.dir.join(".lock"))?;
        lock.lock()?;
        f()
    }

    /// The channel's state (the default when it has none or it cannot be read).
    pub(super) fn state(&self, channel: &str) -> ChannelState {
        fs::read(self.state_path(channel))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write_state(&self, channel: &str, st: &ChannelState) -> io::Result<()> {
        let bytes = serde_json::to_vec(st).map_err(io::Error::other)?;
        crate::files::write_replace(&self.state_path(channel), &bytes)
    }

    /// The channels that have a directory in the spool.
    pub(super) fn channels(&self) -> Vec<String> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = dir
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// The channel's waiting alerts, oldest first (not those in flight), from their names.
    pub(super) fn waiting(&self, channel: &str) -> Vec<Waiting> {
        let Ok(dir) = fs::read_dir(self.channel_dir(channel)) else {
            return Vec::new();
        };
        let mut out: Vec<Waiting> = dir
            .flatten()
            .filter_map(|e| Waiting::parse(e.path()))
            .collect();
        out.sort_by(|a, b| a.seq.cmp(&b.seq));
        out
    }

    /// A waiting alert's content; one that cannot be read is moved aside (`.bad`) and
    /// logged.
    fn read(&self, channel: &str, w: &Waiting) -> Option<Entry> {
        let bytes = fs::read(&w.path).ok()?;
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(e) => Some(e),
            Err(e) => {
                let _ = fs::rename(&w.path, w.path.with_extension("json.bad"));
                self.log.log(
                    Level::Error,
                    "alert-dropped",
                    &[("channel", channel.to_string())],
                    &format!(
                        "{}: not a spooled alert ({e}); moved aside",
                        w.path.display()
                    ),
                );
                None
            }
        }
    }

    /// Queues an alert for a channel: it replaces a waiting alert of the same job and event,
    /// and the oldest are dropped beyond the channel's bound.
    pub(super) fn put(&self, channel: &str, alert: Alert) -> io::Result<Queued> {
        self.locked(|| {
            let now = Timestamp::now();
            let path = self.channel_dir(channel).join(file_name(now, &alert));
            let stands_for = self.place(channel, Entry { alert, queued: now }, path)? + 1;
            let st = self.state(channel);
            Ok(match stands_for {
                n if n > 1 => Queued::Coalesced(n),
                _ if st.failures > 0 => Queued::ChannelFailing(st.describe()),
                _ => Queued::Waiting,
            })
        })
    }

    /// Writes `entry` at `path`, folded together with a waiting alert of the same job and
    /// event (the pair takes the newer one's place in line), and drops the oldest beyond the
    /// bound; how many older alerts it stands for. Called under the lock.
    fn place(&self, channel: &str, entry: Entry, path: PathBuf) -> io::Result<u64> {
        let mut waiting = self.waiting(channel);
        let (path, entry) = match waiting.iter().position(|w| w.coalesces(&entry.alert)) {
            Some(i) => {
                let old_w = waiting.remove(i);
                match self.read(channel, &old_w) {
                    Some(old) if old.queued > entry.queued => (old_w.path, merge(&entry, old)),
                    Some(old) => {
                        let _ = fs::remove_file(&old_w.path);
                        (path, merge(&old, entry))
                    }
                    None => (path, entry),
                }
            }
            None => (path, entry),
        };
        write_entry(&path, &entry)?;
        let coalesced = entry.alert.coalesced;
        if let Some(w) = Waiting::parse(path) {
            waiting.push(w);
        }
        waiting.sort_by(|a, b| a.seq.cmp(&b.seq));
        let over = waiting.len().saturating_sub(self.max_per_channel);
        if over > 0 {
            let why = format!(
                "the spool was full: alert_spool_max_per_channel = {}",
                self.max_per_channel
            );
            let mut st = self.state(channel);
            for w in waiting.drain(..over) {
                self.drop_waiting(channel, &w, &why, &mut st);
            }
            self.write_state(channel, &st)?;
        }
        Ok(coalesced)
    }

    /// Removes a waiting alert for good: logged, and counted for the next delivered alert.
    fn drop_waiting(&self, channel: &str, w: &Waiting, why: &str, st: &mut ChannelState) {
        let entry = self.read(channel, w);
        let _ = fs::remove_file(&w.path);
        let n = entry.as_ref().map_or(1, |e| e.alert.coalesced + 1);
        *st.dropped.entry(why.to_string()).or_default() += n;
        self.log.log(
            Level::Error,
            "alert-dropped",
            &[
                ("job", w.job.clone()),
                ("channel", channel.to_string()),
                ("event", w.event.clone()),
                ("run_id", w.run_id.clone()),
            ],
            &format!(
                "{why}; dropped {n} alert(s): {} (the next alert through this channel says so)",
                entry.map(|e| e.alert.subject()).unwrap_or_default()
            ),
        );
    }

    /// Takes the channel's oldest waiting alert for delivery, unless the channel is backing
    /// off. Alerts that waited longer than `alert_spool_max_age` for a failing channel are
    /// dropped first.
    pub(super) fn claim(&self, channel: &str) -> io::Result<Option<Claim>> {
        self.locked(|| {
            let now = Timestamp::now();
            let mut st = self.state(channel);
            if st.backing_off(now) {
                return Ok(None);
            }
            let mut waiting = self.waiting(channel);
            if st.failures > 0 {
                let why = format!(
                    "it waited longer than alert_spool_max_age ({}) for a failing channel",
                    crate::units::format_duration(self.max_age)
                );
                let before = waiting.len();
                waiting.retain(|w| {
                    let expired = plus(w.queued(), self.max_age) < now;
                    if expired {
                        self.drop_waiting(channel, w, &why, &mut st);
                    }
                    !expired
                });
                if waiting.len() != before {
                    self.write_state(channel, &st)?;
                }
            }
            for w in waiting {
                let Some(entry) = self.read(channel, &w) else {
                    continue;
                };
                let sending = w.path.with_extension("json.sending");
                fs::rename(&w.path, &sending)?;
                let held = File::open(&sending)?;
                held.try_lock().map_err(io::Error::other)?;
                return Ok(Some(Claim {
                    channel: channel.to_string(),
                    path: sending,
                    entry,
                    dropped: st.dropped,
                    _held: held,
                }));
            }
            Ok(None)
        })
    }

    /// The claimed alert went out: the channel works again, and the drops it reported are
    /// settled.
    pub(super) fn delivered(&self, c: Claim) -> io::Result<()> {
        self.locked(|| {
            let _ = fs::remove_file(&c.path);
            let mut st = self.state(&c.channel);
            st.failures = 0;
            st.failing_since = None;
            st.next_try = None;
            st.last_error.clear();
            for (why, n) in &c.dropped {
                if let Some(left) = st.dropped.get_mut(why) {
                    *left = left.saturating_sub(*n);
                }
            }
            st.dropped.retain(|_, n| *n > 0);
            self.write_state(&c.channel, &st)
        })
    }

    /// The claimed alert did not go out. A permanent failure drops it (the caller logs why);
    /// otherwise it goes back in line and the channel backs off. The channel's state after.
    pub(super) fn failed(
        &self,
        c: Claim,
        reason: &str,
        permanent: bool,
    ) -> io::Result<ChannelState> {
        self.locked(|| {
            if permanent {
                let _ = fs::remove_file(&c.path);
                return Ok(self.state(&c.channel));
            }
            let now = Timestamp::now();
            let mut st = self.state(&c.channel);
            st.failures = st.failures.saturating_add(1);
            st.failing_since.get_or_insert(now);
            st.next_try = Some(plus(now, backoff(st.failures)));
            st.last_error = reason.to_string();
            self.write_state(&c.channel, &st)?;
            self.put_back(&c.channel, &c.path, c.entry.clone())?;
            Ok(self.state(&c.channel))
        })
    }

    /// An alert taken for delivery goes back to its place in line (folded into a newer one
    /// of the same job and event that came meanwhile). Called under the lock.
    fn put_back(&self, channel: &str, sending: &Path, entry: Entry) -> io::Result<()> {
        let path = match sending.to_str().and_then(|p| p.strip_suffix(".sending")) {
            Some(p) => PathBuf::from(p),
            None => self
                .channel_dir(channel)
                .join(file_name(entry.queued, &entry.alert)),
        };
        self.place(channel, entry, path)?;
        let _ = fs::remove_file(sending);
        Ok(())
    }

    /// Alerts taken for delivery by a process that is gone (nothing holds their lock) go
    /// back in line.
    pub(super) fn recover(&self) -> io::Result<()> {
        if !self.dir.is_dir() {
            return Ok(());
        }
        self.locked(|| {
            for channel in self.channels() {
                let Ok(dir) = fs::read_dir(self.channel_dir(&channel)) else {
                    continue;
                };
                for e in dir.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') || !name.ends_with(".json.sending") {
                        continue;
                    }
                    let path = e.path();
                    let Ok(f) = File::open(&path) else { continue };
                    if f.try_lock().is_err() {
                        continue;
                    }
                    let entry = fs::read(&path)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
                    match entry {
                        Some(entry) => self.put_back(&channel, &path, entry)?,
                        None => {
                            let _ = fs::rename(&path, path.with_extension("bad"));
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Drops every waiting alert of a channel the table no longer has.
    pub(super) fn drop_channel(&self, channel: &str) -> io::Result<()> {
        self.locked(|| {
            let mut st = self.state(channel);
            for w in self.waiting(channel) {
                let why = "its channel is no longer in the table";
                self.drop_waiting(channel, &w, why, &mut st);
            }
            let _ = fs::remove_file(self.state_path(channel));
            let _ = fs::remove_dir(self.channel_dir(channel));
            Ok(())
        })
    }

    /// Whether any alert of `job` waits for the channel.
    pub(super) fn holds_job(&self, channel: &str, job: &str) -> bool {
        self.waiting(channel).iter().any(|w| w.job == job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Outcome, RunRecord};

    fn alert(job: &str, event: &str, run: &str) -> Alert {
        Alert {
            event: event.into(),
            job: job.into(),
            host: "h".into(),
            schedule: None,
            zone: "UTC".into(),
            run: RunRecord {
                run_id: run.into(),
                job: job.into(),
                scheduled: String::new(),
                started: String::new(),
                ended: String::new(),
                duration_ms: 0,
                attempts: Vec::new(),
                outcome: Outcome::Failure,
                reason: None,
                output: None,
                trigger: "run".into(),
                node: None,
                skips: None,
                facts: Default::default(),
            },
            next_run: None,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            suppressed: 0,
            log_file: None,
            coalesced: 0,
            since: None,
            dropped: BTreeMap::new(),
            facts: Default::default(),
            raised: None,
        }
    }

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn spool<'a>(tag: &str, log: &'a Logger, max: usize) -> (Dir, Spool<'a>) {
        let d = std::env::temp_dir().join(format!("cw-spool-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let s = Spool {
            dir: d.join("spool"),
            log,
            max_per_channel: max,
            max_age: Duration::from_secs(3600),
        };
        (Dir(d), s)
    }

    #[test]
    fn a_newer_alert_of_the_same_job_and_event_replaces_the_waiting_one() {
        let log = Logger::new(None, crate::config::LogFormat::Text);
        let (_d, s) = spool("coalesce", &log, 100);
        assert_eq!(
            s.put("c", alert("a", "failure", "r1")).ok(),
            Some(Queued::Waiting)
        );
        assert_eq!(
            s.put("c", alert("a", "recovery", "r2")).ok(),
            Some(Queued::Waiting)
        );
        assert_eq!(
            s.put("c", alert("a", "failure", "r3")).ok(),
            Some(Queued::Coalesced(2))
        );
        // Retry alerts of one run stay apart: each is a step of that run.
        s.put("c", alert("a", "retry", "r4")).ok();
        s.put("c", alert("a", "retry", "r4")).ok();
        let waiting: Vec<(String, String, u64)> = s
            .waiting("c")
            .iter()
            .filter_map(|w| s.read("c", w))
            .map(|e| (e.alert.event, e.alert.run.run_id, e.alert.coalesced))
            .collect();
        let want = [
            ("recovery", "r2", 0),
            ("failure", "r3", 1),
            ("retry", "r4", 0),
            ("retry", "r4", 0),
        ];
        let want: Vec<(String, String, u64)> = want
            .iter()
            .map(|(e, r, n)| (e.to_string(), r.to_string(), *n))
            .collect();
        assert_eq!(waiting, want);
    }

    #[test]
    fn beyond_the_bound_the_oldest_are_dropped_and_counted() {
        let log = Logger::new(None, crate::config::LogFormat::Text);
        let (_d, s) = spool("bound", &log, 2);
        for j in ["a", "b", "c", "d"] {
            s.put("c", alert(j, "failure", j)).ok();
        }
        let jobs: Vec<String> = s.waiting("c").into_iter().map(|w| w.job).collect();
        assert_eq!(jobs, ["c", "d"]);
        assert_eq!(s.state("c").dropped.values().sum::<u64>(), 2);
        // The next delivered alert reports them; then the count is back to zero.
        let c = s.claim("c").ok().flatten().expect("a claim");
        assert_eq!(c.dropped.values().sum::<u64>(), 2);
        s.delivered(c).ok();
        assert!(s.state("c").dropped.is_empty());
    }

    #[test]
    fn a_failing_channel_backs_off_as_a_whole_and_keeps_its_alerts_in_order() {
        let log = Logger::new(None, crate::config::LogFormat::Text);
        let (_d, s) = spool("backoff", &log, 100);
        s.put("c", alert("a", "failure", "r1")).ok();
        s.put("c", alert("b", "failure", "r2")).ok();
        let c = s.claim("c").ok().flatten().expect("a claim");
        assert_eq!(c.entry.alert.job, "a");
        // While it is out, a second claim takes the next one, never the same.
        let st = s.failed(c, "HTTP 500", false).expect("state");
        assert_eq!(st.failures, 1);
        assert!(st.backing_off(Timestamp::now()));
        assert!(
            s.claim("c").ok().flatten().is_none(),
            "tried while backing off"
        );
        assert_eq!(
            s.put("c", alert("c", "failure", "r3")).ok(),
            Some(Queued::ChannelFailing(s.state("c").describe()))
        );
        let jobs: Vec<String> = s.waiting("c").into_iter().map(|w| w.job).collect();
        assert_eq!(jobs, ["a", "b", "c"]);
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn an_alert_taken_by_a_process_that_died_goes_back_in_line() {
        let log = Logger::new(None, crate::config::LogFormat::Text);
        let (_d, s) = spool("recover", &log, 100);
        s.put("c", alert("a", "failure", "r1")).ok();
        let c = s.claim("c").ok().flatten().expect("a claim");
        // Held: nobody else takes it back.
        s.recover().ok();
        assert!(s.waiting("c").is_empty());
        // Its holder is gone (the lock goes with the descriptor).
        drop(c);
        s.recover().ok();
        assert_eq!(s.waiting("c").len(), 1);
    }

    #[test]
    fn a_failed_alert_goes_back_folded_into_a_newer_one_that_came_meanwhile() {
        let log = Logger::new(None, crate::config::LogFormat::Text);
        let (_d, s) = spool("putback", &log, 100);
        s.put("c", alert("a", "failure", "r1")).ok();
        s.put("c", alert("b", "failure", "r2")).ok();
        let c = s.claim("c").ok().flatten().expect("a claim");
        // While r1's alert is out, the job fails again: nothing to fold into yet.
        assert_eq!(
            s.put("c", alert("a", "failure", "r3")).ok(),
            Some(Queued::Waiting)
        );
        s.failed(c, "timed out", false).expect("state");
        let waiting: Vec<(String, u64)> = s
            .waiting("c")
            .iter()
            .filter_map(|w| s.read("c", w))
            .map(|e| (e.alert.run.run_id, e.alert.coalesced))
            .collect();
        assert_eq!(waiting, [("r2".to_string(), 0), ("r3".to_string(), 1)]);
    }

    #[test]
    fn alerts_expire_only_while_their_channel_fails() {
        let log = Logger::new(None, crate::config::LogFormat::Text);
        let (_d, mut s) = spool("age", &log, 100);
        s.max_age = Duration::ZERO;
        s.put("c", alert("a", "failure", "r1")).ok();
        // A working channel: however old, it goes out.
        let c = s.claim("c").ok().flatten().expect("a claim");
        s.failed(c, "HTTP 503", false).expect("state");
        // Failing, and its backoff is over: too old, dropped and counted.
        let mut st = s.state("c");
        st.next_try = None;
        s.write_state("c", &st).expect("state");
        assert!(s.claim("c").ok().flatten().is_none());
        assert!(s.waiting("c").is_empty());
        assert_eq!(s.state("c").dropped.values().sum::<u64>(), 1);
    }
}
