//! Fleet mode on the wire, against the real PostgreSQL of the fleet tests: every operation
//! is one round trip; every session of a node carries its name and keepalives on both
//! sides; the sessions stay bounded through connection errors; a node renews soon after
//! the database lets it back in and measures the outage from its last good renewal; and a
//! node whose clock is 30 s ahead (libfaketime) schedules by the database's clock.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::super::daemon::Daemon;
use super::super::{TempDir, free_port, skip, wait_for};
use super::{Db, events, node};

/// A tick every second, recorded as `tick NODE SCHEDULED`.
const TICK: &str = "[jobs.tick]\nschedule = \"* * * * * *\"\noverlap = \"allow\"\n\
    command = [\"/bin/sh\", \"-c\", \"echo tick $NODE $CRONWARDEN_TS >> $EVENTS.ticks\"]\n";

/// The client ports of the sessions whose `application_name` is `app`.
fn sessions(db: &Db, app: &str) -> Vec<i32> {
    db.sql()
        .query(
            "SELECT client_port FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get::<_, i32>(0))
        .collect()
}

/// The keepalive timer `ss` shows on the socket from `sport` to `dport` (on loopback), if
/// armed: "timer:(keepalive,850ms,0)".
fn keepalive_timer(sport: u16, dport: u16) -> Option<Duration> {
    let out = Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .arg(format!("( sport = :{sport} and dport = :{dport} )"))
        .output()
        .expect("ss runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let t = text.split("timer:(keepalive,").nth(1)?.split(',').next()?;
    let (n, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "sec" => n,
        "min" => n * 60.0,
        _ => n * 3600.0,
    };
    Some(Duration::from_secs_f64(secs))
}

/// `name{op="OP"} VALUE` of a Prometheus text.
fn sample(text: &str, name: &str, op: &str) -> Option<u64> {
    let key = format!("{name}{{op=\"{op}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

/// The `round trips to the database: renew N in M, ...` line a node logs at its exit, as
/// (operation, round trips, operations).
fn round_trips(log: &str) -> Vec<(String, u64, u64)> {
    let line = log
        .lines()
        .rfind(|l| l.contains("round trips to the database: "))
        .expect("the round trips are logged at exit");
    let list = line
        .split("round trips to the database: ")
        .nth(1)
        .expect("list");
    list.split(", ")
        .map(|part| {
            let w: Vec<&str> = part.split_whitespace().collect();
            assert_eq!(w.len(), 4, "{line}");
            (
                w[0].to_string(),
                w[1].parse().expect("trips"),
                w[3].parse().expect("ops"),
            )
        })
        .collect()
}

#[test]
fn each_operation_is_one_round_trip_and_sessions_carry_the_node_and_keepalives() {
    if Command::new("ss").arg("-V").output().is_err() {
        return skip(
            "fleet::wire::each_operation_is_one_round_trip",
            "ss not found (apt-get install iproute2)",
        );
    }
    let db = Db::new("wire");
    let dir = TempDir::new("fleet-wire");
    let ev = dir.path().join("events");
    let t = node(
        &db,
        "postgres",
        "wire-a",
        &ev,
        &format!("{TICK}[jobs.once]\nschedule = \"@manual\"\ncommand = [\"/bin/true\"]\n"),
    );
    let port = with_metrics(&t);
    let d = Daemon::start(&t);
    let ticks = PathBuf::from(format!("{}.ticks", ev.display()));
    wait_for(|| events(&ticks).len() >= 3);
    let (code, _, err) = t.run(&["trigger", "once", "--wait"]);
    assert_eq!(code, 0, "{err}");
    // Every session of the node is named after it, and both ends of each have keepalives
    // after a heartbeat (1 s) of silence, not the kernel's default of 2 hours: the server's
    // through the node's startup options.
    let pg = db.port;
    let mut ports = Vec::new();
    wait_for(|| {
        ports = sessions(&db, "cronwarden wire-a");
        ports.len() >= 2
            && ports.iter().all(|&p| {
                let p = p as u16;
                let server = keepalive_timer(pg, p);
                let client = keepalive_timer(p, pg);
                server.is_some_and(|d| d <= Duration::from_secs(2))
                    && client.is_some_and(|d| d <= Duration::from_secs(2))
            })
    });
    assert!(ports.len() <= 10, "pool of 8, renewal, listener: {ports:?}");
    // One round trip per renewal, claim batch, lease take or release, and run-row write.
    let m = scrape(port);
    for op in ["renew", "claim", "lease", "record"] {
        let ops = sample(&m, "cronwarden_fleet_operations_total", op).expect(op);
        assert!(ops > 0, "{op}: {m}");
    }
    assert!(m.contains("cronwarden_fleet_renew_rtt_seconds "), "{m}");
    let body = m.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    super::super::control::promtool_accepts(body);
    d.signal(libc::SIGTERM);
    d.wait();
    let counts = round_trips(&t.log());
    for (op, trips, ops) in &counts {
        if op != "other" {
            assert_eq!(trips, ops, "one round trip per {op}: {counts:?}");
        }
    }
    assert!(
        counts.iter().any(|(op, _, ops)| op == "renew" && *ops >= 3),
        "{counts:?}"
    );
}

#[test]
fn sessions_stay_bounded_through_connection_errors_and_renewal_resumes_soon_after_a_heal() {
    let db = Db::new("bounded");
    let dir = TempDir::new("fleet-bounded");
    let ev = dir.path().join("events");
    let mut sql = db.sql();
    sql.batch_execute(
        "DO $$ BEGIN CREATE ROLE node_w LOGIN; EXCEPTION WHEN duplicate_object THEN \
         ALTER ROLE node_w LOGIN; END $$; GRANT ALL ON SCHEMA public TO node_w",
    )
    .expect("role");
    let t = node(&db, "node_w", "w", &ev, TICK);
    let d = Daemon::start(&t);
    let ticks = PathBuf::from(format!("{}.ticks", ev.display()));
    wait_for(|| events(&ticks).len() >= 2);
    // Five rounds of every session of the node killed: it reconnects, and drops what failed.
    for round in 0..5 {
        sql.batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'cronwarden w'",
        )
        .expect("terminate");
        let n = events(&ticks).len();
        wait_for(|| events(&ticks).len() >= n + 2);
        let now = sessions(&db, "cronwarden w");
        assert!(
            now.len() <= 10,
            "round {round}: pool of 8, renewal, listener: {now:?}"
        );
    }
    // The daemon holds no more sockets to the server than its sessions allow.
    let held = held_sockets(d.pid(), db.port);
    assert!(
        held.len() <= 10,
        "{} sockets to the server: {held:?}",
        held.len()
    );
    // Shut out for 2 s (less than dead_after - heartbeat: nothing is fenced), then let in
    // again: the outage is counted from the last good renewal, so at least the 2 s.
    let count = |what: &str| t.log().matches(what).count();
    let (failed, back) = (
        count("cannot renew the leases: "),
        count("the database is back after "),
    );
    sql.batch_execute(
        "ALTER ROLE node_w NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE usename = 'node_w'",
    )
    .expect("cut off");
    let cut = Instant::now();
    wait_for(|| count("cannot renew the leases: ") > failed);
    std::thread::sleep(Duration::from_secs(2).saturating_sub(cut.elapsed()));
    sql.batch_execute("ALTER ROLE node_w LOGIN")
        .expect("let in");
    let healed = Instant::now();
    wait_for(|| count("the database is back after ") > back);
    let back = healed.elapsed();
    let log = t.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("the database is back after "))
        .expect("back");
    let secs: f64 = line
        .split("the database is back after ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .expect("seconds");
    assert!(
        secs >= 2.0,
        "the outage lasted at least the 2 s cut: {line}"
    );
    let start = log
        .lines()
        .rfind(|l| l.contains("cannot renew the leases: "))
        .expect("start");
    assert!(
        start.contains("the last good renewal was sent "),
        "the outage's start names the last good renewal: {start}"
    );
    eprintln!("renewed {back:?} after the heal (heartbeat 1 s)");
    let _ = sql.batch_execute("ALTER ROLE node_w LOGIN");
    drop(d);
}

/// The TCP sockets process `pid` holds to `port` (from its descriptors and /proc/net/tcp),
/// as their /proc/net/tcp lines.
fn held_sockets(pid: i32, port: u16) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    l.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!(":{port:04X}");
    tcp.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 9 && f[2].ends_with(&remote) && inodes.iter().any(|i| i == f[9])
        })
        .map(str::to_string)
        .collect()
}

/// libfaketime's library, if installed.
fn libfaketime() -> Option<PathBuf> {
    let dirs = std::fs::read_dir("/usr/lib").ok()?;
    dirs.flatten()
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists())
}

#[test]
fn a_node_whose_clock_is_30s_ahead_warns_alerts_and_never_runs_an_instant_early() {
    let Some(lib) = libfaketime() else {
        return skip(
            "fleet::wire::a_node_whose_clock_is_30s_ahead",
            "libfaketime not found (apt-get install faketime)",
        );
    };
    let db = Db::new("skew");
    let dir = TempDir::new("fleet-skew");
    let ev = dir.path().join("events");
    // Each run records its scheduled instant and the real time it started (the job's own
    // `date` without libfaketime; the database runs on this host's real clock).
    let jobs = "[alerts.page]\ntype = \"command\"\non = [\"failure\"]\ncommand = [\"/bin/sh\", \
        \"-c\", \"echo $CRONWARDEN_EVENT >> $EVENTS.alerts\"]\n\n\
        [jobs.tick]\nschedule = \"* * * * * *\"\noverlap = \"allow\"\nalert = [\"page\"]\n\
        command = [\"/bin/sh\", \"-c\", \"echo $CRONWARDEN_TS \
        $(env -u LD_PRELOAD -u FAKETIME date +%s.%N) >> $EVENTS.ticks\"]\n";
    let t = node(&db, "postgres", "skewed", &ev, jobs);
    let errors = t.dir().join("daemon.err");
    let child = t
        .cmd(&["daemon"])
        .env("LD_PRELOAD", &lib)
        .env("FAKETIME", "+30s")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errors).expect("stderr"))
        .spawn()
        .expect("daemon starts");
    let d = Daemon(child);
    let ticks = PathBuf::from(format!("{}.ticks", ev.display()));
    wait_for(|| events(&ticks).len() >= 5);
    // Every run started at or after its instant by the real (the database's) clock: none
    // 30 s early.
    for e in events(&ticks) {
        let scheduled: jiff::Timestamp = e[0].parse().expect("CRONWARDEN_TS");
        let started: f64 = e[1].parse().expect("date +%s.%N");
        let early = scheduled.as_millisecond() as f64 / 1000.0 - started;
        assert!(
            early <= 0.0,
            "started {early:.3}s before its instant: {e:?}"
        );
    }
    // The node said how far off its clock is, and alerted it once.
    let log = t.log();
    let line = log
        .lines()
        .find(|l| l.contains(" clock ") && l.contains("offset_s="))
        .unwrap_or_else(|| panic!("the skew is logged:\n{log}"));
    let offset: f64 = line
        .split("offset_s=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.trim_end_matches(':').parse().ok())
        .expect("offset");
    assert!(
        (-31.0..=-29.0).contains(&offset),
        "about 30 s ahead: {line}"
    );
    assert!(line.contains("s ahead of the database's"), "{line}");
    let alerts = PathBuf::from(format!("{}.alerts", ev.display()));
    wait_for(|| events(&alerts).iter().any(|e| e[0] == "clock"));
    // `status` on any host says so (from the node's heartbeat).
    let (code, out, err) = t.run(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("fleet: node skewed: clock ") && out.contains("ahead of"),
        "{out}"
    );
    let n = events(&ticks).len();
    wait_for(|| events(&ticks).len() >= n + 2);
    assert_eq!(
        events(&alerts).iter().filter(|e| e[0] == "clock").count(),
        1,
        "alerted once"
    );
    drop(d);
}

/// A TCP proxy on loopback to `target` that holds every chunk for `delay` each way (a slow
/// link: a round trip takes at least twice `delay`). Its threads end with the connections.
fn delay_proxy(target: u16, delay: Duration) -> u16 {
    use std::net::{TcpListener, TcpStream};
    let l = TcpListener::bind("127.0.0.1:0").expect("proxy listens");
    let port = l.local_addr().expect("addr").port();
    let pump = move |mut from: TcpStream, mut to: TcpStream| {
        use std::io::{Read, Write};
        let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0
                    || tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for (due, bytes) in rx {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                if to.write_all(&bytes).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    };
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let Ok(s) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (Ok(c2), Ok(s2)) = (c.try_clone(), s.try_clone()) else {
                continue;
            };
            pump(c, s2);
            pump(s, c2);
        }
    });
    port
}

/// Adds `metrics_listen` on a free port to a table's `[settings]`; returns the port.
fn with_metrics(t: &super::super::Table) -> u16 {
    let port = free_port();
    let text = std::fs::read_to_string(&t.path).expect("table");
    std::fs::write(
        &t.path,
        text.replacen(
            "[settings]\n",
            &format!("[settings]\nmetrics_listen = \"127.0.0.1:{port}\"\n"),
            1,
        ),
    )
    .expect("table");
    port
}

#[test]
fn renewals_over_the_latency_budget_are_warned_once_and_shown_by_status() {
    let db = Db::new("slow");
    let dir = TempDir::new("fleet-slow");
    let ev = dir.path().join("events");
    // 200 ms each way: a round trip of at least 400 ms, over the budget of 250 ms (heartbeat
    // 1 s / 4).
    let proxy = delay_proxy(db.port, Duration::from_millis(200));
    let t = node(
        &db,
        "postgres",
        "far",
        &ev,
        "[jobs.once]\nschedule = \"@manual\"\ncommand = [\"/bin/true\"]\n",
    );
    let text = std::fs::read_to_string(&t.path).expect("table");
    std::fs::write(
        &t.path,
        text.replace(
            &format!("127.0.0.1:{}/", db.port),
            &format!("127.0.0.1:{proxy}/"),
        ),
    )
    .expect("table");
    let metrics = with_metrics(&t);
    let d = Daemon::start(&t);
    let warned = || {
        t.log()
            .lines()
            .filter(|l| l.contains(" latency ") && l.contains("over the latency budget of 250ms"))
            .count()
    };
    wait_for(|| warned() >= 1);
    // More renewals, all over the budget: still one warning (one episode).
    let renewals = |m: &str| sample(m, "cronwarden_fleet_operations_total", "renew").unwrap_or(0);
    let now = renewals(&scrape(metrics));
    wait_for(|| renewals(&scrape(metrics)) >= now + 3);
    assert_eq!(warned(), 1, "{}", t.log());
    let m = scrape(metrics);
    let rtt: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("cronwarden_fleet_renew_rtt_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the last renewal's round trip");
    assert!(rtt >= 0.4, "two delays of 200 ms: {rtt}");
    // `status` (from any host) names the node and the budget.
    let (code, out, err) = t.run(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("fleet: node far: lease renewals take ")
            && out.contains("over the latency budget of 250ms"),
        "{out}"
    );
    drop(d);
}
