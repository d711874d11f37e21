//! Alerts through real channels: a command, and a real HTTP server on 127.0.0.1.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use super::{Table, wait_for};

/// The alerts waiting in the spool (`state/spool/CHANNEL/*.json`, in flight ones too), each
/// with its channel and its JSON. Files of the flat layout of earlier versions
/// (`state/spool/*.json`) count too, so that the regression tests fail on those versions
/// for what they did, not for where they kept it.
pub(super) fn spooled(t: &Table) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(t.dir().join("state/spool")) else {
        return out;
    };
    let (channels, flat): (Vec<_>, Vec<_>) = entries.flatten().partition(|e| e.path().is_dir());
    for f in flat {
        let name = f.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json")
            && !name.starts_with('.')
            && let Ok(bytes) = std::fs::read(f.path())
        {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", f.path().display()));
            out.push((v["channel"].as_str().unwrap_or("").to_string(), v));
        }
    }
    for ch in channels {
        let channel = ch.file_name().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(ch.path())
            .expect("channel dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for p in files {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            if name.starts_with('.') || !(name.ends_with(".json") || name.ends_with(".sending")) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue; // delivered meanwhile
            };
            let v =
                serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((channel.clone(), v));
        }
    }
    out
}

/// One request a [`Hook`] got: when, what, and the status it answered.
#[derive(Clone, Debug)]
pub(super) struct Request {
    pub(super) at: jiff::Timestamp,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) body: String,
    pub(super) status: u16,
    /// Its `User-Agent` header (empty when it had none).
    pub(super) user_agent: String,
}

/// A tiny HTTP server on loopback that records every request and answers `status` (which
/// the test may change), or first the statuses given to [`Hook::answer_first`].
pub(super) struct Hook {
    pub(super) port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
    status: Arc<AtomicU16>,
    first: Arc<Mutex<VecDeque<u16>>>,
}

impl Hook {
    pub(super) fn start(status: u16) -> Hook {
        Hook::serve(TcpListener::bind("127.0.0.1:0").expect("bind"), status)
    }

    pub(super) fn start_on(port: u16, status: u16) -> Hook {
        Hook::serve(
            TcpListener::bind(("127.0.0.1", port)).expect("bind"),
            status,
        )
    }

    /// An HTTPS server on loopback with the certificate of `tls` (see `tls.rs`).
    pub(super) fn start_tls(status: u16, tls: Arc<rustls::ServerConfig>) -> Hook {
        Hook::serve_with(
            TcpListener::bind("127.0.0.1:0").expect("bind"),
            status,
            Some(tls),
        )
    }

    fn serve(l: TcpListener, status: u16) -> Hook {
        Hook::serve_with(l, status, None)
    }

    fn serve_with(l: TcpListener, status: u16, tls: Option<Arc<rustls::ServerConfig>>) -> Hook {
        let port = l.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(AtomicU16::new(status));
        let first = Arc::new(Mutex::new(VecDeque::new()));
        let (s, a, f) = (Arc::clone(&seen), Arc::clone(&answer), Arc::clone(&first));
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                match &tls {
                    None => {
                        let _ = http_exchange(conn, &s, (&a, &f));
                    }
                    Some(cfg) => {
                        let Ok(sc) = rustls::ServerConnection::new(Arc::clone(cfg)) else {
                            continue;
                        };
                        if let Some(mut stream) =
                            http_exchange(rustls::StreamOwned::new(sc, conn), &s, (&a, &f))
                        {
                            stream.conn.send_close_notify();
                            let _ = stream.flush();
                        }
                    }
                }
            }
        });
        Hook {
            port,
            seen,
            status: answer,
            first,
        }
    }

    /// Answer the next requests with these statuses, one each, then as before.
    pub(super) fn answer_first(&self, statuses: &[u16]) {
        self.first.lock().expect("lock").extend(statuses);
    }

    /// From now on, answer `status`.
    pub(super) fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub(super) fn requests(&self) -> Vec<(String, String, String)> {
        self.answered()
            .into_iter()
            .map(|r| (r.method, r.path, r.body))
            .collect()
    }

    /// Every request so far, in the order they came.
    pub(super) fn answered(&self) -> Vec<Request> {
        self.seen.lock().expect("lock").clone()
    }
}

/// One request on `conn` (plain or TLS), recorded in `seen` and answered with the first
/// queued status, else `status`; the stream back when the request was read.
fn http_exchange<S: Read + Write>(
    conn: S,
    seen: &Mutex<Vec<Request>>,
    (status, queued): (&AtomicU16, &Mutex<VecDeque<u16>>),
) -> Option<S> {
    let mut r = BufReader::new(conn);
    let mut first = String::new();
    if r.read_line(&mut first).is_err() {
        return None;
    }
    let mut len = 0usize;
    let mut user_agent = String::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap_or((&h, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => len = value.trim().parse().unwrap_or(0),
            "user-agent" => user_agent = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    let mut p = first.split_whitespace();
    let next = queued.lock().expect("lock").pop_front();
    let status = next.unwrap_or_else(|| status.load(Ordering::SeqCst));
    seen.lock().expect("lock").push(Request {
        at: jiff::Timestamp::now(),
        method: p.next().unwrap_or("").to_string(),
        path: p.next().unwrap_or("").to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
        user_agent,
    });
    let mut conn = r.into_inner();
    let _ = conn.write_all(
        format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let _ = conn.flush();
    Some(conn)
}

#[test]
fn command_channel_gets_one_alert_after_retries_then_a_recovery() {
    let t = Table::new(
        "a-command",
        r#"
[alerts.page]
type = "command"
command = "env | grep ^CRONWARDEN_ | sort > $DIR/alert-$CRONWARDEN_EVENT.env; cat > $DIR/alert-$CRONWARDEN_EVENT.body"
on = ["failure", "recovery"]

[jobs.flaky]
schedule = "@daily"
command = "echo 'disk full on /backups' >&2; test -e $DIR/fixed"
retries = 2
retry_delay = "100ms"
retry_jitter = false
alert = ["page"]
"#,
    );
    assert_eq!(t.run(&["run", "flaky"]).0, 1);
    let env =
        std::fs::read_to_string(t.dir().join("alert-failure.env")).expect("one failure alert");
    let run_id = t.history("flaky")[0]["run_id"]
        .as_str()
        .expect("id")
        .to_string();
    for want in [
        "CRONWARDEN_JOB=flaky".to_string(),
        format!("CRONWARDEN_RUN_ID={run_id}"),
        "CRONWARDEN_OUTCOME=failure".to_string(),
        "CRONWARDEN_EXIT_CODE=1".to_string(),
        "CRONWARDEN_ATTEMPTS=3".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "missing {want} in\n{env}");
    }
    assert!(
        env.lines().any(|l| l.starts_with("CRONWARDEN_OUTPUT=/")),
        "{env}"
    );
    let body = std::fs::read_to_string(t.dir().join("alert-failure.body")).expect("body");
    assert!(body.starts_with("[cronwarden] FAILED flaky on "), "{body}");
    assert!(body.contains(": exit 1 after 3 attempts"), "{body}");
    assert!(body.contains("disk full on /backups"), "{body}");
    // Exactly one: intermediate attempts do not alert.
    assert_eq!(t.log().matches(" alert-sent ").count(), 1, "{}", t.log());
    std::fs::write(t.dir().join("fixed"), "").expect("fix");
    assert_eq!(t.run(&["run", "flaky"]).0, 0);
    let env = std::fs::read_to_string(t.dir().join("alert-recovery.env")).expect("recovery alert");
    assert!(env.contains("CRONWARDEN_OUTCOME=success"), "{env}");
    // A second success is no recovery.
    std::fs::remove_file(t.dir().join("alert-recovery.env")).expect("rm");
    assert_eq!(t.run(&["run", "flaky"]).0, 0);
    assert!(!t.dir().join("alert-recovery.env").exists());
}

#[test]
fn min_interval_suppresses_and_counts_within_a_streak() {
    let table = |interval: &str| {
        format!(
            r#"
[alerts.page]
type = "command"
command = "cat >> $DIR/alerts"
min_interval = "{interval}"

[jobs.broken]
schedule = "@daily"
command = ["/bin/false"]
alert = ["page"]
"#
        )
    };
    // Three failures well within the interval (an hour: no race with a slow machine).
    let t = Table::new("a-interval", &table("1h"));
    for _ in 0..3 {
        assert_eq!(t.run(&["run", "broken"]).0, 1);
    }
    let alerts = std::fs::read_to_string(t.dir().join("alerts")).expect("alerts");
    assert_eq!(
        alerts.matches("[cronwarden] FAILED broken").count(),
        1,
        "{alerts}"
    );
    // With the interval shortened to one second, once it has passed, the next failure alerts
    // again and counts the two suppressed ones.
    t.rewrite(&table("1s"));
    let last = std::time::Instant::now();
    wait_for(|| last.elapsed() >= std::time::Duration::from_millis(1100));
    assert_eq!(t.run(&["run", "broken"]).0, 1);
    let alerts = std::fs::read_to_string(t.dir().join("alerts")).expect("alerts");
    assert_eq!(
        alerts.matches("[cronwarden] FAILED broken").count(),
        2,
        "{alerts}"
    );
    assert!(
        alerts.contains("suppressed: 2 earlier failure alert(s) within min_interval"),
        "{alerts}"
    );
}

#[test]
fn webhook_json_carries_the_facts_and_healthchecks_are_pinged() {
    let hook = Hook::start(200);
    let t = Table::new(
        "a-webhook",
        &format!(
            r#"
[alerts.chat]
type = "webhook"
url = "http://127.0.0.1:{p}/hook"

[jobs.bad]
schedule = "0 3 * * *"
command = "echo oops >&2; exit 3"
alert = ["chat"]
healthcheck_url = "http://127.0.0.1:{p}/hc/bad"

[jobs.good]
schedule = "@manual"
command = ["/bin/true"]
healthcheck_url = "http://127.0.0.1:{p}/hc/good"
"#,
            p = hook.port
        ),
    );
    assert_eq!(t.run(&["run", "bad"]).0, 1);
    assert_eq!(t.run(&["run", "good"]).0, 0);
    let reqs = hook.requests();
    let hooks: Vec<_> = reqs.iter().filter(|r| r.1 == "/hook").collect();
    assert_eq!(hooks.len(), 1, "{reqs:?}");
    let v: serde_json::Value = serde_json::from_str(&hooks[0].2).expect("JSON body");
    assert_eq!(v["event"], "failure");
    assert_eq!(v["job"], "bad");
    assert_eq!(v["run_id"], t.history("bad")[0]["run_id"]);
    assert_eq!(v["attempts"][0]["exit_code"], 3);
    assert_eq!(v["stderr_tail"], "oops");
    assert_eq!(v["schedule"], "0 3 * * *");
    // The ping API's endpoints (each with the run's ?rid=): exit 3 is `/3`, with the
    // reason and the output as its body.
    let pings: Vec<(String, String)> = reqs
        .iter()
        .filter(|r| r.1.starts_with("/hc/"))
        .map(|r| (r.0.clone(), r.1.split('?').next().unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        pings,
        [
            ("GET".to_string(), "/hc/bad/start".to_string()),
            ("POST".to_string(), "/hc/bad/3".to_string()),
            ("GET".to_string(), "/hc/good/start".to_string()),
            ("POST".to_string(), "/hc/good".to_string()),
        ]
    );
    assert!(
        reqs.iter()
            .any(|r| r.1.starts_with("/hc/bad/3?rid=") && r.2.contains("oops"))
    );
    // test-alert goes through the same channel.
    assert_eq!(t.run(&["test-alert", "chat"]).0, 0);
    assert!(
        hook.requests()
            .iter()
            .any(|r| r.1 == "/hook" && r.2.contains("\"event\":\"test\""))
    );
}

#[test]
fn an_undeliverable_alert_is_spooled_and_the_next_run_delivers_it() {
    // A port with nothing listening: the webhook fails, the alert is spooled.
    let port = super::free_port();
    let t = Table::new(
        "a-spool",
        &format!(
            r#"
[alerts.chat]
type = "webhook"
url = "http://127.0.0.1:{port}/hook"

[jobs.bad]
schedule = "@daily"
command = ["/bin/false"]
alert = ["chat"]

[jobs.other]
schedule = "@manual"
command = ["/bin/true"]
"#
        ),
    );
    assert_eq!(t.run(&["run", "bad"]).0, 1);
    assert!(t.log().contains(" alert-spooled "), "{}", t.log());
    assert_eq!(spooled(&t).len(), 1);
    // The server comes back on the same port; the next `run` (of any job) delivers it once
    // its retry time has come.
    let hook = Hook::start_on(port, 200);
    wait_for(|| {
        t.run(&["run", "other"]);
        hook.requests().iter().any(|r| r.1 == "/hook")
    });
    assert_eq!(spooled(&t).len(), 0);
    let got = hook.requests();
    let v: serde_json::Value =
        serde_json::from_str(&got.iter().find(|r| r.1 == "/hook").expect("hook").2).expect("json");
    assert_eq!(v["job"], "bad");
    assert_eq!(v["event"], "failure");
}

/// A small but real SMTP server on loopback (EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA,
/// QUIT) that keeps every message it accepts.
pub(super) struct Smtp {
    pub(super) port: u16,
    mail: Arc<Mutex<Vec<String>>>,
}

/// How a test [`Smtp`] server speaks TLS.
#[derive(Clone)]
pub(super) enum SmtpTls {
    /// Plain text only.
    Plain,
    /// Offers STARTTLS with this certificate.
    StartTls(Arc<rustls::ServerConfig>),
    /// TLS from the first byte (smtps).
    Wrapper(Arc<rustls::ServerConfig>),
}

impl Smtp {
    pub(super) fn start(port: u16) -> Smtp {
        Smtp::start_with(port, SmtpTls::Plain)
    }

    /// A server on `port` (0: any) speaking TLS as `tls` says.
    pub(super) fn start_with(port: u16, tls: SmtpTls) -> Smtp {
        let l = TcpListener::bind(("127.0.0.1", port)).expect("bind smtp");
        let port = l.local_addr().expect("addr").port();
        let mail = Arc::new(Mutex::new(Vec::new()));
        let m = Arc::clone(&mail);
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let m = Arc::clone(&m);
                let tls = tls.clone();
                std::thread::spawn(move || smtp_session(conn, tls, &m));
            }
        });
        Smtp { port, mail }
    }

    pub(super) fn messages(&self) -> Vec<String> {
        self.mail.lock().expect("lock").clone()
    }
}

/// One SMTP connection, upgraded to TLS as `tls` says.
fn smtp_session(conn: TcpStream, tls: SmtpTls, m: &Mutex<Vec<String>>) {
    let tls_stream = |cfg: Arc<rustls::ServerConfig>, conn: TcpStream| {
        rustls::ServerConnection::new(cfg)
            .ok()
            .map(|sc| rustls::StreamOwned::new(sc, conn))
    };
    match tls {
        SmtpTls::Plain => {
            smtp_dialogue(conn, true, false, m);
        }
        SmtpTls::StartTls(cfg) => {
            // After STARTTLS the client greets again; the server does not.
            if let Some(conn) = smtp_dialogue(conn, true, true, m)
                && let Some(s) = tls_stream(cfg, conn)
            {
                smtp_dialogue(s, false, false, m);
            }
        }
        SmtpTls::Wrapper(cfg) => {
            if let Some(s) = tls_stream(cfg, conn) {
                smtp_dialogue(s, true, false, m);
            }
        }
    }
}

/// The SMTP dialogue on `conn`; the connection back when the client asked for STARTTLS
/// (answered "220", for the caller to start TLS on).
fn smtp_dialogue<S: Read + Write>(
    conn: S,
    greet: bool,
    starttls: bool,
    m: &Mutex<Vec<String>>,
) -> Option<S> {
    let mut r = BufReader::new(conn);
    if greet {
        let _ = r.get_mut().write_all(b"220 test ESMTP\r\n");
    }
    let mut line = String::new();
    while r.read_line(&mut line).is_ok_and(|n| n > 0) {
        let cmd = line.trim_end().to_string();
        line.clear();
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") && starttls {
            b"250-test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
        } else if upper.starts_with("EHLO") {
            b"250-test\r\n250 AUTH PLAIN\r\n"
        } else if upper == "STARTTLS" && starttls {
            let _ = r.get_mut().write_all(b"220 go ahead\r\n");
            let _ = r.get_mut().flush();
            return Some(r.into_inner());
        } else if upper.starts_with("AUTH PLAIN") {
            // base64("\0cron\0s3cret")
            if cmd.ends_with("AGNyb24AczNjcmV0") {
                b"235 ok\r\n"
            } else {
                b"535 5.7.8 bad credentials\r\n"
            }
        } else if upper == "DATA" {
            let _ = r.get_mut().write_all(b"354 go\r\n");
            let _ = r.get_mut().flush();
            let mut msg = String::new();
            let mut l = String::new();
            while r.read_line(&mut l).is_ok_and(|n| n > 0) {
                if l == ".\r\n" {
                    break;
                }
                msg.push_str(&l);
                l.clear();
            }
            m.lock().expect("lock").push(msg);
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            let _ = r.get_mut().write_all(b"221 bye\r\n");
            let _ = r.get_mut().flush();
            break;
        } else {
            b"250 ok\r\n"
        };
        let _ = r.get_mut().write_all(reply);
        let _ = r.get_mut().flush();
    }
    None
}

/// A table whose job `backup` fails (exit 2) until `$DIR/fixed` exists, alerting by mail
/// through the SMTP server on `port`.
pub(super) fn mail_table(tag: &str, port: u16, password: &str) -> Table {
    let t = Table::new(
        tag,
        &format!(
            r#"
[alerts.ops]
type = "email"
smtp_url = "smtp://127.0.0.1:{port}"
from = "cronwarden@example.com"
to = ["ops@example.com"]
username = "cron"
password_file = "$DIR/smtp.pass"
on = ["failure", "recovery"]

[jobs.backup]
schedule = "30 2 * * *"
command = "test -e $DIR/fixed || {{ echo 'pg_dump: connection refused' >&2; exit 2; }}"
retries = 1
retry_delay = "100ms"
retry_jitter = false
alert = ["ops"]
"#
        ),
    );
    let pass = t.dir().join("smtp.pass");
    std::fs::write(&pass, format!("{password}\n")).expect("password file");
    // Only its owner may read a password file.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    t
}

#[test]
fn one_email_for_a_failed_run_naming_the_job_with_the_stderr_tail() {
    let smtp = Smtp::start(0);
    let t = mail_table("a-email", smtp.port, "s3cret");
    assert_eq!(t.run(&["run", "backup"]).0, 1);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert!(m.contains("Subject: [cronwarden] FAILED backup on "), "{m}");
    assert!(m.contains(": exit 2 after 2 attempts"), "{m}");
    assert!(m.contains("To: ops@example.com"), "{m}");
    assert!(m.contains("pg_dump: connection refused"), "{m}");
    assert!(m.contains("schedule:   30 2 * * *"), "{m}");
    // The password never reaches the log.
    assert!(!t.log().contains("s3cret"));
    // Fixed: the next success sends the recovery mail.
    std::fs::write(t.dir().join("fixed"), "").expect("fix");
    assert_eq!(t.run(&["run", "backup"]).0, 0);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[1].contains("Subject: [cronwarden] RECOVERED backup on "),
        "{}",
        msgs[1]
    );
}

#[test]
fn a_wrong_smtp_password_is_a_clear_error_and_not_retried() {
    let smtp = Smtp::start(0);
    let t = mail_table("a-badpass", smtp.port, "wrong");
    assert_eq!(t.run(&["run", "backup"]).0, 1);
    let log = t.log();
    assert!(
        log.contains(" alert-failed ") && log.contains("authentication failed"),
        "{log}"
    );
    assert!(log.contains("(not retried)"), "{log}");
    assert!(!log.contains("wrong"), "the password leaked into the log");
    assert!(smtp.messages().is_empty());
    assert!(spooled(&t).is_empty(), "{:?}", spooled(&t));
}

#[test]
fn smtp_down_at_failure_time_is_delivered_by_the_daemon_after_a_restart() {
    let port = super::free_port();
    let t = mail_table("a-down", port, "s3cret");
    assert_eq!(t.run(&["run", "backup"]).0, 1);
    assert!(t.log().contains(" alert-spooled "), "{}", t.log());
    // A daemon comes and goes while the mail server is still down: nothing is lost.
    let d = super::daemon::Daemon::start(&t);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    assert_eq!(spooled(&t).len(), 1);
    // The mail server is back; the next daemon delivers the spooled alert.
    let smtp = Smtp::start(port);
    let _d = super::daemon::Daemon::start(&t);
    wait_for(|| !smtp.messages().is_empty());
    assert!(smtp.messages()[0].contains("Subject: [cronwarden] FAILED backup on "));
    wait_for(|| spooled(&t).is_empty());
}

#[test]
fn a_broken_channel_is_reported_through_the_channels_that_work() {
    let port = super::free_port();
    let t = Table::new(
        "a-broken",
        &format!(
            r#"
[alerts.ops]
type = "email"
smtp_url = "smtp://127.0.0.1:{port}"
from = "cronwarden@example.com"
to = ["ops@example.com"]

[alerts.page]
type = "command"
command = "cat >> $DIR/paged"

[jobs.backup]
schedule = "@daily"
command = ["/bin/false"]
alert = ["ops", "page"]
"#
        ),
    );
    assert_eq!(t.run(&["run", "backup"]).0, 1);
    let paged = std::fs::read_to_string(t.dir().join("paged")).expect("paged");
    assert!(paged.contains("[cronwarden] FAILED backup"), "{paged}");
    assert!(paged.contains("ALERT CHANNEL BROKEN"), "{paged}");
    assert!(
        paged.contains(&format!("[alerts.ops]: smtp://127.0.0.1:{port}: ")),
        "{paged}"
    );
    assert!(t.log().contains(" alert-channel-broken "), "{}", t.log());
}

#[test]
fn retry_alerts_come_for_each_retried_attempt_only_when_asked() {
    let t = Table::new(
        "a-retry",
        r#"
[alerts.noisy]
type = "command"
command = "echo $CRONWARDEN_EVENT $CRONWARDEN_ATTEMPTS >> $DIR/events"
on = ["retry", "failure"]

[jobs.flaky]
schedule = "@daily"
command = ["/bin/false"]
retries = 2
retry_delay = "50ms"
retry_jitter = false
alert = ["noisy"]
"#,
    );
    assert_eq!(t.run(&["run", "flaky"]).0, 1);
    let events = std::fs::read_to_string(t.dir().join("events")).expect("events");
    assert_eq!(events, "retry 1\nretry 2\nfailure 3\n");
}
