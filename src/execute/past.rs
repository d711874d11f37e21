//! `depends_on_past`: a scheduled run starts only if the job's previous run succeeded (the
//! newest run that was not skipped, among those whose scheduled instant comes before this
//! one's, as Airflow's `depends_on_past` looks at the previous instance).

use jiff::Timestamp;

use super::Ctx;
use crate::config::Job;
use crate::record::Outcome;

/// How many of the newest runs are looked through for the previous one.
const LOOK_BACK: usize = 200;

/// Why a run of `job` at `scheduled` must not start: its previous run did not end well
/// ("previous run 2026-11-20T02:00 failed"), or the history cannot be read. `None` when it
/// may start (also when the job has no earlier run).
pub(crate) fn blocker(ctx: Ctx<'_>, job: &Job, scheduled: Timestamp) -> Option<String> {
    if !job.depends_on_past {
        return None;
    }
    let runs = match ctx.coord.history(&ctx.cfg.settings, &job.name, LOOK_BACK) {
        Ok(r) => r,
        Err(e) => {
            return Some(format!(
                "depends_on_past: cannot read the job's history to find its previous run: {}",
                e.message
            ));
        }
    };
    let (at, prev) = runs
        .iter()
        .filter(|r| r.outcome != Outcome::Skipped)
        .filter_map(|r| Some((r.scheduled.parse::<Timestamp>().ok()?, r)))
        .filter(|(t, _)| *t < scheduled)
        .max_by_key(|(t, r)| (*t, r.started.clone()))?;
    let what = match prev.outcome {
        Outcome::Success | Outcome::Warning => return None,
        Outcome::Failure => "failed",
        Outcome::Lost => "was lost",
        Outcome::Interrupted => "was interrupted",
        Outcome::Skipped => "was skipped",
    };
    let zoned = at.to_zoned(job.tz().clone());
    let when = match zoned.second() {
        0 => zoned.strftime("%Y-%m-%dT%H:%M"),
        _ => zoned.strftime("%Y-%m-%dT%H:%M:%S"),
    };
    Some(format!("previous run {when} {what} (depends_on_past)"))
}
