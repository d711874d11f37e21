//! The alert spool: a delivery that failed is written to `state_dir/spool/` and retried
//! with backoff by whichever cronwarden process runs jobs (the daemon, or the next `run`),
//! until it goes out, fails for good, or is older than `alert_spool_max_age`.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Alerts;
use super::deliver::deliver;
use super::message::Alert;
use crate::config::AlertChannel;
use crate::log::{Level, Logger};

/// A spooled alert waiting for its channel.
#[derive(Debug, Serialize, Deserialize)]
struct Spooled {
    channel: String,
    alert: Alert,
    created: Timestamp,
    tries: u32,
    next_try: Timestamp,
    last_error: String,
}

fn spool_dir(state: &Path) -> PathBuf {
    state.join("spool")
}

fn spool_file(state: &Path, s: &Spooled) -> PathBuf {
    spool_dir(state).join(format!(
        "{}.{}.{}.json",
        s.alert.run.run_id, s.channel, s.alert.event
    ))
}

fn write_spooled(state: &Path, s: &Spooled, log: &Logger) {
    let written = serde_json::to_vec(s)
        .map_err(std::io::Error::other)
        .and_then(|b| crate::files::write_atomic(&spool_file(state, s), &b));
    if let Err(e) = written {
        log.log(
            Level::Error,
            "alert-lost",
            &[("job", s.alert.job.clone()), ("channel", s.channel.clone())],
            &format!("cannot write the alert spool: {e}: {}", s.alert.subject()),
        );
    }
}

/// How many alerts wait in the spool.
pub(crate) fn spool_size(state: &Path) -> usize {
    std::fs::read_dir(spool_dir(state))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

impl Alerts<'_> {
    /// Delivers an alert, or spools it; returns the failure reason, if any.
    pub(super) fn send_or_spool(&self, ch: &AlertChannel, alert: Alert) -> Option<String> {
        let (cfg, log) = (self.cfg, self.log);
        let fields = [
            ("job", alert.job.clone()),
            ("channel", ch.name.clone()),
            ("event", alert.event.clone()),
            ("run_id", alert.run.run_id.clone()),
        ];
        match deliver(ch, &alert, self.stats) {
            Ok(()) => {
                log.log(Level::Info, "alert-sent", &fields, &alert.subject());
                None
            }
            Err(e) if e.permanent => {
                log.log(
                    Level::Error,
                    "alert-failed",
                    &fields,
                    &format!("{} (not retried)", e.reason),
                );
                Some(e.reason)
            }
            Err(e) => {
                log.log(
                    Level::Warn,
                    "alert-spooled",
                    &fields,
                    &format!("{}; will retry", e.reason),
                );
                let now = Timestamp::now();
                let s = Spooled {
                    channel: ch.name.clone(),
                    alert,
                    created: now,
                    tries: 1,
                    next_try: now + jiff::SignedDuration::from_secs(5),
                    last_error: e.reason.clone(),
                };
                write_spooled(&cfg.settings.state_dir, &s, log);
                Some(e.reason)
            }
        }
    }

    /// Retries the spooled alerts that are due; returns (delivered, failed attempts).
    pub(crate) fn flush_spool(&self, force: bool) -> (usize, usize) {
        let (cfg, log) = (self.cfg, self.log);
        let state = &cfg.settings.state_dir;
        let Ok(dir) = std::fs::read_dir(spool_dir(state)) else {
            return (0, 0);
        };
        let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        let now = Timestamp::now();
        let (mut sent, mut failed) = (0, 0);
        for path in files {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(mut s) = serde_json::from_slice::<Spooled>(&bytes) else {
                continue;
            };
            if !force && s.next_try > now {
                continue;
            }
            let fields = [
                ("job", s.alert.job.clone()),
                ("channel", s.channel.clone()),
                ("event", s.alert.event.clone()),
            ];
            let Some(ch) = cfg.alert(&s.channel) else {
                log.log(
                    Level::Error,
                    "alert-dropped",
                    &fields,
                    "the channel is no longer in the table",
                );
                let _ = std::fs::remove_file(&path);
                continue;
            };
            match deliver(ch, &s.alert, self.stats) {
                Ok(()) => {
                    sent += 1;
                    log.log(
                        Level::Info,
                        "alert-sent",
                        &fields,
                        &format!("from the spool: {}", s.alert.subject()),
                    );
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => {
                    failed += 1;
                    let age = now.duration_since(s.created);
                    if e.permanent
                        || age
                            > jiff::SignedDuration::try_from(cfg.settings.alert_spool_max_age)
                                .unwrap_or_default()
                    {
                        log.log(
                            Level::Error,
                            "alert-dropped",
                            &fields,
                            &format!("{}; giving up after {} tries", e.reason, s.tries),
                        );
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    s.tries += 1;
                    let backoff = 5u64.saturating_mul(1 << s.tries.min(10)).min(3600);
                    s.next_try = now + jiff::SignedDuration::from_secs(backoff as i64);
                    s.last_error = e.reason;
                    write_spooled(state, &s, log);
                }
            }
        }
        (sent, failed)
    }
}
