//! What each fuzz target checks, one function a target. The fuzz targets (fuzz_targets/*.rs)
//! call these on every generated input, and the main crate's `cargo test` calls them on every
//! saved input (tests/fuzz_regressions.rs, tests/data/fuzz/TARGET/*), so a crash found once
//! stays fixed. A check panics when an invariant breaks; every other outcome is fine.

use std::path::PathBuf;
use std::sync::OnceLock;

use cronwarden::config::{self, CommandLine, LoadOptions, toml_tree};
use cronwarden::control::{Request, parse_request};
use cronwarden::schedule::{Expr, Schedule, load_zone};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

// ---------------------------------------------------------------------------------------------
// schedule: the parser and the next-fire engine.

/// Zones with DST gaps and folds, a 30-minute shift, a skipped day and a gap at midnight.
const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe", // 30-minute DST shift
    "Pacific/Apia",        // skipped a whole day (2011-12-30)
    "America/Sao_Paulo",   // DST gap at midnight (until 2019)
    "Asia/Kathmandu",
];

fn zones() -> &'static [TimeZone] {
    static Z: OnceLock<Vec<TimeZone>> = OnceLock::new();
    Z.get_or_init(|| {
        ZONES
            .iter()
            .map(|n| load_zone(n).expect("zone in the system's tz database"))
            .collect()
    })
}

/// FNV-1a: picks a zone and an instant from the input, deterministically.
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Any text parses or is refused with a message; a parsed expression's fire instants obey
/// the engine's contract in UTC and in one zone with DST, after a fixed instant (just before a
/// spring-forward gap) and after one derived from the input (1900-2100, or near the ends of
/// the representable range).
pub(crate) fn schedule(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expr = match Expr::parse(text) {
        Ok(e) => e,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an empty parse error");
            return;
        }
    };
    let _ = (expr.is_calendar(), expr.is_wild());
    let h = hash(data);
    let zs = zones();
    let tz = &zs[(h % zs.len() as u64) as usize];
    let fixed: Timestamp = "2026-03-08T06:59:59Z".parse().expect("instant");
    let secs = match (h >> 8) % 16 {
        0 => Timestamp::MAX.as_second() - ((h >> 16) % 100_000) as i64,
        1 => Timestamp::MIN.as_second() + ((h >> 16) % 100_000) as i64,
        _ => -2_208_988_800 + ((h >> 16) % 6_311_390_400) as i64,
    };
    let derived = Timestamp::from_second(secs).expect("in range");
    // Sometimes with a fraction of a second.
    let derived = match (h >> 12) % 4 {
        0 => derived
            .checked_add(SignedDuration::from_nanos(
                ((h >> 20) % 1_000_000_000) as i64,
            ))
            .unwrap_or(derived),
        _ => derived,
    };
    for after in [fixed, derived] {
        fires(&expr, &TimeZone::UTC, after);
        fires(&expr, tz, after);
    }
}

fn fires(expr: &Expr, tz: &TimeZone, after: Timestamp) {
    let s = Schedule::new(expr.clone(), tz.clone());
    let first = s.next_after(after);
    match expr {
        Expr::Reboot | Expr::Manual => {
            assert_eq!(first, None, "@reboot/@manual never fire by the clock");
            return;
        }
        Expr::Cron(_) if !expr.can_fire() => {
            assert_eq!(first, None, "can_fire() is false, yet it fired");
            return;
        }
        _ => {}
    }
    // can_fire() is exact over the 400-year cycle: in UTC (no gaps) a firing expression fires
    // within the search window, unless that runs past the end of the representable range.
    if tz == &TimeZone::UTC && after < "9000-01-01T00:00:00Z".parse().expect("instant") {
        assert!(
            first.is_some(),
            "can_fire() is true, yet no fire after {after}"
        );
    }
    let Some(first) = first else { return };
    assert!(
        first > after,
        "next_after({after}) = {first} is not after it"
    );
    assert_eq!(
        first.subsec_nanosecond(),
        0,
        "fire instants are whole seconds"
    );
    if let Expr::Every(p) = expr {
        let p = i64::try_from(*p).expect("period in range");
        assert_eq!(
            first.as_second().rem_euclid(p),
            0,
            "@every fires at multiples"
        );
    }
    // Nothing fires between `after` and `first`, so asking from any instant in between gives
    // the same answer.
    let gap = first.duration_since(after);
    for probe in [
        first - SignedDuration::from_secs(1),
        after + gap / 2,
        after + SignedDuration::from_nanos(1),
    ] {
        if probe >= after && probe < first {
            assert_eq!(
                s.next_after(probe),
                Some(first),
                "next_after({after}) = {first} in {tz:?}, but next_after({probe}) differs"
            );
        }
    }
    // A few more: strictly increasing, whole seconds.
    let mut prev = first;
    for n in s.iter_after(first).take(4) {
        assert!(n > prev, "fires not strictly increasing: {prev} then {n}");
        assert_eq!(n.subsec_nanosecond(), 0);
        prev = n;
    }
}

// ---------------------------------------------------------------------------------------------
// table: the job table loader.

const DROP_IN: &str = r#"
[alerts.extra]
type = "command"
command = ["/bin/true"]

[jobs.extra]
schedule = "*/15 * * * *"
command = ["/bin/echo", "{{ ds }}"]
alert = ["extra"]
"#;

/// A private directory per thread (the tests run in threads), removed when the thread ends.
struct TableDir(PathBuf);

impl Drop for TableDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

thread_local! {
    static TABLE_DIR: TableDir = {
        let dir = std::env::temp_dir().join(format!(
            "cronwarden-fuzz-table-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ).replace(['(', ')'], ""));
        std::fs::create_dir_all(dir.join("jobs.d")).expect("temp dir");
        std::fs::write(dir.join("jobs.d/extra.toml"), DROP_IN).expect("drop-in");
        TableDir(dir)
    };
}

/// Whether every `include` pattern stays inside the table's directory.
fn includes_stay_home(root: &toml_tree::Table<'_>) -> bool {
    let Some(v) = root.get("include") else {
        return true;
    };
    let safe = |p: &toml_tree::Value<'_>| match p.as_str() {
        Some(p) => !p.starts_with('/') && !p.split('/').any(|c| c.contains("..")),
        None => true, // a type error, reported without touching the disk
    };
    match v.as_array() {
        Some(arr) => arr.iter().all(safe),
        None => safe(v),
    }
}

/// Tree equality where NaN equals NaN (`nan` parses to a NaN, which `==` never matches).
fn same_table(a: &toml_tree::Table<'_>, b: &toml_tree::Table<'_>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
}

fn same_value(a: &toml_tree::Value<'_>, b: &toml_tree::Value<'_>) -> bool {
    use toml_tree::Kind;
    a.span == b.span
        && match (&a.kind, &b.kind) {
            (Kind::Float { value: x, raw: r }, Kind::Float { value: y, raw: s }) => {
                r == s && (x == y || (x.is_nan() && y.is_nan()))
            }
            (Kind::Array(x), Kind::Array(y)) => {
                x.is_array_of_tables() == y.is_array_of_tables()
                    && x.len() == y.len()
                    && x.iter().zip(y.iter()).all(|(p, q)| same_value(p, q))
            }
            (Kind::Table(x), Kind::Table(y)) => same_table(x, y),
            (x, y) => x == y,
        }
}

/// Any text loads or is refused with diagnostics (TOML syntax through `config::toml_tree`, then
/// the typed reader and the semantic checks). The loader reads from a path, so the input is
/// written to a file in a private directory, next to a drop-in `jobs.d/extra.toml`. An input
/// whose `include` leaves that directory is only parsed: a pattern may name any file on the
/// machine (`/**`, `/dev/zero`), which is the operator's choice, not a bug to find here.
pub(crate) fn table(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let doc = toml_tree::parse(text);
    // Parsing in pieces (as for a large table) changes nothing.
    let cut = toml_tree::parse_chunked(text, 1);
    assert!(
        same_table(&cut.root, &doc.root),
        "parsing in pieces changed the tree"
    );
    assert_eq!(
        cut.errors, doc.errors,
        "parsing in pieces changed the errors"
    );
    // What this parser accepts, the `toml` crate accepts (it is stricter only on integers).
    if doc.errors.is_empty()
        && let Err(e) = toml::de::DeTable::parse(text)
    {
        panic!("toml_tree accepts what the toml crate refuses: {e}");
    }
    if !includes_stay_home(&doc.root) {
        return;
    }
    let path = TABLE_DIR.with(|d| d.0.join("jobs.toml"));
    std::fs::write(&path, text).expect("write the table");
    let loaded = config::load(&path, LoadOptions { as_root: false });

    let errors = loaded.errors().count();
    assert_eq!(
        loaded.config.is_some(),
        errors == 0,
        "a config exactly when there is no error"
    );
    if !doc.errors.is_empty() {
        assert!(
            errors > 0,
            "a TOML syntax error must be an error of the load"
        );
    }
    let lines = text.split('\n').count();
    for d in &loaded.diagnostics {
        assert!(d.line <= lines, "diagnostic past the end of the file: {d}");
        assert!(d.line == 0 || d.col >= 1, "columns are 1-based: {d}");
        assert!(!d.message.is_empty(), "an empty diagnostic: {d:?}");
    }
    let Some(cfg) = loaded.config else { return };
    let vars = cronwarden::template::NAMES
        .iter()
        .map(|n| (n.to_string(), "x".to_string()))
        .collect();
    let after: Timestamp = "2026-03-08T06:59:59Z".parse().expect("instant");
    for job in &cfg.jobs {
        assert!(cfg.job(&job.name).is_some());
        let _ = cfg.children(&job.name);
        match &job.command {
            CommandLine::Argv(argv) => {
                assert!(
                    !argv.is_empty(),
                    "job {:?}: an empty argv was accepted",
                    job.name
                );
                for a in argv.iter() {
                    let _ = cronwarden::template::render(a, &vars);
                }
            }
            CommandLine::Shell(s) => {
                let _ = cronwarden::template::render(s, &vars);
            }
        }
        if let Some(s) = &job.schedule {
            let mut prev = after;
            for n in s.iter_after(after).take(3) {
                assert!(n > prev, "job {:?}: fires not increasing", job.name);
                prev = n;
            }
        }
        for a in &job.alert {
            assert!(
                cfg.alert(a).is_some(),
                "job {:?}: unknown alert {a:?} accepted",
                job.name
            );
        }
        for p in job.after() {
            assert!(
                cfg.job(p).is_some(),
                "job {:?}: unknown parent {p:?} accepted",
                job.name
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// import: the crontab importer.

/// Any text gives a table and a list of problems (user and system format), and the table is
/// valid TOML whose every job has a schedule the engine accepts and a command.
pub(crate) fn import(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for system in [false, true] {
        let out = cronwarden::import::import(text, system, "fuzz");
        let lines = text.lines().count();
        for (n, msg) in &out.problems {
            assert!(
                *n >= 1 && *n <= lines,
                "problem on line {n} of {lines}: {msg}"
            );
        }
        let doc = toml_tree::parse(&out.toml);
        assert!(
            doc.errors.is_empty(),
            "the imported table is not valid TOML: {:?}\n--- table ---\n{}",
            doc.errors,
            out.toml
        );
        let Some(jobs) = doc.root.get("jobs").and_then(|j| j.as_table()) else {
            continue;
        };
        for (name, job) in jobs.iter() {
            let job = job.as_table().expect("a job is a table");
            let sched = job
                .get("schedule")
                .and_then(|s| s.as_str())
                .unwrap_or_else(|| panic!("job {:?} has no schedule", name.name));
            assert!(
                Expr::parse(sched).is_ok(),
                "job {:?}: schedule {sched:?} does not parse",
                name.name
            );
            assert!(job.get("command").and_then(|c| c.as_str()).is_some());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// control_request: the control socket's request parser.

/// Any bytes a client sends are a request or a `bad request` message, and a request survives
/// the client's own encoding (`control::request`) unchanged.
pub(crate) fn control_request(data: &[u8]) {
    match parse_request(data) {
        Ok(req) => {
            let mut text = serde_json::to_string(&req).expect("a request serialises");
            text.push('\n');
            let again: Request = parse_request(text.as_bytes()).expect("round trip");
            assert_eq!(again.cmd, req.cmd);
            assert_eq!(again.job, req.job);
            assert_eq!(again.params, req.params);
            assert_eq!(again.wait, req.wait);
        }
        Err(msg) => {
            assert!(msg.starts_with("bad request"), "{msg}");
            let reply = serde_json::json!({ "ok": false, "error": msg }).to_string();
            assert!(!reply.contains('\n'), "the reply is one line");
        }
    }
}
