//! Every case of the conformance file tests/data/next-fires.jsonl (the rules are in
//! docs/schedules.md) must agree with the schedule engine, instant by instant.

use cronwarden::schedule::{Expr, Schedule};
use jiff::Timestamp;
use jiff::tz::TimeZone;

#[test]
fn every_conformance_case_agrees() {
    let data = include_str!("data/next-fires.jsonl");
    let mut failures = Vec::new();
    let mut cases = 0;
    for (lineno, line) in data.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        cases += 1;
        let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
        let expr = v["expr"].as_str().expect("expr");
        let tz = v["tz"].as_str().expect("tz");
        let after: Timestamp = v["after"]
            .as_str()
            .expect("after")
            .parse()
            .expect("after instant");
        let expect: Vec<Timestamp> = v["expect"]
            .as_array()
            .expect("expect array")
            .iter()
            .map(|s| s.as_str().expect("string").parse().expect("instant"))
            .collect();
        let schedule = Schedule::new(
            Expr::parse(expr).unwrap_or_else(|e| panic!("line {}: {expr}: {e}", lineno + 1)),
            TimeZone::get(tz).expect("known zone"),
        );
        let got: Vec<Timestamp> = schedule.iter_after(after).take(expect.len()).collect();
        if got != expect {
            failures.push(format!(
                "line {}: {expr:?} in {tz} after {after}:\n  want {expect:?}\n  got  {got:?}",
                lineno + 1
            ));
        }
    }
    assert!(cases >= 300, "the conformance file has {cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
