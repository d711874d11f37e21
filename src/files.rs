//! File-system helpers every layer uses: owner-only directories and atomic writes.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates a directory (and parents) with mode 0700 if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The system's log directory for cronwarden (the unit's `LogsDirectory=`, logrotate's).
pub(crate) const SYSTEM_LOG_DIR: &str = "/var/log/cronwarden";

/// Creates the directory of `log_file` if it does not exist: like `ensure_dir`, except that
/// the system's log directory is made 0750 with group `adm` when that group exists, so that
/// group `adm` reads the 0640 `root:adm` logs logrotate makes (as in the rest of /var/log).
/// True when it was created with group `adm`.
pub(crate) fn ensure_log_dir(dir: &Path) -> io::Result<bool> {
    ensure_log_dir_as(dir, Path::new(SYSTEM_LOG_DIR))
}

fn ensure_log_dir_as(dir: &Path, system: &Path) -> io::Result<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    let adm = (dir == system)
        .then(|| nix::unistd::Group::from_name("adm").ok().flatten())
        .flatten();
    let Some(adm) = adm else {
        ensure_dir(dir)?;
        return Ok(false);
    };
    if let Some(parent) = dir.parent() {
        ensure_dir(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        // Created by someone else meanwhile: theirs as it is.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    }
    // Group first, then the group's read access (never readable by a group not meant).
    std::os::unix::fs::chown(dir, None, Some(adm.gid.as_raw()))?;
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o750))?;
    Ok(true)
}

/// Writes a file atomically and durably: a temporary file in the same directory, fsync,
/// rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_renamed(path, data, true)
}

/// Writes a file atomically, without waiting for the disk: readers (and a process started
/// after this one crashed) see the old content or the new, never a mix. Only a power loss
/// can take the new content back. For the daemon's hot path (dispatch marks), where a
/// fsync would delay the job by milliseconds.
pub(crate) fn write_replace(path: &Path, data: &[u8]) -> io::Result<()> {
    write_renamed(path, data, false)
}

/// Rewrites a small file in place: `data` at its start, padded with spaces to the file's
/// length (for files whose readers trim). Neither a rename over the file nor a truncation:
/// on ext4 both make the file's new data be written out at once (`auto_da_alloc`), and the
/// replaced or truncated blocks freed (a discard, waited for, on a `discard` mount) — on
/// the paths run for every run or dispatch (issues 14 and 21). One write of under a page
/// at offset 0: the death of the writer never leaves part of it (a power loss can take the
/// new text back, as with [`write_replace`]); but a reader running at the same time could
/// see a mix, so only for files read when their writer cannot be writing.
pub(crate) fn overwrite_padded(f: &fs::File, data: &[u8]) -> io::Result<()> {
    padded_at_start(f, f.metadata()?.len(), data)
}

/// [`overwrite_padded`] of a file whose length `len` is known.
fn padded_at_start(f: &fs::File, len: u64, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len <= data.len() {
        return f.write_all_at(data, 0);
    }
    let mut padded = Vec::with_capacity(len);
    padded.extend_from_slice(data);
    padded.resize(len, b' ');
    f.write_all_at(&padded, 0)
}

/// Writes a small file that its readers trim: in place when it is a regular file
/// ([`overwrite_padded`]), else (none yet, or anything else, a symbolic link included)
/// made anew atomically ([`write_replace`]).
pub(crate) fn write_small(path: &Path, data: &[u8]) -> io::Result<()> {
    match open_regular(path) {
        Ok((f, len)) => padded_at_start(&f, len, data),
        Err(_) => write_replace(path, data),
    }
}

/// Opens an existing regular file for writing, never through a symbolic link (nor blocking
/// on a FIFO): the file and its length; an error for anything else.
pub(crate) fn open_regular(path: &Path) -> io::Result<(fs::File, u64)> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((f, meta.len()))
}

fn write_renamed(path: &Path, data: &[u8], durable: bool) -> io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    if let Err(e) = f
        .write_all(data)
        .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
    {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    if durable && let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn a_small_file_is_rewritten_in_place_padded_to_its_length() {
        let dir = std::env::temp_dir().join(format!("cw-small-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("mark");
        write_small(&path, b"records=100").expect("created");
        let ino = fs::metadata(&path).expect("stat").ino();
        write_small(&path, b"records=99").expect("rewritten");
        assert_eq!(fs::read(&path).expect("read"), b"records=99 ");
        write_small(&path, b"records=1000").expect("rewritten");
        assert_eq!(fs::read(&path).expect("read"), b"records=1000");
        // The same file: neither replaced nor truncated.
        assert_eq!(fs::metadata(&path).expect("stat").ino(), ino);
        // Anything but a regular file is replaced, as before: never written through.
        let other = dir.join("other");
        fs::write(&other, b"keep").expect("write");
        fs::remove_file(&path).expect("rm");
        std::os::unix::fs::symlink(&other, &path).expect("symlink");
        write_small(&path, b"records=1").expect("replaced");
        assert_eq!(fs::read(&other).expect("read"), b"keep");
        assert_eq!(fs::read(&path).expect("read"), b"records=1");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_the_system_log_dir_is_made_readable_by_adm_and_only_when_created() {
        let base = std::env::temp_dir().join(format!("cw-logdir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let system = base.join("log/cronwarden");
        let other = base.join("elsewhere/logs");
        let adm = nix::unistd::Group::from_name("adm").ok().flatten();
        let made = ensure_log_dir_as(&system, &system);
        let m = fs::metadata(&system).expect("made");
        match &adm {
            Some(g) if nix::unistd::geteuid().is_root() => {
                assert!(made.expect("system dir"));
                assert_eq!(m.permissions().mode() & 0o777, 0o750);
                assert_eq!(m.gid(), g.gid.as_raw());
            }
            // Not root: the chown to adm may fail; the directory stays owner-only.
            Some(_) => assert_eq!(m.permissions().mode() & 0o777, 0o700),
            None => assert_eq!(m.permissions().mode() & 0o777, 0o700),
        }
        // Any other directory stays owner-only; an existing one is left as it is.
        assert!(!ensure_log_dir_as(&other, &system).expect("other"));
        let m = fs::metadata(&other).expect("made");
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
        fs::set_permissions(&system, fs::Permissions::from_mode(0o700)).expect("chmod");
        assert!(!ensure_log_dir_as(&system, &system).expect("exists"));
        let m = fs::metadata(&system).expect("kept");
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
        let _ = fs::remove_dir_all(&base);
    }
}
