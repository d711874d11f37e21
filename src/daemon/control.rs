//! The control socket's server side: `trigger`, `pause`, `resume` and `health` from
//! `cronwarden` commands (the protocol is in `crate::control`). The socket is bound
//! owner-only; each connection is served by a thread of its own with read and write
//! timeouts. A socket file removed under the daemon (with `lock_dir`, say) is bound again at
//! the next wake-up.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::dispatch::dispatch;
use super::launch::Launch;
use crate::config::Settings;
use crate::control::{CLIENT_TIMEOUT, MAX_REQUEST, Request, Response, fail, parse_request};
use crate::exit;
use crate::log::{Level, Logger};

pub(super) struct Socket {
    pub(super) listener: UnixListener,
    pub(super) path: PathBuf,
}

/// Binds the control socket with its permissions. A stale socket file (left by a daemon
/// that died) is replaced; the caller holds the one-daemon lock.
pub(super) fn listen(settings: &Settings, log: &Logger) -> std::io::Result<Socket> {
    let path = settings.control_socket.clone();
    if let Some(dir) = path.parent() {
        crate::files::ensure_dir(dir)?;
    }
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    // Created owner-only, whatever the umask the daemon was started with: permissions set
    // after bind(2) would leave a moment in which anyone could connect (and keep the
    // connection). Nothing else creates files at this point of the start.
    let listener = crate::sys::with_umask(0o177, || UnixListener::bind(&path))?;
    let mode = match &settings.control_socket_group {
        Some(group) => {
            let g = nix::unistd::Group::from_name(group)
                .map_err(std::io::Error::other)?
                .ok_or_else(|| std::io::Error::other(format!("no group {group:?}")))?;
            nix::unistd::chown(&path, None, Some(g.gid)).map_err(std::io::Error::other)?;
            // The group must be able to reach the socket: lock_dir becomes 0710 for it.
            if let Some(dir) = path.parent().filter(|d| *d == settings.lock_dir) {
                nix::unistd::chown(dir, None, Some(g.gid)).map_err(std::io::Error::other)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710))?;
            }
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    log.log(
        Level::Info,
        "control",
        &[("socket", path.display().to_string())],
        "listening",
    );
    Ok(Socket { listener, path })
}

/// The control socket being served.
pub(super) struct Served {
    pub(super) path: PathBuf,
    /// The socket file as bound (device, inode).
    id: Option<(u64, u64)>,
    /// Dropped to end the accept thread (when the socket is bound anew).
    _retire: UnixStream,
    /// A socket file that is not ours, or a failure to bind again, was logged.
    reported: bool,
}

fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::symlink_metadata(path).map(|m| (m.dev(), m.ino()))
}

/// Accepts connections in a thread of its own, one thread per connection, until the
/// returned [`Served`] is dropped.
pub(super) fn serve(socket: Socket, shared: Arc<Shared>) -> std::io::Result<Served> {
    let (retire, retired) = UnixStream::pair()?;
    let listener = socket.listener;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || accept_loop(&listener, &retired, &shared))?;
    Ok(Served {
        id: identity(&socket.path).ok(),
        path: socket.path,
        _retire: retire,
        reported: false,
    })
}

fn accept_loop(listener: &UnixListener, retired: &UnixStream, shared: &Arc<Shared>) {
    loop {
        let mut fds = [
            crate::sys::pollin(listener.as_raw_fd()),
            crate::sys::pollin(retired.as_raw_fd()),
        ];
        crate::sys::poll(&mut fds, None);
        if fds[1].revents != 0 {
            return;
        }
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let shared = Arc::clone(shared);
                let _ = std::thread::Builder::new()
                    .name("control client".into())
                    .spawn(move || handle(conn, &shared));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // Out of descriptors, say: do not spin on it.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// At a wake-up: binds the control socket again if its file was removed (`trigger` would
/// otherwise say no daemon is running), and logs it.
pub(super) fn keep(served: &mut Served, settings: &Settings, shared: &Arc<Shared>) {
    // Formatted only for a message: the idle wake-up that finds the socket in place runs no
    // formatting code.
    let f = |path: &Path| [("socket", path.display().to_string())];
    match identity(&served.path) {
        Ok(id) if Some(id) == served.id => return,
        Ok(_) => {
            if !served.reported {
                served.reported = true;
                let msg = "the control socket's file was replaced by another; requests sent \
                           to it do not reach this daemon";
                shared
                    .log
                    .log(Level::Error, "control", &f(&served.path), msg);
            }
            return;
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return,
        Err(_) => {}
    }
    let settings = Settings {
        control_socket: served.path.clone(),
        ..settings.clone()
    };
    match listen(&settings, &shared.log).and_then(|s| serve(s, Arc::clone(shared))) {
        Ok(new) => {
            let msg = "the control socket was removed; bound it again";
            shared
                .log
                .log(Level::Warn, "control", &f(&served.path), msg);
            *served = new;
        }
        Err(e) if !served.reported => {
            served.reported = true;
            let msg = format!("the control socket was removed and cannot be bound again: {e}");
            shared
                .log
                .log(Level::Error, "control", &f(&served.path), &msg);
        }
        Err(_) => {}
    }
}

fn handle(conn: UnixStream, shared: &Arc<Shared>) {
    let _ = conn.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut line = Vec::new();
    let reply = match BufReader::new((&conn).take(MAX_REQUEST)).read_until(b'\n', &mut line) {
        Ok(_) => match parse_request(&line) {
            Ok(req) => answer(req, shared, &conn),
            Err(e) => fail(exit::USAGE, e),
        },
        Err(e) => fail(exit::USAGE, format!("bad request: {e}")),
    };
    if let Ok(mut text) = serde_json::to_string(&reply) {
        text.push('\n');
        let _ = (&conn).write_all(text.as_bytes());
    }
}

fn answer(req: Request, shared: &Arc<Shared>, conn: &UnixStream) -> Response {
    if req.cmd == "health" {
        let c = shared.contain();
        return Response {
            ok: true,
            problems: shared.health.problem().into_iter().collect(),
            containment: Some((c.name().to_string(), c.why().to_string())),
            health: Some(super::watch::health(shared)),
            ..Response::default()
        };
    }
    let cfg = shared.current();
    let Some(name) = req.job.clone() else {
        return fail(exit::USAGE, format!("{:?} needs a job", req.cmd));
    };
    let Some(job) = cfg.job(&name) else {
        return fail(exit::USAGE, format!("unknown job {name:?}"));
    };
    match req.cmd.as_str() {
        "pause" | "resume" => match shared.paused.set(&name, req.cmd == "pause", &shared.log) {
            Ok(()) => Response {
                ok: true,
                ..Response::default()
            },
            Err(e) => fail(exit::JOB_FAILED, format!("cannot record the pause: {e}")),
        },
        "trigger" => {
            for k in req.params.keys() {
                if !job.params().contains_key(k) {
                    return fail(
                        exit::USAGE,
                        format!("job {name:?} declares no parameter {k:?}"),
                    );
                }
            }
            let run_id = crate::execute::new_run_id();
            let (tx, rx) = std::sync::mpsc::channel();
            dispatch(
                shared,
                &cfg,
                Launch {
                    done: req.wait.then_some(tx),
                    ..Launch::request(name.clone(), req.params, run_id.clone())
                },
            );
            if !req.wait {
                return Response {
                    ok: true,
                    run_id: Some(run_id),
                    ..Response::default()
                };
            }
            // The run may take hours: no write timeout while waiting for it.
            let _ = conn.set_write_timeout(None);
            match rx.recv() {
                Ok(rec) => Response {
                    ok: true,
                    run_id: Some(run_id),
                    outcome: Some(rec.outcome.as_str().to_string()),
                    exit_code: Some(rec.outcome.exit_code(None)),
                    ..Response::default()
                },
                Err(_) => fail(exit::JOB_FAILED, "the run ended without a record"),
            }
        }
        other => fail(
            exit::USAGE,
            format!("unknown command {other:?}; use trigger, pause, resume or health"),
        ),
    }
}
