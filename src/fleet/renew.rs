//! The renewal thread: every `heartbeat`, one statement (one round trip) renews this node's
//! heartbeat and its leases, reads the live nodes and the database's clock. While it fails,
//! it is tried again every quarter heartbeat with a short connect timeout, so that a node
//! renews within a heartbeat of the network's healing. Outages are measured from the last
//! good renewal (when it was sent), and renewals slower than the latency budget
//! (`heartbeat / 4`) are warned about, once per episode.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use postgres::Client;
use postgres::types::Type;

use super::Fleet;
use super::leases::LeaseState;
use super::pool::{col, db_err};
use super::wire::Op;
use crate::log::Level;
use crate::sync::lock;

/// The heartbeat, in one statement: the node's row (with its last round-trip time and
/// clock offset, for `status` on any node), the leases held (the jobs renewed come back),
/// the live daemon nodes (this one counts as live: its heartbeat is the one being written),
/// and the database's clock. (A data-modifying CTE runs whether or not it is read.)
const RENEW: &str = "WITH hb AS (
        UPDATE cronwarden_nodes SET heartbeat = now(), rtt_ms = $4, clock_offset_ms = $5
        WHERE incarnation = $1 RETURNING 1),
     renewed AS (
        UPDATE cronwarden_leases SET renewed = now()
        WHERE incarnation = $1 AND run_id = ANY($2) RETURNING job)
     SELECT ARRAY(SELECT job FROM renewed),
            ARRAY(SELECT DISTINCT node FROM cronwarden_nodes
                  WHERE daemon AND NOT stopped
                    AND (heartbeat >= now() - $3 * interval '1 second' OR incarnation = $1)
                  ORDER BY node),
            extract(epoch FROM clock_timestamp())::float8";

/// The least time between two attempts while renewals fail.
const MIN_RETRY: Duration = Duration::from_millis(100);

/// What a renewal brought back.
struct Renewal {
    jobs: Vec<String>,
    rtt: Duration,
}

/// The renewal thread's own state across heartbeats.
#[derive(Default)]
struct Loop {
    conn: Option<Client>,
    /// Since when renewals fail: the last good renewal's send (monotonic and wall clock).
    outage: Option<(Instant, Timestamp)>,
    /// Whether renewals are over the latency budget (an episode, warned once).
    slow: bool,
}

impl Fleet {
    /// The latency budget: a renewal's round trip should take at most this.
    pub(super) fn budget(&self) -> Duration {
        self.heartbeat / 4
    }

    /// Renews this node's heartbeat and leases every `heartbeat` (every quarter heartbeat
    /// while failing); a lease that is gone from the table (taken over after a long stall) is
    /// fenced at once.
    pub(super) fn renew_loop(&self) {
        let mut l = Loop::default();
        let retry = self.budget().max(MIN_RETRY);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let sent = Instant::now();
            // Only the leases held right now are renewed: a lease row left behind by a run
            // that ended while the database was away must expire, not live on.
            let snapshot: Vec<(String, Arc<LeaseState>)> = lock(&self.leases)
                .iter()
                .map(|(j, st)| (j.clone(), Arc::clone(st)))
                .collect();
            let next = match self.renew_once(&mut l.conn, &snapshot) {
                Ok(r) => {
                    self.renewed_ok(&mut l, sent, &r);
                    let held: HashSet<String> = r.jobs.into_iter().collect();
                    for (job, st) in &snapshot {
                        if !held.contains(job) {
                            let why = format!(
                                "found its lease taken by another node (it could not renew it \
                                 for {})",
                                crate::units::format_duration(self.dead_after)
                            );
                            self.fence(job, st, &why);
                            self.kill(st);
                        }
                    }
                    self.wake.notify_all();
                    sent + self.heartbeat
                }
                Err(e) => {
                    // Dropped, so closed: a connection that failed is never used again.
                    l.conn = None;
                    self.renew_failed(&mut l, &e);
                    sent + retry
                }
            };
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }

    /// One renewal: (re)connects if need be (then `on_reconnect`), and sends the heartbeat
    /// statement.
    fn renew_once(
        &self,
        conn: &mut Option<Client>,
        snapshot: &[(String, Arc<LeaseState>)],
    ) -> Result<Renewal, String> {
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            // The old one closed before a new one opens.
            *conn = None;
            let mut c = self.connect()?;
            self.on_reconnect(&mut c);
            *conn = Some(c);
        }
        let c = conn.as_mut().ok_or("no connection")?;
        if !self.outbox.is_empty() {
            // Queued by this host's other processes (`run`), or held back.
            self.replay_waiting(c);
        }
        let run_ids: Vec<&str> = snapshot.iter().map(|(_, st)| st.run_id.as_str()).collect();
        let rtt_ms = self.trips.renew_rtt().map(|d| d.as_secs_f64() * 1000.0);
        let offset_ms = self.clock_offset().map(|o| o * 1000.0);
        self.trips.op(Op::Renew);
        self.trips.trip(Op::Renew, 1);
        let wall = Timestamp::now();
        let t0 = Instant::now();
        let row = c
            .query_typed_one(
                RENEW,
                &[
                    (&self.incarnation, Type::TEXT),
                    (&run_ids, Type::TEXT_ARRAY),
                    (&self.dead_after.as_secs_f64(), Type::FLOAT8),
                    (&rtt_ms, Type::FLOAT8),
                    (&offset_ms, Type::FLOAT8),
                ],
            )
            .map_err(db_err)?;
        let rtt = t0.elapsed();
        let jobs: Vec<String> = col(&row, 0)?;
        *lock(&self.live) = col(&row, 1)?;
        self.trips.set_renew_rtt(rtt);
        self.clock_sample(wall, rtt, col(&row, 2)?);
        Ok(Renewal { jobs, rtt })
    }

    /// A renewal went through: the end of an outage (measured from the last good renewal)
    /// and the latency budget are told.
    fn renewed_ok(&self, l: &mut Loop, sent: Instant, r: &Renewal) {
        let f = [("node", self.node.clone())];
        if let Some((since, at)) = l.outage.take() {
            *lock(&self.back_since) = Some(Instant::now());
            let msg = format!(
                "the database is back after {:.1}s (since the last good renewal, sent at {at})",
                since.elapsed().as_secs_f64()
            );
            self.log.log(Level::Info, "fleet", &f, &msg);
        }
        *lock(&self.renewed) = sent;
        let budget = self.budget();
        if r.rtt > budget && !l.slow {
            l.slow = true;
            let msg = format!(
                "a lease renewal took {}ms, over the latency budget of {}ms (heartbeat / 4): on \
                 this link the node loses claim races, and its leases may be fenced and taken \
                 over; move it closer to the database or raise heartbeat and dead_after",
                r.rtt.as_millis(),
                budget.as_millis()
            );
            self.log.log(Level::Warn, "latency", &f, &msg);
        } else if l.slow && r.rtt <= budget * 3 / 4 {
            l.slow = false;
            let msg = format!(
                "lease renewals are within the latency budget again ({}ms, budget {}ms)",
                r.rtt.as_millis(),
                budget.as_millis()
            );
            self.log.log(Level::Info, "latency", &f, &msg);
        }
    }

    /// A renewal failed: the outage is logged once, with the last good renewal.
    fn renew_failed(&self, l: &mut Loop, e: &str) {
        // Cut off itself, this node declares no other node lost (`take_work`).
        *lock(&self.back_since) = None;
        if l.outage.is_some() {
            return;
        }
        let last = *lock(&self.renewed);
        let ago = last.elapsed();
        let at = Timestamp::now()
            .checked_sub(jiff::SignedDuration::try_from(ago).unwrap_or_default())
            .unwrap_or_else(|_| Timestamp::now());
        l.outage = Some((last, at));
        let msg = format!(
            "cannot renew the leases: {e} (the last good renewal was sent {:.1}s ago, at {at}); \
             trying again every {}ms",
            ago.as_secs_f64(),
            self.budget().max(MIN_RETRY).as_millis()
        );
        self.log
            .log(Level::Error, "fleet", &[("node", self.node.clone())], &msg);
    }

    /// The round trips so far, per operation, as a log line's text.
    pub(super) fn round_trips_text(&self) -> String {
        Op::ALL
            .iter()
            .map(|&op| {
                let (trips, ops) = self.trips.get(op);
                format!("{} {trips} in {ops}", op.name())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Fleet {
    /// For `status`: the live nodes whose last renewal was over the latency budget, or whose
    /// clock is off the database's beyond the tolerance, one line each (as the nodes wrote
    /// them with their heartbeats).
    pub(super) fn node_notes(&self) -> Vec<String> {
        let budget_ms = self.budget().as_secs_f64() * 1000.0;
        let skew_ms = super::clock::SKEW.as_secs_f64() * 1000.0;
        let rows = self.with(Op::Other, |c| {
            c.query(
                "SELECT node, rtt_ms, clock_offset_ms FROM cronwarden_nodes
                 WHERE NOT stopped AND heartbeat >= now() - $1 * interval '1 second'
                   AND (rtt_ms > $2 OR abs(clock_offset_ms) > $3)
                 ORDER BY node, incarnation",
                &[
                    (&self.dead_after.as_secs_f64(), Type::FLOAT8),
                    (&budget_ms, Type::FLOAT8),
                    (&skew_ms, Type::FLOAT8),
                ],
            )
        });
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                return vec![format!(
                    "fleet: cannot read the nodes' latency and clocks: {e}"
                )];
            }
        };
        let mut out = Vec::new();
        for r in &rows {
            let (Ok(node), Ok(rtt), Ok(off)) = (
                col::<String>(r, 0),
                col::<Option<f64>>(r, 1),
                col::<Option<f64>>(r, 2),
            ) else {
                continue;
            };
            out.extend(latency_note(&node, rtt, budget_ms));
            if let Some(o) = off.filter(|o| o.abs() > skew_ms) {
                out.push(format!(
                    "fleet: node {node}: clock {} the database's; it schedules by the \
                     database's clock",
                    super::clock::describe(o / 1000.0)
                ));
            }
        }
        out
    }
}

/// The line `status` shows for a node whose last renewal took `rtt_ms`, when that is over
/// the latency budget.
pub(super) fn latency_note(node: &str, rtt_ms: Option<f64>, budget_ms: f64) -> Option<String> {
    let rtt = rtt_ms.filter(|r| *r > budget_ms)?;
    Some(format!(
        "fleet: node {node}: lease renewals take {rtt:.0}ms, over the latency budget of \
         {budget_ms:.0}ms (heartbeat / 4): it loses claim races and its leases may be fenced"
    ))
}
