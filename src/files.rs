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
