//! One run as its containment sees it: a cgroup per attempt (or the process walk), the
//! signals that stop all of it, its leftovers, and what it used.

use std::collections::HashSet;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::{Containment, Mode, cgroup, limits, procs};
use crate::config::{Job, Leftovers};
use crate::record::{Leftover, Usage};
use crate::sys::Rusage;

/// One run's processes, attempt after attempt.
pub(crate) struct Scope<'a> {
    containment: &'a Containment,
    job: &'a Job,
    run_id: String,
    /// `CRONWARDEN_RUN_ID=<run id>`: how the process walk recognises the run's processes.
    marker: Vec<u8>,
    /// The current attempt's cgroup (cgroup mode, once [`Scope::begin`] made it).
    group: Option<cgroup::Group>,
    /// The attempt [`Scope::begin`] was last called for (0: none, or it has ended).
    begun: u32,
    /// Processes the run let go of (`leftovers = "keep"`, process mode), by pid and start.
    released: HashSet<(i32, u64)>,
    /// What was left behind, over all attempts.
    pub(crate) leftovers: Vec<Leftover>,
    /// Limits (or containment) that could not be applied, over all attempts, each once.
    pub(crate) not_applied: Vec<String>,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(containment: &'a Containment, job: &'a Job, run_id: &str) -> Self {
        Scope {
            containment,
            job,
            run_id: run_id.to_string(),
            marker: format!("CRONWARDEN_RUN_ID={run_id}").into_bytes(),
            group: None,
            begun: 0,
            released: HashSet::new(),
            leftovers: Vec::new(),
            not_applied: Vec::new(),
        }
    }

    /// Before an attempt: its cgroup, with the job's limits written to it. A cgroup that
    /// cannot be made leaves the attempt to the process walk, and says so. Called again for
    /// the same attempt (made ready before the run's instant), it keeps what it made.
    pub(crate) fn begin(&mut self, attempt: u32) {
        if attempt == self.begun {
            return;
        }
        self.end();
        self.begun = attempt;
        let limits = &self.job.limits;
        let tree = match &self.containment.mode {
            Mode::Cgroup(t) => t,
            Mode::Process => {
                for why in limits::none_applied(limits, &self.containment.why) {
                    self.note(why);
                }
                return;
            }
        };
        let name = format!("{}.{}.{attempt}", self.job.name, self.run_id);
        match tree.group(&name) {
            Ok(g) => {
                for why in limits::apply(&g.dir, limits, &tree.enabled) {
                    self.note(why);
                }
                self.group = Some(g);
            }
            Err(e) => self.note(format!(
                "containment: {e}; attempt {attempt} was followed by a walk of /proc instead"
            )),
        }
    }

    fn note(&mut self, why: String) {
        if !self.not_applied.contains(&why) {
            self.not_applied.push(why);
        }
    }

    /// The current attempt's cgroup (cgroup mode).
    pub(crate) fn cgroup_dir(&self) -> Option<&std::path::Path> {
        self.group.as_ref().map(|g| g.dir.as_path())
    }

    /// Whether the current attempt has a cgroup (cgroup mode).
    pub(crate) fn has_cgroup(&self) -> bool {
        self.group.is_some()
    }

    /// The descriptor the child writes itself into (cgroup mode; `None` also when it
    /// cannot be opened).
    pub(crate) fn procs_fd(&self) -> Option<RawFd> {
        self.group.as_ref().and_then(cgroup::Group::procs_fd)
    }

    /// The current attempt's cgroup directory, to start the child in with clone3 (cgroup
    /// mode; see [`Scope::may_clone3`]): handed over once, closed when dropped.
    pub(crate) fn cgroup_fd(&self) -> Option<std::fs::File> {
        self.group.as_ref().and_then(cgroup::Group::take_dir_fd)
    }

    /// Whether children start with clone3 (unless this host was found not to allow it:
    /// then `std::process::Command`, moving the child in through `procs_fd`).
    pub(crate) fn may_clone3(&self) -> bool {
        self.containment.clone3()
    }

    /// clone3 cannot start a child in a cgroup here (see [`crate::sys::SpawnError`]): this
    /// and the next spawns of every run move the child in through `procs_fd`.
    pub(crate) fn no_clone3(&self, e: &std::io::Error) {
        self.containment.no_clone3(e);
    }

    /// The live processes of the attempt whose main process is `main`.
    pub(crate) fn members(&self, main: i32) -> Vec<i32> {
        match &self.group {
            Some(g) => g.pids(),
            // Without a cgroup, every process of the run is in the main process's group or,
            // this process being a subreaper, below it: with neither, there is none, and the
            // walk of /proc (about 1 ms) is not needed.
            None if !crate::sys::group_exists(main) && !crate::sys::has_children() => Vec::new(),
            None => {
                let me = std::process::id() as i32;
                procs::members(main, me, &self.marker, &self.released)
                    .iter()
                    .map(|p| p.pid)
                    .collect()
            }
        }
    }

    /// Sends `sig` to every process of the attempt: its process group and each member
    /// (SIGKILL through `cgroup.kill` where the kernel has it).
    pub(crate) fn signal(&self, main: i32, sig: i32) {
        let _ = crate::sys::kill_group(main, sig);
        if sig == libc::SIGKILL
            && let Some(g) = &self.group
            && g.kill()
        {
            return;
        }
        for pid in self.members(main) {
            let _ = crate::sys::kill(pid, sig);
        }
    }

    /// After the main process exited and its output closed: the processes of the attempt
    /// still alive. `stopping` (a timeout or an interrupt stopped the attempt): they are
    /// stopped with it and not named. Otherwise they are its leftovers, stopped (SIGTERM,
    /// `kill_grace`, SIGKILL) or kept per the job's `leftovers`, and named in
    /// [`Scope::leftovers`].
    pub(crate) fn settle(&mut self, main: i32, stopping: bool) {
        let left = self.members(main);
        if left.is_empty() {
            return;
        }
        let keep = self.job.leftovers == Leftovers::Keep && !stopping;
        if !stopping {
            let action = if keep { "kept" } else { "stopped" };
            for &pid in &left {
                self.leftovers.push(Leftover {
                    pid,
                    command: procs::command_line(pid),
                    action: action.to_string(),
                });
            }
        }
        if keep {
            self.release(&left);
        } else {
            self.stop(main);
        }
    }

    /// SIGTERM to all, SIGKILL to what is left after `kill_grace`, then a bounded wait for
    /// the kernel to finish them.
    fn stop(&self, main: i32) {
        self.signal(main, libc::SIGTERM);
        if !self.wait_gone(main, self.job.kill_grace) {
            self.signal(main, libc::SIGKILL);
            self.wait_gone(main, Duration::from_secs(2));
        }
    }

    fn wait_gone(&self, main: i32, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            if self.members(main).is_empty() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets processes go: out of the attempt's cgroup into `kept`, or (process mode) no
    /// longer counted as the run's.
    fn release(&mut self, pids: &[i32]) {
        if let (Some(g), Mode::Cgroup(tree)) = (&self.group, &self.containment.mode) {
            match tree.kept() {
                Ok(kept) => {
                    for &pid in pids {
                        let _ = g.move_out(pid, &kept);
                    }
                }
                Err(e) => {
                    let why =
                        format!("leftovers: cannot create the cgroup for kept processes: {e}");
                    self.note(why);
                }
            }
            return;
        }
        for &pid in pids {
            if let Some(p) = procs::one(pid) {
                self.released.insert((p.pid, p.start));
            }
        }
    }

    /// What the attempt used: the cgroup's figures where there are some, else the main
    /// process's rusage (which includes the descendants it waited for).
    pub(crate) fn usage(&self, rusage: Option<Rusage>) -> Usage {
        let cgroup_cpu = self.group.as_ref().and_then(cgroup::Group::cpu_seconds);
        let cgroup_peak = self.group.as_ref().and_then(cgroup::Group::memory_peak);
        Usage {
            cpu_seconds: cgroup_cpu.or(rusage.map(|r| r.cpu.as_secs_f64())),
            peak_memory_bytes: cgroup_peak.or(rusage.map(|r| r.maxrss_kb * 1024)),
        }
    }

    /// Whether the kernel's OOM killer killed a process of the attempt (its cgroup's
    /// `memory.events`).
    pub(crate) fn oom_killed(&self) -> bool {
        self.group
            .as_ref()
            .is_some_and(|g| limits::oom_kills(&g.dir) > 0)
    }

    /// The attempt is over: its cgroup goes.
    pub(crate) fn end(&mut self) {
        self.begun = 0;
        if let (Some(g), Mode::Cgroup(tree)) = (self.group.take(), &self.containment.mode) {
            tree.remove(g);
        }
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        self.end();
    }
}
