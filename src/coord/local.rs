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

use super::{
    Coordinator, Exclusion, LastResult, OwnRun, RunStart, Running, Tick, TriggerReply, WorkSink,
};
use crate::config::{Config, Job, Overlap, Settings};
use crate::control::{self, Request, Response};
use crate::exit::{self, Failure};
use crate::lock::{self, Acquired, Holder, JobLock};
use crate::log::{Level, Logger};
use crate::record::{self, RunRecord};
use crate::runner::Interrupt;

/// The local backend. Everything is in files, except the record of which jobs this
/// process's runs hold (which must not depend on a lock file surviving).
#[derive(Default)]
pub(crate) struct Local {
    locks: Arc<lock::Registry>,
}

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
        own: OwnRun,
    ) -> Result<Option<Exclusion>, String> {
        let want = Want {
            dir: &settings.lock_dir,
            job,
            run_id,
            own,
        };
        acquire_lock(&self.locks, &want, log, interrupt)
    }

    fn wants_idle_looks(&self) -> bool {
        false
    }

    fn keep_locks(&self, settings: &Settings, log: &Logger) {
        self.locks.keep(&settings.lock_dir, log);
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

    fn prune_by_age(&self, cfg: &Config, log: &Logger) {
        prune_by_age(cfg, log);
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
        record::tail(&settings.state_dir, job, n).map_err(|e| {
            Failure::new(
                exit::JOB_FAILED,
                format!("reading the history of {job}: {e}"),
            )
        })
    }

    fn last_result(&self, settings: &Settings, job: &str) -> Result<LastResult, Failure> {
        // The whole file: it holds at most two `history_keep`s of records, skip streaks are
        // one record each, and compaction keeps the newest real run.
        record::read(&settings.state_dir, job)
            .map(|recs| LastResult::of(&recs))
            .map_err(|e| {
                Failure::new(
                    exit::JOB_FAILED,
                    format!("reading the history of {job}: {e}"),
                )
            })
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
                Some((
                    j.name.to_string(),
                    Running {
                        holder,
                        node: None,
                        doubt: None,
                    },
                ))
            })
            .collect())
    }

    fn paused(&self, settings: &Settings) -> Result<HashSet<String>, Failure> {
        Ok(read_paused(&settings.state_dir))
    }

    fn daemon_running(&self, settings: &Settings) -> Option<bool> {
        let path = lock::lock_path(&settings.state_dir, DAEMON_LOCK);
        match fs::metadata(&path) {
            // No daemon ever ran on this state directory.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
            // Someone else's state directory: cannot tell.
            Err(_) => None,
            // The daemon holds its flock while it lives; the kernel drops it when it dies.
            Ok(_) => Some(lock::held_by(&settings.state_dir, DAEMON_LOCK).is_some()),
        }
    }

    fn set_paused(&self, settings: &Settings, job: &str, paused: bool) -> Result<String, Failure> {
        let cmd = if paused { "pause" } else { "resume" };
        if let Some(said) = set_paused_without_daemon(settings, job, paused)? {
            return Ok(said);
        }
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

/// The one-daemon lock in the state directory (`state_dir/.daemon.lock`), held by the
/// daemon for its whole life (`daemon::daemon_lock` takes it).
const DAEMON_LOCK: &str = ".daemon";

/// Without a daemon a pause is its file alone (the daemon reads the files when it starts and
/// keeps pauses in memory while it runs): writes it, holding the daemon lock meanwhile so
/// that no daemon starts and reads the pauses in between. `None` when a daemon runs (or the
/// lock cannot be opened, as by a user who may only reach the daemon's socket): then the
/// daemon is asked.
fn set_paused_without_daemon(
    settings: &Settings,
    job: &str,
    paused: bool,
) -> Result<Option<String>, Failure> {
    let state = &settings.state_dir;
    let Ok(Acquired::Locked(mut held)) = lock::try_acquire(state, DAEMON_LOCK) else {
        return Ok(None);
    };
    held.set_holder(&lock::Holder {
        pid: Some(std::process::id() as i32),
        pgid: None,
        since: Some(Timestamp::now().to_string()),
        run_id: None,
    });
    let cmd = if paused { "pause" } else { "resume" };
    write_paused(state, job, paused).map_err(|e| {
        Failure::new(
            exit::JOB_FAILED,
            format!("cannot {cmd} {job} in {}: {e}", state.display()),
        )
    })?;
    drop(held);
    Ok(Some(format!(
        "{job}: {cmd}d; no daemon is running: the daemon applies it when it starts (saved in {})",
        state.join("paused").display()
    )))
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

/// Removes from each job's history in the state directory the runs that ended longer than
/// its `history_max_age` ago (the newest real run stays), logging what went.
pub(crate) fn prune_by_age(cfg: &Config, log: &Logger) {
    let state = &cfg.settings.state_dir;
    let now = Timestamp::now();
    for job in &cfg.jobs {
        let Some(age) = job.history_max_age else {
            continue;
        };
        let Some(before) = jiff::SignedDuration::try_from(age)
            .ok()
            .and_then(|a| now.checked_sub(a).ok())
        else {
            continue;
        };
        let f = [("job", job.name.to_string())];
        match record::prune_ended_before(state, &job.name, before) {
            Ok(0) => {}
            Ok(n) => {
                let msg = format!("pruned {n} run(s) older than history_max_age");
                log.log(Level::Info, "history", &f, &msg);
            }
            Err(e) => {
                let msg = format!("cannot prune the history by age: {e}");
                log.log(Level::Warn, "history", &f, &msg);
            }
        }
    }
}

fn fields(job: &str, run_id: &str) -> Vec<(&'static str, String)> {
    vec![("job", job.to_string()), ("run_id", run_id.to_string())]
}

/// "run R of this same process (pid P) since T": a run that holds the job in this process.
fn own_run(h: &lock::Holder) -> String {
    let mut s = match &h.run_id {
        Some(r) => format!("run {r} of this same process"),
        None => "a run of this same process".to_string(),
    };
    s.push_str(&format!(" (pid {})", std::process::id()));
    if let Some(since) = &h.since {
        s.push_str(&format!(" since {since}"));
    }
    s
}

/// What a run asks of [`acquire_lock`].
pub(crate) struct Want<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) job: &'a Job,
    pub(crate) run_id: &'a str,
    pub(crate) own: OwnRun,
}

/// The job's flock, per its `overlap`: `Ok(None)` for `allow`; `Err(reason)` when the run
/// must not happen (held and `skip`, or the wait was interrupted). A run of this process
/// that holds the job counts as holding it even if its lock file was removed; with
/// [`OwnRun::Wait`] such a run is waited for, whatever `overlap` says. The lock file names
/// this process and run as soon as the lock is taken (no `pgid` until an attempt starts), so
/// a run that replaces it never reads the line of a run that ended before.
pub(crate) fn acquire_lock(
    locks: &Arc<lock::Registry>,
    want: &Want<'_>,
    log: &Logger,
    interrupt: &Interrupt,
) -> Result<Option<Exclusion>, String> {
    let (dir, job, run_id) = (want.dir, want.job, want.run_id);
    if job.overlap == Overlap::Allow {
        return Ok(None);
    }
    let lock_err = |e: std::io::Error| format!("lock file in {}: {e}", dir.display());
    let cancelled = || interrupt.received().is_some();
    let (holder, who) = loop {
        if want.own == OwnRun::Wait && !locks.wait_own(&job.name, &cancelled) {
            return Err("interrupted while waiting for the run in progress".to_string());
        }
        match locks.try_acquire(dir, &job.name).map_err(lock_err)? {
            Acquired::Locked(l) => return Ok(Some(exclusion(l, dir, &job.name, run_id))),
            Acquired::Own(_) if want.own == OwnRun::Wait => continue,
            Acquired::Own(h) => break (h.clone(), own_run(&h)),
            Acquired::Held(h) => break (h.clone(), h.describe()),
        }
    };
    let f = fields(&job.name, run_id);
    let what = match job.overlap {
        Overlap::Skip => return Err(format!("another run holds the lock: {who}")),
        Overlap::Queue => {
            let msg = format!("waiting for the lock held by {who}");
            log.log(Level::Info, "queued", &f, &msg);
            "lock"
        }
        _ => {
            let msg = format!("stopping the running copy: {who}");
            log.log(Level::Warn, "replacing", &f, &msg);
            "replaced run's end"
        }
    };
    let replacing =
        (job.overlap == Overlap::Replace).then(|| Replacing::start(dir, job, holder, run_id));
    let stop = || {
        if let Some(r) = &replacing {
            r.stop_holder(dir, &job.name);
        }
        interrupt.received().is_some()
    };
    let got = locks
        .acquire_wait(dir, &job.name, &stop)
        .map_err(lock_err)?;
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
