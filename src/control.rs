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
//! {"cmd":"health"}                  -> {"ok":true,"problems":["state_dir ..."],
//!                                       "health":{"healthy":false,"reasons":[..],"jobs":[..]}}
//!                                      (`status`, `health`)
//! anything else                     -> {"ok":false,"error":"...","code":2}
//! ```
//! This module is the protocol and the client; the daemon serves it (`daemon::control`),
//! each connection in its own thread with read and write timeouts, so a slow or stuck
//! client never holds up the scheduler or another client.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::exit::{self, Failure};

/// The longest request line accepted.
pub(crate) const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client may take to send its request or read the reply.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// `health`: what keeps the daemon from doing its work fully (a state directory it
    /// cannot write); empty when nothing does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// `health`: how the daemon contains its runs: "cgroup" or "process", and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containment: Option<(String, String)>,
    /// `health`: whether the daemon's loop is alive and no job is stale or in a failure
    /// streak at its threshold (`cronwarden health`, `/healthz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// Whether the daemon does its work: its loop is alive and no job is stale or in a failure
/// streak at or above its threshold. What `cronwarden health`, `GET /healthz` and the
/// control socket's `health` tell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub healthy: bool,
    /// Why not, one line each (empty when healthy).
    pub reasons: Vec<String>,
    /// Every job's failure streak and stale deadline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobHealth>,
}

impl Health {
    /// The health of `jobs`, with `reasons` of the daemon's own (its loop, or none running)
    /// first.
    pub fn new(mut reasons: Vec<String>, jobs: Vec<JobHealth>) -> Health {
        reasons.extend(jobs.iter().flat_map(JobHealth::reasons));
        Health {
            healthy: reasons.is_empty(),
            reasons,
            jobs,
        }
    }
}

/// A job's failure streak and, with `expect_success_within`, its stale deadline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobHealth {
    pub job: String,
    /// Failed runs since the last success (skipped and interrupted runs do not count).
    pub failure_streak: u32,
    /// The streak at which the job counts as unhealthy: the smallest `after_failures` of
    /// the job's channels that hear of failures (1 when none does).
    pub streak_threshold: u32,
    /// `expect_success_within`, as written (e.g. "26h").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_success_within: Option<String>,
    /// When the last success (or warning) ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<jiff::Timestamp>,
    /// With `expect_success_within`: when the job goes (or went) stale without a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_deadline: Option<jiff::Timestamp>,
    /// The deadline has passed.
    #[serde(default)]
    pub stale: bool,
}

impl JobHealth {
    /// Why the job makes the daemon unhealthy, one line each: it is stale, or its failure
    /// streak is at or above its threshold.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.stale {
            let since = match self.last_success {
                Some(t) => format!("no success since {t}"),
                None => "no success yet".to_string(),
            };
            out.push(format!(
                "{}: stale: {since} (expect_success_within {}; deadline {})",
                self.job,
                self.expect_success_within.as_deref().unwrap_or("?"),
                self.stale_deadline
                    .map_or_else(|| "?".to_string(), |t| t.to_string())
            ));
        }
        if self.failure_streak >= self.streak_threshold.max(1) {
            out.push(format!(
                "{}: {} failed run{} in a row (threshold {})",
                self.job,
                self.failure_streak,
                if self.failure_streak == 1 { "" } else { "s" },
                self.streak_threshold.max(1)
            ));
        }
        out
    }
}

pub(crate) fn fail(code: u8, error: impl Into<String>) -> Response {
    Response {
        ok: false,
        error: Some(error.into()),
        code: Some(code),
        ..Response::default()
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

/// Sends one request to the daemon of this table and returns its answer. No daemon (no
/// socket, or nobody listening) is exit 69.
pub fn request(settings: &Settings, req: &Request) -> Result<Response, Failure> {
    let path = &settings.control_socket;
    let no_daemon = |e: std::io::Error| Failure {
        code: exit::NO_DAEMON,
        message: format!(
            "no daemon is running for this table (cannot connect to {}: {e})",
            path.display()
        ),
    };
    let conn = UnixStream::connect(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            Failure {
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
    let io = |e: std::io::Error| Failure {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_unhealthy_when_stale_or_at_its_streak_threshold() {
        let mut h = JobHealth {
            job: "backup".to_string(),
            failure_streak: 1,
            streak_threshold: 2,
            expect_success_within: Some("26h".to_string()),
            last_success: "2026-01-01T00:00:00Z".parse().ok(),
            stale_deadline: "2026-01-02T02:00:00Z".parse().ok(),
            stale: false,
        };
        assert!(h.reasons().is_empty());
        assert!(Health::new(Vec::new(), vec![h.clone()]).healthy);
        h.failure_streak = 2;
        h.stale = true;
        assert_eq!(
            h.reasons(),
            [
                "backup: stale: no success since 2026-01-01T00:00:00Z (expect_success_within \
                 26h; deadline 2026-01-02T02:00:00Z)",
                "backup: 2 failed runs in a row (threshold 2)"
            ]
        );
        h.last_success = None;
        assert!(h.reasons()[0].starts_with("backup: stale: no success yet ("));
        let sick = Health::new(vec!["the loop".to_string()], vec![h]);
        assert!(!sick.healthy);
        assert_eq!(sick.reasons.len(), 3);
        assert_eq!(sick.reasons[0], "the loop");
    }
}
