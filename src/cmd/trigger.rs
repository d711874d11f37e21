//! `cronwarden trigger JOB`: one run now, by whoever runs the schedule (the daemon through
//! its control socket, or in fleet mode the fleet's database). `trigger --tag T`: one run of
//! every job with the tag.

use std::path::Path;

use super::job_args::{check_tag, find_job, parse_params};
use super::{connect, load_or_fail, print};
use crate::config::Job;
use crate::coord::Role;
use crate::exit::CmdResult;

/// `trigger (JOB | --tag T) [--param K=V]... [--wait]`. With `--tag`, one line per job (its
/// name first), in table order; the exit status is the highest of the runs'.
pub(super) fn trigger(
    path: &Path,
    (name, tag): (Option<&str>, Option<&str>),
    params: &[String],
    wait: bool,
) -> CmdResult {
    let cfg = load_or_fail(path)?;
    let jobs: Vec<&Job> = match (name, tag) {
        (Some(name), _) => vec![find_job(&cfg, name)?],
        (None, t) => {
            check_tag(&cfg, t)?;
            let t = t.unwrap_or_default();
            cfg.jobs.iter().filter(|j| j.has_tag(t)).collect()
        }
    };
    // Every job's parameters are checked before any run is asked for.
    let params = jobs
        .iter()
        .map(|j| parse_params(j, params))
        .collect::<Result<Vec<_>, _>>()?;
    let coord = connect(&cfg, Role::Client)?;
    let mut code = 0;
    for (job, params) in jobs.iter().zip(params) {
        let reply = coord.trigger(&cfg.settings, &job.name, &params, wait)?;
        let who = if tag.is_some() {
            format!("{} ", job.name)
        } else {
            String::new()
        };
        match (&reply.note, &reply.outcome) {
            (Some(note), _) => print::errln(format!("{who}{}: {note}", reply.run_id)),
            (None, Some(o)) => print::out(format!("{who}{} {o}\n", reply.run_id))?,
            (None, None) => print::out(format!("{who}{}\n", reply.run_id))?,
        }
        code = code.max(reply.exit_code);
    }
    Ok(code)
}
