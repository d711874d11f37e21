//! Work the backend brings the daemon besides its own schedule: runs that `trigger`
//! requested through the backend, and runs lost with a node that went silent (recorded and
//! alerted as lost by this node, and run again with the same run id and scheduled instant
//! when retries are left).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::Shared;
use super::dispatch::dispatch;
use super::launch::Launch;
use crate::coord::{LostRun, Work, WorkSink};
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
            .map(|j| j.name.clone())
            .collect()
    }

    fn history_keep(&self) -> usize {
        self.0.current().settings.history_keep
    }

    fn history_max_ages(&self) -> (Option<Duration>, Vec<(String, Option<Duration>)>) {
        let cfg = self.0.current();
        let jobs = cfg.jobs.iter();
        let ages = jobs.map(|j| (j.name.clone(), j.history_max_age)).collect();
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
        }
    }
}

impl Sink {
    fn take_over(&self, l: LostRun) {
        let shared = &self.0;
        let cfg = shared.current();
        let Some(job) = cfg.job(&l.job) else {
            return;
        };
        let attempts_left = job.retry.retries.saturating_add(1) > l.attempt;
        let next = l.attempt.saturating_add(1).max(1);
        let here = shared.coord.node().unwrap_or("this node");
        let reason = format!(
            "node {} was lost during attempt {} (no heartbeat for {}); {}",
            l.node,
            l.attempt.max(1),
            crate::units::format_duration(l.silent_for),
            if attempts_left {
                format!("node {here} runs attempt {next}")
            } else {
                "no retries left".to_string()
            }
        );
        let now = Timestamp::now().to_string();
        let rec = RunRecord {
            run_id: l.run_id.clone(),
            job: l.job.clone(),
            scheduled: format_rfc3339(l.scheduled, &job.tz),
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
        shared.log.log(
            Level::Error,
            "node-lost",
            &[
                ("job", l.job.clone()),
                ("run_id", l.run_id.clone()),
                ("node", l.node.clone()),
            ],
            &reason,
        );
        if !attempts_left {
            // With a retry coming, the record that counts is the retry's (same run id).
            shared.coord.record_lost(&rec);
            shared.watch.ended(&rec);
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
