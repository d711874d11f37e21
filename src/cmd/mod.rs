//! The command layer: one file per command, each turning parsed arguments into work and an
//! exit code. It is the only layer that picks the coordination backend (local, or the fleet
//! of `[cluster]`); everything below is handed it.

mod backfill;
mod check;
mod completions;
mod health;
mod history;
mod import;
mod job_args;
mod list;
mod man;
mod next;
mod nodes;
mod pause;
mod print;
mod run;
mod runner;
mod status;
mod test_alert;
mod trigger;

use std::sync::Arc;

use crate::cli::{Cli, Command};
use crate::config::{self, Config, LoadOptions};
use crate::coord::{Coordinator, Local, Role};
use crate::diag::Severity;
use crate::exit::{self};
pub use crate::exit::{CmdResult, Failure};

/// Runs the command the arguments name.
pub fn run(cli: Cli) -> CmdResult {
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(crate::paths::default_config);
    let command = match (cli.command, cli.run) {
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "--run JOB cannot be combined with a command",
            ));
        }
        (Some(c), None) => c,
        (None, Some(job)) => Command::Run {
            job,
            at: None,
            params: Vec::new(),
            only: false,
        },
        (None, None) => {
            return Err(Failure::usage(
                "no command given; try `cronwarden --help` (e.g. `cronwarden check`)",
            ));
        }
    };
    let path = config_path.as_path();
    match command {
        Command::Run {
            job,
            at,
            params,
            only,
        } => run::run(path, &job, at.as_deref(), &params, only),
        Command::Backfill {
            job,
            from,
            to,
            keep_going,
        } => backfill::backfill(path, &job, &from, &to, keep_going),
        Command::Daemon => crate::daemon::run(path, &|cfg| connect(cfg, Role::Daemon)),
        Command::Check => check::run(path),
        Command::List => list::run(&load_or_fail(path)?),
        Command::Next {
            expr,
            tz,
            after,
            count,
        } => next::run(&expr.join(" "), tz.as_deref(), after.as_deref(), count),
        Command::Trigger { job, params, wait } => trigger::trigger(path, &job, &params, wait),
        Command::Pause { job } => pause::pause(path, &job, true),
        Command::Resume { job } => pause::pause(path, &job, false),
        Command::Status { job, json, nodes } => status::status(path, job.as_deref(), json, nodes),
        Command::Health { json } => health::health(path, json),
        Command::History { job, count, json } => history::history(path, &job, count, json),
        Command::Import { system, crontab } => import::import(system, crontab.as_deref()),
        Command::TestAlert { channel } => test_alert::test_alert(path, &channel),
        Command::Completions { shell } => completions::completions(shell),
        Command::Man => man::man(),
    }
}

/// Loads the table for a command that needs a valid one: warnings go to stderr, and any
/// error stops the command with exit 78 after printing every problem.
fn load_or_fail(path: &std::path::Path) -> Result<Config, Failure> {
    let loaded = config::load(path, LoadOptions::default());
    for d in &loaded.diagnostics {
        print::errln(d);
    }
    match loaded.config {
        Some(c) => Ok(c),
        None => {
            let n = loaded
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            Err(Failure::config(format!(
                "{}: {n} error{} in the job table; `cronwarden check` lists them",
                path.display(),
                if n == 1 { "" } else { "s" }
            )))
        }
    }
}

/// The coordination backend for this table: local mode, or (with `[cluster]`) the fleet's
/// database, joined in `role`. Without the database, fleet commands do not fall back to
/// this host's view: that would show one node and call it the fleet.
fn connect(cfg: &Config, role: Role) -> Result<Arc<dyn Coordinator>, Failure> {
    let Some(cluster) = &cfg.cluster else {
        return Ok(Arc::new(Local::default()));
    };
    let log = crate::log::Logger::new(cfg.settings.log_file.clone(), cfg.settings.log_format);
    match crate::fleet::Fleet::join(cluster, &cfg.settings.state_dir, role, log) {
        Ok(f) => Ok(f),
        Err(e) => Err(Failure::new(
            exit::NO_DAEMON,
            format!("fleet mode ([cluster] in {}): {e}", cfg.path.display()),
        )),
    }
}
