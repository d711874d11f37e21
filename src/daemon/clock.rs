//! A clock the coordination backend finds off (a fleet node's, against the database's):
//! alerted once per episode (`clock`), to every channel that hears of failures of any job
//! (each channel once, about the first job of the table that uses it). The backend logs it
//! and corrects the time the daemon schedules by ([`crate::coord::Coordinator::now`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Shared;
use crate::config::AlertEvent;

/// At each wake-up of the loop: alerts a new skew, and ends the episode once it is gone.
pub(super) fn check(shared: &Arc<Shared>) {
    let Some(reason) = shared.coord.clock_skew() else {
        shared.skew_told.store(false, Ordering::Relaxed);
        return;
    };
    if shared.skew_told.swap(true, Ordering::Relaxed) {
        return;
    }
    let cfg = shared.current();
    let mut to: Vec<(String, String)> = Vec::new();
    for job in &cfg.jobs {
        for name in &job.alert {
            let hears = cfg
                .alert(name)
                .is_some_and(|ch| ch.on.contains(&AlertEvent::Failure));
            if hears && !to.iter().any(|(c, _)| c == name) {
                to.push((name.to_string(), job.name.to_string()));
            }
        }
    }
    if !to.is_empty() {
        let id = crate::execute::new_run_id();
        super::health::alert(shared, &to, &id, shared.coord.now(), "clock", &reason);
    }
}
