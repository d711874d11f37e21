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
