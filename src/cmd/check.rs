//! `cronwarden check`: validate the table, print every problem, and warn of the limits
//! this host cannot apply.

use std::path::{Path, PathBuf};

use super::{CmdResult, exit, print};
use crate::config::{self, Job, LoadOptions};
use crate::contain::mount;
use crate::diag::{Diagnostic, Severity};

pub(super) fn run(path: &Path) -> CmdResult {
    let mut loaded = config::load(path, LoadOptions::default());
    let errors = loaded.errors().count();
    if let Some(c) = loaded.config.as_ref().filter(|_| errors == 0) {
        let host = mount::host_controllers();
        loaded.diagnostics.extend(limit_warnings(&c.jobs, &host));
        loaded
            .diagnostics
            .extend(super::check_files::warnings(&c.jobs));
    }
    for d in &loaded.diagnostics {
        print::errln(d);
    }
    let warnings = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    // The process ends after this summary: the table is left for the exit to free, rather
    // than freed job by job (which took 31 of the 766 million instructions of `check` of the
    // heavy 10,000-job table of bench/check.sh, callgrind).
    let loaded = std::mem::ManuallyDrop::new(loaded);
    match &loaded.config {
        Some(c) if errors == 0 => {
            let mut summary = format!(
                "{}, {}",
                plural(c.jobs.len(), "job"),
                plural(c.alerts.len(), "alert channel")
            );
            if c.files.len() > 1 {
                summary.push_str(&format!(" in {}", plural(c.files.len(), "file")));
            }
            summary.push_str(": ok");
            if warnings > 0 {
                summary.push_str(&format!(" ({})", plural(warnings, "warning")));
            }
            print::out(format!("{summary}\n"))?;
            Ok(exit::OK)
        }
        _ => {
            let mut summary = format!("{}: {}", path.display(), plural(errors.max(1), "error"));
            if warnings > 0 {
                summary.push_str(&format!(", {}", plural(warnings, "warning")));
            }
            print::errln(summary);
            Ok(exit::CONFIG)
        }
    }
}

/// A warning for each cgroup-backed limit of `jobs` (`memory_max`, `cpu_max`, `pids_max`,
/// `io_weight`) whose controller this host does not offer: `host` is what
/// [`mount::host_controllers`] found (this process's cgroup directory and its
/// `cgroup.controllers`), or why nothing could be found, and then every such limit is warned
/// of. Each warning names the job (where it is defined), the key and the controller.
fn limit_warnings(jobs: &[Job], host: &Result<(PathBuf, Vec<String>), String>) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for job in jobs {
        for (controller, key) in job.limits.controllers() {
            let why = match host {
                Ok((_, offered)) if offered.iter().any(|c| c == controller) => continue,
                Ok((dir, offered)) => {
                    let listed = if offered.is_empty() {
                        "lists no controller".to_string()
                    } else {
                        format!("lists: {}", offered.join(" "))
                    };
                    format!(
                        "{key} needs the cgroup v2 {controller} controller, which this host does \
                         not offer ({} {listed})",
                        dir.join("cgroup.controllers").display()
                    )
                }
                Err(e) => format!(
                    "{key} needs the cgroup v2 {controller} controller, and no cgroup-backed \
                     limit can be applied on this host: {e}"
                ),
            };
            warnings.push(super::check_files::job_warning(
                job,
                format!("{why}; the limit will not be applied"),
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The jobs of a table with three limited jobs, loaded from a temporary file.
    fn jobs(tag: &str) -> (PathBuf, Vec<Job>) {
        let dir =
            std::env::temp_dir().join(format!("cronwarden-check-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("jobs.toml");
        let table = "[defaults]\npids_max = 50\n\n\
                     [jobs.a]\nschedule = \"@hourly\"\ncommand = [\"/bin/true\"]\n\
                     memory_max = \"1GiB\"\ncpu_max = \"50%\"\nio_weight = 10\n\n\
                     [jobs.b]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n\
                     io_class = \"idle\"\n";
        std::fs::write(&path, table).expect("write the table");
        let loaded = config::load(&path, LoadOptions::default());
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded.errors().count(), 0, "{:?}", loaded.diagnostics);
        (path, loaded.config.expect("a table").jobs)
    }

    fn lines(ds: &[Diagnostic]) -> Vec<String> {
        ds.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn warns_of_each_controller_the_host_lacks() {
        let (path, jobs) = jobs("lacks");
        let p = path.display();
        let host = Ok((
            PathBuf::from("/cg"),
            vec!["cpu".to_string(), "pids".to_string()],
        ));
        let end = "which this host does not offer (/cg/cgroup.controllers lists: cpu pids); the \
                   limit will not be applied";
        assert_eq!(
            lines(&limit_warnings(&jobs, &host)),
            [
                format!(
                    "{p}:4:1: warning: job \"a\": memory_max needs the cgroup v2 memory \
                     controller, {end}"
                ),
                format!(
                    "{p}:4:1: warning: job \"a\": io_weight needs the cgroup v2 io controller, \
                     {end}"
                ),
            ]
        );
        let all = ["cpu", "io", "memory", "pids"].map(String::from).to_vec();
        assert!(limit_warnings(&jobs, &Ok((PathBuf::from("/cg"), all))).is_empty());
        let none = limit_warnings(&jobs, &Ok((PathBuf::from("/cg"), Vec::new())));
        assert_eq!(none.len(), 5, "{:?}", lines(&none));
        assert!(
            none[0]
                .message
                .contains("(/cg/cgroup.controllers lists no controller)")
        );
        assert_eq!(none[4].subject.as_deref(), Some("job \"b\""));
        assert!(
            none[4]
                .message
                .starts_with("pids_max needs the cgroup v2 pids controller")
        );
    }

    #[test]
    fn without_cgroup2_every_limit_is_warned_of() {
        let (_, jobs) = jobs("none");
        let host = Err("no cgroup2 file system is mounted".to_string());
        let w = limit_warnings(&jobs, &host);
        assert_eq!(w.len(), 5);
        assert!(w.iter().all(|d| d.severity == Severity::Warning));
        assert_eq!(
            w[0].message,
            "memory_max needs the cgroup v2 memory controller, and no cgroup-backed limit can be \
             applied on this host: no cgroup2 file system is mounted; the limit will not be \
             applied"
        );
    }
}
