//! A job's output: streamed to a file in the state directory, bounded to its tail.
//!
//! Memory stays bounded whatever the job prints. With the usual limits (up to
//! [`MEMORY_MODE_MAX`], default 1 MiB) the tail lives in a ring buffer of `limit` bytes that is
//! written to the file at most once a second and at the end, so a job printing gigabytes
//! costs a memory copy per byte, not a disk write. With a larger limit the file side
//! alternates between two segment files of at most `limit` bytes each, so the last `limit`
//! bytes are always on disk, and at the end they are joined into one file. A small in-memory
//! tail of stdout and of stderr is kept for alerts.
//!
//! In memory mode the file is made when there is first something to write into it: a run
//! that prints nothing has no output file (and its record no `output`). Most cron jobs are
//! silent, and a file made for every run and deleted twenty runs later cost each run a new
//! inode, which on ext4 without a journal means a scan past every inode freed in the last
//! half minute: with 100 jobs at once, half of the daemon's time (issue 21).
//!
//! With `output_to_log`, each line is also handed to the log as it arrives ([`Forward`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::log::{Level, Logger};

/// How much of each stream is kept in memory for alerts.
pub(crate) const MEMORY_TAIL: usize = 64 * 1024;

/// Output limits up to this size keep the tail in memory and write it out periodically.
pub(crate) const MEMORY_MODE_MAX: u64 = 8 << 20;

/// How often a memory-mode tail is written to its file while the job runs.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A ring buffer that keeps the last `cap` bytes written to it.
#[derive(Clone, Debug)]
pub(crate) struct Tail {
    buf: Vec<u8>,
    cap: usize,
    /// Where the next byte goes once the buffer is full.
    head: usize,
    total: u64,
}

impl Tail {
    pub(crate) fn new(cap: usize) -> Tail {
        Tail {
            buf: Vec::new(),
            cap,
            head: 0,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.cap == 0 {
            return;
        }
        if data.len() >= self.cap {
            data = &data[data.len() - self.cap..];
            self.buf.clear();
            self.buf.extend_from_slice(data);
            self.head = 0;
            return;
        }
        if self.buf.len() < self.cap {
            let room = self.cap - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        while !data.is_empty() {
            let n = (self.cap - self.head).min(data.len());
            self.buf[self.head..self.head + n].copy_from_slice(&data[..n]);
            self.head = (self.head + n) % self.cap;
            data = &data[n..];
        }
    }

    /// The kept bytes, oldest first.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        if self.buf.len() < self.cap {
            return self.buf.clone();
        }
        let mut v = Vec::with_capacity(self.cap);
        v.extend_from_slice(&self.buf[self.head..]);
        v.extend_from_slice(&self.buf[..self.head]);
        v
    }

    /// Everything ever pushed, in bytes.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

/// Which stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout = 0,
    Stderr = 1,
}

/// The sink a run's output goes to.
pub(crate) struct Output<'l> {
    limit: u64,
    dir: PathBuf,
    stem: String,
    /// Memory mode: the tail, the final file (once made), and how much of the ring's total
    /// is on disk.
    ring: Option<Ring>,
    /// Segment mode: the segment being written and its length; the other, full one.
    cur: Option<(File, u64, u8)>,
    prev: Option<(File, u64)>,
    pub stdout: Tail,
    pub stderr: Tail,
    /// The first error writing the file, if any: the run goes on, the record says so.
    pub error: Option<String>,
    /// `output_to_log`: the lines to the log.
    forward: Option<Forward<'l>>,
}

struct Ring {
    tail: Tail,
    /// Made at the first write that has something to write.
    file: Option<File>,
    /// `tail.total()` when the file was last brought up to date.
    flushed: u64,
    next_flush: Option<Instant>,
}

impl<'l> Output<'l> {
    /// Output for run `stem` kept in `dir` (created 0700), at most `limit` bytes on disk.
    pub(crate) fn new(dir: &Path, stem: &str, limit: u64) -> Output<'l> {
        let mut out = Output {
            limit,
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            ring: None,
            cur: None,
            prev: None,
            stdout: Tail::new(MEMORY_TAIL),
            stderr: Tail::new(MEMORY_TAIL),
            error: None,
            forward: None,
        };
        if limit == 0 {
            return out;
        }
        if limit <= MEMORY_MODE_MAX {
            out.ring = Some(Ring {
                tail: Tail::new(limit as usize),
                file: None,
                flushed: 0,
                next_flush: None,
            });
            return out;
        }
        let opened = crate::files::ensure_dir(dir).and_then(|()| {
            out.cur = Some((out.open_segment(0)?, 0, 0));
            Ok(())
        });
        if let Err(e) = opened {
            out.error = Some(format!("output file in {}: {e}", dir.display()));
        }
        out
    }

    /// Each line also goes to the log from now on.
    pub(crate) fn forward_to(&mut self, f: Forward<'l>) {
        self.forward = Some(f);
    }

    /// An attempt ended: a last line without its newline goes to the log now, not glued to
    /// the next attempt's first.
    pub(crate) fn end_lines(&mut self) {
        if let Some(f) = self.forward.as_mut() {
            f.end_lines();
        }
    }

    /// When the runner should call [`Output::tick`] next (memory mode with unwritten output).
    pub(crate) fn flush_deadline(&self) -> Option<Instant> {
        self.ring.as_ref().and_then(|r| r.next_flush)
    }

    /// Writes the memory tail to its file if it is due.
    pub(crate) fn tick(&mut self) {
        if self.flush_deadline().is_some_and(|d| Instant::now() >= d) {
            self.flush_ring();
        }
    }

    fn flush_ring(&mut self) {
        let path = self.path();
        let Some(r) = self.ring.as_mut() else {
            return;
        };
        r.next_flush = None;
        let total = r.tail.total();
        if total == r.flushed {
            return;
        }
        if r.file.is_none() {
            match crate::files::ensure_dir(&self.dir).and_then(|()| new_file(&path)) {
                Ok(f) => r.file = Some(f),
                Err(e) => {
                    self.error
                        .get_or_insert(format!("output file {}: {e}", path.display()));
                    self.ring = None;
                    return;
                }
            }
        }
        let Some(f) = r.file.as_ref() else {
            return;
        };
        use std::os::unix::fs::FileExt;
        let result = if total <= r.tail.cap as u64 {
            // Not wrapped yet: append what is new.
            let bytes = r.tail.bytes();
            f.write_all_at(&bytes[r.flushed as usize..], r.flushed)
        } else {
            f.write_all_at(&r.tail.bytes(), 0)
        };
        match result {
            Ok(()) => r.flushed = total,
            Err(e) => {
                self.error
                    .get_or_insert(format!("writing {}: {e}", path.display()));
                self.ring = None;
            }
        }
    }

    fn segment_path(&self, n: u8) -> PathBuf {
        self.dir.join(format!("{}.part{n}", self.stem))
    }

    /// The final file: the kept tail of the run's output.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.stem))
    }

    fn open_segment(&self, n: u8) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.segment_path(n))
    }

    pub(crate) fn write(&mut self, stream: Stream, data: &[u8]) {
        if let Some(f) = self.forward.as_mut() {
            f.push(stream, data);
        }
        match stream {
            Stream::Stdout => self.stdout.push(data),
            Stream::Stderr => self.stderr.push(data),
        }
        if let Some(r) = self.ring.as_mut() {
            r.tail.push(data);
            let due = *r
                .next_flush
                .get_or_insert_with(|| Instant::now() + FLUSH_EVERY);
            if Instant::now() >= due {
                self.flush_ring();
            }
            return;
        }
        if let Err(e) = self.write_file(data) {
            if self.error.is_none() {
                self.error = Some(format!("writing {}: {e}", self.path().display()));
            }
            self.cur = None;
            self.prev = None;
        }
    }

    fn write_file(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let Some((file, len, n)) = self.cur.as_mut() else {
                return Ok(());
            };
            let room = self.limit - *len;
            let take = (room as usize).min(data.len());
            file.write_all(&data[..take])?;
            *len += take as u64;
            data = &data[take..];
            if *len >= self.limit {
                // Swap: the full segment becomes the previous one, the other is reused.
                let next = 1 - *n;
                let full = self.cur.take().map(|(f, l, _)| (f, l));
                let reuse = match self.prev.take() {
                    Some((mut f, _)) => {
                        f.set_len(0)?;
                        f.seek(SeekFrom::Start(0))?;
                        f
                    }
                    None => self.open_segment(next)?,
                };
                self.prev = full;
                self.cur = Some((reuse, 0, next));
            }
        }
        Ok(())
    }

    /// Joins the segments into the final file (the last `limit` bytes) and returns its path,
    /// or `None` when nothing could be kept or, in memory mode, the run printed nothing.
    pub(crate) fn finish(&mut self) -> Option<PathBuf> {
        self.end_lines();
        if self.ring.is_some() {
            self.flush_ring();
            return self.ring.take()?.file.map(|_| self.path());
        }
        let cur = self.cur.take();
        let prev = self.prev.take();
        let (mut cur_file, cur_len, cur_n) = cur?;
        let final_path = self.path();
        let result = (|| -> io::Result<()> {
            match prev {
                None => {
                    cur_file.flush()?;
                    fs::rename(self.segment_path(cur_n), &final_path)?;
                }
                Some((mut prev_file, prev_len)) => {
                    let want_prev = (self.limit - cur_len).min(prev_len);
                    let mut out = OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&final_path)?;
                    prev_file.seek(SeekFrom::Start(prev_len - want_prev))?;
                    io::copy(&mut (&mut prev_file).take(want_prev), &mut out)?;
                    cur_file.seek(SeekFrom::Start(0))?;
                    io::copy(&mut cur_file, &mut out)?;
                    let _ = fs::remove_file(self.segment_path(0));
                    let _ = fs::remove_file(self.segment_path(1));
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => Some(final_path),
            Err(e) => {
                self.error.get_or_insert(format!(
                    "keeping the output in {}: {e}",
                    final_path.display()
                ));
                None
            }
        }
    }
}

/// A new output file, 0600 (one left by a run of the same id is emptied).
fn new_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// The longest line handed to the log: a longer one goes as pieces of at most this many
/// bytes (cut before a UTF-8 sequence, never inside one).
pub(crate) const LINE_MAX: usize = 4096;

/// A run's output lines to the log (`output_to_log`), as they arrive: each complete line (or
/// [`LINE_MAX`] bytes of one) is an `output` event with the job, the run id and the stream.
/// Bytes that are not UTF-8 become U+FFFD, control characters other than a tab are escaped
/// (`\u{1b}`), a line's final carriage return is dropped.
pub(crate) struct Forward<'l> {
    log: &'l Logger,
    fields: [(&'static str, String); 2],
    /// The unfinished line of stdout and of stderr.
    pending: [Vec<u8>; 2],
}

impl<'l> Forward<'l> {
    pub(crate) fn new(log: &'l Logger, job: &str, run_id: &str) -> Forward<'l> {
        Forward {
            log,
            fields: [("job", job.to_string()), ("run_id", run_id.to_string())],
            pending: [Vec::new(), Vec::new()],
        }
    }

    fn push(&mut self, stream: Stream, data: &[u8]) {
        let i = stream as usize;
        self.pending[i].extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &self.pending[i][start..];
            let end = match rest.iter().position(|&b| b == b'\n') {
                Some(nl) if nl <= LINE_MAX => (nl, nl + 1),
                _ if rest.len() >= LINE_MAX => {
                    let cut = piece_end(rest);
                    (cut, cut)
                }
                _ => break,
            };
            let line = printable(&rest[..end.0]);
            self.emit(stream, &line);
            start += end.1;
        }
        self.pending[i].drain(..start);
    }

    fn end_lines(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let i = stream as usize;
            if !self.pending[i].is_empty() {
                let line = printable(&self.pending[i]);
                self.pending[i].clear();
                self.emit(stream, &line);
            }
        }
    }

    fn emit(&self, stream: Stream, line: &str) {
        let name = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        let [job, run] = &self.fields;
        let f = [job.clone(), run.clone(), ("stream", name.to_string())];
        self.log.log(Level::Info, "output", &f, line);
    }
}

/// Where to cut a piece of at most [`LINE_MAX`] bytes from `rest`: not inside a UTF-8
/// sequence (unless the bytes are no UTF-8 anyway).
fn piece_end(rest: &[u8]) -> usize {
    let mut cut = LINE_MAX;
    while cut > LINE_MAX - 4 && rest.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    match cut > LINE_MAX - 4 {
        true => cut,
        false => LINE_MAX,
    }
}

/// A line of output as printable text.
fn printable(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut t = Tail::new(5);
        t.push(b"ab");
        assert_eq!(t.bytes(), b"ab");
        t.push(b"cdefg");
        assert_eq!(t.bytes(), b"cdefg");
        t.push(b"hi");
        assert_eq!(t.bytes(), b"efghi");
        t.push(b"0123456789");
        assert_eq!(t.bytes(), b"56789");
        assert_eq!(t.total(), 19);
    }

    #[test]
    fn memory_mode_keeps_exactly_the_tail() {
        let dir = std::env::temp_dir().join(format!("cw-output-mem-{}", std::process::id()));
        let mut out = Output::new(&dir, "run", 10);
        assert!(out.ring.is_some());
        out.flush_ring();
        assert!(!out.path().exists(), "no file before there is output");
        out.write(Stream::Stdout, b"abc");
        out.flush_ring();
        assert_eq!(fs::read(out.path()).expect("read"), b"abc");
        let mut all = b"abc".to_vec();
        for i in 0..37u8 {
            let chunk = [b'a' + (i % 26); 3];
            all.extend_from_slice(&chunk);
            out.write(Stream::Stdout, &chunk);
        }
        let path = out.finish().expect("kept");
        assert_eq!(fs::read(&path).expect("read"), all[all.len() - 10..]);
        // A run that printed nothing has no file, and no path in its record.
        let mut silent = Output::new(&dir, "silent", 10);
        assert_eq!(silent.finish(), None);
        assert!(silent.error.is_none() && !silent.path().exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_keeps_exactly_the_tail() {
        let dir = std::env::temp_dir().join(format!("cw-output-{}", std::process::id()));
        let limit = MEMORY_MODE_MAX + 10;
        let mut out = Output::new(&dir, "run", limit);
        assert!(out.ring.is_none());
        let mut all = Vec::new();
        for i in 0..37u8 {
            let chunk = vec![b'a' + (i % 26); (MEMORY_MODE_MAX / 4) as usize + 3];
            all.extend_from_slice(&chunk);
            out.write(Stream::Stdout, &chunk);
        }
        let path = out.finish().expect("kept");
        let kept = fs::read(&path).expect("read");
        assert_eq!(kept.len() as u64, limit);
        assert!(kept == all[all.len() - limit as usize..]);
        assert!(!dir.join("run.part0").exists() && !dir.join("run.part1").exists());
        // Short output is kept whole.
        let mut out = Output::new(&dir, "short", 10);
        out.write(Stream::Stderr, b"hello");
        assert_eq!(
            fs::read(out.finish().expect("kept")).expect("read"),
            b"hello"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
