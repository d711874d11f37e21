//! What one attempt of a job is started with: who it runs as, the placeholder values, and
//! the argv, environment and working directory they make.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::PathBuf;

use jiff::Timestamp;

use crate::config::{CommandLine, Job};
use crate::runner::{AttemptSpec, Creds};
use crate::schedule::format_rfc3339;
use crate::template;

/// Who the job runs as, and the passwd facts its environment needs.
pub(super) struct Identity {
    creds: Option<Creds>,
    user: String,
    home: PathBuf,
    /// The variables of the job's `env_file`s, read for this run (as the process starting
    /// it, before dropping to `user`), in order: a later one of a name wins.
    file_env: Vec<(String, String)>,
    /// The run's `credentials` directory (`$CREDENTIALS_DIRECTORY`), once staged.
    pub(super) cred_dir: Option<PathBuf>,
    /// The run's `CRONWARDEN_RESULT_FILE`, once created.
    pub(super) result_file: Option<PathBuf>,
}

impl Identity {
    /// Who the job's files are handed to: its user and group when it switches, else `None`
    /// (this process's own).
    pub(super) fn owner(&self) -> Option<(u32, u32)> {
        self.creds.as_ref().map(|c| (c.uid, c.gid))
    }
}

pub(super) fn identity(job: &Job) -> Result<Identity, String> {
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
        None => match User::from_uid(me) {
            Ok(Some(u)) => u,
            // No passwd entry for the daemon's own uid (a `FROM scratch` container has no
            // /etc/passwd): the job runs as the daemon, USER is the uid, HOME is /.
            _ if !wants_switch => return unnamed(me, job),
            _ => return Err(format!("uid {me} has no passwd entry")),
        },
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
        file_env: crate::config::env_file::read_all(&job.env_files)?,
        cred_dir: None,
        result_file: None,
    })
}

/// The daemon's own identity when its uid has no passwd entry.
fn unnamed(me: nix::unistd::Uid, job: &Job) -> Result<Identity, String> {
    Ok(Identity {
        creds: None,
        user: me.to_string(),
        home: PathBuf::from("/"),
        file_env: crate::config::env_file::read_all(&job.env_files)?,
        cred_dir: None,
        result_file: None,
    })
}

/// The placeholder values of one attempt.
pub(super) fn vars(
    job: &Job,
    scheduled: Timestamp,
    run_id: &str,
    attempt: u32,
    (params, upstream): (&BTreeMap<String, String>, &BTreeMap<String, String>),
) -> BTreeMap<String, String> {
    let zoned = scheduled.to_zoned(job.tz().clone());
    let mut v = BTreeMap::new();
    v.insert("ds".into(), zoned.strftime("%Y-%m-%d").to_string());
    v.insert("ds_nodash".into(), zoned.strftime("%Y%m%d").to_string());
    v.insert("ts".into(), format_rfc3339(scheduled, job.tz()));
    v.insert("job".into(), job.name.to_string());
    v.insert("run_id".into(), run_id.to_string());
    v.insert("attempt".into(), attempt.to_string());
    for (k, val) in params {
        v.insert(format!("params.{k}"), val.clone());
    }
    for (job, result) in upstream {
        v.insert(format!("upstream.{job}"), result.clone());
    }
    v
}

pub(super) fn attempt_spec(
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
    if let Some(tz) = job.timezone() {
        env.insert("TZ".into(), tz.to_string());
    }
    // The job's `env` wins over its `env_file`s.
    env.extend(who.file_env.iter().cloned());
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
    for (k, val) in vars {
        if let Some(job) = k.strip_prefix("upstream.") {
            env.insert(template::upstream_var(job), val.clone());
        }
    }
    if let Some(f) = &who.result_file {
        env.insert(
            "CRONWARDEN_RESULT_FILE".into(),
            f.to_string_lossy().into_owned(),
        );
    }
    if let Some(dir) = &who.cred_dir {
        env.insert(
            "CREDENTIALS_DIRECTORY".into(),
            dir.to_string_lossy().into_owned(),
        );
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
        keep_leftovers: job.leftovers == crate::config::Leftovers::Keep,
        ioprio: job
            .limits
            .io_class
            .map(|c| crate::contain::limits::ioprio_value(c, job.limits.io_priority)),
        oom_score_adj: None,
    }
}
