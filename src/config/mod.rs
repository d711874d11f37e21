//! The job table: TOML text -> a typed [`Config`], with every problem reported in one pass.
//!
//! Loading has two stages. The reader ([`reader`]) turns each table into typed values and
//! records a diagnostic for each bad value (file:line:col, job or channel, what and why). The
//! semantic pass then merges `[defaults]` into each job and checks what needs the whole table:
//! alert and `after` names, dependency cycles, pipelines whose parents share no root. `check`,
//! the daemon's start and its reload all call [`load`], so they agree on what is valid.

mod after_graph;
mod alerts;
mod cluster;
mod job;
mod job_checks;
mod job_spec;
pub mod reader;
mod secret;
mod settings;
pub mod toml_tree;

pub use alerts::{AlertChannel, AlertEvent, AlertKind, SmtpTls, SmtpTransport, WebhookFormat};
pub use cluster::{Cluster, ClusterUrl};
pub use job::{Catchup, CommandLine, Job, Overlap, Retry, Verify};
pub use secret::Secret;
pub use settings::{LogFormat, Settings};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::tz::TimeZone;

use crate::diag::{Diagnostic, Loc, Severity, Sink, suggest};
use reader::{At, TableReader};
use toml_tree::{Kind, Table};

const TOP_KEYS: &[&str] = &[
    "include", "settings", "defaults", "alerts", "cluster", "jobs",
];
const INCLUDE_KEYS: &[&str] = &["alerts", "jobs"];
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

        let specs = self.job_specs(&readers);

        let jobs: Vec<Job> = specs
            .iter()
            .filter_map(|(name, loc, spec)| {
                self.finish_job(name, *loc, spec, settings.as_ref(), &alert_locs)
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
}
