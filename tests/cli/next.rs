use super::run;

fn next(args: &[&str]) -> Vec<String> {
    let mut full = vec!["next"];
    full.extend_from_slice(args);
    let (code, out, err) = run(&full);
    assert_eq!(code, 0, "{err}");
    out.lines().map(str::to_string).collect()
}

#[test]
fn worked_examples_of_the_semantics_document() {
    assert_eq!(
        next(&[
            "30 2 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-03-07T00:00:00Z",
            "-n",
            "3"
        ]),
        [
            "2026-03-07T02:30:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:30:00-04:00"
        ]
    );
    assert_eq!(
        next(&[
            "30 1 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-10-31T00:00:00Z",
            "-n",
            "3"
        ]),
        [
            "2026-10-31T01:30:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-02T01:30:00-05:00"
        ]
    );
    assert_eq!(
        next(&[
            "*/30 1 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-10-31T12:00:00Z",
            "-n",
            "4"
        ]),
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00"
        ]
    );
}

#[test]
fn fields_as_separate_words_and_local_times() {
    assert_eq!(
        next(&[
            "0",
            "0",
            "1",
            "*",
            "mon",
            "--tz",
            "UTC",
            "--after",
            "2026-06-01",
            "-n",
            "2"
        ]),
        ["2026-06-08T00:00:00+00:00", "2026-06-15T00:00:00+00:00"]
    );
    // A local date-time is read in the --tz zone.
    assert_eq!(
        next(&[
            "@hourly",
            "--tz",
            "Asia/Kathmandu",
            "--after",
            "2026-01-01T10:30",
            "-n",
            "1"
        ]),
        ["2026-01-01T11:00:00+05:45"]
    );
    // Strictly after, exact to the second.
    assert_eq!(
        next(&[
            "*/10 * * * * *",
            "--tz",
            "UTC",
            "--after",
            "2026-01-01T00:00:10Z",
            "-n",
            "1"
        ]),
        ["2026-01-01T00:00:20+00:00"]
    );
}

#[test]
fn bad_expressions_say_what_and_where() {
    let (code, _, err) = run(&["next", "0 0 31 2 *"]);
    assert_eq!(code, 2);
    assert!(err.contains("can never fire"), "{err}");
    let (code, _, err) = run(&["next", "0 25 * * *"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("hour field \"25\": 25 is out of range (allowed: 0-23)"),
        "{err}"
    );
    let (code, _, err) = run(&["next", "@daily", "--tz", "Europe/Nowhere"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown time zone"), "{err}");
    let (code, _, err) = run(&["next", "@daily", "--after", "yesterday"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a time"), "{err}");
}
