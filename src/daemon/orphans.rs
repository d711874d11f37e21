//! Runs whose supervisor died, taken over by the daemon (`execute::orphan` does the work):
//! at start, what a previous daemon or a killed `cronwarden run` left; while it runs, the runs
//! of a `cronwarden run` that dies meanwhile, at once. A thread waits on inotify (markers
//! renamed into `state_dir/running`), on a pidfd of each other process that supervises a run
//! there, and on the daemon's stop: nothing wakes it while nothing happens.
//!
//! A run whose process group is gone is recorded (lost) at once; one whose group runs on is
//! watched by a thread of its own until it ends (its timeout enforced), counted among the
//! daemon's running jobs, so a shutdown stops it like any other run.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::Shared;
use crate::execute::marker::{self, ProcId};
use crate::execute::orphan;
use crate::log::Level;
use crate::runner::Interrupt;

/// The other processes supervising runs, each with a pidfd that tells its end.
type Supervisors = HashMap<i32, (ProcId, OwnedFd)>;

/// Takes over what is orphaned now and starts the thread that takes over what is orphaned
/// later.
pub(super) fn start(shared: &Arc<Shared>) {
    let mut sups = Supervisors::new();
    scan(shared, &mut sups);
    let dir = marker::running_dir(&shared.state_dir);
    let inotify = crate::files::ensure_dir(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| watch_dir(&dir));
    let inotify = match inotify {
        Ok(i) => Some(i),
        Err(e) => {
            let msg = format!(
                "cannot watch {} ({e}): runs of a `cronwarden run` that dies are taken over \
                 when the supervisor is seen gone",
                dir.display()
            );
            shared.log.log(Level::Warn, "orphan", &[], &msg);
            None
        }
    };
    let sh = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("orphans".into())
        .spawn(move || monitor(&sh, inotify, sups));
    if let Err(e) = spawned {
        let msg = format!("cannot start a thread: {e}");
        shared.log.log(Level::Error, "orphan", &[], &msg);
    }
}

fn watch_dir(dir: &Path) -> Result<Inotify, String> {
    let i =
        Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(|e| e.to_string())?;
    i.add_watch(dir, AddWatchFlags::IN_MOVED_TO)
        .map_err(|e| e.to_string())?;
    Ok(i)
}

/// The thread: waits for a new marker, a supervisor's end or the daemon's stop.
fn monitor(shared: &Arc<Shared>, inotify: Option<Inotify>, mut sups: Supervisors) {
    let stop = &shared.stop;
    loop {
        let mut fds = vec![crate::sys::pollin(stop.as_raw_fd())];
        if let Some(i) = &inotify {
            fds.push(crate::sys::pollin(i.as_fd().as_raw_fd()));
        }
        fds.extend(
            sups.values()
                .map(|(_, fd)| crate::sys::pollin(fd.as_raw_fd())),
        );
        // Without inotify, a look every minute.
        let wait = inotify
            .is_none()
            .then_some(std::time::Duration::from_secs(60));
        crate::sys::poll(&mut fds, wait);
        if fds[0].revents != 0 {
            return;
        }
        let new = match &inotify {
            Some(i) if fds[1].revents != 0 => new_markers(i, &shared.state_dir),
            Some(_) => Some(Vec::new()),
            None => None,
        };
        let gone = fds.iter().skip(1 + usize::from(inotify.is_some()));
        match new {
            // Only new markers: only those are read.
            Some(paths) if !gone.clone().any(|p| p.revents != 0) => {
                for p in paths {
                    look_at(shared, &p, &mut sups);
                }
            }
            _ => scan(shared, &mut sups),
        }
    }
}

/// The markers named by the pending inotify events; `None` when the kernel's queue
/// overflowed (everything is looked at then).
fn new_markers(i: &Inotify, state_dir: &Path) -> Option<Vec<PathBuf>> {
    let mut out = Vec::new();
    while let Ok(events) = i.read_events() {
        if events.is_empty() {
            break;
        }
        for e in events {
            if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                return None;
            }
            let Some(name) = e.name.and_then(|n| n.into_string().ok()) else {
                continue;
            };
            if !name.starts_with('.') && name.ends_with(".json") {
                out.push(marker::running_dir(state_dir).join(name));
            }
        }
    }
    Some(out)
}

/// Looks at every marker (at start, and when a supervisor ended).
fn scan(shared: &Arc<Shared>, sups: &mut Supervisors) {
    let mut seen = Vec::new();
    for p in marker::list(&shared.state_dir) {
        if let Some(pid) = look_at(shared, &p, sups) {
            seen.push(pid);
        }
    }
    sups.retain(|pid, _| seen.contains(pid));
}

/// One marker: this daemon's own run, a run whose supervisor lives (watched from now on:
/// its pid), or an orphan (taken over).
fn look_at(shared: &Arc<Shared>, path: &Path, sups: &mut Supervisors) -> Option<i32> {
    let m = marker::read(path)?;
    match m.supervisor {
        Some(s) if s == ProcId::me() => None,
        Some(s) if s.alive() => {
            let pid = s.pid;
            if !sups.get(&pid).is_some_and(|(known, _)| *known == s)
                && let Some(fd) = crate::sys::pidfd_open(pid as u32)
            {
                sups.insert(pid, (s, fd));
            }
            Some(pid)
        }
        _ => {
            adopt(shared, path);
            None
        }
    }
}

/// Takes a run over: recorded at once when its group is gone, else watched by a thread.
fn adopt(shared: &Arc<Shared>, path: &Path) {
    let Some(m) = orphan::claim(path, &orphan::orphaned) else {
        return;
    };
    let cfg = shared.current();
    if !m
        .running_group(cfg.job(&m.record.job))
        .is_some_and(|g| g.alive())
    {
        // Recorded now; alerted from a thread, so a slow channel holds nothing up.
        if let Some(rec) = orphan::finish(shared.ctx(&cfg), path, m, &Interrupt::none()) {
            shared.watch.ended(&cfg, &rec);
            let sh = Arc::clone(shared);
            let _ = std::thread::Builder::new()
                .name("orphan alert".into())
                .spawn(move || orphan::alert(sh.ctx(&cfg), &rec));
        }
        return;
    }
    let interrupt = Interrupt::on_stream(Arc::clone(&shared.stop), libc::SIGTERM);
    shared.active.enter();
    let (sh, p) = (Arc::clone(shared), path.to_path_buf());
    let job = m.record.job.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("orphan {job}"))
        .spawn(move || {
            if let Some(rec) = orphan::finish(sh.ctx(&cfg), &p, m, &interrupt) {
                sh.watch.ended(&cfg, &rec);
                orphan::alert(sh.ctx(&cfg), &rec);
            }
            sh.active.leave();
        });
    if let Err(e) = spawned {
        shared.active.leave();
        let msg = format!("cannot start a thread to watch a run taken over: {e}");
        shared
            .log
            .log(Level::Error, "orphan", &[("job", job)], &msg);
    }
}
