//! The cluster-wide per-job lease: a row in `cronwarden_leases`, taken when free or expired
//! (by the database clock), renewed by the fence thread, released when the run ends.

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::types::Type;

use super::Fleet;
use super::pool::col;
use super::wire::Op;
use crate::config::{Job, Overlap};
use crate::coord::{Guard, OwnRun};
use crate::log::{Level, Logger};
use crate::runner::Interrupt;
use crate::sync::lock;

pub(super) struct LeaseState {
    pub(super) run_id: String,
    /// Written to (or dropped) to stop the run: its interrupt source.
    pub(super) fence: Mutex<Option<UnixStream>>,
    pub(super) pgid: AtomicI32,
    pub(super) fenced: AtomicBool,
    /// Why it was fenced ("could not renew its lease for 3s"), once it was.
    pub(super) why: Mutex<String>,
    pub(super) acquired: Instant,
}

/// A held cluster-wide lease on a job; released when dropped.
pub(super) struct Lease {
    fleet: Arc<Fleet>,
    job: String,
    state: Arc<LeaseState>,
    /// The run's extra interrupt source: readable once the lease is fenced.
    fence: Option<UnixStream>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({}, {})", self.job, self.state.run_id)
    }
}

/// Who holds a lease, for messages and `status`.
#[derive(Clone, Debug, Default)]
pub(crate) struct LeaseHolder {
    pub(crate) node: String,
    pub(crate) run_id: String,
    pub(crate) since: String,
    /// Seconds since the last renewal, by the database clock.
    pub(crate) age_s: f64,
}

impl Fleet {
    /// Takes the job's lease for `run_id` if nobody holds a live one; else says who does.
    /// One statement (one round trip) does both.
    fn try_lease(&self, job: &str, run_id: &str) -> Result<Result<Lease, LeaseHolder>, String> {
        let (r, w) = UnixStream::pair().map_err(|e| e.to_string())?;
        let acquired = Instant::now();
        // Taken when free, or expired for dead_after by the database clock. When not taken,
        // the holder as of the statement's start (none if it took the lease meanwhile).
        let row = self.with(Op::Lease, |c| {
            c.query_one(
                "WITH take AS (
                    INSERT INTO cronwarden_leases AS l (job, node, incarnation, run_id)
                    VALUES ($1, $2, $3, $4)
                    ON CONFLICT (job) DO UPDATE
                       SET node = excluded.node, incarnation = excluded.incarnation,
                           run_id = excluded.run_id, since = now(), renewed = now()
                       WHERE l.renewed < now() - $5 * interval '1 second'
                          OR (l.incarnation = excluded.incarnation AND l.run_id = excluded.run_id)
                    RETURNING 1)
                 SELECT (SELECT count(*) FROM take), h.node, h.run_id,
                        to_json(h.since) #>> '{}',
                        extract(epoch FROM now() - h.renewed)::float8
                 FROM (SELECT 1) one
                 LEFT JOIN cronwarden_leases h ON h.job = $1",
                &[
                    (&job, Type::TEXT),
                    (&self.node, Type::TEXT),
                    (&self.incarnation, Type::TEXT),
                    (&run_id, Type::TEXT),
                    (&self.dead_after.as_secs_f64(), Type::FLOAT8),
                ],
            )
        })?;
        if col::<i64>(&row, 0)? == 0 {
            let holder = match col::<Option<String>>(&row, 1)? {
                Some(node) => LeaseHolder {
                    node,
                    run_id: col(&row, 2)?,
                    since: col(&row, 3)?,
                    age_s: col(&row, 4)?,
                },
                None => LeaseHolder::default(),
            };
            return Ok(Err(holder));
        }
        let state = Arc::new(LeaseState {
            run_id: run_id.to_string(),
            fence: Mutex::new(Some(w)),
            pgid: AtomicI32::new(0),
            fenced: AtomicBool::new(false),
            why: Mutex::new(String::new()),
            acquired,
        });
        lock(&self.leases).insert(job.to_string(), Arc::clone(&state));
        self.wake.notify_all();
        let fleet = self.me.upgrade().ok_or("the fleet connection is closing")?;
        Ok(Ok(Lease {
            fleet,
            job: job.to_string(),
            state,
            fence: Some(r),
        }))
    }

    /// The lease that goes with the local lock. `skip` gives up when another node holds it;
    /// `queue` and `replace` wait for it (a run on another node cannot be stopped from
    /// here, so `replace` waits like `queue` across nodes). A catch-up run ([`OwnRun::Wait`]:
    /// an instant this node claimed late, or one that runs after another of its job) waits
    /// whatever `overlap` says: the lease is per job, not per instant, and the run holding
    /// it is another instant's, so skipping would lose this one.
    pub(super) fn wait_for_lease(
        &self,
        job: &Job,
        log: &Logger,
        run_id: &str,
        interrupt: &Interrupt,
        own: OwnRun,
    ) -> Result<Lease, String> {
        let mut told = false;
        loop {
            let holder = match self.try_lease(&job.name, run_id) {
                Ok(Ok(lease)) => return Ok(lease),
                Ok(Err(h)) => h,
                Err(e) => return Err(format!("cannot take the fleet lease of the job: {e}")),
            };
            let who = format!(
                "node {} (run {}, since {}, renewed {:.1}s ago)",
                holder.node, holder.run_id, holder.since, holder.age_s
            );
            if job.overlap == Overlap::Skip && own == OwnRun::Overlap {
                return Err(format!("another run holds the fleet lease: {who}"));
            }
            if !told {
                told = true;
                log.log(
                    Level::Info,
                    "queued",
                    &[
                        ("job", job.name.to_string()),
                        ("run_id", run_id.to_string()),
                    ],
                    &format!("waiting for the fleet lease held by {who}"),
                );
            }
            if interrupt.sleep(Duration::from_millis(500)).is_some() {
                return Err("interrupted while waiting for the fleet lease".to_string());
            }
        }
    }
}

impl Guard for Lease {
    fn stop_source(&mut self) -> Option<UnixStream> {
        self.fence.take()
    }

    fn set_pgid(&self, pgid: i32) {
        self.state.pgid.store(pgid, Ordering::SeqCst);
    }

    fn fenced(&self) -> Option<String> {
        self.state.fenced.load(Ordering::SeqCst).then(|| {
            format!(
                "fenced: this node {}, so it stopped the job; not retried here: the node \
                 that records the run lost runs it again if the job has retries left",
                lock(&self.state.why)
            )
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        lock(&self.fleet.leases).remove(&self.job);
        let r = self.fleet.with(Op::Lease, |c| {
            c.execute(
                "DELETE FROM cronwarden_leases WHERE job = $1 AND incarnation = $2 AND run_id = $3",
                &[
                    (&self.job, Type::TEXT),
                    (&self.fleet.incarnation, Type::TEXT),
                    (&self.state.run_id, Type::TEXT),
                ],
            )
        });
        if let Err(e) = r {
            // Released when the database is back (or it expires first).
            let entry = super::outbox::Entry::Release {
                job: self.job.clone(),
                run_id: self.state.run_id.clone(),
                incarnation: self.fleet.incarnation.clone(),
            };
            let queued = match self.fleet.outbox.push(&entry) {
                Ok(_) => "it is released when the database is back, or",
                Err(_) => "",
            };
            self.fleet.log.log(
                Level::Warn,
                "fleet",
                &[("job", self.job.clone())],
                &format!(
                    "cannot release the lease ({e}); {queued} it expires {} after its last \
                     renewal",
                    crate::units::format_duration(self.fleet.dead_after)
                ),
            );
        }
    }
}
