//! Run history in the state directory: one JSON line per run in `history/JOB.jsonl`.
//!
//! A record is appended with one `write` on a file opened with `O_APPEND`, so a crash in the
//! middle of a write can at worst leave a torn last line; earlier records are never touched,
//! and readers skip a line that does not parse.

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Success,
    Failure,
    /// Stopped by SIGINT/SIGTERM to `cronwarden run` or the daemon.
    Interrupted,
    /// Not run because another run held the lock (`overlap = "skip"`).
    Skipped,
    /// The daemon stopped (crashed, was killed) while the run was in progress: its end is
    /// unknown.
    Lost,
    /// Ended with one of the job's `warning_codes`: a success that is told.
    Warning,
}

impl Outcome {
    /// Every outcome (the metrics start each job's at 0).
    pub(crate) const ALL: [Outcome; 6] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Interrupted,
        Outcome::Skipped,
        Outcome::Lost,
        Outcome::Warning,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Interrupted => "interrupted",
            Outcome::Skipped => "skipped",
            Outcome::Lost => "lost",
            Outcome::Warning => "warning",
        }
    }

    /// Whether the run ended well: a success, or a warning (a success that is told). Both
    /// let the steps after it run and count as successes.
    pub(crate) fn ended_well(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Warning)
    }

    /// The exit code for a run that ended so (`run`, `trigger --wait`, a pipeline's root):
    /// an interrupted run exits as the signal that stopped it (SIGTERM when it is not known,
    /// e.g. a fleet node fenced it or the daemon stopped it).
    pub(crate) fn exit_code(self, signal: Option<i32>) -> u8 {
        use crate::exit;
        match self {
            Outcome::Success | Outcome::Warning => exit::OK,
            Outcome::Skipped => exit::LOCKED,
            Outcome::Interrupted => signal.map_or(exit::SIGTERM, exit::for_signal),
            Outcome::Failure | Outcome::Lost => exit::JOB_FAILED,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct AttemptRecord {
    pub attempt: u32,
    /// RFC 3339.
    pub started: String,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signal: Option<i32>,
    #[serde(default)]
    pub timed_out: bool,
    /// Why the attempt failed, for a person: "exit 2", "timed out after 2h", "verify: ...".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// What the attempt's processes used.
    #[serde(flatten, default)]
    pub usage: Usage,
}

/// What the processes of an attempt (or a whole run) used: CPU time, user and system, of
/// all of them, and the peak memory. `None` where it could not be measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Usage {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpu_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peak_memory_bytes: Option<u64>,
}

impl Usage {
    /// The usage of two attempts together: CPU time adds up, the peak is the larger.
    pub(crate) fn and(&self, o: &Usage) -> Usage {
        let sum = match (self.cpu_seconds, o.cpu_seconds) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Usage {
            cpu_seconds: sum,
            peak_memory_bytes: self.peak_memory_bytes.max(o.peak_memory_bytes),
        }
    }
}

impl Usage {
    /// What is known of it, for a person: "cpu 0.61s, peak 64.2MiB" (either part alone when
    /// only it is known); `None` when nothing is.
    pub(crate) fn describe(&self) -> Option<String> {
        let parts: Vec<String> = [
            self.cpu_seconds
                .map(|s| format!("cpu {}", crate::units::format_cpu_seconds(s))),
            self.peak_memory_bytes
                .map(|b| format!("peak {}", crate::units::format_size(b))),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// A process of a run still alive when the run's main process had exited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Leftover {
    pub pid: i32,
    /// Its command line, as /proc shows it.
    pub command: String,
    /// "stopped" or "kept" (`leftovers`).
    pub action: String,
}

/// What a run's containment saw and did: the usage of all its attempts, the processes it
/// left behind, and the limits that could not be applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunFacts {
    #[serde(flatten, default)]
    pub usage: Usage,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub leftovers: Vec<Leftover>,
    /// "memory_max: no memory controller in the cgroup", one per limit not applied.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub limits_not_applied: Vec<String>,
    /// The size of each verified file (by its rendered path), for the next run's
    /// `verify.min_ratio` / `max_ratio`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty", default)]
    pub verified_sizes: std::collections::BTreeMap<String, u64>,
    /// Which expectations fired for this run: `slow` (warn_after), `min_duration`,
    /// `min_ratio`, `max_ratio`, `warning` (warning_codes), `no_retry` (a code or kind not
    /// retried).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub fired: Vec<String>,
    /// What the run wrote to `CRONWARDEN_RESULT_FILE`, for the steps after it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<String>,
}

impl RunFacts {
    /// The lines a person reads about the processes the run left behind and the limits it
    /// ran without: one per action ("stopped 1 process left behind: sleep 4444 (pid 123)",
    /// "kept 2 processes left behind: a (pid 1), b (pid 2)"), then "limits not applied: ..."
    /// with each limit and why. None when there is nothing to say.
    pub(crate) fn notes(&self) -> Vec<String> {
        let mut actions: Vec<&str> = Vec::new();
        for l in &self.leftovers {
            if !actions.contains(&l.action.as_str()) {
                actions.push(&l.action);
            }
        }
        let mut out: Vec<String> = actions
            .into_iter()
            .map(|action| {
                let which: Vec<String> = self
                    .leftovers
                    .iter()
                    .filter(|l| l.action == action)
                    .map(|l| format!("{} (pid {})", l.command, l.pid))
                    .collect();
                let n = which.len();
                format!(
                    "{action} {n} process{} left behind: {}",
                    if n == 1 { "" } else { "es" },
                    which.join(", ")
                )
            })
            .collect();
        if !self.limits_not_applied.is_empty() {
            out.push(format!(
                "limits not applied: {}",
                self.limits_not_applied.join("; ")
            ));
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    pub run_id: String,
    pub job: String,
    /// The scheduled (logical) instant, RFC 3339.
    pub scheduled: String,
    pub started: String,
    pub ended: String,
    pub duration_ms: u64,
    pub attempts: Vec<AttemptRecord>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// The kept output of the last attempt.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output: Option<String>,
    /// What started it: `run`, `schedule`, ...
    pub trigger: String,
    /// The fleet node that ran it (fleet mode only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<String>,
    /// A streak of skipped runs is kept as one record: the record is its first skip (run
    /// id, instants), this says how many there were and which was the last (whose reason the
    /// record carries).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub skips: Option<SkipStreak>,
    /// Resource use, leftovers and limits not applied.
    #[serde(flatten, default)]
    pub facts: RunFacts,
}

/// The rest of a streak of skipped runs recorded as one ([`RunRecord::skips`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SkipStreak {
    /// How many runs were skipped in a row (2 or more).
    pub count: u64,
    /// The last skipped run of the streak: its id, scheduled instant and when it was skipped.
    pub last_run_id: String,
    pub last_scheduled: String,
    pub last_started: String,
}

impl RunRecord {
    /// How many attempts the run took: the number of its last attempt (a run taken over from
    /// a lost fleet node goes on with the next attempt, and holds only the attempts run
    /// here), at least as many as it holds.
    pub(crate) fn attempt_count(&self) -> u32 {
        let last = self.attempts.last().map_or(0, |a| a.attempt);
        last.max(u32::try_from(self.attempts.len()).unwrap_or(u32::MAX))
    }

    /// How many runs this record stands for: a skip streak's count, else 1.
    pub(crate) fn runs(&self) -> u64 {
        self.skips.as_ref().map_or(1, |s| s.count)
    }

    /// A skip that follows this record joins it when this record is a skip (or a streak of
    /// them) of the same trigger: the streak that results.
    fn join_skip(&self, next: &RunRecord) -> Option<RunRecord> {
        if self.outcome != Outcome::Skipped
            || next.outcome != Outcome::Skipped
            || self.trigger != next.trigger
            || self.job != next.job
        {
            return None;
        }
        let mut joined = self.clone();
        joined.ended = next.ended.clone();
        joined.reason = next.reason.clone();
        joined.skips = Some(SkipStreak {
            count: self.runs() + next.runs(),
            last_run_id: next.run_id.clone(),
            last_scheduled: next.scheduled.clone(),
            last_started: next.started.clone(),
        });
        Some(joined)
    }
}

impl Outcome {
    /// A success for staleness and failure streaks: `success`, or `warning` (a success that
    /// is told).
    pub(crate) fn succeeded(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Warning)
    }

    /// A failure for failure streaks: `failure`, or `lost` (its end is unknown). A skipped or
    /// interrupted run is neither: it does not end a streak nor add to it.
    pub(crate) fn failed(self) -> bool {
        matches!(self, Outcome::Failure | Outcome::Lost)
    }
}

/// What a job's history says of it now ([`standing`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Standing {
    /// Failed runs since the last success (or since the history begins): skipped and
    /// interrupted runs in between neither end the streak nor add to it.
    pub failure_streak: u32,
    /// The newest successful (or warning) run.
    pub last_success: Option<RunRecord>,
}

impl Standing {
    /// When the last success ended; `None` when there is none (or its end cannot be read).
    pub(crate) fn last_success_end(&self) -> Option<jiff::Timestamp> {
        self.last_success.as_ref()?.ended.parse().ok()
    }
}

/// The standing of a job whose records are `recs`, oldest first (as `read` and
/// `Coordinator::history` return them).
pub(crate) fn standing(recs: &[RunRecord]) -> Standing {
    let mut out = Standing::default();
    for r in recs.iter().rev() {
        if r.outcome.succeeded() {
            out.last_success = Some(r.clone());
            break;
        }
        if r.outcome.failed() {
            out.failure_streak = out.failure_streak.saturating_add(1);
        }
    }
    out
}

pub(crate) fn history_path(state_dir: &Path, job: &str) -> PathBuf {
    state_dir.join("history").join(format!("{job}.jsonl"))
}

/// Appends one record to the job's history, keeping at most about `keep` runs (0: all).
///
/// Appends and compactions of one job are serialized by a lock on a side file that is never
/// replaced. A skip that follows a skip (of the same trigger) does not add a line: the last
/// line becomes the streak ([`SkipStreak`]), so skips never push real runs out. When the
/// history has doubled since it was last compacted, it is rewritten (atomically) with its
/// newest `keep` records (and the newest real run, should they all be skips), so the file
/// stays between one and two `keep`s of runs without reading it on every append.
pub(crate) fn append(state_dir: &Path, rec: &RunRecord, keep: usize) -> io::Result<()> {
    let path = history_path(state_dir, &rec.job);
    let guard = history_lock(state_dir, &rec.job)?;
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)?;
    let added = write_record(&f, rec)?;
    if keep == 0 {
        return Ok(());
    }
    // How many records the file holds is kept in the lock file (`records=N`), so that the
    // bound is a count, as documented, without reading the file on every append. A lock file
    // of an older version (a byte count) or none: count once.
    let mut text = String::new();
    use std::io::Read;
    (&guard).read_to_string(&mut text)?;
    let known = text
        .trim()
        .strip_prefix("records=")
        .and_then(|n| n.parse::<usize>().ok());
    let mut n = match known {
        Some(n) => n + usize::from(added),
        None => count_records(&fs::read(&path)?),
    };
    if n > keep.saturating_mul(2) {
        let out = compacted(&fs::read(&path)?, keep);
        crate::files::write_atomic(&path, &out)?;
        n = count_records(&out);
    }
    // In place, padded, never truncated (a truncation makes ext4 write the file out and
    // free its block at once: `files::overwrite_padded`).
    crate::files::overwrite_padded(&guard, format!("records={n}").as_bytes())?;
    Ok(())
}

/// The lock that serializes the writers of a job's history (a side file never replaced),
/// held until the returned file is closed.
fn history_lock(state_dir: &Path, job: &str) -> io::Result<fs::File> {
    let path = history_path(state_dir, job);
    let dir = path.parent().unwrap_or(state_dir);
    crate::files::ensure_dir(dir)?;
    let guard = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(format!(".{job}.lock")))?;
    guard.lock()?;
    Ok(guard)
}

/// Removes from the job's history the records of runs that ended before `before`, except
/// the newest real run (not a skip), which is never pruned (`history_max_age`). Returns how
/// many records went.
pub(crate) fn prune_ended_before(
    state_dir: &Path,
    job: &str,
    before: jiff::Timestamp,
) -> io::Result<usize> {
    let path = history_path(state_dir, job);
    if !path.exists() {
        return Ok(0);
    }
    let guard = history_lock(state_dir, job)?;
    let all = fs::read(&path)?;
    let records: Vec<(&[u8], RunRecord)> = all
        .split(|b| *b == b'\n')
        .filter_map(|l| Some((l, serde_json::from_slice::<RunRecord>(l).ok()?)))
        .collect();
    let newest_real = records
        .iter()
        .rposition(|(_, r)| r.outcome != Outcome::Skipped);
    let old = |r: &RunRecord| r.ended.parse::<jiff::Timestamp>().is_ok_and(|t| t < before);
    let mut out = Vec::with_capacity(all.len());
    let mut kept = 0;
    for (i, (line, r)) in records.iter().enumerate() {
        if old(r) && Some(i) != newest_real {
            continue;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        kept += 1;
    }
    let pruned = records.len() - kept;
    if pruned > 0 {
        crate::files::write_atomic(&path, &out)?;
        crate::files::overwrite_padded(&guard, format!("records={kept}").as_bytes())?;
    }
    Ok(pruned)
}

/// The records (lines that parse) in a history file's bytes.
fn count_records(all: &[u8]) -> usize {
    all.split(|b| *b == b'\n')
        .filter(|l| serde_json::from_slice::<RunRecord>(l).is_ok())
        .count()
}

/// Writes `rec` at the end of the history file `f` (opened for appending, under the job's
/// lock): a new line, or, for a skip after a skip, the last line replaced by their streak.
/// Returns whether the file has one more record (false when a streak took the last line's
/// place).
fn write_record(mut f: &fs::File, rec: &RunRecord) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    let mut rec = std::borrow::Cow::Borrowed(rec);
    let mut fresh_line = false;
    let mut added = true;
    if len > 0 {
        let mut last = [0u8; 1];
        f.read_exact_at(&mut last, len - 1)?;
        // After a torn write the file does not end in a newline: start on a fresh line so
        // the torn fragment cannot swallow this record.
        fresh_line = last[0] != b'\n';
        if !fresh_line
            && rec.outcome == Outcome::Skipped
            && let Some((at, line)) = last_line(f, len)?
            && let Some(joined) = serde_json::from_slice::<RunRecord>(&line)
                .ok()
                .and_then(|prev| prev.join_skip(&rec))
        {
            // A crash between the two calls loses the streak's line, never a real run.
            f.set_len(at)?;
            added = false;
            rec = std::borrow::Cow::Owned(joined);
        }
    }
    let mut line = serde_json::to_string(&*rec).map_err(io::Error::other)?;
    line.push('\n');
    if fresh_line {
        line.insert(0, '\n');
    }
    f.write_all(line.as_bytes())?;
    Ok(added)
}

/// The last line of a file that ends in a newline: its offset and bytes (without the
/// newline); `None` when it is longer than the 64 KiB looked at.
fn last_line(f: &fs::File, len: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
    use std::os::unix::fs::FileExt;
    let start = len.saturating_sub(64 * 1024);
    let mut buf = vec![0u8; (len - start) as usize];
    f.read_exact_at(&mut buf, start)?;
    buf.pop();
    match buf.iter().rposition(|b| *b == b'\n') {
        Some(i) => Ok(Some((start + i as u64 + 1, buf[i + 1..].to_vec()))),
        None if start == 0 => Ok(Some((0, buf))),
        None => Ok(None),
    }
}

/// The history `all` compacted to its newest `keep` records; when those are all skips, the
/// newest real run before them stays too (the last real run is never pushed out).
fn compacted(all: &[u8], keep: usize) -> Vec<u8> {
    let records: Vec<(&[u8], RunRecord)> = all
        .split(|b| *b == b'\n')
        .filter_map(|l| Some((l, serde_json::from_slice::<RunRecord>(l).ok()?)))
        .collect();
    let from = records.len().saturating_sub(keep);
    let real = |r: &RunRecord| r.outcome != Outcome::Skipped;
    let keep_real = match records[from..].iter().any(|(_, r)| real(r)) {
        true => None,
        false => records[..from].iter().rposition(|(_, r)| real(r)),
    };
    let mut out = Vec::with_capacity(all.len());
    for (l, _) in keep_real
        .map(|i| &records[i])
        .into_iter()
        .chain(&records[from..])
    {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// The job's records, oldest first; lines that do not parse (a torn last write) are skipped.
pub(crate) fn read(state_dir: &Path, job: &str) -> io::Result<Vec<RunRecord>> {
    let f = match fs::File::open(history_path(state_dir, job)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(f).split(b'\n') {
        let line = line?;
        if let Ok(rec) = serde_json::from_slice::<RunRecord>(&line) {
            out.push(rec);
        }
    }
    Ok(out)
}

/// The job's newest `n` records, oldest first, read from the end of the file: the cost is
/// what they weigh, however long the history is. Lines that do not parse are skipped.
pub(crate) fn tail(state_dir: &Path, job: &str, n: usize) -> io::Result<Vec<RunRecord>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match fs::File::open(history_path(state_dir, job)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        (&mut f).take(len - start).read_to_end(&mut buf)?;
        // Complete lines only: the first may be cut by the window.
        let mut recs: Vec<RunRecord> = buf
            .split(|b| *b == b'\n')
            .skip(usize::from(start > 0))
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        if recs.len() >= n || start == 0 {
            recs.drain(..recs.len().saturating_sub(n));
            return Ok(recs);
        }
        window = window.saturating_mul(4);
    }
}

/// The job's most recent real run (a skip only when there is nothing else), parsed from
/// the end of the file, so it costs the same however long the history is.
pub(crate) fn last(state_dir: &Path, job: &str) -> Option<RunRecord> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(history_path(state_dir, job)).ok()?;
    let len = f.metadata().ok()?.len();
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start)).ok()?;
        let mut buf = Vec::new();
        (&mut f).take(len - start).read_to_end(&mut buf).ok()?;
        // Complete lines only (the first may be cut by the window), newest first.
        let lines: Vec<&[u8]> = buf.split(|b| *b == b'\n').collect();
        let skip_first = usize::from(start > 0);
        let mut newest = None;
        for line in lines.iter().skip(skip_first).rev() {
            if let Ok(rec) = serde_json::from_slice::<RunRecord>(line) {
                if rec.outcome != Outcome::Skipped {
                    return Some(rec);
                }
                newest.get_or_insert(rec);
            }
        }
        if start == 0 {
            return newest;
        }
        window *= 4;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A successful run record with no facts.
    pub(crate) fn rec(id: &str) -> RunRecord {
        RunRecord {
            run_id: id.to_string(),
            job: "j".to_string(),
            scheduled: "2026-01-01T00:00:00Z".to_string(),
            started: "2026-01-01T00:00:00Z".to_string(),
            ended: "2026-01-01T00:00:01Z".to_string(),
            duration_ms: 1000,
            attempts: vec![],
            outcome: Outcome::Success,
            reason: None,
            output: None,
            trigger: "run".to_string(),
            node: None,
            skips: None,
            facts: Default::default(),
        }
    }

    #[test]
    fn standing_counts_failures_since_the_last_success_or_warning() {
        let run = |id: &str, o: Outcome| RunRecord {
            outcome: o,
            ended: format!("2026-01-01T00:00:0{}Z", id.len()),
            ..rec(id)
        };
        assert_eq!(standing(&[]), Standing::default());
        let recs = [
            run("a", Outcome::Failure),
            run("bb", Outcome::Warning),
            run("ccc", Outcome::Failure),
            run("dddd", Outcome::Skipped),
            run("eeeee", Outcome::Lost),
            run("ffffff", Outcome::Interrupted),
            run("ggggggg", Outcome::Failure),
        ];
        let s = standing(&recs);
        // Skipped and interrupted runs neither end the streak nor add to it.
        assert_eq!(s.failure_streak, 3);
        assert_eq!(
            s.last_success.as_ref().map(|r| r.run_id.as_str()),
            Some("bb")
        );
        assert_eq!(s.last_success_end(), "2026-01-01T00:00:02Z".parse().ok());
        let never = standing(&recs[2..]);
        assert_eq!((never.failure_streak, never.last_success), (3, None));
        let ok = standing(&[run("a", Outcome::Failure), run("b", Outcome::Success)]);
        assert_eq!(ok.failure_streak, 0);
    }

    #[test]
    fn tail_is_the_newest_records_of_read_however_long_the_history() {
        let dir = std::env::temp_dir().join(format!("cw-record-tail-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert!(tail(&dir, "j", 5).expect("tail").is_empty());
        // Long enough for several windows (each record carries 1 KiB of output).
        for i in 0..300 {
            let r = RunRecord {
                output: Some("x".repeat(1024)),
                ..rec(&format!("r{i:03}"))
            };
            append(&dir, &r, 0).expect("append");
        }
        let all = read(&dir, "j").expect("read");
        for n in [0, 1, 5, 63, 64, 65, 200, 300, 1000, usize::MAX] {
            let want = &all[all.len().saturating_sub(n)..];
            assert_eq!(tail(&dir, "j", n).expect("tail"), want, "n = {n}");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn history_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("cw-record-keep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for i in 0..500 {
            append(&dir, &rec(&format!("r{i:03}")), 10).expect("append");
            let n = read(&dir, "j").expect("read").len();
            // At most twice `history_keep` (the man page's promise), and never fewer than it.
            assert!(n <= 2 * 10, "{n} records after {i} appends");
            assert!(n >= (i + 1).min(10), "{n} records after {i} appends");
        }
        let ids: Vec<String> = read(&dir, "j")
            .expect("read")
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert!(ids.len() >= 10, "{ids:?}");
        assert_eq!(ids.last().map(String::as_str), Some("r499"));
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "order kept");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn pruning_by_age_removes_older_runs_but_never_the_newest_real_one() {
        let dir = std::env::temp_dir().join(format!("cw-record-age-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let at = |id: &str, ended: &str, outcome: Outcome| RunRecord {
            ended: ended.to_string(),
            outcome,
            ..rec(id)
        };
        for r in [
            at("a", "2026-01-01T00:00:00Z", Outcome::Success),
            at("b", "2026-01-02T00:00:00Z", Outcome::Failure),
            at("c", "2026-01-03T00:00:00Z", Outcome::Success),
            at("d", "2026-01-04T00:00:00Z", Outcome::Skipped),
        ] {
            append(&dir, &r, 10).expect("append");
        }
        let cut = |t: &str| t.parse::<jiff::Timestamp>().expect("instant");
        let pruned = prune_ended_before(&dir, "j", cut("2026-01-02T12:00:00Z")).expect("prune");
        assert_eq!(pruned, 2);
        let ids = |d: &Path| -> Vec<String> {
            read(d, "j")
                .expect("read")
                .into_iter()
                .map(|r| r.run_id)
                .collect()
        };
        assert_eq!(ids(&dir), ["c", "d"]);
        // Everything is older: the newest real run stays, the skip after it goes.
        let pruned = prune_ended_before(&dir, "j", cut("2027-01-01T00:00:00Z")).expect("prune");
        assert_eq!((pruned, ids(&dir)), (1, vec!["c".to_string()]));
        // Appending goes on from the pruned count.
        append(&dir, &rec("e"), 10).expect("append");
        assert_eq!(ids(&dir), ["c", "e"]);
        assert_eq!(
            prune_ended_before(&dir, "nobody", cut("2027-01-01T00:00:00Z")).ok(),
            Some(0)
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_line_does_not_hide_earlier_records() {
        let dir = std::env::temp_dir().join(format!("cw-record-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        append(&dir, &rec("a"), 0).expect("append");
        append(&dir, &rec("b"), 0).expect("append");
        // A crash in the middle of the third write.
        let mut f = OpenOptions::new()
            .append(true)
            .open(history_path(&dir, "j"))
            .expect("open");
        f.write_all(b"{\"run_id\":\"c\",\"jo").expect("write");
        let ids: Vec<String> = read(&dir, "j")
            .expect("read")
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        // The next record after the torn one is intact.
        append(&dir, &rec("d"), 0).expect("append");
        let ids: Vec<String> = read(&dir, "j")
            .expect("read")
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(ids, ["a", "b", "d"]);
        assert_eq!(last(&dir, "j").map(|r| r.run_id), Some("d".to_string()));
        assert!(last(&dir, "nobody").is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    fn skip(id: &str) -> RunRecord {
        let mut r = rec(id);
        r.outcome = Outcome::Skipped;
        r.reason = Some(format!("held ({id})"));
        r.trigger = "schedule".to_string();
        r
    }

    fn ids(dir: &Path) -> Vec<(String, u64)> {
        read(dir, "j")
            .expect("read")
            .into_iter()
            .map(|r| (r.run_id.clone(), r.runs()))
            .collect()
    }

    #[test]
    fn a_streak_of_skips_is_one_record_and_never_pushes_the_last_real_run_out() {
        let dir = std::env::temp_dir().join(format!("cw-record-skips-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut failed = rec("f");
        failed.outcome = Outcome::Failure;
        append(&dir, &failed, 3).expect("append");
        for i in 0..50 {
            append(&dir, &skip(&format!("s{i:02}")), 3).expect("append");
        }
        assert_eq!(ids(&dir), [("f".to_string(), 1), ("s00".to_string(), 50)]);
        let all = read(&dir, "j").expect("read");
        let streak = all[1].skips.as_ref().expect("a streak");
        assert_eq!(streak.last_run_id, "s49");
        assert_eq!(all[1].reason.as_deref(), Some("held (s49)"));
        assert_eq!(last(&dir, "j").map(|r| r.run_id), Some("f".to_string()));
        // A real run ends the streak; the next skip starts a new one.
        append(&dir, &rec("ok"), 3).expect("append");
        append(&dir, &skip("t0"), 3).expect("append");
        append(&dir, &skip("t1"), 3).expect("append");
        assert_eq!(last(&dir, "j").map(|r| r.run_id), Some("ok".to_string()));
        // With keep = 1, compaction keeps the newest record and the last real run before it.
        for i in 0..40 {
            let mut r = skip(&format!("u{i:02}"));
            // Different triggers do not join: each is a record of its own.
            r.trigger = if i % 2 == 0 { "run" } else { "schedule" }.to_string();
            append(&dir, &r, 1).expect("append");
        }
        let kept = ids(&dir);
        assert!(kept.len() <= 3, "{kept:?}");
        assert_eq!(kept.first().map(|k| k.0.as_str()), Some("ok"), "{kept:?}");
        assert_eq!(kept.last().map(|k| k.0.as_str()), Some("u39"), "{kept:?}");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A run record with every containment fact filled in.
    pub(crate) fn with_facts(id: &str) -> RunRecord {
        let mut r = rec(id);
        r.outcome = Outcome::Failure;
        r.attempts = vec![AttemptRecord {
            attempt: 1,
            started: r.started.clone(),
            duration_ms: 1000,
            exit_code: Some(1),
            signal: None,
            timed_out: false,
            reason: Some("exit 1".to_string()),
            usage: Usage {
                cpu_seconds: Some(0.25),
                peak_memory_bytes: Some(2048),
            },
        }];
        r.facts = RunFacts {
            usage: Usage {
                cpu_seconds: Some(0.61),
                peak_memory_bytes: Some(67_318_989),
            },
            leftovers: vec![
                Leftover {
                    pid: 123,
                    command: "sleep 4444".to_string(),
                    action: "stopped".to_string(),
                },
                Leftover {
                    pid: 124,
                    command: "tail -f log".to_string(),
                    action: "kept".to_string(),
                },
                Leftover {
                    pid: 125,
                    command: "sleep 9".to_string(),
                    action: "kept".to_string(),
                },
            ],
            limits_not_applied: vec![
                "memory_max: no memory controller in the cgroup".to_string(),
                "io_weight: no io controller".to_string(),
            ],
            ..Default::default()
        };
        r
    }

    #[test]
    fn a_record_with_facts_and_usage_round_trips() {
        let r = with_facts("f");
        let line = serde_json::to_string(&r).expect("json");
        // Flattened: the figures are fields of the record and of the attempt themselves.
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["cpu_seconds"], 0.61);
        assert_eq!(v["peak_memory_bytes"], 67_318_989);
        assert_eq!(v["leftovers"][0]["command"], "sleep 4444");
        assert_eq!(v["leftovers"][1]["action"], "kept");
        assert_eq!(v["limits_not_applied"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["attempts"][0]["cpu_seconds"], 0.25);
        assert_eq!(v["attempts"][0]["peak_memory_bytes"], 2048);
        let back: RunRecord = serde_json::from_str(&line).expect("parses back");
        assert_eq!(back, r);
        // Written and read through the history file too.
        let dir = std::env::temp_dir().join(format!("cw-record-facts-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        append(&dir, &r, 0).expect("append");
        assert_eq!(read(&dir, "j").expect("read"), std::slice::from_ref(&r));
        assert_eq!(last(&dir, "j"), Some(r));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_without_facts_read_with_defaults_and_write_none() {
        let line = r#"{"run_id":"r","job":"j","scheduled":"2026-01-01T00:00:00Z","started":"2026-01-01T00:00:00Z","ended":"2026-01-01T00:00:01Z","duration_ms":1000,"attempts":[{"attempt":1,"started":"2026-01-01T00:00:00Z","duration_ms":1000,"exit_code":0}],"outcome":"success","trigger":"run"}"#;
        let r: RunRecord = serde_json::from_str(line).expect("an old record");
        assert_eq!(r.facts, RunFacts::default());
        assert_eq!(r.attempts[0].usage, Usage::default());
        assert_eq!(r.facts.usage.describe(), None);
        assert!(r.facts.notes().is_empty());
        // Unknown figures are left out, not written as null.
        let again = serde_json::to_string(&r).expect("json");
        for key in [
            "cpu_seconds",
            "peak_memory_bytes",
            "leftovers",
            "limits_not_applied",
        ] {
            assert!(!again.contains(key), "{key} in {again}");
        }
    }

    #[test]
    fn facts_read_as_a_person_would_say_them() {
        let r = with_facts("f");
        assert_eq!(
            r.facts.usage.describe().as_deref(),
            Some("cpu 0.61s, peak 64.2MiB")
        );
        let only_peak = Usage {
            cpu_seconds: None,
            peak_memory_bytes: Some(1 << 20),
        };
        assert_eq!(only_peak.describe().as_deref(), Some("peak 1MiB"));
        assert_eq!(
            r.facts.notes(),
            [
                "stopped 1 process left behind: sleep 4444 (pid 123)",
                "kept 2 processes left behind: tail -f log (pid 124), sleep 9 (pid 125)",
                "limits not applied: memory_max: no memory controller in the cgroup; \
                 io_weight: no io controller",
            ]
        );
    }

    #[test]
    fn records_written_before_skip_streaks_still_read() {
        let line = r#"{"run_id":"r","job":"j","scheduled":"2026-01-01T00:00:00+00:00","started":"2026-01-01T00:00:00Z","ended":"2026-01-01T00:00:00Z","duration_ms":0,"attempts":[],"outcome":"skipped","reason":"held","trigger":"schedule"}"#;
        let r: RunRecord = serde_json::from_str(line).expect("an old record");
        assert_eq!((r.skips.clone(), r.runs()), (None, 1));
        assert!(
            !serde_json::to_string(&rec("a"))
                .expect("json")
                .contains("skips")
        );
    }
}
