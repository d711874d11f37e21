//! `cronwarden daemon`: the loop around the scheduler and the run engine.
//!
//! The main thread sleeps in poll(2) until the earliest due instant (at most a minute, so a
//! suspend or a clock step is noticed), with the signal pipes as its only other wake-up
//! sources: an idle daemon wakes at most once a minute. Each due instant is marked in the
//! state directory (atomically, before the job starts, so a crash never runs an instant
//! twice) and handed to a thread that waits for the job's lock and a `max_concurrent` slot,
//! then runs the very same `execute_locked` path as `cronwarden run`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::cmd::{CmdResult, Failure, exit};
use crate::config::{self, Config, LoadOptions};
use crate::diag::Severity;
use crate::execute::{self, RunRequest};
use crate::lock::{self, Acquired};
use crate::log::{Level, Logger};
use crate::record::{self, Outcome, RunRecord};
use crate::runner::Interrupt;
use crate::schedule::{Expr, format_rfc3339};
use crate::scheduler::{Dispatch, Observation, Scheduler, Timed, Why};

/// How often a non-empty alert spool is looked at (each alert has its own backoff).
const SPOOL_CHECK: Duration = Duration::from_secs(5);

/// The longest the loop sleeps without looking at the wall clock.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Runs are handed to their threads this much before their instant: the thread takes the
/// lock and a slot and writes its marks ahead, then waits for the exact instant and only
/// has to start the process. A job never starts before its scheduled instant.
const LOOKAHEAD: jiff::SignedDuration = jiff::SignedDuration::from_millis(20);

/// A first-come, first-served counting semaphore: `max_concurrent` slots, granted in the
/// order they were asked for. A released slot is handed straight to the first waiter, which
/// alone is woken (no thundering herd when 100 runs wait).
struct Slots {
    state: Mutex<SlotState>,
}

struct SlotState {
    free: usize,
    waiters: std::collections::VecDeque<Arc<Waiter>>,
    closed: bool,
}

#[derive(Default)]
struct Waiter {
    /// Set when the slot was handed over (true) or the daemon is closing (false).
    granted: Mutex<Option<bool>>,
    cv: Condvar,
}

impl Waiter {
    fn wake(&self, granted: bool) {
        *lock_ignoring_poison(&self.granted) = Some(granted);
        self.cv.notify_one();
    }
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            state: Mutex::new(SlotState {
                free: n,
                waiters: std::collections::VecDeque::new(),
                closed: false,
            }),
        }
    }

    /// Waits for a slot; `false` when the daemon is shutting down.
    fn acquire(&self) -> bool {
        let me = {
            let mut st = lock_ignoring_poison(&self.state);
            if st.closed {
                return false;
            }
            if st.free > 0 && st.waiters.is_empty() {
                st.free -= 1;
                return true;
            }
            let w = Arc::new(Waiter::default());
            st.waiters.push_back(Arc::clone(&w));
            w
        };
        let mut g = lock_ignoring_poison(&me.granted);
        loop {
            if let Some(granted) = *g {
                return granted;
            }
            g = match me.cv.wait(g) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
        }
    }

    fn release(&self) {
        let mut st = lock_ignoring_poison(&self.state);
        match st.waiters.pop_front() {
            Some(w) if !st.closed => w.wake(true),
            Some(w) => {
                w.wake(false);
                st.free += 1;
            }
            None => st.free += 1,
        }
    }

    fn is_closed(&self) -> bool {
        lock_ignoring_poison(&self.state).closed
    }

    fn close(&self) {
        let mut st = lock_ignoring_poison(&self.state);
        st.closed = true;
        for w in st.waiters.drain(..) {
            w.wake(false);
        }
    }
}

pub(crate) fn lock_ignoring_poison<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Threads still working (waiting or running), to wait for at shutdown.
#[derive(Default)]
struct Active {
    count: Mutex<usize>,
    cv: Condvar,
}

impl Active {
    fn enter(&self) {
        *lock_ignoring_poison(&self.count) += 1;
    }

    fn leave(&self) {
        let mut c = lock_ignoring_poison(&self.count);
        *c = c.saturating_sub(1);
        self.cv.notify_all();
    }

    /// Waits until nothing is active or `deadline`; true when nothing is.
    fn wait_idle(&self, deadline: Instant) -> bool {
        let mut c = lock_ignoring_poison(&self.count);
        while *c > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = match self.cv.wait_timeout(c, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// Everything the run threads (and the control socket) share.
pub(crate) struct Shared {
    log: Logger,
    slots: Slots,
    active: Active,
    /// Jobs with a run waiting for its lock or a slot: further ticks coalesce into it.
    pending: Mutex<HashSet<String>>,
    /// Readable (its peer closed) once running jobs must stop.
    stop: UnixStream,
    /// The last dispatched instant per job, written in order (see [`Shared::mark`]).
    marks: Mutex<HashMap<String, Arc<Mutex<Option<Timestamp>>>>>,
    /// Paused jobs (one file each in `state_dir/paused/`, so it survives restarts).
    paused: Mutex<HashSet<String>>,
    /// The table in force (replaced by a reload).
    pub(crate) current: Mutex<Arc<Config>>,
    metrics: Arc<crate::metrics::Metrics>,
    state_dir: PathBuf,
}

fn mark_path(state: &Path, job: &str) -> PathBuf {
    state.join("marks").join(job)
}

fn running_dir(state: &Path) -> PathBuf {
    state.join("running")
}

/// The last dispatched instant of every job.
fn read_marks(state: &Path) -> HashMap<String, Timestamp> {
    let mut out = HashMap::new();
    if let Ok(dir) = fs::read_dir(state.join("marks")) {
        for e in dir.flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if let Some(t) = fs::read_to_string(e.path())
                .ok()
                .and_then(|t| t.trim().parse::<Timestamp>().ok())
            {
                out.insert(name, t);
            }
        }
    }
    out
}

/// Runs that were in progress when a previous daemon died: recorded as lost.
fn recover_lost(state: &Path, keep: usize, log: &Logger) {
    let Ok(dir) = fs::read_dir(running_dir(state)) else {
        return;
    };
    for e in dir.flatten() {
        let path = e.path();
        // The temporary file of a marker whose write a crash cut short (before its rename,
        // so before the run started): nothing ran.
        if e.file_name().to_string_lossy().starts_with('.') {
            let _ = fs::remove_file(&path);
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if let Ok(mut rec) = serde_json::from_str::<RunRecord>(&text) {
            // A crash between recording the run and removing its marker: nothing was lost.
            let recorded = record::read(state, &rec.job)
                .map(|all| all.iter().rev().take(100).any(|r| r.run_id == rec.run_id))
                .unwrap_or(false);
            if recorded {
                let _ = fs::remove_file(&path);
                continue;
            }
            rec.outcome = Outcome::Lost;
            rec.ended = Timestamp::now().to_string();
            rec.reason = Some(
                "the daemon stopped while this run was in progress; its end is unknown".to_string(),
            );
            log.log(
                Level::Error,
                "lost",
                &[
                    ("job", rec.job.clone()),
                    ("run_id", rec.run_id.clone()),
                    ("scheduled", rec.scheduled.clone()),
                ],
                rec.reason.as_deref().unwrap_or(""),
            );
            if let Err(err) = record::append(state, &rec, keep) {
                log.log(Level::Error, "history", &[], &err.to_string());
            }
        }
        let _ = fs::remove_file(&path);
    }
}

fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
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

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    let _ = sd_notify::notify(states);
}

fn load(path: &Path, log: &Logger) -> Result<Config, usize> {
    let loaded = config::load(path, LoadOptions::default());
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
        .map(|t| format!("; next run {}", format_rfc3339(t, &cfg.settings.tz)))
        .unwrap_or_default();
    format!("{} jobs, {} scheduled{next}", cfg.jobs.len(), sched.len())
}

pub fn run(config_path: &Path) -> CmdResult {
    let boot_log = Logger::stderr();
    let cfg = match load(config_path, &boot_log) {
        Ok(c) => c,
        Err(n) => {
            return Err(Failure::config(format!(
                "{}: {n} error(s) in the job table; not starting",
                config_path.display()
            )));
        }
    };
    let state = cfg.settings.state_dir.clone();
    record::ensure_dir(&state)
        .map_err(|e| Failure::config(format!("state_dir {}: {e}", state.display())))?;
    // One daemon per state directory.
    let _daemon_lock = match lock::try_acquire(&state, ".daemon") {
        Ok(Acquired::Locked(mut l)) => {
            l.set_holder(&lock::Holder {
                pid: Some(std::process::id() as i32),
                pgid: None,
                since: Some(Timestamp::now().to_string()),
                run_id: None,
            });
            l
        }
        Ok(Acquired::Held(h)) => {
            return Err(Failure {
                code: exit::LOCKED,
                message: format!(
                    "another daemon already runs on {}: {}",
                    state.display(),
                    h.describe()
                ),
            });
        }
        Err(e) => {
            return Err(Failure::config(format!(
                "daemon lock in {}: {e}",
                state.display()
            )));
        }
    };

    let sig = |s: i32| {
        Interrupt::on_signals(&[s])
            .map_err(|e| Failure::usage(format!("cannot install signal handlers: {e}")))
    };
    let hup = sig(libc::SIGHUP)?;
    let term = Interrupt::on_signals(&[libc::SIGTERM, libc::SIGINT])
        .map_err(|e| Failure::usage(format!("cannot install signal handlers: {e}")))?;
    // As PID 1 (a container's init), orphans are re-parented to us: reap them on SIGCHLD.
    let reaper = if std::process::id() == 1 {
        Some(sig(libc::SIGCHLD)?)
    } else {
        None
    };
    let (stop_tx, stop_rx) =
        UnixStream::pair().map_err(|e| Failure::usage(format!("socketpair: {e}")))?;

    let cfg = Arc::new(cfg);
    let shared = Arc::new(Shared {
        log: Logger::new(cfg.settings.log_file.clone(), cfg.settings.log_format),
        slots: Slots::new(cfg.settings.max_concurrent),
        active: Active::default(),
        pending: Mutex::new(HashSet::new()),
        stop: stop_rx,
        marks: Mutex::new(HashMap::new()),
        paused: Mutex::new(read_paused(&state)),
        current: Mutex::new(Arc::clone(&cfg)),
        metrics: Arc::default(),
        state_dir: state.clone(),
    });
    let log = &shared.log;
    let mut cfg = cfg;
    let cfg_metrics = cfg.settings.metrics_listen.is_some();
    *lock_ignoring_poison(&shared.metrics.state_dir) = Some(state.clone());
    let flushing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut next_flush = Instant::now();
    recover_lost(&state, cfg.settings.history_keep, log);
    if let Some(addr) = cfg.settings.metrics_listen {
        crate::metrics::serve(addr, Arc::clone(&shared.metrics))
            .map_err(|e| Failure::config(format!("metrics_listen {addr}: {e}")))?;
        log.log(
            Level::Info,
            "metrics",
            &[("listen", addr.to_string())],
            "serving /metrics",
        );
    }
    let socket = crate::control::listen(&cfg.settings, log)
        .map_err(|e| Failure::config(format!("control socket: {e}")))?;
    crate::control::serve(socket.listener, Arc::clone(&shared));
    if let Some(cluster) = &cfg.cluster {
        let fleet = crate::fleet::Fleet::join(
            cluster,
            crate::fleet::Role::Daemon,
            Logger::new(cfg.settings.log_file.clone(), cfg.settings.log_format),
        )
        .map_err(|e| Failure {
            code: exit::NO_DAEMON,
            message: format!("[cluster]: {e}"),
        })?;
        log.log(
            Level::Info,
            "fleet",
            &[
                ("node", fleet.node.clone()),
                ("incarnation", fleet.incarnation.clone()),
            ],
            "joined the fleet",
        );
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("fleet".into())
            .spawn(move || fleet_worker(fleet, shared))
            .map_err(|e| Failure::usage(format!("cannot start a thread: {e}")))?;
    }

    let now = Timestamp::now();
    let marks = read_marks(&state);
    let (mut sched, startup, notes) = Scheduler::start(Timed::from_jobs(&cfg.jobs), now, &marks);
    for n in notes {
        log.log(Level::Warn, "catchup", &[], &n);
    }
    log.log(
        Level::Info,
        "daemon-start",
        &[
            ("pid", std::process::id().to_string()),
            ("table", config_path.display().to_string()),
        ],
        &status_line(&cfg, &sched),
    );
    // @reboot: once per boot, not on every daemon restart.
    let boot = boot_id();
    let boot_file = state.join("boot_id");
    let last_boot = fs::read_to_string(&boot_file)
        .ok()
        .map(|s| s.trim().to_string());
    if boot.is_some() && boot != last_boot {
        for job in cfg.jobs.iter().filter(|j| {
            j.enabled
                && j.schedule
                    .as_ref()
                    .is_some_and(|s| *s.expr() == Expr::Reboot)
        }) {
            dispatch(&shared, &cfg, Launch::tick(&job.name, now, "reboot"));
        }
        if let Some(b) = &boot {
            let _ = record::write_atomic(&boot_file, b.as_bytes());
        }
    }
    {
        start_all(&shared, &cfg, startup);
    }
    let publish = |sched: &Scheduler| {
        if cfg_metrics {
            shared.metrics.set_next_runs(sched.next_runs());
        }
    };
    publish(&sched);
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status_line(&cfg, &sched)),
    ]);
    trim_startup_memory();
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut next_watchdog = watchdog.map(|d| Instant::now() + d);

    let (mut mono0, mut boot0) = clocks();
    let mut trim_again = true;
    loop {
        let now = Timestamp::now();
        let mut sleep = MAX_SLEEP;
        if let Some(due) = sched.next_due() {
            let until = due.duration_since(now) - LOOKAHEAD;
            sleep = sleep.min(Duration::try_from(until).unwrap_or(Duration::ZERO));
        }
        if let Some(w) = next_watchdog {
            sleep = sleep.min(w.saturating_duration_since(Instant::now()));
        }
        // Undelivered alerts: retried in a thread of their own (a slow mail server must not
        // hold up the schedule); only a non-empty spool wakes the loop for them.
        let spooled = crate::alert::spool_size(&state) > 0;
        if spooled {
            if Instant::now() >= next_flush
                && !flushing.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                let (cfg, shared, flushing) =
                    (Arc::clone(&cfg), Arc::clone(&shared), Arc::clone(&flushing));
                let _ = std::thread::Builder::new()
                    .name("spool".into())
                    .spawn(move || {
                        crate::alert::flush_spool(&cfg, &shared.log, false);
                        flushing.store(false, std::sync::atomic::Ordering::SeqCst);
                    });
                next_flush = Instant::now() + SPOOL_CHECK;
            }
            sleep = sleep.min(next_flush.saturating_duration_since(Instant::now()));
        }
        // Wait for the instant, a signal, or the minute's look at the clock.
        let mut fds = vec![];
        for src in [Some(&hup), Some(&term), reaper.as_ref()]
            .into_iter()
            .flatten()
        {
            fds.extend(src.raw_fds());
        }
        if trim_again {
            // Once more at the first wait: what only start-up and the first pass of the loop
            // touched goes too; a wake-up brings back only what it uses.
            trim_again = false;
            trim_startup_memory();
        }
        let ready = wait_readable(&fds, sleep);
        if let Some(w) = watchdog
            && next_watchdog.is_some_and(|n| Instant::now() >= n)
        {
            notify(&[sd_notify::NotifyState::Watchdog]);
            next_watchdog = Some(Instant::now() + w);
        }
        if term.received().is_some() {
            break;
        }
        if let Some(r) = &reaper
            && r.received().is_some()
        {
            r.reset();
            crate::runner::reap_orphans();
        }
        if ready && hup.received().is_some() {
            hup.reset();
            notify(&[
                sd_notify::NotifyState::Reloading,
                sd_notify::NotifyState::monotonic_usec_now()
                    .unwrap_or(sd_notify::NotifyState::Custom("")),
            ]);
            match load(config_path, log) {
                Ok(new) => {
                    sched.reload(Timed::from_jobs(&new.jobs), Timestamp::now());
                    publish(&sched);
                    log.log(
                        Level::Info,
                        "reload",
                        &[],
                        &format!("new table loaded: {}", status_line(&new, &sched)),
                    );
                    cfg = Arc::new(new);
                    *lock_ignoring_poison(&shared.current) = Arc::clone(&cfg);
                }
                Err(n) => log.log(
                    Level::Error,
                    "reload",
                    &[],
                    &format!("{n} error(s) in the new table; the old table keeps running"),
                ),
            }
            notify(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(&status_line(&cfg, &sched)),
            ]);
        }
        let (mono1, boot1) = clocks();
        let obs = Observation {
            // Looking ahead by a constant: what is due within LOOKAHEAD starts its
            // preparation now (a constant offset does not disturb clock-step detection).
            wall: Timestamp::now() + LOOKAHEAD,
            mono: mono1.saturating_sub(mono0),
            boot: boot1.saturating_sub(boot0),
        };
        (mono0, boot0) = (mono1, boot1);
        let (due, notes) = sched.observe(obs);
        for n in notes {
            log.log(Level::Warn, "clock", &[], &n);
        }
        if !due.is_empty() {
            start_all(&shared, &cfg, due);
            publish(&sched);
            notify(&[sd_notify::NotifyState::Status(&status_line(&cfg, &sched))]);
        }
    }

    // Shutdown: no new runs; running ones get `shutdown_grace`, then are stopped.
    notify(&[sd_notify::NotifyState::Stopping]);
    let grace = cfg.settings.shutdown_grace;
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
        log.log(
            Level::Warn,
            "daemon-stop",
            &[],
            "shutdown_grace is over: stopping the running jobs",
        );
    }
    drop(stop_tx);
    // Runs stop their process groups (SIGTERM, kill_grace, SIGKILL) and record themselves.
    shared
        .active
        .wait_idle(Instant::now() + Duration::from_secs(24 * 3600));
    let _ = fs::remove_file(&socket.path);
    if let Some(f) = crate::fleet::get() {
        f.leave();
    }
    log.log(Level::Info, "daemon-exit", &[], "");
    Ok(exit::OK)
}

/// Lets go of the memory that only start-up needed (parsing the command line and the table):
/// the pages of read-only file mappings (this binary, libc, ld.so) are dropped from this
/// process's resident set (the few the idle loop uses fault back in from the page cache),
/// and free heap is returned to the system. A mapping is dropped only when it is not
/// writable and has no anonymous page: dropping a private page that was written (relocated
/// data) would lose its contents. (Dirty page-cache pages of a binary just written are
/// fine: the page cache keeps them.)
fn trim_startup_memory() {
    // SAFETY: glibc's malloc_trim only releases free memory back to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    // First the list, then the madvise calls: code that runs after them (parsing smaps)
    // would fault its pages straight back in.
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    // A candidate: a read-only mapping of a file (this binary, libc, ld.so...), and whether
    // any of its pages is anonymous (copied on write, e.g. relocated data): those must stay.
    let mut current: Option<(usize, usize)> = None;
    let mut anonymous = 0u64;
    let mut take = |cur: Option<(usize, usize)>, anonymous: u64| {
        if let Some(r) = cur
            && anonymous == 0
        {
            ranges.push(r);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            take(current.take(), anonymous);
            anonymous = 0;
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            if !perms.contains('w') && perms.ends_with('p') && path.starts_with('/') {
                current = Some((start, end));
            }
        } else if first == "Anonymous:" {
            anonymous += f.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(1);
        }
    }
    take(current, anonymous);
    drop(smaps);
    for (start, end) in ranges {
        // SAFETY: the range is one of our own private, non-writable mappings of a file with
        // no anonymous (copied) page: every page is the file's, so MADV_DONTNEED only drops
        // it from this process, to be read again from the page cache on use.
        // MADV_RANDOM first: no readahead when they come back. (The kernel still maps up
        // to 64 KiB of cached pages around each fault: a wake-up brings back some of it.)
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_RANDOM);
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// Waits until one of `fds` is readable or `timeout` passes; true when one is. (Rounded up
/// to whole milliseconds: waking a little late is fine, early would mean a second wake-up.)
fn wait_readable(fds: &[i32], timeout: Duration) -> bool {
    let mut pfds: Vec<libc::pollfd> = fds.iter().map(|&fd| crate::runner::pollin(fd)).collect();
    crate::runner::poll(&mut pfds, Some(timeout));
    pfds.iter().any(|p| p.revents != 0)
}

/// Starts the due instants. In fleet mode a thread claims them, one statement per rank, and
/// dispatches the ones this node won (one round trip for a thousand ticks, not one each).
fn start_all(shared: &Arc<Shared>, cfg: &Arc<Config>, due: Vec<Dispatch>) {
    let Some(fleet) = crate::fleet::get() else {
        for d in due {
            start(shared, cfg, d);
        }
        return;
    };
    let launches: Vec<Launch> = due
        .into_iter()
        .filter_map(|d| tick_launch(shared, d))
        .collect();
    if launches.is_empty() {
        return;
    }
    let (sh, cf) = (Arc::clone(shared), Arc::clone(cfg));
    let spawned = std::thread::Builder::new()
        .name("claim".into())
        .spawn(move || claim_and_dispatch(fleet, &sh, &cf, launches));
    if let Err(e) = spawned {
        // Without a thread for the batch, nothing of it runs here: other nodes claim it.
        shared.log.log(
            Level::Error,
            "dispatch",
            &[],
            &format!("cannot start a thread to claim due ticks: {e}"),
        );
    }
}

fn claim_and_dispatch(
    fleet: &crate::fleet::Fleet,
    shared: &Arc<Shared>,
    cfg: &Arc<Config>,
    launches: Vec<Launch>,
) {
    // The claim is what keeps a tick from running twice in fleet mode (a restarted node's
    // catch-up finds it taken); the dispatch mark, written by each won run's own thread
    // before it starts, only tells catch-up where this node left off.
    let keep = launches;
    // By rank: this node's own share at once, then every CLAIM_STEP the share of the next
    // node in line (taken only if that node has not claimed it by then).
    let mut by_rank: std::collections::BTreeMap<usize, Vec<Launch>> = Default::default();
    for l in keep {
        by_rank
            .entry(fleet.rank(&l.job, l.scheduled))
            .or_default()
            .push(l);
    }
    let t0 = Instant::now();
    for (rank, launches) in by_rank {
        let at = t0 + CLAIM_STEP * rank as u32;
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let wanted: Vec<(String, Timestamp, String)> = launches
            .iter()
            .map(|l| (l.job.clone(), l.scheduled, l.run_id.clone()))
            .collect();
        let won = claim_batch(fleet, shared, &wanted);
        for l in launches {
            if won.contains(&l.run_id) {
                dispatch(shared, cfg, l);
            }
        }
    }
}

/// How long a fleet node leaves a tick to the node ranked before it.
const CLAIM_STEP: Duration = Duration::from_millis(150);

/// Claims ticks for this node (see [`crate::fleet::Fleet::claim_batch`]); the run ids won.
/// Ticks older than the claim retention are refused; while the database is unreachable the
/// claim is retried for `dead_after`, then given up on this node (a node that can reach the
/// database runs them).
fn claim_batch(
    fleet: &crate::fleet::Fleet,
    shared: &Shared,
    wanted: &[(String, Timestamp, String)],
) -> HashSet<String> {
    let retention =
        jiff::SignedDuration::try_from(crate::fleet::CLAIM_RETENTION).unwrap_or_default();
    let now = Timestamp::now();
    let (old, wanted): (Vec<_>, Vec<_>) = wanted
        .iter()
        .cloned()
        .partition(|(_, t, _)| now.duration_since(*t) > retention);
    for (job, scheduled, _) in old {
        shared.log.log(
            Level::Warn,
            "claim",
            &[("job", job), ("scheduled", scheduled.to_string())],
            "older than the fleet's claim retention (7d): not run, since another node may \
             have run it and its claim is gone",
        );
    }
    if wanted.is_empty() {
        return HashSet::new();
    }
    let deadline = Instant::now() + fleet.dead_after;
    let mut delay = Duration::from_millis(100);
    let mut told = false;
    loop {
        match fleet.claim_batch(&wanted) {
            Ok(won) => return won,
            Err(e) => {
                let f = [("ticks", wanted.len().to_string())];
                if Instant::now() + delay >= deadline {
                    shared.log.log(
                        Level::Error,
                        "claim",
                        &f,
                        &format!("cannot claim: {e}; giving these ticks up on this node"),
                    );
                    return HashSet::new();
                }
                if !told {
                    told = true;
                    shared.log.log(
                        Level::Warn,
                        "claim",
                        &f,
                        &format!("cannot claim: {e}; retrying"),
                    );
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(fleet.heartbeat);
            }
        }
    }
}

/// The launch of a due tick, or `None` when the job is paused here (the tick is then marked
/// as handled and logged).
fn tick_launch(shared: &Shared, d: Dispatch) -> Option<Launch> {
    let why = match d.why {
        Why::Scheduled => "schedule",
        Why::Catchup => "catchup",
        Why::ClockStep => "clock-step",
    };
    if shared.is_paused(&d.job) {
        let _ = shared.mark(&d.job, d.scheduled);
        shared.log.log(
            Level::Info,
            "paused",
            &[
                ("job", d.job.clone()),
                ("scheduled", d.scheduled.to_string()),
            ],
            "the job is paused; this tick does not run",
        );
        return None;
    }
    Some(Launch::tick(&d.job, d.scheduled, why))
}

/// Starts a due instant; its thread marks it as dispatched before anything runs.
fn start(shared: &Arc<Shared>, cfg: &Arc<Config>, d: Dispatch) {
    if let Some(l) = tick_launch(shared, d) {
        dispatch(shared, cfg, l);
    }
}

/// The table in force.
pub(crate) fn current(shared: &Shared) -> Arc<Config> {
    Arc::clone(&lock_ignoring_poison(&shared.current))
}

/// The names in `state_dir/paused/`.
pub fn read_paused(state: &Path) -> HashSet<String> {
    fs::read_dir(state.join("paused"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

impl Shared {
    pub(crate) fn is_paused(&self, job: &str) -> bool {
        lock_ignoring_poison(&self.paused).contains(job)
    }

    /// Pauses or resumes a job's schedule; the state is kept in the state directory.
    pub(crate) fn set_paused(&self, job: &str, paused: bool) -> std::io::Result<()> {
        let path = self.state_dir.join("paused").join(job);
        if paused {
            record::write_replace(&path, Timestamp::now().to_string().as_bytes())?;
            lock_ignoring_poison(&self.paused).insert(job.to_string());
        } else {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            lock_ignoring_poison(&self.paused).remove(job);
        }
        self.log.log(
            Level::Info,
            if paused { "pause" } else { "resume" },
            &[("job", job.to_string())],
            "",
        );
        Ok(())
    }

    /// Records `at` as the job's last dispatched instant, atomically (rename) and never
    /// backwards, before the run starts: after a crash of the daemon, no instant runs twice.
    /// No fsync on this hot path: a crashed process loses nothing the kernel has; only a
    /// power loss can take the newest marks back, and then those instants count as missed
    /// (`catchup`).
    fn mark(&self, job: &str, at: Timestamp) -> Result<(), String> {
        let slot = Arc::clone(
            lock_ignoring_poison(&self.marks)
                .entry(job.to_string())
                .or_default(),
        );
        let mut last = lock_ignoring_poison(&slot);
        if last.is_some_and(|l| l >= at) {
            return Ok(());
        }
        record::write_replace(&mark_path(&self.state_dir, job), at.to_string().as_bytes())
            .map_err(|e| {
                format!(
                    "cannot record the dispatch of {at} in {}: {e}; not running it",
                    self.state_dir.display()
                )
            })?;
        *last = Some(at);
        Ok(())
    }
}

/// One run to start.
pub(crate) struct Launch {
    pub job: String,
    pub scheduled: Timestamp,
    /// "schedule", "catchup", "clock-step", "reboot", "trigger".
    pub why: &'static str,
    pub params: std::collections::BTreeMap<String, String>,
    pub run_id: String,
    /// Scheduler ticks are marked as dispatched; reboot and trigger runs are not ticks.
    pub mark: bool,
    /// Scheduler ticks coalesce into a run that is still waiting; triggers never do.
    pub coalesce: bool,
    /// Told the run's record when it ends (`trigger --wait`).
    pub done: Option<std::sync::mpsc::Sender<RunRecord>>,
    /// 1, or the attempt a run taken over from a lost fleet node goes on with.
    pub first_attempt: u32,
}

impl Launch {
    fn tick(job: &str, scheduled: Timestamp, why: &'static str) -> Launch {
        Launch {
            job: job.to_string(),
            scheduled,
            why,
            params: Default::default(),
            run_id: execute::new_run_id(),
            mark: why != "reboot",
            coalesce: true,
            done: None,
            first_attempt: 1,
        }
    }
}

/// Hands one run to a thread: jitter, lock, slot, run.
pub(crate) fn dispatch(shared: &Arc<Shared>, cfg: &Arc<Config>, launch: Launch) {
    let Some(j) = cfg.job(&launch.job) else {
        return;
    };
    let job = launch.job.clone();
    if launch.coalesce {
        let mut pending = lock_ignoring_poison(&shared.pending);
        if pending.contains(&job) {
            drop(pending);
            if launch.mark
                && let Err(e) = shared.mark(&job, launch.scheduled)
            {
                shared
                    .log
                    .log(Level::Error, "mark", &[("job", job.clone())], &e);
            }
            shared.log.log(
                Level::Info,
                "coalesced",
                &[
                    ("job", job.clone()),
                    ("scheduled", launch.scheduled.to_string()),
                ],
                "a run of this job is already waiting to start; this tick joins it",
            );
            return;
        }
        pending.insert(job.clone());
    }
    let jitter = if launch.why == "trigger" {
        None
    } else {
        j.jitter
    };
    let cfg = Arc::clone(cfg);
    shared.active.enter();
    let coalesce = launch.coalesce;
    let spawned = std::thread::Builder::new()
        .name(format!("job {job}"))
        .spawn({
            let shared = Arc::clone(shared);
            let job = job.clone();
            move || {
                run_one(&shared, &cfg, launch, jitter);
                if coalesce {
                    lock_ignoring_poison(&shared.pending).remove(&job);
                }
                shared.active.leave();
            }
        });
    if let Err(e) = spawned {
        if coalesce {
            lock_ignoring_poison(&shared.pending).remove(&job);
        }
        shared.active.leave();
        shared.log.log(
            Level::Error,
            "dispatch",
            &[("job", job)],
            &format!("cannot start a thread: {e}"),
        );
    }
}

/// Fleet mode, in a thread of its own: takes trigger requests (woken by NOTIFY), and every
/// heartbeat takes over the runs of nodes that stopped heartbeating.
fn fleet_worker(fleet: &'static crate::fleet::Fleet, shared: Arc<Shared>) {
    let mut next_scan = Instant::now();
    let mut next_prune = Instant::now();
    fleet.listen(fleet.heartbeat, || {
        if shared.slots.is_closed() {
            return false;
        }
        let cfg = current(&shared);
        let jobs: Vec<String> = cfg.jobs.iter().map(|j| j.name.clone()).collect();
        match fleet.take_triggers(&jobs) {
            Ok(list) => {
                for t in list {
                    dispatch(
                        &shared,
                        &cfg,
                        Launch {
                            job: t.job,
                            scheduled: Timestamp::now(),
                            why: "trigger",
                            params: t.params,
                            run_id: t.run_id,
                            mark: false,
                            coalesce: false,
                            done: None,
                            first_attempt: 1,
                        },
                    );
                }
            }
            Err(e) => shared.log.log(
                Level::Warn,
                "fleet",
                &[],
                &format!("cannot take trigger requests: {e}"),
            ),
        }
        if Instant::now() >= next_scan {
            next_scan = Instant::now() + fleet.heartbeat;
            take_over(fleet, &shared, &cfg);
        }
        if Instant::now() >= next_prune {
            next_prune = Instant::now() + Duration::from_secs(600);
            if let Err(e) = fleet.prune(cfg.settings.history_keep) {
                shared
                    .log
                    .log(Level::Warn, "fleet", &[], &format!("cannot prune: {e}"));
            }
        }
        true
    });
}

/// Runs lost on dead nodes: recorded and alerted as lost by this node (the one whose update
/// won), and run again with the same run id and scheduled instant when retries are left.
fn take_over(fleet: &'static crate::fleet::Fleet, shared: &Arc<Shared>, cfg: &Arc<Config>) {
    let lost = match fleet.take_over_lost() {
        Ok(l) => l,
        Err(e) => {
            shared.log.log(
                Level::Warn,
                "fleet",
                &[],
                &format!("cannot look for lost runs: {e}"),
            );
            return;
        }
    };
    for l in lost {
        let Some(job) = cfg.job(&l.job) else {
            continue;
        };
        let attempts_left = job.retry.retries.saturating_add(1) > l.attempt;
        let next = l.attempt.saturating_add(1).max(1);
        let reason = format!(
            "node {} was lost during attempt {} (no heartbeat for {}); {}",
            l.node,
            l.attempt.max(1),
            crate::units::format_duration(fleet.dead_after),
            if attempts_left {
                format!("node {} runs attempt {next}", fleet.node)
            } else {
                "no retries left".to_string()
            }
        );
        let now = Timestamp::now().to_string();
        let rec = RunRecord {
            run_id: l.run_id.clone(),
            job: l.job.clone(),
            scheduled: format_rfc3339(l.scheduled, &job.tz),
            started: now.clone(),
            ended: now,
            duration_ms: 0,
            attempts: Vec::new(),
            outcome: Outcome::Lost,
            reason: Some(reason.clone()),
            output: None,
            trigger: l.trigger.clone(),
            node: Some(l.node.clone()),
        };
        shared.log.log(
            Level::Error,
            "node-lost",
            &[
                ("job", l.job.clone()),
                ("run_id", l.run_id.clone()),
                ("node", l.node.clone()),
            ],
            &reason,
        );
        if !attempts_left {
            // With a retry coming, the record that counts is the retry's (same run id).
            let _ = fleet.record_lost(&rec);
        }
        crate::alert::node_lost(cfg, job, &rec, &shared.log);
        if attempts_left {
            dispatch(
                shared,
                cfg,
                Launch {
                    job: l.job,
                    scheduled: l.scheduled,
                    why: "takeover",
                    params: l.params,
                    run_id: l.run_id,
                    mark: false,
                    coalesce: false,
                    done: None,
                    first_attempt: next,
                },
            );
        }
    }
}

fn run_one(shared: &Shared, cfg: &Config, launch: Launch, jitter: Option<Duration>) {
    let Launch {
        job: name,
        scheduled,
        why,
        params,
        run_id,
        mark,
        done,
        first_attempt,
        ..
    } = launch;
    let name = name.as_str();
    let report = |rec: RunRecord, was_running: bool| {
        shared.metrics.finished(&rec.job, was_running, &rec);
        if let Some(tx) = &done {
            let _ = tx.send(rec);
        }
    };
    let Some(job) = cfg.job(name) else {
        return;
    };
    if mark && let Err(e) = shared.mark(name, scheduled) {
        shared
            .log
            .log(Level::Error, "mark", &[("job", name.to_string())], &e);
        return;
    }
    let interrupt = match shared
        .stop
        .try_clone()
        .and_then(|s| Interrupt::on_stream(s, libc::SIGTERM))
    {
        Ok(i) => i,
        Err(e) => {
            shared.log.log(
                Level::Error,
                "dispatch",
                &[("job", name.to_string())],
                &format!("cannot set up the run: {e}"),
            );
            return;
        }
    };
    if let Some(j) = jitter {
        let delay = j.mul_f64(crate::policy::random01());
        if interrupt.sleep(delay).is_some() {
            return;
        }
    }
    // A job with jobs after it alerts at the end of its pipeline run (the failure alert
    // then also lists what was skipped).
    let req = RunRequest {
        job,
        scheduled,
        params,
        trigger: why,
        alerts: cfg.children(name).is_empty(),
        first_attempt,
    };
    let lock = match execute::acquire(cfg, job, &shared.log, &run_id, &interrupt) {
        Ok(l) => l,
        Err(reason) => {
            let r = execute::not_run(
                cfg,
                &req,
                &run_id,
                reason,
                interrupt.received(),
                &shared.log,
            );
            report(r.record, false);
            return;
        }
    };
    if !shared.slots.acquire() {
        // Shutting down before a slot came free: say so, the instant will not run.
        let r = execute::not_run(
            cfg,
            &req,
            &run_id,
            "the daemon stopped while the run waited for a max_concurrent slot".to_string(),
            Some(libc::SIGTERM),
            &shared.log,
        );
        report(r.record, false);
        return;
    }
    lock_ignoring_poison(&shared.pending).remove(name);
    // While it runs, a marker says so: if the daemon dies, the next one records it as lost.
    let marker = running_dir(&shared.state_dir).join(format!("{run_id}.json"));
    let placeholder = RunRecord {
        run_id: run_id.clone(),
        job: name.to_string(),
        scheduled: format_rfc3339(scheduled, &job.tz),
        started: Timestamp::now().to_string(),
        ended: String::new(),
        duration_ms: 0,
        attempts: Vec::new(),
        outcome: Outcome::Lost,
        reason: None,
        output: None,
        trigger: why.to_string(),
        node: None,
    };
    if let Ok(text) = serde_json::to_vec(&placeholder) {
        let _ = record::write_replace(&marker, &text);
    }
    // Handed over early (LOOKAHEAD): start on the instant, not before.
    if let Ok(early) = Duration::try_from(scheduled.duration_since(Timestamp::now()))
        && !early.is_zero()
        && interrupt.sleep(early).is_some()
    {
        let r = execute::not_run(
            cfg,
            &req,
            &run_id,
            "the daemon stopped before it started".to_string(),
            interrupt.received(),
            &shared.log,
        );
        report(r.record, false);
        let _ = fs::remove_file(&marker);
        shared.slots.release();
        return;
    }
    shared.metrics.started(name);
    let r = execute::execute_locked(cfg, &req, &run_id, lock, &shared.log, &interrupt);
    let root_record = r.record.clone();
    let root_tails = r.tails;
    report(r.record, true);
    let _ = fs::remove_file(&marker);
    shared.slots.release();
    // The jobs that come after it run as one pipeline run with its scheduled instant (after
    // a failure they are recorded as skipped).
    let ran = !matches!(root_record.outcome, Outcome::Skipped | Outcome::Interrupted);
    if ran && !cfg.children(name).is_empty() {
        let p = crate::pipeline::run_downstream(
            cfg,
            job,
            scheduled,
            root_record,
            root_tails,
            &shared.log,
            &interrupt,
        );
        for step in p.steps.iter().skip(1) {
            shared.metrics.finished(&step.job, false, step);
        }
    }
}
