//! What a request reads: each job's status as `status` builds it (`coord::status`), and its
//! retained runs since an instant, never more than the history keeps ([`MAX_RUNS`] at most
//! per job when `history_keep = 0` keeps everything).

use jiff::Timestamp;

use super::{Query, Reply, Source, text};
use crate::config::Config;
use crate::coord::Coordinator;
use crate::coord::status::{Health, JobStatus, job_status, json_value};
use crate::exit::Failure;
use crate::record::RunRecord;

/// The most runs of one job a request reads.
pub(crate) const MAX_RUNS: usize = 5000;

/// One job on the page: its status, its depth in its pipeline tree, and its runs (oldest
/// first) that ended after the page's window began.
pub(crate) struct Row {
    pub(crate) status: JobStatus,
    pub(crate) depth: usize,
    pub(crate) runs: Vec<RunRecord>,
    /// Its newest runs that ran (at most [`TREND`]), oldest first, window or not.
    pub(crate) trend: Vec<RunRecord>,
}

/// How many runs a duration trend shows.
pub(crate) const TREND: usize = 30;

/// What the page draws.
pub(crate) struct Snapshot {
    pub(crate) now: Timestamp,
    pub(crate) rows: Vec<Row>,
    pub(crate) health: Health,
    /// Fleet mode: this node's name.
    pub(crate) node: Option<String>,
    /// Fleet mode: the fleet's nodes, as `status --nodes` reads them.
    pub(crate) nodes: Vec<crate::coord::NodeInfo>,
}

fn failed(f: Failure) -> Reply {
    text("500 Internal Server Error", f.message)
}

/// How many of a job's newest runs a request reads.
fn keep(cfg: &Config) -> usize {
    match cfg.settings.history_keep {
        0 => MAX_RUNS,
        n => n.min(MAX_RUNS),
    }
}

/// Every job's status, in the order of the pipeline trees, with its depth.
fn statuses(
    coord: &dyn Coordinator,
    cfg: &Config,
    now: Timestamp,
) -> Result<Vec<(JobStatus, usize)>, Reply> {
    let order = cfg.tree_order();
    let jobs: Vec<&crate::config::Job> = order.iter().map(|(j, _)| *j).collect();
    let mut running = coord.running(&cfg.settings, &jobs).map_err(failed)?;
    let paused = coord.paused(&cfg.settings).map_err(failed)?;
    order
        .iter()
        .map(|(job, depth)| {
            job_status(cfg, coord, job, now, &paused, &mut running)
                .map(|s| (s, *depth))
                .map_err(failed)
        })
        .collect()
}

/// The retained runs of `job` (oldest first) that ended at or after `since`.
pub(crate) fn runs_since(
    coord: &dyn Coordinator,
    cfg: &Config,
    job: &str,
    since: Option<Timestamp>,
) -> Result<Vec<RunRecord>, Reply> {
    let runs = coord
        .history(&cfg.settings, job, keep(cfg))
        .map_err(failed)?;
    Ok(match since {
        Some(since) => in_window(runs, since),
        None => runs,
    })
}

/// The runs that ended at or after `since`.
fn in_window(mut runs: Vec<RunRecord>, since: Timestamp) -> Vec<RunRecord> {
    runs.retain(|r| {
        let end = r.ended.parse::<Timestamp>().ok();
        let start = r.started.parse::<Timestamp>().ok();
        end.or(start).is_none_or(|t| t >= since)
    });
    runs
}

/// The page's data: every job, with its runs since `since`.
pub(crate) fn snapshot(
    src: &dyn Source,
    cfg: &Config,
    since: Timestamp,
) -> Result<Snapshot, Reply> {
    let coord = src.coord();
    let now = Timestamp::now();
    let rows = statuses(&*coord, cfg, now)?
        .into_iter()
        .map(|(status, depth)| {
            let all = runs_since(&*coord, cfg, &status.name, None)?;
            let ran: Vec<&RunRecord> = all.iter().filter(|r| !r.attempts.is_empty()).collect();
            let trend = ran[ran.len().saturating_sub(TREND)..]
                .iter()
                .map(|r| (*r).clone())
                .collect();
            let runs = in_window(all, since);
            Ok(Row {
                status,
                depth,
                runs,
                trend,
            })
        })
        .collect::<Result<_, Reply>>()?;
    Ok(Snapshot {
        now,
        rows,
        health: src.health(),
        node: coord.node().map(str::to_string),
        nodes: coord.nodes(&cfg.settings).map_err(failed)?,
    })
}

/// `/api/status`: what `status --json` prints (the daemon answering, so it runs).
pub(crate) fn status(src: &dyn Source, cfg: &Config) -> Result<serde_json::Value, Reply> {
    let coord = src.coord();
    let all: Vec<JobStatus> = statuses(&*coord, cfg, Timestamp::now())?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let mut v = json_value(&all, Some(true), &src.health());
    if let Some(jobs) = v.as_array_mut() {
        for j in jobs {
            hide_output(cfg, &mut j["last_run"]);
        }
    }
    Ok(v)
}

/// A run's output is shown only with `status_page_output = true` (it may hold secrets).
fn hide_output(cfg: &Config, run: &mut serde_json::Value) {
    if !cfg.settings.status_page.output
        && let Some(o) = run.as_object_mut()
    {
        o.remove("output");
    }
}

/// `since=`: an RFC 3339 instant, or a duration back from now (`24h`).
fn parse_since(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let d = crate::units::parse_duration(s).map_err(|e| {
        format!("since={s:?}: neither an RFC 3339 instant nor a duration back from now ({e})")
    })?;
    let d = jiff::SignedDuration::try_from(d).map_err(|e| format!("since={s:?}: {e}"))?;
    now.checked_sub(d)
        .map_err(|_| format!("since={s:?}: too far back"))
}

/// `/api/runs?job=NAME&since=WHEN`: the retained runs of the job (of every job without
/// `job`), as `history --json` prints them, oldest first (by start).
pub(crate) fn runs_json(
    src: &dyn Source,
    cfg: &Config,
    q: &Query,
) -> Result<serde_json::Value, Reply> {
    let since = match q.get("since").filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_since(s, Timestamp::now()).map_err(|e| text("400 Bad Request", e))?),
        None => None,
    };
    let jobs: Vec<&str> = match q.get("job").filter(|j| !j.is_empty()) {
        Some(name) => match cfg.job(name) {
            Some(j) => vec![j.name.as_str()],
            None => {
                return Err(text(
                    "404 Not Found",
                    format!("no job {name:?} in the table"),
                ));
            }
        },
        None => cfg.jobs.iter().map(|j| j.name.as_str()).collect(),
    };
    let coord = src.coord();
    let mut all = Vec::new();
    for job in jobs {
        all.extend(runs_since(&*coord, cfg, job, since)?);
    }
    all.sort_by_key(|r| r.started.parse::<Timestamp>().ok());
    let mut v =
        serde_json::to_value(&all).map_err(|e| text("500 Internal Server Error", e.to_string()))?;
    if let Some(runs) = v.as_array_mut() {
        for r in runs {
            hide_output(cfg, r);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_an_instant_or_a_duration_back() {
        let now: Timestamp = "2026-01-02T00:00:00Z".parse().expect("instant");
        assert_eq!(
            parse_since("24h", now).map(|t| t.to_string()),
            Ok("2026-01-01T00:00:00Z".to_string())
        );
        assert_eq!(
            parse_since("2025-12-31T10:00:00Z", now).map(|t| t.to_string()),
            Ok("2025-12-31T10:00:00Z".to_string())
        );
        let e = parse_since("yesterday", now).expect_err("not a time");
        assert!(e.starts_with("since=\"yesterday\": neither"), "{e}");
    }
}
