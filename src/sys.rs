//! Placeholder until the system-call module lands (merged from the runner branch).

/// Signals a process group (never pid 0, 1 or below).
pub(crate) fn kill_group(pgid: i32, sig: i32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if pgid > 1
        && let Ok(s) = Signal::try_from(sig)
    {
        let _ = killpg(Pid::from_raw(pgid), s);
    }
}

/// Swaps the process's umask around `f`.
pub(crate) fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    use nix::sys::stat::{Mode, umask};
    let old = umask(Mode::from_bits_truncate(mask as nix::libc::mode_t));
    let r = f();
    umask(old);
    r
}

pub(crate) use crate::runner::{poll, pollin};

/// Lets go of the memory that only start-up needed (parsing the command line and the table):
/// the pages of read-only file mappings (this binary, libc, ld.so) are dropped from this
/// process's resident set (the few the idle loop uses fault back in from the page cache),
/// and free heap is returned to the system. A mapping is dropped only when it is not
/// writable and has no anonymous page: dropping a private page that was written (relocated
/// data) would lose its contents. (Dirty page-cache pages of a binary just written are
/// fine: the page cache keeps them.)
pub(crate) fn trim_file_mappings() {
    // SAFETY: glibc's malloc_trim only releases free memory back to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    // First the list, then the madvise calls: code that runs after them (parsing smaps)
    // would fault its pages straight back in.
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    // A candidate: a read-only mapping of a file (this binary, libc, ld.so...), and whether
    // any of its pages is anonymous (copied on write, e.g. relocated data): those must stay.
    let mut current: Option<(usize, usize)> = None;
    let mut anonymous = 0u64;
    let mut take = |cur: Option<(usize, usize)>, anonymous: u64| {
        if let Some(r) = cur
            && anonymous == 0
        {
            ranges.push(r);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            take(current.take(), anonymous);
            anonymous = 0;
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            if !perms.contains('w') && perms.ends_with('p') && path.starts_with('/') {
                current = Some((start, end));
            }
        } else if first == "Anonymous:" {
            anonymous += f.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(1);
        }
    }
    take(current, anonymous);
    drop(smaps);
    for (start, end) in ranges {
        // SAFETY: the range is one of our own private, non-writable mappings of a file with
        // no anonymous (copied) page: every page is the file's, so MADV_DONTNEED only drops
        // it from this process, to be read again from the page cache on use.
        // MADV_RANDOM first: no readahead when they come back. (The kernel still maps up
        // to 64 KiB of cached pages around each fault: a wake-up brings back some of it.)
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_RANDOM);
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}
