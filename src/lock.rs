//! Per-job locks: `lock_dir/JOB.lock`, held with flock(2) for a whole run, retries included.
//!
//! The daemon and every `cronwarden run` use the same file, so they exclude each other. The
//! lock's descriptor is inherited by the job's processes: if the runner dies while the job
//! runs, the job keeps the lock and nothing starts a second copy. The kernel releases it when
//! the last holder exits. The file is never deleted (deleting a held lock file would let a
//! second run lock a new file of the same name); it holds a line naming the current holder.
//! Within one process, [`Registry`] (in `lock/registry.rs`) records which jobs its runs hold,
//! so that a lock file removed from under a run does not let the same process start a second
//! copy, and puts removed lock files back.

mod registry;

pub(crate) use registry::Registry;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// The holder line is padded to this many bytes.
const HOLDER_WIDTH: usize = 256;

/// Who holds a lock, as written in its file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Holder {
    pub pid: Option<i32>,
    /// The process group of the running job (for `overlap = "replace"`).
    pub pgid: Option<i32>,
    pub since: Option<String>,
    pub run_id: Option<String>,
}

impl Holder {
    fn parse(text: &str) -> Holder {
        let mut h = Holder::default();
        for word in text.split_whitespace() {
            match word.split_once('=') {
                Some(("pid", v)) => h.pid = v.parse().ok(),
                Some(("pgid", v)) => h.pgid = v.parse().ok(),
                Some(("since", v)) => h.since = Some(v.to_string()),
                Some(("run_id", v)) => h.run_id = Some(v.to_string()),
                _ => {}
            }
        }
        h
    }

    fn line(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = self.pid {
            parts.push(format!("pid={p}"));
        }
        if let Some(p) = self.pgid {
            parts.push(format!("pgid={p}"));
        }
        if let Some(s) = &self.since {
            parts.push(format!("since={s}"));
        }
        if let Some(r) = &self.run_id {
            parts.push(format!("run_id={r}"));
        }
        parts.join(" ") + "\n"
    }

    /// "pid 123 since 2026-11-25T03:00:00Z (run r-1)" for messages.
    pub(crate) fn describe(&self) -> String {
        let mut s = match self.pid {
            Some(p) => format!("pid {p}"),
            None => "another process".to_string(),
        };
        if let Some(since) = &self.since {
            s.push_str(&format!(" since {since}"));
        }
        if let Some(r) = &self.run_id {
            s.push_str(&format!(" (run {r})"));
        }
        s
    }
}

/// A held job lock. Dropping it unlocks it and closes this process's descriptor (and takes
/// it out of the [`Registry`] it was taken through). Until then the job's processes hold it
/// too, through the descriptor they inherit: should the supervisor die, the lock stays held
/// until they have exited.
#[derive(Debug)]
pub(crate) struct JobLock {
    /// Shared with the [`Registry`]'s entry for the job (one descriptor, not two: every
    /// descriptor the daemon holds is copied into each child it starts and closed again at
    /// the child's exec).
    file: std::sync::Arc<File>,
    registered: Option<registry::Registered>,
    /// Unlock when dropped (not when the lock lives on in [`JobLock::into_file`]'s copy).
    unlock: bool,
}

pub(crate) enum Acquired {
    Locked(JobLock),
    /// Another process holds it.
    Held(Holder),
    /// Another run of this very process holds it (see [`Registry`]).
    Own(Holder),
}

pub(crate) fn lock_path(lock_dir: &Path, job: &str) -> PathBuf {
    lock_dir.join(format!("{job}.lock"))
}

fn open(lock_dir: &Path, job: &str) -> io::Result<File> {
    crate::files::ensure_dir(lock_dir)?;
    let path = lock_path(lock_dir, job);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)?;
    Ok(file)
}

fn read_holder(file: &File) -> Holder {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; 4096];
    let mut len = 0;
    while len < buf.len() {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    Holder::parse(&String::from_utf8_lossy(&buf[..len]))
}

/// Takes the job's lock if it is free; otherwise says who holds it.
pub(crate) fn try_acquire(lock_dir: &Path, job: &str) -> io::Result<Acquired> {
    let file = open(lock_dir, job)?;
    match file.try_lock() {
        Ok(()) => Ok(Acquired::Locked(JobLock::new(file))),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Acquired::Held(read_holder(&file))),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Whether the job's lock is held now, and by whom. Read from /proc/locks, without taking
/// the lock even for a moment (a probe that took it could make a scheduled run skip).
pub(crate) fn held_by(lock_dir: &Path, job: &str) -> Option<Holder> {
    use std::os::unix::fs::MetadataExt;
    let path = lock_path(lock_dir, job);
    let meta = std::fs::metadata(&path).ok()?;
    let (dev, ino) = (meta.dev(), meta.ino());
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let id = format!("{major:02x}:{minor:02x}:{ino}");
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let held = locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&id.as_str())
    });
    if !held {
        return None;
    }
    let file = File::open(&path).ok()?;
    Some(read_holder(&file))
}

/// Waits for the job's lock. `cancelled` is polled a few times a second; when it returns
/// true the wait ends with `Ok(None)`.
pub(crate) fn acquire_wait(
    lock_dir: &Path,
    job: &str,
    cancelled: &dyn Fn() -> bool,
) -> io::Result<Option<JobLock>> {
    let file = open(lock_dir, job)?;
    match file.try_lock() {
        Ok(()) => {
            return Ok(Some(JobLock::new(file)));
        }
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    // A blocking flock on a duplicate of the descriptor (same open file description, so the
    // lock it takes is ours) in a helper thread; this thread stays free to notice a cancel.
    let dup = file.try_clone()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(dup.lock());
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(())) => {
                return Ok(Some(JobLock::new(file)));
            }
            Ok(Err(e)) => return Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if cancelled() {
                    return Ok(None);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("lock wait thread ended"));
            }
        }
    }
}

/// Writes the holder line into a lock file.
fn write_holder(file: &File, holder: &Holder) {
    use std::os::unix::fs::FileExt;
    // Overwrite in place, padded to a fixed width: no truncate (it costs a journal write on
    // some file systems), and a shorter line never leaves a stale tail behind.
    let line = holder.line();
    let width = line.len().max(HOLDER_WIDTH);
    let padded = format!("{:<w$}\n", line.trim_end(), w = width - 1);
    if file.write_all_at(padded.as_bytes(), 0).is_ok()
        && let Ok(meta) = file.metadata()
        && meta.len() > padded.len() as u64
    {
        let _ = file.set_len(padded.len() as u64);
    }
}

impl JobLock {
    fn new(file: File) -> JobLock {
        JobLock {
            file: std::sync::Arc::new(file),
            registered: None,
            unlock: true,
        }
    }

    /// The lock as a plain descriptor that keeps holding it (a duplicate of the locked one;
    /// the lock is let go when the last such descriptor is closed).
    pub(crate) fn into_file(mut self) -> io::Result<File> {
        self.unlock = false;
        self.file.try_clone()
    }

    /// Records the holder in the lock file (for messages and `replace`), and in the lock file
    /// put back for this run if the first one was removed.
    pub(crate) fn set_holder(&mut self, holder: &Holder) {
        write_holder(&self.file, holder);
        if let Some(r) = &self.registered {
            r.set_holder(holder);
        }
    }

    /// The descriptor the job's processes inherit.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        if let Some(r) = self.registered.take() {
            r.release();
        }
        // Unlocked, not only closed: a process the run let go of (`leftovers = "keep"`)
        // still has the inherited descriptor, and must not hold the job. (A supervisor that
        // dies never gets here: then the job's processes keep holding it.)
        if self.unlock {
            let _ = self.file.unlock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_locker_sees_the_holder() {
        let dir = std::env::temp_dir().join(format!("cw-lock-{}", std::process::id()));
        let mut first = match try_acquire(&dir, "j").expect("lock") {
            Acquired::Locked(l) => l,
            Acquired::Held(_) | Acquired::Own(_) => panic!("fresh lock is free"),
        };
        first.set_holder(&Holder {
            pid: Some(42),
            pgid: Some(43),
            since: Some("2026-01-01T00:00:00Z".into()),
            run_id: Some("r1".into()),
        });
        match try_acquire(&dir, "j").expect("lock") {
            Acquired::Held(h) => {
                assert_eq!(h.describe(), "pid 42 since 2026-01-01T00:00:00Z (run r1)");
                assert_eq!(h.pgid, Some(43));
            }
            Acquired::Locked(_) | Acquired::Own(_) => panic!("held by another open file"),
        }
        drop(first);
        assert!(matches!(
            try_acquire(&dir, "j").expect("lock"),
            Acquired::Locked(_)
        ));
        // The file stays: deleting a lock file is never safe.
        assert!(lock_path(&dir, "j").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
