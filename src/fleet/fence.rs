//! Renewal and fencing: a thread renews this node's heartbeat and leases every
//! `heartbeat`; another stops the jobs whose leases could not be renewed in time, before
//! any other node may take them over.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use postgres::Client;

use super::Fleet;
use super::leases::LeaseState;
use super::pool::{col, db_err};
use crate::log::Level;
use crate::sync::lock;

impl Fleet {
    /// Renews this node's heartbeat and leases every `heartbeat`; a lease that is gone from
    /// the table (taken over after a long stall) is fenced at once.
    pub(super) fn renew_loop(&self) {
        let mut conn: Option<Client> = None;
        let mut failing_since: Option<Instant> = None;
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
            let run_ids: Vec<&str> = snapshot.iter().map(|(_, st)| st.run_id.as_str()).collect();
            let result = (|| -> Result<Vec<String>, String> {
                if conn.as_ref().is_none_or(|c| c.is_closed()) {
                    let mut fresh = self.connect()?;
                    // What ended while the database was away goes in first.
                    self.replay_on(&mut fresh)?;
                    conn = Some(fresh);
                }
                let c = conn.as_mut().ok_or("no connection")?;
                if !self.outbox.is_empty() {
                    // Queued by this host's other processes (`run`).
                    self.replay_on(c)?;
                }
                let mut tx = c.transaction().map_err(db_err)?;
                tx.execute(
                    "UPDATE cronwarden_nodes SET heartbeat = now() WHERE incarnation = $1",
                    &[&self.incarnation],
                )
                .map_err(db_err)?;
                let rows = tx
                    .query(
                        "UPDATE cronwarden_leases SET renewed = now()
                         WHERE incarnation = $1 AND run_id = ANY($2) RETURNING job",
                        &[&self.incarnation, &run_ids],
                    )
                    .map_err(db_err)?;
                let live = tx
                    .query(
                        "SELECT DISTINCT node FROM cronwarden_nodes
                         WHERE daemon AND NOT stopped
                           AND heartbeat >= now() - $1 * interval '1 second'
                         ORDER BY node",
                        &[&self.dead_after.as_secs_f64()],
                    )
                    .map_err(db_err)?;
                tx.commit().map_err(db_err)?;
                *lock(&self.live) = live.iter().filter_map(|r| col(r, 0).ok()).collect();
                rows.iter().map(|r| col(r, 0)).collect()
            })();
            match result {
                Ok(jobs) => {
                    if let Some(since) = failing_since.take() {
                        self.log.log(
                            Level::Info,
                            "fleet",
                            &[("node", self.node.clone())],
                            &format!(
                                "the database is back after {:.1}s",
                                since.elapsed().as_secs_f64()
                            ),
                        );
                    }
                    *lock(&self.renewed) = sent;
                    let held: HashSet<String> = jobs.into_iter().collect();
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
                }
                Err(e) => {
                    conn = None;
                    if failing_since.is_none() {
                        failing_since = Some(Instant::now());
                        self.log.log(
                            Level::Error,
                            "fleet",
                            &[("node", self.node.clone())],
                            &format!("cannot renew the leases: {e}"),
                        );
                    }
                }
            }
            let next = sent + self.heartbeat;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }

    /// Stops the jobs whose leases could not be renewed in time: SIGTERM (through the run's
    /// interrupt, so it does not retry) at `dead_after - heartbeat` after the last good
    /// renewal was sent, SIGKILL to the group at `dead_after - heartbeat / 2`; another node
    /// may take the lease only at `dead_after` (by the database clock, which started later).
    pub(super) fn fence_loop(&self) {
        let term_after = self.dead_after.saturating_sub(self.heartbeat);
        let kill_after = self.dead_after.saturating_sub(self.heartbeat / 2);
        let why = format!(
            "could not renew its lease for {}",
            crate::units::format_duration(term_after)
        );
        let mut guard = lock(&self.leases);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let renewed = *lock(&self.renewed);
            let now = Instant::now();
            let mut wait = self.heartbeat;
            for (job, st) in guard.iter() {
                // A lease taken after the last renewal counts from when it was taken.
                let base = renewed.max(st.acquired);
                if now >= base + kill_after {
                    self.fence(job, st, &why);
                    self.kill(st);
                } else if now >= base + term_after {
                    self.fence(job, st, &why);
                    wait = wait.min(base + kill_after - now);
                } else {
                    wait = wait.min(base + term_after - now);
                }
            }
            guard = self
                .wake
                .wait_timeout(guard, wait.max(Duration::from_millis(10)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    pub(super) fn fence(&self, job: &str, st: &LeaseState, why: &str) {
        if st.fenced.swap(true, Ordering::SeqCst) {
            return;
        }
        *lock(&st.why) = why.to_string();
        self.log.log(
            Level::Error,
            "fenced",
            &[
                ("job", job.to_string()),
                ("run_id", st.run_id.clone()),
                ("node", self.node.clone()),
            ],
            &format!(
                "this node {why}: stopping the job now so that no other node runs it at the \
                 same time. The run ends here as interrupted and is not retried here; another \
                 node records it lost, and runs it again only if the job has retries left, once \
                 this node hands it over (when the job has stopped and the database answers) or \
                 has been silent for {}",
                crate::units::format_duration(self.dead_after)
            ),
        );
        // Dropping the write end makes the run's interrupt source readable.
        lock(&st.fence).take();
    }

    pub(super) fn kill(&self, st: &LeaseState) {
        let pgid = st.pgid.load(Ordering::SeqCst);
        if pgid > 1 {
            let _ = crate::sys::kill_group(pgid, libc::SIGKILL);
        }
    }

    /// Marks this node stopped at a clean exit (after its runs ended and were recorded), so
    /// that the fleet does not count it among the live nodes for ranking.
    pub(crate) fn mark_stopped(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_all();
        let _ = self.with(|c| {
            c.execute(
                "UPDATE cronwarden_nodes SET stopped = true, heartbeat = now()
                 WHERE incarnation = $1",
                &[&self.incarnation],
            )
        });
    }
}
