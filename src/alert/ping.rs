//! healthchecks.io-style pings.

use std::path::Path;
use std::time::Duration;

use super::deliver::{http_error, redact_url};
use crate::log::{Level, Logger};

/// healthchecks.io-style pings: `URL/start` when a run starts, `URL` on success, `URL/fail`
/// (with the output tail as the body) on the final failure. A ping that fails is logged and
/// never fails the job. HTTPS trusts the system's CAs and `ca_file` (`[settings]`
/// `healthcheck_ca_file`).
pub(crate) fn ping(
    url: &str,
    what: Ping,
    body: &[u8],
    log: &Logger,
    job: &str,
    ca_file: Option<&Path>,
) {
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
    let trust = match crate::tls::trust(ca_file) {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("{} ({kind} ping): {e}", redact_url(url));
            log.log(
                Level::Warn,
                "healthcheck",
                &[("job", job.to_string())],
                &msg,
            );
            return;
        }
    };
    let agent = trust.http(Duration::from_secs(10));
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
            &format!(
                "{} ({kind} ping): {}",
                redact_url(url),
                http_error(e, &target)
            ),
        ),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ping {
    Start,
    Success,
    Fail,
}
