//! [`Job`], a job as the rest of cronwarden sees it, and its value types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jiff::tz::TimeZone;

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
