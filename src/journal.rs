//! The systemd journal's native protocol: one datagram per entry on the journal's socket,
//! each field `NAME=value\n`, or, for a value holding a newline, `NAME\n`, the value's length
//! as 64-bit little-endian, the value and `\n` (systemd.journal-fields(7), "Native
//! Protocol" in systemd's documentation).
//!
//! The socket is `/run/systemd/journal/socket`, or the one `CRONWARDEN_JOURNAL_SOCKET`
//! names (the tests point it at a socket of their own). Entries are bounded (the log's
//! lines are, and a job's output lines are cut at `output::LINE_MAX`): the variant that
//! passes a larger entry in a memfd is not used.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where journald listens for native entries.
pub(crate) const SOCKET: &str = "/run/systemd/journal/socket";

/// The socket to send to: `CRONWARDEN_JOURNAL_SOCKET` if set (and not empty), else
/// [`SOCKET`].
pub(crate) fn socket_path(env: Option<std::ffi::OsString>) -> PathBuf {
    match env {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(SOCKET),
    }
}

/// Whether the stream open on `fd` is the journal's (systemd sets `JOURNAL_STREAM` to
/// `DEVICE:INODE` of the stream it connected stdout and stderr to: a descriptor that was
/// redirected since no longer matches).
pub(crate) fn is_journal_stream(fd: std::os::fd::BorrowedFd<'_>, env: Option<&str>) -> bool {
    let Some((dev, ino)) = env.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

/// Field names are upper-case letters, digits and underscores, not starting with `_` (those
/// are journald's own) or a digit: anything else becomes `_`.
pub(crate) fn field_name(prefix: &str, key: &str) -> String {
    let mut n = String::with_capacity(prefix.len() + key.len());
    n.push_str(prefix);
    for c in key.chars() {
        match c {
            'a'..='z' => n.push(c.to_ascii_uppercase()),
            'A'..='Z' | '0'..='9' => n.push(c),
            _ => n.push('_'),
        }
    }
    n
}

/// One entry in the native format.
pub(crate) fn encode(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The sending end: an unbound datagram socket.
pub(crate) struct Journal {
    path: PathBuf,
    sock: Option<UnixDatagram>,
}

impl Journal {
    pub(crate) fn new(path: PathBuf) -> Journal {
        Journal { path, sock: None }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one entry.
    pub(crate) fn send(&mut self, entry: &[u8]) -> io::Result<()> {
        if self.sock.is_none() {
            self.sock = Some(UnixDatagram::unbound()?);
        }
        let Some(sock) = &self.sock else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        loop {
            match sock.send_to(entry, &self.path) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_newlines_take_the_binary_form() {
        let e = encode(&[("MESSAGE", "a\nb"), ("PRIORITY", "6")]);
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\nPRIORITY=6\n");
        assert_eq!(e, want);
        assert_eq!(field_name("CRONWARDEN_", "run_id"), "CRONWARDEN_RUN_ID");
        assert_eq!(
            field_name("CRONWARDEN_", "exit-code"),
            "CRONWARDEN_EXIT_CODE"
        );
    }
}
