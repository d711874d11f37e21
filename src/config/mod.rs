//! The job table: TOML text -> a typed [`Config`], with every problem reported in one pass.
//!
//! Loading has two stages. The reader ([`reader`]) turns each table into typed values and
//! records a diagnostic for each bad value (file:line:col, job or channel, what and why). The
//! semantic pass then merges `[defaults]` into each job and checks what needs the whole table:
//! alert and `after` names, dependency cycles, pipelines whose parents share no root. `check`,
//! the daemon's start and its reload all call [`load`], so they agree on what is valid.

mod alerts;
mod cluster;
pub mod reader;
mod secret;
mod settings;
pub mod toml_tree;

pub use alerts::{AlertChannel, AlertEvent, AlertKind, SmtpTls, SmtpTransport, WebhookFormat};
pub use cluster::{Cluster, ClusterUrl};
pub use secret::Secret;
pub use settings::{LogFormat, Settings};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::diag::{Diagnostic, Loc, Severity, Sink, suggest};
use crate::schedule::{Expr, Schedule};
use crate::template;
use reader::{At, TableReader};
use toml_tree::{Kind, Table};

const TOP_KEYS: &[&str] = &[
    "include", "settings", "defaults", "alerts", "cluster", "jobs",
];
const INCLUDE_KEYS: &[&str] = &["alerts", "jobs"];
/// Every key a job (or `[defaults]`) may set.
pub const JOB_KEYS: &[&str] = &[
    "schedule",
    "command",
    "shell",
    "stdin",
    "timezone",
    "user",
    "group",
    "workdir",
    "env",
    "umask",
    "nice",
    "timeout",
    "kill_grace",
    "retries",
    "retry_delay",
    "retry_backoff",
    "retry_max_delay",
    "retry_jitter",
    "success_codes",
    "output_limit",
    "verify",
    "overlap",
    "catchup",
    "jitter",
    "after",
    "alert",
    "healthcheck_url",
    "params",
    "enabled",
];
const VERIFY_KEYS: &[&str] = &["files", "min_size", "fresh"];
/// The whole job table, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// The main file.
    pub path: PathBuf,
    /// The main file and every included file, in load order.
    pub files: Vec<PathBuf>,
    pub settings: Settings,
    pub alerts: Vec<AlertChannel>,
    pub cluster: Option<Cluster>,
    pub jobs: Vec<Job>,
}

impl Config {
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }

    pub fn alert(&self, name: &str) -> Option<&AlertChannel> {
        self.alerts.iter().find(|a| a.name == name)
    }

    /// The jobs that name `name` in their `after`, in table order.
    pub fn children(&self, name: &str) -> Vec<&Job> {
        self.jobs
            .iter()
            .filter(|j| j.after.iter().any(|a| a == name))
            .collect()
    }
}

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

/// The result of loading a table: the config when there was no error, and every diagnostic
/// (errors and warnings) either way.
pub struct Loaded {
    pub config: Option<Config>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

/// Options that depend on who loads the table.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Enforce root ownership and no group/other write bits on every table file, and allow
    /// `user`/`group` without a warning.
    pub as_root: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            as_root: crate::paths::is_root(),
        }
    }
}

/// Loads and validates a job table and the files it includes.
pub fn load(path: &Path, opts: LoadOptions) -> Loaded {
    let mut sink = Sink::default();
    let config = Loader {
        sink: &mut sink,
        opts,
        zones: HashMap::new(),
    }
    .load(path);
    let failed = sink.has_errors();
    // Report in file order, then line order: the way an editor shows them.
    let order: HashMap<PathBuf, usize> = sink
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.clone(), i))
        .collect();
    sink.diags.sort_by_key(|d| {
        (
            order.get(&d.file).copied().unwrap_or(usize::MAX),
            d.line,
            d.col,
        )
    });
    Loaded {
        config: if failed { None } else { config },
        diagnostics: sink.diags,
    }
}

struct Loader<'s> {
    sink: &'s mut Sink,
    opts: LoadOptions,
    /// Zones by name: a table names a few zones for many jobs.
    zones: HashMap<String, Option<TimeZone>>,
}

/// One parsed file.
struct Doc {
    file: usize,
    /// Shared with the diagnostics' copy of the file (no copy of the text is made).
    text: Arc<String>,
}

impl Loader<'_> {
    fn read(&mut self, path: &Path) -> Option<Doc> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    " (create it, or pass another table with -c FILE or $CRONWARDEN_CONFIG)"
                } else {
                    ""
                };
                self.sink
                    .file_error(path, format!("cannot read the job table: {e}{hint}"));
                return None;
            }
        };
        self.check_permissions(path);
        let text = Arc::new(text);
        let file = self.sink.add_file(path.to_path_buf(), Arc::clone(&text));
        Some(Doc { file, text })
    }

    fn check_permissions(&mut self, path: &Path) {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.mode() & 0o7777;
        if self.opts.as_root {
            if meta.uid() != 0 {
                self.sink.file_error(
                    path,
                    format!(
                        "refusing a table not owned by root (owner uid {}): whoever owns it \
                         could run anything as root. Fix: chown root:root {}",
                        meta.uid(),
                        path.display()
                    ),
                );
            }
            if mode & 0o022 != 0 {
                self.sink.file_error(
                    path,
                    format!(
                        "refusing a table writable by group or others (mode {mode:04o}), as \
                         cron does. Fix: chmod go-w {}",
                        path.display()
                    ),
                );
            }
        } else if mode & 0o002 != 0 {
            self.sink.diags.push(Diagnostic {
                severity: Severity::Warning,
                file: path.to_path_buf(),
                line: 0,
                col: 0,
                subject: None,
                message: format!(
                    "the table is writable by every user (mode {mode:04o}); fix: chmod o-w {}",
                    path.display()
                ),
            });
        }
    }

    fn parse<'t>(&mut self, doc: &'t Doc) -> Table<'t> {
        let parsed = toml_tree::parse(&doc.text);
        for e in &parsed.errors {
            self.sink.error(
                Loc {
                    file: doc.file,
                    offset: e.offset(),
                },
                None,
                format!("TOML syntax: {}", e.message.trim()),
            );
        }
        parsed.root
    }

    fn load(&mut self, path: &Path) -> Option<Config> {
        let main = self.read(path)?;
        let main_table = self.parse(&main);
        let top = TableReader::new(&main_table, main.file, Loc::default(), None);
        top.check_keys(self.sink, TOP_KEYS, "top-level");

        // Drop-in files.
        let mut docs = Vec::new();
        if let Some(patterns) = top.strings(self.sink, "include", true) {
            let base = path.parent().unwrap_or(Path::new("."));
            for pat in patterns.v {
                let full = if Path::new(&pat.v).is_absolute() {
                    PathBuf::from(&pat.v)
                } else {
                    base.join(&pat.v)
                };
                let matches = match glob::glob(&full.to_string_lossy()) {
                    Ok(m) => m,
                    Err(e) => {
                        self.sink.error(
                            pat.loc,
                            None,
                            format!("include: bad pattern {:?}: {e}", pat.v),
                        );
                        continue;
                    }
                };
                let mut paths: Vec<PathBuf> = matches.filter_map(Result::ok).collect();
                paths.sort();
                for p in paths {
                    if let Some(doc) = self.read(&p) {
                        docs.push(doc);
                    }
                }
            }
        }
        let inc_tables: Vec<_> = docs.iter().map(|d| (d.file, self.parse(d))).collect();

        let settings = self.settings(&top);
        let mut readers = vec![top];
        for (file, t) in &inc_tables {
            let r = TableReader::new(
                t,
                *file,
                Loc {
                    file: *file,
                    offset: 0,
                },
                None,
            );
            r.check_keys(self.sink, INCLUDE_KEYS, "drop-in file top-level");
            readers.push(r);
        }

        let cluster = readers[0]
            .table(self.sink, "cluster")
            .and_then(|t| self.cluster(t));

        let (alerts, alert_locs) = self.alert_channels(&readers);

        // [defaults], then jobs from every file.
        let defaults = match readers[0].table(self.sink, "defaults") {
            Some(t) => {
                let t = TableReader::new_from(t, Some("[defaults]".to_string()));
                t.check_keys(self.sink, JOB_KEYS, "job");
                self.job_spec(&t)
            }
            None => JobSpec::default(),
        };
        let mut specs: Vec<(String, Loc, JobSpec)> = Vec::new();
        let mut job_locs: HashMap<String, Loc> = HashMap::new();
        for r in &readers {
            let Some(t) = r.table(self.sink, "jobs") else {
                continue;
            };
            for (name, loc, value) in t.entries() {
                let subject = format!("job {name:?}");
                if let Some(first) = job_locs.get(name) {
                    let (p, (l, _)) = self.where_is(*first);
                    self.sink.error(
                        loc,
                        Some(&subject),
                        format!("defined twice (first at {}:{l})", p.display()),
                    );
                    continue;
                }
                job_locs.insert(name.to_string(), loc);
                self.check_name(name, loc, &subject);
                let Some(jt) = t.table_value(self.sink, name, value) else {
                    continue;
                };
                let mut jt = TableReader::new_from(jt, Some(subject));
                jt.loc = loc;
                jt.check_keys(self.sink, JOB_KEYS, "job");
                let spec = self.job_spec(&jt);
                specs.push((name.to_string(), loc, spec.merged_over(&defaults)));
            }
        }

        let jobs: Vec<Job> = specs
            .iter()
            .filter_map(|(name, loc, spec)| {
                self.finish_job(name, *loc, spec, &settings, &alert_locs)
            })
            .collect();
        self.check_graph(&specs);

        let settings = settings?;
        let mut files = vec![path.to_path_buf()];
        files.extend(docs.iter().map(|d| self.sink.path(d.file).to_path_buf()));
        Some(Config {
            path: path.to_path_buf(),
            files,
            settings,
            alerts,
            cluster,
            jobs,
        })
    }

    /// Whether an error was reported since the diagnostics numbered `mark`.
    fn errors_since(&self, mark: usize) -> bool {
        self.sink.diags[mark..]
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Records where `name` is first defined; a second definition is reported, with where
    /// the first one is, and gives `false`.
    fn first_definition(
        &mut self,
        seen: &mut HashMap<String, Loc>,
        name: &str,
        loc: Loc,
        subject: &str,
    ) -> bool {
        if let Some(first) = seen.get(name) {
            let (p, (l, _)) = self.where_is(*first);
            self.sink.error(
                loc,
                Some(subject),
                format!("defined twice (first at {}:{l})", p.display()),
            );
            return false;
        }
        seen.insert(name.to_string(), loc);
        true
    }

    fn where_is(&self, loc: Loc) -> (PathBuf, (usize, usize)) {
        match self.sink.files.get(loc.file) {
            Some(f) => (f.path.clone(), f.line_col(loc.offset)),
            None => (PathBuf::from("?"), (0, 0)),
        }
    }

    /// Job and channel names become file names and log fields: keep them plain.
    fn check_name(&mut self, name: &str, loc: Loc, subject: &str) {
        let ok = !name.is_empty()
            && name.len() <= 100
            && !name.starts_with(['.', '-'])
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            self.sink.error(
                loc,
                Some(subject),
                "names may use ASCII letters, digits, '_', '-' and '.', may not start with '.' \
                 or '-', and are at most 100 characters",
            );
        }
    }

    fn zone(&mut self, r: &TableReader, key: &str) -> Option<(String, TimeZone)> {
        let name = r.nonempty(self.sink, key)?;
        let found = self
            .zones
            .entry(name.v.clone())
            .or_insert_with(|| crate::schedule::load_zone(&name.v).ok())
            .clone();
        match found {
            Some(tz) => Some((name.v, tz)),
            None => {
                let names: Vec<String> = jiff::tz::db()
                    .available()
                    .map(|n| n.as_str().to_string())
                    .collect();
                let hint = suggest(&name.v, names.iter().map(String::as_str))
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                self.sink.error(
                    name.loc,
                    r.subject(),
                    format!(
                        "{key}: unknown time zone {:?}{hint}; use an IANA name such as \
                         \"Europe/Berlin\" or \"UTC\"",
                        name.v
                    ),
                );
                None
            }
        }
    }

    fn abs_path(&mut self, r: &TableReader, key: &str) -> Option<At<PathBuf>> {
        let s = r.nonempty(self.sink, key)?;
        let p = PathBuf::from(&s.v);
        if !p.is_absolute() {
            self.sink.error(
                s.loc,
                r.subject(),
                format!("{key}: {:?} must be an absolute path", s.v),
            );
            return None;
        }
        Some(At { v: p, loc: s.loc })
    }

    fn command(&mut self, t: &TableReader, key: &str) -> Option<At<CommandLine>> {
        let v = t.raw(key)?;
        match &v.kind {
            Kind::String(_) => {
                let s = t.nonempty(self.sink, key)?;
                Some(At {
                    v: CommandLine::Shell(s.v),
                    loc: s.loc,
                })
            }
            _ => {
                let list = t.strings(self.sink, key, false)?;
                match list.v.first() {
                    Some(first) if !first.v.is_empty() => Some(At {
                        v: CommandLine::Argv(list.v.into_iter().map(|a| a.v).collect()),
                        loc: list.loc,
                    }),
                    _ => {
                        self.sink.error(
                            list.loc,
                            t.subject(),
                            format!("{key}: the first element must name the program to run"),
                        );
                        None
                    }
                }
            }
        }
    }

    fn job_spec(&mut self, t: &TableReader) -> JobSpec {
        let sink = &mut *self.sink;
        let mut s = JobSpec {
            schedule: None,
            command: None,
            shell: None,
            stdin: t.string(sink, "stdin"),
            timezone: None,
            user: t.nonempty(sink, "user"),
            group: t.nonempty(sink, "group"),
            workdir: None,
            env: BTreeMap::new(),
            umask: None,
            nice: t.int(sink, "nice", -20, 19).map(|a| At {
                v: a.v as i32,
                loc: a.loc,
            }),
            timeout: t.duration(sink, "timeout"),
            kill_grace: t.duration(sink, "kill_grace"),
            retries: t.int(sink, "retries", 0, 10_000).map(|a| At {
                v: a.v as u32,
                loc: a.loc,
            }),
            retry_delay: t.duration(sink, "retry_delay"),
            retry_backoff: t.float(sink, "retry_backoff"),
            retry_max_delay: t.duration(sink, "retry_max_delay"),
            retry_jitter: t.bool(sink, "retry_jitter"),
            success_codes: None,
            output_limit: t.size(sink, "output_limit"),
            verify_files: None,
            verify_min_size: None,
            verify_fresh: None,
            overlap: t
                .choice(sink, "overlap", &["skip", "queue", "replace", "allow"])
                .map(|a| At {
                    v: match a.v.as_str() {
                        "queue" => Overlap::Queue,
                        "replace" => Overlap::Replace,
                        "allow" => Overlap::Allow,
                        _ => Overlap::Skip,
                    },
                    loc: a.loc,
                }),
            catchup: t
                .choice(sink, "catchup", &["none", "once", "all"])
                .map(|a| At {
                    v: match a.v.as_str() {
                        "once" => Catchup::Once,
                        "all" => Catchup::All,
                        _ => Catchup::None,
                    },
                    loc: a.loc,
                }),
            jitter: t.duration(sink, "jitter"),
            after: t.strings(sink, "after", true),
            alert: t.strings(sink, "alert", true),
            healthcheck_url: t.nonempty(sink, "healthcheck_url"),
            params: BTreeMap::new(),
            enabled: t.bool(sink, "enabled"),
            failed_command: false,
            failed_schedule: false,
        };
        if let Some(b) = &s.retry_backoff
            && b.v < 1.0
        {
            sink.error(
                b.loc,
                t.subject(),
                format!(
                    "retry_backoff: {} would shrink the delays; use 1.0 (constant) or more",
                    b.v
                ),
            );
            s.retry_backoff = None;
        }
        if let Some(u) = &s.healthcheck_url
            && !(u.v.starts_with("http://") || u.v.starts_with("https://"))
        {
            sink.error(
                u.loc,
                t.subject(),
                format!(
                    "healthcheck_url: {:?} must start with http:// or https://",
                    u.v
                ),
            );
        }
        if let Some(v) = t.raw("umask") {
            let loc = t.loc_of(v);
            let parsed = match &v.kind {
                Kind::String(text)
                    if (1..=4).contains(&text.len())
                        && text.bytes().all(|b| (b'0'..=b'7').contains(&b)) =>
                {
                    u32::from_str_radix(text, 8).ok()
                }
                Kind::Integer { value, radix: 8 } => {
                    u32::try_from(*value).ok().filter(|m| *m <= 0o777)
                }
                _ => None,
            };
            match parsed {
                Some(m) => s.umask = Some(At { v: m, loc }),
                None => sink.error(
                    loc,
                    t.subject(),
                    "umask: write octal digits as a string, e.g. \"022\" or \"077\"",
                ),
            }
        }
        if let Some(v) = t.raw("success_codes") {
            let loc = t.loc_of(v);
            let mut codes = Vec::new();
            let mut ok = true;
            match &v.kind {
                Kind::Array(items) if !items.is_empty() => {
                    for item in items.iter() {
                        let n = item.as_integer();
                        match n {
                            Some(n) if (0..=255).contains(&n) => codes.push(n as i32),
                            _ => {
                                ok = false;
                                sink.error(
                                    t.loc_of(item),
                                    t.subject(),
                                    "success_codes: each element must be an exit code 0-255",
                                );
                            }
                        }
                    }
                }
                _ => {
                    ok = false;
                    sink.error(
                        loc,
                        t.subject(),
                        "success_codes: expected a non-empty array of exit codes, e.g. [0, 1]",
                    );
                }
            }
            if ok {
                s.success_codes = Some(At { v: codes, loc });
            }
        }
        if let Some(vt) = t.table(sink, "verify") {
            vt.check_keys(sink, VERIFY_KEYS, "verify");
            s.verify_files = vt.strings(sink, "files", true);
            s.verify_min_size = vt.size(sink, "min_size");
            s.verify_fresh = vt.bool(sink, "fresh");
        }
        if let Some(env) = t.string_map(sink, "env") {
            for (k, v) in env {
                if k.v.is_empty() || k.v.contains(['=', '\0']) {
                    sink.error(
                        k.loc,
                        t.subject(),
                        format!("env: {:?} is not a valid variable name", k.v),
                    );
                    continue;
                }
                s.env.insert(k.v.clone(), (k, v));
            }
        }
        if let Some(params) = t.string_map(sink, "params") {
            for (k, v) in params {
                let valid =
                    k.v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && k.v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !valid {
                    sink.error(
                        k.loc,
                        t.subject(),
                        format!(
                            "params: {:?} is not a valid parameter name ([A-Za-z_][A-Za-z0-9_]*)",
                            k.v
                        ),
                    );
                    continue;
                }
                s.params.insert(k.v.clone(), (k, v));
            }
        }
        s.schedule =
            t.nonempty(self.sink, "schedule")
                .and_then(|text| match Expr::parse(&text.v) {
                    Ok(e) if !e.can_fire() => {
                        self.sink.error(
                            text.loc,
                            t.subject(),
                            format!(
                                "schedule {:?} can never fire: no selected month has a selected \
                             day of the month in any year",
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
                        self.sink.error(
                            text.loc,
                            t.subject(),
                            format!("schedule {:?}: {e}", text.v),
                        );
                        None
                    }
                });
        s.failed_schedule = s.schedule.is_none() && t.has("schedule");
        s.command = self.command(t, "command");
        s.failed_command = s.command.is_none() && t.has("command");
        s.shell = self.abs_path(t, "shell");
        s.workdir = self.abs_path(t, "workdir");
        s.timezone = self.zone(t, "timezone").map(|z| At { v: z, loc: t.loc });
        s
    }

    fn finish_job(
        &mut self,
        name: &str,
        loc: Loc,
        s: &JobSpec,
        settings: &Option<Settings>,
        alerts: &HashMap<String, Loc>,
    ) -> Option<Job> {
        let subject = format!("job {name:?}");
        let subj = Some(subject.as_str());
        let errors_before = self.sink.diags.len();
        if s.command.is_none() && !s.failed_command {
            self.sink.error(
                loc,
                subj,
                "no command: add command = [\"/path/to/program\", \"arg\"] or command = \"shell \
                 text\"",
            );
        }
        if s.schedule.is_none() && s.after.is_none() && !s.failed_schedule {
            self.sink.error(
                loc,
                subj,
                "no schedule and no after: add schedule = \"0 3 * * *\" (or \"@manual\" for a \
                 job run only by hand) or after = [\"other-job\"]",
            );
        }
        let params: BTreeMap<String, String> = s
            .params
            .iter()
            .map(|(k, (_, v))| (k.clone(), v.v.clone()))
            .collect();
        if let Some(cmd) = &s.command {
            let texts: Vec<(&str, bool)> = match &cmd.v {
                CommandLine::Argv(a) => a.iter().map(|x| (x.as_str(), true)).collect(),
                CommandLine::Shell(text) => vec![(text.as_str(), false)],
            };
            for (text, allow_params) in texts {
                for p in template::check(text, &params, allow_params) {
                    self.sink.error(cmd.loc, subj, format!("command: {p}"));
                }
            }
        }
        for (key, (_, v)) in &s.env {
            for p in template::check(&v.v, &params, true) {
                self.sink.error(v.loc, subj, format!("env.{key}: {p}"));
            }
        }
        if let Some(files) = &s.verify_files {
            if files.v.is_empty() {
                self.sink
                    .error(files.loc, subj, "verify.files: name at least one file");
            }
            for f in &files.v {
                for p in template::check(&f.v, &params, true) {
                    self.sink.error(f.loc, subj, format!("verify.files: {p}"));
                }
            }
        } else if let Some(v) = s
            .verify_min_size
            .as_ref()
            .map(|a| a.loc)
            .or(s.verify_fresh.as_ref().map(|a| a.loc))
        {
            self.sink
                .error(v, subj, "verify: min_size and fresh need verify.files");
        }
        if let Some(list) = &s.alert {
            for a in &list.v {
                if !alerts.contains_key(&a.v) {
                    let hint = suggest(&a.v, alerts.keys().map(String::as_str))
                        .map(|h| format!(" (did you mean {h:?}?)"))
                        .unwrap_or_default();
                    self.sink.error(
                        a.loc,
                        subj,
                        format!("alert: no channel [alerts.{}] is defined{hint}", a.v),
                    );
                }
            }
        }
        if self.opts.as_root {
            if let Some(u) = &s.user
                && !matches!(nix::unistd::User::from_name(&u.v), Ok(Some(_)))
            {
                self.sink.warning(
                    u.loc,
                    subj,
                    format!("user {:?} does not exist on this machine", u.v),
                );
            }
            if let Some(g) = &s.group
                && !matches!(nix::unistd::Group::from_name(&g.v), Ok(Some(_)))
            {
                self.sink.warning(
                    g.loc,
                    subj,
                    format!("group {:?} does not exist on this machine", g.v),
                );
            }
        } else {
            for key in [&s.user, &s.group].into_iter().flatten() {
                self.sink.warning(
                    key.loc,
                    subj,
                    format!(
                        "user/group {:?} is set but cronwarden is not running as root: the job \
                         cannot switch to it and will fail to start",
                        key.v
                    ),
                );
            }
        }
        if self.sink.diags[errors_before..]
            .iter()
            .any(|d| d.severity == Severity::Error)
            || s.failed_command
        {
            return None;
        }
        let settings = settings.as_ref()?;
        let (timezone, tz) = match &s.timezone {
            Some(z) => (Some(z.v.0.clone()), z.v.1.clone()),
            None => (settings.timezone.clone(), settings.tz.clone()),
        };
        let (path, (line, _)) = self.where_is(loc);
        Some(Job {
            name: name.to_string(),
            schedule_text: s.schedule.as_ref().map(|a| a.v.0.clone()),
            schedule: s
                .schedule
                .as_ref()
                .map(|a| Schedule::new(a.v.1.clone(), tz.clone())),
            timezone,
            tz,
            command: s.command.as_ref()?.v.clone(),
            shell: s
                .shell
                .as_ref()
                .map_or_else(|| PathBuf::from("/bin/sh"), |a| a.v.clone()),
            stdin: s.stdin.as_ref().map(|a| a.v.clone()),
            user: s.user.as_ref().map(|a| a.v.clone()),
            group: s.group.as_ref().map(|a| a.v.clone()),
            workdir: s.workdir.as_ref().map(|a| a.v.clone()),
            env: s
                .env
                .iter()
                .map(|(k, (_, v))| (k.clone(), v.v.clone()))
                .collect(),
            umask: s.umask.as_ref().map_or(0o022, |a| a.v),
            nice: s.nice.as_ref().map(|a| a.v),
            timeout: s.timeout.as_ref().map(|a| a.v).filter(|d| !d.is_zero()),
            kill_grace: s
                .kill_grace
                .as_ref()
                .map_or(Duration::from_secs(10), |a| a.v),
            retry: Retry {
                retries: s.retries.as_ref().map_or(0, |a| a.v),
                delay: s
                    .retry_delay
                    .as_ref()
                    .map_or(Duration::from_secs(30), |a| a.v),
                backoff: s.retry_backoff.as_ref().map_or(2.0, |a| a.v),
                max_delay: s
                    .retry_max_delay
                    .as_ref()
                    .map_or(Duration::from_secs(3600), |a| a.v),
                jitter: s.retry_jitter.as_ref().is_none_or(|a| a.v),
            },
            success_codes: s
                .success_codes
                .as_ref()
                .map_or_else(|| vec![0], |a| a.v.clone()),
            output_limit: s.output_limit.as_ref().map_or(1 << 20, |a| a.v),
            verify: s.verify_files.as_ref().map(|f| Verify {
                files: f.v.iter().map(|a| a.v.clone()).collect(),
                min_size: s.verify_min_size.as_ref().map_or(1, |a| a.v),
                fresh: s.verify_fresh.as_ref().is_none_or(|a| a.v),
            }),
            overlap: s.overlap.as_ref().map_or(Overlap::Skip, |a| a.v),
            catchup: s.catchup.as_ref().map_or(Catchup::None, |a| a.v),
            jitter: s.jitter.as_ref().map(|a| a.v).filter(|d| !d.is_zero()),
            after: s
                .after
                .as_ref()
                .map(|l| l.v.iter().map(|a| a.v.clone()).collect())
                .unwrap_or_default(),
            alert: s
                .alert
                .as_ref()
                .map(|l| l.v.iter().map(|a| a.v.clone()).collect())
                .unwrap_or_default(),
            healthcheck_url: s.healthcheck_url.as_ref().map(|a| a.v.clone()),
            params,
            enabled: s.enabled.as_ref().is_none_or(|a| a.v),
            defined_at: (path, line),
        })
    }

    /// Unknown `after` names, dependency cycles, and fan-ins whose parents share no root.
    fn check_graph(&mut self, specs: &[(String, Loc, JobSpec)]) {
        let index: HashMap<&str, usize> = specs
            .iter()
            .enumerate()
            .map(|(i, (n, _, _))| (n.as_str(), i))
            .collect();
        let mut edges: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
        for (i, (name, _, spec)) in specs.iter().enumerate() {
            let Some(after) = &spec.after else { continue };
            if after.v.is_empty() {
                self.sink.error(
                    after.loc,
                    Some(&format!("job {name:?}")),
                    "after: name at least one job",
                );
            }
            for a in &after.v {
                match index.get(a.v.as_str()) {
                    Some(&j) if j == i => self.sink.error(
                        a.loc,
                        Some(&format!("job {name:?}")),
                        format!("after: a job cannot run after itself (cycle {name} -> {name})"),
                    ),
                    Some(&j) => edges[i].push(j),
                    None => {
                        let hint = suggest(&a.v, specs.iter().map(|(n, _, _)| n.as_str()))
                            .map(|h| format!(" (did you mean {h:?}?)"))
                            .unwrap_or_default();
                        self.sink.error(
                            a.loc,
                            Some(&format!("job {name:?}")),
                            format!("after: no job named {:?}{hint}", a.v),
                        );
                    }
                }
            }
        }
        // Cycles: depth-first search over "runs after" edges; report each cycle once.
        let mut state = vec![0u8; specs.len()]; // 0 new, 1 on stack, 2 done
        let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
        let mut cyclic = vec![false; specs.len()];
        for start in 0..specs.len() {
            if state[start] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&child) = edges[node].get(*next) {
                    *next += 1;
                    match state[child] {
                        0 => {
                            state[child] = 1;
                            stack.push((child, 0));
                        }
                        1 => {
                            let pos = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                            let cycle: Vec<usize> = stack[pos..].iter().map(|(n, _)| *n).collect();
                            let mut key = cycle.clone();
                            key.sort_unstable();
                            for &c in &cycle {
                                cyclic[c] = true;
                            }
                            if reported.insert(key) {
                                // Print in the direction the jobs run: parent -> child.
                                let mut names: Vec<&str> =
                                    cycle.iter().rev().map(|&n| specs[n].0.as_str()).collect();
                                names.push(names[0]);
                                let first = cycle[cycle.len() - 1];
                                let (name, loc, spec) = &specs[first];
                                let at = spec.after.as_ref().map_or(*loc, |a| a.loc);
                                self.sink.error(
                                    at,
                                    Some(&format!("job {name:?}")),
                                    format!("after: dependency cycle {}", names.join(" -> ")),
                                );
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
        if cyclic.iter().any(|c| *c) {
            return;
        }
        // Roots: a job with a schedule, or without `after`, starts pipeline runs of its own.
        let mut roots: Vec<Option<BTreeSet<usize>>> = vec![None; specs.len()];
        fn roots_of(
            i: usize,
            specs: &[(String, Loc, JobSpec)],
            edges: &[Vec<usize>],
            memo: &mut Vec<Option<BTreeSet<usize>>>,
        ) -> BTreeSet<usize> {
            if let Some(r) = &memo[i] {
                return r.clone();
            }
            let mut r = BTreeSet::new();
            if specs[i].2.schedule.is_some() || edges[i].is_empty() {
                r.insert(i);
            }
            for &p in &edges[i] {
                r.extend(roots_of(p, specs, edges, memo));
            }
            memo[i] = Some(r.clone());
            r
        }
        for i in 0..specs.len() {
            if edges[i].len() < 2 {
                continue;
            }
            let sets: Vec<BTreeSet<usize>> = edges[i]
                .iter()
                .map(|&p| roots_of(p, specs, &edges, &mut roots))
                .collect();
            let common = sets.iter().skip(1).fold(sets[0].clone(), |acc, s| {
                acc.intersection(s).copied().collect()
            });
            if common.is_empty() {
                let (name, loc, spec) = &specs[i];
                let describe: Vec<String> = edges[i]
                    .iter()
                    .zip(&sets)
                    .map(|(&p, s)| {
                        let r: Vec<&str> = s.iter().map(|&x| specs[x].0.as_str()).collect();
                        format!("{} (from {})", specs[p].0, r.join(", "))
                    })
                    .collect();
                self.sink.error(
                    spec.after.as_ref().map_or(*loc, |a| a.loc),
                    Some(&format!("job {name:?}")),
                    format!(
                        "after: its parents never run in the same pipeline run, so it could \
                         never start: {}",
                        describe.join("; ")
                    ),
                );
            }
        }
    }
}

/// A job's keys as written (in a job table or `[defaults]`), each with its location.
#[derive(Clone, Debug, Default)]
struct JobSpec {
    schedule: Option<At<(String, Expr)>>,
    command: Option<At<CommandLine>>,
    shell: Option<At<PathBuf>>,
    stdin: Option<At<String>>,
    timezone: Option<At<(String, TimeZone)>>,
    user: Option<At<String>>,
    group: Option<At<String>>,
    workdir: Option<At<PathBuf>>,
    env: BTreeMap<String, (At<String>, At<String>)>,
    umask: Option<At<u32>>,
    nice: Option<At<i32>>,
    timeout: Option<At<Duration>>,
    kill_grace: Option<At<Duration>>,
    retries: Option<At<u32>>,
    retry_delay: Option<At<Duration>>,
    retry_backoff: Option<At<f64>>,
    retry_max_delay: Option<At<Duration>>,
    retry_jitter: Option<At<bool>>,
    success_codes: Option<At<Vec<i32>>>,
    output_limit: Option<At<u64>>,
    verify_files: Option<At<Vec<At<String>>>>,
    verify_min_size: Option<At<u64>>,
    verify_fresh: Option<At<bool>>,
    overlap: Option<At<Overlap>>,
    catchup: Option<At<Catchup>>,
    jitter: Option<At<Duration>>,
    after: Option<At<Vec<At<String>>>>,
    alert: Option<At<Vec<At<String>>>>,
    healthcheck_url: Option<At<String>>,
    params: BTreeMap<String, (At<String>, At<String>)>,
    enabled: Option<At<bool>>,
    /// A key was present but invalid (already reported): do not also call it missing.
    failed_command: bool,
    failed_schedule: bool,
}

impl JobSpec {
    /// This job's keys over `[defaults]`: key by key, and entry by entry for `env`, `params`
    /// and `verify`.
    fn merged_over(mut self, d: &JobSpec) -> JobSpec {
        if self.command.is_none() && !self.failed_command {
            self.failed_command = d.failed_command;
        }
        if self.schedule.is_none() && !self.failed_schedule {
            self.failed_schedule = d.failed_schedule;
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
            retries,
            retry_delay,
            retry_backoff,
            retry_max_delay,
            retry_jitter,
            success_codes,
            output_limit,
            verify_files,
            verify_min_size,
            verify_fresh,
            overlap,
            catchup,
            jitter,
            after,
            alert,
            healthcheck_url,
            enabled
        );
        for (k, v) in &d.env {
            self.env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &d.params {
            self.params.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self
    }
}
