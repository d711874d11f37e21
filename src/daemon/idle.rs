//! What wakes an idle daemon instead of a look every minute (issue 21): with nothing due,
//! the loop sleeps until the next thing that needs it, and these descriptors in its poll
//! set wake it for the duties the minute's look had.
//!
//! - The wall clock: a `CLOCK_REALTIME` timerfd armed far ahead with
//!   `TFD_TIMER_CANCEL_ON_SET` becomes readable when the clock is set (`clock_settime`,
//!   `settimeofday`, an NTP step, a leap second) and at a resume from suspend (the kernel
//!   treats a resume as a clock change for these timers: `timerfd_resume` in
//!   `kernel/time/timekeeping.c`). Between such events CLOCK_MONOTONIC and the wall clock
//!   advance together (NTP slews both), so a poll timeout in monotonic time ends at the
//!   wall-clock instant it was computed for.
//! - The files the daemon keeps (inotify): `lock_dir` removed or moved, the control socket
//!   removed or replaced in its directory.
//! - The alert spool (inotify): an alert written in a channel's directory by another process
//!   (`cronwarden run` leaves there what it could not deliver), a new channel directory, or
//!   the spool directory itself created.
//!
//! A daemon that cannot set one of them up (no inotify, a directory that cannot be watched)
//! keeps the minute's look, as does a fleet node (its backend's clock and leases) and a
//! daemon with runs in flight (the lock files of its runs). Not seen without that look: a
//! parent directory of `lock_dir` or of the socket renamed (the paths then lead nowhere and
//! nothing is removed from the watched directories).

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// What the wake sources saw since the last look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Seen {
    /// A kept file (`lock_dir`, the control socket) may be gone: the watches are made again
    /// after the loop put it back.
    pub(super) files: bool,
    /// An alert may wait in the spool.
    pub(super) spool: bool,
}

/// What one watched directory is watched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// `lock_dir` itself (removed or moved), and the socket's name in it when it is the
    /// socket's directory.
    LockDir,
    /// The control socket's directory, when it is not `lock_dir`.
    SocketDir,
    /// The state directory, while it has no spool: its `spool` created.
    StateDir,
    /// The spool: a channel directory created.
    Spool,
    /// A channel's directory: an alert written or put back.
    Channel,
}

/// The wake sources of an idle daemon.
pub(super) struct Idle {
    clock: TimerFd,
    files: Inotify,
    dirs: Vec<(WatchDescriptor, Role)>,
    socket_name: Option<OsString>,
    socket_in_lock_dir: bool,
}

/// The paths watched: `lock_dir`, the control socket, the state directory.
pub(super) struct Paths<'a> {
    pub(super) lock_dir: &'a Path,
    pub(super) socket: &'a Path,
    pub(super) state_dir: &'a Path,
}

impl Idle {
    /// The wake sources, or `None` when one of them cannot be set up (the loop then keeps
    /// its look every minute).
    pub(super) fn watch(p: &Paths<'_>) -> Option<Idle> {
        let clock = TimerFd::new(
            ClockId::CLOCK_REALTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()?;
        arm(&clock)?;
        let files = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let socket_dir = p.socket.parent().filter(|d| !d.as_os_str().is_empty());
        let mut idle = Idle {
            clock,
            files,
            dirs: Vec::new(),
            socket_name: p.socket.file_name().map(OsString::from),
            socket_in_lock_dir: socket_dir == Some(p.lock_dir),
        };
        idle.add(p.lock_dir, Role::LockDir)?;
        if let Some(dir) = socket_dir.filter(|d| *d != p.lock_dir) {
            idle.add(dir, Role::SocketDir)?;
        }
        let spool = crate::alert::spool_dir(p.state_dir);
        match std::fs::read_dir(&spool) {
            Ok(entries) => {
                idle.add(&spool, Role::Spool)?;
                let channels: Vec<PathBuf> = entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect();
                for dir in channels {
                    idle.add(&dir, Role::Channel)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                idle.add(p.state_dir, Role::StateDir)?;
            }
            Err(_) => return None,
        }
        Some(idle)
    }

    fn add(&mut self, dir: &Path, role: Role) -> Option<()> {
        use AddWatchFlags as F;
        let mask = match role {
            // Not IN_CREATE: a file created at the socket's name needs the name freed first
            // (seen), and lock files created by `cronwarden run` would wake the loop each.
            Role::LockDir | Role::SocketDir => {
                F::IN_DELETE_SELF
                    | F::IN_MOVE_SELF
                    | F::IN_DELETE
                    | F::IN_MOVED_FROM
                    | F::IN_MOVED_TO
            }
            Role::StateDir | Role::Spool => F::IN_CREATE | F::IN_MOVED_TO,
            Role::Channel => F::IN_CLOSE_WRITE | F::IN_MOVED_TO,
        };
        let wd = self.files.add_watch(dir, mask | F::IN_ONLYDIR).ok()?;
        self.dirs.push((wd, role));
        Some(())
    }

    /// The descriptors for the loop's poll set.
    pub(super) fn fds(&self) -> [RawFd; 2] {
        [
            self.clock.as_fd().as_raw_fd(),
            self.files.as_fd().as_raw_fd(),
        ]
    }

    /// Reads what the descriptors hold (they do not block).
    pub(super) fn take(&mut self) -> Seen {
        let mut seen = Seen::default();
        // After a clock change the timer is readable and its read fails with ECANCELED; the
        // wake-up itself is what matters (the loop looks at the clock at every wake-up:
        // `clock::check`). The timer is armed again, to be sure of the next change; a read
        // that finds nothing (EAGAIN) leaves it as it is.
        if !matches!(self.clock.wait(), Err(nix::errno::Errno::EAGAIN))
            && arm(&self.clock).is_none()
        {
            // Not armed: the watches are made again (or the minute's look comes back).
            seen.files = true;
        }
        while let Ok(events) = self.files.read_events() {
            if events.is_empty() {
                break;
            }
            for ev in events {
                let role = self.dirs.iter().find(|(wd, _)| *wd == ev.wd).map(|r| r.1);
                self.note(role, ev.mask, ev.name.as_deref(), &mut seen);
            }
        }
        seen
    }

    /// What one inotify event means.
    fn note(
        &self,
        role: Option<Role>,
        mask: AddWatchFlags,
        name: Option<&std::ffi::OsStr>,
        seen: &mut Seen,
    ) {
        use AddWatchFlags as F;
        let gone = F::IN_DELETE_SELF | F::IN_MOVE_SELF | F::IN_IGNORED | F::IN_Q_OVERFLOW;
        if mask.intersects(gone) {
            // A watched directory went away (or events were lost): look at everything.
            seen.files = true;
            seen.spool = true;
            return;
        }
        let socket = name.is_some() && name == self.socket_name.as_deref();
        match role {
            Some(Role::LockDir) if socket && self.socket_in_lock_dir => seen.files = true,
            Some(Role::SocketDir) if socket => seen.files = true,
            Some(Role::StateDir) if name == Some(std::ffi::OsStr::new("spool")) => {
                seen.files = true;
                seen.spool = true;
            }
            Some(Role::Spool) => {
                seen.files = true;
                seen.spool = true;
            }
            Some(Role::Channel) => {
                let alert = name
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.') && n.ends_with(".json"));
                seen.spool |= alert;
            }
            _ => {}
        }
    }
}

/// Arms the timer far ahead (it is there for its cancellation, not its expiry): `None`
/// when the kernel refuses.
fn arm(clock: &TimerFd) -> Option<()> {
    // About 34,800 years after 1970: never reached.
    const FAR: i64 = 1 << 40;
    let flags = TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET;
    clock
        .set(Expiration::OneShot(TimeSpec::new(FAR, 0)), flags)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (lock, state) = (dir.join("run"), dir.join("state"));
        std::fs::create_dir_all(&lock).expect("lock_dir");
        std::fs::create_dir_all(&state).expect("state_dir");
        (lock.clone(), lock.join("control.sock"), state)
    }

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cw-idle-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn watch(lock: &Path, socket: &Path, state: &Path) -> Idle {
        Idle::watch(&Paths {
            lock_dir: lock,
            socket,
            state_dir: state,
        })
        .expect("watches")
    }

    #[test]
    fn nothing_happened_nothing_is_seen() {
        let d = temp("quiet");
        let (lock, socket, state) = paths(&d);
        let mut idle = watch(&lock, &socket, &state);
        // A lock file of another process in lock_dir, a mark in the state directory.
        std::fs::write(lock.join("job.lock"), "").expect("lock file");
        std::fs::write(state.join("mark"), "").expect("mark");
        assert_eq!(idle.take(), Seen::default());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_socket_or_lock_dir_removed_is_seen() {
        let d = temp("files");
        let (lock, socket, state) = paths(&d);
        std::fs::write(&socket, "").expect("socket stand-in");
        let mut idle = watch(&lock, &socket, &state);
        std::fs::remove_file(&socket).expect("rm socket");
        assert!(idle.take().files);
        let mut idle = watch(&lock, &socket, &state);
        std::fs::remove_dir_all(&lock).expect("rm lock_dir");
        assert!(idle.take().files);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_alert_spooled_is_seen_from_the_spool_created_on() {
        let d = temp("spool");
        let (lock, socket, state) = paths(&d);
        let mut idle = watch(&lock, &socket, &state);
        let channel = crate::alert::spool_dir(&state).join("ops");
        std::fs::create_dir_all(&channel).expect("spool");
        assert!(idle.take().spool);
        // Watched anew, as the loop does after `files`: the channel's directory too.
        let mut idle = watch(&lock, &socket, &state);
        std::fs::write(channel.join(".lock"), "").expect("lock");
        assert_eq!(idle.take(), Seen::default());
        std::fs::write(channel.join("1-a.failure.r.job.json"), "{}").expect("alert");
        assert!(idle.take().spool);
        let _ = std::fs::remove_dir_all(&d);
    }
}
