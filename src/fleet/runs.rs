//! Run rows: every run is a row in `cronwarden_runs` (running, then done with its record),
//! so `status` and `history` on any node show the fleet; runs of silent nodes are marked
//! lost by exactly one other node. Also the alert marks and the pruning of old rows.

use std::time::Duration;

use jiff::Timestamp;

use super::pool::col;
use super::{CLAIM_RETENTION, Fleet, ms};
use crate::coord::{LostRun, LostWhy, RunStart};
use crate::record::RunRecord;

impl Fleet {
    /// Records that a run started (or, after a takeover, started again here).
    pub(super) fn insert_run(&self, run: &RunStart<'_>) -> Result<(), String> {
        let params = serde_json::to_string(run.params).unwrap_or_else(|_| "{}".into());
        self.with(|c| {
            c.execute(
                "INSERT INTO cronwarden_runs
                    (run_id, job, node, incarnation, scheduled_ms, trigger, params, state, attempt)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8)
                 ON CONFLICT (run_id) DO UPDATE
                    SET node = excluded.node, incarnation = excluded.incarnation,
                        state = 'running', ended = NULL, attempt = excluded.attempt",
                &[
                    &run.run_id,
                    &run.job,
                    &self.node,
                    &self.incarnation,
                    &ms(run.scheduled),
                    &run.trigger,
                    &params,
                    &(run.attempt as i32),
                ],
            )
        })
        .map(|_| ())
    }

    /// Records the attempt a run is on (a takeover goes on from the next one).
    pub(super) fn set_attempt(&self, run_id: &str, n: u32) -> Result<(), String> {
        self.with(|c| {
            c.execute(
                "UPDATE cronwarden_runs SET attempt = $2
                 WHERE run_id = $1 AND incarnation = $3 AND state = 'running'",
                &[&run_id, &(n as i32), &self.incarnation],
            )
        })
        .map(|_| ())
    }

    /// Whether this node is the first to send `event` for `run_id` (alerts are sent once
    /// across the fleet). When the database cannot say, the alert goes out.
    pub(super) fn mark_alert(&self, run_id: &str, event: &str) -> bool {
        self.with(|c| {
            c.execute(
                "INSERT INTO cronwarden_alerts (run_id, event, node) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&run_id, &event, &self.node],
            )
        })
        .map_or(true, |n| n == 1)
    }

    /// Marks the runs of nodes that stopped heartbeating `lost`; each such run is returned
    /// to exactly one node across the fleet.
    pub(super) fn take_over_lost(&self) -> Result<Vec<LostRun>, String> {
        let rows = self.with(|c| {
            c.query(
                "UPDATE cronwarden_runs r SET state = 'lost', ended = now()
                 WHERE r.state = 'running'
                   AND NOT EXISTS (
                     SELECT 1 FROM cronwarden_nodes n
                     WHERE n.incarnation = r.incarnation AND NOT n.stopped
                       AND n.heartbeat >= now() - $1 * interval '1 second')
                   AND NOT EXISTS (
                     SELECT 1 FROM cronwarden_leases l
                     WHERE l.run_id = r.run_id
                       AND l.renewed >= now() - $1 * interval '1 second')
                 RETURNING run_id, job, node, scheduled_ms, trigger, params, attempt,
                    r.incarnation LIKE 'fenced:%',
                    (SELECT n.stopped FROM cronwarden_nodes n
                     WHERE n.incarnation = r.incarnation),
                    (SELECT extract(epoch FROM now() - n.heartbeat)::float8
                     FROM cronwarden_nodes n WHERE n.incarnation = r.incarnation)",
                &[&self.dead_after.as_secs_f64()],
            )
        })?;
        rows.iter()
            .map(|r| {
                let why = match (col::<bool>(r, 7)?, col::<Option<bool>>(r, 8)?) {
                    (true, _) => LostWhy::Fenced,
                    (false, Some(true)) => LostWhy::Stopped,
                    _ => LostWhy::Silent,
                };
                let silent = col::<Option<f64>>(r, 9)?
                    .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok())
                    .unwrap_or(self.dead_after);
                Ok(LostRun {
                    run_id: col(r, 0)?,
                    job: col(r, 1)?,
                    node: col(r, 2)?,
                    scheduled: Timestamp::from_millisecond(col::<i64>(r, 3)?)
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                    trigger: col(r, 4)?,
                    params: serde_json::from_str(col::<&str>(r, 5)?).unwrap_or_default(),
                    attempt: col::<i32>(r, 6)?.max(0) as u32,
                    silent_for: silent,
                    why,
                })
            })
            .collect()
    }

    /// Stores a lost run's record (written by the node that took it over).
    pub(super) fn store_lost(&self, rec: &RunRecord) -> Result<(), String> {
        let text = serde_json::to_string(rec).map_err(|e| e.to_string())?;
        self.with(|c| {
            c.execute(
                "UPDATE cronwarden_runs SET record = $2 WHERE run_id = $1 AND state = 'lost'",
                &[&rec.run_id, &text],
            )
        })
        .map(|_| ())
    }

    /// A run's record once it is over (`None` while it runs or before a node took it).
    pub(super) fn finished(&self, run_id: &str) -> Result<Option<RunRecord>, String> {
        let row = self.with(|c| {
            c.query_opt(
                "SELECT record FROM cronwarden_runs
                 WHERE run_id = $1 AND state IN ('done', 'lost') AND record IS NOT NULL",
                &[&run_id],
            )
        })?;
        Ok(row.and_then(|r| serde_json::from_str(col::<&str>(&r, 0).ok()?).ok()))
    }

    /// The newest `n` finished runs of a job (oldest first), from every node.
    pub(super) fn history_rows(&self, job: &str, n: usize) -> Result<Vec<RunRecord>, String> {
        let rows = self.with(|c| {
            c.query(
                "SELECT record FROM (
                    SELECT record, started, run_id FROM cronwarden_runs
                    WHERE job = $1 AND record IS NOT NULL
                    ORDER BY started DESC, run_id DESC LIMIT $2) t
                 ORDER BY started, run_id",
                &[&job, &(n.min(i64::MAX as usize) as i64)],
            )
        })?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(col::<&str>(r, 0).ok()?).ok())
            .collect())
    }

    /// Keeps the tables bounded: claims, trigger requests and alert marks past the claim
    /// retention (plus a day), node rows silent for a day, and per job the newest `keep`
    /// finished runs (`history_keep`).
    pub(super) fn prune(&self, keep: usize) -> Result<u64, String> {
        let days = CLAIM_RETENTION.as_secs_f64() + 86400.0;
        self.with(|c| {
            let mut n = 0;
            for q in [
                "DELETE FROM cronwarden_claims WHERE claimed < now() - $1 * interval '1 second'",
                "DELETE FROM cronwarden_triggers WHERE taken < now() - $1 * interval '1 second'",
                "DELETE FROM cronwarden_alerts WHERE sent < now() - $1 * interval '1 second'",
            ] {
                n += c.execute(q, &[&days])?;
            }
            n += c.execute(
                "DELETE FROM cronwarden_nodes WHERE heartbeat < now() - interval '1 day'",
                &[],
            )?;
            n += c.execute(
                "DELETE FROM cronwarden_runs WHERE run_id IN (
                    SELECT run_id FROM (
                        SELECT run_id, row_number() OVER (PARTITION BY job ORDER BY started DESC) AS n
                        FROM cronwarden_runs WHERE state <> 'running') x
                    WHERE n > $1)",
                &[&(keep.min(i64::MAX as usize) as i64)],
            )?;
            Ok(n)
        })
    }
}
