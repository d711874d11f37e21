//! Pure decisions: did an attempt succeed, what did verification find, how long to wait
//! before the next retry.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::config::Retry;
use crate::runner::{AttemptResult, Exit, signal_name};
use crate::units::{format_duration, format_size};

/// Why an attempt failed by its exit alone, or `None` when the exit means success.
/// `timeout` is the attempt's: a timed-out attempt is reported with it, not with how long
/// the attempt took, which includes the `kill_grace` it was given to stop.
pub(crate) fn exit_failure(
    r: &AttemptResult,
    success_codes: &[i32],
    timeout: Option<Duration>,
) -> Option<String> {
    if r.timed_out {
        let after = format_duration(timeout.unwrap_or(r.duration));
        return Some(format!("timed out after {after}"));
    }
    if let Some(sig) = r.interrupted {
        return Some(format!("interrupted by {}", signal_name(sig)));
    }
    match &r.exit {
        Exit::Code(c) if success_codes.contains(c) => None,
        Exit::Code(c) => Some(format!("exit {c}")),
        Exit::Signal(s) => Some(format!("killed by {}", signal_name(*s))),
        Exit::NotStarted(why) => Some(why.clone()),
    }
}

/// Timestamps of some file systems are coarser than the clock the start time comes from.
const MTIME_SLACK: Duration = Duration::from_secs(1);

/// Checks each expected output file; returns one message per problem.
pub(crate) fn verify(
    files: &[String],
    min_size: u64,
    fresh: bool,
    started: SystemTime,
) -> Vec<String> {
    let mut problems = Vec::new();
    for f in files {
        let path = Path::new(f);
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("{f} is missing"));
                continue;
            }
            Err(e) => {
                problems.push(format!("{f}: {e}"));
                continue;
            }
        };
        if !meta.is_file() {
            problems.push(format!("{f} is not a regular file"));
            continue;
        }
        if meta.len() < min_size {
            problems.push(format!(
                "{f} is {} < {}",
                format_size(meta.len()),
                format_size(min_size)
            ));
        }
        if fresh {
            let earliest = started.checked_sub(MTIME_SLACK).unwrap_or(started);
            match meta.modified() {
                Ok(m) if m >= earliest => {}
                Ok(m) => {
                    let when = jiff::Timestamp::try_from(m)
                        .map(|t| t.to_string())
                        .unwrap_or_else(|_| "earlier".to_string());
                    problems.push(format!(
                        "{f} was not modified during the run (last modified {when})"
                    ));
                }
                Err(e) => problems.push(format!("{f}: modification time: {e}")),
            }
        }
    }
    problems
}

/// The delay before retry number `n` (1 = the first retry): `delay * backoff^(n-1)`, capped
/// at `max_delay`; with jitter, uniformly random in `[0, that]` ("full jitter").
pub(crate) fn retry_delay(r: &Retry, n: u32, random01: f64) -> Duration {
    let exp = r.backoff.powi(n.saturating_sub(1).min(1000) as i32);
    let base = r.delay.as_secs_f64() * exp;
    let capped = if base.is_finite() {
        base.min(r.max_delay.as_secs_f64())
    } else {
        r.max_delay.as_secs_f64()
    };
    let secs = if r.jitter {
        capped * random01.clamp(0.0, 1.0)
    } else {
        capped
    };
    Duration::from_secs_f64(secs.max(0.0))
}

/// A random number in [0, 1) from the standard library's per-process random keys.
pub(crate) fn random01() -> f64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(jitter: bool) -> Retry {
        Retry {
            retries: 5,
            delay: Duration::from_secs(30),
            backoff: 2.0,
            max_delay: Duration::from_secs(600),
            jitter,
            codes: crate::config::RetryCodes::All,
            on: Vec::new(),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = retry(false);
        let d: Vec<u64> = (1..=7).map(|n| retry_delay(&r, n, 0.5).as_secs()).collect();
        assert_eq!(d, [30, 60, 120, 240, 480, 600, 600]);
    }

    #[test]
    fn full_jitter_stays_within_the_delay() {
        let r = retry(true);
        assert_eq!(retry_delay(&r, 2, 0.0), Duration::ZERO);
        assert_eq!(retry_delay(&r, 2, 0.5), Duration::from_secs(30));
        for _ in 0..100 {
            let x = random01();
            assert!((0.0..1.0).contains(&x));
            assert!(retry_delay(&r, 3, x) <= Duration::from_secs(120));
        }
    }

    #[test]
    fn a_timeout_is_reported_with_its_limit_not_with_the_grace_it_took() {
        let r = AttemptResult {
            started: jiff::Timestamp::now(),
            // A 2 s timeout and the 2 s of kill_grace it took to stop.
            duration: Duration::from_millis(4010),
            exit: Exit::Signal(libc::SIGKILL),
            timed_out: true,
            interrupted: None,
            pid: None,
            usage: Default::default(),
            oom_killed: false,
        };
        let two = Some(Duration::from_secs(2));
        assert_eq!(
            exit_failure(&r, &[0], two).as_deref(),
            Some("timed out after 2s")
        );
        let half = Some(Duration::from_millis(500));
        assert_eq!(
            exit_failure(&r, &[0], half).as_deref(),
            Some("timed out after 500ms")
        );
    }

    #[test]
    fn sizes_for_messages() {}
}
