//! What the receiving end sees: the headers of alert mails, the escaping of Slack messages,
//! the healthchecks.io ping API (paths, run ids, bodies, retries) and the User-Agent, through
//! the real loopback SMTP and HTTP servers of `alert`.

use std::time::Duration;

use jiff::Timestamp;

use super::alert::{Hook, Request, Smtp, mail_table, spooled};
use super::{Table, free_port, ts, wait_for};

const UA: &str = concat!("cronwarden/", env!("CARGO_PKG_VERSION"));

/// The value of a mail's header (the header part only; folded lines joined).
fn header(mail: &str, name: &str) -> Option<String> {
    let head = mail.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    unfolded
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
}

#[test]
fn alert_mail_headers_name_the_job_and_date_the_event_even_when_delivered_later() {
    // The mail server is down when the job fails: the alert waits in the spool.
    let port = free_port();
    let t = mail_table("a-headers", port, "s3cret");
    assert_eq!(t.run(&["run", "backup"]).0, 1);
    assert_eq!(spooled(&t).len(), 1, "{}", t.log());
    let ended = ts(&t.history("backup")[0]["ended"]);
    // It comes back well after the failure; the next run of the job (fixed) delivers the
    // spooled failure, then its own recovery.
    wait_for(|| Timestamp::now() >= ended + Duration::from_secs(3));
    let back = Timestamp::now();
    let smtp = Smtp::start(port);
    std::fs::write(t.dir().join("fixed"), "").expect("fix");
    wait_for(|| {
        t.run(&["run", "backup"]);
        smtp.messages().len() >= 2
    });
    let msgs = smtp.messages();
    let (failure, recovery) = (&msgs[0], &msgs[1]);
    let host = header(failure, "Subject")
        .and_then(|s| Some(s.split(" on ").nth(1)?.split(':').next()?.to_string()))
        .expect("the subject names the host");
    let mut ids = Vec::new();
    for (m, event) in [(failure, "failure"), (recovery, "recovery")] {
        assert_eq!(header(m, "MIME-Version").as_deref(), Some("1.0"), "{m}");
        assert_eq!(
            header(m, "Auto-Submitted").as_deref(),
            Some("auto-generated"),
            "{m}"
        );
        assert_eq!(header(m, "X-Cronwarden-Job").as_deref(), Some("backup"));
        assert_eq!(header(m, "X-Cronwarden-Event").as_deref(), Some(event));
        let id = header(m, "Message-ID").expect("a Message-ID");
        assert!(
            id.starts_with('<') && id.ends_with(&format!("@{host}>")),
            "{id}"
        );
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "a Message-ID is unique per alert");
    // The failure's Date is when the job failed, not when the mail went out.
    let date = header(failure, "Date").expect("a Date");
    let date = jiff::fmt::rfc2822::parse(&date)
        .expect("an RFC 2822 date")
        .timestamp();
    assert!(
        date >= ended - Duration::from_secs(1) && date <= ended + Duration::from_secs(1),
        "Date {date}, the run ended {ended}"
    );
    assert!(
        date < back - Duration::from_secs(2),
        "Date {date} is the delivery time"
    );
}

/// The requests `hook` got on paths starting with `prefix`.
fn on(hook: &Hook, prefix: &str) -> Vec<Request> {
    hook.answered()
        .into_iter()
        .filter(|r| r.path.starts_with(prefix))
        .collect()
}

#[test]
fn slack_alerts_escape_the_jobs_output_inside_a_code_block() {
    let hook = Hook::start(200);
    let t = Table::new(
        "a-slack",
        &format!(
            r#"
[alerts.chat]
type = "webhook"
format = "slack"
url = "http://127.0.0.1:{p}/slack"

[jobs.evil]
schedule = "@daily"
command = "echo '<!channel> & <https://evil.example|click here>'; exit 1"
alert = ["chat"]
"#,
            p = hook.port
        ),
    );
    assert_eq!(t.run(&["run", "evil"]).0, 1);
    let got = on(&hook, "/slack");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].user_agent, UA);
    let v: serde_json::Value = serde_json::from_str(&got[0].body).expect("JSON");
    let text = v["text"].as_str().expect("text");
    assert!(
        text.contains(
            "*last lines of stdout*\n```\n&lt;!channel&gt; &amp; \
             &lt;https://evil.example|click here&gt;\n```"
        ),
        "{text}"
    );
    assert!(
        !text.contains("<!channel>") && !text.contains("<https"),
        "{text}"
    );
}

/// A table whose jobs ping `/hc/JOB` on `port`.
fn ping_table(tag: &str, port: u16) -> Table {
    Table::new(
        tag,
        &format!(
            r#"
[jobs.ok]
schedule = "@manual"
command = "echo all good"
healthcheck_url = "http://127.0.0.1:{port}/hc/ok"

[jobs.two]
schedule = "@manual"
command = "echo 'disk full' >&2; exit 2"
healthcheck_url = "http://127.0.0.1:{port}/hc/two"

[jobs.slow]
schedule = "@manual"
command = "echo started; sleep 30"
timeout = "1s"
healthcheck_url = "http://127.0.0.1:{port}/hc/slow"

[jobs.warn]
schedule = "@manual"
command = "echo careful; exit 3"
warning_codes = [3]
healthcheck_url = "http://127.0.0.1:{port}/hc/warn"
"#
        ),
    )
}

/// The rid of a ping's path (`...?rid=UUID`), checked to be a UUID.
fn rid(r: &Request) -> String {
    let rid = r.path.split_once("?rid=").map(|(_, id)| id.to_string());
    let rid = rid.unwrap_or_else(|| panic!("no rid in {}", r.path));
    let parts: Vec<usize> = rid.split('-').map(str::len).collect();
    assert_eq!(parts, [8, 4, 4, 4, 12], "{rid}");
    rid
}

#[test]
fn healthcheck_pings_follow_the_ping_api_with_run_ids_and_bodies() {
    let hook = Hook::start(200);
    let t = ping_table("a-hcapi", hook.port);
    let cases = [
        // (job, exit of `run`, end path, what its body holds)
        ("ok", 0, "/hc/ok?rid=", "all good\n"),
        ("two", 1, "/hc/two/2?rid=", "exit 2\n\ndisk full\n"),
        ("slow", 1, "/hc/slow/fail?rid=", "timed out after 1s\n"),
        ("warn", 0, "/hc/warn?rid=", "careful\n"),
    ];
    for (job, code, end, body) in cases {
        assert_eq!(t.run(&["run", job]).0, code, "{job}: {}", t.log());
        let got = on(&hook, &format!("/hc/{job}"));
        assert_eq!(got.len(), 2, "{got:?}");
        let (start, done) = (&got[0], &got[1]);
        assert_eq!(start.method, "GET");
        assert!(
            start.path.starts_with(&format!("/hc/{job}/start?rid=")),
            "{start:?}"
        );
        assert_eq!(done.method, "POST");
        assert!(done.path.starts_with(end), "{job}: {done:?}");
        assert_eq!(rid(start), rid(done), "one run, one rid");
        assert!(done.body.contains(body), "{job}: {:?}", done.body);
        assert!(got.iter().all(|r| r.user_agent == UA), "{got:?}");
    }
    assert!(on(&hook, "/hc/slow/fail")[0].body.contains("started\n"));
    // Each run has its own rid.
    assert_eq!(t.run(&["run", "ok"]).0, 0);
    let oks = on(&hook, "/hc/ok/start");
    assert_ne!(rid(&oks[0]), rid(&oks[1]));
}

#[test]
fn a_healthcheck_ping_that_fails_is_tried_again_and_arrives() {
    // An HTTP 500 first: the second try goes through.
    let hook = Hook::start(200);
    hook.answer_first(&[500]);
    let t = ping_table("a-hcretry", hook.port);
    assert_eq!(t.run(&["run", "ok"]).0, 0);
    let got = on(&hook, "/hc/ok");
    let statuses: Vec<(String, u16)> = got
        .iter()
        .map(|r| (r.path.split('?').next().unwrap_or("").to_string(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("/hc/ok/start".to_string(), 500),
            ("/hc/ok/start".to_string(), 200),
            ("/hc/ok".to_string(), 200),
        ]
    );
    assert!(got[1].at.duration_since(got[0].at) >= jiff::SignedDuration::from_millis(900));
    assert_eq!(rid(&got[0]), rid(&got[1]));
    let log = t.log();
    assert!(
        log.contains("(start ping): HTTP 500; trying again in 1s"),
        "{log}"
    );
    assert!(!log.contains("gave up"), "{log}");

    // Nothing listens at first: the connection is refused, and the ping arrives once the
    // server is up.
    let port = free_port();
    let t = ping_table("a-hcrefused", port);
    let mut child = t.spawn(&["run", "ok"]);
    wait_for(|| t.log().contains("(start ping): ") && t.log().contains("trying again in"));
    let hook = Hook::start_on(port, 200);
    let status = child.wait().expect("run ends");
    assert_eq!(status.code(), Some(0), "{}", t.log());
    let got = on(&hook, "/hc/ok");
    assert!(got[0].path.starts_with("/hc/ok/start?rid="), "{got:?}");
    assert!(
        got.iter().any(|r| r.path.starts_with("/hc/ok?rid=")),
        "{got:?}"
    );

    // A ping that never goes through is logged, and the job still succeeds.
    let t = ping_table("a-hcgiveup", free_port());
    assert_eq!(t.run(&["run", "ok"]).0, 0);
    let log = t.log();
    assert!(log.contains("(start ping): "), "{log}");
    assert!(log.contains("(success ping): "), "{log}");
    assert_eq!(log.matches("; gave up after 3 tries").count(), 2, "{log}");
    // The job did not wait for the start ping: it ran before its retries were over.
    let gave_up = log
        .lines()
        .find(|l| l.contains("(start ping): ") && l.contains("gave up"))
        .and_then(|l| l.split_whitespace().next())
        .map(|w| w.parse::<jiff::Timestamp>().expect("log timestamp"))
        .expect("the start ping's last line");
    let started = super::ts(&t.history("ok")[0]["attempts"][0]["started"]);
    assert!(started < gave_up, "{started} vs {gave_up}: {log}");
}

#[test]
fn sendmail_gets_the_same_headers_and_its_errors_are_one_named_line() {
    let t = Table::new(
        "a-sendmail",
        r#"
[alerts.local]
type = "email"
smtp_url = "sendmail:$DIR/sendmail"
from = "cron@example.com"
to = ["ops@example.com"]

[alerts.broken]
type = "email"
smtp_url = "sendmail:$DIR/broken-sendmail"
from = "cron@example.com"
to = ["ops@example.com"]

[alerts.missing]
type = "email"
smtp_url = "sendmail:$DIR/no-such-sendmail"
from = "cron@example.com"
to = ["ops@example.com"]

[jobs.nightly]
schedule = "@daily"
command = ["/bin/false"]
alert = ["local", "broken", "missing"]
"#,
    );
    let d = t.dir().display().to_string();
    let script = |name: &str, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        let p = t.dir.write(name, text);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    script("sendmail", &format!("#!/bin/sh\ncat > {d}/mail.txt\n"));
    script(
        "broken-sendmail",
        "#!/bin/sh\ncat >/dev/null\necho 'queue dir missing' >&2\necho 'see syslog' >&2\nexit 75\n",
    );
    assert_eq!(t.run(&["run", "nightly"]).0, 1);
    let mail = std::fs::read_to_string(t.dir().join("mail.txt")).expect("sendmail got it");
    assert_eq!(header(&mail, "MIME-Version").as_deref(), Some("1.0"));
    assert_eq!(
        header(&mail, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        header(&mail, "X-Cronwarden-Job").as_deref(),
        Some("nightly")
    );
    assert!(
        header(&mail, "Message-ID").is_some_and(|id| id.contains('@')),
        "{mail}"
    );
    let log = t.log();
    assert!(
        log.contains(&format!("sendmail: {d}/no-such-sendmail not found")),
        "{log}"
    );
    let broken = log
        .lines()
        .find(|l| l.contains("broken-sendmail:"))
        .unwrap_or_else(|| panic!("no line for the broken sendmail in\n{log}"));
    assert!(broken.contains("queue dir missing; see syslog"), "{broken}");
}
