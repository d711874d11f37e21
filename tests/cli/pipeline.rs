//! Pipelines (`after`), `run --at`/`--only` and `backfill`, with real processes.

use super::Table;

const ETL: &str = r#"
[jobs.extract]
schedule = "0 1 * * *"
command = "echo $CRONWARDEN_JOB $CRONWARDEN_DS >> $DIR/steps"

[jobs.transform]
after = ["extract"]
command = "echo $CRONWARDEN_JOB $CRONWARDEN_DS >> $DIR/steps; test ! -e $DIR/break-transform"

[jobs.load]
after = ["transform"]
command = "echo $CRONWARDEN_JOB $CRONWARDEN_DS >> $DIR/steps"

[jobs.cleanup]
after = ["load"]
command = "echo $CRONWARDEN_JOB $CRONWARDEN_DS >> $DIR/steps"
"#;

fn steps(t: &Table) -> Vec<String> {
    std::fs::read_to_string(t.dir().join("steps"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_four_step_chain_runs_in_order_with_one_logical_date() {
    let t = Table::new("p-chain", ETL);
    let (code, _, err) = t.run(&["run", "extract", "--at", "2026-11-20"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        steps(&t),
        [
            "extract 2026-11-20",
            "transform 2026-11-20",
            "load 2026-11-20",
            "cleanup 2026-11-20"
        ]
    );
    // Every step carries the root's scheduled instant.
    for job in ["extract", "transform", "load", "cleanup"] {
        assert_eq!(
            t.history(job)[0]["scheduled"],
            "2026-11-20T01:00:00+00:00",
            "{job}"
        );
    }
    // --only runs just the job.
    let (code, _, _) = t.run(&["run", "extract", "--only", "--at", "2026-11-21"]);
    assert_eq!(code, 0);
    assert_eq!(
        steps(&t).last().map(String::as_str),
        Some("extract 2026-11-21")
    );
    assert_eq!(steps(&t).len(), 5);
}

#[test]
fn a_failing_middle_step_skips_everything_below_it() {
    let t = Table::new("p-fail", ETL);
    std::fs::write(t.dir().join("break-transform"), "").expect("break");
    let (code, _, err) = t.run(&["run", "extract"]);
    assert_eq!(code, 1, "{err}");
    let ran: Vec<String> = steps(&t)
        .iter()
        .map(|s| s.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(ran, ["extract", "transform"]);
    assert_eq!(t.history("transform")[0]["outcome"], "failure");
    let load = &t.history("load")[0];
    assert_eq!(load["outcome"], "skipped");
    assert_eq!(load["reason"], "upstream transform failed");
    let cleanup = &t.history("cleanup")[0];
    assert_eq!(cleanup["outcome"], "skipped");
    assert_eq!(cleanup["reason"], "upstream load was skipped");
    assert!(
        err.contains("load ") && err.contains("skipped: upstream transform failed"),
        "{err}"
    );
}

#[test]
fn fan_out_runs_branches_concurrently_and_fan_in_waits_for_all() {
    let t = Table::new(
        "p-fan",
        r#"
[jobs.a]
schedule = "@daily"
command = "echo a >> $DIR/order"

[jobs.b]
after = ["a"]
command = "echo b-start $(date +%s.%N) >> $DIR/order; sleep 0.5; echo b-end $(date +%s.%N) >> $DIR/order"

[jobs.c]
after = ["a"]
command = "echo c-start $(date +%s.%N) >> $DIR/order; sleep 0.5; echo c-end $(date +%s.%N) >> $DIR/order"

[jobs.d]
after = ["b", "c"]
command = "echo d >> $DIR/order"
"#,
    );
    let (code, _, err) = t.run(&["run", "a"]);
    assert_eq!(code, 0, "{err}");
    let order = std::fs::read_to_string(t.dir().join("order")).expect("order");
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(lines.first(), Some(&"a"));
    assert_eq!(lines.last(), Some(&"d"), "{order}");
    let at = |tag: &str| -> f64 {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{tag} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{tag} in {order}"))
    };
    // Both branches started before either ended: they ran side by side.
    assert!(
        at("b-start") < at("c-end") && at("c-start") < at("b-end"),
        "{order}"
    );
}

#[test]
fn backfill_runs_each_day_oldest_first_with_its_pipeline() {
    let t = Table::new("p-backfill", ETL);
    let (code, out, err) = t.run(&[
        "backfill",
        "extract",
        "--from",
        "2026-11-18",
        "--to",
        "2026-11-20",
    ]);
    assert_eq!(code, 0, "{err}");
    let got = steps(&t);
    let want: Vec<String> = ["18", "19", "20"]
        .iter()
        .flat_map(|d| {
            ["extract", "transform", "load", "cleanup"].map(|j| format!("{j} 2026-11-{d}"))
        })
        .collect();
    assert_eq!(got, want);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[0].starts_with("2026-11-18T01:00:00+00:00  success  4/4"),
        "{out}"
    );
    // A failure stops the backfill unless --keep-going.
    std::fs::write(t.dir().join("break-transform"), "").expect("break");
    let (code, out, _) = t.run(&[
        "backfill",
        "extract",
        "--from",
        "2026-11-21",
        "--to",
        "2026-11-22",
    ]);
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 2, "{out}");
    let (code, out, _) = t.run(&[
        "backfill",
        "extract",
        "--from",
        "2026-11-21",
        "--to",
        "2026-11-22",
        "--keep-going",
    ]);
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn the_daemon_runs_the_pipeline_when_its_root_fires() {
    let t = Table::new(
        "p-daemon",
        r#"
[jobs.root]
schedule = "* * * * * *"
command = "echo root $CRONWARDEN_TS >> $DIR/steps"
overlap = "skip"

[jobs.child]
after = ["root"]
command = "echo child $CRONWARDEN_TS >> $DIR/steps"
"#,
    );
    let d = super::daemon::Daemon::start(&t);
    super::wait_for(|| steps(&t).iter().filter(|s| s.starts_with("child ")).count() >= 2);
    drop(d);
    let s = steps(&t);
    // Each child line follows its root line and carries the same scheduled instant.
    for (i, line) in s.iter().enumerate() {
        if let Some(ts) = line.strip_prefix("child ") {
            assert!(s[..i].iter().any(|l| *l == format!("root {ts}")), "{s:?}");
        }
    }
    assert_eq!(t.history("child")[0]["trigger"], "pipeline");
}

#[test]
fn one_alert_names_the_failed_step_and_lists_what_was_skipped() {
    let t = Table::new(
        "p-alert",
        &format!(
            "[defaults]\nalert = [\"page\"]\n\n[alerts.page]\ntype = \"command\"\ncommand = \"cat >> $DIR/alerts\"\n{ETL}"
        ),
    );
    std::fs::write(t.dir().join("break-transform"), "").expect("break");
    assert_eq!(t.run(&["run", "extract"]).0, 1);
    let alerts = std::fs::read_to_string(t.dir().join("alerts")).expect("alerts");
    assert_eq!(alerts.matches("[cronwarden] FAILED").count(), 1, "{alerts}");
    assert!(
        alerts.contains("[cronwarden] FAILED transform on ")
            && alerts.contains("skipped below it: load, cleanup"),
        "{alerts}"
    );
}
