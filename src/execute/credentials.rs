//! `credentials`: for each run, the files a job names are copied into a directory of the
//! run's own, `LOCK_DIR-credentials/RUN_ID` (beside `lock_dir`, so on the same tmpfs under
//! /run by default), owned by the job's user and readable only by it, handed to the job as
//! `$CREDENTIALS_DIRECTORY`, and removed when the run ends: by the run itself whatever its
//! outcome, by whoever takes over a run whose supervisor died (`orphan`), and at the daemon's
//! start for any directory whose run is no longer in progress (no run marker).
//!
//! The sources are read by the process starting the run (root, before dropping to `user`):
//! a job running as `backup` gets a root-only file for the length of its run, and never
//! outside it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The most one credential file may hold (systemd's limit for `LoadCredential=`).
const MAX_CREDENTIAL_BYTES: u64 = 1 << 20;

/// Where the runs' credential directories are: beside `lock_dir`.
pub(crate) fn base_dir(lock_dir: &Path) -> PathBuf {
    let mut name = lock_dir.file_name().unwrap_or_default().to_os_string();
    name.push("-credentials");
    lock_dir.with_file_name(name)
}

/// The directory (under [`base_dir`], 0700) of the result files that the jobs run as this
/// process's user make themselves (`result_file`).
pub(super) const OWN_RESULTS: &str = "own";

/// A run's credential directory, removed (with its files) when dropped.
pub(super) struct Staged {
    pub(super) dir: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = remove_dir(&self.dir);
    }
}

/// Copies `files` (name -> source) into the run's directory, owned by `owner` (uid, gid;
/// `None`: this process's user) with mode 0400 for the files and 0500 for the directory.
/// `None` when the job names no credentials. An error names the credential and the file,
/// never what it holds; whatever was copied before it is removed.
pub(super) fn stage(
    lock_dir: &Path,
    run_id: &str,
    files: &BTreeMap<String, PathBuf>,
    owner: Option<(u32, u32)>,
) -> Result<Option<Staged>, String> {
    if files.is_empty() {
        return Ok(None);
    }
    let base = base_dir(lock_dir);
    ensure_base(&base).map_err(|e| format!("credentials: {}: {e}", base.display()))?;
    let dir = base.join(run_id);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("credentials: {}: {e}", dir.display()))?;
    let staged = Staged { dir };
    // (On an error below, dropping `staged` removes what was copied.)
    for (name, source) in files {
        copy_one(source, &staged.dir.join(name), owner)
            .map_err(|e| format!("credentials.{name} ({}): {e}", source.display()))?;
    }
    let fail = |e: std::io::Error| format!("credentials: {}: {e}", staged.dir.display());
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(&staged.dir, Some(uid), Some(gid)).map_err(fail)?;
    }
    fs::set_permissions(&staged.dir, fs::Permissions::from_mode(0o500)).map_err(fail)?;
    Ok(Some(staged))
}

/// The base directory: made 0711 (the jobs' users may pass through, not list it) when it
/// does not exist; a symbolic link or anything but a directory is refused.
pub(super) fn ensure_base(base: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(base) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(std::io::Error::other("exists and is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new().mode(0o711).create(base)?;
            // Whatever the umask.
            fs::set_permissions(base, fs::Permissions::from_mode(0o711))
        }
        Err(e) => Err(e),
    }
}

/// One credential: a regular file of at most 1 MiB, copied to a new file of mode 0400.
fn copy_one(source: &Path, to: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    let src = fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(source)
        .map_err(|e| e.to_string())?;
    let meta = src.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let mut bytes = Vec::new();
    src.take(MAX_CREDENTIAL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_CREDENTIAL_BYTES {
        return Err("larger than 1 MiB".to_string());
    }
    let mut out = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)
        .map_err(|e| format!("{}: {e}", to.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&out, Some(uid), Some(gid))
            .map_err(|e| format!("{}: {e}", to.display()))?;
    }
    out.write_all(&bytes)
        .map_err(|e| format!("{}: {e}", to.display()))?;
    Ok(())
}

/// Removes the credential directory of a run (one taken over after its supervisor died).
pub(crate) fn remove(lock_dir: &Path, run_id: &str) {
    let _ = remove_dir(&base_dir(lock_dir).join(run_id));
}

/// Removes every credential directory whose run has no marker in `state_dir` (its run
/// ended while no process could clean up after it: a crash). Returns how many.
pub(crate) fn sweep(lock_dir: &Path, state_dir: &Path) -> usize {
    let base = base_dir(lock_dir);
    sweep_dir(&base, state_dir) + sweep_dir(&base.join(OWN_RESULTS), state_dir)
}

/// [`sweep`] in one directory (the directory of the result files the jobs make is left).
fn sweep_dir(dir: &Path, state_dir: &Path) -> usize {
    let running = super::marker::running_dir(state_dir);
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == OWN_RESULTS {
            continue;
        }
        // A run's directory, or its result file (`RUN_ID.result`).
        let run_id = name.strip_suffix(".result").unwrap_or(&name);
        let marker = running.join(format!("{run_id}.json"));
        if !marker.exists() && remove_dir(&e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

/// A directory made 0500 by [`stage`]: made writable again, then removed.
fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
            fs::remove_dir_all(dir)
        }
        Ok(_) => fs::remove_file(dir),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_are_private_copies_removed_on_drop() {
        let root = std::env::temp_dir().join(format!("cw-creds-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("state")).expect("dir");
        let lock_dir = root.join("run");
        let src = root.join("secret");
        fs::write(&src, b"s3cret\n").expect("write");
        let files = BTreeMap::from([("pg".to_string(), src.clone())]);
        let staged = stage(&lock_dir, "r1", &files, None)
            .expect("staged")
            .expect("some");
        let copy = staged.dir.join("pg");
        assert_eq!(fs::read(&copy).expect("read"), b"s3cret\n");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!((mode(&copy), mode(&staged.dir)), (0o400, 0o500));
        assert_eq!(mode(&base_dir(&lock_dir)), 0o711);
        drop(staged);
        assert!(!root.join("run-credentials/r1").exists());
        // A missing source fails, naming it, and leaves nothing behind.
        let bad = BTreeMap::from([
            ("a".to_string(), src.clone()),
            ("b".to_string(), root.join("nope")),
        ]);
        let e = stage(&lock_dir, "r2", &bad, None).err().expect("fails");
        assert!(
            e.starts_with("credentials.b (") && e.contains("nope"),
            "{e}"
        );
        assert!(!root.join("run-credentials/r2").exists());
        // The sweep keeps a directory whose run has a marker, removes the others.
        for id in ["r3", "r4"] {
            let s = stage(&lock_dir, id, &files, None).expect("staged");
            std::mem::forget(s);
        }
        fs::create_dir_all(root.join("state/running")).expect("dir");
        fs::write(root.join("state/running/r3.json"), "{}").expect("marker");
        assert_eq!(sweep(&lock_dir, &root.join("state")), 1);
        assert!(root.join("run-credentials/r3/pg").exists());
        assert!(!root.join("run-credentials/r4").exists());
        remove(&lock_dir, "r3");
        assert!(!root.join("run-credentials/r3").exists());
        let _ = fs::remove_dir_all(&root);
    }
}
