//! The daemon's own files in the state directory: the last dispatched instant of each job
//! (so that a restart neither reruns nor skips one), the boot id (`@reboot`), and pauses.
//! (The marker of each run in progress is the run path's: `execute::marker`.)

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;

use crate::log::{Level, Logger};
use crate::sync::lock;

fn mark_path(state: &Path, job: &str) -> PathBuf {
    state.join("marks").join(job)
}

/// The last dispatched instant of every job.
pub(super) fn read_marks(state: &Path) -> HashMap<String, Timestamp> {
    let mut out = HashMap::new();
    if let Ok(dir) = fs::read_dir(state.join("marks")) {
        for e in dir.flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if let Some(t) = fs::read_to_string(e.path())
                .ok()
                .and_then(|t| t.trim().parse::<Timestamp>().ok())
            {
                out.insert(name, t);
            }
        }
    }
    out
}

pub(super) fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// The dispatch marks: the last dispatched instant per job, written in order.
pub(super) struct Marks {
    state_dir: PathBuf,
    last: Mutex<HashMap<String, Arc<Mutex<Option<Timestamp>>>>>,
}

impl Marks {
    pub(super) fn new(state_dir: &Path) -> Marks {
        Marks {
            state_dir: state_dir.to_path_buf(),
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Records `at` as the job's last dispatched instant, never backwards, before the run
    /// starts: after a crash of the daemon, no instant runs twice. (When it cannot be
    /// written, the run goes on all the same: `health`.) The job's mark file is created once
    /// and then rewritten in place (`files::write_small`: one write, never torn by the
    /// death of the daemon; marks are read only when a daemon starts), not replaced: no new
    /// file, no rename, no flush per job and instant (issue 21).
    /// No fsync on this hot path: a crashed process loses nothing the kernel has; only a
    /// power loss can take the newest marks back, and then those instants count as missed
    /// (`catchup`).
    pub(super) fn mark(&self, job: &str, at: Timestamp) -> Result<(), String> {
        let slot = Arc::clone(lock(&self.last).entry(job.to_string()).or_default());
        let mut last = lock(&slot);
        if last.is_some_and(|l| l >= at) {
            return Ok(());
        }
        crate::files::write_small(&mark_path(&self.state_dir, job), at.to_string().as_bytes())
            .map_err(|e| {
                format!(
                    "cannot record the dispatch of {at} in {}: {e}",
                    self.state_dir.display()
                )
            })?;
        *last = Some(at);
        Ok(())
    }
}

/// The jobs paused on this host (one file each in `state_dir/paused/`, so a pause survives
/// restarts).
pub(super) struct Paused {
    state_dir: PathBuf,
    set: Mutex<HashSet<String>>,
}

impl Paused {
    pub(super) fn load(state_dir: &Path) -> Paused {
        Paused {
            state_dir: state_dir.to_path_buf(),
            set: Mutex::new(crate::coord::read_paused(state_dir)),
        }
    }

    pub(super) fn contains(&self, job: &str) -> bool {
        lock(&self.set).contains(job)
    }

    /// Pauses or resumes a job's schedule.
    pub(super) fn set(&self, job: &str, paused: bool, log: &Logger) -> std::io::Result<()> {
        crate::coord::write_paused(&self.state_dir, job, paused)?;
        if paused {
            lock(&self.set).insert(job.to_string());
        } else {
            lock(&self.set).remove(job);
        }
        let event = if paused { "pause" } else { "resume" };
        log.log(Level::Info, event, &[("job", job.to_string())], "");
        Ok(())
    }
}
