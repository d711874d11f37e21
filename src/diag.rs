//! Diagnostics for the operator: what is wrong, where (file:line:col), in which job or channel,
//! and what is allowed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A position in one of the loaded files: the file's number in [`Sink::files`] and a byte
/// offset into its text, turned into a line and a column only when a diagnostic is made.
/// Both are `u32` (a table holds at most 16 MiB in a few files): a job's keys as written
/// carry one `Loc` each, and with `usize`s a 10,000-job table's keys took 19 MB until the
/// jobs were built (issue 21).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Loc {
    pub file: u32,
    pub offset: u32,
}

impl Loc {
    /// The position `offset` of file `file`; a number past `u32::MAX` (which no table that
    /// can be loaded reaches) becomes `u32::MAX`: the end of the text, or no known file.
    pub fn new(file: usize, offset: usize) -> Loc {
        Loc {
            file: u32::try_from(file).unwrap_or(u32::MAX),
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the file as a whole.
    pub line: usize,
    pub col: usize,
    /// `job "backup"`, `alert channel "ops"`, `[settings]`, ...
    pub subject: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {sev}: ")?;
        if let Some(s) = &self.subject {
            write!(f, "{s}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// One loaded file's text, kept to turn byte offsets into lines and columns. The text is
/// shared with the loader, not copied.
pub struct SourceFile {
    pub path: PathBuf,
    pub text: Arc<String>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: impl Into<Arc<String>>) -> SourceFile {
        let text = text.into();
        let mut line_starts = Vec::with_capacity(text.len() / 16 + 1);
        line_starts.push(0);
        // memchr's vectorised search: `match_indices('\n')` took 83 million instructions for
        // the 10.4 MB table of 100,000 jobs (callgrind).
        line_starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Collects diagnostics while a table is loaded.
#[derive(Default)]
pub struct Sink {
    pub files: Vec<SourceFile>,
    pub diags: Vec<Diagnostic>,
}

impl Sink {
    pub fn add_file(&mut self, path: PathBuf, text: impl Into<Arc<String>>) -> usize {
        self.files.push(SourceFile::new(path, text));
        self.files.len() - 1
    }

    pub fn path(&self, file: usize) -> &Path {
        &self.files[file].path
    }

    fn push(&mut self, severity: Severity, loc: Loc, subject: Option<&str>, message: String) {
        let (path, (line, col)) = match self.files.get(loc.file as usize) {
            Some(f) => (f.path.clone(), f.line_col(loc.offset as usize)),
            None => (PathBuf::from("?"), (0, 0)),
        };
        self.diags.push(Diagnostic {
            severity,
            file: path,
            line,
            col,
            subject: subject.map(str::to_string),
            message,
        });
    }

    pub fn error(&mut self, loc: Loc, subject: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Error, loc, subject, message.into());
    }

    pub fn warning(&mut self, loc: Loc, subject: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Warning, loc, subject, message.into());
    }

    /// A problem with a whole file (no position).
    pub fn file_error(&mut self, path: &Path, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            severity: Severity::Error,
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            subject: None,
            message: message.into(),
        });
    }

    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(|d| d.severity == Severity::Error)
    }
}

/// The closest candidate to a misspelt word, for "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= (c.len() / 3).max(1) || lower.eq_ignore_ascii_case(c))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let f = SourceFile::new("x".into(), "ab\ncdé\nf".to_string());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        assert_eq!(f.line_col(7), (2, 4));
        assert_eq!(f.line_col(8), (3, 1));
    }

    #[test]
    fn a_loc_past_u32_points_at_no_file_and_the_end_of_the_text() {
        let mut sink = Sink::default();
        sink.add_file("x".into(), "ab\ncd".to_string());
        let far = Loc::new(usize::MAX, usize::MAX);
        assert_eq!((far.file, far.offset), (u32::MAX, u32::MAX));
        sink.error(far, None, "m");
        sink.error(Loc::new(0, usize::MAX), None, "m");
        assert_eq!(sink.diags[0].file, PathBuf::from("?"));
        assert_eq!((sink.diags[1].line, sink.diags[1].col), (2, 3));
    }

    #[test]
    fn suggestions() {
        let keys = ["retries", "retry_delay", "timeout"];
        assert_eq!(suggest("retrys", keys), Some("retries"));
        assert_eq!(suggest("timeuot", keys), Some("timeout"));
        assert_eq!(suggest("banana", keys), None);
    }
}
