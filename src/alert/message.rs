//! What an alert says: the subject, the plain-text body (email, the command channel's
//! standard input, Slack) and the JSON a webhook receives, for every event.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{Config, Job};
use crate::record::{Outcome, RunRecord};

/// What an alert says: every fact a person needs to act, for every channel.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Alert {
    /// failure, recovery, retry, output, test, node-lost, channel-broken, state-unwritable,
    /// state-writable.
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
        let n = self.run.attempts.len();
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
            "state-unwritable" => format!(
                "[cronwarden] STATE DIR UNWRITABLE on {}: {}",
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

    /// The plain-text body (email, command channel's standard input, Slack text).
    pub(crate) fn body(&self) -> String {
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
    pub(crate) fn json(&self) -> serde_json::Value {
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
            "coalesced": self.coalesced,
            "since": self.since,
            "dropped": self.dropped_total(),
            "dropped_reasons": self.dropped,
        })
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
        coalesced: 0,
        since: None,
        dropped: BTreeMap::new(),
    }
}
