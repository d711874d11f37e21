//! What a job's history says of its health: its failure streak and, with
//! `expect_success_within`, when it goes stale. The daemon's staleness watchdog, `status` and
//! `cronwarden health` (without a daemon) all compute it here, from the history the
//! coordinator reads (the state directory, or in fleet mode the fleet's database, so every
//! node computes the same deadline).
//!
//! The stale deadline is the end of the last successful (or warning) run plus
//! `expect_success_within`. For a job that never succeeded it counts from the job's first
//! appearance: when a daemon first watched it (or its oldest record, if older), kept in
//! `state_dir/watch/JOB.json` so that it survives restarts. That file also keeps which
//! deadline the daemon already alerted `stale`, so a restart does not alert it again. A
//! disabled job (`enabled = false`) is not watched.
//!
//! The failure streak counts failed (or lost) runs since the last success; it makes a job
//! unhealthy from its threshold on: the smallest `after_failures` among the job's channels
//! that hear of failures (1 when none does), so that health turns when the first alert of a
//! streak goes out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::Coordinator;
use crate::config::{AlertEvent, Config, Job, Settings};
use crate::control::JobHealth;
use crate::exit::Failure;
use crate::record::{self, RunRecord, Standing};

/// The failure streak from which `job` counts as unhealthy: the smallest `after_failures`
/// among its channels that hear of failures; 1 when none does.
pub(crate) fn threshold(cfg: &Config, job: &Job) -> u32 {
    job.alert
        .iter()
        .filter_map(|name| cfg.alert(name))
        .filter(|ch| ch.on.contains(&AlertEvent::Failure))
        .map(|ch| ch.after_failures.max(1))
        .min()
        .unwrap_or(1)
}

/// How many of a job's newest records are read first: the rest only when they hold no
/// success (a long failure streak).
const RECENT: usize = 64;

/// `basis + within`, when it can be represented.
pub(crate) fn deadline(basis: Timestamp, within: Duration) -> Option<Timestamp> {
    basis
        .checked_add(SignedDuration::try_from(within).ok()?)
        .ok()
}

/// A job's standing as read from (part of) its history.
#[derive(Clone, Debug, Default)]
pub(crate) struct Read {
    pub(crate) standing: Standing,
    /// The start of the oldest record read: the job's first appearance when `whole`.
    pub(crate) oldest: Option<Timestamp>,
    /// The records read tell the whole standing: they hold a success, or are all the
    /// history there is.
    pub(crate) whole: bool,
}

/// What `recs` (the newest records, `asked` for) tell.
fn read_of(recs: &[RunRecord], asked: usize) -> Read {
    Read {
        standing: record::standing(recs),
        oldest: recs.first().and_then(|r| r.started.parse().ok()),
        whole: recs.len() < asked || recs.iter().any(|r| r.outcome.succeeded()),
    }
}

/// The standing told by the job's newest records only: cheap however long the history;
/// not `whole` behind a failure streak longer than they are.
pub(crate) fn recent(
    coord: &dyn Coordinator,
    settings: &Settings,
    job: &str,
) -> Result<Read, Failure> {
    Ok(read_of(&coord.history(settings, job, RECENT)?, RECENT))
}

/// The job's whole standing: from `recent` (its newest records, when the caller already
/// read them, with how many it asked for) or its newest records, and only when they do not
/// tell it (a long failure streak), from the rest of its history.
pub(crate) fn from_history(
    coord: &dyn Coordinator,
    settings: &Settings,
    job: &str,
    recent_read: Option<(&[RunRecord], usize)>,
) -> Result<Read, Failure> {
    let first = match recent_read {
        Some((recs, asked)) => read_of(recs, asked),
        None => recent(coord, settings, job)?,
    };
    if first.whole {
        return Ok(first);
    }
    // A history holds up to twice `history_keep` records (0: all of them).
    let all = match settings.history_keep {
        0 => usize::MAX,
        keep => keep.saturating_mul(2),
    };
    let mut read = read_of(&coord.history(settings, job, all)?, all);
    read.whole = true;
    Ok(read)
}

/// `job`'s health at `now`, from its standing and first appearance.
pub(crate) fn job_health(
    cfg: &Config,
    job: &Job,
    st: &Standing,
    first_seen: Option<Timestamp>,
    now: Timestamp,
) -> JobHealth {
    let last_success = st.last_success_end();
    let within = job.expect.success_within.filter(|_| job.enabled);
    let stale_deadline = within.and_then(|w| deadline(last_success.or(first_seen)?, w));
    JobHealth {
        job: job.name.to_string(),
        failure_streak: st.failure_streak,
        streak_threshold: threshold(cfg, job),
        expect_success_within: within.map(crate::units::format_duration),
        last_success,
        stale_deadline,
        stale: stale_deadline.is_some_and(|d| now >= d),
    }
}

/// What the daemon keeps of a watched job in `state_dir/watch/JOB.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Watched {
    /// The job's first appearance: when a daemon first watched it with
    /// `expect_success_within`, or its oldest record if older.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) first_seen: Option<Timestamp>,
    /// The instant the deadline alerted `stale` counted from (the last success's end, or the
    /// first appearance): no second alert until a later success moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) alerted: Option<Timestamp>,
}

fn watched_path(state_dir: &Path, job: &str) -> PathBuf {
    state_dir.join("watch").join(format!("{job}.json"))
}

/// What is kept of `job` (nothing when the file is missing or unreadable).
pub(crate) fn read_watched(state_dir: &Path, job: &str) -> Watched {
    std::fs::read(watched_path(state_dir, job))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Keeps `w` for `job` (atomically; without waiting for the disk: a power loss can at worst
/// alert a deadline again, or count a first appearance from the next start).
pub(crate) fn write_watched(state_dir: &Path, job: &str, w: &Watched) -> std::io::Result<()> {
    let text = serde_json::to_vec(w).map_err(std::io::Error::other)?;
    crate::files::write_replace(&watched_path(state_dir, job), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_counts_from_the_last_success_else_the_first_appearance() {
        let t = |s: &str| s.parse::<Timestamp>().expect("instant");
        let base = t("2026-01-01T00:00:00Z");
        assert_eq!(
            deadline(base, Duration::from_secs(26 * 3600)),
            Some(t("2026-01-02T02:00:00Z"))
        );
        assert_eq!(deadline(base, Duration::MAX), None);
    }

    #[test]
    fn watched_files_round_trip_and_a_missing_one_is_empty() {
        let dir = std::env::temp_dir().join(format!("cw-watched-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(read_watched(&dir, "j"), Watched::default());
        let w = Watched {
            first_seen: "2026-01-01T00:00:00Z".parse().ok(),
            alerted: None,
        };
        write_watched(&dir, "j", &w).expect("write");
        assert_eq!(read_watched(&dir, "j"), w);
        std::fs::write(watched_path(&dir, "j"), b"{not json").expect("write");
        assert_eq!(read_watched(&dir, "j"), Watched::default());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
