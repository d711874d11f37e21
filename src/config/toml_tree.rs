//! A compact TOML document tree with byte spans, built straight from `toml_parser`'s events.
//!
//! `toml_parser` (the lexer and push parser under the `toml` crate) checks the syntax and
//! decodes strings and numbers; this module applies the semantics on top: `[a.b]` headers with
//! their implicit parents, `[[arrays of tables]]`, dotted keys, inline tables that are closed
//! once written, and the duplicate-key and redefinition rules. Every problem becomes an
//! [`Error`] with a byte offset, and parsing goes on after it, so one pass reports them all.
//!
//! The tree borrows from the text: keys and strings without escapes are slices of it. Tables
//! keep their entries in file order in a `Vec`; a table that grows large (a table of 10,000
//! jobs) also gets a hash index for its duplicate checks and look-ups. Each table, array and
//! inline table is allocated once, at its final size, and the text is lexed a piece at a time.
//!
//! Values, spans and errors match the `toml` crate's `DeTable::parse_recoverable` (the tests
//! compare them), with these deliberate differences:
//! - an integer outside the 64-bit range, or a `0x`, `0o` or `0b` with no digits, is an error
//!   (as the TOML spec asks; the `toml` crate leaves them to its serde layer);
//! - a table defined by a header after its sub-tables (`[a.b]` then `[a]`) keeps the place
//!   where it first appeared, instead of moving to the end of its parent;
//! - after a syntax error, parsing goes on where the `toml` crate stops (after a key with no
//!   value) or keeps less, so later problems are reported too. The first error is the same.
//!
//! Why not the `toml` crate's tree: building it was about half of `cronwarden check`'s time.
//! With it, `check` of a 10,000-job table took about 160 ms (a 1 MB table) and 430 ms
//! (2.8 MB). This tree parses the same two tables in 14 and 37 ms, where `toml`'s
//! `DeTable::parse_recoverable` took about 50 and 150 ms. Figures from the CHANGELOG at 51af938 and 0232132, on a 2-core AMD EPYC VM
//! (Debian 12). The tables are the "typical" and "heavy" ones of
//! `python3 bench/gen-table.py 10000 [--lean]`; `bench/check.sh` times the whole `check` of
//! both with hyperfine. No script times the parse alone.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::IntErrorKind;
use std::ops::{Deref, Range};

use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::lexer::TokenKind;
use toml_parser::parser::EventReceiver;
use toml_parser::{ErrorSink, Expected, ParseError, Raw, Source};

/// Nesting allowed for arrays and inline tables, and keys in one dotted key or header, as in
/// the `toml` crate: deeper documents are refused rather than risking the stack.
const MAX_DEPTH: usize = 80;
/// A table gets a hash index once it has this many entries; smaller ones are scanned.
const INDEX_MIN: usize = 16;
const OUT_OF_RANGE: &str =
    "integer out of range, expected an integer from -9223372036854775808 to 9223372036854775807";

/// A byte range of the document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn of(s: toml_parser::Span) -> Span {
        // `parse` refuses texts whose offsets do not fit in u32.
        Span {
            start: s.start() as u32,
            end: s.end() as u32,
        }
    }

    pub fn start(self) -> usize {
        self.start as usize
    }

    pub fn end(self) -> usize {
        self.end as usize
    }

    pub fn range(self) -> Range<usize> {
        self.start()..self.end()
    }

    fn to_parser(self) -> toml_parser::Span {
        toml_parser::Span::new_unchecked(self.start(), self.end())
    }
}

/// A key as written: its decoded name and where it stands (quotes included).
#[derive(Clone, Debug, PartialEq)]
pub struct Key<'i> {
    pub name: Cow<'i, str>,
    pub span: Span,
}

/// A value and where it was written. A table defined by a header spans the header; a table
/// that only exists as the parent of others spans the key that first named it.
#[derive(Clone, Debug, PartialEq)]
pub struct Value<'i> {
    pub kind: Kind<'i>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind<'i> {
    String(Cow<'i, str>),
    /// `radix` is how it was written: 10, 16 (`0x`), 8 (`0o`) or 2 (`0b`).
    Integer {
        value: i64,
        radix: u8,
    },
    /// `raw` is the text as written (underscores included).
    Float {
        value: f64,
        raw: &'i str,
    },
    Boolean(bool),
    /// An offset or local date-time, date or time, validated and kept as written.
    Datetime(&'i str),
    Array(Array<'i>),
    Table(Table<'i>),
}

impl<'i> Kind<'i> {
    /// The TOML type, as error messages name it.
    pub fn type_str(&self) -> &'static str {
        match self {
            Kind::String(_) => "string",
            Kind::Integer { .. } => "integer",
            Kind::Float { .. } => "float",
            Kind::Boolean(_) => "boolean",
            Kind::Datetime(_) => "datetime",
            Kind::Array(_) => "array",
            Kind::Table(_) => "table",
        }
    }
}

impl<'i> Value<'i> {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self.kind {
            Kind::Integer { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self.kind {
            Kind::Float { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn as_datetime(&self) -> Option<&'i str> {
        match self.kind {
            Kind::Datetime(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array<'i>> {
        match &self.kind {
            Kind::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&Table<'i>> {
        match &self.kind {
            Kind::Table(t) => Some(t),
            _ => None,
        }
    }
}

/// An array value, or the tables of `[[name]]` headers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Array<'i> {
    items: Vec<Value<'i>>,
    of_tables: bool,
}

impl<'i> Array<'i> {
    /// Whether `[[name]]` headers made it (rather than `name = [...]`).
    pub fn is_array_of_tables(&self) -> bool {
        self.of_tables
    }
}

impl<'i> Deref for Array<'i> {
    type Target = [Value<'i>];

    fn deref(&self) -> &[Value<'i>] {
        &self.items
    }
}

/// A table: its entries in file order.
#[derive(Clone, Debug, Default)]
pub struct Table<'i> {
    entries: Vec<(Key<'i>, Value<'i>)>,
    /// Key hash -> the first entry with that hash; only for large tables.
    index: Option<Box<Index>>,
    /// One bit per entry's key, [`key_bit`]: a key whose bit is clear is not in the table.
    /// A job table is asked for every job key (about 70) and holds a few, so most look-ups
    /// end here (callgrind, heavy 10,000-job table of `bench/check.sh`: look-ups took 51
    /// million instructions by comparing names, 32 with this filter).
    /// (32 bits: a `u64` would make every [`Value`] 8 bytes larger.)
    key_bits: u32,
    /// Exists only as the parent of other tables or of dotted keys, so far.
    implicit: bool,
    /// Made by dotted keys (`a.b = 1` makes `a`).
    dotted: bool,
    /// An inline table (`{ ... }`) or a table inside one: closed to any later addition.
    inline: bool,
}

type Index = HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>;

impl PartialEq for Table<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl<'i> Table<'i> {
    pub fn new() -> Table<'i> {
        Table::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key<'i>, &Value<'i>)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn get(&self, name: &str) -> Option<&Value<'i>> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    pub fn get_key_value(&self, name: &str) -> Option<(&Key<'i>, &Value<'i>)> {
        self.position(name).map(|i| {
            let (k, v) = &self.entries[i];
            (k, v)
        })
    }

    /// Written as `{ ... }` (or made inside one by a dotted key).
    pub fn is_inline(&self) -> bool {
        self.inline
    }

    fn position(&self, name: &str) -> Option<usize> {
        if self.key_bits & key_bit(name) == 0 {
            return None;
        }
        if let Some(index) = &self.index {
            let &i = index.get(&hash_key(name))?;
            if self.entries[i as usize].0.name == name {
                return Some(i as usize);
            }
            // Two keys with one hash: rare enough to scan.
        }
        self.entries.iter().position(|(k, _)| k.name == name)
    }

    fn push(&mut self, key: Key<'i>, value: Value<'i>) -> usize {
        let i = self.entries.len();
        self.key_bits |= key_bit(&key.name);
        if let Some(index) = &mut self.index {
            index.entry(hash_key(&key.name)).or_insert(i as u32);
        }
        self.entries.push((key, value));
        if self.index.is_none() && self.entries.len() >= INDEX_MIN {
            let mut index =
                Index::with_capacity_and_hasher(self.entries.len() * 2, Default::default());
            for (n, (k, _)) in self.entries.iter().enumerate() {
                index.entry(hash_key(&k.name)).or_insert(n as u32);
            }
            self.index = Some(Box::new(index));
        }
        i
    }
}

/// A parse error: where (a byte range of the text; `None` only if the parser gave none) and
/// what, in the words of the `toml` crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub span: Option<Span>,
    pub message: String,
}

impl Error {
    /// Where the problem starts (0 when unknown).
    pub fn offset(&self) -> usize {
        self.span.map_or(0, |s| s.start())
    }

    fn new(e: &ParseError) -> Error {
        let mut message = e.description().to_string();
        if let Some(expected) = e.expected() {
            message.push_str(", expected ");
            if expected.is_empty() {
                message.push_str("nothing");
            }
            for (i, x) in expected.iter().enumerate() {
                if i > 0 {
                    message.push_str(", ");
                }
                match x {
                    Expected::Literal(l) => message.push_str(&render_literal(l)),
                    Expected::Description(d) => message.push_str(d),
                    _ => message.push_str("etc"),
                }
            }
        }
        Error {
            span: e.unexpected().map(Span::of),
            message,
        }
    }
}

fn render_literal(literal: &str) -> String {
    match literal {
        "\n" => "newline".to_string(),
        "`" => "'`'".to_string(),
        s if s.chars().all(|c| c.is_ascii_control()) => format!("`{}`", s.escape_debug()),
        s => format!("`{s}`"),
    }
}

/// A parsed document: the root table (as far as it could be built) and every error.
#[derive(Debug)]
pub struct Document<'i> {
    pub root: Table<'i>,
    pub errors: Vec<Error>,
}

/// Parses a whole TOML document, recovering from errors to report them all.
pub fn parse(text: &str) -> Document<'_> {
    parse_chunked(text, CHUNK_TOKENS)
}

/// Tokens lexed ahead of the parser: the text is parsed in pieces of about this many tokens
/// (cut at line ends outside brackets), so that a large table is not held as tens of
/// megabytes of tokens at once.
const CHUNK_TOKENS: usize = 1 << 15;

/// [`parse`] in pieces of `chunk_tokens` tokens or more; exposed for the tests, which cut
/// small documents into pieces to check that cutting changes nothing.
#[doc(hidden)]
pub fn parse_chunked(text: &str, chunk_tokens: usize) -> Document<'_> {
    if u32::try_from(text.len()).is_err() {
        return Document {
            root: Table::new(),
            errors: vec![Error {
                span: None,
                message: "the document is larger than 4 GiB".to_string(),
            }],
        };
    }
    let mut builder = Builder {
        src: text,
        root: Table::new(),
        current: Table::new(),
        section: Vec::new(),
        in_root: true,
        dead: false,
        pool: Vec::new(),
        header: None,
        keys: Vec::new(),
        state: KeyState::Idle,
        frames: Vec::new(),
        values: Vec::new(),
    };
    let mut errors: Vec<ParseError> = Vec::new();
    let mut tokens = Vec::with_capacity(chunk_tokens.min(text.len() / 2) + 16);
    // Brackets open at this point, as the parser will see them: a line end with none open
    // ends an expression, and the parser can stop there and go on with a new piece. A `[`
    // that starts a line outside brackets opens a header (closed by the line end), and a
    // closing bracket that does not match is an error that closes nothing.
    let mut open: Vec<TokenKind> = Vec::new();
    let mut line_start = true;
    for token in Source::new(text).lex() {
        let kind = token.kind();
        tokens.push(token);
        match kind {
            TokenKind::LeftSquareBracket if open.is_empty() && line_start => {}
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => open.push(kind),
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                let opener = if kind == TokenKind::RightSquareBracket {
                    TokenKind::LeftSquareBracket
                } else {
                    TokenKind::LeftCurlyBracket
                };
                if open.last() == Some(&opener) {
                    open.pop();
                }
            }
            TokenKind::Newline if open.is_empty() && tokens.len() >= chunk_tokens => {
                toml_parser::parser::parse_document(&tokens, &mut builder, &mut errors);
                tokens.clear();
            }
            _ => {}
        }
        line_start = match kind {
            TokenKind::Newline => true,
            TokenKind::Whitespace | TokenKind::Comment => line_start,
            _ => false,
        };
    }
    if !tokens.is_empty() {
        toml_parser::parser::parse_document(&tokens, &mut builder, &mut errors);
    }
    drop(tokens);
    let root = builder.finish(&mut errors);
    Document {
        root,
        errors: errors.iter().map(Error::new).collect(),
    }
}

/// Where a key-value expression (at the top level or in an inline table) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyState {
    /// Waiting for a key.
    Idle,
    /// After a key: a `.` or `=` may follow.
    Key,
    /// After `key.`: the next key continues the path.
    Dot,
    /// After `=`: the next value is assigned to the keys read.
    Value,
}

/// An open array or inline table.
enum Frame<'i> {
    /// Its items so far are `Builder::values[base..]`.
    Array { open: Span, base: usize },
    /// The keys of its current expression are `Builder::keys[keys..]`.
    Inline {
        open: Span,
        table: Table<'i>,
        keys: usize,
        state: KeyState,
    },
}

struct Builder<'i> {
    src: &'i str,
    root: Table<'i>,
    /// The table of the current section (what follows a header, or the top of the document),
    /// taken out of the tree while its `key = value` lines are added. The buffer is reused
    /// from section to section; each table gets an exact-size copy when its section ends.
    current: Table<'i>,
    /// Entry indices from the root to where `current` belongs (through an array of tables:
    /// its last table). Entries are never removed, so the indices stay valid.
    section: Vec<u32>,
    /// The current section is the top of the document, before any header.
    in_root: bool,
    /// The current section's header was refused: its lines are checked, then dropped.
    dead: bool,
    /// Buffers for the entries of open inline tables.
    pool: Vec<Vec<(Key<'i>, Value<'i>)>>,
    /// While a `[header]` is read: where it opened and whether it is `[[...]]`.
    header: Option<(Span, bool)>,
    /// The keys of the header or expression being read; an inline table stacks its own keys
    /// above those of the expression that holds it.
    keys: Vec<Key<'i>>,
    /// The top level's expression state.
    state: KeyState,
    frames: Vec<Frame<'i>>,
    /// Items of the open arrays.
    values: Vec<Value<'i>>,
}

fn error(errors: &mut dyn ErrorSink, message: impl Into<Cow<'static, str>>, at: Span) {
    errors.report_error(ParseError::new(message).with_unexpected(at.to_parser()));
}

fn error_with(
    errors: &mut dyn ErrorSink,
    message: impl Into<Cow<'static, str>>,
    at: Span,
    first: Span,
) {
    errors.report_error(
        ParseError::new(message)
            .with_unexpected(at.to_parser())
            .with_context(first.to_parser()),
    );
}

impl<'i> Builder<'i> {
    fn raw(&self, span: toml_parser::Span, encoding: Option<Encoding>) -> Raw<'i> {
        let text = self.src.get(span.start()..span.end()).unwrap_or("");
        Raw::new_unchecked(text, encoding, span)
    }

    fn decode_key(
        &self,
        span: toml_parser::Span,
        encoding: Option<Encoding>,
        errors: &mut dyn ErrorSink,
    ) -> Key<'i> {
        let mut name = Cow::Borrowed("");
        self.raw(span, encoding).decode_key(&mut name, errors);
        Key {
            name,
            span: Span::of(span),
        }
    }

    fn decode_scalar(
        &self,
        span: toml_parser::Span,
        encoding: Option<Encoding>,
        errors: &mut dyn ErrorSink,
    ) -> Value<'i> {
        let raw = self.raw(span, encoding);
        let mut text: Cow<'i, str> = Cow::Borrowed("");
        let mut failed = false;
        let kind = raw.decode_scalar(&mut text, &mut |e: ParseError| {
            failed = true;
            errors.report_error(e);
        });
        let kind = match kind {
            ScalarKind::String => Kind::String(text),
            ScalarKind::Boolean(b) => Kind::Boolean(b),
            ScalarKind::DateTime => {
                if let Err(message) = check_datetime(&text) {
                    error(errors, message, Span::of(span));
                }
                Kind::Datetime(raw.as_str())
            }
            ScalarKind::Float => Kind::Float {
                value: text.parse().unwrap_or(f64::NAN),
                raw: raw.as_str(),
            },
            ScalarKind::Integer(radix) => {
                // After an error the value is a placeholder, 0, so that what reads the tree
                // adds no second error about the same number.
                let value = match i64::from_str_radix(&text, radix.value()) {
                    Ok(n) => n,
                    Err(_) if failed => 0,
                    Err(e) => {
                        if matches!(
                            e.kind(),
                            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
                        ) {
                            error(errors, OUT_OF_RANGE, Span::of(span));
                        } else {
                            // `0x` alone: the decoder lets it through.
                            errors.report_error(
                                ParseError::new(radix.invalid_description())
                                    .with_expected(&[Expected::Description("digits")])
                                    .with_unexpected(span),
                            );
                        }
                        0
                    }
                };
                Kind::Integer {
                    value,
                    radix: radix.value() as u8,
                }
            }
        };
        Value {
            kind,
            span: Span::of(span),
        }
    }

    /// The key state of the innermost expression context: `None` inside an array.
    fn key_state(&mut self) -> Option<(usize, &mut KeyState)> {
        match self.frames.last_mut() {
            None => Some((0, &mut self.state)),
            Some(Frame::Inline { keys, state, .. }) => Some((*keys, state)),
            Some(Frame::Array { .. }) => None,
        }
    }

    /// A finished value goes to the open array, the inline table's key or the top-level key.
    fn deliver(&mut self, value: Value<'i>, errors: &mut dyn ErrorSink) {
        match self.frames.last_mut() {
            Some(Frame::Array { .. }) => self.values.push(value),
            Some(Frame::Inline {
                table, keys, state, ..
            }) => {
                if *state == KeyState::Value {
                    assign_inline(table, &mut self.keys, *keys, value, errors);
                }
                self.keys.truncate(*keys);
                *state = KeyState::Idle;
            }
            None => {
                if self.state == KeyState::Value && self.header.is_none() {
                    self.assign(value, errors);
                }
                self.keys.clear();
                self.state = KeyState::Idle;
            }
        }
    }

    /// `keys = value` at the top level, into the current section.
    fn assign(&mut self, value: Value<'i>, errors: &mut dyn ErrorSink) {
        let Some(key) = self.keys.pop() else {
            return;
        };
        let path = &self.keys[..];
        if path.len() >= MAX_DEPTH {
            error(errors, "recursion limit", key.span);
            return;
        }
        let dotted = !path.is_empty();
        let Some(parent) = descend(&mut self.current, path, dotted, errors, None) else {
            return;
        };
        // Dotted keys cannot add to a table that a header defined.
        if dotted && !parent.implicit {
            error(errors, "duplicate key", key.span);
            return;
        }
        match parent.position(&key.name) {
            None => {
                parent.push(key, value);
            }
            Some(i) => error_with(errors, "duplicate key", key.span, parent.entries[i].0.span),
        }
    }

    /// A header was read: `keys` is its path. Starts its section.
    fn close_header(&mut self, close: Option<toml_parser::Span>, errors: &mut dyn ErrorSink) {
        let Some((open, is_array)) = self.header.take() else {
            return;
        };
        let span = match close {
            Some(c) => Span {
                start: open.start,
                end: Span::of(c).end,
            },
            None => open,
        };
        self.close_section();
        self.in_root = false;
        self.dead = true;
        self.section.clear();
        self.state = KeyState::Idle;
        let Some(key) = self.keys.pop() else {
            return;
        };
        if self.keys.len() >= MAX_DEPTH {
            error(errors, "recursion limit", key.span);
            self.keys.clear();
            return;
        }
        let parent = descend(
            &mut self.root,
            &self.keys,
            false,
            errors,
            Some(&mut self.section),
        );
        self.keys.clear();
        let Some(parent) = parent else {
            return;
        };
        let i = if is_array {
            add_array_table(parent, key, span, errors)
        } else {
            define_table(parent, key, span, errors)
        };
        let Some(i) = i else {
            return;
        };
        self.section.push(i as u32);
        self.open_section();
    }

    /// Takes the table of the section just entered out of the tree, into `current` (with
    /// what it has, if a header reopened it).
    fn open_section(&mut self) {
        if let Some(t) = section_table(&mut self.root, &self.section) {
            self.current.entries.extend(std::mem::take(&mut t.entries));
            self.current.key_bits |= std::mem::take(&mut t.key_bits);
            self.current.index = t.index.take();
            self.current.implicit = t.implicit;
            self.current.dotted = t.dotted;
            self.current.inline = t.inline;
            self.dead = false;
        }
    }

    /// Puts the current section's table back in the tree.
    fn close_section(&mut self) {
        let entries = take_exact(&mut self.current.entries);
        let index = self.current.index.take();
        let key_bits = std::mem::take(&mut self.current.key_bits);
        if self.dead {
            return;
        }
        let slot = if self.in_root {
            Some(&mut self.root)
        } else {
            section_table(&mut self.root, &self.section)
        };
        if let Some(t) = slot {
            t.entries = entries;
            t.key_bits = key_bits;
            t.index = index;
            t.implicit = self.current.implicit;
            t.dotted = self.current.dotted;
            t.inline = self.current.inline;
        }
    }

    fn finish(mut self, errors: &mut dyn ErrorSink) -> Table<'i> {
        // The parser closes every array and inline table it opens, so only an unclosed
        // header (at the end of the text) can be pending here.
        if self.frames.is_empty() {
            self.close_header(None, errors);
        }
        self.close_section();
        self.root
    }
}

/// A value for a table a header defines: it spans the header.
fn header_table(t: Table<'_>, span: Span) -> Value<'_> {
    Value {
        kind: Kind::Table(t),
        span,
    }
}

/// `[[key]]` in `parent`: a new table at the end of the array of tables (made if need be).
/// The entry's index, or `None` when `key` is something else already (reported).
fn add_array_table<'i>(
    parent: &mut Table<'i>,
    key: Key<'i>,
    span: Span,
    errors: &mut dyn ErrorSink,
) -> Option<usize> {
    let Some(i) = parent.position(&key.name) else {
        let array = Value {
            kind: Kind::Array(Array {
                items: vec![header_table(Table::new(), span)],
                of_tables: true,
            }),
            span,
        };
        return Some(parent.push(key, array));
    };
    let v = &mut parent.entries[i].1;
    match &mut v.kind {
        Kind::Array(a) if a.of_tables => {
            a.items.push(header_table(Table::new(), span));
            Some(i)
        }
        _ => {
            error_with(errors, "duplicate key", key.span, v.span);
            None
        }
    }
}

/// `[key]` in `parent`: defines the table (made if need be). The entry's index; a table
/// defined twice is reported, and its section fills the first definition.
fn define_table<'i>(
    parent: &mut Table<'i>,
    key: Key<'i>,
    span: Span,
    errors: &mut dyn ErrorSink,
) -> Option<usize> {
    let Some(i) = parent.position(&key.name) else {
        return Some(parent.push(key, header_table(Table::new(), span)));
    };
    let (k, v) = &mut parent.entries[i];
    match &mut v.kind {
        // Defined so far only by headers of its sub-tables: this defines it.
        Kind::Table(t) if t.implicit && !t.dotted => {}
        // Defined twice; go on filling the first one.
        Kind::Table(_) => error_with(errors, "duplicate key", key.span, k.span),
        _ => {
            error_with(errors, "duplicate key", key.span, k.span);
            v.kind = Kind::Table(Table::new());
        }
    }
    if let Kind::Table(t) = &mut v.kind {
        t.implicit = false;
        t.dotted = false;
    }
    v.span = span;
    *k = key;
    Some(i)
}

/// The table that `hops` (entry indices from the root) lead to.
fn section_table<'t, 'i>(root: &'t mut Table<'i>, hops: &[u32]) -> Option<&'t mut Table<'i>> {
    let mut table = root;
    for &i in hops {
        table = match &mut table.entries.get_mut(i as usize)?.1.kind {
            Kind::Table(t) => t,
            Kind::Array(a) => match &mut a.items.last_mut()?.kind {
                Kind::Table(t) => t,
                _ => return None,
            },
            _ => return None,
        };
    }
    Some(table)
}

/// Walks `path` down from `table` for a header (`dotted` false) or a dotted key, making the
/// missing tables (implicit ones) on the way. Records the entry indices in `hops`.
fn descend<'t, 'i>(
    mut table: &'t mut Table<'i>,
    path: &[Key<'i>],
    dotted: bool,
    errors: &mut dyn ErrorSink,
    mut hops: Option<&mut Vec<u32>>,
) -> Option<&'t mut Table<'i>> {
    for key in path {
        let i = match table.position(&key.name) {
            Some(i) => i,
            None => table.push(
                key.clone(),
                Value {
                    kind: Kind::Table(Table {
                        implicit: true,
                        dotted,
                        ..Table::default()
                    }),
                    span: key.span,
                },
            ),
        };
        if let Some(hops) = hops.as_deref_mut() {
            hops.push(i as u32);
        }
        let v = &mut table.entries[i].1;
        let old = v.span;
        let what = v.kind.type_str();
        table = match &mut v.kind {
            Kind::Array(a) => {
                let of_tables = a.of_tables;
                let last = a.items.last_mut().filter(|_| of_tables);
                let what = last.as_ref().map_or(what, |v| v.kind.type_str());
                if let Some(Value {
                    kind: Kind::Table(t),
                    ..
                }) = last
                {
                    t
                } else {
                    error_with(
                        errors,
                        format!("cannot extend value of type {what} with a dotted key"),
                        key.span,
                        old,
                    );
                    return None;
                }
            }
            Kind::Table(t) => {
                if t.inline {
                    error(
                        errors,
                        "cannot extend value of type inline table with a dotted key",
                        key.span,
                    );
                    return None;
                }
                if dotted {
                    if !t.implicit {
                        error(errors, "duplicate key", key.span);
                        return None;
                    }
                    t.dotted = true;
                }
                t
            }
            _ => {
                error_with(
                    errors,
                    format!("cannot extend value of type {what} with a dotted key"),
                    key.span,
                    old,
                );
                return None;
            }
        };
    }
    Some(table)
}

/// `keys[base..] = value` inside an inline table.
fn assign_inline<'i>(
    table: &mut Table<'i>,
    keys: &mut Vec<Key<'i>>,
    base: usize,
    value: Value<'i>,
    errors: &mut dyn ErrorSink,
) {
    if keys.len() <= base {
        return;
    }
    let Some(key) = keys.pop() else {
        return;
    };
    let path = &keys[base..];
    if path.len() >= MAX_DEPTH {
        error(errors, "recursion limit", key.span);
        return;
    }
    let mut t = table;
    for k in path {
        let i = match t.position(&k.name) {
            Some(i) => i,
            None => t.push(
                k.clone(),
                Value {
                    kind: Kind::Table(Table {
                        implicit: true,
                        dotted: true,
                        inline: true,
                        ..Table::default()
                    }),
                    span: k.span,
                },
            ),
        };
        let v = &mut t.entries[i].1;
        let old = v.span;
        let what = v.kind.type_str();
        t = match &mut v.kind {
            Kind::Table(sub) => {
                if !sub.implicit {
                    error(errors, "duplicate key", k.span);
                    return;
                }
                sub
            }
            _ => {
                error_with(
                    errors,
                    format!("cannot extend value of type {what} with a dotted key"),
                    k.span,
                    old,
                );
                return;
            }
        };
    }
    if t.dotted == path.is_empty() {
        error(errors, "duplicate key", key.span);
        return;
    }
    match t.position(&key.name) {
        None => {
            t.push(key, value);
        }
        Some(i) => error_with(errors, "duplicate key", key.span, t.entries[i].0.span),
    }
}

impl<'i> EventReceiver for Builder<'i> {
    fn std_table_open(&mut self, span: toml_parser::Span, _errors: &mut dyn ErrorSink) {
        self.header = Some((Span::of(span), false));
        self.keys.clear();
        self.state = KeyState::Idle;
    }

    fn std_table_close(&mut self, span: toml_parser::Span, errors: &mut dyn ErrorSink) {
        self.close_header(Some(span), errors);
    }

    fn array_table_open(&mut self, span: toml_parser::Span, _errors: &mut dyn ErrorSink) {
        self.header = Some((Span::of(span), true));
        self.keys.clear();
        self.state = KeyState::Idle;
    }

    fn array_table_close(&mut self, span: toml_parser::Span, errors: &mut dyn ErrorSink) {
        self.close_header(Some(span), errors);
    }

    fn inline_table_open(&mut self, span: toml_parser::Span, errors: &mut dyn ErrorSink) -> bool {
        let entries = self.pool.pop().unwrap_or_default();
        self.frames.push(Frame::Inline {
            open: Span::of(span),
            table: Table {
                entries,
                inline: true,
                ..Table::default()
            },
            keys: self.keys.len(),
            state: KeyState::Idle,
        });
        depth_ok(self.frames.len(), span, errors)
    }

    fn inline_table_close(&mut self, span: toml_parser::Span, errors: &mut dyn ErrorSink) {
        if !matches!(self.frames.last(), Some(Frame::Inline { .. })) {
            return;
        }
        let Some(Frame::Inline {
            open,
            mut table,
            keys,
            ..
        }) = self.frames.pop()
        else {
            return;
        };
        self.keys.truncate(keys);
        // An exact-size copy; the buffer serves the next inline table.
        let exact = take_exact(&mut table.entries);
        self.pool.push(std::mem::replace(&mut table.entries, exact));
        let value = Value {
            kind: Kind::Table(table),
            span: Span {
                start: open.start,
                end: Span::of(span).end,
            },
        };
        self.deliver(value, errors);
    }

    fn array_open(&mut self, span: toml_parser::Span, errors: &mut dyn ErrorSink) -> bool {
        self.frames.push(Frame::Array {
            open: Span::of(span),
            base: self.values.len(),
        });
        depth_ok(self.frames.len(), span, errors)
    }

    fn array_close(&mut self, span: toml_parser::Span, errors: &mut dyn ErrorSink) {
        let Some(&Frame::Array { open, base }) = self.frames.last() else {
            return;
        };
        self.frames.pop();
        let items = self.values.split_off(base);
        let value = Value {
            kind: Kind::Array(Array {
                items,
                of_tables: false,
            }),
            span: Span {
                start: open.start,
                end: Span::of(span).end,
            },
        };
        self.deliver(value, errors);
    }

    fn simple_key(
        &mut self,
        span: toml_parser::Span,
        encoding: Option<Encoding>,
        errors: &mut dyn ErrorSink,
    ) {
        let key = self.decode_key(span, encoding, errors);
        let Some((base, state)) = self.key_state() else {
            return;
        };
        let continues = *state == KeyState::Dot;
        *state = KeyState::Key;
        if !continues {
            self.keys.truncate(base);
        }
        self.keys.push(key);
    }

    fn key_sep(&mut self, _span: toml_parser::Span, _errors: &mut dyn ErrorSink) {
        if let Some((_, state)) = self.key_state()
            && *state == KeyState::Key
        {
            *state = KeyState::Dot;
        }
    }

    fn key_val_sep(&mut self, _span: toml_parser::Span, _errors: &mut dyn ErrorSink) {
        if let Some((_, state)) = self.key_state()
            && matches!(*state, KeyState::Key | KeyState::Dot)
        {
            *state = KeyState::Value;
        }
    }

    fn scalar(
        &mut self,
        span: toml_parser::Span,
        encoding: Option<Encoding>,
        errors: &mut dyn ErrorSink,
    ) {
        let value = self.decode_scalar(span, encoding, errors);
        self.deliver(value, errors);
    }

    fn value_sep(&mut self, _span: toml_parser::Span, _errors: &mut dyn ErrorSink) {
        if let Some(Frame::Inline { keys, state, .. }) = self.frames.last_mut() {
            self.keys.truncate(*keys);
            *state = KeyState::Idle;
        }
    }

    fn comment(&mut self, span: toml_parser::Span, errors: &mut dyn ErrorSink) {
        self.raw(span, None).decode_comment(errors);
    }

    fn newline(&mut self, span: toml_parser::Span, errors: &mut dyn ErrorSink) {
        self.raw(span, None).decode_newline(errors);
        if self.frames.is_empty() {
            if self.header.is_some() {
                // An unclosed header (already reported): take it as far as it was read.
                self.close_header(None, errors);
            } else if self.state != KeyState::Idle {
                // A key with no value (already reported).
                self.keys.clear();
                self.state = KeyState::Idle;
            }
        }
    }
}

/// Moves the contents of `buffer` into a vector of the exact size, leaving `buffer` empty with
/// its capacity for the next use.
fn take_exact<T>(buffer: &mut Vec<T>) -> Vec<T> {
    let mut exact = Vec::with_capacity(buffer.len());
    exact.append(buffer);
    exact
}

fn depth_ok(depth: usize, span: toml_parser::Span, errors: &mut dyn ErrorSink) -> bool {
    if depth > MAX_DEPTH {
        errors.report_error(
            ParseError::new("cannot recurse further; max recursion depth met")
                .with_unexpected(span),
        );
        return false;
    }
    true
}

/// A key's bit in [`Table`]'s filter: from its length and its first and last bytes, which
/// tell the keys of a job table apart (`command`, `schedule`, `timezone`, `env`, ...).
fn key_bit(name: &str) -> u32 {
    let b = name.as_bytes();
    let first = usize::from(b.first().copied().unwrap_or(0));
    let last = usize::from(b.last().copied().unwrap_or(0));
    let mix = b.len().wrapping_mul(7).wrapping_add(first * 3 + last);
    1 << (mix % 32)
}

/// Hashes a key for [`Index`]: 8 bytes at a time, each mixed in with a folded 128-bit multiply
/// (as wyhash and foldhash do), so that every input bit reaches every output bit.
fn hash_key(s: &str) -> u64 {
    fn mix(a: u64, b: u64) -> u64 {
        let m = u128::from(a) * u128::from(b);
        (m as u64) ^ ((m >> 64) as u64)
    }
    const K: u64 = 0x243f_6a88_85a3_08d3;
    const L: u64 = 0x1319_8a2e_0370_7344;
    let bytes = s.as_bytes();
    let mut h = (bytes.len() as u64) ^ K;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = mix(h ^ u64::from_le_bytes(w), L);
    }
    let rest = chunks.remainder();
    let mut w = [0u8; 8];
    w[..rest.len()].copy_from_slice(rest);
    mix(h ^ u64::from_le_bytes(w), L ^ K)
}

/// The hasher of [`Index`], whose keys are hashes already.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Checks a date-time as TOML 1.1 writes them (RFC 3339 with optional seconds, `T`, `t` or
/// a space between date and time); the message says what is wrong, as the `toml` crate does.
/// The `toml_parser` decoder only tells a date-time by its shape, so this is what refuses
/// `1979-13-27` as the `toml` crate does.
fn check_datetime(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let mut pos = 0;
    let Some(first) = digits(s, &mut pos) else {
        return invalid(None, Some("year or hour"));
    };
    let has_date = match b.get(pos) {
        Some(b'-') => true,
        Some(b':') => false,
        _ => return invalid(None, Some("`-` (YYYY-MM) or `:` (HH:MM)")),
    };
    let has_time = if has_date {
        check_date(s, first, &mut pos)?
    } else {
        pos = 0;
        true
    };
    if has_time {
        check_time(s, &mut pos)?;
        if has_date {
            check_offset(s, &mut pos)?;
        }
    }
    if pos < b.len() {
        return invalid(None, None);
    }
    Ok(())
}

/// "invalid WHAT, expected EXPECTED", in the words of the `toml` crate.
fn invalid<T>(what: Option<&str>, expected: Option<&str>) -> Result<T, String> {
    let mut m = format!("invalid {}", what.unwrap_or("datetime"));
    if let Some(e) = expected {
        m.push_str(", expected ");
        m.push_str(e);
    }
    Err(m)
}

/// The run of digits at `pos`, if any; `pos` moves past it.
fn digits<'s>(s: &'s str, pos: &mut usize) -> Option<&'s str> {
    let b = s.as_bytes();
    let start = *pos;
    while *pos < b.len() && b[*pos].is_ascii_digit() {
        *pos += 1;
    }
    (*pos > start).then(|| &s[start..*pos])
}

fn num(d: &str) -> u32 {
    d.parse::<u32>().unwrap_or(u32::MAX)
}

/// `-MM-DD` after the year, with `pos` on the first `-`; whether a time follows (`T`, `t` or
/// a space).
fn check_date(s: &str, year: &str, pos: &mut usize) -> Result<bool, String> {
    let b = s.as_bytes();
    *pos += 1;
    let Some(month) = digits(s, pos) else {
        return invalid(Some("date"), Some("month"));
    };
    if b.get(*pos) != Some(&b'-') {
        return invalid(Some("date"), Some("`-` (MM-DD)"));
    }
    *pos += 1;
    let Some(day) = digits(s, pos) else {
        return invalid(Some("date"), Some("day"));
    };
    if year.len() != 4 {
        return invalid(Some("date"), Some("a four-digit year (YYYY)"));
    }
    if month.len() != 2 {
        return invalid(Some("date"), Some("a two-digit month (MM)"));
    }
    if day.len() != 2 {
        return invalid(Some("date"), Some("a two-digit day (DD)"));
    }
    let (year, month, day) = (num(year), num(month), num(day));
    if !(1..=12).contains(&month) {
        return invalid(Some("date"), Some("month between 01 and 12"));
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let (max, expected) = match month {
        2 if leap => (29, "day between 01 and 29"),
        2 => (28, "day between 01 and 28"),
        4 | 6 | 9 | 11 => (30, "day between 01 and 30"),
        _ => (31, "day between 01 and 31"),
    };
    if !(1..=max).contains(&day) {
        return invalid(Some("date"), Some(expected));
    }
    match b.get(*pos) {
        None => Ok(false),
        Some(b'T' | b't' | b' ') => {
            *pos += 1;
            Ok(true)
        }
        Some(_) => invalid(Some("date-time"), Some("`T` between date and time")),
    }
}

/// `HH:MM[:SS[.fraction]]` at `pos`.
fn check_time(s: &str, pos: &mut usize) -> Result<(), String> {
    let b = s.as_bytes();
    let Some(hour) = digits(s, pos) else {
        return invalid(Some("time"), Some("hour"));
    };
    if b.get(*pos) != Some(&b':') {
        return invalid(Some("time"), Some("`:` (HH:MM)"));
    }
    *pos += 1;
    let Some(minute) = digits(s, pos) else {
        return invalid(Some("time"), Some("minute"));
    };
    let mut second = None;
    if b.get(*pos) == Some(&b':') {
        *pos += 1;
        let Some(sec) = digits(s, pos) else {
            return invalid(Some("time"), Some("second"));
        };
        second = Some(sec);
        if b.get(*pos) == Some(&b'.') {
            *pos += 1;
            if digits(s, pos).is_none() {
                return invalid(Some("time"), Some("nanosecond"));
            }
        }
    }
    if hour.len() != 2 {
        return invalid(Some("time"), Some("a two-digit hour (HH)"));
    }
    if minute.len() != 2 {
        return invalid(Some("time"), Some("a two-digit minute (MM)"));
    }
    if second.is_some_and(|s| s.len() != 2) {
        return invalid(Some("time"), Some("a two-digit second (SS)"));
    }
    if num(hour) > 23 {
        return invalid(Some("time"), Some("hour between 00 and 23"));
    }
    if num(minute) > 59 {
        return invalid(Some("time"), Some("minute between 00 and 59"));
    }
    if second.is_some_and(|s| num(s) > 60) {
        return invalid(Some("time"), Some("second between 00 and 60"));
    }
    Ok(())
}

/// The offset after a date and time, if any: `Z`, `z`, `+HH:MM` or `-HH:MM`.
fn check_offset(s: &str, pos: &mut usize) -> Result<(), String> {
    let b = s.as_bytes();
    match b.get(*pos) {
        None => Ok(()),
        Some(b'Z' | b'z') => {
            *pos += 1;
            Ok(())
        }
        Some(b'+' | b'-') => {
            *pos += 1;
            let Some(h) = digits(s, pos) else {
                return invalid(Some("offset"), Some("hour"));
            };
            if b.get(*pos) != Some(&b':') {
                return invalid(Some("offset"), Some("`:` (HH:MM)"));
            }
            *pos += 1;
            let Some(m) = digits(s, pos) else {
                return invalid(Some("offset"), Some("minute"));
            };
            if h.len() != 2 {
                return invalid(Some("offset"), Some("a two-digit hour (HH)"));
            }
            if m.len() != 2 {
                return invalid(Some("offset"), Some("a two-digit minute (MM)"));
            }
            if num(h) > 23 {
                return invalid(Some("offset"), Some("hours between 00 and 23"));
            }
            if num(m) > 59 {
                return invalid(Some("offset"), Some("minutes between 00 and 59"));
            }
            Ok(())
        }
        Some(_) => invalid(Some("offset"), Some("`Z`, +OFFSET, -OFFSET")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        for ok in [
            "1979-05-27T07:32:00Z",
            "1979-05-27t07:32:00.999999-07:00",
            "1979-05-27 07:32:00",
            "1979-05-27T07:32",
            "1979-05-27",
            "07:32:00",
            "07:32",
            "00:32:00.999999",
            "2000-02-29",
            "1979-05-27T23:59:60z",
        ] {
            assert_eq!(check_datetime(ok), Ok(()), "{ok}");
        }
        for (bad, msg) in [
            (
                "1979-13-27",
                "invalid date, expected month between 01 and 12",
            ),
            ("1900-02-29", "invalid date, expected day between 01 and 28"),
            (
                "1979-05-27T25:00:00",
                "invalid time, expected hour between 00 and 23",
            ),
            (
                "1979-05-27X07:32:00",
                "invalid date-time, expected `T` between date and time",
            ),
            (
                "1979-05-27T07:32:00+25:00",
                "invalid offset, expected hours between 00 and 23",
            ),
            ("07:32:00Z", "invalid datetime"),
            (
                "979-05-27",
                "invalid date, expected a four-digit year (YYYY)",
            ),
        ] {
            assert_eq!(check_datetime(bad), Err(msg.to_string()), "{bad}");
        }
    }

    #[test]
    fn a_large_table_is_indexed() {
        let mut text = String::from("[t]\n");
        for i in 0..100 {
            text.push_str(&format!("k{i} = {i}\n"));
        }
        text.push_str("k42 = 0\n");
        let doc = parse(&text);
        let t = doc.root.get("t").and_then(Value::as_table).expect("t");
        assert!(t.index.is_some());
        assert_eq!(t.len(), 100);
        assert_eq!(t.get("k77").and_then(Value::as_integer), Some(77));
        assert_eq!(doc.errors.len(), 1);
        assert_eq!(doc.errors[0].offset(), text.rfind("k42").expect("k42"));
    }

    #[test]
    fn compact() {
        assert!(std::mem::size_of::<Value>() <= 48);
        assert!(std::mem::size_of::<(Key, Value)>() <= 80);
    }
}
