//! `cronwarden daemon`: the loop around the scheduler and the run engine.
//!
//! The main thread sleeps in poll(2) until the earliest due instant, with the signal pipes
//! as its other wake-up sources. In local mode with no run in flight it sleeps until the
//! next thing that needs it, and a clock change, a kept file removed or an alert spooled by
//! another process wake it (`idle`); otherwise (a fleet node, runs in flight, or those wake
//! sources not available) it looks at the clock at least once a minute. Each due instant
//! is marked in the state directory (in one write, before the job starts, so a crash never
//! runs an instant twice; a mark that cannot be written does not stop the job: `health`)
//! and handed to a thread that waits for the instant, takes the job's exclusion and a
//! `max_concurrent` slot, then runs the very same `execute_locked` path as `cronwarden run`.
//!
//! Files: this one (start, one step of the loop, reload, shutdown), `dispatch` (from due
//! instants to run threads), `launch` (one run's thread), `catchup` (missed instants, one
//! after another), `late` (instants no node could claim when due: missed), `health` (a
//! state directory that cannot be written), `orphans` (runs whose supervisor died, taken
//! over), `slots` (concurrency), `state` (the daemon's files),
//! `control` (the control socket server), `work` (work the coordination backend brings),
//! `clock` (a skewed clock the backend reports, alerted once),
//! `watch` (the staleness watchdog, failure streaks and the daemon's health: `/healthz`),
//! `changes` (`reload_on_change`: the table's files watched with inotify), `idle` (what wakes
//! an idle daemon instead of the minute's look).

mod catchup;
mod changes;
mod clock;
mod control;
mod dispatch;
mod health;
mod idle;
mod late;
mod launch;
mod orphans;
mod page;
mod pool;
mod slots;
mod state;
mod watch;
mod work;

use std::collections::HashSet;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::alert;
use crate::config::{self, Config, LoadOptions};
use crate::contain::{Containment, Purpose};
use crate::coord::Coordinator;
use crate::diag::Severity;
use crate::execute::Ctx;
use crate::exit::{self, CmdResult, Failure};
use crate::lock::{self, Acquired, JobLock};
use crate::log::{Level, LogEnv, Logger};
use crate::metrics::Metrics;
use crate::runner::Interrupt;
use crate::schedule::{Expr, format_rfc3339};
use crate::scheduler::{Observation, Scheduler, Timed};
use crate::sync::lock;
use dispatch::{dispatch, start_all};
use launch::Launch;
use slots::{Active, Slots};
use state::{Marks, Paused};

/// How often, at most, the loop tells the alert thread to look at a non-empty spool (for
/// alerts other processes spooled; the thread times its own retries).
const SPOOL_CHECK: Duration = Duration::from_secs(5);

/// How often `history_max_age` and `output_max_age` are applied.
const AGE_PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The longest the loop sleeps without looking at the wall clock, without the idle wake
/// sources (`idle`) or with runs in flight.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// The longest it sleeps with them: without end in practice (ppoll's timeout is clamped to
/// 2^31 - 1 s here); only what is due, a deadline or a wake source ends the sleep.
const IDLE_SLEEP: Duration = Duration::from_secs(i32::MAX as u64);
/// After `idle` saw a kept file removed, the loop puts it back once the directory has been
/// left alone this long: an `rm -rf lock_dir` finishes first (a socket bound again in the
/// middle of it would make it fail with "Directory not empty").
const KEEP_SETTLE: Duration = Duration::from_secs(1);

/// The start-up trim waits for the other threads to sleep (`others_asleep`), looking again
/// this often, at most [`TRIM_LOOKS`] times (then it trims anyway).
const TRIM_RETRY: Duration = Duration::from_millis(20);
const TRIM_LOOKS: u32 = 100;

/// Runs are handed to their threads this much before their instant: the thread makes the
/// run ready (`execute::Ready`: its cgroup, its user, its marker's file) and waits for the
/// exact instant; then it writes the dispatch mark, looks at a pause again, takes the job's
/// exclusion and a slot (cheap: a flock on the lock file and a mutex), so that skipping or
/// queueing is decided about the instant itself, and starts the process. A job never starts
/// before its scheduled instant.
///
/// 100 ms: time for 100 runs due at once to be made ready on a 2-core machine before their
/// instant. With 20 ms the last of them were still being made ready when the first started:
/// `bench/bursts.sh` (100 jobs every 5 s), the two binaries alternately, median last start of
/// the bursts after the first: 20 ms 145, 143, 144 ms; 100 ms 134, 136, 117 ms; first bursts
/// (each job's first run) 258, 206, 208 against 193, 139, 142 ms.
const LOOKAHEAD: Duration = Duration::from_millis(100);

/// How the daemon reaches its coordination backend, given the table (the command layer
/// decides: local mode, or the fleet of `[cluster]`).
pub(crate) type Connect<'a> = &'a dyn Fn(&Config) -> Result<Arc<dyn Coordinator>, Failure>;

/// Everything the run threads (and the control socket) share.
pub(crate) struct Shared {
    log: Logger,
    coord: Arc<dyn Coordinator>,
    /// Where runs queue their alerts; its thread delivers them.
    outbox: alert::Outbox,
    slots: Slots,
    active: Active,
    /// The run threads.
    pool: pool::Pool,
    /// Jobs with a run waiting for its lock or a slot: further ticks coalesce into it.
    pending: Mutex<HashSet<String>>,
    /// Catch-up runs waiting for their turn, per job.
    catchups: catchup::Catchups,
    /// Readable (its peer closed) once running jobs must stop.
    stop: Arc<UnixStream>,
    marks: Marks,
    /// Whether the marks (so the state directory) can be written.
    health: health::Health,
    paused: Paused,
    /// The table in force (replaced by a reload).
    current: Mutex<Arc<Config>>,
    metrics: Arc<Metrics>,
    state_dir: PathBuf,
    /// How runs' processes are contained (chosen at start, kept across reloads).
    contain: Containment,
    /// Stale deadlines and failure streaks.
    watch: watch::Watch,
    /// The loop's liveness.
    beat: watch::Beat,
    /// Whether the backend's clock skew was alerted (once per episode).
    skew_told: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// How runs are contained.
    fn contain(&self) -> &Containment {
        &self.contain
    }

    /// The table in force.
    fn current(&self) -> Arc<Config> {
        Arc::clone(&lock(&self.current))
    }

    /// What a run of `cfg` is handed.
    fn ctx<'a>(&'a self, cfg: &'a Config) -> Ctx<'a> {
        Ctx {
            cfg,
            log: &self.log,
            coord: &*self.coord,
            outbox: &self.outbox,
            contain: &self.contain,
        }
    }
}

/// The daemon between start and shutdown.
struct Daemon<'p> {
    config_path: &'p Path,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    sched: Scheduler,
    hup: Interrupt,
    term: Interrupt,
    /// `reload_on_change`: the watch on the table's files.
    changes: Option<changes::Changes>,
    /// As PID 1 (a container's init), orphans are re-parented to us: reaped on SIGCHLD.
    reaper: Option<Interrupt>,
    /// Dropped to stop the running jobs.
    stop_tx: UnixStream,
    /// The control socket, bound again if removed, and removed at a clean exit.
    control: control::Served,
    /// The thread that delivers alerts (`alert::serve`).
    alerts: Option<JoinHandle<()>>,
    next_spool_look: Instant,
    /// What wakes the loop instead of the minute's look (local mode, the sources set up).
    idle: Option<idle::Idle>,
    /// A kept file was seen removed: `keep_files` (and new watches) at this instant.
    keep_due: Option<Instant>,
    /// The spool is to be looked at (at start, and when `idle` saw an alert written in it).
    spool_seen: bool,
    /// Whether some job has `history_max_age` or `output_max_age` (a wake-up for them).
    prunes: bool,
    /// When the history and output files are next pruned by age (at start, then every
    /// [`AGE_PRUNE_EVERY`], at a wake-up that happens anyway or, idle, one of its own).
    next_age_prune: Instant,
    watchdog: Option<Duration>,
    next_watchdog: Option<Instant>,
    clocks: (Duration, Duration),
    trim_again: bool,
    /// How many times the pending trim waited for the other threads.
    trim_looks: u32,
    /// Time spent on work of the loop's own (reloads) since the last look at the clock: a
    /// late look because of it is not a freeze.
    busy: Duration,
    /// One daemon per state directory.
    _daemon_lock: JobLock,
}

pub(crate) fn run(config_path: &Path, env: &LogEnv, connect: Connect<'_>) -> CmdResult {
    let mut d = Daemon::start(config_path, env, connect)?;
    d.prune_by_age();
    while d.step() {}
    d.shutdown()
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    let _ = sd_notify::notify(states);
}

/// Loads the table in a thread of its own, and keeps a compact copy of it. The thread's
/// allocations (the TOML tree, the specs, several kB per job) come from its own malloc
/// arena: the copy made here packs the jobs together in the daemon's heap instead of
/// leaving them scattered among the freed pages of the load (BENCHMARKS.md, "Idle memory by
/// USS and PSS").
fn load(path: &Path, log: &Logger) -> Result<Config, usize> {
    crate::sys::malloc_fixed_thresholds();
    let p = path.to_path_buf();
    let read = std::thread::Builder::new()
        .name("load".into())
        .spawn(move || config::load(&p, LoadOptions::default()))
        .ok()
        .and_then(|t| t.join().ok());
    let mut loaded = match read {
        Some(l) => l,
        // No thread (or it panicked): here, without the compact copy.
        None => config::load(path, LoadOptions::default()),
    };
    loaded.config = loaded.config.map(|c| c.compact());
    for d in &loaded.diagnostics {
        let level = match d.severity {
            Severity::Error => Level::Error,
            Severity::Warning => Level::Warn,
        };
        log.log(level, "config", &[], &d.to_string());
    }
    match loaded.config {
        Some(c) => Ok(c),
        None => Err(loaded.errors().count()),
    }
}

fn status_line(cfg: &Config, sched: &Scheduler) -> String {
    let next = sched
        .next_due()
        .map(|t| format!("; next run {}", format_rfc3339(t, cfg.settings.tz())))
        .unwrap_or_default();
    format!("{} jobs, {} scheduled{next}", cfg.jobs.len(), sched.len())
}

/// CLOCK_MONOTONIC and CLOCK_BOOTTIME now.
fn clocks() -> (Duration, Duration) {
    use nix::time::{ClockId, clock_gettime};
    let get = |id| {
        clock_gettime(id)
            .map(|t| Duration::new(t.tv_sec().max(0) as u64, t.tv_nsec().max(0) as u32))
            .unwrap_or_default()
    };
    (get(ClockId::CLOCK_MONOTONIC), get(ClockId::CLOCK_BOOTTIME))
}

/// The one-daemon-per-state-directory lock.
fn daemon_lock(state: &Path) -> Result<JobLock, Failure> {
    // A daemon killed a moment ago can leave its lock with a child between fork and exec
    // for a few milliseconds: look again for up to two seconds before refusing.
    let until = Instant::now() + Duration::from_secs(2);
    let mut got = lock::try_acquire(state, ".daemon");
    while matches!(got, Ok(Acquired::Held(_))) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
        got = lock::try_acquire(state, ".daemon");
    }
    match got {
        Ok(Acquired::Locked(mut l)) => {
            l.set_holder(&lock::Holder {
                pid: Some(std::process::id() as i32),
                pgid: None,
                since: Some(Timestamp::now().to_string()),
                run_id: None,
            });
            Ok(l)
        }
        Ok(Acquired::Held(h) | Acquired::Own(h)) => Err(Failure::new(
            exit::LOCKED,
            format!(
                "another daemon already runs on {}: {}",
                state.display(),
                h.describe()
            ),
        )),
        Err(e) => Err(Failure::config(format!(
            "daemon lock in {}: {e}",
            state.display()
        ))),
    }
}

fn signals(s: &[i32]) -> Result<Interrupt, Failure> {
    Interrupt::on_signals(s)
        .map_err(|e| Failure::usage(format!("cannot install signal handlers: {e}")))
}

impl<'p> Daemon<'p> {
    /// Loads the table, takes the daemon lock, joins the backend, opens the control socket
    /// (and metrics), recovers what a previous daemon left, and starts what is due.
    fn start(
        config_path: &'p Path,
        env: &LogEnv,
        connect: Connect<'_>,
    ) -> Result<Daemon<'p>, Failure> {
        let cfg = load(config_path, &Logger::stderr()).map_err(|n| {
            Failure::config(format!(
                "{}: {n} error(s) in the job table; not starting",
                config_path.display()
            ))
        })?;
        let state = cfg.settings.state_dir.clone();
        crate::files::ensure_dir(&state)
            .map_err(|e| Failure::config(format!("state_dir {}: {e}", state.display())))?;
        let daemon_lock = daemon_lock(&state)?;
        let hup = signals(&[libc::SIGHUP])?;
        let term = signals(&[libc::SIGTERM, libc::SIGINT])?;
        let contain = Containment::detect(cfg.settings.containment, Purpose::Daemon)
            .map_err(Failure::config)?;
        // Orphans come to us as PID 1, and with the process containment (a subreaper).
        let reaper = match std::process::id() == 1 || contain.adopts_orphans() {
            true => Some(signals(&[libc::SIGCHLD])?),
            false => None,
        };
        // Shared by every run's interrupt (polled, never read; non-blocking all the same).
        let (stop_tx, stop_rx) = UnixStream::pair()
            .and_then(|(tx, rx)| rx.set_nonblocking(true).map(|()| (tx, rx)))
            .map_err(|e| Failure::usage(format!("socketpair: {e}")))?;
        let coord = connect(&cfg)?;
        let outbox = alert::Outbox::new();
        let log = Logger::for_settings(&cfg.settings, env);
        let watch = watch::Watch::load(&cfg, &*coord, &log);
        let cfg = Arc::new(cfg);
        let shared = Arc::new(Shared {
            log,
            metrics: Arc::new(
                Metrics::new(&state, Arc::clone(outbox.stats())).with_backend(Arc::clone(&coord)),
            ),
            coord,
            outbox,
            slots: Slots::new(cfg.settings.max_concurrent),
            active: Active::default(),
            pool: pool::Pool::default(),
            pending: Mutex::new(HashSet::new()),
            catchups: catchup::Catchups::default(),
            stop: Arc::new(stop_rx),
            marks: Marks::new(&state),
            health: health::Health::default(),
            paused: Paused::load(&state),
            current: Mutex::new(Arc::clone(&cfg)),
            state_dir: state.clone(),
            contain,
            watch,
            beat: watch::Beat::default(),
            skew_told: Default::default(),
        });
        let alerts = start_alerts(&shared)?;
        // Runs whose supervisor died (a daemon or a `run` killed): taken over, kept to their
        // timeout, recorded and alerted when they end.
        orphans::start(&shared);
        // Credential directories of runs that ended while nobody could remove them.
        crate::execute::credentials::sweep(&cfg.settings.lock_dir, &state);
        let control = open_listeners(&cfg, &shared)?;
        let work = work::Sink(Arc::clone(&shared));
        std::thread::Builder::new()
            .name("work".into())
            .spawn(move || work.0.coord.serve(&work))
            .map_err(|e| Failure::usage(format!("cannot start a thread: {e}")))?;
        let (sched, startup, notes) = Scheduler::start(
            Timed::from_jobs(&cfg.jobs),
            shared.coord.now(),
            &state::read_marks(&state),
        );
        for n in notes {
            shared.log.log(Level::Warn, "catchup", &[], &n);
        }
        let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
        let changes = match cfg.settings.reload_on_change {
            true => changes::Changes::watch(&cfg, &shared.log),
            false => None,
        };
        let mut d = Daemon {
            config_path,
            cfg,
            shared,
            sched,
            hup,
            term,
            changes,
            reaper,
            stop_tx,
            control,
            alerts: Some(alerts),
            next_spool_look: Instant::now(),
            idle: None,
            keep_due: None,
            spool_seen: true,
            prunes: false,
            next_age_prune: Instant::now(),
            watchdog,
            next_watchdog: watchdog.map(|w| Instant::now() + w),
            clocks: clocks(),
            trim_again: true,
            trim_looks: 0,
            busy: Duration::ZERO,
            _daemon_lock: daemon_lock,
        };
        d.prunes = prunes_by_age(&d.cfg);
        d.boot(startup);
        // After `boot` wrote its files: their events would wake the loop once, for nothing.
        d.idle = d.idle_sources();
        Ok(d)
    }

    /// Announces the start, runs `@reboot` jobs on a new boot, `@start` jobs, and the
    /// instants due at start,
    /// and tells systemd the daemon is ready.
    fn boot(&mut self, startup: Vec<crate::scheduler::Dispatch>) {
        // Every job's series before the start is told: a scrape right after it sees them.
        self.publish_jobs();
        let (cfg, shared) = (&self.cfg, &self.shared);
        shared.log.log(
            Level::Info,
            "daemon-start",
            &[
                ("pid", std::process::id().to_string()),
                ("table", self.config_path.display().to_string()),
            ],
            &status_line(cfg, &self.sched),
        );
        let c = &shared.contain;
        let mode = [("mode", c.name().to_string())];
        shared.log.log(Level::Info, "containment", &mode, &c.why());
        // @reboot: once per boot, not on every daemon restart.
        let boot = state::boot_id();
        let boot_file = shared.state_dir.join("boot_id");
        let last_boot = std::fs::read_to_string(&boot_file)
            .ok()
            .map(|s| s.trim().to_string());
        if boot.is_some() && boot != last_boot {
            start_each(shared, cfg, &Expr::Reboot, "reboot");
            if let Some(b) = &boot {
                let _ = crate::files::write_atomic(&boot_file, b.as_bytes());
            }
        }
        // @start: each time the daemon starts (never at a reload).
        start_each(shared, cfg, &Expr::Start, "start");
        start_all(shared, cfg, startup);
        self.publish();
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status_line(cfg, &self.sched)),
        ]);
        trim_memory();
    }

    /// The table's jobs to the metrics (at start and reload): every job's series from now on.
    fn publish_jobs(&self) {
        if self.cfg.settings.metrics_listen.is_some() {
            let jobs = self.cfg.jobs.iter();
            let table = jobs.map(|j| (j.name.as_str(), j.tags()));
            self.shared.metrics.set_jobs(table);
        }
    }

    fn publish(&self) {
        if self.cfg.settings.metrics_listen.is_some() {
            self.shared.metrics.set_next_runs(self.sched.next_runs());
        }
    }

    /// One pass of the loop: sleep until the next instant, a signal or the minute's look at
    /// the clock, then act on what woke it. False once the daemon must stop.
    fn step(&mut self) -> bool {
        let sleep = self.sleep_time();
        let mut fds = vec![];
        for src in [Some(&self.hup), Some(&self.term), self.reaper.as_ref()]
            .into_iter()
            .flatten()
        {
            fds.extend(src.raw_fds());
        }
        fds.extend(self.changes.as_ref().map(changes::Changes::fd));
        fds.extend(self.idle.iter().flat_map(idle::Idle::fds));
        let (trim, sleep) = self.trim_now(sleep);
        self.shared.beat.sleeps(sleep);
        let ready = wait_readable(&fds, sleep, trim);
        let seen = match (ready, self.idle.as_mut()) {
            (true, Some(i)) => i.take(),
            _ => idle::Seen::default(),
        };
        self.spool_seen |= seen.spool;
        if seen.files {
            self.keep_due = Some(Instant::now() + KEEP_SETTLE);
        }
        if let Some(w) = self.watchdog
            && self.next_watchdog.is_some_and(|n| Instant::now() >= n)
        {
            notify(&[sd_notify::NotifyState::Watchdog]);
            self.next_watchdog = Some(Instant::now() + w);
        }
        if self.term.received().is_some() {
            return false;
        }
        if let Some(r) = &self.reaper
            && r.received().is_some()
        {
            r.reset();
            crate::runner::reap_orphans();
        }
        if ready && self.hup.received().is_some() {
            self.hup.reset();
            let t0 = Instant::now();
            self.reload();
            self.busy += t0.elapsed();
        }
        self.reload_if_changed(ready);
        self.start_due();
        clock::check(&self.shared);
        watch::check_due(&self.shared);
        self.keep_files();
        self.prune_by_age();
        true
    }

    /// Once more at the first wait (and the first after a reload): what only start-up and the
    /// first pass of the loop touched goes too; a wake-up brings back only what it uses. Not
    /// while another thread still runs (starting, or ending as the `work` thread of the local
    /// backend does): what it runs after the trim would map its code back, whole page-cache
    /// folios of it; the loop looks again after [`TRIM_RETRY`]. Whether to trim now, and the
    /// sleep.
    fn trim_now(&mut self, sleep: Duration) -> (bool, Duration) {
        if !self.trim_again {
            return (false, sleep);
        }
        if self.trim_looks < TRIM_LOOKS && !others_asleep() {
            self.trim_looks += 1;
            return (false, sleep.min(TRIM_RETRY));
        }
        self.trim_again = false;
        self.trim_looks = 0;
        crate::sys::malloc_trim();
        (true, sleep)
    }

    /// The idle wake sources, in local mode (a fleet node keeps the minute's look).
    fn idle_sources(&self) -> Option<idle::Idle> {
        if self.shared.coord.wants_idle_looks() {
            return None;
        }
        let settings = &self.cfg.settings;
        idle::Idle::watch(&idle::Paths {
            lock_dir: &settings.lock_dir,
            socket: &self.control.path,
            state_dir: &settings.state_dir,
        })
    }

    /// `history_max_age` and `output_max_age`: at the first wake-up, then at most every
    /// [`AGE_PRUNE_EVERY`] (at a wake-up that happens anyway; an idle daemon with one of them
    /// set wakes for it).
    fn prune_by_age(&mut self) {
        if Instant::now() < self.next_age_prune {
            return;
        }
        self.next_age_prune = Instant::now() + AGE_PRUNE_EVERY;
        let (cfg, shared) = (&self.cfg, &self.shared);
        shared.coord.prune_by_age(cfg, &shared.log);
        for job in &cfg.jobs {
            let Some(age) = job.output_max_age else {
                continue;
            };
            let dir = crate::execute::output_dir(&cfg.settings.state_dir, &job.name);
            let n = crate::execute::prune_old_outputs(&dir, age);
            if n > 0 {
                let msg = format!("removed {n} output file(s) older than output_max_age");
                shared.log.log(
                    Level::Info,
                    "output",
                    &[("job", job.name.to_string())],
                    &msg,
                );
            }
        }
    }

    /// What can be removed from under a running daemon is put back at its wake-ups:
    /// `lock_dir`, the lock files of running jobs (whether a run is in progress never depends
    /// on them: the backend knows its own runs), and the control socket. An idle daemon
    /// (`idle`) is woken by the removal and acts once it settled ([`KEEP_SETTLE`]); its wake
    /// sources are then made again (the directories may be new), and the spool looked at
    /// (an alert written before the new watches).
    fn keep_files(&mut self) {
        if self.keep_due.is_some_and(|d| Instant::now() < d) {
            return;
        }
        let rewatch = self.keep_due.take().is_some() || self.idle.is_none();
        let (settings, shared) = (&self.cfg.settings, &self.shared);
        shared.coord.keep_locks(settings, &shared.log);
        control::keep(&mut self.control, settings, shared);
        if rewatch {
            self.idle = self.idle_sources();
            self.spool_seen |= self.idle.is_some();
        }
    }

    /// How long to sleep: until the next due instant (less the look-ahead), the nearest stale
    /// deadline not yet alerted, or the watchdog.
    /// Alerts spooled by other processes (`cronwarden run`) are handed to the alert thread
    /// here, at most every `SPOOL_CHECK`; the thread times its own retries.
    fn sleep_time(&mut self) -> Duration {
        let now = self.shared.coord.now();
        let idle = self.idle.is_some() && self.shared.active.none();
        let mut sleep = match idle {
            true => IDLE_SLEEP,
            false => MAX_SLEEP,
        };
        if idle && self.prunes {
            sleep = sleep.min(
                self.next_age_prune
                    .saturating_duration_since(Instant::now()),
            );
        }
        if let Some(due) = self.sched.next_due() {
            let until = Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO);
            sleep = sleep.min(until.saturating_sub(LOOKAHEAD));
        }
        if let Some(deadline) = self.shared.watch.next_deadline() {
            let until = Duration::try_from(deadline.duration_since(now)).unwrap_or(Duration::ZERO);
            sleep = sleep.min(until);
        }
        if let Some(w) = self.next_watchdog {
            sleep = sleep.min(w.saturating_duration_since(Instant::now()));
        }
        if let Some(due) = self.keep_due {
            sleep = sleep.min(due.saturating_duration_since(Instant::now()));
        }
        if let Some(due) = self.changes.as_ref().and_then(changes::Changes::due) {
            sleep = sleep.min(due.saturating_duration_since(Instant::now()));
        }
        // With the idle wake sources, the spool is looked at when an alert was written in it.
        if self.idle.is_none() || self.spool_seen {
            if Instant::now() >= self.next_spool_look {
                self.next_spool_look = Instant::now() + SPOOL_CHECK;
                self.spool_seen = false;
                if alert::spool_size(&self.shared.state_dir) > 0 {
                    self.shared.outbox.wake();
                }
            } else if self.idle.is_some() {
                // An alert seen within SPOOL_CHECK of the last look: at the end of it.
                let until = self
                    .next_spool_look
                    .saturating_duration_since(Instant::now());
                sleep = sleep.min(until);
            }
        }
        sleep
    }

    /// `reload_on_change`: reads the watch's events (when its descriptor woke the loop) and
    /// reloads once the writes have settled. The watch is made anew before the table is read
    /// (a write while it is read is not missed) and again after, if the new table's files
    /// differ.
    fn reload_if_changed(&mut self, ready: bool) {
        let Some(c) = self.changes.as_mut() else {
            return;
        };
        let now = Instant::now();
        if ready && let Some(name) = c.take_events(now) {
            let f = [("file", name)];
            let msg = format!(
                "reloading once it stays unchanged for {}",
                crate::units::format_duration(changes::SETTLE)
            );
            self.shared.log.log(Level::Info, "table-changed", &f, &msg);
        }
        if c.due().is_none_or(|d| now < d) {
            return;
        }
        let t0 = Instant::now();
        self.changes = changes::Changes::watch(&self.cfg, &self.shared.log);
        self.reload();
        self.busy += t0.elapsed();
    }

    /// After a reload, whichever its cause: the watch follows `reload_on_change` and the
    /// new table's files.
    fn rewatch(&mut self) {
        let (cfg, log) = (&self.cfg, &self.shared.log);
        self.changes = match (cfg.settings.reload_on_change, self.changes.take()) {
            (false, _) => None,
            (true, Some(c)) if !c.differs(cfg) => Some(c),
            (true, _) => changes::Changes::watch(cfg, log),
        };
    }

    /// SIGHUP: the new table replaces the old one if it loads; else the old one keeps running.
    fn reload(&mut self) {
        notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::Custom("")),
        ]);
        let log = &self.shared.log;
        match load(self.config_path, log) {
            Ok(new) => {
                self.sched
                    .reload(Timed::from_jobs(&new.jobs), self.shared.coord.now());
                self.shared
                    .watch
                    .reload(&self.cfg, &new, &*self.shared.coord, log);
                self.cfg = Arc::new(new);
                self.prunes = prunes_by_age(&self.cfg);
                // The CA bundles are read again when next used (update-ca-certificates, a
                // changed ca_file).
                crate::tls::forget();
                self.publish_jobs();
                self.publish();
                let msg = format!("new table loaded: {}", status_line(&self.cfg, &self.sched));
                log.log(Level::Info, "reload", &[], &msg);
                *lock(&self.shared.current) = Arc::clone(&self.cfg);
            }
            Err(n) => log.log(
                Level::Error,
                "reload",
                &[],
                &format!("{n} error(s) in the new table; the old table keeps running"),
            ),
        }
        self.rewatch();
        // lock_dir and state_dir may have moved.
        self.idle = self.idle_sources();
        // The load's garbage and the old table: back to the system, so that a reload does
        // not leave the daemon bigger; the code only the reload ran, at the next wait.
        crate::sys::malloc_trim();
        self.trim_again = true;
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status_line(&self.cfg, &self.sched)),
        ]);
    }

    /// Looks at the clocks and starts what is due.
    fn start_due(&mut self) {
        let (mono1, boot1) = clocks();
        let (mono0, boot0) = self.clocks;
        let obs = Observation {
            // The backend's time: a fleet node with a skewed clock schedules by the
            // database's.
            wall: self.shared.coord.now(),
            // What is due within LOOKAHEAD is handed to its thread now.
            ahead: LOOKAHEAD,
            busy: std::mem::take(&mut self.busy),
            mono: mono1.saturating_sub(mono0),
            boot: boot1.saturating_sub(boot0),
        };
        self.clocks = (mono1, boot1);
        let (due, notes) = self.sched.observe(obs);
        for n in notes {
            self.shared.log.log(Level::Warn, "clock", &[], &n);
        }
        if !due.is_empty() {
            start_all(&self.shared, &self.cfg, due);
            self.publish();
            notify(&[sd_notify::NotifyState::Status(&status_line(
                &self.cfg,
                &self.sched,
            ))]);
        }
    }

    /// No new runs; running ones get `shutdown_grace`, then are stopped (SIGTERM,
    /// `kill_grace`, SIGKILL) and record themselves.
    fn shutdown(self) -> CmdResult {
        notify(&[sd_notify::NotifyState::Stopping]);
        let (log, shared) = (&self.shared.log, &self.shared);
        let grace = self.cfg.settings.shutdown_grace;
        log.log(
            Level::Info,
            "daemon-stop",
            &[],
            &format!(
                "stopping; waiting up to {} for running jobs",
                crate::units::format_duration(grace)
            ),
        );
        shared.slots.close();
        if !shared.active.wait_idle(Instant::now() + grace) {
            let msg = "shutdown_grace is over: stopping the running jobs";
            log.log(Level::Warn, "daemon-stop", &[], msg);
        }
        drop(self.stop_tx);
        shared
            .active
            .wait_idle(Instant::now() + Duration::from_secs(24 * 3600));
        // The alert thread finishes the deliveries in flight (each bounded by its channel's
        // timeout); whatever still waits stays in the spool for the next start.
        let in_flight = shared.outbox.stop();
        if in_flight > 0 {
            let msg = format!(
                "waiting for {in_flight} alert delivery(ies) in flight (each ends within its \
                 channel's timeout); alerts still waiting stay in the spool"
            );
            log.log(Level::Info, "daemon-stop", &[], &msg);
        }
        if let Some(t) = self.alerts {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.control.path);
        shared.coord.leave();
        log.log(Level::Info, "daemon-exit", &[], "");
        Ok(exit::OK)
    }
}

/// Starts the thread that delivers alerts, with the table in force.
fn start_alerts(shared: &Arc<Shared>) -> Result<JoinHandle<()>, Failure> {
    let s = Arc::clone(shared);
    std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || alert::serve(&s.outbox, &|| s.current(), &s.log))
        .map_err(|e| Failure::usage(format!("cannot start a thread: {e}")))
}

/// Serves `/metrics` and `/healthz` (when asked for) and opens the control socket.
fn open_listeners(cfg: &Config, shared: &Arc<Shared>) -> Result<control::Served, Failure> {
    if let Some(addr) = cfg.settings.metrics_listen {
        let sh = Arc::clone(shared);
        let probe: crate::metrics::Probe = Arc::new(move || watch::health(&sh));
        page::check_token(cfg).map_err(Failure::config)?;
        // Served while the table in force says `status_page = true` (a reload turns it on
        // or off).
        let source = Arc::new(page::PageSource(Arc::clone(shared)));
        let status_page = Arc::new(crate::page::Page::new(source));
        crate::metrics::serve(addr, Arc::clone(&shared.metrics), probe, Some(status_page))
            .map_err(|e| Failure::config(format!("metrics_listen {addr}: {e}")))?;
        let f = [("listen", addr.to_string())];
        let what = match cfg.settings.status_page.enabled {
            true => "serving /metrics, /healthz and the status page at /",
            false => "serving /metrics and /healthz",
        };
        shared.log.log(Level::Info, "metrics", &f, what);
    }
    let socket = control::listen(&cfg.settings, &shared.log)
        .map_err(|e| Failure::config(format!("control socket: {e}")))?;
    control::serve(socket, Arc::clone(shared))
        .map_err(|e| Failure::config(format!("control socket: {e}")))
}

/// Whether some job has `history_max_age` or `output_max_age`.
fn prunes_by_age(cfg: &Config) -> bool {
    cfg.jobs
        .iter()
        .any(|j| j.history_max_age.is_some() || j.output_max_age.is_some())
}

/// Starts now every enabled job whose schedule is `expr` (`@reboot`, `@start`).
fn start_each(shared: &Arc<Shared>, cfg: &Arc<Config>, expr: &Expr, why: &'static str) {
    let now = Timestamp::now();
    let due = cfg
        .jobs
        .iter()
        .filter(|j| j.enabled && j.schedule.as_ref().is_some_and(|s| s.expr() == expr));
    for job in due {
        dispatch(shared, cfg, Launch::tick(&job.name, now, why));
    }
}

/// Waits until one of `fds` is readable or `timeout` passes; true when one is. With `trim`,
/// the pages of read-only file mappings are dropped right before (`sys`).
fn wait_readable(fds: &[i32], timeout: Duration, trim: bool) -> bool {
    let mut pfds: Vec<libc::pollfd> = fds.iter().map(|&fd| crate::sys::pollin(fd)).collect();
    match trim {
        true => crate::sys::trim_file_mappings_then_poll(&mut pfds, Some(timeout)),
        false => crate::sys::poll(&mut pfds, Some(timeout)),
    }
    pfds.iter().any(|p| p.revents != 0)
}

/// Whether every other thread of this process sleeps (`S` in /proc/self/task/TID/stat: blocked
/// in a wait of its own). True when it cannot be told.
fn others_asleep() -> bool {
    let me = nix::unistd::gettid().as_raw().to_string();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return true;
    };
    tasks
        .flatten()
        .filter(|t| t.file_name() != me.as_str())
        .all(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state follows the name, which is in parentheses and may hold any byte.
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            state.is_none_or(|s| s.starts_with('S'))
        })
}

/// Lets go of the memory only start-up needed: free heap goes back to the system, and the
/// pages of read-only file mappings (this binary, libc) leave the resident set until used.
fn trim_memory() {
    crate::sys::malloc_trim();
    crate::sys::trim_file_mappings();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_thread_that_runs_is_not_asleep() {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let spin = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        let seen = super::others_asleep();
        stop.store(true, Ordering::Relaxed);
        spin.join().expect("the spinning thread");
        assert!(!seen);
    }
}
