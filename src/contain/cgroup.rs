//! A cgroup v2 per attempt: `<base>/cronwarden/<job>.<run id>.<attempt>`, where `<base>` is
//! this process's own cgroup (found by `mount.rs`).
//!
//! A daemon started by systemd (with `Delegate=yes`, the unit's cgroup is its own) first
//! moves itself into the leaf `<base>/supervisor`, so that `<base>` holds no process and the
//! controllers it was given can be enabled below it. Elsewhere cronwarden enables below
//! `cronwarden/` what its own cgroup passes down, and never writes to a cgroup it did not
//! make: controllers that the host does not hand to cronwarden's cgroup stay off (the
//! limits that need them are then reported as not applied).
//!
//! Processes a run lets go of (`leftovers = "keep"`) go to `<base>/cronwarden/kept`.
//!
//! One `mkdir` or `rmdir` below `cronwarden/` at a time ([`Tree::changes`]): each holds the
//! directory's inode lock for the whole creation or destruction of a cgroup, and the kernel
//! has the threads that wait for it spin while its holder runs. With 100 runs started at
//! once (`bench/burst.sh BIN second`, the daemon in a cgroup of its own so that its CPU time
//! is read from `cpu.stat`), the daemon used 110 and 114 ms of CPU for the burst with them
//! side by side, 69 and 81 ms with them one at a time behind a mutex, where the waiting
//! threads sleep (the last start 151 and 174 ms against 128 and 125 ms; 2026-12-02).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::sync::lock;

/// The controllers cronwarden's limits use.
const WANTED: &[&str] = &["cpu", "memory", "pids", "io"];

/// The words of a controllers file (`cgroup.controllers`, `cgroup.subtree_control`).
fn controllers_in(dir: &Path, file: &str) -> Vec<String> {
    fs::read_to_string(dir.join(file))
        .map(|t| t.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Writes `text` to an existing cgroup file (no create, no truncate).
pub(crate) fn write(path: &Path, text: &str) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(text.as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

/// Where this process's runs get their cgroups.
#[derive(Debug)]
pub(crate) struct Tree {
    /// `<base>/cronwarden`.
    pub(crate) dir: PathBuf,
    /// The controllers enabled for the runs' cgroups.
    pub(crate) enabled: Vec<String>,
    /// Held for each `mkdir` and `rmdir` in `dir` (see the module's doc).
    changes: Mutex<()>,
}

impl Tree {
    /// Sets up `<base>/cronwarden` (see the module's doc); the error says why this host
    /// cannot give runs a cgroup. `leave_base`: move this process into `<base>/supervisor`
    /// first (a daemon in its own delegated cgroup).
    pub(crate) fn setup(leave_base: bool) -> Result<Tree, String> {
        let (base, own) = super::mount::own_dir()?;
        let own_is_root = own == "/";
        let procs = base.join("cgroup.procs");
        if nix::unistd::access(&procs, nix::unistd::AccessFlags::W_OK).is_err() {
            return Err(format!(
                "{} is not writable (not root, and no delegated cgroup)",
                procs.display()
            ));
        }
        let dir = base.join("cronwarden");
        make_dir(&dir)?;
        if leave_base && !own_is_root {
            let leaf = base.join("supervisor");
            make_dir(&leaf)?;
            write(&leaf.join("cgroup.procs"), "0")
                .map_err(|e| format!("moving the daemon into {}: {e}", leaf.display()))?;
            enable(&base, &controllers_in(&base, "cgroup.controllers"));
        }
        enable(&dir, &controllers_in(&dir, "cgroup.controllers"));
        let enabled = controllers_in(&dir, "cgroup.subtree_control");
        sweep(&dir);
        Ok(Tree {
            dir,
            enabled,
            changes: Mutex::new(()),
        })
    }

    /// A new cgroup for one attempt, open to be joined.
    pub(crate) fn group(&self, name: &str) -> io::Result<Group> {
        let dir = self.dir.join(name);
        let made = {
            let _one = lock(&self.changes);
            fs::create_dir(&dir)
        };
        match made {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("creating the cgroup {}: {e}", dir.display()),
                ));
            }
            _ => {}
        }
        // (std opens every file close-on-exec.)
        let fd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        Ok(Group {
            dir,
            fd: Mutex::new(Some(fd)),
            procs: OnceLock::new(),
        })
    }

    /// Removes an attempt's cgroup once its last process is gone (a process that just
    /// exited may keep it busy for a moment).
    pub(crate) fn remove(&self, g: Group) {
        let Group { dir, .. } = g;
        let until = Instant::now() + Duration::from_millis(500);
        loop {
            let removed = {
                let _one = lock(&self.changes);
                fs::remove_dir(&dir)
            };
            if removed.is_ok() || Instant::now() >= until || !dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The leaf that kept leftovers are moved to.
    pub(crate) fn kept(&self) -> io::Result<PathBuf> {
        let dir = self.dir.join("kept");
        let made = {
            let _one = lock(&self.changes);
            fs::create_dir(&dir)
        };
        match made {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(dir),
        }
    }
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(format!("cannot create the cgroup {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Enables below `dir` the wanted controllers among `offered` (each on its own: one the
/// kernel refuses does not keep the others off).
fn enable(dir: &Path, offered: &[String]) {
    let on = controllers_in(dir, "cgroup.subtree_control");
    for c in WANTED {
        if offered.iter().any(|o| o == c) && !on.iter().any(|o| o == c) {
            let _ = write(&dir.join("cgroup.subtree_control"), &format!("+{c}"));
        }
    }
}

/// Removes the empty cgroups of runs whose supervisor died (a minute old at least: a run
/// that is being started has an empty cgroup for a moment).
fn sweep(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let old = SystemTime::now() - Duration::from_secs(60);
    for e in entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    {
        let p = e.path();
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < old);
        if stale && p.file_name().is_some_and(|n| n != "kept") && !populated(&p) {
            let _ = fs::remove_dir(&p);
        }
    }
}

/// Whether a cgroup (or one below it) has a live process (`cgroup.events`).
pub(crate) fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Sends `sig` to every process in the cgroup `dir` (SIGKILL through `cgroup.kill` where
/// the kernel has it). For a cgroup this process did not open (a run taken over).
pub(crate) fn signal_all(dir: &Path, sig: i32) {
    if sig == libc::SIGKILL && write(&dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    for pid in pids_in(dir) {
        let _ = crate::sys::kill(pid, sig);
    }
}

fn pids_in(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// One attempt's cgroup. Its descriptors are held only as long as they are needed: every
/// descriptor the daemon holds is copied into each child it starts and closed again at the
/// child's exec (with 100 runs at once, 8 descriptors per run made `do_close_on_exec` a
/// tenth of the daemon's time).
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) dir: PathBuf,
    /// The directory itself, open O_RDONLY|O_DIRECTORY, until the child is started in it
    /// (clone3's CLONE_INTO_CGROUP) or without it.
    fd: Mutex<Option<File>>,
    /// Its `cgroup.procs`, opened for writing when a child is to write "0" to it before its
    /// exec (where clone3 cannot start it inside); `None` inside when it cannot be opened.
    procs: OnceLock<Option<File>>,
}

impl Group {
    /// `cgroup.procs`, opened at the first call (`None` when it cannot be).
    pub(crate) fn procs_fd(&self) -> Option<RawFd> {
        self.procs
            .get_or_init(|| {
                OpenOptions::new()
                    .write(true)
                    .open(self.dir.join("cgroup.procs"))
                    .ok()
            })
            .as_ref()
            .map(AsRawFd::as_raw_fd)
    }

    /// The cgroup's directory, open to start a child in it: handed over once (closed when
    /// the caller drops it).
    pub(crate) fn take_dir_fd(&self) -> Option<File> {
        lock(&self.fd).take()
    }

    /// The live processes in it.
    pub(crate) fn pids(&self) -> Vec<i32> {
        pids_in(&self.dir)
    }

    /// SIGKILL to every process in it at once (`cgroup.kill`, Linux 5.14); false where the
    /// kernel has no such file.
    pub(crate) fn kill(&self) -> bool {
        write(&self.dir.join("cgroup.kill"), "1").is_ok()
    }

    /// CPU time of every process that ever ran in it (`cpu.stat` usage_usec, kept by the
    /// kernel even without the cpu controller).
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        let t = fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let usec: u64 = t
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))?
            .trim()
            .parse()
            .ok()?;
        Some(usec as f64 / 1e6)
    }

    /// The peak memory (`memory.peak`, with the memory controller on, Linux 5.19).
    pub(crate) fn memory_peak(&self) -> Option<u64> {
        fs::read_to_string(self.dir.join("memory.peak"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Moves a process out, into `to` (a kept leftover).
    pub(crate) fn move_out(&self, pid: i32, to: &Path) -> io::Result<()> {
        write(&to.join("cgroup.procs"), &pid.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_files_are_read_from_a_stand_in_directory() {
        let dir = std::env::temp_dir().join(format!("cw-cgroup-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        fs::write(dir.join("cgroup.procs"), "").expect("procs");
        fs::write(
            dir.join("cpu.stat"),
            "usage_usec 612345\nuser_usec 600000\nsystem_usec 12345\n",
        )
        .expect("cpu.stat");
        fs::write(dir.join("memory.peak"), "67108864\n").expect("peak");
        fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").expect("events");
        let tree = Tree {
            dir: dir.parent().expect("parent").to_path_buf(),
            enabled: Vec::new(),
            changes: Mutex::new(()),
        };
        let name = dir.file_name().and_then(|n| n.to_str()).expect("name");
        let g = tree.group(name).expect("group");
        // The directory's descriptor is handed over once (to start the child in it);
        // cgroup.procs is opened when first asked for, then kept.
        assert!(g.take_dir_fd().is_some() && g.take_dir_fd().is_none());
        let procs = g.procs_fd().expect("cgroup.procs opened");
        assert_eq!(g.procs_fd(), Some(procs));
        assert_eq!(g.cpu_seconds(), Some(0.612345));
        assert_eq!(g.memory_peak(), Some(64 << 20));
        assert!(populated(&dir));
        fs::write(dir.join("cgroup.procs"), "12\n34\n").expect("procs");
        assert_eq!(g.pids(), vec![12, 34]);
        let _ = fs::remove_dir_all(&dir);
    }
}
