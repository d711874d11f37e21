//! A run's resource limits written to its cgroup, and the out-of-memory verdict read back.
//! (Being written: until then every cgroup-backed limit is reported as not applied.)

use std::path::Path;

use crate::config::Limits;

/// Writes the limits into the cgroup `dir`; one sentence per limit not applied.
pub(crate) fn apply(_dir: &Path, limits: &Limits, _enabled: &[String]) -> Vec<String> {
    limits
        .controllers()
        .into_iter()
        .map(|(_, key)| format!("{key} not applied: not supported by this build yet"))
        .collect()
}

/// The `oom_kill` count of the cgroup `dir`'s memory.events.
pub(crate) fn oom_kills(_dir: &Path) -> u64 {
    0
}

/// Why a run the OOM killer hit failed.
pub(crate) fn oom_reason(limits: &Limits, peak: Option<u64>) -> String {
    let _ = (limits, peak);
    "killed by the kernel: out of memory".to_string()
}
