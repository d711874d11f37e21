//! Alerts: who hears about a run, and when.
//!
//! After a run, [`after_run`] decides which events it is (a final `failure`, the `recovery`
//! that ends a failure streak, any `output`), applies each channel's `min_interval` within a
//! failure streak (the next alert says how many were suppressed), and delivers through the
//! channel. A delivery that fails is written to the spool in the state directory and retried
//! later by whichever cronwarden process runs jobs (the daemon, or the next `run`), so an
//! alert is never silently lost.
//!
//! Channels: `email` (lettre over rustls: smtp:// with STARTTLS when offered, smtps://,
//! `?tls=required`, or a local sendmail), `command` and `webhook` (JSON or Slack).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{AlertChannel, AlertEvent, AlertKind, CommandLine, Config, Job, WebhookFormat};
use crate::log::{Level, Logger};
use crate::record::{self, Outcome, RunRecord};

/// Deliveries that failed since this process started (for metrics).
pub static DELIVERY_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What an alert says: every fact a person needs to act, for every channel.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Alert {
    /// failure, recovery, retry, output, test.
    pub event: String,
    pub job: String,
    pub host: String,
    pub schedule: Option<String>,
    pub zone: String,
    pub run: RunRecord,
    pub next_run: Option<String>,
    pub stdout_tail: String,
    pub stderr_tail: String,
    /// Failure alerts suppressed by `min_interval` since the previous one.
    pub suppressed: u64,
    /// The daemon's log file, when it has one.
    #[serde(default)]
    pub log_file: Option<String>,
}

impl Alert {
    /// `[cronwarden] FAILED backup on HOST: exit 2 after 3 attempts`.
    pub fn subject(&self) -> String {
        let n = self.run.attempts.len();
        let attempts = format!("{n} attempt{}", if n == 1 { "" } else { "s" });
        match self.event.as_str() {
            "failure" => format!(
                "[cronwarden] FAILED {} on {}: {} after {attempts}",
                self.job,
                self.host,
                self.run.reason.as_deref().unwrap_or("failed")
            ),
            "recovery" => format!("[cronwarden] RECOVERED {} on {}", self.job, self.host),
            "retry" => format!(
                "[cronwarden] RETRYING {} on {}: {}",
                self.job,
                self.host,
                self.run.reason.as_deref().unwrap_or("failed")
            ),
            "test" => format!("[cronwarden] test alert from {}", self.host),
            "node-lost" => format!(
                "[cronwarden] NODE LOST {} while running {}: {}",
                self.run.node.as_deref().unwrap_or("?"),
                self.job,
                self.run.reason.as_deref().unwrap_or("")
            ),
            "channel-broken" => format!(
                "[cronwarden] ALERT CHANNEL BROKEN on {} (job {}): {}",
                self.host,
                self.job,
                self.run.reason.as_deref().unwrap_or("")
            ),
            _ => format!("[cronwarden] output of {} on {}", self.job, self.host),
        }
    }

    /// The plain-text body (email, command channel's standard input, Slack text).
    pub fn body(&self) -> String {
        let r = &self.run;
        let mut b = String::new();
        b.push_str(&format!("{}\n\n", self.subject()));
        b.push_str(&format!(
            "job:        {}\nhost:       {}\n",
            self.job, self.host
        ));
        if let Some(s) = &self.schedule {
            b.push_str(&format!("schedule:   {s} ({})\n", self.zone));
        }
        b.push_str(&format!(
            "scheduled:  {}\nrun id:     {}\noutcome:    {}\n",
            r.scheduled,
            r.run_id,
            r.outcome.as_str()
        ));
        if let Some(reason) = &r.reason {
            b.push_str(&format!("reason:     {reason}\n"));
        }
        if self.suppressed > 0 {
            b.push_str(&format!(
                "suppressed: {} earlier failure alert(s) within min_interval\n",
                self.suppressed
            ));
        }
        for a in &r.attempts {
            let how = match (a.exit_code, a.signal) {
                (Some(c), _) => format!("exit {c}"),
                (None, Some(s)) => format!("signal {s}"),
                _ => "not started".to_string(),
            };
            b.push_str(&format!(
                "attempt {}: started {}, {:.1}s, {how}{}\n",
                a.attempt,
                a.started,
                a.duration_ms as f64 / 1000.0,
                a.reason
                    .as_ref()
                    .filter(|r| **r != how)
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
        if let Some(o) = &r.output {
            b.push_str(&format!("output:     {o}\n"));
        }
        if let Some(l) = &self.log_file {
            b.push_str(&format!("log:        {l}\n"));
        }
        if let Some(n) = &self.next_run {
            b.push_str(&format!("next run:   {n}\n"));
        }
        for (name, tail) in [("stderr", &self.stderr_tail), ("stdout", &self.stdout_tail)] {
            if !tail.is_empty() {
                b.push_str(&format!("\n--- last lines of {name} ---\n{tail}"));
                if !tail.ends_with('\n') {
                    b.push('\n');
                }
            }
        }
        b
    }

    /// The JSON a webhook receives.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "event": self.event,
            "subject": self.subject(),
            "job": self.job,
            "host": self.host,
            "schedule": self.schedule,
            "zone": self.zone,
            "scheduled": self.run.scheduled,
            "run_id": self.run.run_id,
            "outcome": self.run.outcome.as_str(),
            "reason": self.run.reason,
            "attempts": self.run.attempts,
            "output": self.run.output,
            "next_run": self.next_run,
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
            "suppressed": self.suppressed,
            "log_file": self.log_file,
        })
    }
}

/// Why a delivery failed, and whether retrying can help.
#[derive(Debug)]
pub struct DeliveryError {
    pub reason: String,
    /// Authentication failures and rejected requests are not retried forever.
    pub permanent: bool,
}

fn deliver(ch: &AlertChannel, alert: &Alert) -> Result<(), DeliveryError> {
    let r = deliver_once(ch, alert);
    if r.is_err() {
        DELIVERY_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    r
}

fn deliver_once(ch: &AlertChannel, alert: &Alert) -> Result<(), DeliveryError> {
    let transient = |reason: String| DeliveryError {
        reason,
        permanent: false,
    };
    match &ch.kind {
        AlertKind::Command { command, timeout } => {
            let argv = match command {
                CommandLine::Argv(a) => a.clone(),
                CommandLine::Shell(t) => vec!["/bin/sh".into(), "-c".into(), t.clone()],
            };
            let r = &alert.run;
            let mut env: Vec<(String, String)> = vec![
                (
                    "PATH".into(),
                    std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
                ),
                ("CRONWARDEN_EVENT".into(), alert.event.clone()),
                ("CRONWARDEN_JOB".into(), alert.job.clone()),
                ("CRONWARDEN_RUN_ID".into(), r.run_id.clone()),
                ("CRONWARDEN_OUTCOME".into(), r.outcome.as_str().into()),
                (
                    "CRONWARDEN_EXIT_CODE".into(),
                    r.attempts
                        .last()
                        .and_then(|a| a.exit_code)
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                ),
                ("CRONWARDEN_ATTEMPTS".into(), r.attempts.len().to_string()),
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
            ];
            if let Ok(home) = std::env::var("HOME") {
                env.push(("HOME".into(), home));
            }
            let spec = crate::runner::AttemptSpec {
                argv,
                env,
                workdir: None,
                stdin: Some(alert.body().into_bytes()),
                umask: 0o077,
                nice: None,
                creds: None,
                timeout: Some(*timeout),
                kill_grace: Duration::from_secs(5),
                inherit_fd: None,
            };
            let dir = std::env::temp_dir();
            let mut out = crate::output::Output::new(&dir, "cronwarden-alert", 0);
            let res =
                crate::runner::run_attempt(&spec, &mut out, &crate::runner::Interrupt::none());
            match crate::policy::exit_failure(&res, &[0]) {
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
        AlertKind::Webhook {
            url,
            format,
            timeout,
        } => {
            let body = match format {
                WebhookFormat::Json => alert.json(),
                WebhookFormat::Slack => serde_json::json!({ "text": alert.body() }),
            };
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(*timeout))
                .http_status_as_error(false)
                .build()
                .into();
            let resp = agent
                .post(url)
                .header("Content-Type", "application/json")
                .send(body.to_string())
                .map_err(|e| transient(format!("POST {}: {}", redact_url(url), redact(e, url))))?;
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
        AlertKind::Email {
            transport,
            from,
            to,
            username,
            password,
            timeout,
        } => send_email(
            transport,
            from,
            to,
            username.as_deref(),
            password.as_ref(),
            *timeout,
            alert,
        ),
    }
}

/// A URL as logs, alerts and the spool show it: scheme, host and port. The user info, the
/// path and the query can all carry credentials (`user:pass@`, the secret paths of Slack
/// hooks and healthchecks.io, `?token=`); the table has the whole URL.
pub fn redact_url(url: &str) -> String {
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
fn redact(e: impl std::fmt::Display, url: &str) -> String {
    e.to_string().replace(url, &redact_url(url))
}

/// Reads a secret from the environment or a file (trailing newline ignored). Never logged.
fn secret(s: &crate::config::Secret) -> Result<String, DeliveryError> {
    s.read("password").map_err(|reason| DeliveryError {
        reason,
        permanent: true,
    })
}

fn send_email(
    transport: &crate::config::SmtpTransport,
    from: &str,
    to: &[String],
    username: Option<&str>,
    password: Option<&crate::config::Secret>,
    timeout: Duration,
    alert: &Alert,
) -> Result<(), DeliveryError> {
    use lettre::Transport;
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    let permanent = |reason: String| DeliveryError {
        reason,
        permanent: true,
    };
    let mut msg = lettre::Message::builder()
        .from(
            from.parse()
                .map_err(|e| permanent(format!("from {from:?}: {e}")))?,
        )
        .subject(alert.subject())
        .header(ContentType::TEXT_PLAIN);
    for addr in to {
        msg = msg.to(addr
            .parse()
            .map_err(|e| permanent(format!("to {addr:?}: {e}")))?);
    }
    let msg = msg
        .body(alert.body())
        .map_err(|e| permanent(format!("building the message: {e}")))?;
    match transport {
        crate::config::SmtpTransport::Sendmail(path) => {
            let t = match path {
                Some(p) => lettre::SendmailTransport::new_with_command(p),
                None => lettre::SendmailTransport::new(),
            };
            t.send(&msg).map_err(|e| DeliveryError {
                reason: format!("sendmail: {e}"),
                permanent: false,
            })
        }
        crate::config::SmtpTransport::Smtp { host, port, tls } => {
            let params = TlsParameters::new(host.clone())
                .map_err(|e| permanent(format!("TLS setup for {host}: {e}")))?;
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
            b.build().send(&msg).map(|_| ()).map_err(|e| {
                let auth = e.status().is_some_and(|c| {
                    c.to_string().starts_with("535") || c.to_string().starts_with("534")
                });
                let kind = if auth {
                    "authentication failed"
                } else if e.is_tls() {
                    "TLS failed"
                } else if e.is_timeout() {
                    "timed out"
                } else if e.is_permanent() {
                    "rejected"
                } else {
                    "not delivered"
                };
                DeliveryError {
                    reason: format!("smtp://{host}:{port}: {kind}: {e}"),
                    // A wrong password or a rejected message does not get better by retrying.
                    permanent: auth || e.is_permanent(),
                }
            })
        }
    }
}

/// Per job and channel: the failure streak's last alert and how many were suppressed since.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Throttle {
    last_sent: Option<Timestamp>,
    suppressed: u64,
}

fn state_path(state: &Path, what: &str) -> PathBuf {
    state.join("alerts").join(what)
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(p: &Path) -> T {
    std::fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A spooled alert waiting for its channel.
#[derive(Debug, Serialize, Deserialize)]
struct Spooled {
    channel: String,
    alert: Alert,
    created: Timestamp,
    tries: u32,
    next_try: Timestamp,
    last_error: String,
}

fn spool_dir(state: &Path) -> PathBuf {
    state.join("spool")
}

/// Sends the `retry` alerts for a failed attempt that will be retried (only to channels
/// whose `on` includes "retry"; never throttled: the user asked for each one).
pub fn on_retry(cfg: &Config, job: &Job, so_far: &RunRecord, tails: (&[u8], &[u8]), log: &Logger) {
    for name in &job.alert {
        let Some(ch) = cfg.alert(name) else { continue };
        if !ch.on.contains(&AlertEvent::Retry) {
            continue;
        }
        let alert = make_alert("retry", job, so_far, tails, 0, cfg);
        send_or_spool(cfg, ch, alert, log);
    }
}

fn tail(b: &[u8]) -> String {
    let text = String::from_utf8_lossy(b);
    let lines: Vec<&str> = text.lines().collect();
    let mut t = lines[lines.len().saturating_sub(40)..].join("\n");
    if t.len() > 8192 {
        let mut cut = t.len() - 8192;
        while !t.is_char_boundary(cut) {
            cut += 1;
        }
        t = t[cut..].to_string();
    }
    t
}

fn make_alert(
    event: &str,
    job: &Job,
    rec: &RunRecord,
    tails: (&[u8], &[u8]),
    suppressed: u64,
    cfg: &Config,
) -> Alert {
    Alert {
        event: event.to_string(),
        job: job.name.clone(),
        host: host(),
        schedule: job.schedule_text.clone(),
        zone: crate::schedule::zone_name(&job.tz),
        run: rec.clone(),
        next_run: job
            .schedule
            .as_ref()
            .and_then(|s| s.next_after(Timestamp::now()))
            .map(|t| crate::schedule::format_rfc3339(t, &job.tz)),
        stdout_tail: tail(tails.0),
        stderr_tail: tail(tails.1),
        suppressed,
        log_file: cfg
            .settings
            .log_file
            .as_ref()
            .map(|p| p.display().to_string()),
    }
}

fn event_name(e: AlertEvent) -> &'static str {
    match e {
        AlertEvent::Failure => "failure",
        AlertEvent::Recovery => "recovery",
        AlertEvent::Retry => "retry",
        AlertEvent::Output => "output",
    }
}

/// Fleet mode: tells the job's failure channels that the node running `rec` was lost (sent
/// by the one node that took the run over).
pub fn node_lost(cfg: &Config, job: &Job, rec: &RunRecord, log: &Logger) {
    if crate::fleet::get().is_some_and(|f| !f.first_alert(&rec.run_id, "node-lost")) {
        return;
    }
    for name in &job.alert {
        let Some(ch) = cfg.alert(name) else { continue };
        if ch.on.contains(&AlertEvent::Failure) {
            let alert = make_alert("node-lost", job, rec, (&[], &[]), 0, cfg);
            send_or_spool(cfg, ch, alert, log);
        }
    }
}

/// Sends (or spools) the alerts a finished run calls for.
pub fn after_run(cfg: &Config, job: &Job, rec: &RunRecord, tails: (&[u8], &[u8]), log: &Logger) {
    let state = &cfg.settings.state_dir;
    // The failure streak: a recovery is the first success after a failure.
    let streak_file = state_path(state, &format!("{}.failing", job.name));
    let was_failing = streak_file.exists();
    let failed = matches!(rec.outcome, Outcome::Failure | Outcome::Lost);
    if failed && !was_failing {
        let _ = record::write_replace(&streak_file, rec.run_id.as_bytes());
    } else if rec.outcome == Outcome::Success && was_failing {
        let _ = std::fs::remove_file(&streak_file);
    }
    let mut events = Vec::new();
    if failed {
        events.push(AlertEvent::Failure);
    }
    if rec.outcome == Outcome::Success && was_failing {
        events.push(AlertEvent::Recovery);
    }
    if !tails.0.is_empty() || !tails.1.is_empty() {
        events.push(AlertEvent::Output);
    }
    // Fleet mode: each event of a run is sent by one node only.
    if let Some(f) = crate::fleet::get() {
        events.retain(|e| f.first_alert(&rec.run_id, event_name(*e)));
    }
    if events.is_empty() {
        return;
    }
    let mut working: Vec<&AlertChannel> = Vec::new();
    let mut broken: Vec<(String, String, Alert)> = Vec::new();
    for name in &job.alert {
        let Some(ch) = cfg.alert(name) else { continue };
        for ev in events.iter().filter(|e| ch.on.contains(e)) {
            let event = event_name(*ev);
            let mut suppressed = 0;
            let throttle_file = state_path(state, &format!("{}.{}.throttle", job.name, ch.name));
            if *ev == AlertEvent::Failure && !ch.min_interval.is_zero() {
                let mut t: Throttle = read_json(&throttle_file);
                let now = Timestamp::now();
                let within = t.last_sent.is_some_and(|l| {
                    now.duration_since(l)
                        < jiff::SignedDuration::try_from(ch.min_interval).unwrap_or_default()
                });
                if within && was_failing {
                    t.suppressed += 1;
                    log.log(
                        Level::Info,
                        "alert-suppressed",
                        &[("job", job.name.clone()), ("channel", ch.name.clone())],
                        &format!("within min_interval ({} so far)", t.suppressed),
                    );
                    if let Ok(b) = serde_json::to_vec(&t) {
                        let _ = record::write_replace(&throttle_file, &b);
                    }
                    continue;
                }
                suppressed = t.suppressed;
                let t = Throttle {
                    last_sent: Some(now),
                    suppressed: 0,
                };
                if let Ok(b) = serde_json::to_vec(&t) {
                    let _ = record::write_replace(&throttle_file, &b);
                }
            }
            if *ev == AlertEvent::Recovery {
                let _ = std::fs::remove_file(&throttle_file);
            }
            let alert = make_alert(event, job, rec, tails, suppressed, cfg);
            let template = alert.clone();
            match send_or_spool(cfg, ch, alert, log) {
                None => working.push(ch),
                Some(reason) => broken.push((ch.name.clone(), reason, template)),
            }
        }
    }
    // A channel that failed while others work: say so through the ones that work, once per
    // run, so that a broken mail relay does not go unnoticed.
    working.dedup_by(|a, b| a.name == b.name);
    if let Some((_, _, template)) = broken.first() {
        let list: Vec<String> = broken
            .iter()
            .map(|(name, reason, _)| format!("[alerts.{name}]: {reason}"))
            .collect();
        let mut note = template.clone();
        note.event = "channel-broken".to_string();
        note.run.reason = Some(format!(
            "alert channel(s) failed: {} (undelivered alerts are spooled and retried)",
            list.join("; ")
        ));
        for ch in working
            .iter()
            .filter(|c| !broken.iter().any(|(n, _, _)| *n == c.name))
        {
            if deliver(ch, &note).is_ok() {
                log.log(
                    Level::Warn,
                    "alert-channel-broken",
                    &[("job", job.name.clone()), ("via", ch.name.clone())],
                    &list.join("; "),
                );
            }
        }
    }
}

/// Delivers an alert, or spools it; returns the failure reason, if any.
fn send_or_spool(cfg: &Config, ch: &AlertChannel, alert: Alert, log: &Logger) -> Option<String> {
    let fields = [
        ("job", alert.job.clone()),
        ("channel", ch.name.clone()),
        ("event", alert.event.clone()),
        ("run_id", alert.run.run_id.clone()),
    ];
    match deliver(ch, &alert) {
        Ok(()) => {
            log.log(Level::Info, "alert-sent", &fields, &alert.subject());
            None
        }
        Err(e) if e.permanent => {
            log.log(
                Level::Error,
                "alert-failed",
                &fields,
                &format!("{} (not retried)", e.reason),
            );
            Some(e.reason)
        }
        Err(e) => {
            log.log(
                Level::Warn,
                "alert-spooled",
                &fields,
                &format!("{}; will retry", e.reason),
            );
            let now = Timestamp::now();
            let s = Spooled {
                channel: ch.name.clone(),
                alert,
                created: now,
                tries: 1,
                next_try: now + jiff::SignedDuration::from_secs(5),
                last_error: e.reason.clone(),
            };
            write_spooled(&cfg.settings.state_dir, &s, log);
            Some(e.reason)
        }
    }
}

fn spool_file(state: &Path, s: &Spooled) -> PathBuf {
    spool_dir(state).join(format!(
        "{}.{}.{}.json",
        s.alert.run.run_id, s.channel, s.alert.event
    ))
}

fn write_spooled(state: &Path, s: &Spooled, log: &Logger) {
    let written = serde_json::to_vec(s)
        .map_err(std::io::Error::other)
        .and_then(|b| record::write_atomic(&spool_file(state, s), &b));
    if let Err(e) = written {
        log.log(
            Level::Error,
            "alert-lost",
            &[("job", s.alert.job.clone()), ("channel", s.channel.clone())],
            &format!("cannot write the alert spool: {e}: {}", s.alert.subject()),
        );
    }
}

/// How many alerts wait in the spool.
pub fn spool_size(state: &Path) -> usize {
    std::fs::read_dir(spool_dir(state))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

/// Retries the spooled alerts that are due; returns (delivered, failed attempts).
pub fn flush_spool(cfg: &Config, log: &Logger, force: bool) -> (usize, usize) {
    let state = &cfg.settings.state_dir;
    let Ok(dir) = std::fs::read_dir(spool_dir(state)) else {
        return (0, 0);
    };
    let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
    files.sort();
    let now = Timestamp::now();
    let (mut sent, mut failed) = (0, 0);
    for path in files {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(mut s) = serde_json::from_slice::<Spooled>(&bytes) else {
            continue;
        };
        if !force && s.next_try > now {
            continue;
        }
        let fields = [
            ("job", s.alert.job.clone()),
            ("channel", s.channel.clone()),
            ("event", s.alert.event.clone()),
        ];
        let Some(ch) = cfg.alert(&s.channel) else {
            log.log(
                Level::Error,
                "alert-dropped",
                &fields,
                "the channel is no longer in the table",
            );
            let _ = std::fs::remove_file(&path);
            continue;
        };
        match deliver(ch, &s.alert) {
            Ok(()) => {
                sent += 1;
                log.log(
                    Level::Info,
                    "alert-sent",
                    &fields,
                    &format!("from the spool: {}", s.alert.subject()),
                );
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => {
                failed += 1;
                let age = now.duration_since(s.created);
                if e.permanent
                    || age
                        > jiff::SignedDuration::try_from(cfg.settings.alert_spool_max_age)
                            .unwrap_or_default()
                {
                    log.log(
                        Level::Error,
                        "alert-dropped",
                        &fields,
                        &format!("{}; giving up after {} tries", e.reason, s.tries),
                    );
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                s.tries += 1;
                let backoff = 5u64.saturating_mul(1 << s.tries.min(10)).min(3600);
                s.next_try = now + jiff::SignedDuration::from_secs(backoff as i64);
                s.last_error = e.reason;
                write_spooled(state, &s, log);
            }
        }
    }
    (sent, failed)
}

/// `cronwarden test-alert CHANNEL`.
pub fn test(cfg: &Config, channel: &str) -> Result<(), String> {
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
        },
        next_run: None,
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        suppressed: 0,
        log_file: None,
    };
    deliver(ch, &alert).map_err(|e| e.reason)
}

/// healthchecks.io-style pings: `URL/start` when a run starts, `URL` on success, `URL/fail`
/// (with the output tail as the body) on the final failure. A ping that fails is logged and
/// never fails the job.
pub fn ping(url: &str, what: Ping, body: &[u8], log: &Logger, job: &str) {
    let base = url.trim_end_matches('/');
    let kind = match what {
        Ping::Start => "start",
        Ping::Success => "success",
        Ping::Fail => "fail",
    };
    let target = match what {
        Ping::Start => format!("{base}/start"),
        Ping::Success => base.to_string(),
        Ping::Fail => format!("{base}/fail"),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let result = match what {
        Ping::Fail => agent
            .post(&target)
            .send(&body[body.len().saturating_sub(10_000)..])
            .map(|r| r.status().as_u16()),
        _ => agent.get(&target).call().map(|r| r.status().as_u16()),
    };
    match result {
        Ok(200..=299) => {}
        Ok(status) => log.log(
            Level::Warn,
            "healthcheck",
            &[("job", job.to_string())],
            &format!("{} ({kind} ping): HTTP {status}", redact_url(url)),
        ),
        Err(e) => log.log(
            Level::Warn,
            "healthcheck",
            &[("job", job.to_string())],
            &format!("{} ({kind} ping): {}", redact_url(url), redact(e, &target)),
        ),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
}
