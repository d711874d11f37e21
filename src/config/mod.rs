//! The job table: TOML text -> a typed [`Config`], with every problem reported in one pass.
//!
//! Loading has two stages. The reader ([`reader`]) turns each table into typed values and
//! records a diagnostic for each bad value (file:line:col, job or channel, what and why). The
//! semantic pass then merges `[defaults]` into each job and checks what needs the whole table:
//! alert and `after` names, dependency cycles, pipelines whose parents share no root. `check`,
//! the daemon's start and its reload all call [`load`], so they agree on what is valid.

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

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::tz::TimeZone;

use crate::diag::{Diagnostic, Loc, Severity, Sink, suggest};
use job_spec::JobSpec;
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
