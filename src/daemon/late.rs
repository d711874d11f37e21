//! Instants no node could claim when they were due, claimed by this node once its backend
//! answered again ([`LateTicks`]): missed. Each job's are logged and alerted `missed` once,
//! then follow its `catchup` as a local missed instant would: `"all"` runs them as catch-up
//! runs (one after another, oldest first, each waiting for the run of the job before it),
//! `"once"` runs the newest, `"none"` none. The instants not run are recorded (skipped,
//! with the reason), so every instant this node claimed either runs or is in the history.

use std::sync::Arc;

use jiff::Timestamp;

use super::Shared;
use super::dispatch::dispatch;
use super::launch::Launch;
use crate::config::{Catchup, Job};
use crate::coord::{LateTicks, Tick};
use crate::execute::{self, RunRequest};
use crate::log::Level;
use crate::record::{Outcome, RunRecord};
use crate::schedule::format_rfc3339;
use crate::scheduler::CATCHUP_ALL_LIMIT;

/// How many of `n` missed instants (the newest) a job's `catchup` runs.
fn to_run(catchup: Catchup, n: usize) -> usize {
    match catchup {
        Catchup::None => 0,
        Catchup::Once => n.min(1),
        Catchup::All => n.min(CATCHUP_ALL_LIMIT),
    }
}

/// What becomes of the missed instants, for the log and the alert.
fn fate(catchup: Catchup, n: usize) -> &'static str {
    match catchup {
        Catchup::None => "not run (catchup = \"none\")",
        Catchup::Once if n > 1 => "the newest runs now, the others do not (catchup = \"once\")",
        Catchup::Once => "it runs now (catchup = \"once\")",
        Catchup::All => "they run now, one after another, oldest first (catchup = \"all\")",
    }
}

/// Logs, alerts and runs (or records) a job's missed instants.
pub(super) fn take(shared: &Arc<Shared>, late: LateTicks) {
    let cfg = shared.current();
    let f = [("job", late.job.clone())];
    let Some(job) = cfg.job(&late.job) else {
        let msg = format!(
            "{} instant(s) no node could claim when due were claimed now, but the job is no \
             longer in the table: not run",
            late.ticks.len()
        );
        shared.log.log(Level::Warn, "missed", &f, &msg);
        return;
    };
    let mut ticks = late.ticks;
    ticks.sort_by_key(|t| t.scheduled);
    let Some(first) = ticks.first().cloned() else {
        return;
    };
    let n = ticks.len();
    let instants: Vec<String> = ticks
        .iter()
        .map(|t| format_rfc3339(t.scheduled, job.tz()))
        .collect();
    let older = match late.not_kept {
        0 => String::new(),
        k => format!(" (and {k} older)"),
    };
    let why = format!(
        "no node could claim {} when due: the database was unreachable from node {} (its \
         claims failed from {} on: {})",
        if n == 1 { "it" } else { "them" },
        shared.coord.node().unwrap_or("?"),
        format_rfc3339(late.since, job.tz()),
        late.error
    );
    let reason = format!(
        "{n} instant(s) missed{older}: {}; {why}; {}",
        instants.join(", "),
        fate(job.catchup, n)
    );
    let fields = [
        ("job", late.job.clone()),
        ("instants", n.to_string()),
        ("first", instants[0].clone()),
    ];
    shared.log.log(Level::Error, "missed", &fields, &reason);
    let rec = missed_record(shared, job, first.scheduled, &reason);
    // Once per outage per job: the outage is named by when this node saw it begin (in a
    // fleet each instant is won by one node, so another node alerts only instants it won).
    let key = format!("{}@missed-{}", job.name, late.since.as_millisecond());
    shared.ctx(&cfg).alerts().on_missed(job, &rec, &key);
    let (skip, run) = ticks.split_at(n - to_run(job.catchup, n));
    for t in skip {
        record_not_run(shared, job, t, &why);
    }
    for t in run {
        dispatch(shared, &cfg, Launch::late(t.clone()));
    }
}

/// Records a claimed instant its `catchup` does not run (history, and the fleet's runs).
fn record_not_run(shared: &Arc<Shared>, job: &Job, t: &Tick, why: &str) {
    let cfg = shared.current();
    let req = RunRequest {
        job,
        scheduled: t.scheduled,
        params: Default::default(),
        trigger: "catchup",
        // The `missed` alert says it; no `skipped` alert besides.
        alerts: false,
        first_attempt: 1,
        respect_past: false,
        upstream: Default::default(),
    };
    let what = match job.catchup {
        Catchup::None => "catchup = \"none\"",
        _ => "catchup = \"once\" runs only the newest",
    };
    let reason = format!("missed: {why}; not caught up ({what})");
    let r = execute::not_run(shared.ctx(&cfg), &req, &t.run_id, reason, None);
    shared.metrics.finished(&job.name, false, &r.record);
    shared.watch.ended(&cfg, &r.record);
}

/// The record a `missed` alert carries: no run; the first missed instant as its scheduled
/// instant, and the reason naming them all.
fn missed_record(shared: &Shared, job: &Job, first: Timestamp, reason: &str) -> RunRecord {
    let now = Timestamp::now().to_string();
    RunRecord {
        run_id: format!("missed-{}", first.strftime("%Y%m%dT%H%M%S")),
        job: job.name.to_string(),
        scheduled: format_rfc3339(first, job.tz()),
        started: now.clone(),
        ended: now,
        duration_ms: 0,
        attempts: Vec::new(),
        outcome: Outcome::Skipped,
        reason: Some(reason.to_string()),
        output: None,
        trigger: "schedule".to_string(),
        node: shared.coord.node().map(str::to_string),
        skips: None,
        facts: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catchup_decides_how_many_of_the_newest_missed_instants_run() {
        assert_eq!(to_run(Catchup::None, 3), 0);
        assert_eq!(to_run(Catchup::Once, 3), 1);
        assert_eq!(to_run(Catchup::Once, 0), 0);
        assert_eq!(to_run(Catchup::All, 3), 3);
        assert_eq!(to_run(Catchup::All, 500), CATCHUP_ALL_LIMIT);
    }
}
