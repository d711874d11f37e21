//! `cronwarden pause JOB` and `cronwarden resume JOB`: a job's schedule stopped and started
//! again (through the daemon, on disk without one, or in fleet mode for every node).

use std::path::Path;

use super::job_args::find_job;
use super::{connect, load_or_fail, print};
use crate::coord::Role;
use crate::exit::{CmdResult, OK};

/// `pause JOB` (`paused = true`) and `resume JOB`.
pub(super) fn pause(path: &Path, name: &str, paused: bool) -> CmdResult {
    let cfg = load_or_fail(path)?;
    find_job(&cfg, name)?;
    let coord = connect(&cfg, Role::Client)?;
    let said = coord.set_paused(&cfg.settings, name, paused)?;
    print::errln(said);
    Ok(OK)
}
