//! What a job is given at each run: `env_file` and `credentials`; and `jitter_mode =
//! "fixed"`, `history_max_age` and `output_max_age`.

use std::os::unix::fs::PermissionsExt;

use super::daemon::Daemon;
use super::{Table, wait_for};

const SECRET: &str = "s3cr3t-Value-9f1c";

/// Every text a secret must never reach: the log, the history (file, `history --json`),
/// `status --json`, run markers, and the alert's environment and body.
fn assert_nowhere(t: &Table, job: &str, secret: &str) {
    let mut texts = vec![
        ("log", t.log()),
        (
            "history file",
            std::fs::read_to_string(t.dir().join(format!("state/history/{job}.jsonl")))
                .unwrap_or_default(),
        ),
        ("history --json", t.run(&["history", job, "--json"]).1),
        ("status --json", t.run(&["status", "--json"]).1),
    ];
    for name in ["alert.env", "alert.body"] {
        let text = std::fs::read_to_string(t.dir().join(name)).expect(name);
        assert!(!text.is_empty(), "{name} is empty");
        texts.push((name, text));
    }
    for (name, text) in texts {
        assert!(!text.contains(secret), "the secret is in {name}:\n{text}");
    }
}

#[test]
fn env_files_are_read_in_order_under_env_and_their_values_stay_out_of_every_record() {
    let t = Table::new(
        "env-file",
        r#"
[alerts.page]
type = "command"
command = "env > $DIR/alert.env; cat > $DIR/alert.body"
on = ["failure"]

[defaults]
env_file = "$DIR/common.env"
alert = ["page"]

[jobs.app]
schedule = "@manual"
command = ["/bin/sh", "-c", "printf '%s|%s|%s|%s|%s|%s\n' \"$A\" \"$B\" \"$C\" \"$D\" \"$E\" \"$PGPASSWORD\" > $DIR/seen; exit 3"]
env_file = ["-$DIR/absent.env", "$DIR/app.env"]
env = { D = "from-env" }
"#,
    );
    t.dir.write(
        "common.env",
        "# shared\nA=common\nB=common\nD=common\n; also a comment\n",
    );
    t.dir.write(
        "app.env",
        &format!(
            "B='from app'\nC=\"two \\\n  lines \\\"quoted\\\"\"\nE=one \\\ntwo   \n\
             PGPASSWORD={SECRET}\n"
        ),
    );
    let (code, _, err) = t.run(&["run", "app"]);
    assert_eq!(code, 1, "{err}");
    let seen = std::fs::read_to_string(t.dir().join("seen")).expect("the job ran");
    // `[defaults]`' file, then the job's (later wins), then `env` over them all.
    assert_eq!(
        seen,
        format!("common|from app|two   lines \"quoted\"|from-env|one two|{SECRET}\n")
    );
    assert_nowhere(&t, "app", SECRET);
}

/// The daemon reads a run's `env_file`s a little before its instant; a run that then waits
/// for its lock (`overlap = "queue"`) reads them again when it starts, as they are then.
#[test]
fn a_queued_run_reads_its_env_file_when_it_starts_not_when_it_was_queued() {
    let t = Table::new(
        "env-queued",
        r#"
[jobs.q]
schedule = "@manual"
overlap = "queue"
env_file = "$DIR/q.env"
command = "echo $V >> $DIR/seen; until [ -e $DIR/go.$V ]; do sleep 0.05; done"
"#,
    );
    t.dir.write("q.env", "V=first\n");
    let d = Daemon::start(&t);
    let seen = || std::fs::read_to_string(t.dir().join("seen")).unwrap_or_default();
    assert_eq!(t.run(&["trigger", "q"]).0, 0);
    wait_for(|| seen() == "first\n");
    // The second run is made ready (its env_file read), then waits for the first.
    assert_eq!(t.run(&["trigger", "q"]).0, 0);
    wait_for(|| t.log().contains(" queued job=q "));
    t.dir.write("q.env", "V=second\n");
    // Longer than a ready run's identity is kept (1 s): a lower bound, not a wait for an
    // event.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    t.dir.write("go.first", "");
    wait_for(|| seen().lines().count() == 2);
    assert_eq!(
        seen(),
        "first\nsecond\n",
        "the queued run read the old env_file"
    );
    t.dir.write("go.second", "");
    wait_for(|| t.history("q").len() == 2);
    assert_eq!(t.outcomes("q"), ["success", "success"]);
    drop(d);
}

#[test]
fn a_missing_env_file_fails_the_run_with_the_reason_and_check_warns() {
    let t = Table::new(
        "env-file-missing",
        r#"
[jobs.app]
schedule = "@manual"
command = ["/bin/sh", "-c", "touch $DIR/ran"]
env_file = "$DIR/nope.env"

[jobs.bad]
schedule = "@manual"
command = ["/bin/true"]
env_file = "$DIR/bad.env"
"#,
    );
    t.dir
        .write("bad.env", &format!("OK=1\nthis line is not {SECRET}\n"));
    let (code, out, err) = t.run(&["check"]);
    assert_eq!(code, 0, "warnings only: {out}{err}");
    let nope = t.dir().join("nope.env");
    assert!(
        err.contains(&format!(
            "job \"app\": env_file {}: no such file (write \"-{}\" if it may be missing)",
            nope.display(),
            nope.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("bad.env: line 2: expected KEY=VALUE (no '=')"),
        "{err}"
    );
    // Readable by others: a warning that points at the rule of password_file.
    assert!(
        err.contains("bad.env: group or others may read it (mode 0644)"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
    let (code, _, _) = t.run(&["run", "app"]);
    assert_eq!(code, 1);
    assert!(!t.dir().join("ran").exists(), "the command must not start");
    let rec = &t.history("app")[0];
    assert_eq!(rec["outcome"], "failure");
    assert!(
        rec["reason"]
            .as_str()
            .is_some_and(|r| r.contains("nope.env: no such file")),
        "{rec}"
    );
    // Present later: the next run reads it.
    t.dir.write("nope.env", "X=1\n");
    assert_eq!(t.run(&["run", "app"]).0, 0);
    assert!(t.dir().join("ran").exists());
}

/// A table whose job `user = "nobody"` gets `credentials` (a root-only file), and a directory
/// nobody may write its findings to. `None` (a visible skip) when not root.
fn nobody_table(tag: &str, test: &str, schedule: &str, then: &str) -> Option<Table> {
    if !nix::unistd::geteuid().is_root() {
        super::skip(test, "needs root to run a job as nobody");
        return None;
    }
    let t = Table::new(
        tag,
        &format!(
            r#"
[jobs.dump]
schedule = "{schedule}"
user = "nobody"
credentials = {{ pgpass = "$DIR/pgpass" }}
command = """
d=$CREDENTIALS_DIRECTORY
stat -c '%U %a' "$d" "$d/pgpass" > $DIR/out/stat
cat "$d/pgpass" > $DIR/out/copy
cat $DIR/pgpass > $DIR/out/direct 2>&1 || echo denied >> $DIR/out/direct
echo "$d" > $DIR/out/dir.tmp && mv $DIR/out/dir.tmp $DIR/out/dir
{then}
"""
"#
        ),
    );
    let src = t
        .dir
        .write("pgpass", &format!("db:5432:*:backup:{SECRET}\n"));
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = t.dir().join("out");
    std::fs::create_dir(&out).expect("out dir");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    Some(t)
}

fn read(t: &Table, name: &str) -> String {
    std::fs::read_to_string(t.dir().join("out").join(name)).unwrap_or_default()
}

#[test]
fn credentials_are_readable_by_the_jobs_user_during_its_run_only() {
    let test = "credentials_are_readable_by_the_jobs_user_during_its_run_only";
    let then = "echo from-nobody > $CRONWARDEN_RESULT_FILE";
    let Some(t) = nobody_table("creds", test, "@manual", then) else {
        return;
    };
    let (code, _, err) = t.run(&["run", "dump"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&t, "copy"), format!("db:5432:*:backup:{SECRET}\n"));
    // The original stays root's: nobody cannot read it, during the run either.
    assert!(
        read(&t, "direct").contains("denied"),
        "{}",
        read(&t, "direct")
    );
    // Owned by the job's user, for reading only, in a directory of the run's own.
    assert_eq!(read(&t, "stat"), "nobody 500\nnobody 400\n");
    let dir = std::path::PathBuf::from(read(&t, "dir").trim());
    assert!(
        dir.starts_with(t.dir().join("run-credentials")),
        "{}",
        dir.display()
    );
    assert!(
        !dir.exists(),
        "removed when the run ended: {}",
        dir.display()
    );
    let h = t.history("dump");
    let run_id = h[0]["run_id"].as_str().expect("id");
    // The job's user may write its result file too.
    assert_eq!(h[0]["result"], "from-nobody");
    assert_eq!(dir.file_name().and_then(|n| n.to_str()), Some(run_id));
    // A failed run is cleaned up too; a missing source fails the run, naming it.
    std::fs::remove_file(t.dir().join("pgpass")).expect("rm");
    assert_eq!(t.run(&["run", "dump"]).0, 1);
    let rec = &t.history("dump")[1];
    let reason = rec["reason"].as_str().expect("reason");
    assert!(reason.starts_with("credentials.pgpass ("), "{reason}");
    let left: Vec<_> = std::fs::read_dir(t.dir().join("run-credentials"))
        .expect("base dir")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn credentials_are_removed_after_a_daemon_killed_with_9_is_restarted() {
    let test = "credentials_are_removed_after_a_daemon_killed_with_9_is_restarted";
    let Some(t) = nobody_table("creds-kill", test, "@manual", "sleep 2") else {
        return;
    };
    let d = Daemon::start(&t);
    let (code, _, err) = t.run(&["trigger", "dump"]);
    assert_eq!(code, 0, "{err}");
    wait_for(|| !read(&t, "dir").is_empty());
    let dir = std::path::PathBuf::from(read(&t, "dir").trim());
    assert!(dir.join("pgpass").exists(), "staged while the run goes on");
    d.signal(libc::SIGKILL);
    d.wait();
    let d = Daemon::start(&t);
    // The run is settled by the new daemon (lost, or ended by itself), and its credentials
    // go with it.
    wait_for(|| t.history("dump").len() == 1);
    wait_for(|| !dir.exists());
    drop(d);
    assert_eq!(read(&t, "copy"), format!("db:5432:*:backup:{SECRET}\n"));
}

/// The minutes and seconds of each job's NEXT RUN in `list` (its offset into the hour of a
/// `@daily` job with a fixed jitter under an hour).
fn list_offsets(t: &Table) -> Vec<(String, String)> {
    let (code, out, err) = t.run(&["list"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            // JOB SCHEDULE ZONE DATE TIME ...
            (cells[0].to_string(), cells[4][3..].to_string())
        })
        .collect()
}

#[test]
fn a_fixed_jitter_is_the_same_offset_at_every_start_and_differs_between_jobs() {
    let t = Table::new(
        "jitter-fixed",
        r#"
[jobs.backup]
schedule = "@daily"
command = ["/bin/true"]
jitter = "1h"
jitter_mode = "fixed"

[jobs.report]
schedule = "@daily"
command = ["/bin/true"]
jitter = "1h"
jitter_mode = "fixed"

[jobs.often]
schedule = "@every 2s"
command = ["/bin/true"]
jitter = "1500ms"
jitter_mode = "fixed"

[jobs.other]
schedule = "@every 2s"
command = ["/bin/true"]
jitter = "1500ms"
jitter_mode = "fixed"
"#,
    );
    // `list` shows the instants the runs start: the same in every process.
    let first = list_offsets(&t);
    assert_eq!(list_offsets(&t), first);
    let mm_ss = |job: &str| first.iter().find(|(j, _)| j == job).expect(job).1.clone();
    assert_ne!(mm_ss("backup"), mm_ss("report"), "{first:?}");
    // The daemon waits that offset after each scheduled instant, across a restart.
    let offsets = |job: &str| -> Vec<u64> {
        t.log()
            .lines()
            .filter(|l| l.contains(" jitter ") && l.contains(&format!(" job={job} ")))
            .filter_map(|l| {
                l.split_once(" offset_ms=")?
                    .1
                    .split(':')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    };
    for _ in 0..2 {
        let before = t.history("often").len();
        let d = Daemon::start(&t);
        wait_for(|| t.history("often").len() >= before + 2 && t.history("other").len() >= 2);
        drop(d);
    }
    let (often, other) = (offsets("often"), offsets("other"));
    assert!(often.len() >= 4, "{often:?}");
    assert!(often.iter().all(|o| *o == often[0]), "{often:?}");
    assert!(other.iter().all(|o| *o == other[0]), "{other:?}");
    assert_ne!(often[0], other[0]);
    assert!(often[0] < 1500 && other[0] < 1500);
    for (job, offset) in [("often", often[0]), ("other", other[0])] {
        for r in t.history(job) {
            let late = super::ts(&r["started"]).duration_since(super::ts(&r["scheduled"]));
            assert!(
                late >= jiff::SignedDuration::from_millis(offset as i64),
                "{job} started {late:?} after its instant, before its offset {offset} ms"
            );
        }
    }
}

/// Names that differ only in their last character (a common way to name a set of jobs) get
/// offsets spread over the jitter, not one and the same.
#[test]
fn a_fixed_jitter_spreads_jobs_whose_names_differ_only_at_the_end() {
    let jobs: String = (1..=8)
        .map(|i| {
            format!(
                "[jobs.backup-{i}]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n\
                 jitter = \"1h\"\njitter_mode = \"fixed\"\n\n"
            )
        })
        .collect();
    let t = Table::new("jitter-names", &jobs);
    // Seconds into the hour of each job's next start (`list`: mm:ss after 00:).
    let secs: Vec<u32> = list_offsets(&t)
        .iter()
        .map(|(_, mm_ss)| {
            let (m, s) = mm_ss.split_once(':').expect("mm:ss");
            m.parse::<u32>().expect("mm") * 60 + s.parse::<u32>().expect("ss")
        })
        .collect();
    assert_eq!(secs.len(), 8);
    let spread = secs.iter().max().expect("8") - secs.iter().min().expect("8");
    // Eight offsets drawn evenly from an hour lie within 15 minutes of each other with a
    // chance of 1 in 2,500; one hash for all of them, never.
    assert!(
        spread >= 15 * 60,
        "offsets within {spread} s of each other: {secs:?}"
    );
}

/// Makes the job's first `n` runs look `days` old: their records end then, their output
/// files were last written then.
fn age_runs(t: &Table, job: &str, n: usize, when: &str) {
    let path = t.dir().join(format!("state/history/{job}.jsonl"));
    let mut lines = Vec::new();
    for (i, mut r) in t.history(job).into_iter().enumerate() {
        if i < n {
            r["ended"] = serde_json::Value::String(when.to_string());
            let out = r["output"].as_str().expect("an output file").to_string();
            let status = std::process::Command::new("touch")
                .args(["-d", when, &out])
                .status()
                .expect("touch runs");
            assert!(status.success());
        }
        lines.push(r.to_string());
    }
    std::fs::write(path, lines.join("\n") + "\n").expect("rewrite history");
}

fn outputs(t: &Table, job: &str) -> usize {
    std::fs::read_dir(t.dir().join("state/output").join(job)).map_or(0, |d| d.count())
}

#[test]
fn history_and_output_older_than_their_max_age_are_pruned_and_newer_kept() {
    let t = Table::new(
        "max-age",
        r#"
[jobs.aged]
schedule = "@manual"
command = ["/bin/echo", "hello"]
history_max_age = "1d"
output_max_age = "1d"

[jobs.forever]
schedule = "@manual"
command = ["/bin/echo", "hello"]
"#,
    );
    for _ in 0..3 {
        assert_eq!(t.run(&["run", "aged"]).0, 0);
        assert_eq!(t.run(&["run", "forever"]).0, 0);
    }
    age_runs(&t, "aged", 2, "2020-01-01T00:00:00Z");
    age_runs(&t, "forever", 2, "2020-01-01T00:00:00Z");
    let kept = t.history("aged")[2]["run_id"].clone();
    assert_eq!((outputs(&t, "aged"), outputs(&t, "forever")), (3, 3));
    // The daemon's housekeeping (at its start) prunes by age.
    let d = Daemon::start(&t);
    wait_for(|| t.history("aged").len() == 1 && outputs(&t, "aged") == 1);
    drop(d);
    assert_eq!(t.history("aged")[0]["run_id"], kept);
    let out = t.history("aged")[0]["output"]
        .as_str()
        .expect("o")
        .to_string();
    assert!(
        std::path::Path::new(&out).exists(),
        "the newer output is kept"
    );
    assert!(
        t.log()
            .contains("pruned 2 run(s) older than history_max_age"),
        "{}",
        t.log()
    );
    // A job without an age keeps everything.
    assert_eq!((t.history("forever").len(), outputs(&t, "forever")), (3, 3));
}

#[test]
fn depends_on_past_skips_after_a_failed_run_and_runs_after_a_success() {
    let t = Table::new(
        "past",
        r#"
[alerts.page]
type = "command"
command = "cat > $DIR/skip-alert.$CRONWARDEN_RUN_ID"
on = ["skipped"]

[jobs.load]
schedule = "* * * * * *"
command = "test -e $DIR/ok"
depends_on_past = true
alert = ["page"]
# The runs by hand below wait for a tick that holds the lock, rather than exit 75 for it.
overlap = "queue"
"#,
    );
    let d = Daemon::start(&t);
    // The first run fails; the scheduled runs after it are held back.
    wait_for(|| {
        let h = t.history("load");
        h.iter().any(|r| r["outcome"] == "failure")
            && h.last().is_some_and(|r| r["outcome"] == "skipped")
    });
    let h = t.history("load");
    let failed = h
        .iter()
        .find(|r| r["outcome"] == "failure")
        .expect("a failure");
    let skipped = h.last().expect("a skip");
    assert_eq!(skipped["trigger"], "schedule");
    // The instant as the reason gives it: without ":00" when the failed run was due at a
    // minute's second 0, as a per-second job's run may be.
    let failed_at = super::ts(&failed["scheduled"]).to_zoned(jiff::tz::TimeZone::UTC);
    let when = match failed_at.second() {
        0 => failed_at.strftime("%Y-%m-%dT%H:%M"),
        _ => failed_at.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    .to_string();
    assert_eq!(
        skipped["reason"].as_str(),
        Some(format!("previous run {when} failed (depends_on_past)").as_str()),
        "{skipped}"
    );
    assert!(super::ts(&skipped["scheduled"]) > super::ts(&failed["scheduled"]));
    // Alerted as a skip, with the reason.
    wait_for(|| {
        std::fs::read_dir(t.dir())
            .expect("dir")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("skip-alert."))
    });
    // By hand, with --respect-past: held back too (exit 75).
    let (code, _, err) = t.run(&["run", "load", "--respect-past"]);
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("failed (depends_on_past)"), "{err}");
    // By hand without it: not held back. Its success lets the schedule go on.
    std::fs::write(t.dir().join("ok"), "").expect("fix");
    let (code, _, err) = t.run(&["run", "load"]);
    assert_eq!(code, 0, "{err}");
    let fixed = t.history("load").len();
    wait_for(|| {
        t.history("load")[fixed..]
            .iter()
            .any(|r| r["outcome"] == "success" && r["trigger"] == "schedule")
    });
    drop(d);
    let h = t.history("load");
    let first_ok = h
        .iter()
        .position(|r| r["outcome"] == "success" && r["trigger"] == "schedule")
        .expect("a scheduled success");
    // Once a run succeeded, the scheduled runs after it run (none is held back).
    assert!(
        h[first_ok..].iter().all(|r| r["outcome"] == "success"),
        "{h:#?}"
    );
}

/// `GET /metrics` on the daemon's metrics listener: the body.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut s = String::new();
    c.read_to_string(&mut s).expect("read");
    s.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .expect("a body")
}

#[test]
fn tags_select_jobs_in_list_status_and_trigger_and_label_the_metrics() {
    let port = super::free_port();
    let t = Table::new(
        "tags",
        &format!(
            // Before any table header: a key of [settings].
            r#"metrics_listen = "127.0.0.1:{port}"

[jobs.dump]
schedule = "@manual"
command = ["/bin/true"]
tags = ["db", "nightly"]

[jobs.vacuum]
schedule = "@manual"
command = ["/bin/true"]
tags = "db"

[jobs.mail]
schedule = "@manual"
command = ["/bin/true"]
"#
        ),
    );
    let (code, out, err) = t.run(&["list", "--tag", "db"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0].last(), Some(&"TAGS"), "{out}");
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(
        (rows[1][0], rows[1].last()),
        ("dump", Some(&"db,nightly")),
        "{out}"
    );
    assert_eq!(
        (rows[2][0], rows[2].last()),
        ("vacuum", Some(&"db")),
        "{out}"
    );
    // Every job, with its tags.
    let (_, all, _) = t.run(&["list"]);
    assert_eq!(all.lines().count(), 4, "{all}");
    let (code, _, err) = t.run(&["list", "--tag", "nope"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no job has the tag \"nope\"; the table's tags: db, nightly"),
        "{err}"
    );
    let (code, out, err) = t.run(&["status", "--tag", "nightly", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let jobs: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|j| j["job"].as_str().expect("job"))
        .collect();
    assert_eq!(jobs, ["dump"]);
    assert_eq!(v[0]["tags"], serde_json::json!(["db", "nightly"]));
    let (_, out, _) = t.run(&["status", "--tag", "db"]);
    assert!(
        out.lines().next().is_some_and(|h| h.ends_with("TAGS")),
        "{out}"
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    let d = Daemon::start(&t);
    let (code, out, err) = t.run(&["trigger", "--tag", "db", "--wait"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, job) in lines.iter().zip(["dump", "vacuum"]) {
        assert_eq!((line[0], line[2]), (job, "success"), "{out}");
        assert_eq!(t.history(job)[0]["run_id"].as_str(), Some(line[1]));
    }
    assert!(t.history("mail").is_empty());
    // The daemon publishes its table's jobs once it has started them.
    let want = [
        r#"cronwarden_job_info{cronjob="dump",tags="db,nightly"} 1"#,
        r#"cronwarden_job_info{cronjob="mail",tags=""} 1"#,
        r#"cronwarden_job_info{cronjob="vacuum",tags="db"} 1"#,
    ];
    wait_for(|| {
        let text = metrics(port);
        let info: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("cronwarden_job_info{"))
            .collect();
        info == want
    });
    drop(d);
}
