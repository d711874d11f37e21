//! The alert events of issue 18 through real channels (the loopback SMTP and HTTP servers of
//! `alert.rs`): one `skipped` alert per skip streak naming the holder, and its recovery (under
//! `run` and under the daemon); a channel with `after_failures` hears only the Nth failure of
//! a streak, then its recovery.

use super::alert::{Hook, Smtp};
use super::daemon::Daemon;
use super::{Table, wait_for};

/// A message as a person reads it: header lines unfolded, a quoted-printable body decoded.
fn readable(msg: &str) -> String {
    let (head, body) = msg.split_once("\r\n\r\n").unwrap_or((msg, ""));
    let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let body = if head
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        decode_qp(&body.replace("=\r\n", ""))
    } else {
        body.to_string()
    };
    format!("{head}\r\n\r\n{}", body.replace("\r\n", "\n"))
}

fn decode_qp(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'=', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON bodies the hook got at `path`, in order.
fn posted(hook: &Hook, path: &str) -> Vec<serde_json::Value> {
    hook.requests()
        .into_iter()
        .filter(|r| r.1 == path)
        .map(|r| serde_json::from_str(&r.2).expect("a JSON body"))
        .collect()
}

#[test]
fn a_held_lock_gives_one_skipped_alert_per_streak_and_a_recovery_when_a_run_goes_through() {
    let smtp = Smtp::start(0);
    let hook = Hook::start(200);
    let t = Table::new(
        "ae-skipped",
        &format!(
            r#"
[alerts.ops]
type = "email"
smtp_url = "smtp://127.0.0.1:{smtp}"
from = "cronwarden@example.com"
to = ["ops@example.com"]

[alerts.chat]
type = "webhook"
url = "http://127.0.0.1:{hook}/hook"
on = ["skipped", "recovery"]

[jobs.hold]
schedule = "@daily"
command = "while [ ! -e $DIR/release ]; do sleep 0.05; done"
overlap = "skip"
alert = ["ops", "chat"]
"#,
            smtp = smtp.port,
            hook = hook.port
        ),
    );
    let mut first = t.spawn(&["run", "hold"]);
    t.wait_running("hold");
    // Three runs skipped while the first holds the lock; each `run` delivers what it
    // queued before it exits.
    for _ in 0..3 {
        assert_eq!(t.run(&["run", "hold"]).0, 75);
    }
    let got = posted(&hook, "/hook");
    assert_eq!(got.len(), 1, "{got:#?}");
    let v = &got[0];
    assert_eq!(v["event"], "skipped");
    assert_eq!(v["job"], "hold");
    assert_eq!(v["outcome"], "skipped");
    assert_eq!(v["holder"]["pid"], first.id());
    let holder_run = v["holder"]["run_id"].as_str().expect("the holder's run id");
    let command = v["holder"]["command"].as_str().expect("its command");
    assert!(command.contains(" run hold"), "{command}");
    assert!(v["holder"]["age_seconds"].is_u64(), "{v:#}");
    assert!(v["holder"]["since"].is_string(), "{v:#}");
    let subject = v["subject"].as_str().expect("subject");
    assert!(
        subject.starts_with("[cronwarden] SKIPPED hold on ")
            && subject.contains(&format!(
                ": another run holds it (run {holder_run}, pid {}, for ",
                first.id()
            )),
        "{subject}"
    );
    // The default `on` (failure, skipped, stale, missed) mails it too, once, with the facts.
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:?}");
    let m = readable(&mail[0]);
    assert!(m.contains("Subject: [cronwarden] SKIPPED hold on "), "{m}");
    assert!(
        m.contains(&format!(
            "held by:    run {holder_run}, pid {} since ",
            first.id()
        )),
        "{m}"
    );
    assert!(m.contains(&format!("its command: {command}\n")), "{m}");
    // The first run ends: the streak is over, a recovery goes to the channel that asked.
    std::fs::write(t.dir().join("release"), "").expect("release");
    assert!(first.wait().expect("wait").success());
    let got = posted(&hook, "/hook");
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[1]["event"], "recovery");
    assert_eq!(got[1]["run_id"], holder_run);
    assert_eq!(
        got[1]["subject"]
            .as_str()
            .and_then(|s| s.split_once(": "))
            .map(|(_, why)| why),
        Some("ran again after 3 skipped runs")
    );
    assert_eq!(got[1]["ended"][0]["streak"], "skipped");
    assert_eq!(got[1]["ended"][0]["runs"], 3);
    // No `recovery` in the mail channel's `on`.
    assert_eq!(smtp.messages().len(), 1);
    // History: one record for the whole skip streak, then the run.
    assert_eq!(t.outcomes("hold"), ["skipped", "success"]);
}

#[test]
fn the_daemon_tells_a_skip_streak_of_its_own_run_once_then_its_end() {
    let hook = Hook::start(200);
    let t = Table::new(
        "ae-daemon-skip",
        &format!(
            r#"
[alerts.chat]
type = "webhook"
url = "http://127.0.0.1:{hook}/hook"
on = ["skipped", "recovery"]

[jobs.slow]
schedule = "* * * * * *"
command = "while [ ! -e $DIR/release ]; do sleep 0.05; done"
overlap = "skip"
alert = ["chat"]
"#,
            hook = hook.port
        ),
    );
    let d = Daemon::start(&t);
    // Its first run holds the job while three ticks are skipped.
    let skipped = |t: &Table| {
        t.history("slow")
            .iter()
            .filter(|r| r["outcome"] == "skipped")
            .map(|r| r["skips"]["count"].as_u64().unwrap_or(1))
            .sum::<u64>()
    };
    wait_for(|| skipped(&t) >= 3 && !posted(&hook, "/hook").is_empty());
    let got = posted(&hook, "/hook");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["event"], "skipped");
    let holder = &got[0]["holder"];
    assert_eq!(holder["pid"], d.pid(), "{holder:#}");
    let running = t.dir().join("run/slow.lock");
    let line = std::fs::read_to_string(running).expect("lock file");
    let run_id = holder["run_id"].as_str().expect("the holder's run id");
    assert!(
        line.contains(&format!("run_id={run_id}")),
        "{line} vs {holder:#}"
    );
    assert!(
        holder["command"]
            .as_str()
            .is_some_and(|c| c.contains(" daemon")),
        "{holder:#}"
    );
    assert!(
        holder["job_command"]
            .as_str()
            .is_some_and(|c| c.contains("while [ ! -e ")),
        "{holder:#}"
    );
    // The run ends: the next tick goes through, and the streak's end is told once.
    let n = skipped(&t);
    std::fs::write(t.dir().join("release"), "").expect("release");
    wait_for(|| posted(&hook, "/hook").len() >= 2);
    let got = posted(&hook, "/hook");
    assert_eq!(got[1]["event"], "recovery", "{got:#?}");
    let ended = &got[1]["ended"][0];
    assert_eq!(ended["streak"], "skipped");
    assert!(ended["runs"].as_u64().is_some_and(|r| r >= n), "{ended:#}");
    drop(d);
}

#[test]
fn after_failures_3_mails_only_the_third_failure_then_the_recovery() {
    let smtp = Smtp::start(0);
    let hook = Hook::start(200);
    let t = Table::new(
        "ae-escalate",
        &format!(
            r#"
[alerts.oncall]
type = "email"
smtp_url = "smtp://127.0.0.1:{smtp}"
from = "cronwarden@example.com"
to = ["oncall@example.com"]
on = ["failure", "recovery"]
after_failures = 3

[alerts.chat]
type = "webhook"
url = "http://127.0.0.1:{hook}/hook"
on = ["failure", "recovery"]

[jobs.backup]
schedule = "@daily"
command = "test -e $DIR/fixed || {{ echo 'pg_dump: connection refused' >&2; exit 2; }}"
alert = ["oncall", "chat"]
"#,
            smtp = smtp.port,
            hook = hook.port
        ),
    );
    for n in 1..=2 {
        assert_eq!(t.run(&["run", "backup"]).0, 1);
        assert!(smtp.messages().is_empty(), "mailed at failure {n}");
        assert_eq!(posted(&hook, "/hook").len(), n, "the chat hears of each");
    }
    assert_eq!(t.run(&["run", "backup"]).0, 1);
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:?}");
    let m = readable(&mail[0]);
    assert!(m.contains("Subject: [cronwarden] FAILED backup on "), "{m}");
    assert!(m.contains("pg_dump: connection refused"), "{m}");
    let third = t.history("backup")[2]["run_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(m.contains(&format!("run id:     {third}\n")), "{m}");
    // Fixed: the next success ends the streak; both channels heard of it.
    std::fs::write(t.dir().join("fixed"), "").expect("fix");
    assert_eq!(t.run(&["run", "backup"]).0, 0);
    let mail = smtp.messages();
    assert_eq!(mail.len(), 2, "{mail:?}");
    let m = readable(&mail[1]);
    assert!(
        m.contains("Subject: [cronwarden] RECOVERED backup on ")
            && m.contains(": succeeded after 3 failures"),
        "{m}"
    );
    let first = t.history("backup")[0]["run_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(
        m.contains(&format!(
            "ended:      succeeded after 3 failures (since run {first})\n"
        )),
        "{m}"
    );
    let chat = posted(&hook, "/hook");
    let events: Vec<&str> = chat.iter().filter_map(|v| v["event"].as_str()).collect();
    assert_eq!(events, ["failure", "failure", "failure", "recovery"]);
    // Two failures, then a success: the mail channel heard of nothing, so no recovery.
    std::fs::remove_file(t.dir().join("fixed")).expect("break");
    assert_eq!(t.run(&["run", "backup"]).0, 1);
    assert_eq!(t.run(&["run", "backup"]).0, 1);
    std::fs::write(t.dir().join("fixed"), "").expect("fix");
    assert_eq!(t.run(&["run", "backup"]).0, 0);
    assert_eq!(smtp.messages().len(), 2, "{:?}", smtp.messages());
    assert_eq!(posted(&hook, "/hook").len(), 7);
}

#[test]
fn warn_after_alerts_slow_while_the_run_goes_on_and_a_warning_exit_only_the_channel_that_asked() {
    let t = Table::new(
        "ev-slow",
        r#"
[alerts.slowness]
type = "command"
command = "cat >> $DIR/slow-alerts"
on = ["slow"]

[alerts.warnings]
type = "command"
command = "cat >> $DIR/warning-alerts"
on = ["warning"]

[alerts.failures]
type = "command"
command = "cat >> $DIR/failure-alerts"

[jobs.long]
schedule = "@manual"
warn_after = "1s"
command = "until [ -e $DIR/slow-alerts ]; do sleep 0.05; done; echo done"
alert = ["slowness", "warnings", "failures"]

[jobs.partly]
schedule = "@manual"
warning_codes = [24]
command = "exit 24"
alert = ["slowness", "warnings", "failures"]
"#,
    );
    // The run ends only once the slow alert arrived: it was sent while the run went on.
    let (code, _, err) = t.run(&["run", "long"]);
    assert_eq!(code, 0, "{err}");
    let slow = std::fs::read_to_string(t.dir().join("slow-alerts")).expect("slow alert");
    assert!(slow.contains("SLOW long on "), "{slow}");
    assert_eq!(t.history("long")[0]["outcome"], "success");
    let (code, _, err) = t.run(&["run", "partly"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(t.history("partly")[0]["outcome"], "warning");
    let warning = || std::fs::read_to_string(t.dir().join("warning-alerts")).unwrap_or_default();
    wait_for(|| warning().contains("WARNING partly on "));
    // Only the channel that asked: the others have nothing of `partly`.
    for other in ["slow-alerts", "failure-alerts"] {
        let text = std::fs::read_to_string(t.dir().join(other)).unwrap_or_default();
        assert!(!text.contains("partly"), "{other}: {text}");
    }
}
