//! trigger, pause and resume through a real daemon's control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use super::daemon::Daemon;
use super::{Table, wait_for};

fn table(tag: &str) -> Table {
    Table::new(
        tag,
        r#"
[jobs.ok]
schedule = "@manual"
command = "echo mode=$CRONWARDEN_PARAM_mode >> $DIR/ok"
params = { mode = "quick" }

[jobs.bad]
schedule = "@manual"
command = ["/bin/false"]

[jobs.tick]
schedule = "* * * * * *"
command = ["/bin/true"]
"#,
    )
}

#[test]
fn trigger_runs_now_and_wait_returns_the_outcome() {
    let t = table("c-trigger");
    let _d = Daemon::start(&t);
    let (code, out, err) = t.run(&["trigger", "ok", "--param", "mode=full"]);
    assert_eq!(code, 0, "{err}");
    let run_id = out.trim().to_string();
    wait_for(|| t.history("ok").len() == 1);
    let rec = &t.history("ok")[0];
    assert_eq!(rec["run_id"], run_id.as_str());
    assert_eq!(rec["trigger"], "trigger");
    assert_eq!(
        std::fs::read_to_string(t.dir().join("ok")).expect("ran"),
        "mode=full\n"
    );

    let (code, out, _) = t.run(&["trigger", "bad", "--wait"]);
    assert_eq!(code, 1);
    assert!(out.trim().ends_with(" failure"), "{out}");
    let (code, out, _) = t.run(&["trigger", "ok", "--wait"]);
    assert_eq!(code, 0);
    assert!(out.trim().ends_with(" success"), "{out}");

    let (code, _, err) = t.run(&["trigger", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown job \"nope\""), "{err}");
    let (code, _, err) = t.run(&["trigger", "ok", "--param", "x=1"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn without_a_daemon_trigger_exits_69() {
    // (pause and resume then edit the pause files: messages.rs.)
    let t = table("c-none");
    let (code, _, err) = t.run(&["trigger", "ok"]);
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("no daemon is running"), "{err}");
}

#[test]
fn pause_stops_a_job_across_a_restart_and_resume_restarts_it() {
    let t = table("c-pause");
    let d = Daemon::start(&t);
    wait_for(|| !t.history("tick").is_empty());
    let (code, _, err) = t.run(&["pause", "tick"]);
    assert_eq!(code, 0, "{err}");
    wait_for(|| t.log().contains(" paused job=tick"));
    let (_, list, _) = t.run(&["list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("tick ") && l.ends_with(" yes")),
        "{list}"
    );
    // Restarted, the job stays paused.
    drop(d);
    let runs = t.history("tick").len();
    let d = Daemon::start(&t);
    let skips = t.log().matches(" paused job=tick").count();
    wait_for(|| t.log().matches(" paused job=tick").count() >= skips + 2);
    assert_eq!(t.history("tick").len(), runs, "a paused job ran");
    let (code, _, _) = t.run(&["resume", "tick"]);
    assert_eq!(code, 0);
    wait_for(|| t.history("tick").len() > runs);
    let (_, status, _) = t.run(&["status", "tick", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).expect("json");
    assert_eq!(v[0]["paused"], false);
    drop(d);
}

/// The daemon hands a run to its thread a little before its instant (0.1 s); a pause that
/// comes in between still holds for that instant: no run of the job starts at an instant
/// after the pause was answered.
#[test]
fn a_pause_just_before_an_instant_holds_for_that_instant() {
    use jiff::Timestamp;
    let t = table("c-pause-late");
    let _d = Daemon::start(&t);
    wait_for(|| !t.history("tick").is_empty());
    // 60 ms before a whole second: after that second's run was handed over, when the machine
    // keeps up (a slower pause only makes the check looser, never wrong).
    let now = Timestamp::now();
    let into = std::time::Duration::from_nanos(now.subsec_nanosecond().unsigned_abs().into());
    let to_next = std::time::Duration::from_secs(1) - into;
    let wait = to_next
        .checked_sub(std::time::Duration::from_millis(60))
        .unwrap_or(to_next + std::time::Duration::from_millis(940));
    let target = Timestamp::now() + wait + std::time::Duration::from_millis(60);
    let target = Timestamp::from_second(target.as_second()).expect("instant");
    std::thread::sleep(wait);
    let (code, _, err) = t.run(&["pause", "tick"]);
    let answered = Timestamp::now();
    assert_eq!(code, 0, "{err}");
    // Two later ticks turned down when they came due (so the one after the pause is over).
    wait_for(|| t.log().matches(" paused job=tick").count() >= 2);
    let after: Vec<serde_json::Value> = t
        .history("tick")
        .into_iter()
        .filter(|r| super::ts(&r["scheduled"]) > answered)
        .collect();
    for r in &after {
        assert_eq!(
            r["outcome"], "skipped",
            "a run started after the pause: {r}"
        );
        assert!(
            r["reason"]
                .as_str()
                .is_some_and(|m| m.contains("paused after this run was handed over")),
            "{r}"
        );
    }
    // The second aimed at, when the pause came before it: turned down one way or the other.
    if answered < target {
        let skipped = after.iter().any(|r| super::ts(&r["scheduled"]) == target);
        let logged = t
            .log()
            .contains(&format!(" paused job=tick scheduled={target}"));
        assert!(
            skipped || logged,
            "{target}: neither skipped nor paused\n{}",
            t.log()
        );
    }
}

#[test]
fn garbage_and_stuck_clients_do_not_hurt_the_daemon() {
    use std::os::unix::fs::PermissionsExt;
    let t = table("c-garbage");
    let _d = Daemon::start(&t);
    let sock = t.dir().join("run/cronwarden.sock");
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may talk to the daemon");
    // A client that connects and says nothing.
    let _stuck = UnixStream::connect(&sock).expect("connect");
    for garbage in [
        &b"\x00\xff not json\n"[..],
        b"{\"cmd\":\"explode\",\"job\":\"ok\"}\n",
        b"[1,2,3]\n",
    ] {
        let mut c = UnixStream::connect(&sock).expect("connect");
        c.write_all(garbage).expect("write");
        let mut reply = String::new();
        BufReader::new(&c).read_line(&mut reply).expect("reply");
        let v: serde_json::Value = serde_json::from_str(&reply).expect("a JSON reply");
        assert_eq!(v["ok"], false, "{reply}");
        assert!(v["error"].is_string());
    }
    // Still serving, while the stuck client is still connected.
    let (code, _, err) = t.run(&["trigger", "ok", "--wait"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn metrics_are_prometheus_text_with_per_job_series() {
    use std::io::Read;
    // A free loopback port (released just before the daemon binds it).
    let port = super::free_port();
    let t = table("c-metrics");
    let text = std::fs::read_to_string(&t.path).expect("table");
    std::fs::write(
        &t.path,
        text.replace(
            "[settings]\n",
            &format!("[settings]\nmetrics_listen = \"127.0.0.1:{port}\"\n"),
        ) + "\n[jobs.slow]\nschedule = \"@manual\"\ncommand = [\"/bin/sleep\", \"20\"]\n",
    )
    .expect("write");
    let _d = Daemon::start(&t);
    let get = |req: &str| -> String {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        c.write_all(format!("{req} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .expect("send");
        let mut s = String::new();
        c.read_to_string(&mut s).expect("read");
        s
    };
    let body = |resp: String| resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    // Before any run: every job's counters and outcomes are there, at 0.
    let first = body(get("GET /metrics"));
    for want in [
        "cronwarden_runs_total{cronjob=\"bad\",outcome=\"failure\"} 0",
        "cronwarden_runs_total{cronjob=\"ok\",outcome=\"success\"} 0",
        "cronwarden_attempts_total{cronjob=\"ok\"} 0",
        "cronwarden_running{cronjob=\"slow\"} 0",
    ] {
        assert!(
            first.lines().any(|l| l == want),
            "missing {want} in\n{first}"
        );
    }
    // A run in progress is seen.
    assert_eq!(t.run(&["trigger", "slow"]).0, 0);
    wait_for(|| {
        body(get("GET /metrics"))
            .lines()
            .any(|l| l == "cronwarden_running{cronjob=\"slow\"} 1")
    });
    assert_eq!(t.run(&["trigger", "ok", "--wait"]).0, 0);
    assert_eq!(t.run(&["trigger", "ok", "--wait"]).0, 0);
    assert_eq!(t.run(&["trigger", "bad", "--wait"]).0, 1);
    // The query string is ignored.
    let resp = get("GET /metrics?x=1");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(
        resp.contains("Content-Type: text/plain; version=0.0.4"),
        "{resp}"
    );
    let body = resp.split("\r\n\r\n").nth(1).expect("body");
    // Every sample line is `name{labels} value` with a number; every family has HELP and TYPE.
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(series.starts_with("cronwarden_"), "{line}");
        let name = match series.find('{') {
            Some(i) => {
                assert!(series.ends_with("\"}"), "{line}");
                &series[..i]
            }
            None => series,
        };
        assert!(body.contains(&format!("# TYPE {name} ")), "{name}");
    }
    for want in [
        "cronwarden_runs_total{cronjob=\"ok\",outcome=\"success\"} 2",
        "cronwarden_runs_total{cronjob=\"ok\",outcome=\"failure\"} 0",
        "cronwarden_runs_total{cronjob=\"bad\",outcome=\"failure\"} 1",
        "cronwarden_attempts_total{cronjob=\"ok\"} 2",
        "cronwarden_running{cronjob=\"ok\"} 0",
    ] {
        assert!(body.lines().any(|l| l == want), "missing {want} in\n{body}");
    }
    assert!(body.contains("cronwarden_last_success_timestamp_seconds{cronjob=\"ok\"} "));
    assert!(body.contains("cronwarden_next_run_timestamp_seconds{cronjob=\"tick\"} "));
    // No series is labelled `job` (Prometheus' own target label).
    assert!(!body.contains("{job=") && !body.contains(",job="), "{body}");
    // The last run's usage: served as gauges (samples only where a run's figure was measured).
    for name in [
        "cronwarden_job_last_run_cpu_seconds",
        "cronwarden_job_last_run_peak_memory_bytes",
    ] {
        assert!(body.contains(&format!("# TYPE {name} gauge\n")), "{body}");
        for l in body.lines().filter(|l| l.starts_with(&format!("{name}{{"))) {
            let value: f64 = l
                .rsplit_once(' ')
                .and_then(|(_, v)| v.parse().ok())
                .expect("number");
            assert!(value >= 0.0 && l.contains("{cronjob=\""), "{l}");
        }
    }
    assert!(
        body.lines().any(|l| l == "cronwarden_alert_spool_size 0"),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l == "cronwarden_alert_delivery_failures_total 0"),
        "{body}"
    );
    promtool_accepts(body);
    // HEAD: the GET's status and headers, no body.
    let head = get("HEAD /metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Length: ") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    // (`bad` failed: 503, with the reason; not a 404.)
    let health = get("GET /healthz?x");
    assert!(
        health.starts_with("HTTP/1.1 503 ") && health.contains("\"bad: "),
        "{health}"
    );
    assert!(get("HEAD /healthz").ends_with("\r\n\r\n"));
    assert!(get("GET /other").starts_with("HTTP/1.1 404"));
    let post = get("POST /metrics");
    assert!(post.starts_with("HTTP/1.1 405") && post.contains("Allow: GET, HEAD\r\n"));
}

/// `promtool check metrics` (Debian's `prometheus` package; .ci/run installs it) finds no
/// problem in the exposition.
pub(crate) fn promtool_accepts(body: &str) {
    use std::process::{Command, Stdio};
    let test = "metrics_are_prometheus_text_with_per_job_series (promtool)";
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return super::skip(test, "promtool not found (apt-get install prometheus)");
        }
        Err(e) => panic!("promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn other_users_cannot_use_the_control_socket() {
    let t = table("c-perm");
    let _d = Daemon::start(&t);
    let sock = t.dir().join("run/cronwarden.sock");
    if !nix::unistd::geteuid().is_root() {
        super::skip(
            "other_users_cannot_use_the_control_socket",
            "connecting as another user needs root; only the socket's owner and mode are checked",
        );
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&sock).expect("socket");
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
        assert_eq!(meta.mode() & 0o777, 0o600);
        return;
    }
    // A table any user can read that names the same socket.
    let public = std::env::temp_dir().join(format!("cw-perm-{}.toml", std::process::id()));
    std::fs::write(
        &public,
        format!(
            "[settings]\ncontrol_socket = \"{}\"\nstate_dir = \"/tmp/cw-perm-state-{}\"\n[jobs.ok]\nschedule = \"@manual\"\ncommand = [\"/bin/true\"]\n",
            sock.display(),
            std::process::id()
        ),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(env!("CARGO_BIN_EXE_cronwarden"))
        .arg("-c")
        .arg(&public)
        .args(["trigger", "ok"])
        .output()
        .expect("runuser (util-linux) runs");
    let _ = std::fs::remove_file(&public);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not allowed to talk to the daemon") && err.contains("Permission denied"),
        "{err}"
    );
    assert!(t.history("ok").is_empty(), "nobody triggered a run");
}
