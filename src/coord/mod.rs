//! Coordination: what keeps two runs of one job apart and tells the rest of the world about
//! runs. Local mode ([`Local`]: flock files, the state directory, the control socket) and
//! fleet mode (the fleet module: PostgreSQL) are the two implementations of [`Coordinator`].
//! The command layer picks one from the table, and the daemon and the run path are handed
//! it; neither asks which one they have.

pub(crate) mod local;
pub(crate) mod standing;
pub(crate) mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

pub(crate) use local::{Local, ReplaceNote, read_paused, write_paused};

use crate::config::{Job, Settings};
use crate::exit::Failure;
use crate::lock::{Holder, JobLock};
use crate::log::Logger;
use crate::record::RunRecord;
use crate::runner::Interrupt;

/// What a run does about a run of the same job that this process already has in progress
/// (the process knows its own runs: whether one holds a job never depends on a lock file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OwnRun {
    /// What the job's `overlap` says (a new tick, a trigger, `cronwarden run`).
    Overlap,
    /// Wait for it, whatever `overlap` says: a catch-up run, one of a job's missed instants
    /// that run one after another, oldest first, is never skipped because of its own
    /// process's run. (Against another process's run, `overlap` applies.)
    Wait,
}

/// What a process does (in fleet mode: how it joins the fleet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The daemon: claims ticks and takes over lost runs.
    Daemon,
    /// Runs jobs (`run`, `backfill`).
    Node,
    /// Only reads and requests (`status`, `history`, `trigger`, `pause`).
    Client,
}

/// A run's exclusion, held for the whole run (retries included): the job's flock (whose
/// descriptor the job's processes inherit) and, where the backend has more to hold (a fleet
/// lease), its guard. Released when dropped.
pub(crate) struct Exclusion {
    pub(crate) lock: JobLock,
    pub(crate) guard: Option<Box<dyn Guard>>,
    /// Where a run that replaces this one says so (`overlap = "replace"`).
    pub(crate) replaced: ReplaceNote,
}

/// What a backend holds beyond the flock while a run goes on.
pub(crate) trait Guard: Send {
    /// A source that becomes readable when the run must stop at once (taken once).
    fn stop_source(&mut self) -> Option<UnixStream>;
    /// The process group of the attempt running now (stopped with the run).
    fn set_pgid(&self, pgid: i32);
    /// Why the run was stopped from outside, once it was: it is then neither retried nor
    /// recorded as ended here.
    fn fenced(&self) -> Option<String>;
}

/// A run that starts (or, taken over from a lost node, starts again here).
pub(crate) struct RunStart<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) job: &'a str,
    pub(crate) trigger: &'a str,
    pub(crate) scheduled: Timestamp,
    pub(crate) params: &'a BTreeMap<String, String>,
    pub(crate) attempt: u32,
}

/// A due scheduled instant of a job, with the run id it would run as.
#[derive(Clone, Debug)]
pub(crate) struct Tick {
    pub(crate) job: String,
    pub(crate) scheduled: Timestamp,
    pub(crate) run_id: String,
}

/// Work that reaches the daemon through its backend rather than its own schedule.
pub(crate) enum Work {
    /// `trigger JOB` asked some node to run it.
    Trigger {
        job: String,
        params: BTreeMap<String, String>,
        run_id: String,
    },
    /// A run whose node went silent, now this node's to record (and retry).
    Lost(LostRun),
    /// A run this process finished, found to have been run again by another node that
    /// declared this one lost before it could report (to be alerted).
    RanTwice(Box<RanTwice>),
}

/// A run that ran twice: its end here, and what happened.
pub(crate) struct RanTwice {
    pub(crate) record: RunRecord,
    /// What happened, for a person.
    pub(crate) reason: String,
}

/// A run found on a node that stopped heartbeating, marked lost by this node.
pub(crate) struct LostRun {
    pub(crate) run_id: String,
    pub(crate) job: String,
    pub(crate) node: String,
    pub(crate) scheduled: Timestamp,
    pub(crate) trigger: String,
    pub(crate) params: BTreeMap<String, String>,
    pub(crate) attempt: u32,
    /// How long the node was silent before its runs counted as lost.
    pub(crate) silent_for: Duration,
}

/// What the daemon offers a backend that brings it work ([`Coordinator::serve`]).
pub(crate) trait WorkSink: Sync {
    /// The jobs of the table in force.
    fn jobs(&self) -> Vec<String>;
    /// `history_keep` of the table in force.
    fn history_keep(&self) -> usize;
    /// False once the daemon is stopping.
    fn open(&self) -> bool;
    fn take(&self, work: Work);
}

/// A job's run in progress, as `status` shows it.
pub(crate) struct Running {
    pub(crate) holder: Holder,
    /// The fleet node it runs on.
    pub(crate) node: Option<String>,
}

/// A fleet node heard from within `dead_after`, as the status page shows it.
pub(crate) struct NodeInfo {
    pub(crate) node: String,
    /// Its last heartbeat (RFC 3339), and how long ago it was, in seconds.
    pub(crate) heartbeat: String,
    pub(crate) age_s: f64,
    /// A daemon (else a `run` or another command).
    pub(crate) daemon: bool,
    pub(crate) pid: i32,
}

/// How a `trigger` request went.
pub(crate) struct TriggerReply {
    pub(crate) run_id: String,
    /// With `--wait`: how the run ended.
    pub(crate) outcome: Option<String>,
    pub(crate) exit_code: u8,
    /// Why the wait ended without an outcome (told on standard error).
    pub(crate) note: Option<String>,
}

/// The operations the run path, the daemon and the commands need from a backend.
pub(crate) trait Coordinator: Send + Sync {
    /// The node name records carry (fleet mode), or `None`.
    fn node(&self) -> Option<&str>;

    /// Takes the run's exclusion per the job's `overlap` (and `own`, about a run of this
    /// process): `Ok(None)` for `allow`, `Err` with the reason when the run must not happen
    /// (held and `skip`, or interrupted).
    fn acquire(
        &self,
        settings: &Settings,
        job: &Job,
        log: &Logger,
        run_id: &str,
        interrupt: &Interrupt,
        own: OwnRun,
    ) -> Result<Option<Exclusion>, String>;
    /// At the daemon's wake-ups: puts back a removed `lock_dir`, and the lock files of the
    /// runs this process holds (created again and locked for them), and logs it.
    fn keep_locks(&self, settings: &Settings, log: &Logger);
    /// Tells the backend a run started (a failure to do so is logged; the run goes on).
    fn run_started(&self, run: &RunStart<'_>, log: &Logger);
    /// The attempt a run is on (a takeover goes on from the next one).
    fn attempt_started(&self, run_id: &str, attempt: u32);
    /// A job's process group started or ended (to be stopped should this process die).
    fn process_started(&self, pgid: i32);
    fn process_ended(&self, pgid: i32);
    /// Records how a run ended.
    fn record(&self, settings: &Settings, rec: &RunRecord, log: &Logger);
    /// Records a run stopped from outside ([`Guard::fenced`]) and leaves it to whoever
    /// takes it over.
    fn abandon(&self, settings: &Settings, rec: &RunRecord, log: &Logger);
    /// Records a run whose supervising process died on this host, once the next supervisor
    /// saw it end (`execute::orphan`); true when the caller is to alert it (in a fleet, the
    /// node that takes a lost run over alerts it).
    fn record_orphan(&self, settings: &Settings, rec: &RunRecord, log: &Logger) -> bool;
    /// Whether this process is the first to send `event` for `run_id`.
    fn first_alert(&self, run_id: &str, event: &str) -> bool;

    /// Decides which due ticks run here and calls `won` for each (at once, or later from a
    /// thread of the backend's own).
    fn claim(self: Arc<Self>, ticks: Vec<Tick>, won: Box<dyn FnMut(Tick) + Send>);
    /// Brings the daemon work from elsewhere until the sink closes (returns at once when
    /// the backend has none to bring).
    fn serve(&self, sink: &dyn WorkSink);
    /// Stores the record of a lost run that will not be retried.
    fn record_lost(&self, rec: &RunRecord);
    /// Takes a lost run over for its next attempt here: false when its own node reported
    /// its end meanwhile (it finished after all and must not run again).
    fn adopt_lost(&self, _run_id: &str) -> Result<bool, String> {
        Ok(true)
    }
    /// Says goodbye at a clean exit (after the runs ended and were recorded).
    fn leave(&self);

    /// The newest `n` finished runs of a job, oldest first.
    fn history(&self, settings: &Settings, job: &str, n: usize) -> Result<Vec<RunRecord>, Failure>;
    /// The runs in progress of these jobs.
    fn running(
        &self,
        settings: &Settings,
        jobs: &[&Job],
    ) -> Result<HashMap<String, Running>, Failure>;
    /// The live nodes of the fleet (none in local mode).
    fn nodes(&self) -> Result<Vec<NodeInfo>, Failure> {
        Ok(Vec::new())
    }
    /// The paused jobs.
    fn paused(&self, settings: &Settings) -> Result<HashSet<String>, Failure>;
    /// Whether a daemon runs the schedule: `Some(false)` when none does, so no job runs by
    /// itself; `None` when that cannot be told from here (a fleet's nodes come and go).
    fn daemon_running(&self, _settings: &Settings) -> Option<bool> {
        None
    }
    /// Pauses or resumes a job; returns what to tell the user.
    fn set_paused(&self, settings: &Settings, job: &str, paused: bool) -> Result<String, Failure>;
    /// Asks for one run of `job` now (and with `wait`, waits for its end; SIGINT and SIGTERM
    /// stop the wait, not the run).
    fn trigger(
        &self,
        settings: &Settings,
        job: &str,
        params: &BTreeMap<String, String>,
        wait: bool,
    ) -> Result<TriggerReply, Failure>;
}
