//! A job's keys as written, in a job table or in `[defaults]`: [`JobSpec`], read key by key
//! in one walk over the table, each key checked on its own, then merged over `[defaults]`.
//! The checks that need several keys or the whole table come later (`job_checks.rs`,
//! `after_graph.rs`).

use std::path::PathBuf;
use std::time::Duration;

use jiff::tz::TimeZone;

use super::env_file::EnvFile;
use super::job::{
    Catchup, CommandLine, IoClass, JitterMode, Leftovers, Overlap, RetryOn, TriggerRule,
};
use super::loader::Loader;
use super::reader::{At, TableReader};
use super::toml_tree::Kind;
use crate::diag::Loc;
use crate::schedule::Expr;

/// Every key a job (or `[defaults]`) may set.
const JOB_KEYS: &[&str] = &[
    "schedule",
    "command",
    "shell",
    "stdin",
    "timezone",
    "user",
    "group",
    "workdir",
    "env",
    "env_file",
    "credentials",
    "umask",
    "nice",
    "timeout",
    "kill_grace",
    "leftovers",
    "memory_max",
    "cpu_max",
    "pids_max",
    "io_weight",
    "io_class",
    "io_priority",
    "retries",
    "retry_delay",
    "retry_backoff",
    "retry_max_delay",
    "retry_jitter",
    "success_codes",
    "warning_codes",
    "retry_codes",
    "no_retry_codes",
    "retry_on",
    "expect_success_within",
    "warn_after",
    "min_duration",
    "output_limit",
    "output_to_log",
    "verify",
    "overlap",
    "catchup",
    "depends_on_past",
    "jitter",
    "jitter_mode",
    "after",
    "trigger",
    "alert",
    "healthcheck_url",
    "params",
    "enabled",
    "tags",
    "history_max_age",
    "output_max_age",
];
const VERIFY_KEYS: &[&str] = &["files", "min_size", "fresh", "min_ratio", "max_ratio"];

/// One entry of [`Entries`]: the key and the value as written.
pub(crate) type Entry = (At<String>, At<String>);

/// The entries of `env`, `credentials` or `params` by name, in name order. A sorted `Vec`
/// rather than a `BTreeMap`, whose first node holds room for eleven entries: with `env` and
/// `params` on each of 10,000 jobs (the heavy table of `bench/check.sh`), those nodes were
/// 23 of the 110 MB `check` allocated at its peak (valgrind massif), where a job has one
/// or two entries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Entries(Vec<(String, Entry)>);

impl Entries {
    /// Room for `n` entries: most jobs' `env` and `params` have one or two, and a `Vec`
    /// grown one by one has room for four at once.
    pub(crate) fn with_capacity(n: usize) -> Entries {
        Entries(Vec::with_capacity(n))
    }

    /// Sets `name`'s entry; a later one replaces an earlier one, as a map's `insert` does.
    pub(crate) fn insert(&mut self, name: String, entry: Entry) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => self.0[i].1 = entry,
            Err(i) => self.0.insert(i, (name, entry)),
        }
    }

    /// Adds a copy of `name`'s entry unless there is one already.
    fn insert_missing(&mut self, name: &str, entry: &Entry) {
        if let Err(i) = self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.0.insert(i, (name.to_string(), entry.clone()));
        }
    }

    /// The entries in name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.0.iter().map(|(n, e)| (n, e))
    }
}

impl IntoIterator for Entries {
    type Item = (String, Entry);
    type IntoIter = std::vec::IntoIter<(String, Entry)>;

    /// The entries in name order, moved out.
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = (&'a String, &'a Entry);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Entry)>,
        fn(&'a (String, Entry)) -> (&'a String, &'a Entry),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, e)| (n, e))
    }
}

/// A job's keys as written (in a job table or `[defaults]`), each with its location.
#[derive(Clone, Debug, Default)]
pub(crate) struct JobSpec {
    pub(crate) schedule: Option<At<(String, Expr)>>,
    pub(crate) command: Option<At<CommandLine>>,
    pub(crate) shell: Option<At<PathBuf>>,
    pub(crate) stdin: Option<At<String>>,
    pub(crate) timezone: Option<At<(String, TimeZone)>>,
    pub(crate) user: Option<At<String>>,
    pub(crate) group: Option<At<String>>,
    pub(crate) workdir: Option<At<PathBuf>>,
    pub(crate) env: Entries,
    /// `env_file`: `[defaults]`' files come before the job's (a later file wins).
    pub(crate) env_file: Vec<At<EnvFile>>,
    pub(crate) credentials: Entries,
    pub(crate) umask: Option<At<u32>>,
    pub(crate) nice: Option<At<i32>>,
    pub(crate) timeout: Option<At<Duration>>,
    pub(crate) kill_grace: Option<At<Duration>>,
    pub(crate) leftovers: Option<At<Leftovers>>,
    pub(crate) memory_max: Option<At<u64>>,
    pub(crate) cpu_max: Option<At<u32>>,
    pub(crate) pids_max: Option<At<u64>>,
    pub(crate) io_weight: Option<At<u16>>,
    pub(crate) io_class: Option<At<IoClass>>,
    pub(crate) io_priority: Option<At<u8>>,
    pub(crate) retries: Option<At<u32>>,
    pub(crate) retry_delay: Option<At<Duration>>,
    pub(crate) retry_backoff: Option<At<f64>>,
    pub(crate) retry_max_delay: Option<At<Duration>>,
    pub(crate) retry_jitter: Option<At<bool>>,
    pub(crate) success_codes: Option<At<Vec<i32>>>,
    pub(crate) warning_codes: Option<At<Vec<i32>>>,
    pub(crate) retry_codes: Option<At<Vec<i32>>>,
    pub(crate) no_retry_codes: Option<At<Vec<i32>>>,
    pub(crate) retry_on: Option<At<Vec<RetryOn>>>,
    pub(crate) expect_success_within: Option<At<Duration>>,
    pub(crate) warn_after: Option<At<Duration>>,
    pub(crate) min_duration: Option<At<Duration>>,
    pub(crate) verify_min_ratio: Option<At<f64>>,
    pub(crate) verify_max_ratio: Option<At<f64>>,
    pub(crate) output_limit: Option<At<u64>>,
    pub(crate) output_to_log: Option<At<bool>>,
    pub(crate) verify_files: Option<At<Vec<At<String>>>>,
    pub(crate) verify_min_size: Option<At<u64>>,
    pub(crate) verify_fresh: Option<At<bool>>,
    pub(crate) overlap: Option<At<Overlap>>,
    pub(crate) catchup: Option<At<Catchup>>,
    pub(crate) depends_on_past: Option<At<bool>>,
    pub(crate) jitter: Option<At<Duration>>,
    pub(crate) jitter_mode: Option<At<JitterMode>>,
    pub(crate) after: Option<At<Vec<At<String>>>>,
    pub(crate) trigger: Option<At<TriggerRule>>,
    pub(crate) alert: Option<At<Vec<At<String>>>>,
    pub(crate) healthcheck_url: Option<At<String>>,
    pub(crate) params: Entries,
    pub(crate) enabled: Option<At<bool>>,
    pub(crate) tags: Option<At<Vec<At<String>>>>,
    pub(crate) history_max_age: Option<At<Duration>>,
    pub(crate) output_max_age: Option<At<Duration>>,
    /// A key was present but invalid (already reported): do not also call it missing.
    pub(crate) failed_command: bool,
    pub(crate) failed_schedule: bool,
}

impl JobSpec {
    /// This job's keys over `[defaults]`: key by key, and entry by entry for `env`, `params`
    /// and `verify`.
    pub(crate) fn merged_over(mut self, d: &JobSpec) -> JobSpec {
        if self.command.is_none() && !self.failed_command {
            self.failed_command = d.failed_command;
        }
        if self.schedule.is_none() && !self.failed_schedule {
            self.failed_schedule = d.failed_schedule;
        }
        // `retry_codes` and `no_retry_codes` are one choice: a job that makes it takes
        // neither from `[defaults]`.
        let own_codes = self.retry_codes.is_some() || self.no_retry_codes.is_some();
        let (retry_codes, no_retry_codes) = (self.retry_codes.take(), self.no_retry_codes.take());
        if own_codes {
            self.retry_codes = retry_codes
                .or(Some(At {
                    v: Vec::new(),
                    loc: Loc::default(),
                }))
                .filter(|c| !c.v.is_empty());
            self.no_retry_codes = no_retry_codes;
        } else {
            self.retry_codes = d.retry_codes.clone();
            self.no_retry_codes = d.no_retry_codes.clone();
        }
        macro_rules! inherit {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = d.$f.clone(); } )* };
        }
        inherit!(
            schedule,
            command,
            shell,
            stdin,
            timezone,
            user,
            group,
            workdir,
            umask,
            nice,
            timeout,
            kill_grace,
            leftovers,
            memory_max,
            cpu_max,
            pids_max,
            io_weight,
            io_class,
            io_priority,
            retries,
            retry_delay,
            retry_backoff,
            retry_max_delay,
            retry_jitter,
            success_codes,
            warning_codes,
            retry_on,
            expect_success_within,
            warn_after,
            min_duration,
            verify_min_ratio,
            verify_max_ratio,
            output_limit,
            output_to_log,
            verify_files,
            verify_min_size,
            verify_fresh,
            overlap,
            catchup,
            depends_on_past,
            jitter,
            jitter_mode,
            after,
            alert,
            healthcheck_url,
            enabled,
            tags,
            history_max_age,
            output_max_age
        );
        let own_files = std::mem::take(&mut self.env_file);
        self.env_file = d.env_file.iter().cloned().chain(own_files).collect();
        for (k, v) in &d.credentials {
            self.credentials.insert_missing(k, v);
        }
        for (k, v) in &d.env {
            self.env.insert_missing(k, v);
        }
        for (k, v) in &d.params {
            self.params.insert_missing(k, v);
        }
        self
    }
}

/// The longest `jitter`: a year. A longer random delay means the job practically never runs
/// (while every tick joins the waiting run), which is no schedule anyone means.
pub(crate) const MAX_JITTER: Duration = Duration::from_secs(366 * 86_400);

/// `jitter`: a duration of at most [`MAX_JITTER`].
fn jitter(t: &TableReader, sink: &mut crate::diag::Sink) -> Option<At<Duration>> {
    let j = t.duration(sink, "jitter")?;
    if j.v > MAX_JITTER {
        sink.error(
            j.loc,
            t.subject(),
            format!(
                "jitter: {} is longer than a year (366d), the most a run can be delayed: the \
                 job would practically never run",
                crate::units::format_duration(j.v)
            ),
        );
        return None;
    }
    Some(j)
}

/// `job "NAME"`, the subject of a job's diagnostics: what `format!("job {name:?}")` gives,
/// without the formatter for the names that need no escape (every valid one). `format!`,
/// mostly these subjects, twice per job, took 15.6 of the 300 million instructions of
/// `check` of the typical 10,000-job table of bench/check.sh (callgrind).
pub(crate) fn job_subject(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if !plain {
        return format!("job {name:?}");
    }
    let mut s = String::with_capacity(name.len() + 6);
    s.push_str("job \"");
    s.push_str(name);
    s.push('"');
    s
}

impl Loader<'_> {
    /// One job table's keys (or `[defaults]`): each key the table holds is read as it comes,
    /// in one walk over the table, and a key that is no job key is reported. (Asking the
    /// table for each of the 52 job keys in turn, most of them absent, was 223 of the 3,057
    /// million instructions of `check` of 100,000 jobs, callgrind, and the unknown-key check
    /// walked the table again.) The checks between keys come after the walk.
    pub(crate) fn job_spec(&mut self, t: &TableReader) -> JobSpec {
        let mut s = JobSpec::default();
        for (key, loc, _) in t.entries() {
            let known = self.read_command_key(t, key, &mut s)
                || self.read_identity_key(t, key, &mut s)
                || self.read_timing_key(t, key, &mut s)
                || self.read_outcome_key(t, key, &mut s)
                || self.read_process_key(t, key, &mut s)
                || self.read_notify_key(t, key, &mut s);
            if !known {
                t.unknown_key(self.sink, key, loc, JOB_KEYS, "job");
            }
        }
        self.check_key_pairs(t, &mut s);
        s
    }

    /// The rules between two keys: `retry_codes` or `no_retry_codes`, and no `io_priority`
    /// in the idle class.
    fn check_key_pairs(&mut self, t: &TableReader, s: &mut JobSpec) {
        if let (Some(_), Some(n)) = (&s.retry_codes, &s.no_retry_codes) {
            let msg = "no_retry_codes: use retry_codes (the codes that are retried) or \
                       no_retry_codes (the codes that are not), not both";
            self.sink.error(n.loc, t.subject(), msg.to_string());
            s.no_retry_codes = None;
        }
        if let (Some(c), Some(p)) = (&s.io_class, &s.io_priority)
            && c.v == IoClass::Idle
        {
            let msg = "io_priority: the idle class has no priorities; remove io_priority or \
                       use io_class = \"best-effort\"";
            self.sink.error(p.loc, t.subject(), msg.to_string());
        }
    }

    /// What runs: `command`, `shell`, `stdin`, `workdir`, `env` and the `params` that
    /// placeholders name. Whether `key` is one of them (read into `s`).
    fn read_command_key(&mut self, t: &TableReader, key: &str, s: &mut JobSpec) -> bool {
        match key {
            "command" => {
                s.command = self.command(t, "command");
                s.failed_command = s.command.is_none();
            }
            "shell" => s.shell = self.abs_path(t, "shell"),
            "stdin" => s.stdin = t.string_with_nul(self.sink, "stdin"),
            "workdir" => s.workdir = self.abs_path(t, "workdir"),
            "env" => s.env = self.env_entries(t),
            "env_file" => s.env_file = self.env_files(t),
            "credentials" => s.credentials = self.credential_entries(t),
            "params" => s.params = self.param_entries(t),
            _ => return false,
        }
        true
    }

    /// Whom it runs as, and how: `user`, `group`, `umask`, `nice`.
    fn read_identity_key(&mut self, t: &TableReader, key: &str, s: &mut JobSpec) -> bool {
        match key {
            "user" => s.user = t.nonempty(self.sink, "user"),
            "group" => s.group = t.nonempty(self.sink, "group"),
            "umask" => s.umask = self.umask(t),
            "nice" => {
                s.nice = t.int(self.sink, "nice", -20, 19).map(|a| At {
                    v: a.v as i32,
                    loc: a.loc,
                })
            }
            _ => return false,
        }
        true
    }

    /// When, and for how long: `schedule`, `timezone`, `after`, `trigger`, `enabled`,
    /// `overlap`, `catchup`, `depends_on_past`, `jitter`, `jitter_mode`, `timeout`,
    /// `kill_grace`.
    fn read_timing_key(&mut self, t: &TableReader, key: &str, s: &mut JobSpec) -> bool {
        let sink = &mut *self.sink;
        match key {
            "schedule" => {
                s.schedule = self.schedule(t);
                s.failed_schedule = s.schedule.is_none();
            }
            "timezone" => s.timezone = self.zone(t, "timezone").map(|z| At { v: z, loc: t.loc }),
            "after" => s.after = t.strings(sink, "after", true),
            "trigger" => {
                let options = [
                    ("all_success", TriggerRule::AllSuccess),
                    ("all_done", TriggerRule::AllDone),
                    ("one_failed", TriggerRule::OneFailed),
                ];
                s.trigger = t.choice_of(sink, "trigger", &options)
            }
            "enabled" => s.enabled = t.bool(sink, "enabled"),
            "overlap" => {
                let options = [
                    ("skip", Overlap::Skip),
                    ("queue", Overlap::Queue),
                    ("replace", Overlap::Replace),
                    ("allow", Overlap::Allow),
                ];
                s.overlap = t.choice_of(sink, "overlap", &options)
            }
            "catchup" => {
                let options = [
                    ("none", Catchup::None),
                    ("once", Catchup::Once),
                    ("all", Catchup::All),
                ];
                s.catchup = t.choice_of(sink, "catchup", &options)
            }
            "depends_on_past" => s.depends_on_past = t.bool(sink, "depends_on_past"),
            "jitter" => s.jitter = jitter(t, sink),
            "jitter_mode" => {
                let options = [("random", JitterMode::Random), ("fixed", JitterMode::Fixed)];
                s.jitter_mode = t.choice_of(sink, "jitter_mode", &options)
            }
            "timeout" => s.timeout = t.duration(sink, "timeout"),
            "kill_grace" => s.kill_grace = t.duration(sink, "kill_grace"),
            _ => return false,
        }
        true
    }

    /// What counts as success, and what is done about a failure: `retries` and `retry_*`,
    /// `success_codes`, `expect_success_within`, `warn_after`, `min_duration`.
    fn read_outcome_key(&mut self, t: &TableReader, key: &str, s: &mut JobSpec) -> bool {
        let sink = &mut *self.sink;
        match key {
            "retries" => {
                s.retries = t.int(sink, "retries", 0, 10_000).map(|a| At {
                    v: a.v as u32,
                    loc: a.loc,
                })
            }
            "retry_delay" => s.retry_delay = t.duration(sink, "retry_delay"),
            "retry_backoff" => s.retry_backoff = retry_backoff(t, sink),
            "retry_max_delay" => s.retry_max_delay = t.duration(sink, "retry_max_delay"),
            "retry_jitter" => s.retry_jitter = t.bool(sink, "retry_jitter"),
            "success_codes" => s.success_codes = self.codes(t, "success_codes"),
            "warning_codes" => s.warning_codes = self.codes(t, "warning_codes"),
            "retry_codes" => s.retry_codes = self.codes(t, "retry_codes"),
            "no_retry_codes" => s.no_retry_codes = self.codes(t, "no_retry_codes"),
            "retry_on" => s.retry_on = self.retry_on(t),
            "expect_success_within" => {
                s.expect_success_within = t.duration(sink, "expect_success_within")
            }
            "warn_after" => s.warn_after = t.duration(sink, "warn_after"),
            "min_duration" => s.min_duration = t.duration(sink, "min_duration"),
            _ => return false,
        }
        true
    }

    /// What a run contains and may use and leaves behind: `leftovers`, `memory_max`,
    /// `cpu_max`, `pids_max`, `io_weight`, `io_class`, `io_priority`, `output_limit`,
    /// `output_to_log`, `history_max_age`, `output_max_age`, `verify`.
    fn read_process_key(&mut self, t: &TableReader, key: &str, s: &mut JobSpec) -> bool {
        let sink = &mut *self.sink;
        match key {
            "leftovers" => {
                let options = [("stop", Leftovers::Stop), ("keep", Leftovers::Keep)];
                s.leftovers = t.choice_of(sink, "leftovers", &options)
            }
            "memory_max" => s.memory_max = memory_max(t, sink),
            "cpu_max" => s.cpu_max = cpu_percent(t, sink),
            "pids_max" => {
                s.pids_max = t.int(sink, "pids_max", 1, 4_194_304).map(|a| At {
                    v: a.v as u64,
                    loc: a.loc,
                })
            }
            "io_weight" => {
                s.io_weight = t.int(sink, "io_weight", 1, 10_000).map(|a| At {
                    v: a.v as u16,
                    loc: a.loc,
                })
            }
            "io_class" => {
                let options = [
                    ("idle", IoClass::Idle),
                    ("best-effort", IoClass::BestEffort),
                    ("realtime", IoClass::Realtime),
                ];
                s.io_class = t.choice_of(sink, "io_class", &options)
            }
            "io_priority" => {
                s.io_priority = t.int(sink, "io_priority", 0, 7).map(|a| At {
                    v: a.v as u8,
                    loc: a.loc,
                })
            }
            "output_limit" => s.output_limit = t.size(sink, "output_limit"),
            "output_to_log" => s.output_to_log = t.bool(sink, "output_to_log"),
            "history_max_age" => s.history_max_age = t.duration(sink, "history_max_age"),
            "output_max_age" => s.output_max_age = t.duration(sink, "output_max_age"),
            "verify" => verify(t, sink, s),
            _ => return false,
        }
        true
    }

    /// Who hears of a run, and how it is found: `alert` (channel names), `tags` and
    /// `healthcheck_url`.
    fn read_notify_key(&mut self, t: &TableReader, key: &str, s: &mut JobSpec) -> bool {
        match key {
            "alert" => s.alert = t.strings(self.sink, "alert", true),
            "tags" => s.tags = self.tags(t),
            "healthcheck_url" => {
                s.healthcheck_url = t.nonempty(self.sink, "healthcheck_url");
                if let Some(u) = &s.healthcheck_url
                    && !(u.v.starts_with("http://") || u.v.starts_with("https://"))
                {
                    self.sink.error(
                        u.loc,
                        t.subject(),
                        format!(
                            "healthcheck_url: {:?} must start with http:// or https://",
                            u.v
                        ),
                    );
                }
            }
            _ => return false,
        }
        true
    }

    /// `schedule`: an expression that can fire.
    fn schedule(&mut self, t: &TableReader) -> Option<At<(String, Expr)>> {
        let text = t.nonempty(self.sink, "schedule")?;
        let parsed = match self.schedules.get(&text.v) {
            Some(p) => p.clone(),
            None => {
                let p = Expr::parse(&text.v);
                self.schedules.insert(text.v.clone(), p.clone());
                p
            }
        };
        match parsed {
            Ok(e) if !e.can_fire() => {
                self.sink.error(
                    text.loc,
                    t.subject(),
                    format!(
                        "schedule {:?} can never fire: no selected month has a selected day of \
                         the month in any year",
                        text.v
                    ),
                );
                None
            }
            Ok(e) => Some(At {
                v: (text.v, e),
                loc: text.loc,
            }),
            Err(e) => {
                self.sink
                    .error(text.loc, t.subject(), format!("schedule {:?}: {e}", text.v));
                None
            }
        }
    }

    /// `umask`: octal digits in a string ("022"), or an octal integer (0o022).
    fn umask(&mut self, t: &TableReader) -> Option<At<u32>> {
        let v = t.raw("umask")?;
        let loc = t.loc_of(v);
        let parsed = match &v.kind {
            Kind::String(text)
                if (1..=4).contains(&text.len())
                    && text.bytes().all(|b| (b'0'..=b'7').contains(&b)) =>
            {
                u32::from_str_radix(text, 8).ok()
            }
            Kind::Integer { value, radix: 8 } => u32::try_from(*value).ok().filter(|m| *m <= 0o777),
            _ => None,
        };
        if parsed.is_none() {
            self.sink.error(
                loc,
                t.subject(),
                "umask: write octal digits as a string, e.g. \"022\" or \"077\"",
            );
        }
        parsed.map(|m| At { v: m, loc })
    }

    /// `success_codes`: a non-empty array of exit codes.
    /// `retry_on`: kinds of failure (`exit`, `timeout`, `signal`, `verify`).
    fn retry_on(&mut self, t: &TableReader) -> Option<At<Vec<RetryOn>>> {
        let list = t.strings(self.sink, "retry_on", true)?;
        let mut on = Vec::new();
        for w in &list.v {
            match w.v.as_str() {
                "exit" => on.push(RetryOn::Exit),
                "timeout" => on.push(RetryOn::Timeout),
                "signal" => on.push(RetryOn::Signal),
                "verify" => on.push(RetryOn::Verify),
                other => {
                    let msg = format!(
                        "retry_on: unknown kind {other:?}; use exit, timeout, signal or verify"
                    );
                    self.sink.error(w.loc, t.subject(), msg);
                    return None;
                }
            }
        }
        Some(At {
            v: on,
            loc: list.loc,
        })
    }

    /// A list of exit codes (`success_codes`, `warning_codes`, `retry_codes`,
    /// `no_retry_codes`): non-empty, each 0 to 255.
    fn codes(&mut self, t: &TableReader, key: &str) -> Option<At<Vec<i32>>> {
        let v = t.raw(key)?;
        let loc = t.loc_of(v);
        let items = match &v.kind {
            Kind::Array(items) if !items.is_empty() => items,
            _ => {
                self.sink.error(
                    loc,
                    t.subject(),
                    format!("{key}: expected a non-empty array of exit codes, e.g. [0, 1]"),
                );
                return None;
            }
        };
        let mut codes = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            match item.as_integer() {
                Some(n) if (0..=255).contains(&n) => codes.push(n as i32),
                _ => {
                    ok = false;
                    self.sink.error(
                        t.loc_of(item),
                        t.subject(),
                        format!("{key}: each element must be an exit code 0-255"),
                    );
                }
            }
        }
        ok.then_some(At { v: codes, loc })
    }

    /// `env`: variables by name (no `=` or NUL in a name).
    fn env_entries(&mut self, t: &TableReader) -> Entries {
        let map = t.string_map(self.sink, "env").unwrap_or_default();
        let mut env = Entries::with_capacity(map.len());
        for (k, v) in map {
            if k.v.is_empty() || k.v.contains(['=', '\0']) {
                self.sink.error(
                    k.loc,
                    t.subject(),
                    format!("env: {:?} is not a valid variable name", k.v),
                );
                continue;
            }
            env.insert(k.v.clone(), (k, v));
        }
        env
    }

    /// `tags`: words (`[A-Za-z0-9_.-]`, not empty), a repeated one dropped.
    fn tags(&mut self, t: &TableReader) -> Option<At<Vec<At<String>>>> {
        let mut list = t.strings(self.sink, "tags", true)?;
        let mut seen = std::collections::BTreeSet::new();
        let mut ok = true;
        for w in &list.v {
            let word = !w.v.is_empty()
                && w.v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !word {
                let msg = format!(
                    "tags: {:?} is not a word (letters, digits, '_', '.', '-')",
                    w.v
                );
                self.sink.error(w.loc, t.subject(), msg);
                ok = false;
            }
        }
        list.v.retain(|w| seen.insert(w.v.clone()));
        ok.then_some(list)
    }

    /// `env_file`: absolute paths, each optionally written with a leading `-` (a missing
    /// file is then fine).
    fn env_files(&mut self, t: &TableReader) -> Vec<At<EnvFile>> {
        let Some(list) = t.strings(self.sink, "env_file", true) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in list.v {
            let (optional, path) = match item.v.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, item.v.as_str()),
            };
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                let msg = format!(
                    "env_file: {:?} must be an absolute path (with a leading - if it may be \
                     missing)",
                    item.v
                );
                self.sink.error(item.loc, t.subject(), msg);
                continue;
            }
            out.push(At {
                v: EnvFile { path, optional },
                loc: item.loc,
            });
        }
        out
    }

    /// `credentials`: file names (`[A-Za-z0-9_.-]`, not `.` or `..`) and the absolute paths
    /// of the files copied under them.
    fn credential_entries(&mut self, t: &TableReader) -> Entries {
        let map = t.string_map(self.sink, "credentials").unwrap_or_default();
        let mut out = Entries::with_capacity(map.len());
        for (k, v) in map {
            let valid = !k.v.is_empty()
                && k.v != "."
                && k.v != ".."
                && k.v.len() <= 255
                && k.v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !valid {
                let msg = format!(
                    "credentials: {:?} is not a credential name (letters, digits, '_', '.', \
                     '-'; the file name under $CREDENTIALS_DIRECTORY)",
                    k.v
                );
                self.sink.error(k.loc, t.subject(), msg);
                continue;
            }
            if !v.v.starts_with('/') {
                let msg = format!("credentials.{}: {:?} must be an absolute path", k.v, v.v);
                self.sink.error(v.loc, t.subject(), msg);
                continue;
            }
            out.insert(k.v.clone(), (k, v));
        }
        out
    }

    /// `params`: the parameters placeholders may name (`[A-Za-z_][A-Za-z0-9_]*`).
    fn param_entries(&mut self, t: &TableReader) -> Entries {
        let map = t.string_map(self.sink, "params").unwrap_or_default();
        let mut params = Entries::with_capacity(map.len());
        for (k, v) in map {
            let valid =
                k.v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && k.v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                self.sink.error(
                    k.loc,
                    t.subject(),
                    format!(
                        "params: {:?} is not a valid parameter name ([A-Za-z_][A-Za-z0-9_]*)",
                        k.v
                    ),
                );
                continue;
            }
            params.insert(k.v.clone(), (k, v));
        }
        params
    }
}

/// `cpu_max`: a percentage of one CPU, `"50%"` (`"200%"` is two CPUs).
fn cpu_percent(t: &TableReader, sink: &mut crate::diag::Sink) -> Option<At<u32>> {
    let s = t.string(sink, "cpu_max")?;
    let n =
        s.v.strip_suffix('%')
            .and_then(|n| n.trim().parse::<u32>().ok())
            .filter(|n| (1..=100_000).contains(n));
    match n {
        Some(n) => Some(At { v: n, loc: s.loc }),
        None => {
            let msg = format!(
                "cpu_max: {:?} is not a percentage of one CPU such as \"50%\" (1% to 100000%)",
                s.v
            );
            sink.error(s.loc, t.subject(), msg);
            None
        }
    }
}

/// `retry_backoff`: a factor of 1.0 or more.
fn retry_backoff(t: &TableReader, sink: &mut crate::diag::Sink) -> Option<At<f64>> {
    let b = t.float(sink, "retry_backoff")?;
    if b.v < 1.0 {
        sink.error(
            b.loc,
            t.subject(),
            format!(
                "retry_backoff: {} would shrink the delays; use 1.0 (constant) or more",
                b.v
            ),
        );
        return None;
    }
    Some(b)
}

/// `memory_max`: a size of 1 MiB or more.
fn memory_max(t: &TableReader, sink: &mut crate::diag::Sink) -> Option<At<u64>> {
    let m = t.size(sink, "memory_max")?;
    if m.v < 1 << 20 {
        let msg = format!(
            "memory_max: {} bytes is too small to run anything; use 1MiB or more",
            m.v
        );
        sink.error(m.loc, t.subject(), msg);
        return None;
    }
    Some(m)
}

/// `verify`: a table of `files`, `min_size`, `fresh`, `min_ratio` and `max_ratio`.
fn verify(t: &TableReader, sink: &mut crate::diag::Sink, s: &mut JobSpec) {
    if let Some(vt) = t.table(sink, "verify") {
        vt.check_keys(sink, VERIFY_KEYS, "verify");
        s.verify_files = vt.strings(sink, "files", true);
        s.verify_min_size = vt.size(sink, "min_size");
        s.verify_fresh = vt.bool(sink, "fresh");
        s.verify_min_ratio = ratio(&vt, sink, "min_ratio");
        s.verify_max_ratio = ratio(&vt, sink, "max_ratio");
    }
}

/// `verify.min_ratio` / `verify.max_ratio`: a positive, finite number.
fn ratio(t: &TableReader, sink: &mut crate::diag::Sink, key: &str) -> Option<At<f64>> {
    let r = t.float(sink, key)?;
    if r.v > 0.0 {
        return Some(r);
    }
    let msg = format!("verify.{key}: {} must be above 0 (e.g. 0.8)", r.v);
    sink.error(r.loc, t.subject(), msg);
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn job_subject_is_the_debug_form() {
        let names = [
            "backup",
            "a-b_c.d",
            "with space",
            "qu\"ote",
            "back\\slash",
            "é",
            "tab\t",
            "'",
            "~",
        ];
        for name in names {
            assert_eq!(
                super::job_subject(name),
                format!("job {name:?}"),
                "{name:?}"
            );
        }
    }
}
