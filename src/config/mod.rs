//! The job table: TOML text -> a typed [`Config`], with every problem reported in one pass.
//!
//! Loading has two stages. The reader turns each table into typed values and records a
//! diagnostic for each bad value (file:line:col, job or channel, what and why). The semantic
//! pass then merges `[defaults]` into each job and checks what needs the whole table: alert
//! and `after` names, dependency cycles, pipelines whose parents share no root. `check`, the
//! daemon's start and its reload all call [`load`], so they agree on what is valid. The keys
//! and their defaults are documented in `man cronwarden.toml(5)`.
//!
//! Where each part is:
//! - `toml_tree.rs`: the TOML parser, a document tree with byte spans;
//! - `reader.rs`: typed access to one table, a diagnostic for each bad value;
//! - `loader.rs`: the files (main, drop-ins, permissions) and the order the parts are read in;
//! - `table_file.rs`: reading one file (table or secret): regular files only, never blocking,
//!   with a size limit;
//! - `settings.rs`, `cluster.rs`, `alerts.rs`: `[settings]`, `[cluster]`, `[alerts.NAME]`;
//! - `secret.rs`: secrets named by `*_env` or `*_file` keys;
//! - `env_file.rs`: the files `env_file` names, read at each run;
//! - `values.rs`: time zones, absolute paths and command lines, which several tables use;
//! - `job_spec.rs`: a job's keys as written (or `[defaults]`), and the merge over `[defaults]`;
//! - `job_table.rs`: the `[jobs]` tables, job by job: read, merged, checked and built in turn;
//! - `job_checks.rs`: the checks of a merged job that need several keys or the whole table;
//! - `job.rs`: the [`Job`] type, and the defaults of the keys left unset;
//! - `after_graph.rs`: `after`: unknown names, dependency cycles, fan-ins.

mod after_graph;
mod alerts;
mod cluster;
mod compact;
pub mod env_file;
mod job;
mod job_build;
mod job_checks;
mod job_spec;
mod job_table;
mod loader;
mod policy_hash;
mod reader;
mod secret;
mod settings;
mod table_file;
pub mod toml_tree;
mod values;

pub use alerts::{AlertChannel, AlertEvent, AlertKind, SmtpTls, SmtpTransport, WebhookFormat};
pub use cluster::{Cluster, ClusterUrl};
pub use job::{
    Catchup, CommandLine, EnvFile, Expect, IoClass, JitterMode, Job, JobExtra, Leftovers, Limits,
    Overlap, Retry, RetryCodes, RetryOn, RunPolicy, TriggerRule, Verify,
};
pub use secret::Secret;
pub use settings::{ContainmentSetting, LogFormat, Settings, StatusPage};

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet, FxHasher};

use crate::diag::{Diagnostic, Severity, Sink};
use loader::Loader;

/// The whole job table, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// The main file.
    pub path: PathBuf,
    /// The main file and every included file, in load order.
    pub files: Vec<PathBuf>,
    /// The `include` patterns, made absolute (a new file matching one is part of the table).
    pub include_patterns: Vec<PathBuf>,
    pub settings: Settings,
    pub alerts: Vec<AlertChannel>,
    pub cluster: Option<Cluster>,
    pub jobs: Vec<Job>,
    /// The positions in `jobs`, ordered by the jobs' names: [`Config::job`] looks a name up
    /// by binary search (made by [`Config::share`], at load).
    pub(crate) by_name: Vec<u32>,
    /// The positions of the jobs with `after` (pipeline steps), in table order:
    /// [`Config::children`] looks only at them (made with `by_name`).
    pub(crate) steps: Vec<u32>,
}

impl Config {
    pub fn job(&self, name: &str) -> Option<&Job> {
        if self.by_name.len() != self.jobs.len() {
            // Not indexed (a table put together by hand): look at each.
            return self.jobs.iter().find(|j| j.name == name);
        }
        let at = self
            .by_name
            .binary_search_by(|&i| self.jobs[i as usize].name.as_str().cmp(name))
            .ok()?;
        self.jobs.get(self.by_name[at] as usize)
    }

    /// What the jobs have in common, shared: equal run policies become one allocation, and
    /// so do the paths of the files the jobs are defined in; then the index by name. The
    /// table of values seen lives only during this call.
    pub(crate) fn share(&mut self) {
        // rustc-hash's Fx hash rather than std's SipHash: SipHash of every policy was half of
        // this function (callgrind, `check` of 100,000 jobs: 408 of 755 million instructions).
        // The table is the administrator's, so no defence against chosen collisions is needed.
        let mut policies: FxHashMap<u64, Vec<Arc<RunPolicy>>> = FxHashMap::default();
        // The policies kept so far, by address: the loader gives the jobs that set no run
        // policy key of their own `[defaults]`' policy, which needs no hashing again.
        let mut kept: FxHashSet<*const RunPolicy> = FxHashSet::default();
        let mut files: FxHashSet<Arc<PathBuf>> = FxHashSet::default();
        let mut last_file: Option<Arc<PathBuf>> = None;
        for job in &mut self.jobs {
            if !kept.contains(&Arc::as_ptr(&job.policy)) {
                // Equal policies hash alike; equality decides.
                let mut h = FxHasher::default();
                job.policy.hash(&mut h);
                let same = policies.entry(h.finish()).or_default();
                match same.iter().find(|p| ***p == *job.policy) {
                    Some(p) => job.policy = Arc::clone(p),
                    None => {
                        kept.insert(Arc::as_ptr(&job.policy));
                        same.push(Arc::clone(&job.policy));
                    }
                }
            }
            // The loader gives the jobs of a file one path: most are that of the job before.
            if last_file
                .as_ref()
                .is_some_and(|f| Arc::ptr_eq(f, &job.defined_at.0))
            {
                continue;
            }
            match files.get(&job.defined_at.0) {
                Some(f) => job.defined_at.0 = Arc::clone(f),
                None => {
                    files.insert(Arc::clone(&job.defined_at.0));
                }
            }
            last_file = Some(Arc::clone(&job.defined_at.0));
        }
        // The table was collected without knowing its length: up to twice the room.
        self.jobs.shrink_to_fit();
        let mut by_name: Vec<u32> = (0..self.jobs.len())
            .filter_map(|i| u32::try_from(i).ok())
            .collect();
        by_name.sort_by(|&a, &b| self.jobs[a as usize].name.cmp(&self.jobs[b as usize].name));
        self.by_name = by_name;
        self.steps = (0..self.jobs.len())
            .filter(|&i| !self.jobs[i].after().is_empty())
            .filter_map(|i| u32::try_from(i).ok())
            .collect();
    }

    pub fn alert(&self, name: &str) -> Option<&AlertChannel> {
        self.alerts.iter().find(|a| a.name == name)
    }

    /// This host's name for `jitter_mode = "fixed"`: the fleet node's name (`[cluster]
    /// node`), else the host name.
    pub fn host_name(&self) -> String {
        match &self.cluster {
            Some(c) => c.node.clone(),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".to_string()),
        }
    }

    /// The jobs that name `name` in their `after`, in table order. Called for every run
    /// that ends: it looks only at the pipeline steps, not at every job of the table.
    pub fn children(&self, name: &str) -> Vec<&Job> {
        let names = |j: &&Job| j.after().iter().any(|a| a == name);
        if self.by_name.len() != self.jobs.len() {
            // Not indexed (a table put together by hand): look at each.
            return self.jobs.iter().filter(names).collect();
        }
        self.steps
            .iter()
            .filter_map(|&i| self.jobs.get(i as usize))
            .filter(names)
            .collect()
    }

    /// The jobs as pipeline trees: each job without `after` in table order, with the jobs that
    /// come after it indented below (`list` and the status page show them so) (a fan-in under its first parent, once).
    pub fn tree_order(&self) -> Vec<(&Job, usize)> {
        let config = self;
        let mut out = Vec::with_capacity(config.jobs.len());
        let mut seen = HashSet::new();
        fn walk<'c>(
            config: &'c Config,
            job: &'c Job,
            depth: usize,
            seen: &mut HashSet<&'c str>,
            out: &mut Vec<(&'c Job, usize)>,
        ) {
            if !seen.insert(job.name.as_str()) {
                return;
            }
            out.push((job, depth));
            for child in config.children(&job.name) {
                if child.after().first().is_some_and(|a| *a == job.name) {
                    walk(config, child, depth + 1, seen, out);
                }
            }
        }
        for job in config.jobs.iter().filter(|j| j.after().is_empty()) {
            walk(config, job, 0, &mut seen, &mut out);
        }
        // Anything not reached (a cycle is rejected by check, so only odd shapes) goes last.
        for job in &config.jobs {
            if !seen.contains(job.name.as_str()) {
                seen.insert(job.name.as_str());
                out.push((job, 0));
            }
        }
        out
    }
}

/// The result of loading a table: the config when there was no error, and every diagnostic
/// (errors and warnings) either way.
pub struct Loaded {
    pub config: Option<Config>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

/// Options that depend on who loads the table.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Enforce root ownership and no group/other write bits on every table file, and allow
    /// `user`/`group` without a warning.
    pub as_root: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            as_root: crate::paths::is_root(),
        }
    }
}

/// Loads and validates a job table and the files it includes.
pub fn load(path: &Path, opts: LoadOptions) -> Loaded {
    let mut sink = Sink::default();
    let config = Loader::new(&mut sink, opts).load(path);
    let failed = sink.has_errors();
    // Report in file order, then line order: the way an editor shows them.
    let order: HashMap<PathBuf, usize> = sink
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.clone(), i))
        .collect();
    sink.diags.sort_by_key(|d| {
        (
            order.get(&d.file).copied().unwrap_or(usize::MAX),
            d.line,
            d.col,
        )
    });
    let config = config.filter(|_| !failed).map(|mut c| {
        c.share();
        c
    });
    Loaded {
        config,
        diagnostics: sink.diags,
    }
}
