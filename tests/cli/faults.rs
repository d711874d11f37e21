//! Fault injection: the daemon killed at random moments, a full log device, a state
//! directory that cannot be written, jobs that fight back (ignore SIGTERM, fork 200
//! children, print binary garbage), 10,000 jobs, 500 jobs due at the same instant. Real
//! binary, real processes; waits on events, delays only as lower bounds.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::daemon::Daemon;
use super::{Table, alive, ts, wait_for};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Adds lines to the table's `[settings]`.
fn settings(t: &Table, extra: &str) {
    let text = std::fs::read_to_string(&t.path).expect("table");
    std::fs::write(
        &t.path,
        text.replace("[settings]\n", &format!("[settings]\n{extra}\n")),
    )
    .expect("write table");
}

/// Collects a child's standard error in the background (a daemon blocks on a full pipe).
fn capture_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let mut err = child.stderr.take().expect("stderr piped");
    let b = Arc::clone(&buf);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = err.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

/// A daemon whose stderr is kept (for a log that cannot be written).
fn daemon_with_stderr(t: &Table) -> (Daemon, Arc<Mutex<String>>) {
    let mut child = t
        .cmd(&["daemon"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daemon starts");
    let err = capture_stderr(&mut child);
    (Daemon(child), err)
}

/// Live (not zombie) processes whose environment carries this run id: what a run left.
fn processes_of_run(run_id: &str) -> Vec<i32> {
    let wanted = format!("CRONWARDEN_RUN_ID={run_id}");
    let mut left = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
        // An alert command about the run carries its run id too (with CRONWARDEN_EVENT): it
        // is not one of the job's processes.
        let alert = vars.iter().any(|v| v.starts_with(b"CRONWARDEN_EVENT="));
        if vars.contains(&wanted.as_bytes()) && !alert && alive(pid) {
            left.push(pid);
        }
    }
    left
}

/// A small xorshift generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("CW_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(|s| s | 1)
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("fault seed: CW_FAULT_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn kill_9_at_random_moments_runs_no_instant_twice_and_leaves_readable_state() {
    // Per-second jobs of different lengths (some outlive a killed daemon), a failing one
    // whose alerts go to the spool, and a tiny history_keep so that history files are
    // rewritten often: the daemon writes state files most of the time.
    let mut jobs = String::from(
        "[alerts.down]\ntype = \"command\"\ncommand = \"exit 1\"\n\n\
         [jobs.bad]\nschedule = \"* * * * * *\"\ncommand = \"echo bad $CRONWARDEN_TS >> $DIR/ran; exit 3\"\nalert = [\"down\"]\n\n",
    );
    for (i, secs) in ["0", "0.2", "0.5", "1.5", "0", "0.1", "0", "0.3"]
        .iter()
        .enumerate()
    {
        jobs.push_str(&format!(
            "[jobs.j{i}]\nschedule = \"* * * * * *\"\n\
             command = \"echo $CRONWARDEN_JOB $CRONWARDEN_TS >> $DIR/ran; echo out; sleep {secs}\"\n\n"
        ));
    }
    let t = Table::new("f-kill", &jobs);
    settings(&t, "history_keep = 3");
    let mut rng = Rng::new();
    let starts = |t: &Table| t.log().matches(" daemon-start ").count();
    let errors = t.dir().join("daemon.err");
    let spawn = || {
        t.cmd(&["daemon"])
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&errors)
                    .expect("stderr file"),
            )
            .spawn()
            .expect("daemon starts")
    };
    // Waits for a condition while the daemon lives (if it exits, says why).
    let wait_alive = |child: &mut Child, cond: &mut dyn FnMut() -> bool| {
        wait_for(|| {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "the daemon exited ({st}): {}\n{}",
                    std::fs::read_to_string(&errors).unwrap_or_default(),
                    t.log()
                );
            }
            cond()
        })
    };
    for round in 1..=8 {
        let mut child = spawn();
        wait_alive(&mut child, &mut || starts(&t) >= round);
        // A random moment within the next 1.2 s: between ticks, in a dispatch, in a write.
        std::thread::sleep(Duration::from_millis(rng.below(1200)));
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
    }
    let killed_at = jiff::Timestamp::now();
    let mut child = spawn();
    let ran = || -> Vec<(String, jiff::Timestamp)> {
        std::fs::read_to_string(t.dir().join("ran"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (job, at) = l.split_once(' ')?;
                Some((job.to_string(), at.parse().ok()?))
            })
            .collect()
    };
    // The last daemon works normally: runs after the last kill, for instants after it.
    wait_alive(&mut child, &mut || {
        ran()
            .iter()
            .filter(|(j, at)| j == "j0" && at.as_second() > killed_at.as_second() + 1)
            .count()
            >= 2
    });
    let d = Daemon(child);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));

    // No instant ran twice: each job process appended its scheduled instant when it started.
    let all = ran();
    let mut seen = HashSet::new();
    let twice: Vec<_> = all.iter().filter(|r| !seen.insert((*r).clone())).collect();
    assert!(twice.is_empty(), "ran twice: {twice:?}");

    assert_state_readable(&t);
}

/// After kill -9 at random moments: every history, mark, run marker and spooled alert in
/// the state directory is still readable, and no instant was recorded twice.
fn assert_state_readable(t: &Table) {
    let state = t.dir().join("state");
    let (mut torn, mut lost) = (0, 0);
    let jobs: Vec<String> = std::iter::once("bad".to_string())
        .chain((0..8).map(|i| format!("j{i}")))
        .collect();
    for job in &jobs {
        let text = std::fs::read_to_string(state.join("history").join(format!("{job}.jsonl")))
            .expect("history");
        let mut instants = HashSet::new();
        for line in text.lines() {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(r) => {
                    lost += usize::from(r["outcome"] == "lost");
                    assert!(
                        instants.insert(r["scheduled"].as_str().expect("scheduled").to_string()),
                        "{job}: an instant recorded twice:\n{text}"
                    );
                }
                // A write cut by kill -9 can leave a torn line (readers skip it); never
                // anything but the start of a record.
                Err(_) => {
                    assert!(line.starts_with("{\"run_id\":"), "{job}: garbage {line:?}");
                    torn += 1;
                }
            }
        }
        assert!(!instants.is_empty(), "{job} never recorded");
    }
    assert!(torn <= 8, "{torn} torn lines after 8 kills");
    eprintln!("8 kills: {lost} runs recorded lost, {torn} torn history lines");
    // Dispatch marks: one instant each (a leftover temporary file is never read).
    for e in std::fs::read_dir(state.join("marks"))
        .expect("marks")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            assert!(name.contains(".tmp"), "unexpected {name}");
            continue;
        }
        let text = std::fs::read_to_string(e.path()).expect("mark");
        text.trim()
            .parse::<jiff::Timestamp>()
            .unwrap_or_else(|err| panic!("marks/{name}: {text:?}: {err}"));
    }
    // Run markers were all settled at the restart and by the clean stop: what is left are
    // spares (ended markers kept for later runs), never a marker or a claimed spare.
    let running: Vec<_> = std::fs::read_dir(state.join("running"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let left: Vec<_> = running
        .iter()
        .filter(|n| !n.to_string_lossy().starts_with(".spare"))
        .collect();
    assert!(left.is_empty(), "running markers left: {running:?}");
    assert!(running.len() <= 256, "{} spares", running.len());
    // Every spooled alert parses (`spooled` says which one does not).
    let _ = super::alert::spooled(t);
    // And the commands that read the state work.
    let (code, out, err) = t.run(&["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(v.as_array().expect("array").len(), 9);
    for job in &jobs {
        let (code, out, err) = t.run(&["history", job, "--json", "-n", "50"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).expect("history JSON");
    }
    let (code, _, err) = t.run(&["status"]);
    assert_eq!(code, 0, "{err}");
}

const TICK_AND_ONCE: &str = r#"
[jobs.tick]
schedule = "* * * * * *"
command = ["/bin/true"]

[jobs.once]
schedule = "@manual"
command = "echo ran > $DIR/once"
"#;

#[test]
fn log_file_on_a_full_device_jobs_still_run_and_stderr_says_so() {
    let t = Table::new("f-devfull", TICK_AND_ONCE);
    let text = std::fs::read_to_string(&t.path).expect("table");
    let log_line = format!("log_file = \"{}/cronwarden.log\"", t.dir().display());
    std::fs::write(&t.path, text.replace(&log_line, "log_file = \"/dev/full\"")).expect("write");
    let (code, _, err) = t.run(&["run", "once"]);
    assert_eq!(code, 0, "{err}");
    assert!(t.dir().join("once").exists());
    assert_eq!(t.history("once")[0]["outcome"], "success");
    let report = "cannot write the log file /dev/full: No space left on device";
    assert_eq!(err.matches(report).count(), 1, "{err}");
    assert!(
        err.contains(" run-end job=once "),
        "the log line itself: {err}"
    );

    let (d, err) = daemon_with_stderr(&t);
    wait_for(|| t.history("tick").len() >= 2);
    drop(d);
    let err = err.lock().expect("lock").clone();
    assert_eq!(err.matches(report).count(), 1, "{err}");
    assert!(err.contains(" daemon-start "), "{err}");
    assert!(
        t.history("tick").iter().all(|r| r["outcome"] == "success"),
        "{:?}",
        t.history("tick")
    );
}

/// A tmpfs mounted for one test (root only), unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        // A few tries: mount(8) can fail for a moment while other tests mount and unmount.
        for _ in 0..5 {
            let ok = std::process::Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0755"),
                    "tmpfs",
                ])
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Some(Tmpfs(dir.to_path_buf()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_log_device_that_fills_up_is_reported_and_logging_resumes_when_space_returns() {
    if !is_root() {
        super::skip(
            "a_log_device_that_fills_up",
            "mounting a small tmpfs needs root",
        );
        return;
    }
    let t = Table::new("f-tmpfs", TICK_AND_ONCE);
    let logs = t.dir().join("logs");
    let Some(_fs) = Tmpfs::mount(&logs, "64k") else {
        super::skip("a_log_device_that_fills_up", "cannot mount a tmpfs here");
        return;
    };
    let text = std::fs::read_to_string(&t.path).expect("table");
    let log_line = format!("log_file = \"{}/cronwarden.log\"", t.dir().display());
    let log = logs.join("cronwarden.log");
    std::fs::write(
        &t.path,
        text.replace(&log_line, &format!("log_file = \"{}\"", log.display())),
    )
    .expect("write");
    // Fill the device to the last byte, with the log's last page almost full: the next
    // line fits only in part.
    let seed = format!("{}\n", "#".repeat(4096 - 41));
    std::fs::write(&log, &seed).expect("log");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(logs.join("filler")).expect("filler");
        let block = [0u8; 4096];
        while f.write(&block).is_ok_and(|n| n > 0) {}
        while f.write(&block[..1]).is_ok_and(|n| n > 0) {}
    }
    let (d, err) = daemon_with_stderr(&t);
    wait_for(|| t.history("tick").len() >= 2);
    let report = format!(
        "cannot write the log file {}: No space left on device",
        log.display()
    );
    wait_for(|| err.lock().expect("lock").contains(&report));
    // Space comes back: the next lines go to the file again.
    std::fs::remove_file(logs.join("filler")).expect("free space");
    wait_for(|| std::fs::read_to_string(&log).is_ok_and(|l| l.contains(" attempt-end job=tick ")));
    drop(d);
    let err = err.lock().expect("lock").clone();
    assert!(
        err.contains(" daemon-start "),
        "lines went to stderr: {err}"
    );
    assert!(t.history("tick").iter().all(|r| r["outcome"] == "success"));
    // The file holds whole lines only.
    let text = std::fs::read_to_string(&log).expect("log");
    let text = text.strip_prefix(&seed).expect("the log's start is kept");
    // Whole lines, one event each; the part of a line the full device cut short (if any)
    // stands alone, never glued to the next line.
    let mut cut = 0;
    for line in text.lines() {
        let events = [" info ", " warn ", " error "]
            .iter()
            .map(|l| line.matches(l).count())
            .sum::<usize>();
        assert!(events <= 1, "lines glued together: {line:?}\n{text}");
        cut += usize::from(events == 0);
    }
    assert!(cut <= 1, "{text}");
}

#[test]
fn a_state_dir_that_cannot_be_written_is_a_clear_error_not_a_panic() {
    let t = super::TempDir::new("f-rostate");
    let d = t.path().display().to_string();
    let state = t.path().join("state");
    let run = t.path().join("run");
    std::fs::create_dir_all(state.join("history")).expect("state");
    std::fs::create_dir_all(&run).expect("run");
    use std::os::unix::fs::PermissionsExt;
    let table = t.write(
        "jobs.toml",
        &format!(
            "[settings]\ntimezone = \"UTC\"\nstate_dir = \"{d}/state\"\nlock_dir = \"{d}/run\"\n\n\
             [jobs.a]\nschedule = \"* * * * * *\"\ncommand = \"echo ran >> {d}/run/ran\"\n"
        ),
    );
    // As root: run as nobody, who may write the lock dir but not the state dir. Otherwise
    // this user, with the state dir made read-only.
    let as_user = |args: &[&str]| -> (i32, String, String) {
        let mut c = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "nobody", "--"])
                .arg(env!("CARGO_BIN_EXE_cronwarden"));
            c
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_cronwarden"))
        };
        let out = c
            .env_remove("CRONWARDEN_CONFIG")
            .arg("-c")
            .arg(&table)
            .args(args)
            .output()
            .expect("runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    if is_root() {
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("lookup")
            .expect("nobody");
        nix::unistd::chown(&run, Some(nobody.uid), None).expect("chown");
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for p in [&state, &state.join("history")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    } else {
        for p in [&state.join("history"), &state] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        }
    }
    // `run`: the job runs; that its run could not be recorded is said, with where and why.
    let (code, _, err) = as_user(&["run", "a"]);
    assert_eq!(code, 0, "{err}");
    assert!(run.join("ran").exists(), "the job did not run: {err}");
    assert!(
        err.contains(&format!(
            "cannot record the run in {d}/state: Permission denied"
        )),
        "{err}"
    );
    // The daemon refuses to start, naming the directory.
    let (code, _, err) = as_user(&["daemon"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!("{d}/state")) && err.contains("Permission denied"),
        "{err}"
    );
    // Reading commands still work.
    for args in [&["status"][..], &["history", "a"], &["list"], &["check"]] {
        let (code, _, err) = as_user(args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    if !is_root() {
        for p in [&state, &state.join("history")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
}

/// A read-only bind mount of a directory onto itself (root only), undone when dropped.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    /// Bind-mounts `dir` on itself, read-only. mount(8) can fail for a moment while other
    /// tests mount and unmount (its lock on the mount table): a few tries, then the error.
    fn mount(dir: &std::path::Path) -> Result<ReadOnly, String> {
        let run = |args: &[&str], twice: bool| {
            let mut c = std::process::Command::new("mount");
            c.args(args).arg(dir);
            if twice {
                c.arg(dir);
            }
            c.output().map_err(|e| e.to_string()).and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&o.stderr).into_owned())
                }
            })
        };
        let mut last = String::new();
        for _ in 0..5 {
            match run(&["--bind"], true) {
                Ok(()) => {
                    let guard = ReadOnly(dir.to_path_buf());
                    for _ in 0..5 {
                        match run(&["-o", "remount,bind,ro"], false) {
                            Ok(()) => return Ok(guard),
                            Err(e) => last = e,
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    return Err(format!("remount read-only: {last}"));
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("bind mount: {last}"))
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The instants in a file of `$CRONWARDEN_TS` lines.
fn instants(path: &std::path::Path) -> Vec<jiff::Timestamp> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn a_state_dir_turning_read_only_under_the_daemon_keeps_jobs_running_alerted_once_and_shown() {
    if !is_root() {
        super::skip(
            "a_state_dir_turning_read_only",
            "a read-only bind mount needs root",
        );
        return;
    }
    // Two jobs share one channel: it hears of the condition once, not once per tick or job.
    let t = Table::new(
        "f-rostate-live",
        r#"
[alerts.ops]
type = "command"
command = "cat >> $DIR/alerts; echo >> $DIR/alerts"

[jobs.tick]
schedule = "* * * * * *"
command = "echo $CRONWARDEN_TS >> $DIR/ticks"
alert = ["ops"]

[jobs.tock]
schedule = "* * * * * *"
command = "echo $CRONWARDEN_TS >> $DIR/tocks"
alert = ["ops"]
"#,
    );
    let d = Daemon::start(&t);
    wait_for(|| t.history("tick").len() >= 2);
    let state = t.dir().join("state");
    let ro = ReadOnly::mount(&state)
        .unwrap_or_else(|e| panic!("a read-only bind mount of the state dir: {e}"));
    let read_only_at = jiff::Timestamp::now();
    // The jobs keep running: three more instants of each after the state dir turned
    // read-only.
    let ran_after = |file: &str| {
        instants(&t.dir().join(file))
            .into_iter()
            .filter(|i| *i > read_only_at)
            .count()
    };
    wait_for(|| ran_after("ticks") >= 3 && ran_after("tocks") >= 3);
    let alerts = || std::fs::read_to_string(t.dir().join("alerts")).unwrap_or_default();
    wait_for(|| alerts().contains("STATE DIR UNWRITABLE"));
    let log = t.log();
    assert_eq!(log.matches(" error state ").count(), 1, "{log}");
    assert!(
        log.contains("Read-only file system") && log.contains("running the jobs all the same"),
        "{log}"
    );
    // status says so (the daemon cannot write it anywhere: it answers on its socket).
    let (code, out, err) = t.run(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("state: the daemon cannot record runs: cannot record the dispatch of ")
            && out.contains("Read-only file system"),
        "{out}"
    );
    let (_, out, _) = t.run(&["status", "tick", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(v[0]["state_problem"].is_string(), "{v:#}");
    drop(ro);
    let before = t.history("tick").len();
    wait_for(|| t.history("tick").len() >= before + 2);
    wait_for(|| alerts().contains("STATE DIR WRITABLE AGAIN"));
    assert!(t.log().contains(" warn state-recovered "), "{}", t.log());
    let (_, out, _) = t.run(&["status"]);
    assert!(!out.contains("state:"), "{out}");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    // One alert each way for the two jobs' shared channel, however many ticks ran meanwhile.
    let text = alerts();
    assert_eq!(text.matches("STATE DIR UNWRITABLE").count(), 1, "{text}");
    assert_eq!(
        text.matches("STATE DIR WRITABLE AGAIN").count(),
        1,
        "{text}"
    );
}

#[test]
fn a_job_ignoring_sigterm_is_killed_after_kill_grace_with_nothing_left() {
    let t = Table::new(
        "f-stubborn",
        r#"
[jobs.stubborn]
schedule = "@manual"
command = "trap '' TERM; sleep 300 & echo $! > $DIR/child; echo $$ > $DIR/pid; wait; wait"
timeout = "1s"
kill_grace = "1s"
"#,
    );
    let start = Instant::now();
    let (code, _, err) = t.run(&["run", "stubborn"]);
    assert_eq!(code, 1, "{err}");
    // Lower bound: the timeout, then the whole grace.
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let h = t.history("stubborn");
    // The reason gives the attempt's whole length (timeout + grace), in whole seconds.
    let reason = h[0]["reason"].as_str().expect("reason");
    assert!(reason.starts_with("timed out after "), "{reason}");
    assert_eq!(h[0]["attempts"][0]["timed_out"], true);
    assert_eq!(h[0]["attempts"][0]["signal"], libc::SIGKILL);
    let a = &h[0]["attempts"][0];
    assert!(a["duration_ms"].as_u64().expect("ms") >= 2000, "{a}");
    for f in ["pid", "child"] {
        let pid: i32 = std::fs::read_to_string(t.dir().join(f))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        assert!(!alive(pid), "{f} {pid} survived");
    }
    let run_id = h[0]["run_id"].as_str().expect("run id");
    assert_eq!(processes_of_run(run_id), Vec::<i32>::new());
}

#[test]
fn a_job_forking_200_children_leaves_none_after_its_timeout() {
    let t = Table::new(
        "f-forks",
        r#"
[jobs.forky]
schedule = "@manual"
command = "for i in $(seq 200); do sleep 300 & echo $! >> $DIR/kids; done; touch $DIR/spawned; wait"
timeout = "3s"
kill_grace = "1s"
"#,
    );
    let (code, _, err) = t.run(&["run", "forky"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        t.dir().join("spawned").exists(),
        "200 children were not spawned within the 3 s timeout"
    );
    let h = t.history("forky");
    let reason = h[0]["reason"].as_str().expect("reason");
    assert!(reason.starts_with("timed out after "), "{reason}");
    assert_eq!(h[0]["attempts"][0]["timed_out"], true);
    let kids: Vec<i32> = std::fs::read_to_string(t.dir().join("kids"))
        .expect("kids")
        .lines()
        .map(|l| l.trim().parse().expect("pid"))
        .collect();
    assert_eq!(kids.len(), 200);
    let run_id = h[0]["run_id"].as_str().expect("run id");
    // Every process that carries the run's id in its environment is gone (a recycled pid
    // would not carry it).
    assert_eq!(processes_of_run(run_id), Vec::<i32>::new());
}

#[test]
fn binary_garbage_and_very_long_lines_keep_records_valid_and_the_tail_bounded() {
    let t = Table::new(
        "f-garbage",
        r#"
[alerts.out]
type = "command"
command = "cat > $DIR/alert-body"
on = ["output"]

[jobs.noise]
schedule = "@manual"
command = "head -c 100000 /dev/urandom >&2; head -c 300000 /dev/urandom; head -c 500000 /dev/zero | tr '\\0' x; printf '\\377\\376\\0 the end\\n'"
output_limit = "64KiB"
alert = ["out"]
"#,
    );
    settings(&t, "log_format = \"json\"");
    let (code, _, err) = t.run(&["run", "noise"]);
    assert_eq!(code, 0, "{err}");
    let h = t.history("noise");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["outcome"], "success");
    let kept = std::fs::read(h[0]["output"].as_str().expect("output")).expect("kept output");
    assert!(kept.len() <= 64 * 1024, "{} bytes kept", kept.len());
    // stdout and stderr are two pipes: their order in the kept file is not fixed, but the
    // stderr garbage was written first, long before the end of 800 KB of stdout.
    assert!(
        kept.windows(9).any(|w| w == b" the end\n"),
        "the tail lost the last line"
    );
    // The log: valid UTF-8, one JSON object a line.
    let log = std::fs::read(t.dir().join("cronwarden.log")).expect("log");
    let log = String::from_utf8(log).expect("the log is UTF-8");
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("a JSON log line");
    }
    // The alert carries a bounded, valid UTF-8 tail of each stream.
    let body = std::fs::read(t.dir().join("alert-body")).expect("output alert");
    let body = String::from_utf8(body).expect("the alert body is UTF-8");
    assert!(body.len() < 32 * 1024, "{} bytes of alert", body.len());
    assert!(body.contains(" the end"), "{body}");
    for args in [&["status", "--json"][..], &["history", "noise", "--json"]] {
        let (code, out, err) = t.run(args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).expect("JSON");
    }
}

#[test]
fn a_table_of_10000_jobs_checks_lists_and_starts() {
    // Nothing of it fires while the test runs: every calendar schedule is months away.
    let far = (jiff::Zoned::now().month() as i32 + 5) % 12 + 1;
    let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu"];
    let mut jobs = String::with_capacity(10_000 * 120);
    for i in 0..10_000 {
        jobs.push_str(&format!("[jobs.j{i:05}]\n"));
        match i % 5 {
            0 => jobs.push_str(&format!(
                "schedule = \"{} {} {} {far} *\"\n",
                i % 60,
                i % 24,
                1 + i % 28
            )),
            1 => jobs.push_str(&format!(
                "schedule = \"{} {} {} {} {far} *\"\n",
                i % 60,
                (i / 7) % 60,
                i % 24,
                1 + i % 28
            )),
            2 => jobs.push_str(&format!(
                "schedule = \"*/{} {} 1-7 {far} mon-fri\"\n",
                1 + i % 30,
                i % 24
            )),
            3 => jobs.push_str(&format!("after = [\"j{:05}\"]\n", i - 1)),
            _ => jobs.push_str(&format!(
                "schedule = \"0 {} {} {far} *\"\ntimezone = \"{}\"\n",
                i % 24,
                1 + i % 28,
                zones[i % zones.len()]
            )),
        }
        jobs.push_str("command = [\"/bin/true\"]\n\n");
    }
    let t = Table::new("f-10k", &jobs);
    let started = Instant::now();
    let (code, out, err) = t.run(&["check"]);
    eprintln!("check of 10,000 jobs: {:?}", started.elapsed());
    assert_eq!(code, 0, "{out}{}", &err[..err.len().min(2000)]);
    let (code, out, err) = t.run(&["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().count() > 10_000,
        "{} lines",
        out.lines().count()
    );
    let d = Daemon::start(&t);
    assert!(
        t.log().contains("10000 jobs, 8000 scheduled"),
        "{}",
        t.log()
    );
    let (code, out, err) = t.run(&["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(v.as_array().expect("array").len(), 10_000);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
}

#[test]
fn five_hundred_jobs_due_at_once_all_run_never_more_than_max_concurrent() {
    let table = |t: &Table, schedule: &str| {
        let d = t.dir().display().to_string();
        let mut text = format!(
            "[settings]\ntimezone = \"UTC\"\nstate_dir = \"{d}/state\"\nlock_dir = \"{d}/run\"\n\
             log_file = \"{d}/cronwarden.log\"\nmax_concurrent = 16\n\n"
        );
        for i in 0..500 {
            text.push_str(&format!(
                "[jobs.s{i:03}]\nschedule = \"{schedule}\"\ncommand = [\"/bin/sleep\", \"0.01\"]\n\n"
            ));
        }
        std::fs::write(&t.path, text).expect("write table");
    };
    let t = Table::new("f-500", "");
    table(&t, "@manual");
    let d = Daemon::start(&t);
    // Give all 500 one instant a few seconds ahead (by a reload, once the daemon is up);
    // should the reload finish too late for it, pick another.
    let mut reloads = 0;
    let target = loop {
        let target =
            jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 3).expect("instant");
        let z = target.to_zoned(jiff::tz::TimeZone::UTC);
        table(
            &t,
            &format!("{} {} {} * * *", z.second(), z.minute(), z.hour()),
        );
        d.signal(libc::SIGHUP);
        reloads += 1;
        wait_for(|| t.log().matches("new table loaded").count() >= reloads);
        if jiff::Timestamp::now() + jiff::SignedDuration::from_millis(500) < target {
            break target;
        }
    };
    wait_for(|| t.log().matches(" run-end ").count() >= 500);
    // A run logs its end just before it is recorded: wait for the records themselves.
    wait_for(|| (0..500).all(|i| !t.history(&format!("s{i:03}")).is_empty()));
    drop(d);
    let mut edges = Vec::new();
    let mut started_all = BTreeMap::new();
    for i in 0..500 {
        let h = t.history(&format!("s{i:03}"));
        assert_eq!(h.len(), 1, "s{i:03}: {h:?}");
        assert_eq!(h[0]["outcome"], "success", "{:?}", h[0]);
        assert_eq!(ts(&h[0]["scheduled"]), target);
        let a = &h[0]["attempts"][0];
        let s = ts(&a["started"]);
        assert!(s >= target, "started {s} before its instant {target}");
        let e = s + jiff::SignedDuration::from_millis(a["duration_ms"].as_i64().expect("ms"));
        edges.push((s, 1));
        edges.push((e, -1));
        started_all.insert(s, i);
    }
    // Ends sort before starts at the same instant: [start, end) intervals.
    edges.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, delta) in edges {
        now += delta;
        peak = peak.max(now);
    }
    assert!(peak <= 16, "{peak} runs at once with max_concurrent = 16");
    assert!(peak >= 1);
    eprintln!(
        "500 runs from {} to {}, peak {peak}",
        started_all.keys().next().expect("first"),
        started_all.keys().last().expect("last")
    );
}

#[test]
fn a_crash_between_writing_a_run_marker_and_its_rename_records_no_lost_run() {
    let t = Table::new(
        "f-marker",
        "[jobs.job]\nschedule = \"@manual\"\ncommand = [\"/bin/true\"]\n",
    );
    let running = t.dir().join("state/running");
    std::fs::create_dir_all(&running).expect("running dir");
    let marker = |id: &str| {
        format!(
            "{{\"run_id\":\"{id}\",\"job\":\"job\",\"scheduled\":\"2026-01-01T00:00:00+00:00\",\
             \"started\":\"2026-01-01T00:00:00Z\",\"ended\":\"\",\"duration_ms\":0,\
             \"attempts\":[],\"outcome\":\"lost\",\"trigger\":\"schedule\"}}"
        )
    };
    // A daemon died in a run (its marker is in place), another one before the rename of a
    // marker: that run never started.
    std::fs::write(running.join("r-started.json"), marker("r-started")).expect("marker");
    std::fs::write(running.join(".r-never.json.tmp4242.0"), marker("r-never"))
        .expect("temporary marker");
    let d = Daemon::start(&t);
    let h = t.history("job");
    let ids: Vec<&str> = h
        .iter()
        .map(|r| r["run_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["r-started"], "{h:#?}");
    assert_eq!(h[0]["outcome"], "lost");
    assert_eq!(std::fs::read_dir(&running).expect("dir").count(), 0);
    drop(d);
}

const ORPHAN: &str = r#"
[alerts.log]
type = "command"
command = "cat >> $DIR/alerts"

[jobs.slow]
schedule = "@manual"
command = "test -e $DIR/quick && exit 0; echo $$ > $DIR/pid; sleep 30; touch $DIR/done"
timeout = "3s"
kill_grace = "1s"
alert = ["log"]
"#;

/// The pid of the job's shell, once it started.
fn job_pid(t: &Table) -> i32 {
    let p = t.dir().join("pid");
    wait_for(|| std::fs::read_to_string(&p).is_ok_and(|s| s.ends_with('\n')));
    std::fs::read_to_string(&p)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid")
}

/// Waits until `slow` ended and was recorded, checking at every look that it was not
/// recorded while its process still ran; its record then.
fn recorded_after_its_end(t: &Table, pid: i32) -> serde_json::Value {
    let mut rec = None;
    wait_for(|| {
        let h = t.history("slow");
        let Some(r) = h.into_iter().find(|r| r["outcome"] != "success") else {
            return false;
        };
        assert!(!alive(pid), "recorded while it still runs: {r:#}");
        rec = Some(r);
        true
    });
    rec.expect("a record")
}

/// The record of a run whose supervisor died, taken over and stopped at its timeout.
fn assert_timed_out_after_its_supervisor_died(t: &Table, rec: &serde_json::Value, pid: i32) {
    assert_eq!(rec["outcome"], "failure", "{rec:#}");
    let reason = rec["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("timed out after 3s (its supervisor, cronwarden pid "),
        "{reason}"
    );
    let a = &rec["attempts"][0];
    assert_eq!(a["timed_out"], true, "{rec:#}");
    // Stopped at the deadline, not before: the attempt lasted at least the timeout.
    let lasted = ts(&rec["ended"]).duration_since(ts(&a["started"]));
    assert!(lasted >= jiff::SignedDuration::from_secs(3), "{rec:#}");
    assert!(!t.dir().join("done").exists(), "it ran its full time");
    assert!(!alive(pid));
    let run_id = rec["run_id"].as_str().expect("run id");
    assert_eq!(processes_of_run(run_id), Vec::<i32>::new());
    // The marker goes right after the record is written: wait for it, do not race it.
    let running = t.dir().join("state/running");
    let markers = || -> Vec<_> {
        std::fs::read_dir(&running)
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !n.to_string_lossy().starts_with('.'))
            .collect()
    };
    wait_for(|| markers().is_empty());
    // Alerted as the failure it is.
    let alerts = t.dir().join("alerts");
    wait_for(|| {
        std::fs::read_to_string(&alerts).is_ok_and(|a| a.contains("[cronwarden] FAILED slow on "))
    });
}

#[test]
fn after_kill_9_of_the_daemon_the_next_one_keeps_the_timeout_and_records_the_run_at_its_end() {
    let t = Table::new("f-orphan-daemon", ORPHAN);
    let d = Daemon::start(&t);
    let (code, _, err) = t.run(&["trigger", "slow"]);
    assert_eq!(code, 0, "{err}");
    let pid = job_pid(&t);
    d.signal(libc::SIGKILL);
    d.wait();
    assert!(alive(pid), "the job died with the daemon");
    let d = Daemon::start(&t);
    let rec = recorded_after_its_end(&t, pid);
    assert_timed_out_after_its_supervisor_died(&t, &rec, pid);
    assert_eq!(rec["trigger"], "trigger");
    assert_eq!(t.history("slow").len(), 1);
    drop(d);
}

#[test]
fn after_kill_9_of_a_run_the_daemon_takes_its_job_over_at_once() {
    let t = Table::new("f-orphan-run", ORPHAN);
    let d = Daemon::start(&t);
    let mut run = t.spawn(&["run", "slow"]);
    let pid = job_pid(&t);
    run.kill().expect("kill -9");
    run.wait().expect("reaped");
    assert!(alive(pid), "the job died with its run");
    let rec = recorded_after_its_end(&t, pid);
    assert_timed_out_after_its_supervisor_died(&t, &rec, pid);
    assert_eq!(rec["trigger"], "run");
    assert!(t.log().contains(" orphan job=slow "), "{}", t.log());
    drop(d);
}

#[test]
fn after_kill_9_of_a_run_the_next_run_of_the_job_settles_it_first() {
    let t = Table::new("f-orphan-rerun", ORPHAN);
    let mut run = t.spawn(&["run", "slow"]);
    let pid = job_pid(&t);
    run.kill().expect("kill -9");
    run.wait().expect("reaped");
    let killed = jiff::Timestamp::now();
    assert!(alive(pid), "the job died with its run");
    // Once its timeout ran out (a lower bound), the next run stops it, records it, and runs.
    wait_for(|| jiff::Timestamp::now() >= killed + jiff::SignedDuration::from_secs(3));
    std::fs::write(t.dir().join("quick"), "").expect("quick");
    let (code, _, err) = t.run(&["run", "slow"]);
    assert_eq!(code, 0, "{err}");
    let h = t.history("slow");
    assert_eq!(h.len(), 2, "{h:#?}");
    assert_timed_out_after_its_supervisor_died(&t, &h[0], pid);
    assert_eq!(h[1]["outcome"], "success");
    assert!(ts(&h[1]["started"]) >= ts(&h[0]["ended"]));
}

#[test]
fn a_run_whose_supervisor_died_before_naming_its_group_is_found_by_its_run_id() {
    // The supervisor died between starting the attempt and writing its group to the marker:
    // the marker names no group (and, as markers of older versions, no supervisor).
    let t = Table::new(
        "f-orphan-race",
        "[jobs.slow]\nschedule = \"@manual\"\ncommand = \"sleep 30\"\ntimeout = \"1s\"\nkill_grace = \"1s\"\n",
    );
    let running = t.dir().join("state/running");
    std::fs::create_dir_all(&running).expect("running dir");
    let before = jiff::Timestamp::now();
    let mut job = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sh")
            .args(["-c", "sleep 30"])
            .env("CRONWARDEN_RUN_ID", "r-race")
            .env("CRONWARDEN_ATTEMPT", "1")
            .process_group(0)
            .spawn()
            .expect("the job starts")
    };
    let after = jiff::Timestamp::now();
    let pid = job.id() as i32;
    std::fs::write(
        running.join("r-race.json"),
        format!(
            "{{\"run_id\":\"r-race\",\"job\":\"slow\",\"scheduled\":\"{before}\",\
             \"started\":\"{before}\",\"ended\":\"\",\"duration_ms\":0,\"attempts\":[],\
             \"outcome\":\"lost\",\"trigger\":\"schedule\"}}"
        ),
    )
    .expect("marker");
    // Its timeout ran out (a lower bound) before a daemon starts.
    wait_for(|| jiff::Timestamp::now() >= after + jiff::SignedDuration::from_secs(1));
    let d = Daemon::start(&t);
    let mut rec = None;
    wait_for(|| {
        let Some(r) = t.history("slow").into_iter().next() else {
            return false;
        };
        let _ = job.try_wait();
        assert!(!alive(pid), "recorded while it still runs: {r:#}");
        rec = Some(r);
        true
    });
    let _ = job.wait();
    let rec = rec.expect("a record");
    assert_eq!(rec["outcome"], "failure", "{rec:#}");
    let a = &rec["attempts"][0];
    assert_eq!(
        (&a["attempt"], &a["timed_out"]),
        (&1.into(), &true.into()),
        "{rec:#}"
    );
    // The attempt's start was read from /proc (to the clock tick).
    let started = ts(&a["started"]);
    let tick = jiff::SignedDuration::from_millis(100);
    assert!(
        started >= before - tick && started <= after + tick,
        "{rec:#}"
    );
    drop(d);
}
