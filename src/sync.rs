//! Locking helpers shared by every thread of the process.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data over even if a thread panicked while holding it: the state
/// behind these locks (counters, sets of names, connection slots) stays consistent at every
/// step, so a poisoned lock must not take the daemon down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Runs `f`, then `done`, told whether `f` panicked: the bookkeeping around a run (the job
/// no longer waiting, the daemon no longer busy) happens however the run ended. A panic is
/// a bug; its message goes to standard error as always, and the thread lives on.
pub(crate) fn finally<F: FnOnce(), D: FnOnce(bool)>(f: F, done: D) {
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    done(panicked);
}

#[cfg(test)]
mod tests {
    use super::finally;

    #[test]
    fn the_bookkeeping_after_a_run_happens_when_the_run_panics() {
        let mut told = Vec::new();
        finally(|| {}, |p| told.push(p));
        finally(|| panic!("a bug in a run"), |p| told.push(p));
        assert_eq!(told, [false, true]);
    }
}
