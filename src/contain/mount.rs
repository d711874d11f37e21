//! Where cgroups are: the cgroup2 mount in /proc/self/mountinfo (on a hybrid host such as
//! one with cgroup v1 controllers at /sys/fs/cgroup it is e.g. /sys/fs/cgroup/unified), and
//! this process's own cgroup under it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// This process's own cgroup: its directory (the cgroup2 mount point joined with the path
/// of /proc/self/cgroup's `0::` line) and that path. The error says why it cannot be known.
pub(crate) fn own_dir() -> Result<(PathBuf, String), String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("reading {p}: {e}"));
    let mount = cgroup2_mount(&read("/proc/self/mountinfo")?)
        .ok_or("no cgroup2 file system is mounted (none in /proc/self/mountinfo)")?;
    let own = own_cgroup(&read("/proc/self/cgroup")?)
        .ok_or("this process is in no cgroup v2 (no line 0::PATH in /proc/self/cgroup)")?;
    let dir = mount.dir_of(&own).ok_or_else(|| {
        format!(
            "this process's cgroup {own} is outside the cgroup2 mount at {} (whose root is {})",
            mount.dir.display(),
            mount.root
        )
    })?;
    Ok((dir, own))
}

/// The cgroup v2 controllers this process's own cgroup offers: its directory (the cgroup2
/// mount point joined with the path of /proc/self/cgroup's `0::` line) and the words of its
/// `cgroup.controllers`. The error says why none can be known (no cgroup2 mounted, a file
/// that cannot be read), naming the file.
pub(crate) fn host_controllers() -> Result<(PathBuf, Vec<String>), String> {
    let (dir, _) = own_dir()?;
    let file = dir.join("cgroup.controllers");
    let text =
        std::fs::read_to_string(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    Ok((dir, text.split_whitespace().map(str::to_string).collect()))
}

/// A mount of the cgroup2 file system.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cgroup2Mount {
    /// Where it is mounted: `/sys/fs/cgroup`, `/sys/fs/cgroup/unified` on hybrid hosts.
    pub(crate) dir: PathBuf,
    /// The cgroup of the hierarchy shown at `dir` (`/` unless only a subtree is mounted).
    pub(crate) root: String,
}

impl Cgroup2Mount {
    /// The directory of the cgroup `path` (as /proc/self/cgroup writes it) under this mount;
    /// `None` when the cgroup is not inside the mounted subtree.
    pub(crate) fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let root = self.root.trim_end_matches('/');
        let rest = path.strip_prefix(root)?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        let rest = rest.trim_start_matches('/');
        Some(if rest.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(rest)
        })
    }
}

/// The first cgroup2 mount of a /proc/self/mountinfo text. Each line is `ID PARENT MAJ:MIN
/// ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS`; ROOT and MOUNTPOINT
/// have spaces, tabs, newlines and backslashes escaped in octal (`\040`).
pub(crate) fn cgroup2_mount(mountinfo: &str) -> Option<Cgroup2Mount> {
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        // The optional fields end at the first lone "-" after the six fixed fields.
        let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
        if *fields.get(sep + 1)? != "cgroup2" {
            return None;
        }
        let root = String::from_utf8_lossy(&unescape(fields.get(3)?)).into_owned();
        let dir = PathBuf::from(OsString::from_vec(unescape(fields.get(4)?)));
        Some(Cgroup2Mount { dir, root })
    })
}

/// A mountinfo path field with its octal escapes (`\040`) turned back into bytes.
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| {
            b[i] == b'\\' && d[0] <= b'3' && d.iter().all(|c| (b'0'..=b'7').contains(c))
        });
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| (n << 3) | (c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// The cgroup v2 path of a /proc/self/cgroup text: the path of its `0::PATH` line.
pub(crate) fn own_cgroup(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end_matches(" (deleted)").to_string())
        .filter(|p| p.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_hybrid_and_pure_v2() {
        let hybrid = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let unified = Cgroup2Mount {
            dir: PathBuf::from("/sys/fs/cgroup/unified"),
            root: "/".to_string(),
        };
        assert_eq!(cgroup2_mount(hybrid), Some(unified));
        let v2 = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate
";
        let m = cgroup2_mount(v2).expect("a cgroup2 mount");
        assert_eq!(m.dir, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(m.root, "/");
        let v1 = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(cgroup2_mount(v1), None);
        assert_eq!(cgroup2_mount(""), None);
        assert_eq!(cgroup2_mount("garbage\n41 31 0:38 / /x\n"), None);
    }

    #[test]
    fn mountinfo_escapes_and_odd_fields() {
        // A mount point with a space, a tab and a backslash, an optional field.
        let text = "50 1 0:40 /sub\\040tree /mnt/my\\040cg\\011x\\134y rw master:1 - cgroup2 \
                    none rw\n";
        let m = cgroup2_mount(text).expect("a cgroup2 mount");
        assert_eq!(m.dir, PathBuf::from("/mnt/my cg\tx\\y"));
        assert_eq!(m.root, "/sub tree");
        assert_eq!(unescape("a\\9zz\\04"), b"a\\9zz\\04");
        assert_eq!(unescape("\\400"), b"\\400");
    }

    #[test]
    fn own_cgroup_from_proc_self_cgroup() {
        let hybrid = "9:name=systemd:/\n4:memory:/process_api/3e2d\n1:cpu:/\n0::/\n";
        assert_eq!(own_cgroup(hybrid).as_deref(), Some("/"));
        let v2 = "0::/system.slice/cronwarden.service\n";
        assert_eq!(
            own_cgroup(v2).as_deref(),
            Some("/system.slice/cronwarden.service")
        );
        assert_eq!(own_cgroup("0::/gone (deleted)\n").as_deref(), Some("/gone"));
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
        assert_eq!(own_cgroup(""), None);
    }

    #[test]
    fn cgroup_dirs_under_a_mount() {
        let m = Cgroup2Mount {
            dir: PathBuf::from("/sys/fs/cgroup"),
            root: "/".to_string(),
        };
        assert_eq!(m.dir_of("/"), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(
            m.dir_of("/system.slice/x.service"),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/x.service"))
        );
        let sub = Cgroup2Mount {
            dir: PathBuf::from("/sys/fs/cgroup"),
            root: "/docker/abc".to_string(),
        };
        assert_eq!(
            sub.dir_of("/docker/abc"),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            sub.dir_of("/docker/abc/run"),
            Some(PathBuf::from("/sys/fs/cgroup/run"))
        );
        assert_eq!(sub.dir_of("/docker/abcd"), None);
        assert_eq!(sub.dir_of("/other"), None);
    }

    #[test]
    fn host_controllers_reads_this_host() {
        // Whatever this host has: a directory that exists and a list, or a reason.
        match host_controllers() {
            Ok((dir, list)) => {
                assert!(
                    dir.join("cgroup.controllers").is_file(),
                    "{}",
                    dir.display()
                );
                assert!(list.iter().all(|c| !c.is_empty()), "{list:?}");
            }
            Err(why) => assert!(why.contains("cgroup"), "{why}"),
        }
    }
}
