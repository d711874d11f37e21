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
fn without_a_daemon_control_commands_exit_69() {
    let t = table("c-none");
    for args in [
        vec!["trigger", "ok"],
        vec!["pause", "tick"],
        vec!["resume", "tick"],
    ] {
        let (code, _, err) = t.run(&args);
        assert_eq!(code, 69, "{args:?}: {err}");
        assert!(err.contains("no daemon is running"), "{err}");
    }
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
