//! The control socket's server side: `trigger`, `pause`, `resume` and `health` from
//! `cronwarden` commands (the protocol is in `crate::control`). The socket is bound
//! owner-only; each connection is served by a thread of its own with read and write
//! timeouts.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;

use super::Shared;
use super::dispatch::{Launch, dispatch};
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

/// Accepts connections in a thread of its own, one thread per connection.
pub(super) fn serve(listener: UnixListener, shared: Arc<Shared>) {
    let _ = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let shared = Arc::clone(&shared);
                let _ = std::thread::Builder::new()
                    .name("control client".into())
                    .spawn(move || handle(conn, &shared));
            }
        });
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
        return Response {
            ok: true,
            problems: shared.health.problem().into_iter().collect(),
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
                if !job.params.contains_key(k) {
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
