//! Exit codes, the error a command ends with, and the signal -> exit code rule. How a run's
//! outcome maps to an exit code is `Outcome::exit_code` (in the record module), the one place
//! that says it.

use std::fmt;

pub(crate) const OK: u8 = 0;
pub(crate) const JOB_FAILED: u8 = 1;
pub(crate) const USAGE: u8 = 2;
pub(crate) const NO_DAEMON: u8 = 69;
/// The command's output could not be written (EX_IOERR); a closed pipe is not this.
pub(crate) const IO_ERROR: u8 = 74;
pub(crate) const LOCKED: u8 = 75;
pub(crate) const CONFIG: u8 = 78;
pub(crate) const SIGINT: u8 = 130;
pub(crate) const SIGTERM: u8 = 143;

/// The exit code of a process stopped by `sig` (128 + the signal, for the two it handles).
pub(crate) fn for_signal(sig: i32) -> u8 {
    if sig == libc::SIGINT { SIGINT } else { SIGTERM }
}

/// Work that could not be done: what to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(USAGE, message)
    }

    pub fn config(message: impl Into<String>) -> Failure {
        Failure::new(CONFIG, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a command returns: its exit code, or the failure to print.
pub type CmdResult = Result<u8, Failure>;
