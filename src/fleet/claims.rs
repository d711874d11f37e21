//! Claims, triggers and pauses: which node runs a due tick (rendezvous rank, then one
//! `INSERT ... ON CONFLICT DO NOTHING` per batch), `trigger` requests that exactly one node
//! takes, and jobs paused for the whole fleet.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;

use postgres::types::Type;

use super::pool::{col, db_err};
use super::wire::Op;
use super::{Fleet, TRIGGER_CHANNEL, ms};
use crate::log::Level;
use crate::sync::lock;

/// A trigger request taken by this node.
pub(super) struct Triggered {
    pub(super) job: String,
    pub(super) params: BTreeMap<String, String>,
    pub(super) run_id: String,
}

impl Fleet {
    /// This node's rank for a tick among the live daemon nodes (rendezvous hashing of node,
    /// job and instant): 0 for the node that should claim it first. The others wait a little
    /// per rank before they claim, so the ticks of one instant spread over the fleet, and a
    /// node that died is stood in for after a short delay, not after `dead_after`.
    pub(super) fn rank(&self, job: &str, scheduled: Timestamp) -> usize {
        let live = lock(&self.live);
        let score = |node: &str| {
            // FNV-1a, 64 bits: stable across hosts and versions.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in node
                .bytes()
                .chain([0])
                .chain(job.bytes())
                .chain([0])
                .chain(ms(scheduled).to_le_bytes())
            {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h
        };
        let mine = score(&self.node);
        live.iter()
            .filter(|n| **n != self.node)
            .filter(|n| {
                let s = score(n);
                s > mine || (s == mine && n.as_str() < self.node.as_str())
            })
            .count()
    }

    /// Claims many ticks in one statement (one round trip); returns the run ids this node won. Rows go in
    /// in one order (job, instant) on every node, so concurrent batches wait for each other
    /// instead of deadlocking. A paused job's
    /// ticks are claimed by nobody, and a retry after a lost reply finds its own claims.
    pub(super) fn claim_batch(
        &self,
        ticks: &[(String, Timestamp, String)],
    ) -> Result<HashSet<String>, String> {
        let jobs: Vec<&str> = ticks.iter().map(|t| t.0.as_str()).collect();
        let at: Vec<i64> = ticks.iter().map(|t| ms(t.1)).collect();
        let ids: Vec<&str> = ticks.iter().map(|t| t.2.as_str()).collect();
        let rows = self.with(Op::Claim, |c| {
            c.query(
                "WITH want AS (
                    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])
                        AS w(job, scheduled_ms, run_id)),
                 ins AS (
                    INSERT INTO cronwarden_claims (job, scheduled_ms, node, run_id)
                    SELECT w.job, w.scheduled_ms, $4, w.run_id FROM want w
                    WHERE NOT EXISTS (SELECT 1 FROM cronwarden_paused p WHERE p.job = w.job)
                    ORDER BY w.job, w.scheduled_ms
                    ON CONFLICT DO NOTHING RETURNING run_id)
                 SELECT run_id FROM ins
                 UNION ALL
                 SELECT c.run_id FROM cronwarden_claims c JOIN want w
                    ON c.job = w.job AND c.scheduled_ms = w.scheduled_ms AND c.run_id = w.run_id",
                &[
                    (&jobs, Type::TEXT_ARRAY),
                    (&at, Type::INT8_ARRAY),
                    (&ids, Type::TEXT_ARRAY),
                    (&self.node, Type::TEXT),
                ],
            )
        })?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    /// Pauses or resumes a job for the whole fleet.
    pub(super) fn set_paused_row(&self, job: &str, paused: bool) -> Result<(), String> {
        self.with(Op::Other, |c| {
            let p = [(&job as &(dyn postgres::types::ToSql + Sync), Type::TEXT)];
            if paused {
                c.execute(
                    "INSERT INTO cronwarden_paused (job) VALUES ($1) ON CONFLICT DO NOTHING",
                    &p,
                )
            } else {
                c.execute("DELETE FROM cronwarden_paused WHERE job = $1", &p)
            }
        })
        .map(|_| ())
    }

    /// The paused jobs.
    pub(super) fn paused_jobs(&self) -> Result<HashSet<String>, String> {
        self.with(Op::Other, |c| {
            c.query("SELECT job FROM cronwarden_paused", &[])
        })
        .and_then(|rows| rows.iter().map(|r| col(r, 0)).collect())
    }

    /// Asks the fleet to run `job` once: one node takes the request. Returns the run id.
    pub(super) fn request_trigger(
        &self,
        job: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let params = serde_json::to_string(params).unwrap_or_else(|_| "{}".into());
        let by = format!("{} (cronwarden trigger)", self.node);
        // One statement: the notification goes out when it commits, with the row.
        self.with(Op::Other, |c| {
            let row = c.query_one(
                "WITH req AS (
                    INSERT INTO cronwarden_triggers (job, params, requested_by)
                    VALUES ($1, $2, $3) RETURNING run_id)
                 SELECT run_id, pg_notify($4, '')::text FROM req",
                &[
                    (&job, Type::TEXT),
                    (&params, Type::TEXT),
                    (&by, Type::TEXT),
                    (&TRIGGER_CHANNEL, Type::TEXT),
                ],
            )?;
            row.try_get::<_, String>(0)
        })
    }

    /// Takes open trigger requests for jobs this node knows.
    pub(super) fn take_triggers(&self, jobs: &[String]) -> Result<Vec<Triggered>, String> {
        let rows = self.with(Op::Other, |c| {
            c.query(
                "UPDATE cronwarden_triggers SET taken_by = $1, taken = now()
                 WHERE id IN (
                    SELECT id FROM cronwarden_triggers
                    WHERE taken_by IS NULL AND job = ANY($2)
                    ORDER BY id LIMIT 64 FOR UPDATE SKIP LOCKED)
                 RETURNING job, params, run_id",
                &[(&self.node, Type::TEXT), (&jobs, Type::TEXT_ARRAY)],
            )
        })?;
        rows.iter()
            .map(|r| {
                Ok(Triggered {
                    job: col(r, 0)?,
                    params: serde_json::from_str(col::<&str>(r, 1)?).unwrap_or_default(),
                    run_id: col(r, 2)?,
                })
            })
            .collect()
    }

    /// Waits for trigger notifications (or `timeout`) on a connection of its own; calls
    /// `on_wake` after each. Returns when `keep_going` says so.
    pub(super) fn listen(&self, timeout: Duration, mut on_wake: impl FnMut() -> bool) {
        use postgres::fallible_iterator::FallibleIterator;
        loop {
            let mut c = match self.connect().and_then(|mut c| {
                self.trips.trip(Op::Other, 1);
                c.batch_execute(&format!("LISTEN {TRIGGER_CHANNEL}"))
                    .map(|_| c)
                    .map_err(db_err)
            }) {
                Ok(c) => c,
                Err(e) => {
                    self.log
                        .log(Level::Warn, "fleet", &[], &format!("trigger listener: {e}"));
                    std::thread::sleep(timeout);
                    if !on_wake() {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let got = c.notifications().timeout_iter(timeout).next();
                if !on_wake() {
                    return;
                }
                if got.is_err() || c.is_closed() {
                    break;
                }
            }
        }
    }
}
