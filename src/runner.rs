//! One attempt of a job: spawn it in its own process group, drain its output, enforce the
//! timeout on the whole group, and report how it ended.
//!
//! A single thread (a `Supervisor`, holding the child, its pipes, the deadlines and how far
//! the stop sequence went) waits with poll(2) on stdout, stderr, a pidfd for the child's exit
//! and the interrupt pipe, so stdout and stderr are drained concurrently (a child blocked on a
//! full stderr pipe while we wait on stdout would deadlock) and no timer thread is needed.
//! Without a pidfd (kernels before 5.3) it looks at the child every 100 ms.
//!
//! Process-tree rules: the timeout (and an interrupt) signals the job's whole process group,
//! SIGTERM first and SIGKILL after `kill_grace`. When the main process exits while processes
//! it left behind still hold its output open, they get `kill_grace` to finish, then the same
//! TERM/KILL sequence, so a grandchild holding stdout can never hang the runner.
//!
//! The raw system calls (ppoll, pidfd_open, the clone3 into the attempt's cgroup, the
//! child's set-up between fork and exec) are in `crate::sys`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::contain::Scope;
use crate::output::{Output, Stream};
use crate::record::Usage;
use crate::sys::{self, ChildSetup, Rusage, SpawnError, Spawned};

/// The job processes this process started and has not reaped yet, for the reaper a daemon
/// runs as PID 1 (it reaps orphans, and must leave these to their runners).
///
/// Spawns run concurrently; the reaper's guarantee comes from the `gate`:
/// - a spawner holds the read side from before its clone until the child's pid is in
///   `pids` ([`Children::spawn`]); any number of spawners hold it at once;
/// - the reaper takes the write side before it looks a zombie's pid up in `pids`, and holds
///   it until it has reaped it or left it alone ([`Children::reap_unless_ours`]).
///
/// A zombie the reaper saw in /proc was created before it asked for the write side. If it
/// is a job's process, its spawner either holds the read side (the write side waits until
/// the pid is registered) or has released it (the pid is registered already); a runner
/// removes its pid only after it has waited for the process itself. So the reaper never
/// finds a job's pid missing, and a job's exit status is only ever taken by its runner.
/// While the reaper holds the write side no job process is created, so the pid it reaps
/// cannot be reused by one meanwhile. Spawners never wait for each other: the `pids`
/// mutex is held only to insert or remove one pid.
struct Children {
    gate: std::sync::RwLock<()>,
    pids: std::sync::Mutex<std::collections::BTreeSet<u32>>,
}

/// This process's job processes: one set per process, like the processes it tracks.
static CHILDREN: Children = Children::new();

impl Children {
    const fn new() -> Children {
        Children {
            gate: std::sync::RwLock::new(()),
            pids: std::sync::Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    fn pids(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<u32>> {
        self.pids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a job process with `start` and registers its pid before the reaper may look
    /// at it (the read side of the gate: other spawns go on at the same time).
    fn spawn(&self, start: impl FnOnce() -> io::Result<Spawned>) -> io::Result<Spawned> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let r = start();
        if let Ok(c) = &r {
            self.pids().insert(c.pid);
        }
        r
    }

    /// Forgets a job process once its runner has waited for it.
    fn forget(&self, pid: u32) {
        self.pids().remove(&pid);
    }

    /// Reaps `pid` with `reap` unless it is a registered job process (the write side of
    /// the gate: no spawn is in flight meanwhile). True if `reap` was called.
    fn reap_unless_ours(&self, pid: u32, reap: impl FnOnce(u32)) -> bool {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        if self.pids().contains(&pid) {
            return false;
        }
        reap(pid);
        true
    }
}

pub(crate) use crate::sys::Creds;
use crate::sys::{poll, pollin};

/// Everything needed to start one attempt.
#[derive(Clone, Debug)]
pub(crate) struct AttemptSpec {
    /// argv; the first element is the program (looked up in the job's PATH).
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    pub stdin: Option<Vec<u8>>,
    pub umask: u32,
    pub nice: Option<i32>,
    pub creds: Option<Creds>,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    /// A descriptor the job inherits (the job lock).
    pub inherit_fd: Option<RawFd>,
    /// `leftovers = "keep"`: processes still holding the output when the main process has
    /// exited are let go after `kill_grace` (their output is no longer read), not stopped.
    pub keep_leftovers: bool,
    /// The I/O priority (`class << 13 | data`), if the job sets one.
    pub ioprio: Option<i32>,
    /// The `oom_score_adj` the job gets back (the daemon runs with a lower one).
    pub oom_score_adj: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
    /// The program could not be started: the reason, naming it.
    NotStarted(String),
}

#[derive(Clone, Debug)]
pub(crate) struct AttemptResult {
    pub started: Timestamp,
    pub duration: Duration,
    pub exit: Exit,
    pub timed_out: bool,
    /// The signal that interrupted the run (forwarded to the job), if any.
    pub interrupted: Option<i32>,
    pub pid: Option<u32>,
    /// What its processes used.
    pub usage: Usage,
    /// The kernel's OOM killer killed one of its processes (cgroup `memory.events`).
    pub oom_killed: bool,
}

/// Signals that ask the current run to stop (SIGINT/SIGTERM to `cronwarden run`, or a
/// daemon's shutdown). Each source is a socket that becomes readable when its signal arrived.
pub(crate) struct Interrupt {
    /// Shared, not duplicated: one descriptor for all the runs that wait on the daemon's
    /// stop (each descriptor the daemon holds is copied into every child it starts).
    sources: Vec<(Arc<UnixStream>, i32)>,
    received: std::sync::atomic::AtomicI32,
}

impl Interrupt {
    /// No signals: never interrupted.
    pub(crate) fn none() -> Interrupt {
        Interrupt {
            sources: Vec::new(),
            received: std::sync::atomic::AtomicI32::new(0),
        }
    }

    /// Interrupted by these signals (registered with signal-hook's self-pipe).
    pub(crate) fn on_signals(signals: &[i32]) -> io::Result<Interrupt> {
        let mut sources = Vec::new();
        for &sig in signals {
            let (read, write) = UnixStream::pair()?;
            read.set_nonblocking(true)?;
            signal_hook::low_level::pipe::register(sig, write)?;
            sources.push((Arc::new(read), sig));
        }
        Ok(Interrupt {
            sources,
            received: std::sync::atomic::AtomicI32::new(0),
        })
    }

    /// Interrupted (as if by `sig`) when `source` becomes readable: a byte arrives, or its
    /// peer is closed. Several runs share one source (it is only polled, never read).
    pub(crate) fn on_stream(source: Arc<UnixStream>, sig: i32) -> Interrupt {
        Interrupt {
            sources: vec![(source, sig)],
            received: std::sync::atomic::AtomicI32::new(0),
        }
    }

    /// This interrupt plus one more source (a run's fence in fleet mode): the new one shares
    /// the existing sources.
    pub(crate) fn with_source(&self, source: UnixStream, sig: i32) -> io::Result<Interrupt> {
        source.set_nonblocking(true)?;
        let mut sources = Vec::with_capacity(self.sources.len() + 1);
        for (s, sg) in &self.sources {
            sources.push((Arc::clone(s), *sg));
        }
        sources.push((Arc::new(source), sig));
        Ok(Interrupt {
            sources,
            received: std::sync::atomic::AtomicI32::new(
                self.received.load(std::sync::atomic::Ordering::SeqCst),
            ),
        })
    }

    /// Descriptors to include in a poll set.
    pub(crate) fn raw_fds(&self) -> Vec<RawFd> {
        self.sources.iter().map(|(s, _)| s.as_raw_fd()).collect()
    }

    /// Forgets a received signal (for signals that can come again, like SIGHUP): drains the
    /// sources, then clears the flag.
    pub(crate) fn reset(&self) {
        let mut buf = [0u8; 64];
        for (sock, _) in &self.sources {
            while let Ok(n) = (&**sock).read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        }
        self.received.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// The signal received so far, if any (looks at the sources without waiting).
    pub(crate) fn received(&self) -> Option<i32> {
        let get =
            || Some(self.received.load(std::sync::atomic::Ordering::SeqCst)).filter(|s| *s != 0);
        if get().is_none() && !self.sources.is_empty() {
            self.wait_for_signal(Duration::ZERO);
        }
        get()
    }

    fn fds(&self) -> impl Iterator<Item = (RawFd, i32)> + '_ {
        self.sources.iter().map(|(s, sig)| (s.as_raw_fd(), *sig))
    }

    /// Waits up to `timeout` for a source to become readable, and takes it.
    fn wait_for_signal(&self, timeout: Duration) -> Option<i32> {
        let mut pfds: Vec<libc::pollfd> = self.fds().map(|(fd, _)| pollin(fd)).collect();
        poll(&mut pfds, Some(timeout));
        let fd = pfds.iter().find(|p| p.revents != 0)?.fd;
        self.take(fd)
    }

    /// Remembers the signal of a readable source. The source is not drained, so every
    /// thread that shares this interrupt (the steps of a pipeline) sees it too; `reset`
    /// drains it for signals that can come again.
    fn take(&self, fd: RawFd) -> Option<i32> {
        let (_, sig) = self.sources.iter().find(|(s, _)| s.as_raw_fd() == fd)?;
        self.received
            .store(*sig, std::sync::atomic::Ordering::SeqCst);
        Some(*sig)
    }

    /// Sleeps for `d` unless a signal arrives first; returns the signal.
    pub(crate) fn sleep(&self, d: Duration) -> Option<i32> {
        if let Some(s) = self.received() {
            return Some(s);
        }
        let deadline = Instant::now() + d;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            if let Some(s) = self.wait_for_signal(deadline - now) {
                return Some(s);
            }
        }
    }
}

/// The child's set-up between fork and exec (signal state, umask, priority, the lock,
/// credentials; the move into the cgroup whose `cgroup.procs` is given).
fn child_setup(spec: &AttemptSpec, cgroup_procs: Option<RawFd>) -> ChildSetup {
    ChildSetup {
        umask: spec.umask,
        nice: spec.nice,
        ioprio: spec.ioprio,
        oom_score_adj: spec.oom_score_adj,
        creds: spec.creds.clone(),
        inherit_fd: spec.inherit_fd,
        cgroup_procs,
    }
}

/// Starts the attempt's process with [`sys::spawn`] (in constant time, directly inside the
/// attempt's cgroup where there is one) unless this host was found not to allow clone3,
/// else with [`command`] (the child then moves itself into the cgroup, if any).
fn spawn_child(spec: &AttemptSpec, scope: Option<&Scope<'_>>) -> io::Result<Spawned> {
    if scope.is_none_or(Scope::may_clone3) {
        let exec = sys::Exec {
            argv: &spec.argv,
            env: &spec.env,
            workdir: spec.workdir.as_deref(),
            stdin_piped: spec.stdin.is_some(),
        };
        let cgroup = scope.and_then(Scope::cgroup_fd);
        let cgroup_fd = cgroup.as_ref().map(std::os::fd::AsFd::as_fd);
        match sys::spawn(&exec, cgroup_fd, child_setup(spec, None)) {
            Ok(child) => return Ok(child),
            Err(SpawnError::Failed(e)) => return Err(e),
            Err(SpawnError::Unsupported(e)) => {
                if let Some(scope) = scope {
                    scope.no_clone3(&e);
                }
            }
        }
    }
    let procs = scope.and_then(Scope::procs_fd);
    if procs.is_none() && scope.is_some_and(Scope::has_cgroup) {
        // Started without it, the child would be outside the attempt's cgroup, uncounted.
        return Err(io::Error::other(
            "cannot open the attempt's cgroup.procs to move its process into its cgroup",
        ));
    }
    let mut child = command(spec, procs).spawn()?;
    let file = |fd: Option<OwnedFd>| {
        fd.map(File::from)
            .ok_or_else(|| io::Error::other("the child's output is not piped"))
    };
    Ok(Spawned {
        pid: child.id(),
        stdin: child.stdin.take().map(|s| File::from(OwnedFd::from(s))),
        stdout: file(child.stdout.take().map(OwnedFd::from))?,
        stderr: file(child.stderr.take().map(OwnedFd::from))?,
    })
}

/// The command of an attempt: its own process group, piped output, and the child's set-up
/// between fork and exec (signal state, umask, priority, the lock, credentials).
fn command(spec: &AttemptSpec, cgroup_procs: Option<RawFd>) -> Command {
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &spec.workdir {
        cmd.current_dir(dir);
    }
    sys::install_child_setup(&mut cmd, child_setup(spec, cgroup_procs));
    cmd
}

enum Phase {
    Running,
    /// SIGTERM sent; SIGKILL at this instant.
    Terminating(Instant),
    /// SIGKILL sent; stop waiting for the pipes at this instant.
    Killed(Instant),
}

/// A deadline during an attempt at which the caller is called, once, while the attempt goes
/// on (the run's `warn_after`): looked at by the supervision loop like its own deadlines.
pub(crate) struct Alarm<'c> {
    pub(crate) at: Instant,
    pub(crate) call: &'c mut dyn FnMut(),
}

/// What the supervision loop does after looking at the deadlines.
enum Step {
    /// Wait for the pipes, the child or the next deadline.
    Wait,
    /// A signal was sent: look again.
    Again,
    /// Give up on the pipes (after SIGKILL, something unkillable still holds them).
    Stop,
}

/// One running attempt: the child, its output pipes, and how far its stop sequence went.
struct Supervisor<'a> {
    spec: &'a AttemptSpec,
    interrupt: &'a Interrupt,
    /// The run's containment: every process of the attempt, not only its group.
    scope: Option<&'a Scope<'a>>,
    /// The child's pid, which is also its process group.
    pid: u32,
    stdout: Option<File>,
    stderr: Option<File>,
    /// Readable when the child exits (`None` on old kernels: the child is looked at every
    /// 100 ms instead).
    pidfd: Option<OwnedFd>,
    /// The end of the timeout.
    deadline: Option<Instant>,
    phase: Phase,
    status: Option<ExitStatus>,
    /// What the main process and the descendants it waited for used.
    rusage: Option<Rusage>,
    /// The main process exited while others still hold its output: their time is up then.
    linger_until: Option<Instant>,
    timed_out: bool,
    interrupted: Option<i32>,
    buf: Vec<u8>,
}

impl<'a> Supervisor<'a> {
    /// Starts the child (registered in [`CHILDREN`] before a reaper may look at it; other
    /// attempts start at the same time), tells `on_spawn` its pid, feeds its stdin from a thread and
    /// makes its output pipes large and non-blocking. The error names what could not run.
    fn spawn(
        spec: &'a AttemptSpec,
        interrupt: &'a Interrupt,
        scope: Option<&'a Scope<'a>>,
        t0: Instant,
        on_spawn: &mut dyn FnMut(u32),
    ) -> Result<Supervisor<'a>, String> {
        let spawned = CHILDREN.spawn(|| spawn_child(spec, scope));
        let child = spawned.map_err(|e| {
            let what = match &spec.workdir {
                Some(dir) if e.kind() == io::ErrorKind::NotFound && !dir.is_dir() => {
                    format!("workdir {}", dir.display())
                }
                _ => spec.argv[0].clone(),
            };
            format!("cannot run {what:?}: {e}")
        })?;
        let pid = child.pid;
        on_spawn(pid);
        if let (Some(mut stdin), Some(data)) = (child.stdin, spec.stdin.clone()) {
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
        }
        let (stdout, stderr) = (child.stdout, child.stderr);
        for fd in [stdout.as_fd(), stderr.as_fd()] {
            // Failures are harmless: the default size stays; a blocking read still ends.
            let _ = sys::set_pipe_size(fd, 1 << 20);
            let _ = sys::set_nonblocking(fd);
        }
        let pidfd = sys::pidfd_open(pid);
        Ok(Supervisor {
            spec,
            interrupt,
            scope,
            pid,
            stdout: Some(stdout),
            stderr: Some(stderr),
            pidfd,
            deadline: spec.timeout.map(|t| t0 + t),
            phase: Phase::Running,
            status: None,
            rusage: None,
            linger_until: None,
            timed_out: false,
            interrupted: None,
            // Under malloc's mapping threshold (128 kB, `sys::malloc_fixed_thresholds`): a
            // buffer of its own mapping (it was 256 kB) was unmapped at every run's end, a TLB
            // flush on every CPU the daemon's threads ran on (issue 21).
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Signals every process of the attempt: the run's whole containment where there is
    /// one, else the child's process group.
    fn signal_group(&self, sig: i32) {
        match self.scope {
            Some(s) => s.signal(self.pid as i32, sig),
            None => {
                let _ = sys::kill_group(self.pid as i32, sig);
            }
        }
    }

    /// Drains the output and waits for the child until it exited and its output is closed
    /// (or, after SIGKILL, the pipes are given up on); calls the alarm when its time comes.
    fn supervise(&mut self, out: &mut Output<'_>, mut alarm: Option<Alarm<'_>>) {
        loop {
            if self.status.is_some() && self.stdout.is_none() && self.stderr.is_none() {
                break;
            }
            let now = Instant::now();
            if let Some(a) = alarm.take_if(|a| now >= a.at) {
                (a.call)();
            }
            match self.on_deadline(now) {
                Step::Wait => {}
                Step::Again => continue,
                Step::Stop => break,
            }
            let mut wait = self.next_wait(now, out);
            if let Some(a) = &alarm {
                let until = a.at.saturating_duration_since(now);
                wait = Some(wait.map_or(until, |w| w.min(until)));
            }
            let mut pfds = self.poll_set();
            poll(&mut pfds, wait);
            out.tick();
            self.on_ready(&pfds, out);
            self.check_exit();
        }
    }

    /// Deadlines: the timeout (while the child runs) or the end of the linger time sends
    /// SIGTERM to the group, the end of `kill_grace` SIGKILL; two seconds after SIGKILL an
    /// exited child's pipes are given up on.
    fn on_deadline(&mut self, now: Instant) -> Step {
        match self.phase {
            Phase::Running => {
                let timeout_hit = self.status.is_none() && self.deadline.is_some_and(|d| now >= d);
                let linger_hit = self.linger_until.is_some_and(|d| now >= d);
                if linger_hit && !timeout_hit && self.spec.keep_leftovers {
                    // Kept leftovers hold the output: stop reading it; they live on.
                    return Step::Stop;
                }
                if timeout_hit || linger_hit {
                    self.timed_out |= timeout_hit;
                    self.signal_group(libc::SIGTERM);
                    self.phase = Phase::Terminating(now + self.spec.kill_grace);
                    return Step::Again;
                }
            }
            Phase::Terminating(at) if now >= at => {
                self.signal_group(libc::SIGKILL);
                self.phase = Phase::Killed(now + Duration::from_secs(2));
                return Step::Again;
            }
            Phase::Killed(at) if now >= at && self.status.is_some() => {
                // Something unkillable (uninterruptible sleep) still holds the pipes.
                return Step::Stop;
            }
            _ => {}
        }
        Step::Wait
    }

    /// How long poll may wait: until the next deadline or output flush, and at most 100 ms
    /// while the child runs and there is no pidfd to tell its exit.
    fn next_wait(&self, now: Instant, out: &Output<'_>) -> Option<Duration> {
        let next_deadline = match self.phase {
            Phase::Running => [
                self.deadline.filter(|_| self.status.is_none()),
                self.linger_until,
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Terminating(at) | Phase::Killed(at) => Some(at),
        };
        let next_deadline = match (next_deadline, out.flush_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut wait = next_deadline.map(|d| d.saturating_duration_since(now));
        if self.pidfd.is_none() && self.status.is_none() {
            // No pidfd (old kernel): look at the child a few times a second.
            wait = Some(wait.map_or(Duration::from_millis(100), |w| {
                w.min(Duration::from_millis(100))
            }));
        }
        wait
    }

    /// The descriptors to wait for: the open pipes, the pidfd until the child exited, and
    /// the interrupt sources until one fired.
    fn poll_set(&self) -> Vec<libc::pollfd> {
        let mut pfds = Vec::with_capacity(8);
        for fd in [
            self.stdout.as_ref().map(|s| s.as_raw_fd()),
            self.stderr.as_ref().map(|s| s.as_raw_fd()),
        ]
        .into_iter()
        .flatten()
        {
            pfds.push(pollin(fd));
        }
        if let (Some(p), None) = (&self.pidfd, self.status) {
            pfds.push(pollin(p.as_raw_fd()));
        }
        if self.interrupted.is_none() {
            for (fd, _) in self.interrupt.fds() {
                pfds.push(pollin(fd));
            }
        }
        pfds
    }

    /// Handles the ready descriptors: drains output (closing a stream at its end), and
    /// forwards an interrupt's signal to the group, with SIGKILL `kill_grace` later.
    fn on_ready(&mut self, pfds: &[libc::pollfd], out: &mut Output<'_>) {
        for p in pfds {
            if p.revents == 0 {
                continue;
            }
            let fd = p.fd;
            if self.stdout.as_ref().is_some_and(|s| s.as_raw_fd() == fd) {
                if !drain(&mut self.stdout, &mut self.buf, out, Stream::Stdout) {
                    self.stdout = None;
                }
            } else if self.stderr.as_ref().is_some_and(|s| s.as_raw_fd() == fd) {
                if !drain(&mut self.stderr, &mut self.buf, out, Stream::Stderr) {
                    self.stderr = None;
                }
            } else if self.pidfd.as_ref().is_some_and(|p| p.as_raw_fd() == fd) {
                // Handled by check_exit.
            } else if let Some(sig) = self.interrupt.take(fd) {
                self.interrupted = Some(sig);
                self.signal_group(sig);
                if matches!(self.phase, Phase::Running) {
                    self.phase = Phase::Terminating(Instant::now() + self.spec.kill_grace);
                }
            }
        }
    }

    /// Notes the child's exit; if processes it left behind still hold its output, they get
    /// `kill_grace` to finish.
    fn check_exit(&mut self) {
        if self.status.is_none()
            && let Ok(Some((raw, usage))) = sys::wait4(self.pid as i32, true)
        {
            self.status = Some(ExitStatus::from_raw(raw));
            self.rusage = Some(usage);
            if self.stdout.is_some() || self.stderr.is_some() {
                self.linger_until = Some(Instant::now() + self.spec.kill_grace);
            }
        }
    }

    /// The result, once [`Supervisor::supervise`] returned: the child is waited for and
    /// unregistered. The error is why it could not be waited for.
    fn finish(
        self,
        started: Timestamp,
        t0: Instant,
    ) -> Result<(AttemptResult, Option<Rusage>), String> {
        let pid = self.pid;
        let waited = match self.status {
            Some(s) => Ok((s, self.rusage)),
            None => match sys::wait4(pid as i32, false) {
                Ok(Some((raw, usage))) => Ok((ExitStatus::from_raw(raw), Some(usage))),
                Ok(None) => Err(format!("waiting for pid {pid}: still running")),
                Err(e) => Err(format!("waiting for pid {pid}: {e}")),
            },
        };
        CHILDREN.forget(pid);
        let (status, rusage) = waited?;
        let exit = match (status.code(), status.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::Code(-1),
        };
        let res = AttemptResult {
            started,
            duration: t0.elapsed(),
            exit,
            timed_out: self.timed_out,
            interrupted: self.interrupted,
            pid: Some(pid),
            usage: Usage::default(),
            oom_killed: false,
        };
        Ok((res, rusage))
    }
}

/// Runs one attempt to the end. Output goes to `out`.
pub(crate) fn run_attempt(
    spec: &AttemptSpec,
    out: &mut Output<'_>,
    interrupt: &Interrupt,
) -> AttemptResult {
    run_attempt_with(spec, None, out, interrupt, &mut |_| {}, None)
}

/// [`run_attempt`] in the run's containment `scope` (which [`Scope::begin`] prepared for
/// this attempt), calling `on_spawn` with the child's pid (= its process group) once it
/// runs, and the `alarm` (if any) when its time comes while the attempt runs. When the main
/// process has exited, what is left of the attempt is settled ([`Scope::settle`]), then its
/// usage is measured.
pub(crate) fn run_attempt_with(
    spec: &AttemptSpec,
    scope: Option<&mut Scope<'_>>,
    out: &mut Output<'_>,
    interrupt: &Interrupt,
    on_spawn: &mut dyn FnMut(u32),
    alarm: Option<Alarm<'_>>,
) -> AttemptResult {
    let started = Timestamp::now();
    let t0 = Instant::now();
    let not_started = |msg: String| AttemptResult {
        started,
        duration: t0.elapsed(),
        exit: Exit::NotStarted(msg),
        timed_out: false,
        interrupted: None,
        pid: None,
        usage: Usage::default(),
        oom_killed: false,
    };
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return not_started("empty command".to_string());
    }
    if let Some(sig) = interrupt.received() {
        let mut r = not_started("interrupted before it started".to_string());
        r.interrupted = Some(sig);
        return r;
    }
    let mut supervisor = match Supervisor::spawn(spec, interrupt, scope.as_deref(), t0, on_spawn) {
        Ok(s) => s,
        Err(msg) => return not_started(msg),
    };
    supervisor.supervise(out, alarm);
    let stopping = supervisor.timed_out || supervisor.interrupted.is_some();
    let (mut res, rusage) = match supervisor.finish(started, t0) {
        Ok(r) => r,
        Err(msg) => return not_started(msg),
    };
    match scope {
        Some(s) => {
            if let Some(pid) = res.pid {
                s.settle(pid as i32, stopping);
            }
            res.usage = s.usage(rusage);
            res.oom_killed = s.oom_killed();
        }
        None => {
            res.usage = Usage {
                cpu_seconds: rusage.map(|r| r.cpu.as_secs_f64()),
                peak_memory_bytes: rusage.map(|r| r.maxrss_kb * 1024),
            }
        }
    }
    res
}

/// Reads what is available (the descriptors are non-blocking: until the pipe is empty, with
/// a cap so that one busy stream cannot starve the other); false at end of file (or on an
/// error, which ends the stream).
fn drain<R: Read>(
    src: &mut Option<R>,
    buf: &mut [u8],
    out: &mut Output<'_>,
    which: Stream,
) -> bool {
    let Some(r) = src.as_mut() else {
        return false;
    };
    let mut budget = 16usize << 20;
    loop {
        match r.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                out.write(which, &buf[..n]);
                budget = budget.saturating_sub(n);
                if budget == 0 {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// Reaps exited processes that are not ours to wait for: orphans re-parented to this
/// process when it runs as PID 1 in a container. Jobs' own main processes are left to their
/// runners.
pub(crate) fn reap_orphans() {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": comm may contain spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut f = rest.split(' ');
        let (state, ppid) = (f.next(), f.next().and_then(|p| p.parse::<u32>().ok()));
        if state != Some("Z") || ppid != Some(me) {
            continue;
        }
        CHILDREN.reap_unless_ours(pid, |p| {
            sys::reap(p as i32);
        });
    }
}

/// The signal's name for messages: "SIGTERM".
pub(crate) fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str) -> AttemptSpec {
        AttemptSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            workdir: None,
            stdin: None,
            umask: 0o022,
            nice: None,
            creds: None,
            timeout: Some(Duration::from_secs(30)),
            kill_grace: Duration::from_secs(1),
            inherit_fd: None,
            keep_leftovers: false,
            ioprio: None,
            oom_score_adj: None,
        }
    }

    fn run_with_alarm(script: &str, after: Duration) -> (AttemptResult, Vec<Duration>) {
        let mut out = Output::new(&std::env::temp_dir(), "cronwarden-runner-test", 0);
        let t0 = Instant::now();
        let mut calls = Vec::new();
        let mut call = || calls.push(t0.elapsed());
        let alarm = Alarm {
            at: t0 + after,
            call: &mut call,
        };
        let res = run_attempt_with(
            &spec(script),
            None,
            &mut out,
            &Interrupt::none(),
            &mut |_| {},
            Some(alarm),
        );
        (res, calls)
    }

    /// Waits (without reaping it) until the process `pid` has exited.
    fn wait_exited(pid: u32) {
        let fd = sys::pidfd_open(pid).expect("pidfd_open (Linux 5.3)");
        let mut pfds = [pollin(fd.as_raw_fd())];
        while pfds[0].revents == 0 {
            poll(&mut pfds, None);
        }
    }

    #[test]
    fn a_spawn_completes_while_another_is_in_flight() {
        let owner = Children::new();
        let kids = &owner;
        let (in_flight, wait_in_flight) = std::sync::mpsc::channel();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (done, wait_done) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(move || {
                kids.spawn(move || {
                    in_flight.send(()).expect("the test waits");
                    held.recv().expect("the test releases");
                    Err(io::Error::other("never started"))
                })
            });
            wait_in_flight.recv().expect("the first spawn is in flight");
            s.spawn(move || {
                let r = kids.spawn(|| spawn_child(&spec("exit 0"), None));
                done.send(r.map(|c| c.pid)).expect("the test waits");
            });
            // The second spawn ends while the first still holds its side of the gate (a
            // watchdog, not a timing: with one lock for all spawns it would never end).
            let second = wait_done.recv_timeout(Duration::from_secs(60));
            release.send(()).expect("the first spawn waits");
            let pid = second
                .expect("a spawn completes while another is in flight")
                .expect("sh starts");
            assert!(kids.pids().contains(&pid));
            assert!(sys::wait4(pid as i32, false).is_ok_and(|w| w.is_some()));
            kids.forget(pid);
        });
        assert!(kids.pids().is_empty());
    }

    #[test]
    fn the_reaper_never_takes_the_exit_of_a_job_whose_spawn_is_in_flight() {
        let owner = Children::new();
        let kids = &owner;
        let (spawned, wait_spawned) = std::sync::mpsc::channel();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (asking, wait_asking) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(move || {
                kids.spawn(move || {
                    let c = spawn_child(&spec("exit 7"), None)?;
                    // A zombie whose pid is not registered yet: what a reaper may see in
                    // /proc while a spawn is in flight.
                    wait_exited(c.pid);
                    spawned.send(c.pid).expect("the test waits");
                    held.recv().expect("the test releases");
                    Ok(c)
                })
            });
            let pid = wait_spawned.recv().expect("the job's process exited");
            let reaper = s.spawn(move || {
                asking.send(()).expect("the test waits");
                kids.reap_unless_ours(pid, |p| {
                    sys::reap(p as i32);
                })
            });
            // Released once the reaper is about to ask, so that it nearly always asks while
            // the spawn is in flight (with the reaper's gate removed, this test failed: the
            // reaper took the status 7); asking later must leave the pid alone all the same.
            wait_asking.recv().expect("the reaper asks");
            release.send(()).expect("the spawn waits");
            assert!(!reaper.join().expect("the reaper ends"), "reaped pid {pid}");
            let (raw, _) = sys::wait4(pid as i32, false)
                .expect("the exit status is still the runner's")
                .expect("exited");
            assert_eq!(ExitStatus::from_raw(raw).code(), Some(7));
            kids.forget(pid);
        });
    }

    #[test]
    fn the_reaper_takes_a_process_that_is_no_job() {
        let kids = Children::new();
        let child = spawn_child(&spec("exit 0"), None).expect("sh starts");
        wait_exited(child.pid);
        assert!(kids.reap_unless_ours(child.pid, |p| {
            assert!(sys::reap(p as i32));
        }));
        assert!(
            sys::wait4(child.pid as i32, true).is_err(),
            "reaped already"
        );
    }

    #[test]
    fn the_alarm_goes_off_once_while_the_attempt_runs_on() {
        let (res, calls) = run_with_alarm("sleep 0.6; exit 3", Duration::from_millis(200));
        assert_eq!(res.exit, Exit::Code(3));
        assert!(!res.timed_out);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(calls[0] >= Duration::from_millis(200), "{calls:?}");
        assert!(calls[0] < res.duration, "{calls:?} {:?}", res.duration);
    }

    #[test]
    fn an_alarm_after_the_end_never_goes_off() {
        let (res, calls) = run_with_alarm("exit 0", Duration::from_secs(5));
        assert_eq!(res.exit, Exit::Code(0));
        assert!(calls.is_empty(), "{calls:?}");
        assert!(res.duration < Duration::from_secs(5));
    }
}
