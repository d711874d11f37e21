//! The facts behind an event that a run's record does not carry: who held the job when a
//! run was skipped, the last success and the deadline of a stale job, how long a slow run
//! has taken and usually takes, and which streaks a recovery ends. What the body's lines and
//! the webhook's JSON say of them.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::record::RunRecord;
use crate::units::format_duration;

/// Who held the job's lock (or fleet lease) when a run was skipped, read from the skip's
/// reason (what the run was refused with) and `/proc`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    pub run_id: Option<String>,
    pub pid: Option<i32>,
    /// The holder's command line (`/proc/PID/cmdline`), when it runs on this host.
    pub command: Option<String>,
    /// The command line of the job's process the holder runs (its process group), when the
    /// lock file names it.
    pub job_command: Option<String>,
    /// The fleet node that holds it (fleet mode).
    pub node: Option<String>,
    /// Since when it holds the job (RFC 3339), and for how long when the alert was made.
    pub since: Option<String>,
    pub age_seconds: Option<u64>,
}

/// The last successful run of a stale job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LastSuccess {
    pub run_id: String,
    /// When it ended (RFC 3339).
    pub ended: String,
}

/// A streak that a run ended: `failure` (so many failed runs in a row), `skipped` (so many
/// skipped runs) or `stale` (no success since the deadline).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ended {
    pub streak: String,
    /// How many runs it counted (0 for `stale`).
    pub runs: u64,
    /// Its first run's id, or for `stale` the deadline that passed.
    pub since: Option<String>,
}

impl Ended {
    /// "succeeded after 3 failures", "ran again after 5 skipped runs", "succeeded again, no
    /// longer stale".
    pub(crate) fn describe(&self) -> String {
        let n = self.runs;
        let s = if n == 1 { "" } else { "s" };
        match self.streak.as_str() {
            "failure" => format!("succeeded after {n} failure{s}"),
            "skipped" => format!("ran again after {n} skipped run{s}"),
            _ => "succeeded again, no longer stale".to_string(),
        }
    }
}

/// The facts of an alert beyond its run's record (all empty for a run's end).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EventFacts {
    /// `skipped`: who held the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
    /// `stale`: the last success (`None`: the job never succeeded), the deadline that
    /// passed (RFC 3339) and the job's `expect_success_within`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<LastSuccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_within: Option<Duration>,
    /// `slow`: how long the run has been going, and how long it usually takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usual: Option<Duration>,
    /// `recovery`: the streaks it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ended: Vec<Ended>,
}

impl EventFacts {
    /// The lines of the body that tell them, each ending in a newline.
    pub(crate) fn lines(&self) -> String {
        let mut b = String::new();
        if let Some(h) = &self.holder {
            b.push_str(&format!("held by:    {}\n", h.describe()));
            if let Some(c) = &h.command {
                b.push_str(&format!("its command: {c}\n"));
            }
            if let Some(c) = &h.job_command {
                b.push_str(&format!("its job:    {c}\n"));
            }
        }
        if self.deadline.is_some() {
            let last = match &self.last_success {
                Some(l) => format!("run {} ended {}", l.run_id, l.ended),
                None => "never".to_string(),
            };
            b.push_str(&format!("last success: {last}\n"));
        }
        if let Some(d) = &self.deadline {
            let within = self
                .expected_within
                .map(|w| format!(" (expect_success_within {})", format_duration(w)))
                .unwrap_or_default();
            b.push_str(&format!("deadline:   {d}{within}\n"));
        }
        if let Some(e) = self.elapsed {
            b.push_str(&format!("running:    {} so far", format_duration(e)));
            if let Some(u) = self.usual {
                b.push_str(&format!(" (usually {})", format_duration(u)));
            }
            b.push('\n');
        }
        for e in &self.ended {
            let since = match (e.streak.as_str(), &e.since) {
                ("stale", Some(d)) => format!(" (stale since {d})"),
                (_, Some(r)) => format!(" (since run {r})"),
                _ => String::new(),
            };
            b.push_str(&format!("ended:      {}{since}\n", e.describe()));
        }
        b
    }

    /// Their keys in the webhook's JSON (durations in seconds); `null` or empty when they do
    /// not apply, so that every alert has the same keys.
    pub(crate) fn json(&self) -> serde_json::Value {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        serde_json::json!({
            "holder": self.holder,
            "last_success": self.last_success,
            "deadline": self.deadline,
            "expected_within_seconds": secs(self.expected_within),
            "elapsed_seconds": secs(self.elapsed),
            "usual_seconds": secs(self.usual),
            "ended": self.ended,
        })
    }
}

impl Holder {
    /// Who held the job, from a skip's reason ("another run holds the lock: pid 123 since T
    /// (run R)", "... run R of this same process (pid P) since T", "... fleet lease: node N
    /// (run R, since T, ...)"), with its command line read from `/proc` and the job's
    /// process from the lock file's line (`lock`: that line, when it is the same run's).
    /// `None` when the reason names nobody.
    pub(crate) fn from_reason(
        reason: &str,
        lock: Option<&crate::lock::Holder>,
        now: Timestamp,
    ) -> Option<Holder> {
        let (_, who) = reason.split_once(": ")?;
        let mut h = Holder {
            run_id: word_after(who, "run ").filter(|w| w.chars().any(|c| c.is_ascii_digit())),
            pid: word_after(who, "pid ").and_then(|p| p.parse().ok()),
            node: word_after(who, "node "),
            since: word_after(who, "since "),
            ..Default::default()
        };
        if h.run_id.is_none() && h.pid.is_none() && h.node.is_none() {
            return None;
        }
        h.age_seconds = h
            .since
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok())
            .and_then(|s| u64::try_from(now.as_second() - s.as_second()).ok());
        // A pid is this host's only outside fleet mode (a lease names a node instead).
        if h.node.is_none() {
            h.command = h.pid.filter(|p| *p > 0).map(process_command);
            h.job_command = lock
                .filter(|l| l.run_id.is_some() && l.run_id == h.run_id)
                .and_then(|l| l.pgid)
                .filter(|g| *g > 0)
                .map(process_command);
        }
        Some(h)
    }

    /// "run R, pid P, node N, since T (12m3s ago)": what is known of it.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.run_id {
            parts.push(format!("run {r}"));
        }
        if let Some(p) = self.pid {
            parts.push(format!("pid {p}"));
        }
        if let Some(n) = &self.node {
            parts.push(format!("node {n}"));
        }
        let mut s = parts.join(", ");
        if let Some(since) = &self.since {
            s.push_str(&format!(" since {since}"));
        }
        if let Some(age) = self.age() {
            s.push_str(&format!(" ({} ago)", format_duration(age)));
        }
        s
    }

    /// "run R, pid P, for 12m3s": for a subject.
    pub(crate) fn short(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = &self.node {
            parts.push(format!("node {n}"));
        }
        if let Some(r) = &self.run_id {
            parts.push(format!("run {r}"));
        }
        if let Some(p) = self.pid {
            parts.push(format!("pid {p}"));
        }
        if let Some(age) = self.age() {
            parts.push(format!("for {}", format_duration(age)));
        }
        parts.join(", ")
    }

    /// How long it had held the job when the alert was made.
    pub(crate) fn age(&self) -> Option<Duration> {
        self.age_seconds.map(Duration::from_secs)
    }
}

/// The word after the first `key` in `text` that starts one (a word ends at a space, a
/// comma or a parenthesis).
fn word_after(text: &str, key: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = text[from..].find(key) {
        let at = from + i;
        let starts_word = at == 0 || !text[..at].ends_with(|c: char| c.is_alphanumeric());
        let rest = &text[at + key.len()..];
        let word: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '(' | ')'))
            .collect();
        if starts_word && !word.is_empty() {
            return Some(word);
        }
        from = at + key.len();
    }
    None
}

/// A process's command line, `None`-free: `?` when it is gone.
fn process_command(pid: i32) -> String {
    crate::contain::procs::command_line(pid)
}

/// The last success's facts for a stale alert.
pub(crate) fn last_success(rec: &RunRecord) -> LastSuccess {
    LastSuccess {
        run_id: rec.run_id.clone(),
        ended: rec.ended.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    #[test]
    fn the_holder_is_read_from_each_kind_of_skip_reason() {
        let now = at("2026-11-25T03:12:03Z");
        let local = "another run holds the lock: pid 2147483000 since 2026-11-25T03:00:00Z \
                     (run 20261125T030000-abc123)";
        let h = Holder::from_reason(local, None, now).expect("a holder");
        assert_eq!(h.pid, Some(2_147_483_000));
        assert_eq!(h.run_id.as_deref(), Some("20261125T030000-abc123"));
        assert_eq!(h.since.as_deref(), Some("2026-11-25T03:00:00Z"));
        assert_eq!(h.age(), Some(Duration::from_secs(723)));
        // No such process: its command reads `?`.
        assert_eq!(h.command.as_deref(), Some("?"));
        assert_eq!(
            h.describe(),
            "run 20261125T030000-abc123, pid 2147483000 since 2026-11-25T03:00:00Z (12m3s ago)"
        );
        let own = "another run holds the lock: run 20261125T030000-abc123 of this same \
                   process (pid 1) since 2026-11-25T03:00:00Z";
        let h = Holder::from_reason(own, None, now).expect("a holder");
        assert_eq!(
            (h.pid, h.run_id.as_deref()),
            (Some(1), Some("20261125T030000-abc123"))
        );
        let fleet = "another run holds the fleet lease: node b (run 20261125T030000-abc123, \
                     since 2026-11-25T03:00:00Z, renewed 1.5s ago)";
        let h = Holder::from_reason(fleet, None, now).expect("a holder");
        assert_eq!(h.node.as_deref(), Some("b"));
        assert_eq!(h.run_id.as_deref(), Some("20261125T030000-abc123"));
        assert_eq!((h.pid, h.command), (None, None));
        // A reason that names nobody (the lock directory cannot be written).
        assert_eq!(
            Holder::from_reason("lock file in /run/x: Permission denied", None, now),
            None
        );
    }

    #[test]
    fn the_job_process_is_named_only_for_the_same_run() {
        let now = at("2026-11-25T03:12:03Z");
        let me = std::process::id() as i32;
        let reason =
            format!("another run holds the lock: pid {me} since 2026-11-25T03:00:00Z (run r-10)");
        let mut lock = crate::lock::Holder {
            pid: Some(me),
            pgid: Some(me),
            since: None,
            run_id: Some("r-20".to_string()),
        };
        let h = Holder::from_reason(&reason, Some(&lock), now).expect("a holder");
        assert_eq!(h.job_command, None, "another run's process group");
        let cmdline = crate::contain::procs::command_line(me);
        assert_eq!(h.command.as_deref(), Some(cmdline.as_str()));
        lock.run_id = Some("r-10".to_string());
        let h = Holder::from_reason(&reason, Some(&lock), now).expect("a holder");
        assert_eq!(h.job_command.as_deref(), Some(cmdline.as_str()));
    }

    #[test]
    fn each_ended_streak_reads_as_a_sentence() {
        let e = |streak: &str, runs| Ended {
            streak: streak.to_string(),
            runs,
            since: None,
        };
        assert_eq!(e("failure", 3).describe(), "succeeded after 3 failures");
        assert_eq!(e("failure", 1).describe(), "succeeded after 1 failure");
        assert_eq!(e("skipped", 5).describe(), "ran again after 5 skipped runs");
        assert_eq!(e("stale", 0).describe(), "succeeded again, no longer stale");
    }
}
