//! `cronwarden status` and `cronwarden history`, read from the state directory.

use super::{Table, ts, wait_for};

#[test]
fn history_lists_runs_in_text_and_json() {
    let t = Table::new(
        "history",
        r#"
[jobs.flip]
schedule = "@daily"
command = "test -e $DIR/ok; r=$?; touch $DIR/ok; exit $r"
"#,
    );
    assert_eq!(t.run(&["run", "flip"]).0, 1);
    assert_eq!(t.run(&["run", "flip"]).0, 0);
    let h = t.history("flip");
    let ids: Vec<&str> = h
        .iter()
        .map(|r| r["run_id"].as_str().expect("id"))
        .collect();
    let (code, out, err) = t.run(&["history", "flip"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("RUN ID"), "{out}");
    assert!(
        lines[1].starts_with(ids[0])
            && lines[1].contains(" failure ")
            && lines[1].ends_with("exit 1"),
        "{out}"
    );
    assert!(
        lines[2].starts_with(ids[1]) && lines[2].contains(" success"),
        "{out}"
    );
    let (code, out, _) = t.run(&["history", "flip", "-n", "1", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(v[0]["run_id"], ids[1]);
    assert_eq!(v[0]["outcome"], "success");
    let (code, _, err) = t.run(&["history", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown job \"nope\""), "{err}");
}

#[test]
fn status_shows_running_jobs_last_runs_and_rates_without_touching_locks() {
    let t = Table::new(
        "status",
        r#"
[jobs.hold]
schedule = "0 3 * * *"
command = "while [ ! -e $DIR/release ]; do sleep 0.05; done"

[jobs.never]
schedule = "@manual"
command = ["/bin/true"]
"#,
    );
    std::fs::write(t.dir().join("release"), "").expect("release");
    assert_eq!(t.run(&["run", "hold"]).0, 0);
    std::fs::remove_file(t.dir().join("release")).expect("rm");
    let mut child = t.spawn(&["run", "hold"]);
    // The lock file still names the run before: wait for this one's holder line.
    let lock = t.dir().join("run/hold.lock");
    let me = format!("pid={} ", child.id());
    wait_for(|| {
        std::fs::read_to_string(&lock).is_ok_and(|l| l.starts_with(&me) && l.contains("pgid="))
    });
    let (code, out, err) = t.run(&["status"]);
    assert_eq!(code, 0, "{err}");
    let hold = out
        .lines()
        .find(|l| l.starts_with("hold "))
        .expect("hold row");
    assert!(
        hold.contains("running since ") && hold.contains(&format!("(pid {})", child.id())),
        "{out}"
    );
    assert!(
        hold.contains(" success ") && hold.contains("100% of 1"),
        "{out}"
    );
    let never = out
        .lines()
        .find(|l| l.starts_with("never "))
        .expect("never row");
    assert!(
        never.contains(" idle ") && never.contains(" never "),
        "{out}"
    );
    // status only looked: a run started now still finds the lock held, not stolen.
    let (code, _, _) = t.run(&["run", "hold"]);
    assert_eq!(code, 75);
    let (code, out, _) = t.run(&["status", "hold", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v[0]["state"], "running");
    assert_eq!(v[0]["running_pid"], child.id());
    // The skip does not hide the last real run; it is counted beside it.
    assert_eq!(v[0]["last_run"]["outcome"], "success");
    assert_eq!(v[0]["skipped_since_last_run"]["count"], 1);
    assert_eq!(v[0]["success_rate"], 1.0);
    std::fs::write(t.dir().join("release"), "").expect("release");
    assert!(child.wait().expect("wait").success());
    t.wait_idle("hold");
}

#[test]
fn skips_are_one_record_per_streak_and_never_push_the_last_real_run_out() {
    let t = Table::new(
        "skip-streak",
        r#"
[jobs.flaky]
schedule = "@manual"
command = "test -e $DIR/hold || exit 2; while [ ! -e $DIR/release ]; do sleep 0.05; done"
"#,
    );
    let text = std::fs::read_to_string(&t.path).expect("table");
    std::fs::write(
        &t.path,
        text.replace("[settings]\n", "[settings]\nhistory_keep = 3\n"),
    )
    .expect("table");
    assert_eq!(t.run(&["run", "flaky"]).0, 1);
    std::fs::write(t.dir().join("hold"), "").expect("hold");
    let mut holder = t.spawn(&["run", "flaky"]);
    t.wait_running("flaky");
    for _ in 0..12 {
        let (code, _, err) = t.run(&["run", "flaky"]);
        assert_eq!(code, 75, "{err}");
    }
    // The failure is still there, and the twelve skips are one record.
    let h = t.history("flaky");
    let outcomes: Vec<&str> = h
        .iter()
        .map(|r| r["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes, ["failure", "skipped"], "{h:#?}");
    assert_eq!(h[1]["skips"]["count"], 12, "{:#}", h[1]);
    assert!(ts(&h[1]["skips"]["last_started"]) > ts(&h[1]["started"]));
    assert!(ts(&h[1]["started"]) > ts(&h[0]["ended"]));
    let (code, out, err) = t.run(&["status"]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("flaky "))
        .expect("flaky row");
    assert!(
        row.contains(" failure (then 12 skipped) ") && row.ends_with(" 0% of 1"),
        "{out}"
    );
    let (_, out, _) = t.run(&["status", "flaky", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v[0]["last_run"]["outcome"], "failure");
    assert_eq!(v[0]["skipped_since_last_run"]["count"], 12);
    let (_, out, _) = t.run(&["history", "flaky"]);
    assert!(out.contains(" skipped (12 times) "), "{out}");
    std::fs::write(t.dir().join("release"), "").expect("release");
    assert!(holder.wait().expect("wait").success());
    let outcomes: Vec<String> = t
        .history("flaky")
        .iter()
        .map(|r| r["outcome"].as_str().expect("outcome").to_string())
        .collect();
    assert_eq!(outcomes, ["failure", "skipped", "success"]);
}

#[test]
fn cpu_time_peak_memory_leftovers_and_limits_are_shown_from_the_record() {
    let t = Table::new(
        "usage",
        "[jobs.used]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n",
    );
    // An older record without usage, then one with every fact.
    let history = t.dir().join("state/history");
    std::fs::create_dir_all(&history).expect("history dir");
    std::fs::write(
        history.join("used.jsonl"),
        r#"{"run_id":"old","job":"used","scheduled":"2026-01-01T03:00:00+00:00","started":"2026-01-01T03:00:00Z","ended":"2026-01-01T03:00:01Z","duration_ms":1000,"attempts":[{"attempt":1,"started":"2026-01-01T03:00:00Z","duration_ms":1000,"exit_code":0}],"outcome":"success","trigger":"schedule"}
{"run_id":"new","job":"used","scheduled":"2026-01-02T03:00:00+00:00","started":"2026-01-02T03:00:00Z","ended":"2026-01-02T03:00:02Z","duration_ms":2000,"attempts":[{"attempt":1,"started":"2026-01-02T03:00:00Z","duration_ms":2000,"exit_code":0,"cpu_seconds":0.61,"peak_memory_bytes":67318989}],"outcome":"success","trigger":"schedule","cpu_seconds":0.61,"peak_memory_bytes":67318989,"leftovers":[{"pid":123,"command":"sleep 4444","action":"stopped"}],"limits_not_applied":["memory_max: no memory controller in the cgroup"]}
"#,
    )
    .expect("write history");
    let (code, out, err) = t.run(&["history", "used"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    // RUN ID, SCHEDULED, STARTED, DURATION, CPU, PEAK, ATTEMPTS, EXIT, OUTCOME.
    assert!(
        lines[0].contains(" DURATION  CPU    PEAK     ATTEMPTS "),
        "{out}"
    );
    let cols = |l: &str| -> Vec<String> {
        l.split_whitespace()
            .skip(3)
            .take(6)
            .map(String::from)
            .collect()
    };
    assert_eq!(
        cols(lines[1]),
        ["1.0s", "-", "-", "1", "0", "success"],
        "{out}"
    );
    assert_eq!(
        cols(lines[2]),
        ["2.0s", "0.61s", "64.2MiB", "1", "0", "success"],
        "{out}"
    );
    assert_eq!(
        lines[3..],
        [
            "  stopped 1 process left behind: sleep 4444 (pid 123)",
            "  limits not applied: memory_max: no memory controller in the cgroup",
        ],
        "{out}"
    );
    let (code, out, err) = t.run(&["status"]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("used "))
        .expect("used row");
    assert!(
        row.contains(" success  2.0s      0.61s  64.2MiB  1 "),
        "{out}"
    );
    let (_, out, _) = t.run(&["status", "used", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v[0]["last_run"]["cpu_seconds"], 0.61);
    assert_eq!(v[0]["last_run"]["peak_memory_bytes"], 67_318_989);
}

#[test]
fn outside_a_fleet_status_lists_no_nodes() {
    let t = Table::new(
        "status-nodes",
        "[jobs.a]\nschedule = \"@manual\"\ncommand = \"true\"\n",
    );
    let (code, out, err) = t.run(&["status", "--nodes"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "no fleet nodes: this table has no [cluster]\n");
    let (code, out, err) = t.run(&["status", "--nodes", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[]");
    // The jobs' table has no nodes table under it.
    let (_, out, _) = t.run(&["status"]);
    assert!(!out.contains("NODE"), "{out}");
    let (code, _, err) = t.run(&["status", "a", "--nodes"]);
    assert_eq!(code, 2, "--nodes is about nodes, not a job: {err}");
}
