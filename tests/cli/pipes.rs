//! A reader that goes away: `cronwarden ... | head -1`. Every command drops the rest of its
//! output quietly and ends with the exit code of its work; none panics (exit 101), and
//! neither `run` nor the daemon, which log to standard error without `log_file`, stops.
//!
//! Each test makes more output than a pipe holds (64 KiB), so the closed pipe is certain to
//! be met rather than left unwritten.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, ChildStdout, Stdio};

use super::{Table, TempDir, alive, bin, wait_for};

/// A child killed when dropped (when a test gives up on it).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaped {
    /// Waits for the exit (failing after a minute, as a hung process would): its code.
    fn exit_code(&mut self) -> Option<i32> {
        wait_for(|| self.0.try_wait().is_ok_and(|s| s.is_some()));
        self.0.wait().expect("wait").code()
    }
}

/// The first line of a stream; the reader then closes it.
fn first_line(r: impl Read) -> String {
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).expect("read");
    line
}

fn rest(r: Option<impl Read>) -> String {
    let mut s = String::new();
    if let Some(mut r) = r {
        r.read_to_string(&mut s).expect("read");
    }
    s
}

#[test]
fn next_stops_quietly_when_its_reader_goes_away() {
    let child = bin()
        .args(["next", "* * * * * *", "-n", "100000"])
        .args(["--after", "2026-01-01T00:00:00Z", "--tz", "UTC"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("next starts");
    let mut c = Reaped(child);
    let out: ChildStdout = c.0.stdout.take().expect("stdout");
    assert_eq!(first_line(out), "2026-01-01T00:00:01+00:00\n");
    let code = c.exit_code();
    let err = rest(c.0.stderr.take());
    assert_eq!((code, err.as_str()), (Some(0), ""));
}

#[test]
fn check_keeps_its_verdict_when_its_reader_goes_away() {
    // 3,000 jobs without a command: some 300 KB of diagnostics on standard error.
    let dir = TempDir::new("pipe-check");
    let jobs: String = (0..3000)
        .map(|i| format!("[jobs.j{i}]\nschedule = \"@daily\"\n"))
        .collect();
    let path = dir.write("jobs.toml", &jobs);
    let child = bin()
        .arg("-c")
        .arg(&path)
        .arg("check")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("check starts");
    let mut c = Reaped(child);
    let err: ChildStderr = c.0.stderr.take().expect("stderr");
    assert!(first_line(err).contains("error: job \"j0\": no command"));
    assert_eq!(c.exit_code(), Some(78), "the table is invalid either way");
}

/// A table as `Table` writes it, less `log_file`: cronwarden then logs to standard error.
fn table_logging_to_stderr(tag: &str, jobs: &str) -> Table {
    let t = Table::new(tag, jobs);
    let text = std::fs::read_to_string(&t.path).expect("table");
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("log_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&t.path, text).expect("write");
    t
}

fn ticks(t: &Table) -> usize {
    std::fs::read_to_string(t.dir().join("ticks"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn run_finishes_and_records_when_its_log_reader_goes_away() {
    // The job waits for the test to close the pipe, so the run's later log lines meet it.
    let t = table_logging_to_stderr(
        "pipe-run",
        r#"
[jobs.waits]
schedule = "@daily"
command = "while [ ! -e $DIR/go ]; do sleep 0.05; done"
"#,
    );
    let child = t
        .cmd(&["run", "waits"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run starts");
    let mut c = Reaped(child);
    let err: ChildStderr = c.0.stderr.take().expect("stderr");
    let first = first_line(err);
    std::fs::write(t.dir().join("go"), "").expect("go");
    assert!(first.contains("attempt-start"), "{first}");
    // It used to panic in the logger with the log's lock held, and then hang for good.
    assert_eq!(c.exit_code(), Some(0));
    let h = t.history("waits");
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["outcome"], "success", "{h:?}");
}

#[test]
fn the_daemon_outlives_the_reader_of_its_log() {
    let t = table_logging_to_stderr(
        "pipe-daemon",
        "[jobs.tick]\nschedule = \"* * * * * *\"\ncommand = \"echo x >> $DIR/ticks\"\n",
    );
    let child = t
        .cmd(&["daemon"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daemon starts");
    let mut d = Reaped(child);
    let pid = d.0.id() as i32;
    let mut err = BufReader::new(d.0.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.contains(" daemon-start ") {
        line.clear();
        assert_ne!(
            err.read_line(&mut line).expect("read"),
            0,
            "the daemon ended"
        );
    }
    drop(err);
    // Every tick logs; a reload logs from the daemon's main thread.
    let before = ticks(&t);
    wait_for(|| ticks(&t) >= before + 2);
    // SAFETY: signals our own child process.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let after_hup = ticks(&t);
    wait_for(|| ticks(&t) >= after_hup + 3);
    assert!(alive(pid), "the daemon died");
    assert_eq!(d.0.try_wait().expect("try_wait"), None, "the daemon ended");
}
