//! One function per command: turn parsed arguments into work and an exit code.

mod check;
mod list;
mod next;

use std::fmt;
use std::path::PathBuf;

use crate::cli::{Cli, Command};
use crate::config::{self, Config, LoadOptions};
use crate::diag::Severity;

/// Exit codes (JOB-TABLE.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const JOB_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NO_DAEMON: u8 = 69;
    pub const LOCKED: u8 = 75;
    pub const CONFIG: u8 = 78;
    pub const SIGINT: u8 = 130;
    pub const SIGTERM: u8 = 143;
}

/// A command that could not do its work: what to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    pub fn config(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::CONFIG,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type CmdResult = Result<u8, Failure>;

pub fn run(cli: Cli) -> CmdResult {
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(crate::paths::default_config);
    match cli.command {
        Command::Check => check::run(&config_path),
        Command::List => list::run(&load_or_fail(&config_path)?),
        Command::Next {
            expr,
            tz,
            after,
            count,
        } => next::run(&expr.join(" "), tz.as_deref(), after.as_deref(), count),
    }
}

/// Loads the table for a command that needs a valid one: warnings go to stderr, and any
/// error stops the command with exit 78 after printing every problem.
pub fn load_or_fail(path: &PathBuf) -> Result<Config, Failure> {
    let loaded = config::load(path, LoadOptions::default());
    for d in &loaded.diagnostics {
        eprintln!("{d}");
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
