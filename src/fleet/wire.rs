//! What goes over the wire: every fleet statement is sent with its parameter types
//! (`query_typed`), so that it costs one round trip (parse, bind, execute and sync in one
//! flight, no separate prepare) and, being a single statement, needs no BEGIN/COMMIT. The
//! round trips are counted per operation, and the renewal's round-trip time is kept and held
//! against the latency budget (heartbeat / 4).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Client, Row};

/// What a round trip was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    /// The heartbeat: node row, leases, live nodes and the database clock.
    Renew,
    /// A batch of tick claims.
    Claim,
    /// Taking or releasing a job's lease.
    Lease,
    /// A run row written (start, attempt, end, fence, lost record, alert mark).
    Record,
    /// Everything else (schema, triggers, pauses, reads, pruning).
    Other,
}

impl Op {
    pub(super) const ALL: [Op; 5] = [Op::Renew, Op::Claim, Op::Lease, Op::Record, Op::Other];

    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Renew => "renew",
            Op::Claim => "claim",
            Op::Lease => "lease",
            Op::Record => "record",
            Op::Other => "other",
        }
    }
}

/// Round trips to the database since the process started, per operation, and how many of
/// each operation there were (so that "round trips per renewal" can be told).
#[derive(Default)]
pub(super) struct RoundTrips {
    trips: [AtomicU64; 5],
    ops: [AtomicU64; 5],
    /// The last renewal's round-trip time, in microseconds (0: none yet).
    renew_rtt_us: AtomicU64,
}

impl RoundTrips {
    pub(super) fn trip(&self, op: Op, n: u64) {
        self.trips[op as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn op(&self, op: Op) {
        self.ops[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// (round trips, operations) of `op` so far.
    pub(super) fn get(&self, op: Op) -> (u64, u64) {
        (
            self.trips[op as usize].load(Ordering::Relaxed),
            self.ops[op as usize].load(Ordering::Relaxed),
        )
    }

    pub(super) fn set_renew_rtt(&self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        self.renew_rtt_us.store(us, Ordering::Relaxed);
    }

    /// The last renewal's round-trip time.
    pub(super) fn renew_rtt(&self) -> Option<Duration> {
        match self.renew_rtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// The counters in the Prometheus text format.
    pub(super) fn exposition(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let name = "cronwarden_fleet_round_trips_total";
        let _ = writeln!(
            out,
            "# HELP {name} Round trips to the fleet database since the daemon started, by \
             operation.\n# TYPE {name} counter"
        );
        for op in Op::ALL {
            let _ = writeln!(out, "{name}{{op=\"{}\"}} {}", op.name(), self.get(op).0);
        }
        let name = "cronwarden_fleet_operations_total";
        let _ = writeln!(
            out,
            "# HELP {name} Fleet database operations since the daemon started (a renewal, a \
             claim batch, a lease taken or released, a run row written...).\n# TYPE {name} counter"
        );
        for op in Op::ALL {
            let _ = writeln!(out, "{name}{{op=\"{}\"}} {}", op.name(), self.get(op).1);
        }
        if let Some(rtt) = self.renew_rtt() {
            let name = "cronwarden_fleet_renew_rtt_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} The round-trip time of the last lease renewal.\n# TYPE {name} \
                 gauge\n{name} {}",
                rtt.as_secs_f64()
            );
        }
        out
    }
}

/// A pooled connection lent to one operation: every statement through it is one counted
/// round trip.
pub(super) struct Conn<'a> {
    pub(super) client: &'a mut Client,
    pub(super) op: Op,
    pub(super) trips: &'a RoundTrips,
}

/// A parameter and its type.
pub(super) type P<'a> = (&'a (dyn ToSql + Sync), Type);

impl Conn<'_> {
    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[P<'_>],
    ) -> Result<Vec<Row>, postgres::Error> {
        self.trips.trip(self.op, 1);
        self.client.query_typed(sql, params)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: &[P<'_>],
    ) -> Result<Option<Row>, postgres::Error> {
        self.trips.trip(self.op, 1);
        self.client.query_typed_opt(sql, params)
    }

    pub(super) fn query_one(
        &mut self,
        sql: &str,
        params: &[P<'_>],
    ) -> Result<Row, postgres::Error> {
        self.trips.trip(self.op, 1);
        self.client.query_typed_one(sql, params)
    }

    pub(super) fn execute(&mut self, sql: &str, params: &[P<'_>]) -> Result<u64, postgres::Error> {
        self.trips.trip(self.op, 1);
        self.client.execute_typed(sql, params)
    }
}
