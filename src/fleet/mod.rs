//! Fleet mode (`[cluster]`): several hosts share one job table through PostgreSQL.
//!
//! - **Claims**: every node computes the same ticks; before a tick runs, the node inserts
//!   (job, scheduled instant) into `cronwarden_claims` with `ON CONFLICT DO NOTHING`, and only
//!   the node whose insert went in runs it. Claims are keyed by the scheduled instant, so clock
//!   skew between hosts never doubles a run, and a node more than a second off the
//!   database's clock schedules by the database's (`clock`), so it does not run early.
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
//! Files: `schema` (migrations), `pool` (connections), `wire` (one round trip per
//! statement, counted), `claims` (ticks, triggers, pauses), `leases` (the per-job lease and
//! its guard), `fence` (renewal and fencing threads), `renew` (the heartbeat statement, the
//! latency budget, outages), `clock` (the offset from the database's clock), `reconnect`
//! (what follows a new renewal connection: the outbox first), `keeper` (the fence keeper
//! process), `missed` (ticks no node could claim, claimed again once the database answers),
//! `outbox` and `report` (what the node tells the database about its runs, kept until it is
//! written), `runs` (run rows, history, lost runs), `view` (what `status` reads: nodes, runs
//! truly running, the last real result), `backend` (the [`crate::coord::Coordinator`]
//! implementation that ties them together).

mod backend;
mod claims;
mod clock;
mod fence;
mod keeper;
mod leases;
mod missed;
mod outbox;
mod pool;
mod reconnect;
mod renew;
mod report;
mod runs;
mod schema;
mod view;
mod wire;

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

/// How many connections claims, leases and records share (besides them, a daemon holds one
/// for its renewals and one for the trigger listener: see docs/fleet.md).
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
    /// Keepalives and user timeouts, of this side and (through startup options) the server's.
    keepalive: pool::Keepalive,
    /// The server refused `tcp_user_timeout` (older than PostgreSQL 12): not asked again.
    old_server: AtomicBool,
    /// Round trips per operation, and the last renewal's round-trip time.
    trips: wire::RoundTrips,
    /// The offset of the database's clock from this host's.
    clock: clock::Clock,
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
    /// Since when this node reaches the database without a break (its start, or the end of
    /// its last outage): it declares no other node lost before it has been back for two
    /// heartbeats, the time the others need to come back from the same outage.
    /// (`None` while its renewals fail.)
    back_since: Mutex<Option<Instant>>,
    /// Outbox entries the database refused, and when to try them again.
    held_back: Mutex<HashMap<std::path::PathBuf, Instant>>,
    /// Work found while reporting (a run that ran twice), for the daemon to take.
    notices: Mutex<Vec<crate::coord::Work>>,
    /// The due ticks this node could not claim, to claim again once the database answers.
    unclaimed: Mutex<missed::Kept>,
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

/// The connection settings for `cluster`: the node as `application_name` (unless the URL
/// names one), and keepalives and a user timeout, so that a silent network holds no query
/// past the lease (the kernel gives up on unacknowledged data after a heartbeat). The
/// connect timeout and the server's side are set per connection (`Fleet::connect`).
fn pg_config(cluster: &Cluster, keepalive: &pool::Keepalive) -> Result<postgres::Config, String> {
    let mut pg: postgres::Config = url(cluster)?
        .parse()
        .map_err(|e| format!("[cluster] postgres_url does not parse: {e}"))?;
    if pg.get_application_name().is_none() {
        pg.application_name(&format!("cronwarden {}", cluster.node));
    }
    keepalive.apply(&mut pg);
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
        let keepalive = pool::Keepalive::new(cluster.heartbeat);
        let pg = pg_config(cluster, &keepalive)?;
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
            keepalive,
            old_server: AtomicBool::new(false),
            trips: wire::RoundTrips::default(),
            clock: clock::Clock::default(),
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
            held_back: Mutex::default(),
            back_since: Mutex::new(Some(Instant::now())),
            notices: Mutex::new(Vec::new()),
            unclaimed: Mutex::default(),
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

    /// Registers this process as a node (a daemon, or one that only runs jobs), and takes a
    /// first sample of the database's clock (so that a daemon schedules by the corrected
    /// time from its start).
    fn register(&self, daemon: bool) -> Result<(), String> {
        use postgres::types::Type;
        let sent = Instant::now();
        let mut sample = None;
        self.with(wire::Op::Other, |c| {
            let wall = Timestamp::now();
            let t0 = Instant::now();
            let row = c.query_one(
                "INSERT INTO cronwarden_nodes (incarnation, node, pid, daemon)
                 VALUES ($1, $2, $3, $4)
                 RETURNING extract(epoch FROM clock_timestamp())::float8",
                &[
                    (&self.incarnation, Type::TEXT),
                    (&self.node, Type::TEXT),
                    (&(std::process::id() as i32), Type::INT4),
                    (&daemon, Type::BOOL),
                ],
            )?;
            sample = Some((wall, t0.elapsed(), row.try_get::<_, f64>(0)?));
            Ok(())
        })?;
        *lock(&self.renewed) = sent;
        if let Some((wall, rtt, db)) = sample {
            self.clock_sample(wall, rtt, db);
        }
        Ok(())
    }
}
