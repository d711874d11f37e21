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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use postgres::{Client, NoTls};

use crate::config::{Cluster, ClusterUrl};
use crate::log::{Level, Logger};
use crate::record::RunRecord;

/// How many connections claims, leases and records share.
const POOL: usize = 8;

/// The schema, one entry per version; each runs once, in order, in one transaction.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE cronwarden_nodes (
        incarnation text PRIMARY KEY,
        node text NOT NULL,
        pid integer NOT NULL,
        started timestamptz NOT NULL DEFAULT now(),
        heartbeat timestamptz NOT NULL DEFAULT now(),
        stopped boolean NOT NULL DEFAULT false,
        daemon boolean NOT NULL DEFAULT false
     );
     CREATE TABLE cronwarden_claims (
        job text NOT NULL,
        scheduled_ms bigint NOT NULL,
        node text NOT NULL,
        run_id text NOT NULL,
        claimed timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (job, scheduled_ms)
     );
     CREATE TABLE cronwarden_leases (
        job text PRIMARY KEY,
        node text NOT NULL,
        incarnation text NOT NULL,
        run_id text NOT NULL,
        since timestamptz NOT NULL DEFAULT now(),
        renewed timestamptz NOT NULL DEFAULT now()
     );
     CREATE TABLE cronwarden_runs (
        run_id text PRIMARY KEY,
        job text NOT NULL,
        node text NOT NULL,
        incarnation text NOT NULL,
        scheduled_ms bigint NOT NULL,
        trigger text NOT NULL,
        params text NOT NULL DEFAULT '{}',
        state text NOT NULL,
        attempt integer NOT NULL DEFAULT 0,
        started timestamptz NOT NULL DEFAULT now(),
        ended timestamptz,
        record text
     );
     CREATE INDEX cronwarden_runs_job ON cronwarden_runs (job, started);
     CREATE INDEX cronwarden_runs_running ON cronwarden_runs (incarnation) WHERE state = 'running';
     CREATE TABLE cronwarden_triggers (
        id bigserial PRIMARY KEY,
        job text NOT NULL,
        params text NOT NULL DEFAULT '{}',
        run_id text NOT NULL DEFAULT
            to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDD\"T\"HH24MISS') || '-' ||
            substr(md5(random()::text), 1, 6),
        requested timestamptz NOT NULL DEFAULT now(),
        requested_by text NOT NULL DEFAULT current_user,
        taken_by text,
        taken timestamptz
     );
     CREATE INDEX cronwarden_triggers_open ON cronwarden_triggers (id) WHERE taken_by IS NULL;
     CREATE TABLE cronwarden_alerts (
        run_id text NOT NULL,
        event text NOT NULL,
        node text NOT NULL,
        sent timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, event)
     );
     CREATE TABLE cronwarden_paused (
        job text PRIMARY KEY,
        since timestamptz NOT NULL DEFAULT now()
     );",
];

/// How long claims are kept: a tick older than this is not run in fleet mode (its claim,
/// if any, may be gone), so catch-up reaches back at most this far.
pub const CLAIM_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The first argument that makes the binary the fence keeper.
pub const KEEPER_ARG: &str = "__cronwarden-fence-keeper";

/// The channel `trigger` notifies.
pub const TRIGGER_CHANNEL: &str = "cronwarden_trigger";

/// What a process does in the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The daemon: a node that claims ticks.
    Daemon,
    /// Runs jobs (`run`, `backfill`): registers a node and renews its leases.
    Node,
    /// Only reads and requests (`status`, `history`, `trigger`).
    Client,
}

/// This process's connection to the fleet.
pub struct Fleet {
    pub node: String,
    /// This process's own id in `cronwarden_nodes` (a node name can restart).
    pub incarnation: String,
    pub heartbeat: Duration,
    pub dead_after: Duration,
    pg: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pool: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
    leases: Mutex<HashMap<String, Arc<LeaseState>>>,
    /// When the last good renewal was sent.
    renewed: Mutex<Instant>,
    wake: Condvar,
    stopping: AtomicBool,
    /// The daemon nodes that heartbeated within `dead_after`, as of the last renewal.
    live: Mutex<Vec<String>>,
    log: Logger,
    /// The fence keeper's stdin: `+PGID` / `-PGID` lines for the running jobs' groups.
    keeper: Mutex<Option<std::process::ChildStdin>>,
}

struct LeaseState {
    run_id: String,
    /// Written to (or dropped) to stop the run: its interrupt source.
    fence: Mutex<Option<UnixStream>>,
    pgid: AtomicI32,
    fenced: AtomicBool,
    acquired: Instant,
}

/// A held cluster-wide lease on a job; released when dropped.
pub struct Lease {
    fleet: &'static Fleet,
    job: String,
    state: Arc<LeaseState>,
    /// The run's extra interrupt source: readable once the lease is fenced.
    pub fence: Option<UnixStream>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({}, {})", self.job, self.state.run_id)
    }
}

/// Who holds a lease, for messages and `status`.
#[derive(Clone, Debug, Default)]
pub struct LeaseHolder {
    pub node: String,
    pub run_id: String,
    pub since: String,
    /// Seconds since the last renewal, by the database clock.
    pub age_s: f64,
}

/// A run found on a dead node, now marked lost by this node.
pub struct LostRun {
    pub run_id: String,
    pub job: String,
    pub node: String,
    pub scheduled: Timestamp,
    pub trigger: String,
    pub params: BTreeMap<String, String>,
    pub attempt: u32,
}

/// A trigger request taken by this node.
pub struct Triggered {
    pub job: String,
    pub params: BTreeMap<String, String>,
    pub run_id: String,
}

static FLEET: OnceLock<Fleet> = OnceLock::new();

/// The fleet this process joined, if any.
pub fn get() -> Option<&'static Fleet> {
    FLEET.get()
}

use crate::daemon::lock_ignoring_poison as lock;

/// The connection string, from the table or its secret; never logged.
fn url(c: &Cluster) -> Result<String, String> {
    match &c.postgres_url {
        ClusterUrl::Inline(u) => Ok(u.clone()),
        ClusterUrl::Secret(s) => s.read("postgres_url").map(|v| v.trim().to_string()),
    }
}

/// TLS for `sslmode=prefer|require`: rustls with the system's and Mozilla's roots.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for bundle in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(certs) = CertificateDer::pem_file_iter(bundle) {
            for c in certs.flatten() {
                let _ = roots.add(c);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS set-up: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A database error, without the connection string.
fn db_err(e: postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => {
            let text = e.to_string();
            match std::error::Error::source(&e) {
                Some(s) if !text.contains(&s.to_string()) => format!("{text}: {s}"),
                _ => text,
            }
        }
    }
}

/// A column of a row, as an error (not a panic) when the table is not what this version
/// made.
fn col<'a, T: postgres::types::FromSql<'a>>(r: &'a postgres::Row, i: usize) -> Result<T, String> {
    r.try_get(i).map_err(db_err)
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

impl Fleet {
    /// Connects, creates or migrates the schema, and (unless a [`Role::Client`]) registers this
    /// process as a node and starts the renewal and fencing threads.
    pub fn join(cluster: &Cluster, role: Role, log: Logger) -> Result<&'static Fleet, String> {
        if let Some(f) = FLEET.get() {
            return Ok(f);
        }
        let text = url(cluster)?;
        let mut pg: postgres::Config = text
            .parse()
            .map_err(|e| format!("[cluster] postgres_url does not parse: {e}"))?;
        if pg.get_application_name().is_none() {
            pg.application_name(&format!("cronwarden {}", cluster.node));
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(cluster.heartbeat.max(Duration::from_secs(2)));
        }
        // A silent network must not hold a query past the lease: the kernel gives up on
        // unacknowledged data after a heartbeat.
        pg.tcp_user_timeout(cluster.heartbeat);
        pg.keepalives(true);
        pg.keepalives_idle(cluster.heartbeat);
        let tls = match pg.get_ssl_mode() {
            postgres::config::SslMode::Disable => None,
            _ => Some(tls()?),
        };
        let fleet = Fleet {
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
        };
        fleet.migrate()?;
        if role != Role::Client {
            let sent = Instant::now();
            fleet.with(|c| {
                c.execute(
                    "INSERT INTO cronwarden_nodes (incarnation, node, pid, daemon)
                     VALUES ($1, $2, $3, $4)",
                    &[
                        &fleet.incarnation,
                        &fleet.node,
                        &(std::process::id() as i32),
                        &(role == Role::Daemon),
                    ],
                )
            })?;
            *lock(&fleet.renewed) = sent;
        }
        if role != Role::Client {
            *lock(&fleet.keeper) = Some(start_keeper(cluster.heartbeat / 2)?);
        }
        let fleet = FLEET.get_or_init(|| fleet);
        if role != Role::Client {
            std::thread::Builder::new()
                .name("fleet-renew".into())
                .spawn(move || fleet.renew_loop())
                .map_err(|e| format!("cannot start a thread: {e}"))?;
            std::thread::Builder::new()
                .name("fleet-fence".into())
                .spawn(move || fleet.fence_loop())
                .map_err(|e| format!("cannot start a thread: {e}"))?;
        }
        Ok(fleet)
    }

    fn connect(&self) -> Result<Client, String> {
        let r = match &self.tls {
            Some(t) => self.pg.connect(t.clone()),
            None => self.pg.connect(NoTls),
        };
        r.map_err(|e| format!("cannot connect to PostgreSQL: {}", db_err(e)))
    }

    /// Runs `f` on a pooled connection, reconnecting once if the connection was lost.
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, String> {
        // A free connection if there is one, else wait for the next in turn.
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        let free = (0..self.pool.len())
            .map(|k| (i + k) % self.pool.len())
            .find_map(|k| self.pool[k].try_lock().ok());
        let mut slot = match free {
            Some(s) => s,
            None => lock(&self.pool[i]),
        };
        for tried in 0..2 {
            if slot.as_ref().is_none_or(|c| c.is_closed()) {
                *slot = Some(self.connect()?);
            }
            let Some(c) = slot.as_mut() else {
                continue;
            };
            match f(c) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_closed() || (tried == 0 && e.as_db_error().is_none()) => {
                    *slot = None;
                    if tried == 1 {
                        return Err(db_err(e));
                    }
                }
                Err(e) => return Err(db_err(e)),
            }
        }
        Err("lost the database connection".to_string())
    }

    fn migrate(&self) -> Result<(), String> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            // One migrator at a time across the fleet.
            tx.execute("SELECT pg_advisory_xact_lock(7306394713211530391)", &[])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS cronwarden_schema (version integer NOT NULL)",
            )?;
            let v: i32 = tx
                .query_opt("SELECT version FROM cronwarden_schema", &[])?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
            if v == 0 {
                tx.execute("INSERT INTO cronwarden_schema VALUES (0)", &[])?;
            }
            for (i, m) in MIGRATIONS.iter().enumerate().skip(v.max(0) as usize) {
                tx.batch_execute(m)?;
                tx.execute(
                    "UPDATE cronwarden_schema SET version = $1",
                    &[&(i as i32 + 1)],
                )?;
            }
            tx.commit()?;
            Ok(v)
        })
        .and_then(|v| {
            if v as usize > MIGRATIONS.len() {
                Err(format!(
                    "the database schema is version {v}, newer than this cronwarden knows ({}); \
                     upgrade cronwarden on this node",
                    MIGRATIONS.len()
                ))
            } else {
                Ok(())
            }
        })
    }

    /// This node's rank for a tick among the live daemon nodes (rendezvous hashing of node,
    /// job and instant): 0 for the node that should claim it first. The others wait a little
    /// per rank before they claim, so the ticks of one instant spread over the fleet, and a
    /// node that died is stood in for after a short delay, not after `dead_after`.
    pub fn rank(&self, job: &str, scheduled: Timestamp) -> usize {
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

    /// Claims many ticks in one statement; returns the run ids this node won. Rows go in
    /// in one order (job, instant) on every node, so concurrent batches wait for each other
    /// instead of deadlocking. A paused job's
    /// ticks are claimed by nobody, and a retry after a lost reply finds its own claims.
    pub fn claim_batch(
        &self,
        ticks: &[(String, Timestamp, String)],
    ) -> Result<HashSet<String>, String> {
        let jobs: Vec<&str> = ticks.iter().map(|t| t.0.as_str()).collect();
        let at: Vec<i64> = ticks.iter().map(|t| ms(t.1)).collect();
        let ids: Vec<&str> = ticks.iter().map(|t| t.2.as_str()).collect();
        let rows = self.with(|c| {
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
                &[&jobs, &at, &ids, &self.node],
            )
        })?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    /// Keeps the tables bounded: claims, trigger requests and alert marks past the claim
    /// retention (plus a day), node rows silent for a day, and per job the newest `keep`
    /// finished runs (`history_keep`).
    pub fn prune(&self, keep: usize) -> Result<u64, String> {
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

    /// Pauses or resumes a job for the whole fleet.
    pub fn set_paused(&self, job: &str, paused: bool) -> Result<(), String> {
        self.with(|c| {
            if paused {
                c.execute(
                    "INSERT INTO cronwarden_paused (job) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&job],
                )
            } else {
                c.execute("DELETE FROM cronwarden_paused WHERE job = $1", &[&job])
            }
        })
        .map(|_| ())
    }

    /// The paused jobs.
    pub fn paused(&self) -> Result<HashSet<String>, String> {
        self.with(|c| c.query("SELECT job FROM cronwarden_paused", &[]))
            .and_then(|rows| rows.iter().map(|r| col(r, 0)).collect())
    }

    /// Takes the job's lease for `run_id` if nobody holds a live one; else says who does.
    pub fn try_lease(
        &'static self,
        job: &str,
        run_id: &str,
    ) -> Result<Result<Lease, LeaseHolder>, String> {
        let (r, w) = UnixStream::pair().map_err(|e| e.to_string())?;
        let acquired = Instant::now();
        // Taken when free, or expired for dead_after by the database clock.
        let won = self.with(|c| {
            c.query_opt(
                "INSERT INTO cronwarden_leases AS l (job, node, incarnation, run_id)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (job) DO UPDATE
                    SET node = excluded.node, incarnation = excluded.incarnation,
                        run_id = excluded.run_id, since = now(), renewed = now()
                    WHERE l.renewed < now() - $5 * interval '1 second'
                       OR (l.incarnation = excluded.incarnation AND l.run_id = excluded.run_id)
                 RETURNING 1",
                &[
                    &job,
                    &self.node,
                    &self.incarnation,
                    &run_id,
                    &self.dead_after.as_secs_f64(),
                ],
            )
        })?;
        if won.is_none() {
            return Ok(Err(self.lease_holder(job)?.unwrap_or_default()));
        }
        let state = Arc::new(LeaseState {
            run_id: run_id.to_string(),
            fence: Mutex::new(Some(w)),
            pgid: AtomicI32::new(0),
            fenced: AtomicBool::new(false),
            acquired,
        });
        lock(&self.leases).insert(job.to_string(), Arc::clone(&state));
        self.wake.notify_all();
        Ok(Ok(Lease {
            fleet: self,
            job: job.to_string(),
            state,
            fence: Some(r),
        }))
    }

    /// Who holds the job's lease, if anyone.
    pub fn lease_holder(&self, job: &str) -> Result<Option<LeaseHolder>, String> {
        let row = self.with(|c| {
            c.query_opt(
                "SELECT node, run_id, to_json(since) #>> '{}',
                        extract(epoch FROM now() - renewed)::float8
                 FROM cronwarden_leases WHERE job = $1",
                &[&job],
            )
        })?;
        row.map(|r| {
            Ok(LeaseHolder {
                node: col(&r, 0)?,
                run_id: col(&r, 1)?,
                since: col(&r, 2)?,
                age_s: col(&r, 3)?,
            })
        })
        .transpose()
    }

    /// Every held lease, by job.
    pub fn leases(&self) -> Result<HashMap<String, LeaseHolder>, String> {
        let rows = self.with(|c| {
            c.query(
                "SELECT job, node, run_id, to_json(since) #>> '{}',
                        extract(epoch FROM now() - renewed)::float8
                 FROM cronwarden_leases",
                &[],
            )
        })?;
        rows.iter()
            .map(|r| {
                Ok((
                    col(r, 0)?,
                    LeaseHolder {
                        node: col(r, 1)?,
                        run_id: col(r, 2)?,
                        since: col(r, 3)?,
                        age_s: col(r, 4)?,
                    },
                ))
            })
            .collect()
    }

    /// Records that a run started (or, after a takeover, started again here).
    #[allow(clippy::too_many_arguments)]
    pub fn run_started(
        &self,
        run_id: &str,
        job: &str,
        trigger: &str,
        scheduled: Timestamp,
        params: &BTreeMap<String, String>,
        attempt: u32,
    ) -> Result<(), String> {
        let params = serde_json::to_string(params).unwrap_or_else(|_| "{}".into());
        self.with(|c| {
            c.execute(
                "INSERT INTO cronwarden_runs
                    (run_id, job, node, incarnation, scheduled_ms, trigger, params, state, attempt)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8)
                 ON CONFLICT (run_id) DO UPDATE
                    SET node = excluded.node, incarnation = excluded.incarnation,
                        state = 'running', ended = NULL, attempt = excluded.attempt",
                &[
                    &run_id,
                    &job,
                    &self.node,
                    &self.incarnation,
                    &ms(scheduled),
                    &trigger,
                    &params,
                    &(attempt as i32),
                ],
            )
        })
        .map(|_| ())
    }

    /// Records the attempt a run is on (a takeover goes on from the next one).
    pub fn attempt(&self, run_id: &str, n: u32) -> Result<(), String> {
        self.with(|c| {
            c.execute(
                "UPDATE cronwarden_runs SET attempt = $2
                 WHERE run_id = $1 AND incarnation = $3 AND state = 'running'",
                &[&run_id, &(n as i32), &self.incarnation],
            )
        })
        .map(|_| ())
    }

    /// Gives a fenced run up: no live node owns it any more, so the next scan on any node
    /// marks it lost and runs it again if it has retries left.
    pub fn abandon(&self, run_id: &str) -> Result<(), String> {
        self.with(|c| {
            c.execute(
                "UPDATE cronwarden_runs SET incarnation = 'fenced:' || incarnation
                 WHERE run_id = $1 AND incarnation = $2 AND state = 'running'",
                &[&run_id, &self.incarnation],
            )
        })
        .map(|_| ())
    }

    /// Records how a run ended. A run this node no longer owns (it was fenced and another
    /// node marked it lost) is left as the other node wrote it.
    pub fn run_ended(&self, rec: &RunRecord, scheduled: Timestamp) -> Result<bool, String> {
        let mut rec = rec.clone();
        rec.node = Some(self.node.clone());
        let text = serde_json::to_string(&rec).map_err(|e| e.to_string())?;
        self.with(|c| {
            c.execute(
                "INSERT INTO cronwarden_runs AS r
                    (run_id, job, node, incarnation, scheduled_ms, trigger, state, attempt,
                     ended, record)
                 VALUES ($1, $2, $3, $4, $5, $6, 'done', $7, now(), $8)
                 ON CONFLICT (run_id) DO UPDATE
                    SET state = 'done', ended = now(), record = excluded.record,
                        attempt = excluded.attempt
                    WHERE (r.incarnation = excluded.incarnation AND r.state = 'running')
                       OR (r.state = 'lost' AND r.record IS NULL)",
                &[
                    &rec.run_id,
                    &rec.job,
                    &self.node,
                    &self.incarnation,
                    &ms(scheduled),
                    &rec.trigger,
                    &(rec.attempts.len() as i32),
                    &text,
                ],
            )
        })
        .map(|n| n == 1)
    }

    /// Whether this node is the first to send `event` for `run_id` (alerts are sent once
    /// across the fleet). When the database cannot say, the alert goes out.
    pub fn first_alert(&self, run_id: &str, event: &str) -> bool {
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
    pub fn take_over_lost(&self) -> Result<Vec<LostRun>, String> {
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
                 RETURNING run_id, job, node, scheduled_ms, trigger, params, attempt",
                &[&self.dead_after.as_secs_f64()],
            )
        })?;
        rows.iter()
            .map(|r| {
                Ok(LostRun {
                    run_id: col(r, 0)?,
                    job: col(r, 1)?,
                    node: col(r, 2)?,
                    scheduled: Timestamp::from_millisecond(col::<i64>(r, 3)?)
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                    trigger: col(r, 4)?,
                    params: serde_json::from_str(col::<&str>(r, 5)?).unwrap_or_default(),
                    attempt: col::<i32>(r, 6)?.max(0) as u32,
                })
            })
            .collect()
    }

    /// Stores a lost run's record (written by the node that took it over).
    pub fn record_lost(&self, rec: &RunRecord) -> Result<(), String> {
        let text = serde_json::to_string(rec).map_err(|e| e.to_string())?;
        self.with(|c| {
            c.execute(
                "UPDATE cronwarden_runs SET record = $2 WHERE run_id = $1 AND state = 'lost'",
                &[&rec.run_id, &text],
            )
        })
        .map(|_| ())
    }

    /// Asks the fleet to run `job` once: one node takes the request. Returns the run id.
    pub fn request_trigger(
        &self,
        job: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let params = serde_json::to_string(params).unwrap_or_else(|_| "{}".into());
        let by = format!("{} (cronwarden trigger)", self.node);
        self.with(|c| {
            let mut tx = c.transaction()?;
            let row = tx.query_one(
                "INSERT INTO cronwarden_triggers (job, params, requested_by)
                 VALUES ($1, $2, $3) RETURNING run_id",
                &[&job, &params, &by],
            )?;
            tx.execute(&format!("NOTIFY {TRIGGER_CHANNEL}"), &[])?;
            tx.commit()?;
            row.try_get::<_, String>(0)
        })
    }

    /// Takes open trigger requests for jobs this node knows.
    pub fn take_triggers(&self, jobs: &[String]) -> Result<Vec<Triggered>, String> {
        let rows = self.with(|c| {
            c.query(
                "UPDATE cronwarden_triggers SET taken_by = $1, taken = now()
                 WHERE id IN (
                    SELECT id FROM cronwarden_triggers
                    WHERE taken_by IS NULL AND job = ANY($2)
                    ORDER BY id LIMIT 64 FOR UPDATE SKIP LOCKED)
                 RETURNING job, params, run_id",
                &[&self.node, &jobs],
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

    /// A run's record once it is over (`None` while it runs or before a node took it).
    pub fn finished(&self, run_id: &str) -> Result<Option<RunRecord>, String> {
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
    pub fn history(&self, job: &str, n: usize) -> Result<Vec<RunRecord>, String> {
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

    /// Waits for trigger notifications (or `timeout`) on a connection of its own; calls
    /// `on_wake` after each. Returns when `keep_going` says so.
    pub fn listen(&self, timeout: Duration, mut on_wake: impl FnMut() -> bool) {
        use postgres::fallible_iterator::FallibleIterator;
        loop {
            let mut c = match self.connect().and_then(|mut c| {
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

    /// Renews this node's heartbeat and leases every `heartbeat`; a lease that is gone from
    /// the table (taken over after a long stall) is fenced at once.
    fn renew_loop(&'static self) {
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
                    conn = Some(self.connect()?);
                }
                let c = conn.as_mut().ok_or("no connection")?;
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
                            self.fence(job, st, "its lease was taken over by another node");
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
    fn fence_loop(&'static self) {
        let term_after = self.dead_after.saturating_sub(self.heartbeat);
        let kill_after = self.dead_after.saturating_sub(self.heartbeat / 2);
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
                    self.fence(job, st, "could not renew its lease");
                    self.kill(st);
                } else if now >= base + term_after {
                    self.fence(job, st, "could not renew its lease");
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

    fn fence(&self, job: &str, st: &LeaseState, why: &str) {
        if st.fenced.swap(true, Ordering::SeqCst) {
            return;
        }
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
                 same time (another node may take it over {} after the last renewal)",
                crate::units::format_duration(self.dead_after)
            ),
        );
        // Dropping the write end makes the run's interrupt source readable.
        lock(&st.fence).take();
    }

    fn kill(&self, st: &LeaseState) {
        let pgid = st.pgid.load(Ordering::SeqCst);
        if pgid > 1 {
            // SAFETY: signals a process group; no memory involved.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }

    /// Marks this node stopped at a clean exit (after its runs ended and were recorded), so
    /// that the fleet does not count it among the live nodes for ranking.
    pub fn leave(&self) {
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

/// Starts the fence keeper: a small process of its own (its own process group, so a Ctrl-C
/// meant for `run` does not reach it) that holds the read end of a pipe. When this process
/// dies, even by SIGKILL, the pipe closes and the keeper stops the job groups it was told
/// about: a node whose cronwarden died must not leave a job running that another node is
/// about to take over.
fn start_keeper(grace: Duration) -> Result<std::process::ChildStdin, String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| format!("fence keeper: {e}"))?;
    let mut child = std::process::Command::new(exe)
        .arg(KEEPER_ARG)
        .arg(grace.as_millis().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the fence keeper: {e}"))?;
    let stdin = child.stdin.take().ok_or("fence keeper: no stdin")?;
    // Reaped by a thread so it never lingers as a zombie.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(stdin)
}

/// The fence keeper itself (`cronwarden __cronwarden-fence-keeper GRACE_MS`).
pub fn keeper(grace: Duration) {
    use std::io::BufRead;
    let mut groups: HashSet<i32> = HashSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (op, n) = line.split_at(line.len().min(1));
        let Ok(pgid) = n.trim().parse::<i32>() else {
            continue;
        };
        if pgid <= 1 {
            continue;
        }
        match op {
            "+" => {
                groups.insert(pgid);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    // The cronwarden process is gone: stop what it was running.
    let alive = |g: i32| {
        // SAFETY: kill(2) with signal 0 only checks; no memory involved.
        unsafe { libc::kill(-g, 0) == 0 }
    };
    for &g in &groups {
        // SAFETY: signals a process group; no memory involved.
        unsafe { libc::kill(-g, libc::SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && groups.iter().any(|&g| alive(g)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &g in &groups {
        // SAFETY: as above.
        unsafe { libc::kill(-g, libc::SIGKILL) };
    }
}

impl Fleet {
    /// Tells the fence keeper about a job's process group (`add`) or its end.
    pub fn keep(&self, pgid: i32, add: bool) {
        use std::io::Write;
        if let Some(k) = lock(&self.keeper).as_mut() {
            let _ = writeln!(k, "{}{pgid}", if add { '+' } else { '-' });
        }
    }
}

impl Lease {
    /// The process group of the job's current attempt (the fence kills it).
    pub fn set_pgid(&self, pgid: i32) {
        self.state.pgid.store(pgid, Ordering::SeqCst);
    }

    /// Whether the lease was fenced (the run must stop and must not be retried here).
    pub fn fenced(&self) -> bool {
        self.state.fenced.load(Ordering::SeqCst)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        lock(&self.fleet.leases).remove(&self.job);
        let r = self.fleet.with(|c| {
            c.execute(
                "DELETE FROM cronwarden_leases WHERE job = $1 AND incarnation = $2 AND run_id = $3",
                &[&self.job, &self.fleet.incarnation, &self.state.run_id],
            )
        });
        if let Err(e) = r {
            self.fleet.log.log(
                Level::Warn,
                "fleet",
                &[("job", self.job.clone())],
                &format!(
                    "cannot release the lease ({e}); it expires {} after its last renewal",
                    crate::units::format_duration(self.fleet.dead_after)
                ),
            );
        }
    }
}
