//! Loading a table: reading the main file and its drop-in files (with their permission
//! checks), parsing them, and reading each part of the table in turn (`[settings]`,
//! `[cluster]`, `[alerts]`, `[defaults]` and `[jobs]`) into a [`Config`]. What each part
//! means is in the file named after it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::tz::TimeZone;
use rustc_hash::FxHashMap;

use super::reader::TableReader;
use super::table_file::{self, ReadError};
use super::toml_tree::{self, Table};
use super::{Config, LoadOptions};
use crate::diag::{Diagnostic, Loc, Severity, Sink};
use crate::schedule::{self, Expr};

const TOP_KEYS: &[&str] = &[
    "include", "settings", "defaults", "alerts", "cluster", "jobs",
];
/// What a drop-in file may hold.
const INCLUDE_KEYS: &[&str] = &["alerts", "jobs"];

/// The state of one load: where diagnostics go, who loads, and what was looked up once.
pub(crate) struct Loader<'s> {
    pub(crate) sink: &'s mut Sink,
    pub(crate) opts: LoadOptions,
    /// Zones by name: a table names a few zones for many jobs.
    pub(crate) zones: FxHashMap<String, Option<TimeZone>>,
    /// Parsed `schedule` expressions by text, for the same reason: the heavy 10,000-job table
    /// of `bench/check.sh` has 8,000 schedules of eight distinct texts. Parsing each took 22
    /// of `check`'s 766 million instructions (callgrind); with this, 8 parses take 0.02.
    /// (Both Fx-hashed rather than SipHash-ed: every job looks its schedule up.)
    pub(crate) schedules: FxHashMap<String, Result<Expr, schedule::ParseError>>,
    /// What is left of [`table_file::MAX_TABLE_BYTES`] for the files not read yet.
    bytes_left: u64,
    /// Each file's path, made once for all its jobs ([`Loader::job_file`]).
    job_files: Vec<Option<Arc<PathBuf>>>,
}

/// One parsed file.
struct Doc {
    file: usize,
    /// Shared with the diagnostics' copy of the file (no copy of the text is made).
    text: Arc<String>,
}

impl<'s> Loader<'s> {
    pub(crate) fn new(sink: &'s mut Sink, opts: LoadOptions) -> Loader<'s> {
        Loader {
            sink,
            opts,
            zones: FxHashMap::default(),
            schedules: FxHashMap::default(),
            bytes_left: table_file::MAX_TABLE_BYTES,
            job_files: Vec::new(),
        }
    }

    fn read(&mut self, path: &Path) -> Option<Doc> {
        let (text, meta) = match table_file::read(path, self.bytes_left) {
            Ok(r) => r,
            Err(e) => {
                let why = Self::read_error(e);
                self.sink
                    .file_error(path, format!("cannot read the job table: {why}"));
                return None;
            }
        };
        self.bytes_left -= text.len() as u64;
        self.check_permissions(path, &meta);
        let text = Arc::new(text);
        let file = self.sink.add_file(path.to_path_buf(), Arc::clone(&text));
        Some(Doc { file, text })
    }

    fn read_error(e: ReadError) -> String {
        let limit = format!("{} MiB", table_file::MAX_TABLE_BYTES >> 20);
        match e {
            ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("{e} (create it, or pass another table with -c FILE or $CRONWARDEN_CONFIG)")
            }
            ReadError::Io(e) => e.to_string(),
            ReadError::NotRegular(what) => {
                format!("it is {what}; only regular files are read")
            }
            ReadError::TooLarge { alone: true } => {
                format!("it is larger than {limit}, the most a table file may hold")
            }
            ReadError::TooLarge { alone: false } => format!(
                "it would make the table larger than {limit}, the most the main file and its \
                 drop-in files may hold together"
            ),
        }
    }

    /// The files `include` names (glob patterns, relative to the main file's directory), each
    /// pattern's matches in name order.
    /// Also returns the patterns, made absolute.
    fn drop_in_files(&mut self, top: &TableReader, path: &Path) -> (Vec<Doc>, Vec<PathBuf>) {
        let mut docs = Vec::new();
        let mut fulls = Vec::new();
        let Some(patterns) = top.strings(self.sink, "include", true) else {
            return (docs, fulls);
        };
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
            fulls.push(full);
        }
        (docs, fulls)
    }

    /// The checks of a table file's owner and mode, on the metadata of the open file.
    fn check_permissions(&mut self, path: &Path, meta: &std::fs::Metadata) {
        use std::os::unix::fs::MetadataExt;
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
                Loc::new(doc.file, e.offset()),
                None,
                format!("TOML syntax: {}", e.message.trim()),
            );
        }
        parsed.root
    }

    /// The table at `path` and its drop-in files, each part read in turn; `None` when
    /// `[settings]` or the main file could not be read (every other problem leaves out only
    /// what it concerns, so that all of them are reported).
    pub(crate) fn load(&mut self, path: &Path) -> Option<Config> {
        let main = self.read(path)?;
        let main_table = self.parse(&main);
        let top = TableReader::new(&main_table, main.file, Loc::default(), None);
        top.check_keys(self.sink, TOP_KEYS, "top-level");

        let (docs, include_patterns) = self.drop_in_files(&top, path);
        let inc_tables: Vec<_> = docs.iter().map(|d| (d.file, self.parse(d))).collect();

        let settings = self.settings(&top);
        let mut readers = vec![top];
        for (file, t) in &inc_tables {
            let r = TableReader::new(t, *file, Loc::new(*file, 0), None);
            r.check_keys(self.sink, INCLUDE_KEYS, "drop-in file top-level");
            readers.push(r);
        }

        let cluster = readers[0]
            .table(self.sink, "cluster")
            .and_then(|t| self.cluster(t));
        // Alert channels and jobs from every file; [defaults] from the main one.
        let (alerts, alert_locs) = self.alert_channels(&readers);
        let jobs = self.jobs(&readers, settings.as_ref(), &alert_locs);
        drop(readers);
        drop(inc_tables);
        drop(main_table);

        let settings = settings?;
        let mut files = vec![path.to_path_buf()];
        files.extend(docs.iter().map(|d| self.sink.path(d.file).to_path_buf()));
        Some(Config {
            path: path.to_path_buf(),
            files,
            include_patterns,
            settings,
            alerts,
            cluster,
            jobs,
            by_name: Vec::new(),
            steps: Vec::new(),
        })
    }

    /// Whether an error was reported since the diagnostics numbered `mark`.
    pub(crate) fn errors_since(&self, mark: usize) -> bool {
        self.sink.diags[mark..]
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Records where `name` is first defined; a second definition is reported, with where
    /// the first one is, and gives `false`.
    pub(crate) fn first_definition(
        &mut self,
        seen: &mut HashMap<String, Loc>,
        name: &str,
        loc: Loc,
        subject: &str,
    ) -> bool {
        if let Some(first) = seen.get(name) {
            self.defined_twice(*first, loc, subject);
            return false;
        }
        seen.insert(name.to_string(), loc);
        true
    }

    /// Reports a second definition (at `loc`) of what is first defined at `first`.
    pub(crate) fn defined_twice(&mut self, first: Loc, loc: Loc, subject: &str) {
        let (p, (l, _)) = self.where_is(first);
        self.sink.error(
            loc,
            Some(subject),
            format!("defined twice (first at {}:{l})", p.display()),
        );
    }

    pub(crate) fn where_is(&self, loc: Loc) -> (PathBuf, (usize, usize)) {
        match self.sink.files.get(loc.file as usize) {
            Some(f) => (f.path.clone(), f.line_col(loc.offset as usize)),
            None => (PathBuf::from("?"), (0, 0)),
        }
    }

    /// The file (one allocation shared by the jobs of that file) and line of `loc`.
    pub(crate) fn job_file(&mut self, loc: Loc) -> (Arc<PathBuf>, u32) {
        let (path, (line, _)) = match self.sink.files.get(loc.file as usize) {
            Some(f) => (&f.path, f.line_col(loc.offset as usize)),
            None => return (Arc::new(PathBuf::from("?")), 0),
        };
        let i = loc.file as usize;
        if self.job_files.len() <= i {
            self.job_files.resize(i + 1, None);
        }
        let shared = self.job_files[i].get_or_insert_with(|| Arc::new(path.clone()));
        // A table file is read whole, within a size limit: its lines fit in 4 bytes.
        (Arc::clone(shared), u32::try_from(line).unwrap_or(u32::MAX))
    }

    /// Job and channel names become file names and log fields: keep them plain.
    pub(crate) fn check_name(&mut self, name: &str, loc: Loc, subject: &str) {
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
}
