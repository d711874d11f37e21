//! `cronwarden history JOB`: a job's recent runs, as a table or JSON.

use std::path::Path;

use jiff::Timestamp;

use super::job_args::find_job;
use super::list::render_table;
use super::status::{duration_and_attempts, exit_of};
use super::{CmdResult, Failure, connect, exit, load_or_fail, print};
use crate::coord::Role;
use crate::schedule::format_rfc3339;

/// `history JOB [-n COUNT] [--json]`.
pub(super) fn history(path: &Path, name: &str, count: usize, json: bool) -> CmdResult {
    let cfg = load_or_fail(path)?;
    let job = find_job(&cfg, name)?;
    let coord = connect(&cfg, Role::Client)?;
    let runs = coord.history(&cfg.settings, &job.name, count)?;
    let recent = &runs[runs.len().saturating_sub(count)..];
    if json {
        let text =
            serde_json::to_string_pretty(recent).map_err(|e| Failure::usage(e.to_string()))?;
        print::out(format!("{text}\n"))?;
        return Ok(exit::OK);
    }
    // Fleet mode: the node each run ran on.
    let fleet = coord.node().is_some();
    let header = [
        "RUN ID",
        "SCHEDULED",
        "STARTED",
        "DURATION",
        "ATTEMPTS",
        "EXIT",
        "OUTCOME",
        "REASON",
        "NODE",
    ];
    let rows: Vec<[String; 9]> = recent
        .iter()
        .map(|r| {
            let started = r
                .started
                .parse::<Timestamp>()
                .map(|t| format_rfc3339(t, &job.tz))
                .unwrap_or_else(|_| r.started.clone());
            let (dur, attempts) = duration_and_attempts(r);
            [
                r.run_id.clone(),
                r.scheduled.clone(),
                started,
                dur,
                attempts,
                exit_of(r),
                match &r.skips {
                    Some(k) => format!("{} ({} times)", r.outcome.as_str(), k.count),
                    None => r.outcome.as_str().to_string(),
                },
                r.reason.clone().unwrap_or_default(),
                r.node.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if fleet {
        print::out(render_table(&header, &rows))?;
    } else {
        let h8: [&str; 8] = std::array::from_fn(|i| header[i]);
        let rows: Vec<[String; 8]> = rows
            .into_iter()
            .map(|r| std::array::from_fn(|i| r[i].clone()))
            .collect();
        print::out(render_table(&h8, &rows))?;
    }
    Ok(exit::OK)
}
