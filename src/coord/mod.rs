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

use crate::config::{Config, Job, Settings};
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
    /// process's run. (Against another process's run on this host, `overlap` applies; in a
    /// fleet, a catch-up run also waits for the fleet lease another node's run holds: its
    /// instant was claimed by this node, and nobody else would run it.)
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
    /// Due instants of a job that this node could not claim when they were due (the
    /// backend was unreachable), kept, and claimed by this node once it could again, so no
    /// node ran them: missed, and this node's to run as the job's `catchup` says.
    Late(LateTicks),
}

/// A run that ran twice: its end here, and what happened.
pub(crate) struct RanTwice {
    pub(crate) record: RunRecord,
    /// What happened, for a person.
    pub(crate) reason: String,
}

/// A job's instants claimed late ([`Work::Late`]), oldest first.
pub(crate) struct LateTicks {
    pub(crate) job: String,
    pub(crate) ticks: Vec<Tick>,
    /// How many older instants of the job were missed too but not kept (beyond the most a
    /// `catchup` runs).
    pub(crate) not_kept: usize,
    /// When this node first failed to claim one of them (the outage as this node saw it).
    pub(crate) since: Timestamp,
    /// Why the claim failed then.
    pub(crate) error: String,
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
    /// How long the node had been silent when its run was marked lost (by the database
    /// clock; `dead_after` when that is not known).
    pub(crate) silent_for: Duration,
    /// Why nobody owns the run any more.
    pub(crate) why: LostWhy,
}

/// Why a run was found without an owner ([`LostRun`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LostWhy {
    /// Its node stopped heartbeating for `dead_after`.
    Silent,
    /// Its node exited cleanly without recording the run's end.
    Stopped,
    /// Its node stopped it (fenced) and handed it over.
    Fenced,
}

/// What the daemon offers a backend that brings it work ([`Coordinator::serve`]).
pub(crate) trait WorkSink: Sync {
    /// The jobs of the table in force.
    fn jobs(&self) -> Vec<String>;
    /// `history_keep` of the table in force.
    fn history_keep(&self) -> usize;
    /// `history_max_age` of the table in force: `[settings]`' (for jobs not in the table),
    /// and each job's own (job, else `[settings]`; `None`: no age limit).
    fn history_max_ages(&self) -> (Option<Duration>, Vec<(String, Option<Duration>)>);
    /// False once the daemon is stopping.
    fn open(&self) -> bool;
    fn take(&self, work: Work);
}

/// A job's run in progress, as `status` shows it.
pub(crate) struct Running {
    pub(crate) holder: Holder,
    /// The fleet node it runs on.
    pub(crate) node: Option<String>,
    /// Why it may not be running after all (fleet mode: its node is silent, or is alive but
    /// no longer holds the run's lease); `None` when it is known to run.
    pub(crate) doubt: Option<Doubt>,
}

/// What is known of a run whose row says `running` but that may not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Doubt {
    /// `unreachable`, `lost` (its node is silent: it may still run), `stopped`,
    /// `unreported` (it ended: its end is not recorded) or `fenced` (stopped by its node).
    pub(crate) kind: &'static str,
    /// For a person: what is known and what happens next.
    pub(crate) text: String,
}

/// A fleet node's state, from its last heartbeat by the database clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeState {
    /// Heartbeated within two heartbeats.
    Live,
    /// Late, but silent for less than `dead_after`: its runs are not taken over yet.
    Unreachable,
    /// Silent for `dead_after` or more without saying goodbye: its runs count as lost.
    Lost,
    /// Exited cleanly.
    Stopped,
}

impl NodeState {
    /// The state of a node silent for `silent` (its last heartbeat's age) in a fleet with
    /// this `heartbeat` and `dead_after`.
    pub(crate) fn of(
        silent: Duration,
        stopped: bool,
        heartbeat: Duration,
        dead_after: Duration,
    ) -> NodeState {
        if stopped {
            NodeState::Stopped
        } else if silent >= dead_after {
            NodeState::Lost
        } else if silent > heartbeat.saturating_mul(2) {
            NodeState::Unreachable
        } else {
            NodeState::Live
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NodeState::Live => "live",
            NodeState::Unreachable => "unreachable",
            NodeState::Lost => "lost",
            NodeState::Stopped => "stopped",
        }
    }
}

/// A fleet node (one process of it: a daemon, or a `run` that takes part), as `status`
/// shows it.
#[derive(Clone, Debug)]
pub(crate) struct NodeInfo {
    pub(crate) node: String,
    /// This process's own id (a node name can restart).
    pub(crate) incarnation: String,
    pub(crate) pid: i32,
    /// A daemon, or a process that only runs jobs (`run`, `backfill`).
    pub(crate) daemon: bool,
    /// When it joined and when it last heartbeated (RFC 3339, by the database clock).
    pub(crate) started: String,
    pub(crate) heartbeat: String,
    /// How long ago its last heartbeat was, by the database clock.
    pub(crate) silent: Duration,
    pub(crate) state: NodeState,
}

/// A job's last real result ([`Coordinator::last_result`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct LastResult {
    /// The newest run that is not a skip.
    pub(crate) real: Option<RunRecord>,
    /// How many runs were skipped after it (all of them when there is no real run).
    pub(crate) skipped: u64,
    /// The newest of those skips.
    pub(crate) newest_skip: Option<RunRecord>,
}

impl LastResult {
    /// From a job's records, oldest first.
    pub(crate) fn of(recs: &[RunRecord]) -> LastResult {
        use crate::record::Outcome;
        let real = recs.iter().rposition(|r| r.outcome != Outcome::Skipped);
        let after = &recs[real.map_or(0, |i| i + 1)..];
        LastResult {
            real: real.map(|i| recs[i].clone()),
            skipped: after.iter().map(RunRecord::runs).sum(),
            newest_skip: after.last().cloned(),
        }
    }
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

    /// The time the daemon schedules by: this host's clock, or (fleet mode) the database's
    /// when this host's is off by more than a second, so that no instant runs early.
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    /// How far this host's clock is off the backend's, in words, while it is off by more
    /// than the backend tolerates (the daemon alerts `clock` once per episode).
    fn clock_skew(&self) -> Option<String> {
        None
    }
    /// The backend's own metrics (Prometheus text format), appended to `/metrics`.
    fn metrics(&self) -> String {
        String::new()
    }
    /// What `status` says about the backend besides the jobs, one line each (fleet mode:
    /// nodes over the latency budget or with a skewed clock).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

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
    /// Whether the daemon's loop must look at the backend at least once a minute while
    /// nothing is due (a fleet: the database's clock and its skew). The local backend has
    /// nothing to look at: an idle daemon then sleeps until something needs it.
    fn wants_idle_looks(&self) -> bool {
        true
    }
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
    /// At the daemon's housekeeping: removes the records older than the jobs'
    /// `history_max_age` that this process keeps (a fleet prunes its database in its own
    /// thread, [`WorkSink::history_max_ages`]).
    fn prune_by_age(&self, cfg: &Config, log: &Logger);
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
    /// thread of the backend's own). Ticks that cannot be claimed now may come back later
    /// through [`Coordinator::serve`] as [`Work::Late`].
    fn claim(self: Arc<Self>, ticks: Vec<Tick>, won: Box<dyn FnMut(Tick) + Send>);
    /// Whether a won tick that finds a run of its job still waiting to start may join that
    /// run (coalesce). True where the instant is only this process's business; false where
    /// winning it made it this process's obligation that nobody else meets (a fleet's
    /// claim): it then runs after the waiting run, as catch-up runs do.
    fn ticks_coalesce(&self) -> bool {
        true
    }
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
    /// The job's last real result: its newest run that is not a skip, however many skips
    /// came after it, and those skips.
    fn last_result(&self, settings: &Settings, job: &str) -> Result<LastResult, Failure>;
    /// The fleet's nodes, newest process of each first (none outside a fleet).
    fn nodes(&self, _settings: &Settings) -> Result<Vec<NodeInfo>, Failure> {
        Ok(Vec::new())
    }
    /// The runs in progress of these jobs.
    fn running(
        &self,
        settings: &Settings,
        jobs: &[&Job],
    ) -> Result<HashMap<String, Running>, Failure>;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;
    use crate::record::tests::rec;

    #[test]
    fn a_node_is_live_then_unreachable_then_lost_by_its_silence() {
        let (hb, dead) = (Duration::from_secs(1), Duration::from_secs(4));
        let at = |ms: u64, stopped| NodeState::of(Duration::from_millis(ms), stopped, hb, dead);
        assert_eq!(at(0, false), NodeState::Live);
        assert_eq!(at(2000, false), NodeState::Live);
        assert_eq!(at(2001, false), NodeState::Unreachable);
        assert_eq!(at(3999, false), NodeState::Unreachable);
        assert_eq!(at(4000, false), NodeState::Lost);
        assert_eq!(at(0, true), NodeState::Stopped);
        assert_eq!(at(99_000, true), NodeState::Stopped);
    }

    #[test]
    fn the_last_result_is_the_newest_real_run_and_the_skips_after_it_are_counted() {
        let run = |id: &str, outcome| RunRecord { outcome, ..rec(id) };
        let mut streak = run("s2", Outcome::Skipped);
        streak.skips = Some(crate::record::SkipStreak {
            count: 3,
            last_run_id: "s4".into(),
            last_scheduled: String::new(),
            last_started: String::new(),
        });
        let recs = [
            run("a", Outcome::Success),
            run("s1", Outcome::Skipped),
            run("b", Outcome::Failure),
            streak,
            run("s5", Outcome::Skipped),
        ];
        let l = LastResult::of(&recs);
        assert_eq!(l.real.map(|r| r.run_id), Some("b".to_string()));
        assert_eq!(l.skipped, 4);
        assert_eq!(l.newest_skip.map(|r| r.run_id), Some("s5".to_string()));
        let l = LastResult::of(&recs[..3]);
        assert_eq!((l.skipped, l.newest_skip.is_none()), (0, true));
        let l = LastResult::of(&recs[3..]);
        assert!(l.real.is_none());
        assert_eq!(l.skipped, 4);
        assert!(LastResult::of(&[]).real.is_none());
    }
}
