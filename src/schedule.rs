//! Schedule expressions and their fire instants: every rule about calendars, time zones and
//! daylight saving time lives in this one module (see docs/schedules.md).
//!
//! The interface the rest of the program uses is small: [`Expr::parse`] turns text into an
//! expression, [`Schedule`] pairs it with a time zone, and [`Schedule::next_after`] returns the
//! first fire instant strictly after a given instant. The daemon computes each next tick from
//! the previous one, so a slow dispatch never skips or repeats a tick.
//!
//! # How the DST rules are implemented
//!
//! The timeline of a zone is cut into *segments* of constant UTC offset (between two
//! offset-changing transitions). Inside a segment wall-clock time advances one second per
//! second, so the classic cron search over wall-clock fields works unchanged; only its upper
//! bound is the segment's end. At a segment boundary two things can happen:
//!
//! * a **gap** (the offset grows, wall times are skipped): a fixed-time job with a match among
//!   the skipped wall times fires once at the transition instant, the first instant after the
//!   gap. Wild jobs just skip.
//! * a **fold** (the offset shrinks, wall times repeat): wild jobs match in both passes; for a
//!   fixed-time job a wall time that already occurred before the transition is skipped.

mod words;

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::text::Text;

const SECS_PER_DAY: i64 = 86_400;
/// How far `next_after` looks before it concludes that nothing fires: the Gregorian calendar
/// repeats every 400 years, so a schedule that matches any date matches within this window.
const SEARCH_WINDOW_SECS: i64 = 401 * 366 * SECS_PER_DAY;
/// The longest `@every` period: one Gregorian cycle of 400 years.
const MAX_EVERY_SECS: u64 = 146_097 * SECS_PER_DAY as u64;

/// The six cron fields, in the order they appear in a 6-field expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    fn allowed(self) -> &'static str {
        match self {
            Field::Second | Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31",
            Field::Month => "1-12 or jan-dec",
            Field::DayOfWeek => "0-7 or sun-sat (0 and 7 are Sunday)",
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Month => &[
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
            Field::DayOfWeek => &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            _ => &[],
        }
    }
}

/// Why an expression was rejected. `Display` names the field, the offending text and what is
/// allowed, e.g. `hour field "25": 25 is out of range (allowed: 0-23)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub field: Option<Field>,
    pub text: String,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(
                f,
                "{} field {:?}: {} (allowed: {})",
                field.name(),
                self.text,
                self.message,
                field.allowed()
            ),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// A parsed schedule expression, independent of any time zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Cron(CronSpec),
    /// `@every DURATION`: multiples of the period (in seconds) since the Unix epoch.
    Every(u64),
    /// `@reboot`: once when the daemon first starts after the machine booted.
    Reboot,
    /// `@start`: once each time the daemon starts (a container restarted on the same host
    /// runs it again; `@reboot` would not). Not at a reload.
    Start,
    /// `@manual`: never fires by itself; run by `run` or `trigger`.
    Manual,
}

/// The fields of a cron expression as bit sets, each as wide as its field (32 bytes, one per
/// job: issue 21), plus the flags cron derives from the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSpec {
    seconds: u64,
    minutes: u64,
    /// Bits 0..=23.
    hours: u32,
    /// Bits 1..=31.
    dom: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0 (7 is folded into 0 at parse time).
    dow: u8,
    dom_star: bool,
    dow_star: bool,
    /// The minute or hour field starts with `*`: such a job skips DST gaps and runs in both
    /// passes of a fold. Every other job is "fixed-time".
    wild: bool,
}

impl Expr {
    /// Parses a schedule: 5 cron fields, 6 fields with a leading seconds field, a macro
    /// (`@daily`, any case), `@every DURATION`, `@reboot`, `@start` or `@manual`.
    pub fn parse(text: &str) -> Result<Expr, ParseError> {
        let trimmed = text.trim();
        if let Some(rest) = trimmed.strip_prefix('@') {
            let (word, arg) = match rest.split_once(char::is_whitespace) {
                Some((w, a)) => (w, a.trim()),
                None => (rest, ""),
            };
            let word = word.to_ascii_lowercase();
            let macro_expansion = match word.as_str() {
                "yearly" | "annually" => Some("0 0 1 1 *"),
                "monthly" => Some("0 0 1 * *"),
                "weekly" => Some("0 0 * * 0"),
                "daily" | "midnight" => Some("0 0 * * *"),
                "hourly" => Some("0 * * * *"),
                _ => None,
            };
            let plain = |e: Expr| {
                if arg.is_empty() {
                    Ok(e)
                } else {
                    Err(general(format!("@{word} takes no argument, found {arg:?}")))
                }
            };
            return match (word.as_str(), macro_expansion) {
                (_, Some(fields)) => plain(Expr::Cron(parse_fields(fields)?)),
                ("reboot", _) => plain(Expr::Reboot),
                ("start", _) => plain(Expr::Start),
                ("manual", _) => plain(Expr::Manual),
                ("every", _) => {
                    if arg.is_empty() {
                        return Err(general(
                            "@every needs a duration, e.g. \"@every 90m\"".to_string(),
                        ));
                    }
                    let period = crate::units::parse_duration(arg)
                        .map_err(|e| general(format!("@every {arg:?}: {e}")))?;
                    let secs = period.as_secs();
                    if secs == 0 {
                        return Err(general(
                            "@every needs a duration of at least 1s".to_string(),
                        ));
                    }
                    // Fire instants are whole seconds: a fraction cannot be honoured, and
                    // dropping it would make "@every 1999ms" fire every second.
                    if period.subsec_millis() != 0 {
                        return Err(general(format!(
                            "@every {arg:?}: a whole number of seconds is needed (schedules \
                             fire on whole seconds), e.g. \"@every {secs}s\" or \"@every {}s\"",
                            secs + 1
                        )));
                    }
                    // Longer, and the next multiple may lie past the year 9999: such a job
                    // would never fire (found by fuzzing: "@every 66666666666653m").
                    if secs > MAX_EVERY_SECS {
                        return Err(general(format!(
                            "@every {arg:?}: at most 400 years (146097d)"
                        )));
                    }
                    Ok(Expr::Every(secs))
                }
                _ => Err(general(format!(
                    "unknown macro @{word} (allowed: @yearly, @annually, @monthly, @weekly, \
                     @daily, @midnight, @hourly, @reboot, @start, @manual, @every DURATION)"
                ))),
            };
        }
        Ok(Expr::Cron(parse_fields(trimmed)?))
    }

    /// True when the expression matches at least one calendar instant. Decided exactly over the
    /// 400-year Gregorian cycle: see [`CronSpec::can_fire`].
    pub fn can_fire(&self) -> bool {
        match self {
            Expr::Cron(spec) => spec.can_fire(),
            Expr::Every(_) => true,
            Expr::Reboot | Expr::Start | Expr::Manual => true,
        }
    }

    /// Whether the expression fires on a calendar (not `@reboot`, `@start` or `@manual`).
    pub fn is_calendar(&self) -> bool {
        matches!(self, Expr::Cron(_) | Expr::Every(_))
    }

    /// Wild (a star in the minute or hour field, or `@every`): such a job follows the clock
    /// as it is; a fixed-time job never runs a wall-clock time twice and never skips one.
    pub fn is_wild(&self) -> bool {
        match self {
            Expr::Cron(spec) => spec.is_wild(),
            Expr::Every(_) => true,
            Expr::Reboot | Expr::Start | Expr::Manual => false,
        }
    }
}

fn general(message: String) -> ParseError {
    ParseError {
        field: None,
        text: String::new(),
        message,
    }
}

fn parse_fields(text: &str) -> Result<CronSpec, ParseError> {
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    let (sec_text, rest) = match parts.len() {
        5 => (None, &parts[..]),
        6 => (Some(parts[0]), &parts[1..]),
        0 => return Err(general("empty schedule".to_string())),
        n => {
            return Err(general(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with a \
                 leading seconds field, found {n}"
            )));
        }
    };
    let seconds = match sec_text {
        Some(t) => parse_field(t, Field::Second)?,
        None => 1,
    };
    let minutes = parse_field(rest[0], Field::Minute)?;
    let hours = parse_field(rest[1], Field::Hour)?;
    let dom = parse_field(rest[2], Field::DayOfMonth)?;
    let months = parse_field(rest[3], Field::Month)?;
    let mut dow = parse_field(rest[4], Field::DayOfWeek)?;
    if dow & (1 << 7) != 0 {
        dow = (dow & !(1 << 7)) | 1;
    }
    Ok(CronSpec {
        seconds,
        minutes,
        hours: narrow(hours, Field::Hour)?,
        dom: narrow(dom, Field::DayOfMonth)?,
        months: narrow(months, Field::Month)?,
        dow: narrow(dow, Field::DayOfWeek)?,
        dom_star: rest[2].starts_with('*'),
        dow_star: rest[4].starts_with('*'),
        wild: rest[0].starts_with('*') || rest[1].starts_with('*'),
    })
}

/// A field's bit set in the width its bounds need (the parser sets no higher bit).
fn narrow<T: TryFrom<u64>>(bits: u64, field: Field) -> Result<T, ParseError> {
    T::try_from(bits).map_err(|_| general(format!("{} field out of range", field.name())))
}

/// Parses one field (a comma list of `*`, `N`, `N-M`, `*/S`, `N-M/S`) into a bit set.
fn parse_field(text: &str, field: Field) -> Result<u64, ParseError> {
    let err = |message: String| ParseError {
        field: Some(field),
        text: text.to_string(),
        message,
    };
    let (low, high) = field.bounds();
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(err("empty list item".to_string()));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let (first, last) = if range == "*" {
            (low, high)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = parse_value(a, field, false).map_err(&err)?;
            let b = parse_value(b, field, true).map_err(&err)?;
            if a > b {
                return Err(err(format!("range {range} is reversed")));
            }
            (a, b)
        } else {
            if step.is_some() {
                return Err(err(format!(
                    "a step needs a range or *: write {range}-{high}/{} or */{}",
                    step.unwrap_or(""),
                    step.unwrap_or("")
                )));
            }
            let v = parse_value(range, field, false).map_err(&err)?;
            (v, v)
        };
        let step = match step {
            None => 1,
            Some(s) => {
                let n = parse_number(s).ok_or_else(|| err(format!("bad step {s:?}")))?;
                if n == 0 {
                    return Err(err("a step of 0 never advances".to_string()));
                }
                n
            }
        };
        let mut v = first;
        while v <= last {
            bits |= 1 << v;
            v = v.saturating_add(step);
        }
    }
    Ok(bits)
}

fn parse_number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One value of a field: a number in range or, for month and day-of-week, a three-letter
/// name. `sun` at the end of a day-of-week range means 7, so `fri-sun` works.
fn parse_value(s: &str, field: Field, range_end: bool) -> Result<u32, String> {
    let (low, high) = field.bounds();
    if let Some(n) = parse_number(s) {
        if n < low || n > high {
            return Err(format!("{n} is out of range"));
        }
        return Ok(n);
    }
    if s.is_empty() {
        return Err("missing number".to_string());
    }
    let names = field.names();
    if !names.is_empty() {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            let v = i as u32 + low;
            return Ok(if field == Field::DayOfWeek && range_end && v == 0 {
                7
            } else {
                v
            });
        }
        return Err(format!("unknown name {s:?}"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s} is out of range"));
    }
    Err(format!("{s:?} is not a number"))
}

fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let m = mask >> from;
    if m == 0 {
        None
    } else {
        Some(from + m.trailing_zeros())
    }
}

/// Days in a month of a year (proleptic Gregorian).
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm); the inverse of
/// [`civil_from_days`], used by the tests.
#[cfg(test)]
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl CronSpec {
    /// Whether a wall-clock time in the minute or hour field is a star (see the module docs).
    pub fn is_wild(&self) -> bool {
        self.wild
    }

    /// Cron's day rule: when either day field starts with `*`, both must match; when neither
    /// does, either may match.
    fn day_matches(&self, month: u32, day: u32, weekday: u32) -> bool {
        if u64::from(self.months) & (1 << month) == 0 {
            return false;
        }
        let dom = u64::from(self.dom) & (1 << day) != 0;
        let dow = u64::from(self.dow) & (1 << weekday) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Exact over the Gregorian 400-year cycle. Every month contains every weekday, and every
    /// valid (month, day) pair, February 29 included, falls on each of the seven weekdays in
    /// some year of the cycle (146,097 days is a whole number of weeks). So with the OR rule a
    /// schedule always fires, and with the AND rule it fires exactly when some selected month
    /// has some selected day of the month (the weekday set is never empty).
    pub fn can_fire(&self) -> bool {
        if !(self.dom_star || self.dow_star) {
            return self.months != 0;
        }
        (1..=12).any(|m| {
            u64::from(self.months) & (1 << m) != 0
                && (1..=days_in_month(2000, m)).any(|d| u64::from(self.dom) & (1 << d) != 0)
        })
    }

    /// The first time of day at or after `(h, m, s)` that the time fields match.
    fn first_time_from(&self, lower: (u32, u32, u32)) -> Option<(u32, u32, u32)> {
        let (lh, lm, ls) = lower;
        let mut h = next_bit(self.hours.into(), lh)?;
        loop {
            let mut m = next_bit(self.minutes, if h == lh { lm } else { 0 });
            while let Some(mm) = m {
                let s_lo = if h == lh && mm == lm { ls } else { 0 };
                if let Some(s) = next_bit(self.seconds, s_lo) {
                    return Some((h, mm, s));
                }
                m = next_bit(self.minutes, mm + 1);
            }
            h = next_bit(self.hours.into(), h + 1)?;
        }
    }

    /// The first matching wall-clock time `c` with `from <= c < until`, both in seconds of
    /// local time since 1970-01-01T00:00.
    fn next_civil(&self, from: i64, until: i64) -> Option<i64> {
        let mut day = from.div_euclid(SECS_PER_DAY);
        let tod = from.rem_euclid(SECS_PER_DAY);
        let mut lower = (
            (tod / 3600) as u32,
            ((tod / 60) % 60) as u32,
            (tod % 60) as u32,
        );
        loop {
            if day * SECS_PER_DAY >= until {
                return None;
            }
            let (y, m, d) = civil_from_days(day);
            if u64::from(self.months) & (1 << m) == 0 {
                // Jump to the first day of the next month.
                day += i64::from(days_in_month(y, m) - d) + 1;
                lower = (0, 0, 0);
                continue;
            }
            let weekday = (day + 4).rem_euclid(7) as u32;
            if self.day_matches(m, d, weekday)
                && let Some((h, mi, s)) = self.first_time_from(lower)
            {
                let c =
                    day * SECS_PER_DAY + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
                return (c < until).then_some(c);
            }
            day += 1;
            lower = (0, 0, 0);
        }
    }
}

/// A schedule expression bound to a time zone: the thing that answers "when next?".
#[derive(Clone, Debug)]
pub struct Schedule {
    expr: Expr,
    tz: TimeZone,
    /// The expression as written (empty for a schedule built from an expression alone): kept
    /// here rather than beside it in each job; a stretch of a buffer shared with other texts
    /// of the table (the job's name at load, all the table's texts in the daemon's copy).
    text: Text,
}

/// A stretch of the timeline with one UTC offset.
struct Segment {
    offset: i64,
    /// The offset-changing transition that starts the segment, and the offset before it.
    begin: Option<(i64, i64)>,
    /// The offset-changing transition that ends the segment, and the offset after it.
    end: Option<(i64, i64)>,
}

impl Schedule {
    pub fn new(expr: Expr, tz: TimeZone) -> Schedule {
        Schedule {
            expr,
            tz,
            text: Text::default(),
        }
    }

    /// The schedule of `expr` in `tz`, parsed from `text`.
    pub fn of(expr: Expr, tz: TimeZone, text: Text) -> Schedule {
        Schedule { expr, tz, text }
    }

    /// The schedule with the text it was parsed from.
    pub fn with_text(self, text: impl Into<Text>) -> Schedule {
        Schedule {
            text: text.into(),
            ..self
        }
    }

    /// The expression as written (empty when the schedule was not built from a text).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The first fire instant strictly after `after`, or `None` for `@reboot`, `@start`, `@manual` and
    /// a schedule with no instant in the next 400 years. Fire instants are whole seconds.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        // The first whole second after `after`. `as_second` truncates toward zero, so before
        // 1970 a fraction must round down first (found by fuzzing: -1.5 s gave 0, not -1).
        let floor = after.as_second() - i64::from(after.subsec_nanosecond() < 0);
        let lo = floor.checked_add(1)?;
        let next = match &self.expr {
            Expr::Cron(spec) => self.next_cron(spec, lo),
            Expr::Every(period) => {
                let p = i64::try_from(*period).ok()?;
                let k = lo.checked_add(p - 1)?.div_euclid(p);
                k.checked_mul(p)
            }
            Expr::Reboot | Expr::Start | Expr::Manual => None,
        }?;
        Timestamp::from_second(next).ok()
    }

    /// An iterator over the fire instants strictly after `after`.
    pub fn iter_after(&self, after: Timestamp) -> impl Iterator<Item = Timestamp> + '_ {
        let mut cur = after;
        std::iter::from_fn(move || {
            let n = self.next_after(cur)?;
            cur = n;
            Some(n)
        })
    }

    fn offset_at(&self, t: i64) -> i64 {
        match Timestamp::from_second(t) {
            Ok(ts) => i64::from(self.tz.to_offset(ts).seconds()),
            Err(_) => 0,
        }
    }

    /// The segment that contains instant `t` (seconds).
    fn segment_at(&self, t: i64) -> Segment {
        let offset = self.offset_at(t);
        let Ok(ts) = Timestamp::from_second(t) else {
            return Segment {
                offset,
                begin: None,
                end: None,
            };
        };
        // Transitions that change only the abbreviation or the DST flag are not boundaries.
        let end = self
            .tz
            .following(ts)
            .take(16)
            .map(|tr| (tr.timestamp().as_second(), i64::from(tr.offset().seconds())))
            .find(|&(_, o)| o != offset);
        let begin = match Timestamp::from_second(t + 1) {
            Ok(t1) => self
                .tz
                .preceding(t1)
                .take(16)
                .map(|tr| tr.timestamp().as_second())
                .map(|b| (b, self.offset_at(b - 1)))
                .find(|&(_, before)| before != offset),
            Err(_) => None,
        };
        Segment { offset, begin, end }
    }

    /// Whether a fixed-time job fires when the clock jumps over the wall times
    /// `[from, until)`: it does when any of them matches.
    fn gap_has_match(spec: &CronSpec, from: i64, until: i64) -> bool {
        !spec.wild && from < until && spec.next_civil(from, until).is_some()
    }

    fn next_cron(&self, spec: &CronSpec, lo: i64) -> Option<i64> {
        let limit = lo.checked_add(SEARCH_WINDOW_SECS)?;
        let mut seg = self.segment_at(lo);
        // A gap that ends exactly at `lo`: its fire instant is `lo` itself.
        if let Some((b, before)) = seg.begin
            && b == lo
            && Self::gap_has_match(spec, b + before, b + seg.offset)
        {
            return Some(lo);
        }
        let mut start = lo;
        loop {
            if start > limit {
                return None;
            }
            let o = seg.offset;
            let until = match seg.end {
                Some((e, _)) => e + o,
                None => limit + o,
            };
            // Wall times before this are the second pass of a fold that starts the segment.
            let repeated_until = match seg.begin {
                Some((b, before)) if before > o => b + before,
                _ => i64::MIN,
            };
            let mut from = start + o;
            while let Some(c) = spec.next_civil(from, until) {
                if !spec.wild && c < repeated_until {
                    from = c + 1;
                    continue;
                }
                return Some(c - o);
            }
            let (e, after_offset) = seg.end?;
            if after_offset > o && Self::gap_has_match(spec, e + o, e + after_offset) {
                return Some(e);
            }
            start = e;
            seg = Segment {
                offset: after_offset,
                begin: Some((e, o)),
                end: self.segment_at(e).end,
            };
        }
    }
}

/// Loads an IANA time zone. The common case reads the one TZif file directly, which avoids
/// indexing the whole zoneinfo directory (about a millisecond at every start); any other name
/// (different case, an alias the files do not have) goes through jiff's database.
pub fn load_zone(name: &str) -> Result<TimeZone, jiff::Error> {
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    let safe = !name.is_empty()
        && !name.starts_with('/')
        && !name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
    if safe {
        let dir = std::env::var_os("TZDIR")
            .filter(|d| !d.is_empty())
            .map_or_else(
                || std::path::PathBuf::from("/usr/share/zoneinfo"),
                Into::into,
            );
        if let Ok(data) = std::fs::read(dir.join(name))
            && let Ok(tz) = TimeZone::tzif(name, &data)
        {
            return Ok(tz);
        }
    }
    TimeZone::get(name)
}

/// The system's zone: `$TZ` when it names a zone, else the zone `/etc/localtime` links to,
/// else whatever jiff determines.
pub fn system_zone() -> TimeZone {
    if let Ok(tz) = std::env::var("TZ") {
        let name = tz.strip_prefix(':').unwrap_or(&tz);
        if let Ok(z) = load_zone(name) {
            return z;
        }
    }
    if let Ok(target) = std::fs::read_link("/etc/localtime") {
        let text = target.to_string_lossy();
        if let Some((_, name)) = text.split_once("zoneinfo/")
            && let Ok(z) = load_zone(name)
        {
            return z;
        }
    }
    TimeZone::system()
}

/// A time given on the command line: an instant, or a bare local date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeArg {
    Instant(Timestamp),
    Date(jiff::civil::Date),
}

impl TimeArg {
    /// Parses RFC 3339 (`2026-11-20T02:00:00Z`), a local date-time (`2026-11-20T02:00`, also
    /// with a space, in `tz`) or a local date (`2026-11-20`).
    pub fn parse(text: &str, tz: &TimeZone) -> Result<TimeArg, String> {
        let t = text.trim();
        if let Ok(ts) = t.parse::<Timestamp>() {
            return Ok(TimeArg::Instant(ts));
        }
        if let Ok(dt) = t.parse::<jiff::civil::DateTime>()
            && t.len() > 10
        {
            return tz
                .to_ambiguous_zoned(dt)
                .compatible()
                .map(|z| TimeArg::Instant(z.timestamp()))
                .map_err(|e| format!("{text:?}: {e}"));
        }
        if let Ok(d) = t.parse::<jiff::civil::Date>() {
            return Ok(TimeArg::Date(d));
        }
        Err(format!(
            "{text:?} is not a time: use RFC 3339 (2026-11-20T02:00:00Z), a local date-time \
             (2026-11-20T02:00) or a local date (2026-11-20)"
        ))
    }

    /// The instant: a bare date means its local midnight (or the first instant of the day,
    /// when midnight falls in a DST gap).
    pub fn instant(self, tz: &TimeZone) -> Result<Timestamp, String> {
        match self {
            TimeArg::Instant(ts) => Ok(ts),
            TimeArg::Date(d) => d
                .to_zoned(tz.clone())
                .map(|z| z.timestamp())
                .map_err(|e| format!("{d}: {e}")),
        }
    }
}

/// RFC 3339 with the zone's offset at that instant: `2026-03-08T03:00:00-04:00`.
pub fn format_rfc3339(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The zone's name for display: its IANA name, or what the system calls it.
pub fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name()
        .map_or_else(|| "local".to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn next_n(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        let e = Expr::parse(expr).expect("test expression");
        let s = Schedule::new(e, TimeZone::get(tz).expect("test zone"));
        let z = TimeZone::get(tz).expect("test zone");
        s.iter_after(ts(after))
            .take(n)
            .map(|t| {
                let zoned = t.to_zoned(z.clone());
                jiff::fmt::temporal::DateTimePrinter::new()
                    .timestamp_with_offset_to_string(&zoned.timestamp(), zoned.offset())
            })
            .collect()
    }

    #[test]
    fn civil_days_round_trip() {
        for z in [
            -800_000i64,
            -1,
            0,
            1,
            59,
            60,
            365,
            10_957,
            20_000,
            2_000_000,
        ] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn day_rule_or_when_neither_is_star() {
        // 1st of every month AND every Monday.
        let got = next_n("0 0 1 * mon", "UTC", "2026-06-01T00:00:00Z", 5);
        assert_eq!(
            got,
            [
                "2026-06-08T00:00:00+00:00",
                "2026-06-15T00:00:00+00:00",
                "2026-06-22T00:00:00+00:00",
                "2026-06-29T00:00:00+00:00",
                "2026-07-01T00:00:00+00:00",
            ]
        );
    }

    #[test]
    fn day_rule_and_when_dom_starts_with_star() {
        // Odd-numbered days that are Mondays.
        let got = next_n("0 0 */2 * mon", "UTC", "2026-06-01T00:00:00Z", 4);
        assert_eq!(
            got,
            [
                "2026-06-15T00:00:00+00:00",
                "2026-06-29T00:00:00+00:00",
                "2026-07-13T00:00:00+00:00",
                "2026-07-27T00:00:00+00:00",
            ]
        );
    }

    #[test]
    fn dow_star_step_is_a_star_too() {
        // `*/2` in day-of-week makes the AND rule apply: the 13th when it is Sun/Tue/Thu/Sat.
        let got = next_n("0 0 13 * */2", "UTC", "2026-01-01T00:00:00Z", 3);
        assert_eq!(
            got,
            [
                "2026-01-13T00:00:00+00:00", // Tuesday
                "2026-06-13T00:00:00+00:00", // Saturday
                "2026-08-13T00:00:00+00:00", // Thursday
            ]
        );
    }

    #[test]
    fn worked_examples_new_york() {
        assert_eq!(
            next_n("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", 3),
            [
                "2026-03-07T02:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00"
            ]
        );
        assert_eq!(
            next_n("30 1 * * *", "America/New_York", "2026-10-31T00:00:00Z", 3),
            [
                "2026-10-31T01:30:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-02T01:30:00-05:00"
            ]
        );
        assert_eq!(
            next_n(
                "*/30 1 * * *",
                "America/New_York",
                "2026-10-31T12:00:00Z",
                4
            ),
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T01:30:00-05:00"
            ]
        );
    }

    #[test]
    fn gap_fire_runs_once_for_several_matches_and_merges_with_real_match() {
        assert_eq!(
            next_n(
                "15,45 2 * * *",
                "America/New_York",
                "2026-03-08T00:00:00Z",
                2
            ),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:15:00-04:00"]
        );
        assert_eq!(
            next_n(
                "0,30 2-3 * * *",
                "America/New_York",
                "2026-03-08T06:00:00Z",
                3
            ),
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00",
                "2026-03-09T02:00:00-04:00"
            ]
        );
    }

    #[test]
    fn gap_fire_found_when_after_is_just_before_transition() {
        assert_eq!(
            next_n("30 2 * * *", "America/New_York", "2026-03-08T06:59:59Z", 1),
            ["2026-03-08T03:00:00-04:00"]
        );
    }

    #[test]
    fn wild_jobs_skip_the_gap() {
        assert_eq!(
            next_n(
                "*/30 * * * *",
                "America/New_York",
                "2026-03-08T06:15:00Z",
                3
            ),
            [
                "2026-03-08T01:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00"
            ]
        );
    }

    #[test]
    fn fixed_job_in_second_pass_does_not_rerun() {
        // `after` lies in the second pass of the fold: today's 01:30 already ran.
        assert_eq!(
            next_n("30 1 * * *", "America/New_York", "2026-11-01T06:10:00Z", 1),
            ["2026-11-02T01:30:00-05:00"]
        );
    }

    #[test]
    fn lord_howe_half_hour_dst() {
        // Australia/Lord_Howe: 2026-10-04 02:00 -> 02:30 (+10:30 -> +11).
        assert_eq!(
            next_n(
                "15 2 * * *",
                "Australia/Lord_Howe",
                "2026-10-03T00:00:00Z",
                3
            ),
            [
                "2026-10-04T02:30:00+11:00",
                "2026-10-05T02:15:00+11:00",
                "2026-10-06T02:15:00+11:00"
            ]
        );
    }

    #[test]
    fn seconds_field() {
        assert_eq!(
            next_n("*/20 * * * * *", "UTC", "2026-01-01T00:00:05Z", 3),
            [
                "2026-01-01T00:00:20+00:00",
                "2026-01-01T00:00:40+00:00",
                "2026-01-01T00:01:00+00:00"
            ]
        );
    }

    #[test]
    fn every_is_anchored_at_the_epoch() {
        assert_eq!(
            next_n("@every 90m", "Europe/Berlin", "2026-01-01T00:00:00Z", 2),
            ["2026-01-01T02:30:00+01:00", "2026-01-01T04:00:00+01:00"]
        );
    }

    #[test]
    fn rare_schedule_feb_29_on_sunday() {
        assert_eq!(
            next_n("0 0 29 2 */7", "UTC", "2026-01-01T00:00:00Z", 2),
            ["2032-02-29T00:00:00+00:00", "2060-02-29T00:00:00+00:00"]
        );
    }

    #[test]
    fn never_fires_is_detected() {
        for e in [
            "0 0 31 2 *",
            "0 0 30 2 *",
            "0 0 31 4,6,9,11 *",
            "0 0 31 2 */2",
        ] {
            assert!(!Expr::parse(e).expect("parses").can_fire(), "{e}");
        }
        for e in ["0 0 29 2 *", "0 0 31 2 mon", "0 0 31 1-2 *", "@daily"] {
            assert!(Expr::parse(e).expect("parses").can_fire(), "{e}");
        }
    }

    #[test]
    fn names_ranges_and_sunday() {
        let a = Expr::parse("0 0 * * fri-sun").expect("parses");
        let b = Expr::parse("0 0 * * 5,6,0").expect("parses");
        let c = Expr::parse("0 0 * * 5-7").expect("parses");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(
            Expr::parse("0 0 * JAN-mar MON").expect("parses"),
            Expr::parse("0 0 * 1-3 1").expect("parses")
        );
        assert_eq!(
            Expr::parse("@DAILY").expect("parses"),
            Expr::parse("0 0 * * *").expect("parses")
        );
    }

    #[test]
    fn errors_name_the_field_and_range() {
        let cases = [
            (
                "60 * * * *",
                "minute field \"60\": 60 is out of range (allowed: 0-59)",
            ),
            (
                "0 24 * * *",
                "hour field \"24\": 24 is out of range (allowed: 0-23)",
            ),
            (
                "0 0 0 * *",
                "day-of-month field \"0\": 0 is out of range (allowed: 1-31)",
            ),
            ("0 0 * foo *", "month field \"foo\": unknown name \"foo\""),
            ("0 0 * * 8", "day-of-week field \"8\": 8 is out of range"),
            (
                "5/10 * * * *",
                "minute field \"5/10\": a step needs a range or *",
            ),
            (
                "*/0 * * * *",
                "minute field \"*/0\": a step of 0 never advances",
            ),
            (
                "30-10 * * * *",
                "minute field \"30-10\": range 30-10 is reversed",
            ),
            ("１ * * * *", "minute field \"１\": \"１\" is not a number"),
            ("* * * *", "expected 5 fields"),
            ("1,,2 * * * *", "minute field \"1,,2\": empty list item"),
            ("@often", "unknown macro @often"),
            ("@every", "@every needs a duration"),
            ("@every 0s", "at least 1s"),
            ("@every 999ms", "at least 1s"),
            (
                "@every 1999ms",
                "@every \"1999ms\": a whole number of seconds is needed (schedules fire on \
                 whole seconds), e.g. \"@every 1s\" or \"@every 2s\"",
            ),
            ("@every 2s 500ms", "e.g. \"@every 2s\" or \"@every 3s\""),
        ];
        for (expr, want) in cases {
            let got = Expr::parse(expr).expect_err(expr).to_string();
            assert!(got.contains(want), "{expr}: {got}");
        }
    }
}
