//! `cronwarden check`: warnings about the files jobs are given at each run, `env_file` and
//! `credentials`, as this process sees them now (the run reads them again, and fails with the
//! reason should one be missing or unreadable then). No warning quotes what a file holds.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::config::{Job, env_file};
use crate::diag::{Diagnostic, Severity};

/// A warning for each `env_file` that is missing (without `-`), unreadable or does not parse,
/// and for each `credentials` file that cannot be read; and for each of them that another
/// user may change (or read: should it hold secrets, the rule of `password_file` applies).
pub(super) fn warnings(jobs: &[Job]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for job in jobs {
        let mut warn = |message: String| out.push(job_warning(job, message));
        for f in &job.env_files {
            if f.optional && !f.path.exists() {
                continue;
            }
            if let Err(e) = env_file::read_all(std::slice::from_ref(f)) {
                warn(format!("{e}; runs of the job will fail"));
            }
            if let Some(w) = private(&f.path) {
                warn(format!("env_file {}: {w}", f.path.display()));
            }
        }
        for (name, path) in &job.credentials {
            let what = format!("credentials.{name} {}", path.display());
            match std::fs::File::open(path).and_then(|f| f.metadata()) {
                Ok(m) if m.is_file() => {}
                Ok(_) => warn(format!(
                    "{what}: not a regular file; runs of the job will fail"
                )),
                Err(e) => warn(format!("{what}: {e}; runs of the job will fail")),
            }
            if let Some(w) = private(path) {
                warn(format!("{what}: {w}"));
            }
        }
    }
    out
}

/// What is wrong with a file that may hold secrets, by the rule of `password_file`: owned by
/// root or this user, no permission for group or others.
fn private(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    let me = nix::unistd::geteuid().as_raw();
    if m.uid() != 0 && m.uid() != me {
        return Some(format!(
            "owned by uid {}, who can change what the job is given. Fix: chown root {}",
            m.uid(),
            path.display()
        ));
    }
    let mode = m.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!(
            "group or others may change it (mode {mode:04o}), and so what the job is given. \
             Fix: chmod 600 {}",
            path.display()
        ));
    }
    if mode & 0o044 != 0 {
        return Some(format!(
            "group or others may read it (mode {mode:04o}); if it holds secrets, keep it \
             private. Fix: chmod 600 {}",
            path.display()
        ));
    }
    None
}

/// A warning about a job, at the line that defines it.
pub(super) fn job_warning(job: &Job, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Warning,
        file: job.defined_at.0.to_path_buf(),
        line: job.defined_at.1 as usize,
        col: 1,
        subject: Some(format!("job {:?}", job.name)),
        message,
    }
}
