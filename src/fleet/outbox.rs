//! The fleet's outbox: what a node must tell the database about its runs (a run's end, a
//! fenced run handed over, a lease to release) is written here first, one file per entry
//! under `STATE_DIR/fleet-outbox/`, durably, and removed only once the database has it.
//! A node that cannot reach the database (a partition, a restart of PostgreSQL) keeps its
//! entries, and whichever cronwarden process of this host next reaches the database
//! replays them, oldest first, before anything else (`report`). So a run that ended while
//! the database was away is written as it ended, never left `running` for another node to
//! declare lost and run again.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::record::RunRecord;

/// One thing the database must be told.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(super) enum Entry {
    /// How a run ended, with the process (incarnation) that ran it.
    End {
        record: Box<RunRecord>,
        scheduled_ms: i64,
        node: String,
        incarnation: String,
    },
    /// A run this node fenced: handed over to whichever node takes it.
    Abandon {
        job: String,
        run_id: String,
        incarnation: String,
    },
    /// A lease the run no longer holds.
    Release {
        job: String,
        run_id: String,
        incarnation: String,
    },
}

impl Entry {
    pub(super) fn run_id(&self) -> &str {
        match self {
            Entry::End { record, .. } => &record.run_id,
            Entry::Abandon { run_id, .. } | Entry::Release { run_id, .. } => run_id,
        }
    }

    pub(super) fn job(&self) -> &str {
        match self {
            Entry::End { record, .. } => &record.job,
            Entry::Abandon { job, .. } | Entry::Release { job, .. } => job,
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Entry::End { .. } => "end",
            Entry::Abandon { .. } => "hand-over",
            Entry::Release { .. } => "lease release",
        }
    }
}

/// The outbox directory of one host (shared by its daemon and its `run` processes).
pub(super) struct Outbox {
    dir: PathBuf,
    seq: AtomicU64,
}

/// An entry read back: its file and what it holds (or why it cannot be read).
pub(super) struct Pending {
    pub(super) path: PathBuf,
    pub(super) entry: Result<Entry, String>,
}

impl Outbox {
    pub(super) fn new(state_dir: &Path) -> Outbox {
        Outbox {
            dir: state_dir.join("fleet-outbox"),
            seq: AtomicU64::new(0),
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `entry` durably; its file name orders it after every entry written before.
    pub(super) fn push(&self, entry: &Entry) -> io::Result<PathBuf> {
        let now = jiff::Timestamp::now().as_nanosecond();
        let name = format!(
            "{now:020}-{}-{}.json",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.dir.join(name);
        let text = serde_json::to_vec(entry).map_err(io::Error::other)?;
        if !self.dir.is_dir() {
            // Private: the records may name what the jobs did.
            crate::files::ensure_dir(&self.dir)?;
            std::fs::set_permissions(
                &self.dir,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )?;
        }
        crate::files::write_atomic(&path, &text)?;
        Ok(path)
    }

    /// Whether anything waits (one directory read; no directory is nothing).
    pub(super) fn is_empty(&self) -> bool {
        self.count_up_to(1) == 0
    }

    /// How many entries wait, counting no further than `most` (one directory read, no
    /// entry read).
    pub(super) fn count_up_to(&self, most: usize) -> usize {
        std::fs::read_dir(&self.dir).map_or(0, |d| {
            d.flatten()
                .filter(|e| is_entry(&e.file_name()))
                .take(most)
                .count()
        })
    }

    /// The waiting entries, oldest first.
    pub(super) fn pending(&self) -> Vec<Pending> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = dir
            .flatten()
            .filter(|e| is_entry(&e.file_name()))
            .map(|e| e.path())
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let entry = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
                Pending { path, entry }
            })
            .collect()
    }

    /// Removes a delivered entry (another process may have delivered and removed it).
    pub(super) fn done(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    /// Moves an entry that cannot be read aside (`NAME.bad`), so that it stops the replay
    /// of none of the others and stays for a person to look at.
    pub(super) fn set_aside(&self, path: &Path) -> PathBuf {
        let bad = path.with_extension("bad");
        let _ = std::fs::rename(path, &bad);
        bad
    }
}

fn is_entry(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    !name.starts_with('.') && name.ends_with(".json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(run_id: &str) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "run_id": run_id, "job": "backup", "scheduled": "2026-12-01T03:00:00Z",
            "started": "2026-12-01T03:00:00Z", "ended": "2026-12-01T03:00:05Z",
            "duration_ms": 5000, "attempts": [], "outcome": "success", "trigger": "schedule"
        }))
        .expect("a record")
    }

    #[test]
    fn entries_come_back_in_the_order_written_and_go_when_done() {
        let tmp = std::env::temp_dir().join(format!("cw-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let ob = Outbox::new(&tmp);
        assert!(ob.is_empty());
        for id in ["r1", "r2", "r3"] {
            let e = Entry::End {
                record: Box::new(record(id)),
                scheduled_ms: 1,
                node: "n1".into(),
                incarnation: "n1-1".into(),
            };
            ob.push(&e).expect("pushed");
        }
        ob.push(&Entry::Release {
            job: "backup".into(),
            run_id: "r3".into(),
            incarnation: "n1-1".into(),
        })
        .expect("pushed");
        assert_eq!(ob.count_up_to(2), 2);
        assert_eq!(ob.count_up_to(10), 4);
        std::fs::write(ob.dir().join("9-garbage.json"), b"{not json").expect("write");
        let p = ob.pending();
        let ids: Vec<String> = p
            .iter()
            .filter_map(|p| {
                p.entry
                    .as_ref()
                    .ok()
                    .map(|e| format!("{} {}", e.kind(), e.run_id()))
            })
            .collect();
        assert_eq!(ids, ["end r1", "end r2", "end r3", "lease release r3"]);
        let bad = p
            .iter()
            .find(|p| p.entry.is_err())
            .expect("the broken entry");
        let aside = ob.set_aside(&bad.path);
        assert!(aside.exists());
        for p in p.iter().filter(|p| p.entry.is_ok()) {
            ob.done(&p.path);
        }
        assert!(ob.is_empty(), "{:?}", ob.pending().len());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
