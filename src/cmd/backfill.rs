//! `cronwarden backfill JOB --from --to`: each scheduled instant in a range, oldest first.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::job_args::find_job;
use super::runner::{Runner, alerting};
use super::{CmdResult, Failure, load_or_fail, print};
use crate::config::Job;
use crate::execute::Ctx;
use crate::pipeline::{self, Start};
use crate::runner::Interrupt;
use crate::schedule::{TimeArg, format_rfc3339};

/// `backfill JOB --from --to`: each scheduled instant in the range, oldest first, each a
/// full pipeline run; stops at the first failed one unless `keep_going`.
pub(super) fn backfill(
    config_path: &std::path::Path,
    name: &str,
    from: &str,
    to: &str,
    keep_going: bool,
) -> CmdResult {
    let cfg = Arc::new(load_or_fail(config_path)?);
    let job = find_job(&cfg, name)?;
    let schedule = job
        .schedule
        .as_ref()
        .filter(|s| s.expr().is_calendar())
        .ok_or_else(|| {
            Failure::usage(format!("job {name:?} has no calendar schedule to backfill"))
        })?;
    let start = match TimeArg::parse(from, job.tz()).map_err(Failure::usage)? {
        TimeArg::Instant(t) => t,
        d @ TimeArg::Date(_) => d.instant(job.tz()).map_err(Failure::usage)?,
    };
    let end = match TimeArg::parse(to, job.tz()).map_err(Failure::usage)? {
        TimeArg::Instant(t) => t,
        // A bare date means the whole day: up to the next day's midnight.
        TimeArg::Date(d) => {
            let next = d.tomorrow().map_err(|e| Failure::usage(e.to_string()))?;
            TimeArg::Date(next)
                .instant(job.tz())
                .map_err(Failure::usage)?
                - jiff::SignedDuration::from_nanos(1)
        }
    };
    if end < start {
        return Err(Failure::usage(format!("--to {to} is before --from {from}")));
    }
    let instants: Vec<Timestamp> = schedule
        .iter_after(start - jiff::SignedDuration::from_secs(1))
        .take_while(|t| *t <= end)
        .take(100_000)
        .collect();
    if instants.is_empty() {
        print::errln(format!(
            "{name}: no scheduled instant between {from} and {to}"
        ));
        return Ok(super::exit::OK);
    }
    let runner = Runner::new(&cfg)?;
    let interrupt = &runner.interrupt;
    let (rows, code) = runner.with_alerts(&cfg, alerting(&cfg, &job.name, false), |ctx| {
        backfill_each(ctx, job, &instants, keep_going, interrupt)
    });
    print::out(super::list::render_table(
        &["SCHEDULED", "OUTCOME", "STEPS OK", "NOT OK"],
        &rows,
    ))?;
    runner.coord.leave();
    Ok(code)
}

/// One pipeline run per instant, oldest first: a row each, and the exit code.
fn backfill_each(
    ctx: Ctx<'_>,
    job: &Job,
    instants: &[Timestamp],
    keep_going: bool,
    interrupt: &Interrupt,
) -> (Vec<[String; 4]>, u8) {
    let mut rows = Vec::new();
    let mut code = super::exit::OK;
    for &t in instants {
        let start = Start {
            root: job,
            scheduled: t,
            params: BTreeMap::new(),
            only: false,
            trigger: "backfill",
            respect_past: false,
        };
        let report = pipeline::run(ctx, start, interrupt);
        let ok = report
            .steps
            .iter()
            .filter(|r| r.outcome.ended_well())
            .count();
        let outcome = if report.exit_code == 0 {
            "success"
        } else {
            "failure"
        };
        rows.push([
            format_rfc3339(t, job.tz()),
            outcome.to_string(),
            format!("{ok}/{}", report.steps.len()),
            report
                .steps
                .iter()
                .filter(|r| !r.outcome.ended_well())
                .map(|r| format!("{} {}", r.job, r.outcome.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
        if report.exit_code != 0 {
            code = report.exit_code;
            if !keep_going || interrupt.received().is_some() {
                break;
            }
        }
    }
    (rows, code)
}
