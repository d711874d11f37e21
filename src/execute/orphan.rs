//! Runs whose supervisor died: the daemon or a `cronwarden run` killed (-9) while its job
//! ran. The job's process group lives on (it holds the job's lock, so nothing starts a second
//! copy); whoever supervises next takes the run over from its marker (`marker`): it keeps the
//! attempt's original deadline (SIGTERM to the group, `kill_grace`, SIGKILL, as the runner
//! would have), waits for the group to end, and only then records the run: `failure` when
//! its timeout stopped it, `lost` when it ended by itself (its exit status is unknown: it was
//! no child of the new supervisor), `interrupted` when the daemon stopped it. A run whose
//! group is already gone is recorded as `lost` at once.
//!
//! Taking a run over ([`claim`]) is serialized by a lock on the `running` directory, so the
//! daemon and a `cronwarden run` never both take one; the marker then names the new
//! supervisor.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::Ctx;
use super::marker::{self, Group, Marker, ProcId};
use crate::config::Job;
use crate::log::Level;
use crate::record::{self, AttemptRecord, Outcome, RunRecord};
use crate::runner::{Interrupt, signal_name};
use crate::sys;
use crate::units::format_duration;

/// How often a group whose first process is gone is looked at (no pidfd tells its end).
const GROUP_POLL: Duration = Duration::from_millis(100);
/// How long a group that SIGKILL did not end (uninterruptible sleep) is waited for.
const AFTER_KILL: Duration = Duration::from_secs(10);

/// How a taken-over group ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// By itself (or after the time it had to finish once its first process was gone).
    ByItself,
    /// Its timeout ran out: stopped.
    TimedOut,
    /// The new supervisor was told to stop (the daemon's shutdown).
    Interrupted(i32),
}

/// Takes over the run of the marker at `path` if its supervisor is gone and `want` accepts
/// it: the marker then names this process, which must see the run to its end ([`finish`]).
/// The marker as it was (naming the supervisor that died).
pub(crate) fn claim(path: &Path, want: &dyn Fn(&Marker) -> bool) -> Option<Marker> {
    // flock(2) on the directory itself: no file of its own to leave behind.
    let guard = std::fs::File::open(path.parent()?).ok()?;
    guard.lock().ok()?;
    let m = marker::read(path)?;
    if m.supervisor.as_ref().is_some_and(ProcId::alive) || !want(&m) {
        return None;
    }
    let mut mine = m.clone();
    mine.supervisor = Some(ProcId::me());
    // Unwritable state: the run is this process's all the same (it holds the lock).
    let _ = marker::write(path, &mine);
    Some(m)
}

/// Whether the marker's run has no supervisor any more (a marker of an older version names
/// none: it was the previous daemon's).
pub(crate) fn orphaned(m: &Marker) -> bool {
    !m.supervisor.as_ref().is_some_and(ProcId::alive)
}

/// Sees a claimed run to its end: watches its group (enforcing the deadline) until it is
/// gone, then records the run and removes the marker. The record, when it is this process's
/// to alert ([`alert`]; not when it was recorded before, or a fleet alerts it elsewhere).
pub(crate) fn finish(
    ctx: Ctx<'_>,
    path: &Path,
    m: Marker,
    interrupt: &Interrupt,
) -> Option<RunRecord> {
    let before = m.supervisor_pid();
    let group = m.running_group(ctx.cfg.job(&m.record.job));
    let live = group.as_ref().filter(|g| g.alive());
    if let Some(g) = live {
        let deadline = g
            .deadline()
            .map(|d| format!("; its timeout runs out at {d}"))
            .unwrap_or_default();
        let msg = format!(
            "{}; its process group {} runs on: watching it{deadline}",
            died(before),
            g.pgid
        );
        ctx.log.log(Level::Warn, "orphan", &fields(&m.record), &msg);
    }
    let end = live.map(|g| (watch(g, interrupt), Timestamp::now()));
    if let Some(g) = &group {
        g.remove_cgroup();
    }
    super::credentials::remove(&ctx.cfg.settings.lock_dir, &m.record.run_id);
    let rec = record_of(&m.record, group.as_ref(), end, before);
    settle(ctx, path, &rec).then_some(rec)
}

/// Sends the alerts of a run taken over (a failure: timed out, or lost).
pub(crate) fn alert(ctx: Ctx<'_>, rec: &RunRecord) {
    if let Some(job) = ctx.cfg.job(&rec.job) {
        ctx.alerts().after_run(job, rec, (&[], &[]));
    }
}

/// `cronwarden run JOB`: takes over and settles the job's runs whose supervisor died and
/// that can be settled now: those whose group is gone (recorded as lost) and those whose
/// timeout has run out (stopped, then recorded). A run still within its time is left to the
/// daemon, or to a later `run` of the job.
pub(crate) fn settle_job(ctx: Ctx<'_>, job: &Job, interrupt: &Interrupt) {
    let state = &ctx.cfg.settings.state_dir;
    let now = Timestamp::now();
    let due = |m: &Marker| {
        m.record.job == job.name
            && m.running_group(Some(job))
                .is_none_or(|g| !g.alive() || g.deadline().is_some_and(|d| d <= now))
    };
    for path in marker::list(state) {
        if let Some(rec) = claim(&path, &due).and_then(|m| finish(ctx, &path, m, interrupt)) {
            alert(ctx, &rec);
        }
    }
}

impl Marker {
    fn supervisor_pid(&self) -> Option<i32> {
        self.supervisor.as_ref().map(|s| s.pid)
    }
}

fn fields(rec: &RunRecord) -> Vec<(&'static str, String)> {
    vec![
        ("job", rec.job.clone()),
        ("run_id", rec.run_id.clone()),
        ("scheduled", rec.scheduled.clone()),
    ]
}

/// "its supervisor, cronwarden pid 42, died".
fn died(pid: Option<i32>) -> String {
    match pid {
        Some(p) => format!("its supervisor, cronwarden pid {p}, died"),
        None => "the daemon that supervised it stopped".to_string(),
    }
}

/// Watches a live group to its end: SIGTERM at its deadline (or `kill_grace` after its first
/// process ended while others hold on, as the runner does), SIGKILL `kill_grace` later; a
/// stop of this process stops the group the same way.
fn watch(g: &Group, interrupt: &Interrupt) -> End {
    let to_instant = |t: Timestamp| {
        let left = Duration::try_from(t.duration_since(Timestamp::now())).unwrap_or_default();
        Instant::now() + left
    };
    let deadline = g.deadline().map(to_instant);
    let grace = g.kill_grace();
    let leader_alive = || marker::start_ticks(g.pgid) == Some(g.leader_start);
    // Readable when the group's first process ends (no pidfd: the group is polled).
    let mut leader = sys::pidfd_open(g.pgid as u32).filter(|_| leader_alive());
    let (mut end, mut linger, mut stop) = (End::ByItself, None::<Instant>, Stop::Watching);
    loop {
        if !g.alive() {
            return end;
        }
        let now = Instant::now();
        if leader.is_some() && !leader_alive() {
            leader = None;
        }
        match stop {
            Stop::Watching => {
                if leader.is_none() && linger.is_none() {
                    linger = Some(now + grace);
                }
                let why = match interrupt.received() {
                    Some(sig) => Some(End::Interrupted(sig)),
                    None if deadline.is_some_and(|d| now >= d) => Some(End::TimedOut),
                    None if linger.is_some_and(|l| now >= l) => Some(End::ByItself),
                    None => None,
                };
                if let Some(why) = why {
                    end = why;
                    g.signal(libc::SIGTERM);
                    stop = Stop::Termed(now);
                    continue;
                }
            }
            Stop::Termed(t) if now >= t + grace => {
                g.signal(libc::SIGKILL);
                stop = Stop::Killed(now);
                continue;
            }
            Stop::Killed(k) if now >= k + AFTER_KILL => return end,
            _ => {}
        }
        let next = match stop {
            Stop::Watching => [deadline, linger].into_iter().flatten().min(),
            Stop::Termed(t) => Some(t + grace),
            Stop::Killed(k) => Some(k + AFTER_KILL),
        };
        let mut wait = next.map(|n| n.saturating_duration_since(now));
        if leader.is_none() || stop != Stop::Watching {
            wait = Some(wait.map_or(GROUP_POLL, |w| w.min(GROUP_POLL)));
        }
        // The interrupt stays readable once it fired: only looked at until the stop began.
        let mut fds: Vec<libc::pollfd> = match stop {
            Stop::Watching => interrupt.raw_fds().into_iter().map(sys::pollin).collect(),
            _ => Vec::new(),
        };
        if let Some(p) = &leader {
            fds.push(sys::pollin(p.as_raw_fd()));
        }
        sys::poll(&mut fds, wait);
    }
}

/// How far the stop of a taken-over group went.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Watching,
    /// SIGTERM sent then.
    Termed(Instant),
    /// SIGKILL sent then.
    Killed(Instant),
}

/// The run's record: the attempts it finished before, the one its group ran (when it had
/// one), and how that ended.
fn record_of(
    placeholder: &RunRecord,
    group: Option<&Group>,
    end: Option<(End, Timestamp)>,
    before: Option<i32>,
) -> RunRecord {
    let mut rec = placeholder.clone();
    let now = Timestamp::now();
    let ended = end.map_or(now, |(_, t)| t);
    let me = std::process::id();
    let (outcome, reason) = match (end, group) {
        (Some((End::TimedOut, _)), Some(g)) => (
            Outcome::Failure,
            format!(
                "timed out after {} ({} during attempt {}; pid {me} took the run over and \
                 stopped it at its deadline)",
                g.timeout().map(format_duration).unwrap_or_default(),
                died(before),
                g.attempt
            ),
        ),
        (Some((End::Interrupted(sig), _)), Some(g)) => (
            Outcome::Interrupted,
            format!(
                "{} during attempt {}; pid {me} took it over and was stopped by {}",
                died(before),
                g.attempt,
                signal_name(sig)
            ),
        ),
        (Some(_), Some(g)) => (
            Outcome::Lost,
            format!(
                "{} during attempt {}; the job ran on and ended by itself; its exit status is \
                 unknown",
                died(before),
                g.attempt
            ),
        ),
        (_, Some(g)) => (
            Outcome::Lost,
            format!(
                "{} during attempt {}; its end is unknown",
                died(before),
                g.attempt
            ),
        ),
        (_, None) if rec.attempts.is_empty() => (
            Outcome::Lost,
            format!("{} before its first attempt started", died(before)),
        ),
        (_, None) => (
            Outcome::Lost,
            format!("{} between attempts; it was not retried", died(before)),
        ),
    };
    if let Some(g) = group {
        rec.attempts.push(attempt_of(g, end, ended, &reason));
    }
    let started = rec.started.parse::<Timestamp>().unwrap_or(ended);
    rec.ended = ended.to_string();
    rec.duration_ms = millis(started, ended);
    rec.outcome = outcome;
    rec.reason = Some(reason);
    rec
}

fn attempt_of(
    g: &Group,
    end: Option<(End, Timestamp)>,
    ended: Timestamp,
    reason: &str,
) -> AttemptRecord {
    let started = g.started.parse::<Timestamp>().unwrap_or(ended);
    AttemptRecord {
        attempt: g.attempt,
        started: g.started.clone(),
        duration_ms: if end.is_some() {
            millis(started, ended)
        } else {
            0
        },
        exit_code: None,
        signal: None,
        timed_out: matches!(end, Some((End::TimedOut, _))),
        reason: Some(reason.to_string()),
        usage: Default::default(),
    }
}

fn millis(from: Timestamp, to: Timestamp) -> u64 {
    (to - from)
        .total(jiff::Unit::Millisecond)
        .map_or(0, |v| v.max(0.0) as u64)
}

/// Records the run (unless a crash came between its record and the removal of its marker)
/// and removes the marker; whether it is to be alerted here.
fn settle(ctx: Ctx<'_>, path: &Path, rec: &RunRecord) -> bool {
    let settings = &ctx.cfg.settings;
    let recorded = record::read(&settings.state_dir, &rec.job)
        .map(|all| all.iter().rev().take(100).any(|r| r.run_id == rec.run_id))
        .unwrap_or(false);
    if !recorded {
        let event = match rec.outcome {
            Outcome::Lost => "lost",
            _ => "run-end",
        };
        let mut f = fields(rec);
        f.push(("outcome", rec.outcome.as_str().to_string()));
        let reason = rec.reason.as_deref().unwrap_or("");
        ctx.log.log(Level::Error, event, &f, reason);
    }
    let alert = !recorded && ctx.coord.record_orphan(settings, rec, ctx.log);
    let _ = std::fs::remove_file(path);
    alert
}
