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
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Interrupted => "interrupted",
            Outcome::Skipped => "skipped",
            Outcome::Lost => "lost",
        }
    }

    /// The exit code for a run that ended so (`run`, `trigger --wait`, a pipeline's root):
    /// an interrupted run exits as the signal that stopped it (SIGTERM when it is not known,
    /// e.g. a fleet node fenced it or the daemon stopped it).
    pub(crate) fn exit_code(self, signal: Option<i32>) -> u8 {
        use crate::exit;
        match self {
            Outcome::Success => exit::OK,
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
}

pub(crate) fn history_path(state_dir: &Path, job: &str) -> PathBuf {
    state_dir.join("history").join(format!("{job}.jsonl"))
}

/// Appends one record to the job's history, keeping at most about `keep` runs (0: all).
///
/// Appends and compactions of one job are serialized by a lock on a side file that is never
/// replaced. When the history has doubled since it was last compacted, it is rewritten
/// (atomically) with its newest `keep` records, so the file stays between one and two
/// `keep`s of runs without reading it on every append.
pub(crate) fn append(state_dir: &Path, rec: &RunRecord, keep: usize) -> io::Result<()> {
    let path = history_path(state_dir, &rec.job);
    let dir = path.parent().unwrap_or(state_dir);
    crate::files::ensure_dir(dir)?;
    let guard = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(format!(".{}.lock", rec.job)))?;
    guard.lock()?;
    let mut line = serde_json::to_string(rec).map_err(io::Error::other)?;
    line.push('\n');
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)?;
    // After a torn write the file does not end in a newline: start on a fresh line so the
    // torn fragment cannot swallow this record.
    let len = f.metadata()?.len();
    if len > 0 {
        use std::os::unix::fs::FileExt;
        let mut last = [0u8; 1];
        f.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            line.insert(0, '\n');
        }
    }
    f.write_all(line.as_bytes())?;
    let len = len + line.len() as u64;
    if keep == 0 {
        return Ok(());
    }
    // The size after the last compaction is kept in the lock file.
    let mut text = String::new();
    use std::io::Read;
    (&guard).read_to_string(&mut text)?;
    let base: u64 = text.trim().parse().unwrap_or(keep as u64 * 256);
    if len <= base.saturating_mul(2) {
        return Ok(());
    }
    let all = fs::read(&path)?;
    let lines: Vec<&[u8]> = all
        .split(|b| *b == b'\n')
        .filter(|l| serde_json::from_slice::<RunRecord>(l).is_ok())
        .collect();
    let kept = &lines[lines.len().saturating_sub(keep)..];
    let mut out = Vec::with_capacity(all.len());
    for l in kept {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    crate::files::write_atomic(&path, &out)?;
    guard.set_len(0)?;
    use std::os::unix::fs::FileExt;
    guard.write_all_at(out.len().max(1).to_string().as_bytes(), 0)?;
    Ok(())
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

/// The most recent record of a job, if any: parsed from the end of the file, so it costs
/// the same however long the history is.
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
        for line in lines.iter().skip(skip_first).rev() {
            if let Ok(rec) = serde_json::from_slice::<RunRecord>(line) {
                return Some(rec);
            }
        }
        if start == 0 {
            return None;
        }
        window *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> RunRecord {
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
        }
    }

    #[test]
    fn history_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("cw-record-keep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for i in 0..500 {
            append(&dir, &rec(&format!("r{i:03}")), 10).expect("append");
            let n = read(&dir, "j").expect("read").len();
            assert!(n <= 2 * 10 + 40, "{n} records after {i} appends");
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
}
