//! The system calls that need `unsafe`: the only unsafe code of the crate. Every unsafe
//! block is here, each with a `// SAFETY:` comment that argues why it is sound, and each
//! function offers a safe interface (no caller has to uphold anything for memory safety).
//! Where nix has a safe wrapper (signals, umask, fcntl, waitpid, sigprocmask, the set*id
//! calls), it is used instead of raw libc.
//!
//! What it wraps:
//! - [`poll`] / [`pollin`]: ppoll(2) with a timeout to the microsecond, on raw pollfds;
//! - [`pidfd_open`]: a descriptor that becomes readable when a process exits;
//! - [`kill_group`], [`group_alive`], [`group_exists`], [`kill`]: signals to a process group or
//!   a process;
//! - [`set_pipe_size`], [`set_nonblocking`]: descriptor flags (safe, through nix);
//! - [`reap`]: waitpid(WNOHANG) for one pid; [`wait4`]: waiting with the child's usage;
//! - [`install_child_setup`]: the job's set-up between fork and exec (signal state, umask,
//!   priority, I/O priority, the inherited lock descriptor, groups and user; first of all
//!   the move into the run's cgroup), installed with `CommandExt::pre_exec` (the tests read
//!   the I/O priority back with `ioprio_get`);
//! - [`spawn`]: a job's process started the way posix_spawn(3) does it, in constant time
//!   (clone3 with CLONE_VM | CLONE_VFORK on a stack of its own: no copy of this process's
//!   page tables, however large the table), directly inside its cgroup where there is one
//!   (CLONE_INTO_CGROUP), with the same set-up, then execve;
//! - [`oom_score_adj`], [`set_oom_score_adj`]: this process's standing with the OOM killer
//!   (safe: a file of /proc);
//! - [`with_umask`]: a call made under another process umask;
//! - [`malloc_trim`], [`trim_file_mappings`], [`trim_file_mappings_then_poll`]: the daemon's
//!   idle memory trim (free heap, and the pages of read-only file mappings, found in
//!   /proc/self/smaps; the last one goes straight into ppoll(2) after it).

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Who the job runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Creds {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Supplementary groups: exactly these, nothing inherited from the runner.
    pub(crate) groups: Vec<u32>,
}

/// A pollfd waiting for input on `fd`.
pub(crate) fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// ppoll(2): waits for `fds` with a timeout to the microsecond (`None`: indefinitely). The
/// result is in the `revents` of `fds`; an error (EINTR) is not reported: callers look at
/// the revents and at the clock again.
/// (nix's ppoll takes borrowed descriptors; the callers' poll sets are raw pollfds.)
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) {
    let ts = timeout.map(timespec);
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfd (the kernel writes only
    // their `revents`, within the `fds.len()` entries given), and `tsp` is null or points to
    // a live timespec for the call's duration; a null sigmask leaves the mask unchanged. A
    // descriptor number that is not open is not a memory error: the kernel reports POLLNVAL.
    let _ = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            tsp,
            std::ptr::null(),
        )
    };
}

/// pidfd_open(2): a descriptor that becomes readable when process `pid` exits; `None` when
/// the kernel cannot give one (before Linux 5.3) or the process is gone.
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0)?;
    // SAFETY: a plain system call with two integer arguments; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: on success pidfd_open returns a new descriptor, open and owned by nobody else
    // (it has not been handed out anywhere): the OwnedFd becomes its only owner.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A signal number as nix's Signal (0: none, i.e. only check that the target exists).
/// Real-time signals are not in nix's list (cronwarden sends none): EINVAL.
fn signal(sig: i32) -> io::Result<Option<Signal>> {
    if sig == 0 {
        return Ok(None);
    }
    Ok(Some(Signal::try_from(sig)?))
}

/// Sends `sig` to the process group `pgid` (a job's group: the pid of its main process).
/// Refuses `pgid <= 1`: kill(2) would read 0 as the caller's own group, and 1 is init's.
pub(crate) fn kill_group(pgid: i32, sig: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a job's process group: {pgid}"),
        ));
    }
    Ok(nix::sys::signal::killpg(Pid::from_raw(pgid), signal(sig)?)?)
}

/// Whether a process of group `pgid` still exists (kill -0 on the group; false for
/// `pgid <= 1`, and, like kill(2), when it exists but may not be signalled).
pub(crate) fn group_alive(pgid: i32) -> bool {
    kill_group(pgid, 0).is_ok()
}

/// Whether a process of group `pgid` exists, also one this process may not signal (kill -0
/// on the group, EPERM counting as present; false for `pgid <= 1`).
pub(crate) fn group_exists(pgid: i32) -> bool {
    match kill_group(pgid, 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

/// Sets the capacity of the pipe `fd` to `bytes` (F_SETPIPE_SZ; the kernel rounds it up to
/// a power of two of pages, and refuses more than /proc/sys/fs/pipe-max-size unprivileged).
pub(crate) fn set_pipe_size(fd: impl AsFd, bytes: usize) -> io::Result<()> {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    fcntl(fd.as_fd(), FcntlArg::F_SETPIPE_SZ(bytes))?;
    Ok(())
}

/// Makes reads and writes on `fd` non-blocking (O_NONBLOCK, the other status flags kept).
pub(crate) fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let fd = fd.as_fd();
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Sends `sig` to the process `pid` (refuses `pid <= 0`, which kill(2) reads as groups).
pub(crate) fn kill(pid: i32, sig: i32) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a process id: {pid}"),
        ));
    }
    Ok(nix::sys::signal::kill(Pid::from_raw(pid), signal(sig)?)?)
}

/// What a waited-for child used: its own CPU time and that of the descendants it waited for,
/// and the largest resident set among them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rusage {
    pub(crate) cpu: Duration,
    /// Kilobytes (ru_maxrss).
    pub(crate) maxrss_kb: u64,
}

/// Waits for the child `pid` with wait4(2), which also says what it used. With `nohang`,
/// `Ok(None)` while it runs. The status is the raw wait status
/// (`ExitStatus::from_raw` reads it).
pub(crate) fn wait4(pid: i32, nohang: bool) -> io::Result<Option<(i32, Rusage)>> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a process id: {pid}"),
        ));
    }
    let mut status: libc::c_int = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers and timevals).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: wait4(2) writes one c_int through `status` and one `rusage` through `ru`,
        // both live, writable locals of exactly those types for the whole call; `pid` is
        // positive, so it waits for that one child only.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        match r {
            0 => return Ok(None),
            r if r > 0 => break,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(Some((
        status,
        Rusage {
            cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
            maxrss_kb: ru.ru_maxrss.max(0) as u64,
        },
    )))
}

/// Whether this process has any child, running or exited (waitid on every child without
/// waiting and without reaping: ECHILD means none).
pub(crate) fn has_children() -> bool {
    use nix::sys::wait::{Id, waitid};
    let flags = WaitPidFlag::WNOHANG
        | WaitPidFlag::WNOWAIT
        | WaitPidFlag::WEXITED
        | WaitPidFlag::WSTOPPED
        | WaitPidFlag::WCONTINUED;
    !matches!(waitid(Id::All, flags), Err(nix::errno::Errno::ECHILD))
}

/// Reaps the child `pid` if it has exited (waitpid with WNOHANG); true when it was reaped.
pub(crate) fn reap(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    matches!(
        waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
        Ok(s) if s != WaitStatus::StillAlive
    )
}

/// Calls `f` with the process umask set to `mask`, and restores the previous mask after it
/// (also if it panics). The umask is the whole process's: files that other threads create
/// meanwhile get it too.
pub(crate) fn with_umask<R>(mask: u32, f: impl FnOnce() -> R) -> R {
    struct Restore(Mode);
    impl Drop for Restore {
        fn drop(&mut self) {
            nix::sys::stat::umask(self.0);
        }
    }
    let _restore = Restore(nix::sys::stat::umask(mode(mask)));
    f()
}

fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate(bits as libc::mode_t)
}

/// How the job's process is set up between fork and exec.
pub(crate) struct ChildSetup {
    pub umask: u32,
    /// The priority (nice value) to set, if any.
    pub nice: Option<i32>,
    /// The I/O class and priority to set with ioprio_set(2), if any, as the kernel's value
    /// `class << 13 | data` (see `contain::limits::ioprio_value`).
    pub ioprio: Option<i32>,
    /// The `oom_score_adj` the job gets back (the daemon lowers its own).
    pub oom_score_adj: Option<i32>,
    /// The user, group and exact supplementary groups to switch to, if any.
    pub creds: Option<Creds>,
    /// A descriptor to keep open across exec (the job lock): its close-on-exec flag is
    /// cleared in the child.
    pub inherit_fd: Option<RawFd>,
    /// The run's `cgroup.procs`, open for writing: the child moves itself into that cgroup
    /// first of all, before it can start anything.
    pub cgroup_procs: Option<RawFd>,
}

/// Installs `setup` on `cmd`, to run in the child between fork and exec, in this order: a
/// clean signal state (nothing blocked, every disposition the default: a job must not
/// inherit an ignored SIGPIPE or SIGINT from its runner), the umask, the priority, the I/O
/// priority (while still privileged: the realtime class needs it), the inherited descriptor,
/// then groups, group and user. An error (of setpriority, ioprio_set, setgroups, setgid,
/// setuid) makes the spawn fail with it: only its errno reaches the parent (EPERM for the
/// realtime I/O class unprivileged, EINVAL for a value the kernel does not know).
pub(crate) fn install_child_setup(cmd: &mut Command, setup: ChildSetup) {
    // Everything that allocates is done here, before the fork.
    let prepared = Prepared::new(setup);
    let child = move || prepared.run();
    // SAFETY: pre_exec requires the closure to be safe to run in the child of a fork(2) of a
    // possibly multi-threaded process: only async-signal-safe operations, no allocation, no
    // lock, no state that another thread of the parent may have left half-updated. The
    // closure only reads values it owns (the group list was allocated above, before the
    // fork) and `Prepared::run` makes only async-signal-safe system calls (write,
    // sigprocmask, rt_sigaction, umask, setpriority, ioprio_set, fcntl, setgroups, setgid,
    // setuid) through thin wrappers that do not allocate; their errors are raw OS errors,
    // which do not allocate.
    unsafe {
        cmd.pre_exec(child);
    }
}

/// A [`ChildSetup`] with everything that allocates done, for the child between fork (or
/// clone3) and exec: [`Prepared::run`] only makes async-signal-safe system calls.
struct Prepared {
    cgroup_procs: Option<RawFd>,
    /// The `oom_score_adj` as text, and its length.
    oom: Option<([u8; 8], usize)>,
    mask: Mode,
    priorities: Priorities,
    inherit_fd: Option<RawFd>,
    creds: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
}

impl Prepared {
    fn new(setup: ChildSetup) -> Prepared {
        let ChildSetup {
            umask,
            nice,
            ioprio,
            oom_score_adj,
            creds,
            inherit_fd,
            cgroup_procs,
        } = setup;
        let creds = creds.map(|c| (c.uid, c.gid, c.groups));
        // Formatted before the fork: the child only writes these bytes.
        let oom = oom_score_adj.map(|v| {
            let text = v.clamp(-1000, 1000).to_string();
            let mut buf = [0u8; 8];
            buf[..text.len()].copy_from_slice(text.as_bytes());
            (buf, text.len())
        });
        Prepared {
            cgroup_procs,
            oom,
            mask: mode(umask),
            priorities: Priorities { nice, ioprio },
            inherit_fd,
            creds,
        }
    }

    /// The child's side: the move into the cgroup (when given `cgroup.procs`), the OOM
    /// standing, then [`child_setup`]. No allocation.
    fn run(&self) -> io::Result<()> {
        if let Some(fd) = self.cgroup_procs {
            join_cgroup(fd)?;
        }
        if let Some((buf, len)) = &self.oom {
            write_oom_score_adj(&buf[..*len]);
        }
        child_setup(
            self.mask,
            self.priorities,
            self.inherit_fd,
            self.creds.as_ref(),
        )
    }
}

/// What a job's process is started with by [`spawn`]: its command line, its whole
/// environment, its working directory, and whether its stdin is a pipe (else /dev/null).
pub(crate) struct Exec<'a> {
    /// argv; the first element is the program (looked up in the PATH of `env`).
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub workdir: Option<&'a Path>,
    pub stdin_piped: bool,
}

/// A process started by [`spawn`]: its pid (also its process group), and this
/// process's ends of its stdin (when piped), stdout and stderr pipes.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub pid: u32,
    pub stdin: Option<File>,
    pub stdout: File,
    pub stderr: File,
}

/// Why [`spawn`] started nothing.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// clone3(2) (with CLONE_INTO_CGROUP when a cgroup is given) is not available here
    /// (ENOSYS: before Linux 5.3; EPERM: a seccomp filter refuses clone3, as some container
    /// runtimes do; E2BIG/EINVAL: a kernel before 5.7, which does not know the cgroup
    /// field). It will not be on the next spawn either: the caller starts children with
    /// `std::process::Command` instead (moving them into the cgroup itself).
    Unsupported(io::Error),
    /// The program could not be started (not found, not executable, a set-up step the
    /// kernel refused, the clone itself out of resources): its error, as with
    /// `std::process::Command`.
    Failed(io::Error),
}

/// The kernel's `struct clone_args` (linux/sched.h), up to `cgroup`: every field 64 bits.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// CLONE_ARGS_SIZE_VER0: the first version of the structure (up to `tls`, Linux 5.3).
const CLONE_ARGS_SIZE_VER0: usize = 64;
/// CLONE_ARGS_SIZE_VER2: the size of the structure that has the `cgroup` field.
const CLONE_ARGS_SIZE_VER2: usize = 88;
const _: () = assert!(std::mem::size_of::<CloneArgs>() == CLONE_ARGS_SIZE_VER2);
/// clone3(2): start the child in the cgroup whose directory `clone_args.cgroup` is open.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The program to execute: `prog` itself when it names a path (has a '/'), else the first
/// executable regular file named `prog` in the directories of `PATH` in the job's
/// environment (`/bin:/usr/bin` without one, as execvp(3) does; an empty entry is the
/// working directory). ENOENT when there is none, EACCES when only files that may not be
/// executed were found: the errors `std::process::Command` gives.
fn resolve_program(prog: &str, env: &BTreeMap<&str, &str>) -> io::Result<PathBuf> {
    if prog.contains('/') {
        return Ok(PathBuf::from(prog));
    }
    let path = env.get("PATH").copied().unwrap_or("/bin:/usr/bin");
    let mut denied = false;
    for dir in path.split(':') {
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(prog);
        if !std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
        denied = true;
    }
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

fn c_string(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "nul byte found in provided data",
        )
    })
}

/// A descriptor numbered 3 or above (a copy, close-on-exec, when it is 0, 1 or 2), so that
/// the child's dup2 onto 0, 1 and 2 never overwrites a descriptor it has yet to copy.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        Ok(fd)
    } else {
        fd.try_clone()
    }
}

/// Starts a job's process: clone3(2), directly inside a cgroup when `cgroup` is given
/// (CLONE_INTO_CGROUP, Linux 5.7; the cgroup's directory open O_RDONLY|O_DIRECTORY). The
/// child then does what `std::process::Command` with [`install_child_setup`] does: stdin (a
/// pipe, or /dev/null), stdout and stderr (pipes) on 0, 1 and 2, its own process group, the
/// working directory, the OOM standing and [`child_setup`] (with `setup.cgroup_procs`
/// ignored: it is born in the cgroup, or has none), then execve(2) of the program found in
/// the job's PATH with exactly `exec.env`. An error of the child (errno) reaches this
/// process through a close-on-exec pipe: EOF means the program runs.
///
/// On x86_64 the clone shares this process's memory and suspends the calling thread until
/// the child has executed the program or given up (CLONE_VM | CLONE_VFORK, as posix_spawn
/// does), the child running on a stack of its own ([`clone3_vfork`]): the cost does not grow
/// with this process's address space (a table of 100,000 jobs), where fork(2) copies its
/// page tables, and 100 threads spawning at once no longer contend on copying one mm.
/// Elsewhere the clone copies the memory, as fork does.
///
/// Why CLONE_INTO_CGROUP: moving a child into its cgroup (writing to `cgroup.procs`) takes
/// the kernel's cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period
/// when the lock was idle, while CLONE_INTO_CGROUP takes it only for reading.
///
/// Measured with the release build (Linux 6.18, 2 cores shared with other builds, so
/// noisy; the two binaries alternated), a daemon with one `* * * * * *` job
/// `sh -c 'date +%s.%N >> FILE'` for 15 s, p50 of the fractional seconds (the start
/// latency): containment = "cgroup" 17.5 and 19.9 ms with the migration (13.9 ms on a
/// quieter run earlier), 8.0 and 4.8 ms with clone3; containment = "process" 4.0 ms before,
/// 4.3 ms after (unchanged: no cgroup, same `std::process::Command` path).
/// `hyperfine -N --warmup 20 --runs 200 'cronwarden -c T run true'`, median (mean ± σ):
/// cgroup 5.96 ms (17.4 ± 50.8) before, 3.28 ms (3.5 ± 0.8) after; process 3.24 ms before,
/// 3.31 ms after.
pub(crate) fn spawn(
    exec: &Exec<'_>,
    cgroup: Option<BorrowedFd<'_>>,
    setup: ChildSetup,
) -> Result<Spawned, SpawnError> {
    use SpawnError::Failed;
    // Everything that allocates, before the clone.
    let image = Image::new(exec).map_err(Failed)?;
    let prepared = Prepared::new(setup);
    let (child_fds, stdin_w, out_r, err_r, status_r) =
        spawn_pipes(exec.stdin_piped).map_err(Failed)?;
    let child = Child {
        fds: [
            child_fds[0].as_raw_fd(),
            child_fds[1].as_raw_fd(),
            child_fds[2].as_raw_fd(),
        ],
        status: child_fds[3].as_raw_fd(),
        workdir: image.workdir.as_deref(),
        program: &image.program,
        argv: &image.argv_ptrs,
        envp: &image.envp_ptrs,
        prepared: &prepared,
    };
    let mut args = CloneArgs {
        flags: if cgroup.is_some() {
            CLONE_INTO_CGROUP
        } else {
            0
        },
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |c| c.as_raw_fd() as u64),
        ..CloneArgs::default()
    };
    // No handler of this process may run in the child: every signal is blocked around the
    // clone (the child unblocks them once their dispositions are the default).
    let mut old = SigSet::empty();
    let _ = nix::sys::signal::pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    );
    let ret = clone3(&mut args, &child);
    let clone_error = (ret < 0).then(io::Error::last_os_error);
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    // The child's ends are closed here: the pipes end when the child's copies close.
    drop(child_fds);
    if let Some(e) = clone_error {
        return Err(match e.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EINVAL) => {
                SpawnError::Unsupported(e)
            }
            _ => Failed(e),
        });
    }
    let pid = ret as i32;
    if let Some(errno) = child_error(File::from(OwnedFd::from(status_r))) {
        // The child exits at once (127): reap it, so that no zombie is left.
        while let Err(nix::errno::Errno::EINTR) = waitpid(Pid::from_raw(pid), None) {}
        return Err(Failed(io::Error::from_raw_os_error(errno)));
    }
    Ok(Spawned {
        pid: pid as u32,
        stdin: stdin_w,
        stdout: File::from(OwnedFd::from(out_r)),
        stderr: File::from(OwnedFd::from(err_r)),
    })
}

/// The size of the stack the child of a vfork-style clone runs on: [`Child::exec`] needs a
/// few kilobytes (glibc's posix_spawn gives its child 32 KiB plus the path's length).
#[cfg(target_arch = "x86_64")]
const CHILD_STACK: usize = 64 * 1024;

/// clone3(2) with `args`, the child running [`Child::exec`]: the pid in the parent (or -1,
/// errno set), never returning in the child. On x86_64 vfork-style ([`clone3_vfork`]),
/// elsewhere a copy of the memory, as fork(2) makes.
fn clone3(args: &mut CloneArgs, child: &Child<'_>) -> libc::c_long {
    #[cfg(target_arch = "x86_64")]
    {
        // 16-byte aligned (u128), uninitialised: only the child's own frames are written.
        let mut stack: Vec<u128> = Vec::with_capacity(CHILD_STACK / 16);
        args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
        args.stack = stack.as_mut_ptr() as u64;
        args.stack_size = CHILD_STACK as u64;
        let size = args_size(args);
        // SAFETY: see `clone3_vfork`: `args` is a live, initialised `struct clone_args` of at
        // least `size` bytes, with a stack of CHILD_STACK bytes that lives (in `stack`) until
        // the call returns in this thread, which CLONE_VFORK makes happen only once the child
        // has executed its program or exited, so no longer uses it; `child` is alive as long.
        let ret = unsafe { clone3_vfork(args, size, child) };
        drop(stack);
        ret
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let size = args_size(args);
        // SAFETY: clone3(2) reads `args` (a live, initialised `struct clone_args` of `size`
        // bytes) and writes nothing of this process's memory (no CLONE_PARENT_SETTID,
        // CLONE_PIDFD or CLONE_CHILD_SETTID). Without CLONE_VM and with no stack given, the
        // child gets a copy of this process's memory and goes on on its copy of this thread's
        // stack, as after fork(2). In the parent the call is a plain system call. In the child
        // (the return value 0), `Child::exec` never returns (execve, or _exit): no Rust code of
        // this function runs there after the clone, no destructor, no unwinding; and it makes
        // only async-signal-safe system calls on memory prepared before the clone, since the
        // other threads of the parent, whose locks may be held, do not exist in the child.
        unsafe {
            let ret = libc::syscall(libc::SYS_clone3, args as *mut CloneArgs, size);
            if ret == 0 {
                child.exec();
            }
            ret
        }
    }
}

/// The size of `args` to give the kernel: the version with the `cgroup` field only when it
/// is used, so that a kernel without it (5.3 to 5.6) still starts children without a cgroup.
fn args_size(args: &CloneArgs) -> usize {
    if args.flags & CLONE_INTO_CGROUP != 0 {
        CLONE_ARGS_SIZE_VER2
    } else {
        CLONE_ARGS_SIZE_VER0
    }
}

/// clone3(2) with CLONE_VM | CLONE_VFORK (set in `args`, with the child's stack): the child
/// shares this process's memory and runs [`child_entry`] with `child` on its own stack; this
/// thread waits in the kernel until the child executed its program or exited. Returns the
/// pid, or -1 with errno set.
///
/// # Safety
/// `args` must point to a live `struct clone_args` of at least `size` bytes whose flags
/// hold CLONE_VM | CLONE_VFORK and whose stack (`stack`, `stack_size`, the top 16-byte
/// aligned) is memory nothing else uses until this returns; `child` must stay alive until
/// then.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_vfork(args: *mut CloneArgs, size: usize, child: &Child<'_>) -> libc::c_long {
    let ret: libc::c_long;
    // SAFETY: the system call clobbers rcx and r11 (declared) and returns
    // in rax. In the parent it is a plain system call, and the code goes on at label 2.
    // In the child (rax = 0) the kernel has set the stack pointer to the top of the given
    // stack; the frame pointer is cleared (the end of the backtrace), and `child_entry` is
    // called with `child` (r12, which the system call preserves), the call pushing its
    // return address onto the child's own stack, aligned as the ABI wants. It never returns
    // (`ud2` would trap if it did). The parent's stack is never written by the child: this
    // is why the child does not simply return from a syscall wrapper, as vfork(2) in C may.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args,
            in("rsi") size,
            in("r12") child as *const Child<'_>,
            in("r13") child_entry as extern "C" fn(*const Child<'_>) -> !,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        // The raw system call returns -errno: set errno as the libc wrappers do.
        nix::errno::Errno::set_raw(-ret as i32);
        return -1;
    }
    ret
}

/// The child of [`clone3_vfork`], on its own stack: sets itself up and executes the
/// program ([`Child::exec`]). It shares the parent's memory, whose thread waits: it only
/// reads what was prepared, writes only its own stack (and errno), and never returns.
#[cfg(target_arch = "x86_64")]
extern "C" fn child_entry(child: *const Child<'_>) -> ! {
    // SAFETY: `child` points to the `Child` of `spawn`'s frame in the parent, which waits
    // in clone3 (CLONE_VFORK) until this process has executed its program or exited, so
    // the value is alive and unchanged for as long as this runs.
    let child = unsafe { &*child };
    child.exec()
}

/// What the child of [`spawn`] executes, allocated before the clone: the program
/// found in the job's PATH, argv and the environment as C strings with their pointer arrays,
/// and the working directory. The strings are owned here, so the pointers stay valid.
struct Image {
    program: CString,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    workdir: Option<CString>,
}

impl Image {
    fn new(exec: &Exec<'_>) -> io::Result<Image> {
        // Everything that allocates, before the clone.
        let env: BTreeMap<&str, &str> = exec
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let prog = exec
            .argv
            .first()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let program = resolve_program(prog, &env)?;
        let program = c_string(program.into_os_string().into_vec())?;
        let argv = exec
            .argv
            .iter()
            .map(|a| c_string(a.clone().into_bytes()))
            .collect::<io::Result<Vec<CString>>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| c_string(format!("{k}={v}").into_bytes()))
            .collect::<io::Result<Vec<CString>>>()?;
        let argv_ptrs: Vec<*const libc::c_char> = argv
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let envp_ptrs: Vec<*const libc::c_char> = envp
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let workdir = match exec.workdir {
            Some(d) => Some(c_string(d.as_os_str().to_owned().into_vec())?),
            None => None,
        };
        Ok(Image {
            program,
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
            workdir,
        })
    }
}

/// The pipes of a child started by [`spawn`]: the child's ends (stdin, stdout,
/// stderr, the status pipe; above the standard descriptors) and the parent's (the stdin
/// writer when `stdin_piped`, the stdout and stderr readers, the status reader).
#[allow(clippy::type_complexity)]
fn spawn_pipes(
    stdin_piped: bool,
) -> io::Result<(
    [OwnedFd; 4],
    Option<File>,
    std::io::PipeReader,
    std::io::PipeReader,
    std::io::PipeReader,
)> {
    let (stdin_r, stdin_w) = if stdin_piped {
        let (r, w) = std::io::pipe()?;
        (OwnedFd::from(r), Some(File::from(OwnedFd::from(w))))
    } else {
        (OwnedFd::from(File::open("/dev/null")?), None)
    };
    let (out_r, out_w) = std::io::pipe()?;
    let (err_r, err_w) = std::io::pipe()?;
    let (status_r, status_w) = std::io::pipe()?;
    let child_fds = [
        above_stdio(stdin_r)?,
        above_stdio(out_w.into())?,
        above_stdio(err_w.into())?,
        above_stdio(status_w.into())?,
    ];
    Ok((child_fds, stdin_w, out_r, err_r, status_r))
}

/// The errno a child wrote to its status pipe before it gave up, or `None` at EOF (the
/// pipe was closed by a successful exec).
fn child_error(mut status: File) -> Option<i32> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        match status.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Some(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
    match got {
        0 => None,
        4 => Some(i32::from_ne_bytes(buf)),
        _ => Some(libc::EIO),
    }
}

/// What the child of [`spawn`] needs, all prepared before the clone.
struct Child<'a> {
    /// Its stdin, stdout and stderr (all numbered 3 or above).
    fds: [RawFd; 3],
    /// The status pipe's write end (close-on-exec).
    status: RawFd,
    workdir: Option<&'a CStr>,
    program: &'a CStr,
    /// NULL-terminated.
    argv: &'a [*const libc::c_char],
    /// NULL-terminated.
    envp: &'a [*const libc::c_char],
    prepared: &'a Prepared,
}

impl Child<'_> {
    /// In the child: sets itself up and executes the program; on an error, writes its errno
    /// to the status pipe and exits with 127. Never returns. Only async-signal-safe system
    /// calls, nothing allocated.
    fn exec(&self) -> ! {
        let errno = match self.set_up() {
            Ok(()) => {
                // SAFETY: execve(2) with a NUL-terminated path and two NULL-terminated
                // arrays of pointers to NUL-terminated strings, all prepared before the
                // clone and alive (this process's copy of them) until the exec replaces it.
                unsafe {
                    libc::execve(
                        self.program.as_ptr(),
                        self.argv.as_ptr(),
                        self.envp.as_ptr(),
                    )
                };
                io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO)
            }
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
        };
        let bytes = errno.to_ne_bytes();
        // SAFETY: write(2) of 4 bytes from a live local array to a descriptor number (EBADF
        // at worst), then _exit(2), which runs no handler and no destructor of this process.
        unsafe {
            libc::write(self.status, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127)
        }
    }

    fn set_up(&self) -> io::Result<()> {
        let check = |r: libc::c_int| {
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        for (target, fd) in self.fds.iter().enumerate() {
            // SAFETY: dup2(2) of descriptor numbers (EBADF at worst); each source is 3 or
            // above, so none is overwritten before it is copied, and the copy is not
            // close-on-exec.
            check(unsafe { libc::dup2(*fd, target as libc::c_int) })?;
        }
        // SAFETY: setpgid(2) with integer arguments: this process leads a group of its own.
        check(unsafe { libc::setpgid(0, 0) })?;
        if let Some(dir) = self.workdir {
            // SAFETY: chdir(2) of a NUL-terminated path prepared before the clone.
            check(unsafe { libc::chdir(dir.as_ptr()) })?;
        }
        self.prepared.run()
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is open as `fd` (writing
/// "0" names the writer). Runs between fork and exec: one write(2), no allocation.
fn join_cgroup(fd: RawFd) -> io::Result<()> {
    // SAFETY: write(2) of one byte from a static string to a descriptor number; it reads
    // only that byte, and at worst fails with EBADF, which is returned.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    if n == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes `text` (a number) to /proc/self/oom_score_adj, between fork and exec: open, write,
/// close, nothing allocated. A failure leaves the job with the value it inherited.
fn write_oom_score_adj(text: &[u8]) {
    // SAFETY: open(2) of a NUL-terminated static path; write(2) of `text`, a live slice, its
    // own length; close(2) of the descriptor just opened. All async-signal-safe, no memory
    // of this process is written.
    unsafe {
        let fd = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            libc::write(fd, text.as_ptr().cast(), text.len());
            libc::close(fd);
        }
    }
}

/// The CPU and I/O priorities of a job's process (see [`ChildSetup`]).
#[derive(Clone, Copy)]
struct Priorities {
    nice: Option<i32>,
    ioprio: Option<i32>,
}

/// ioprio_set(2)/ioprio_get(2): the target is one process (or thread), by id.
const IOPRIO_WHO_PROCESS: libc::c_long = 1;

/// The child's side of [`install_child_setup`]: runs between fork and exec, so only
/// async-signal-safe calls (see there).
fn child_setup(
    mask: Mode,
    priorities: Priorities,
    inherit_fd: Option<RawFd>,
    creds: Option<&(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
) -> io::Result<()> {
    // The dispositions first: a signal pending while blocked (the clone3 spawn blocks them
    // all around the clone) is then delivered to the default action, never to a handler of
    // the parent's.
    default_dispositions();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // (nix's umask only panics for a previous mask outside 0o7777: the kernel's is 0o777.)
    nix::sys::stat::umask(mask);
    if let Some(n) = priorities.nice {
        // SAFETY: setpriority(2) with integer arguments only (nix has no wrapper for it).
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if let Some(value) = priorities.ioprio {
        // SAFETY: ioprio_set(2) takes three integers (who: one process; 0: the calling one,
        // this child, which has a single thread after the fork; the class and data) and
        // passes no memory; the kernel validates the value (EINVAL) and the caller's right
        // to it (EPERM). It only changes this process's I/O priority, which the program it
        // executes and that program's children inherit. A raw system call (no libc wrapper
        // exists): no lock, no allocation, async-signal-safe. The errno read after it is
        // this thread's.
        let r = unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0 as libc::c_long,
                libc::c_long::from(value),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if let Some(fd) = inherit_fd {
        // Keep the lock open across exec: the job's processes hold it too. (Raw fcntl, not
        // nix's, which takes a BorrowedFd: that asserts the number is open, which a number
        // from the caller cannot promise; fcntl on any number is harmless, EBADF at worst.)
        // SAFETY: fcntl(2) F_GETFD/F_SETFD on a descriptor number, integer arguments only;
        // it only changes that descriptor's close-on-exec flag in this (child) process.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
        }
    }
    if let Some((uid, gid, groups)) = creds {
        // Raw system calls, not glibc's set*id wrappers: in a child that shares the
        // parent's memory (the vfork-style spawn), those would take the parent's threads
        // for this process's and signal them to change their credentials too.
        let ok = |r: libc::c_long| {
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        let n = groups.len() as libc::c_long;
        // SAFETY: setgroups(2) reads `groups.len()` ids from the live vector's buffer;
        // setgid(2) and setuid(2) take integers. None writes this process's memory; each
        // changes only the calling process's credentials, or fails (EPERM), returned.
        ok(unsafe { libc::syscall(libc::SYS_setgroups, n, groups.as_ptr()) })?;
        // SAFETY: as above.
        ok(unsafe { libc::syscall(libc::SYS_setgid, libc::c_long::from(*gid)) })?;
        // SAFETY: as above.
        ok(unsafe { libc::syscall(libc::SYS_setuid, libc::c_long::from(*uid)) })?;
    }
    Ok(())
}

/// The I/O priority of process `pid` (ioprio_get(2)): `class << 13 | data`, class 0 meaning
/// none was set (the kernel derives it from the nice value). Refuses `pid <= 0` (0 would be
/// this process).
#[cfg(test)]
pub(crate) fn ioprio_get(pid: i32) -> io::Result<i32> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a process id: {pid}"),
        ));
    }
    // SAFETY: ioprio_get(2) takes two integers (who: one process, and its id) and passes no
    // memory; it only reads the target's I/O priority, or fails (ESRCH, EPERM).
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_get,
            IOPRIO_WHO_PROCESS,
            libc::c_long::from(pid),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    i32::try_from(r).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("ioprio_get({pid}) gave {r}, not an I/O priority"),
        )
    })
}

/// The file of this process's standing with the kernel's OOM killer.
const OOM_SCORE_ADJ: &str = "/proc/self/oom_score_adj";

/// This process's `oom_score_adj` (-1000: never killed for memory, 0: the default, up to
/// 1000: killed first), read from /proc/self/oom_score_adj.
pub(crate) fn oom_score_adj() -> io::Result<i32> {
    let text = std::fs::read_to_string(OOM_SCORE_ADJ)?;
    text.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{OOM_SCORE_ADJ}: {:?} is not a number: {e}", text.trim()),
        )
    })
}

/// Sets this process's `oom_score_adj` (-1000 to 1000) in /proc/self/oom_score_adj; its
/// children inherit it. Lowering it below the value it had needs CAP_SYS_RESOURCE (EACCES
/// otherwise); the kernel refuses a value out of range (EINVAL). The error names the file.
pub(crate) fn set_oom_score_adj(value: i32) -> io::Result<()> {
    std::fs::write(OOM_SCORE_ADJ, value.to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("writing {value} to {OOM_SCORE_ADJ}: {e}")))
}

/// Sets every signal's disposition to the default, real-time ones included: the raw system
/// call, because the C library refuses to touch the two it reserves for itself (32 and 33),
/// which a parent may still have left ignored.
fn default_dispositions() {
    // A zeroed kernel sigaction is SIG_DFL with no flags, no restorer and an empty mask.
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: rt_sigaction(2) reads the new action from `dfl`, 32 bytes that live
            // across the call: the kernel's struct sigaction (handler, flags, restorer where
            // the architecture has one, and a mask of the 8 bytes given as sigsetsize) is at
            // most that large, and all zeros is a valid value for it. The old action is not
            // asked for (null). Installing SIG_DFL cannot run any code of this process.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null::<u64>(),
                    8usize,
                );
            }
        }
    }
}

/// Fixed thresholds for glibc's malloc (`mallopt`): blocks of 128 kB and more are mapped
/// on their own (and unmapped when freed), and a thread arena's free top above 128 kB goes
/// back to the system when a free grows it. The defaults move both thresholds up to the
/// largest block freed so far (twice that for the trim), so after a large table's load the
/// freed top of the loading thread's arena stayed resident: `malloc_trim` returns free pages
/// inside an arena, but not a thread arena's top (BENCHMARKS.md, "Memory per job").
///
/// And no "fast bins" (`M_MXFAST` 0): a small block freed goes back at once, merged with its
/// free neighbours (and into the arena's top, which is then trimmed). With fast bins, the
/// loaded table's small blocks, freed by the main thread after its compact copy was made,
/// waited in the loading thread's arena's fast bins, and (most likely) `malloc_trim` then
/// merged them into that arena's top, which it does not trim: a 100,000-job daemon kept
/// that memory resident, 46 to 58 MB more after a reload, in four of four runs with four
/// daemons reloading at once, and in none of four with no fast bins (BENCHMARKS.md, "Memory
/// per job, fifth round").
pub(crate) fn malloc_fixed_thresholds() {
    const LIMIT: libc::c_int = 128 * 1024;
    // SAFETY: mallopt takes a parameter number and an integer value and only changes the
    // allocator's tuning, under its own lock; the parameters are valid numbers for glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT);
        libc::mallopt(libc::M_TRIM_THRESHOLD, LIMIT);
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

/// Returns free heap memory to the system (glibc's malloc_trim).
pub(crate) fn malloc_trim() {
    // SAFETY: malloc_trim takes an integer (the padding to keep) and only releases free
    // memory of the allocator back to the system, under the allocator's own lock; memory in
    // use is not touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drops the pages of this process's read-only file mappings from its resident set (this
/// binary, libc, ld.so...): the few that are used again fault back in from the page cache.
/// A mapping is dropped only when it is private, not writable, and has no anonymous page:
/// dropping a private page that was written (relocated data) would lose its contents.
/// (Dirty page-cache pages of a binary just written are fine: the page cache keeps them.)
/// The ranges are found in /proc/self/smaps here, so the invariant is established here.
pub(crate) fn trim_file_mappings() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    // First the list, then the madvise calls: code that runs after them (parsing smaps)
    // would fault its pages straight back in.
    let ranges = file_ranges(&smaps);
    drop(smaps);
    for (start, end) in ranges {
        // SAFETY: `file_ranges` returns only mappings of this process that smaps lists as
        // private ('p'), not writable (no 'w') and backed by a file (a path), with no
        // anonymous page, as `drop_file_pages` requires. Nothing of this crate maps or
        // unmaps memory between reading smaps and this call.
        unsafe { drop_file_pages(start, end - start) };
    }
}

/// [`trim_file_mappings`], then [`poll`], with nothing in between that could fault a dropped
/// page back in. A fault in a dropped file mapping maps back the whole page-cache folio
/// around the page (64 KiB to 2 MiB of a binary's code, as the file was cached), so the few
/// functions that used to run between the trim and the poll brought back 0.3 to 1.8 MB of
/// code that the idle daemon never runs (BENCHMARKS.md, "Idle memory with 100 jobs, round
/// 2"). Here the last instructions before the poll are those of one small function and of
/// libc's `syscall`, whose pages are kept (the page of each and the next one: nothing else
/// of them is kept); every other page of those mappings is dropped as by
/// [`trim_file_mappings`].
pub(crate) fn trim_file_mappings_then_poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return poll(fds, timeout);
    };
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| usize::try_from(p).ok())
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    let keep = [
        drop_then_ppoll as *const () as usize,
        libc::syscall as *const () as usize,
    ];
    let ranges = without_pages(file_ranges(&smaps), &keep, page);
    let marker = 0u8;
    let here = std::hint::black_box(std::ptr::addr_of!(marker)) as usize;
    let stack = dead_stack(&smaps, here, page);
    drop(smaps);
    let ts = timeout.map(timespec);
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `ranges` are parts of the ranges `file_ranges` found (private, read-only file
    // mappings without anonymous pages, as `drop_then_ppoll` requires: see
    // `trim_file_mappings`); nothing maps or unmaps memory since smaps was read. `stack` is
    // from `dead_stack`: this thread's own stack, ending [`STACK_KEEP`] below a local of this
    // frame, and the calls below this frame (`drop_then_ppoll`, libc's `syscall`) use far
    // less. `fds` and `tsp` are as for ppoll in [`poll`].
    unsafe { drop_then_ppoll(stack, &ranges, fds, tsp) };
}

/// How much of the main thread's stack below the trimming frame is kept: the frames of the
/// calls made after the trim (a few hundred bytes) and of a signal handler, with room.
const STACK_KEEP: usize = 16 * 1024;

/// The part of the main thread's stack (the mapping smaps calls `[stack]`) from its lowest
/// address to [`STACK_KEEP`] below the page of `here`, an address in the caller's frame; `None`
/// unless `here` lies in that mapping (so this is the main thread). Below the stack pointer
/// nothing is live: what is there are the frames of calls that returned (the start's deepest,
/// parsing arguments and the table), dirty pages the idle daemon never reads again.
fn dead_stack(smaps: &str, here: usize, page: usize) -> Option<(usize, usize)> {
    let line = smaps.lines().find(|l| l.trim_end().ends_with("[stack]"))?;
    let (a, b) = line.split_whitespace().next()?.split_once('-')?;
    let start = usize::from_str_radix(a, 16).ok()?;
    let end = usize::from_str_radix(b, 16).ok()?;
    if here <= start || here >= end {
        return None;
    }
    let top = (here & !(page - 1)).checked_sub(STACK_KEEP)?;
    (top > start).then_some((start, top))
}

/// A timeout as ppoll(2) takes it (at most 2^31 - 1 s).
fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    }
}

/// `ranges` without the page of each address of `keep` and the page after it.
fn without_pages(ranges: Vec<(usize, usize)>, keep: &[usize], page: usize) -> Vec<(usize, usize)> {
    let mut out = ranges;
    for &addr in keep {
        let lo = addr & !(page - 1);
        let hi = lo.saturating_add(2 * page);
        out = out
            .into_iter()
            .flat_map(|(s, e)| {
                let before = (s < lo.min(e)).then_some((s, lo.min(e)));
                let after = (hi.max(s) < e).then_some((hi.max(s), e));
                before.into_iter().chain(after)
            })
            .collect();
    }
    out
}

/// Drops the dead part of the stack (MADV_DONTNEED) and `ranges` (MADV_RANDOM, then
/// MADV_DONTNEED, as [`drop_file_pages`]) and waits in ppoll(2), through libc's `syscall`
/// only: the code that runs after the first drop is this function's and `syscall`'s, whose
/// pages the caller keeps.
///
/// # Safety
///
/// `stack` must be a range of this thread's stack that holds nothing live, with room below
/// the frame of the caller for this call and the ones it makes. Every range must be as
/// [`drop_file_pages`] requires (within a private, non-writable file mapping without
/// anonymous pages); `fds` and `tsp` as ppoll(2) takes them (`tsp` null or a live timespec).
#[inline(never)]
unsafe fn drop_then_ppoll(
    stack: Option<(usize, usize)>,
    ranges: &[(usize, usize)],
    fds: &mut [libc::pollfd],
    tsp: *const libc::timespec,
) {
    if let Some((start, end)) = stack {
        let (addr, len) = (
            start as libc::c_long,
            end.wrapping_sub(start) as libc::c_long,
        );
        // SAFETY: the caller guarantees nothing live is there: the pages go back to the system
        // and read as zeros when this thread's stack grows down into them again.
        unsafe {
            libc::syscall(
                libc::SYS_madvise,
                addr,
                len,
                libc::c_long::from(libc::MADV_DONTNEED),
            );
        }
    }
    for &(start, end) in ranges {
        let (addr, len) = (
            start as libc::c_long,
            end.wrapping_sub(start) as libc::c_long,
        );
        // SAFETY: the caller guarantees each range is a private read-only file mapping
        // without anonymous pages: dropping its pages only makes them come back from the
        // page cache when used.
        unsafe {
            libc::syscall(
                libc::SYS_madvise,
                addr,
                len,
                libc::c_long::from(libc::MADV_RANDOM),
            );
            libc::syscall(
                libc::SYS_madvise,
                addr,
                len,
                libc::c_long::from(libc::MADV_DONTNEED),
            );
        }
    }
    // SAFETY: as in [`poll`]: `fds` is exclusively borrowed (the kernel writes `revents`
    // within `fds.len()` entries), `tsp` is null or live (the caller's), no signal mask
    // (null, with the kernel's sigset size).
    unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            fds.as_mut_ptr(),
            fds.len() as libc::c_long,
            tsp,
            std::ptr::null::<libc::sigset_t>(),
            8 as libc::c_long,
        );
    }
}

/// The mappings of an smaps text that may be dropped: private, read-only mappings of a file
/// (the path starts with '/') in which no page is anonymous (copied on write).
fn file_ranges(smaps: &str) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
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
    ranges
}

/// Drops the pages of `len` bytes at `start` from this process (MADV_RANDOM, then
/// MADV_DONTNEED).
///
/// # Safety
///
/// The range must be a private, non-writable mapping of a file in this process, without
/// any anonymous (copied on write) page: then every page is the file's, and MADV_DONTNEED
/// only drops it from this process, to be read again from the page cache on use. On any
/// other memory (the heap, a written private page) MADV_DONTNEED would replace contents
/// with zeros or the file's original bytes under live references.
unsafe fn drop_file_pages(start: usize, len: usize) {
    let addr = start as *mut libc::c_void;
    // SAFETY: the caller guarantees the range is a private read-only file mapping without
    // anonymous pages (see above). MADV_RANDOM first: no readahead when the pages come back.
    // (The kernel still maps up to 64 KiB of cached pages around each fault: a wake-up
    // brings back some of it.)
    unsafe {
        libc::madvise(addr, len, libc::MADV_RANDOM);
        libc::madvise(addr, len, libc::MADV_DONTNEED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    use std::time::Instant;

    #[test]
    fn the_kept_pages_are_cut_out_of_the_ranges() {
        let r = vec![(0x1000, 0x9000), (0x10000, 0x12000)];
        // 0x3010: pages 0x3000 and 0x4000 kept; 0x11000: the rest of the second range.
        let out = without_pages(r, &[0x3010, 0x11000], 0x1000);
        assert_eq!(
            out,
            vec![(0x1000, 0x3000), (0x5000, 0x9000), (0x10000, 0x11000)]
        );
        // An address outside every range changes nothing.
        assert_eq!(
            without_pages(vec![(0, 0x1000)], &[0x8000], 0x1000),
            vec![(0, 0x1000)]
        );
    }

    #[test]
    fn the_dead_stack_is_below_the_frame_and_only_on_the_main_stack() {
        let smaps =
            "7ffd1f09f000-7ffd1f0c0000 rw-p 00000000 00:00 0                          [stack]\n";
        let (start, end) = (0x7ffd_1f09_f000, 0x7ffd_1f0c_0000);
        let here = end - 0x2010;
        let (lo, hi) = dead_stack(smaps, here, 0x1000).expect("a dead part");
        assert_eq!(lo, start);
        assert_eq!(hi, ((here & !0xfff) - STACK_KEEP));
        // Not the main thread's stack, or no room below the frame: nothing.
        assert_eq!(dead_stack(smaps, 0x1000, 0x1000), None);
        assert_eq!(dead_stack(smaps, start + 0x3000, 0x1000), None);
    }

    #[test]
    fn the_trim_then_poll_returns_on_a_readable_descriptor() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        nix::unistd::write(&w, b"x").expect("write");
        let mut fds = [pollin(r.as_raw_fd())];
        trim_file_mappings_then_poll(&mut fds, Some(Duration::from_secs(30)));
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
    }

    fn sleeper() -> std::process::Child {
        Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("spawn sleep")
    }

    #[test]
    fn poll_times_out_with_nothing_ready() {
        let (r, _w) = std::io::pipe().unwrap();
        let mut fds = [pollin(r.as_raw_fd())];
        let t = Instant::now();
        poll(&mut fds, Some(Duration::from_millis(50)));
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(45), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(fds[0].revents, 0);
    }

    #[test]
    fn poll_sees_input() {
        let (r, mut w) = std::io::pipe().unwrap();
        std::io::Write::write_all(&mut w, b"x").unwrap();
        let mut fds = [pollin(r.as_raw_fd())];
        poll(&mut fds, None);
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
    }

    #[test]
    fn pidfd_becomes_readable_when_the_child_exits() {
        let mut child = sleeper();
        let Some(pidfd) = pidfd_open(child.id()) else {
            eprintln!("no pidfd on this kernel");
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        };
        let mut fds = [pollin(pidfd.as_raw_fd())];
        poll(&mut fds, Some(Duration::ZERO));
        assert_eq!(fds[0].revents, 0, "readable while the child runs");
        child.kill().unwrap();
        let t = Instant::now();
        poll(&mut fds, Some(Duration::from_secs(10)));
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
        assert!(t.elapsed() < Duration::from_secs(10));
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(pidfd_open(0).is_none());
    }

    #[test]
    fn kill_group_signals_the_group() {
        let mut child = sleeper();
        let pgid = child.id() as i32;
        assert!(group_alive(pgid));
        kill_group(pgid, libc::SIGTERM).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
        assert!(!group_alive(pgid));
        assert!(kill_group(pgid, libc::SIGKILL).is_err());
    }

    #[test]
    fn kill_group_refuses_init_and_own_group() {
        for pgid in [-5, 0, 1] {
            let e = kill_group(pgid, 0).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(!group_alive(pgid));
        }
        assert!(kill(0, 0).is_err());
        assert!(kill(-1, 0).is_err());
    }

    #[test]
    fn kill_and_reap_one_process() {
        let child = sleeper();
        let pid = child.id() as i32;
        assert!(!reap(pid), "reaped a running process");
        kill(pid, libc::SIGKILL).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reap(pid) {
            assert!(Instant::now() < deadline, "never reaped");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!reap(pid));
        // Already waited for: the Child must not be waited for again.
        drop(child);
    }

    #[test]
    fn set_nonblocking_makes_reads_return_would_block() {
        let (mut r, _w) = std::io::pipe().unwrap();
        set_nonblocking(&r).unwrap();
        let e = r.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn set_pipe_size_grows_the_pipe() {
        let (r, _w) = std::io::pipe().unwrap();
        set_pipe_size(&r, 1 << 20).unwrap();
        assert_eq!(fcntl(r.as_fd(), FcntlArg::F_GETPIPE_SZ).unwrap(), 1 << 20);
    }

    /// The umask is the whole process's: the test runs in a process of its own (this test
    /// binary again, running only the next test), not to disturb the files other tests
    /// create meanwhile.
    #[test]
    fn with_umask_applies_and_restores_the_mask() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "sys::tests::with_umask_in_this_process"])
            .args(["--include-ignored", "--test-threads=1", "--nocapture"])
            .env("CRONWARDEN_SYS_UMASK_TEST", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("umask test ran"), "{text}");
    }

    #[test]
    #[ignore = "run by with_umask_applies_and_restores_the_mask in a process of its own"]
    fn with_umask_in_this_process() {
        use std::os::unix::fs::PermissionsExt;
        if std::env::var_os("CRONWARDEN_SYS_UMASK_TEST").is_none() {
            return;
        }
        let path =
            std::env::temp_dir().join(format!("cronwarden-sys-umask-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        nix::sys::stat::umask(mode(0o022));
        let (created, inside) = with_umask(0o177, || {
            let created = std::fs::File::create(&path).map(drop);
            let inside = nix::sys::stat::umask(mode(0o177));
            (created, inside)
        });
        let after = nix::sys::stat::umask(mode(0o022));
        let perms = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        let _ = std::fs::remove_file(&path);
        created.unwrap();
        assert_eq!(inside.bits(), 0o177);
        assert_eq!(after.bits(), 0o022);
        assert_eq!(perms.unwrap(), 0o600);
        // Restored after a panic too.
        let r = std::panic::catch_unwind(|| with_umask(0o077, || panic!("inside")));
        assert!(r.is_err());
        assert_eq!(nix::sys::stat::umask(mode(0o022)).bits(), 0o022);
        println!("umask test ran");
    }

    /// How a test starts its child: fork with the set-up in `pre_exec` (the fallback), or
    /// [`spawn`] (vfork-style clone3, no cgroup).
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Via {
        Fork,
        Clone3,
    }

    const BOTH: [Via; 2] = [Via::Fork, Via::Clone3];

    /// `argv` started `via` with `setup`: its pid, stdout and stderr.
    fn start(via: Via, setup: ChildSetup, argv: &[&str]) -> io::Result<(u32, File)> {
        match via {
            Via::Fork => {
                let mut cmd = Command::new(argv[0]);
                cmd.args(&argv[1..]).stdout(Stdio::piped());
                install_child_setup(&mut cmd, setup);
                let mut child = cmd.spawn()?;
                let out = child.stdout.take().map(OwnedFd::from).map(File::from);
                let pid = child.id();
                // Reaped by `wait4` below, like the clone3 child.
                std::mem::forget(child);
                Ok((pid, out.expect("piped")))
            }
            Via::Clone3 => {
                let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
                let env = vec![("PATH".to_string(), "/usr/bin:/bin".to_string())];
                let exec = Exec {
                    argv: &argv,
                    env: &env,
                    workdir: None,
                    stdin_piped: false,
                };
                match spawn(&exec, None, setup) {
                    Ok(c) => Ok((c.pid, c.stdout)),
                    Err(SpawnError::Failed(e) | SpawnError::Unsupported(e)) => Err(e),
                }
            }
        }
    }

    fn child_output(
        via: Via,
        setup: ChildSetup,
        script: &str,
    ) -> (String, std::process::ExitStatus) {
        let (pid, mut stdout) = start(via, setup, &["sh", "-c", script]).unwrap();
        let mut out = String::new();
        stdout.read_to_string(&mut out).unwrap();
        let (status, _) = wait4(pid as i32, false).unwrap().unwrap();
        (out, std::process::ExitStatus::from_raw(status))
    }

    fn setup() -> ChildSetup {
        ChildSetup {
            cgroup_procs: None,
            oom_score_adj: None,
            umask: 0o022,
            nice: None,
            ioprio: None,
            creds: None,
            inherit_fd: None,
        }
    }

    #[test]
    fn child_setup_sets_umask_nice_and_signal_state() {
        for via in BOTH {
            let s = ChildSetup {
                umask: 0o027,
                nice: Some(7),
                ..setup()
            };
            let (out, st) = child_output(
                via,
                s,
                "umask; cut -d' ' -f19 /proc/self/stat; grep -E '^Sig(Blk|Ign)' /proc/self/status; \
                 ps -o pgid= -p $$; echo $$",
            );
            assert!(st.success(), "{via:?}: {out}");
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines[0], "0027", "{via:?}");
            assert_eq!(lines[1], "7", "{via:?}");
            assert!(lines[2].ends_with("0000000000000000"), "{via:?}: {out}");
            assert!(lines[3].ends_with("0000000000000000"), "{via:?}: {out}");
            if via == Via::Clone3 {
                // Its own process group (the fork path gets it from `process_group(0)`).
                assert_eq!(lines[4].trim(), lines[5], "{out}");
            }
        }
    }

    #[test]
    fn child_setup_keeps_the_inherited_descriptor_open() {
        for via in BOTH {
            let (r, _w) = std::io::pipe().unwrap();
            let fd = r.as_raw_fd();
            let s = ChildSetup {
                inherit_fd: Some(fd),
                ..setup()
            };
            let script = format!("test -e /proc/self/fd/{fd} && echo open");
            let (out, st) = child_output(via, s, &script);
            assert!(st.success(), "{via:?}: {out}");
            assert_eq!(out.trim(), "open", "{via:?}");
        }
    }

    #[test]
    fn child_setup_switches_user_and_groups() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: skipped");
            return;
        }
        for via in BOTH {
            let s = ChildSetup {
                creds: Some(Creds {
                    uid: 65534,
                    gid: 65533,
                    groups: vec![65532],
                }),
                ..setup()
            };
            let script = "grep -E '^(Uid|Gid|Groups)' /proc/self/status";
            let (out, st) = child_output(via, s, script);
            assert!(st.success(), "{via:?}: {out}");
            let fields: Vec<Vec<&str>> = out
                .lines()
                .map(|l| l.split_whitespace().skip(1).collect())
                .collect();
            assert_eq!(fields[0], ["65534"; 4], "{via:?}");
            assert_eq!(fields[1], ["65533"; 4], "{via:?}");
            assert_eq!(fields[2], ["65532"], "{via:?}");
        }
        // This process (whose memory the clone3 child shared) kept its own credentials.
        assert!(nix::unistd::geteuid().is_root());
        assert!(nix::unistd::getegid().as_raw() != 65533);
    }

    #[test]
    fn child_setup_sets_the_oom_score_adj() {
        let own = oom_score_adj().unwrap();
        for via in BOTH {
            // Raising it needs no privilege.
            let want = (own + 10).min(1000);
            let s = ChildSetup {
                oom_score_adj: Some(want),
                ..setup()
            };
            let (out, st) = child_output(via, s, "cat /proc/self/oom_score_adj");
            assert!(st.success(), "{via:?}: {out}");
            assert_eq!(out.trim(), want.to_string(), "{via:?}");
        }
        assert_eq!(oom_score_adj().unwrap(), own, "this process's is unchanged");
    }

    #[test]
    fn child_setup_sets_the_io_class() {
        const IDLE: i32 = 3 << 13;
        const BEST_EFFORT_1: i32 = (2 << 13) | 1;
        for via in BOTH {
            for value in [IDLE, BEST_EFFORT_1] {
                let s = ChildSetup {
                    ioprio: Some(value),
                    ..setup()
                };
                let (pid, _out) = start(via, s, &["sleep", "5"]).unwrap();
                let got = ioprio_get(pid as i32);
                let _ = kill(pid as i32, libc::SIGKILL);
                wait4(pid as i32, false).unwrap();
                assert_eq!(got.unwrap(), value, "{via:?}");
            }
        }
        assert!(ioprio_get(0).is_err());
    }

    #[test]
    fn child_setup_fails_the_spawn_on_a_bad_io_priority() {
        // Class 7 does not exist: the kernel says EINVAL, and the spawn fails with it.
        for via in BOTH {
            let s = ChildSetup {
                ioprio: Some(7 << 13),
                ..setup()
            };
            let e = start(via, s, &["sleep", "5"]).map(drop).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{via:?}: {e}");
        }
    }

    #[test]
    fn clone3_without_a_cgroup_works_from_many_threads_at_once() {
        // Vfork-style clones from 8 threads at once, 25 each: every child runs and exits
        // with its own status, and this process goes on unharmed.
        let threads: Vec<_> = (0..8)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let code = (t * 25 + i) % 200;
                        let script = format!("exit {code}");
                        let (out, st) = child_output(Via::Clone3, setup(), &script);
                        assert_eq!(st.code(), Some(code), "{out}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    /// A new cgroup below this process's own (on the cgroup2 mount), passed to `f` as its
    /// open directory and its path as /proc/PID/cgroup writes it, removed after; `None` (and
    /// said) where this process may not create one (not root), a failure under CI.
    fn in_test_cgroup<R>(name: &str, f: impl FnOnce(BorrowedFd<'_>, &str) -> R) -> Option<R> {
        use std::os::unix::fs::OpenOptionsExt;
        let own = crate::contain::mount::own_cgroup(
            &std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        );
        let base = crate::contain::mount::host_controllers().map(|(dir, _)| dir);
        let name = format!("cw-test-{name}-{}", std::process::id());
        let made = base.map_err(|e| e.to_string()).and_then(|base| {
            let dir = base.join(&name);
            std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            Ok(dir)
        });
        let (dir, own) = match (made, own) {
            (Ok(dir), Some(own)) => (dir, own),
            (made, own) => {
                let why = format!("cannot create a test cgroup ({made:?}, own {own:?})");
                if std::env::var_os("CI").is_some() {
                    panic!("{why}");
                }
                eprintln!("{why}: skipped");
                return None;
            }
        };
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&dir)
            .unwrap();
        let path = format!("{}/{name}", own.trim_end_matches('/'));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(fd.as_fd(), &path)));
        drop(fd);
        let until = Instant::now() + Duration::from_secs(2);
        while std::fs::remove_dir(&dir).is_err() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(r.unwrap_or_else(|p| std::panic::resume_unwind(p)))
    }

    fn plain_setup() -> ChildSetup {
        ChildSetup {
            cgroup_procs: None,
            oom_score_adj: None,
            umask: 0o022,
            nice: None,
            ioprio: None,
            creds: None,
            inherit_fd: None,
        }
    }

    /// Runs `argv` with clone3 into `cgroup`, feeding `stdin`: stdout, stderr, raw status.
    fn clone3_output(
        cgroup: BorrowedFd<'_>,
        argv: &[&str],
        stdin: Option<&[u8]>,
        workdir: Option<&Path>,
    ) -> Result<(String, String, i32), SpawnError> {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let env = vec![("PATH".to_string(), "/usr/bin:/bin".to_string())];
        let exec = Exec {
            argv: &argv,
            env: &env,
            workdir,
            stdin_piped: stdin.is_some(),
        };
        let mut child = spawn(&exec, Some(cgroup), plain_setup())?;
        if let (Some(mut w), Some(data)) = (child.stdin.take(), stdin) {
            std::io::Write::write_all(&mut w, data).unwrap();
        }
        let mut err = String::new();
        let mut stderr = child.stderr;
        let reader = std::thread::spawn(move || {
            stderr.read_to_string(&mut err).unwrap();
            err
        });
        let mut out = String::new();
        child.stdout.read_to_string(&mut out).unwrap();
        let err = reader.join().unwrap();
        let (status, _) = wait4(child.pid as i32, false).unwrap().unwrap();
        Ok((out, err, status))
    }

    #[test]
    fn clone3_starts_the_child_inside_the_cgroup() {
        in_test_cgroup("clone3-into", |fd, path| {
            match clone3_output(fd, &["cat", "/proc/self/cgroup"], None, None) {
                Ok((out, _, status)) => {
                    assert_eq!(status, 0);
                    let v2 = out.lines().find(|l| l.starts_with("0::"));
                    assert_eq!(v2, Some(format!("0::{path}").as_str()), "{out}");
                }
                Err(SpawnError::Unsupported(e)) => eprintln!("no clone3 into a cgroup: {e}"),
                Err(SpawnError::Failed(e)) => panic!("{e}"),
            }
        });
    }

    #[test]
    fn clone3_keeps_output_status_stdin_and_workdir() {
        in_test_cgroup("clone3-io", |fd, _| {
            let script = "echo out; echo err >&2; read x; echo \"in:$x\"; pwd; env; exit 3";
            let r = clone3_output(
                fd,
                &["sh", "-c", script],
                Some(b"hi\n"),
                Some(Path::new("/tmp")),
            );
            let (out, err, status) = match r {
                Ok(r) => r,
                Err(SpawnError::Unsupported(e)) => return eprintln!("no clone3: {e}"),
                Err(SpawnError::Failed(e)) => panic!("{e}"),
            };
            let status = std::process::ExitStatus::from_raw(status);
            assert_eq!(status.code(), Some(3));
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines[..3], ["out", "in:hi", "/tmp"], "{out}");
            assert!(lines.contains(&"PATH=/usr/bin:/bin"), "{out}");
            assert!(!lines.iter().any(|l| l.starts_with("HOME=")), "{out}");
            assert_eq!(err, "err\n");
        });
    }

    #[test]
    fn clone3_reports_an_unknown_program_as_command_does() {
        let before = Command::new("cronwarden-no-such-program")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .spawn()
            .unwrap_err()
            .to_string();
        in_test_cgroup("clone3-enoent", |fd, _| {
            for argv in [&["cronwarden-no-such-program"][..], &["/no/such/program"]] {
                match clone3_output(fd, argv, None, None) {
                    Err(SpawnError::Failed(e)) => {
                        assert_eq!(e.to_string(), before);
                        assert_eq!(e.kind(), io::ErrorKind::NotFound);
                    }
                    Err(SpawnError::Unsupported(e)) => return eprintln!("no clone3: {e}"),
                    Ok(r) => panic!("{r:?}"),
                }
            }
            // A set-up step the kernel refuses fails the spawn with its errno, as before.
            let argv = ["true".to_string()];
            let exec = Exec {
                argv: &argv,
                env: &[("PATH".to_string(), "/usr/bin:/bin".to_string())],
                workdir: None,
                stdin_piped: false,
            };
            let mut setup = plain_setup();
            setup.ioprio = Some(7 << 13);
            match spawn(&exec, Some(fd), setup) {
                Err(SpawnError::Failed(e)) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL)),
                other => panic!("{other:?}"),
            }
        });
    }

    #[test]
    fn resolve_program_searches_the_jobs_path() {
        let env: BTreeMap<&str, &str> = [("PATH", "/no/such:/bin:/usr/bin")].into();
        let sh = resolve_program("sh", &env).unwrap();
        assert!(sh.ends_with("sh") && sh.is_absolute(), "{sh:?}");
        assert_eq!(resolve_program("./x", &env).unwrap(), Path::new("./x"));
        let e = resolve_program("cronwarden-no-such-program", &env).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // A directory is not a program.
        let env: BTreeMap<&str, &str> = [("PATH", "/")].into();
        assert!(resolve_program("tmp", &env).is_err());
    }

    #[test]
    fn oom_score_adj_reads_and_writes_back() {
        let v = oom_score_adj().unwrap();
        assert!((-1000..=1000).contains(&v), "{v}");
        // The same value again needs no privilege and changes nothing.
        set_oom_score_adj(v).unwrap();
        assert_eq!(oom_score_adj().unwrap(), v);
        let e = set_oom_score_adj(5000).unwrap_err();
        assert!(e.to_string().contains("/proc/self/oom_score_adj"), "{e}");
    }

    #[test]
    fn file_ranges_keeps_only_clean_read_only_file_mappings() {
        let smaps = "\
1000-2000 r--p 00000000 08:01 1 /usr/bin/x
Anonymous:             0 kB
2000-3000 r--p 00001000 08:01 1 /usr/bin/x
Anonymous:             4 kB
3000-4000 rw-p 00002000 08:01 1 /usr/bin/x
Anonymous:             0 kB
4000-5000 r--p 00000000 00:00 0
Anonymous:             0 kB
5000-6000 r-xs 00000000 08:01 2 /dev/shm/y
6000-7000 r-xp 00000000 08:01 3 /usr/lib/libc.so.6
Rss:                   8 kB
Anonymous:             0 kB
";
        assert_eq!(file_ranges(smaps), [(0x1000, 0x2000), (0x6000, 0x7000)]);
    }

    #[test]
    fn trims_run_and_the_process_goes_on() {
        malloc_trim();
        trim_file_mappings();
        // Code and read-only data come back from the page cache.
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(v.iter().sum::<u64>(), 499_500);
        assert_eq!(format!("{}", 42), "42");
    }
}
