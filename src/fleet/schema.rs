//! The fleet's schema: one migration per version, each run once, in order, in one
//! transaction, by whichever cronwarden process connects first (under a transaction-level
//! advisory lock), and versioned in `cronwarden_schema`.

use super::Fleet;
use super::wire::Op;

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
    // 2: each node's last renewal round trip and clock offset (for `status` on any node).
    "ALTER TABLE cronwarden_nodes
        ADD COLUMN rtt_ms double precision,
        ADD COLUMN clock_offset_ms double precision;",
];

impl Fleet {
    pub(super) fn migrate(&self) -> Result<(), String> {
        self.with(Op::Other, |c| {
            // Rare (once per process start): the plain client, its round trips counted by
            // hand (BEGIN, lock, create, read, insert, migrations, COMMIT).
            c.trips.trip(Op::Other, 7);
            let mut tx = c.client.transaction()?;
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
}
