//! `reload_on_change`: the table's files watched with inotify, and a reload once the writes
//! settle.
//!
//! What is watched is the directory of each file of the table (the main file and every
//! included one), for that file's name only, and the directory of each `include` pattern,
//! for the names the pattern matches (a new drop-in file counts). A path through symbolic
//! links is followed link by link and each link is watched by name too: a Kubernetes
//! ConfigMap volume (`jobs.toml -> ..data/jobs.toml`, `..data -> ..2024_…`) is updated by
//! renaming a new `..data` link over the old one, which is seen as such. Editors that write
//! in place (close after writing), write a new file and rename it over the old one, or
//! delete and create are all seen.
//!
//! The watch is one inotify descriptor in the loop's poll set: while nothing changes it
//! adds no wake-up. An event about a watched name (re)starts the settling time ([`SETTLE`]);
//! when it has passed without another, the loop reloads the table exactly as on SIGHUP,
//! and the watch is made again (the links may point elsewhere now, the includes may have
//! changed). Other files changing in a watched directory wake the loop once, no reload.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::config::Config;
use crate::log::{Level, Logger};

/// How long the table's files must stay unchanged before the reload: an editor's or
/// `kubectl`'s writes come in bursts.
pub(super) const SETTLE: Duration = Duration::from_millis(300);

/// At most this many symbolic links are followed on one path (as the kernel's ELOOP).
const MAX_LINKS: usize = 40;

/// The names that matter in one watched directory.
#[derive(Default)]
struct Names {
    exact: HashSet<OsString>,
    patterns: Vec<glob::Pattern>,
}

impl Names {
    fn matches(&self, name: &OsStr) -> bool {
        self.exact.contains(name)
            || name
                .to_str()
                .is_some_and(|n| self.patterns.iter().any(|p| p.matches(n)))
    }
}

/// The watch on the table's files.
pub(super) struct Changes {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, Names>,
    /// A watched name changed: the reload is due at this instant unless more changes come.
    due: Option<Instant>,
    /// What was watched: compared after a reload to know whether to watch anew.
    watched: Vec<(PathBuf, OsString)>,
}

impl Changes {
    /// Watches the files of `cfg`; a directory that cannot be watched is logged and left
    /// out. `None` (logged) when inotify itself is not available.
    pub(super) fn watch(cfg: &Config, log: &Logger) -> Option<Changes> {
        let flags = InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC;
        let inotify = match Inotify::init(flags) {
            Ok(i) => i,
            Err(e) => {
                let msg = format!("cannot watch the table (inotify: {e}); reload with SIGHUP");
                log.log(Level::Error, "reload-on-change", &[], &msg);
                return None;
            }
        };
        let mut c = Changes {
            inotify,
            dirs: HashMap::new(),
            due: None,
            watched: Vec::new(),
        };
        for (dir, name) in watch_list(cfg) {
            c.add(&dir, Some(&name), log);
            c.watched.push((dir, name));
        }
        for pattern in &cfg.include_patterns {
            c.add_pattern(pattern, log);
        }
        Some(c)
    }

    /// Whether watching `cfg` means watching other names than now.
    pub(super) fn differs(&self, cfg: &Config) -> bool {
        self.watched != watch_list(cfg)
    }

    fn add(&mut self, dir: &Path, name: Option<&OsStr>, log: &Logger) -> Option<&mut Names> {
        let mask = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_ONLYDIR;
        match self.inotify.add_watch(dir, mask) {
            Ok(wd) => {
                let names = self.dirs.entry(wd).or_default();
                if let Some(n) = name {
                    names.exact.insert(n.to_os_string());
                }
                Some(names)
            }
            Err(e) => {
                let f = [("dir", dir.display().to_string())];
                let msg = format!("cannot watch this directory: {e}; its changes need a SIGHUP");
                log.log(Level::Warn, "reload-on-change", &f, &msg);
                None
            }
        }
    }

    /// The directory of an `include` pattern, for the names it matches (a pattern with
    /// wildcards in its directory part is watched through the files it matched only).
    fn add_pattern(&mut self, pattern: &Path, log: &Logger) {
        let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
            return;
        };
        let dir_text = dir.to_string_lossy();
        if dir_text.contains(['*', '?', '[']) {
            return;
        }
        let Ok(p) = glob::Pattern::new(&name.to_string_lossy()) else {
            return;
        };
        if let Some(names) = self.add(dir, None, log) {
            names.patterns.push(p);
        }
    }

    /// The descriptor for the loop's poll set.
    pub(super) fn fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }

    /// Reads the pending events: one about a watched name (or a lost queue) puts the reload
    /// at `now` + [`SETTLE`]. Returns the first such name, for the log.
    pub(super) fn take_events(&mut self, now: Instant) -> Option<String> {
        let mut first = None;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                let overflow = e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW);
                let relevant = overflow
                    || e.name.as_deref().is_some_and(|n| {
                        self.dirs.get(&e.wd).is_some_and(|names| names.matches(n))
                    });
                if relevant {
                    self.due = Some(now + SETTLE);
                    let name = e.name.map(|n| n.to_string_lossy().into_owned());
                    first = first.or(Some(name.unwrap_or_else(|| "(many)".into())));
                }
            }
        }
        first
    }

    /// When the reload is due, if a change is waiting for it.
    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }
}

/// The (directory, name) pairs to watch for the table's files: each file, and each
/// symbolic link on the way to it.
fn watch_list(cfg: &Config) -> Vec<(PathBuf, OsString)> {
    let mut out = Vec::new();
    let files = std::iter::once(&cfg.path).chain(cfg.files.iter().skip(1));
    for f in files {
        let abs = match f.is_absolute() {
            true => f.clone(),
            false => std::env::current_dir().unwrap_or_default().join(f),
        };
        for pair in links_and_file(&abs) {
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
    }
    out
}

/// One element of a path still to resolve.
enum Step {
    Root,
    Up,
    Name(OsString),
}

fn steps(p: &Path) -> Vec<Step> {
    use std::path::Component;
    p.components()
        .filter_map(|c| match c {
            Component::RootDir => Some(Step::Root),
            Component::ParentDir => Some(Step::Up),
            Component::Normal(n) => Some(Step::Name(n.to_os_string())),
            Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Resolves the absolute `path` link by link: every symbolic link met, as (its directory,
/// its name), then the file it ends at. A path that does not resolve ends where it stops.
fn links_and_file(path: &Path) -> Vec<(PathBuf, OsString)> {
    let mut out = Vec::new();
    let mut rest: VecDeque<Step> = steps(path).into();
    let mut at = PathBuf::from("/");
    let mut links = 0;
    let mut last: Option<(PathBuf, OsString)> = None;
    while let Some(step) = rest.pop_front() {
        match step {
            Step::Root => at = PathBuf::from("/"),
            Step::Up => {
                at.pop();
            }
            Step::Name(name) => {
                let next = at.join(&name);
                let is_link =
                    std::fs::symlink_metadata(&next).is_ok_and(|m| m.file_type().is_symlink());
                let target = match is_link && links < MAX_LINKS {
                    true => std::fs::read_link(&next).ok(),
                    false => None,
                };
                last = Some((at.clone(), name.clone()));
                match target {
                    Some(t) => {
                        links += 1;
                        out.push((at.clone(), name));
                        for s in steps(&t).into_iter().rev() {
                            rest.push_front(s);
                        }
                    }
                    None => at = next,
                }
            }
        }
    }
    if let Some(pair) = last
        && !out.contains(&pair)
    {
        out.push(pair);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_configmap_style_chain_of_links() {
        let dir = std::env::temp_dir().join(format!("cw-changes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("..2026_01")).expect("mkdir");
        std::fs::write(dir.join("..2026_01/jobs.toml"), "").expect("write");
        std::os::unix::fs::symlink("..2026_01", dir.join("..data")).expect("link");
        std::os::unix::fs::symlink("..data/jobs.toml", dir.join("jobs.toml")).expect("link");
        let got = links_and_file(&dir.join("jobs.toml"));
        let want = vec![
            (dir.clone(), OsString::from("jobs.toml")),
            (dir.clone(), OsString::from("..data")),
            (dir.join("..2026_01"), OsString::from("jobs.toml")),
        ];
        assert_eq!(got, want);
        // A plain file: its directory and name.
        let plain = links_and_file(&dir.join("..2026_01/jobs.toml"));
        assert_eq!(plain, vec![(dir.join("..2026_01"), "jobs.toml".into())]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
