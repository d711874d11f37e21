//! `cronwarden health`: whether the daemon does its work (its loop alive, no job stale, no
//! job's failure streak at or above its threshold), for a container HEALTHCHECK or a
//! monitoring agent. Asks the daemon through its control socket; when none answers, works
//! the jobs' health out from the state directory (in fleet mode, the fleet's history) and
//! adds why no daemon answered as a reason. Exit 0 healthy, 1 unhealthy; one line per
//! reason (`--json`: the whole answer, with every job's streak and stale deadline).

use std::path::Path;

use jiff::Timestamp;

use super::{CmdResult, Failure, connect, exit, load_or_fail, print};
use crate::config::Config;
use crate::control::{Health, JobHealth, Request, Response};
use crate::coord::{Role, standing};

/// `health [--json]`.
pub(super) fn health(path: &Path, json: bool) -> CmdResult {
    let cfg = load_or_fail(path)?;
    let req = Request {
        cmd: "health".into(),
        ..Default::default()
    };
    let h = match crate::control::request(&cfg.settings, &req) {
        Ok(Response {
            ok: true,
            health: Some(h),
            ..
        }) => h,
        Ok(r) => without_daemon(
            &cfg,
            format!(
                "the daemon did not tell its health: {}",
                r.error.as_deref().unwrap_or("an older version?")
            ),
        ),
        Err(f) => without_daemon(&cfg, f.message),
    };
    if json {
        let text = serde_json::to_string_pretty(&h).map_err(|e| Failure::usage(e.to_string()))?;
        print::out(format!("{text}\n"))?;
    } else if h.healthy {
        print::out("healthy\n")?;
    } else {
        print::out(
            h.reasons
                .iter()
                .map(|r| format!("{r}\n"))
                .collect::<String>(),
        )?;
    }
    Ok(if h.healthy {
        exit::OK
    } else {
        exit::JOB_FAILED
    })
}

/// The jobs' health from their histories, with `why` (no daemon answered) as the first
/// reason: without a daemon nothing runs by itself, so this is never healthy.
fn without_daemon(cfg: &Config, why: String) -> Health {
    let mut reasons = vec![why];
    let now = Timestamp::now();
    let coord = match connect(cfg, Role::Client) {
        Ok(c) => c,
        Err(e) => {
            reasons.push(e.message);
            return Health::new(reasons, Vec::new());
        }
    };
    let mut jobs: Vec<JobHealth> = Vec::new();
    for job in cfg.jobs.iter().filter(|j| j.enabled) {
        match standing::from_history(&*coord, &cfg.settings, &job.name, None) {
            Ok(read) => {
                let kept = standing::read_watched(&cfg.settings.state_dir, &job.name);
                let first_seen = kept.first_seen.or(read.oldest);
                jobs.push(standing::job_health(
                    cfg,
                    job,
                    &read.standing,
                    first_seen,
                    now,
                ));
            }
            Err(e) => reasons.push(format!("{}: cannot read its history: {e}", job.name)),
        }
    }
    jobs.sort_by(|a, b| a.job.cmp(&b.job));
    Health::new(reasons, jobs)
}
