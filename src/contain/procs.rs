//! The process fallback's view of a run: a walk of /proc. A process belongs to the run when
//! it descends from the attempt's main process (by parent), is in its process group, or
//! carries the run's id in its environment (`CRONWARDEN_RUN_ID`, which every process of the
//! run inherits unless it clears its environment) and descends from this process. With this
//! process a child subreaper, orphans of the run (setsid, double fork) are re-parented to
//! it, so they stay its descendants.

use std::collections::{HashMap, HashSet};
use std::fs;

/// One process as /proc/PID/stat shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Proc {
    pub(crate) pid: i32,
    pub(crate) ppid: i32,
    pub(crate) pgid: i32,
    /// Exited but not reaped yet (or dead).
    pub(crate) zombie: bool,
    /// Clock ticks after boot: with the pid, names a process even after its pid is reused.
    pub(crate) start: u64,
}

/// Parses /proc/PID/stat: "pid (comm) S ppid pgrp session ... starttime ..." (comm may hold
/// spaces and parentheses, so the fields are counted from the last ')').
pub(crate) fn parse_stat(text: &str) -> Option<Proc> {
    let (head, rest) = text.rsplit_once(") ")?;
    let pid = head.split_once(' ')?.0.trim().parse().ok()?;
    let f: Vec<&str> = rest.split(' ').collect();
    // After comm: state(0) ppid(1) pgrp(2) session(3) ... starttime is field 22 of the
    // whole line, the 20th after comm.
    Some(Proc {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        pgid: f.get(2)?.parse().ok()?,
        zombie: matches!(*f.first()?, "Z" | "X"),
        start: f.get(19)?.parse().ok()?,
    })
}

/// Every process now (those that vanish during the walk are left out).
pub(crate) fn all() -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .collect()
}

/// One process, if it exists.
pub(crate) fn one(pid: i32) -> Option<Proc> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The pids of `roots` and everything below them by parent.
pub(crate) fn descendants(procs: &[Proc], roots: &[i32]) -> HashSet<i32> {
    let mut kids: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in procs {
        kids.entry(p.ppid).or_default().push(p.pid);
    }
    let mut seen: HashSet<i32> = HashSet::new();
    let mut todo: Vec<i32> = roots.to_vec();
    while let Some(pid) = todo.pop() {
        if seen.insert(pid)
            && let Some(k) = kids.get(&pid)
        {
            todo.extend(k);
        }
    }
    seen
}

/// Whether an environment block (/proc/PID/environ: NUL-separated `K=V`) holds `entry`.
pub(crate) fn environ_has(environ: &[u8], entry: &[u8]) -> bool {
    environ.split(|b| *b == 0).any(|e| e == entry)
}

/// Whether the process `pid` carries the run's `marker` and is one of the job's: an alert
/// command about the run carries its run id too, with `CRONWARDEN_EVENT`, and is not.
fn of_run(pid: i32, marker: &[u8]) -> bool {
    fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| {
        environ_has(&e, marker)
            && !e
                .split(|b| *b == 0)
                .any(|v| v.starts_with(b"CRONWARDEN_EVENT="))
    })
}

/// The live processes of a run: see the module's doc. `main` is the attempt's main process
/// (also its process group), `me` this process, `marker` the `CRONWARDEN_RUN_ID=...` entry,
/// `released` processes the run let go of (`leftovers = "keep"`), by pid and start.
pub(crate) fn members(
    main: i32,
    me: i32,
    marker: &[u8],
    released: &HashSet<(i32, u64)>,
) -> Vec<Proc> {
    let procs = all();
    let below_main = descendants(&procs, &[main]);
    let below_me = descendants(&procs, &[me]);
    procs
        .into_iter()
        .filter(|p| !p.zombie && p.pid != me && !released.contains(&(p.pid, p.start)))
        .filter(|p| {
            below_main.contains(&p.pid)
                || p.pgid == main
                || (below_me.contains(&p.pid) && of_run(p.pid, marker))
        })
        .collect()
}

/// The live processes of the run whose environment carries `marker`
/// (`CRONWARDEN_RUN_ID=...`), among all of the host's that this process may read.
pub(crate) fn carrying(marker: &[u8]) -> Vec<Proc> {
    all()
        .into_iter()
        .filter(|p| !p.zombie && of_run(p.pid, marker))
        .collect()
}

/// A process's command line for a person: its arguments joined by spaces, or `[comm]` for
/// one without (a kernel thread, a zombie), or `?` when it is gone.
pub(crate) fn command_line(pid: i32) -> String {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) if !raw.is_empty() => {
            let parts: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let line = parts.join(" ");
            match line.char_indices().nth(200) {
                Some((i, _)) => format!("{}...", &line[..i]),
                None => line,
            }
        }
        _ => fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| format!("[{}]", c.trim_end()))
            .unwrap_or_else(|_| "?".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "4242 (sle ep) (x)) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 5 6 7";
        let p = parse_stat(line).expect("parses");
        assert_eq!(
            p,
            Proc {
                pid: 4242,
                ppid: 1,
                pgid: 4240,
                zombie: false,
                start: 987654
            }
        );
        assert!(
            parse_stat("12 (z) Z 1 12 12 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5")
                .is_some_and(|p| p.zombie)
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn descendants_follow_parents_down_only() {
        let p = |pid, ppid| Proc {
            pid,
            ppid,
            pgid: pid,
            zombie: false,
            start: 0,
        };
        let procs = [p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(20, 1), p(21, 20)];
        let d = descendants(&procs, &[10]);
        assert_eq!(d, HashSet::from([10, 11, 12]));
    }

    #[test]
    fn the_marker_must_be_a_whole_entry() {
        let env = b"PATH=/bin\0CRONWARDEN_RUN_ID=abc-1\0HOME=/\0";
        assert!(environ_has(env, b"CRONWARDEN_RUN_ID=abc-1"));
        assert!(!environ_has(env, b"CRONWARDEN_RUN_ID=abc"));
        assert!(!environ_has(
            b"X=CRONWARDEN_RUN_ID=abc-1",
            b"CRONWARDEN_RUN_ID=abc-1"
        ));
    }

    #[test]
    fn this_process_is_found_with_its_command_line() {
        let me = std::process::id() as i32;
        let p = one(me).expect("/proc/self");
        assert_eq!(p.pid, me);
        assert!(!p.zombie);
        assert!(all().iter().any(|q| q.pid == me));
        assert!(!command_line(me).is_empty());
        assert_eq!(command_line(-5), "?");
    }
}
