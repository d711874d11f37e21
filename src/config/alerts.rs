//! `[alerts.NAME]`: the alert channels (email, webhook, command), the events each is sent
//! for, and how often; read from the main file and every drop-in file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::CommandLine;
use super::loader::Loader;
use super::reader::{At, TableReader};
use crate::diag::Loc;

const ALERT_COMMON_KEYS: &[&str] = &["type", "on", "min_interval", "after_failures"];
const EMAIL_KEYS: &[&str] = &[
    "smtp_url",
    "from",
    "to",
    "username",
    "password_env",
    "password_file",
    "timeout",
    "ca_file",
];
const WEBHOOK_KEYS: &[&str] = &["url", "format", "timeout", "ca_file"];
const COMMAND_ALERT_KEYS: &[&str] = &["command", "timeout"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://`: STARTTLS when the server offers it.
    Opportunistic,
    /// `smtp://...?tls=required`: STARTTLS or fail.
    Required,
    /// `smtps://`: TLS from the first byte.
    Wrapper,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmtpTransport {
    Smtp {
        host: String,
        port: u16,
        tls: SmtpTls,
    },
    /// `sendmail:` or `sendmail:/path/to/sendmail`.
    Sendmail(Option<PathBuf>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    Json,
    Slack,
}

#[derive(Clone, Debug)]
pub enum AlertKind {
    Email {
        transport: SmtpTransport,
        from: String,
        to: Vec<String>,
        username: Option<String>,
        password: Option<super::Secret>,
        timeout: Duration,
        /// A PEM bundle of CA certificates trusted besides the system's (`ca_file`).
        ca_file: Option<PathBuf>,
    },
    Webhook {
        url: String,
        format: WebhookFormat,
        timeout: Duration,
        /// A PEM bundle of CA certificates trusted besides the system's (`ca_file`).
        ca_file: Option<PathBuf>,
    },
    Command {
        command: CommandLine,
        timeout: Duration,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertEvent {
    Failure,
    Recovery,
    Retry,
    Output,
    /// The first skip of a streak of runs skipped because another run held the lock.
    Skipped,
    /// The last success is older than `expect_success_within`.
    Stale,
    /// Instants of a job that no node of a fleet could claim when they were due (the
    /// database was unreachable): once per outage per job.
    Missed,
    /// A run still going after `warn_after`.
    Slow,
    /// A run that ended with one of `warning_codes`.
    Warning,
    /// Every successful run.
    Success,
}

impl AlertEvent {
    /// Its name in `on` and in alerts.
    pub fn name(self) -> &'static str {
        match self {
            AlertEvent::Failure => "failure",
            AlertEvent::Recovery => "recovery",
            AlertEvent::Retry => "retry",
            AlertEvent::Output => "output",
            AlertEvent::Skipped => "skipped",
            AlertEvent::Stale => "stale",
            AlertEvent::Missed => "missed",
            AlertEvent::Slow => "slow",
            AlertEvent::Warning => "warning",
            AlertEvent::Success => "success",
        }
    }

    /// Every event, in the order the docs list them.
    pub const ALL: [AlertEvent; 10] = [
        AlertEvent::Failure,
        AlertEvent::Recovery,
        AlertEvent::Retry,
        AlertEvent::Output,
        AlertEvent::Skipped,
        AlertEvent::Stale,
        AlertEvent::Missed,
        AlertEvent::Slow,
        AlertEvent::Warning,
        AlertEvent::Success,
    ];
}

#[derive(Clone, Debug)]
pub struct AlertChannel {
    pub name: String,
    pub kind: AlertKind,
    pub on: Vec<AlertEvent>,
    pub min_interval: Duration,
    /// The channel hears of a failure streak only from its Nth consecutive failure (and of
    /// its recovery only if it heard of the streak).
    pub after_failures: u32,
}

impl Loader<'_> {
    /// The channels of every file's `[alerts]`, and where each name is defined (for the jobs'
    /// `alert` lists, which may name a channel that failed its checks).
    pub(crate) fn alert_channels(
        &mut self,
        readers: &[TableReader],
    ) -> (Vec<AlertChannel>, HashMap<String, Loc>) {
        let mut alerts: Vec<AlertChannel> = Vec::new();
        let mut alert_locs: HashMap<String, Loc> = HashMap::new();
        for r in readers {
            let Some(t) = r.table(self.sink, "alerts") else {
                continue;
            };
            for (name, loc, value) in t.entries() {
                let subject = format!("alert channel {name:?}");
                if !self.first_definition(&mut alert_locs, name, loc, &subject) {
                    continue;
                }
                self.check_name(name, loc, &subject);
                let Some(ch) = t.table_value(self.sink, name, value) else {
                    continue;
                };
                let mut ch = TableReader::new_from(ch, Some(subject));
                ch.loc = loc;
                if let Some(a) = self.alert(name, &ch) {
                    alerts.push(a);
                }
            }
        }
        (alerts, alert_locs)
    }

    fn alert(&mut self, name: &str, t: &TableReader) -> Option<AlertChannel> {
        let errors_before = self.sink.diags.len();
        let kind = self.channel_type(t);
        let on = self.alert_events(t);
        let min_interval = t
            .duration(self.sink, "min_interval")
            .map_or(Duration::ZERO, |a| a.v);
        let after_failures = t
            .int(self.sink, "after_failures", 1, 1_000_000)
            .map_or(1, |a| a.v as u32);
        let kind = match kind?.v.as_str() {
            "email" => self.email(t)?,
            "webhook" => self.webhook(t)?,
            _ => self.command_channel(t)?,
        };
        if self.errors_since(errors_before) {
            return None;
        }
        Some(AlertChannel {
            name: name.to_string(),
            kind,
            on,
            min_interval,
            after_failures,
        })
    }

    /// `type`, and the keys that type allows (a `password` is refused with the reason).
    fn channel_type(&mut self, t: &TableReader) -> Option<At<String>> {
        let kind = t.choice(self.sink, "type", &["email", "webhook", "command"]);
        let kind_keys: &[&str] = match kind.as_ref().map(|k| k.v.as_str()) {
            Some("email") => EMAIL_KEYS,
            Some("webhook") => WEBHOOK_KEYS,
            Some("command") => COMMAND_ALERT_KEYS,
            _ => &[],
        };
        if kind.is_none() && !t.has("type") {
            self.sink.error(
                t.loc,
                t.subject(),
                "missing `type`: one of email, webhook, command",
            );
        }
        if kind.is_some() {
            let allowed: Vec<&str> = ALERT_COMMON_KEYS.iter().chain(kind_keys).copied().collect();
            if let Some(v) = t.raw("password") {
                t.error(
                    self.sink,
                    v,
                    "password",
                    "a password is never written in the table: use password_env (a variable \
                     name) or password_file (a root-only file)",
                );
            }
            let others: Vec<&str> = allowed.iter().copied().chain(["password"]).collect();
            t.check_keys(self.sink, &others, "this channel's");
        }
        kind
    }

    /// `on`: the events a channel is sent for (default: failure, skipped, stale, missed).
    fn alert_events(&mut self, t: &TableReader) -> Vec<AlertEvent> {
        let Some(list) = t.strings(self.sink, "on", true) else {
            return vec![
                AlertEvent::Failure,
                AlertEvent::Skipped,
                AlertEvent::Stale,
                AlertEvent::Missed,
            ];
        };
        let mut events = Vec::new();
        for ev in list.v {
            let Some(e) = AlertEvent::ALL.into_iter().find(|e| e.name() == ev.v) else {
                let names: Vec<&str> = AlertEvent::ALL.iter().map(|e| e.name()).collect();
                self.sink.error(
                    ev.loc,
                    t.subject(),
                    format!("on: unknown event {:?}; use {}", ev.v, names.join(", ")),
                );
                continue;
            };
            if !events.contains(&e) {
                events.push(e);
            }
        }
        events
    }

    fn email(&mut self, t: &TableReader) -> Option<AlertKind> {
        let mut missing = Vec::new();
        for key in ["smtp_url", "from", "to"] {
            if !t.has(key) {
                missing.push(key);
            }
        }
        if !missing.is_empty() {
            self.sink.error(
                t.loc,
                t.subject(),
                format!("missing {} for an email channel", missing.join(", ")),
            );
        }
        let url = t.nonempty(self.sink, "smtp_url");
        let transport = url.and_then(|u| match parse_smtp_url(&u.v) {
            Ok(tr) => Some(tr),
            Err(e) => {
                self.sink
                    .error(u.loc, t.subject(), format!("smtp_url: {e}"));
                None
            }
        });
        let from = t.nonempty(self.sink, "from");
        let to = t.strings(self.sink, "to", true);
        if let Some(to) = &to
            && to.v.is_empty()
        {
            self.sink
                .error(to.loc, t.subject(), "to: name at least one address");
        }
        for addr in from.iter().chain(to.iter().flat_map(|l| l.v.iter())) {
            if !addr.v.contains('@') {
                self.sink.error(
                    addr.loc,
                    t.subject(),
                    format!("{:?} is not an email address", addr.v),
                );
            }
        }
        let username = t.nonempty(self.sink, "username").map(|a| a.v);
        let password = self.secret(t, "password_env", "password_file");
        let timeout = t
            .duration(self.sink, "timeout")
            .map_or(Duration::from_secs(30), |a| a.v);
        let ca_file = self.ca_file(t, "ca_file");
        Some(AlertKind::Email {
            transport: transport?,
            from: from?.v,
            to: to?.v.into_iter().map(|a| a.v).collect(),
            username,
            password,
            timeout,
            ca_file,
        })
    }

    fn webhook(&mut self, t: &TableReader) -> Option<AlertKind> {
        let url = t.nonempty(self.sink, "url");
        if url.is_none() && !t.has("url") {
            self.sink
                .error(t.loc, t.subject(), "missing `url` for a webhook channel");
        }
        let url = url?;
        if !(url.v.starts_with("http://") || url.v.starts_with("https://")) {
            self.sink.error(
                url.loc,
                t.subject(),
                format!("url: {:?} must start with http:// or https://", url.v),
            );
        }
        let formats = [
            ("json", WebhookFormat::Json),
            ("slack", WebhookFormat::Slack),
        ];
        let format = t
            .choice_of(self.sink, "format", &formats)
            .map_or(WebhookFormat::Json, |a| a.v);
        let timeout = t
            .duration(self.sink, "timeout")
            .map_or(Duration::from_secs(10), |a| a.v);
        let ca_file = self.ca_file(t, "ca_file");
        Some(AlertKind::Webhook {
            url: url.v,
            format,
            timeout,
            ca_file,
        })
    }

    /// A `ca_file` (or `[settings]` `healthcheck_ca_file`): an absolute path to a PEM bundle
    /// of CA certificates, which must be a readable regular file holding at least one
    /// certificate when the table is checked (not first when an alert is due).
    pub(crate) fn ca_file(&mut self, t: &TableReader, key: &str) -> Option<PathBuf> {
        let p = self.abs_path(t, key)?;
        let problem = match std::fs::metadata(&p.v) {
            Err(e) => Some(format!("cannot read {}: {e}", p.v.display())),
            Ok(m) if !m.is_file() => Some(format!("{} is not a regular file", p.v.display())),
            Ok(_) => crate::tls::read_pem_bundle(&p.v).err(),
        };
        if let Some(why) = problem {
            self.sink.error(p.loc, t.subject(), format!("{key}: {why}"));
            return None;
        }
        Some(p.v)
    }

    fn command_channel(&mut self, t: &TableReader) -> Option<AlertKind> {
        let command = self.command(t, "command");
        if command.is_none() && !t.has("command") {
            self.sink.error(
                t.loc,
                t.subject(),
                "missing `command` for a command channel",
            );
        }
        let timeout = t
            .duration(self.sink, "timeout")
            .map_or(Duration::from_secs(60), |a| a.v);
        Some(AlertKind::Command {
            command: command?.v,
            timeout,
        })
    }
}

/// `smtp://host[:port][?tls=required]`, `smtps://host[:port]`, `sendmail:[/path]`.
fn parse_smtp_url(url: &str) -> Result<SmtpTransport, String> {
    if let Some(path) = url.strip_prefix("sendmail:") {
        return Ok(SmtpTransport::Sendmail(
            (!path.is_empty()).then(|| PathBuf::from(path)),
        ));
    }
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!("{url:?} is not smtp://HOST[:PORT], smtps://HOST[:PORT] or sendmail:")
    })?;
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h.trim_end_matches('/'), Some(q)),
        None => (rest.trim_end_matches('/'), None),
    };
    if hostport.contains('@') {
        return Err(
            "no credentials in smtp_url: use username with password_env or password_file"
                .to_string(),
        );
    }
    let mut tls = match scheme {
        "smtp" => SmtpTls::Opportunistic,
        "smtps" => SmtpTls::Wrapper,
        other => {
            return Err(format!(
                "unknown scheme {other:?}; use smtp://, smtps:// or sendmail:"
            ));
        }
    };
    if let Some(q) = query {
        for pair in q.split('&') {
            match pair {
                "tls=required" if tls == SmtpTls::Opportunistic => tls = SmtpTls::Required,
                "tls=required" => {}
                "tls=opportunistic" if tls != SmtpTls::Wrapper => tls = SmtpTls::Opportunistic,
                other => {
                    return Err(format!(
                        "unknown option {other:?}; the only option is ?tls=required"
                    ));
                }
            }
        }
    }
    let default_port = if tls == SmtpTls::Wrapper { 465 } else { 25 };
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        // [v6]:port
        let (h, p) = h
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
        (h.to_string(), p.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{url:?}: bad port {p:?}"))?,
        None => default_port,
    };
    Ok(SmtpTransport::Smtp { host, port, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        assert_eq!(
            parse_smtp_url("smtp://mail.example.com:587"),
            Ok(SmtpTransport::Smtp {
                host: "mail.example.com".into(),
                port: 587,
                tls: SmtpTls::Opportunistic
            })
        );
        assert_eq!(
            parse_smtp_url("smtp://127.0.0.1:2525?tls=required"),
            Ok(SmtpTransport::Smtp {
                host: "127.0.0.1".into(),
                port: 2525,
                tls: SmtpTls::Required
            })
        );
        assert_eq!(
            parse_smtp_url("smtps://mail.example.com"),
            Ok(SmtpTransport::Smtp {
                host: "mail.example.com".into(),
                port: 465,
                tls: SmtpTls::Wrapper
            })
        );
        assert_eq!(
            parse_smtp_url("sendmail:"),
            Ok(SmtpTransport::Sendmail(None))
        );
        assert!(parse_smtp_url("smtp://u:p@host").is_err());
        assert!(parse_smtp_url("http://host").is_err());
        assert!(parse_smtp_url("smtp://host:99999").is_err());
    }
}
