//! `cronwarden run JOB`: one run now, through the same path the daemon uses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::{CmdResult, Failure, connect, load_or_fail, print};
use crate::alert;
use crate::config::{Config, Job};
use crate::coord::{Coordinator, Role};
use crate::execute::Ctx;
use crate::log::Logger;
use crate::pipeline::{self, Start};
use crate::runner::Interrupt;
use crate::schedule::{TimeArg, format_rfc3339};

/// The job, or a usage error that lists the known ones.
pub(super) fn find_job<'c>(cfg: &'c Config, name: &str) -> Result<&'c Job, Failure> {
    cfg.job(name).ok_or_else(|| {
        let names: Vec<&str> = cfg.jobs.iter().map(|j| j.name.as_str()).collect();
        let hint = crate::diag::suggest(name, names.iter().copied())
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        Failure::usage(format!(
            "unknown job {name:?}{hint}; the table has: {}",
            if names.is_empty() {
                "no jobs".to_string()
            } else {
                names.join(", ")
            }
        ))
    })
}

/// `--at`: an instant, or a bare date meaning that day's first scheduled instant of the job
/// (its midnight for a job without a calendar schedule).
fn scheduled_at(job: &Job, at: Option<&str>) -> Result<Timestamp, Failure> {
    let Some(text) = at else {
        return Ok(Timestamp::now());
    };
    match TimeArg::parse(text, &job.tz).map_err(Failure::usage)? {
        TimeArg::Instant(t) => Ok(t),
        TimeArg::Date(d) => {
            let midnight = TimeArg::Date(d).instant(&job.tz).map_err(Failure::usage)?;
            let first = job
                .schedule
                .as_ref()
                .filter(|s| s.expr().is_calendar())
                .and_then(|s| s.next_after(midnight - jiff::SignedDuration::from_secs(1)))
                .filter(|t| t.to_zoned(job.tz.clone()).date() == d);
            Ok(first.unwrap_or(midnight))
        }
    }
}

/// `K=V` pairs, each naming a declared parameter.
pub(super) fn parse_params(
    job: &Job,
    pairs: &[String],
) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--param {p:?}: write it as NAME=VALUE")))?;
        if !job.params.contains_key(k) {
            let declared: Vec<&str> = job.params.keys().map(String::as_str).collect();
            return Err(Failure::usage(format!(
                "--param {k}: job {:?} declares no parameter {k:?} (declared: {})",
                job.name,
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            )));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn step_line(r: &crate::record::RunRecord) -> String {
    let mut line = format!("{} {}: {}", r.job, r.run_id, r.outcome.as_str());
    if !r.attempts.is_empty() {
        line.push_str(&format!(
            " after {} attempt{}",
            r.attempts.len(),
            if r.attempts.len() == 1 { "" } else { "s" }
        ));
    }
    if let Some(reason) = &r.reason {
        line.push_str(&format!(": {reason}"));
    }
    if let Some(out) = &r.output {
        line.push_str(&format!("\n  output: {out}"));
    }
    line
}

/// After its job, `run` keeps delivering alerts (its own, and what earlier processes
/// spooled) for at most this long before it starts no new delivery; the one in flight then
/// ends within its channel's `timeout`, and the rest wait in the spool for the daemon or the
/// next run.
const ALERT_BUDGET: Duration = Duration::from_secs(10);

/// What a process that runs jobs itself needs: its interrupt (SIGINT, SIGTERM), its log,
/// the coordination backend and the outbox for its alerts.
struct Runner {
    interrupt: Interrupt,
    log: Logger,
    coord: Arc<dyn Coordinator>,
    outbox: alert::Outbox,
}

impl Runner {
    fn new(cfg: &Config) -> Result<Runner, Failure> {
        let interrupt = Interrupt::on_signals(&[libc::SIGINT, libc::SIGTERM])
            .map_err(|e| Failure::usage(format!("cannot install signal handlers: {e}")))?;
        let log = Logger::new(cfg.settings.log_file.clone(), cfg.settings.log_format);
        // Fleet mode: an ad-hoc run takes the same cluster-wide lease as the daemons' runs
        // and is recorded where every node sees it; without the database it does not run.
        let coord = connect(cfg, Role::Node)?;
        Ok(Runner {
            interrupt,
            log,
            coord,
            outbox: alert::Outbox::new(),
        })
    }

    fn ctx<'a>(&'a self, cfg: &'a Config) -> Ctx<'a> {
        Ctx {
            cfg,
            log: &self.log,
            coord: &*self.coord,
            outbox: &self.outbox,
        }
    }

    /// Runs `work` with the alert thread beside it: the job starts at once while spooled
    /// alerts are retried, and its own alerts go out after it, outside its lock. Then the
    /// thread gets `ALERT_BUDGET` to deliver what is due.
    fn with_alerts<R>(&self, cfg: &Arc<Config>, work: impl FnOnce(Ctx<'_>) -> R) -> R {
        let current = || Arc::clone(cfg);
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
            // Interrupted: only the deliveries in flight end; the rest waits in the spool.
            let budget = match self.interrupt.received() {
                Some(_) => Duration::ZERO,
                None => ALERT_BUDGET,
            };
            self.outbox.drain(budget);
            if let Ok(t) = spawned {
                let _ = t.join();
            }
            r
        })
    }
}

pub(super) fn run(
    config_path: &std::path::Path,
    name: &str,
    at: Option<&str>,
    params: &[String],
    only: bool,
) -> CmdResult {
    let cfg = Arc::new(load_or_fail(config_path)?);
    let job = find_job(&cfg, name)?;
    let scheduled = scheduled_at(job, at)?;
    let params = parse_params(job, params)?;
    let runner = Runner::new(&cfg)?;
    let start = Start {
        root: job,
        scheduled,
        params,
        only,
        trigger: "run",
    };
    let report = runner.with_alerts(&cfg, |ctx| {
        // Runs of this job whose supervisor died (kill -9 of a daemon or a `run`): recorded
        // when their group is gone, stopped when their timeout ran out.
        crate::execute::orphan::settle_job(ctx, job, &runner.interrupt);
        pipeline::run(ctx, start, &runner.interrupt)
    });
    print::errln(format!("{name} ({}):", format_rfc3339(scheduled, &job.tz)));
    for r in &report.steps {
        print::errln(format!("  {}", step_line(r)));
    }
    runner.coord.leave();
    Ok(report.exit_code)
}

/// `backfill JOB --from --to`: each scheduled instant in the range, oldest first, each a
/// full pipeline run; stops at the first failed one unless `keep_going`.
pub(super) fn backfill(
    config_path: &std::path::Path,
    name: &str,
    from: &str,
    to: &str,
    keep_going: bool,
) -> CmdResult {
    let cfg = Arc::new(load_or_fail(config_path)?);
    let job = find_job(&cfg, name)?;
    let schedule = job
        .schedule
        .as_ref()
        .filter(|s| s.expr().is_calendar())
        .ok_or_else(|| {
            Failure::usage(format!("job {name:?} has no calendar schedule to backfill"))
        })?;
    let start = match TimeArg::parse(from, &job.tz).map_err(Failure::usage)? {
        TimeArg::Instant(t) => t,
        d @ TimeArg::Date(_) => d.instant(&job.tz).map_err(Failure::usage)?,
    };
    let end = match TimeArg::parse(to, &job.tz).map_err(Failure::usage)? {
        TimeArg::Instant(t) => t,
        // A bare date means the whole day: up to the next day's midnight.
        TimeArg::Date(d) => {
            let next = d.tomorrow().map_err(|e| Failure::usage(e.to_string()))?;
            TimeArg::Date(next)
                .instant(&job.tz)
                .map_err(Failure::usage)?
                - jiff::SignedDuration::from_nanos(1)
        }
    };
    if end < start {
        return Err(Failure::usage(format!("--to {to} is before --from {from}")));
    }
    let instants: Vec<Timestamp> = schedule
        .iter_after(start - jiff::SignedDuration::from_secs(1))
        .take_while(|t| *t <= end)
        .take(100_000)
        .collect();
    if instants.is_empty() {
        print::errln(format!(
            "{name}: no scheduled instant between {from} and {to}"
        ));
        return Ok(super::exit::OK);
    }
    let runner = Runner::new(&cfg)?;
    let interrupt = &runner.interrupt;
    let (rows, code) = runner.with_alerts(&cfg, |ctx| {
        backfill_each(ctx, job, &instants, keep_going, interrupt)
    });
    print::out(super::list::render_table(
        &["SCHEDULED", "OUTCOME", "STEPS OK", "NOT OK"],
        &rows,
    ))?;
    runner.coord.leave();
    Ok(code)
}

/// One pipeline run per instant, oldest first: a row each, and the exit code.
fn backfill_each(
    ctx: Ctx<'_>,
    job: &Job,
    instants: &[Timestamp],
    keep_going: bool,
    interrupt: &Interrupt,
) -> (Vec<[String; 4]>, u8) {
    let mut rows = Vec::new();
    let mut code = super::exit::OK;
    for &t in instants {
        let start = Start {
            root: job,
            scheduled: t,
            params: BTreeMap::new(),
            only: false,
            trigger: "backfill",
        };
        let report = pipeline::run(ctx, start, interrupt);
        let ok = report
            .steps
            .iter()
            .filter(|r| r.outcome == crate::record::Outcome::Success)
            .count();
        let outcome = if report.exit_code == 0 {
            "success"
        } else {
            "failure"
        };
        rows.push([
            format_rfc3339(t, &job.tz),
            outcome.to_string(),
            format!("{ok}/{}", report.steps.len()),
            report
                .steps
                .iter()
                .filter(|r| r.outcome != crate::record::Outcome::Success)
                .map(|r| format!("{} {}", r.job, r.outcome.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
        if report.exit_code != 0 {
            code = report.exit_code;
            if !keep_going || interrupt.received().is_some() {
                break;
            }
        }
    }
    (rows, code)
}
