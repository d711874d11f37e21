//! Secrets the table names but never holds: a `*_env` key (an environment variable) or a
//! `*_file` key (a file private to its owner), read only when they are needed.

use std::path::PathBuf;

use super::loader::Loader;
use super::reader::TableReader;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    /// The name of an environment variable holding the secret.
    Env(String),
    /// A file holding the secret (trailing newline ignored).
    File(PathBuf),
}

impl Secret {
    /// The secret itself, read when it is needed. `what` is the key without its `_env` or
    /// `_file` ("password", "postgres_url"), for errors. A file must be private to its owner,
    /// as ssh demands of a private key: owned by this user or root, no permission for group or
    /// others (checked on the open file); a trailing newline is dropped. Only a regular file of at
    /// most 64 KiB is read.
    pub fn read(&self, what: &str) -> Result<String, String> {
        use super::table_file::{self, ReadError};
        use std::os::unix::fs::MetadataExt;
        let path = match self {
            Secret::Env(var) => {
                return std::env::var(var).map_err(|_| format!("{what}_env: {var} is not set"));
            }
            Secret::File(path) => path,
        };
        let fail = |e: String| format!("{what}_file {}: {e}", path.display());
        // A regular file only, as the table's own files: a FIFO would hold the delivery (or
        // the fleet's connection) forever, a device would fill memory.
        let (text, meta) = table_file::read(path, MAX_SECRET_BYTES).map_err(|e| {
            fail(match e {
                ReadError::Io(e) => e.to_string(),
                ReadError::NotRegular(kind) => format!("it is {kind}; only a regular file is read"),
                ReadError::TooLarge { .. } => "larger than 64 KiB; a secret is not".to_string(),
            })
        })?;
        let me = nix::unistd::geteuid();
        if meta.uid() != me.as_raw() && meta.uid() != 0 {
            let name = nix::unistd::User::from_uid(me)
                .ok()
                .flatten()
                .map_or_else(|| me.to_string(), |u| u.name);
            return Err(fail(format!(
                "refusing a file owned by uid {} (whoever owns it can read and change the \
                 secret). Fix: chown {name} {}",
                meta.uid(),
                path.display()
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(fail(format!(
                "refusing a file that group or others may use (mode {mode:04o}). \
                 Fix: chmod 600 {}",
                path.display()
            )));
        }
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// The most a secret file may hold.
const MAX_SECRET_BYTES: u64 = 64 << 10;

impl Loader<'_> {
    /// The pair `env_key` / `file_key` (at most one of them set): the secret, if any.
    pub(crate) fn secret(
        &mut self,
        t: &TableReader,
        env_key: &str,
        file_key: &str,
    ) -> Option<Secret> {
        let env = t.nonempty(self.sink, env_key);
        let file = self.abs_path(t, file_key);
        match (env, file) {
            (Some(e), Some(_)) => {
                self.sink.error(
                    e.loc,
                    t.subject(),
                    format!("set either {env_key} or {file_key}, not both"),
                );
                None
            }
            (Some(e), None) => Some(Secret::Env(e.v)),
            (None, Some(f)) => Some(Secret::File(f.v)),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read` in a thread: its result, or a failure when it is still blocked after a minute.
    fn read_within_a_minute(s: Secret) -> Result<String, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(s.read("password"));
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("the read is still blocked after a minute")
    }

    #[test]
    fn a_secret_file_must_be_a_regular_file() {
        let dir = std::env::temp_dir().join(format!("cw-secret-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let fifo = dir.join("password");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        // Nobody writes to it: opening it for reading used to wait forever.
        let err = read_within_a_minute(Secret::File(fifo.clone())).expect_err("a FIFO");
        assert_eq!(
            err,
            format!(
                "password_file {}: it is a FIFO; only a regular file is read",
                fifo.display()
            )
        );
        let err = read_within_a_minute(Secret::File("/dev/zero".into())).expect_err("a device");
        assert!(err.ends_with("it is a character device; only a regular file is read"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
