//! The `[jobs]` tables of every file, job by job: each job's keys are read, merged over
//! `[defaults]`, checked and made into its [`Job`] before the next job is read, so that one
//! job's keys as written ([`JobSpec`], about 1.9 KB with a location for each key) exist at a
//! time. Holding all of them until every job was read, `check` of 100,000 jobs took 308 MB
//! (GNU time `%M`; 201 MB without) and 80,712 page faults (52,019).
//!
//! What a job's checks need from the other jobs is read first: the first definition of each
//! name, and each job's `after` names (its ancestors are the `{{ upstream.JOB }}` its command
//! may name). The diagnostics come out in the same order as when every job was read before
//! any was checked: they are sorted by position at the end, and a job's checks report only at
//! its own keys, its name or `[defaults]`' keys, where no other job's reading reports.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::Settings;
use super::after_graph::Step;
use super::job::{Job, RunPolicy};
use super::job_build::{NON_POLICY_KEYS, defaults_policy};
use super::job_spec::{JobSpec, job_subject};
use super::loader::Loader;
use super::reader::{At, TableReader};
use super::toml_tree::Value;
use crate::diag::{Loc, Sink};

/// A job's first definition: its name, where the name is written, its value, and the
/// `[jobs]` table (of [`Loader::job_definitions`]) it is in.
struct Definition<'t, 'i> {
    name: &'t str,
    loc: Loc,
    value: &'t Value<'i>,
    table: usize,
}

/// Each job's `after` names (merged over `[defaults]`), for the jobs that have some.
type Parents<'a> = FxHashMap<&'a str, Vec<&'a str>>;

impl Loader<'_> {
    /// The jobs of every file, each merged over `[defaults]` and checked, in table order; a
    /// name defined twice keeps its first definition. A job that fails a check is reported
    /// and left out; then the `after` graph of all of them is checked.
    pub(crate) fn jobs(
        &mut self,
        readers: &[TableReader],
        settings: Option<&Settings>,
        alerts: &HashMap<String, Loc>,
    ) -> Vec<Job> {
        let defaults = self.defaults(&readers[0]);
        let (tables, defs) = self.job_definitions(readers);
        let afters = own_afters(&tables, &defs, &defaults);
        let parents: Parents = afters
            .iter()
            .map(|(name, a)| (*name, a.v.iter().map(|x| x.v.as_str()).collect()))
            .collect();
        // `[defaults]`' run policy, made for the first job that has it.
        let mut default_run: Option<Arc<RunPolicy>> = None;
        let mut jobs = Vec::with_capacity(defs.len());
        let mut steps: Vec<(&str, Loc, Step)> = Vec::with_capacity(defs.len());
        for d in &defs {
            let subject = job_subject(d.name);
            self.check_name(d.name, d.loc, &subject);
            let Some(jt) = tables[d.table].table_value(self.sink, d.name, d.value) else {
                continue;
            };
            let mut jt = TableReader::new_from(jt, Some(subject));
            jt.loc = d.loc;
            let mut spec = self.job_spec(&jt).merged_over(&defaults);
            let scheduled = spec.schedule.is_some();
            let upstream = ancestors(&parents, d.name);
            let own_policy = jt.entries().any(|(k, _, _)| !NON_POLICY_KEYS.contains(&k));
            let shared = settings.filter(|_| !own_policy).map(|st| {
                Arc::clone(default_run.get_or_insert_with(|| defaults_policy(&defaults, st)))
            });
            let at = (d.name, d.loc, jt.subject().unwrap_or_default());
            let named = (alerts, &upstream);
            if let Some(job) = self.finish_job(at, &mut spec, settings, named, shared) {
                jobs.push(job);
            }
            let after = spec.after.take();
            steps.push((d.name, d.loc, Step { after, scheduled }));
        }
        self.check_graph(&steps);
        jobs
    }

    /// `[defaults]` of the main file: the keys every job takes unless it sets them.
    fn defaults(&mut self, main: &TableReader) -> JobSpec {
        let Some(t) = main.table(self.sink, "defaults") else {
            return JobSpec::default();
        };
        let t = TableReader::new_from(t, Some("[defaults]".to_string()));
        let mut d = self.job_spec(&t);
        // A rule about a step's parents: every job without `after` would refuse it.
        if let Some(tr) = d.trigger.take() {
            let msg = "trigger: set it on the steps it is about (jobs with after), not in \
                       [defaults]";
            self.sink.error(tr.loc, t.subject(), msg);
        }
        d
    }

    /// The `[jobs]` table of each file, and the first definition of each job name in them,
    /// in table order; a second definition is reported.
    fn job_definitions<'t, 'i>(
        &mut self,
        readers: &[TableReader<'t, 'i>],
    ) -> (Vec<TableReader<'t, 'i>>, Vec<Definition<'t, 'i>>) {
        let mut tables = Vec::new();
        let mut defs = Vec::new();
        // Names borrowed from the trees, Fx-hashed, room made at once, rather than a `String`
        // made for each name, SipHash and a growing map (its rehashing alone: 22 of the 1,983
        // million instructions of `check` of 100,000 jobs, callgrind).
        let mut job_locs: FxHashMap<&str, Loc> = FxHashMap::default();
        for r in readers {
            let Some(t) = r.table(self.sink, "jobs") else {
                continue;
            };
            job_locs.reserve(t.len());
            for (name, loc, value) in t.entries() {
                if let Some(&first) = job_locs.get(name) {
                    self.defined_twice(first, loc, &job_subject(name));
                    continue;
                }
                job_locs.insert(name, loc);
                let table = tables.len();
                defs.push(Definition {
                    name,
                    loc,
                    value,
                    table,
                });
            }
            tables.push(t);
        }
        (tables, defs)
    }
}

/// Each job's `after` (or `[defaults]`' when the job sets none, or sets it wrong), for the
/// jobs whose value is a table and that run after others: as [`JobSpec::merged_over`] will
/// give it. Read without diagnostics; each job's reading reports its own.
fn own_afters<'a>(
    tables: &[TableReader],
    defs: &[Definition<'a, '_>],
    defaults: &JobSpec,
) -> Vec<(&'a str, At<Vec<At<String>>>)> {
    let mut quiet = Sink::default();
    let mut out = Vec::new();
    for d in defs {
        let Some(jt) = tables[d.table].table_value(&mut quiet, d.name, d.value) else {
            continue;
        };
        let after = jt.strings(&mut quiet, "after", true);
        if let Some(a) = after.or_else(|| defaults.after.clone())
            && !a.v.is_empty()
        {
            out.push((d.name, a));
        }
    }
    out
}

/// The jobs `name` runs after, directly or not (whose results it may name as
/// `{{ upstream.JOB }}`).
fn ancestors(parents: &Parents, name: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if parents.is_empty() {
        return out;
    }
    let mut stack: Vec<&str> = parents.get(name).cloned().unwrap_or_default();
    while let Some(p) = stack.pop() {
        if p != name && out.insert(p.to_string()) {
            stack.extend(parents.get(p).into_iter().flatten());
        }
    }
    out
}
