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

impl State {
    /// A good sample (offset and round trip, in seconds): the new median, and whether an
    /// episode of skew began (`Some(true)`) or ended (`Some(false)`). It ends only well
    /// within the threshold, so that jitter around it does not make an episode of every
    /// sample.
    fn add(&mut self, offset: f64, rtt: f64) -> Option<bool> {
        self.samples.push_back((offset, rtt));
        while self.samples.len() > SAMPLES {
            self.samples.pop_front();
        }
        let mut sorted: Vec<(f64, f64)> = self.samples.iter().copied().collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let median = sorted[sorted.len() / 2];
        self.offset = Some(median);
        let skew = SKEW.as_secs_f64();
        if median.0.abs() > skew && !self.skewed {
            self.skewed = true;
            Some(true)
        } else if median.0.abs() < skew / 2.0 && self.skewed {
            self.skewed = false;
            Some(false)
        } else {
            None
        }
    }
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
        let change = st.add(db_s - mid, rtt.as_secs_f64());
        let Some((offset, _)) = st.offset else {
            return;
        };
        let f = [
            ("node", self.node.clone()),
            ("offset_s", format!("{offset:.3}")),
        ];
        match change {
            Some(true) => {
                let msg = format!(
                    "this host's clock is {} the database's (more than {}): scheduling by the \
                     database's clock until it is corrected; fix the time service (NTP) of \
                     this host",
                    describe(offset),
                    crate::units::format_duration(SKEW)
                );
                self.log.log(Level::Warn, "clock", &f, &msg);
            }
            Some(false) => {
                let msg = format!(
                    "this host's clock is back in step with the database's ({})",
                    describe(offset)
                );
                self.log.log(Level::Info, "clock", &f, &msg);
            }
            None => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_the_median_of_the_last_samples_and_an_episode_is_told_once() {
        let mut st = State::default();
        // In step, with one wild sample: the median ignores it.
        assert_eq!(st.add(0.01, 0.002), None);
        assert_eq!(st.add(-30.0, 0.002), None);
        assert_eq!(st.add(0.02, 0.002), None);
        assert_eq!(st.offset.map(|o| o.0), Some(0.01));
        // The host's clock is now 30 s ahead: the episode begins when most samples say so,
        // and is told once.
        assert_eq!(st.add(-30.0, 0.002), None);
        assert_eq!(st.add(-30.1, 0.004), Some(true));
        assert_eq!(st.add(-30.0, 0.002), None);
        assert!(st.offset.is_some_and(|o| (o.0 + 30.0).abs() < 0.2));
        // Corrected: the episode ends once the median is within half the threshold.
        for _ in 0..2 {
            assert_eq!(st.add(0.7, 0.002), None);
        }
        assert_eq!(st.add(0.7, 0.002), None, "0.7 s is not back in step");
        assert_eq!(st.add(0.1, 0.002), None);
        assert_eq!(st.add(0.1, 0.002), None);
        assert_eq!(st.add(0.1, 0.002), Some(false));
        assert_eq!(st.samples.len(), SAMPLES);
    }

    #[test]
    fn an_offset_is_described_from_the_hosts_side() {
        assert_eq!(describe(-30.04), "30.0s ahead of");
        assert_eq!(describe(1.5), "1.5s behind");
    }
}
