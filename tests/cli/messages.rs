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
