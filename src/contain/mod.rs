//! Containment: what "a run" is. Every process a job starts belongs to its run, also one
//! that calls setsid() or double-forks; stopping the run stops all of them, processes still
//! alive when the main process has exited are its leftovers (stopped or kept, per the job's
//! `leftovers`), and what the run used (CPU time, peak memory) is measured over all of them.
//!
//! Two mechanisms, chosen once at start (`[settings] containment`, default `auto`):
//! - **cgroup**: a cgroup v2 per attempt (`cgroup.rs`), where this process may create one:
//!   membership, stopping (`cgroup.kill`) and CPU time come from the kernel, limits can be
//!   set (`limits.rs`), and nothing can leave it.
//! - **process**: everywhere else. This process becomes a child subreaper, so orphans of a
//!   run are re-parented to it instead of to init, and a walk of /proc finds a run's
//!   processes by parentage, process group and the run id in their environment
//!   (`procs.rs`). A process that clears its environment and double-forks escapes it; CPU
//!   time and peak memory come from the main process's rusage (its waited-for descendants
//!   included).

pub(crate) mod cgroup;
pub(crate) mod limits;
pub(crate) mod mount;
pub(crate) mod procs;
mod scope;

use std::sync::OnceLock;

use crate::config::ContainmentSetting;

pub(crate) use scope::Scope;

/// The mechanism in use.
#[derive(Debug)]
enum Mode {
    Cgroup(cgroup::Tree),
    Process,
}

/// How this process contains the runs it starts: chosen once, passed to every run.
#[derive(Debug)]
pub(crate) struct Containment {
    mode: Mode,
    /// Why this mode, for the log and `status`.
    why: String,
    /// The `oom_score_adj` jobs get back, when this process lowered its own (the daemon:
    /// a job that runs out of memory must not take the scheduler with it).
    job_oom: Option<i32>,
    /// Why a job's process cannot be started directly in its cgroup (clone3 with
    /// CLONE_INTO_CGROUP), once a spawn found that this kernel (or a seccomp filter) will
    /// not: children then move themselves into it after the fork. Shared by the runs of all
    /// threads, set once.
    clone3_refused: OnceLock<String>,
}

/// The daemon's own `oom_score_adj` (where it may lower it): the OOM killer picks a job
/// first, never the daemon before its jobs; not -1000, which would make it unkillable.
const DAEMON_OOM_SCORE_ADJ: i32 = -900;

/// Who asks: the daemon moves itself out of its delegated cgroup (under systemd); `run`
/// never moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    Daemon,
    Run,
}

impl Containment {
    /// Chooses the mechanism. With `containment = "cgroup"` a host that cannot give runs a
    /// cgroup is an error (never a silent downgrade); with `auto` it falls back to the
    /// process mechanism and says why.
    /// The daemon lowers its own `oom_score_adj`, or says in `why` that it could not (it
    /// needs CAP_SYS_RESOURCE, which some containers take away).
    pub(crate) fn detect(setting: ContainmentSetting, purpose: Purpose) -> Result<Self, String> {
        let mut c = Self::choose(setting, purpose)?;
        if purpose == Purpose::Daemon
            && let Ok(own) = crate::sys::oom_score_adj()
            && own > DAEMON_OOM_SCORE_ADJ
        {
            match crate::sys::set_oom_score_adj(DAEMON_OOM_SCORE_ADJ) {
                Ok(()) => c.job_oom = Some(own),
                Err(e) => c.why.push_str(&format!(
                    "; the daemon's oom_score_adj stays {own}, not lowered ({e}; it needs \
                     CAP_SYS_RESOURCE): the OOM killer may choose it like any job"
                )),
            }
        }
        Ok(c)
    }

    fn choose(setting: ContainmentSetting, purpose: Purpose) -> Result<Self, String> {
        if setting == ContainmentSetting::Process {
            return Ok(Self::process(
                "containment = \"process\" in [settings]".to_string(),
            ));
        }
        let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
        match cgroup::Tree::setup(purpose == Purpose::Daemon && under_systemd) {
            Ok(tree) => {
                let on = if tree.enabled.is_empty() {
                    "none".to_string()
                } else {
                    tree.enabled.join(" ")
                };
                let why = format!(
                    "a cgroup per run under {} (controllers: {on})",
                    tree.dir.display()
                );
                Ok(Containment {
                    mode: Mode::Cgroup(tree),
                    why,
                    job_oom: None,
                    clone3_refused: OnceLock::new(),
                })
            }
            Err(e) if setting == ContainmentSetting::Cgroup => Err(format!(
                "containment = \"cgroup\", but this host cannot give runs a cgroup: {e}"
            )),
            Err(e) => Ok(Self::process(format!("no cgroup: {e}"))),
        }
    }

    /// The process mechanism (see the module's doc): this process becomes a child
    /// subreaper.
    pub(crate) fn process(why: String) -> Self {
        let why = match nix::sys::prctl::set_child_subreaper(true) {
            Ok(()) => why,
            Err(e) => format!(
                "{why}; becoming a child subreaper failed ({e}): orphans of a run go to init and are found only by their environment"
            ),
        };
        Containment {
            mode: Mode::Process,
            why,
            job_oom: None,
            clone3_refused: OnceLock::new(),
        }
    }

    /// "cgroup" or "process".
    pub(crate) fn name(&self) -> &'static str {
        match self.mode {
            Mode::Cgroup(_) => "cgroup",
            Mode::Process => "process",
        }
    }

    /// What a run contains here and why, for the log and `status`.
    pub(crate) fn why(&self) -> std::borrow::Cow<'_, str> {
        match self.clone3_refused.get() {
            Some(r) => format!("{}; {r}", self.why).into(),
            None => self.why.as_str().into(),
        }
    }

    /// The `oom_score_adj` a job's process sets back (see [`DAEMON_OOM_SCORE_ADJ`]).
    pub(crate) fn job_oom_score_adj(&self) -> Option<i32> {
        self.job_oom
    }

    /// Whether a job's process may be started in its cgroup with clone3 (see
    /// [`Containment::no_clone3`]).
    pub(crate) fn clone3(&self) -> bool {
        self.clone3_refused.get().is_none()
    }

    /// clone3 is not available here (`e`: why): the next spawns fork (and move the child
    /// into its cgroup), and [`Containment::why`] says so.
    pub(crate) fn no_clone3(&self, e: &std::io::Error) {
        let _ = self.clone3_refused.set(match self.mode {
            Mode::Cgroup(_) => format!(
                "jobs start outside their cgroup and move into it (clone3 into a cgroup: {e})"
            ),
            Mode::Process => format!("jobs start with fork(2), not clone3 ({e})"),
        });
    }

    /// Whether orphans come to this process (the process mechanism), to be reaped.
    pub(crate) fn adopts_orphans(&self) -> bool {
        matches!(self.mode, Mode::Process)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_clone3_is_remembered_and_said() {
        // (Not `Containment::process`: it would make the test process a subreaper.)
        let c = Containment {
            mode: Mode::Process,
            why: "test".to_string(),
            job_oom: None,
            clone3_refused: OnceLock::new(),
        };
        assert!(c.clone3());
        assert_eq!(c.why(), "test");
        c.no_clone3(&std::io::Error::from_raw_os_error(libc::ENOSYS));
        c.no_clone3(&std::io::Error::from_raw_os_error(libc::EPERM));
        assert!(!c.clone3());
        let why = c.why();
        assert!(
            why.starts_with("test; jobs start outside their cgroup"),
            "{why}"
        );
        assert!(
            why.contains("os error 38") && !why.contains("os error 1)"),
            "{why}"
        );
    }
}
