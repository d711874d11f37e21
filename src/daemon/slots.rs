//! Concurrency bookkeeping of the daemon: the `max_concurrent` slots, granted first come,
//! first served, and the count of run threads still working (waited for at shutdown).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::sync::lock;

/// A first-come, first-served counting semaphore: `max_concurrent` slots, granted in the
/// order they were asked for. A released slot is handed straight to the first waiter, which
/// alone is woken (no thundering herd when 100 runs wait).
pub(super) struct Slots {
    state: Mutex<SlotState>,
}

struct SlotState {
    free: usize,
    waiters: std::collections::VecDeque<Arc<Waiter>>,
    closed: bool,
}

#[derive(Default)]
struct Waiter {
    /// Set when the slot was handed over (true) or the daemon is closing (false).
    granted: Mutex<Option<bool>>,
    cv: Condvar,
}

impl Waiter {
    fn wake(&self, granted: bool) {
        *lock(&self.granted) = Some(granted);
        self.cv.notify_one();
    }
}

impl Slots {
    pub(super) fn new(n: usize) -> Slots {
        Slots {
            state: Mutex::new(SlotState {
                free: n,
                waiters: std::collections::VecDeque::new(),
                closed: false,
            }),
        }
    }

    /// Waits for a slot; `false` when the daemon is shutting down.
    pub(super) fn acquire(&self) -> bool {
        let me = {
            let mut st = lock(&self.state);
            if st.closed {
                return false;
            }
            if st.free > 0 && st.waiters.is_empty() {
                st.free -= 1;
                return true;
            }
            let w = Arc::new(Waiter::default());
            st.waiters.push_back(Arc::clone(&w));
            w
        };
        let mut g = lock(&me.granted);
        loop {
            if let Some(granted) = *g {
                return granted;
            }
            g = match me.cv.wait(g) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
        }
    }

    pub(super) fn release(&self) {
        let mut st = lock(&self.state);
        match st.waiters.pop_front() {
            Some(w) if !st.closed => w.wake(true),
            Some(w) => {
                w.wake(false);
                st.free += 1;
            }
            None => st.free += 1,
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    pub(super) fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        for w in st.waiters.drain(..) {
            w.wake(false);
        }
    }
}

/// Threads still working (waiting or running), to wait for at shutdown.
#[derive(Default)]
pub(super) struct Active {
    count: Mutex<usize>,
    cv: Condvar,
}

impl Active {
    pub(super) fn enter(&self) {
        *lock(&self.count) += 1;
    }

    /// Whether no thread is working.
    pub(super) fn none(&self) -> bool {
        *lock(&self.count) == 0
    }

    pub(super) fn leave(&self) {
        let mut c = lock(&self.count);
        *c = c.saturating_sub(1);
        self.cv.notify_all();
    }

    /// Waits until nothing is active or `deadline`; true when nothing is.
    pub(super) fn wait_idle(&self, deadline: Instant) -> bool {
        let mut c = lock(&self.count);
        while *c > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = match self.cv.wait_timeout(c, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}
