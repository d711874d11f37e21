//! [`Job`], a job as the rest of cronwarden sees it, and its value types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;

pub use super::env_file::EnvFile;
use crate::schedule::Schedule;
use crate::text::Text;

/// How a job's command is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandLine {
    /// Run directly, no shell: the first element is the program. Boxed once more (a thin
    /// pointer) so that a `CommandLine` is 16 bytes, as the `Shell` text is (issue 21).
    Argv(Box<Box<[String]>>),
    /// Run with `shell -c TEXT`, like cron.
    Shell(Text),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Overlap {
    Skip,
    Queue,
    Replace,
    Allow,
}

/// What happens to processes of a run still alive when its main process has exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leftovers {
    /// SIGTERM, then SIGKILL after `kill_grace`; each one is named in the record.
    Stop,
    /// Released from the run: they live on, recorded as kept, and hold nothing of the job.
    Keep,
}

/// The I/O scheduling class of a job's processes (ioprio_set(2)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoClass {
    Realtime,
    BestEffort,
    Idle,
}

/// A run's resource limits (job keys, also in `[defaults]`). The cgroup ones need the
/// controller on the host; `io_class`/`io_priority` work without cgroups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Limits {
    /// `memory_max`: bytes (cgroup memory.max).
    pub memory_max: Option<u64>,
    /// `cpu_max`: percent of one CPU, 1 or more (cgroup cpu.max).
    pub cpu_max: Option<u32>,
    /// `pids_max`: processes and threads (cgroup pids.max).
    pub pids_max: Option<u64>,
    /// `io_weight`: 1 to 10000 (cgroup io.weight).
    pub io_weight: Option<u16>,
    pub io_class: Option<IoClass>,
    /// `io_priority`: 0 (highest) to 7, for the realtime and best-effort classes.
    pub io_priority: Option<u8>,
}

impl Limits {
    /// The cgroup controllers these limits need, with the key that needs each.
    pub fn controllers(&self) -> Vec<(&'static str, &'static str)> {
        let mut c = Vec::new();
        if self.memory_max.is_some() {
            c.push(("memory", "memory_max"));
        }
        if self.cpu_max.is_some() {
            c.push(("cpu", "cpu_max"));
        }
        if self.pids_max.is_some() {
            c.push(("pids", "pids_max"));
        }
        if self.io_weight.is_some() {
            c.push(("io", "io_weight"));
        }
        c
    }
}

/// When a pipeline step runs, from how its parents in the pipeline run ended (`trigger`,
/// Airflow's trigger rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TriggerRule {
    /// Once every parent succeeded (or ended with a warning); skipped when one did not.
    AllSuccess,
    /// Once every parent has ended, however (cleanup).
    AllDone,
    /// As soon as a parent failed for good (or was skipped because of a failure above it);
    /// skipped ("no parent failed") when all ended and none failed (notify, rollback).
    OneFailed,
}

impl TriggerRule {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllDone => "all_done",
            TriggerRule::OneFailed => "one_failed",
        }
    }
}

/// How `jitter` delays a run (`jitter_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JitterMode {
    /// A new random delay for every run.
    Random,
    /// The same delay for every run of the job on this host (or fleet node): derived from a
    /// hash of the host's and the job's names.
    Fixed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// Which failing exit codes are retried (`retry_codes` / `no_retry_codes`).
    pub codes: RetryCodes,
    /// Which kinds of failure are retried (`retry_on`; default: all four).
    pub on: Vec<RetryOn>,
}

/// Which failing exit codes are retried.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RetryCodes {
    /// Every one (the default).
    All,
    /// Only these (`retry_codes`).
    Only(Vec<i32>),
    /// All but these (`no_retry_codes`).
    Except(Vec<i32>),
}

/// A kind of failed attempt (`retry_on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryOn {
    /// A failing exit code.
    Exit,
    Timeout,
    /// Killed by a signal (not by the timeout).
    Signal,
    /// `verify`, `min_duration` or a ratio check failed.
    Verify,
}

/// What a run is expected to look like (a run outside it is told, or fails).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Expect {
    /// `expect_success_within`: the last success may not be older (else `stale`).
    pub success_within: Option<Duration>,
    /// `warn_after`: a run still going this long alerts `slow` once (it is not stopped).
    pub warn_after: Option<Duration>,
    /// `min_duration`: a successful run that ends faster fails.
    pub min_duration: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Verify {
    pub files: Vec<String>,
    pub min_size: u64,
    pub fresh: bool,
    /// Each file at least this fraction of its size in the last successful run.
    pub min_ratio: Option<f64>,
    /// Each file at most this multiple of its size in the last successful run.
    pub max_ratio: Option<f64>,
}

/// A job as the rest of cronwarden sees it. What it shares with other jobs (mostly what
/// `[defaults]` gives every job) is its [`RunPolicy`], one allocation for all the jobs whose
/// policies are equal; `job.retry`, `job.umask` ... read it through `Deref`.
#[derive(Clone, Debug)]
pub struct Job {
    /// A stretch of a buffer shared with the table's other texts ([`crate::text::Text`]).
    pub name: Text,
    /// The schedule (its text: [`Job::schedule_text`]) in the job's zone, shared with the
    /// scheduler. `None` for a job that runs only after others.
    pub schedule: Option<Arc<Schedule>>,
    /// The zone: the job's `timezone`, else that of `[settings]` (one allocation shared by
    /// the jobs without a zone of their own). Read it through [`Job::tz`] and
    /// [`Job::timezone`].
    pub zone: Arc<Zone>,
    pub command: CommandLine,
    /// What most jobs do not have (`after`, `healthcheck_url`, `params`, `tags`), out of line
    /// so that a plain job stays small: `None` when all of it is empty. Read it through
    /// [`Job::after`], [`Job::healthcheck_url`], [`Job::params`] and [`Job::tags`].
    pub extra: Option<Box<JobExtra>>,
    /// Where the job is defined: file (shared by the jobs of that file; a thin pointer) and
    /// line, 16 bytes (issue 21).
    pub defined_at: (Arc<PathBuf>, u32),
    /// How the job runs: shared by the jobs whose policies are equal.
    pub policy: Arc<RunPolicy>,
}

/// A zone as configured: its name (`timezone`, of the job or of `[settings]`), and the zone,
/// which is the system's without a name.
#[derive(Clone, Debug)]
pub struct Zone {
    pub name: Option<Box<str>>,
    pub tz: TimeZone,
}

/// The keys of a job that are usually unset, kept out of line (see [`Job::extra`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobExtra {
    pub after: Vec<String>,
    pub healthcheck_url: Option<String>,
    pub params: BTreeMap<String, String>,
    /// `tags`: words that select jobs (`list`, `status`, `trigger --tag`) and label metrics.
    pub tags: Vec<String>,
}

impl JobExtra {
    /// `Some` only when something is set, so that a plain job keeps no allocation for it.
    pub fn boxed(self) -> Option<Box<JobExtra>> {
        (self != JobExtra::default()).then(|| Box::new(self))
    }
}

/// The `params` of a job without any.
static NO_PARAMS: BTreeMap<String, String> = BTreeMap::new();

impl std::ops::Deref for Job {
    type Target = RunPolicy;

    fn deref(&self) -> &RunPolicy {
        &self.policy
    }
}

/// How a job runs, apart from its command and schedule: the keys `[defaults]` can give
/// every job. Jobs whose policies are equal share one (see [`super::Config::share`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RunPolicy {
    pub shell: PathBuf,
    pub stdin: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub workdir: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    /// `env_file`, in reading order (`[defaults]`' files first).
    pub env_files: Vec<EnvFile>,
    /// `credentials`: the name under `$CREDENTIALS_DIRECTORY`, and the file copied there.
    pub credentials: BTreeMap<String, PathBuf>,
    pub umask: u32,
    pub nice: Option<i32>,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    pub leftovers: Leftovers,
    pub limits: Limits,
    pub retry: Retry,
    pub success_codes: Vec<i32>,
    /// Exit codes that end the run as `warning` (a success that is told).
    pub warning_codes: Vec<i32>,
    pub expect: Expect,
    pub output_limit: u64,
    /// Each line the job prints also goes to the log, tagged with the job, run and stream.
    pub output_to_log: bool,
    pub verify: Option<Verify>,
    pub overlap: Overlap,
    pub catchup: Catchup,
    /// `depends_on_past`: a scheduled run starts only if the previous run succeeded.
    pub depends_on_past: bool,
    pub jitter: Option<Duration>,
    pub jitter_mode: JitterMode,
    /// `trigger`: when the step runs, from how its parents ended.
    pub trigger: TriggerRule,
    pub alert: Vec<String>,
    pub enabled: bool,
    /// Records older than this are pruned from the history (job, else `[settings]`).
    pub history_max_age: Option<Duration>,
    /// Output files older than this are removed (job, else `[settings]`).
    pub output_max_age: Option<Duration>,
}

impl Job {
    /// When the job's next scheduled run after `now` starts on the host `host`: its next
    /// fire instant, or with a fixed jitter that instant plus the job's delay (the first
    /// whose delayed start is still to come). `None` without a next instant.
    pub fn next_start(&self, host: &str, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let s = self.schedule.as_ref()?;
        let Some(d) = self.fixed_delay(host) else {
            return s.next_after(now);
        };
        let d = jiff::SignedDuration::try_from(d).ok()?;
        s.next_after(now.checked_sub(d).ok()?)?.checked_add(d).ok()
    }

    /// The job's zone (its `timezone`, else that of `[settings]`, else the system's).
    pub fn tz(&self) -> &TimeZone {
        &self.zone.tz
    }

    /// The configured zone's name (job, else `[settings]`), `None` for the system's.
    pub fn timezone(&self) -> Option<&str> {
        self.zone.name.as_deref()
    }

    /// Whether the job has the tag.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().iter().any(|t| t == tag)
    }

    /// The schedule as written, `None` for a job that runs only after others.
    pub fn schedule_text(&self) -> Option<&str> {
        self.schedule.as_deref().map(Schedule::text)
    }

    /// The jobs this one runs after (`after`), empty for a job of its own.
    pub fn after(&self) -> &[String] {
        self.extra.as_ref().map_or(&[], |x| &x.after)
    }

    /// `healthcheck_url`, if set.
    pub fn healthcheck_url(&self) -> Option<&str> {
        self.extra.as_ref()?.healthcheck_url.as_deref()
    }

    /// The job's declared `params` and their defaults.
    pub fn params(&self) -> &BTreeMap<String, String> {
        self.extra.as_ref().map_or(&NO_PARAMS, |x| &x.params)
    }

    /// `tags`: words that select jobs (`list`, `status`, `trigger --tag`) and label metrics.
    pub fn tags(&self) -> &[String] {
        self.extra.as_ref().map_or(&[], |x| &x.tags)
    }

    /// With `jitter_mode = "fixed"`: the delay of every scheduled run of this job on the host
    /// (or fleet node) `host`, within `[0, jitter)`, from a hash of both names (FNV-1a, then
    /// MurmurHash3's 64-bit finalizer; the same on every machine, and kept so from version to
    /// version). `None` otherwise.
    pub fn fixed_delay(&self, host: &str) -> Option<Duration> {
        let jitter = self
            .jitter
            .filter(|_| self.jitter_mode == JitterMode::Fixed)?;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in host.bytes().chain([0]).chain(self.name.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // The offset comes from the top bits, which FNV-1a's last steps barely reach: without
        // the finalizer, names that differ only at the end (backup-1 ... backup-8) got one
        // and the same offset. It spreads every bit of the input over all 64.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        let nanos = jitter.as_nanos();
        let offset = (u128::from(h) * nanos) >> 64;
        Some(Duration::from_nanos(offset as u64))
    }
}
