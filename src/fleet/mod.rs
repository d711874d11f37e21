//! Fleet mode (`[cluster]`): several hosts share one job table through PostgreSQL.
//!
//! - **Claims**: every node computes the same ticks; before a tick runs, the node inserts
//!   (job, scheduled instant) into `cronwarden_claims` with `ON CONFLICT DO NOTHING`, and only
//!   the node whose insert went in runs it. Claims are keyed by the scheduled instant, so clock
//!   skew between hosts delays a run, never doubles it.
//! - **Leases**: the cluster-wide per-job lock is a row in `cronwarden_leases`, renewed every
//!   `heartbeat` and timed by the database clock. Another node may take it only when it was
//!   not renewed for `dead_after`. A holder that could not renew for `dead_after - heartbeat`
//!   (its own monotonic clock, counted from when the last good renewal was *sent*) stops its
//!   job first: SIGTERM then, SIGKILL at `dead_after - heartbeat / 2`. A connection-bound
//!   advisory lock alone would not do: PostgreSQL frees it the moment the connection drops,
//!   while the job may still be running.
//! - **Runs**: every run is a row in `cronwarden_runs` (state `running`, then `done` with its
//!   record), so `status` and `history` on any node show the fleet. A run whose node stopped
//!   heartbeating for `dead_after` is marked `lost` by exactly one other node (a conditional
//!   `UPDATE`), which alerts and, with retries left, runs it again with the same run id and
//!   scheduled instant.
//! - **Triggers**: `trigger JOB` inserts a row in `cronwarden_triggers` (and `NOTIFY`s); one
//!   node takes it with `FOR UPDATE SKIP LOCKED`.
//!
//! The schema is created and migrated by whichever cronwarden process connects first, under
//! a transaction-level advisory lock, and versioned in `cronwarden_schema`.
//!
//! Files: `schema` (migrations), `pool` (connections), `claims` (ticks, triggers, pauses),
//! `leases` (the per-job lease and its guard), `fence` (renewal and fencing threads),
//! `keeper` (the fence keeper process), `runs` (run rows, history, lost runs), `view` (what
//! `status` reads: nodes, runs truly running, the last real result), `backend`
//! (the [`crate::coord::Coordinator`] implementation that ties them together).

mod backend;
mod claims;
mod fence;
mod keeper;
mod leases;
mod outbox;
mod pool;
mod report;
mod runs;
mod schema;
mod view;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use jiff::Timestamp;

pub use keeper::{KEEPER_ARG, keeper};

use crate::config::{Cluster, ClusterUrl};
use crate::coord::Role;
use crate::log::{Level, Logger};
use crate::sync::lock;

/// How many connections claims, leases and records share.
const POOL: usize = 8;

/// How long claims are kept: a tick older than this is not run in fleet mode (its claim,
/// if any, may be gone), so catch-up reaches back at most this far.
pub(crate) const CLAIM_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The channel `trigger` notifies.
const TRIGGER_CHANNEL: &str = "cronwarden_trigger";

/// This process's connection to the fleet.
pub(crate) struct Fleet {
    /// This process itself (for the leases it hands out, which release themselves).
    me: Weak<Fleet>,
    pub(crate) node: String,
    /// This process's own id in `cronwarden_nodes` (a node name can restart).
    pub(crate) incarnation: String,
    pub(crate) heartbeat: Duration,
    pub(crate) dead_after: Duration,
    pg: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pool: Vec<Mutex<Option<postgres::Client>>>,
    next: AtomicUsize,
    leases: Mutex<HashMap<String, Arc<leases::LeaseState>>>,
    /// When the last good renewal was sent.
    renewed: Mutex<Instant>,
    wake: Condvar,
    stopping: AtomicBool,
    /// The daemon nodes that heartbeated within `dead_after`, as of the last renewal.
    live: Mutex<Vec<String>>,
    log: Logger,
    /// The fence keeper's stdin: `+PGID` / `-PGID` lines for the running jobs' groups.
    keeper: Mutex<Option<std::process::ChildStdin>>,
    /// The jobs this process's runs hold (the local flock part of the exclusion).
    locks: Arc<crate::lock::Registry>,
    /// What this process does in the fleet.
    role: Role,
    /// Run reports waiting for the database (this host's, shared with its other processes).
    outbox: outbox::Outbox,
    /// One replay of the outbox at a time in this process.
    replaying: Mutex<()>,
    /// Work found while reporting (a run that ran twice), for the daemon to take.
    notices: Mutex<Vec<crate::coord::Work>>,
}

/// The connection string, from the table or its secret; never logged.
fn url(c: &Cluster) -> Result<String, String> {
    match &c.postgres_url {
        ClusterUrl::Inline(u) => Ok(u.clone()),
        ClusterUrl::Secret(s) => s.read("postgres_url").map(|v| v.trim().to_string()),
    }
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// The connection settings for `cluster`: a connect timeout, and a silent network must not
/// hold a query past the lease (the kernel gives up on unacknowledged data after a
/// heartbeat).
fn pg_config(cluster: &Cluster) -> Result<postgres::Config, String> {
    let mut pg: postgres::Config = url(cluster)?
        .parse()
        .map_err(|e| format!("[cluster] postgres_url does not parse: {e}"))?;
    if pg.get_application_name().is_none() {
        pg.application_name(&format!("cronwarden {}", cluster.node));
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(cluster.heartbeat.max(Duration::from_secs(2)));
    }
    pg.tcp_user_timeout(cluster.heartbeat);
    pg.keepalives(true);
    pg.keepalives_idle(cluster.heartbeat);
    Ok(pg)
}

impl Fleet {
    /// Connects, creates or migrates the schema, and (unless a [`Role::Client`]) registers this
    /// process as a node and starts the renewal and fencing threads.
    /// Run reports that could not reach the database wait under `state_dir` (the outbox)
    /// and are written first, before this process registers.
    pub(crate) fn join(
        cluster: &Cluster,
        state_dir: &std::path::Path,
        role: Role,
        log: Logger,
    ) -> Result<Arc<Fleet>, String> {
        let pg = pg_config(cluster)?;
        let tls = match pg.get_ssl_mode() {
            postgres::config::SslMode::Disable => None,
            _ => Some(pool::tls()?),
        };
        let fleet = Arc::new_cyclic(|me| Fleet {
            me: me.clone(),
            node: cluster.node.clone(),
            // Unique per process start: the node, the pid and a random suffix.
            incarnation: format!(
                "{}-{}-{:08x}",
                cluster.node,
                std::process::id(),
                (crate::policy::random01() * f64::from(u32::MAX)) as u32
            ),
            heartbeat: cluster.heartbeat,
            dead_after: cluster.dead_after,
            pg,
            tls,
            pool: (0..POOL).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            leases: Mutex::new(HashMap::new()),
            renewed: Mutex::new(Instant::now()),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
            log,
            keeper: Mutex::new(None),
            locks: Arc::default(),
            role,
            outbox: outbox::Outbox::new(state_dir),
            replaying: Mutex::new(()),
            notices: Mutex::new(Vec::new()),
        });
        fleet.migrate()?;
        if role == Role::Client {
            return Ok(fleet);
        }
        if let Err(e) = fleet.replay_outbox() {
            let msg = format!("cannot write the queued run reports yet: {e}");
            fleet.log.log(Level::Warn, "fleet", &[], &msg);
        }
        fleet.register(role == Role::Daemon)?;
        *lock(&fleet.keeper) = Some(keeper::start(cluster.heartbeat / 2)?);
        for (name, work) in [("fleet-renew", 0), ("fleet-fence", 1)] {
            let f = Arc::clone(&fleet);
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    if work == 0 {
                        f.renew_loop()
                    } else {
                        f.fence_loop()
                    }
                })
                .map_err(|e| format!("cannot start a thread: {e}"))?;
        }
        if role == Role::Daemon {
            fleet.log.log(
                Level::Info,
                "fleet",
                &[
                    ("node", fleet.node.clone()),
                    ("incarnation", fleet.incarnation.clone()),
                ],
                "joined the fleet",
            );
        }
        Ok(fleet)
    }

    /// Registers this process as a node (a daemon, or one that only runs jobs).
    fn register(&self, daemon: bool) -> Result<(), String> {
        let sent = Instant::now();
        self.with(|c| {
            c.execute(
                "INSERT INTO cronwarden_nodes (incarnation, node, pid, daemon)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &self.incarnation,
                    &self.node,
                    &(std::process::id() as i32),
                    &daemon,
                ],
            )
        })?;
        *lock(&self.renewed) = sent;
        Ok(())
    }
}
