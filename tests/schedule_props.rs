//! Property tests of the schedule engine against a brute-force reference written straight from
//! docs/schedules.md, independently of src/schedule.rs: its own field parser and matcher,
//! and a `next_after` that walks the timeline minute by minute, converts every instant to the
//! zone's wall clock with jiff and applies the day rule, the wild/fixed-time distinction, the
//! DST gap rule and the fold rule literally.
//!
//! Only the public interface of the engine is used: `Expr::parse`, `Expr::can_fire`,
//! `Schedule::new` and `Schedule::iter_after`.

use std::sync::OnceLock;

use cronwarden::schedule::{Expr, Schedule};
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

// ---------------------------------------------------------------------------------------------
// Reference parser (from the "Syntax" section of the spec).
// ---------------------------------------------------------------------------------------------

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DOW_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A cron expression as the spec defines it: a set per field, plus the flags derived from text.
#[derive(Clone, Debug)]
struct RefSpec {
    sec: Vec<bool>,
    min: Vec<bool>,
    hour: Vec<bool>,
    dom: Vec<bool>,
    mon: Vec<bool>,
    /// Index 0..=6, Sunday = 0 (7 folded into 0).
    dow: Vec<bool>,
    dom_star: bool,
    dow_star: bool,
    /// Minute or hour text starts with `*`.
    wild: bool,
}

fn ref_number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One value: a number in `lo..=hi` or a name; `sun` at the end of a day-of-week range is 7.
fn ref_value(s: &str, lo: u32, hi: u32, names: &[&str], range_end: bool) -> Result<u32, String> {
    if let Some(n) = ref_number(s) {
        return if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} out of range"))
        };
    }
    match names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        Some(i) if names.len() == 12 => Ok(i as u32 + 1),
        Some(0) if range_end => Ok(7),
        Some(i) => Ok(i as u32),
        None => Err(format!("bad value {s:?}")),
    }
}

fn ref_field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Vec<bool>, String> {
    let mut set = vec![false; hi as usize + 1];
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((x, y)) = range.split_once('-') {
            let a = ref_value(x, lo, hi, names, false)?;
            let b = ref_value(y, lo, hi, names, true)?;
            if a > b {
                return Err(format!("reversed range {range}"));
            }
            (a, b)
        } else {
            if step.is_some() {
                return Err(format!("N/STEP in {item}"));
            }
            let v = ref_value(range, lo, hi, names, false)?;
            (v, v)
        };
        let step = match step {
            None => 1,
            Some(s) => match ref_number(s) {
                Some(0) | None => return Err(format!("bad step {s:?}")),
                Some(n) => n,
            },
        };
        let mut v = a;
        while v <= b {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok(set)
}

impl RefSpec {
    fn parse(text: &str) -> Result<RefSpec, String> {
        let text = text.trim();
        let expanded = match text.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
            "@monthly" => "0 0 1 * *".to_string(),
            "@weekly" => "0 0 * * 0".to_string(),
            "@daily" | "@midnight" => "0 0 * * *".to_string(),
            "@hourly" => "0 * * * *".to_string(),
            _ => text.to_string(),
        };
        let parts: Vec<&str> = expanded.split_ascii_whitespace().collect();
        let (sec, f) = match parts.len() {
            5 => {
                let mut sec = vec![false; 60];
                sec[0] = true;
                (sec, &parts[..])
            }
            6 => (ref_field(parts[0], 0, 59, &[])?, &parts[1..]),
            n => return Err(format!("{n} fields")),
        };
        let dow8 = ref_field(f[4], 0, 7, &DOW_NAMES)?;
        let mut dow = dow8[..7].to_vec();
        dow[0] |= dow8[7];
        Ok(RefSpec {
            sec,
            min: ref_field(f[0], 0, 59, &[])?,
            hour: ref_field(f[1], 0, 23, &[])?,
            dom: ref_field(f[2], 1, 31, &[])?,
            mon: ref_field(f[3], 1, 12, &MONTH_NAMES)?,
            dow,
            dom_star: f[2].starts_with('*'),
            dow_star: f[4].starts_with('*'),
            wild: f[0].starts_with('*') || f[1].starts_with('*'),
        })
    }

    /// The day rule: AND when either day field is a star, OR when neither is.
    fn day_matches(&self, month: u32, day: u32, weekday: u32) -> bool {
        if !self.mon[month as usize] {
            return false;
        }
        let d = self.dom[day as usize];
        let w = self.dow[weekday as usize];
        if self.dom_star || self.dow_star {
            d && w
        } else {
            d || w
        }
    }
}

/// Matches wall-clock times, given as seconds of local time since 1970-01-01T00:00. The civil
/// date of a wall day comes from jiff and is cached, so scanning minute by minute is cheap.
struct WallMatcher<'a> {
    spec: &'a RefSpec,
    day: i64,
    day_ok: bool,
}

impl<'a> WallMatcher<'a> {
    fn new(spec: &'a RefSpec) -> Self {
        WallMatcher {
            spec,
            day: i64::MIN,
            day_ok: false,
        }
    }

    fn day_ok(&mut self, wall: i64) -> bool {
        let day = wall.div_euclid(86_400);
        if day != self.day {
            let dt = Offset::UTC.to_datetime(Timestamp::from_second(day * 86_400).unwrap());
            self.day = day;
            self.day_ok = self.spec.day_matches(
                dt.month() as u32,
                dt.day() as u32,
                dt.weekday().to_sunday_zero_offset() as u32,
            );
        }
        self.day_ok
    }

    /// Day, hour and minute match (the seconds field is not looked at).
    fn minute_matches(&mut self, wall: i64) -> bool {
        let tod = wall.rem_euclid(86_400);
        self.day_ok(wall)
            && self.spec.hour[(tod / 3600) as usize]
            && self.spec.min[(tod / 60 % 60) as usize]
    }

    fn matches(&mut self, wall: i64) -> bool {
        self.minute_matches(wall) && self.spec.sec[wall.rem_euclid(60) as usize]
    }

    /// Whether any wall time in `[from, until)` matches (checked second by second).
    fn range_has_match(&mut self, from: i64, until: i64) -> bool {
        (from..until).any(|w| self.matches(w))
    }
}

fn offset_at(tz: &TimeZone, t: i64) -> i64 {
    i64::from(tz.to_offset(Timestamp::from_second(t).unwrap()).seconds())
}

/// Reference `next_after`: the first `n` fire instants strictly after `after`, looking at most
/// `window` seconds ahead. Returns the instants and the instant up to which (exclusive) the
/// search is complete: when fewer than `n` were found, nothing else fires before it.
///
/// Works minute by minute over UTC instants; that relies on every offset and transition of the
/// zone being whole minutes near the scanned range, which is asserted as it goes.
fn ref_next(spec: &RefSpec, tz: &TimeZone, after: i64, n: usize, window: i64) -> (Vec<i64>, i64) {
    let mut m = WallMatcher::new(spec);
    let t0 = after.div_euclid(60) * 60;
    // The highest wall time that any instant before t0 showed: a fixed-time job fires only the
    // first time a wall time occurs, i.e. when it is above everything shown so far.
    let mut max_wall_seen = i64::MIN;
    // (A repeated wall time first occurred at most a fold's length, well under 6 hours, earlier.)
    let mut t = t0 - 6 * 3600;
    while t < t0 {
        max_wall_seen = max_wall_seen.max(t + offset_at(tz, t) + 59);
        t += 60;
    }
    let mut prev_off = offset_at(tz, t0 - 60);
    let mut fires: Vec<i64> = Vec::new();
    let end = after + window;
    let mut t = t0;
    while t <= end {
        let off = offset_at(tz, t);
        assert_eq!(off % 60, 0, "oracle needs whole-minute offsets");
        if off != prev_off {
            assert_eq!(
                offset_at(tz, t - 1),
                prev_off,
                "oracle needs transitions on whole minutes"
            );
            // Gap: wall times [t + prev_off, t + off) never happen. A fixed-time job with a
            // match among them fires once, at t, the first instant after the gap.
            if off > prev_off && !spec.wild && t > after && m.range_has_match(t + prev_off, t + off)
            {
                fires.push(t);
            }
        }
        let wall = t + off;
        if m.minute_matches(wall) {
            for s in (0..60).filter(|&s| spec.sec[s as usize]) {
                let inst = t + s;
                let first_pass = wall + s > max_wall_seen;
                // Merged with a gap fire at the same instant.
                if inst > after && (spec.wild || first_pass) && fires.last() != Some(&inst) {
                    fires.push(inst);
                }
            }
        }
        max_wall_seen = max_wall_seen.max(wall + 59);
        prev_off = off;
        t += 60;
        if fires.len() >= n {
            fires.truncate(n);
            return (fires, t);
        }
    }
    (fires, t)
}

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

const ZONES: [&str; 13] = [
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "UTC",
    "Asia/Tokyo",
    // Transitions at midnight (gap 00:00-01:00, fold 00:00-01:00 or 23:00-24:00 of the day
    // before), and a zone with negative DST in the tz source.
    "America/Havana",
    "America/Santiago",
    "Europe/Dublin",
    "America/St_Johns",
];

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or_else(|e| panic!("zone {name}: {e}"))
}

fn secs(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_second()
}

/// The offset-changing transitions of each zone of [`ZONES`] in 2025-2027.
fn transitions() -> &'static Vec<Vec<i64>> {
    static CELL: OnceLock<Vec<Vec<i64>>> = OnceLock::new();
    CELL.get_or_init(|| {
        let (from, until) = (secs("2025-01-01T00:00:00Z"), secs("2028-01-01T00:00:00Z"));
        ZONES
            .iter()
            .map(|name| {
                let tz = zone(name);
                tz.following(Timestamp::from_second(from).unwrap())
                    .map(|tr| tr.timestamp().as_second())
                    .take_while(|&t| t < until)
                    .filter(|&t| offset_at(&tz, t) != offset_at(&tz, t - 1))
                    .collect()
            })
            .collect()
    })
}

fn show(tz: &TimeZone, t: i64) -> String {
    Timestamp::from_second(t)
        .unwrap()
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn show_all(tz: &TimeZone, ts: &[i64]) -> Vec<String> {
    ts.iter().map(|&t| show(tz, t)).collect()
}

fn engine(expr: &str, tz: &TimeZone) -> Schedule {
    let e = Expr::parse(expr).unwrap_or_else(|e| panic!("engine rejects {expr:?}: {e}"));
    Schedule::new(e, tz.clone())
}

fn engine_next(s: &Schedule, after: i64, n: usize) -> Vec<i64> {
    s.iter_after(Timestamp::from_second(after).unwrap())
        .take(n)
        .map(|t| t.as_second())
        .collect()
}

/// Compares the engine with the reference; `Err` describes a disagreement.
fn compare(expr: &str, tz_name: &str, after: i64, n: usize, window: i64) -> Result<(), String> {
    let tz = zone(tz_name);
    let spec = RefSpec::parse(expr).map_err(|e| format!("reference rejects {expr:?}: {e}"))?;
    let (want, complete_until) = ref_next(&spec, &tz, after, n, window);
    let s = engine(expr, &tz);
    let extra = usize::from(want.len() < n);
    let got = engine_next(&s, after, want.len() + extra);
    let agree = got.len() >= want.len()
        && got[..want.len()] == want[..]
        && got.get(want.len()).is_none_or(|&x| x >= complete_until);
    if agree {
        Ok(())
    } else {
        Err(format!(
            "{expr:?} in {tz_name} after {}:\n  expected {:?} (complete until {})\n  got      {:?}",
            show(&tz, after),
            show_all(&tz, &want),
            show(&tz, complete_until),
            show_all(&tz, &got),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The reference itself, checked against the spec's own examples.
// ---------------------------------------------------------------------------------------------

#[test]
fn reference_reproduces_the_worked_examples() {
    let ny = zone("America/New_York");
    let cases = [
        (
            "30 2 * * *",
            "2026-03-07T00:00:00Z",
            &[
                "2026-03-07T02:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
            ][..],
        ),
        (
            "30 1 * * *",
            "2026-10-31T00:00:00Z",
            &[
                "2026-10-31T01:30:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-02T01:30:00-05:00",
            ][..],
        ),
        (
            "*/30 1 * * *",
            "2026-10-31T12:00:00Z",
            &[
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T01:30:00-05:00",
            ][..],
        ),
        (
            "15,45 2 * * *",
            "2026-03-08T00:00:00Z",
            &["2026-03-08T03:00:00-04:00", "2026-03-09T02:15:00-04:00"][..],
        ),
        (
            "0,30 2-3 * * *",
            "2026-03-08T06:00:00Z",
            &[
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00",
                "2026-03-09T02:00:00-04:00",
            ][..],
        ),
        (
            "*/30 * * * *",
            "2026-03-08T06:15:00Z",
            &[
                "2026-03-08T01:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00",
            ][..],
        ),
        (
            "0 0 1 * mon",
            "2026-06-01T04:00:00Z",
            &[
                "2026-06-08T00:00:00-04:00",
                "2026-06-15T00:00:00-04:00",
                "2026-06-22T00:00:00-04:00",
                "2026-06-29T00:00:00-04:00",
                "2026-07-01T00:00:00-04:00",
            ][..],
        ),
        (
            "0 0 */2 * mon",
            "2026-06-01T04:00:00Z",
            &["2026-06-15T00:00:00-04:00", "2026-06-29T00:00:00-04:00"][..],
        ),
    ];
    for (expr, after, want) in cases {
        let spec = RefSpec::parse(expr).unwrap();
        let (got, _) = ref_next(&spec, &ny, secs(after), want.len(), 40 * 86_400);
        let want: Vec<i64> = want.iter().map(|s| secs(s)).collect();
        assert_eq!(
            show_all(&ny, &got),
            show_all(&ny, &want),
            "{expr} after {after}"
        );
    }
}

/// The reference agrees with the spec's conformance data (independently of the engine), for
/// every case whose eight instants lie within 20 days. The file belongs to tests/conformance.rs;
/// if it moves, this check is skipped.
#[test]
fn reference_agrees_with_conformance_data() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/next-fires.jsonl");
    let Ok(data) = std::fs::read_to_string(path) else {
        eprintln!("{path} not found; skipped");
        return;
    };
    let mut checked = 0;
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let expr = v["expr"].as_str().unwrap();
        let tz = zone(v["tz"].as_str().unwrap());
        let after = secs(v["after"].as_str().unwrap());
        let want: Vec<i64> = v["expect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| secs(s.as_str().unwrap()))
            .collect();
        let Ok(spec) = RefSpec::parse(expr) else {
            continue; // @every and friends are outside the reference
        };
        if want.last().is_none_or(|&l| l - after > 20 * 86_400) {
            continue;
        }
        let (got, _) = ref_next(&spec, &tz, after, want.len(), 20 * 86_400);
        assert_eq!(
            show_all(&tz, &got),
            show_all(&tz, &want),
            "reference vs conformance: {line}"
        );
        checked += 1;
    }
    assert!(
        checked >= 50,
        "only {checked} conformance cases were near enough"
    );
}

// ---------------------------------------------------------------------------------------------
// Deterministic sweep: every DST transition of 2025-2027 in every zone, with expressions aimed
// at the wall times around it.
// ---------------------------------------------------------------------------------------------

#[test]
fn engine_matches_reference_around_every_transition() {
    let mut failures = Vec::new();
    for (zi, name) in ZONES.iter().enumerate() {
        let tz = zone(name);
        for &tr in &transitions()[zi] {
            let before = offset_at(&tz, tr - 1);
            let after_off = offset_at(&tz, tr);
            // Wall times at the edges of the skipped or repeated stretch, and inside it.
            let lo = tr + before.min(after_off);
            let hi = tr + before.max(after_off);
            let mut walls = vec![lo - 1800, lo, (lo + hi) / 2, hi - 60, hi, hi + 900];
            walls.retain(|w| w % 60 == 0);
            let mut exprs = Vec::new();
            for w in walls {
                let (h, mi) = (w.rem_euclid(86_400) / 3600, w.rem_euclid(3600) / 60);
                exprs.push(format!("{mi} {h} * * *"));
                exprs.push(format!("{mi} * * * *"));
                exprs.push(format!("*/15 {h} * * *"));
                exprs.push(format!("{mi},{} {h} * * *", (mi + 15) % 60));
                exprs.push(format!("30 {mi} {h} * * *"));
                exprs.push(format!("*/20 {mi} {h} * * *"));
            }
            exprs.push("*/30 * * * *".to_string());
            exprs.push("0 0 * * *".to_string());
            exprs.push("59 23 * * *".to_string());
            exprs.push("0,30 0-3 * * *".to_string());
            for expr in &exprs {
                for start in [tr - 7200, tr - 1, tr, tr + 1800] {
                    if let Err(e) = compare(expr, name, start, 3, 2 * 86_400) {
                        failures.push(e);
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(8)].join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Kind {
    hi: u32,
    names: &'static [&'static str],
}

const SEC: Kind = Kind { hi: 59, names: &[] };
const MIN: Kind = SEC;
const HOUR: Kind = Kind { hi: 23, names: &[] };
const DOM: Kind = Kind { hi: 31, names: &[] };
const MON: Kind = Kind {
    hi: 12,
    names: &MONTH_NAMES,
};
const DOW: Kind = Kind {
    hi: 7,
    names: &DOW_NAMES,
};

/// A value as text: a number, or (sometimes) a name in some letter case.
fn render(k: Kind, v: u32, choice: u8) -> String {
    if k.names.is_empty() || !choice.is_multiple_of(3) {
        return v.to_string();
    }
    let name = if k.names.len() == 12 {
        k.names[(v - 1) as usize]
    } else {
        k.names[(v % 7) as usize]
    };
    match choice / 3 % 3 {
        0 => name.to_string(),
        1 => name.to_ascii_uppercase(),
        _ => name[..1].to_ascii_uppercase() + &name[1..],
    }
}

fn item(k: Kind, value: BoxedStrategy<u32>) -> BoxedStrategy<String> {
    let range =
        (value.clone(), value.clone(), any::<u8>(), any::<u8>()).prop_map(move |(a, b, c1, c2)| {
            format!("{}-{}", render(k, a.min(b), c1), render(k, a.max(b), c2))
        });
    prop_oneof![
        5 => (value, any::<u8>()).prop_map(move |(v, c)| render(k, v, c)),
        2 => range.clone(),
        1 => (range, 1..=k.hi).prop_map(|(r, s)| format!("{r}/{s}")),
        1 => (1..=k.hi).prop_map(|s| format!("*/{s}")),
    ]
    .boxed()
}

fn field(k: Kind, value: BoxedStrategy<u32>, star_weight: u32) -> BoxedStrategy<String> {
    prop_oneof![
        star_weight => Just("*".to_string()),
        2 => prop_oneof![3 => 1..=k.hi / 2, 1 => 1..=k.hi].prop_map(|s| format!("*/{s}")),
        6 => prop::collection::vec(item(k, value), 1..=3).prop_map(|v| v.join(",")),
    ]
    .boxed()
}

fn dow_field(star_weight: u32) -> BoxedStrategy<String> {
    let named = prop::sample::select(vec![
        "mon-fri", "MON-FRI", "Sat,Sun", "fri-sun", "sun", "7", "0", "5-7", "1-5", "sun-sat",
        "0-7/2", "*/7", "tue,thu",
    ])
    .prop_map(str::to_string);
    prop_oneof![
        3 => field(DOW, (0u32..=7).boxed(), star_weight),
        1 => named,
    ]
    .boxed()
}

/// Random cron expressions, biased towards schedules that fire within days and towards the
/// hours (1-3) where DST transitions happen.
fn expr_strategy() -> impl Strategy<Value = String> {
    let minute = prop_oneof![3 => 0u32..60, 1 => prop::sample::select(vec![0u32, 15, 30, 45])];
    let hour = prop_oneof![2 => 0u32..24, 2 => 0u32..=4];
    let dom = prop_oneof![3 => 1u32..=31, 1 => 28u32..=31];
    let five = (
        field(MIN, minute.boxed(), 3),
        field(HOUR, hour.boxed(), 3),
        field(DOM, dom.boxed(), 12),
        field(MON, (1u32..=12).boxed(), 16),
        dow_field(10),
    )
        .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"));
    let macros = prop::sample::select(vec![
        "@hourly",
        "@daily",
        "@DAILY",
        "@midnight",
        "@weekly",
        "@Weekly",
        "@monthly",
        "@yearly",
        "@annually",
    ])
    .prop_map(str::to_string);
    prop_oneof![
        20 => five.clone(),
        4 => (field(SEC, (0u32..60).boxed(), 3), five).prop_map(|(s, f)| format!("{s} {f}")),
        1 => macros,
    ]
}

/// An `after` instant: mostly within a few days before (or just after) a DST transition of the
/// zone in 2025-2027, sometimes anywhere in those years; sometimes not on a whole minute.
fn after_strategy() -> impl Strategy<Value = (usize, i64)> {
    (
        0..ZONES.len(),
        any::<prop::sample::Index>(),
        0u8..5,
        0i64..=3 * 86_400,
        -7200i64..=7200,
        0i64..3 * 365 * 86_400,
        any::<bool>(),
    )
        .prop_map(|(zi, pick, mode, back, near, anywhere, align)| {
            let trs = &transitions()[zi];
            let t = if trs.is_empty() || mode == 0 {
                secs("2025-01-01T00:00:00Z") + anywhere
            } else {
                let tr = trs[pick.index(trs.len())];
                match mode {
                    1 | 2 => tr - back,
                    3 => tr + near,
                    _ => tr + back % 5 - 2,
                }
            };
            (
                zi,
                if align && mode != 4 {
                    t.div_euclid(60) * 60
                } else {
                    t
                },
            )
        })
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Keep the work tree clean: no proptest-regressions/ directory.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

/// Offsets the zone had in the six hours before `t` (sampled every quarter hour).
fn recent_offsets(tz: &TimeZone, t: i64) -> Vec<i64> {
    let mut v: Vec<i64> = (1..=24).map(|k| offset_at(tz, t - 900 * k)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Checks the shape of the engine's output without the oracle: every instant matches on the
/// wall clock or is a gap fire, instants strictly increase, and a fixed-time job never fires a
/// wall time twice (the second pass of a fold), while a wild job fires one at most twice.
fn check_well_formed(spec: &RefSpec, tz: &TimeZone, after: i64, got: &[i64]) -> Result<(), String> {
    let mut m = WallMatcher::new(spec);
    let mut prev = after;
    let mut walls: Vec<i64> = Vec::new();
    for &t in got {
        if t <= prev {
            return Err(format!(
                "{} does not come after {}",
                show(tz, t),
                show(tz, prev)
            ));
        }
        prev = t;
        let off = offset_at(tz, t);
        let off_before = offset_at(tz, t - 1);
        let wall = t + off;
        let real = m.matches(wall);
        let gap_fire = !spec.wild && off > off_before && m.range_has_match(t + off_before, t + off);
        if !real && !gap_fire {
            return Err(format!("{} neither matches nor is a gap fire", show(tz, t)));
        }
        // Did this wall time already happen before t (the fire is in a fold's second pass)?
        let repeated = recent_offsets(tz, t)
            .into_iter()
            .filter(|&o| o > off)
            .any(|o| offset_at(tz, t - (o - off)) == o);
        if real && !gap_fire && repeated && !spec.wild {
            return Err(format!(
                "fixed-time job fires at {} in the second pass of a fold",
                show(tz, t)
            ));
        }
        walls.push(wall);
    }
    if !spec.wild && walls.windows(2).any(|w| w[0] >= w[1]) {
        return Err("fixed-time job: wall times do not strictly increase".to_string());
    }
    walls.sort_unstable();
    if walls.windows(3).any(|w| w[0] == w[2]) {
        return Err("a wall time fires three times".to_string());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(320))]

    /// The engine's next five instants equal the reference's, for random expressions, zones and
    /// `after` instants (mostly near DST transitions). The reference looks 40 days ahead; when
    /// it finds fewer than five, the engine's next one must lie beyond that.
    #[test]
    fn engine_matches_reference(expr in expr_strategy(), (zi, after) in after_strategy()) {
        if let Err(e) = compare(&expr, ZONES[zi], after, 5, 40 * 86_400) {
            return Err(TestCaseError::fail(e));
        }
    }

    /// The shape of longer runs of the engine's output (no oracle needed, so more instants).
    #[test]
    fn engine_output_is_well_formed(expr in expr_strategy(), (zi, after) in after_strategy()) {
        let tz = zone(ZONES[zi]);
        let spec = RefSpec::parse(&expr).map_err(TestCaseError::fail)?;
        let got = engine_next(&engine(&expr, &tz), after, 24);
        if let Err(e) = check_well_formed(&spec, &tz, after, &got) {
            return Err(TestCaseError::fail(format!(
                "{expr:?} in {} after {}: {e}\n  got {:?}",
                ZONES[zi],
                show(&tz, after),
                show_all(&tz, &got)
            )));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// can_fire over the 400-year Gregorian cycle.
// ---------------------------------------------------------------------------------------------

/// (month, day, weekday) of every date of 2000-2399, weekday Sunday = 0, computed once.
fn cycle_dates() -> &'static Vec<(u8, u8, u8)> {
    static CELL: OnceLock<Vec<(u8, u8, u8)>> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut d = jiff::civil::date(2000, 1, 1);
        let mut v = Vec::with_capacity(146_097);
        while d.year() < 2400 {
            v.push((
                d.month() as u8,
                d.day() as u8,
                d.weekday().to_sunday_zero_offset() as u8,
            ));
            d = d.tomorrow().unwrap();
        }
        assert_eq!(v.len(), 146_097);
        v
    })
}

fn ref_can_fire(spec: &RefSpec) -> bool {
    spec.sec.iter().any(|&b| b)
        && spec.min.iter().any(|&b| b)
        && spec.hour.iter().any(|&b| b)
        && cycle_dates()
            .iter()
            .any(|&(m, d, w)| spec.day_matches(m.into(), d.into(), w.into()))
}

fn check_can_fire(expr: &str) -> Result<(), String> {
    let spec = RefSpec::parse(expr)?;
    let want = ref_can_fire(&spec);
    let got = Expr::parse(expr)
        .map_err(|e| format!("engine rejects {expr:?}: {e}"))?
        .can_fire();
    if want == got {
        Ok(())
    } else {
        Err(format!("can_fire({expr:?}): expected {want}, got {got}"))
    }
}

#[test]
fn can_fire_edge_cases() {
    let never = [
        "0 0 31 2 *",
        "0 0 30 2 *",
        "0 0 30,31 feb *",
        "0 0 31 4,6,9,11 *",
        "0 0 31 2 */2",
        "0 0 31 apr-apr */3",
        "0 0 30-31/5 2 *",
        "0 0 30-31 2 *",
        "0 0 31 2 * ",
        "* * 31 2 *",
        "*/5 0 0 31 4,6,9,11 *",
    ];
    let sometimes = [
        "0 0 29 2 *",
        "0 0 29 2 */7",
        "0 0 29 2 0",
        "0 0 29 2 7",
        "0 0 29 2 sat",
        "0 0 31 2 mon",
        "0 0 31 1-2 *",
        "0 0 31 4,6,9,12 *",
        "0 0 30 2 sun",
        "0 0 1 * mon",
        "0 0 */2 2 mon",
        "0 0 31 */2 *",
        "0 0 */31 2 *",
        "0 0 31 2,4 mon-fri",
        "@daily",
    ];
    for e in never {
        assert!(!ref_can_fire(&RefSpec::parse(e).unwrap()), "reference: {e}");
    }
    for e in sometimes {
        assert!(ref_can_fire(&RefSpec::parse(e).unwrap()), "reference: {e}");
    }
    let errors: Vec<String> = never
        .iter()
        .chain(&sometimes)
        .filter_map(|e| check_can_fire(e).err())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// A rare schedule is valid and `next` finds its instants: Feb 29 on a Sunday.
#[test]
fn rare_schedule_instants_are_found() {
    let spec = RefSpec::parse("0 0 29 2 */7").unwrap();
    let want: Vec<i64> = (2000..2400)
        .filter(|&y| {
            jiff::civil::date(y, 2, 1).in_leap_year()
                && jiff::civil::date(y, 2, 29)
                    .weekday()
                    .to_sunday_zero_offset()
                    == 0
        })
        .map(|y| secs(&format!("{y}-02-29T00:00:00Z")))
        .filter(|&t| t > secs("2026-01-01T00:00:00Z"))
        .take(4)
        .collect();
    let got = engine_next(
        &engine("0 0 29 2 */7", &TimeZone::UTC),
        secs("2026-01-01T00:00:00Z"),
        4,
    );
    assert_eq!(got, want);
    let mut m = WallMatcher::new(&spec);
    assert!(got.iter().all(|&t| m.matches(t)));
}

fn day_fields_strategy() -> impl Strategy<Value = String> {
    let dom_value = prop_oneof![2 => 1u32..=31, 3 => 28u32..=31];
    let month_value =
        prop_oneof![1 => 1u32..=12, 2 => prop::sample::select(vec![2u32, 4, 6, 9, 11])];
    let dow = prop_oneof![
        3 => Just("*".to_string()),
        2 => (1u32..=7).prop_map(|s| format!("*/{s}")),
        3 => dow_field(0),
    ];
    (
        field(DOM, dom_value.boxed(), 2),
        field(MON, month_value.boxed(), 1),
        dow,
        any::<bool>(),
    )
        .prop_map(|(d, m, w, six)| {
            if six {
                format!("*/7 0 0 {d} {m} {w}")
            } else {
                format!("0 0 {d} {m} {w}")
            }
        })
}

proptest! {
    #![proptest_config(config(512))]

    /// `can_fire` agrees with a scan of every date of the 400-year cycle.
    #[test]
    fn can_fire_matches_brute_force(expr in day_fields_strategy()) {
        check_can_fire(&expr).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// An expression that can fire has a next instant, and one that cannot has none.
    #[test]
    fn next_exists_exactly_when_can_fire(expr in day_fields_strategy()) {
        let spec = RefSpec::parse(&expr).map_err(TestCaseError::fail)?;
        let next = engine(&expr, &TimeZone::UTC).next_after(Timestamp::from_second(secs("2025-06-01T00:00:00Z")).unwrap());
        prop_assert_eq!(next.is_some(), ref_can_fire(&spec), "{:?} next = {:?}", expr, next);
        if let Some(t) = next {
            prop_assert!(WallMatcher::new(&spec).matches(t.as_second()), "{:?}: {}", expr, t);
        }
    }
}
