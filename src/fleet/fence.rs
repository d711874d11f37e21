//! Fencing: a thread stops the jobs whose leases could not be renewed in time (the
//! renewal thread is in `renew`), before any other node may take them over.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use postgres::types::Type;

use super::Fleet;
use super::leases::LeaseState;
use super::wire::Op;
use crate::log::Level;
use crate::sync::lock;

impl Fleet {
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
    /// that the fleet does not count it among the live nodes for ranking; logs the round
    /// trips this process made, per operation.
    pub(crate) fn mark_stopped(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_all();
        let _ = self.with(Op::Other, |c| {
            c.execute(
                "UPDATE cronwarden_nodes SET stopped = true, heartbeat = now()
                 WHERE incarnation = $1",
                &[(&self.incarnation, Type::TEXT)],
            )
        });
        let msg = format!("round trips to the database: {}", self.round_trips_text());
        self.log
            .log(Level::Info, "fleet", &[("node", self.node.clone())], &msg);
    }
}
