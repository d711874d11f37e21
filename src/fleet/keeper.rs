//! The fence keeper: a small process of its own that stops the job groups of this process
//! if it dies, even by SIGKILL (a node whose cronwarden died must not leave a job running
//! that another node is about to take over).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::Fleet;
use crate::sync::lock;
use crate::sys;

/// The first argument that makes the binary the fence keeper.
pub const KEEPER_ARG: &str = "__cronwarden-fence-keeper";

/// Starts the fence keeper: a small process of its own (its own process group, so a Ctrl-C
/// meant for `run` does not reach it) that holds the read end of a pipe. When this process
/// dies, even by SIGKILL, the pipe closes and the keeper stops the job groups it was told
/// about: a node whose cronwarden died must not leave a job running that another node is
/// about to take over.
pub(super) fn start(grace: Duration) -> Result<std::process::ChildStdin, String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| format!("fence keeper: {e}"))?;
    let mut child = std::process::Command::new(exe)
        .arg(KEEPER_ARG)
        .arg(grace.as_millis().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the fence keeper: {e}"))?;
    let stdin = child.stdin.take().ok_or("fence keeper: no stdin")?;
    // Reaped by a thread so it never lingers as a zombie.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(stdin)
}

/// The fence keeper itself (`cronwarden __cronwarden-fence-keeper GRACE_MS`).
pub fn keeper(grace: Duration) {
    use std::io::BufRead;
    let mut groups: HashSet<i32> = HashSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (op, n) = line.split_at(line.len().min(1));
        let Ok(pgid) = n.trim().parse::<i32>() else {
            continue;
        };
        if pgid <= 1 {
            continue;
        }
        match op {
            "+" => {
                groups.insert(pgid);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    // The cronwarden process is gone: stop what it was running.
    for &g in &groups {
        let _ = sys::kill_group(g, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && groups.iter().any(|&g| sys::group_alive(g)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &g in &groups {
        let _ = sys::kill_group(g, libc::SIGKILL);
    }
}

impl Fleet {
    /// Tells the fence keeper about a job's process group (`add`) or its end.
    pub(super) fn keep(&self, pgid: i32, add: bool) {
        use std::io::Write;
        if let Some(k) = lock(&self.keeper).as_mut() {
            let _ = writeln!(k, "{}{pgid}", if add { '+' } else { '-' });
        }
    }
}
