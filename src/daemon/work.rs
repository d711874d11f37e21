//! Work the backend brings the daemon besides its own schedule: runs that `trigger`
//! requested through the backend, runs lost with a node that went silent (recorded and
//! alerted as lost by this node, and run again with the same run id and scheduled instant
//! when retries are left), and instants no node could claim when due (`late`).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::Shared;
use super::dispatch::dispatch;
use super::launch::Launch;
use crate::coord::{LostRun, LostWhy, Work, WorkSink};
use crate::log::Level;
use crate::record::{Outcome, RunRecord};
use crate::schedule::format_rfc3339;

/// The daemon as the backend's [`WorkSink`].
pub(super) struct Sink(pub(super) Arc<Shared>);

impl WorkSink for Sink {
    fn jobs(&self) -> Vec<String> {
        self.0
            .current()
            .jobs
            .iter()
            .map(|j| j.name.to_string())
            .collect()
    }

    fn history_keep(&self) -> usize {
        self.0.current().settings.history_keep
    }

    fn history_max_ages(&self) -> (Option<Duration>, Vec<(String, Option<Duration>)>) {
        let cfg = self.0.current();
        let jobs = cfg.jobs.iter();
        let ages = jobs
            .map(|j| (j.name.to_string(), j.history_max_age))
            .collect();
        (cfg.settings.history_max_age, ages)
    }

    fn open(&self) -> bool {
        !self.0.slots.is_closed()
    }

    fn take(&self, work: Work) {
        let cfg = self.0.current();
        match work {
            Work::Trigger {
                job,
                params,
                run_id,
            } => dispatch(&self.0, &cfg, Launch::request(job, params, run_id)),
            Work::Lost(lost) => self.take_over(lost),
            Work::RanTwice(twice) => {
                if let Some(job) = cfg.job(&twice.record.job) {
                    self.0.ctx(&cfg).alerts().ran_twice(job, &twice);
                }
            }
            Work::Late(late) => super::late::take(&self.0, late),
        }
    }
}

/// What happened to a run found without an owner, for its record and the log.
fn lost_what(l: &LostRun) -> String {
    let (node, attempt) = (&l.node, l.attempt.max(1));
    match l.why {
        LostWhy::Silent => format!(
            "node {node} was lost during attempt {attempt} (no heartbeat for {:.1}s)",
            l.silent_for.as_secs_f64()
        ),
        LostWhy::Stopped => format!(
            "node {node} stopped without recording the end of attempt {attempt} (its end is \
             unknown)"
        ),
        LostWhy::Fenced => format!(
            "node {node} fenced attempt {attempt} (stopped it, as it could not renew the \
             job's lease) and handed the run over"
        ),
    }
}

impl Sink {
    fn take_over(&self, l: LostRun) {
        let shared = &self.0;
        let cfg = shared.current();
        let Some(job) = cfg.job(&l.job) else {
            return;
        };
        let mut attempts_left = job.retry.retries.saturating_add(1) > l.attempt;
        let mut not_taken = None;
        if attempts_left {
            match shared.coord.adopt_lost(&l.run_id) {
                Ok(true) => {}
                Ok(false) => {
                    let msg = format!(
                        "node {} reported the end of this run after all; it is not run again",
                        l.node
                    );
                    shared.log.log(Level::Info, "reconciled", &fields(&l), &msg);
                    return;
                }
                Err(e) => {
                    not_taken = Some(format!("it cannot be taken over ({e})"));
                    attempts_left = false;
                }
            }
        }
        let next = l.attempt.saturating_add(1).max(1);
        let here = shared.coord.node().unwrap_or("this node");
        let reason = format!(
            "{}; {}",
            lost_what(&l),
            if attempts_left {
                format!("node {here} runs attempt {next}")
            } else {
                not_taken.unwrap_or_else(|| "no retries left".to_string())
            }
        );
        let now = Timestamp::now().to_string();
        let rec = RunRecord {
            run_id: l.run_id.clone(),
            job: l.job.clone(),
            scheduled: format_rfc3339(l.scheduled, job.tz()),
            started: now.clone(),
            ended: now,
            duration_ms: 0,
            attempts: Vec::new(),
            outcome: Outcome::Lost,
            reason: Some(reason.clone()),
            output: None,
            trigger: l.trigger.clone(),
            node: Some(l.node.clone()),
            skips: None,
            facts: Default::default(),
        };
        shared
            .log
            .log(Level::Error, "node-lost", &fields(&l), &reason);
        if !attempts_left {
            // With a retry coming, the record that counts is the retry's (same run id).
            shared.coord.record_lost(&rec);
            shared.watch.ended(&cfg, &rec);
        }
        shared.ctx(&cfg).alerts().node_lost(job, &rec);
        if attempts_left {
            let mut launch = Launch::request(l.job, l.params, l.run_id);
            launch.scheduled = l.scheduled;
            launch.why = "takeover";
            launch.first_attempt = next;
            dispatch(shared, &cfg, launch);
        }
    }
}

fn fields(l: &LostRun) -> [(&'static str, String); 3] {
    [
        ("job", l.job.clone()),
        ("run_id", l.run_id.clone()),
        ("node", l.node.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_takeover_says_what_happened_to_the_run() {
        let mut l = LostRun {
            run_id: "r".into(),
            job: "j".into(),
            node: "n1".into(),
            scheduled: Timestamp::UNIX_EPOCH,
            trigger: "schedule".into(),
            params: Default::default(),
            attempt: 1,
            silent_for: std::time::Duration::from_millis(5250),
            why: LostWhy::Silent,
        };
        assert_eq!(
            lost_what(&l),
            "node n1 was lost during attempt 1 (no heartbeat for 5.2s)"
        );
        l.why = LostWhy::Stopped;
        l.attempt = 2;
        assert_eq!(
            lost_what(&l),
            "node n1 stopped without recording the end of attempt 2 (its end is unknown)"
        );
        l.why = LostWhy::Fenced;
        assert!(
            lost_what(&l).starts_with("node n1 fenced attempt 2 (stopped it, as it could not"),
            "{}",
            lost_what(&l)
        );
    }
}
