//! The run log: a line per attempt start and end (and per notable event), as text or JSON, to
//! `log_file` or to stderr (journald).
//!
//! Before each write the log file's path is compared with the open file (device and inode):
//! after logrotate moved it away, the next line goes to a new file at the configured path,
//! never to the rotated or deleted one. A write error (a full disk, `/dev/full`) is reported
//! once on stderr and that line goes to stderr; jobs keep running. The part of a line that a
//! full disk cut short is ended before the next line, so lines are never glued together.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::config::LogFormat;

pub(crate) struct Logger {
    inner: Mutex<Inner>,
    format: LogFormat,
}

struct Inner {
    path: Option<PathBuf>,
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
}

impl Logger {
    pub(crate) fn new(path: Option<PathBuf>, format: LogFormat) -> Logger {
        Logger {
            inner: Mutex::new(Inner {
                path,
                file: None,
                failed: false,
                partial: false,
            }),
            format,
        }
    }

    pub(crate) fn stderr() -> Logger {
        Logger::new(None, LogFormat::Text)
    }

    /// One event: `fields` are key/value pairs (job, run id, attempt, ...).
    pub(crate) fn log(&self, level: Level, event: &str, fields: &[(&str, String)], message: &str) {
        let ts = jiff::Timestamp::now();
        let line = match self.format {
            LogFormat::Json => {
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
            LogFormat::Text => {
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
        };
        let mut inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        inner.write_line(&line);
    }
}

impl Inner {
    fn write_line(&mut self, line: &str) {
        let Some(path) = self.path.clone() else {
            to_stderr(line);
            return;
        };
        // Reopen when the path no longer names the open file (rotated or deleted).
        let current = std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
        let stale = match (&self.file, current) {
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
                Err(e) => return self.fail(&path, &e.to_string(), line),
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
                self.fail(&path, &e.to_string(), line);
            }
        }
    }

    fn fail(&mut self, path: &std::path::Path, err: &str, line: &str) {
        if !self.failed {
            to_stderr(&format!(
                "cronwarden: cannot write the log file {}: {err}; logging to stderr",
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
