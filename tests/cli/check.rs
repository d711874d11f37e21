use super::{TempDir, run, wait_for};

#[test]
fn shipped_example_table_is_valid() {
    // A copy with mode 0644, so the result does not depend on the checkout's umask.
    let dir = TempDir::new("example");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/jobs.example.toml"))
        .expect("jobs.example.toml");
    let example = dir.write("jobs.toml", &text);
    let example = example.to_str().expect("utf-8");
    let (code, out, err) = run(&["-c", example, "check"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(out.trim(), "7 jobs, 3 alert channels: ok");
    // `list` works on it on a fresh machine, in table order.
    let (code, out, err) = run(&["-c", example, "list"]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.trim_start().split("  ").next())
        .map(|n| n.trim_start_matches([' ', '└', '─']).trim())
        .collect();
    assert_eq!(
        names,
        [
            "backup",
            "extract",
            "transform",
            "load",
            "report",
            "heartbeat",
            "reindex"
        ]
    );
    // The pipeline shows as a tree under its root.
    assert!(out.lines().any(|l| l.starts_with("└─ transform ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("   └─ load ")), "{out}");
    assert!(out.contains("after extract"), "{out}");
}

const BROKEN: &str = r#"[settings]
timezone = "Europe/Berln"

[alerts.ops]
type = "email"
smtp_url = "smtp://127.0.0.1:2525"
from = "cron@example.com"
to = ["ops@example.com"]

[jobs.a]
schedule = "0 0 31 2 *"
command = ["/bin/true"]
retrys = 3

[jobs.b]
schedule = "61 * * * *"
command = "echo {{ params.x }}"
alert = ["opz"]
retry_backoff = 0.5

[jobs.c]
command = ["/bin/true"]

[jobs.d]
after = ["e"]
command = ["/bin/true"]

[jobs.e]
after = ["d"]
command = ["/bin/true"]

[jobs.f]
after = ["nope"]
command = ["/bin/true"]
timeout = "5 minutes"
"#;

#[test]
fn broken_table_reports_every_problem_with_its_line() {
    let dir = TempDir::new("broken");
    let path = dir.write("jobs.toml", BROKEN);
    let (code, out, err) = run(&["-c", path.to_str().expect("utf-8"), "check"]);
    assert_eq!(code, 78, "stdout: {out}\nstderr: {err}");
    let p = path.display();
    let expected = [
        format!(
            "{p}:2:12: error: [settings]: timezone: unknown time zone \"Europe/Berln\" (did you mean \"Europe/Berlin\"?)"
        ),
        format!("{p}:11:12: error: job \"a\": schedule \"0 0 31 2 *\" can never fire"),
        format!("{p}:13:1: error: job \"a\": unknown key \"retrys\" (did you mean \"retries\"?)"),
        format!(
            "{p}:16:12: error: job \"b\": schedule \"61 * * * *\": minute field \"61\": 61 is out of range (allowed: 0-59)"
        ),
        format!("{p}:17:11: error: job \"b\": command: {{{{ params.x }}}} in a string command"),
        format!(
            "{p}:18:10: error: job \"b\": alert: no channel [alerts.opz] is defined (did you mean \"ops\"?)"
        ),
        format!("{p}:19:17: error: job \"b\": retry_backoff: 0.5 would shrink the delays"),
        format!("{p}:21:7: error: job \"c\": no schedule and no after"),
        format!("{p}:33:10: error: job \"f\": after: no job named \"nope\""),
        format!("{p}:35:11: error: job \"f\": timeout: \"5 minutes\": the number 5 needs a unit"),
    ];
    for want in &expected {
        assert!(
            err.lines().any(|l| l.starts_with(want.as_str())),
            "missing {want:?} in:\n{err}"
        );
    }
    assert!(
        err.lines().any(
            |l| l.contains("error: job \"e\": after: dependency cycle e -> d -> e")
                || l.contains("error: job \"d\": after: dependency cycle d -> e -> d")
        ),
        "{err}"
    );
    assert!(err.trim_end().ends_with("11 errors"), "{err}");
}

#[test]
fn syntax_errors_are_reported_with_position() {
    let dir = TempDir::new("syntax");
    let path = dir.write(
        "jobs.toml",
        "[jobs.a]\nschedule = \"0 3 * * *\ncommand = [\"x\"]\n[jobs.b]\nschedule = 5\ncommand = [\"/bin/true\"]\n",
    );
    let (code, _, err) = run(&["-c", path.to_str().expect("utf-8"), "check"]);
    assert_eq!(code, 78);
    assert!(err.contains(":2:22: error: TOML syntax:"), "{err}");
    assert!(
        err.contains(":5:12: error: job \"b\": schedule: expected a string, found an integer"),
        "{err}"
    );
}

#[test]
fn missing_table_is_a_config_error() {
    let (code, _, err) = run(&["-c", "/nonexistent/jobs.toml", "check"]);
    assert_eq!(code, 78);
    assert!(
        err.contains("/nonexistent/jobs.toml: error: cannot read the job table"),
        "{err}"
    );
    // Commands that need a table say the same and exit 78 too.
    let (code, _, err) = run(&["-c", "/nonexistent/jobs.toml", "list"]);
    assert_eq!(code, 78, "{err}");
}

#[test]
fn config_path_from_environment() {
    let dir = TempDir::new("envpath");
    let path = dir.write(
        "t.toml",
        "[jobs.x]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n",
    );
    let out = super::bin()
        .env("CRONWARDEN_CONFIG", &path)
        .arg("check")
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1 job, 0 alert channels: ok"
    );
}

#[test]
fn drop_in_files_are_loaded_and_duplicates_name_both_places() {
    let dir = TempDir::new("include");
    let main = dir.write(
        "jobs.toml",
        "include = [\"jobs.d/*.toml\"]\n[jobs.a]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n",
    );
    dir.write(
        "jobs.d/10-b.toml",
        "[alerts.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n\n[jobs.b]\nafter = [\"a\"]\ncommand = [\"/bin/true\"]\nalert = [\"hook\"]\n",
    );
    let (code, out, err) = run(&["-c", main.to_str().expect("utf-8"), "check"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "2 jobs, 1 alert channel in 2 files: ok");

    let dup = dir.write(
        "jobs.d/20-dup.toml",
        "[settings]\ntimezone = \"UTC\"\n[jobs.a]\nschedule = \"@hourly\"\ncommand = [\"/bin/true\"]\n",
    );
    let (code, _, err) = run(&["-c", main.to_str().expect("utf-8"), "check"]);
    assert_eq!(code, 78, "{err}");
    let d = dup.display();
    let m = main.display();
    assert!(
        err.contains(&format!("{d}:1:2: error: unknown key \"settings\"")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{d}:3:7: error: job \"a\": defined twice (first at {m}:2)"
        )),
        "{err}"
    );
}

#[test]
fn fan_in_from_different_roots_is_rejected() {
    let dir = TempDir::new("fanin");
    let path = dir.write(
        "jobs.toml",
        r#"
[jobs.r1]
schedule = "0 1 * * *"
command = ["/bin/true"]
[jobs.r2]
schedule = "0 2 * * *"
command = ["/bin/true"]
[jobs.a]
after = ["r1"]
command = ["/bin/true"]
[jobs.b]
after = ["r2"]
command = ["/bin/true"]
[jobs.join]
after = ["a", "b"]
command = ["/bin/true"]
[jobs.ok_join]
after = ["a", "r1"]
command = ["/bin/true"]
"#,
    );
    let (code, _, err) = run(&["-c", path.to_str().expect("utf-8"), "check"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("job \"join\": after: its parents never run in the same pipeline run"),
        "{err}"
    );
    assert!(err.contains("a (from r1); b (from r2)"), "{err}");
    assert!(!err.contains("ok_join"), "{err}");
}

#[test]
fn three_job_cycle_is_named_in_run_order() {
    let dir = TempDir::new("cycle");
    let path = dir.write(
        "jobs.toml",
        "[jobs.a]\nafter = [\"c\"]\ncommand = [\"/bin/true\"]\n[jobs.b]\nafter = [\"a\"]\ncommand = [\"/bin/true\"]\n[jobs.c]\nafter = [\"b\"]\ncommand = [\"/bin/true\"]\n",
    );
    let (code, _, err) = run(&["-c", path.to_str().expect("utf-8"), "check"]);
    assert_eq!(code, 78);
    let cycles: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("dependency cycle"))
        .collect();
    assert_eq!(cycles.len(), 1, "{err}");
    // Each job runs after the one before it: c -> a -> b -> c, starting anywhere.
    assert!(
        ["c -> a -> b -> c", "a -> b -> c -> a", "b -> c -> a -> b"]
            .iter()
            .any(|c| cycles[0].ends_with(&format!("dependency cycle {c}"))),
        "{err}"
    );
}

/// A child process killed when dropped (when a test gives up on it).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `check` on `table`, waiting for it to end (and failing if it never does, as a check
/// stuck on a FIFO would): (exit code, stderr).
fn check_ends(table: &std::path::Path) -> (i32, String) {
    use std::io::Read;
    let child = super::bin()
        .arg("-c")
        .arg(table)
        .arg("check")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("check starts");
    let mut c = Reaped(child);
    super::wait_for(|| c.0.try_wait().is_ok_and(|s| s.is_some()));
    let mut err = String::new();
    if let Some(mut e) = c.0.stderr.take() {
        e.read_to_string(&mut err).expect("stderr");
    }
    let code = c.0.wait().expect("wait").code().unwrap_or(-1);
    (code, err)
}

#[test]
fn only_regular_files_of_at_most_16_mib_are_read_as_tables() {
    let dir = TempDir::new("oddfiles");
    let fifo = dir.path().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    let main = dir.write(
        "jobs.toml",
        "include = [\"fifo.toml\"]\n[jobs.a]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n",
    );
    // Nobody writes to the FIFO: reading it would wait forever (the daemon's reload froze).
    let (code, err) = check_ends(&main);
    assert_eq!(code, 78, "{err}");
    let f = fifo.display();
    assert!(
        err.contains(&format!(
            "{f}: error: cannot read the job table: it is a FIFO; only regular files are read"
        )),
        "{err}"
    );
    // The main table itself.
    let (code, err) = check_ends(&fifo);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains(&format!("{f}: error: cannot read")), "{err}");

    // A file over 16 MiB is refused before it is read; so is one that would take the main
    // file and its drop-ins together over 16 MiB.
    let big = dir.write("big.toml", "");
    std::fs::File::options()
        .write(true)
        .open(&big)
        .and_then(|f| f.set_len((16 << 20) + 1))
        .expect("grow big.toml");
    dir.write("jobs.toml", "include = [\"big.toml\"]\n");
    let (code, err) = check_ends(&main);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!(
            "{}: error: cannot read the job table: it is larger than 16 MiB, the most a table \
             file may hold",
            big.display()
        )),
        "{err}"
    );
    let half = "#".repeat(9 << 20);
    dir.write("d/1.toml", &half);
    let second = dir.write("d/2.toml", &half);
    dir.write("jobs.toml", "include = [\"d/*.toml\"]\n");
    let (code, err) = check_ends(&main);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!(
            "{}: error: cannot read the job table: it would make the table larger than 16 MiB",
            second.display()
        )),
        "{err}"
    );
    assert_eq!(err.matches("error: cannot read").count(), 1, "{err}");

    // A device (an endless one: reading it used to fill memory) and a directory.
    dir.write("jobs.toml", "include = [\"/dev/zero\", \"d\"]\n");
    let (code, err) = check_ends(&main);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("/dev/zero: error: cannot read the job table: it is a character device"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}: error: cannot read the job table: it is a directory",
            dir.path().join("d").display()
        )),
        "{err}"
    );
}

#[test]
fn a_reload_that_includes_a_fifo_keeps_the_old_table_and_keeps_ticking() {
    let t = super::Table::new(
        "fifo-reload",
        "[jobs.tick]\nschedule = \"* * * * * *\"\ncommand = \"echo x >> $DIR/ticks\"\n",
    );
    let count = || {
        std::fs::read_to_string(t.dir().join("ticks"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let d = super::daemon::Daemon::start(&t);
    wait_for(|| count() >= 1);
    let fifo = t.dir().join("more.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    let text = std::fs::read_to_string(&t.path).expect("table");
    std::fs::write(&t.path, format!("include = [\"more.toml\"]\n{text}")).expect("write");
    d.signal(libc::SIGHUP);
    // The reload ends (it used to wait for a writer forever), names the FIFO, and the old
    // table goes on.
    wait_for(|| t.log().contains("the old table keeps running"));
    assert!(
        t.log().contains(&format!(
            "{}: error: cannot read the job table: it is a FIFO",
            fifo.display()
        )),
        "{}",
        t.log()
    );
    let before = count();
    wait_for(|| count() >= before + 2);
}

/// Values that `check` used to accept although every run of the job would then fail or never
/// happen (issue 15, item 14).
const DOOMED: &str = r#"[jobs.argv]
schedule = "@daily"
command = ["/bin/echo", "a\u0000b"]
[jobs.shell]
schedule = "@daily"
command = "echo \u0000"
[jobs.envs]
schedule = "@daily"
command = ["/bin/true"]
env = { X = "a\u0000b", "Y\u0000" = "y" }
[jobs.verify]
schedule = "@daily"
command = ["/bin/true"]
verify = { files = ["/tmp/a\u0000b"] }
[jobs.every]
schedule = "@every 1999ms"
command = ["/bin/true"]
[jobs.every2]
schedule = "@every 2500ms"
command = ["/bin/true"]
[jobs.forever]
schedule = "* * * * *"
jitter = "999999999d"
command = ["/bin/true"]
[jobs.fed]
schedule = "@every 1000ms"
command = ["/bin/cat"]
stdin = "a\u0000b"
jitter = "2m"
"#;

#[test]
fn check_refuses_nul_bytes_fractional_every_and_endless_jitter() {
    let dir = TempDir::new("doomed");
    let path = dir.write("jobs.toml", DOOMED);
    let (code, _, err) = run(&["-c", path.to_str().expect("utf-8"), "check"]);
    assert_eq!(code, 78, "{err}");
    let p = path.display();
    let nul = "contains a NUL byte (\\0), which no argument, environment variable, path or name \
               can hold";
    let whole = "a whole number of seconds is needed (schedules fire on whole seconds)";
    let expected = [
        format!("{p}:3:25: error: job \"argv\": command: \"a\\0b\" {nul}"),
        format!("{p}:6:11: error: job \"shell\": command: \"echo \\0\" {nul}"),
        format!("{p}:10:13: error: job \"envs\": env.X: \"a\\0b\" {nul}"),
        format!("{p}:10:25: error: job \"envs\": env: \"Y\\0\" {nul}"),
        format!("{p}:14:21: error: job \"verify\": files: \"/tmp/a\\0b\" {nul}"),
        format!(
            "{p}:16:12: error: job \"every\": schedule \"@every 1999ms\": @every \"1999ms\": {whole}, \
             e.g. \"@every 1s\" or \"@every 2s\""
        ),
        format!(
            "{p}:19:12: error: job \"every2\": schedule \"@every 2500ms\": @every \"2500ms\": \
             {whole}, e.g. \"@every 2s\" or \"@every 3s\""
        ),
        format!(
            "{p}:23:10: error: job \"forever\": jitter: 999999999d is longer than a year (366d), \
             the most a run can be delayed: the job would practically never run"
        ),
        // Merely surprising: a warning. A NUL byte in stdin is fine (it is never a C string).
        format!(
            "{p}:29:10: warning: job \"fed\": jitter: 2m is longer than the 1s between two runs \
             of schedule \"@every 1000ms\": ticks that come while a run waits out its delay join \
             it, so the job runs less often than scheduled"
        ),
    ];
    let lines: Vec<&str> = err.lines().collect();
    for want in &expected {
        assert!(
            lines.contains(&want.as_str()),
            "missing {want:?} in:\n{err}"
        );
    }
    assert_eq!(
        lines.last(),
        Some(&format!("{p}: 8 errors, 1 warning").as_str()),
        "{err}"
    );
}

#[test]
fn jitter_no_longer_than_the_period_is_accepted_quietly() {
    let dir = TempDir::new("jitter-ok");
    let path = dir.write(
        "jobs.toml",
        "[jobs.hourly]\nschedule = \"@hourly\"\njitter = \"1h\"\ncommand = [\"/bin/true\"]\n\
         [jobs.yearly]\nschedule = \"@every 366d\"\njitter = \"366d\"\ncommand = [\"/bin/true\"]\n",
    );
    let (code, out, err) = run(&["-c", path.to_str().expect("utf-8"), "check"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
}

/// The cgroup v2 controllers this test process's cgroup offers (the cronwarden it starts is
/// in the same cgroup): the cgroup.controllers file and its words, or `None` without
/// cgroup2. A plain reading of /proc (no mount point with escapes on the hosts this runs on).
fn own_cgroup_controllers() -> Option<(String, Vec<String>)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split(' ').nth(4))?
    })?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = format!("{mount}{}", own.trim_end_matches('/'));
    let file = format!("{dir}/cgroup.controllers");
    let text = std::fs::read_to_string(&file).ok()?;
    Some((file, text.split_whitespace().map(str::to_string).collect()))
}

#[test]
fn check_warns_of_a_limit_this_host_cannot_apply() {
    let t = super::Table::new(
        "limits",
        "[jobs.big]\nschedule = \"@hourly\"\ncommand = [\"/bin/true\"]\nmemory_max = \"64MiB\"\n",
    );
    let (code, out, err) = t.run(&["check"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let p = t.path.display();
    // The job is defined on line 7, after the [settings] and blank line that Table writes.
    let head =
        format!("{p}:7:1: warning: job \"big\": memory_max needs the cgroup v2 memory controller");
    match own_cgroup_controllers() {
        Some((_, offered)) if offered.iter().any(|c| c == "memory") => {
            assert_eq!(err, "", "the memory controller is offered: no warning");
            assert_eq!(out.trim(), "1 job, 0 alert channels: ok");
        }
        Some((file, offered)) => {
            let listed = if offered.is_empty() {
                "lists no controller".to_string()
            } else {
                format!("lists: {}", offered.join(" "))
            };
            let want = format!(
                "{head}, which this host does not offer ({file} {listed}); the limit will not be \
                 applied\n"
            );
            assert_eq!(err, want);
            assert_eq!(out.trim(), "1 job, 0 alert channels: ok (1 warning)");
        }
        None => {
            assert!(err.starts_with(&head), "{err}");
            assert!(
                err.contains("no cgroup-backed limit can be applied on this host"),
                "{err}"
            );
            assert!(err.ends_with("; the limit will not be applied\n"), "{err}");
            assert_eq!(out.trim(), "1 job, 0 alert channels: ok (1 warning)");
        }
    }
    // Without cgroup-backed limits (io_class works without cgroups): no warning anywhere.
    t.rewrite(
        "[jobs.big]\nschedule = \"@hourly\"\ncommand = [\"/bin/true\"]\nio_class = \"idle\"\n",
    );
    let (code, out, err) = t.run(&["check"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
}
