//! Delivery through a channel: `email` (lettre over rustls: smtp:// with STARTTLS when
//! offered, smtps://, `?tls=required`, or a local sendmail), `command` and `webhook` (JSON
//! or Slack).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::Timestamp;

use super::Stats;
use super::message::{Alert, host};
use crate::config::{AlertChannel, AlertKind, CommandLine, Config, WebhookFormat};
use crate::record::{Outcome, RunRecord};

/// Why a delivery failed, and whether retrying can help.
#[derive(Debug)]
pub(super) struct DeliveryError {
    pub(super) reason: String,
    /// Authentication failures and rejected requests are not retried forever.
    pub(super) permanent: bool,
}

impl DeliveryError {
    /// A failure that may pass: the alert is spooled and retried.
    fn transient(reason: String) -> DeliveryError {
        DeliveryError {
            reason,
            permanent: false,
        }
    }
}

pub(super) fn deliver(
    ch: &AlertChannel,
    alert: &Alert,
    stats: &Stats,
) -> Result<(), DeliveryError> {
    let r = deliver_once(ch, alert);
    if r.is_err() {
        stats.failures.fetch_add(1, Ordering::Relaxed);
    }
    r
}

fn deliver_once(ch: &AlertChannel, alert: &Alert) -> Result<(), DeliveryError> {
    match &ch.kind {
        AlertKind::Command { command, timeout } => run_command(command, *timeout, alert),
        AlertKind::Webhook {
            url,
            format,
            timeout,
            ca_file,
        } => post_webhook(url, *format, *timeout, ca_file.as_deref(), alert),
        AlertKind::Email {
            transport,
            from,
            to,
            username,
            password,
            timeout,
            ca_file,
        } => {
            let msg = super::mail::message(alert, &ch.name, from, to).map_err(|reason| {
                DeliveryError {
                    reason,
                    permanent: true,
                }
            })?;
            send_email(
                transport,
                username.as_deref(),
                password.as_ref(),
                (*timeout, ca_file.as_deref()),
                &msg,
            )
        }
    }
}

/// The `command` channel: the alert's body on standard input, its facts in the environment.
fn run_command(
    command: &CommandLine,
    timeout: Duration,
    alert: &Alert,
) -> Result<(), DeliveryError> {
    let transient = DeliveryError::transient;
    let argv = match command {
        CommandLine::Argv(a) => a.to_vec(),
        CommandLine::Shell(t) => vec!["/bin/sh".into(), "-c".into(), t.to_string()],
    };
    let r = &alert.run;
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        ),
        ("CRONWARDEN_EVENT".into(), alert.event.clone()),
        ("CRONWARDEN_JOB".into(), alert.job.clone()),
        (
            "CRONWARDEN_RUN_ID".into(),
            if alert.is_about_a_run() {
                r.run_id.clone()
            } else {
                String::new()
            },
        ),
        (
            "CRONWARDEN_OUTCOME".into(),
            alert.outcome().unwrap_or_default().into(),
        ),
        (
            "CRONWARDEN_EXIT_CODE".into(),
            r.attempts
                .last()
                .and_then(|a| a.exit_code)
                .map(|c| c.to_string())
                .unwrap_or_default(),
        ),
        ("CRONWARDEN_ATTEMPTS".into(), r.attempt_count().to_string()),
        (
            "CRONWARDEN_OUTPUT".into(),
            r.output.clone().unwrap_or_default(),
        ),
        ("CRONWARDEN_SCHEDULED".into(), r.scheduled.clone()),
        (
            "CRONWARDEN_REASON".into(),
            r.reason.clone().unwrap_or_default(),
        ),
        ("CRONWARDEN_SUBJECT".into(), alert.subject()),
        ("CRONWARDEN_HOST".into(), alert.host.clone()),
        ("CRONWARDEN_COALESCED".into(), alert.coalesced.to_string()),
        (
            "CRONWARDEN_DROPPED".into(),
            alert.dropped_total().to_string(),
        ),
    ];
    if let Ok(home) = std::env::var("HOME") {
        env.push(("HOME".into(), home));
    }
    let spec = crate::runner::AttemptSpec {
        keep_leftovers: false,
        ioprio: None,
        oom_score_adj: None,
        argv,
        env,
        workdir: None,
        stdin: Some(alert.body().into_bytes()),
        umask: 0o077,
        nice: None,
        creds: None,
        timeout: Some(timeout),
        kill_grace: Duration::from_secs(5),
        inherit_fd: None,
    };
    let dir = std::env::temp_dir();
    let mut out = crate::output::Output::new(&dir, "cronwarden-alert", 0);
    let res = crate::runner::run_attempt(&spec, &mut out, &crate::runner::Interrupt::none());
    match crate::policy::exit_failure(&res, &[0], spec.timeout) {
        None => Ok(()),
        Some(why) => {
            let err = String::from_utf8_lossy(&out.stderr.bytes())
                .trim()
                .to_string();
            Err(transient(if err.is_empty() {
                format!("command {why}")
            } else {
                format!("command {why}: {err}")
            }))
        }
    }
}

/// The `webhook` channel: a POST of the alert as JSON (or Slack's `{"text": ...}`), within
/// the timeout, trusting the system's CAs and the channel's `ca_file`.
fn post_webhook(
    url: &str,
    format: WebhookFormat,
    timeout: Duration,
    ca_file: Option<&Path>,
    alert: &Alert,
) -> Result<(), DeliveryError> {
    let transient = DeliveryError::transient;
    let body = match format {
        WebhookFormat::Json => alert.json(),
        WebhookFormat::Slack => super::slack::payload(alert),
    };
    let trust = crate::tls::trust(ca_file).map_err(transient)?;
    let resp = trust
        .http(timeout)
        .post(url)
        .header("User-Agent", super::USER_AGENT)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .map_err(|e| transient(format!("POST {}: {}", redact_url(url), http_error(e, url))))?;
    let status = resp.status().as_u16();
    match status {
        200..=299 => Ok(()),
        400..=499 if status != 408 && status != 429 => Err(DeliveryError {
            reason: format!(
                "POST {}: HTTP {status} (the request was rejected)",
                redact_url(url)
            ),
            permanent: true,
        }),
        _ => Err(transient(format!(
            "POST {}: HTTP {status}",
            redact_url(url)
        ))),
    }
}

/// A URL as logs, alerts and the spool show it: scheme, host and port. The user info, the
/// path and the query can all carry credentials (`user:pass@`, the secret paths of Slack
/// hooks and healthchecks.io, `?token=`); the table has the whole URL.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a URL)".to_string();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let more = if rest.len() > authority.len() + 1 {
        "/..."
    } else {
        ""
    };
    format!("{scheme}://{host}{more}")
}

/// An HTTP client's error, with the URL (should it quote it) redacted.
pub(super) fn redact(e: impl std::fmt::Display, url: &str) -> String {
    e.to_string().replace(url, &redact_url(url))
}

/// An HTTP client's error for the log: a certificate problem in plain words, anything else
/// as the client says it, with the URL redacted.
pub(super) fn http_error(e: ureq::Error, url: &str) -> String {
    match crate::tls::explain(&e) {
        Some(why) => format!("TLS failed: {why}"),
        None => redact(e, url),
    }
}

/// Reads a secret from the environment or a file (trailing newline ignored). Never logged.
fn secret(s: &crate::config::Secret) -> Result<String, DeliveryError> {
    s.read("password").map_err(|reason| DeliveryError {
        reason,
        permanent: true,
    })
}

/// The `email` channel: the alert's mail (see `mail`) through SMTP, whose TLS trusts the
/// system's CAs and the channel's `ca_file` (the second of `(timeout, ca_file)`), or
/// sendmail.
fn send_email(
    transport: &crate::config::SmtpTransport,
    username: Option<&str>,
    password: Option<&crate::config::Secret>,
    (timeout, ca_file): (Duration, Option<&Path>),
    msg: &lettre::Message,
) -> Result<(), DeliveryError> {
    use lettre::Transport;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::Tls;
    match transport {
        crate::config::SmtpTransport::Sendmail(path) => {
            let program =
                super::mail::sendmail_program(path.as_deref()).map_err(DeliveryError::transient)?;
            lettre::SendmailTransport::new_with_command(&program)
                .send(msg)
                .map_err(|e| DeliveryError::transient(super::mail::sendmail_error(&program, &e)))
        }
        crate::config::SmtpTransport::Smtp { host, port, tls } => {
            let params = crate::tls::trust(ca_file)
                .and_then(|t| t.smtp(host))
                .map_err(DeliveryError::transient)?;
            let tls = match tls {
                crate::config::SmtpTls::Opportunistic => Tls::Opportunistic(params),
                crate::config::SmtpTls::Required => Tls::Required(params),
                crate::config::SmtpTls::Wrapper => Tls::Wrapper(params),
            };
            let mut b = lettre::SmtpTransport::builder_dangerous(host.as_str())
                .port(*port)
                .tls(tls)
                .timeout(Some(timeout));
            if let Some(user) = username {
                let pass = match password {
                    Some(p) => secret(p)?,
                    None => String::new(),
                };
                b = b.credentials(Credentials::new(user.to_string(), pass));
            }
            b.build().send(msg).map(|_| ()).map_err(|e| {
                let auth = e.status().is_some_and(|c| {
                    c.to_string().starts_with("535") || c.to_string().starts_with("534")
                });
                if !auth && !e.is_tls() && (e.is_timeout() || timed_out(&e)) {
                    return DeliveryError {
                        reason: format!(
                            "smtp://{host}:{port}: timed out after {}: the server did not answer",
                            crate::units::format_duration(timeout)
                        ),
                        permanent: false,
                    };
                }
                // A certificate problem in plain words, not rustls' debug string.
                let tls_why = crate::tls::explain(&e);
                let kind = if auth {
                    "authentication failed"
                } else if e.is_tls() || tls_why.is_some() {
                    "TLS failed"
                } else if e.is_permanent() {
                    "rejected"
                } else {
                    "not delivered"
                };
                let detail = tls_why.unwrap_or_else(|| e.to_string());
                DeliveryError {
                    reason: format!("smtp://{host}:{port}: {kind}: {detail}"),
                    // A wrong password or a rejected message does not get better by retrying.
                    permanent: auth || e.is_permanent(),
                }
            })
        }
    }
}

/// Whether an SMTP error is the socket's read or write timeout. lettre sets the timeout with
/// SO_RCVTIMEO and SO_SNDTIMEO, which end a blocked call with EAGAIN ("Resource temporarily
/// unavailable"), an I/O error lettre does not count as a timeout; a connect that takes too
/// long ends with ETIMEDOUT.
fn timed_out(e: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            );
        }
        source = s.source();
    }
    false
}

/// `cronwarden test-alert CHANNEL`.
pub(crate) fn test(cfg: &Config, channel: &str) -> Result<(), String> {
    let ch = cfg
        .alert(channel)
        .ok_or_else(|| format!("no channel [alerts.{channel}] in the table"))?;
    let now = Timestamp::now().to_string();
    let alert = Alert {
        event: "test".into(),
        job: "test-alert".into(),
        host: host(),
        schedule: None,
        zone: String::new(),
        run: RunRecord {
            run_id: "test".into(),
            job: "test-alert".into(),
            scheduled: now.clone(),
            started: now.clone(),
            ended: now,
            duration_ms: 0,
            attempts: Vec::new(),
            outcome: Outcome::Success,
            reason: None,
            output: None,
            trigger: "test-alert".into(),
            node: None,
            skips: None,
            facts: Default::default(),
        },
        next_run: None,
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        suppressed: 0,
        log_file: None,
        coalesced: 0,
        since: None,
        dropped: Default::default(),
        facts: Default::default(),
        raised: Some(Timestamp::now()),
    };
    deliver_once(ch, &alert).map_err(|e| e.reason)
}
