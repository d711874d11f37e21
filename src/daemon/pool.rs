//! The run threads: a run goes to a thread that waits for work, else to a new one. A thread
//! that had no run to take for [`IDLE_EXIT`] ends, so an idle daemon keeps none (its stack
//! pages would count in its memory).
//!
//! A thread made and ended for every run cost the daemon some twenty system calls per run:
//! the thread's clone, its signal stack mapped and unmapped, glibc's `madvise` of the dead
//! stack and the unmapping of stacks beyond its cache, and each unmapping is a TLB flush on
//! every CPU the daemon ran on. With 100 jobs due at once they were a tenth of the daemon's
//! time before the last of them started (issue 21, BENCHMARKS.md "No new file per run").
//! A thread taking a run is renamed `job NAME` (as a thread per run was named), for `top -H`
//! and `ps -L`.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::sync::lock;

/// How long a run thread with nothing to do waits for a run before it ends.
pub(super) const IDLE_EXIT: Duration = Duration::from_secs(10);

type Work = Box<dyn FnOnce() + Send>;

/// The run threads, and the runs handed to them and not taken yet.
#[derive(Default)]
pub(super) struct Pool {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, Work)>,
    /// Threads waiting for work (counted under the lock from before their wait until they
    /// woke): more runs queued than that, and a new thread is started.
    idle: usize,
}

impl Pool {
    /// Runs `work` in a thread named `name`: one waiting for work, else a new one. The error
    /// is that of starting a thread (the run is not queued then).
    pub(super) fn spawn(
        &self,
        name: String,
        work: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let mut st = lock(&self.inner.state);
        if st.queue.len() >= st.idle {
            // Every waiting thread has a run to take already: one more thread, for this run.
            drop(st);
            let inner = Arc::clone(&self.inner);
            std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    work();
                    worker(&inner);
                })
                .map(drop)
        } else {
            st.queue.push_back((name, Box::new(work)));
            drop(st);
            self.inner.ready.notify_one();
            Ok(())
        }
    }
}

/// A run thread after its first run: takes the next run handed over, or ends after
/// [`IDLE_EXIT`] without one.
fn worker(inner: &Inner) {
    loop {
        let Some((name, work)) = next(inner) else {
            return;
        };
        if let Ok(name) = std::ffi::CString::new(name) {
            // Truncated to 15 bytes by the kernel, as the name given at the thread's start.
            let _ = nix::sys::prctl::set_name(&name);
        }
        work();
    }
}

/// The next run for a waiting thread; `None` once it waited [`IDLE_EXIT`] for none.
fn next(inner: &Inner) -> Option<(String, Work)> {
    let mut st = lock(&inner.state);
    loop {
        if let Some(w) = st.queue.pop_front() {
            return Some(w);
        }
        st.idle += 1;
        let (guard, waited) = inner
            .ready
            .wait_timeout(st, IDLE_EXIT)
            .unwrap_or_else(|p| p.into_inner());
        st = guard;
        st.idle -= 1;
        if waited.timed_out() && st.queue.is_empty() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn thread_name() -> String {
        std::fs::read_to_string("/proc/thread-self/comm")
            .expect("comm")
            .trim()
            .to_string()
    }

    #[test]
    fn a_run_goes_to_a_waiting_thread_and_runs_at_once_never_behind_another() {
        let pool = Pool::default();
        let (tx, rx) = mpsc::channel();
        let got = || rx.recv_timeout(Duration::from_secs(30)).expect("a run ran");
        let waiting = |pool: &Pool| {
            while lock(&pool.inner.state).idle == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let t = tx.clone();
        pool.spawn("job first".into(), move || {
            let _ = t.send((thread_name(), std::thread::current().id()));
        })
        .expect("spawn");
        let (name, first) = got();
        assert_eq!(name, "job first");
        // One run handed over while the thread waits for work: that thread takes it (no
        // thread is started while one waits), renamed for it.
        waiting(&pool);
        let t = tx.clone();
        pool.spawn("job again".into(), move || {
            let _ = t.send((thread_name(), std::thread::current().id()));
        })
        .expect("spawn");
        assert_eq!(got(), ("job again".to_string(), first));
        // Two runs at once, the first of which does not end until the second has run: the
        // second must not queue behind it (then neither would end, and `got` fails).
        waiting(&pool);
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let t = tx.clone();
        pool.spawn("job blocked".into(), move || {
            let _ = go_rx.recv();
            let _ = t.send((thread_name(), std::thread::current().id()));
        })
        .expect("spawn");
        let t = tx.clone();
        pool.spawn("job second".into(), move || {
            let _ = t.send((thread_name(), std::thread::current().id()));
            let _ = go_tx.send(());
        })
        .expect("spawn");
        let (name_a, _) = got();
        let (name_b, _) = got();
        assert_eq!(
            (name_a.as_str(), name_b.as_str()),
            ("job second", "job blocked")
        );
    }
}
