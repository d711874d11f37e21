//! Ticks no node could claim. While the database is unreachable a node retries the claim of
//! a due tick for `dead_after`, then gives it up for now: it names the tick (job, instant)
//! in the log and keeps it, in memory. Once the database answers again (the next wake-up
//! of `serve`, within a heartbeat), it claims the kept ticks again: what it wins, no node
//! ran — those instants were missed, and go to the daemon as [`Work::Late`] (alerted
//! `missed`, run as the job's `catchup` says); what another node claimed meanwhile was that
//! node's to run.
//!
//! The kept ticks live in this process only: a daemon that stops (or dies) before the
//! database answers forgets them (its next start's catch-up, from the job's dispatch mark,
//! finds them again only while no later instant of the job was dispatched). Per job at
//! most [`CATCHUP_ALL_LIMIT`] ticks are kept (the newest; `catchup = "all"` runs no more);
//! older ones are counted.

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;

use super::Fleet;
use crate::coord::{LateTicks, Tick, Work, WorkSink};
use crate::log::Level;
use crate::scheduler::CATCHUP_ALL_LIMIT;
use crate::sync::lock;

/// The ticks this node gave up claiming during the outage it sees now.
#[derive(Default)]
pub(super) struct Kept {
    /// Per job, oldest first, and how many older ones were not kept.
    jobs: BTreeMap<String, (Vec<Tick>, usize)>,
    /// When the first of these claims failed, and why.
    since: Option<(Timestamp, String)>,
    /// The outage the last claim again ended: when it began, and when it was over. A claim
    /// that began failing before then and gave up only after is of that outage still.
    last: Option<(Timestamp, Timestamp)>,
}

impl Fleet {
    /// Gives up claiming `ticks` for now (the claim failed since `since` with `error`):
    /// names each in the log and keeps it to claim again once the database answers.
    pub(super) fn keep_unclaimed(&self, ticks: Vec<Tick>, since: Timestamp, error: &str) {
        let mut kept = lock(&self.unclaimed);
        let since = match kept.last {
            Some((began, over)) if since <= over => began,
            _ => since,
        };
        let (outage, why) = kept
            .since
            .get_or_insert_with(|| (since, error.to_string()))
            .clone();
        for t in ticks {
            self.log.log(
                Level::Error,
                "unclaimed",
                &[
                    ("job", t.job.clone()),
                    ("scheduled", t.scheduled.to_string()),
                    ("run_id", t.run_id.clone()),
                ],
                &format!(
                    "not run here for now: cannot claim it, the database is unreachable \
                     (claims fail since {outage}: {why}); kept to claim again once it answers \
                     (unless another node claimed it, it is then missed: alerted, and run as \
                     `catchup` says)"
                ),
            );
            let (list, older) = kept.jobs.entry(t.job.clone()).or_default();
            let at = list.partition_point(|k| k.scheduled <= t.scheduled);
            list.insert(at, t);
            if list.len() > CATCHUP_ALL_LIMIT {
                list.remove(0);
                *older += 1;
            }
        }
    }

    /// Claims the kept ticks again (at `serve`'s wake-ups); each job's ticks this node wins
    /// go to `sink` as [`Work::Late`]. Kept until the database answers.
    pub(super) fn reclaim_unclaimed(&self, sink: &dyn WorkSink) {
        let (jobs, since) = {
            let mut kept = lock(&self.unclaimed);
            let Some(since) = kept.since.clone() else {
                return;
            };
            let all: Vec<Tick> = kept.jobs.values().flat_map(|(l, _)| l.clone()).collect();
            let fresh = self.within_retention(&all);
            let want: Vec<(String, Timestamp, String)> = fresh
                .iter()
                .map(|t| (t.job.clone(), t.scheduled, t.run_id.clone()))
                .collect();
            let won = match self.claim_batch(&want) {
                Ok(won) => won,
                // Still unreachable: tried again at the next wake-up.
                Err(_) => return,
            };
            let keep: HashSet<&str> = fresh.iter().map(|t| t.run_id.as_str()).collect();
            let mut jobs = std::mem::take(&mut kept.jobs);
            kept.since = None;
            kept.last = Some((since.0, Timestamp::now()));
            for (list, _) in jobs.values_mut() {
                list.retain(|t| keep.contains(t.run_id.as_str()) || won.contains(&t.run_id));
            }
            (self.split_won(jobs, &won), since)
        };
        for (job, ticks, not_kept) in jobs {
            sink.take(Work::Late(LateTicks {
                job,
                ticks,
                not_kept,
                since: since.0,
                error: since.1.clone(),
            }));
        }
    }

    /// At a clean exit: says which kept ticks are forgotten (they live in memory only).
    pub(super) fn forget_unclaimed(&self) {
        let kept = std::mem::take(&mut *lock(&self.unclaimed));
        for (job, (list, older)) in kept.jobs {
            let msg = format!(
                "the daemon stops before the database answered: {} tick(s) it could not claim \
                 are forgotten (not run, not alerted; the next start's catch-up finds them only \
                 if no later instant of the job was dispatched)",
                list.len() + older
            );
            self.log
                .log(Level::Warn, "unclaimed", &[("job", job)], &msg);
        }
    }

    /// Per job, the ticks won (oldest first) and how many older ones were not kept; the
    /// ticks another node claimed meanwhile (or of a paused job) are logged and dropped.
    fn split_won(
        &self,
        jobs: BTreeMap<String, (Vec<Tick>, usize)>,
        won: &HashSet<String>,
    ) -> Vec<(String, Vec<Tick>, usize)> {
        let mut out = Vec::new();
        for (job, (list, older)) in jobs {
            let (mine, theirs): (Vec<Tick>, Vec<Tick>) =
                list.into_iter().partition(|t| won.contains(&t.run_id));
            for t in &theirs {
                self.log.log(
                    Level::Info,
                    "unclaimed",
                    &[("job", job.clone()), ("scheduled", t.scheduled.to_string())],
                    "the database answers again: another node claimed this tick meanwhile (or \
                     the job is paused); not run here",
                );
            }
            if !mine.is_empty() {
                out.push((job, mine, older));
            }
        }
        out
    }
}
