//! `cronwarden run JOB`: one run now, through the same path the daemon uses.

use std::sync::Arc;

use super::job_args::{find_job, parse_params, scheduled_at};
use super::runner::{Runner, alerting};
use super::{CmdResult, load_or_fail, print};
use crate::pipeline::{self, Start};
use crate::schedule::format_rfc3339;

fn step_line(r: &crate::record::RunRecord) -> String {
    let mut line = format!("{} {}: {}", r.job, r.run_id, r.outcome.as_str());
    if !r.attempts.is_empty() {
        line.push_str(&format!(
            " after {} attempt{}",
            r.attempts.len(),
            if r.attempts.len() == 1 { "" } else { "s" }
        ));
    }
    if let Some(reason) = &r.reason {
        line.push_str(&format!(": {reason}"));
    }
    if let Some(out) = &r.output {
        line.push_str(&format!("\n  output: {out}"));
    }
    line
}

pub(super) fn run(
    config_path: &std::path::Path,
    name: &str,
    at: Option<&str>,
    params: &[String],
    (only, respect_past): (bool, bool),
) -> CmdResult {
    let cfg = Arc::new(load_or_fail(config_path)?);
    let job = find_job(&cfg, name)?;
    let scheduled = scheduled_at(job, at)?;
    let params = parse_params(job, params)?;
    let runner = Runner::new(&cfg)?;
    let start = Start {
        root: job,
        scheduled,
        params,
        only,
        trigger: "run",
        respect_past,
    };
    let report = runner.with_alerts(&cfg, alerting(&cfg, &job.name, only), |ctx| {
        // Runs of this job whose supervisor died (kill -9 of a daemon or a `run`): recorded
        // when their group is gone, stopped when their timeout ran out.
        crate::execute::orphan::settle_job(ctx, job, &runner.interrupt);
        pipeline::run(ctx, start, &runner.interrupt)
    });
    print::errln(format!("{name} ({}):", format_rfc3339(scheduled, job.tz())));
    for r in &report.steps {
        print::errln(format!("  {}", step_line(r)));
    }
    runner.coord.leave();
    Ok(report.exit_code)
}
