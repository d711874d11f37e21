//! Fleet mode: what a node tells the database about its runs reaches it, even when the
//! database was away at the moment (the outbox), and a run that ran twice is told.
//!
//! A node is cut off by locking its database role out and terminating its sessions (for the
//! node, the database is gone), and let in again.

use std::path::Path;
use std::time::Duration;

use super::daemon::Daemon;
use super::fleet::{Db, cut_off, events, let_in, lockable_role, long_job, no_overlap, node_timed};
use super::{TempDir, wait_for};

/// The run id of the first `start` event of `node`.
fn started_run(ev: &Path, node: &str, attempt: &str) -> Option<String> {
    events(ev)
        .into_iter()
        .find(|e| e[0] == "start" && e[1] == node && e[3] == attempt)
        .map(|e| e[2].clone())
}

/// Starts node a's daemon and has it run `long`: the daemon and the run's id, once it started.
fn trigger_long_on_a(a: &super::Table, ev: &Path) -> (Daemon, String) {
    let da = Daemon::start(a);
    let (code, _, err) = a.run(&["trigger", "long"]);
    assert_eq!(code, 0, "{err}");
    wait_for(|| started_run(ev, "a", "1").is_some());
    let run_id = started_run(ev, "a", "1").expect("a started");
    (da, run_id)
}

fn run_row(sql: &mut postgres::Client, run_id: &str) -> Option<(String, String)> {
    sql.query_opt(
        "SELECT state, node FROM cronwarden_runs WHERE run_id = $1",
        &[&run_id],
    )
    .expect("query runs")
    .map(|r| (r.get(0), r.get(1)))
}

#[test]
fn a_run_that_ends_while_the_database_is_away_is_recorded_when_it_is_back_and_runs_once() {
    let db = Db::new("outbox");
    let dir = TempDir::new("fleet-outbox");
    let ev = dir.path().join("events");
    let mut sql = db.sql();
    lockable_role(&mut sql, "outbox_a");
    let jobs = long_job("long", 2, "");
    let a = node_timed(&db, "outbox_a", "a", &ev, &jobs, 10);
    let b = node_timed(&db, "postgres", "b", &ev, &jobs, 10);
    let (da, run_id) = trigger_long_on_a(&a, &ev);
    let db_b = Daemon::start(&b);
    // The database goes away for node a while its job runs, and the job ends meanwhile.
    cut_off(&mut sql, "outbox_a");
    wait_for(|| events(&ev).iter().any(|e| e[0] == "end" && e[1] == "a"));
    wait_for(|| a.log().contains("waits in"));
    assert_eq!(
        run_row(&mut sql, &run_id).map(|r| r.0).as_deref(),
        Some("running"),
        "the end did not reach the database while it was away"
    );
    let_in(&mut sql, "outbox_a");
    // Back: the end is written first thing, and the run is done on the fleet's books.
    wait_for(|| run_row(&mut sql, &run_id).is_some_and(|r| r.0 == "done"));
    // The node logs the replay once the entries it wrote are done (the row lands first).
    wait_for(|| a.log().contains("queued run report(s) to the database"));
    assert!(
        !a.dir().join("state/fleet-outbox").exists()
            || std::fs::read_dir(a.dir().join("state/fleet-outbox"))
                .expect("outbox dir")
                .next()
                .is_none(),
        "the outbox is empty once replayed"
    );
    let (code, out, err) = b.run(&["history", "long", "--json"]);
    assert_eq!(code, 0, "{err}");
    let runs: Vec<serde_json::Value> = serde_json::from_str(&out).expect("history JSON");
    assert_eq!(runs.len(), 1, "{out}");
    assert_eq!(runs[0]["outcome"], "success", "{out}");
    assert_eq!(runs[0]["node"], "a", "{out}");
    // Node a stops cleanly: its finished run is no lost run for b to run again (b looks at
    // once for a stopped node's runs, at every heartbeat).
    da.signal(libc::SIGTERM);
    da.wait();
    std::thread::sleep(Duration::from_secs(4));
    let again: Vec<_> = events(&ev)
        .into_iter()
        .filter(|e| e[0] == "start" && e[1] == "b")
        .collect();
    assert!(again.is_empty(), "b ran the finished run again: {again:?}");
    assert!(!b.log().contains("node-lost"), "{}", b.log());
    drop(db_b);
}

#[test]
fn a_run_that_ran_twice_is_recorded_twice_and_alerted_by_the_node_that_finished_it_first() {
    let db = Db::new("twice");
    let dir = TempDir::new("fleet-twice");
    let ev = dir.path().join("events");
    let mut sql = db.sql();
    lockable_role(&mut sql, "twice_a");
    let jobs = format!(
        "[alerts.page]\ntype = \"command\"\non = [\"failure\"]\ncommand = [\"/bin/sh\", \"-c\", \
         \"echo $CRONWARDEN_EVENT $NODE $CRONWARDEN_RUN_ID >> $EVENTS.alerts\"]\n\n{}",
        long_job("long", 1, "alert = [\"page\"]")
    );
    let a = node_timed(&db, "twice_a", "a", &ev, &jobs, 6);
    let b = node_timed(&db, "postgres", "b", &ev, &jobs, 6);
    let (da, run_id) = trigger_long_on_a(&a, &ev);
    let db_b = Daemon::start(&b);
    // Cut off longer than dead_after: the job ends on a, but b sees a silent, declares it
    // lost and runs the run again (it has a retry left).
    cut_off(&mut sql, "twice_a");
    wait_for(|| events(&ev).iter().any(|e| e[0] == "end" && e[1] == "a"));
    wait_for(|| started_run(&ev, "b", "2").as_deref() == Some(run_id.as_str()));
    let_in(&mut sql, "twice_a");
    let alerts = std::path::PathBuf::from(format!("{}.alerts", ev.display()));
    let twice = format!("ran-twice a {run_id}");
    wait_for(|| std::fs::read_to_string(&alerts).is_ok_and(|t| t.contains(&twice)));
    let log_a = a.log();
    assert!(
        log_a.contains("ran twice: node a finished it"),
        "node a says what happened:\n{log_a}"
    );
    no_overlap(&ev);
    // Both runs are on the fleet's books once b's has ended.
    wait_for(|| events(&ev).iter().any(|e| e[0] == "end" && e[1] == "b"));
    wait_for(|| run_row(&mut sql, &run_id).is_some_and(|r| r.0 == "done"));
    let (code, out, err) = b.run(&["history", "long", "--json"]);
    assert_eq!(code, 0, "{err}");
    let runs: Vec<serde_json::Value> = serde_json::from_str(&out).expect("history JSON");
    let nodes: Vec<&str> = runs
        .iter()
        .filter(|r| r["run_id"] == run_id.as_str())
        .filter_map(|r| r["node"].as_str())
        .collect();
    assert_eq!(nodes, ["a", "b"], "{out}");
    // Told once across the fleet.
    let text = std::fs::read_to_string(&alerts).expect("alerts");
    assert_eq!(text.matches("ran-twice").count(), 1, "{text}");
    drop((da, db_b));
}

#[test]
fn a_fenced_run_is_handed_over_when_its_node_is_back_before_anyone_looked() {
    let db = Db::new("handover");
    let dir = TempDir::new("fleet-handover");
    let ev = dir.path().join("events");
    let mut sql = db.sql();
    lockable_role(&mut sql, "handover_a");
    let a = node_timed(&db, "handover_a", "a", &ev, &long_job("long", 30, ""), 4);
    let (da, run_id) = trigger_long_on_a(&a, &ev);
    // The whole database is away for longer than dead_after - heartbeat: a fences its run,
    // and cannot hand it over then.
    cut_off(&mut sql, "handover_a");
    wait_for(|| a.log().contains(" fenced "));
    wait_for(|| a.log().contains("hand-over now"));
    let_in(&mut sql, "handover_a");
    // Back, the hand-over reaches the database, and the run goes on (here, on a itself,
    // the only node) as its next attempt, not left `running` for ever.
    wait_for(|| started_run(&ev, "a", "2").as_deref() == Some(run_id.as_str()));
    no_overlap(&ev);
    drop(da);
}
