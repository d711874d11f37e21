//! The offset of the database's clock from this host's, measured by every heartbeat: the
//! statement returns the database's `clock_timestamp()`, which is compared with the local
//! midpoint of the round trip (when it was sent plus half the round-trip time). Samples whose
//! round trip is too long to tell (over [`MAX_SAMPLE_RTT`]) are ignored; the offset is the
//! median of the last [`SAMPLES`] good ones. Beyond [`SKEW`], the node warns, the daemon
//! alerts once (`clock`), and it schedules by the corrected time (`Fleet::corrected_now`):
//! the offset less half the sample's round trip (the database read its clock somewhere
//! within the round trip), so that it never runs an instant early by the database's clock.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::Fleet;
use crate::log::Level;
use crate::sync::lock;

/// An offset beyond this is skew: warned, alerted, and corrected for.
pub(super) const SKEW: Duration = Duration::from_secs(1);

/// A sample is good to ±half its round trip; beyond this it says too little.
const MAX_SAMPLE_RTT: Duration = Duration::from_millis(500);

/// How many good samples the median is taken over.
const SAMPLES: usize = 5;

#[derive(Default)]
pub(super) struct Clock {
    state: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Offsets (the database's clock minus this host's) and their round trips, in seconds,
    /// newest last.
    samples: VecDeque<(f64, f64)>,
    /// The median of `samples`, and its round trip.
    offset: Option<(f64, f64)>,
    /// Whether the offset is beyond [`SKEW`] (an episode, warned once).
    skewed: bool,
}

/// "30.2s ahead of" / "1.5s behind" the database's clock, for an offset (database minus
/// host) in seconds.
pub(super) fn describe(offset_s: f64) -> String {
    let side = if offset_s < 0.0 { "ahead of" } else { "behind" };
    format!("{:.1}s {side}", offset_s.abs())
}

impl Fleet {
    /// A heartbeat's clock sample: sent at `wall` (this host's clock), answered after
    /// `rtt`, with the database's clock at `db_s` (Unix seconds).
    pub(super) fn clock_sample(&self, wall: Timestamp, rtt: Duration, db_s: f64) {
        if rtt > MAX_SAMPLE_RTT || !db_s.is_finite() {
            return;
        }
        let mid = wall.as_microsecond() as f64 / 1e6 + rtt.as_secs_f64() / 2.0;
        let mut st = lock(&self.clock.state);
        st.samples.push_back((db_s - mid, rtt.as_secs_f64()));
        while st.samples.len() > SAMPLES {
            st.samples.pop_front();
        }
        let mut sorted: Vec<(f64, f64)> = st.samples.iter().copied().collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let median = sorted[sorted.len() / 2];
        st.offset = Some(median);
        let offset = median.0;
        let beyond = offset.abs() > SKEW.as_secs_f64();
        // Back in step only well within the threshold, so that jitter around it does not
        // make an episode of every sample.
        let within = offset.abs() < SKEW.as_secs_f64() / 2.0;
        let f = [
            ("node", self.node.clone()),
            ("offset_s", format!("{offset:.3}")),
        ];
        if beyond && !st.skewed {
            st.skewed = true;
            let msg = format!(
                "this host's clock is {} the database's (more than {}): scheduling by the \
                 database's clock until it is corrected; fix the time service (NTP) of this host",
                describe(offset),
                crate::units::format_duration(SKEW)
            );
            self.log.log(Level::Warn, "clock", &f, &msg);
        } else if within && st.skewed {
            st.skewed = false;
            let msg = format!(
                "this host's clock is back in step with the database's ({})",
                describe(offset)
            );
            self.log.log(Level::Info, "clock", &f, &msg);
        }
    }

    /// The smoothed offset (the database's clock minus this host's), once measured.
    pub(super) fn clock_offset(&self) -> Option<f64> {
        lock(&self.clock.state).offset.map(|o| o.0)
    }

    /// The offset beyond [`SKEW`], if it is.
    pub(super) fn skew(&self) -> Option<f64> {
        self.clock_offset().filter(|o| o.abs() > SKEW.as_secs_f64())
    }

    /// The time to schedule by: this host's clock, corrected by the offset when it is
    /// beyond [`SKEW`] (less half its round trip: late rather than early).
    pub(super) fn corrected_now(&self) -> Timestamp {
        let now = Timestamp::now();
        let Some((offset, rtt)) = lock(&self.clock.state).offset else {
            return now;
        };
        if offset.abs() <= SKEW.as_secs_f64() {
            return now;
        }
        now.checked_add(SignedDuration::from_secs_f64(offset - rtt / 2.0))
            .unwrap_or(now)
    }
}
