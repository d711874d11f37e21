//! `cronwarden check`: validate the table, print every problem.

use std::path::Path;

use super::{CmdResult, exit, print};
use crate::config::{self, LoadOptions};
use crate::diag::Severity;

pub(super) fn run(path: &Path) -> CmdResult {
    let loaded = config::load(path, LoadOptions::default());
    for d in &loaded.diagnostics {
        print::errln(d);
    }
    let errors = loaded.errors().count();
    let warnings = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match loaded.config {
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
