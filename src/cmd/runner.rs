//! A command process that runs jobs itself (`run`, `backfill`): its interrupt, log,
//! coordination backend, and the alert thread beside the work.

use std::sync::Arc;
use std::time::Duration;

use super::{Failure, connect};
use crate::alert;
use crate::config::Config;
use crate::contain::{Containment, Purpose};
use crate::coord::{Coordinator, Role};
use crate::execute::Ctx;
use crate::log::Logger;
use crate::runner::Interrupt;

/// After its job, `run` keeps delivering alerts (its own, and what earlier processes
/// spooled) for at most this long before it starts no new delivery; the one in flight then
/// ends within its channel's `timeout`, and the rest wait in the spool for the daemon or the
/// next run.
const ALERT_BUDGET: Duration = Duration::from_secs(10);

/// What a process that runs jobs itself needs: its interrupt (SIGINT, SIGTERM), its log,
/// the coordination backend and the outbox for its alerts.
pub(super) struct Runner {
    pub(super) interrupt: Interrupt,
    log: Logger,
    pub(super) coord: Arc<dyn Coordinator>,
    outbox: alert::Outbox,
    contain: Containment,
}

impl Runner {
    pub(super) fn new(cfg: &Config) -> Result<Runner, Failure> {
        let interrupt = Interrupt::on_signals(&[libc::SIGINT, libc::SIGTERM])
            .map_err(|e| Failure::usage(format!("cannot install signal handlers: {e}")))?;
        let log = Logger::for_settings(&cfg.settings, &crate::log::LogEnv::from_process());
        // Fleet mode: an ad-hoc run takes the same cluster-wide lease as the daemons' runs
        // and is recorded where every node sees it; without the database it does not run.
        let coord = connect(cfg, Role::Node)?;
        let contain =
            Containment::detect(cfg.settings.containment, Purpose::Run).map_err(Failure::config)?;
        Ok(Runner {
            interrupt,
            log,
            coord,
            outbox: alert::Outbox::new(),
            contain,
        })
    }

    fn ctx<'a>(&'a self, cfg: &'a Config) -> Ctx<'a> {
        Ctx {
            cfg,
            log: &self.log,
            coord: &*self.coord,
            outbox: &self.outbox,
            contain: &self.contain,
        }
    }

    /// Runs `work` with the alert thread beside it: the job starts at once while spooled
    /// alerts are retried, and its own alerts go out after it, outside its lock. Then the
    /// thread gets `ALERT_BUDGET` to deliver what is due.
    /// `alerting`: whether the jobs of this run have alert channels (whose `retry` alerts
    /// go out while the run goes on).
    pub(super) fn with_alerts<R>(
        &self,
        cfg: &Arc<Config>,
        alerting: bool,
        work: impl FnOnce(Ctx<'_>) -> R,
    ) -> R {
        let current = || Arc::clone(cfg);
        // Jobs without channels and nothing waiting in the spool (a common case): no thread
        // beside the job; a pass after it only if something was queued after all.
        if !alerting && self.outbox.is_idle(&cfg.settings.state_dir) {
            let r = work(self.ctx(cfg));
            if !self.outbox.is_idle(&cfg.settings.state_dir) {
                self.outbox.drain(self.budget());
                alert::serve(&self.outbox, &current, &self.log);
            }
            return r;
        }
        std::thread::scope(|s| {
            let spawned = std::thread::Builder::new()
                .name("alerts".into())
                .spawn_scoped(s, || alert::serve(&self.outbox, &current, &self.log));
            if let Err(e) = &spawned {
                let msg = format!("cannot start the alert thread: {e}; alerts stay spooled");
                self.log
                    .log(crate::log::Level::Error, "alert-spool", &[], &msg);
            }
            let r = work(self.ctx(cfg));
            self.outbox.drain(self.budget());
            if let Ok(t) = spawned {
                let _ = t.join();
            }
            r
        })
    }

    /// How long the alerts may take after the work: `ALERT_BUDGET`, or nothing new once
    /// interrupted (only the deliveries in flight end; the rest waits in the spool).
    fn budget(&self) -> Duration {
        match self.interrupt.received() {
            Some(_) => Duration::ZERO,
            None => ALERT_BUDGET,
        }
    }
}

/// Whether any job of the pipeline run rooted at `root` has an alert channel.
pub(super) fn alerting(cfg: &Config, root: &str, only: bool) -> bool {
    crate::pipeline::members(cfg, root, only)
        .iter()
        .any(|j| !j.alert.is_empty())
}
