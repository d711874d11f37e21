//! Messages that must say what happened (issue 15, item 16): a timeout names its limit, an
//! SMTP server that never answers reads "timed out", and `status`, `history`, `pause` and
//! `resume` tell the truth without a daemon.

use std::net::TcpListener;

use super::{Table, TempDir, run};

#[test]
fn a_timeout_is_reported_with_the_limit_not_the_grace_it_took() {
    // The job ignores SIGTERM: it is killed kill_grace (2 s) after its 2 s timeout.
    let t = Table::new(
        "msg-timeout",
        r#"
[jobs.stubborn]
schedule = "@daily"
command = "trap '' TERM; sleep 30"
timeout = "2s"
kill_grace = "2s"
"#,
    );
    let (code, _, err) = t.run(&["run", "stubborn"]);
    assert_eq!(code, 1, "{err}");
    let h = t.history("stubborn");
    assert_eq!(h[0]["reason"], "timed out after 2s", "{h:?}");
    let ms = h[0]["duration_ms"].as_u64().expect("duration");
    assert!(ms >= 4000, "it did take the grace too: {ms} ms");
    assert!(err.contains("timed out after 2s"), "{err}");
}

#[test]
fn an_smtp_server_that_never_answers_reads_timed_out() {
    // Never accepted, the connection still completes (the listen backlog): a server that
    // takes the connection and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let dir = TempDir::new("msg-smtp");
    let path = dir.write(
        "jobs.toml",
        &format!(
            "[alerts.ops]\ntype = \"email\"\nsmtp_url = \"smtp://127.0.0.1:{port}\"\n\
             from = \"cron@example.com\"\nto = [\"ops@example.com\"]\ntimeout = \"1s\"\n"
        ),
    );
    let (code, _, err) = run(&["-c", path.to_str().expect("utf-8"), "test-alert", "ops"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "cronwarden: channel \"ops\": smtp://127.0.0.1:{port}: timed out after 1s: the \
             server did not answer"
        )
    );
    drop(silent);
}

const TICK: &str = r#"
[jobs.tick]
schedule = "* * * * * *"
command = "echo x >> $DIR/ticks"
"#;

fn row<'a>(out: &'a str, job: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{job} ")))
        .unwrap_or_else(|| panic!("no row for {job} in:\n{out}"))
}

#[test]
fn without_a_daemon_status_says_so_and_pause_and_resume_edit_the_pause_files() {
    let t = Table::new("msg-nodaemon", TICK);
    let (code, out, err) = t.run(&["status"]);
    assert_eq!(code, 0, "{err}");
    // Not "in 1s": nothing runs it.
    assert!(row(&out, "tick").contains(" no daemon "), "{out}");
    assert_eq!(
        err.trim(),
        format!(
            "no daemon is running for {}: no job runs by itself until one starts",
            t.path.display()
        )
    );
    // The pause persists on disk; without a daemon it is written there (was exit 69).
    let (code, _, err) = t.run(&["pause", "tick"]);
    assert_eq!(code, 0, "{err}");
    let paused_dir = t.dir().join("state/paused");
    assert_eq!(
        err.trim(),
        format!(
            "tick: paused; no daemon is running: the daemon applies it when it starts (saved in \
             {})",
            paused_dir.display()
        )
    );
    assert!(paused_dir.join("tick").exists());
    let (_, out, _) = t.run(&["status"]);
    let tick = row(&out, "tick");
    assert!(
        tick.contains("idle, paused") && tick.contains(" paused "),
        "{out}"
    );
    assert!(!tick.contains(" no daemon "), "{out}");

    // A daemon started now keeps the job paused...
    let d = super::daemon::Daemon::start(&t);
    super::wait_for(|| {
        t.log()
            .contains("the job is paused; this tick does not run")
    });
    assert!(!t.dir().join("ticks").exists());
    let (_, out, err) = t.run(&["status"]);
    assert!(row(&out, "tick").contains(" paused "), "{out}");
    assert_eq!(err, "");
    // ...and with a daemon running, resume goes to it (it keeps pauses in memory).
    let (code, _, err) = t.run(&["resume", "tick"]);
    assert_eq!((code, err.trim()), (0, "tick: resumed"));
    super::wait_for(|| t.dir().join("ticks").exists());
    let (_, out, _) = t.run(&["status"]);
    assert!(row(&out, "tick").contains(" in "), "{out}");
    drop(d);
    // Resumed on disk too; without a daemon, resume edits the file.
    assert!(!paused_dir.join("tick").exists());
    assert_eq!(t.run(&["pause", "tick"]).0, 0);
    let (code, _, err) = t.run(&["resume", "tick"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.starts_with("tick: resumed; no daemon is running"),
        "{err}"
    );
    assert!(!paused_dir.join("tick").exists());
}

#[test]
fn status_says_when_the_supervisor_of_a_run_is_gone() {
    let t = Table::new(
        "msg-orphan",
        r#"
[jobs.hold]
schedule = "@daily"
command = "while [ ! -e $DIR/release ]; do sleep 0.05; done"
"#,
    );
    let d = super::daemon::Daemon::start(&t);
    let (code, _, err) = t.run(&["trigger", "hold"]);
    assert_eq!(code, 0, "{err}");
    t.wait_running("hold");
    let pid = d.pid();
    let (_, out, _) = t.run(&["status"]);
    assert!(row(&out, "hold").contains(&format!("(pid {pid})")), "{out}");
    // kill -9: the job lives on and holds the lock; its supervisor is gone.
    d.signal(libc::SIGKILL);
    assert_eq!(d.wait(), None);
    let (_, out, _) = t.run(&["status"]);
    let hold = row(&out, "hold");
    assert!(
        hold.contains(&format!(
            "(pid {pid} is gone; the job's processes still hold the lock)"
        )),
        "{out}"
    );
    assert!(hold.contains(" no daemon "), "{out}");
    release_and_wait(&t, "hold");
}

/// Lets a job waiting for `$DIR/release` end, and waits until its lock is free (so that the
/// job is gone before the test's directory is).
fn release_and_wait(t: &Table, job: &str) {
    std::fs::write(t.dir().join("release"), "").expect("release");
    super::wait_for(|| {
        let (_, out, _) = t.run(&["status", job, "--json"]);
        serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|v| v[0]["state"] == "idle")
    });
}

/// A child that is stopped with SIGTERM and waited for when dropped, also when a test fails.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: signals our own child process.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

#[test]
fn status_says_when_a_run_waits_to_retry() {
    let t = Table::new(
        "msg-retry",
        r#"
[jobs.flaky]
schedule = "@daily"
command = "exit 3"
retries = 1
retry_delay = "1h"
retry_jitter = false
"#,
    );
    let run = Stopped(t.spawn(&["run", "flaky"]));
    let pid = run.0.id();
    // The first attempt failed: the lock is held, no attempt runs.
    super::wait_for(|| {
        let (_, out, _) = t.run(&["status"]);
        out.contains(&format!("(pid {pid}), waiting to retry or finishing"))
    });
    drop(run);
}

#[test]
fn a_lost_run_shows_no_duration_or_attempts_it_does_not_know() {
    let t = Table::new(
        "msg-lost",
        "[jobs.gone]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n",
    );
    // A lost run as recorded from the run marker: neither its end nor its attempts known.
    let history = t.dir().join("state/history");
    std::fs::create_dir_all(&history).expect("history dir");
    std::fs::write(
        history.join("gone.jsonl"),
        r#"{"run_id":"r1","job":"gone","scheduled":"2026-01-01T03:00:00+00:00","started":"2026-01-01T03:00:00Z","ended":"2026-01-01T03:05:00Z","duration_ms":0,"attempts":[],"outcome":"lost","reason":"the daemon stopped while this run was in progress; its end is unknown","trigger":"schedule"}
"#,
    )
    .expect("write history");
    let (code, out, err) = t.run(&["history", "gone"]);
    assert_eq!(code, 0, "{err}");
    let r1 = row(&out, "r1");
    let cols: Vec<&str> = r1.split_whitespace().collect();
    // RUN ID, SCHEDULED, STARTED, DURATION, ATTEMPTS, EXIT, OUTCOME
    assert_eq!(&cols[3..7], ["-", "-", "-", "lost"], "{out}");
    let (_, out, _) = t.run(&["status"]);
    let cols: Vec<&str> = row(&out, "gone").split_whitespace().collect();
    // JOB, STATE, LAST RUN (3 words: "N d ago"...), then OUTCOME, STREAK (a lost run is a
    // failed one), DURATION, ATTEMPTS.
    let lost = cols.iter().position(|c| *c == "lost").expect("outcome");
    assert_eq!(&cols[lost + 1..lost + 4], ["1", "-", "-"], "{out}");
}
