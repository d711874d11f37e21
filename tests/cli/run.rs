//! `cronwarden run`: real processes, real files, real locks.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{Table, alive, ts, wait_for};

#[test]
fn timeout_kills_the_whole_tree_even_when_a_grandchild_holds_stdout() {
    let t = Table::new(
        "timeout",
        r#"
[jobs.tree]
schedule = "@manual"
command = "sleep 300 & echo $! > $DIR/grandchild; echo started; sleep 300"
timeout = "1s"
kill_grace = "1s"
"#,
    );
    let start = Instant::now();
    let (code, _, err) = t.run(&["run", "tree"]);
    assert_eq!(code, 1, "{err}");
    assert!(start.elapsed() >= Duration::from_secs(1));
    let gc: i32 = std::fs::read_to_string(t.dir().join("grandchild"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(!alive(gc), "grandchild {gc} survived the timeout");
    let h = t.history("tree");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["outcome"], "failure");
    assert_eq!(h[0]["reason"], "timed out after 1s");
    assert_eq!(h[0]["attempts"][0]["timed_out"], true);
    assert_eq!(h[0]["attempts"][0]["signal"], 15);
    let output =
        std::fs::read_to_string(h[0]["output"].as_str().expect("output path")).expect("output");
    assert_eq!(output, "started\n");
}

#[test]
fn a_job_failing_twice_then_succeeding_follows_the_backoff() {
    let t = Table::new(
        "retry",
        r#"
[jobs.flaky]
schedule = "@manual"
command = "n=$(cat $DIR/count 2>/dev/null || echo 0); echo $((n+1)) > $DIR/count; echo attempt $CRONWARDEN_ATTEMPT run $CRONWARDEN_RUN_ID >&2; [ $n -ge 2 ]"
retries = 4
retry_delay = "300ms"
retry_backoff = 2.0
retry_jitter = false
"#,
    );
    let (code, _, err) = t.run(&["run", "flaky"]);
    assert_eq!(code, 0, "{err}");
    let h = t.history("flaky");
    let a = h[0]["attempts"].as_array().expect("attempts");
    assert_eq!(a.len(), 3);
    assert_eq!(a[0]["reason"], "exit 1");
    assert_eq!(a[1]["reason"], "exit 1");
    assert!(a[2].get("reason").is_none());
    // Lower bounds: 300 ms after the first attempt, then 600 ms.
    let d1 = ts(&a[1]["started"]).duration_since(ts(&a[0]["started"]));
    let d2 = ts(&a[2]["started"]).duration_since(ts(&a[1]["started"]));
    assert!(d1 >= jiff::SignedDuration::from_millis(300), "{d1:?}");
    assert!(d2 >= jiff::SignedDuration::from_millis(600), "{d2:?}");
    // A retry keeps the run id.
    let run_id = h[0]["run_id"].as_str().expect("run id");
    let output = std::fs::read_to_string(h[0]["output"].as_str().expect("path")).expect("output");
    for n in 1..=3 {
        assert!(
            output.contains(&format!("attempt {n} run {run_id}")),
            "{output}"
        );
    }
    let log = t.log();
    assert_eq!(log.matches(" attempt-start ").count(), 3, "{log}");
    assert_eq!(log.matches(" attempt-end ").count(), 3, "{log}");
    assert!(
        log.contains("retry-wait") && log.contains("attempt 3 in 600ms"),
        "{log}"
    );
    assert!(log.contains("outcome=success attempts=3"), "{log}");
}

#[test]
fn verify_failures_name_the_file_and_the_problem() {
    let t = Table::new(
        "verify",
        r#"
[jobs.missing]
schedule = "@manual"
command = ["/bin/true"]
verify = { files = ["$DIR/out-{{ ds }}.txt"] }

[jobs.small]
schedule = "@manual"
command = "printf abc > $DIR/small.txt"
verify = { files = ["$DIR/small.txt"], min_size = "1KiB" }

[jobs.stale]
schedule = "@manual"
command = ["/bin/true"]
verify = { files = ["$DIR/stale.txt"], fresh = true }

[jobs.good]
schedule = "@manual"
command = "printf abc > $DIR/good-{{ ds_nodash }}.txt"
verify = { files = ["$DIR/good-{{ ds_nodash }}.txt"] }
"#,
    );
    let d = t.dir().display().to_string();
    let (code, _, err) = t.run(&["run", "missing", "--at", "2026-11-20T03:00:00Z"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        t.history("missing")[0]["reason"],
        format!("verify: {d}/out-2026-11-20.txt is missing")
    );

    let (code, _, _) = t.run(&["run", "small"]);
    assert_eq!(code, 1);
    assert_eq!(
        t.history("small")[0]["reason"],
        format!("verify: {d}/small.txt is 3 bytes < 1KiB")
    );

    let stale = t.dir().join("stale.txt");
    std::fs::write(&stale, "old").expect("write");
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("set mtime");
    let (code, _, _) = t.run(&["run", "stale"]);
    assert_eq!(code, 1);
    let reason = t.history("stale")[0]["reason"]
        .as_str()
        .expect("reason")
        .to_string();
    assert!(
        reason.starts_with(&format!(
            "verify: {d}/stale.txt was not modified during the run"
        )),
        "{reason}"
    );

    let (code, _, err) = t.run(&["run", "good", "--at", "2026-11-20"]);
    assert_eq!(code, 0, "{err}");
    assert!(t.dir().join("good-20261120.txt").exists());
}

const HOLD: &str = r#"
schedule = "@manual"
command = "echo start $CRONWARDEN_RUN_ID >> $DIR/events; while [ ! -e $DIR/release ]; do sleep 0.05; done; echo end $CRONWARDEN_RUN_ID >> $DIR/events"
"#;

#[test]
fn overlap_skip_exits_75_and_names_the_holder() {
    let t = Table::new(
        "skip",
        &format!("[jobs.hold]\n{HOLD}\noverlap = \"skip\"\n"),
    );
    let mut first = t.spawn(&["run", "hold"]);
    t.wait_running("hold");
    let (code, _, err) = t.run(&["run", "hold"]);
    assert_eq!(code, 75, "{err}");
    assert!(
        err.contains(&format!("another run holds the lock: pid {}", first.id())),
        "{err}"
    );
    std::fs::write(t.dir().join("release"), "").expect("release");
    assert!(first.wait().expect("wait").success());
    assert_eq!(t.outcomes("hold"), ["skipped", "success"]);
}

#[test]
fn overlap_queue_runs_one_after_the_other() {
    let t = Table::new(
        "queue",
        &format!("[jobs.hold]\n{HOLD}\noverlap = \"queue\"\n"),
    );
    let mut first = t.spawn(&["run", "hold"]);
    t.wait_running("hold");
    let mut second = t.spawn(&["run", "hold"]);
    wait_for(|| t.log().contains(" queued "));
    std::fs::write(t.dir().join("release"), "").expect("release");
    assert!(first.wait().expect("wait").success());
    assert!(second.wait().expect("wait").success());
    let events = std::fs::read_to_string(t.dir().join("events")).expect("events");
    let kinds: Vec<&str> = events
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["start", "end", "start", "end"], "{events}");
}

#[test]
fn overlap_replace_stops_the_running_copy() {
    let t = Table::new(
        "replace",
        &format!("[jobs.hold]\n{HOLD}\noverlap = \"replace\"\nkill_grace = \"2s\"\n"),
    );
    let mut first = t.spawn(&["run", "hold"]);
    t.wait_running("hold");
    let mut second = t.spawn(&["run", "hold"]);
    wait_for(|| {
        std::fs::read_to_string(t.dir().join("events")).is_ok_and(|e| e.lines().count() >= 2)
    });
    std::fs::write(t.dir().join("release"), "").expect("release");
    let first_status = first.wait().expect("wait");
    // Stopped by the replacing run: interrupted, exit status 143 (SIGTERM).
    assert_eq!(first_status.code(), Some(143));
    assert!(second.wait().expect("wait").success());
    let h = t.history("hold");
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["outcome"], "interrupted");
    assert_eq!(
        h[0]["reason"],
        format!("replaced by {}", h[1]["run_id"].as_str().expect("id"))
    );
    assert_eq!(h[0]["attempts"][0]["reason"], "killed by SIGTERM");
    assert_eq!(h[1]["outcome"], "success");
}

#[test]
fn a_replaced_run_ends_for_good_without_retrying_or_alerting() {
    let t = Table::new(
        "replace-retries",
        &format!(
            "[alerts.log]\ntype = \"command\"\ncommand = \"cat >> $DIR/alerts\"\n\
             on = [\"failure\", \"retry\", \"recovery\"]\n\n\
             [jobs.hold]\n{HOLD}\noverlap = \"replace\"\nretries = 3\nretry_delay = \"1s\"\n\
             kill_grace = \"5s\"\nalert = [\"log\"]\n"
        ),
    );
    let events = || {
        std::fs::read_to_string(t.dir().join("events"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
    };
    let mut first = t.spawn(&["run", "hold"]);
    t.wait_running("hold");
    let mut second = t.spawn(&["run", "hold"]);
    wait_for(|| events().len() >= 2);
    // The next process to start after the replacement is the new run's, not a retry.
    let ev = events();
    let (first_id, second_id) = (&ev[0]["start ".len()..], &ev[1]["start ".len()..]);
    assert_ne!(first_id, second_id, "the replaced run retried: {ev:?}");
    // The replaced run is over (not waiting to retry) before the new one ends.
    let first_status = first.wait().expect("wait");
    assert_eq!(first_status.code(), Some(143));
    let h = t.history("hold");
    assert_eq!(h.len(), 1, "{h:#?}");
    assert_eq!(h[0]["run_id"], first_id);
    assert_eq!(h[0]["outcome"], "interrupted");
    assert_eq!(h[0]["reason"], format!("replaced by {second_id}"));
    assert_eq!(h[0]["attempts"].as_array().map(Vec::len), Some(1));
    std::fs::write(t.dir().join("release"), "").expect("release");
    assert!(second.wait().expect("wait").success());
    let h = t.history("hold");
    assert_eq!(h[1]["run_id"], second_id);
    assert_eq!(h[1]["outcome"], "success");
    // The new run started after the replaced one had ended and released the lock.
    assert!(ts(&h[1]["attempts"][0]["started"]) >= ts(&h[0]["ended"]));
    assert_eq!(events().len(), 3, "{:?}", events());
    // Nothing alerted: a replaced run is no failure and was not retried.
    let alerts = std::fs::read_to_string(t.dir().join("alerts")).unwrap_or_default();
    assert_eq!(alerts, "", "{alerts}");
    let lock_dir: Vec<_> = std::fs::read_dir(t.dir().join("run"))
        .expect("lock dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(lock_dir.len(), 1, "notes left behind: {lock_dir:?}");
}

#[test]
fn a_missing_program_is_a_failed_attempt_not_a_crash() {
    let t = Table::new(
        "missing-prog",
        "[jobs.ghost]\nschedule = \"@manual\"\ncommand = [\"/nonexistent/prog\", \"x\"]\n",
    );
    let (code, _, err) = t.run(&["run", "ghost"]);
    assert_eq!(code, 1, "{err}");
    let reason = t.history("ghost")[0]["reason"]
        .as_str()
        .expect("reason")
        .to_string();
    assert!(
        reason.starts_with("cannot run \"/nonexistent/prog\": No such file or directory"),
        "{reason}"
    );
}

#[test]
fn an_unknown_job_lists_the_known_ones() {
    let t = Table::new(
        "unknown",
        "[jobs.backup]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n",
    );
    let (code, _, err) = t.run(&["run", "bakcup"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown job \"bakcup\" (did you mean \"backup\"?); the table has: backup"),
        "{err}"
    );
    let (code, _, err) = t.run(&["run", "backup", "--param", "x=1"]);
    assert_eq!(code, 2);
    assert!(err.contains("declares no parameter \"x\""), "{err}");
}

#[test]
fn environment_placeholders_params_and_stdin() {
    let t = Table::new(
        "env",
        r#"
[jobs.show]
schedule = "0 3 * * *"
timezone = "America/New_York"
command = ["/bin/sh", "-c", "env | sort > $DIR/env; cat > $DIR/stdin; echo \"$1\" > $DIR/arg", "sh", "{{ params.who }}; rm -rf /"]
env = { OUT = "/data/{{ ds }}/{{ job }}" }
params = { who = "nobody" }
stdin = "line one\nline two\n"
umask = "077"
"#,
    );
    let (code, _, err) = t.run(&["run", "show", "--at", "2026-03-08", "--param", "who=$(id)"]);
    assert_eq!(code, 0, "{err}");
    let env = std::fs::read_to_string(t.dir().join("env")).expect("env");
    for want in [
        "CRONWARDEN_DS=2026-03-08",
        "CRONWARDEN_DS_NODASH=20260308",
        // 03:00 exists on the spring-forward day in New York (the gap is 02:00-03:00).
        "CRONWARDEN_TS=2026-03-08T03:00:00-04:00",
        "CRONWARDEN_JOB=show",
        "CRONWARDEN_ATTEMPT=1",
        "CRONWARDEN_PARAM_who=$(id)",
        "OUT=/data/2026-03-08/show",
        "TZ=America/New_York",
        "SHELL=/bin/sh",
    ] {
        assert!(env.lines().any(|l| l == want), "missing {want} in\n{env}");
    }
    assert!(env.lines().any(|l| l.starts_with("CRONWARDEN_RUN_ID=")));
    assert!(
        env.lines().any(|l| l.starts_with("HOME=")) && env.lines().any(|l| l.starts_with("USER="))
    );
    assert!(
        !env.lines().any(|l| l.starts_with("CARGO")),
        "the runner's environment leaked:\n{env}"
    );
    assert_eq!(
        std::fs::read_to_string(t.dir().join("stdin")).expect("stdin"),
        "line one\nline two\n"
    );
    // A parameter stays one argument: no shell ever sees it.
    assert_eq!(
        std::fs::read_to_string(t.dir().join("arg")).expect("arg"),
        "$(id); rm -rf /\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.dir().join("env"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "umask 077 applies");
}

#[test]
fn sigint_is_forwarded_to_the_job_and_recorded() {
    let t = Table::new(
        "sigint",
        r#"
[jobs.long]
schedule = "@manual"
command = "trap 'echo got INT > $DIR/trapped; exit 7' INT; echo ready; while :; do sleep 0.05; done"
"#,
    );
    let mut child = t.spawn(&["run", "long"]);
    t.wait_running("long");
    wait_for(|| {
        std::fs::read_dir(t.dir().join("state/output/long"))
            .map(|d| d.count() > 0)
            .unwrap_or(false)
    });
    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        std::fs::read_to_string(t.dir().join("trapped")).expect("trap ran"),
        "got INT\n"
    );
    let h = t.history("long");
    assert_eq!(h[0]["outcome"], "interrupted");
    assert_eq!(h[0]["reason"], "interrupted by SIGINT");
}

#[test]
fn output_of_100_mib_keeps_memory_flat_and_the_kept_tail_bounded() {
    let t = Table::new(
        "big",
        r#"
[jobs.small]
schedule = "@manual"
command = "head -c 1048576 /dev/zero; echo THE-END"
output_limit = "1MiB"

[jobs.big]
schedule = "@manual"
command = "head -c 104857600 /dev/zero; echo THE-END"
output_limit = "1MiB"
"#,
    );
    // The runner's own peak RSS, from wait4(2) (std's Child does not give the rusage).
    let peak_kib = |job: &str| -> i64 {
        #[allow(clippy::zombie_processes)] // reaped right below by wait4
        let child = t
            .cmd(&["run", job])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child; both pointers are valid for the call.
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        assert_eq!(pid, child.id() as i32);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        usage.ru_maxrss
    };
    let small = peak_kib("small");
    let big = peak_kib("big");
    // Flat: 100 times the output costs no more than a few MiB more than 1 MiB of it (the
    // absolute figure depends on the build; bench/run.sh measures the release one).
    assert!(
        big < small + 4 * 1024,
        "runner peak RSS {big} KiB for 100 MiB of output, {small} KiB for 1 MiB"
    );
    let h = t.history("big");
    let out = std::fs::read(h[0]["output"].as_str().expect("path")).expect("output");
    assert_eq!(out.len(), 1 << 20);
    assert!(out.ends_with(b"\0\0THE-END\n"));
}

#[test]
fn user_and_group_switch_drops_every_privilege() {
    let t = Table::new(
        "user",
        r#"
[jobs.who]
schedule = "@manual"
command = ["id"]
user = "nobody"
"#,
    );
    let (code, _, err) = t.run(&["run", "who"]);
    if nix::unistd::geteuid().is_root() {
        assert_eq!(code, 0, "{err}");
        let out = std::fs::read_to_string(t.history("who")[0]["output"].as_str().expect("path"))
            .expect("output");
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("lookup")
            .expect("nobody exists");
        // uid, gid and the supplementary groups are nobody's own: root's group 0 is gone.
        let group = nix::unistd::Group::from_gid(nobody.gid)
            .expect("lookup")
            .expect("group");
        assert_eq!(
            out,
            format!(
                "uid={uid}(nobody) gid={gid}({g}) groups={gid}({g})\n",
                uid = nobody.uid,
                gid = nobody.gid,
                g = group.name
            )
        );
    } else {
        assert_eq!(code, 1, "{err}");
        let reason = t.history("who")[0]["reason"]
            .as_str()
            .expect("reason")
            .to_string();
        assert!(reason.contains("not running as root"), "{reason}");
    }
}

#[test]
fn the_job_gets_its_own_group_a_clean_signal_state_and_json_logs() {
    let t = Table::new(
        "sigmask",
        r#"
[jobs.probe]
schedule = "@manual"
command = ["/bin/grep", "-E", "^(SigBlk|SigIgn|NSpgid|Pid):", "/proc/self/status"]
"#,
    );
    // JSON logs: switch the format and check each line parses.
    let text = std::fs::read_to_string(&t.path).expect("table");
    std::fs::write(
        &t.path,
        text.replace("[settings]\n", "[settings]\nlog_format = \"json\"\n"),
    )
    .expect("write");
    let mut cmd = t.cmd(&["run", "probe"]);
    // Start the runner with SIGQUIT ignored and SIGUSR1 blocked: the job must see neither.
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::signal(libc::SIGQUIT, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let (code, _, err) = cmd
        .output()
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                String::new(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .expect("runs");
    assert_eq!(code, 0, "{err}");
    let out = std::fs::read_to_string(t.history("probe")[0]["output"].as_str().expect("path"))
        .expect("output");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{name} missing in {out}"))
    };
    assert_eq!(field("SigBlk"), "0000000000000000");
    assert_eq!(field("SigIgn"), "0000000000000000");
    // Its own process group: the group id is its own pid.
    assert_eq!(field("NSpgid"), field("Pid"));
    for line in t.log().lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        assert_eq!(v["job"], "probe");
        assert!(v["event"].is_string() && v["ts"].is_string());
    }
    assert!(t.log().contains("\"event\":\"run-end\""));
}

#[test]
fn ctrl_c_while_queued_for_the_lock_ends_the_wait() {
    let t = Table::new(
        "queue-int",
        &format!("[jobs.hold]\n{HOLD}\noverlap = \"queue\"\n"),
    );
    let mut first = t.spawn(&["run", "hold"]);
    t.wait_running("hold");
    let mut second = t.spawn(&["run", "hold"]);
    wait_for(|| t.log().contains(" queued "));
    // SAFETY: signals our own child process.
    unsafe { libc::kill(second.id() as i32, libc::SIGINT) };
    assert_eq!(second.wait().expect("wait").code(), Some(130));
    std::fs::write(t.dir().join("release"), "").expect("release");
    assert!(first.wait().expect("wait").success());
    let h = t.history("hold");
    assert_eq!(h[0]["outcome"], "interrupted");
    assert_eq!(h[0]["reason"], "interrupted while waiting for the lock");
    assert_eq!(h[1]["outcome"], "success");
    // The queued run never started the job.
    let events = std::fs::read_to_string(t.dir().join("events")).expect("events");
    assert_eq!(events.lines().count(), 2, "{events}");
}

#[test]
fn a_run_replaced_while_it_waits_to_retry_ends_there() {
    let t = Table::new(
        "replace-wait",
        r#"
[jobs.flaky]
schedule = "@manual"
command = "echo start $CRONWARDEN_RUN_ID >> $DIR/events; test -e $DIR/pass"
overlap = "replace"
retries = 2
retry_delay = "5s"
retry_jitter = false
"#,
    );
    let mut first = t.spawn(&["run", "flaky"]);
    wait_for(|| t.log().contains(" retry-wait job=flaky "));
    std::fs::write(t.dir().join("pass"), "").expect("pass");
    let (code, _, err) = t.run(&["run", "flaky"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first.wait().expect("wait").code(), Some(143));
    let h = t.history("flaky");
    assert_eq!(h.len(), 2, "{h:#?}");
    assert_eq!(h[0]["outcome"], "interrupted");
    assert_eq!(h[0]["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        h[0]["reason"],
        format!("replaced by {}", h[1]["run_id"].as_str().expect("id"))
    );
    assert_eq!(h[1]["outcome"], "success");
    assert!(ts(&h[1]["attempts"][0]["started"]) >= ts(&h[0]["ended"]));
}

/// `fired` of a history record, as strings.
fn fired(rec: &serde_json::Value) -> Vec<&str> {
    rec["fired"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default()
}

/// An attempt's duration the way messages write durations under a second ("3ms", "0s").
fn under_a_second(ms: u64) -> String {
    assert!(ms < 1000, "{ms} ms");
    if ms == 0 {
        "0s".to_string()
    } else {
        format!("{ms}ms")
    }
}

#[test]
fn min_duration_fails_a_run_that_ends_too_quickly() {
    let t = Table::new(
        "min-duration",
        r#"
[jobs.quick]
schedule = "@manual"
command = ["/bin/true"]
min_duration = "5m"

[jobs.quick_retried_on_exit_only]
schedule = "@manual"
command = ["/bin/true"]
min_duration = "5m"
retries = 3
retry_delay = "100ms"
retry_jitter = false
retry_on = ["exit", "timeout"]

[jobs.long_enough]
schedule = "@manual"
command = "sleep 0.3"
min_duration = "200ms"
"#,
    );
    let (code, _, err) = t.run(&["run", "quick"]);
    assert_eq!(code, 1, "{err}");
    let h = t.history("quick");
    assert_eq!(h[0]["outcome"], "failure");
    let ms = h[0]["attempts"][0]["duration_ms"]
        .as_u64()
        .expect("duration");
    let want = format!("finished in {}, under min_duration 5m", under_a_second(ms));
    assert_eq!(h[0]["reason"], want);
    assert_eq!(h[0]["attempts"][0]["reason"], want);
    assert_eq!(fired(&h[0]), ["min_duration"]);

    // A min_duration failure is of the verify kind: not retried unless retry_on has it.
    let (code, _, err) = t.run(&["run", "quick_retried_on_exit_only"]);
    assert_eq!(code, 1, "{err}");
    let h = t.history("quick_retried_on_exit_only");
    assert_eq!(h[0]["attempts"].as_array().map(Vec::len), Some(1));
    let reason = h[0]["reason"].as_str().expect("reason");
    assert!(
        reason.ends_with(", under min_duration 5m (verify is not in retry_on: not retried)"),
        "{reason}"
    );
    assert_eq!(fired(&h[0]), ["min_duration", "no_retry"]);

    let (code, _, err) = t.run(&["run", "long_enough"]);
    assert_eq!(code, 0, "{err}");
    let h = t.history("long_enough");
    assert_eq!(h[0]["outcome"], "success");
    assert!(h[0].get("fired").is_none(), "{}", h[0]);
}

#[test]
fn min_ratio_fails_an_output_that_shrank_against_the_last_good_run() {
    let t = Table::new(
        "min-ratio",
        r#"
[jobs.dump]
schedule = "@manual"
command = "head -c $(cat $DIR/size) /dev/zero > $DIR/dump.bin"
verify = { files = ["$DIR/dump.bin"], min_ratio = 0.8, max_ratio = 3.0 }

[jobs.daily]
schedule = "0 3 * * *"
command = "head -c $(cat $DIR/size) /dev/zero > $DIR/db-{{ ds }}.bin"
verify = { files = ["$DIR/db-{{ ds }}.bin"], min_ratio = 0.8 }
"#,
    );
    let d = t.dir().display().to_string();
    let dump = format!("{d}/dump.bin");
    let run_with = |job: &str, size: u32, at: &[&str]| {
        std::fs::write(t.dir().join("size"), size.to_string()).expect("write size");
        let mut args = vec!["run", job];
        args.extend_from_slice(at);
        let (code, _, err) = t.run(&args);
        (code, err)
    };
    // The first run has nothing to compare with; the second is like it.
    for n in 1..=2 {
        let (code, err) = run_with("dump", 1000, &[]);
        assert_eq!(code, 0, "run {n}: {err}");
    }
    let h = t.history("dump");
    assert_eq!(h[1]["outcome"], "success");
    assert_eq!(h[1]["verified_sizes"][&dump], 1000, "{}", h[1]);
    assert!(h[1].get("fired").is_none(), "{}", h[1]);

    let (code, err) = run_with("dump", 500, &[]);
    assert_eq!(code, 1, "{err}");
    let h = t.history("dump");
    assert_eq!(h[2]["outcome"], "failure");
    assert_eq!(
        h[2]["reason"],
        format!(
            "verify: {dump} is 500 bytes, under min_ratio 0.8 of the last good run's 1000 bytes"
        )
    );
    assert_eq!(fired(&h[2]), ["min_ratio"]);

    // Compared with the last good run (1000 bytes), not with the failed one (500).
    let (code, err) = run_with("dump", 900, &[]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run_with("dump", 2701, &[]);
    assert_eq!(code, 1, "{err}");
    let h = t.history("dump");
    assert_eq!(
        h[4]["reason"],
        format!("verify: {dump} is 2.6KiB, over max_ratio 3 of the last good run's 900 bytes")
    );
    assert_eq!(fired(&h[4]), ["max_ratio"]);

    // A path with a date in it is compared with the file the last good run wrote.
    let (code, err) = run_with("daily", 1000, &["--at", "2026-11-20"]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run_with("daily", 500, &["--at", "2026-11-21"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        t.history("daily")[1]["reason"],
        format!(
            "verify: {d}/db-2026-11-21.bin is 500 bytes, under min_ratio 0.8 of the last good \
             run's 1000 bytes ({d}/db-2026-11-20.bin)"
        )
    );
}

#[test]
fn no_retry_codes_end_the_run_at_once_and_other_codes_are_retried() {
    let t = Table::new(
        "no-retry",
        r#"
[jobs.fetch]
schedule = "@manual"
command = "exit $(cat $DIR/code)"
retries = 3
retry_delay = "100ms"
retry_backoff = 1.0
retry_jitter = false
no_retry_codes = [2]
"#,
    );
    std::fs::write(t.dir().join("code"), "2").expect("write code");
    let (code, _, err) = t.run(&["run", "fetch"]);
    assert_eq!(code, 1, "{err}");
    let h = t.history("fetch");
    assert_eq!(h[0]["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        h[0]["reason"],
        "exit 2 (exit 2 is in no_retry_codes: not retried)"
    );
    assert_eq!(h[0]["attempts"][0]["reason"], "exit 2");
    assert_eq!(fired(&h[0]), ["no_retry"]);
    let log = t.log();
    assert!(
        log.contains(" no-retry ") && log.contains(": exit 2 is in no_retry_codes: not retried"),
        "{log}"
    );
    assert!(!log.contains("retry-wait"), "{log}");

    std::fs::write(t.dir().join("code"), "3").expect("write code");
    let (code, _, err) = t.run(&["run", "fetch"]);
    assert_eq!(code, 1, "{err}");
    let h = t.history("fetch");
    assert_eq!(h[1]["attempts"].as_array().map(Vec::len), Some(4));
    assert_eq!(h[1]["reason"], "exit 3");
    assert!(h[1].get("fired").is_none(), "{}", h[1]);
}

#[test]
fn a_warning_code_ends_the_run_as_a_warning_that_counts_as_success() {
    let t = Table::new(
        "warning",
        r#"
[jobs.sync]
schedule = "@manual"
command = "echo sync >> $DIR/steps; exit 24"
warning_codes = [24]
retries = 2
retry_delay = "100ms"
retry_jitter = false

[jobs.report]
after = ["sync"]
command = "echo report >> $DIR/steps"
"#,
    );
    let (code, _, err) = t.run(&["run", "sync"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(": warning after 1 attempt: exit 24 (a warning_codes exit)"),
        "{err}"
    );
    let h = t.history("sync");
    assert_eq!(h[0]["outcome"], "warning");
    assert_eq!(h[0]["reason"], "exit 24 (a warning_codes exit)");
    assert_eq!(h[0]["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(h[0]["attempts"][0]["exit_code"], 24);
    assert_eq!(fired(&h[0]), ["warning"]);
    // The step after it ran.
    let steps = std::fs::read_to_string(t.dir().join("steps")).expect("steps");
    assert_eq!(steps, "sync\nreport\n");
    assert_eq!(t.history("report")[0]["outcome"], "success");
    let log = t.log();
    assert!(
        log.contains("outcome=warning attempts=1: exit 24 (a warning_codes exit)"),
        "{log}"
    );
}

#[test]
fn warn_after_tells_a_slow_run_once_and_lets_it_finish() {
    let t = Table::new(
        "slow",
        r#"
[jobs.backup]
schedule = "@manual"
command = "sleep $(cat $DIR/secs)"
warn_after = "1s"

[jobs.flaky]
schedule = "@manual"
command = "test -e $DIR/flaky-once || { touch $DIR/flaky-once; exit 1; }"
warn_after = "500ms"
retries = 1
retry_delay = "1500ms"
retry_jitter = false
"#,
    );
    // A quick run first: it sets the usual duration, and is not slow.
    std::fs::write(t.dir().join("secs"), "0.2").expect("write secs");
    let (code, _, err) = t.run(&["run", "backup"]);
    assert_eq!(code, 0, "{err}");
    assert!(!t.log().contains(" slow "), "{}", t.log());

    std::fs::write(t.dir().join("secs"), "2.5").expect("write secs");
    let start = Instant::now();
    let (code, _, err) = t.run(&["run", "backup"]);
    assert_eq!(code, 0, "{err}");
    assert!(start.elapsed() >= Duration::from_millis(2500));
    let h = t.history("backup");
    assert_eq!(h[1]["outcome"], "success");
    assert_eq!(fired(&h[1]), ["slow"]);
    assert!(h[0].get("fired").is_none(), "{}", h[0]);
    let log = t.log();
    let slow: Vec<&str> = log.lines().filter(|l| l.contains(" slow ")).collect();
    assert_eq!(slow.len(), 1, "{log}");
    assert!(
        slow[0].contains("job=backup")
            && slow[0].contains("attempt=1")
            && slow[0]
                .contains(": still running after 1s (warn_after), not stopped; it usually takes "),
        "{}",
        slow[0]
    );
    // Told once its warn_after had passed, while it ran (it sleeps 2.5 s), before it ended.
    let elapsed: f64 = slow[0]
        .split(" elapsed=")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|v| v.parse().ok())
        .expect("elapsed field");
    assert!((1.0..2.5).contains(&elapsed), "{}", slow[0]);
    let slow_at = log.find(" slow ").expect("slow line");
    let end_at = log.rfind(" run-end ").expect("run-end line");
    assert!(slow_at < end_at, "{log}");

    // A run waiting to retry is still going: it is told during the wait.
    let (code, _, err) = t.run(&["run", "flaky"]);
    assert_eq!(code, 0, "{err}");
    let h = t.history("flaky");
    assert_eq!(h[0]["attempts"].as_array().map(Vec::len), Some(2));
    assert_eq!(fired(&h[0]), ["slow"]);
    let log = t.log();
    let slow: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" slow ") && l.contains("job=flaky"))
        .collect();
    assert_eq!(slow.len(), 1, "{log}");
    assert!(
        slow[0].contains(": still running after 500ms (warn_after), not stopped"),
        "{}",
        slow[0]
    );
}
