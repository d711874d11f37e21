//! `cronwarden next EXPR`: the next fire instants of a schedule.

use jiff::Timestamp;

use super::print::Out;
use super::{CmdResult, Failure, exit};
use crate::schedule::{Expr, Schedule, TimeArg, format_rfc3339};

pub(super) fn run(expr: &str, tz: Option<&str>, after: Option<&str>, count: usize) -> CmdResult {
    let tz = match tz {
        Some(name) => crate::schedule::load_zone(name)
            .map_err(|_| Failure::usage(format!("unknown time zone {name:?}")))?,
        None => crate::schedule::system_zone(),
    };
    let e = Expr::parse(expr).map_err(|e| Failure::usage(format!("schedule {expr:?}: {e}")))?;
    if !e.can_fire() {
        return Err(Failure::usage(format!(
            "schedule {expr:?} can never fire: no selected month has a selected day of the month"
        )));
    }
    if !e.is_calendar() {
        return Err(Failure::usage(format!(
            "schedule {expr:?} has no calendar instants (@reboot runs once when the daemon first \
             starts after boot; @start each time the daemon starts; @manual only by `run` or \
             `trigger`)"
        )));
    }
    let after = match after {
        Some(text) => TimeArg::parse(text, &tz)
            .and_then(|t| t.instant(&tz))
            .map_err(Failure::usage)?,
        None => Timestamp::now(),
    };
    let schedule = Schedule::new(e, tz.clone());
    // Line by line: `-n 100000 | head -1` stops at the first line the reader does not want.
    let mut out = Out::new();
    for ts in schedule.iter_after(after).take(count) {
        if !out.write(format_args!("{}\n", format_rfc3339(ts, &tz)))? {
            break;
        }
    }
    out.finish()?;
    Ok(exit::OK)
}
