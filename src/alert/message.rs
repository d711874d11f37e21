//! What an alert says: the subject, the plain-text body (email, the command channel's
//! standard input, Slack) and the JSON a webhook receives, for every event. Every alert
//! names the job, the host, the event and the facts behind it (`facts`: who held the job
//! for `skipped`, the last success and the deadline for `stale`, the time so far and the
//! usual duration for `slow`, the streaks a `recovery` ends).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::facts::EventFacts;
use crate::config::{Config, Job};
use crate::record::{Outcome, RunRecord};
use crate::units::format_duration;

/// What an alert says: every fact a person needs to act, for every channel.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Alert {
    /// failure, recovery, retry, output, skipped, stale, missed, slow, warning, success, test,
    /// node-lost, ran-twice, channel-broken, state-unwritable, state-writable, clock.
    pub event: String,
    pub job: String,
    pub host: String,
    pub schedule: Option<String>,
    pub zone: String,
    pub run: RunRecord,
    pub next_run: Option<String>,
    pub stdout_tail: String,
    pub stderr_tail: String,
    /// Alerts of this kind suppressed by `min_interval` since the previous one.
    pub suppressed: u64,
    /// The daemon's log file, when it has one.
    #[serde(default)]
    pub log_file: Option<String>,
    /// Older alerts of the same job and event (other runs) that waited in the spool and were
    /// replaced by this one.
    #[serde(default)]
    pub coalesced: u64,
    /// When the oldest alert it stands for was raised (set once it stands for more than one).
    #[serde(default)]
    pub since: Option<String>,
    /// Alerts through this channel that the spool dropped since its last delivery, by
    /// reason (filled in when it is delivered).
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
    /// The facts behind the event that its run's record does not carry.
    #[serde(default)]
    pub facts: EventFacts,
    /// When the event happened (the alert was raised): a mail's `Date`, however late it
    /// is delivered. Alerts spooled by earlier versions have none (their spool entry's
    /// time stands in).
    #[serde(default)]
    pub raised: Option<Timestamp>,
}

impl Alert {
    /// `[cronwarden] FAILED backup on HOST: exit 2 after 3 attempts`, and how many older
    /// alerts it stands for.
    pub(crate) fn subject(&self) -> String {
        let s = self.plain_subject();
        match self.coalesced {
            0 => s,
            n => format!("{s} (and {n} earlier)"),
        }
    }

    fn plain_subject(&self) -> String {
        // A run taken over from a lost fleet node counts the attempts made there too.
        let n = self.run.attempt_count();
        let attempts = format!("{n} attempt{}", if n == 1 { "" } else { "s" });
        match self.event.as_str() {
            "failure" if self.run.outcome == Outcome::Lost => format!(
                "[cronwarden] LOST {} on {}: {}",
                self.job,
                self.host,
                self.run.reason.as_deref().unwrap_or("its end is unknown")
            ),
            "failure" => format!(
                "[cronwarden] FAILED {} on {}: {} after {attempts}",
                self.job,
                self.host,
                self.run.reason.as_deref().unwrap_or("failed")
            ),
            "recovery" if !self.facts.ended.is_empty() => {
                let ended: Vec<String> = self.facts.ended.iter().map(|e| e.describe()).collect();
                format!(
                    "[cronwarden] RECOVERED {} on {}: {}",
                    self.job,
                    self.host,
                    ended.join("; ")
                )
            }
            "recovery" => format!("[cronwarden] RECOVERED {} on {}", self.job, self.host),
            "skipped" => format!(
                "[cronwarden] SKIPPED {} on {}: {}",
                self.job,
                self.host,
                match &self.facts.holder {
                    Some(h) => format!("another run holds it ({})", h.short()),
                    None => self.run.reason.clone().unwrap_or_default(),
                }
            ),
            "stale" => format!(
                "[cronwarden] STALE {} on {}: {}",
                self.job,
                self.host,
                match (&self.facts.last_success, &self.facts.deadline) {
                    (Some(l), _) => format!("no success since {}", l.ended),
                    (None, Some(d)) => format!("never succeeded (deadline {d})"),
                    (None, None) => "never succeeded".to_string(),
                }
            ),
            "missed" => format!(
                "[cronwarden] MISSED {} on {}: {}",
                self.job,
                self.host,
                self.run.reason.as_deref().unwrap_or("instants missed")
            ),
            "slow" => format!(
                "[cronwarden] SLOW {} on {}: running for {}{}",
                self.job,
                self.host,
                self.facts
                    .elapsed
                    .map_or_else(|| "long".to_string(), format_duration),
                self.facts
                    .usual
                    .map(|u| format!(" (usually {})", format_duration(u)))
                    .unwrap_or_default()
            ),
            "warning" => format!(
                "[cronwarden] WARNING {} on {}: {}",
                self.job,
                self.host,
                self.run
                    .reason
                    .as_deref()
                    .unwrap_or("ended with one of its warning_codes")
            ),
            "success" if n > 1 => format!(
                "[cronwarden] SUCCEEDED {} on {} after {attempts}",
                self.job, self.host
            ),
            "success" => format!("[cronwarden] SUCCEEDED {} on {}", self.job, self.host),
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
            "ran-twice" => format!(
                "[cronwarden] RAN TWICE {}: {}",
                self.job,
                self.run.reason.as_deref().unwrap_or("")
            ),
            "state-unwritable" => format!(
                "[cronwarden] STATE DIR UNWRITABLE on {}: {}",
                self.host,
                self.run.reason.as_deref().unwrap_or("")
            ),
            "clock" => format!(
                "[cronwarden] CLOCK SKEW on {}: {}",
                self.host,
                self.run.reason.as_deref().unwrap_or("")
            ),
            "state-writable" => format!(
                "[cronwarden] STATE DIR WRITABLE AGAIN on {}: {}",
                self.host,
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

    /// The plain-text body (email, command channel's standard input): the summary, then
    /// the last lines of stderr and stdout.
    pub(crate) fn body(&self) -> String {
        let mut b = self.summary();
        for (name, tail) in self.tails() {
            b.push_str(&format!("\n--- last lines of {name} ---\n{tail}"));
            if !tail.ends_with('\n') {
                b.push('\n');
            }
        }
        b
    }

    /// The output tails that are not empty, stderr first: (`"stderr"`, tail), (`"stdout"`, tail).
    pub(crate) fn tails(&self) -> Vec<(&'static str, &str)> {
        [("stderr", &self.stderr_tail), ("stdout", &self.stdout_tail)]
            .into_iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(n, t)| (n, t.as_str()))
            .collect()
    }

    /// The body without the output tails: the subject, then one line per fact.
    pub(crate) fn summary(&self) -> String {
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
        if self.is_about_a_run() {
            b.push_str(&format!(
                "scheduled:  {}\nrun id:     {}\n",
                r.scheduled, r.run_id
            ));
        }
        if let Some(o) = self.outcome() {
            b.push_str(&format!("outcome:    {o}\n"));
        }
        if let Some(reason) = &r.reason {
            b.push_str(&format!("reason:     {reason}\n"));
        }
        b.push_str(&self.facts.lines());
        if self.suppressed > 0 {
            b.push_str(&format!(
                "suppressed: {} earlier {} alert(s) within min_interval\n",
                self.suppressed, self.event
            ));
        }
        if self.coalesced > 0 {
            b.push_str(&format!(
                "coalesced:  stands for {} {} alerts of this job since {} (the older ones \
                 waited in the spool and were replaced by this one)\n",
                self.coalesced + 1,
                self.event,
                self.since.as_deref().unwrap_or("?")
            ));
        }
        if let Some(note) = self.dropped_note() {
            b.push_str(&format!("dropped:    {note}\n"));
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
        if let Some(u) = r.facts.usage.describe() {
            b.push_str(&format!("usage:      {u}\n"));
        }
        for note in r.facts.notes() {
            b.push_str(&format!("{note}\n"));
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
        b
    }

    /// The JSON a webhook receives: every fact of the text, with the run's CPU time and peak
    /// memory (`null` when not measured), the processes it left behind and the limits not
    /// applied (empty when none); each attempt carries its own figures.
    pub(crate) fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "event": self.event,
            "subject": self.subject(),
            "job": self.job,
            "host": self.host,
            "schedule": self.schedule,
            "zone": self.zone,
            "scheduled": self.run.scheduled,
            "run_id": self.is_about_a_run().then_some(&self.run.run_id),
            "outcome": self.outcome(),
            "reason": self.run.reason,
            "attempts": self.run.attempts,
            "output": self.run.output,
            "cpu_seconds": self.run.facts.usage.cpu_seconds,
            "peak_memory_bytes": self.run.facts.usage.peak_memory_bytes,
            "leftovers": self.run.facts.leftovers,
            "limits_not_applied": self.run.facts.limits_not_applied,
            "next_run": self.next_run,
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
            "suppressed": self.suppressed,
            "log_file": self.log_file,
            "coalesced": self.coalesced,
            "since": self.since,
            "dropped": self.dropped_total(),
            "dropped_reasons": self.dropped,
        });
        if let (Some(all), serde_json::Value::Object(facts)) =
            (v.as_object_mut(), self.facts.json())
        {
            all.extend(facts);
        }
        v
    }

    /// Whether the alert is about one run (a `stale` job's is not: no run is at stake; a
    /// `missed` alert is about instants that did not run when due).
    pub(crate) fn is_about_a_run(&self) -> bool {
        !matches!(self.event.as_str(), "stale" | "missed")
    }

    /// The run's outcome as the alert tells it: `running` for a `slow` run, none for `stale`
    /// and `missed`.
    pub(crate) fn outcome(&self) -> Option<&'static str> {
        match self.event.as_str() {
            "stale" | "missed" => None,
            "slow" => Some("running"),
            _ => Some(self.run.outcome.as_str()),
        }
    }

    /// How many alerts through this channel were dropped before this one.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// "3 earlier alert(s) through this channel were dropped: 2 (spool full ...), 1 (...)".
    pub(crate) fn dropped_note(&self) -> Option<String> {
        let total = self.dropped_total();
        (total > 0).then(|| {
            let why: Vec<String> = self
                .dropped
                .iter()
                .map(|(reason, n)| format!("{n} ({reason})"))
                .collect();
            format!(
                "{total} earlier alert(s) through this channel were dropped undelivered: {}",
                why.join(", ")
            )
        })
    }
}

pub(super) fn host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
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

pub(super) fn make_alert(
    event: &str,
    job: &Job,
    rec: &RunRecord,
    tails: (&[u8], &[u8]),
    suppressed: u64,
    cfg: &Config,
) -> Alert {
    Alert {
        event: event.to_string(),
        job: job.name.to_string(),
        host: host(),
        schedule: job.schedule_text().map(str::to_string),
        zone: crate::schedule::zone_name(job.tz()),
        run: rec.clone(),
        next_run: job
            .schedule
            .as_ref()
            .and_then(|s| s.next_after(Timestamp::now()))
            .map(|t| crate::schedule::format_rfc3339(t, job.tz())),
        stdout_tail: tail(tails.0),
        stderr_tail: tail(tails.1),
        suppressed,
        log_file: cfg
            .settings
            .log_file
            .as_ref()
            .map(|p| p.display().to_string()),
        coalesced: 0,
        since: None,
        dropped: BTreeMap::new(),
        facts: EventFacts::default(),
        raised: Some(Timestamp::now()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::{rec, with_facts};

    fn failure(run: RunRecord) -> Alert {
        Alert {
            event: "failure".to_string(),
            job: "j".to_string(),
            host: "h".to_string(),
            schedule: Some("@daily".to_string()),
            zone: "UTC".to_string(),
            run,
            next_run: None,
            stdout_tail: String::new(),
            stderr_tail: "oops\n".to_string(),
            suppressed: 0,
            log_file: None,
            coalesced: 0,
            since: None,
            dropped: BTreeMap::new(),
            facts: EventFacts::default(),
            raised: None,
        }
    }

    #[test]
    fn a_failure_says_what_the_run_used_left_behind_and_ran_without() {
        let body = failure(with_facts("r")).body();
        let lines: Vec<&str> = body.lines().collect();
        let at = |want: &str| {
            lines
                .iter()
                .position(|l| *l == want)
                .unwrap_or_else(|| panic!("no line {want:?} in\n{body}"))
        };
        let usage = at("usage:      cpu 0.61s, peak 64.2MiB");
        let stopped = at("stopped 1 process left behind: sleep 4444 (pid 123)");
        let kept = at("kept 2 processes left behind: tail -f log (pid 124), sleep 9 (pid 125)");
        let limits = at(
            "limits not applied: memory_max: no memory controller in the cgroup; \
             io_weight: no io controller",
        );
        // After the attempts, before the output tails.
        let attempt = at("attempt 1: started 2026-01-01T00:00:00Z, 1.0s, exit 1");
        let tails = at("--- last lines of stderr ---");
        assert!(attempt < usage && usage < stopped && stopped < kept && kept < limits);
        assert!(limits < tails, "{body}");
    }

    #[test]
    fn a_taken_over_run_counts_the_attempts_made_on_the_lost_node() {
        let mut r = with_facts("r");
        r.outcome = Outcome::Failure;
        assert!(failure(r.clone()).subject().ends_with(" after 1 attempt"));
        // Attempt 2, run here after the node that ran attempt 1 was lost.
        r.attempts[0].attempt = 2;
        let s = failure(r).subject();
        assert!(s.ends_with(" after 2 attempts"), "{s}");
    }

    #[test]
    fn a_failure_without_facts_reads_as_before() {
        let mut r = rec("r");
        r.outcome = Outcome::Failure;
        let body = failure(r).body();
        for absent in ["usage:", "left behind", "limits not applied", "cpu", "peak"] {
            assert!(!body.contains(absent), "{absent} in\n{body}");
        }
    }

    #[test]
    fn the_webhook_json_carries_the_figures_leftovers_and_limits() {
        let v = failure(with_facts("r")).json();
        assert_eq!(v["cpu_seconds"], 0.61);
        assert_eq!(v["peak_memory_bytes"], 67_318_989);
        assert_eq!(v["leftovers"][0]["command"], "sleep 4444");
        assert_eq!(v["leftovers"][0]["action"], "stopped");
        assert_eq!(v["leftovers"][2]["pid"], 125);
        assert_eq!(
            v["limits_not_applied"][0],
            "memory_max: no memory controller in the cgroup"
        );
        assert_eq!(v["attempts"][0]["cpu_seconds"], 0.25);
        assert_eq!(v["attempts"][0]["peak_memory_bytes"], 2048);
        // Unknown: the keys are there, empty.
        let v = failure(rec("r")).json();
        assert!(
            v["cpu_seconds"].is_null() && v["peak_memory_bytes"].is_null(),
            "{v:#}"
        );
        assert_eq!(v["leftovers"], serde_json::json!([]));
        assert_eq!(v["limits_not_applied"], serde_json::json!([]));
    }
}
