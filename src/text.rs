//! [`Text`]: an immutable string that is a stretch of a shared buffer, so that many short
//! strings (a table's job names, commands and schedule texts) can live in one allocation.
//!
//! Why (issue 21, BENCHMARKS.md "Memory per job, fifth round"): an idle daemon with 100,000
//! jobs kept each job's name, command and schedule text in an allocation of its own, and
//! malloc gives each at least 32 bytes (a 16-byte header, rounded to 16): 112 bytes a job for
//! about 45 bytes of text. [`Pack`] puts the texts of a whole table in one buffer; a `Text`
//! is 16 bytes (a thin pointer to the buffer, an offset and a length), the size of a
//! `Box<str>`. A `Text` made from a single string ([`Text::from`]) owns a buffer of its own.
//!
//! Arena and interning crates (`bumpalo`, `lasso`) were not used: their strings borrow the
//! arena (a lifetime on `Job`) or need the interner to be read, and neither shares a buffer
//! between threads by reference counting, which the jobs of a table (handed to run threads
//! as `Arc<Config>`) need.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A string: bytes `at..at + len` of a shared buffer (16 bytes).
#[derive(Clone)]
pub struct Text {
    buf: Arc<String>,
    at: u32,
    len: u32,
}

/// The longest buffer a [`Text`] can point into (offsets are 4 bytes).
const MAX_BUF: usize = u32::MAX as usize;

impl Text {
    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        let at = self.at as usize;
        // Made only by `From` and `Pack::add`, which keep `at..at + len` on char boundaries
        // within the buffer; "" would stand for a broken one rather than a panic.
        self.buf.get(at..at + self.len as usize).unwrap_or("")
    }

    /// Texts of the parts, all in one buffer: one allocation for the bytes and one for the
    /// shared count, however many parts (a job's name and schedule text at load).
    pub fn joined<const N: usize>(parts: [&str; N]) -> [Text; N] {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > MAX_BUF {
            return parts.map(Text::from);
        }
        let mut buf = String::with_capacity(total);
        let spans = parts.map(|p| {
            let at = buf.len();
            buf.push_str(p);
            (at as u32, p.len() as u32)
        });
        let buf = Arc::new(buf);
        spans.map(|(at, len)| Text {
            buf: Arc::clone(&buf),
            at,
            len,
        })
    }

    /// Whether two texts are stretches of one buffer (for tests of the packing).
    pub fn same_buffer(&self, other: &Text) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }
}

impl Default for Text {
    fn default() -> Text {
        Text::from(String::new())
    }
}

impl From<String> for Text {
    /// A text with a buffer of its own. A string over 4 GiB is cut to its first 4 GiB (at a
    /// char boundary); no table text comes near that (a table file is read whole, with a size
    /// limit).
    fn from(s: String) -> Text {
        let mut len = s.len().min(MAX_BUF);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        Text {
            buf: Arc::new(s),
            at: 0,
            len: len as u32,
        }
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::from(s.to_string())
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text::from(s.as_str())
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_string()
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<std::path::Path> for Text {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(self.as_str())
    }
}

impl AsRef<std::ffi::OsStr> for Text {
    fn as_ref(&self) -> &std::ffi::OsStr {
        std::ffi::OsStr::new(self.as_str())
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Text) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Text) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

/// A filled buffer of a [`Pack`], shared, and the stretches of the texts added to it.
type Filled = (Arc<String>, Vec<(u32, u32)>);

/// Puts many texts into shared buffers: [`Pack::add`] copies a text into the buffer being
/// filled and gives back a [`Text`] of it, [`Pack::finish`] makes the buffer shared. Texts
/// added before `finish` point into it; each buffer holds at most 4 GiB (a new one starts
/// beyond).
pub struct Pack {
    /// The texts added, each a stretch of the buffer being filled, until `finish`.
    pending: Vec<(u32, u32)>,
    buf: String,
    /// Filled buffers, shared.
    done: Vec<Filled>,
}

/// A text added to a [`Pack`]: which buffer and stretch ([`Pack::finish`] resolves it).
#[derive(Clone, Copy, Debug)]
pub struct Packed {
    buffer: u32,
    index: u32,
}

impl Pack {
    /// A pack whose first buffer has room for `capacity` bytes (the sum of the texts' lengths
    /// makes it exact: no room is wasted).
    pub fn with_capacity(capacity: usize) -> Pack {
        Pack {
            pending: Vec::new(),
            buf: String::with_capacity(capacity.min(MAX_BUF)),
            done: Vec::new(),
        }
    }

    /// Copies `s` into the pack.
    pub fn add(&mut self, s: &str) -> Packed {
        if s.len() > MAX_BUF - self.buf.len() {
            let full = std::mem::take(&mut self.buf);
            let spans = std::mem::take(&mut self.pending);
            self.done.push((Arc::new(full), spans));
        }
        let at = self.buf.len();
        // A text over 4 GiB is cut (`Text::from` says why that is never met).
        let mut len = s.len().min(MAX_BUF - at);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        self.buf.push_str(&s[..len]);
        self.pending.push((at as u32, len as u32));
        Packed {
            buffer: self.done.len() as u32,
            index: (self.pending.len() - 1) as u32,
        }
    }

    /// The shared buffers: [`Packed::text`] gives each added text.
    pub fn finish(mut self) -> Packs {
        // Room asked for and not used (a shared text is counted but added once) goes back.
        self.buf.shrink_to_fit();
        let spans = std::mem::take(&mut self.pending);
        self.done.push((Arc::new(self.buf), spans));
        Packs(self.done)
    }
}

/// The buffers of a finished [`Pack`].
pub struct Packs(Vec<Filled>);

impl Packed {
    /// The text as a [`Text`] of its shared buffer.
    pub fn text(self, packs: &Packs) -> Text {
        let found = packs
            .0
            .get(self.buffer as usize)
            .and_then(|(buf, spans)| Some((buf, *spans.get(self.index as usize)?)));
        match found {
            Some((buf, (at, len))) => Text {
                buf: Arc::clone(buf),
                at,
                len,
            },
            // Only a `Packed` of another pack: not made by this crate.
            None => Text::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Text>(), 16);
    }

    #[test]
    fn packed_texts_share_one_buffer_and_read_back() {
        let words = ["j1", "", "/usr/local/bin/job-1 --flag", "0 * * * *", "é ü"];
        let mut pack = Pack::with_capacity(words.iter().map(|w| w.len()).sum());
        let packed: Vec<Packed> = words.iter().map(|w| pack.add(w)).collect();
        let packs = pack.finish();
        let texts: Vec<Text> = packed.into_iter().map(|p| p.text(&packs)).collect();
        for (w, t) in words.iter().zip(&texts) {
            assert_eq!(t.as_str(), *w);
            assert!(t.same_buffer(&texts[0]));
        }
        assert_eq!(packs.0.len(), 1);
        assert_eq!(packs.0[0].0.capacity(), packs.0[0].0.len());
    }

    #[test]
    fn joined_texts_share_one_buffer() {
        let [a, b, c] = Text::joined(["j1", "", "0 * * * *"]);
        assert_eq!(
            (a.as_str(), b.as_str(), c.as_str()),
            ("j1", "", "0 * * * *")
        );
        assert!(a.same_buffer(&b) && a.same_buffer(&c));
    }

    #[test]
    fn texts_compare_and_hash_as_their_strings() {
        let a = Text::from("job");
        let mut pack = Pack::with_capacity(0);
        let p = pack.add("xjob");
        let b = p.text(&pack.finish());
        assert_ne!(a, b);
        assert_eq!(a, "job");
        assert_eq!(a, "job".to_string());
        assert_eq!(format!("{a}/{a:?}"), "job/\"job\"");
        let set: std::collections::HashSet<Text> = [a.clone()].into();
        assert!(set.contains("job"));
    }
}
