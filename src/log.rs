//! The run log: a line per attempt start and end (and per notable event), as text or JSON, to
//! `log_file`, to standard output (`log_file = "-"`), to stderr, or as entries of the
//! systemd journal with fields of their own (`src/journal.rs`).
//!
//! Before each write the log file's path is compared with the open file (device and inode):
//! after logrotate moved it away, the next line goes to a new file at the configured path,
//! never to the rotated or deleted one. A write error (a full disk, `/dev/full`) is reported
//! once on stderr and that line goes to stderr; jobs keep running. The part of a line that a
//! full disk cut short is ended before the next line, so lines are never glued together.
//!
//! The journal is used with `log_format = "journal"`, or when the stream the log would go to
//! (stderr, or stdout with `log_file = "-"`) is the journal's (`JOURNAL_STREAM`, as systemd
//! sets it). Each entry's `MESSAGE` is the text line; the event, the job, the run id, the
//! outcome and every other field are fields of their own (`CRONWARDEN_EVENT`,
//! `CRONWARDEN_JOB`, ...), with `PRIORITY` from the level and `SYSLOG_IDENTIFIER=cronwarden`.
//! When the journal's socket cannot be written, the line goes to stderr (said once).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::config::{LogFormat, Settings};
use crate::journal::{self, Journal};

pub(crate) struct Logger {
    inner: Mutex<Inner>,
    format: LogFormat,
    /// `log_file` (the target's path, which never changes): looked at before the lock is
    /// taken.
    file_path: Option<PathBuf>,
    /// The target is the journal (its entry is made before the lock is taken, too).
    to_journal: bool,
}

/// Where the lines go.
enum Target {
    /// `log_file`, followed across rotations.
    File(PathBuf),
    Stdout,
    Stderr,
    Journal(Journal),
}

struct Inner {
    target: Target,
    file: Option<(File, u64, u64)>,
    failed: bool,
    /// A failed write (a full disk) left part of a line in the open file: the next line
    /// starts on a fresh one instead of being glued to the fragment.
    partial: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// The syslog priority the journal files it under.
    fn priority(self) -> &'static str {
        match self {
            Level::Info => "6",
            Level::Warn => "4",
            Level::Error => "3",
        }
    }
}

/// How the process was started, as far as the log cares: `JOURNAL_STREAM` and
/// `CRONWARDEN_JOURNAL_SOCKET` (read by the command layer, passed here).
#[derive(Clone, Debug, Default)]
pub(crate) struct LogEnv {
    pub(crate) journal_stream: Option<String>,
    pub(crate) journal_socket: Option<std::ffi::OsString>,
}

impl LogEnv {
    /// This process's environment.
    pub(crate) fn from_process() -> LogEnv {
        LogEnv {
            journal_stream: std::env::var("JOURNAL_STREAM").ok(),
            journal_socket: std::env::var_os("CRONWARDEN_JOURNAL_SOCKET"),
        }
    }
}

impl Logger {
    pub(crate) fn new(path: Option<PathBuf>, format: LogFormat) -> Logger {
        let target = match path {
            Some(p) if p.as_os_str() == "-" => Target::Stdout,
            Some(p) => Target::File(p),
            None => Target::Stderr,
        };
        Logger::with_target(target, format)
    }

    fn with_target(target: Target, format: LogFormat) -> Logger {
        Logger {
            file_path: match &target {
                Target::File(p) => Some(p.clone()),
                _ => None,
            },
            to_journal: matches!(target, Target::Journal(_)),
            inner: Mutex::new(Inner {
                target,
                file: None,
                failed: false,
                partial: false,
            }),
            format,
        }
    }

    /// The log `settings` ask for: `log_file` (`-`: stdout) in `log_format`, or the journal
    /// (`log_format = "journal"`, or the log's stream is the journal's).
    pub(crate) fn for_settings(settings: &Settings, env: &LogEnv) -> Logger {
        let journal = || {
            Target::Journal(Journal::new(journal::socket_path(
                env.journal_socket.clone(),
            )))
        };
        let stream = env.journal_stream.as_deref();
        let target = match (&settings.log_file, settings.log_format) {
            (_, LogFormat::Journal) => journal(),
            (Some(p), _) if p.as_os_str() == "-" => {
                match journal::is_journal_stream(std::io::stdout().as_fd(), stream) {
                    true => journal(),
                    false => Target::Stdout,
                }
            }
            (Some(p), _) => Target::File(p.clone()),
            (None, _) => match journal::is_journal_stream(std::io::stderr().as_fd(), stream) {
                true => journal(),
                false => Target::Stderr,
            },
        };
        Logger::with_target(target, settings.log_format)
    }

    pub(crate) fn stderr() -> Logger {
        Logger::new(None, LogFormat::Text)
    }

    /// One event: `fields` are key/value pairs (job, run id, attempt, ...). The line is made,
    /// and the log file's path looked at, before the lock is taken: the lock is held for the
    /// write alone (100 runs starting at once each log while they start: issue 21).
    pub(crate) fn log(&self, level: Level, event: &str, fields: &[(&str, String)], message: &str) {
        let ts = jiff::Timestamp::now();
        let line = match self.format {
            LogFormat::Json => json_line(ts, level, event, fields, message),
            LogFormat::Text | LogFormat::Journal => text_line(ts, level, event, fields, message),
        };
        let journal = self
            .to_journal
            .then(|| journal_entry(&line, level, event, fields));
        // Which file the path names now (a rotation renames it): compared under the lock.
        let named = self
            .file_path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| (m.dev(), m.ino()));
        let mut inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(entry) = journal {
            return inner.send_journal(&entry, &line);
        }
        inner.write_line(&line, named);
    }
}

/// The journal entry of one event: the line as `MESSAGE`, and the fields.
fn journal_entry(line: &str, level: Level, event: &str, fields: &[(&str, String)]) -> Vec<u8> {
    let mut named: Vec<(String, &str)> = vec![
        ("MESSAGE".into(), line),
        ("PRIORITY".into(), level.priority()),
        ("SYSLOG_IDENTIFIER".into(), "cronwarden"),
        ("CRONWARDEN_EVENT".into(), event),
    ];
    for (k, v) in fields {
        named.push((journal::field_name("CRONWARDEN_", k), v.as_str()));
    }
    let borrowed: Vec<(&str, &str)> = named.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    journal::encode(&borrowed)
}

fn json_line(
    ts: jiff::Timestamp,
    level: Level,
    event: &str,
    fields: &[(&str, String)],
    message: &str,
) -> String {
    let mut m = serde_json::Map::new();
    m.insert("ts".into(), ts.to_string().into());
    m.insert("level".into(), level.as_str().into());
    m.insert("event".into(), event.into());
    for (k, v) in fields {
        m.insert((*k).into(), v.clone().into());
    }
    if !message.is_empty() {
        m.insert("msg".into(), message.into());
    }
    serde_json::Value::Object(m).to_string()
}

fn text_line(
    ts: jiff::Timestamp,
    level: Level,
    event: &str,
    fields: &[(&str, String)],
    message: &str,
) -> String {
    let mut l = format!("{ts:.3} {} {event}", level.as_str());
    for (k, v) in fields {
        if v.contains([' ', '"']) || v.is_empty() {
            l.push_str(&format!(" {k}={v:?}"));
        } else {
            l.push_str(&format!(" {k}={v}"));
        }
    }
    if !message.is_empty() {
        l.push_str(&format!(": {message}"));
    }
    l
}

impl Inner {
    /// One entry to the journal; `line` to stderr when the socket cannot be written.
    fn send_journal(&mut self, entry: &[u8], line: &str) {
        let Target::Journal(j) = &mut self.target else {
            return;
        };
        match j.send(entry) {
            Ok(()) => self.failed = false,
            Err(e) => {
                let path = j.path().to_path_buf();
                self.fail(&path, "the journal's socket", &e.to_string(), line);
            }
        }
    }

    /// `named`: the device and inode the log file's path named just before the lock was
    /// taken (`None`: nothing there, or not a file target).
    fn write_line(&mut self, line: &str, named: Option<(u64, u64)>) {
        let path = match &self.target {
            Target::File(p) => p.clone(),
            Target::Stdout => {
                // Whole lines, flushed one by one (a container's log collector reads them
                // as they come); a closed stdout loses the line, never the daemon.
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
                return;
            }
            Target::Stderr | Target::Journal(_) => {
                to_stderr(line);
                return;
            }
        };
        // Reopen when the path no longer names the open file (rotated or deleted).
        let stale = match (&self.file, named) {
            (Some((_, dev, ino)), Some(cur)) => (*dev, *ino) != cur,
            _ => true,
        };
        if stale {
            self.file = None;
            // The system's log directory, when cronwarden creates it, is 0750 group adm.
            let adm_dir = match path.parent() {
                Some(dir) => crate::files::ensure_log_dir(dir).unwrap_or(false),
                None => false,
            };
            match OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .open(&path)
            {
                Ok(f) => {
                    if adm_dir {
                        // A new file in a new directory: root:adm 0640, as logrotate makes it.
                        let gid =
                            std::fs::metadata(path.parent().unwrap_or(&path)).map(|m| m.gid());
                        if let Ok(gid) = gid {
                            let _ = std::os::unix::fs::fchown(&f, None, Some(gid));
                        }
                    }
                    let id = f.metadata().map(|m| (m.dev(), m.ino())).unwrap_or((0, 0));
                    self.file = Some((f, id.0, id.1));
                    self.partial = false;
                }
                Err(e) => return self.fail(&path, "the log file", &e.to_string(), line),
            }
        }
        let mut buf = Vec::with_capacity(line.len() + 2);
        if self.partial {
            buf.push(b'\n');
        }
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let Some((f, _, _)) = self.file.as_mut() else {
            return;
        };
        let mut written = 0;
        let result = loop {
            match f.write(&buf[written..]) {
                Ok(0) => break Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                Ok(n) if written + n == buf.len() => break Ok(()),
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(()) => {
                self.failed = false;
                self.partial = false;
            }
            Err(e) => {
                self.partial |= written > 0;
                self.fail(&path, "the log file", &e.to_string(), line);
            }
        }
    }

    fn fail(&mut self, path: &std::path::Path, what: &str, err: &str, line: &str) {
        if !self.failed {
            to_stderr(&format!(
                "cronwarden: cannot write {what} {}: {err}; logging to stderr",
                path.display()
            ));
            self.failed = true;
        }
        to_stderr(line);
    }
}

/// One line on standard error, and nothing when it cannot be written: a closed pipe or a
/// journal that went away must not stop the daemon or a run (eprintln! panics there, with
/// the log's lock held).
fn to_stderr(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_rotated_file() {
        let dir = std::env::temp_dir().join(format!("cw-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("cw.log");
        let log = Logger::new(Some(path.clone()), LogFormat::Text);
        log.log(Level::Info, "one", &[("job", "a".into())], "");
        std::fs::rename(&path, dir.join("cw.log.1")).expect("rotate");
        log.log(Level::Info, "two", &[("job", "a b".into())], "hello");
        let old = std::fs::read_to_string(dir.join("cw.log.1")).expect("old");
        let new = std::fs::read_to_string(&path).expect("new");
        assert!(
            old.contains(" info one job=a") && !old.contains("two"),
            "{old}"
        );
        assert!(new.contains(" info two job=\"a b\": hello"), "{new}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
