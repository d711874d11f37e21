//! Integration tests: drive the real `cronwarden` binary (one test binary, a file per feature).

mod after;
mod alert;
mod alert_api;
mod alert_events;
mod alert_faults;
mod check;
mod contain;
mod container;
mod control;
mod daemon;
mod docs;
mod faults;
mod fleet;
mod fleet_reports;
mod given;
mod health;
mod import;
mod messages;
mod next;
mod page;
mod pipeline;
mod pipes;
mod promises;
mod run;
mod security;
mod status;
mod tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cronwarden"));
    c.env_remove("CRONWARDEN_CONFIG");
    c
}

/// Runs cronwarden with the given arguments; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out: Output = bin().args(args).output().expect("cronwarden runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("cw-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file (mode 0644) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(name);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).expect("create dir");
        }
        std::fs::write(&p, text).expect("write file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A table in a temporary directory whose state and locks live beside it.
pub struct Table {
    pub dir: TempDir,
    pub path: PathBuf,
}

impl Table {
    pub fn new(tag: &str, jobs: &str) -> Table {
        let dir = TempDir::new(tag);
        let d = dir.path().display().to_string();
        let text = format!(
            "[settings]\ntimezone = \"UTC\"\nstate_dir = \"{d}/state\"\nlock_dir = \"{d}/run\"\n\
             log_file = \"{d}/cronwarden.log\"\n\n{}",
            jobs.replace("$DIR", &d)
        );
        let path = dir.write("jobs.toml", &text);
        Table { dir, path }
    }

    /// Replaces the jobs, keeping the settings.
    pub fn rewrite(&self, jobs: &str) {
        let d = self.dir().display().to_string();
        let text = format!(
            "[settings]\ntimezone = \"UTC\"\nstate_dir = \"{d}/state\"\nlock_dir = \"{d}/run\"\n\
             log_file = \"{d}/cronwarden.log\"\n\n{}",
            jobs.replace("$DIR", &d)
        );
        std::fs::write(&self.path, text).expect("rewrite table");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.arg("-c").arg(&self.path).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd(args).output().expect("cronwarden runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cronwarden starts")
    }

    pub fn history(&self, job: &str) -> Vec<serde_json::Value> {
        let p = self
            .dir()
            .join("state/history")
            .join(format!("{job}.jsonl"));
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("history line is JSON"))
            .collect()
    }

    /// The outcome of each run of the job in the history, oldest first.
    pub fn outcomes(&self, job: &str) -> Vec<String> {
        self.history(job)
            .iter()
            .map(|r| r["outcome"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("cronwarden.log")).unwrap_or_default()
    }

    /// Waits until the job's lock file names a running process group (the job started).
    pub fn wait_running(&self, job: &str) {
        let p = self.dir().join("run").join(format!("{job}.lock"));
        wait_for(|| std::fs::read_to_string(&p).is_ok_and(|t| t.contains("pgid=")));
    }

    /// Waits until `status` says no run of the job holds its lock any more (a run's record
    /// is written before its lock is let go).
    pub fn wait_idle(&self, job: &str) {
        wait_for(|| {
            let (_, out, _) = self.run(&["status", job, "--json"]);
            serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|v| v[0]["state"] == "idle")
        });
    }
}

/// Waits for a condition: an event, not a fixed sleep (gives up after a minute).
pub fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn ts(v: &serde_json::Value) -> jiff::Timestamp {
    v.as_str()
        .expect("timestamp string")
        .parse()
        .expect("RFC 3339")
}

/// Alive means present and not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// A loopback port nothing listens on (released just before use; tests bind or aim at it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A test (or a part of one) that cannot run here says so. Under CI (`CI` set, as `.ci/run`
/// is run) that is a failure: CI must run every test. Elsewhere it is a visible skip, printed
/// and listed in `target/tmp/skipped-tests.txt`, which `.ci/run` prints.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test} cannot run here ({why}); CI must run every test");
    }
    eprintln!("SKIPPED {test}: {why}");
    let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/skipped-tests.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        use std::io::Write;
        let _ = writeln!(f, "{test}: {why}");
    }
}
