//! One run of a job, start to end: lock, attempts with retries, verification, record, log.
//! `cronwarden run` calls this directly; the daemon calls the very same function.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;

use crate::cmd::exit;
use crate::config::{CommandLine, Config, Job, Overlap};
use crate::lock::{self, Acquired, Holder, JobLock};
use crate::log::{Level, Logger};
use crate::output::Output;
use crate::policy;
use crate::record::{self, AttemptRecord, Outcome, RunRecord};
use crate::runner::{self, AttemptSpec, Creds, Exit, Interrupt};
use crate::schedule::format_rfc3339;
use crate::template;
use crate::units::format_duration;

/// How many runs' output files are kept per job.
const KEEP_OUTPUTS: usize = 20;

/// What to run.
pub struct RunRequest<'a> {
    pub job: &'a Job,
    /// The logical scheduled instant (`{{ ds }}`, `{{ ts }}`).
    pub scheduled: Timestamp,
    /// `--param K=V` values over the job's declared defaults.
    pub params: BTreeMap<String, String>,
    /// What started it, for the record: "run", "schedule", ...
    pub trigger: &'static str,
    /// Send its alerts at the end (a pipeline step with steps below it leaves that to the
    /// pipeline, whose failure alert also lists what was skipped).
    pub alerts: bool,
    /// The first attempt's number: 1, or where a run taken over from a lost node goes on.
    pub first_attempt: u32,
}

/// How a run ended.
pub struct RunReport {
    pub record: RunRecord,
    /// The exit code `cronwarden run` returns for it.
    pub exit_code: u8,
    /// The kept tails of stdout and stderr (for alerts sent later).
    pub tails: (Vec<u8>, Vec<u8>),
}

/// A new run id: the start time and a random suffix, so ids sort by start.
pub fn new_run_id() -> String {
    let now = Timestamp::now();
    let r = (policy::random01() * f64::from(u32::MAX)) as u32;
    format!("{}-{:06x}", now.strftime("%Y%m%dT%H%M%S"), r & 0xff_ffff)
}

/// Who the job runs as, and the passwd facts its environment needs.
struct Identity {
    creds: Option<Creds>,
    user: String,
    home: PathBuf,
}

fn identity(job: &Job) -> Result<Identity, String> {
    use nix::unistd::{Group, User, geteuid, getgrouplist};
    let me = geteuid();
    let wants_switch = job.user.is_some() || job.group.is_some();
    if wants_switch && !me.is_root() {
        return Err(format!(
            "user/group is set ({}) but cronwarden is not running as root, so it cannot \
             switch; run it as root or remove user/group",
            [job.user.as_deref(), job.group.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("/")
        ));
    }
    let pw = match &job.user {
        Some(name) => User::from_name(name)
            .map_err(|e| format!("looking up user {name:?}: {e}"))?
            .ok_or_else(|| format!("user {name:?} does not exist"))?,
        None => User::from_uid(me)
            .ok()
            .flatten()
            .ok_or_else(|| format!("uid {me} has no passwd entry"))?,
    };
    let gid = match &job.group {
        Some(name) => {
            Group::from_name(name)
                .map_err(|e| format!("looking up group {name:?}: {e}"))?
                .ok_or_else(|| format!("group {name:?} does not exist"))?
                .gid
        }
        None => pw.gid,
    };
    let creds = if wants_switch {
        let cname = CString::new(pw.name.clone()).map_err(|e| e.to_string())?;
        let mut groups: Vec<u32> = getgrouplist(&cname, pw.gid)
            .map_err(|e| format!("groups of {:?}: {e}", pw.name))?
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        if !groups.contains(&gid.as_raw()) {
            groups.push(gid.as_raw());
        }
        Some(Creds {
            uid: pw.uid.as_raw(),
            gid: gid.as_raw(),
            groups,
        })
    } else {
        None
    };
    Ok(Identity {
        creds,
        user: pw.name,
        home: pw.dir,
    })
}

/// The placeholder values of one attempt.
fn vars(
    job: &Job,
    scheduled: Timestamp,
    run_id: &str,
    attempt: u32,
    params: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let zoned = scheduled.to_zoned(job.tz.clone());
    let mut v = BTreeMap::new();
    v.insert("ds".into(), zoned.strftime("%Y-%m-%d").to_string());
    v.insert("ds_nodash".into(), zoned.strftime("%Y%m%d").to_string());
    v.insert("ts".into(), format_rfc3339(scheduled, &job.tz));
    v.insert("job".into(), job.name.clone());
    v.insert("run_id".into(), run_id.to_string());
    v.insert("attempt".into(), attempt.to_string());
    for (k, val) in params {
        v.insert(format!("params.{k}"), val.clone());
    }
    v
}

fn attempt_spec(
    job: &Job,
    who: &Identity,
    vars: &BTreeMap<String, String>,
    params: &BTreeMap<String, String>,
    lock_fd: Option<i32>,
) -> AttemptSpec {
    let argv = match &job.command {
        CommandLine::Argv(a) => a.iter().map(|s| template::render(s, vars)).collect(),
        CommandLine::Shell(text) => vec![
            job.shell.to_string_lossy().into_owned(),
            "-c".to_string(),
            template::render(text, vars),
        ],
    };
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert(
        "PATH".into(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    if let Ok(lang) = std::env::var("LANG") {
        env.insert("LANG".into(), lang);
    }
    env.insert("HOME".into(), who.home.to_string_lossy().into_owned());
    env.insert("USER".into(), who.user.clone());
    env.insert("LOGNAME".into(), who.user.clone());
    env.insert("SHELL".into(), job.shell.to_string_lossy().into_owned());
    if let Some(tz) = &job.timezone {
        env.insert("TZ".into(), tz.clone());
    }
    for (k, v) in &job.env {
        env.insert(k.clone(), template::render(v, vars));
    }
    for (name, key) in [
        ("CRONWARDEN_DS", "ds"),
        ("CRONWARDEN_DS_NODASH", "ds_nodash"),
        ("CRONWARDEN_TS", "ts"),
        ("CRONWARDEN_JOB", "job"),
        ("CRONWARDEN_RUN_ID", "run_id"),
        ("CRONWARDEN_ATTEMPT", "attempt"),
    ] {
        env.insert(name.into(), vars.get(key).cloned().unwrap_or_default());
    }
    for (k, v) in params {
        env.insert(format!("CRONWARDEN_PARAM_{k}"), v.clone());
    }
    let workdir = job.workdir.clone().or_else(|| {
        if who.home.is_dir() {
            Some(who.home.clone())
        } else {
            Some(PathBuf::from("/"))
        }
    });
    AttemptSpec {
        argv,
        env: env.into_iter().collect(),
        workdir,
        stdin: job.stdin.as_ref().map(|s| s.as_bytes().to_vec()),
        umask: job.umask,
        nice: job.nice,
        creds: who.creds.clone(),
        timeout: job.timeout,
        kill_grace: job.kill_grace,
        inherit_fd: lock_fd,
    }
}

fn fields(job: &str, run_id: &str) -> Vec<(&'static str, String)> {
    vec![("job", job.to_string()), ("run_id", run_id.to_string())]
}

/// The lock for a run, per the job's `overlap`: `Ok(None)` for `allow`; `Err(reason)` when
/// the run must not happen (the lock is held and `overlap = "skip"`, or the wait was
/// interrupted).
pub fn acquire(
    cfg: &Config,
    job: &Job,
    log: &Logger,
    run_id: &str,
    interrupt: &Interrupt,
) -> Result<Option<JobLock>, String> {
    let mut local = acquire_local(cfg, job, log, run_id, interrupt)?;
    if let (Some(l), Some(fleet)) = (local.as_mut(), crate::fleet::get()) {
        l.lease = Some(fleet_lease(fleet, job, log, run_id, interrupt)?);
    }
    Ok(local)
}

/// The cluster-wide lease that goes with the local lock in fleet mode. `skip` gives up when
/// another node holds it; `queue` and `replace` wait for it (a run on another node cannot
/// be stopped from here, so `replace` waits like `queue` across nodes).
fn fleet_lease(
    fleet: &'static crate::fleet::Fleet,
    job: &Job,
    log: &Logger,
    run_id: &str,
    interrupt: &Interrupt,
) -> Result<crate::fleet::Lease, String> {
    let mut told = false;
    loop {
        let holder = match fleet.try_lease(&job.name, run_id) {
            Ok(Ok(lease)) => return Ok(lease),
            Ok(Err(h)) => h,
            Err(e) => return Err(format!("cannot take the fleet lease of the job: {e}")),
        };
        let who = format!(
            "node {} (run {}, since {}, renewed {:.1}s ago)",
            holder.node, holder.run_id, holder.since, holder.age_s
        );
        if job.overlap == Overlap::Skip {
            return Err(format!("another run holds the fleet lease: {who}"));
        }
        if !told {
            told = true;
            log.log(
                Level::Info,
                "queued",
                &fields(&job.name, run_id),
                &format!("waiting for the fleet lease held by {who}"),
            );
        }
        if interrupt.sleep(Duration::from_millis(500)).is_some() {
            return Err("interrupted while waiting for the fleet lease".to_string());
        }
    }
}

fn acquire_local(
    cfg: &Config,
    job: &Job,
    log: &Logger,
    run_id: &str,
    interrupt: &Interrupt,
) -> Result<Option<JobLock>, String> {
    let dir = &cfg.settings.lock_dir;
    let lock_err = |e: std::io::Error| format!("lock file in {}: {e}", dir.display());
    match job.overlap {
        Overlap::Allow => Ok(None),
        Overlap::Skip => match lock::try_acquire(dir, &job.name).map_err(lock_err)? {
            Acquired::Locked(l) => Ok(Some(l)),
            Acquired::Held(h) => Err(format!("another run holds the lock: {}", h.describe())),
        },
        Overlap::Queue => {
            if let Acquired::Locked(l) = lock::try_acquire(dir, &job.name).map_err(lock_err)? {
                return Ok(Some(l));
            }
            let holder = lock::holder(dir, &job.name).unwrap_or_default();
            log.log(
                Level::Info,
                "queued",
                &fields(&job.name, run_id),
                &format!("waiting for the lock held by {}", holder.describe()),
            );
            match lock::acquire_wait(dir, &job.name, &|| interrupt.received().is_some())
                .map_err(lock_err)?
            {
                Some(l) => Ok(Some(l)),
                None => Err("interrupted while waiting for the lock".to_string()),
            }
        }
        Overlap::Replace => {
            let holder = match lock::try_acquire(dir, &job.name).map_err(lock_err)? {
                Acquired::Locked(l) => return Ok(Some(l)),
                Acquired::Held(h) => h,
            };
            log.log(
                Level::Warn,
                "replacing",
                &fields(&job.name, run_id),
                &format!("stopping the running copy: {}", holder.describe()),
            );
            if let Some(pgid) = holder.pgid.filter(|p| *p > 1) {
                // SAFETY: signals a process group; no memory involved.
                unsafe { libc::kill(-pgid, libc::SIGTERM) };
                let deadline = std::time::Instant::now() + job.kill_grace;
                let timed_out = || std::time::Instant::now() >= deadline;
                if let Some(l) = lock::acquire_wait(dir, &job.name, &timed_out).map_err(lock_err)? {
                    return Ok(Some(l));
                }
                // SAFETY: as above.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            match lock::acquire_wait(dir, &job.name, &|| interrupt.received().is_some())
                .map_err(lock_err)?
            {
                Some(l) => Ok(Some(l)),
                None => Err("interrupted while waiting for the lock".to_string()),
            }
        }
    }
}

/// Runs a job through the whole path and records it.
pub fn execute(
    cfg: &Config,
    req: RunRequest<'_>,
    log: &Logger,
    interrupt: &Interrupt,
) -> RunReport {
    let run_id = new_run_id();
    match acquire(cfg, req.job, log, &run_id, interrupt) {
        Ok(lock) => execute_locked(cfg, &req, &run_id, lock, log, interrupt),
        Err(reason) => not_run(cfg, &req, &run_id, reason, interrupt.received(), log),
    }
}

/// Records a run that did not happen: skipped (the lock is held) or interrupted while
/// waiting for it.
pub fn not_run(
    cfg: &Config,
    req: &RunRequest<'_>,
    run_id: &str,
    reason: String,
    interrupted: Option<i32>,
    log: &Logger,
) -> RunReport {
    let job = req.job;
    let now = Timestamp::now().to_string();
    let outcome = if interrupted.is_some() {
        Outcome::Interrupted
    } else {
        Outcome::Skipped
    };
    let mut f = fields(&job.name, run_id);
    f.push(("scheduled", format_rfc3339(req.scheduled, &job.tz)));
    log.log(Level::Warn, outcome.as_str(), &f, &reason);
    let rec = RunRecord {
        run_id: run_id.to_string(),
        job: job.name.clone(),
        scheduled: format_rfc3339(req.scheduled, &job.tz),
        started: now.clone(),
        ended: now,
        duration_ms: 0,
        attempts: Vec::new(),
        outcome,
        reason: Some(reason),
        output: None,
        trigger: req.trigger.to_string(),
        node: crate::fleet::get().map(|f| f.node.clone()),
    };
    save(&cfg.settings, &rec, log);
    RunReport {
        record: rec,
        exit_code: interrupted.map_or(exit::LOCKED, interrupt_exit),
        tails: (Vec::new(), Vec::new()),
    }
}

/// The run itself, once its lock (if any) is held.
pub fn execute_locked(
    cfg: &Config,
    req: &RunRequest<'_>,
    run_id: &str,
    mut lock: Option<JobLock>,
    log: &Logger,
    interrupt: &Interrupt,
) -> RunReport {
    let job = req.job;
    let run_id = run_id.to_string();
    let started = Timestamp::now();
    let state = &cfg.settings.state_dir;
    let tz = &job.tz;
    let base = |outcome, reason: Option<String>, attempts, output| RunRecord {
        run_id: run_id.clone(),
        job: job.name.clone(),
        scheduled: format_rfc3339(req.scheduled, tz),
        started: started.to_string(),
        ended: Timestamp::now().to_string(),
        duration_ms: (Timestamp::now() - started)
            .total(jiff::Unit::Millisecond)
            .map_or(0, |v| v.max(0.0) as u64),
        attempts,
        outcome,
        reason,
        output,
        trigger: req.trigger.to_string(),
        node: crate::fleet::get().map(|f| f.node.clone()),
    };
    let mut f = fields(&job.name, &run_id);
    f.push(("scheduled", format_rfc3339(req.scheduled, tz)));

    // Fleet mode: the run is a row every node can see; a fenced lease interrupts it.
    let fleet = crate::fleet::get();
    if let Some(fl) = fleet
        && let Err(e) = fl.run_started(
            &run_id,
            &job.name,
            req.trigger,
            req.scheduled,
            &req.params,
            req.first_attempt.max(1),
        )
    {
        log.log(
            Level::Warn,
            "fleet",
            &f,
            &format!("cannot record the run in the database: {e}"),
        );
    }
    let fence_source = lock
        .as_mut()
        .and_then(|l| l.lease.as_mut())
        .and_then(|l| l.fence.take());
    let fenced_interrupt;
    let interrupt = match fence_source.map(|s| interrupt.with_source(s, libc::SIGTERM)) {
        Some(Ok(i)) => {
            fenced_interrupt = i;
            &fenced_interrupt
        }
        _ => interrupt,
    };

    let mut holder = Holder {
        pid: Some(std::process::id() as i32),
        pgid: None,
        since: Some(started.to_string()),
        run_id: Some(run_id.clone()),
    };
    if let Some(l) = lock.as_mut() {
        l.set_holder(&holder);
    }

    if let Some(url) = &job.healthcheck_url {
        crate::alert::ping(url, crate::alert::Ping::Start, &[], log, &job.name);
    }
    let mut params = job.params.clone();
    params.extend(req.params.clone());
    let output_dir = state.join("output").join(&job.name);
    let mut out = Output::new(&output_dir, &run_id, job.output_limit);
    let who = identity(job);
    let max_attempts = job.retry.retries.saturating_add(1);
    let mut attempts = Vec::new();
    let mut outcome = Outcome::Failure;
    let mut reason = None;
    for n in req.first_attempt.max(1)..=max_attempts {
        if let Some(fl) = fleet
            && n > req.first_attempt.max(1)
        {
            let _ = fl.attempt(&run_id, n);
        }
        let v = vars(job, req.scheduled, &run_id, n, &params);
        let mut af = f.clone();
        af.push(("attempt", n.to_string()));
        log.log(Level::Info, "attempt-start", &af, "");
        let (res, why) = match &who {
            Ok(who) => {
                let spec = attempt_spec(job, who, &v, &params, lock.as_ref().map(|l| l.raw_fd()));
                if n > 1 {
                    out.write(
                        crate::output::Stream::Stderr,
                        format!("--- cronwarden: attempt {n} ---\n").as_bytes(),
                    );
                }
                let res = runner::run_attempt_with(&spec, &mut out, interrupt, &mut |pid| {
                    holder.pgid = Some(pid as i32);
                    if let Some(l) = lock.as_mut() {
                        l.set_holder(&holder);
                        if let Some(lease) = &l.lease {
                            lease.set_pgid(pid as i32);
                        }
                    }
                    if let Some(fl) = fleet {
                        fl.keep(pid as i32, true);
                    }
                });
                if let (Some(fl), Some(pid)) = (fleet, res.pid) {
                    fl.keep(pid as i32, false);
                }
                let mut why = policy::exit_failure(&res, &job.success_codes);
                if why.is_none()
                    && let Some(ver) = &job.verify
                {
                    let files: Vec<String> =
                        ver.files.iter().map(|p| template::render(p, &v)).collect();
                    let started_at = SystemTime::from(res.started);
                    let problems = policy::verify(&files, ver.min_size, ver.fresh, started_at);
                    if !problems.is_empty() {
                        why = Some(format!("verify: {}", problems.join("; ")));
                    }
                }
                (Some(res), why)
            }
            Err(e) => (None, Some(e.clone())),
        };
        let rec = AttemptRecord {
            attempt: n,
            started: res
                .as_ref()
                .map_or(Timestamp::now(), |r| r.started)
                .to_string(),
            duration_ms: res.as_ref().map_or(0, |r| r.duration.as_millis() as u64),
            exit_code: res.as_ref().and_then(|r| match r.exit {
                Exit::Code(c) => Some(c),
                _ => None,
            }),
            signal: res.as_ref().and_then(|r| match r.exit {
                Exit::Signal(s) => Some(s),
                _ => None,
            }),
            timed_out: res.as_ref().is_some_and(|r| r.timed_out),
            reason: why.clone(),
        };
        attempts.push(rec);
        let mut ef = af.clone();
        if let Some(r) = &res {
            ef.push(("duration", format!("{:.3}s", r.duration.as_secs_f64())));
            match &r.exit {
                Exit::Code(c) => ef.push(("exit", c.to_string())),
                Exit::Signal(s) => ef.push(("signal", runner::signal_name(*s))),
                Exit::NotStarted(_) => {}
            }
        }
        match &why {
            None => {
                log.log(Level::Info, "attempt-end", &ef, "success");
                outcome = Outcome::Success;
                reason = None;
                break;
            }
            Some(w) => {
                log.log(Level::Warn, "attempt-end", &ef, &format!("failed: {w}"));
                reason = Some(w.clone());
            }
        }
        if interrupt.received().is_some() {
            outcome = Outcome::Interrupted;
            break;
        }
        if n < max_attempts {
            // Channels with `on = ["retry"]` hear about each failed attempt that is retried.
            let so_far = base(Outcome::Failure, reason.clone(), attempts.clone(), None);
            crate::alert::on_retry(
                cfg,
                job,
                &so_far,
                (&out.stdout.bytes(), &out.stderr.bytes()),
                log,
            );
            let delay = policy::retry_delay(&job.retry, n, policy::random01());
            log.log(
                Level::Info,
                "retry-wait",
                &af,
                &format!(
                    "attempt {} in {}",
                    n + 1,
                    format_duration(Duration::from_millis(delay.as_millis() as u64))
                ),
            );
            if interrupt.sleep(delay).is_some() {
                outcome = Outcome::Interrupted;
                break;
            }
        }
    }
    let fenced = lock
        .as_ref()
        .and_then(|l| l.lease.as_ref())
        .is_some_and(|l| l.fenced());
    if fenced {
        outcome = Outcome::Interrupted;
        reason = Some(
            "fenced: this node could not renew its fleet lease, so it stopped the job; \
             another node takes the run over"
                .to_string(),
        );
    }
    let output = out.finish().map(|p| p.to_string_lossy().into_owned());
    if let Some(e) = &out.error {
        log.log(Level::Warn, "output", &f, e);
    }
    let rec = base(outcome, reason.clone(), attempts, output);
    let mut endf = f.clone();
    endf.push(("outcome", outcome.as_str().to_string()));
    endf.push(("attempts", rec.attempts.len().to_string()));
    let level = if outcome == Outcome::Success {
        Level::Info
    } else {
        Level::Error
    };
    log.log(level, "run-end", &endf, reason.as_deref().unwrap_or(""));
    if fenced {
        // Left for the node that takes it over (it records it lost, alerts, retries).
        save_local(&cfg.settings, &rec, log);
        if let Some(fl) = fleet {
            let _ = fl.abandon(&run_id);
        }
    } else {
        save(&cfg.settings, &rec, log);
    }
    prune_outputs(&output_dir);
    let tails = (out.stdout.bytes(), out.stderr.bytes());
    if req.alerts && !fenced {
        crate::alert::after_run(cfg, job, &rec, (&tails.0, &tails.1), log);
    }
    if let Some(url) = &job.healthcheck_url {
        match outcome {
            Outcome::Success => {
                crate::alert::ping(url, crate::alert::Ping::Success, &[], log, &job.name)
            }
            Outcome::Failure => {
                let mut tail = out.stdout.bytes();
                tail.extend_from_slice(&out.stderr.bytes());
                crate::alert::ping(url, crate::alert::Ping::Fail, &tail, log, &job.name);
            }
            _ => {}
        }
    }
    let exit_code = match outcome {
        Outcome::Success => exit::OK,
        Outcome::Interrupted => interrupt
            .received()
            .map_or(exit::JOB_FAILED, interrupt_exit),
        Outcome::Skipped => exit::LOCKED,
        Outcome::Lost => exit::JOB_FAILED,
        Outcome::Failure => exit::JOB_FAILED,
    };
    drop(lock);
    RunReport {
        record: rec,
        exit_code,
        tails,
    }
}

fn interrupt_exit(sig: i32) -> u8 {
    if sig == libc::SIGINT {
        exit::SIGINT
    } else {
        exit::SIGTERM
    }
}

/// Records a run: in the state directory, and in fleet mode in the database too.
pub(crate) fn save(settings: &crate::config::Settings, rec: &RunRecord, log: &Logger) {
    save_local(settings, rec, log);
    if let Some(fl) = crate::fleet::get() {
        let scheduled = rec.scheduled.parse::<Timestamp>().unwrap_or_default();
        if let Err(e) = fl.run_ended(rec, scheduled) {
            log.log(
                Level::Error,
                "fleet",
                &fields(&rec.job, &rec.run_id),
                &format!("cannot record the run in the database: {e}"),
            );
        }
    }
}

fn save_local(settings: &crate::config::Settings, rec: &RunRecord, log: &Logger) {
    let state = &settings.state_dir;
    if let Err(e) = record::append(state, rec, settings.history_keep) {
        log.log(
            Level::Error,
            "history",
            &fields(&rec.job, &rec.run_id),
            &format!("cannot record the run in {}: {e}", state.display()),
        );
    }
}

/// Keeps the newest outputs of a job (run ids sort by start time).
fn prune_outputs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log"))
        .collect();
    if names.len() <= KEEP_OUTPUTS {
        return;
    }
    names.sort();
    for n in &names[..names.len() - KEEP_OUTPUTS] {
        let _ = std::fs::remove_file(dir.join(n));
    }
}
