//! What `status` reads of the fleet: its nodes and their state (by the database clock), the
//! runs in progress and whether they truly run, and a job's last real result.
//!
//! A run row says `running` from its start until its end is written. It truly runs only
//! while its node is live and renews the run's lease: the renewal thread renews the node's
//! heartbeat and the leases its runs hold in one transaction, so a live node whose lease for
//! the run is stale no longer holds it (the run ended, and its end could not be written).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::Fleet;
use super::pool::col;
use crate::coord::{Doubt, LastResult, NodeInfo, NodeState, Running};
use crate::lock::Holder;
use crate::record::RunRecord;
use crate::units::format_duration;

/// What a run (or a lease without a run row) tells of its node and its lease.
struct Seen {
    job: String,
    run_id: String,
    node: String,
    since: String,
    /// The run's row says its node fenced it (`abandon`).
    fenced: bool,
    /// The node's process row: whether it stopped cleanly, seconds since its heartbeat.
    process: Option<(bool, f64)>,
    /// Seconds since the run's lease was renewed, if the job's lease is this run's.
    lease_age: Option<f64>,
    /// Whether a run row says it runs (else only the lease does).
    row: bool,
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// "8.0s", "2m 5s".
fn ago(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format_duration(Duration::from_secs(d.as_secs()))
    }
}

impl Fleet {
    /// Whether `s` truly runs: `None` when it does, else what is known.
    fn doubt(&self, s: &Seen) -> Option<Doubt> {
        let n = &s.node;
        let dead = format_duration(self.dead_after);
        if s.fenced {
            return Some(Doubt {
                kind: "fenced",
                text: format!(
                    "{n} stopped this run (fenced: it could not renew the job's lease) and \
                     handed it over; the next daemon to look records it lost and runs it again \
                     if the job has retries left"
                ),
            });
        }
        let Some((stopped, silent)) = s.process else {
            return Some(Doubt {
                kind: "lost",
                text: format!(
                    "the {n} process that ran it is no longer in the fleet's table; the next \
                     daemon to look records it lost"
                ),
            });
        };
        let silent = secs(silent);
        let fresh = self.heartbeat.saturating_mul(2);
        let state = NodeState::of(silent, stopped, self.heartbeat, self.dead_after);
        let (kind, text) = match state {
            NodeState::Live if s.lease_age.is_some_and(|a| secs(a) <= fresh) => return None,
            NodeState::Live => {
                let lease = match s.lease_age {
                    Some(a) => format!("has not renewed its lease for {}", ago(secs(a))),
                    None => "no longer holds its lease".to_string(),
                };
                let what = if s.row {
                    "its end"
                } else {
                    "its start and end"
                };
                (
                    "unreported",
                    format!(
                        "{n} is live but {lease}: the run ended there and {what} could not be \
                         recorded yet"
                    ),
                )
            }
            NodeState::Unreachable => (
                "unreachable",
                format!(
                    "running on {n}? {n} is unreachable: no heartbeat for {}; the run counts \
                     as lost once {n} is silent for {dead}",
                    ago(silent)
                ),
            ),
            NodeState::Lost => (
                "lost",
                format!(
                    "running on {n}? {n} is lost: no heartbeat for {} (a node that cannot \
                     renew stops its jobs after {}); no daemon has taken the run over yet",
                    ago(silent),
                    format_duration(self.dead_after.saturating_sub(self.heartbeat))
                ),
            ),
            NodeState::Stopped => (
                "stopped",
                format!(
                    "{n} stopped cleanly without recording this run's end: the run is over; no \
                     daemon has taken it over yet"
                ),
            ),
        };
        Some(Doubt { kind, text })
    }

    /// The runs in progress of `jobs` (one per job: a run known to run first, else the
    /// newest in doubt), from the run rows, and from the leases of runs without a row (their
    /// start could not be written).
    pub(super) fn running_view(
        &self,
        jobs: &HashSet<&str>,
    ) -> Result<HashMap<String, Running>, String> {
        let wanted: Vec<&str> = jobs.iter().copied().collect();
        let rows = self.with(|c| {
            c.query(
                "SELECT r.job, r.run_id, r.node, to_json(r.started) #>> '{}',
                        r.incarnation LIKE 'fenced:%', n.stopped,
                        extract(epoch FROM now() - n.heartbeat)::float8,
                        CASE WHEN l.run_id = r.run_id
                             THEN extract(epoch FROM now() - l.renewed)::float8 END,
                        true
                 FROM cronwarden_runs r
                 LEFT JOIN cronwarden_nodes n ON n.incarnation = r.incarnation
                 LEFT JOIN cronwarden_leases l ON l.job = r.job
                 WHERE r.state = 'running' AND r.job = ANY($1)
                 UNION ALL
                 SELECT l.job, l.run_id, l.node, to_json(l.since) #>> '{}', false, n.stopped,
                        extract(epoch FROM now() - n.heartbeat)::float8,
                        extract(epoch FROM now() - l.renewed)::float8, false
                 FROM cronwarden_leases l
                 LEFT JOIN cronwarden_nodes n ON n.incarnation = l.incarnation
                 WHERE l.job = ANY($1)
                   AND NOT EXISTS (SELECT 1 FROM cronwarden_runs r WHERE r.run_id = l.run_id)
                 ORDER BY 4",
                &[&wanted],
            )
        })?;
        let mut out: HashMap<String, Running> = HashMap::new();
        for r in &rows {
            let stopped: Option<bool> = col(r, 5)?;
            let silent: Option<f64> = col(r, 6)?;
            let s = Seen {
                job: col(r, 0)?,
                run_id: col(r, 1)?,
                node: col(r, 2)?,
                since: col(r, 3)?,
                fenced: col(r, 4)?,
                process: stopped.zip(silent),
                lease_age: col(r, 7)?,
                row: col(r, 8)?,
            };
            let doubt = self.doubt(&s);
            // A run known to run is never displaced by one in doubt.
            if doubt.is_some() && out.get(&s.job).is_some_and(|o| o.doubt.is_none()) {
                continue;
            }
            let holder = Holder {
                pid: None,
                pgid: None,
                since: Some(s.since),
                run_id: Some(s.run_id),
            };
            let running = Running {
                holder,
                node: Some(s.node),
                doubt,
            };
            out.insert(s.job, running);
        }
        Ok(out)
    }

    /// The fleet's nodes: per node name its newest daemon process, and the processes that
    /// only run jobs (`run`, `backfill`) while they have not stopped.
    pub(super) fn node_rows(&self) -> Result<Vec<NodeInfo>, String> {
        let rows = self.with(|c| {
            c.query(
                "SELECT node, incarnation, pid, daemon, stopped, to_json(started) #>> '{}',
                        to_json(heartbeat) #>> '{}',
                        extract(epoch FROM now() - heartbeat)::float8
                 FROM cronwarden_nodes ORDER BY node, daemon DESC, started DESC",
                &[],
            )
        })?;
        let mut seen_daemon: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for r in &rows {
            let node: String = col(r, 0)?;
            let daemon: bool = col(r, 3)?;
            let stopped: bool = col(r, 4)?;
            if (daemon && !seen_daemon.insert(node.clone())) || (!daemon && stopped) {
                continue;
            }
            let silent = secs(col(r, 7)?);
            out.push(NodeInfo {
                node,
                incarnation: col(r, 1)?,
                pid: col(r, 2)?,
                daemon,
                started: col(r, 5)?,
                heartbeat: col(r, 6)?,
                silent,
                state: NodeState::of(silent, stopped, self.heartbeat, self.dead_after),
            });
        }
        Ok(out)
    }

    /// The job's newest run that is not a skip, and the skips recorded after it (however
    /// many: skips are one row each in the fleet, and must not hide the last real result).
    pub(super) fn last_result_rows(&self, job: &str) -> Result<LastResult, String> {
        let row = self.with(|c| {
            c.query_one(
                "WITH rows AS (
                    SELECT record, started, run_id,
                           (record::json ->> 'outcome') = 'skipped' AS skip,
                           coalesce((record::json -> 'skips' ->> 'count')::bigint, 1) AS n
                    FROM cronwarden_runs WHERE job = $1 AND record IS NOT NULL),
                 last AS (
                    SELECT record, started, run_id FROM rows WHERE NOT skip
                    ORDER BY started DESC, run_id DESC LIMIT 1),
                 after AS (
                    SELECT * FROM rows WHERE skip
                      AND (NOT EXISTS (SELECT 1 FROM last)
                           OR (started, run_id) > (SELECT started, run_id FROM last)))
                 SELECT (SELECT record FROM last),
                        (SELECT coalesce(sum(n), 0)::bigint FROM after),
                        (SELECT record FROM after ORDER BY started DESC, run_id DESC LIMIT 1)",
                &[&job],
            )
        })?;
        let parse = |i: usize| -> Result<Option<RunRecord>, String> {
            Ok(col::<Option<&str>>(&row, i)?.and_then(|t| serde_json::from_str(t).ok()))
        };
        Ok(LastResult {
            real: parse(0)?,
            skipped: col::<i64>(&row, 1)?.max(0) as u64,
            newest_skip: parse(2)?,
        })
    }
}
