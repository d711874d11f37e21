//! A run's resource limits written to its cgroup, and the out-of-memory verdict read back.
//!
//! - [`apply`]: `memory_max`, `cpu_max`, `pids_max` and `io_weight` written to the limit
//!   files of one run's cgroup, with a sentence for each limit that could not be applied;
//! - [`oom_kills`] and [`oom_reason`]: whether the kernel killed a process of the run for
//!   memory, and how a run's record says so;
//! - [`ioprio_value`]: `io_class`/`io_priority` as the value of ioprio_set(2), which works
//!   without cgroups (set between fork and exec, see `sys::ChildSetup`);
//! - [`host_controllers`]: the cgroup v2 controllers this process's cgroup offers, for
//!   `cronwarden check`, with its parsers of /proc/self/mountinfo and /proc/self/cgroup.

use std::io::Write;
use std::path::Path;

use crate::config::{IoClass, Limits};
use crate::units::format_size;

/// The period of `cpu.max`, in microseconds: the quota is a share of it.
const CPU_PERIOD_US: u64 = 100_000;

/// One limit as a cgroup file sets it.
struct Setting {
    /// The cgroup v2 controller the file belongs to.
    controller: &'static str,
    /// The key and its value as the table writes it: `memory_max 512MiB`.
    shown: String,
    /// The file in the run's cgroup directory.
    file: &'static str,
    /// What is written to it.
    text: String,
}

/// The cgroup-backed limits of `limits`, in the order of [`Limits::controllers`].
fn settings(limits: &Limits) -> Vec<Setting> {
    let mut s = Vec::new();
    if let Some(bytes) = limits.memory_max {
        s.push(Setting {
            controller: "memory",
            shown: format!("memory_max {}", format_size(bytes)),
            file: "memory.max",
            text: bytes.to_string(),
        });
    }
    if let Some(percent) = limits.cpu_max {
        // 1% of one CPU is 1000 µs in every 100 000 µs.
        let quota = u64::from(percent) * (CPU_PERIOD_US / 100);
        s.push(Setting {
            controller: "cpu",
            shown: format!("cpu_max {percent}%"),
            file: "cpu.max",
            text: format!("{quota} {CPU_PERIOD_US}"),
        });
    }
    if let Some(n) = limits.pids_max {
        s.push(Setting {
            controller: "pids",
            shown: format!("pids_max {n}"),
            file: "pids.max",
            text: n.to_string(),
        });
    }
    if let Some(w) = limits.io_weight {
        s.push(Setting {
            controller: "io",
            shown: format!("io_weight {w}"),
            file: "io.weight",
            text: format!("default {w}"),
        });
    }
    s
}

/// Every cgroup-backed limit of `limits` as not applied, because runs have no cgroup here
/// (`why`): one sentence each.
pub(crate) fn none_applied(limits: &Limits, why: &str) -> Vec<String> {
    settings(limits)
        .into_iter()
        .map(|s| {
            format!(
                "{} not applied: runs have no cgroup here ({why}), so there is no {} controller",
                s.shown, s.controller
            )
        })
        .collect()
}

/// Writes the cgroup-backed limits of `limits` to the cgroup directory `dir` of one run:
/// `memory.max` (bytes), `cpu.max` (`QUOTA PERIOD`, period 100000 µs), `pids.max` and
/// `io.weight` (`default N`). `enabled` lists the controllers enabled for that cgroup (the
/// words of its parent's `cgroup.subtree_control`). A limit whose controller is not enabled,
/// or whose file cannot be written, is not applied; the result has one sentence per such
/// limit (`memory_max 512MiB not applied: ...`), and is empty when every limit was applied.
/// A file that does not exist is not created (a cgroup's files are the kernel's).
pub(crate) fn apply(dir: &Path, limits: &Limits, enabled: &[String]) -> Vec<String> {
    let mut not_applied = Vec::new();
    for s in settings(limits) {
        if !enabled.iter().any(|c| c == s.controller) {
            not_applied.push(format!(
                "{} not applied: the {} controller is not enabled for this cgroup",
                s.shown, s.controller
            ));
            continue;
        }
        let path = dir.join(s.file);
        if let Err(e) = write_control(&path, &s.text) {
            not_applied.push(format!(
                "{} not applied: writing {}: {e}",
                s.shown,
                path.display()
            ));
        }
    }
    not_applied
}

/// Writes `text` to the existing cgroup control file `path`, in one write as the kernel
/// wants it.
fn write_control(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// How many processes of the cgroup `dir` the kernel's OOM killer has killed: the
/// `oom_kill` count of its `memory.events`; 0 when the file is missing or unreadable.
pub(crate) fn oom_kills(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("memory.events")).map_or(0, |t| parse_oom_kills(&t))
}

/// The `oom_kill` count of a `memory.events` text (lines `KEY COUNT`); 0 when absent.
fn parse_oom_kills(events: &str) -> u64 {
    events
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == "oom_kill")
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// What the record says of a run whose process the kernel killed for memory:
/// `killed by the kernel: out of memory (memory_max 512MiB, peak 512MiB)`, each part in the
/// parentheses only when known (no parentheses when neither is).
pub(crate) fn oom_reason(limits: &Limits, peak: Option<u64>) -> String {
    let mut parts = Vec::new();
    if let Some(m) = limits.memory_max {
        parts.push(format!("memory_max {}", format_size(m)));
    }
    if let Some(p) = peak {
        parts.push(format!("peak {}", format_size(p)));
    }
    let mut reason = "killed by the kernel: out of memory".to_string();
    if !parts.is_empty() {
        reason.push_str(&format!(" ({})", parts.join(", ")));
    }
    reason
}

/// The ioprio_set(2) value of an I/O class and priority: `class << 13 | data`, with the
/// kernel's class numbers (realtime 1, best-effort 2, idle 3). The idle class has no
/// priorities (data 0); realtime and best-effort without a priority get 4, the kernel's
/// default. A priority above 7 is taken as 7 (the table allows 0 to 7).
pub(crate) fn ioprio_value(class: IoClass, priority: Option<u8>) -> i32 {
    const CLASS_SHIFT: i32 = 13;
    let (class, data) = match class {
        IoClass::Realtime => (1, priority.unwrap_or(4).min(7)),
        IoClass::BestEffort => (2, priority.unwrap_or(4).min(7)),
        IoClass::Idle => (3, 0),
    };
    (class << CLASS_SHIFT) | i32::from(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A directory standing in for a run's cgroup, with the limit files the kernel would
    /// show (empty here), removed on drop.
    struct FakeCgroup(PathBuf);

    impl FakeCgroup {
        fn new(tag: &str, files: &[&str]) -> FakeCgroup {
            let dir = std::env::temp_dir()
                .join(format!("cronwarden-limits-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the fake cgroup");
            for f in files {
                std::fs::write(dir.join(f), "").expect("create a limit file");
            }
            FakeCgroup(dir)
        }

        fn read(&self, file: &str) -> Option<String> {
            std::fs::read_to_string(self.0.join(file)).ok()
        }
    }

    impl Drop for FakeCgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const FILES: [&str; 4] = ["memory.max", "cpu.max", "pids.max", "io.weight"];

    fn all_limits() -> Limits {
        Limits {
            memory_max: Some(512 << 20),
            cpu_max: Some(50),
            pids_max: Some(64),
            io_weight: Some(200),
            io_class: Some(IoClass::Idle),
            io_priority: None,
        }
    }

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn apply_writes_every_limit_file() {
        let cg = FakeCgroup::new("all", &FILES);
        let enabled = words(&["cpuset", "cpu", "io", "memory", "hugetlb", "pids"]);
        assert_eq!(apply(&cg.0, &all_limits(), &enabled), Vec::<String>::new());
        assert_eq!(cg.read("memory.max").as_deref(), Some("536870912"));
        assert_eq!(cg.read("cpu.max").as_deref(), Some("50000 100000"));
        assert_eq!(cg.read("pids.max").as_deref(), Some("64"));
        assert_eq!(cg.read("io.weight").as_deref(), Some("default 200"));
    }

    #[test]
    fn cpu_max_above_one_cpu_and_nothing_set() {
        let cg = FakeCgroup::new("cpu", &FILES);
        let limits = Limits {
            cpu_max: Some(200),
            ..Limits::default()
        };
        assert!(apply(&cg.0, &limits, &words(&["cpu"])).is_empty());
        assert_eq!(cg.read("cpu.max").as_deref(), Some("200000 100000"));
        assert_eq!(cg.read("memory.max").as_deref(), Some(""));
        // No limit: nothing written, nothing to say, whatever is enabled.
        assert!(apply(&cg.0, &Limits::default(), &[]).is_empty());
        assert_eq!(cg.read("pids.max").as_deref(), Some(""));
    }

    #[test]
    fn a_controller_not_enabled_is_said_and_nothing_is_written() {
        let cg = FakeCgroup::new("missing", &FILES);
        let not_applied = apply(&cg.0, &all_limits(), &words(&["cpu", "pids"]));
        assert_eq!(
            not_applied,
            [
                "memory_max 512MiB not applied: the memory controller is not enabled for this \
                 cgroup",
                "io_weight 200 not applied: the io controller is not enabled for this cgroup",
            ]
        );
        assert_eq!(cg.read("memory.max").as_deref(), Some(""));
        assert_eq!(cg.read("io.weight").as_deref(), Some(""));
        assert_eq!(cg.read("cpu.max").as_deref(), Some("50000 100000"));
        assert_eq!(cg.read("pids.max").as_deref(), Some("64"));
    }

    #[test]
    fn a_file_that_cannot_be_written_is_said() {
        use std::os::unix::fs::PermissionsExt;
        // memory.max missing (it is not created), io.weight a directory (no one can write
        // it), pids.max read-only (root writes it anyway: only others see that one).
        let cg = FakeCgroup::new("unwritable", &["cpu.max", "pids.max"]);
        std::fs::create_dir(cg.0.join("io.weight")).expect("mkdir io.weight");
        let ro = cg.0.join("pids.max");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        let enabled = words(&["cpu", "io", "memory", "pids"]);
        let not_applied = apply(&cg.0, &all_limits(), &enabled);
        let root = nix::unistd::geteuid().is_root();
        assert_eq!(
            not_applied.len(),
            if root { 2 } else { 3 },
            "{not_applied:?}"
        );
        let memory = format!(
            "memory_max 512MiB not applied: writing {}: No such file or directory",
            cg.0.join("memory.max").display()
        );
        assert!(not_applied[0].starts_with(&memory), "{not_applied:?}");
        assert!(
            cg.read("memory.max").is_none(),
            "the missing file was created"
        );
        let io = format!(
            "io_weight 200 not applied: writing {}: Is a directory",
            cg.0.join("io.weight").display()
        );
        assert!(
            not_applied[not_applied.len() - 1].starts_with(&io),
            "{not_applied:?}"
        );
        if !root {
            let pids = format!(
                "pids_max 64 not applied: writing {}: Permission denied",
                ro.display()
            );
            assert!(not_applied[1].starts_with(&pids), "{not_applied:?}");
            assert_eq!(cg.read("pids.max").as_deref(), Some(""));
        }
        assert_eq!(cg.read("cpu.max").as_deref(), Some("50000 100000"));
    }

    #[test]
    fn settings_follow_the_controllers_of_limits() {
        let limits = all_limits();
        let ours: Vec<&str> = settings(&limits).iter().map(|s| s.controller).collect();
        let theirs: Vec<&str> = limits.controllers().iter().map(|(c, _)| *c).collect();
        assert_eq!(ours, theirs);
        for (s, (_, key)) in settings(&limits).iter().zip(limits.controllers()) {
            assert!(s.shown.starts_with(&format!("{key} ")), "{}", s.shown);
        }
    }

    #[test]
    fn oom_kills_from_memory_events() {
        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kills(events), 1);
        assert_eq!(parse_oom_kills("low 0\noom 3\noom_kill 3\n"), 3);
        assert_eq!(parse_oom_kills("oom_group_kill 2\n"), 0);
        assert_eq!(parse_oom_kills("oom_kill x\n"), 0);
        assert_eq!(parse_oom_kills(""), 0);
        let cg = FakeCgroup::new("events", &[]);
        assert_eq!(oom_kills(&cg.0), 0, "no memory.events");
        std::fs::write(cg.0.join("memory.events"), events).expect("write memory.events");
        assert_eq!(oom_kills(&cg.0), 1);
    }

    #[test]
    fn oom_reason_says_what_is_known() {
        let limits = Limits {
            memory_max: Some(512 << 20),
            ..Limits::default()
        };
        let peak = Some(512 << 20);
        assert_eq!(
            oom_reason(&limits, peak),
            "killed by the kernel: out of memory (memory_max 512MiB, peak 512MiB)"
        );
        assert_eq!(
            oom_reason(&limits, None),
            "killed by the kernel: out of memory (memory_max 512MiB)"
        );
        assert_eq!(
            oom_reason(&Limits::default(), Some(3 << 29)),
            "killed by the kernel: out of memory (peak 1.5GiB)"
        );
        assert_eq!(
            oom_reason(&Limits::default(), None),
            "killed by the kernel: out of memory"
        );
    }

    #[test]
    fn ioprio_values() {
        assert_eq!(ioprio_value(IoClass::Idle, None), 3 << 13);
        assert_eq!(ioprio_value(IoClass::Idle, Some(5)), 3 << 13);
        assert_eq!(ioprio_value(IoClass::BestEffort, None), (2 << 13) | 4);
        assert_eq!(ioprio_value(IoClass::BestEffort, Some(0)), 2 << 13);
        assert_eq!(ioprio_value(IoClass::BestEffort, Some(7)), (2 << 13) | 7);
        assert_eq!(ioprio_value(IoClass::Realtime, None), (1 << 13) | 4);
        assert_eq!(ioprio_value(IoClass::Realtime, Some(2)), (1 << 13) | 2);
        assert_eq!(ioprio_value(IoClass::Realtime, Some(200)), (1 << 13) | 7);
    }
}
