//! The attempts of one run: each attempt started, supervised and judged (exit code, then
//! `verify`), failed ones retried with backoff (and the `retry` alerts sent), until one
//! succeeds, the attempts run out, or the run is interrupted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;

use super::marker::RunMarker;
use super::spec::{self, Identity};
use super::{Ctx, RunFacts};
use crate::contain::Scope;
use crate::coord::Exclusion;
use crate::lock::Holder;
use crate::log::Level;
use crate::output::{Output, Stream};
use crate::policy;
use crate::record::{AttemptRecord, Outcome};
use crate::runner::{self, AttemptResult, Exit, Interrupt};
use crate::template;
use crate::units::format_duration;

/// The attempts of one run and what they share.
pub(super) struct Attempts<'r, 'a> {
    pub(super) ctx: Ctx<'a>,
    pub(super) facts: &'r RunFacts<'r>,
    pub(super) fields: &'r [(&'static str, String)],
    pub(super) exclusion: Option<&'r mut Exclusion>,
    pub(super) holder: Holder,
    pub(super) marker: &'r mut RunMarker,
    pub(super) out: &'r mut Output,
    pub(super) scope: &'r mut Scope<'a>,
    pub(super) interrupt: &'r Interrupt,
}

impl Attempts<'_, '_> {
    /// Runs the attempts; returns their records, the outcome and the last failure reason.
    pub(super) fn run(&mut self) -> (Vec<AttemptRecord>, Outcome, Option<String>) {
        let req = self.facts.req;
        let job = req.job;
        let mut params = job.params.clone();
        params.extend(req.params.clone());
        let who = spec::identity(job);
        let first = req.first_attempt.max(1);
        let max_attempts = job.retry.retries.saturating_add(1);
        let mut attempts = Vec::new();
        let mut reason = None;
        for n in first..=max_attempts {
            if n > first {
                self.ctx.coord.attempt_started(self.facts.run_id, n);
            }
            let mut af = self.fields.to_vec();
            af.push(("attempt", n.to_string()));
            self.ctx.log.log(Level::Info, "attempt-start", &af, "");
            let (res, why) = self.attempt(n, &who, &params);
            self.attempt_ended();
            let rec = attempt_record(n, res.as_ref(), why.clone());
            self.marker.attempt_ended(rec.clone());
            attempts.push(rec);
            self.log_end(&af, res.as_ref(), why.as_deref());
            let Some(w) = why else {
                return (attempts, Outcome::Success, None);
            };
            reason = Some(w);
            if let Some(by) = self.replaced(&af) {
                return (attempts, Outcome::Interrupted, Some(by));
            }
            if self.interrupt.received().is_some() {
                return (attempts, Outcome::Interrupted, reason);
            }
            if n < max_attempts {
                match self.wait_to_retry(n, &af, &attempts, &reason) {
                    Waited::Over => {}
                    Waited::Interrupted => return (attempts, Outcome::Interrupted, reason),
                    Waited::Replaced(by) => return (attempts, Outcome::Interrupted, Some(by)),
                }
            }
        }
        (attempts, Outcome::Failure, reason)
    }

    /// The attempt's process group is over: the lock file stops naming it, so nothing
    /// signals a group that no longer is this run's (`overlap = "replace"`).
    fn attempt_ended(&mut self) {
        if self.holder.pgid.take().is_some()
            && let Some(x) = self.exclusion.as_mut()
        {
            x.lock.set_holder(&self.holder);
        }
    }

    /// "replaced by RUN_ID" when a run with `overlap = "replace"` replaced this one: it
    /// ends for good (no retry; recorded as interrupted, alerted as no failure).
    fn replaced(&self, af: &[(&'static str, String)]) -> Option<String> {
        let x = self.exclusion.as_ref()?;
        let by = x.replaced.replaced_by()?;
        x.replaced.clear();
        let why = format!("replaced by {by}");
        let msg = format!("{why}: this run ends here, without retrying");
        self.ctx.log.log(Level::Warn, "replaced", af, &msg);
        Some(why)
    }

    /// One attempt: its result (none when it could not be set up) and why it failed.
    fn attempt(
        &mut self,
        n: u32,
        who: &Result<Identity, String>,
        params: &BTreeMap<String, String>,
    ) -> (Option<AttemptResult>, Option<String>) {
        let req = self.facts.req;
        let job = req.job;
        let who = match who {
            Ok(w) => w,
            Err(e) => return (None, Some(e.clone())),
        };
        let v = spec::vars(job, req.scheduled, self.facts.run_id, n, params);
        let lock_fd = self.exclusion.as_ref().map(|x| x.lock.raw_fd());
        let mut spec = spec::attempt_spec(job, who, &v, params, lock_fd);
        spec.oom_score_adj = self.ctx.contain.job_oom_score_adj();
        if n > 1 {
            let note = format!("--- cronwarden: attempt {n} ---\n");
            self.out.write(Stream::Stderr, note.as_bytes());
        }
        let (coord, holder, exclusion) = (self.ctx.coord, &mut self.holder, &mut self.exclusion);
        let marker = &mut *self.marker;
        self.scope.begin(n);
        let cgroup = self.scope.cgroup_dir().map(std::path::Path::to_path_buf);
        let scope = Some(&mut *self.scope);
        let res = runner::run_attempt_with(&spec, scope, self.out, self.interrupt, &mut |pid| {
            holder.pgid = Some(pid as i32);
            if let Some(x) = exclusion.as_mut() {
                x.lock.set_holder(holder);
                if let Some(g) = &x.guard {
                    g.set_pgid(pid as i32);
                }
            }
            coord.process_started(pid as i32);
            marker.attempt_started(pid as i32, n, job.timeout, job.kill_grace, cgroup.clone());
        });
        self.scope.end();
        if let Some(pid) = res.pid {
            coord.process_ended(pid as i32);
        }
        let mut why = policy::exit_failure(&res, &job.success_codes, spec.timeout);
        if res.oom_killed && why.is_some() {
            let peak = res.usage.peak_memory_bytes;
            why = Some(crate::contain::limits::oom_reason(&job.limits, peak));
        }
        if why.is_none()
            && let Some(ver) = &job.verify
        {
            let files: Vec<String> = ver.files.iter().map(|p| template::render(p, &v)).collect();
            let started_at = SystemTime::from(res.started);
            let problems = policy::verify(&files, ver.min_size, ver.fresh, started_at);
            if !problems.is_empty() {
                why = Some(format!("verify: {}", problems.join("; ")));
            }
        }
        (Some(res), why)
    }

    fn log_end(
        &self,
        af: &[(&'static str, String)],
        res: Option<&AttemptResult>,
        why: Option<&str>,
    ) {
        let mut ef = af.to_vec();
        if let Some(r) = res {
            ef.push(("duration", format!("{:.3}s", r.duration.as_secs_f64())));
            match &r.exit {
                Exit::Code(c) => ef.push(("exit", c.to_string())),
                Exit::Signal(s) => ef.push(("signal", runner::signal_name(*s))),
                Exit::NotStarted(_) => {}
            }
        }
        match why {
            None => self.ctx.log.log(Level::Info, "attempt-end", &ef, "success"),
            Some(w) => {
                let msg = format!("failed: {w}");
                self.ctx.log.log(Level::Warn, "attempt-end", &ef, &msg);
            }
        }
    }

    /// Tells the `retry` channels, then waits for the backoff (looking for a run that
    /// replaces this one a few times a second).
    fn wait_to_retry(
        &self,
        n: u32,
        af: &[(&'static str, String)],
        attempts: &[AttemptRecord],
        reason: &Option<String>,
    ) -> Waited {
        let job = self.facts.req.job;
        let so_far = self
            .facts
            .record(Outcome::Failure, reason.clone(), attempts.to_vec(), None);
        let tails = (self.out.stdout.bytes(), self.out.stderr.bytes());
        self.ctx
            .alerts()
            .on_retry(job, &so_far, (&tails.0, &tails.1));
        let delay = policy::retry_delay(&job.retry, n, policy::random01());
        let wait = format_duration(Duration::from_millis(delay.as_millis() as u64));
        let msg = format!("attempt {} in {wait}", n + 1);
        self.ctx.log.log(Level::Info, "retry-wait", af, &msg);
        let until = Instant::now() + delay;
        loop {
            if let Some(by) = self.replaced(af) {
                return Waited::Replaced(by);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::Over;
            }
            // Only a run that holds the job's lock can be replaced.
            let slice = match self.exclusion {
                Some(_) => left.min(REPLACE_POLL),
                None => left,
            };
            if self.interrupt.sleep(slice).is_some() {
                return Waited::Interrupted;
            }
        }
    }
}

/// How often a run waiting to retry looks whether another run replaced it.
const REPLACE_POLL: Duration = Duration::from_millis(200);

/// How the wait before a retry ended.
enum Waited {
    Over,
    Interrupted,
    /// "replaced by RUN_ID".
    Replaced(String),
}

fn attempt_record(n: u32, res: Option<&AttemptResult>, reason: Option<String>) -> AttemptRecord {
    AttemptRecord {
        attempt: n,
        started: res.map_or(Timestamp::now(), |r| r.started).to_string(),
        duration_ms: res.map_or(0, |r| r.duration.as_millis() as u64),
        exit_code: res.and_then(|r| match r.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        }),
        signal: res.and_then(|r| match r.exit {
            Exit::Signal(s) => Some(s),
            _ => None,
        }),
        timed_out: res.is_some_and(|r| r.timed_out),
        reason,
        usage: res.map(|r| r.usage.clone()).unwrap_or_default(),
    }
}
