//! The control socket: `trigger`, `pause` and `resume` reach a running daemon through a Unix
//! socket (`control_socket`, default `cronwarden.sock` in `lock_dir`; mode 0600, or 0660 for
//! `control_socket_group`).
//!
//! Protocol: the client sends one JSON object on one line and reads one JSON line back.
//!
//! ```text
//! {"cmd":"trigger","job":"backup","params":{"mode":"full"},"wait":false}
//!     -> {"ok":true,"run_id":"20261125T030000-1a2b3c"}
//!        with "wait":true, when the run ends: {"ok":true,"run_id":..,"outcome":"success","exit_code":0}
//! {"cmd":"pause","job":"backup"}    -> {"ok":true}
//! {"cmd":"resume","job":"backup"}   -> {"ok":true}
//! anything else                     -> {"ok":false,"error":"...","code":2}
//! ```
//! Each connection is served by its own thread with read and write timeouts, so a slow or
//! stuck client never holds up the scheduler or another client.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cmd::exit;
use crate::config::Settings;
use crate::daemon::{Launch, Shared, dispatch};
use crate::log::{Level, Logger};

/// The longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client may take to send its request or read the reply.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Request {
    pub cmd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub wait: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For an error: the exit code the client should use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
}

fn fail(code: u8, error: impl Into<String>) -> Response {
    Response {
        ok: false,
        error: Some(error.into()),
        code: Some(code),
        ..Response::default()
    }
}

pub struct Socket {
    pub listener: UnixListener,
    pub path: PathBuf,
}

/// Binds the control socket with its permissions. A stale socket file (left by a daemon
/// that died) is replaced; the caller holds the one-daemon lock.
pub fn listen(settings: &Settings, log: &Logger) -> std::io::Result<Socket> {
    let path = settings.control_socket.clone();
    if let Some(dir) = path.parent() {
        crate::record::ensure_dir(dir)?;
    }
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    // Created owner-only, whatever the umask the daemon was started with: permissions set
    // after bind(2) would leave a moment in which anyone could connect (and keep the
    // connection). Nothing else creates files at this point of the start.
    // SAFETY: umask(2) only swaps the process's file mode mask.
    let umask = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(&path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(umask) };
    let listener = bound?;
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
pub(crate) fn serve(listener: UnixListener, shared: Arc<Shared>) {
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

/// Parses one request line as a client sent it: one JSON object ending in a newline, at most
/// 64 KiB in all. The error is the message for the client (`bad request: ...`). Pure, so the
/// fuzz target `control_request` (fuzz/) drives it directly.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    if !line.ends_with(b"\n") || line.len() as u64 > MAX_REQUEST {
        return Err("bad request: send one JSON object on one line (at most 64 KiB)".to_string());
    }
    serde_json::from_slice::<Request>(line).map_err(|e| format!("bad request: {e}"))
}

fn answer(req: Request, shared: &Arc<Shared>, conn: &UnixStream) -> Response {
    let cfg = Arc::clone(&crate::daemon::current(shared));
    let Some(name) = req.job.clone() else {
        return fail(exit::USAGE, format!("{:?} needs a job", req.cmd));
    };
    let Some(job) = cfg.job(&name) else {
        return fail(exit::USAGE, format!("unknown job {name:?}"));
    };
    match req.cmd.as_str() {
        "pause" | "resume" => match shared.set_paused(&name, req.cmd == "pause") {
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
                    job: name.clone(),
                    scheduled: jiff::Timestamp::now(),
                    why: "trigger",
                    params: req.params,
                    run_id: run_id.clone(),
                    mark: false,
                    coalesce: false,
                    done: req.wait.then_some(tx),
                    first_attempt: 1,
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
                    exit_code: Some(crate::cmd::waited_exit(rec.outcome)),
                    ..Response::default()
                },
                Err(_) => fail(exit::JOB_FAILED, "the run ended without a record"),
            }
        }
        other => fail(
            exit::USAGE,
            format!("unknown command {other:?}; use trigger, pause or resume"),
        ),
    }
}

/// Sends one request to the daemon of this table and returns its answer. No daemon (no
/// socket, or nobody listening) is exit 69.
pub fn request(settings: &Settings, req: &Request) -> Result<Response, crate::cmd::Failure> {
    let path = &settings.control_socket;
    let no_daemon = |e: std::io::Error| crate::cmd::Failure {
        code: exit::NO_DAEMON,
        message: format!(
            "no daemon is running for this table (cannot connect to {}: {e})",
            path.display()
        ),
    };
    let conn = UnixStream::connect(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            crate::cmd::Failure {
                code: exit::JOB_FAILED,
                message: format!(
                    "not allowed to talk to the daemon at {} ({e}): the control socket is for \
                     its owner (and control_socket_group)",
                    path.display()
                ),
            }
        } else {
            no_daemon(e)
        }
    })?;
    let io = |e: std::io::Error| crate::cmd::Failure {
        code: exit::JOB_FAILED,
        message: format!("talking to the daemon at {}: {e}", path.display()),
    };
    let mut text = serde_json::to_string(req).map_err(|e| io(std::io::Error::other(e)))?;
    text.push('\n');
    (&conn).write_all(text.as_bytes()).map_err(io)?;
    let mut line = Vec::new();
    BufReader::new(&conn)
        .read_until(b'\n', &mut line)
        .map_err(io)?;
    serde_json::from_slice(&line).map_err(|e| io(std::io::Error::other(e)))
}
