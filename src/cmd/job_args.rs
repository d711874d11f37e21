//! The arguments that name a job and its run: JOB (with a hint when it is unknown),
//! `--at` and `--param K=V`.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::Failure;
use crate::config::{Config, Job};
use crate::schedule::TimeArg;

/// The job, or a usage error that lists the known ones.
/// `--tag T`: a usage error when no job of the table has the tag.
pub(super) fn check_tag(cfg: &Config, tag: Option<&str>) -> Result<(), Failure> {
    let Some(t) = tag else {
        return Ok(());
    };
    if cfg.jobs.iter().any(|j| j.has_tag(t)) {
        return Ok(());
    }
    let mut all: Vec<&str> = cfg
        .jobs
        .iter()
        .flat_map(|j| j.tags())
        .map(String::as_str)
        .collect();
    all.sort_unstable();
    all.dedup();
    Err(Failure::usage(format!(
        "no job has the tag {t:?}; the table's tags: {}",
        if all.is_empty() {
            "none".to_string()
        } else {
            all.join(", ")
        }
    )))
}

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
pub(super) fn scheduled_at(job: &Job, at: Option<&str>) -> Result<Timestamp, Failure> {
    let Some(text) = at else {
        return Ok(Timestamp::now());
    };
    match TimeArg::parse(text, job.tz()).map_err(Failure::usage)? {
        TimeArg::Instant(t) => Ok(t),
        TimeArg::Date(d) => {
            let midnight = TimeArg::Date(d).instant(job.tz()).map_err(Failure::usage)?;
            let first = job
                .schedule
                .as_ref()
                .filter(|s| s.expr().is_calendar())
                .and_then(|s| s.next_after(midnight - jiff::SignedDuration::from_secs(1)))
                .filter(|t| t.to_zoned(job.tz().clone()).date() == d);
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
        if !job.params().contains_key(k) {
            let declared: Vec<&str> = job.params().keys().map(String::as_str).collect();
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
