//! Every input the fuzzers (fuzz/, `fuzz/run.sh`) ever crashed on, kept in tests/data/fuzz/TARGET/,
//! and every seed in fuzz/seeds/TARGET/, run through the very checks the fuzz targets make
//! (fuzz/checks.rs): no panic, and the invariants hold. The named tests pin what each fix
//! means, with the input that found it.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file of `dir`; returns how many there were.
fn run_dir(dir: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("read a saved input");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{} fails its fuzz check", f.display());
        }
    }
    files.len()
}

fn run_target(target: &str, check: fn(&[u8])) {
    let saved = run_dir(&format!("tests/data/fuzz/{target}"), check);
    let seeds = run_dir(&format!("fuzz/seeds/{target}"), check);
    assert!(saved + seeds > 0, "no input for {target}");
}

#[test]
fn schedule_inputs_pass_the_fuzz_check() {
    run_target("schedule", checks::schedule);
}

#[test]
fn table_inputs_pass_the_fuzz_check() {
    run_target("table", checks::table);
}

#[test]
fn import_inputs_pass_the_fuzz_check() {
    run_target("import", checks::import);
}

#[test]
fn control_request_inputs_pass_the_fuzz_check() {
    run_target("control_request", checks::control_request);
}

/// Found by the `import` fuzzer: a control character in a line that could not be converted
/// (here a lone NUL), in a comment, or in MAILTO went into a TOML comment as it was, and TOML
/// allows none but tab there, so the printed table did not load.
#[test]
fn import_keeps_control_characters_out_of_toml_comments() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/fuzz/import/control-characters-in-comments"),
    )
    .expect("saved input");
    let out = cronwarden::import::import(&text, false, "crontab");
    let doc = cronwarden::config::toml_tree::parse(&out.toml);
    assert!(doc.errors.is_empty(), "{:?}\n{}", doc.errors, out.toml);
    assert!(
        out.toml.contains("# a comment with a \\x16 control"),
        "{}",
        out.toml
    );
    assert!(
        out.toml.contains("# MAILTO=ops\\x01@example.com:"),
        "{}",
        out.toml
    );
    assert!(out.toml.contains("not a job \\x7f line"), "{}", out.toml);
    // Still reported, with their line numbers.
    let lines: Vec<usize> = out.problems.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, [5, 6, 7], "{:?}", out.problems);
    // A lone NUL is one unconverted line.
    let out = cronwarden::import::import("\0", false, "crontab");
    assert_eq!(out.problems.len(), 1);
    assert!(
        out.toml.contains("# line 1 not converted: \\x00"),
        "{}",
        out.toml
    );
}

/// Found by the `schedule` fuzzer (`* * * * 4 *` after 1905-04-30T03:01:58.5Z): before 1970 an
/// instant with a fraction of a second was rounded up, not down, so the next whole second was
/// skipped (`Timestamp::as_second` truncates toward zero).
#[test]
fn next_fire_before_1970_with_a_fraction_skips_no_second() {
    use cronwarden::schedule::{Expr, Schedule};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;
    let ts = |s: &str| s.parse::<Timestamp>().expect("instant");
    for (expr, after, next) in [
        (
            "* * * * 4 *",
            "1905-04-30T03:01:58.5Z",
            "1905-04-30T03:01:59Z",
        ),
        (
            "* * * * * *",
            "1969-12-31T23:59:59.5Z",
            "1970-01-01T00:00:00Z",
        ),
        (
            "* * * * * *",
            "1969-12-31T23:59:58.999999999Z",
            "1969-12-31T23:59:59Z",
        ),
        (
            "@every 1s",
            "1969-12-31T23:59:58.5Z",
            "1969-12-31T23:59:59Z",
        ),
        // After 1970, and on whole seconds, nothing changes.
        (
            "* * * * * *",
            "1970-01-01T00:00:00.5Z",
            "1970-01-01T00:00:01Z",
        ),
        (
            "* * * * * *",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
        ),
    ] {
        let s = Schedule::new(Expr::parse(expr).expect("expression"), TimeZone::UTC);
        assert_eq!(
            s.next_after(ts(after)),
            Some(ts(next)),
            "{expr} after {after}"
        );
    }
}

/// Found by the `schedule` fuzzer: `@every 66666666666653m` parsed, and `can_fire()` said yes,
/// but its next multiple lies past the year 9999, so the job could never fire. Periods are now
/// at most 400 years, the Gregorian cycle.
#[test]
fn every_longer_than_400_years_is_refused() {
    use cronwarden::schedule::{Expr, Schedule};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;
    for text in [
        "@every 66666666666653m",
        "@every 146098d",
        "@every 146097d 1s",
    ] {
        let e = Expr::parse(text).expect_err(text).to_string();
        assert!(e.contains("at most 400 years"), "{text}: {e}");
    }
    let longest = Expr::parse("@every 146097d").expect("400 years");
    let after: Timestamp = "2026-11-25T00:00:00Z".parse().expect("instant");
    let next = Schedule::new(longest, TimeZone::UTC).next_after(after);
    assert_eq!(next, Some("2370-01-01T00:00:00Z".parse().expect("instant")));
}
