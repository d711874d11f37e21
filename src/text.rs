//! [`Text`]: an immutable string that is a stretch of a shared buffer, so that many short
//! strings (a table's job names, commands and schedule texts) can live in one allocation.
//!
//! Why (issue 21, BENCHMARKS.md "Memory per job, fifth round"): an idle daemon with 100,000
//! jobs kept each job's name, command and schedule text in an allocation of its own, and
//! malloc gives each at least 32 bytes (a 16-byte header, rounded to 16): 112 bytes a job for
//! about 48 bytes of text. [`Pack`] puts the texts of a whole table in one buffer; a `Text`
//! is 16 bytes, the size of a `Box<str>`. A `Text` made from a single string
//! ([`Text::from`]) has a buffer of its own; [`Text::joined`] puts a few in one.
//!
//! The buffer and the stretches are `arcstr`'s `ArcStr` (a thin pointer to one allocation
//! holding the count and the bytes) and `Substr` (an `ArcStr` and two 4-byte offsets). The
//! offsets limit a buffer to 4 GiB; the texts of a table are at most the table's size (16
//! MiB, `config::table_file`), and a longer buffer is never made here (texts beyond it
//! get buffers of their own).

use std::fmt;
use std::ops::Deref;

use arcstr::{ArcStr, Substr};

/// A string: a stretch of a shared buffer (16 bytes).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(Substr);

/// The longest buffer a [`Text`] can point into (`Substr`'s offsets are 4 bytes).
const MAX_BUF: usize = u32::MAX as usize;

impl Text {
    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// A text of its own buffer (`s` is at most [`MAX_BUF`] bytes).
    fn of(s: &str) -> Text {
        Text(Substr::full(ArcStr::from(s)))
    }

    /// Texts of the parts, all in one buffer: one allocation however many parts (a job's
    /// name and schedule text at load).
    pub fn joined<const N: usize>(parts: [&str; N]) -> [Text; N] {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > MAX_BUF {
            return parts.map(Text::from);
        }
        let copied = ArcStr::init_with(total, |buf| {
            let mut at = 0;
            for p in parts {
                buf[at..at + p.len()].copy_from_slice(p.as_bytes());
                at += p.len();
            }
        });
        // The parts are `str`s: their concatenation is UTF-8.
        let Ok(buf) = copied else {
            return parts.map(Text::from);
        };
        let mut at = 0;
        parts.map(|p| {
            at += p.len();
            Text(buf.substr(at - p.len()..at))
        })
    }

    /// Whether two texts are stretches of one buffer (for tests of the packing).
    pub fn same_buffer(&self, other: &Text) -> bool {
        ArcStr::ptr_eq(self.0.parent(), other.0.parent())
    }
}

impl From<&str> for Text {
    /// A text with a buffer of its own. A string over 4 GiB (never a table's: see the module
    /// documentation) is cut to its first 4 GiB, at a char boundary.
    fn from(s: &str) -> Text {
        let mut len = s.len().min(MAX_BUF);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        Text::of(&s[..len])
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text::from(s.as_str())
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

/// Puts many texts into one shared buffer: [`Pack::add`] copies a text into the buffer being
/// filled and tells where it is, [`Pack::finish`] makes the buffer shared, and
/// [`Packed::text`] gives each text added as a [`Text`] of it.
pub struct Pack {
    buf: String,
    /// The texts that did not fit in a buffer of 4 GiB (never a table's).
    own: Vec<Text>,
}

/// Where a text added to a [`Pack`] is.
#[derive(Clone, Copy, Debug)]
pub enum Packed {
    /// A stretch of the shared buffer.
    At(u32, u32),
    /// The text of its own, by its index.
    Own(usize),
}

impl Pack {
    /// A pack with room for `capacity` bytes (the sum of the texts' lengths makes it exact).
    pub fn with_capacity(capacity: usize) -> Pack {
        Pack {
            buf: String::with_capacity(capacity.min(MAX_BUF)),
            own: Vec::new(),
        }
    }

    /// Copies `s` into the pack.
    pub fn add(&mut self, s: &str) -> Packed {
        if s.len() > MAX_BUF - self.buf.len() {
            self.own.push(Text::from(s));
            return Packed::Own(self.own.len() - 1);
        }
        let at = self.buf.len() as u32;
        self.buf.push_str(s);
        Packed::At(at, s.len() as u32)
    }

    /// The shared buffer (one allocation, of the texts' bytes and no more).
    pub fn finish(self) -> Packs {
        Packs {
            buf: ArcStr::from(self.buf),
            own: self.own,
        }
    }
}

/// The buffer of a finished [`Pack`].
pub struct Packs {
    buf: ArcStr,
    own: Vec<Text>,
}

impl Packed {
    /// The text as a [`Text`] of the shared buffer.
    pub fn text(self, packs: &Packs) -> Text {
        match self {
            Packed::At(at, len) => {
                let range = at as usize..at as usize + len as usize;
                // Every stretch was a whole `str` pushed to the buffer; "" would stand for a
                // `Packed` of another pack rather than a panic.
                match packs.buf.get(range.clone()) {
                    Some(_) => Text(packs.buf.substr(range)),
                    None => Text::default(),
                }
            }
            Packed::Own(i) => packs.own.get(i).cloned().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Text>(), 16);
        assert_eq!(std::mem::size_of::<Option<Text>>(), 16);
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
