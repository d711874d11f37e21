//! Local mode: one host. A run's exclusion is a flock on `lock_dir/JOB.lock`, runs are
//! recorded in the state directory, and `trigger`, `pause` and `resume` reach the daemon
//! through its control socket.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::{Coordinator, Exclusion, RunStart, Running, Tick, TriggerReply, WorkSink};
use crate::config::{Job, Overlap, Settings};
use crate::control::{self, Request, Response};
use crate::exit::{self, Failure};
use crate::lock::{self, Acquired, Holder, JobLock};
use crate::log::{Level, Logger};
use crate::record::{self, RunRecord};
use crate::runner::Interrupt;

/// The local backend. It keeps no state of its own: everything is in files.
pub(crate) struct Local;

impl Coordinator for Local {
    fn node(&self) -> Option<&str> {
        None
    }

    fn acquire(
        &self,
        settings: &Settings,
        job: &Job,
        log: &Logger,
        run_id: &str,
        interrupt: &Interrupt,
    ) -> Result<Option<Exclusion>, String> {
        acquire_lock(&settings.lock_dir, job, log, run_id, interrupt)
    }

    fn run_started(&self, _run: &RunStart<'_>, _log: &Logger) {}

    fn attempt_started(&self, _run_id: &str, _attempt: u32) {}

    fn process_started(&self, _pgid: i32) {}

    fn process_ended(&self, _pgid: i32) {}

    fn record(&self, settings: &Settings, rec: &RunRecord, log: &Logger) {
        save(settings, rec, log);
    }

    fn abandon(&self, settings: &Settings, rec: &RunRecord, log: &Logger) {
        save(settings, rec, log);
    }

    fn record_orphan(&self, settings: &Settings, rec: &RunRecord, log: &Logger) -> bool {
        save(settings, rec, log);
        true
    }

    fn first_alert(&self, _run_id: &str, _event: &str) -> bool {
        true
    }

    fn claim(self: Arc<Self>, ticks: Vec<Tick>, mut won: Box<dyn FnMut(Tick) + Send>) {
        for t in ticks {
            won(t);
        }
    }

    fn serve(&self, _sink: &dyn WorkSink) {}

    fn record_lost(&self, _rec: &RunRecord) {}

    fn leave(&self) {}

    fn history(&self, settings: &Settings, job: &str, n: usize) -> Result<Vec<RunRecord>, Failure> {
        let mut all = record::read(&settings.state_dir, job).map_err(|e| {
            Failure::new(
                exit::JOB_FAILED,
                format!("reading the history of {job}: {e}"),
            )
        })?;
        all.drain(..all.len().saturating_sub(n));
        Ok(all)
    }

    fn running(
        &self,
        settings: &Settings,
        jobs: &[&Job],
    ) -> Result<HashMap<String, Running>, Failure> {
        Ok(jobs
            .iter()
            .filter(|j| j.overlap != Overlap::Allow)
            .filter_map(|j| {
                let holder = lock::held_by(&settings.lock_dir, &j.name)?;
                Some((j.name.clone(), Running { holder, node: None }))
            })
            .collect())
    }

    fn paused(&self, settings: &Settings) -> Result<HashSet<String>, Failure> {
        Ok(read_paused(&settings.state_dir))
    }

    fn set_paused(&self, settings: &Settings, job: &str, paused: bool) -> Result<String, Failure> {
        let cmd = if paused { "pause" } else { "resume" };
        let req = Request {
            cmd: cmd.into(),
            job: Some(job.to_string()),
            ..Default::default()
        };
        answered(control::request(settings, &req)?)?;
        Ok(format!("{job}: {cmd}d"))
    }

    fn trigger(
        &self,
        settings: &Settings,
        job: &str,
        params: &BTreeMap<String, String>,
        wait: bool,
    ) -> Result<TriggerReply, Failure> {
        let req = Request {
            cmd: "trigger".into(),
            job: Some(job.to_string()),
            params: params.clone(),
            wait,
        };
        let r = answered(control::request(settings, &req)?)?;
        Ok(TriggerReply {
            run_id: r.run_id.unwrap_or_default(),
            outcome: r.outcome,
            exit_code: r.exit_code.unwrap_or(exit::OK),
            note: None,
        })
    }
}

/// The daemon's answer, or the failure it reported.
fn answered(resp: Response) -> Result<Response, Failure> {
    if resp.ok {
        Ok(resp)
    } else {
        Err(Failure::new(
            resp.code.unwrap_or(exit::JOB_FAILED),
            resp.error
                .unwrap_or_else(|| "the daemon refused".to_string()),
        ))
    }
}

/// Records a run in the state directory.
pub(crate) fn save(settings: &Settings, rec: &RunRecord, log: &Logger) {
    let state = &settings.state_dir;
    if let Err(e) = record::append(state, rec, settings.history_keep) {
        log.log(
            Level::Error,
            "history",
            &[("job", rec.job.clone()), ("run_id", rec.run_id.clone())],
            &format!("cannot record the run in {}: {e}", state.display()),
        );
    }
}

fn fields(job: &str, run_id: &str) -> Vec<(&'static str, String)> {
    vec![("job", job.to_string()), ("run_id", run_id.to_string())]
}

/// The job's flock, per its `overlap`: `Ok(None)` for `allow`; `Err(reason)` when the run
/// must not happen (held and `skip`, or the wait was interrupted). The lock file names this
/// process and run as soon as the lock is taken (no `pgid` until an attempt starts), so a run
/// that replaces it never reads the line of a run that ended before.
pub(crate) fn acquire_lock(
    dir: &Path,
    job: &Job,
    log: &Logger,
    run_id: &str,
    interrupt: &Interrupt,
) -> Result<Option<Exclusion>, String> {
    let lock_err = |e: std::io::Error| format!("lock file in {}: {e}", dir.display());
    let holder = match job.overlap {
        Overlap::Allow => return Ok(None),
        _ => match lock::try_acquire(dir, &job.name).map_err(lock_err)? {
            Acquired::Locked(l) => return Ok(Some(exclusion(l, dir, &job.name, run_id))),
            Acquired::Held(h) => h,
        },
    };
    let f = fields(&job.name, run_id);
    let what = match job.overlap {
        Overlap::Skip => {
            return Err(format!("another run holds the lock: {}", holder.describe()));
        }
        Overlap::Queue => {
            let msg = format!("waiting for the lock held by {}", holder.describe());
            log.log(Level::Info, "queued", &f, &msg);
            "lock"
        }
        _ => {
            let msg = format!("stopping the running copy: {}", holder.describe());
            log.log(Level::Warn, "replacing", &f, &msg);
            "replaced run's end"
        }
    };
    let replacing =
        (job.overlap == Overlap::Replace).then(|| Replacing::start(dir, job, holder, run_id));
    let cancelled = || {
        if let Some(r) = &replacing {
            r.stop_holder(dir, &job.name);
        }
        interrupt.received().is_some()
    };
    let got = lock::acquire_wait(dir, &job.name, &cancelled).map_err(lock_err)?;
    if let Some(r) = &replacing {
        r.done();
    }
    match got {
        Some(l) => Ok(Some(exclusion(l, dir, &job.name, run_id))),
        None => Err(format!("interrupted while waiting for the {what}")),
    }
}

/// The exclusion of a run that holds the job's lock, its line written.
fn exclusion(mut lock: JobLock, dir: &Path, job: &str, run_id: &str) -> Exclusion {
    lock.set_holder(&Holder {
        pid: Some(std::process::id() as i32),
        pgid: None,
        since: Some(Timestamp::now().to_string()),
        run_id: Some(run_id.to_string()),
    });
    Exclusion {
        lock,
        guard: None,
        replaced: ReplaceNote::new(dir, job, run_id),
    }
}

/// Where a run that replaces this one (`overlap = "replace"`) leaves its run id:
/// `lock_dir/.JOB.RUN_ID.replaced`. The replaced run looks at it after an attempt and while
/// it waits to retry, and ends for good when it is there.
pub(crate) struct ReplaceNote(PathBuf);

impl ReplaceNote {
    fn new(dir: &Path, job: &str, run_id: &str) -> ReplaceNote {
        ReplaceNote(dir.join(format!(".{job}.{run_id}.replaced")))
    }

    /// The run id of the run that replaced this one, if one did.
    pub(crate) fn replaced_by(&self) -> Option<String> {
        let text = fs::read_to_string(&self.0).ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    }

    /// Forgets the note (the replaced run read it, or the replacing run has the lock).
    pub(crate) fn clear(&self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A run replacing the one that holds the lock: it has left its note, and stops the
/// holder's process groups (SIGTERM, `kill_grace`, SIGKILL) while it waits for the lock,
/// also one that starts after it looked (the holder between two attempts).
struct Replacing {
    note: Option<ReplaceNote>,
    grace: Duration,
    /// Each group signalled: when SIGTERM went out, and whether SIGKILL did.
    groups: RefCell<Vec<(i32, Instant, bool)>>,
}

impl Replacing {
    fn start(dir: &Path, job: &Job, holder: Holder, run_id: &str) -> Replacing {
        let note = holder.run_id.as_deref().map(|old| {
            let note = ReplaceNote::new(dir, &job.name, old);
            let _ = crate::files::write_replace(&note.0, run_id.as_bytes());
            note
        });
        let r = Replacing {
            note,
            grace: job.kill_grace,
            groups: RefCell::new(Vec::new()),
        };
        r.signal(holder.pgid);
        r
    }

    /// Looks at the lock's holder again (polled while waiting for the lock).
    fn stop_holder(&self, dir: &Path, job: &str) {
        self.signal(lock::held_by(dir, job).and_then(|h| h.pgid));
        let now = Instant::now();
        for (pgid, termed, killed) in self.groups.borrow_mut().iter_mut() {
            if !*killed && now >= *termed + self.grace {
                let _ = crate::sys::kill_group(*pgid, libc::SIGKILL);
                *killed = true;
            }
        }
    }

    /// SIGTERM to a group of the holder not signalled yet.
    fn signal(&self, pgid: Option<i32>) {
        let Some(pgid) = pgid.filter(|p| *p > 1) else {
            return;
        };
        let mut groups = self.groups.borrow_mut();
        if groups.iter().all(|(g, _, _)| *g != pgid) {
            let _ = crate::sys::kill_group(pgid, libc::SIGTERM);
            groups.push((pgid, Instant::now(), false));
        }
    }

    /// The wait is over: the note is not needed any more.
    fn done(&self) {
        if let Some(n) = &self.note {
            n.clear();
        }
    }
}

/// The jobs paused on this host: one file each in `state_dir/paused/`, so a pause survives
/// restarts.
pub(crate) fn read_paused(state: &Path) -> HashSet<String> {
    fs::read_dir(state.join("paused"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes (or removes) a job's pause file.
pub(crate) fn write_paused(state: &Path, job: &str, paused: bool) -> std::io::Result<()> {
    let path = state.join("paused").join(job);
    if paused {
        crate::files::write_replace(&path, Timestamp::now().to_string().as_bytes())
    } else {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
