use super::{TempDir, run};

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
