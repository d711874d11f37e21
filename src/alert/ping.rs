//! healthchecks.io-style pings (`healthcheck_url`), as its ping API has them:
//!
//! - `URL/start?rid=RID` when a run starts;
//! - `URL?rid=RID` when it ends well (a success or a warning), with its output as the body;
//! - `URL/CODE?rid=RID` when it failed by exiting with CODE, with the reason and the output;
//! - `URL/fail?rid=RID` when it failed otherwise (a timeout, a signal, `verify`, ...) or
//!   was interrupted, with the reason and the output.
//!
//! RID is a UUID made from the run id (the API takes UUIDs only), so that the service pairs
//! a run's start with its end. A body holds at most the API's 100,000 bytes (the end of the
//! output is kept). A ping that fails (no answer, HTTP 5xx, 408, 429) is tried again after
//! 1 s, then 2 s, each try within 10 s; when none went through it is logged. A ping never
//! fails the job.

use std::path::Path;
use std::time::Duration;

use super::deliver::{http_error, redact_url};
use crate::log::{Level, Logger};
use crate::record::{Outcome, RunRecord};

/// The `User-Agent` of every HTTP request cronwarden makes (webhooks and pings).
pub(crate) const USER_AGENT: &str = concat!("cronwarden/", env!("CARGO_PKG_VERSION"));
/// The most a ping's body holds (the ping API keeps 100 kB).
pub(crate) const MAX_BODY: usize = 100_000;
/// The waits before the second and the third try.
const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];
/// The longest one try takes.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a ping tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ping {
    /// The run started.
    Start,
    /// The run ended well.
    Success,
    /// The run failed by exiting with this code (1 to 255).
    Exit(i32),
    /// The run failed otherwise.
    Fail,
}

impl Ping {
    /// The path the ping adds to the check's URL.
    fn suffix(self) -> String {
        match self {
            Ping::Start => "/start".into(),
            Ping::Success => String::new(),
            Ping::Exit(c) => format!("/{c}"),
            Ping::Fail => "/fail".into(),
        }
    }

    /// How the log names it.
    fn name(self) -> String {
        match self {
            Ping::Start => "start".into(),
            Ping::Success => "success".into(),
            Ping::Exit(c) => format!("exit {c}"),
            Ping::Fail => "fail".into(),
        }
    }
}

/// The ping that ends a run, with its body; `None` for a run that was not run (skipped) or
/// whose end is unknown (lost). `tails` are the run's stdout and stderr.
pub(crate) fn end_ping(rec: &RunRecord, tails: (&[u8], &[u8])) -> Option<(Ping, Vec<u8>)> {
    let mut output = tails.0.to_vec();
    output.extend_from_slice(tails.1);
    let what = match rec.outcome {
        o if o.ended_well() => return Some((Ping::Success, last_bytes(&output, MAX_BODY))),
        Outcome::Failure => rec
            .attempts
            .last()
            .and_then(|a| {
                let code = a.exit_code.filter(|c| (1..=255).contains(c))?;
                // Only a plain non-zero exit: not a timeout, a `verify` or `min_duration`
                // failure (which may exit 0), an out-of-memory kill.
                let plain = a
                    .reason
                    .as_deref()
                    .is_none_or(|r| r == format!("exit {code}"));
                (plain && !a.timed_out && a.signal.is_none()).then_some(Ping::Exit(code))
            })
            .unwrap_or(Ping::Fail),
        Outcome::Interrupted => Ping::Fail,
        _ => return None,
    };
    let mut body = rec.reason.clone().unwrap_or_default().into_bytes();
    body.push(b'\n');
    body = last_bytes(&body, MAX_BODY / 4);
    if !output.is_empty() {
        body.push(b'\n');
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&last_bytes(&output, room));
    }
    Some((what, body))
}

/// The last `max` bytes of `b`, starting at a character (no UTF-8 sequence cut in two).
fn last_bytes(b: &[u8], max: usize) -> Vec<u8> {
    let mut from = b.len().saturating_sub(max);
    while from < b.len() && from > 0 && (b[from] & 0xC0) == 0x80 {
        from += 1;
    }
    b[from..].to_vec()
}

/// The run id as the ping API's `rid`: a UUID (version 8, of two FNV-1a hashes of the run
/// id), the same for the run's start and end and on every node of a fleet.
pub(crate) fn rid(run_id: &str) -> String {
    let fnv = |seed: u64| {
        run_id.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
        })
    };
    let (hi, lo) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    let hi = (hi & !0xF000) | 0x8000; // version 8
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62); // RFC 9562 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// The URL of a ping: the check's URL with the ping's path, and `rid` added to its query.
fn target(url: &str, what: Ping, run_id: &str) -> String {
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, format!("{q}&")),
        None => (url, String::new()),
    };
    let path = path.trim_end_matches('/');
    format!("{path}{}?{query}rid={}", what.suffix(), rid(run_id))
}

/// Pings the check at `url` about the run `run_id`: a GET for `start`, a POST of `body`
/// otherwise; tried up to three times. Failures are logged (the URL redacted), never
/// returned: a ping never fails the job.
pub(crate) fn ping(
    url: &str,
    what: Ping,
    run_id: &str,
    body: &[u8],
    log: &Logger,
    job: &str,
    ca_file: Option<&Path>,
) {
    let target = target(url, what, run_id);
    let fields = [("job", job.to_string())];
    let trust = match crate::tls::trust(ca_file) {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("{} ({} ping): {e}", redact_url(url), what.name());
            log.log(Level::Warn, "healthcheck", &fields, &msg);
            return;
        }
    };
    let agent = trust.http(TRY_TIMEOUT);
    let tries = BACKOFF.len() + 1;
    for n in 1..=tries {
        let result = match what {
            Ping::Start => agent.get(&target).header("User-Agent", USER_AGENT).call(),
            _ => agent
                .post(&target)
                .header("User-Agent", USER_AGENT)
                .header("Content-Type", "text/plain; charset=utf-8")
                .send(body),
        }
        .map(|r| r.status().as_u16());
        let why = match result {
            Ok(200..=299) => return,
            Ok(s @ (408 | 429 | 500..=599)) => format!("HTTP {s}"),
            Ok(s) => {
                let msg = format!("{} ({} ping): HTTP {s}", redact_url(url), what.name());
                log.log(Level::Warn, "healthcheck", &fields, &msg);
                return;
            }
            Err(e) => http_error(e, &target),
        };
        let msg = format!("{} ({} ping): {why}", redact_url(url), what.name());
        match BACKOFF.get(n - 1) {
            Some(wait) => {
                let msg = format!(
                    "{msg}; trying again in {}",
                    crate::units::format_duration(*wait)
                );
                log.log(Level::Warn, "healthcheck", &fields, &msg);
                std::thread::sleep(*wait);
            }
            None => {
                let msg = format!("{msg}; gave up after {tries} tries");
                log.log(Level::Warn, "healthcheck", &fields, &msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AttemptRecord;

    fn run(outcome: Outcome, attempt: AttemptRecord) -> RunRecord {
        let mut r: RunRecord = serde_json::from_value(serde_json::json!({
            "run_id": "20260101T000000-abcdef", "job": "j", "scheduled": "", "started": "",
            "ended": "", "duration_ms": 0, "attempts": [], "outcome": "failure",
            "trigger": "run",
        }))
        .expect("a record");
        r.outcome = outcome;
        r.reason = attempt.reason.clone();
        r.attempts.push(attempt);
        r
    }

    fn attempt(code: Option<i32>, reason: Option<&str>, timed_out: bool) -> AttemptRecord {
        AttemptRecord {
            attempt: 1,
            started: String::new(),
            duration_ms: 0,
            exit_code: code,
            signal: None,
            timed_out,
            reason: reason.map(str::to_string),
            usage: Default::default(),
        }
    }

    #[test]
    fn each_end_has_its_endpoint_and_body() {
        let tails: (&[u8], &[u8]) = (b"out\n", b"err\n");
        let exit2 = run(Outcome::Failure, attempt(Some(2), Some("exit 2"), false));
        assert_eq!(
            end_ping(&exit2, tails),
            Some((Ping::Exit(2), b"exit 2\n\nout\nerr\n".to_vec()))
        );
        let timeout = attempt(None, Some("timed out after 1s"), true);
        let (what, body) = end_ping(&run(Outcome::Failure, timeout), tails).expect("a ping");
        assert_eq!(what, Ping::Fail);
        assert!(body.starts_with(b"timed out after 1s\n"));
        let verify = attempt(Some(0), Some("verify: /x: missing"), false);
        assert_eq!(
            end_ping(&run(Outcome::Failure, verify), tails).map(|p| p.0),
            Some(Ping::Fail)
        );
        let warned = attempt(Some(3), Some("exit 3 (a warning_codes exit)"), false);
        assert_eq!(
            end_ping(&run(Outcome::Warning, warned), tails),
            Some((Ping::Success, b"out\nerr\n".to_vec()))
        );
        let skipped = attempt(None, None, false);
        assert_eq!(end_ping(&run(Outcome::Skipped, skipped), tails), None);
    }

    #[test]
    fn a_body_keeps_the_last_100_kb_and_cuts_no_character() {
        let mut out = "é".repeat(60_000).into_bytes();
        out.extend_from_slice(b"END");
        let ok = run(Outcome::Success, attempt(Some(0), None, false));
        let (_, body) = end_ping(&ok, (&out, b"")).expect("a ping");
        assert!(body.len() <= MAX_BODY && body.len() >= MAX_BODY - 1);
        assert!(std::str::from_utf8(&body).is_ok_and(|s| s.ends_with("éEND")));
    }

    #[test]
    fn urls_get_the_path_and_a_uuid_rid() {
        let r = rid("20260101T000000-abcdef");
        assert_eq!(r, rid("20260101T000000-abcdef"));
        assert_ne!(r, rid("20260101T000000-abcdee"));
        let parts: Vec<usize> = r.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(&r[14..15], "8");
        assert!(matches!(&r[19..20], "8" | "9" | "a" | "b"), "{r}");
        let id = "20260101T000000-abcdef";
        assert_eq!(
            target("https://hc-ping.com/abc/", Ping::Exit(2), id),
            format!("https://hc-ping.com/abc/2?rid={r}")
        );
        assert_eq!(
            target("https://hc-ping.com/key/slug?create=1", Ping::Start, id),
            format!("https://hc-ping.com/key/slug/start?create=1&rid={r}")
        );
        assert_eq!(
            target("https://hc-ping.com/abc", Ping::Success, id),
            format!("https://hc-ping.com/abc?rid={r}")
        );
    }
}
