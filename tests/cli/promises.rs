//! Promises the man page makes that no other test checked: the job keys `jitter`, `enabled`,
//! `group`, `workdir`, `nice` and `success_codes`, runs coalescing while they wait for a slot,
//! `alert_spool_max_age`, `control_socket_group`, webhook `format = "slack"`, a channel's
//! `timeout`, a reload that changes or removes a running job, and the XDG default paths.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use super::alert::Hook;
use super::daemon::Daemon;
use super::{Table, TempDir, free_port, skip, ts, wait_for};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Adds lines to the table's `[settings]`.
fn settings(t: &Table, extra: &str) {
    let text = std::fs::read_to_string(&t.path).expect("table");
    let text = text.replacen("[settings]\n", &format!("[settings]\n{extra}\n"), 1);
    std::fs::write(&t.path, text).expect("write table");
}

#[test]
fn jitter_delays_each_scheduled_run_by_a_random_time_never_before_its_instant() {
    let t = Table::new(
        "p-jitter",
        "[jobs.j]\nschedule = \"* * * * * *\"\njitter = \"900ms\"\ncommand = \"true\"\n",
    );
    let d = Daemon::start(&t);
    wait_for(|| t.history("j").len() >= 6);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    let delays: Vec<i64> = t
        .history("j")
        .iter()
        .map(|r| (ts(&r["started"]) - ts(&r["scheduled"])).get_milliseconds())
        .collect();
    assert!(
        delays.iter().all(|d| *d >= 0),
        "a run before its instant: {delays:?}"
    );
    // Six runs all within 100 ms of their instant with a 900 ms jitter: (1/9)^6, about 2e-6.
    assert!(
        delays.iter().any(|d| *d >= 100),
        "no run was delayed: {delays:?}"
    );
}

#[test]
fn ticks_of_a_job_waiting_for_a_slot_coalesce_into_one_run() {
    let t = Table::new(
        "p-coalesce",
        "[jobs.hold]\nschedule = \"@manual\"\ncommand = \"sleep 3\"\n\n\
         [jobs.tick]\nschedule = \"* * * * * *\"\ncommand = \"true\"\n",
    );
    settings(&t, "max_concurrent = 1");
    let d = Daemon::start(&t);
    wait_for(|| !t.history("tick").is_empty());
    assert_eq!(t.run(&["trigger", "hold"]).0, 0);
    wait_for(|| t.history("hold").len() == 1);
    let log = t.log();
    let coalesced = log
        .lines()
        .filter(|l| l.contains(" coalesced ") && l.contains("job=tick"))
        .count();
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    // While `hold` had the only slot, one run of `tick` waited and the next ticks joined it.
    assert!(coalesced >= 1, "no tick coalesced:\n{log}");
    let hold = &t.history("hold")[0];
    let (from, to) = (ts(&hold["started"]), ts(&hold["ended"]));
    let during: Vec<String> = t
        .history("tick")
        .iter()
        .filter(|r| ts(&r["started"]) > from && ts(&r["started"]) < to)
        .map(|r| r["scheduled"].to_string())
        .collect();
    assert!(during.is_empty(), "tick ran beside hold: {during:?}");
}

#[test]
fn an_alert_older_than_alert_spool_max_age_is_dropped_and_the_drop_logged() {
    let dead = free_port();
    let t = Table::new(
        "p-spool-age",
        &format!(
            "[alerts.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{dead}/h\"\n\n\
             [jobs.bad]\nschedule = \"@manual\"\ncommand = \"exit 1\"\nalert = [\"hook\"]\n\n\
             [jobs.ok]\nschedule = \"@manual\"\ncommand = \"true\"\n"
        ),
    );
    settings(&t, "alert_spool_max_age = \"1s\"");
    let spooled_at = Instant::now();
    assert_eq!(t.run(&["run", "bad"]).0, 1);
    assert!(t.log().contains(" alert-spooled "), "{}", t.log());
    // Every `run` retries what is due in the spool; past the maximum age a failed retry
    // drops the alert for good.
    wait_for(|| {
        assert_eq!(t.run(&["run", "ok"]).0, 0);
        t.log().contains(" alert-dropped ")
    });
    assert!(spooled_at.elapsed() >= Duration::from_secs(1));
    let log = t.log();
    let drop = log
        .lines()
        .find(|l| l.contains(" alert-dropped "))
        .expect("drop line");
    assert!(
        drop.contains("job=bad") && drop.contains("channel=hook"),
        "{drop}"
    );
    // No alert is left waiting in the spool (one directory per channel; its state file
    // keeps the channel's backoff).
    let mut left = Vec::new();
    for dir in std::fs::read_dir(t.dir().join("state/spool"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let files = std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten();
        left.extend(files.map(|e| e.path()));
    }
    let left: Vec<_> = left
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "sending"))
        .collect();
    assert!(left.is_empty(), "still spooled: {left:?}");
}

#[test]
fn control_socket_group_opens_the_socket_to_that_group_only() {
    if !is_root() {
        skip(
            "control_socket_group_opens_the_socket_to_that_group_only",
            "giving the socket to another group needs root",
        );
        return;
    }
    let group = nix::unistd::Group::from_name("daemon")
        .expect("group lookup")
        .expect("Debian has a group `daemon`");
    let t = Table::new(
        "p-sockgroup",
        "[jobs.j]\nschedule = \"@manual\"\ncommand = \"true\"\n",
    );
    settings(&t, "control_socket_group = \"daemon\"");
    let _d = Daemon::start(&t);
    let sock = std::fs::metadata(t.dir().join("run/cronwarden.sock")).expect("socket");
    assert_eq!(sock.mode() & 0o777, 0o660);
    assert_eq!(sock.gid(), group.gid.as_raw());
    let dir = std::fs::metadata(t.dir().join("run")).expect("lock_dir");
    assert_eq!(dir.mode() & 0o777, 0o710);
    assert_eq!(dir.gid(), group.gid.as_raw());
}

#[test]
fn a_reload_that_changes_or_removes_a_running_job_lets_its_run_finish_and_be_recorded() {
    let job = |word: &str| {
        format!(
            "[jobs.long]\nschedule = \"@manual\"\ncommand = \"sleep 1; echo {word} >> $DIR/out\"\n\n\
             [jobs.other]\nschedule = \"@manual\"\ncommand = \"true\"\n"
        )
    };
    let t = Table::new("p-reload", &job("v1"));
    let d = Daemon::start(&t);
    let reloads = || t.log().matches(" reload: new table loaded").count();
    // Changed while it runs: the run goes on with the command it started with.
    assert_eq!(t.run(&["trigger", "long"]).0, 0);
    t.wait_running("long");
    t.rewrite(&job("v2"));
    d.signal(libc::SIGHUP);
    wait_for(|| reloads() >= 1);
    wait_for(|| t.history("long").len() == 1);
    assert_eq!(t.history("long")[0]["outcome"], "success");
    t.wait_idle("long");
    assert_eq!(t.run(&["trigger", "long", "--wait"]).0, 0);
    let out = std::fs::read_to_string(t.dir().join("out")).expect("out");
    assert_eq!(out, "v1\nv2\n");
    // Removed while it runs: the run ends normally and is recorded; then the job is gone.
    assert_eq!(t.run(&["trigger", "long"]).0, 0);
    t.wait_running("long");
    t.rewrite("[jobs.other]\nschedule = \"@manual\"\ncommand = \"true\"\n");
    d.signal(libc::SIGHUP);
    wait_for(|| reloads() >= 2);
    wait_for(|| t.history("long").len() == 3);
    assert_eq!(t.history("long")[2]["outcome"], "success");
    let (code, _, err) = t.run(&["trigger", "long"]);
    assert_eq!(code, 2, "{err}");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
}

#[test]
fn a_disabled_job_never_runs_in_the_daemon() {
    let t = Table::new(
        "p-disabled",
        "[jobs.on]\nschedule = \"* * * * * *\"\ncommand = \"true\"\n\n\
         [jobs.off]\nschedule = \"* * * * * *\"\nenabled = false\ncommand = \"true\"\n",
    );
    let d = Daemon::start(&t);
    wait_for(|| t.history("on").len() >= 3);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    assert!(t.history("off").is_empty(), "{:?}", t.history("off"));
    assert!(!t.log().contains("job=off"), "{}", t.log());
}

#[test]
fn workdir_nice_group_and_success_codes_are_applied() {
    let group = if is_root() {
        "group = \"daemon\"\n"
    } else {
        skip(
            "workdir_nice_group_and_success_codes_are_applied (group only)",
            "switching group needs root",
        );
        ""
    };
    let t = Table::new(
        "p-process",
        &format!(
            "[jobs.j]\nschedule = \"@manual\"\nworkdir = \"$DIR/wd\"\nnice = 7\n{group}\
             success_codes = [0, 3]\n\
             command = \"pwd > $DIR/pwd; id -g > $DIR/gid; cut -d' ' -f19 /proc/self/stat > $DIR/nice; exit 3\"\n"
        ),
    );
    std::fs::create_dir(t.dir().join("wd")).expect("workdir");
    let (code, _, err) = t.run(&["run", "j"]);
    assert_eq!(code, 0, "exit 3 is declared a success: {err}");
    let read = |f: &str| {
        std::fs::read_to_string(t.dir().join(f))
            .expect("job output")
            .trim()
            .to_string()
    };
    assert_eq!(read("pwd"), t.dir().join("wd").display().to_string());
    assert_eq!(read("nice"), "7");
    if is_root() {
        let gid = nix::unistd::Group::from_name("daemon")
            .expect("lookup")
            .expect("group daemon")
            .gid;
        assert_eq!(read("gid"), gid.to_string());
    }
    let rec = &t.history("j")[0];
    assert_eq!(rec["outcome"], "success");
    assert_eq!(rec["attempts"][0]["exit_code"], 3);
}

#[test]
fn a_slack_webhook_gets_the_alert_as_slack_text() {
    let hook = Hook::start(200);
    let t = Table::new(
        "p-slack",
        &format!(
            "[alerts.chat]\ntype = \"webhook\"\nformat = \"slack\"\n\
             url = \"http://127.0.0.1:{}/services/x\"\n\n\
             [jobs.bad]\nschedule = \"@manual\"\ncommand = \"echo oops >&2; exit 2\"\nalert = [\"chat\"]\n",
            hook.port
        ),
    );
    assert_eq!(t.run(&["run", "bad"]).0, 1);
    let reqs = hook.requests();
    let (method, path, body) = reqs.first().expect("one POST");
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/services/x"));
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["text"], "{body}");
    let text = v["text"].as_str().expect("text");
    assert!(text.contains("FAILED bad"), "{text}");
    assert!(text.contains("oops"), "{text}");
}

#[test]
fn a_channel_timeout_ends_a_delivery_to_a_silent_server() {
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in silent.incoming().take(4).flatten() {
            conns.push(c);
        }
        // Keep them open until the test process ends.
        std::thread::sleep(Duration::from_secs(3600));
        drop(conns);
    });
    let t = Table::new(
        "p-timeout",
        &format!(
            "[alerts.slow]\ntype = \"webhook\"\ntimeout = \"1s\"\nurl = \"http://127.0.0.1:{port}/h\"\n\n\
             [jobs.bad]\nschedule = \"@manual\"\ncommand = \"exit 1\"\nalert = [\"slow\"]\n"
        ),
    );
    let t0 = Instant::now();
    assert_eq!(t.run(&["run", "bad"]).0, 1);
    assert!(t0.elapsed() >= Duration::from_secs(1));
    let log = t.log();
    let line = log
        .lines()
        .find(|l| l.contains(" alert-spooled "))
        .unwrap_or_else(|| panic!("not spooled:\n{log}"));
    assert!(
        line.to_lowercase().contains("timeout") || line.contains("timed out"),
        "{line}"
    );
    drop(held);
}

#[test]
fn without_a_table_path_a_user_gets_the_xdg_locations() {
    let home = TempDir::new("p-xdg");
    let h = home.path();
    let (cfg, state, rt) = (h.join("cfg"), h.join("state"), h.join("rt"));
    for d in [&cfg, &state, &rt] {
        std::fs::create_dir_all(d).expect("dir");
    }
    let table = cfg.join("cronwarden/jobs.toml");
    std::fs::create_dir_all(table.parent().expect("parent")).expect("dir");
    std::fs::write(
        &table,
        "[jobs.j]\nschedule = \"@manual\"\ncommand = \"true\"\n",
    )
    .expect("table");
    let mut c = if is_root() {
        // As root the defaults are the system paths; the XDG ones are for other users.
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("lookup")
            .expect("user nobody");
        for p in [h.to_path_buf(), cfg.clone(), state.clone(), rt.clone()] {
            chown_tree(&p, nobody.uid);
        }
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "nobody", "--", env!("CARGO_BIN_EXE_cronwarden")]);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_cronwarden"))
    };
    let out = c
        .args(["run", "j"])
        .env_remove("CRONWARDEN_CONFIG")
        .env("HOME", h)
        .env("XDG_CONFIG_HOME", &cfg)
        .env("XDG_STATE_HOME", &state)
        .env("XDG_RUNTIME_DIR", &rt)
        .output()
        .expect("cronwarden runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut history = String::new();
    std::fs::File::open(state.join("cronwarden/history/j.jsonl"))
        .and_then(|mut f| f.read_to_string(&mut history))
        .expect("history under $XDG_STATE_HOME/cronwarden");
    assert!(history.contains("\"outcome\":\"success\""), "{history}");
    assert!(
        rt.join("cronwarden/j.lock").exists(),
        "lock under $XDG_RUNTIME_DIR/cronwarden"
    );
}

fn chown_tree(p: &std::path::Path, uid: nix::unistd::Uid) {
    nix::unistd::chown(p, Some(uid), None).expect("chown");
    if p.is_dir() {
        for e in std::fs::read_dir(p).expect("read dir").flatten() {
            chown_tree(&e.path(), uid);
        }
    }
}

#[test]
fn history_keep_holds_between_one_and_two_times_that_many_runs() {
    let t = Table::new(
        "p-keep",
        "[jobs.ok]\nschedule = \"@manual\"\ncommand = \"echo a line of output\"\n",
    );
    settings(&t, "history_keep = 3");
    for i in 1..=12usize {
        assert_eq!(t.run(&["run", "ok"]).0, 0);
        let n = t.history("ok").len();
        assert!(n <= 6, "{n} records after {i} runs with history_keep = 3");
        assert!(
            n >= i.min(3),
            "{n} records after {i} runs with history_keep = 3"
        );
    }
    // `history` shows what is kept, the newest last.
    let (code, out, err) = t.run(&["history", "ok", "--json", "-n", "100"]);
    assert_eq!(code, 0, "{err}");
    let runs: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON");
    assert_eq!(runs.len(), t.history("ok").len());
    assert_eq!(runs.last(), t.history("ok").last());
}

#[test]
fn ticks_of_a_job_queued_behind_its_lock_coalesce_into_one_run() {
    // Each run outlasts two ticks; with `overlap = "queue"` one run waits for the lock and
    // the ticks that come meanwhile join it instead of piling up.
    let t = Table::new(
        "p-coalesce-lock",
        "[jobs.q]\nschedule = \"* * * * * *\"\noverlap = \"queue\"\ncommand = \"sleep 2.5\"\n",
    );
    let d = Daemon::start(&t);
    wait_for(|| {
        t.log()
            .lines()
            .any(|l| l.contains(" coalesced ") && l.contains("job=q"))
    });
    wait_for(|| t.history("q").len() >= 2);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    // The runs never overlapped: each started after the one before it ended.
    let runs = t.history("q");
    for w in runs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a["outcome"] == "success" && b["outcome"] == "success" {
            assert!(ts(&b["started"]) >= ts(&a["ended"]), "{a} / {b}");
        }
    }
}
