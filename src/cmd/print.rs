//! What the commands print, and the one rule for a reader that goes away: when standard
//! output is a pipe whose reader has gone (`cronwarden next ... | head -1`), the rest of the
//! output is dropped without a word, the command stops producing it, and it ends with the
//! exit code of its work. `print!` and `eprintln!` would panic there instead (exit 101).
//!
//! SIGPIPE stays ignored (Rust's default) in every command, so a closed pipe is this EPIPE
//! error and never a signal: `run` and the daemon also write to the pipes and sockets of
//! jobs, alert commands, mail servers and the control socket, and must not die of one.

use std::fmt::Display;
use std::io::{self, BufWriter, StdoutLock, Write};

use crate::exit::{self, Failure};

/// Standard output, buffered, for a command's result.
pub(crate) struct Out {
    w: BufWriter<StdoutLock<'static>>,
    /// The reader has gone: everything else is dropped.
    gone: bool,
}

impl Out {
    pub(crate) fn new() -> Out {
        Out {
            w: BufWriter::new(io::stdout().lock()),
            gone: false,
        }
    }

    /// Writes `text`. `Ok(false)` once nobody reads any more: there is no need to produce
    /// the rest. Any other write error is the command's failure.
    pub(crate) fn write(&mut self, text: impl Display) -> Result<bool, Failure> {
        if !self.gone {
            let r = write!(self.w, "{text}");
            self.settle(r)?;
        }
        Ok(!self.gone)
    }

    /// Flushes what is buffered. (Dropped without it, the buffer is flushed too, with any
    /// error ignored.)
    pub(crate) fn finish(mut self) -> Result<(), Failure> {
        if !self.gone {
            let r = self.w.flush();
            self.settle(r)?;
        }
        Ok(())
    }

    fn settle(&mut self, r: io::Result<()>) -> Result<(), Failure> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(())
            }
            Err(e) => {
                self.gone = true;
                Err(Failure::new(
                    exit::IO_ERROR,
                    format!("cannot write to standard output: {e}"),
                ))
            }
        }
    }
}

/// `text` on standard output (see [`Out`]).
pub(crate) fn out(text: impl Display) -> Result<(), Failure> {
    let mut o = Out::new();
    o.write(text)?;
    o.finish()
}

/// One line on standard error. An error writing it is ignored: there is nowhere left to
/// report it, and a diagnostic nobody reads must not stop the command.
pub(crate) fn errln(line: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}
