//! The `after` graph of the jobs (a job runs after the jobs it names: a pipeline): every name
//! is a job, there is no cycle, and the parents of a fan-in share a root, so that one
//! pipeline run can start the job.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use super::loader::Loader;
use super::reader::At;
use crate::diag::{Loc, suggest};

/// What the graph needs of a job (merged over `[defaults]`).
pub(crate) struct Step {
    /// `after`, as written.
    pub(crate) after: Option<At<Vec<At<String>>>>,
    /// Whether it has a schedule (a job with one starts pipeline runs of its own).
    pub(crate) scheduled: bool,
}

/// Jobs by table order: name, where the name is written, and what the graph needs.
type Specs<'a> = [(&'a str, Loc, Step)];

impl Loader<'_> {
    /// Unknown `after` names, dependency cycles, and fan-ins whose parents share no root.
    pub(crate) fn check_graph(&mut self, specs: &Specs) {
        let edges = self.after_edges(specs);
        if self.report_cycles(specs, &edges) {
            return;
        }
        self.check_fan_ins(specs, &edges);
    }

    /// For each job, the jobs it runs after (by index); the names that are no job (or the
    /// job itself) are reported and left out.
    fn after_edges(&mut self, specs: &Specs) -> Vec<Vec<usize>> {
        let index: FxHashMap<&str, usize> = specs
            .iter()
            .enumerate()
            .map(|(i, (n, _, _))| (*n, i))
            .collect();
        let mut edges: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
        for (i, (name, _, spec)) in specs.iter().enumerate() {
            let Some(after) = &spec.after else { continue };
            if after.v.is_empty() {
                self.sink.error(
                    after.loc,
                    Some(&format!("job {name:?}")),
                    "after: name at least one job",
                );
            }
            for a in &after.v {
                match index.get(a.v.as_str()) {
                    Some(&j) if j == i => self.sink.error(
                        a.loc,
                        Some(&format!("job {name:?}")),
                        format!("after: a job cannot run after itself (cycle {name} -> {name})"),
                    ),
                    Some(&j) => edges[i].push(j),
                    None => {
                        let hint = suggest(&a.v, specs.iter().map(|(n, _, _)| *n))
                            .map(|h| format!(" (did you mean {h:?}?)"))
                            .unwrap_or_default();
                        self.sink.error(
                            a.loc,
                            Some(&format!("job {name:?}")),
                            format!("after: no job named {:?}{hint}", a.v),
                        );
                    }
                }
            }
        }
        edges
    }

    /// Reports each dependency cycle once (a depth-first search over "runs after" edges);
    /// whether there was any.
    fn report_cycles(&mut self, specs: &Specs, edges: &[Vec<usize>]) -> bool {
        let mut state = vec![0u8; specs.len()]; // 0 new, 1 on stack, 2 done
        let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
        let mut any = false;
        for start in 0..specs.len() {
            if state[start] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                let Some(&child) = edges[node].get(*next) else {
                    state[node] = 2;
                    stack.pop();
                    continue;
                };
                *next += 1;
                match state[child] {
                    0 => {
                        state[child] = 1;
                        stack.push((child, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let cycle: Vec<usize> = stack[pos..].iter().map(|(n, _)| *n).collect();
                        let mut key = cycle.clone();
                        key.sort_unstable();
                        any = true;
                        if reported.insert(key) {
                            self.report_cycle(specs, &cycle);
                        }
                    }
                    _ => {}
                }
            }
        }
        any
    }

    /// One cycle (job indices, each running after the next), printed in the direction the
    /// jobs run: parent -> child.
    fn report_cycle(&mut self, specs: &Specs, cycle: &[usize]) {
        let mut names: Vec<&str> = cycle.iter().rev().map(|&n| specs[n].0).collect();
        names.push(names[0]);
        let first = cycle[cycle.len() - 1];
        let (name, loc, spec) = &specs[first];
        let at = spec.after.as_ref().map_or(*loc, |a| a.loc);
        self.sink.error(
            at,
            Some(&format!("job {name:?}")),
            format!("after: dependency cycle {}", names.join(" -> ")),
        );
    }

    /// A job after two jobs or more needs a root (a job that starts pipeline runs) common to
    /// all its parents; otherwise no pipeline run ever has them all.
    fn check_fan_ins(&mut self, specs: &Specs, edges: &[Vec<usize>]) {
        let mut roots: Vec<Option<BTreeSet<usize>>> = vec![None; specs.len()];
        for i in 0..specs.len() {
            if edges[i].len() < 2 {
                continue;
            }
            let sets: Vec<BTreeSet<usize>> = edges[i]
                .iter()
                .map(|&p| roots_of(p, specs, edges, &mut roots))
                .collect();
            let common = sets.iter().skip(1).fold(sets[0].clone(), |acc, s| {
                acc.intersection(s).copied().collect()
            });
            if common.is_empty() {
                let (name, loc, spec) = &specs[i];
                let describe: Vec<String> = edges[i]
                    .iter()
                    .zip(&sets)
                    .map(|(&p, s)| {
                        let r: Vec<&str> = s.iter().map(|&x| specs[x].0).collect();
                        format!("{} (from {})", specs[p].0, r.join(", "))
                    })
                    .collect();
                self.sink.error(
                    spec.after.as_ref().map_or(*loc, |a| a.loc),
                    Some(&format!("job {name:?}")),
                    format!(
                        "after: its parents never run in the same pipeline run, so it could \
                         never start: {}",
                        describe.join("; ")
                    ),
                );
            }
        }
    }
}

/// The roots whose pipeline runs reach job `i`. A job with a schedule, or without `after`,
/// starts pipeline runs of its own. `memo` keeps each job's set once computed.
fn roots_of(
    i: usize,
    specs: &Specs,
    edges: &[Vec<usize>],
    memo: &mut Vec<Option<BTreeSet<usize>>>,
) -> BTreeSet<usize> {
    if let Some(r) = &memo[i] {
        return r.clone();
    }
    let mut r = BTreeSet::new();
    if specs[i].2.scheduled || edges[i].is_empty() {
        r.insert(i);
    }
    for &p in &edges[i] {
        r.extend(roots_of(p, specs, edges, memo));
    }
    memo[i] = Some(r.clone());
    r
}
