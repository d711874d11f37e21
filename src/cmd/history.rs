//! `cronwarden history JOB`: a job's recent runs, as a table or JSON.

use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::job_args::find_job;
use super::list::render_columns;
use super::status::{duration_and_attempts, exit_of};
use super::{CmdResult, Failure, connect, exit, load_or_fail, print};
use crate::coord::Role;
use crate::record::RunRecord;
use crate::schedule::format_rfc3339;
use crate::units::{format_cpu_seconds, format_size};

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
    print::out(table_text(recent, job.tz(), fleet))?;
    Ok(exit::OK)
}

/// The columns of the text view, in order; CPU and PEAK are shown only when a run listed has
/// one of them, NODE only in fleet mode.
const HEADER: [&str; 11] = [
    "RUN ID",
    "SCHEDULED",
    "STARTED",
    "DURATION",
    "CPU",
    "PEAK",
    "ATTEMPTS",
    "EXIT",
    "OUTCOME",
    "REASON",
    "NODE",
];

/// The text view of `runs`: one row per run (the columns of [`HEADER`] that apply), and
/// under a run that left processes behind or ran without some of its limits, a line for each
/// (indented).
fn table_text(runs: &[RunRecord], tz: &TimeZone, fleet: bool) -> String {
    let rows: Vec<[String; 11]> = runs.iter().map(|r| row(r, tz)).collect();
    let usage = runs.iter().any(|r| r.facts.usage != Default::default());
    let table = match (usage, fleet) {
        (false, false) => render_columns(&HEADER, &rows, [0, 1, 2, 3, 6, 7, 8, 9]),
        (false, true) => render_columns(&HEADER, &rows, [0, 1, 2, 3, 6, 7, 8, 9, 10]),
        (true, false) => render_columns(&HEADER, &rows, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        (true, true) => render_columns(&HEADER, &rows, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    };
    let mut lines = table.lines();
    let mut out = String::with_capacity(table.len());
    if let Some(header) = lines.next() {
        out.push_str(header);
        out.push('\n');
    }
    for (line, r) in lines.zip(runs) {
        out.push_str(line);
        out.push('\n');
        for note in r.facts.notes() {
            out.push_str(&format!("  {note}\n"));
        }
    }
    out
}

/// One run's cells, in the order of [`HEADER`].
fn row(r: &RunRecord, tz: &TimeZone) -> [String; 11] {
    let started = r
        .started
        .parse::<Timestamp>()
        .map(|t| format_rfc3339(t, tz))
        .unwrap_or_else(|_| r.started.clone());
    let (dur, attempts) = duration_and_attempts(r);
    let usage = &r.facts.usage;
    [
        r.run_id.clone(),
        r.scheduled.clone(),
        started,
        dur,
        usage
            .cpu_seconds
            .map_or_else(|| "-".to_string(), format_cpu_seconds),
        usage
            .peak_memory_bytes
            .map_or_else(|| "-".to_string(), format_size),
        attempts,
        exit_of(r),
        match &r.skips {
            Some(k) => format!("{} ({} times)", r.outcome.as_str(), k.count),
            None => r.outcome.as_str().to_string(),
        },
        r.reason.clone().unwrap_or_default(),
        r.node.clone().unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::{rec, with_facts};

    #[test]
    fn runs_without_facts_keep_the_columns_they_had() {
        let text = table_text(&[rec("a"), rec("b")], &TimeZone::UTC, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let header: Vec<&str> = lines[0]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            header,
            [
                "RUN ID",
                "SCHEDULED",
                "STARTED",
                "DURATION",
                "ATTEMPTS",
                "EXIT",
                "OUTCOME",
                "REASON"
            ],
            "{text}"
        );
        assert!(
            lines[1].starts_with("a ") && lines[1].ends_with(" success"),
            "{text}"
        );
        assert!(
            !text.contains("CPU") && !text.contains("left behind"),
            "{text}"
        );
        let fleet = table_text(&[rec("a")], &TimeZone::UTC, true);
        assert!(
            fleet.lines().next().is_some_and(|h| h.ends_with(" NODE")),
            "{fleet}"
        );
    }

    #[test]
    fn cpu_peak_leftovers_and_limits_are_shown_under_their_run() {
        let text = table_text(&[rec("plain"), with_facts("used")], &TimeZone::UTC, false);
        let lines: Vec<&str> = text.lines().collect();
        let cols = |l: &str| -> Vec<String> { l.split_whitespace().map(String::from).collect() };
        // RUN ID, SCHEDULED, STARTED, DURATION, CPU, PEAK, ATTEMPTS, EXIT, OUTCOME, REASON.
        assert!(lines[0].starts_with("RUN ID "), "{text}");
        assert!(
            lines[0].contains(" DURATION  CPU    PEAK     ATTEMPTS "),
            "{text}"
        );
        assert_eq!(cols(lines[1])[3..7], ["1.0s", "-", "-", "0"], "{text}");
        assert_eq!(lines[2].split_whitespace().next(), Some("used"), "{text}");
        assert_eq!(
            cols(lines[2])[3..9],
            ["1.0s", "0.61s", "64.2MiB", "1", "1", "failure"],
            "{text}"
        );
        assert_eq!(
            lines[3..],
            [
                "  stopped 1 process left behind: sleep 4444 (pid 123)",
                "  kept 2 processes left behind: tail -f log (pid 124), sleep 9 (pid 125)",
                "  limits not applied: memory_max: no memory controller in the cgroup; \
                 io_weight: no io controller",
            ],
            "{text}"
        );
    }

    #[test]
    fn leftovers_alone_add_their_line_but_no_usage_columns() {
        let mut r = rec("x");
        r.facts.limits_not_applied = vec!["pids_max: no pids controller".to_string()];
        let text = table_text(&[r, rec("y")], &TimeZone::UTC, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines[0].contains("CPU"), "{text}");
        assert!(lines[1].starts_with("x "), "{text}");
        assert_eq!(
            lines[2],
            "  limits not applied: pids_max: no pids controller"
        );
        assert!(lines[3].starts_with("y "), "{text}");
        assert_eq!(lines.len(), 4, "{text}");
    }
}
