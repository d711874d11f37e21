//! `CRONWARDEN_RESULT_FILE`: each run may leave a result (Airflow's XCom: a file name, a row
//! count) for the steps after it in its pipeline run. The file is created empty for the run,
//! `LOCK_DIR-credentials/RUN_ID.result` (beside the run's credentials), owned by the job's
//! user, mode 0600; after the run's last attempt its text is read into the run's record
//! (at most [`MAX_RESULT_BYTES`]; more fails the run) and the file is removed.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The most a result may hold.
pub(crate) const MAX_RESULT_BYTES: u64 = 64 << 10;

/// A run's result file, removed when dropped.
pub(super) struct ResultFile {
    pub(super) path: PathBuf,
}

impl Drop for ResultFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The result file of the run `run_id`.
pub(crate) fn path(lock_dir: &Path, run_id: &str) -> PathBuf {
    super::credentials::base_dir(lock_dir).join(format!("{run_id}.result"))
}

/// Creates the run's empty result file, owned by `owner` (uid, gid; `None`: this process's
/// user).
pub(super) fn create(
    lock_dir: &Path,
    run_id: &str,
    owner: Option<(u32, u32)>,
) -> Result<ResultFile, String> {
    let path = path(lock_dir, run_id);
    let fail = |e: std::io::Error| format!("CRONWARDEN_RESULT_FILE {}: {e}", path.display());
    super::credentials::ensure_base(&super::credentials::base_dir(lock_dir)).map_err(fail)?;
    let f = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(fail)?;
    let file = ResultFile { path: path.clone() };
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(fail)?;
    }
    Ok(file)
}

impl ResultFile {
    /// What the run wrote: `None` when nothing; an error when it is more than 64 KiB or the
    /// file is gone or no longer a regular file (the job's user may replace it).
    pub(super) fn read(&self) -> Result<Option<String>, String> {
        let fail = |e: String| format!("CRONWARDEN_RESULT_FILE: {e}");
        let f = fs::File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path)
            .map_err(|e| fail(e.to_string()))?;
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
