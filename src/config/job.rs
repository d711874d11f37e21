//! [`Job`], a job as the rest of cronwarden sees it, its value types, and how a checked job
//! spec becomes one: every unset key gets its documented default here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jiff::tz::TimeZone;

use super::Settings;
use super::job_spec::JobSpec;
use super::reader::At;
use crate::schedule::Schedule;

/// How a job's command is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandLine {
    /// Run directly, no shell: the first element is the program.
    Argv(Vec<String>),
    /// Run with `shell -c TEXT`, like cron.
    Shell(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    Skip,
    Queue,
    Replace,
    Allow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Catchup {
    None,
    Once,
    All,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// Attempts after the first.
    pub retries: u32,
    pub delay: Duration,
    pub backoff: f64,
    pub max_delay: Duration,
    pub jitter: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verify {
    pub files: Vec<String>,
    pub min_size: u64,
    pub fresh: bool,
}

#[derive(Clone, Debug)]
pub struct Job {
    pub name: String,
    /// The schedule as written, and its expression in the job's zone. `None` for a job that
    /// runs only after others.
    pub schedule_text: Option<String>,
    pub schedule: Option<Schedule>,
    /// The configured zone (job, else `[settings]`); `tz` is that zone or the system's.
    pub timezone: Option<String>,
    pub tz: TimeZone,
    pub command: CommandLine,
    pub shell: PathBuf,
    pub stdin: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub workdir: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    pub umask: u32,
    pub nice: Option<i32>,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    pub retry: Retry,
    pub success_codes: Vec<i32>,
    pub output_limit: u64,
    pub verify: Option<Verify>,
    pub overlap: Overlap,
    pub catchup: Catchup,
    pub jitter: Option<Duration>,
    pub after: Vec<String>,
    pub alert: Vec<String>,
    pub healthcheck_url: Option<String>,
    pub params: BTreeMap<String, String>,
    pub enabled: bool,
    /// Where the job is defined: file and line.
    pub defined_at: (PathBuf, usize),
}

impl Job {
    /// The job of a spec merged over `[defaults]` and checked, with the defaults of
    /// `cronwarden.toml(5)` for the keys left unset. `None` only without a command (which the
    /// checks have reported).
    pub(crate) fn from_spec(
        name: &str,
        s: &JobSpec,
        settings: &Settings,
        params: BTreeMap<String, String>,
        defined_at: (PathBuf, usize),
    ) -> Option<Job> {
        let (timezone, tz) = match &s.timezone {
            Some(z) => (Some(z.v.0.clone()), z.v.1.clone()),
            None => (settings.timezone.clone(), settings.tz.clone()),
        };
        Some(Job {
            name: name.to_string(),
            schedule_text: s.schedule.as_ref().map(|a| a.v.0.clone()),
            schedule: s
                .schedule
                .as_ref()
                .map(|a| Schedule::new(a.v.1.clone(), tz.clone())),
            timezone,
            tz,
            command: value(&s.command)?,
            shell: value(&s.shell).unwrap_or_else(|| PathBuf::from("/bin/sh")),
            stdin: value(&s.stdin),
            user: value(&s.user),
            group: value(&s.group),
            workdir: value(&s.workdir),
            env: s
                .env
                .iter()
                .map(|(k, (_, v))| (k.clone(), v.v.clone()))
                .collect(),
            umask: value(&s.umask).unwrap_or(0o022),
            nice: value(&s.nice),
            timeout: value(&s.timeout).filter(|d| !d.is_zero()),
            kill_grace: value(&s.kill_grace).unwrap_or(Duration::from_secs(10)),
            retry: retry(s),
            success_codes: value(&s.success_codes).unwrap_or_else(|| vec![0]),
            output_limit: value(&s.output_limit).unwrap_or(1 << 20),
            verify: verify(s),
            overlap: value(&s.overlap).unwrap_or(Overlap::Skip),
            catchup: value(&s.catchup).unwrap_or(Catchup::None),
            jitter: value(&s.jitter).filter(|d| !d.is_zero()),
            after: names(&s.after),
            alert: names(&s.alert),
            healthcheck_url: value(&s.healthcheck_url),
            params,
            enabled: value(&s.enabled).unwrap_or(true),
            defined_at,
        })
    }
}

fn retry(s: &JobSpec) -> Retry {
    Retry {
        retries: value(&s.retries).unwrap_or(0),
        delay: value(&s.retry_delay).unwrap_or(Duration::from_secs(30)),
        backoff: value(&s.retry_backoff).unwrap_or(2.0),
        max_delay: value(&s.retry_max_delay).unwrap_or(Duration::from_secs(3600)),
        jitter: value(&s.retry_jitter).unwrap_or(true),
    }
}

/// `verify`, when it names files.
fn verify(s: &JobSpec) -> Option<Verify> {
    s.verify_files.as_ref().map(|f| Verify {
        files: f.v.iter().map(|a| a.v.clone()).collect(),
        min_size: value(&s.verify_min_size).unwrap_or(1),
        fresh: value(&s.verify_fresh).unwrap_or(true),
    })
}

/// A key's value without its location.
fn value<T: Clone>(key: &Option<At<T>>) -> Option<T> {
    key.as_ref().map(|a| a.v.clone())
}

/// A list of names (`after`, `alert`), empty when unset.
fn names(key: &Option<At<Vec<At<String>>>>) -> Vec<String> {
    key.as_ref()
        .map(|l| l.v.iter().map(|a| a.v.clone()).collect())
        .unwrap_or_default()
}
