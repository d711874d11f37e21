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
    /// others (checked on the open file); a trailing newline is dropped.
    pub fn read(&self, what: &str) -> Result<String, String> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let path = match self {
            Secret::Env(var) => {
                return std::env::var(var).map_err(|_| format!("{what}_env: {var} is not set"));
            }
            Secret::File(path) => path,
        };
        let fail = |e: String| format!("{what}_file {}: {e}", path.display());
        let mut f = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let meta = f.metadata().map_err(|e| fail(e.to_string()))?;
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
        let mut text = String::new();
        f.read_to_string(&mut text)
            .map_err(|e| fail(e.to_string()))?;
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }
}

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
