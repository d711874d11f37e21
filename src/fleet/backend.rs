//! Fleet mode as a [`Coordinator`]: the local flock plus the cluster-wide lease, runs
//! recorded locally and in the database, ticks claimed by rank, and the work other nodes
//! leave (trigger requests, lost runs).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::outbox::Entry;
use super::{CLAIM_RETENTION, Fleet};
use crate::config::{Job, Settings};
use crate::coord::{
    self, Coordinator, Exclusion, LastResult, NodeInfo, OwnRun, RunStart, Running, Tick,
    TriggerReply, Work, WorkSink,
};
use crate::exit::{self, Failure};
use crate::log::{Level, Logger};
use crate::record::RunRecord;
use crate::runner::Interrupt;
use crate::sync::lock;

/// How long a fleet node leaves a tick to the node ranked before it.
const CLAIM_STEP: Duration = Duration::from_millis(150);

/// How often a fleet node prunes the fleet's tables.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

fn db_failure(e: String) -> Failure {
    Failure::new(exit::NO_DAEMON, format!("fleet database: {e}"))
}

impl Coordinator for Fleet {
    fn node(&self) -> Option<&str> {
        Some(&self.node)
    }

    fn now(&self) -> Timestamp {
        self.corrected_now()
    }

    fn clock_skew(&self) -> Option<String> {
        self.skew().map(|o| {
            format!(
                "this host's clock is {} the database's; the node schedules by the database's                  clock until it is corrected",
                super::clock::describe(o)
            )
        })
    }

    fn metrics(&self) -> String {
        self.trips.exposition()
    }

    fn notes(&self) -> Vec<String> {
        self.node_notes()
    }

    fn acquire(
        &self,
        settings: &Settings,
        job: &Job,
        log: &Logger,
        run_id: &str,
        interrupt: &Interrupt,
        own: OwnRun,
    ) -> Result<Option<Exclusion>, String> {
        let want = coord::local::Want {
            dir: &settings.lock_dir,
            job,
            run_id,
            own,
        };
        let Some(mut exclusion) = coord::local::acquire_lock(&self.locks, &want, log, interrupt)?
        else {
            return Ok(None);
        };
        let lease = self.wait_for_lease(job, log, run_id, interrupt, own)?;
        exclusion.guard = Some(Box::new(lease));
        Ok(Some(exclusion))
    }

    fn keep_locks(&self, settings: &Settings, log: &Logger) {
        self.locks.keep(&settings.lock_dir, log);
    }

    fn run_started(&self, run: &RunStart<'_>, log: &Logger) {
        if let Err(e) = self.insert_run(run) {
            log.log(
                Level::Warn,
                "fleet",
                &[
                    ("job", run.job.to_string()),
                    ("run_id", run.run_id.to_string()),
                ],
                &format!("cannot record the run in the database: {e}"),
            );
        }
    }

    fn attempt_started(&self, run_id: &str, attempt: u32) {
        let _ = self.set_attempt(run_id, attempt);
    }

    fn process_started(&self, pgid: i32) {
        self.keep(pgid, true);
    }

    fn process_ended(&self, pgid: i32) {
        self.keep(pgid, false);
    }

    fn prune_by_age(&self, cfg: &crate::config::Config, log: &Logger) {
        // The copies kept in the state directory; the database is pruned in `take_work`.
        coord::local::prune_by_age(cfg, log);
    }

    fn record(&self, settings: &Settings, rec: &RunRecord, log: &Logger) {
        coord::local::save(settings, rec, log);
        self.report(self.end_entry(rec), log);
    }

    fn abandon(&self, settings: &Settings, rec: &RunRecord, log: &Logger) {
        // Left for the node that takes it over (it records it lost, alerts, retries).
        coord::local::save(settings, rec, log);
        let entry = Entry::Abandon {
            job: rec.job.clone(),
            run_id: rec.run_id.clone(),
            incarnation: self.incarnation.clone(),
        };
        self.report(entry, log);
    }

    fn record_orphan(&self, settings: &Settings, rec: &RunRecord, log: &Logger) -> bool {
        // The run's row is the fleet's: the node that marks it lost records, alerts and
        // retries it; this host's history keeps what happened here.
        coord::local::save(settings, rec, log);
        false
    }

    fn first_alert(&self, run_id: &str, event: &str) -> bool {
        self.mark_alert(run_id, event)
    }

    fn claim(self: Arc<Self>, ticks: Vec<Tick>, won: Box<dyn FnMut(Tick) + Send>) {
        if ticks.is_empty() {
            return;
        }
        let fleet = Arc::clone(&self);
        let spawned = std::thread::Builder::new()
            .name("claim".into())
            .spawn(move || fleet.claim_by_rank(ticks, won));
        if let Err(e) = spawned {
            // Without a thread for the batch, nothing of it runs here: other nodes claim it.
            self.log.log(
                Level::Error,
                "dispatch",
                &[],
                &format!("cannot start a thread to claim due ticks: {e}"),
            );
        }
    }

    /// A claimed instant is this node's to run: nobody else will, so it never joins
    /// another.
    fn ticks_coalesce(&self) -> bool {
        false
    }

    fn serve(&self, sink: &dyn WorkSink) {
        let mut next_scan = Instant::now();
        let mut next_prune = Instant::now();
        self.listen(self.heartbeat, || {
            if !sink.open() {
                return false;
            }
            self.take_work(sink, &mut next_scan, &mut next_prune);
            true
        });
    }

    fn record_lost(&self, rec: &RunRecord) {
        let _ = self.store_lost(rec);
    }

    fn adopt_lost(&self, run_id: &str) -> Result<bool, String> {
        self.adopt_lost_row(run_id)
    }

    fn leave(&self) {
        self.forget_unclaimed();
        self.mark_stopped();
    }

    fn history(
        &self,
        _settings: &Settings,
        job: &str,
        n: usize,
    ) -> Result<Vec<RunRecord>, Failure> {
        self.history_rows(job, n).map_err(db_failure)
    }

    fn last_result(&self, _settings: &Settings, job: &str) -> Result<LastResult, Failure> {
        self.last_result_rows(job).map_err(db_failure)
    }

    fn nodes(&self, _settings: &Settings) -> Result<Vec<NodeInfo>, Failure> {
        self.node_rows().map_err(db_failure)
    }

    fn running(
        &self,
        _settings: &Settings,
        jobs: &[&Job],
    ) -> Result<HashMap<String, Running>, Failure> {
        let wanted: HashSet<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        self.running_view(&wanted).map_err(db_failure)
    }

    fn paused(&self, _settings: &Settings) -> Result<HashSet<String>, Failure> {
        self.paused_jobs().map_err(db_failure)
    }

    fn set_paused(&self, _settings: &Settings, job: &str, paused: bool) -> Result<String, Failure> {
        self.set_paused_row(job, paused).map_err(db_failure)?;
        let cmd = if paused { "pause" } else { "resume" };
        Ok(format!("{job}: {cmd}d on every node"))
    }

    /// A request in the database that exactly one node takes.
    fn trigger(
        &self,
        _settings: &Settings,
        job: &str,
        params: &BTreeMap<String, String>,
        wait: bool,
    ) -> Result<TriggerReply, Failure> {
        let run_id = self.request_trigger(job, params).map_err(db_failure)?;
        let mut reply = TriggerReply {
            run_id,
            outcome: None,
            exit_code: exit::OK,
            note: None,
        };
        if !wait {
            return Ok(reply);
        }
        let interrupt = Interrupt::on_signals(&[libc::SIGINT, libc::SIGTERM])
            .map_err(|e| Failure::usage(format!("cannot install signal handlers: {e}")))?;
        loop {
            if let Some(rec) = self.finished(&reply.run_id).map_err(db_failure)? {
                reply.outcome = Some(rec.outcome.as_str().to_string());
                reply.exit_code = rec.outcome.exit_code(None);
                return Ok(reply);
            }
            if let Some(sig) = interrupt.sleep(Duration::from_millis(200)) {
                reply.note = Some("still queued or running; stopped waiting".to_string());
                reply.exit_code = exit::for_signal(sig);
                return Ok(reply);
            }
        }
    }
}

impl Fleet {
    /// One wake-up of [`Coordinator::serve`]: trigger requests, and every heartbeat the runs
    /// of nodes that stopped heartbeating, and now and then the pruning of old rows.
    fn take_work(&self, sink: &dyn WorkSink, next_scan: &mut Instant, next_prune: &mut Instant) {
        for notice in self.take_notices() {
            sink.take(notice);
        }
        self.reclaim_unclaimed(sink);
        match self.take_triggers(&sink.jobs()) {
            Ok(list) => {
                for t in list {
                    sink.take(Work::Trigger {
                        job: t.job,
                        params: t.params,
                        run_id: t.run_id,
                    });
                }
            }
            Err(e) => self.warn(&format!("cannot take trigger requests: {e}")),
        }
        // A node just back from an outage leaves the others, cut off by the same outage,
        // the time to come back before it calls them lost.
        let settled = lock(&self.back_since).is_some_and(|t| t.elapsed() >= self.heartbeat * 2);
        if settled && Instant::now() >= *next_scan {
            *next_scan = Instant::now() + self.heartbeat;
            match self.take_over_lost() {
                Ok(lost) => lost.into_iter().for_each(|l| sink.take(Work::Lost(l))),
                Err(e) => self.warn(&format!("cannot look for lost runs: {e}")),
            }
        }
        if Instant::now() >= *next_prune {
            *next_prune = Instant::now() + PRUNE_EVERY;
            if let Err(e) = self.prune(sink.history_keep(), sink.history_max_ages()) {
                self.warn(&format!("cannot prune: {e}"));
            }
        }
    }

    fn warn(&self, message: &str) {
        self.log.log(Level::Warn, "fleet", &[], message);
    }

    /// Claims due ticks by rank: this node's own share at once, then every [`CLAIM_STEP`]
    /// the share of the next node in line (taken only if that node has not claimed it by
    /// then). The claim is what keeps a tick from running twice in fleet mode (a restarted
    /// node's catch-up finds it taken).
    fn claim_by_rank(&self, ticks: Vec<Tick>, mut won: Box<dyn FnMut(Tick) + Send>) {
        let mut by_rank: BTreeMap<usize, Vec<Tick>> = BTreeMap::new();
        for t in ticks {
            by_rank
                .entry(self.rank(&t.job, t.scheduled))
                .or_default()
                .push(t);
        }
        let t0 = Instant::now();
        for (rank, ticks) in by_rank {
            let at = t0 + CLAIM_STEP * rank as u32;
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            let ids = self.claim_ticks(&ticks);
            for t in ticks {
                if ids.contains(&t.run_id) {
                    won(t);
                }
            }
        }
    }

    /// The ticks within the claim retention; the older ones are logged and refused (another
    /// node may have run them, and their claims are gone).
    pub(super) fn within_retention<'a>(&self, ticks: &'a [Tick]) -> Vec<&'a Tick> {
        let retention = jiff::SignedDuration::try_from(CLAIM_RETENTION).unwrap_or_default();
        let now = Timestamp::now();
        let (old, wanted): (Vec<&Tick>, Vec<&Tick>) = ticks
            .iter()
            .partition(|t| now.duration_since(t.scheduled) > retention);
        for t in old {
            self.log.log(
                Level::Warn,
                "claim",
                &[
                    ("job", t.job.clone()),
                    ("scheduled", t.scheduled.to_string()),
                ],
                "older than the fleet's claim retention (7d): not run, since another node may \
                 have run it and its claim is gone",
            );
        }
        wanted
    }

    /// Claims ticks for this node; the run ids won. Ticks older than the claim retention
    /// are refused; while the database is unreachable the claim is retried for
    /// `dead_after`, then the ticks are given up for now: named in the log and kept, to be
    /// claimed again once the database answers (`missed`).
    fn claim_ticks(&self, ticks: &[Tick]) -> BTreeSet<String> {
        let wanted = self.within_retention(ticks);
        if wanted.is_empty() {
            return BTreeSet::new();
        }
        let batch: Vec<(String, Timestamp, String)> = wanted
            .iter()
            .map(|t| (t.job.clone(), t.scheduled, t.run_id.clone()))
            .collect();
        let deadline = Instant::now() + self.dead_after;
        let mut delay = Duration::from_millis(100);
        let mut failing_since = None;
        loop {
            let e = match self.claim_batch(&batch) {
                Ok(won) => return won.into_iter().collect(),
                Err(e) => e,
            };
            let f = [("ticks", batch.len().to_string())];
            let since = *failing_since.get_or_insert_with(|| {
                let msg = format!("cannot claim: {e}; retrying");
                self.log.log(Level::Warn, "claim", &f, &msg);
                Timestamp::now()
            });
            if Instant::now() + delay >= deadline {
                self.log.log(
                    Level::Error,
                    "claim",
                    &f,
                    &format!(
                        "cannot claim: {e}; giving these ticks up on this node for now (each \
                         is named below, and claimed again once the database answers)"
                    ),
                );
                let kept = wanted.into_iter().cloned().collect();
                self.keep_unclaimed(kept, since, &e);
                return BTreeSet::new();
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(self.heartbeat);
        }
    }
}
