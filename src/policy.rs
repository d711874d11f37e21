//! Pure decisions: how an attempt ended (success, warning, or a failure of some kind), what
//! verification and the job's expectations found, whether a failure is retried and how long
//! to wait before the next retry.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::config::{Retry, RetryCodes, RetryOn};
use crate::record::RunRecord;
use crate::runner::{AttemptResult, Exit, signal_name};
use crate::units::{format_duration, format_size};

/// How an attempt ended, judged by its exit alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Judged {
    Success,
    /// One of the job's `warning_codes`: a success that is told; the reason says which.
    Warning(String),
    /// Why it failed, and the kind of failure (for `retry_on`).
    Failed(String, RetryOn),
}

/// Judges an attempt by its exit. `timeout` is the attempt's: a timed-out attempt is
/// reported with it, not with how long the attempt took, which includes the `kill_grace` it
/// was given to stop. An exit code in both lists is a success. An attempt that could not
/// start counts as an `exit` failure (without a code).
pub(crate) fn judge_exit(
    r: &AttemptResult,
    success_codes: &[i32],
    warning_codes: &[i32],
    timeout: Option<Duration>,
) -> Judged {
    if r.timed_out {
        let after = format_duration(timeout.unwrap_or(r.duration));
        return Judged::Failed(format!("timed out after {after}"), RetryOn::Timeout);
    }
    if let Some(sig) = r.interrupted {
        let why = format!("interrupted by {}", signal_name(sig));
        return Judged::Failed(why, RetryOn::Signal);
    }
    match &r.exit {
        Exit::Code(c) if success_codes.contains(c) => Judged::Success,
        Exit::Code(c) if warning_codes.contains(c) => {
            Judged::Warning(format!("exit {c} (a warning_codes exit)"))
        }
        Exit::Code(c) => Judged::Failed(format!("exit {c}"), RetryOn::Exit),
        Exit::Signal(s) => {
            Judged::Failed(format!("killed by {}", signal_name(*s)), RetryOn::Signal)
        }
        Exit::NotStarted(why) => Judged::Failed(why.clone(), RetryOn::Exit),
    }
}

/// Why an attempt failed by its exit alone, or `None` when the exit means success (see
/// [`judge_exit`]; no warning codes).
pub(crate) fn exit_failure(
    r: &AttemptResult,
    success_codes: &[i32],
    timeout: Option<Duration>,
) -> Option<String> {
    match judge_exit(r, success_codes, &[], timeout) {
        Judged::Failed(why, _) => Some(why),
        Judged::Success | Judged::Warning(_) => None,
    }
}

/// Why a failed attempt of this kind (with this exit code, if it has one) is not retried
/// (`retry_on`, `retry_codes`, `no_retry_codes`), or `None` when it is.
pub(crate) fn not_retried(retry: &Retry, kind: RetryOn, code: Option<i32>) -> Option<String> {
    if !retry.on.contains(&kind) {
        let what = match kind {
            RetryOn::Exit => "exit",
            RetryOn::Timeout => "timeout",
            RetryOn::Signal => "signal",
            RetryOn::Verify => "verify",
        };
        return Some(format!("{what} is not in retry_on: not retried"));
    }
    if kind != RetryOn::Exit {
        return None;
    }
    match (&retry.codes, code) {
        (RetryCodes::All, _) => None,
        (RetryCodes::Only(list), Some(c)) if !list.contains(&c) => {
            Some(format!("exit {c} is not in retry_codes: not retried"))
        }
        (RetryCodes::Only(_), None) => Some(
            "no exit code, and retry_codes retries only the codes it lists: not retried".into(),
        ),
        (RetryCodes::Except(list), Some(c)) if list.contains(&c) => {
            Some(format!("exit {c} is in no_retry_codes: not retried"))
        }
        _ => None,
    }
}

/// Why an attempt that ended well failed `min_duration`: "finished in 2s, under
/// min_duration 5m".
pub(crate) fn too_quick(took: Duration, min_duration: Option<Duration>) -> Option<String> {
    let min = min_duration?;
    (took < min).then(|| {
        format!(
            "finished in {}, under min_duration {}",
            format_duration(took),
            format_duration(min)
        )
    })
}

/// Timestamps of some file systems are coarser than the clock the start time comes from.
const MTIME_SLACK: Duration = Duration::from_secs(1);

/// What [`verify`] found: one message per problem, and the size of each regular file.
#[derive(Debug, Default)]
pub(crate) struct Verified {
    pub(crate) problems: Vec<String>,
    pub(crate) sizes: BTreeMap<String, u64>,
}

/// Checks each expected output file.
pub(crate) fn verify(
    files: &[String],
    min_size: u64,
    fresh: bool,
    started: SystemTime,
) -> Verified {
    let mut problems = Vec::new();
    let mut sizes = BTreeMap::new();
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
        sizes.insert(f.clone(), meta.len());
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
    Verified { problems, sizes }
}

/// A verified file against its size in the last good run (`verify.min_ratio`,
/// `verify.max_ratio`): which bound it broke ("min_ratio" or "max_ratio") and the message.
/// `before` is that run's path for it and its size there; without one (a first run) the
/// check passes, and so does `max_ratio` against an empty file.
pub(crate) fn ratio_failure(
    path: &str,
    size: u64,
    before: Option<(&str, u64)>,
    min_ratio: Option<f64>,
    max_ratio: Option<f64>,
) -> Option<(&'static str, String)> {
    let (before_path, before_size) = before?;
    let (now, was) = (size as f64, before_size as f64);
    let (key, ratio, word) = match (min_ratio, max_ratio) {
        (Some(r), _) if now < r * was => ("min_ratio", r, "under"),
        (_, Some(r)) if before_size > 0 && now > r * was => ("max_ratio", r, "over"),
        _ => return None,
    };
    let there = if before_path == path {
        String::new()
    } else {
        format!(" ({before_path})")
    };
    let msg = format!(
        "{path} is {}, {word} {key} {ratio} of the last good run's {}{there}",
        format_size(size),
        format_size(before_size)
    );
    Some((key, msg))
}

/// How many of the last good runs the usual duration is taken from.
pub(crate) const USUAL_OF: usize = 20;

/// The usual duration of a job: the median of its last [`USUAL_OF`] good runs in `history`
/// (oldest first); `None` without one.
pub(crate) fn usual_duration(history: &[RunRecord]) -> Option<Duration> {
    let mut d: Vec<u64> = history
        .iter()
        .rev()
        .filter(|r| r.outcome.ended_well())
        .take(USUAL_OF)
        .map(|r| r.duration_ms)
        .collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable();
    let mid = d.len() / 2;
    let ms = if d.len() % 2 == 1 {
        d[mid]
    } else {
        d[mid - 1] + (d[mid] - d[mid - 1]) / 2
    };
    Some(Duration::from_millis(ms))
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
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// 64 random bits: SipHash of the time in nanoseconds, keyed by the standard library's
/// random hash keys (drawn from the OS once per thread; every call takes the next key).
pub(crate) fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;

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

    fn ended(exit: Exit, timed_out: bool) -> AttemptResult {
        AttemptResult {
            started: jiff::Timestamp::now(),
            duration: Duration::from_millis(20),
            exit,
            timed_out,
            interrupted: None,
            pid: None,
            usage: Default::default(),
            oom_killed: false,
        }
    }

    #[test]
    fn warning_codes_end_as_a_warning_and_success_codes_win() {
        let j = |c| judge_exit(&ended(Exit::Code(c), false), &[0, 1], &[1, 24], None);
        assert_eq!(j(0), Judged::Success);
        assert_eq!(j(1), Judged::Success);
        assert_eq!(
            j(24),
            Judged::Warning("exit 24 (a warning_codes exit)".into())
        );
        assert_eq!(j(2), Judged::Failed("exit 2".into(), RetryOn::Exit));
        let killed = judge_exit(&ended(Exit::Signal(9), false), &[0], &[24], None);
        assert_eq!(
            killed,
            Judged::Failed("killed by SIGKILL".into(), RetryOn::Signal)
        );
        let late = judge_exit(&ended(Exit::Code(24), true), &[0], &[24], None);
        assert!(
            matches!(late, Judged::Failed(_, RetryOn::Timeout)),
            "{late:?}"
        );
        let missing = ended(Exit::NotStarted("cannot run \"x\"".into()), false);
        assert!(matches!(
            judge_exit(&missing, &[0], &[], None),
            Judged::Failed(_, RetryOn::Exit)
        ));
        assert_eq!(
            exit_failure(&ended(Exit::Code(24), false), &[0], None).as_deref(),
            Some("exit 24")
        );
    }

    #[test]
    fn retry_rules_decide_by_kind_then_by_code() {
        let mut r = retry(false);
        r.on = vec![
            RetryOn::Exit,
            RetryOn::Timeout,
            RetryOn::Signal,
            RetryOn::Verify,
        ];
        for kind in [
            RetryOn::Exit,
            RetryOn::Timeout,
            RetryOn::Signal,
            RetryOn::Verify,
        ] {
            assert_eq!(not_retried(&r, kind, Some(2)), None);
        }
        assert_eq!(not_retried(&r, RetryOn::Exit, None), None);

        r.codes = RetryCodes::Except(vec![2]);
        assert_eq!(
            not_retried(&r, RetryOn::Exit, Some(2)).as_deref(),
            Some("exit 2 is in no_retry_codes: not retried")
        );
        assert_eq!(not_retried(&r, RetryOn::Exit, Some(3)), None);
        assert_eq!(not_retried(&r, RetryOn::Exit, None), None);
        // Codes are about exits: a timeout is retried whatever its (absent) code.
        assert_eq!(not_retried(&r, RetryOn::Timeout, None), None);

        r.codes = RetryCodes::Only(vec![75]);
        assert_eq!(not_retried(&r, RetryOn::Exit, Some(75)), None);
        assert_eq!(
            not_retried(&r, RetryOn::Exit, Some(1)).as_deref(),
            Some("exit 1 is not in retry_codes: not retried")
        );
        assert!(not_retried(&r, RetryOn::Exit, None).is_some());
        assert_eq!(not_retried(&r, RetryOn::Signal, None), None);

        r.codes = RetryCodes::All;
        r.on = vec![RetryOn::Exit];
        assert_eq!(
            not_retried(&r, RetryOn::Timeout, None).as_deref(),
            Some("timeout is not in retry_on: not retried")
        );
        assert_eq!(
            not_retried(&r, RetryOn::Verify, None).as_deref(),
            Some("verify is not in retry_on: not retried")
        );
        assert_eq!(not_retried(&r, RetryOn::Exit, Some(9)), None);
    }

    #[test]
    fn min_duration_fails_only_a_quicker_attempt() {
        let five_m = Some(Duration::from_secs(300));
        assert_eq!(
            too_quick(Duration::from_millis(2400), five_m).as_deref(),
            Some("finished in 2s, under min_duration 5m")
        );
        assert_eq!(too_quick(Duration::from_secs(300), five_m), None);
        assert_eq!(too_quick(Duration::from_millis(1), None), None);
    }

    #[test]
    fn ratios_compare_with_the_last_good_run_and_name_both_sizes() {
        let mib = 1024 * 1024;
        let p = "/backups/db.gz";
        let before = Some((p, 10 * mib));
        assert_eq!(
            ratio_failure(p, 6 * mib, before, Some(0.8), None),
            Some((
                "min_ratio",
                "/backups/db.gz is 6MiB, under min_ratio 0.8 of the last good run's 10MiB"
                    .to_string()
            ))
        );
        assert_eq!(ratio_failure(p, 8 * mib, before, Some(0.8), None), None);
        assert_eq!(
            ratio_failure(p, 25 * mib, before, Some(0.8), Some(2.0)),
            Some((
                "max_ratio",
                "/backups/db.gz is 25MiB, over max_ratio 2 of the last good run's 10MiB"
                    .to_string()
            ))
        );
        assert_eq!(ratio_failure(p, 20 * mib, before, None, Some(2.0)), None);
        // A first run, and an empty file before, give nothing to compare with.
        assert_eq!(ratio_failure(p, 1, None, Some(0.8), Some(2.0)), None);
        assert_eq!(
            ratio_failure(p, 9, Some((p, 0)), Some(0.8), Some(2.0)),
            None
        );
        // A path with a date in it names the one it is compared with.
        let msg = ratio_failure(
            "/b/db-02.gz",
            500,
            Some(("/b/db-01.gz", 1000)),
            Some(0.8),
            None,
        );
        assert_eq!(
            msg.map(|m| m.1).as_deref(),
            Some(
                "/b/db-02.gz is 500 bytes, under min_ratio 0.8 of the last good run's 1000 bytes (/b/db-01.gz)"
            )
        );
    }

    fn run_of(outcome: Outcome, ms: u64) -> RunRecord {
        RunRecord {
            run_id: format!("r{ms}"),
            job: "j".into(),
            scheduled: String::new(),
            started: String::new(),
            ended: String::new(),
            duration_ms: ms,
            attempts: Vec::new(),
            outcome,
            reason: None,
            output: None,
            trigger: "run".into(),
            node: None,
            skips: None,
            facts: Default::default(),
        }
    }

    #[test]
    fn the_usual_duration_is_the_median_of_the_last_good_runs() {
        assert_eq!(usual_duration(&[]), None);
        assert_eq!(usual_duration(&[run_of(Outcome::Failure, 5)]), None);
        let h = [
            run_of(Outcome::Success, 100),
            run_of(Outcome::Failure, 9000),
            run_of(Outcome::Warning, 300),
            run_of(Outcome::Success, 200),
        ];
        assert_eq!(usual_duration(&h), Some(Duration::from_millis(200)));
        assert_eq!(usual_duration(&h[1..]), Some(Duration::from_millis(250)));
        // Only the last 20 count: 30 old slow runs, then 20 quick ones.
        let mut long: Vec<RunRecord> = (0..30).map(|_| run_of(Outcome::Success, 10_000)).collect();
        long.extend((0..20).map(|_| run_of(Outcome::Success, 10)));
        assert_eq!(usual_duration(&long), Some(Duration::from_millis(10)));
    }

    #[test]
    fn verify_measures_each_regular_file() {
        let dir = std::env::temp_dir().join(format!("cw-policy-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let f = dir.join("out.txt");
        std::fs::write(&f, "12345").expect("write");
        let files = [
            f.display().to_string(),
            dir.join("none").display().to_string(),
        ];
        let v = verify(&files, 1, false, SystemTime::now());
        assert_eq!(v.sizes.get(&files[0]), Some(&5));
        assert_eq!(v.sizes.len(), 1);
        assert_eq!(v.problems, [format!("{} is missing", files[1])]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
