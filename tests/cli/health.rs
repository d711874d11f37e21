//! Staleness (`expect_success_within`), failure streaks and the daemon's health: the `stale`
//! event (the daemon's `stale job=...` log line), `GET /healthz`, `cronwarden health`,
//! `status` and the metrics. Short deadlines (seconds) keep these tests short; waits are for
//! events, fixed sleeps only lower bounds.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::daemon::Daemon;
use super::{Table, free_port, wait_for};

/// `GET path` on the daemon's metrics listener: the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("send");
    let mut s = String::new();
    c.read_to_string(&mut s).expect("read");
    let code = s
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = s.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (code, body.expect("a body"))
}

/// How many times the daemon logged `job` stale.
fn stale_lines(t: &Table, job: &str) -> usize {
    t.log().matches(&format!(" stale job={job} ")).count()
}

/// The value of a metrics sample `name{cronjob="job"}`.
fn sample(port: u16, name: &str, job: &str) -> Option<f64> {
    let (_, body) = get(port, "/metrics");
    let prefix = format!("{name}{{cronjob=\"{job}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.parse().ok()))
}

#[test]
fn a_job_without_success_goes_stale_once_and_again_only_after_a_success() {
    let port = free_port();
    // `flaky` succeeds while $DIR/ok exists; its channel hears of failures only from the
    // 1000th, so its failure streak does not make the daemon unhealthy: staleness does.
    let t = Table::new(
        "h-stale",
        &format!(
            // Before any table header: a key of [settings].
            r#"metrics_listen = "127.0.0.1:{port}"

[alerts.ops]
type = "command"
command = "true"
on = ["failure"]
after_failures = 1000

[alerts.watch]
type = "command"
command = "cat >> $DIR/stale-alerts"
on = ["stale"]

[jobs.flaky]
schedule = "* * * * * *"
command = "test -e $DIR/ok"
expect_success_within = "2s"
alert = ["ops", "watch"]

[jobs.steady]
schedule = "* * * * * *"
command = "true"
expect_success_within = "5s"
"#
        ),
    );
    let ok = t.dir().join("ok");
    std::fs::write(&ok, "").expect("ok");
    let _d = Daemon::start(&t);
    let succeeded = |n: usize| {
        t.history("flaky")
            .iter()
            .filter(|r| r["outcome"] == "success")
            .count()
            >= n
    };
    wait_for(|| succeeded(2));
    // Succeeding every second: healthy, not stale.
    let (code, body) = get(port, "/healthz");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(v["healthy"], true, "{body}");
    assert_eq!(sample(port, "cronwarden_job_stale", "flaky"), Some(0.0));
    assert_eq!(t.run(&["health"]).0, 0);

    // Failing from now on: stale 2 s after the last success, alerted once. (Counted from
    // here: a loaded machine could delay a tick past the deadline before.)
    let before = stale_lines(&t, "flaky");
    std::fs::remove_file(&ok).expect("rm ok");
    wait_for(|| stale_lines(&t, "flaky") == before + 1);
    // The channel that asked for `stale` gets it, naming the deadline.
    let alerts = || {
        std::fs::read_to_string(t.dir().join("stale-alerts"))
            .unwrap_or_default()
            .matches("STALE flaky on ")
            .count()
    };
    wait_for(|| alerts() == 1);
    let (code, body) = get(port, "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("flaky: stale"), "{body}");
    assert_eq!(sample(port, "cronwarden_job_stale", "flaky"), Some(1.0));
    assert!(sample(port, "cronwarden_job_failure_streak", "flaky").is_some_and(|n| n >= 2.0));
    let (code, out, _) = t.run(&["health"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("flaky: stale: no success since ")),
        "{out}"
    );
    // Still failing, every second: no second alert.
    let failures = t.history("flaky").len();
    wait_for(|| t.history("flaky").len() >= failures + 3);
    assert_eq!(stale_lines(&t, "flaky"), before + 1, "{}", t.log());
    assert_eq!(alerts(), 1);

    // A success: healthy again, and stale again (alerted a second time) only 2 s after it.
    std::fs::write(&ok, "").expect("ok");
    wait_for(|| get(port, "/healthz").0 == 200);
    assert_eq!(sample(port, "cronwarden_job_stale", "flaky"), Some(0.0));
    assert_eq!(
        sample(port, "cronwarden_job_failure_streak", "flaky"),
        Some(0.0)
    );
    std::fs::remove_file(&ok).expect("rm ok");
    let failing_since = Instant::now();
    wait_for(|| stale_lines(&t, "flaky") == before + 2);
    wait_for(|| alerts() == 2);
    assert!(failing_since.elapsed() >= Duration::from_secs(1));
    assert_eq!(get(port, "/healthz").0, 503);
    // The job that kept succeeding never went stale.
    assert_eq!(stale_lines(&t, "steady"), 0, "{}", t.log());
    assert_eq!(sample(port, "cronwarden_job_stale", "steady"), Some(0.0));
}

#[test]
fn a_schedule_that_never_comes_goes_stale_on_time_paused_and_not_again_after_a_restart() {
    let t = Table::new(
        "h-never",
        r#"
[jobs.yearly]
schedule = "0 0 1 1 *"
command = "true"
expect_success_within = "2s"
"#,
    );
    // Paused and forgotten.
    assert_eq!(t.run(&["pause", "yearly"]).0, 0);
    let started = Instant::now();
    let d = Daemon::start(&t);
    wait_for(|| stale_lines(&t, "yearly") == 1);
    // The deadline is a timer of the loop, which otherwise sleeps up to a minute.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let (code, out, _) = t.run(&["status", "yearly", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v[0]["stale"], true, "{out}");
    let deadline: jiff::Timestamp = v[0]["stale_deadline"]
        .as_str()
        .expect("a deadline")
        .parse()
        .expect("RFC 3339");
    assert!(deadline <= jiff::Timestamp::now());
    let (_, out, _) = t.run(&["status"]);
    let header = out.lines().next().expect("header");
    assert!(header.contains(" STALE "), "{out}");
    assert!(
        out.lines().nth(1).is_some_and(|l| l.contains(" ago ")),
        "{out}"
    );
    // A restart reads the same deadline from the state directory: alerted already.
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    let _d = Daemon::start(&t);
    let (code, out, _) = t.run(&["health"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("yearly: stale: no success yet"), "{out}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stale_lines(&t, "yearly"), 1, "{}", t.log());
}

#[test]
fn health_and_status_count_failure_streaks_from_their_threshold_with_or_without_a_daemon() {
    let t = Table::new(
        "h-streak",
        r#"
[alerts.ops]
type = "command"
command = "true"
after_failures = 2

[jobs.bad]
schedule = "@manual"
command = "test -e $DIR/ok"
alert = ["ops"]

[jobs.good]
schedule = "@manual"
command = "true"
"#,
    );
    assert_eq!(t.run(&["run", "good"]).0, 0);
    // No daemon: unhealthy for that alone, from the state directory.
    let (code, out, _) = t.run(&["health"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.starts_with("no daemon is running")),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    let d = Daemon::start(&t);
    let (code, out, err) = t.run(&["health"]);
    assert_eq!((code, out.as_str()), (0, "healthy\n"), "{err}");
    // One failure is below the channel's after_failures (2): still healthy.
    assert_eq!(t.run(&["trigger", "bad", "--wait"]).0, 1);
    assert_eq!(t.run(&["health"]).0, 0);
    assert_eq!(t.run(&["trigger", "bad", "--wait"]).0, 1);
    let (code, out, _) = t.run(&["health"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out, "bad: 2 failed runs in a row (threshold 2)\n");
    let (_, out, _) = t.run(&["health", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["healthy"], false);
    let bad = v["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["job"] == "bad"))
        .expect("bad");
    assert_eq!(
        (
            bad["failure_streak"].as_u64(),
            bad["streak_threshold"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let (_, out, _) = t.run(&["status"]);
    let header = out.lines().next().expect("header");
    assert!(header.contains(" OUTCOME  STREAK "), "{out}");
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("bad "))
        .expect("bad row")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[row.iter().position(|c| *c == "failure").expect("outcome") + 1],
        "2"
    );
    // Without the daemon, the same streak from the state directory, and the daemon's absence.
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    let (code, out, _) = t.run(&["health"]);
    assert_eq!(code, 1);
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.starts_with("no daemon is running")),
        "{out}"
    );
    assert!(
        out.contains("\nbad: 2 failed runs in a row (threshold 2)\n"),
        "{out}"
    );
    // A success ends the streak.
    std::fs::write(t.dir().join("ok"), "").expect("ok");
    assert_eq!(t.run(&["run", "bad"]).0, 0);
    let (_, out, _) = t.run(&["status", "bad", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v[0]["failure_streak"], 0);
    assert_eq!(v[0]["stale_deadline"], serde_json::Value::Null);
}

#[test]
fn a_daemon_that_was_down_alerts_at_start_from_the_history_however_long_the_streak() {
    let t = Table::new(
        "h-down",
        r#"
[jobs.nightly]
schedule = "0 3 1 1 *"
command = "true"
expect_success_within = "30m"
"#,
    );
    // The history a daemon left: a success that ended an hour ago, then 100 failures (more
    // than the daemon reads at start: it reads the rest off its loop).
    let now = jiff::Timestamp::now();
    let at = |secs_ago: i64| (now - jiff::SignedDuration::from_secs(secs_ago)).to_string();
    let line = |id: usize, outcome: &str, secs_ago: i64| {
        serde_json::json!({
            "run_id": format!("r{id:03}"), "job": "nightly", "scheduled": at(secs_ago),
            "started": at(secs_ago), "ended": at(secs_ago), "duration_ms": 0,
            "attempts": [], "outcome": outcome, "trigger": "schedule",
        })
        .to_string()
            + "\n"
    };
    let mut text = line(0, "success", 3600);
    for i in 1..=100 {
        text.push_str(&line(i, "failure", 3600 - i as i64 * 10));
    }
    std::fs::create_dir_all(t.dir().join("state/history")).expect("history dir");
    std::fs::write(t.dir().join("state/history/nightly.jsonl"), text).expect("history");
    let _d = Daemon::start(&t);
    wait_for(|| stale_lines(&t, "nightly") == 1);
    let deadline = (now - jiff::SignedDuration::from_secs(1800)).to_string();
    assert!(
        t.log().contains(&format!(
            " stale job=nightly deadline={deadline}: no success since "
        )),
        "{}",
        t.log()
    );
    let (code, out, _) = t.run(&["health", "--json"]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["jobs"][0]["failure_streak"], 100, "{out}");
    assert_eq!(v["jobs"][0]["stale_deadline"], deadline.as_str(), "{out}");
    assert_eq!(v["jobs"][0]["stale"], true);
}

#[test]
fn a_reload_that_adds_expect_success_within_starts_the_deadline() {
    let job = "[jobs.monthly]\nschedule = \"0 0 1 * *\"\ncommand = \"true\"\n";
    let t = Table::new("h-reload", job);
    let d = Daemon::start(&t);
    let (_, out, _) = t.run(&["health", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v["jobs"][0]["stale_deadline"],
        serde_json::Value::Null,
        "{out}"
    );
    t.rewrite(&format!("{job}expect_success_within = \"1s\"\n"));
    let reloaded = Instant::now();
    d.signal(libc::SIGHUP);
    wait_for(|| t.log().contains("new table loaded"));
    wait_for(|| stale_lines(&t, "monthly") == 1);
    assert!(reloaded.elapsed() >= Duration::from_secs(1));
    let (code, out, _) = t.run(&["health"]);
    assert_eq!(code, 1);
    assert!(out.starts_with("monthly: stale: no success yet"), "{out}");
}
