//! Run markers: `state_dir/running/RUN_ID.json`, one per run in progress, written by the
//! process that supervises it (the daemon or `cronwarden run`): the run as it would be
//! recorded if that process died now, which process that is, and the process group of the
//! attempt running now with its deadline. Should the supervisor die (kill -9), the next one
//! (`orphan`) finds the marker, enforces the attempt's deadline on its group, and records the
//! run once the group has ended.
//!
//! A marker is one JSON object per line, the last complete line (ended by its newline)
//! that reads being the marker: it is created atomically (a temporary file renamed) at the
//! run's start, and each attempt's start appends a line to it. A reader never sees a mix
//! of two versions (a line cut short by the death of its writer, or read while it is
//! written, does not count: the line before it does), and no second file is made for an
//! attempt, renamed over the marker (which on ext4 writes it out at once) and freed
//! (issues 14 and 21). A supervisor that takes a run over rewrites the marker whole.
//!
//! An ended run's marker is not deleted but renamed to a spare (`.spareK`, at most
//! [`SPARES`] of them), which a later run claims (renamed to a name of its own), rewrites
//! and renames into place: a rename is all a run's start and end cost, not a new file and a
//! deleted one (on ext4 without a journal each new inode is a scan past every inode freed
//! in the last half minute: with 100 jobs at once, a run's new files, its marker, output
//! and result file, were half of the daemon's time; issue 21).
//! Spares and claimed files start with a dot, so no reader takes them for markers; a
//! claimed file whose writer died goes at the next look (as a temporary file does).
//! Markers written by older versions (one object, no newline; a bare run record) still
//! read. Writing one is best effort: a state directory that cannot be written does not
//! stop the run.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::record::{AttemptRecord, RunRecord};

/// What a marker says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Marker {
    /// The run as it would be recorded now (outcome `lost`), with its finished attempts.
    #[serde(flatten)]
    pub(crate) record: RunRecord,
    /// The process that supervises the run (none in markers of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) supervisor: Option<ProcId>,
    /// The attempt running now, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) group: Option<Group>,
}

/// A process, named so that a later process with the same pid is not taken for it: its pid,
/// its start (clock ticks after boot, from /proc) and the boot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcId {
    pub(crate) pid: i32,
    pub(crate) start: u64,
    pub(crate) boot: String,
}

impl ProcId {
    /// This process. Read from /proc once per process (its pid and start do not change
    /// while it runs), not at every run it supervises.
    pub(crate) fn me() -> ProcId {
        static ME: std::sync::OnceLock<ProcId> = std::sync::OnceLock::new();
        let pid = std::process::id() as i32;
        let me = ME.get_or_init(|| ProcId {
            pid,
            start: start_ticks(pid).unwrap_or(0),
            boot: boot_id(),
        });
        if me.pid == pid && me.start != 0 {
            return me.clone();
        }
        ProcId {
            pid,
            start: start_ticks(pid).unwrap_or(0),
            boot: boot_id(),
        }
    }

    /// Whether the process still runs (not a zombie, not a later process with its pid).
    pub(crate) fn alive(&self) -> bool {
        self.boot == boot_id() && start_ticks(self.pid) == Some(self.start)
    }
}

/// The process group of a running attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Group {
    pub(crate) pgid: i32,
    /// The start of its first process (whose pid is the group's id), in clock ticks after
    /// boot: a later group that reuses the id has another.
    pub(crate) leader_start: u64,
    pub(crate) boot: String,
    pub(crate) attempt: u32,
    /// When the attempt started, RFC 3339.
    pub(crate) started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) kill_grace_ms: u64,
    /// The run's id: without a cgroup, processes that left the group are found by it in
    /// their environment.
    #[serde(default)]
    pub(crate) run_id: String,
    /// The attempt's cgroup (cgroup containment): every process of the attempt, also those
    /// that left the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cgroup: Option<PathBuf>,
}

impl Group {
    /// Sends `sig` to every process of the attempt: its group, and each process of its
    /// cgroup (SIGKILL through `cgroup.kill`).
    pub(crate) fn signal(&self, sig: i32) {
        let _ = crate::sys::kill_group(self.pgid, sig);
        match &self.cgroup {
            Some(dir) => crate::contain::cgroup::signal_all(dir, sig),
            None => {
                for p in self.escaped() {
                    let _ = crate::sys::kill(p, sig);
                }
            }
        }
    }

    /// Without a cgroup: the processes of the run outside its group (setsid, double fork),
    /// found by the run id in their environment.
    fn escaped(&self) -> Vec<i32> {
        if self.run_id.is_empty() {
            return Vec::new();
        }
        let marker = format!("CRONWARDEN_RUN_ID={}", self.run_id);
        crate::contain::procs::carrying(marker.as_bytes())
            .iter()
            .filter(|p| p.pgid != self.pgid)
            .map(|p| p.pid)
            .collect()
    }

    /// The attempt is over: its cgroup (if any, and empty) goes.
    pub(crate) fn remove_cgroup(&self) {
        if let Some(dir) = &self.cgroup {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// When the attempt's time is up, if it has a timeout.
    pub(crate) fn deadline(&self) -> Option<Timestamp> {
        let started = self.started.parse::<Timestamp>().ok()?;
        let ms = i64::try_from(self.timeout_ms?).ok()?;
        started
            .checked_add(jiff::SignedDuration::from_millis(ms))
            .ok()
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }

    pub(crate) fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }

    /// Whether a process of the group still runs (zombies waiting for their new parent to
    /// reap them do not count), and the group is the attempt's, not a later one of that id.
    pub(crate) fn alive(&self) -> bool {
        if self.boot != boot_id() {
            return false;
        }
        if let Some(dir) = &self.cgroup {
            return crate::contain::cgroup::populated(dir);
        }
        if !self.escaped().is_empty() {
            return true;
        }
        if !crate::sys::group_exists(self.pgid) {
            return false;
        }
        // Its first process may have ended while others of the group run on.
        start_ticks(self.pgid).is_none_or(|s| s == self.leader_start) && has_live_member(self.pgid)
    }
}

impl Marker {
    /// The group of the attempt running now: the one the marker names, or, when its
    /// supervisor died between starting the attempt and naming its group, the group of the
    /// processes whose environment carries the run's id (`CRONWARDEN_RUN_ID`), the attempt's
    /// start read from /proc; `job` gives its timeout and `kill_grace` then.
    pub(crate) fn running_group(&self, job: Option<&crate::config::Job>) -> Option<Group> {
        if let Some(g) = &self.group {
            return Some(g.clone());
        }
        let (pgid, attempt) = find_run(&self.record.run_id)?;
        let leader_start = start_ticks(pgid)?;
        let started = started_at(leader_start)?;
        Some(Group {
            pgid,
            leader_start,
            boot: boot_id(),
            attempt: attempt.unwrap_or(self.record.attempts.len() as u32 + 1),
            started: started.to_string(),
            timeout_ms: job.and_then(|j| j.timeout).map(|t| t.as_millis() as u64),
            kill_grace_ms: job.map_or(10_000, |j| j.kill_grace.as_millis() as u64),
            run_id: self.record.run_id.clone(),
            cgroup: None,
        })
    }
}

/// The process group (and attempt number) of a live process whose environment carries
/// `CRONWARDEN_RUN_ID=run_id`.
fn find_run(run_id: &str) -> Option<(i32, Option<u32>)> {
    let needle = format!("CRONWARDEN_RUN_ID={run_id}");
    let p = crate::contain::procs::carrying(needle.as_bytes())
        .into_iter()
        .next()?;
    let env = fs::read(format!("/proc/{}/environ", p.pid)).ok()?;
    let attempt = env.split(|b| *b == 0).find_map(|v| {
        let n = v.strip_prefix(b"CRONWARDEN_ATTEMPT=")?;
        std::str::from_utf8(n).ok()?.parse().ok()
    });
    Some((p.pgid, attempt))
}

/// The wall-clock instant of a process start given in clock ticks after boot.
fn started_at(ticks: u64) -> Option<Timestamp> {
    use nix::unistd::{SysconfVar, sysconf};
    let hz = sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)? as f64;
    let uptime: f64 = fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let ago = (uptime - ticks as f64 / hz).max(0.0);
    Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs_f64(ago))
        .ok()
}

/// The most spare markers the running directory keeps.
const SPARES: u64 = 256;
/// How many spare slots a run's start or end looks at.
const PROBES: u64 = 16;

/// The file a run's marker is to be (got before the run's instant, while nothing is due):
/// a spare claimed for the run, or else a new empty file, under a hidden name of its own
/// (`.claimed.tmpPID.RUN_ID`), which [`RunMarker::start`] writes and renames into place.
/// Dropped unused (the run did not start), it becomes a spare.
pub(crate) struct MarkerFile {
    /// The marker's own path.
    path: PathBuf,
    /// The hidden file (`None` once used, or when none could be had).
    hidden: Option<PathBuf>,
    job: String,
}

impl MarkerFile {
    pub(crate) fn ready(state_dir: &Path, job: &str, run_id: &str) -> MarkerFile {
        let dir = running_dir(state_dir);
        let hidden = dir.join(format!(".claimed.tmp{}.{run_id}", std::process::id()));
        let claimed = slots(job)
            .map(|k| dir.join(format!(".spare{k}")))
            .any(|spare| fs::rename(spare, &hidden).is_ok());
        let made = claimed || new_empty(&dir, &hidden).is_ok();
        MarkerFile {
            path: path(state_dir, run_id),
            hidden: made.then_some(hidden),
            job: job.to_string(),
        }
    }
}

impl Drop for MarkerFile {
    fn drop(&mut self) {
        if let Some(hidden) = self.hidden.take() {
            stash(&hidden, &self.job);
        }
    }
}

/// A new empty file, only this user's (its directory made if need be).
fn new_empty(dir: &Path, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    crate::files::ensure_dir(dir)?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

/// The marker of a run this process supervises; removed when the run is recorded.
pub(crate) struct RunMarker {
    path: PathBuf,
    marker: Marker,
}

impl RunMarker {
    /// Writes the marker of a run that starts, into `file` (made ready for the run):
    /// `record` is the run as it would be recorded if this process died now.
    pub(crate) fn start(mut file: MarkerFile, record: RunRecord) -> RunMarker {
        let m = RunMarker {
            path: std::mem::take(&mut file.path),
            marker: Marker {
                record,
                supervisor: Some(ProcId::me()),
                group: None,
            },
        };
        let written = line(&m.marker).and_then(|line| {
            if let Some(hidden) = file.hidden.take() {
                if reuse(&hidden, &line, &m.path).is_ok() {
                    return Ok(());
                }
                // Not a marker: it goes, and the marker is made as a new file.
                let _ = fs::remove_file(&hidden);
            }
            crate::files::write_replace(&m.path, &line)
        });
        // Best effort (see the module's doc).
        drop(written);
        m
    }

    /// An attempt's process group started: the marker names it and its deadline.
    pub(crate) fn attempt_started(
        &mut self,
        pgid: i32,
        attempt: u32,
        timeout: Option<Duration>,
        kill_grace: Duration,
        cgroup: Option<PathBuf>,
    ) {
        self.marker.group = Some(Group {
            run_id: self.marker.record.run_id.clone(),
            cgroup,
            pgid,
            leader_start: start_ticks(pgid).unwrap_or(0),
            boot: boot_id(),
            attempt,
            started: Timestamp::now().to_string(),
            timeout_ms: timeout.map(|t| t.as_millis() as u64),
            kill_grace_ms: kill_grace.as_millis() as u64,
        });
        self.write();
    }

    /// An attempt ended (kept for the marker's next write).
    pub(crate) fn attempt_ended(&mut self, attempt: AttemptRecord) {
        self.marker.group = None;
        self.marker.record.attempts.push(attempt);
    }

    /// The marker's new version, appended as a line (to the marker [`RunMarker::start`]
    /// made: none is created here).
    fn write(&self) {
        use std::io::Write;
        let Ok(line) = line(&self.marker) else {
            return;
        };
        use std::os::unix::fs::OpenOptionsExt;
        let opened = fs::OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path);
        if let Ok(mut f) = opened {
            let _ = f.write_all(&line);
        }
    }

    /// The run is recorded: the marker goes (kept as a spare where a slot is free).
    pub(crate) fn remove(self) {
        stash(&self.path, &self.marker.record.job);
    }
}

/// Keeps the file at `path` as a spare for runs of `job` where a slot is free; else it goes.
fn stash(path: &Path, job: &str) {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    if let Some(dir) = path.parent() {
        for k in slots(job) {
            let spare = dir.join(format!(".spare{k}"));
            match renameat2(
                AT_FDCWD,
                path,
                AT_FDCWD,
                &spare,
                RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => return,
                Err(nix::errno::Errno::EEXIST) => continue,
                // No such rename here (a file system without it), or the file is gone:
                // removed below.
                Err(_) => break,
            }
        }
    }
    let _ = fs::remove_file(path);
}

/// The spare slots a run of `job` looks at, in order: from one given by the job's name, so
/// that a job's run usually finds the spare its last run left, and runs of different jobs
/// started at once look at different slots first.
fn slots(job: &str) -> impl Iterator<Item = u64> {
    let h = job
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (0..PROBES).map(move |i| (h + i) % SPARES)
}

/// A claimed file made the marker `line` (written from its start and cut to its length:
/// nobody reads a claimed file), then renamed to `path`.
fn reuse(claimed: &Path, line: &[u8], path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let (f, _) = crate::files::open_regular(claimed)?;
    f.write_all_at(line, 0)?;
    f.set_len(line.len() as u64)?;
    fs::rename(claimed, path)
}

pub(crate) fn running_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("running")
}

pub(crate) fn path(state_dir: &Path, run_id: &str) -> PathBuf {
    running_dir(state_dir).join(format!("{run_id}.json"))
}

/// Reads a marker.
pub(crate) fn read(path: &Path) -> Option<Marker> {
    parse(&fs::read(path).ok()?)
}

/// A marker's text: the last complete line that reads (a line without its newline, cut
/// short or still being written, does not count); a marker of an older version (one
/// object, no newline) whole.
fn parse(text: &[u8]) -> Option<Marker> {
    let Some(end) = text.iter().rposition(|b| *b == b'\n') else {
        return serde_json::from_slice(text).ok();
    };
    text[..end]
        .split(|b| *b == b'\n')
        .rev()
        .find_map(|l| serde_json::from_slice(l).ok())
}

/// A marker as one line of its file.
fn line(m: &Marker) -> std::io::Result<Vec<u8>> {
    let mut text = serde_json::to_vec(m).map_err(std::io::Error::other)?;
    text.push(b'\n');
    Ok(text)
}

/// Writes a marker whole (atomically: a temporary file renamed over it).
pub(crate) fn write(path: &Path, m: &Marker) -> std::io::Result<()> {
    crate::files::write_replace(path, &line(m)?)
}

/// The markers in the state directory. A marker's temporary file (before its rename) whose
/// writer is gone (or is no cronwarden) is removed: the run it was for never started.
pub(crate) fn list(state_dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(running_dir(state_dir)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            if let Some(pid) = temp_writer(&name)
                && !same_program(pid)
            {
                let _ = fs::remove_file(e.path());
            }
        } else if name.ends_with(".json") {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

/// The pid in the name of a temporary file of `files::write_replace`: `.NAME.tmpPID.N`.
fn temp_writer(name: &str) -> Option<i32> {
    let (_, rest) = name.rsplit_once(".tmp")?;
    rest.split('.').next()?.parse().ok()
}

/// Whether a process of group `pgid` is alive (not a zombie), from /proc.
fn has_live_member(pgid: i32) -> bool {
    crate::contain::procs::all()
        .iter()
        .any(|p| p.pgid == pgid && !p.zombie)
}

/// The start of a live process, in clock ticks after boot (field 22 of /proc/PID/stat);
/// `None` when it is gone or a zombie.
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    crate::contain::procs::one(pid)
        .filter(|p| !p.zombie)
        .map(|p| p.start)
}

/// Whether process `pid` runs the same program as this one (by its name).
fn same_program(pid: i32) -> bool {
    let comm = |p: &str| fs::read_to_string(format!("/proc/{p}/comm")).ok();
    start_ticks(pid).is_some() && comm(&pid.to_string()) == comm("self")
}

/// This boot's id, read once per process (it cannot change while the process runs); empty
/// when it cannot be read (then read again the next time).
fn boot_id() -> String {
    static BOOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(b) = BOOT.get() {
        return b.clone();
    }
    let read = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if read.is_empty() {
        return read;
    }
    BOOT.get_or_init(|| read).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_named_across_pid_reuse() {
        let me = ProcId::me();
        assert!(me.start > 0);
        assert!(me.alive());
        let other = ProcId {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(!other.alive());
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id() as i32;
        child.wait().expect("wait");
        assert_eq!(start_ticks(pid), None);
    }

    #[test]
    fn an_attempt_appends_its_line_and_a_line_cut_short_does_not_count() {
        let state = std::env::temp_dir().join(format!("cw-marker-{}", std::process::id()));
        let _ = fs::remove_dir_all(&state);
        let old = r#"{"run_id":"r1","job":"j","scheduled":"2026-01-01T00:00:00+00:00","started":"2026-01-01T00:00:00Z","ended":"","duration_ms":0,"attempts":[],"outcome":"lost","trigger":"schedule"}"#;
        let rec: Marker = serde_json::from_str(old).expect("a record");
        let mut m = RunMarker::start(
            MarkerFile::ready(&state, "j", &rec.record.run_id),
            rec.record,
        );
        let p = path(&state, "r1");
        let first = read(&p).expect("the marker at the start");
        assert!(first.group.is_none() && first.supervisor == Some(ProcId::me()));
        let me = std::process::id() as i32;
        let ms = Duration::from_millis;
        m.attempt_started(me, 1, Some(ms(5000)), ms(100), None);
        let text = fs::read(&p).expect("read");
        assert_eq!(
            text.iter().filter(|b| **b == b'\n').count(),
            2,
            "one line each"
        );
        let g = read(&p).and_then(|m| m.group).expect("the attempt's group");
        assert_eq!((g.pgid, g.attempt, g.timeout_ms), (me, 1, Some(5000)));
        // A writer killed in the middle of its line (or a line read while it is written):
        // the marker is the line before it, never a mix.
        let mut cut = text.clone();
        cut.extend_from_slice(&text[..text.len() / 3]);
        fs::write(&p, &cut).expect("write");
        assert_eq!(read(&p).and_then(|m| m.group).map(|g| g.pgid), Some(me));
        let cut_first = &text[..text.iter().position(|b| *b == b'\n').expect("a line") + 5];
        fs::write(&p, cut_first).expect("write");
        assert!(read(&p).expect("the first line").group.is_none());
        // Taken over: written whole again, one line.
        write(&p, &first).expect("rewritten");
        assert!(fs::read(&p).expect("read").ends_with(b"}\n"));
        assert_eq!(read(&p).map(|m| m.record.run_id), Some("r1".to_string()));
        m.remove();
        assert!(!p.exists());
        let _ = fs::remove_dir_all(&state);
    }

    #[test]
    fn an_ended_marker_is_kept_as_a_spare_that_the_next_run_reuses_whole() {
        use std::os::unix::fs::MetadataExt;
        let state = std::env::temp_dir().join(format!("cw-spare-{}", std::process::id()));
        let _ = fs::remove_dir_all(&state);
        let rec = |id: &str| -> RunRecord {
            let text = format!(
                r#"{{"run_id":"{id}","job":"j","scheduled":"2026-01-01T00:00:00+00:00","started":"2026-01-01T00:00:00Z","ended":"","duration_ms":0,"attempts":[],"outcome":"lost","trigger":"schedule"}}"#
            );
            serde_json::from_str::<Marker>(&text)
                .expect("a record")
                .record
        };
        let me = std::process::id() as i32;
        let ms = Duration::from_millis;
        // A long first run: three attempts' lines.
        let mut m = RunMarker::start(
            MarkerFile::ready(&state, "j", "a-long-first-run-id"),
            rec("a-long-first-run-id"),
        );
        let first = path(&state, "a-long-first-run-id");
        let inode = fs::metadata(&first).expect("the marker").ino();
        for n in 1..=3 {
            m.attempt_started(me, n, Some(ms(5000)), ms(100), None);
        }
        m.remove();
        assert!(!first.exists());
        assert_eq!(list(&state), Vec::<PathBuf>::new(), "a spare is no marker");
        // The next run's marker is that file, with nothing of the first run left in it.
        let mut m = RunMarker::start(MarkerFile::ready(&state, "j", "r2"), rec("r2"));
        let second = path(&state, "r2");
        assert_eq!(fs::metadata(&second).expect("marker").ino(), inode);
        let text = fs::read(&second).expect("read");
        assert_eq!(text.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let read_back = read(&second).expect("the new marker");
        assert!(read_back.group.is_none() && read_back.record.run_id == "r2");
        m.attempt_started(me, 1, Some(ms(7000)), ms(100), None);
        let g = read(&second).and_then(|m| m.group).expect("its attempt");
        assert_eq!((g.attempt, g.timeout_ms), (1, Some(7000)));
        assert_eq!(list(&state), vec![second.clone()]);
        m.remove();
        // A claimed spare whose writer is gone is cleaned up like a temporary file.
        let dead = running_dir(&state).join(".claimed.tmp999999999.r3");
        fs::write(&dead, b"x").expect("write");
        assert!(list(&state).is_empty() && !dead.exists());
        let _ = fs::remove_dir_all(&state);
    }

    #[test]
    fn old_markers_read_and_temporary_names_give_their_writer() {
        let old = r#"{"run_id":"r","job":"j","scheduled":"2026-01-01T00:00:00+00:00","started":"2026-01-01T00:00:00Z","ended":"","duration_ms":0,"attempts":[],"outcome":"lost","trigger":"schedule"}"#;
        let m: Marker = serde_json::from_str(old).expect("an old marker");
        assert!(m.supervisor.is_none() && m.group.is_none());
        assert_eq!(m.record.run_id, "r");
        assert_eq!(temp_writer(".r.json.tmp4242.0"), Some(4242));
        assert_eq!(temp_writer(".adopt.lock"), None);
    }
}
