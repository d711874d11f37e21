//! Containment: every process a job starts is part of its run, in both mechanisms (a cgroup
//! per run, and the process fallback): stopped with it at a timeout, a SIGTERM or a replace,
//! stopped or kept when left behind, never blocking the next run, and measured.

use std::path::Path;

use super::daemon::Daemon;
use super::{Table, alive, skip, wait_for};

/// The mechanisms this host can test: the process fallback always; a cgroup per run as root
/// on a host with a cgroup2 mount.
fn modes(test: &str) -> Vec<&'static str> {
    let mut m = vec!["process"];
    let cgroup2 = std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|t| t.lines().any(|l| l.contains(" - cgroup2 ")));
    if nix::unistd::geteuid().is_root() && cgroup2 {
        m.push("cgroup");
    } else {
        skip(
            &format!("{test} (cgroup mode)"),
            "needs root and a cgroup2 mount",
        );
    }
    m
}

/// A table whose `[settings]` choose the mechanism.
fn table(tag: &str, mode: &str, jobs: &str) -> Table {
    let t = Table::new(&format!("{tag}-{mode}"), jobs);
    let text = std::fs::read_to_string(&t.path).expect("table");
    let text = text.replace(
        "[settings]\n",
        &format!("[settings]\ncontainment = \"{mode}\"\n"),
    );
    std::fs::write(&t.path, text).expect("table");
    t
}

/// The pid files of the strays the job's runs left (`stray.RUN_ID`).
fn strays(t: &Table) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(t.dir())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("stray."))
        })
        .collect();
    v.sort();
    v
}

/// The stray of the next run that leaves one: its pid file is read, then removed, so the
/// run after it is told apart (run ids of one second do not sort by start).
fn next_stray(t: &Table) -> Stray {
    wait_for(|| !strays(t).is_empty());
    let path = strays(t).remove(0);
    let stray = Stray::from(&path);
    std::fs::remove_file(&path).expect("remove pid file");
    stray
}

/// SIGTERM to a process.
fn term(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

/// A manual job with `extra` keys and a shell command.
fn job(name: &str, extra: &str, command: &str) -> String {
    format!("[jobs.{name}]\nschedule = \"@manual\"\n{extra}\ncommand = '''{command}'''\n")
}

/// A process a job left, by the pid it wrote to a file; killed when the test ends, whatever
/// happens.
struct Stray(i32);

impl Stray {
    fn from(path: &Path) -> Stray {
        wait_for(|| std::fs::read_to_string(path).is_ok_and(|s| s.ends_with('\n')));
        let pid = std::fs::read_to_string(path)
            .expect("pid file")
            .trim()
            .parse()
            .expect("a pid");
        Stray(pid)
    }

    /// Its cgroup v2 path.
    fn cgroup(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/cgroup", self.0))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            .unwrap_or_default()
    }
}

impl Drop for Stray {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A job that leaves a process in a new session behind (as `ssh -f`, `gpg-agent`, `pg_ctl
/// start` do), having waited until it runs `sleep`.
const LEAVES_ONE: &str = r#"(setsid sh -c 'echo $$ > $DIR/stray.$CRONWARDEN_RUN_ID; exec sleep 300' >/dev/null 2>&1 &); until grep -qs sleep /proc/$(cat $DIR/stray.$CRONWARDEN_RUN_ID 2>/dev/null)/cmdline; do sleep 0.01; done; echo started"#;

#[test]
fn a_setsid_grandchild_and_a_double_forked_daemon_are_stopped_at_the_timeout() {
    for mode in modes("timeout") {
        let t = table(
            "c-timeout",
            mode,
            r#"
[jobs.tree]
schedule = "@manual"
timeout = "2s"
kill_grace = "1s"
command = '''
setsid sh -c 'echo $$ > $DIR/a; exec sleep 300' &
sh -c 'setsid sh -c "echo \$\$ > $DIR/b; exec sleep 301" &'
while [ ! -s $DIR/a ] || [ ! -s $DIR/b ]; do sleep 0.01; done
sleep 302
'''
"#,
        );
        let (code, _, err) = t.run(&["run", "tree"]);
        assert_eq!(code, 1, "{mode}: {err}");
        let (a, b) = (
            Stray::from(&t.dir().join("a")),
            Stray::from(&t.dir().join("b")),
        );
        assert!(
            !alive(a.0),
            "{mode}: the setsid grandchild survived the timeout"
        );
        assert!(
            !alive(b.0),
            "{mode}: the double-forked daemon survived the timeout"
        );
        let h = t.history("tree");
        assert_eq!(h[0]["reason"], "timed out after 2s", "{mode}");
        // Stopped with the run: not reported as left behind.
        assert!(h[0].get("leftovers").is_none(), "{mode}: {:#}", h[0]);
    }
}

#[test]
fn leftovers_stop_names_the_stray_stops_it_and_the_next_run_goes_ahead() {
    for mode in modes("leftovers stop") {
        let t = table(
            "c-stop",
            mode,
            &job("nightly", "kill_grace = \"1s\"", LEAVES_ONE),
        );
        check_stop(&t, mode);
    }
}

fn check_stop(t: &Table, mode: &str) {
    let (code, _, err) = t.run(&["run", "nightly"]);
    assert_eq!(code, 0, "{mode}: {err}");
    let first = &t.history("nightly")[0];
    let id = first["run_id"].as_str().expect("run id");
    let stray = Stray::from(&t.dir().join(format!("stray.{id}")));
    assert!(!alive(stray.0), "{mode}: the stray outlived its run");
    let left = &first["leftovers"][0];
    assert_eq!(left["pid"], stray.0, "{mode}: {first:#}");
    assert_eq!(left["action"], "stopped", "{mode}");
    assert!(
        left["command"]
            .as_str()
            .is_some_and(|c| c.contains("sleep 300")),
        "{mode}: {left}"
    );
    let log = t.log();
    assert!(
        log.contains(&format!(
            "stopped a process left behind: sleep 300 (pid {})",
            stray.0
        )),
        "{mode}: {log}"
    );
    // The next run is not blocked by anything the first one left.
    let (code, _, err) = t.run(&["run", "nightly"]);
    assert_eq!(code, 0, "{mode}: {err}");
    assert_eq!(t.history("nightly")[1]["outcome"], "success", "{mode}");
}

#[test]
fn leftovers_keep_lets_the_stray_live_and_it_holds_nothing_of_the_job() {
    for mode in modes("leftovers keep") {
        let t = table(
            "c-keep",
            mode,
            &job("nightly", "leftovers = \"keep\"", LEAVES_ONE),
        );
        let (code, _, err) = t.run(&["run", "nightly"]);
        assert_eq!(code, 0, "{mode}: {err}");
        let first = &t.history("nightly")[0];
        let id = first["run_id"].as_str().expect("run id");
        let stray = Stray::from(&t.dir().join(format!("stray.{id}")));
        assert!(alive(stray.0), "{mode}: a kept process was stopped");
        assert_eq!(first["leftovers"][0]["action"], "kept", "{mode}: {first:#}");
        assert_eq!(first["leftovers"][0]["pid"], stray.0, "{mode}");
        if mode == "cgroup" {
            assert!(
                stray.cgroup().ends_with("/cronwarden/kept"),
                "{}",
                stray.cgroup()
            );
        }
        // It holds neither the lock nor the job's state.
        let (_, out, _) = t.run(&["status", "nightly", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(v[0]["state"], "idle", "{mode}: {out}");
        let (code, _, err) = t.run(&["run", "nightly"]);
        assert_eq!(code, 0, "{mode}: {err}");
        assert!(alive(stray.0), "{mode}");
        let second = &t.history("nightly")[1];
        let id = second["run_id"].as_str().expect("run id");
        let _second_stray = Stray::from(&t.dir().join(format!("stray.{id}")));
    }
}

#[test]
fn sigterm_of_run_and_a_replacing_run_stop_the_escaped_processes_too() {
    for mode in modes("stop and replace") {
        let command = LEAVES_ONE.replace("echo started", "sleep 300");
        let t = table(
            "c-term",
            mode,
            &job(
                "long",
                "overlap = \"replace\"\nkill_grace = \"1s\"",
                &command,
            ),
        );
        // SIGTERM to `run`.
        let mut first = t.spawn(&["run", "long"]);
        let s1 = next_stray(&t);
        t.wait_running("long");
        term(first.id());
        assert_eq!(first.wait().expect("wait").code(), Some(143), "{mode}");
        assert!(
            !alive(s1.0),
            "{mode}: SIGTERM of run left the escaped process"
        );
        // A run that replaces one.
        let mut second = t.spawn(&["run", "long"]);
        let s2 = next_stray(&t);
        let mut third = t.spawn(&["run", "long"]);
        assert_eq!(second.wait().expect("wait").code(), Some(143), "{mode}");
        assert!(
            !alive(s2.0),
            "{mode}: the replaced run left its escaped process"
        );
        let s3 = next_stray(&t);
        term(third.id());
        assert_eq!(third.wait().expect("wait").code(), Some(143), "{mode}");
        assert!(!alive(s3.0), "{mode}");
    }
}

#[test]
fn after_kill_9_of_the_daemon_no_second_copy_starts_while_the_runs_processes_live() {
    for mode in modes("kill -9") {
        let t = table(
            "c-kill9",
            mode,
            &job(
                "long",
                "kill_grace = \"1s\"",
                &LEAVES_ONE.replace(
                    "echo started",
                    "echo $$ > $DIR/main; until [ -e $DIR/end ]; do sleep 0.05; done",
                ),
            ),
        );
        let d = Daemon::start(&t);
        assert_eq!(t.run(&["trigger", "long"]).0, 0, "{mode}");
        let main = Stray::from(&t.dir().join("main"));
        d.signal(libc::SIGKILL);
        d.wait();
        assert!(alive(main.0), "{mode}: the job died with the daemon");
        let d = Daemon::start(&t);
        // The run's processes hold the job: a new run is refused.
        let (code, _, err) = t.run(&["trigger", "long", "--wait"]);
        assert_eq!(code, 75, "{mode}: {err}");
        // The main process ends; what it left is stopped by the daemon that took the run
        // over, and only then may the job run again.
        std::fs::write(t.dir().join("end"), "").expect("end");
        let ran = || {
            t.history("long")
                .into_iter()
                .find(|r| r["outcome"] != "skipped")
        };
        wait_for(|| ran().is_some());
        let rec = &ran().expect("the run's record");
        let id = rec["run_id"].as_str().expect("run id");
        let stray = Stray::from(&t.dir().join(format!("stray.{id}")));
        assert!(
            !alive(stray.0),
            "{mode}: recorded while a process of the run lives: {rec:#}"
        );
        std::fs::remove_file(t.dir().join("end")).expect("end");
        std::fs::remove_file(t.dir().join("main")).expect("main");
        t.wait_idle("long");
        let mut again = t.spawn(&["trigger", "long", "--wait"]);
        let _next = Stray::from(&t.dir().join("main"));
        std::fs::write(t.dir().join("end"), "").expect("end");
        assert_eq!(again.wait().expect("wait").code(), Some(0), "{mode}");
        drop(d);
    }
}

#[test]
fn cpu_time_and_peak_memory_of_a_grandchild_are_recorded() {
    for mode in modes("usage") {
        // The grandchild (perl, started by the job's shell) burns 0.6 s of CPU and touches
        // 64 MiB.
        let t = table(
            "c-usage",
            mode,
            r#"
[jobs.burn]
schedule = "@manual"
command = '''perl -e '$x = "a" x (64 << 20); 1 while (times)[0] < 0.6'; echo done'''
"#,
        );
        let (code, _, err) = t.run(&["run", "burn"]);
        assert_eq!(code, 0, "{mode}: {err}");
        let rec = &t.history("burn")[0];
        let cpu = rec["cpu_seconds"].as_f64().expect("cpu_seconds");
        let peak = rec["peak_memory_bytes"]
            .as_u64()
            .expect("peak_memory_bytes");
        assert!((0.6..10.0).contains(&cpu), "{mode}: {rec:#}");
        assert!((64 << 20..1 << 30).contains(&peak), "{mode}: {rec:#}");
        assert_eq!(
            rec["attempts"][0]["cpu_seconds"], rec["cpu_seconds"],
            "{mode}"
        );
    }
}

/// The controllers enabled for the runs of a `cronwarden` started by this test process
/// (the words of `<its cgroup>/cronwarden/cgroup.subtree_control`).
fn run_controllers() -> String {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mount = mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split(' ').nth(4))
        .expect("a cgroup2 mount");
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a v2 cgroup");
    let dir = Path::new(mount)
        .join(own.trim_start_matches('/'))
        .join("cronwarden");
    std::fs::read_to_string(dir.join("cgroup.subtree_control")).expect("subtree_control")
}

#[test]
fn a_limit_the_host_cannot_apply_is_said_and_io_class_works_without_cgroups() {
    for mode in modes("limits") {
        let t = table(
            "c-limits",
            mode,
            &job(
                "b",
                "memory_max = \"64MiB\"\nio_class = \"idle\"",
                "ionice -p $$ > $DIR/io",
            ),
        );
        let (code, _, err) = t.run(&["run", "b"]);
        assert_eq!(code, 0, "{mode}: {err}");
        let io = std::fs::read_to_string(t.dir().join("io")).expect("io");
        assert_eq!(io.trim(), "idle", "{mode}");
        let rec = &t.history("b")[0];
        let said = rec["limits_not_applied"].to_string();
        let memory_on =
            mode == "cgroup" && run_controllers().split_whitespace().any(|c| c == "memory");
        if memory_on {
            assert!(rec.get("limits_not_applied").is_none(), "{mode}: {rec:#}");
        } else {
            assert!(
                said.contains("memory_max 64MiB not applied"),
                "{mode}: {rec:#}"
            );
            let log = t.log();
            assert!(
                log.contains(" limits job=b ") && log.contains("memory_max 64MiB not applied"),
                "{log}"
            );
        }
    }
}

/// Runs `cronwarden -c TABLE run JOB` as `nobody` (through runuser; the table's directory
/// handed to nobody first).
fn run_as_nobody(t: &Table, job: &str) -> (i32, String) {
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("user nobody");
    let mut todo = vec![t.dir().to_path_buf()];
    while let Some(p) = todo.pop() {
        nix::unistd::chown(&p, Some(nobody.uid), None).expect("chown");
        if p.is_dir() {
            todo.extend(
                std::fs::read_dir(&p)
                    .expect("dir")
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", env!("CARGO_BIN_EXE_cronwarden"), "-c"])
        .arg(&t.path)
        .args(["run", job])
        .env_remove("CRONWARDEN_CONFIG")
        .output()
        .expect("runuser (util-linux) runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_user_without_a_cgroup_gets_the_fallback_or_a_clear_error_never_a_silent_downgrade() {
    if !nix::unistd::geteuid().is_root() {
        skip(
            "containment as nobody",
            "needs root to run cronwarden as nobody",
        );
        return;
    }
    // Forced: an error at start that says why.
    let t = table("c-nobody", "cgroup", &job("j", "", "true"));
    let (code, err) = run_as_nobody(&t, "j");
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("containment = \"cgroup\", but this host cannot give runs a cgroup: ")
            && err.contains("not writable"),
        "{err}"
    );
    assert!(t.history("j").is_empty());
    // auto: the process fallback, which still stops an escaped process.
    let t = table("c-nobody", "auto", &job("j", "", LEAVES_ONE));
    let (code, err) = run_as_nobody(&t, "j");
    assert_eq!(code, 0, "{err}");
    let rec = &t.history("j")[0];
    let id = rec["run_id"].as_str().expect("run id");
    let stray = Stray::from(&t.dir().join(format!("stray.{id}")));
    assert!(!alive(stray.0), "the fallback missed a setsid process");
    assert_eq!(rec["leftovers"][0]["pid"], stray.0, "{rec:#}");
}

#[test]
fn a_daemon_shutdown_stops_the_escaped_processes_of_its_runs() {
    for mode in modes("shutdown") {
        let t = table(
            "c-shutdown",
            mode,
            &job(
                "long",
                "kill_grace = \"1s\"",
                &LEAVES_ONE.replace("echo started", "sleep 300"),
            ),
        );
        let text = std::fs::read_to_string(&t.path).expect("table");
        std::fs::write(
            &t.path,
            text.replace("[settings]\n", "[settings]\nshutdown_grace = \"1s\"\n"),
        )
        .expect("table");
        let d = Daemon::start(&t);
        assert_eq!(t.run(&["trigger", "long"]).0, 0, "{mode}");
        t.wait_running("long");
        let stray = next_stray(&t);
        if mode == "cgroup" {
            assert!(
                stray.cgroup().contains("/cronwarden/long."),
                "{}",
                stray.cgroup()
            );
        }
        d.signal(libc::SIGTERM);
        assert_eq!(d.wait(), Some(0), "{mode}");
        assert!(
            !alive(stray.0),
            "{mode}: the daemon's shutdown left an escaped process"
        );
        let log = t.log();
        assert!(log.contains(&format!(" containment mode={mode}")), "{log}");
    }
}

/// The daemon lowers its own `oom_score_adj` to -900 and a job gets the value back, or, where
/// it may not (no CAP_SYS_RESOURCE, as in some containers: found by the systemd lab), the
/// containment line says so and nothing changes.
#[test]
fn the_daemon_lowers_its_oom_score_adj_or_says_it_could_not() {
    let ours = std::fs::read_to_string("/proc/self/oom_score_adj").expect("oom_score_adj");
    let ours: i32 = ours.trim().parse().expect("a number");
    let t = table(
        "c-oom",
        "process",
        &job("j", "", "cat /proc/self/oom_score_adj > $DIR/j.oom"),
    );
    let d = Daemon::start(&t);
    let daemon: i32 = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", d.pid()))
        .expect("the daemon's oom_score_adj")
        .trim()
        .parse()
        .expect("a number");
    let (code, _, err) = t.run(&["trigger", "--wait", "j"]);
    assert_eq!(code, 0, "{err}");
    let job: i32 = std::fs::read_to_string(t.dir().join("j.oom"))
        .expect("the job's oom_score_adj")
        .trim()
        .parse()
        .expect("a number");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    let log = t.log();
    let line = log
        .lines()
        .find(|l| l.contains(" containment mode=process"))
        .expect("a containment line");
    if ours <= -900 {
        assert_eq!(daemon, ours, "{line}");
    } else if daemon == -900 {
        assert!(!line.contains("oom_score_adj"), "{line}");
    } else {
        assert_eq!(daemon, ours, "{line}");
        assert!(
            line.contains(&format!(
                "the daemon's oom_score_adj stays {ours}, not lowered ("
            )),
            "{line}"
        );
    }
    assert_eq!(job, ours, "a job gets the usual oom_score_adj");
}

/// The cgroup2 mount point (from /proc/self/mountinfo).
fn cgroup2_mount() -> std::path::PathBuf {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4))
        .map(std::path::PathBuf::from)
        .expect("a cgroup2 mount")
}

/// The names in the run's state directory's `running/` that are not spares: the markers,
/// and any file claimed for a run that never went.
fn markers_and_claimed(t: &Table) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(t.dir().join("state/running"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with(".spare"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A run is made ready before its instant (its first attempt's cgroup, the file its marker
/// will be): one that is skipped at its instant leaves neither behind, and the run that
/// holds the job keeps its own.
#[test]
fn a_run_skipped_at_its_instant_leaves_no_cgroup_and_no_marker_file() {
    for mode in modes("what a skipped run had ready") {
        // A name of this test's own: the runs' cgroups of every test run as root are in
        // one directory.
        let long = format!("long-{}", std::process::id());
        let long = long.as_str();
        let t = table(
            "c-ready",
            mode,
            &job(
                long,
                "",
                "echo $$ > $DIR/main; until [ -e $DIR/end ]; do sleep 0.05; done",
            ),
        );
        let d = Daemon::start(&t);
        assert_eq!(t.run(&["trigger", long]).0, 0, "{mode}");
        let main = Stray::from(&t.dir().join("main"));
        let cgroup = main.cgroup();
        let (code, _, err) = t.run(&["trigger", long, "--wait"]);
        assert_eq!(code, 75, "{mode}: {err}");
        let skipped = t.history(long)[0]["run_id"].clone();
        assert_eq!(t.outcomes(long), ["skipped"], "{mode}");
        // The skipped run's cgroup went (the running run's stays), and nothing was left
        // claimed in running/: one marker, the running run's.
        let groups = || -> Vec<String> {
            let dir = cgroup2_mount().join(cgroup.trim_start_matches('/'));
            let parent = dir.parent().expect("the runs' cgroups").to_path_buf();
            let mut v: Vec<String> = std::fs::read_dir(parent)
                .expect("cgroup dir")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{long}.")))
                .collect();
            v.sort();
            v
        };
        if mode == "cgroup" {
            assert!(cgroup.contains(&format!("/cronwarden/{long}.")), "{cgroup}");
            wait_for(|| groups().len() == 1);
            assert!(cgroup.ends_with(&groups()[0]), "{cgroup}: {:?}", groups());
        }
        wait_for(|| markers_and_claimed(&t).len() == 1);
        let marker = &markers_and_claimed(&t)[0];
        assert!(
            marker.ends_with(".json") && !marker.starts_with('.'),
            "{mode}: {marker}"
        );
        assert!(!marker.contains(skipped.as_str().unwrap_or("-")), "{mode}");
        // Once the run ends, nothing of either run is left.
        std::fs::write(t.dir().join("end"), "").expect("end");
        wait_for(|| t.history(long).len() == 2);
        wait_for(|| markers_and_claimed(&t).is_empty());
        if mode == "cgroup" {
            wait_for(|| groups().is_empty());
        }
        drop(d);
    }
}
