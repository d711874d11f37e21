//! Alerts under fire (issue 15): a silent mail server, a slow channel, runs lost with their
//! daemon, a webhook that keeps failing. Real binary, real servers on 127.0.0.1; assertions
//! on recorded instants and their order, delays only as lower bounds.

use std::io::Read;
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::alert::{Hook, spooled};
use super::daemon::Daemon;
use super::{Table, alive, ts, wait_for};

/// When a connection came, and when the client gave up on it.
type Conns = Arc<Mutex<Vec<(Timestamp, Option<Timestamp>)>>>;

/// A mail server that accepts connections and never says a word; it records when each
/// connection came and when the client gave up on it.
struct Silent {
    port: u16,
    /// (accepted, closed by the client)
    conns: Conns,
}

impl Silent {
    fn start(port: u16) -> Silent {
        let l = TcpListener::bind(("127.0.0.1", port)).expect("bind the silent server");
        let port = l.local_addr().expect("addr").port();
        let conns: Conns = Arc::new(Mutex::new(Vec::new()));
        let c = Arc::clone(&conns);
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let i = {
                    let mut v = c.lock().expect("lock");
                    v.push((Timestamp::now(), None));
                    v.len() - 1
                };
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    let mut conn = conn;
                    let mut buf = [0u8; 1024];
                    // Never answers; a read of 0 (or an error) is the client hanging up.
                    while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                    c.lock().expect("lock")[i].1 = Some(Timestamp::now());
                });
            }
        });
        Silent { port, conns }
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn conns(&self) -> Vec<(Timestamp, Option<Timestamp>)> {
        self.conns.lock().expect("lock").clone()
    }
}

/// Starts a daemon and waits for its own `daemon-start` line (the log may hold those of
/// daemons before it).
fn start_daemon(t: &Table) -> Daemon {
    let before = t.log().matches(" daemon-start ").count();
    let child = t
        .cmd(&["daemon"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon starts");
    let d = Daemon(child);
    wait_for(|| t.log().matches(" daemon-start ").count() > before);
    d
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

/// The next try of a channel that failed, if its state says so.
fn next_try(t: &Table, channel: &str) -> Option<Timestamp> {
    let p = t.dir().join(format!("state/spool/{channel}/channel.state"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    v["next_try"].as_str()?.parse().ok()
}

#[test]
fn run_starts_its_job_at_once_behind_a_silent_mail_server_and_tries_it_once() {
    // Issue 15 item 1: 8 spooled alerts and a mail server that accepts and never answers
    // made `run` wait 8 timeouts before starting a job that has no alerts at all.
    let port = super::free_port();
    let mut jobs = format!(
        r#"
[alerts.ops]
type = "email"
smtp_url = "smtp://127.0.0.1:{port}"
from = "cronwarden@example.com"
to = ["ops@example.com"]
timeout = "10s"

[jobs.ok]
schedule = "@manual"
command = ["/bin/true"]
"#
    );
    for i in 1..=8 {
        jobs.push_str(&format!(
            "\n[jobs.bad{i}]\nschedule = \"@manual\"\ncommand = [\"/bin/false\"]\nalert = [\"ops\"]\n"
        ));
    }
    let t = Table::new("af-silent", &jobs);
    // Nothing listens yet: each failure alert is spooled.
    for i in 1..=8 {
        assert_eq!(t.run(&["run", &format!("bad{i}")]).0, 1);
    }
    assert_eq!(spooled(&t).len(), 8, "{}", t.log());
    // Wait until the spool is due for a retry (5 s after the failures, and after the
    // channel's next try when it has one).
    let spooled_at = Instant::now();
    wait_for(|| {
        spooled_at.elapsed() >= Duration::from_millis(5500)
            && next_try(&t, "ops").is_none_or(|n| n < Timestamp::now())
    });
    let silent = Silent::start(port);
    let log_before = t.log().len();
    let invoked = Timestamp::now();
    let (code, _, err) = t.run(&["run", "ok"]);
    assert_eq!(code, 0, "{err}");
    let h = t.history("ok");
    let started = ts(&h[0]["attempts"][0]["started"]);
    // The spool was retried (by that run, once: the channel backs off as a whole) ...
    let conns = silent.conns();
    assert_eq!(
        conns.len(),
        1,
        "one try for the channel, not one per alert: {conns:?}"
    );
    wait_for(|| silent.conns()[0].1.is_some());
    let gave_up = silent.conns()[0]
        .1
        .expect("the run hung up on the silent server");
    // ... beside the job, not before it: the job started while the try was still waiting
    // for the server's greeting (10 s), which it gave up on only afterwards.
    assert!(
        started < gave_up,
        "the job started at {started}, after the spool retry gave up at {gave_up} \
         (invoked at {invoked})"
    );
    assert!(conns[0].0 >= invoked);
    // The retry is logged, with what happens next, and nothing was lost.
    let log = t.log()[log_before..].to_string();
    assert!(
        log.lines().any(|l| l.contains(" alert-spooled ")
            && l.contains("channel=ops")
            && l.contains("is tried again at")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(" alert-spool ") && l.contains("8 alert(s) wait in the spool")),
        "{log}"
    );
    assert_eq!(spooled(&t).len(), 8);
}

#[test]
fn a_silent_mail_server_does_not_hold_up_the_webhook_which_then_names_it() {
    // Each channel delivers on its own: the webhook's alert goes out while the mail server
    // is still silent, and once the mail times out the webhook says the mail is broken.
    let silent = Silent::start(0);
    let port = silent.port();
    let hook = Hook::start(200);
    let t = Table::new(
        "af-apart",
        &format!(
            r#"
[alerts.ops]
type = "email"
smtp_url = "smtp://127.0.0.1:{port}"
from = "cronwarden@example.com"
to = ["ops@example.com"]
timeout = "5s"

[alerts.chat]
type = "webhook"
url = "http://127.0.0.1:{}/hook"

[jobs.bad]
schedule = "@manual"
command = ["/bin/false"]
alert = ["ops", "chat"]
"#,
            hook.port
        ),
    );
    assert_eq!(t.run(&["run", "bad"]).0, 1);
    wait_for(|| silent.conns().first().is_some_and(|c| c.1.is_some()));
    let gave_up = silent.conns()[0].1.expect("closed");
    let got = posted(&hook);
    assert_eq!(
        got.len(),
        2,
        "the alert and the broken-channel note: {got:#?}"
    );
    assert_eq!(got[0].2["event"], "failure");
    assert!(
        got[0].0 < gave_up,
        "the webhook waited for the mail server: posted at {}, mail gave up at {gave_up}",
        got[0].0
    );
    assert_eq!(got[1].2["event"], "channel-broken");
    assert!(
        got[1].2["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("[alerts.ops]: smtp://127.0.0.1:{port}: "))),
        "{:#}",
        got[1].2
    );
    // Only once the mail timed out (5 s after the connection, which the server accepted
    // after the client made it; 1 s of margin for a late accept). Not against `gave_up`:
    // the server notes the hang-up when its thread next runs, which on a loaded machine
    // can be after the webhook already had the note.
    let accepted = silent.conns()[0].0;
    assert!(
        got[1].0 >= accepted + jiff::SignedDuration::from_secs(4),
        "the note came before the mail timed out: accepted {accepted}, note {}",
        got[1].0
    );
}

#[test]
fn a_slow_alert_channel_never_holds_the_lock_and_shutdown_keeps_what_waits() {
    // Issue 15 item 4: a command channel that took 20 s held the job's lock, so the next
    // ticks were skipped. Here the channel's first delivery blocks until the test releases
    // it; meanwhile the job must go on running on its schedule.
    let t = Table::new(
        "af-slow",
        r#"
[alerts.slow]
type = "command"
command = "cat > /dev/null; date -u +%Y-%m-%dT%H:%M:%S.%NZ >> $DIR/alert-started; while [ ! -e $DIR/release ] && [ -d $DIR ]; do sleep 0.05; done; echo $CRONWARDEN_COALESCED >> $DIR/delivered"

[jobs.fail]
schedule = "* * * * * *"
command = ["/bin/false"]
alert = ["slow"]
"#,
    );
    let d = start_daemon(&t);
    let outcomes = |t: &Table| -> Vec<String> {
        t.history("fail")
            .iter()
            .map(|r| r["outcome"].as_str().unwrap_or("").to_string())
            .collect()
    };
    wait_for(|| {
        let o = outcomes(&t);
        o.iter().any(|o| o == "skipped") || o.iter().filter(|o| *o == "failure").count() >= 4
    });
    let h = t.history("fail");
    assert!(
        h.iter().all(|r| r["outcome"] == "failure"),
        "runs were held back while the alert was being delivered: {h:#?}"
    );
    // Every run after the first started while the first alert was still out (it cannot
    // end before the release).
    let first_alert: Timestamp = std::fs::read_to_string(t.dir().join("alert-started"))
        .expect("the first alert is being delivered")
        .lines()
        .next()
        .expect("a line")
        .parse()
        .expect("instant");
    assert!(!t.dir().join("delivered").exists());
    for r in &h[1..] {
        assert!(ts(&r["started"]) > first_alert, "{r:#}");
    }
    // Shutdown: the delivery in flight ends, the alerts still waiting stay in the spool.
    d.signal(libc::SIGTERM);
    wait_for(|| t.log().contains("alert delivery(ies) in flight"));
    std::fs::write(t.dir().join("release"), "").expect("release");
    assert_eq!(d.wait(), Some(0));
    let delivered = std::fs::read_to_string(t.dir().join("delivered")).expect("delivered");
    assert_eq!(delivered.lines().count(), 1, "{delivered}");
    let waiting = spooled(&t);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    // One alert stands for the failures of the runs that came while the first was out.
    let stands_for = waiting[0].1["alert"]["coalesced"].as_u64().expect("n") + 1;
    assert!(stands_for >= 3, "{waiting:?}");
    assert!(t.log().contains(" alert-spool "), "{}", t.log());
    // The next daemon delivers it (and says how many it stands for).
    let d = start_daemon(&t);
    wait_for(|| {
        std::fs::read_to_string(t.dir().join("delivered")).is_ok_and(|d| d.lines().count() >= 2)
    });
    drop(d);
    let delivered = std::fs::read_to_string(t.dir().join("delivered")).expect("delivered");
    let second: u64 = delivered
        .lines()
        .nth(1)
        .expect("second")
        .parse()
        .expect("n");
    assert!(second + 1 >= stands_for, "{delivered}");
}

#[test]
fn a_run_lost_with_its_daemon_is_alerted_once_as_lost() {
    // Issue 15 item 10: cronwarden.toml(5) says a run the daemon died during is recorded
    // lost and alerted; it was only recorded.
    let t = Table::new(
        "af-lost",
        r#"
[alerts.page]
type = "command"
command = "cat > $DIR/body-$CRONWARDEN_RUN_ID; echo $CRONWARDEN_EVENT $CRONWARDEN_OUTCOME $CRONWARDEN_RUN_ID >> $DIR/alerts"

[jobs.long]
schedule = "@manual"
command = "echo $$ > $DIR/pid; exec sleep 300"
alert = ["page"]
"#,
    );
    let d = start_daemon(&t);
    let (code, out, err) = t.run(&["trigger", "long"]);
    assert_eq!(code, 0, "{out}{err}");
    // The shell creates the file before it writes the pid: wait for a whole line.
    wait_for(|| std::fs::read_to_string(t.dir().join("pid")).is_ok_and(|p| p.ends_with('\n')));
    d.signal(libc::SIGKILL);
    d.wait();
    // The job outlived its daemon; end it (its run stays lost: nobody saw its end).
    let pid: i32 = std::fs::read_to_string(t.dir().join("pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    // SAFETY: signals the process group of the job this test started.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    wait_for(|| !alive(pid));
    let d = start_daemon(&t);
    let lost: Vec<serde_json::Value> = t
        .history("long")
        .into_iter()
        .filter(|r| r["outcome"] == "lost")
        .collect();
    assert_eq!(lost.len(), 1, "{:#?}", t.history("long"));
    let run_id = lost[0]["run_id"].as_str().expect("id").to_string();
    wait_for(|| t.dir().join("alerts").exists());
    let body = std::fs::read_to_string(t.dir().join(format!("body-{run_id}"))).expect("body");
    assert!(body.starts_with("[cronwarden] LOST long on "), "{body}");
    assert!(body.contains("outcome:    lost"), "{body}");
    // Once: neither a clean restart nor another start alerts it again.
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    let d = start_daemon(&t);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    let alerts = std::fs::read_to_string(t.dir().join("alerts")).expect("alerts");
    assert_eq!(alerts, format!("failure lost {run_id}\n"));
    assert!(spooled(&t).is_empty(), "{:?}", spooled(&t));
}

/// The failure alerts a webhook received, in order: (status it answered, JSON).
fn posted(hook: &Hook) -> Vec<(Timestamp, u16, serde_json::Value)> {
    hook.answered()
        .into_iter()
        .filter(|r| r.path == "/hook")
        .map(|r| (r.at, r.status, serde_json::from_str(&r.body).expect("JSON")))
        .collect()
}

#[test]
fn a_failing_webhook_keeps_one_alert_per_job_backs_off_and_says_what_it_dropped() {
    // Issue 15 item 12: a webhook answering 500 and a job failing every second left one
    // spool file per alert, each retried on its own.
    let hook = Hook::start(500);
    let mut jobs = format!(
        r#"
[alerts.chat]
type = "webhook"
url = "http://127.0.0.1:{}/hook"

[jobs.ok]
schedule = "@manual"
command = ["/bin/true"]
"#,
        hook.port
    );
    for j in ["a", "b", "c"] {
        jobs.push_str(&format!(
            "\n[jobs.{j}]\nschedule = \"@manual\"\ncommand = [\"/bin/false\"]\nalert = [\"chat\"]\n"
        ));
    }
    let t = Table::new("af-bound", &jobs);
    settings(&t, "alert_spool_max_per_channel = 2");
    for j in ["a", "a", "a", "b", "c", "c"] {
        assert_eq!(t.run(&["run", j]).0, 1);
    }
    // a's three alerts became one, which then went (oldest) when c's made it three.
    let waiting: Vec<(String, u64)> = spooled(&t)
        .iter()
        .map(|(_, v)| {
            (
                v["alert"]["job"].as_str().expect("job").to_string(),
                v["alert"]["coalesced"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        waiting,
        [("b".to_string(), 0), ("c".to_string(), 1)],
        "{}",
        t.log()
    );
    let log = t.log();
    assert!(
        log.lines().any(|l| l.contains(" alert-dropped ")
            && l.contains("job=a")
            && l.contains("alert_spool_max_per_channel = 2")
            && l.contains("dropped 3 alert(s)")),
        "{log}"
    );
    // The channel backs off as a whole: a second try comes at least 5 s after the first,
    // however many alerts wait and however many runs come.
    wait_for(|| {
        t.run(&["run", "ok"]);
        posted(&hook).len() >= 2
    });
    let tries = posted(&hook);
    assert!(
        tries[1].0.duration_since(tries[0].0) >= jiff::SignedDuration::from_secs(5),
        "{:?}",
        tries.iter().map(|t| t.0).collect::<Vec<_>>()
    );
    // The webhook comes back: the waiting alerts go out oldest first; the first says what
    // was dropped, the second how many it stands for.
    hook.set_status(200);
    wait_for(|| {
        t.run(&["run", "ok"]);
        posted(&hook).iter().filter(|p| p.1 == 200).count() >= 2
    });
    let ok: Vec<serde_json::Value> = posted(&hook)
        .into_iter()
        .filter(|p| p.1 == 200)
        .map(|p| p.2)
        .collect();
    assert_eq!(ok.len(), 2, "{ok:#?}");
    assert_eq!(ok[0]["job"], "b");
    assert_eq!(ok[0]["dropped"], 3, "{:#}", ok[0]);
    let reasons = ok[0]["dropped_reasons"].as_object().expect("reasons");
    assert!(
        reasons
            .keys()
            .any(|k| k.contains("alert_spool_max_per_channel = 2")),
        "{reasons:?}"
    );
    assert_eq!(ok[1]["job"], "c");
    assert_eq!(ok[1]["coalesced"], 1);
    assert_eq!(ok[1]["dropped"], 0, "the drop is told once");
    assert!(
        ok[1]["subject"]
            .as_str()
            .is_some_and(|s| s.ends_with(" (and 1 earlier)")),
        "{:#}",
        ok[1]
    );
    assert!(spooled(&t).is_empty());
}

#[test]
fn an_alert_that_waited_past_alert_spool_max_age_is_dropped_and_the_next_one_says_so() {
    let hook = Hook::start(500);
    let t = Table::new(
        "af-age",
        &format!(
            r#"
[alerts.chat]
type = "webhook"
url = "http://127.0.0.1:{}/hook"

[jobs.a]
schedule = "@manual"
command = ["/bin/false"]
alert = ["chat"]

[jobs.b]
schedule = "@manual"
command = ["/bin/false"]
alert = ["chat"]
"#,
            hook.port
        ),
    );
    settings(&t, "alert_spool_max_age = \"3s\"");
    assert_eq!(t.run(&["run", "a"]).0, 1);
    assert_eq!(spooled(&t).len(), 1, "{}", t.log());
    let failed_at = Instant::now();
    // The channel's next try (5 s) comes after a's alert is 3 s old.
    wait_for(|| {
        failed_at.elapsed() >= Duration::from_millis(5500)
            && next_try(&t, "chat").is_none_or(|n| n < Timestamp::now())
    });
    hook.set_status(200);
    assert_eq!(t.run(&["run", "b"]).0, 1);
    let ok: Vec<serde_json::Value> = posted(&hook)
        .into_iter()
        .filter(|p| p.1 == 200)
        .map(|p| p.2)
        .collect();
    assert_eq!(ok.len(), 1, "a's alert went out after all: {ok:#?}");
    assert_eq!(ok[0]["job"], "b");
    assert_eq!(ok[0]["dropped"], 1, "{:#}", ok[0]);
    let log = t.log();
    assert!(
        log.lines().any(|l| l.contains(" alert-dropped ")
            && l.contains("job=a")
            && l.contains("alert_spool_max_age (3s)")),
        "{log}"
    );
    assert!(spooled(&t).is_empty());
}
