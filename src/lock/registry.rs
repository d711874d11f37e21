//! The job locks this process holds, by job name.
//!
//! A flock lives on a file, and a file can be removed while it is locked: after
//! `rm -rf lock_dir` the next run of a job opens a new `JOB.lock`, locks it at once, and a
//! second copy starts beside the first. Whether one of this process's runs holds a job must
//! not depend on a file surviving, so every lock taken through the [`Registry`] is recorded
//! here until its [`JobLock`] is dropped, and every acquisition looks here first (and
//! leaves a placeholder for the job while it takes the flock). [`Registry::keep`] (called at
//! the daemon's wake-ups) notices a removed `lock_dir` or lock file, creates it again and
//! locks the new file for the run that holds the job, so that other processes (`cronwarden
//! run`) see the job as held too.
//!
//! The mutex is not held across a lock file's open, flock or descriptor copy: a run that
//! goes for a job first puts a placeholder entry in (so that a second run of the same job in
//! this process meets `Own` as before), then opens and locks the file without the mutex,
//! then fills the entry in (or takes it out). When 100 jobs are due at the same instant,
//! their lock takings no longer queue on the one mutex.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{Acquired, Holder, JobLock, lock_path, read_holder, write_holder};
use crate::log::{Level, Logger};
use crate::sync::lock;

/// How often a wait for this process's own run looks at its `cancelled` callback.
const POLL: Duration = Duration::from_millis(200);

/// The jobs held by this process's runs. One per process, shared by all its runs.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    held: Mutex<HashMap<String, Entry>>,
    freed: Condvar,
    next_id: AtomicU64,
    /// `lock_dir` and its identity (device, inode) when last looked at.
    dir: Mutex<Option<(PathBuf, (u64, u64))>>,
    /// A lock file was ever created again for a run (an entry has `again`): until then a
    /// holder line has no second file to go to, and [`Registered::set_holder`] (three
    /// times per run) does not take the mutex.
    recreated: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    /// The held lock file (the [`JobLock`]'s descriptor, shared): its holder line, and whether
    /// `lock_dir/JOB.lock` still names it. `None` while the run that put the entry in is
    /// still opening and locking it.
    file: Option<Arc<File>>,
    /// The lock file created again (and locked) for this run after the first was removed.
    again: Option<File>,
    /// A problem with putting the lock file back was logged (once per run).
    reported: bool,
}

/// What a registered [`JobLock`] needs to leave the registry when dropped.
#[derive(Debug)]
pub(super) struct Registered {
    registry: Arc<Registry>,
    job: String,
    id: u64,
}

impl Registered {
    pub(super) fn release(self) {
        let mut held = lock(&self.registry.held);
        let entry = held
            .get(&self.job)
            .is_some_and(|e| e.id == self.id)
            .then(|| held.remove(&self.job));
        drop(held);
        // Its descriptors are closed without the mutex held.
        drop(entry);
        self.registry.freed.notify_all();
    }

    pub(super) fn set_holder(&self, holder: &Holder) {
        if !self.registry.recreated.load(Ordering::Acquire) {
            return;
        }
        if let Some(f) = lock(&self.registry.held)
            .get(&self.job)
            .filter(|e| e.id == self.id)
            .and_then(|e| e.again.as_ref())
        {
            write_holder(f, holder);
        }
    }
}

impl Entry {
    fn placeholder(id: u64) -> Entry {
        Entry {
            id,
            file: None,
            again: None,
            reported: false,
        }
    }
}

/// The holder of a job one of this process's runs holds (or is taking: then this process).
fn own_holder(e: &mut Entry) -> Holder {
    match e.file.as_deref() {
        Some(f) => read_holder(f),
        None => Holder {
            pid: Some(std::process::id() as i32),
            ..Holder::default()
        },
    }
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

impl Registry {
    /// Takes the job's lock unless a run of this process (`Own`) or another process (`Held`)
    /// holds it. The file is opened and locked outside the mutex, under a placeholder entry.
    pub(crate) fn try_acquire(self: &Arc<Self>, dir: &Path, job: &str) -> io::Result<Acquired> {
        let id = {
            let mut held = lock(&self.held);
            if let Some(e) = held.get_mut(job) {
                return Ok(Acquired::Own(own_holder(e)));
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            held.insert(job.to_string(), Entry::placeholder(id));
            id
        };
        let got = super::try_acquire(dir, job).map(|a| match a {
            Acquired::Locked(l) => {
                let shared = Arc::clone(&l.file);
                (Acquired::Locked(l), Some(shared))
            }
            other => (other, None),
        });
        let mut held = lock(&self.held);
        match got {
            Ok((Acquired::Locked(mut l), Some(dup))) => {
                if let Some(e) = held.get_mut(job).filter(|e| e.id == id) {
                    e.file = Some(dup);
                }
                l.registered = Some(self.registered(job, id));
                Ok(Acquired::Locked(l))
            }
            other => {
                if held.get(job).is_some_and(|e| e.id == id) {
                    held.remove(job);
                }
                drop(held);
                self.freed.notify_all();
                other.map(|(a, _)| a)
            }
        }
    }

    /// Waits for the job's lock: first until no run of this process holds it, then for the
    /// flock. `Ok(None)` once `cancelled` returns true.
    pub(crate) fn acquire_wait(
        self: &Arc<Self>,
        dir: &Path,
        job: &str,
        cancelled: &dyn Fn() -> bool,
    ) -> io::Result<Option<JobLock>> {
        loop {
            if !self.wait_own(job, cancelled) {
                return Ok(None);
            }
            let Some(l) = super::acquire_wait(dir, job, cancelled)? else {
                return Ok(None);
            };
            let dup = Arc::clone(&l.file);
            let mut held = lock(&self.held);
            if held.contains_key(job) {
                // Another run of this process took the job meanwhile (on a lock file created
                // again after a removal): wait for it.
                drop(held);
                drop(l);
                continue;
            }
            return Ok(Some(self.register(&mut held, job, l, dup)));
        }
    }

    /// Waits until no run of this process holds the job; false once `cancelled` says so.
    pub(crate) fn wait_own(&self, job: &str, cancelled: &dyn Fn() -> bool) -> bool {
        let mut held = lock(&self.held);
        while held.contains_key(job) {
            if cancelled() {
                return false;
            }
            held = match self.freed.wait_timeout(held, POLL) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    fn register(
        self: &Arc<Self>,
        held: &mut HashMap<String, Entry>,
        job: &str,
        mut l: JobLock,
        dup: Arc<File>,
    ) -> JobLock {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut e = Entry::placeholder(id);
        e.file = Some(dup);
        held.insert(job.to_string(), e);
        l.registered = Some(self.registered(job, id));
        l
    }

    fn registered(self: &Arc<Self>, job: &str, id: u64) -> Registered {
        Registered {
            registry: Arc::clone(self),
            job: job.to_string(),
            id,
        }
    }

    /// Puts back what was removed from under this process's runs: `lock_dir` itself, and
    /// the lock file of every job a run holds (created again and locked for that run). Each
    /// repair is logged, and so is a lock file that another process created and locked in
    /// the meantime (a second copy of the job may be running there).
    pub(crate) fn keep(&self, dir: &Path, log: &Logger) {
        self.keep_dir(dir, log);
        let mut held = lock(&self.held);
        for (job, e) in held.iter_mut().filter(|(_, e)| e.file.is_some()) {
            keep_file(dir, job, e, log);
        }
        if held.values().any(|e| e.again.is_some()) {
            self.recreated.store(true, Ordering::Release);
        }
    }

    /// Notices a removed or replaced `lock_dir` (and creates a removed one again).
    fn keep_dir(&self, dir: &Path, log: &Logger) {
        let mut seen = lock(&self.dir);
        let before = seen.as_ref().filter(|(p, _)| p == dir).map(|(_, id)| *id);
        // Formatted only for a message: an idle wake-up that finds the directory in place
        // runs no formatting code.
        let f = || [("lock_dir", dir.display().to_string())];
        let now = match std::fs::metadata(dir) {
            Ok(m) => {
                let now = identity(&m);
                if before.is_some_and(|b| b != now) {
                    // Removed, and created again by a run that needed a lock file.
                    let msg = "lock_dir was removed and created again since the last look";
                    log.log(Level::Warn, "lock", &f(), msg);
                }
                Some(now)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match crate::files::ensure_dir(dir).and_then(|()| std::fs::metadata(dir)) {
                    Ok(m) => {
                        if before.is_some() {
                            let msg = "lock_dir was removed; created it again";
                            log.log(Level::Warn, "lock", &f(), msg);
                        }
                        Some(identity(&m))
                    }
                    Err(e) => {
                        let msg = format!("lock_dir was removed and cannot be created again: {e}");
                        log.log(Level::Error, "lock", &f(), &msg);
                        None
                    }
                }
            }
            Err(_) => None,
        };
        if before != now || seen.is_none() != now.is_none() {
            *seen = now.map(|id| (dir.to_path_buf(), id));
        }
    }
}

/// Makes sure `lock_dir/JOB.lock` still names a file locked for the run that holds `job`.
fn keep_file(dir: &Path, job: &str, e: &mut Entry, log: &Logger) {
    let path = lock_path(dir, job);
    let named = std::fs::metadata(&path).ok().map(|m| identity(&m));
    let ours = [e.file.as_deref(), e.again.as_ref()]
        .into_iter()
        .flatten()
        .any(|f| f.metadata().ok().map(|m| identity(&m)) == named);
    if named.is_some() && ours {
        return;
    }
    let holder = own_holder(e);
    let mut f = vec![
        ("job", job.to_string()),
        ("path", path.display().to_string()),
    ];
    if let Some(r) = &holder.run_id {
        f.push(("run_id", r.clone()));
    }
    match super::try_acquire(dir, job) {
        Ok(Acquired::Locked(l)) => {
            write_holder(&l.file, &holder);
            // Keep the new file's descriptor, still locked, with the run.
            match l.into_file() {
                Ok(file) => e.again = Some(file),
                Err(err) => {
                    let msg = format!("cannot keep the lock file created again: {err}");
                    log.log(Level::Error, "lock", &f, &msg);
                }
            }
            let msg = "the job's lock file was removed while a run holds the job; created it \
                       again and locked it for that run";
            log.log(Level::Warn, "lock", &f, msg);
        }
        Ok(Acquired::Held(h) | Acquired::Own(h)) if !e.reported => {
            e.reported = true;
            let msg = format!(
                "the job's lock file was removed while a run holds the job, and another \
                 process has created and locked a new one: {}; it may run a second copy",
                h.describe()
            );
            log.log(Level::Error, "lock", &f, &msg);
        }
        Err(err) if !e.reported => {
            e.reported = true;
            let msg = format!("the job's lock file was removed and cannot be created again: {err}");
            log.log(Level::Error, "lock", &f, &msg);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cw-registry-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_removed_lock_file_does_not_free_the_job_within_the_process() {
        let dir = temp("removed");
        let reg = Arc::new(Registry::default());
        let Ok(Acquired::Locked(first)) = reg.try_acquire(&dir, "j") else {
            panic!("a fresh lock is free");
        };
        std::fs::remove_dir_all(&dir).expect("remove lock_dir");
        // A new file of the same name would lock at once; the registry still says no.
        assert!(matches!(reg.try_acquire(&dir, "j"), Ok(Acquired::Own(_))));
        // The wake-up puts the file back and locks it: another process sees it held.
        let log = Logger::stderr();
        reg.keep(&dir, &log);
        assert!(matches!(
            super::super::try_acquire(&dir, "j"),
            Ok(Acquired::Held(_))
        ));
        drop(first);
        assert!(matches!(
            reg.try_acquire(&dir, "j"),
            Ok(Acquired::Locked(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_waiter_gets_the_job_when_the_run_of_this_process_ends() {
        let dir = temp("wait");
        let reg = Arc::new(Registry::default());
        let Ok(Acquired::Locked(first)) = reg.try_acquire(&dir, "j") else {
            panic!("a fresh lock is free");
        };
        let r2 = Arc::clone(&reg);
        let d2 = dir.clone();
        let waiter = std::thread::spawn(move || {
            r2.acquire_wait(&d2, "j", &|| false)
                .expect("wait")
                .is_some()
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(first);
        assert!(waiter.join().expect("thread"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
