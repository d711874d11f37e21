//! What comes after a step: `trigger` rules (`all_done` cleanup, `one_failed` notify), in
//! the daemon, `run` and `backfill`.

use super::daemon::Daemon;
use super::{Table, wait_for};

/// `etl` fails for an instant whose `{{ ds }}` is in `$DIR/fail-days`, or for any instant
/// while `$DIR/fail` exists; `cleanup` (all_done) and `notify` (one_failed) come after it,
/// and `page` after `notify`.
const RULES: &str = r#"
[jobs.etl]
schedule = "SCHEDULE"
command = "echo etl $CRONWARDEN_TS >> $DIR/steps; test ! -e $DIR/fail && ! grep -qx $CRONWARDEN_DS $DIR/fail-days"
overlap = "skip"

[jobs.cleanup]
after = ["etl"]
trigger = "all_done"
command = "echo cleanup $CRONWARDEN_TS >> $DIR/steps"

[jobs.notify]
after = ["etl"]
trigger = "one_failed"
command = "echo notify $CRONWARDEN_TS >> $DIR/steps"

[jobs.page]
after = ["notify"]
command = "echo page $CRONWARDEN_TS >> $DIR/steps"
"#;

/// The steps that ran, by instant: (step, ts).
fn steps(t: &Table) -> Vec<(String, String)> {
    std::fs::read_to_string(t.dir().join("steps"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn ran(t: &Table, step: &str, ts: &str) -> bool {
    steps(t).iter().any(|(s, x)| s == step && x == ts)
}

/// The reason of the record of `job` for the instant `ts`.
fn reason_at(t: &Table, job: &str, ts: &str) -> Option<String> {
    t.history(job)
        .into_iter()
        .find(|r| r["scheduled"] == ts)
        .and_then(|r| r["reason"].as_str().map(str::to_string))
}

#[test]
fn all_done_cleans_up_after_success_and_failure_and_one_failed_runs_only_after_a_failure_in_backfill()
 {
    let t = Table::new("rules-backfill", &RULES.replace("SCHEDULE", "0 2 * * *"));
    t.dir.write("fail-days", "2026-11-19\n");
    let (code, out, err) = t.run(&[
        "backfill",
        "etl",
        "--from",
        "2026-11-18",
        "--to",
        "2026-11-20",
        "--keep-going",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert!(
        rows[0].starts_with("2026-11-18T02:00:00+00:00  success  2/4"),
        "{out}"
    );
    assert!(
        rows[1].starts_with("2026-11-19T02:00:00+00:00  failure  3/4"),
        "{out}"
    );
    assert!(
        rows[2].starts_with("2026-11-20T02:00:00+00:00  success  2/4"),
        "{out}"
    );
    for day in ["18", "19", "20"] {
        let ts = format!("2026-11-{day}T02:00:00+00:00");
        assert!(
            ran(&t, "etl", &ts) && ran(&t, "cleanup", &ts),
            "{:?}",
            steps(&t)
        );
        let failed = day == "19";
        assert_eq!(ran(&t, "notify", &ts), failed, "{ts}: {:?}", steps(&t));
        assert_eq!(ran(&t, "page", &ts), failed, "{ts}: {:?}", steps(&t));
        if !failed {
            assert_eq!(
                reason_at(&t, "notify", &ts).as_deref(),
                Some("no parent failed")
            );
            assert_eq!(
                reason_at(&t, "page", &ts).as_deref(),
                Some("upstream notify was skipped")
            );
        }
    }
    // The cleanup ran after the failed step had ended, the notification too.
    let s = steps(&t);
    let at = |step: &str| {
        s.iter()
            .position(|(x, ts)| x == step && ts == "2026-11-19T02:00:00+00:00")
            .expect(step)
    };
    assert!(at("etl") < at("cleanup") && at("etl") < at("notify") && at("notify") < at("page"));
}

#[test]
fn run_exits_by_the_failure_not_by_a_notification_that_was_not_needed() {
    let t = Table::new("rules-run", &RULES.replace("SCHEDULE", "@manual"));
    t.dir.write("fail-days", "");
    let (code, _, err) = t.run(&["run", "etl"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("notify") && err.contains("skipped: no parent failed"),
        "{err}"
    );
    std::fs::write(t.dir().join("fail"), "").expect("fail");
    let (code, _, err) = t.run(&["run", "etl"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(t.outcomes("notify"), ["skipped", "success"]);
    assert_eq!(t.outcomes("cleanup"), ["success", "success"]);
    // `list` shows each step's rule in the tree.
    let (_, out, _) = t.run(&["list"]);
    assert!(out.contains("└─ cleanup (all_done)"), "{out}");
    assert!(out.contains("└─ notify (one_failed)"), "{out}");
}

#[test]
fn the_daemon_applies_trigger_rules_after_a_success_and_after_a_failure() {
    let t = Table::new("rules-daemon", &RULES.replace("SCHEDULE", "* * * * * *"));
    t.dir.write("fail-days", "");
    let d = Daemon::start(&t);
    // A pipeline run that succeeded: cleanup ran, notify was not needed.
    wait_for(|| {
        t.history("notify")
            .iter()
            .any(|r| r["reason"] == "no parent failed")
    });
    let ok_ts = t
        .history("notify")
        .into_iter()
        .find(|r| r["reason"] == "no parent failed")
        .and_then(|r| r["scheduled"].as_str().map(str::to_string))
        .expect("an instant");
    wait_for(|| ran(&t, "cleanup", &ok_ts));
    assert!(!ran(&t, "notify", &ok_ts));
    // Then etl fails: cleanup and notify both run for that instant.
    std::fs::write(t.dir().join("fail"), "").expect("fail");
    wait_for(|| t.outcomes("notify").iter().any(|o| o == "success"));
    let failed_ts = t
        .history("notify")
        .into_iter()
        .find(|r| r["outcome"] == "success")
        .and_then(|r| r["scheduled"].as_str().map(str::to_string))
        .expect("an instant");
    wait_for(|| ran(&t, "cleanup", &failed_ts) && ran(&t, "page", &failed_ts));
    drop(d);
    let etl = t.history("etl");
    let root = etl
        .iter()
        .find(|r| r["scheduled"] == failed_ts.as_str())
        .expect("etl");
    assert_eq!(root["outcome"], "failure");
    assert_eq!(t.history("cleanup")[0]["trigger"], "pipeline");
}

#[test]
fn one_failed_counts_a_step_skipped_for_a_failure_above_it_as_failed() {
    let t = Table::new(
        "rules-upstream-failed",
        r#"
[jobs.extract]
schedule = "@manual"
command = ["/bin/false"]

[jobs.load]
after = ["extract"]
command = "echo load >> $DIR/steps"

[jobs.rollback]
after = ["load"]
trigger = "one_failed"
command = "echo rollback ran >> $DIR/steps"

[jobs.report]
after = ["load"]
command = "echo report >> $DIR/steps"
"#,
    );
    let (code, _, err) = t.run(&["run", "extract"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(steps(&t), [("rollback".to_string(), "ran".to_string())]);
    assert_eq!(t.history("load")[0]["reason"], "upstream extract failed");
    assert_eq!(
        t.history("report")[0]["reason"],
        "upstream load was skipped"
    );
    assert_eq!(t.outcomes("rollback"), ["success"]);
}

/// `extract` hands `transform` a file name through `CRONWARDEN_RESULT_FILE`.
const XCOM: &str = r#"
[jobs.extract]
schedule = "@manual"
command = "test ! -e $DIR/big || head -c 70000 /dev/zero | tr '\\0' x > $CRONWARDEN_RESULT_FILE; test -e $DIR/big || echo \"/data/$CRONWARDEN_DS; rm -rf x.csv\" > $CRONWARDEN_RESULT_FILE"

[jobs.transform]
after = ["extract"]
command = ["/bin/sh", "-c", "printf '%s|%s|%s\n' \"$#\" \"$1\" \"$CRONWARDEN_UPSTREAM_EXTRACT\" > $DIR/got", "-", "{{ upstream.extract }}"]
"#;

#[test]
fn a_result_written_by_extract_reaches_transform_as_one_argument_and_a_variable() {
    let t = Table::new("xcom", XCOM);
    let (code, _, err) = t.run(&["run", "extract", "--at", "2026-11-20"]);
    assert_eq!(code, 0, "{err}");
    let want = "1|/data/2026-11-20; rm -rf x.csv|/data/2026-11-20; rm -rf x.csv\n";
    let got = || std::fs::read_to_string(t.dir().join("got")).expect("transform ran");
    assert_eq!(got(), want);
    // Kept in extract's record.
    assert_eq!(
        t.history("extract")[0]["result"],
        "/data/2026-11-20; rm -rf x.csv"
    );
    // A later step run by itself for that instant is given it from the record.
    std::fs::remove_file(t.dir().join("got")).expect("rm");
    let (code, _, err) = t.run(&["run", "transform", "--at", "2026-11-20"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(got(), want);
    // Another instant has no result of extract: an empty argument, no variable.
    let (code, _, err) = t.run(&["run", "transform", "--at", "2026-11-21"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(got(), "1||\n");
}

#[test]
fn an_oversized_result_fails_the_run_clearly_and_check_refuses_upstream_in_shell_text() {
    let t = Table::new("xcom-big", XCOM);
    t.dir.write("big", "");
    let (code, _, err) = t.run(&["run", "extract"]);
    assert_eq!(code, 1, "{err}");
    let rec = &t.history("extract")[0];
    assert_eq!(rec["outcome"], "failure");
    assert_eq!(
        rec["reason"],
        "CRONWARDEN_RESULT_FILE: the run wrote 70000 bytes, more than the 64 KiB a result may hold"
    );
    assert!(rec.get("result").is_none(), "{rec}");
    assert_eq!(
        t.history("transform")[0]["reason"],
        "upstream extract failed"
    );
    t.rewrite(
        r#"
[jobs.extract]
schedule = "@manual"
command = ["/bin/true"]

[jobs.transform]
after = ["extract"]
command = "echo {{ upstream.extract }}"

[jobs.load]
after = ["transform"]
command = ["/bin/echo", "{{ upstream.nope }}", "{{ upstream.extract }}"]
"#,
    );
    let (code, _, err) = t.run(&["check"]);
    assert_eq!(code, 78);
    assert!(
        err.contains("{{ upstream.extract }} in a string command would put data into shell syntax; use \"$CRONWARDEN_UPSTREAM_EXTRACT\" instead"),
        "{err}"
    );
    assert!(
        err.contains("{{ upstream.nope }}: \"nope\" is no job this one runs after"),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 2, "{err}");
}

#[test]
fn in_the_daemon_each_pipeline_run_passes_its_own_result_down() {
    let t = Table::new(
        "xcom-daemon",
        r#"
[jobs.extract]
schedule = "* * * * * *"
command = "echo \"file-$CRONWARDEN_TS\" > $CRONWARDEN_RESULT_FILE"

[jobs.transform]
after = ["extract"]
command = ["/bin/sh", "-c", "echo \"$CRONWARDEN_TS $1\" >> $DIR/got", "-", "{{ upstream.extract }}"]
"#,
    );
    let d = Daemon::start(&t);
    let lines = || -> Vec<String> {
        std::fs::read_to_string(t.dir().join("got"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    wait_for(|| lines().len() >= 2);
    drop(d);
    for l in lines() {
        let (ts, arg) = l.split_once(' ').expect("two words");
        assert_eq!(arg, format!("file-{ts}"), "{l}");
    }
}

#[test]
fn a_job_of_the_daemons_user_makes_its_result_file_in_a_private_directory_and_a_silent_run_no_file()
{
    let t = Table::new(
        "xcom-own",
        r#"
[jobs.silent]
schedule = "@manual"
command = "echo \"$CRONWARDEN_RESULT_FILE\" > $DIR/where; test ! -e \"$CRONWARDEN_RESULT_FILE\""

[jobs.writes]
schedule = "@manual"
command = "umask 022; echo \"$CRONWARDEN_RESULT_FILE\" > $DIR/where2; echo the-result > \"$CRONWARDEN_RESULT_FILE\""
"#,
    );
    // Nothing is made for a run that leaves no result, and it has none.
    let (code, _, err) = t.run(&["run", "silent"]);
    assert_eq!(
        code, 0,
        "the file is not there before the job makes it: {err}"
    );
    let path = std::fs::read_to_string(t.dir().join("where")).expect("the path");
    let path = std::path::PathBuf::from(path.trim());
    let own = t.dir().join("run-credentials").join("own");
    assert_eq!(path.parent(), Some(own.as_path()));
    let rec = &t.history("silent")[0];
    assert!(rec.get("result").is_none_or(|r| r.is_null()), "{rec}");
    // It printed nothing either: no output file.
    assert!(rec.get("output").is_none_or(|r| r.is_null()), "{rec}");
    assert!(!t.dir().join("state/output/silent").exists());
    // The job makes it with its own umask: the directory is what keeps it private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&own).expect("own").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    assert_eq!(t.run(&["run", "writes"]).0, 0);
    assert_eq!(t.history("writes")[0]["result"], "the-result");
    let written = std::fs::read_to_string(t.dir().join("where2")).expect("the path");
    assert!(
        !std::path::Path::new(written.trim()).exists(),
        "removed after the run"
    );
}
