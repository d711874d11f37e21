//! The attempts of one run: each attempt started, supervised and judged (exit code and
//! `warning_codes`, then `min_duration`, `verify` and its ratios), failed ones retried with
//! backoff (and the `retry` alerts sent) when `retry_on` and the retry codes allow, until
//! one ends well, the attempts run out, or the run is interrupted. A run still going after
//! its `warn_after` is told `slow`, once, from the attempt's supervision loop or the wait
//! before a retry (no timer thread).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;

use super::marker::RunMarker;
use super::spec::{self, Identity};
use super::{Ctx, RunFacts};
use super::{credentials, result_file};
use crate::config::{RetryOn, Verify};
use crate::contain::Scope;
use crate::coord::Exclusion;
use crate::lock::Holder;
use crate::log::Level;
use crate::output::{Output, Stream};
use crate::policy::{self, Judged};
use crate::record::{AttemptRecord, Outcome, RunRecord};
use crate::runner::{self, AttemptResult, Exit, Interrupt};
use crate::template;
use crate::units::format_duration;

/// How many of the job's newest runs are read for its last good run and usual duration.
const LOOKBACK: usize = 1000;

/// A run's log fields.
type Fields = [(&'static str, String)];

/// What the run's expectations found, for its record, and the job's history they are
/// judged against.
#[derive(Default)]
pub(super) struct Findings {
    /// The expectations that fired (`RunFacts::fired`), each once, in the order they did.
    pub(super) fired: Vec<String>,
    /// The sizes of the files the last verified attempt found.
    pub(super) verified_sizes: BTreeMap<String, u64>,
    /// What the run wrote to its `CRONWARDEN_RESULT_FILE`.
    pub(super) result: Option<String>,
    /// The job's newest runs, oldest first (read once, when first needed).
    history: Option<Vec<RunRecord>>,
}

impl Findings {
    fn fire(&mut self, what: &str) {
        if !self.has_fired(what) {
            self.fired.push(what.to_string());
        }
    }

    fn has_fired(&self, what: &str) -> bool {
        self.fired.iter().any(|f| f == what)
    }

    /// The job's newest runs through the coordination backend (the fleet's history in fleet
    /// mode); a history that cannot be read is logged and reads as empty.
    fn history(&mut self, ctx: Ctx<'_>, job: &str, f: &Fields) -> &[RunRecord] {
        self.history.get_or_insert_with(|| {
            match ctx.coord.history(&ctx.cfg.settings, job, LOOKBACK) {
                Ok(h) => h,
                Err(e) => {
                    let msg = format!("reading the job's history: {e}");
                    ctx.log.log(Level::Warn, "history", f, &msg);
                    Vec::new()
                }
            }
        })
    }
}

/// The attempts of one run and what they share.
pub(super) struct Attempts<'r, 'a> {
    pub(super) ctx: Ctx<'a>,
    pub(super) facts: &'r RunFacts<'r>,
    pub(super) fields: &'r [(&'static str, String)],
    pub(super) exclusion: Option<&'r mut Exclusion>,
    pub(super) holder: Holder,
    pub(super) marker: &'r mut RunMarker,
    pub(super) out: &'r mut Output<'a>,
    pub(super) scope: &'r mut Scope<'a>,
    pub(super) interrupt: &'r Interrupt,
    /// When the run started (`warn_after` counts from it).
    pub(super) started: Instant,
    pub(super) found: Findings,
}

impl Attempts<'_, '_> {
    /// Runs the attempts; returns their records, the outcome and its reason (why the run
    /// failed, or which warning it ended with). What fired is left in `found`.
    /// `who`: the job's identity ([`spec::identity`]).
    pub(super) fn run(
        &mut self,
        who: Result<Identity, String>,
    ) -> (Vec<AttemptRecord>, Outcome, Option<String>) {
        let job = self.facts.req.job;
        // The run's credentials and result file stay until its last attempt is over (they
        // are dropped when this returns, whatever the outcome).
        let (mut staged, mut result) = (None, None);
        let who = who.and_then(|mut w| {
            let (lock_dir, run_id) = (&self.ctx.cfg.settings.lock_dir, self.facts.run_id);
            staged = credentials::stage(lock_dir, run_id, &job.credentials, w.owner())?;
            w.cred_dir = staged.as_ref().map(|s| s.dir.clone());
            // Without a result file the run goes on (logged), without the variable: only
            // the steps after it would miss what it could have left them.
            match result_file::create(lock_dir, run_id, w.owner()) {
                Ok(file) => {
                    w.result_file = Some(file.path.clone());
                    result = Some(file);
                }
                Err(e) => self.ctx.log.log(Level::Warn, "result", self.fields, &e),
            }
            Ok(w)
        });
        let (attempts, mut outcome, mut reason) = self.attempts(&who);
        match result.as_ref().map(result_file::ResultFile::read) {
            Some(Ok(text)) => self.found.result = text,
            Some(Err(e)) if outcome.ended_well() => {
                outcome = Outcome::Failure;
                reason = Some(e);
            }
            _ => {}
        }
        (attempts, outcome, reason)
    }

    /// The attempts of the run, with retries: their records, the outcome and its reason.
    fn attempts(
        &mut self,
        who: &Result<Identity, String>,
    ) -> (Vec<AttemptRecord>, Outcome, Option<String>) {
        let req = self.facts.req;
        let job = req.job;
        let mut params = job.params().clone();
        params.extend(req.params.clone());
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
            let (res, judged) = self.attempt(n, who, &params, &af, &attempts);
            self.attempt_ended();
            let failed = match &judged {
                Judged::Failed(w, _) => Some(w.clone()),
                Judged::Success | Judged::Warning(_) => None,
            };
            let rec = attempt_record(n, res.as_ref(), failed);
            self.marker.attempt_ended(rec.clone());
            attempts.push(rec);
            self.log_end(&af, res.as_ref(), &judged);
            let (why, kind) = match judged {
                Judged::Success => return (attempts, Outcome::Success, None),
                Judged::Warning(w) => {
                    self.found.fire("warning");
                    return (attempts, Outcome::Warning, Some(w));
                }
                Judged::Failed(w, kind) => (w, kind),
            };
            if let Some(by) = self.replaced(&af) {
                return (attempts, Outcome::Interrupted, Some(by));
            }
            if self.interrupt.received().is_some() {
                return (attempts, Outcome::Interrupted, Some(why));
            }
            if n < max_attempts {
                let code = res.as_ref().and_then(|r| match r.exit {
                    Exit::Code(c) => Some(c),
                    _ => None,
                });
                if let Some(note) = policy::not_retried(&job.retry, kind, code) {
                    self.ctx.log.log(Level::Warn, "no-retry", &af, &note);
                    self.found.fire("no_retry");
                    return (attempts, Outcome::Failure, Some(format!("{why} ({note})")));
                }
                match self.wait_to_retry(n, &af, &attempts, &why) {
                    Waited::Over => {}
                    Waited::Interrupted => return (attempts, Outcome::Interrupted, Some(why)),
                    Waited::Replaced(by) => return (attempts, Outcome::Interrupted, Some(by)),
                }
            }
            reason = Some(why);
        }
        (attempts, Outcome::Failure, reason)
    }

    /// When the run is to be told `slow`: `warn_after` after its start, unless it was.
    fn warn_at(&self) -> Option<Instant> {
        if self.found.has_fired("slow") {
            return None;
        }
        let after = self.facts.req.job.expect.warn_after?;
        self.started.checked_add(after)
    }

    /// The attempt's process group is over: the lock file stops naming it, so nothing
    /// signals a group that no longer is this run's (`overlap = "replace"`).
    fn attempt_ended(&mut self) {
        self.out.end_lines();
        if self.holder.pgid.take().is_some()
            && let Some(x) = self.exclusion.as_mut()
        {
            x.lock.set_holder(&self.holder);
        }
    }

    /// "replaced by RUN_ID" when a run with `overlap = "replace"` replaced this one: it
    /// ends for good (no retry; recorded as interrupted, alerted as no failure).
    fn replaced(&self, af: &Fields) -> Option<String> {
        let x = self.exclusion.as_ref()?;
        let by = x.replaced.replaced_by()?;
        x.replaced.clear();
        let why = format!("replaced by {by}");
        let msg = format!("{why}: this run ends here, without retrying");
        self.ctx.log.log(Level::Warn, "replaced", af, &msg);
        Some(why)
    }

    /// One attempt: its result (none when it could not be set up) and how it ended. `done`
    /// are the run's attempts before it.
    fn attempt(
        &mut self,
        n: u32,
        who: &Result<Identity, String>,
        params: &BTreeMap<String, String>,
        af: &Fields,
        done: &[AttemptRecord],
    ) -> (Option<AttemptResult>, Judged) {
        let req = self.facts.req;
        let job = req.job;
        let who = match who {
            Ok(w) => w,
            Err(e) => return (None, Judged::Failed(e.clone(), RetryOn::Exit)),
        };
        let v = spec::vars(
            job,
            req.scheduled,
            self.facts.run_id,
            n,
            (params, &req.upstream),
        );
        let lock_fd = self.exclusion.as_ref().map(|x| x.lock.raw_fd());
        let mut spec = spec::attempt_spec(job, who, &v, params, lock_fd);
        spec.oom_score_adj = self.ctx.contain.job_oom_score_adj();
        if n > 1 {
            let note = format!("--- cronwarden: attempt {n} ---\n");
            self.out.write(Stream::Stderr, note.as_bytes());
        }
        let warn_at = self.warn_at();
        let (coord, holder, exclusion) = (self.ctx.coord, &mut self.holder, &mut self.exclusion);
        let marker = &mut *self.marker;
        self.scope.begin(n);
        let cgroup = self.scope.cgroup_dir().map(std::path::Path::to_path_buf);
        let scope = Some(&mut *self.scope);
        let (ctx, facts, started, found) = (self.ctx, self.facts, self.started, &mut self.found);
        let mut on_slow = || tell_slow(ctx, facts, af, done, started, found);
        let alarm = warn_at.map(|at| runner::Alarm {
            at,
            call: &mut on_slow,
        });
        let on_spawn = &mut |pid: u32| {
            holder.pgid = Some(pid as i32);
            if let Some(x) = exclusion.as_mut() {
                x.lock.set_holder(holder);
                if let Some(g) = &x.guard {
                    g.set_pgid(pid as i32);
                }
            }
            coord.process_started(pid as i32);
            marker.attempt_started(pid as i32, n, job.timeout, job.kill_grace, cgroup.clone());
        };
        let res = runner::run_attempt_with(&spec, scope, self.out, self.interrupt, on_spawn, alarm);
        self.scope.end();
        if let Some(pid) = res.pid {
            coord.process_ended(pid as i32);
        }
        let judged = self.judge(&res, &v, spec.timeout);
        (Some(res), judged)
    }

    /// Judges an attempt that ran: by its exit, then, when that went well (a success or a
    /// warning), by `min_duration`, `verify` and the ratios of `verify`.
    fn judge(
        &mut self,
        res: &AttemptResult,
        v: &BTreeMap<String, String>,
        timeout: Option<Duration>,
    ) -> Judged {
        let job = self.facts.req.job;
        let judged = policy::judge_exit(res, &job.success_codes, &job.warning_codes, timeout);
        if let Judged::Failed(why, kind) = judged {
            if res.oom_killed {
                let peak = res.usage.peak_memory_bytes;
                let why = crate::contain::limits::oom_reason(&job.limits, peak);
                return Judged::Failed(why, kind);
            }
            return Judged::Failed(why, kind);
        }
        if let Some(why) = policy::too_quick(res.duration, job.expect.min_duration) {
            self.found.fire("min_duration");
            return Judged::Failed(why, RetryOn::Verify);
        }
        if let Some(ver) = &job.verify
            && let Some(problems) = self.check_outputs(ver, res, v)
        {
            return Judged::Failed(format!("verify: {problems}"), RetryOn::Verify);
        }
        judged
    }

    /// `verify` on the attempt's output files (rendered with its placeholders `v`), then
    /// each file against its size in the job's last good run (`min_ratio`, `max_ratio`):
    /// the problems found, or `None`. The sizes found are kept for the run's record.
    fn check_outputs(
        &mut self,
        ver: &Verify,
        res: &AttemptResult,
        v: &BTreeMap<String, String>,
    ) -> Option<String> {
        let files: Vec<String> = ver.files.iter().map(|p| template::render(p, v)).collect();
        let started_at = SystemTime::from(res.started);
        let verified = policy::verify(&files, ver.min_size, ver.fresh, started_at);
        self.found.verified_sizes = verified.sizes.clone();
        if !verified.problems.is_empty() {
            return Some(verified.problems.join("; "));
        }
        if ver.min_ratio.is_none() && ver.max_ratio.is_none() {
            return None;
        }
        let before = self.sizes_before(&ver.files, v);
        let mut problems = Vec::new();
        for (f, was) in files.iter().zip(&before) {
            let Some(&size) = verified.sizes.get(f) else {
                continue;
            };
            let was = was.as_ref().map(|(p, s)| (p.as_str(), *s));
            if let Some((key, msg)) =
                policy::ratio_failure(f, size, was, ver.min_ratio, ver.max_ratio)
            {
                self.found.fire(key);
                problems.push(msg);
            }
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// For each file of `verify` (as written): its path and size in the job's last good run
    /// (a success or a warning), `None` where that run has none (or there is no such run).
    /// A path with placeholders is looked up as that run rendered it (its instant, run id
    /// and last attempt; the parameters as now), then as this run renders it.
    fn sizes_before(
        &mut self,
        templates: &[String],
        now: &BTreeMap<String, String>,
    ) -> Vec<Option<(String, u64)>> {
        let (job, run_id) = (self.facts.req.job, self.facts.run_id);
        let history = self.found.history(self.ctx, &job.name, self.fields);
        let Some(last) = history
            .iter()
            .rev()
            .find(|r| r.run_id != run_id && r.outcome.ended_well())
        else {
            return vec![None; templates.len()];
        };
        let then = last.scheduled.parse::<Timestamp>().ok().map(|t| {
            let attempt = last.attempts.last().map_or(1, |a| a.attempt);
            let mut then = now.clone();
            let none = BTreeMap::new();
            then.extend(spec::vars(job, t, &last.run_id, attempt, (&none, &none)));
            then
        });
        templates
            .iter()
            .map(|t| {
                let paths = then.iter().map(|v| template::render(t, v));
                paths
                    .chain([template::render(t, now)])
                    .find_map(|p| Some((p.clone(), *last.facts.verified_sizes.get(&p)?)))
            })
            .collect()
    }

    fn log_end(&self, af: &Fields, res: Option<&AttemptResult>, judged: &Judged) {
        let mut ef = af.to_vec();
        if let Some(r) = res {
            ef.push(("duration", format!("{:.3}s", r.duration.as_secs_f64())));
            match &r.exit {
                Exit::Code(c) => ef.push(("exit", c.to_string())),
                Exit::Signal(s) => ef.push(("signal", runner::signal_name(*s))),
                Exit::NotStarted(_) => {}
            }
        }
        match judged {
            Judged::Success => self.ctx.log.log(Level::Info, "attempt-end", &ef, "success"),
            Judged::Warning(w) => {
                let msg = format!("warning: {w}");
                self.ctx.log.log(Level::Warn, "attempt-end", &ef, &msg);
            }
            Judged::Failed(w, _) => {
                let msg = format!("failed: {w}");
                self.ctx.log.log(Level::Warn, "attempt-end", &ef, &msg);
            }
        }
    }

    /// Tells the `retry` channels, then waits for the backoff (looking for a run that
    /// replaces this one a few times a second, and telling `slow` when its time comes).
    fn wait_to_retry(
        &mut self,
        n: u32,
        af: &Fields,
        attempts: &[AttemptRecord],
        reason: &str,
    ) -> Waited {
        let job = self.facts.req.job;
        let mut so_far = self.facts.record(
            Outcome::Failure,
            Some(reason.to_string()),
            attempts.to_vec(),
            None,
        );
        so_far.facts.fired = self.found.fired.clone();
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
            let now = Instant::now();
            if self.warn_at().is_some_and(|at| now >= at) {
                let (ctx, facts) = (self.ctx, self.facts);
                tell_slow(ctx, facts, af, attempts, self.started, &mut self.found);
            }
            let left = until.saturating_duration_since(now);
            if left.is_zero() {
                return Waited::Over;
            }
            // Only a run that holds the job's lock can be replaced.
            let mut slice = match self.exclusion {
                Some(_) => left.min(REPLACE_POLL),
                None => left,
            };
            if let Some(at) = self.warn_at() {
                slice = slice.min(at.saturating_duration_since(now));
            }
            if self.interrupt.sleep(slice).is_some() {
                return Waited::Interrupted;
            }
        }
    }
}

/// The run is still going after its `warn_after`: logs a `slow` line and tells the `slow`
/// channels, once (the run goes on). `done` are the attempts that ended before; `usual` is
/// the median duration of the job's last good runs.
fn tell_slow(
    ctx: Ctx<'_>,
    facts: &RunFacts<'_>,
    af: &Fields,
    done: &[AttemptRecord],
    started: Instant,
    found: &mut Findings,
) {
    let job = facts.req.job;
    found.fire("slow");
    let elapsed = started.elapsed();
    let usual = policy::usual_duration(found.history(ctx, &job.name, af));
    // The message says the limit; the time it was told at is a field (a little later).
    let limit = job
        .expect
        .warn_after
        .map(format_duration)
        .unwrap_or_default();
    let mut msg = format!("still running after {limit} (warn_after), not stopped");
    if let Some(u) = usual {
        msg.push_str(&format!("; it usually takes {}", format_duration(u)));
    }
    let mut f = af.to_vec();
    f.push(("elapsed", format!("{:.3}s", elapsed.as_secs_f64())));
    ctx.log.log(Level::Warn, "slow", &f, &msg);
    // A run in progress: its end is unknown, as in its run marker.
    let mut so_far = facts.record(Outcome::Lost, None, done.to_vec(), None);
    so_far.facts.fired = found.fired.clone();
    ctx.alerts().on_slow(job, &so_far, elapsed, usual);
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
