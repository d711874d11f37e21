//! Durations in words, and the timeline's windows: shared by the page's parts.

use std::time::Duration;

use crate::units::format_duration;

/// The windows the timeline can show (`?window=`), the first the default.
pub(crate) const WINDOWS: [(&str, u64); 3] = [("24h", 86_400), ("7d", 7 * 86_400), ("1h", 3600)];

/// "3m 2s" from milliseconds (whole seconds past a minute).
pub(crate) fn took(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format_duration(Duration::from_secs(ms / 1000))
    }
}
