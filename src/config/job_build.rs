//! How a checked job spec becomes a [`Job`]: every unset key gets its documented default
//! here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Settings;
use super::job::{
    Catchup, Expect, IoClass, JitterMode, Job, JobExtra, Leftovers, Limits, Overlap, Retry,
    RetryCodes, RetryOn, RunPolicy, TriggerRule, Verify, Zone,
};
use super::job_spec::JobSpec;
use super::reader::At;
use crate::schedule::Schedule;
use crate::text::Text;

impl Job {
    /// The job of a spec merged over `[defaults]` and checked, with the defaults of
    /// `cronwarden.toml(5)` for the keys left unset. `None` only without a command (which the
    /// checks have reported). The strings and lists are moved out of `s`, not copied (`after`
    /// stays, for the graph of the jobs). `shared`: the run policy, when the caller knows it
    /// already (a job that sets none of its keys has `[defaults]`' one).
    pub(crate) fn from_spec(
        name: &str,
        s: &mut JobSpec,
        settings: &Settings,
        (params, shared): (BTreeMap<String, String>, Option<Arc<RunPolicy>>),
        defined_at: (Arc<PathBuf>, u32),
    ) -> Option<Job> {
        let zone = match &s.timezone {
            Some(z) => Arc::new(Zone {
                name: Some(z.v.0.as_str().into()),
                tz: z.v.1.clone(),
            }),
            None => Arc::clone(&settings.zone),
        };
        // The name and the schedule's text in one allocation (issue 21); the daemon packs
        // all the table's texts together (`Config::compact`).
        let text = s.schedule.as_ref().map_or("", |a| a.v.0.as_str());
        let [name, text] = Text::joined([name, text]);
        Some(Job {
            name,
            schedule: take(&mut s.schedule)
                .map(|(_, e)| Arc::new(Schedule::of(e, zone.tz.clone(), text))),
            zone,
            command: take(&mut s.command)?,
            extra: JobExtra {
                after: names(&s.after),
                healthcheck_url: take(&mut s.healthcheck_url),
                params,
                tags: take_names(&mut s.tags),
            }
            .boxed(),
            defined_at,
            policy: shared.unwrap_or_else(|| Arc::new(policy(s, settings))),
        })
    }
}

/// The keys of a job that are not part of its run policy: a job table that sets no other
/// key has the run policy of `[defaults]`, [`defaults_policy`].
pub(crate) const NON_POLICY_KEYS: &[&str] = &[
    "schedule",
    "command",
    "timezone",
    "after",
    "healthcheck_url",
    "params",
    "tags",
];

/// The run policy of `[defaults]` (`d`, as read): that of every job that sets no key of its
/// own but [`NON_POLICY_KEYS`]. Made once, it spares each such job building a policy that
/// [`super::Config::share`] would then find equal to another and drop.
pub(crate) fn defaults_policy(d: &JobSpec, settings: &Settings) -> Arc<RunPolicy> {
    Arc::new(policy(&mut d.clone(), settings))
}

/// The run policy of a spec, with the defaults of the keys left unset.
fn policy(s: &mut JobSpec, settings: &Settings) -> RunPolicy {
    RunPolicy {
        shell: take(&mut s.shell).unwrap_or_else(|| PathBuf::from("/bin/sh")),
        stdin: take(&mut s.stdin),
        user: take(&mut s.user),
        group: take(&mut s.group),
        workdir: take(&mut s.workdir),
        env: std::mem::take(&mut s.env)
            .into_iter()
            .map(|(k, (_, v))| (k, v.v))
            .collect(),
        env_files: std::mem::take(&mut s.env_file)
            .into_iter()
            .map(|a| a.v)
            .collect(),
        credentials: std::mem::take(&mut s.credentials)
            .into_iter()
            .map(|(k, (_, v))| (k, PathBuf::from(v.v)))
            .collect(),
        umask: value(&s.umask).unwrap_or(0o022),
        nice: value(&s.nice),
        timeout: value(&s.timeout).filter(|d| !d.is_zero()),
        kill_grace: value(&s.kill_grace).unwrap_or(Duration::from_secs(10)),
        leftovers: value(&s.leftovers).unwrap_or(Leftovers::Stop),
        limits: limits(s),
        retry: retry(s),
        success_codes: take(&mut s.success_codes).unwrap_or_else(|| vec![0]),
        warning_codes: take(&mut s.warning_codes).unwrap_or_default(),
        expect: Expect {
            success_within: value(&s.expect_success_within).filter(|d| !d.is_zero()),
            warn_after: value(&s.warn_after).filter(|d| !d.is_zero()),
            min_duration: value(&s.min_duration).filter(|d| !d.is_zero()),
        },
        output_limit: value(&s.output_limit).unwrap_or(1 << 20),
        output_to_log: value(&s.output_to_log).unwrap_or(false),
        verify: verify(s),
        overlap: value(&s.overlap).unwrap_or(Overlap::Skip),
        catchup: value(&s.catchup).unwrap_or(Catchup::None),
        depends_on_past: value(&s.depends_on_past).unwrap_or(false),
        jitter: value(&s.jitter).filter(|d| !d.is_zero()),
        jitter_mode: value(&s.jitter_mode).unwrap_or(JitterMode::Random),
        trigger: value(&s.trigger).unwrap_or(TriggerRule::AllSuccess),
        alert: take_names(&mut s.alert),
        enabled: value(&s.enabled).unwrap_or(true),
        history_max_age: value(&s.history_max_age)
            .or(settings.history_max_age)
            .filter(|d| !d.is_zero()),
        output_max_age: value(&s.output_max_age)
            .or(settings.output_max_age)
            .filter(|d| !d.is_zero()),
    }
}

fn retry(s: &mut JobSpec) -> Retry {
    Retry {
        retries: value(&s.retries).unwrap_or(0),
        delay: value(&s.retry_delay).unwrap_or(Duration::from_secs(30)),
        backoff: value(&s.retry_backoff).unwrap_or(2.0),
        max_delay: value(&s.retry_max_delay).unwrap_or(Duration::from_secs(3600)),
        jitter: value(&s.retry_jitter).unwrap_or(true),
        codes: match (take(&mut s.retry_codes), take(&mut s.no_retry_codes)) {
            (Some(only), _) => RetryCodes::Only(only),
            (None, Some(except)) => RetryCodes::Except(except),
            (None, None) => RetryCodes::All,
        },
        on: take(&mut s.retry_on).unwrap_or_else(|| {
            vec![
                RetryOn::Exit,
                RetryOn::Timeout,
                RetryOn::Signal,
                RetryOn::Verify,
            ]
        }),
    }
}

fn limits(s: &JobSpec) -> Limits {
    let io_priority = value(&s.io_priority);
    Limits {
        memory_max: value(&s.memory_max),
        cpu_max: value(&s.cpu_max),
        pids_max: value(&s.pids_max),
        io_weight: value(&s.io_weight),
        // A priority alone means the best-effort class, as with ionice -n.
        io_class: value(&s.io_class).or(io_priority.map(|_| IoClass::BestEffort)),
        io_priority,
    }
}

/// `verify`, when it names files.
fn verify(s: &mut JobSpec) -> Option<Verify> {
    s.verify_files.take().map(|f| Verify {
        files: f.v.into_iter().map(|a| a.v).collect(),
        min_size: value(&s.verify_min_size).unwrap_or(1),
        fresh: value(&s.verify_fresh).unwrap_or(true),
        min_ratio: value(&s.verify_min_ratio),
        max_ratio: value(&s.verify_max_ratio),
    })
}

/// A key's value without its location.
fn value<T: Clone>(key: &Option<At<T>>) -> Option<T> {
    key.as_ref().map(|a| a.v.clone())
}

/// A key's value without its location, moved out of the spec.
fn take<T>(key: &mut Option<At<T>>) -> Option<T> {
    key.take().map(|a| a.v)
}

/// A list of names (`alert`, `tags`), moved out of the spec; empty when unset.
fn take_names(key: &mut Option<At<Vec<At<String>>>>) -> Vec<String> {
    key.take()
        .map(|l| l.v.into_iter().map(|a| a.v).collect())
        .unwrap_or_default()
}

/// A list of names (`after`), empty when unset.
fn names(key: &Option<At<Vec<At<String>>>>) -> Vec<String> {
    key.as_ref()
        .map(|l| l.v.iter().map(|a| a.v.clone()).collect())
        .unwrap_or_default()
}
