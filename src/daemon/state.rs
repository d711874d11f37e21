//! The daemon's own files in the state directory: the last dispatched instant of each job
//! (so that a restart neither reruns nor skips one), a marker per run in progress (so that
//! a run the daemon died during is recorded as lost), the boot id (`@reboot`), and pauses.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;

use crate::log::{Level, Logger};
use crate::record::{self, Outcome, RunRecord};
use crate::sync::lock;

fn mark_path(state: &Path, job: &str) -> PathBuf {
    state.join("marks").join(job)
}

fn running_dir(state: &Path) -> PathBuf {
    state.join("running")
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

/// Runs that were in progress when a previous daemon died: recorded as lost (and returned,
/// to be alerted).
pub(super) fn recover_lost(state: &Path, keep: usize, log: &Logger) -> Vec<RunRecord> {
    let mut lost = Vec::new();
    let Ok(dir) = fs::read_dir(running_dir(state)) else {
        return lost;
    };
    for e in dir.flatten() {
        let path = e.path();
        // The temporary file of a marker whose write a crash cut short (before its rename,
        // so before the run started): nothing ran.
        if e.file_name().to_string_lossy().starts_with('.') {
            let _ = fs::remove_file(&path);
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if let Ok(mut rec) = serde_json::from_str::<RunRecord>(&text) {
            // A crash between recording the run and removing its marker: nothing was lost.
            let recorded = record::read(state, &rec.job)
                .map(|all| all.iter().rev().take(100).any(|r| r.run_id == rec.run_id))
                .unwrap_or(false);
            if recorded {
                let _ = fs::remove_file(&path);
                continue;
            }
            rec.outcome = Outcome::Lost;
            rec.ended = Timestamp::now().to_string();
            rec.reason = Some(
                "the daemon stopped while this run was in progress; its end is unknown".to_string(),
            );
            log.log(
                Level::Error,
                "lost",
                &[
                    ("job", rec.job.clone()),
                    ("run_id", rec.run_id.clone()),
                    ("scheduled", rec.scheduled.clone()),
                ],
                rec.reason.as_deref().unwrap_or(""),
            );
            if let Err(err) = record::append(state, &rec, keep) {
                log.log(Level::Error, "history", &[], &err.to_string());
            }
            lost.push(rec);
        }
        let _ = fs::remove_file(&path);
    }
    lost
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

    /// Records `at` as the job's last dispatched instant, atomically (rename) and never
    /// backwards, before the run starts: after a crash of the daemon, no instant runs twice.
    /// No fsync on this hot path: a crashed process loses nothing the kernel has; only a
    /// power loss can take the newest marks back, and then those instants count as missed
    /// (`catchup`).
    pub(super) fn mark(&self, job: &str, at: Timestamp) -> Result<(), String> {
        let slot = Arc::clone(lock(&self.last).entry(job.to_string()).or_default());
        let mut last = lock(&slot);
        if last.is_some_and(|l| l >= at) {
            return Ok(());
        }
        crate::files::write_replace(&mark_path(&self.state_dir, job), at.to_string().as_bytes())
            .map_err(|e| {
                format!(
                    "cannot record the dispatch of {at} in {}: {e}; not running it",
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

/// Writes the marker of a run in progress; the path to remove when it ends.
pub(super) fn write_running(state: &Path, placeholder: &RunRecord) -> PathBuf {
    let marker = running_dir(state).join(format!("{}.json", placeholder.run_id));
    if let Ok(text) = serde_json::to_vec(placeholder) {
        let _ = crate::files::write_replace(&marker, &text);
    }
    marker
}
