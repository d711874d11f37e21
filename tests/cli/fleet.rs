//! Fleet mode against a real PostgreSQL: a throwaway cluster (`initdb` into a temp dir as
//! an unprivileged user, on a free loopback port), one database per test, three daemons
//! with separate state directories.
//!
//! The jobs record what they did in an events file shared by the nodes (all on this
//! machine), and a long job checks at its start that no copy of itself is still alive on
//! any node: "OVERLAP" in the file fails the tests.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::daemon::Daemon;
use super::{Table, TempDir, free_port, wait_for};

/// The shared server: started once per test process, stopped by a watcher when the test
/// process exits.
struct Pg {
    port: u16,
    _dir: PathBuf,
}

const UNPRIVILEGED: u32 = 65534;

fn pg_bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let p = std::fs::canonicalize(&p).unwrap_or(p);
        return p.parent().map(Path::to_path_buf);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn server() -> &'static Pg {
    static PG: OnceLock<Pg> = OnceLock::new();
    PG.get_or_init(|| {
        // Installing belongs to `.ci/run` (or the developer), never to a test.
        let bin = pg_bin_dir().unwrap_or_else(|| {
            panic!(
                "fleet tests need PostgreSQL's server binaries (initdb, postgres): install \
                 Debian's postgresql package (`bash .ci/run` does)"
            )
        });
        let dir = std::env::temp_dir().join(format!("cw-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pg dir");
        let as_user = |c: &mut Command| {
            if is_root() {
                c.uid(UNPRIVILEGED).gid(UNPRIVILEGED);
            }
        };
        if is_root() {
            std::os::unix::fs::chown(&dir, Some(UNPRIVILEGED), Some(UNPRIVILEGED)).expect("chown");
        }
        let data = dir.join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut initdb);
        let out = initdb.output().expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut pg = Command::new(bin.join("postgres"));
        pg.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).expect("log"))
            .process_group(0);
        as_user(&mut pg);
        let child = pg.spawn().expect("postgres starts");
        // Stops the server (fast shutdown) and removes its files once this process is gone.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(
                "while kill -0 $0 2>/dev/null; do sleep 0.5; done; kill -INT $1; \
                 while kill -0 $1 2>/dev/null; do sleep 0.2; done; rm -rf \"$2\"",
            )
            .arg(std::process::id().to_string())
            .arg(child.id().to_string())
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        std::mem::forget(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if postgres::Client::connect(
                &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
                postgres::NoTls,
            )
            .is_ok()
            {
                break;
            }
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Pg { port, _dir: dir }
    })
}

/// A database of its own for one test.
pub(super) struct Db {
    port: u16,
    name: String,
}

impl Db {
    pub(super) fn new(tag: &str) -> Db {
        let pg = server();
        let name = format!("t_{tag}");
        let mut c = admin(pg.port, "postgres");
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop database");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        Db {
            port: pg.port,
            name,
        }
    }

    fn url(&self, user: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{}?sslmode=disable",
            self.port, self.name
        )
    }

    pub(super) fn sql(&self) -> postgres::Client {
        admin(self.port, &self.name)
    }
}

fn admin(port: u16, db: &str) -> postgres::Client {
    postgres::Client::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname={db}"),
        postgres::NoTls,
    )
    .expect("connect as postgres")
}

/// A role a test can lock out of the database (`cut_off`) and let in again.
pub(super) fn lockable_role(sql: &mut postgres::Client, role: &str) {
    sql.batch_execute(&format!(
        "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN \
         ALTER ROLE {role} LOGIN; END $$; GRANT ALL ON SCHEMA public TO {role}"
    ))
    .expect("role");
}

/// Cuts a node's role off: no new connections, and its open ones terminated (for the node,
/// the database is gone).
pub(super) fn cut_off(sql: &mut postgres::Client, role: &str) {
    sql.batch_execute(&format!(
        "ALTER ROLE {role} NOLOGIN; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    ))
    .expect("cut off");
}

pub(super) fn let_in(sql: &mut postgres::Client, role: &str) {
    sql.batch_execute(&format!("ALTER ROLE {role} LOGIN"))
        .expect("let in");
}

/// One node's table: `[cluster]` with a short heartbeat, and `jobs` (with `$EVENTS` and
/// `$NODE` filled in).
fn node(db: &Db, user: &str, name: &str, events: &Path, jobs: &str) -> Table {
    node_timed(db, user, name, events, jobs, 4)
}

/// [`node`] with `dead_after` of `dead_after_s` seconds (heartbeat 1 s).
pub(super) fn node_timed(
    db: &Db,
    user: &str,
    name: &str,
    events: &Path,
    jobs: &str,
    dead_after_s: u32,
) -> Table {
    let text = format!(
        "[cluster]\npostgres_url = \"{}\"\nnode = \"{name}\"\nheartbeat = \"1s\"\n\
         dead_after = \"{dead_after_s}s\"\n\n{}",
        db.url(user),
        jobs.replace("$EVENTS", &events.display().to_string())
            .replace("$NODE", name)
    );
    Table::new(&format!("fleet-{name}"), &text)
}

pub(super) fn events(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// A job that logs `start NODE RUN_ID ATTEMPT EPOCH`, says OVERLAP if another copy of it is
/// alive, runs for `secs`, then logs `end NODE RUN_ID EPOCH`.
pub(super) fn long_job(name: &str, secs: u32, extra: &str) -> String {
    format!(
        "[jobs.{name}]\nschedule = \"@manual\"\nretries = 1\nretry_jitter = false\n{extra}\n\
         command = [\"/bin/sh\", \"-c\", \"\"\"\
         for p in $(cat $EVENTS.pids 2>/dev/null); do kill -0 $p 2>/dev/null && \
         echo OVERLAP $p >> $EVENTS; done; echo $$ >> $EVENTS.pids; \
         echo start $NODE $CRONWARDEN_RUN_ID $CRONWARDEN_ATTEMPT $(date +%s.%N) >> $EVENTS; \
         sleep {secs}; echo end $NODE $CRONWARDEN_RUN_ID $(date +%s.%N) >> $EVENTS\"\"\"]\n"
    )
}

const TICK: &str = "[jobs.tick]\nschedule = \"* * * * * *\"\noverlap = \"allow\"\ncatchup = \"all\"\n\
    command = [\"/bin/sh\", \"-c\", \"echo tick $NODE $CRONWARDEN_TS >> $EVENTS.ticks\"]\n";

pub(super) fn no_overlap(ev: &Path) {
    let all = events(ev);
    assert!(
        !all.iter().any(|e| e[0] == "OVERLAP"),
        "two copies ran at once: {all:?}"
    );
}

/// Each tick instant between the first and the last seen ran exactly once in total, on
/// some node; returns the instants per node.
fn ticks_once_without_gaps(ev: &Path) -> HashMap<String, usize> {
    let lines = events(&PathBuf::from(format!("{}.ticks", ev.display())));
    let mut seen: BTreeMap<jiff::Timestamp, Vec<String>> = BTreeMap::new();
    for l in &lines {
        let t: jiff::Timestamp = l[2].parse().expect("CRONWARDEN_TS");
        seen.entry(t).or_default().push(l[1].clone());
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| n.len() > 1).collect();
    assert!(twice.is_empty(), "instants run more than once: {twice:?}");
    let (first, last) = (
        *seen.keys().next().expect("ticks ran"),
        *seen.keys().last().expect("ticks ran"),
    );
    let span = (last - first).get_seconds() + 1;
    assert_eq!(
        seen.len() as i64,
        span,
        "every second from {first} to {last} runs once: {:?}",
        seen.keys().collect::<Vec<_>>()
    );
    let mut per_node = HashMap::new();
    for nodes in seen.values() {
        *per_node.entry(nodes[0].clone()).or_insert(0) += 1;
    }
    per_node
}

#[test]
fn three_nodes_run_each_per_second_instant_exactly_once() {
    let db = Db::new("once");
    let dir = TempDir::new("fleet-once");
    let ev = dir.path().join("events");
    let tables: Vec<Table> = ["a", "b", "c"]
        .iter()
        .map(|n| node(&db, "postgres", n, &ev, TICK))
        .collect();
    let daemons: Vec<Daemon> = tables.iter().map(Daemon::start).collect();
    let tick_file = PathBuf::from(format!("{}.ticks", ev.display()));
    // Until about 20 s of ticks ran and more than one node won some (the rank spreads them;
    // an event, not a fixed sleep).
    wait_for(|| {
        let ticks = events(&tick_file);
        let nodes: std::collections::BTreeSet<&str> = ticks.iter().map(|l| l[1].as_str()).collect();
        ticks.len() >= 20 && nodes.len() >= 2
    });
    for d in &daemons {
        d.signal(libc::SIGTERM);
    }
    for d in daemons {
        d.wait();
    }
    let per_node = ticks_once_without_gaps(&ev);
    let total: usize = per_node.values().sum();
    assert!(total >= 19, "about 20 s of ticks: {per_node:?}");
    // The history on any node shows the whole fleet's runs, with the node of each.
    let (code, out, err) = tables[0].run(&["history", "tick", "-n", "1000", "--json"]);
    assert_eq!(code, 0, "{err}");
    let runs: Vec<serde_json::Value> = serde_json::from_str(&out).expect("history JSON");
    assert_eq!(runs.len(), total, "every run is in the fleet history");
    let nodes: std::collections::BTreeSet<&str> =
        runs.iter().filter_map(|r| r["node"].as_str()).collect();
    for (n, count) in &per_node {
        assert!(
            nodes.contains(n.as_str()),
            "{n} ran {count} ticks: {nodes:?}"
        );
    }
    assert!(
        per_node.len() >= 2,
        "more than one node won claims: {per_node:?}"
    );
}

#[test]
fn a_killed_node_s_run_is_taken_over_after_dead_after_and_ticks_go_on() {
    let db = Db::new("kill");
    let dir = TempDir::new("fleet-kill");
    let ev = dir.path().join("events");
    let jobs = format!(
        "[alerts.page]\ntype = \"command\"\non = [\"failure\"]\ncommand = [\"/bin/sh\", \"-c\", \
         \"echo $CRONWARDEN_EVENT $NODE $CRONWARDEN_RUN_ID >> $EVENTS.alerts\"]\n\n{}{TICK}",
        long_job("long", 30, "alert = [\"page\"]")
    );
    let tables: Vec<Table> = ["a", "b", "c"]
        .iter()
        .map(|n| node(&db, "postgres", n, &ev, &jobs))
        .collect();
    let mut daemons: Vec<Option<Daemon>> = tables.iter().map(|t| Some(Daemon::start(t))).collect();
    let (code, out, err) = tables[1].run(&["trigger", "long"]);
    assert_eq!(code, 0, "{err}");
    let run_id = out.trim().to_string();
    wait_for(|| events(&ev).iter().any(|e| e[0] == "start"));
    let first = events(&ev)
        .into_iter()
        .find(|e| e[0] == "start")
        .expect("started");
    assert_eq!(first[2], run_id);
    let victim = ["a", "b", "c"]
        .iter()
        .position(|n| *n == first[1])
        .expect("a node");
    // Any node's `status` shows where it runs.
    let (code, out, _) = tables[(victim + 1) % 3].run(&["status", "long", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(v[0]["state"], "running", "{out}");
    assert_eq!(v[0]["running_node"], first[1].as_str(), "{out}");
    assert!(
        v[0]["running_since"]
            .as_str()
            .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()),
        "{out}"
    );
    // The victim has won ticks of its own (so it has a catch-up mark when it comes back).
    let tick_file = PathBuf::from(format!("{}.ticks", ev.display()));
    wait_for(|| events(&tick_file).iter().any(|l| l[1] == first[1]));
    let killed_at = jiff::Timestamp::now();
    daemons[victim]
        .take()
        .expect("running")
        .signal(libc::SIGKILL);
    // Taken over on another node: same run id, the next attempt.
    wait_for(|| events(&ev).iter().filter(|e| e[0] == "start").count() >= 2);
    let second = events(&ev)
        .into_iter()
        .filter(|e| e[0] == "start")
        .nth(1)
        .expect("taken over");
    assert_ne!(second[1], first[1], "another node runs it");
    assert_eq!(second[2], run_id, "same run id");
    assert_eq!(second[3], "2", "the next attempt");
    let started: f64 = second[4].parse().expect("epoch");
    let first_started: f64 = first[4].parse().expect("epoch");
    // The lease was taken before the first copy started and renewed at the latest at the
    // kill; another node may take it only dead_after (4 s) after its last renewal. (How long
    // before the kill the last renewal was depends on the machine's punctuality, so the
    // bound counts from the first copy's start, which no renewal precedes.)
    let since_kill = started - killed_at.as_millisecond() as f64 / 1000.0;
    assert!(
        since_kill > 0.0,
        "taken over before the kill: {since_kill:.2}s"
    );
    assert!(
        started - first_started >= 4.0,
        "taken over {:.2}s after the first copy started",
        started - first_started
    );
    // The killed node's job was stopped with it (the fence keeper), so it never overlapped.
    no_overlap(&ev);
    let pids = std::fs::read_to_string(format!("{}.pids", ev.display())).expect("pids");
    let victim_pid: i32 = pids
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("pid");
    assert!(
        !super::alive(victim_pid),
        "the killed node's copy was stopped"
    );
    // The node that took it over says which node was lost.
    let taker = ["a", "b", "c"]
        .iter()
        .position(|n| *n == second[1])
        .expect("a node");
    let log = tables[taker].log();
    assert!(
        log.contains(&format!(
            "node-lost job=long run_id={run_id} node={}",
            first[1]
        )),
        "{log}"
    );
    // One alert, from that node, says the node was lost.
    let alerts_file = PathBuf::from(format!("{}.alerts", ev.display()));
    wait_for(|| !events(&alerts_file).is_empty());
    assert_eq!(
        events(&alerts_file),
        vec![vec![
            "node-lost".to_string(),
            second[1].clone(),
            run_id.clone()
        ]]
    );
    // Ticks continue on the other nodes without a gap through the kill and the takeover.
    let after = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    wait_for(|| {
        events(&tick_file)
            .iter()
            .any(|l| l[2].parse::<jiff::Timestamp>().is_ok_and(|t| t >= after))
    });
    // The killed node comes back: its catch-up of the ticks it missed (catchup = "all")
    // finds them claimed by the others and runs none of them again.
    daemons[victim] = Some(Daemon::start(&tables[victim]));
    wait_for(|| tables[victim].log().matches(" daemon-start ").count() >= 2);
    let log = tables[victim].log();
    assert!(
        log.contains("job tick: ") && log.contains("missed") && log.contains("running each"),
        "the restarted node tried to catch up:\n{log}"
    );
    let after = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    wait_for(|| {
        events(&tick_file)
            .iter()
            .any(|l| l[2].parse::<jiff::Timestamp>().is_ok_and(|t| t >= after))
    });
    ticks_once_without_gaps(&ev);
    drop(daemons);
}

#[test]
fn a_node_cut_off_from_the_database_stops_its_job_before_another_starts_it() {
    let db = Db::new("fence");
    let dir = TempDir::new("fleet-fence");
    let ev = dir.path().join("events");
    let mut sql = db.sql();
    lockable_role(&mut sql, "node_a");
    let jobs = long_job("long", 30, "");
    let a = node(&db, "node_a", "a", &ev, &jobs);
    let b = node(&db, "postgres", "b", &ev, &jobs);
    let da = Daemon::start(&a);
    let (code, _, err) = a.run(&["trigger", "long"]);
    assert_eq!(code, 0, "{err}");
    wait_for(|| events(&ev).iter().any(|e| e[0] == "start" && e[1] == "a"));
    let db_ = Daemon::start(&b);
    cut_off(&mut sql, "node_a");
    let cut = Instant::now();
    wait_for(|| events(&ev).iter().any(|e| e[0] == "start" && e[1] == "b"));
    let took = cut.elapsed();
    // Node a said it fenced its job, and b started only after that, with no overlap (b's
    // copy checks that a's is gone).
    let log_a = a.log();
    assert!(
        log_a.contains(" fenced "),
        "node a logs the fence:\n{log_a}"
    );
    no_overlap(&ev);
    assert!(
        took >= Duration::from_secs(3),
        "taken over after dead_after, not at once ({took:?})"
    );
    let second = events(&ev)
        .into_iter()
        .find(|e| e[0] == "start" && e[1] == "b")
        .expect("b started");
    assert_eq!(second[3], "2", "b goes on with the next attempt");
    // The fence says what happens next, and a's own record of the run says why it ended.
    let fence = log_lines(&a, " fenced job=long ").remove(0);
    assert!(
        fence.contains("this node could not renew its lease for 3s: stopping the job now")
            && fence.contains("not retried here")
            && fence.contains("runs it again only if the job has retries left"),
        "{fence}"
    );
    wait_for(|| !a.history("long").is_empty());
    let rec = &a.history("long")[0];
    assert_eq!(rec["outcome"], "interrupted", "{rec}");
    let reason = rec["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("fenced: this node could not renew its lease for 3s, so it stopped"),
        "{reason}"
    );
    let_in(&mut sql, "node_a");
    drop((da, db_));
}

#[test]
fn a_trigger_from_any_node_runs_once_and_a_long_job_never_overlaps() {
    let db = Db::new("trigger");
    let dir = TempDir::new("fleet-trigger");
    let ev = dir.path().join("events");
    let jobs = format!(
        "{}{}",
        long_job("long", 1, "overlap = \"queue\""),
        "[jobs.quick]\nschedule = \"@manual\"\noverlap = \"allow\"\ncommand = [\"/bin/sh\", \
         \"-c\", \"echo quick $NODE $CRONWARDEN_RUN_ID >> $EVENTS\"]\n"
    );
    let tables: Vec<Table> = ["a", "b", "c"]
        .iter()
        .map(|n| node(&db, "postgres", n, &ev, &jobs))
        .collect();
    let daemons: Vec<Daemon> = tables.iter().map(Daemon::start).collect();
    // Nine triggers of a quick job, three from each node's command line.
    let mut ids = Vec::new();
    for i in 0..9 {
        let (code, out, err) = tables[i % 3].run(&["trigger", "quick"]);
        assert_eq!(code, 0, "{err}");
        ids.push(out.trim().to_string());
    }
    // And a long job queued from every node at once: they run one after another.
    for t in &tables {
        let (code, _, err) = t.run(&["trigger", "long"]);
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, err) = tables[2].run(&["trigger", "quick", "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with(" success\n"), "{out}");
    ids.push(out.split_whitespace().next().expect("id").to_string());
    wait_for(|| events(&ev).iter().filter(|e| e[0] == "end").count() >= 3);
    let all = events(&ev);
    for id in &ids {
        let n = all
            .iter()
            .filter(|e| e[0] == "quick" && e[2] == *id)
            .count();
        assert_eq!(n, 1, "trigger {id} ran {n} times: {all:?}");
    }
    no_overlap(&ev);
    // The long runs did not overlap in time either (from their own start and end stamps).
    let mut spans: Vec<(f64, f64)> = Vec::new();
    for s in all.iter().filter(|e| e[0] == "start") {
        let end = all
            .iter()
            .find(|e| e[0] == "end" && e[2] == s[2])
            .expect("ended");
        spans.push((s[4].parse().expect("t"), end[3].parse().expect("t")));
    }
    spans.sort_by(|x, y| x.0.total_cmp(&y.0));
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "long runs overlapped: {spans:?}");
    }
    // `status` on any node shows the fleet's last run.
    let (code, out, _) = tables[1].run(&["status", "quick", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(v[0]["last_run"]["outcome"], "success");
    drop(daemons);
}

#[test]
fn without_the_database_fleet_commands_say_so() {
    let dir = TempDir::new("fleet-down");
    let port = free_port();
    let t = Table::new(
        "fleet-down",
        &format!(
            "[cluster]\npostgres_url = \"postgres://postgres@127.0.0.1:{port}/x?sslmode=disable\"\n\
             [jobs.j]\nschedule = \"@manual\"\ncommand = [\"/bin/true\"]\n"
        ),
    );
    let _ = dir;
    for args in [
        &["run", "j"][..],
        &["trigger", "j"],
        &["status"],
        &["history", "j"],
        &["daemon"],
    ] {
        let (code, _, err) = t.run(args);
        assert_eq!(code, 69, "{args:?}: {err}");
        assert!(
            err.contains("cannot connect to PostgreSQL") && err.contains("[cluster]"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("postgres://"),
            "no connection string in {err}"
        );
    }
}

#[test]
fn a_postgres_url_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("fleet-urlfile");
    let url = dir.write("pg.url", "postgres://cw:secret@127.0.0.1:1/x\n");
    let t = Table::new(
        "fleet-urlfile",
        &format!(
            "[cluster]\npostgres_url_file = \"{}\"\n[jobs.j]\nschedule = \"@manual\"\n\
             command = [\"/bin/true\"]\n",
            url.display()
        ),
    );
    // 0644 (as written): refused before any connection is tried, and the secret stays out.
    let (code, _, err) = t.run(&["status"]);
    assert_eq!(code, 69, "{err}");
    assert!(
        err.contains("postgres_url_file") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    // 0600: read, and the connection is what fails (nothing listens on port 1).
    std::fs::set_permissions(&url, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, _, err) = t.run(&["status"]);
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

/// The deadlines (the `deadline=` field) of a node's `stale job=JOB` log lines.
fn stale_deadlines(t: &Table, job: &str) -> Vec<String> {
    let pat = format!(" stale job={job} deadline=");
    t.log()
        .lines()
        .filter_map(|l| l.split_once(&pat))
        .filter_map(|(_, rest)| rest.split(':').next().map(|_| rest))
        .filter_map(|rest| rest.split_once(": ").map(|(d, _)| d.to_string()))
        .collect()
}

#[test]
fn the_stale_deadline_is_the_fleets_a_success_on_any_node_moves_it_on_every_node() {
    let db = Db::new("stale");
    let dir = TempDir::new("fleet-stale");
    let ev = dir.path().join("events");
    let ok = PathBuf::from(format!("{}.ok", ev.display()));
    std::fs::write(&ok, "").expect("ok");
    let job = "[jobs.flaky]\nschedule = \"* * * * * *\"\nexpect_success_within = \"4s\"\n\
               command = [\"/bin/sh\", \"-c\", \"echo $NODE >> $EVENTS.runs; test -e $EVENTS.ok\"]\n";
    let tables: Vec<Table> = ["a", "b"]
        .iter()
        .map(|n| node(&db, "postgres", n, &ev, job))
        .collect();
    let _daemons: Vec<Daemon> = tables.iter().map(Daemon::start).collect();
    let runs = PathBuf::from(format!("{}.runs", ev.display()));
    // Succeeding for three deadlines, on one node or the other: neither says stale (a node
    // that did not run the job reads the fleet's history at its deadline and finds the
    // other's success). (4 s: a loaded machine can delay a tick by a second or two.)
    wait_for(|| events(&runs).len() >= 12);
    for t in &tables {
        assert!(stale_deadlines(t, "flaky").is_empty(), "{}", t.log());
    }
    // Failing from now on: each node says it once, with the same deadline (from the same
    // last success in the fleet's history); the alert goes out once per fleet
    // (`first_alert`).
    std::fs::remove_file(&ok).expect("rm ok");
    wait_for(|| {
        tables
            .iter()
            .all(|t| !stale_deadlines(t, "flaky").is_empty())
    });
    let failing = events(&runs).len();
    wait_for(|| events(&runs).len() >= failing + 3);
    let a = stale_deadlines(&tables[0], "flaky");
    let b = stale_deadlines(&tables[1], "flaky");
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a, b);
}

/// `status --nodes --json` on `t`.
fn nodes_of(t: &Table) -> Vec<serde_json::Value> {
    let (code, out, err) = t.run(&["status", "--nodes", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).expect("nodes JSON")
}

/// The newest daemon process of node `name` in `nodes`.
fn daemon_node<'a>(nodes: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    nodes
        .iter()
        .find(|n| n["node"] == name && n["daemon"] == true)
}

/// `status JOB --json` on `t`: the job's object.
fn job_status(t: &Table, job: &str) -> serde_json::Value {
    let (code, out, err) = t.run(&["status", job, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    v[0].clone()
}

/// The log lines of `t` with this kind and job, e.g. `run-end job=long `.
fn log_lines(t: &Table, pat: &str) -> Vec<String> {
    t.log()
        .lines()
        .filter(|l| l.contains(pat))
        .map(str::to_string)
        .collect()
}

/// Polls `status` on `t` until node a (whose run of `long` has no daemon to take it over)
/// has been seen lost twice: per sample, a's state, the run's (`running` or the kind of
/// doubt) and a's heartbeat age. Each sample is checked against a's heartbeat age.
fn watch_until_lost(t: &Table) -> Vec<(String, String, f64)> {
    let mut seen: Vec<(String, String, f64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = job_status(t, "long");
        let n = nodes_of(t);
        let na = daemon_node(&n, "a").expect("a is listed").clone();
        let age = na["heartbeat_age_seconds"].as_f64().expect("age");
        let node_state = na["state"].as_str().expect("state").to_string();
        let run_state = match v["running_doubt"]["kind"].as_str() {
            Some(k) => k.to_string(),
            None => v["state"].as_str().expect("state").to_string(),
        };
        // The job's status and the node's come from two reads; the node may have moved on
        // in between, never back.
        match node_state.as_str() {
            "live" => assert!(age <= 2.0, "{na}"),
            "unreachable" => assert!(age > 2.0 && age < 8.0, "{na}"),
            "lost" => assert!(age >= 8.0, "{na}"),
            other => panic!("a is {other}: {na}"),
        }
        if run_state != "running" {
            assert_eq!(v["state"], "unconfirmed", "{v}");
            assert_eq!(v["running_node"], "a", "{v}");
        }
        seen.push((node_state.clone(), run_state, age));
        if node_state == "lost" && seen.iter().filter(|s| s.1 == "lost").count() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a never counted as lost: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    seen
}

#[test]
fn status_tells_stopped_unreachable_and_lost_nodes_apart_and_a_takeover_counts_attempts() {
    let db = Db::new("nodes");
    let dir = TempDir::new("fleet-nodes");
    let ev = dir.path().join("events");
    // dead_after 8s: the node is unreachable from 2 to 8 s of silence, long enough to be
    // seen by polling on a loaded machine.
    let jobs = long_job("long", 6, "");
    let table = |name: &str| node_timed(&db, "postgres", name, &ev, &jobs, 8);
    let (a, b) = (table("a"), table("b"));
    let da = Daemon::start(&a);
    let d_b = Daemon::start(&b);
    wait_for(|| {
        let n = nodes_of(&a);
        ["a", "b"]
            .iter()
            .all(|x| daemon_node(&n, x).is_some_and(|d| d["state"] == "live"))
    });
    // b exits cleanly: stopped, never unreachable or lost.
    d_b.signal(libc::SIGTERM);
    d_b.wait();
    let n = nodes_of(&a);
    let nb = daemon_node(&n, "b").expect("b is listed");
    assert_eq!(nb["state"], "stopped", "{n:?}");
    assert_eq!(daemon_node(&n, "a").expect("a")["state"], "live", "{n:?}");
    let (code, out, _) = a.run(&["status", "--nodes"]);
    assert_eq!(code, 0);
    let line_b = out.lines().find(|l| l.starts_with("b ")).expect("b's line");
    assert!(
        line_b.contains(" daemon ") && line_b.ends_with(" stopped"),
        "{out}"
    );
    // a, the only daemon left, runs the job; any node's status shows it running.
    let (code, out, err) = b.run(&["trigger", "long"]);
    assert_eq!(code, 0, "{err}");
    let run_id = out.trim().to_string();
    wait_for(|| events(&ev).iter().any(|e| e[0] == "start"));
    let v = job_status(&b, "long");
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["running_node"], "a", "{v}");
    assert!(v["running_doubt"].is_null(), "{v}");
    let (_, out, _) = b.run(&["status"]);
    assert!(out.contains("running since "), "{out}");
    // a is killed: no daemon is left to take the run over, so its row stays `running`.
    da.signal(libc::SIGKILL);
    let seen = watch_until_lost(&b);
    // In order: live, then unreachable, then lost; the run likewise, and never shown as
    // plainly running once its node was late.
    let order = |s: &str| ["live", "unreachable", "lost"].iter().position(|x| *x == s);
    let states: Vec<usize> = seen.iter().filter_map(|s| order(&s.0)).collect();
    assert!(states.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.iter().any(|s| s.0 == "unreachable"), "{seen:?}");
    assert!(
        seen.iter().any(|s| s.1 == "unreachable"),
        "the run was said to be on an unreachable node: {seen:?}"
    );
    for s in &seen {
        if s.2 > 2.5 {
            assert_ne!(s.1, "running", "{seen:?}");
        }
        if s.1 == "lost" {
            assert!(s.2 >= 7.5, "{seen:?}");
        }
    }
    let (_, out, _) = b.run(&["status"]);
    assert!(out.contains("running on a? (a lost)"), "{out}");
    assert!(
        out.contains(&format!(
            "long: run {run_id}: running on a? a is lost: no heartbeat for "
        )),
        "{out}"
    );
    // b comes back and takes the run over as attempt 2: its end says so, and so do the
    // run's record and row.
    let _d_b = Daemon::start(&b);
    wait_for(|| events(&ev).iter().any(|e| e[0] == "end" && e[1] == "b"));
    let second = events(&ev)
        .into_iter()
        .find(|e| e[0] == "start" && e[1] == "b")
        .expect("b started it");
    assert_eq!(
        (second[2].as_str(), second[3].as_str()),
        (run_id.as_str(), "2")
    );
    // The node that took it over says how long a had been silent (by the database clock).
    let lost = log_lines(&b, &format!("node-lost job=long run_id={run_id} node=a")).remove(0);
    let silent: f64 = lost
        .split_once("(no heartbeat for ")
        .and_then(|(_, r)| r.split_once("s)"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("{lost}"));
    assert!(silent >= 8.0, "{lost}");
    assert!(
        lost.contains("a was lost during attempt 1 ") && lost.ends_with("; node b runs attempt 2"),
        "{lost}"
    );
    let end = format!("run-end job=long run_id={run_id} ");
    wait_for(|| !log_lines(&b, &end).is_empty());
    let line = log_lines(&b, &end).remove(0);
    assert!(
        line.contains(" outcome=success ") && line.contains(" attempts=2"),
        "{line}"
    );
    // (The run-end line is logged just before the run is recorded.)
    wait_for(|| job_status(&a, "long")["last_run"]["run_id"] == run_id.as_str());
    let v = job_status(&a, "long");
    assert_eq!(v["last_run"]["attempts"][0]["attempt"], 2, "{v}");
    let row = db
        .sql()
        .query_one(
            "SELECT attempt, state FROM cronwarden_runs WHERE run_id = $1",
            &[&run_id],
        )
        .expect("row");
    assert_eq!(row.get::<_, i32>(0), 2);
    assert_eq!(row.get::<_, &str>(1), "done");
    // The ATTEMPTS cell of `history`, under its header.
    let (_, out, _) = a.run(&["history", "long"]);
    let at = out.find("ATTEMPTS").expect("header");
    let hist = out.lines().last().expect("a run");
    let cell = hist.get(at..).and_then(|c| c.split_whitespace().next());
    assert_eq!(cell, Some("2"), "{out}");
    no_overlap(&ev);
}

#[test]
fn a_run_whose_end_could_not_be_written_is_not_shown_running() {
    let db = Db::new("unreported");
    let dir = TempDir::new("fleet-unreported");
    let ev = dir.path().join("events");
    let jobs = long_job("long", 2, "");
    let mut sql = db.sql();
    sql.batch_execute(
        "DO $$ BEGIN CREATE ROLE node_u LOGIN; EXCEPTION WHEN duplicate_object THEN \
         ALTER ROLE node_u LOGIN; END $$",
    )
    .expect("role");
    // The schema is made by an admin's command; the node's role may use it.
    let admin = node(&db, "postgres", "x", &ev, &jobs);
    let (code, _, err) = admin.run(&["status"]);
    assert_eq!(code, 0, "{err}");
    sql.batch_execute(
        "GRANT ALL ON SCHEMA public TO node_u; \
         GRANT ALL ON ALL TABLES IN SCHEMA public TO node_u; \
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO node_u",
    )
    .expect("grant");
    let a = node(&db, "node_u", "a", &ev, &jobs);
    let _da = Daemon::start(&a);
    let (code, out, err) = a.run(&["trigger", "long"]);
    assert_eq!(code, 0, "{err}");
    let run_id = out.trim().to_string();
    wait_for(|| events(&ev).iter().any(|e| e[0] == "start"));
    assert_eq!(job_status(&admin, "long")["state"], "running");
    // From now on a can neither write the run's end nor let its lease go (as when the
    // database is away at the end of a run), but it still heartbeats.
    sql.batch_execute(
        "REVOKE INSERT, UPDATE ON cronwarden_runs FROM node_u; \
         REVOKE DELETE ON cronwarden_leases FROM node_u",
    )
    .expect("revoke");
    wait_for(|| events(&ev).iter().any(|e| e[0] == "end"));
    wait_for(|| a.log().contains("cannot record the run in the database"));
    // The row still says running and the lease row is still there; status says the run
    // ended unreported once a, live, has not renewed the lease for two heartbeats.
    wait_for(|| job_status(&admin, "long")["state"] != "running");
    let v = job_status(&admin, "long");
    assert_eq!(v["state"], "unconfirmed", "{v}");
    assert_eq!(v["running_doubt"]["kind"], "unreported", "{v}");
    let text = v["running_doubt"]["text"].as_str().expect("text");
    assert!(
        text.starts_with("a is live but has not renewed its lease for "),
        "{text}"
    );
    let lease: i64 = sql
        .query_one("SELECT count(*) FROM cronwarden_leases", &[])
        .expect("leases")
        .get(0);
    assert_eq!(lease, 1, "the lease row is left behind");
    let (_, out, _) = admin.run(&["status"]);
    assert!(out.contains("ended on a, unreported"), "{out}");
    assert!(!out.contains("running since"), "{out}");
    assert!(
        out.contains(&format!("long: run {run_id}: a is live")),
        "{out}"
    );
    let n = nodes_of(&admin);
    assert_eq!(daemon_node(&n, "a").expect("a")["state"], "live", "{n:?}");
}

#[test]
fn the_last_real_result_is_shown_however_many_skips_follow_it() {
    let db = Db::new("lastreal");
    let dir = TempDir::new("fleet-lastreal");
    let ev = dir.path().join("events");
    // Fails every second until the hold file appears; then one run holds the job and every
    // tick after it is skipped (one row each in the fleet).
    let jobs = "[jobs.held]\nschedule = \"* * * * * *\"\noverlap = \"skip\"\n\
                command = [\"/bin/sh\", \"-c\", \"if [ -e $EVENTS.hold ]; then echo hold >> \
                $EVENTS; sleep 300; fi; echo fail >> $EVENTS; exit 3\"]\n";
    let a = node(&db, "postgres", "a", &ev, jobs);
    let _da = Daemon::start(&a);
    wait_for(|| events(&ev).iter().filter(|e| e[0] == "fail").count() >= 2);
    std::fs::write(format!("{}.hold", ev.display()), "").expect("hold");
    wait_for(|| events(&ev).iter().any(|e| e[0] == "hold"));
    let skips = || -> i64 {
        db.sql()
            .query_one(
                "SELECT count(*) FROM cronwarden_runs WHERE job = 'held' \
                 AND record::json ->> 'outcome' = 'skipped'",
                &[],
            )
            .expect("count")
            .get(0)
    };
    // More skips than status reads of recent runs (40).
    let deadline = Instant::now() + Duration::from_secs(180);
    while skips() < 42 {
        assert!(Instant::now() < deadline, "only {} skips", skips());
        std::thread::sleep(Duration::from_millis(500));
    }
    let v = job_status(&a, "held");
    assert_eq!(v["last_run"]["outcome"], "failure", "{v}");
    assert_eq!(v["last_run"]["attempts"][0]["exit_code"], 3, "{v}");
    let count = v["skipped_since_last_run"]["count"]
        .as_u64()
        .expect("count");
    assert!(count >= 42, "{v}");
    assert_eq!(v["state"], "running", "{v}");
    // The success rate is of the real runs before the skips.
    assert_eq!(v["success_rate"], 0.0, "{v}");
    assert!(v["rate_runs"].as_u64().is_some_and(|n| n >= 2), "{v}");
    let (_, out, _) = a.run(&["status", "held"]);
    let row = out.lines().nth(1).expect("a row");
    assert!(row.contains(" failure (then "), "{out}");
    assert!(!row.contains(" skipped "), "{out}");
}
