//! The checks of a job merged over `[defaults]` that need more than one key or the rest of
//! the table: a command and a schedule (or `after`), the placeholders of `command`, `env` and
//! `verify.files` against the job's `params`, `verify`, the `alert` channel names, and
//! whether `user` and `group` can work. A job that passes becomes a [`Job`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::Settings;
use super::job::{CommandLine, Job, RunPolicy};
use super::job_spec::JobSpec;
use super::loader::Loader;
use crate::diag::{Loc, suggest};
use crate::template;

impl Loader<'_> {
    /// The job named `name` (written at `loc`, reported as `subject`), or `None` when a check
    /// failed (reported) or `[settings]` did. What the job takes is moved out of `s`;
    /// `shared` is its run policy when known already ([`Job::from_spec`]).
    pub(crate) fn finish_job(
        &mut self,
        (name, loc, subject): (&str, Loc, &str),
        s: &mut JobSpec,
        settings: Option<&Settings>,
        (alerts, upstream): (&HashMap<String, Loc>, &BTreeSet<String>),
        shared: Option<Arc<RunPolicy>>,
    ) -> Option<Job> {
        let subj = Some(subject);
        let errors_before = self.sink.diags.len();
        self.check_required(loc, s, subj);
        let params: BTreeMap<String, String> = s
            .params
            .iter()
            .map(|(k, (_, v))| (k.clone(), v.v.clone()))
            .collect();
        self.check_placeholders(s, (&params, upstream), subj);
        self.check_verify(s, &params, subj);
        self.check_alert_names(s, alerts, subj);
        self.check_user_group(s, subj);
        if self.errors_since(errors_before) || s.failed_command {
            return None;
        }
        let settings = settings?;
        let job = Job::from_spec(name, s, settings, (params, shared), self.job_file(loc))?;
        self.check_jitter(&job, s, subj);
        Some(job)
    }

    /// A warning when `jitter` is longer than the shortest time between two of the job's
    /// fire instants: ticks that come while a run waits out its delay join that run, so the
    /// job runs less often than its schedule says.
    fn check_jitter(&mut self, job: &Job, s: &JobSpec, subj: Option<&str>) {
        let (Some(jitter), Some(at), Some(schedule)) = (job.jitter, &s.jitter, &job.schedule)
        else {
            return;
        };
        // The next fires from now: enough to meet the shortest gap of any ordinary schedule
        // (a weekday's, a month's), few enough to stay cheap for thousands of jobs.
        let fires: Vec<_> = schedule
            .iter_after(jiff::Timestamp::now())
            .take(64)
            .collect();
        let shortest = fires
            .windows(2)
            .filter_map(|w| w[0].duration_until(w[1]).try_into().ok())
            .min();
        if let Some(gap) = shortest.filter(|g: &std::time::Duration| jitter > *g) {
            self.sink.warning(
                at.loc,
                subj,
                format!(
                    "jitter: {} is longer than the {} between two runs of schedule {:?}: ticks \
                     that come while a run waits out its delay join it, so the job runs less \
                     often than scheduled",
                    crate::units::format_duration(jitter),
                    crate::units::format_duration(gap),
                    job.schedule_text().unwrap_or_default()
                ),
            );
        }
    }

    /// A command, and a schedule or `after` (unless the key was there but invalid).
    fn check_required(&mut self, loc: Loc, s: &JobSpec, subj: Option<&str>) {
        if s.command.is_none() && !s.failed_command {
            self.sink.error(
                loc,
                subj,
                "no command: add command = [\"/path/to/program\", \"arg\"] or command = \"shell \
                 text\"",
            );
        }
        if let Some(t) = s.trigger.as_ref().filter(|_| s.after.is_none()) {
            self.sink.error(
                t.loc,
                subj,
                format!(
                    "trigger: {:?} decides from the parents named in after, and the job has \
                     none: add after = [\"other-job\"] or remove trigger",
                    t.v.as_str()
                ),
            );
        }
        if s.schedule.is_none() && s.after.is_none() && !s.failed_schedule {
            self.sink.error(
                loc,
                subj,
                "no schedule and no after: add schedule = \"0 3 * * *\" (or \"@manual\" for a \
                 job run only by hand) or after = [\"other-job\"]",
            );
        }
    }

    /// The placeholders of `command` (`params` only in an argv) and of `env`.
    fn check_placeholders(
        &mut self,
        s: &JobSpec,
        (params, upstream): (&BTreeMap<String, String>, &BTreeSet<String>),
        subj: Option<&str>,
    ) {
        let none = BTreeSet::new();
        if let Some(cmd) = &s.command {
            let texts: Vec<(&str, bool)> = match &cmd.v {
                CommandLine::Argv(a) => a.iter().map(|x| (x.as_str(), true)).collect(),
                CommandLine::Shell(text) => vec![(&**text, false)],
            };
            for (text, allow_params) in texts {
                for p in template::check(text, params, allow_params, upstream) {
                    self.sink.error(cmd.loc, subj, format!("command: {p}"));
                }
            }
        }
        for (key, (_, v)) in &s.env {
            for p in template::check(&v.v, params, true, &none) {
                self.sink.error(v.loc, subj, format!("env.{key}: {p}"));
            }
        }
    }

    /// `verify.files` names a file or more, with valid placeholders; `min_size`, `fresh`,
    /// `min_ratio` and `max_ratio` come with it.
    fn check_verify(&mut self, s: &JobSpec, params: &BTreeMap<String, String>, subj: Option<&str>) {
        if let Some(files) = &s.verify_files {
            if files.v.is_empty() {
                self.sink
                    .error(files.loc, subj, "verify.files: name at least one file");
            }
            for f in &files.v {
                for p in template::check(&f.v, params, true, &BTreeSet::new()) {
                    self.sink.error(f.loc, subj, format!("verify.files: {p}"));
                }
            }
        } else if let Some(v) = s
            .verify_min_size
            .as_ref()
            .map(|a| a.loc)
            .or(s.verify_fresh.as_ref().map(|a| a.loc))
            .or(s.verify_min_ratio.as_ref().map(|a| a.loc))
            .or(s.verify_max_ratio.as_ref().map(|a| a.loc))
        {
            let msg = "verify: min_size, fresh, min_ratio and max_ratio need verify.files";
            self.sink.error(v, subj, msg);
        }
    }

    /// Every name in `alert` is a channel of the table.
    fn check_alert_names(
        &mut self,
        s: &JobSpec,
        alerts: &HashMap<String, Loc>,
        subj: Option<&str>,
    ) {
        let Some(list) = &s.alert else {
            return;
        };
        for a in &list.v {
            if !alerts.contains_key(&a.v) {
                let hint = suggest(&a.v, alerts.keys().map(String::as_str))
                    .map(|h| format!(" (did you mean {h:?}?)"))
                    .unwrap_or_default();
                self.sink.error(
                    a.loc,
                    subj,
                    format!("alert: no channel [alerts.{}] is defined{hint}", a.v),
                );
            }
        }
    }

    /// Warnings: as root, a `user` or `group` this machine does not have; otherwise any
    /// `user` or `group`, which only root can switch to.
    fn check_user_group(&mut self, s: &JobSpec, subj: Option<&str>) {
        if !self.opts.as_root {
            for key in [&s.user, &s.group].into_iter().flatten() {
                self.sink.warning(
                    key.loc,
                    subj,
                    format!(
                        "user/group {:?} is set but cronwarden is not running as root: the job \
                         cannot switch to it and will fail to start",
                        key.v
                    ),
                );
            }
            return;
        }
        if let Some(u) = &s.user
            && !matches!(nix::unistd::User::from_name(&u.v), Ok(Some(_)))
        {
            self.sink.warning(
                u.loc,
                subj,
                format!("user {:?} does not exist on this machine", u.v),
            );
        }
        if let Some(g) = &s.group
            && !matches!(nix::unistd::Group::from_name(&g.v), Ok(Some(_)))
        {
            self.sink.warning(
                g.loc,
                subj,
                format!("group {:?} does not exist on this machine", g.v),
            );
        }
    }
}
