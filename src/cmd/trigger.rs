//! `cronwarden trigger JOB`: one run now, by whoever runs the schedule (the daemon through
//! its control socket, or in fleet mode the fleet's database).

use std::path::Path;

use super::job_args::{find_job, parse_params};
use super::{connect, load_or_fail, print};
use crate::coord::Role;
use crate::exit::CmdResult;

/// `trigger JOB [--param K=V]... [--wait]`.
pub(super) fn trigger(path: &Path, name: &str, params: &[String], wait: bool) -> CmdResult {
    let cfg = load_or_fail(path)?;
    let job = find_job(&cfg, name)?;
    let params = parse_params(job, params)?;
    let coord = connect(&cfg, Role::Client)?;
    let reply = coord.trigger(&cfg.settings, name, &params, wait)?;
    match (&reply.note, &reply.outcome) {
        (Some(note), _) => print::errln(format!("{}: {note}", reply.run_id)),
        (None, Some(o)) => print::out(format!("{} {o}\n", reply.run_id))?,
        (None, None) => print::out(format!("{}\n", reply.run_id))?,
    }
    Ok(reply.exit_code)
}
