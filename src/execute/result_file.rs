//! `CRONWARDEN_RESULT_FILE`: each run may leave a result (Airflow's XCom: a file name, a row
//! count) for the steps after it in its pipeline run, beside the run's credentials. For a
//! job run as another user, `LOCK_DIR-credentials/RUN_ID.result` is made empty for the run,
//! owned by that user, mode 0600; a job run as this process's user is given
//! `LOCK_DIR-credentials/own/RUN_ID.result` (`own` 0700: whatever mode the job makes the
//! file with, only this user reaches it) and makes it itself when it writes it, so that a
//! run that leaves no result (most) makes no file (on ext4 without a journal a run's new
//! files were, together, half of the daemon's time with 100 jobs at once: issue 21). After
//! the run's last attempt its text is read into the run's record (at most
//! [`MAX_RESULT_BYTES`]; more fails the run) and the file is removed.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The most a result may hold.
pub(crate) const MAX_RESULT_BYTES: u64 = 64 << 10;

/// A run's result file, removed when dropped.
pub(super) struct ResultFile {
    pub(super) path: PathBuf,
    /// Made for the run (a job of another user): it must still be there at the end.
    made: bool,
}

impl Drop for ResultFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The result file of the run `run_id`, made for it (`made`) or made by the job.
fn path(lock_dir: &Path, run_id: &str, made: bool) -> PathBuf {
    let base = super::credentials::base_dir(lock_dir);
    let dir = if made {
        base
    } else {
        base.join(super::credentials::OWN_RESULTS)
    };
    dir.join(format!("{run_id}.result"))
}

/// The run's result file: made empty and owned by `owner` (uid, gid); with `None` (the job
/// runs as this process's user) only named, for the job to make.
pub(super) fn create(
    lock_dir: &Path,
    run_id: &str,
    owner: Option<(u32, u32)>,
) -> Result<ResultFile, String> {
    let path = path(lock_dir, run_id, owner.is_some());
    let fail = |e: std::io::Error| format!("CRONWARDEN_RESULT_FILE {}: {e}", path.display());
    let base = super::credentials::base_dir(lock_dir);
    super::credentials::ensure_base(&base).map_err(fail)?;
    let Some((uid, gid)) = owner else {
        crate::files::ensure_dir(&base.join(super::credentials::OWN_RESULTS)).map_err(fail)?;
        return Ok(ResultFile { path, made: false });
    };
    let f = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(fail)?;
    let file = ResultFile {
        path: path.clone(),
        made: true,
    };
    std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(fail)?;
    Ok(file)
}

impl ResultFile {
    /// What the run wrote: `None` when nothing (or no file, where the job makes it); an
    /// error when it is more than 64 KiB, or a file made for the run is gone, or it is no
    /// regular file (the job's user may replace it).
    pub(super) fn read(&self) -> Result<Option<String>, String> {
        let fail = |e: String| format!("CRONWARDEN_RESULT_FILE: {e}");
        let opened = fs::File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path);
        let f = match opened {
            Err(e) if !self.made && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            other => other.map_err(|e| fail(e.to_string()))?,
        };
        let meta = f.metadata().map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("no longer a regular file".to_string()));
        }
        let mut bytes = Vec::new();
        f.take(MAX_RESULT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(e.to_string()))?;
        if bytes.len() as u64 > MAX_RESULT_BYTES {
            return Err(fail(format!(
                "the run wrote {} bytes, more than the 64 KiB a result may hold",
                meta.len().max(bytes.len() as u64)
            )));
        }
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_end_matches(['\n', '\r']);
        Ok((!text.is_empty()).then(|| text.to_string()))
    }
}
