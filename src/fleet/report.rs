//! Telling the database about runs, through the outbox: every end, hand-over and lease
//! release goes to the outbox first and then to the database; what the database did not
//! take is replayed, oldest first, as soon as a connection works again (before the
//! heartbeat that follows a reconnection). Replaying also reconciles: a run that another
//! node declared lost while it finished here is recorded as it ended (and, when that node
//! has not started it again, never runs again); one that another node did run again is
//! kept as a second row and told as `ran-twice`.

use std::path::Path;
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::types::Type;

use super::outbox::Entry;
use super::pool::db_err;
use super::wire::{Conn, Op, P};
use super::{Fleet, ms};
use crate::coord::{RanTwice, Role, Work};
use crate::log::{Level, Logger};
use crate::record::{Outcome, RunRecord};
use crate::sync::lock;

/// A run's row as its end writes it (parameters $1 to $10 of [`EndRow::params`]).
macro_rules! end_insert {
    () => {
        "INSERT INTO cronwarden_runs AS r
            (run_id, job, node, incarnation, scheduled_ms, trigger, state, attempt, started,
             ended, record)
         VALUES ($1, $2, $3, $4, $5, $6, 'done', $7, coalesce(to_timestamp($8 / 1000), now()),
                 coalesce(to_timestamp($9 / 1000), now()), $10)"
    };
}

/// What a run's end writes into its row.
struct EndRow<'a> {
    rec: &'a RunRecord,
    node: &'a str,
    incarnation: &'a str,
    scheduled_ms: i64,
    attempts: i32,
    /// Milliseconds since the epoch (`None`: the database's now).
    started: Option<f64>,
    ended: Option<f64>,
    /// The record as JSON.
    text: String,
}

impl EndRow<'_> {
    /// The parameters of `end_insert!`, for the row `run_id`.
    fn params<'p>(&'p self, run_id: &'p String) -> [P<'p>; 10] {
        [
            (run_id, Type::TEXT),
            (&self.rec.job, Type::TEXT),
            (&self.node, Type::TEXT),
            (&self.incarnation, Type::TEXT),
            (&self.scheduled_ms, Type::INT8),
            (&self.rec.trigger, Type::TEXT),
            (&self.attempts, Type::INT4),
            (&self.started, Type::FLOAT8),
            (&self.ended, Type::FLOAT8),
            (&self.text, Type::TEXT),
        ]
    }
}

/// How long an entry the database refused waits before it is tried again.
const HOLD_BACK: Duration = Duration::from_secs(60);

/// Whether the database refused the statement itself (an ERROR: a right missing, a schema it
/// does not know), as opposed to the connection failing (closed, or a FATAL such as an
/// administrator's shutdown), after which the entry goes in on the next connection.
fn refused(e: &postgres::Error) -> bool {
    !e.is_closed() && e.as_db_error().is_some_and(|d| d.severity() == "ERROR")
}

/// What the database said, for the log.
fn refusal(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => e.to_string(),
    }
}

/// What the database said to an entry.
enum Delivered {
    /// Written (or written before, by an earlier replay).
    Done,
    /// Written, but the fleet had marked the run lost meanwhile (nobody ran it again).
    WasLost,
    /// A takeover's skip (it never started): the run's row is another process's.
    NotRun,
    /// Another process of the fleet ran it again: `(node, state of its run)`.
    RanTwice(String, String),
}

fn ms_of(t: &str) -> Option<f64> {
    t.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64)
}

impl Fleet {
    /// Tells the database `entry`, through the outbox. A failure is logged (the entry
    /// waits in the outbox), never returned: the run is over whatever the database says.
    pub(super) fn report(&self, entry: Entry, log: &Logger) {
        let fields = [
            ("job", entry.job().to_string()),
            ("run_id", entry.run_id().to_string()),
        ];
        let path = match self.outbox.push(&entry) {
            Ok(p) => Some(p),
            Err(e) => {
                let msg = format!(
                    "cannot queue the run's {} in {}: {e}; trying the database directly",
                    entry.kind(),
                    self.outbox.dir().display()
                );
                log.log(Level::Error, "fleet", &fields, &msg);
                None
            }
        };
        // Older entries first: the database learns of runs in the order they ended.
        if path.is_some() && self.outbox.count_up_to(2) > 1 {
            if self.replay_outbox().is_err() {
                self.queued(&entry, log, "an older entry is still waiting");
            }
            return;
        }
        match self.with(Op::Record, |c| self.deliver(c, &entry)) {
            Ok(d) => {
                self.told(&entry, d, log);
                if let Some(p) = path {
                    self.outbox.done(&p);
                }
            }
            Err(e) => self.queued(&entry, log, &e),
        }
    }

    fn queued(&self, entry: &Entry, log: &Logger, why: &str) {
        let fields = [
            ("job", entry.job().to_string()),
            ("run_id", entry.run_id().to_string()),
        ];
        let msg = format!(
            "cannot tell the database the run's {} now ({why}); it waits in {} and is written \
             as soon as the database can be reached again",
            entry.kind(),
            self.outbox.dir().display()
        );
        log.log(Level::Warn, "fleet", &fields, &msg);
    }

    /// Replays the outbox on a pooled connection (see [`Fleet::replay_on`]).
    pub(super) fn replay_outbox(&self) -> Result<usize, String> {
        if self.outbox.is_empty() {
            return Ok(0);
        }
        self.with_counting_itself(Op::Record, |c| Ok(self.replay_on(c)))
            .and_then(|r| r)
    }

    /// Replays the outbox on the renewal connection `client` (errors are the heartbeat's to
    /// find: a connection lost meanwhile fails it).
    pub(super) fn replay_waiting(&self, client: &mut Client) {
        let mut c = Conn {
            client,
            op: Op::Record,
            trips: &self.trips,
        };
        let _ = self.replay_on(&mut c);
    }

    /// Replays the outbox on `c`, oldest first; stops at the first entry the database
    /// could not take (the connection is gone) and returns how many went in.
    pub(super) fn replay_on(&self, c: &mut Conn<'_>) -> Result<usize, String> {
        // One replay at a time, and nobody waits for it (the renewal thread least of all: a
        // statement to a silent server may take a while). What it did not list yet goes in
        // at the next heartbeat's replay.
        let _one = match self.replaying.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(0),
        };
        let mut n = 0;
        for p in self.outbox.pending() {
            let entry = match p.entry {
                Ok(e) => e,
                Err(e) => {
                    let aside = self.outbox.set_aside(&p.path);
                    let msg = format!(
                        "an outbox entry cannot be read ({e}); moved to {}",
                        aside.display()
                    );
                    self.log.log(Level::Error, "fleet", &[], &msg);
                    continue;
                }
            };
            if lock(&self.held_back)
                .get(&p.path)
                .is_some_and(|until| Instant::now() < *until)
            {
                continue;
            }
            self.trips.op(Op::Record);
            match self.deliver(c, &entry) {
                Ok(d) => {
                    self.told(&entry, d, &self.log);
                    self.outbox.done(&p.path);
                    lock(&self.held_back).remove(&p.path);
                    n += 1;
                }
                // The database refused this entry (a right missing, a schema it does not
                // know): the others go on, and this one is tried again later.
                Err(e) if refused(&e) => self.hold_back(&p.path, &entry, &e),
                Err(e) => return Err(db_err(e)),
            }
        }
        if n > 0 {
            let msg = format!("wrote {n} queued run report(s) to the database");
            self.log
                .log(Level::Info, "fleet", &[("node", self.node.clone())], &msg);
        }
        Ok(n)
    }

    /// Keeps an entry the database refused for [`HOLD_BACK`] (said once per entry).
    fn hold_back(&self, path: &Path, entry: &Entry, e: &postgres::Error) {
        let first = lock(&self.held_back)
            .insert(path.to_path_buf(), Instant::now() + HOLD_BACK)
            .is_none();
        if first {
            let fields = [
                ("job", entry.job().to_string()),
                ("run_id", entry.run_id().to_string()),
            ];
            let msg = format!(
                "the database refuses the run's {} ({}); it stays in {} and is tried again \
                 every {}",
                entry.kind(),
                refusal(e),
                self.outbox.dir().display(),
                crate::units::format_duration(HOLD_BACK)
            );
            self.log.log(Level::Error, "fleet", &fields, &msg);
        }
    }

    /// One entry to the database, in one statement (two for a run that ran twice).
    fn deliver(&self, c: &mut Conn<'_>, entry: &Entry) -> Result<Delivered, postgres::Error> {
        match entry {
            Entry::End {
                record,
                scheduled_ms,
                node,
                incarnation,
            } => self.deliver_end(c, record, *scheduled_ms, node, incarnation),
            Entry::Abandon {
                run_id,
                incarnation,
                ..
            } => c
                .execute(
                    "UPDATE cronwarden_runs SET incarnation = 'fenced:' || incarnation
                     WHERE run_id = $1 AND incarnation = $2 AND state = 'running'",
                    &[(run_id, Type::TEXT), (incarnation, Type::TEXT)],
                )
                .map(|_| Delivered::Done),
            Entry::Release {
                job,
                run_id,
                incarnation,
            } => c
                .execute(
                    "DELETE FROM cronwarden_leases
                     WHERE job = $1 AND incarnation = $2 AND run_id = $3",
                    &[
                        (job, Type::TEXT),
                        (incarnation, Type::TEXT),
                        (run_id, Type::TEXT),
                    ],
                )
                .map(|_| Delivered::Done),
        }
    }

    /// A run's end: written when the run's row is still this process's (running, or marked
    /// lost meanwhile); a row that another process took over is left as it is, and this
    /// end is kept beside it (run id `RUN@INCARNATION`).
    fn deliver_end(
        &self,
        c: &mut Conn<'_>,
        rec: &RunRecord,
        scheduled_ms: i64,
        node: &str,
        incarnation: &str,
    ) -> Result<Delivered, postgres::Error> {
        let mut rec = rec.clone();
        rec.node = Some(node.to_string());
        let end = EndRow {
            text: serde_json::to_string(&rec).unwrap_or_default(),
            rec: &rec,
            node,
            incarnation,
            scheduled_ms,
            attempts: rec.attempt_count().min(i32::MAX as u32) as i32,
            started: ms_of(&rec.started),
            ended: ms_of(&rec.ended),
        };
        let (attempts, ended, text) = (end.attempts, end.ended, &end.text);
        let row = c.query_one(
            concat!(
                "WITH prev AS (
                    SELECT state, incarnation, node, record FROM cronwarden_runs
                    WHERE run_id = $1 FOR UPDATE),
                 up AS (",
                end_insert!(),
                " ON CONFLICT (run_id) DO UPDATE
                    SET state = 'done', ended = excluded.ended, record = excluded.record,
                        attempt = excluded.attempt
                    WHERE r.incarnation = excluded.incarnation
                      AND r.state IN ('running', 'lost')
                RETURNING 1)
             SELECT (SELECT count(*) FROM up)::int4, (SELECT state FROM prev),
                    (SELECT incarnation FROM prev), (SELECT node FROM prev),
                    (SELECT record::json ->> 'outcome' FROM prev)"
            ),
            &end.params(&rec.run_id),
        )?;
        let written: i32 = row.try_get(0)?;
        let state: Option<String> = row.try_get(1)?;
        let by: Option<String> = row.try_get(2)?;
        let other: Option<String> = row.try_get(3)?;
        if written == 1 {
            return Ok(match state.as_deref() {
                Some("lost") => Delivered::WasLost,
                _ => Delivered::Done,
            });
        }
        let outcome: Option<String> = row.try_get(4)?;
        if by.as_deref() == Some(incarnation) {
            // Written by an earlier replay of this same entry.
            return Ok(Delivered::Done);
        }
        if rec.outcome == Outcome::Skipped && rec.attempts.is_empty() {
            // A takeover of the run that never started here: nothing ran twice.
            return Ok(Delivered::NotRun);
        }
        if state.as_deref() == Some("done") && outcome.as_deref() == Some("skipped") {
            // The node that took the run over did not run it: this end is the run's.
            let n = c.execute(
                "UPDATE cronwarden_runs
                 SET node = $2, incarnation = $3, record = $4, attempt = $5,
                     ended = coalesce(to_timestamp($6 / 1000), now())
                 WHERE run_id = $1 AND state = 'done' AND incarnation = $7",
                &[
                    (&rec.run_id, Type::TEXT),
                    (&node, Type::TEXT),
                    (&incarnation, Type::TEXT),
                    (text, Type::TEXT),
                    (&attempts, Type::INT4),
                    (&ended, Type::FLOAT8),
                    (&by, Type::TEXT),
                ],
            )?;
            if n == 1 {
                return Ok(Delivered::WasLost);
            }
        }
        // Another process runs it again (or did): keep this end beside its row.
        let dup = format!("{}@{incarnation}", rec.run_id);
        c.execute(
            concat!(end_insert!(), " ON CONFLICT (run_id) DO NOTHING"),
            &end.params(&dup),
        )?;
        Ok(Delivered::RanTwice(
            other.unwrap_or_else(|| "?".into()),
            state.unwrap_or_else(|| "?".into()),
        ))
    }

    /// Logs what reconciling found, and hands a run that ran twice to the daemon (which
    /// alerts it) through [`Fleet::notices`].
    fn told(&self, entry: &Entry, d: Delivered, log: &Logger) {
        let Entry::End { record, node, .. } = entry else {
            return;
        };
        let fields = [
            ("job", record.job.clone()),
            ("run_id", record.run_id.clone()),
        ];
        match d {
            Delivered::Done | Delivered::NotRun => {}
            Delivered::WasLost => {
                let msg = format!(
                    "the fleet had marked this run lost while node {node} could not report it; \
                     it ended here ({}, {}) and is recorded so; it is not run again",
                    record.outcome.as_str(),
                    record.ended
                );
                log.log(Level::Warn, "reconciled", &fields, &msg);
            }
            Delivered::RanTwice(other, state) => {
                let again = if state == "running" {
                    format!("node {other} is running it again")
                } else {
                    format!("node {other} ran it again")
                };
                let reason = format!(
                    "ran twice: node {node} finished it at {} ({}) but could not report it in \
                     time; {again} (the fleet declared {node} lost)",
                    record.ended,
                    record.outcome.as_str()
                );
                log.log(Level::Error, "ran-twice", &fields, &reason);
                if self.role != Role::Daemon {
                    // Only a daemon alerts; this host's log has it.
                    return;
                }
                lock(&self.notices).push(Work::RanTwice(Box::new(RanTwice {
                    record: (**record).clone(),
                    reason,
                })));
            }
        }
    }

    /// Moves a run marked lost back to running, for this process (the node that takes it
    /// over): false when its own node reported its end meanwhile (it must not run again).
    pub(super) fn adopt_lost_row(&self, run_id: &str) -> Result<bool, String> {
        self.with(Op::Record, |c| {
            c.query(
                "UPDATE cronwarden_runs
                 SET state = 'running', node = $2, incarnation = $3, ended = NULL
                 WHERE run_id = $1 AND state = 'lost' RETURNING 1",
                &[
                    (&run_id, Type::TEXT),
                    (&self.node, Type::TEXT),
                    (&self.incarnation, Type::TEXT),
                ],
            )
        })
        .map(|rows| !rows.is_empty())
    }

    /// The end of a run, as an outbox entry of this process.
    pub(super) fn end_entry(&self, rec: &RunRecord) -> Entry {
        let scheduled = rec.scheduled.parse::<jiff::Timestamp>().unwrap_or_default();
        Entry::End {
            record: Box::new(rec.clone()),
            scheduled_ms: ms(scheduled),
            node: self.node.clone(),
            incarnation: self.incarnation.clone(),
        }
    }

    /// The runs this process found to have run twice since the last call.
    pub(super) fn take_notices(&self) -> Vec<Work> {
        std::mem::take(&mut *lock(&self.notices))
    }
}
