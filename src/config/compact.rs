//! [`Config::compact`]: the daemon's copy of a loaded table, made of fresh allocations and as
//! few of them per job as can be (issue 21: 100,000 idle jobs in under 40 MB).
//!
//! What it packs (BENCHMARKS.md, "Memory per job, fifth round"): every job's name, shell
//! command and schedule text go into one buffer for the whole table ([`crate::text::Pack`]),
//! which saves malloc's header and rounding (16 to 31 bytes) on each of them; jobs whose
//! schedules are equal (the same text, expression and zone: `0 * * * *` in many tables)
//! share one `Schedule`, and the jobs of one zone one `Zone`; equal run policies and the
//! paths of the files stay shared, as [`Config::share`] made them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::job::Zone;
use super::{CommandLine, Config, Job, RunPolicy};
use crate::schedule::Schedule;
use crate::text::{Pack, Packed, Packs};

/// The schedules of a table, each distinct one once.
struct Schedules<'c> {
    /// By text: the distinct schedules with that text (another zone makes another one).
    by_text: FxHashMap<&'c str, Vec<usize>>,
    /// The distinct schedules, in the order first met, and where their text is packed.
    distinct: Vec<(&'c Schedule, Packed)>,
}

impl<'c> Schedules<'c> {
    /// The index among the distinct schedules of `s` (added, and its text packed, when new).
    fn intern(&mut self, s: &'c Schedule, pack: &mut Pack) -> usize {
        let same = self.by_text.entry(s.text()).or_default();
        let equal = |&i: &usize| {
            let (d, _) = self.distinct[i];
            d.expr() == s.expr() && d.time_zone() == s.time_zone()
        };
        if let Some(i) = same.iter().copied().find(equal) {
            return i;
        }
        self.distinct.push((s, pack.add(s.text())));
        same.push(self.distinct.len() - 1);
        self.distinct.len() - 1
    }
}

/// Where each text of a job is in the pack, and its schedule's index.
struct JobTexts {
    name: Packed,
    shell: Option<Packed>,
    schedule: Option<usize>,
}

impl Config {
    /// A deep copy made of fresh allocations (every job's texts, schedule and policy; equal
    /// policies, schedules and paths shared), so that it does not keep the pages of the
    /// original's allocator arena in use, packed as the module documentation says.
    pub fn compact(&self) -> Config {
        let mut pack = Pack::with_capacity(self.jobs.iter().map(text_len).sum());
        let mut schedules = Schedules {
            by_text: FxHashMap::default(),
            distinct: Vec::new(),
        };
        let texts: Vec<JobTexts> = self
            .jobs
            .iter()
            .map(|j| JobTexts {
                name: pack.add(&j.name),
                shell: match &j.command {
                    CommandLine::Shell(c) => Some(pack.add(c)),
                    CommandLine::Argv(_) => None,
                },
                schedule: j
                    .schedule
                    .as_deref()
                    .map(|s| schedules.intern(s, &mut pack)),
            })
            .collect();
        let packs = pack.finish();
        let distinct: Vec<Arc<Schedule>> = schedules
            .distinct
            .iter()
            .map(|(s, text)| {
                let copy = Schedule::of(s.expr().clone(), s.time_zone().clone(), text.text(&packs));
                Arc::new(copy)
            })
            .collect();
        let mut policies: HashMap<*const RunPolicy, Arc<RunPolicy>> = HashMap::new();
        let mut files: HashMap<*const PathBuf, Arc<PathBuf>> = HashMap::new();
        let mut zones: Vec<Arc<Zone>> = Vec::new();
        let mut jobs = Vec::with_capacity(self.jobs.len());
        for (j, t) in self.jobs.iter().zip(texts) {
            let mut job = j.clone();
            repack(&mut job, &t, &packs, &distinct);
            job.policy = Arc::clone(
                policies
                    .entry(Arc::as_ptr(&j.policy))
                    .or_insert_with(|| Arc::new(RunPolicy::clone(&j.policy))),
            );
            job.zone = zone(&mut zones, &j.zone);
            let file = &j.defined_at.0;
            job.defined_at.0 = Arc::clone(
                files
                    .entry(Arc::as_ptr(file))
                    .or_insert_with(|| Arc::new(PathBuf::clone(file))),
            );
            jobs.push(job);
        }
        Config {
            jobs,
            by_name: self.by_name.clone(),
            steps: self.steps.clone(),
            ..self.clone_without_jobs()
        }
    }

    fn clone_without_jobs(&self) -> Config {
        Config {
            path: self.path.clone(),
            files: self.files.clone(),
            include_patterns: self.include_patterns.clone(),
            settings: self.settings.clone(),
            alerts: self.alerts.clone(),
            cluster: self.cluster.clone(),
            jobs: Vec::new(),
            by_name: Vec::new(),
            steps: Vec::new(),
        }
    }
}

/// The bytes a job's texts take in the pack (its schedule's counted even when shared: the
/// buffer may have a little room left, never too little).
fn text_len(j: &Job) -> usize {
    let shell = match &j.command {
        CommandLine::Shell(c) => c.len(),
        CommandLine::Argv(_) => 0,
    };
    j.name.len() + shell + j.schedule_text().map_or(0, str::len)
}

/// One copy of each distinct zone (a table names few): the jobs with a `timezone` of their
/// own each had one.
fn zone(zones: &mut Vec<Arc<Zone>>, z: &Zone) -> Arc<Zone> {
    if let Some(same) = zones.iter().find(|s| s.name == z.name && s.tz == z.tz) {
        return Arc::clone(same);
    }
    zones.push(Arc::new(z.clone()));
    Arc::clone(&zones[zones.len() - 1])
}

/// The job's texts and schedule from the pack and the distinct schedules.
fn repack(job: &mut Job, t: &JobTexts, packs: &Packs, distinct: &[Arc<Schedule>]) {
    job.name = t.name.text(packs);
    if let Some(shell) = t.shell {
        job.command = CommandLine::Shell(shell.text(packs));
    }
    job.schedule = t.schedule.and_then(|i| distinct.get(i)).map(Arc::clone);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of `jobs` (`[jobs.NAME]` keys after the name), loaded.
    fn load(tag: &str, jobs: &[(&str, &str)]) -> Config {
        let dir = std::env::temp_dir().join(format!("cw-compact-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let d = dir.display();
        let mut table = format!("[settings]\nstate_dir = \"{d}/state\"\nlock_dir = \"{d}/run\"\n");
        for (name, keys) in jobs {
            table.push_str(&format!("\n[jobs.{name}]\n{keys}\n"));
        }
        let path = dir.join("jobs.toml");
        std::fs::write(&path, table).expect("write table");
        let loaded = super::super::load(&path, super::super::LoadOptions { as_root: false });
        let _ = std::fs::remove_dir_all(&dir);
        loaded
            .config
            .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
    }

    #[test]
    fn the_copy_packs_texts_and_shares_equal_schedules() {
        let c = load(
            "pack",
            &[
                ("a", "schedule = \"0 * * * *\"\ncommand = \"echo a\""),
                (
                    "b",
                    "schedule = \"0 * * * *\"\ncommand = [\"/bin/echo\", \"b\"]",
                ),
                (
                    "c",
                    "schedule = \"0 * * * *\"\ncommand = \"echo c\"\ntimezone = \"Asia/Tokyo\"",
                ),
                ("d", "schedule = \"5 4 * * *\"\ncommand = \"echo d\""),
                ("e", "after = [\"a\"]\ncommand = \"echo e\""),
                (
                    "f",
                    "schedule = \"@daily\"\ncommand = \"echo f\"\ntimezone = \"Asia/Tokyo\"",
                ),
            ],
        )
        .compact();
        let job = |n: &str| c.job(n).unwrap_or_else(|| panic!("job {n}"));
        let sched = |n: &str| job(n).schedule.clone().expect("a schedule");
        // Equal text and zone: one schedule; another zone or text: another one.
        assert!(Arc::ptr_eq(&sched("a"), &sched("b")));
        assert!(!Arc::ptr_eq(&sched("a"), &sched("c")));
        assert!(!Arc::ptr_eq(&sched("a"), &sched("d")));
        assert_eq!(job("c").schedule_text(), Some("0 * * * *"));
        assert_eq!(job("d").schedule_text(), Some("5 4 * * *"));
        assert!(job("e").schedule.is_none());
        assert!(Arc::ptr_eq(&job("a").zone, &job("e").zone));
        assert!(Arc::ptr_eq(&job("c").zone, &job("f").zone));
        assert_eq!(job("f").timezone(), Some("Asia/Tokyo"));
        assert_eq!(job("a").timezone(), None);
        // Every name and shell command: read back, from one buffer.
        let first = &job("a").name;
        for n in ["a", "b", "c", "d", "e", "f"] {
            assert_eq!(job(n).name, n);
            assert!(job(n).name.same_buffer(first));
            match &job(n).command {
                CommandLine::Shell(s) => {
                    assert_eq!(*s, format!("echo {n}"));
                    assert!(s.same_buffer(first));
                }
                CommandLine::Argv(a) => assert_eq!(a[..], ["/bin/echo", "b"]),
            }
        }
    }
}
