//! `cronwarden import`: a crontab to a job table.

use std::path::Path;

use crate::exit::{self, CmdResult, Failure};

/// `import [--system] [CRONTAB]`: the table on standard output, what could not be converted
/// on standard error (and exit 1).
pub(super) fn import(system: bool, crontab: Option<&Path>) -> CmdResult {
    let (text, source) = match crontab {
        Some(p) => (
            std::fs::read_to_string(p)
                .map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?,
            p.display().to_string(),
        ),
        None => {
            let mut t = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
                .map_err(|e| Failure::usage(format!("standard input: {e}")))?;
            (t, "standard input".to_string())
        }
    };
    let imported = crate::import::import(&text, system, &source);
    super::print::out(&imported.toml)?;
    for (line, p) in &imported.problems {
        super::print::errln(format!("{source}:{line}: not converted: {p}"));
    }
    Ok(if imported.problems.is_empty() {
        exit::OK
    } else {
        exit::JOB_FAILED
    })
}
