//! Typed access to one TOML table with source positions. Every getter records a precise
//! diagnostic in the [`Sink`] and returns `None` on a bad value, so a whole table is checked in
//! one pass and every problem is reported.

use std::rc::Rc;
use std::time::Duration;

use super::toml_tree::{Kind, Table, Value};
use crate::diag::{Loc, Sink, suggest};
use crate::units;

/// A value together with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct At<T> {
    pub(crate) v: T,
    pub(crate) loc: Loc,
}

pub(crate) struct TableReader<'t, 'i> {
    table: &'t Table<'i>,
    file: usize,
    /// Where the table itself starts (for "missing key" errors).
    pub(crate) loc: Loc,
    /// Shared with the readers of sub-tables.
    subject: Option<Rc<str>>,
}

fn type_name(v: &Kind<'_>) -> &'static str {
    match v {
        Kind::String(_) => "a string",
        Kind::Integer { .. } => "an integer",
        Kind::Float { .. } => "a float",
        Kind::Boolean(_) => "a boolean",
        Kind::Datetime(_) => "a date-time",
        Kind::Array(_) => "an array",
        Kind::Table(_) => "a table",
    }
}

fn int_of(v: &Kind<'_>) -> Option<i64> {
    match v {
        Kind::Integer { value, .. } => Some(*value),
        _ => None,
    }
}

impl<'t, 'i> TableReader<'t, 'i> {
    pub(crate) fn new(
        table: &'t Table<'i>,
        file: usize,
        loc: Loc,
        subject: Option<String>,
    ) -> TableReader<'t, 'i> {
        TableReader {
            table,
            file,
            loc,
            subject: subject.map(Rc::from),
        }
    }

    /// The same table, reported under another subject (`job "x"`, `[settings]`, ...).
    pub(crate) fn new_from(t: TableReader<'t, 'i>, subject: Option<String>) -> TableReader<'t, 'i> {
        TableReader {
            subject: subject.map(Rc::from),
            ..t
        }
    }

    pub(crate) fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    pub(crate) fn loc_of(&self, v: &Value<'_>) -> Loc {
        Loc::new(self.file, v.span.start())
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'t str, Loc, &'t Value<'i>)> + '_ {
        let table: &'t Table<'i> = self.table;
        table
            .iter()
            .map(|(k, v)| (k.name.as_ref(), Loc::new(self.file, k.span.start()), v))
    }

    /// How many keys the table holds.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn raw(&self, key: &str) -> Option<&'t Value<'i>> {
        let table: &'t Table<'i> = self.table;
        table.get(key)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// Reports every key that is not in `allowed`, with a "did you mean" hint.
    pub(crate) fn check_keys(&self, sink: &mut Sink, allowed: &[&str], what: &str) {
        for (key, loc, _) in self.entries() {
            if !allowed.contains(&key) {
                self.unknown_key(sink, key, loc, allowed, what);
            }
        }
    }

    /// Reports `key` (written at `loc`), which is not in `allowed`, with a "did you mean"
    /// hint.
    pub(crate) fn unknown_key(
        &self,
        sink: &mut Sink,
        key: &str,
        loc: Loc,
        allowed: &[&str],
        what: &str,
    ) {
        let hint = match suggest(key, allowed.iter().copied()) {
            Some(s) => format!(" (did you mean {s:?}?)"),
            None => String::new(),
        };
        sink.error(
            loc,
            self.subject(),
            format!(
                "unknown key {key:?}{hint}; {what} keys are: {}",
                allowed.join(", ")
            ),
        );
    }

    pub(crate) fn error(&self, sink: &mut Sink, v: &Value<'_>, key: &str, msg: impl AsRef<str>) {
        sink.error(
            self.loc_of(v),
            self.subject(),
            format!("{key}: {}", msg.as_ref()),
        );
    }

    /// Whether `text` (the value of `what`, written at `loc`) is free of NUL bytes; an error
    /// otherwise. Every string of the table but `stdin` ends up as a C string (an argument, an
    /// environment variable, a path, a header, a name looked up), which cannot hold one: such
    /// a job would be accepted and then fail every run.
    fn no_nul(&self, sink: &mut Sink, loc: Loc, what: &str, text: &str) -> bool {
        // A byte search (memchr): `str::contains('\0')` goes through a char searcher, which
        // costs more for the short strings of a table.
        if memchr::memchr(0, text.as_bytes()).is_none() {
            return true;
        }
        sink.error(
            loc,
            self.subject(),
            format!(
                "{what}: {text:?} contains a NUL byte (\\0), which no argument, environment \
                 variable, path or name can hold"
            ),
        );
        false
    }

    fn wrong_type(&self, sink: &mut Sink, v: &Value<'_>, key: &str, want: &str) {
        self.error(
            sink,
            v,
            key,
            format!("expected {want}, found {}", type_name(&v.kind)),
        );
    }

    /// A string without a NUL byte (see [`TableReader::no_nul`]).
    pub(crate) fn string(&self, sink: &mut Sink, key: &str) -> Option<At<String>> {
        let s = self.string_with_nul(sink, key)?;
        self.no_nul(sink, s.loc, key, &s.v).then_some(s)
    }

    /// Any string, NUL bytes included: only for text that is never a C string (what a job
    /// reads on its standard input).
    pub(crate) fn string_with_nul(&self, sink: &mut Sink, key: &str) -> Option<At<String>> {
        let v = self.raw(key)?;
        match &v.kind {
            Kind::String(s) => Some(At {
                v: s.to_string(),
                loc: self.loc_of(v),
            }),
            _ => {
                self.wrong_type(sink, v, key, "a string");
                None
            }
        }
    }

    /// A non-empty string.
    pub(crate) fn nonempty(&self, sink: &mut Sink, key: &str) -> Option<At<String>> {
        let s = self.string(sink, key)?;
        if s.v.trim().is_empty() {
            sink.error(s.loc, self.subject(), format!("{key}: must not be empty"));
            return None;
        }
        Some(s)
    }

    pub(crate) fn bool(&self, sink: &mut Sink, key: &str) -> Option<At<bool>> {
        let v = self.raw(key)?;
        match &v.kind {
            Kind::Boolean(b) => Some(At {
                v: *b,
                loc: self.loc_of(v),
            }),
            _ => {
                self.wrong_type(sink, v, key, "true or false");
                None
            }
        }
    }

    pub(crate) fn int(&self, sink: &mut Sink, key: &str, min: i64, max: i64) -> Option<At<i64>> {
        let v = self.raw(key)?;
        let Some(n) = int_of(&v.kind) else {
            self.wrong_type(sink, v, key, &format!("an integer from {min} to {max}"));
            return None;
        };
        if n < min || n > max {
            self.error(
                sink,
                v,
                key,
                format!("{n} is out of range ({min} to {max})"),
            );
            return None;
        }
        Some(At {
            v: n,
            loc: self.loc_of(v),
        })
    }

    pub(crate) fn float(&self, sink: &mut Sink, key: &str) -> Option<At<f64>> {
        let v = self.raw(key)?;
        let f = match &v.kind {
            Kind::Float { value, .. } => Some(*value),
            Kind::Integer { value, .. } => Some(*value as f64),
            _ => None,
        };
        match f {
            Some(f) if f.is_finite() => Some(At {
                v: f,
                loc: self.loc_of(v),
            }),
            _ => {
                self.wrong_type(sink, v, key, "a finite number");
                None
            }
        }
    }

    pub(crate) fn duration(&self, sink: &mut Sink, key: &str) -> Option<At<Duration>> {
        let s = self.string(sink, key)?;
        match units::parse_duration(&s.v) {
            Ok(d) => Some(At { v: d, loc: s.loc }),
            Err(e) => {
                sink.error(s.loc, self.subject(), format!("{key}: {e}"));
                None
            }
        }
    }

    /// A size: a string with a unit (`"10KiB"`) or a plain integer of bytes.
    pub(crate) fn size(&self, sink: &mut Sink, key: &str) -> Option<At<u64>> {
        let v = self.raw(key)?;
        let loc = self.loc_of(v);
        let parsed = match &v.kind {
            Kind::String(s) => units::parse_size(s),
            Kind::Integer { .. } => match int_of(&v.kind) {
                Some(n) if n >= 0 => Ok(n as u64),
                _ => Err("a size must not be negative".to_string()),
            },
            other => Err(format!(
                "expected a size like \"10KiB\", found {}",
                type_name(other)
            )),
        };
        match parsed {
            Ok(n) => Some(At { v: n, loc }),
            Err(e) => {
                sink.error(loc, self.subject(), format!("{key}: {e}"));
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub(crate) fn choice(
        &self,
        sink: &mut Sink,
        key: &str,
        allowed: &[&str],
    ) -> Option<At<String>> {
        let s = self.string(sink, key)?;
        if allowed.contains(&s.v.as_str()) {
            return Some(s);
        }
        let hint = suggest(&s.v, allowed.iter().copied())
            .map(|h| format!(" (did you mean {h:?}?)"))
            .unwrap_or_default();
        sink.error(
            s.loc,
            self.subject(),
            format!(
                "{key}: {:?} is not allowed{hint}; use one of: {}",
                s.v,
                allowed.join(", ")
            ),
        );
        None
    }

    /// One of the named `options` (a string key), as its value: each name is written once,
    /// with what it means ([`TableReader::choice`] says what is wrong with another).
    pub(crate) fn choice_of<T: Copy>(
        &self,
        sink: &mut Sink,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<At<T>> {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let a = self.choice(sink, key, &names)?;
        let v = options.iter().find(|(n, _)| *n == a.v).map(|(_, v)| *v)?;
        Some(At { v, loc: a.loc })
    }

    /// An array of strings; with `allow_single`, a lone string counts as a list of one.
    pub(crate) fn strings(
        &self,
        sink: &mut Sink,
        key: &str,
        allow_single: bool,
    ) -> Option<At<Vec<At<String>>>> {
        let v = self.raw(key)?;
        let loc = self.loc_of(v);
        match &v.kind {
            Kind::String(s) if allow_single => self.no_nul(sink, loc, key, s).then(|| At {
                v: vec![At {
                    v: s.to_string(),
                    loc,
                }],
                loc,
            }),
            Kind::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items.iter() {
                    match &item.kind {
                        Kind::String(s) => {
                            let at = self.loc_of(item);
                            ok &= self.no_nul(sink, at, key, s);
                            out.push(At {
                                v: s.to_string(),
                                loc: at,
                            });
                        }
                        other => {
                            ok = false;
                            sink.error(
                                self.loc_of(item),
                                self.subject(),
                                format!(
                                    "{key}: every element must be a string, found {}",
                                    type_name(other)
                                ),
                            );
                        }
                    }
                }
                ok.then_some(At { v: out, loc })
            }
            _ => {
                self.wrong_type(sink, v, key, "an array of strings");
                None
            }
        }
    }

    /// A sub-table.
    pub(crate) fn table(&self, sink: &mut Sink, key: &str) -> Option<TableReader<'t, 'i>> {
        let v = self.raw(key)?;
        self.table_value(sink, key, v)
    }

    /// A value of this table (from [`TableReader::entries`]) that must be a table.
    pub(crate) fn table_value(
        &self,
        sink: &mut Sink,
        key: &str,
        v: &'t Value<'i>,
    ) -> Option<TableReader<'t, 'i>> {
        match &v.kind {
            Kind::Table(t) => Some(TableReader {
                table: t,
                file: self.file,
                loc: self.loc_of(v),
                subject: self.subject.clone(),
            }),
            _ => {
                self.wrong_type(sink, v, key, "a table");
                None
            }
        }
    }

    /// A table of string (or number/boolean, kept as text) values.
    pub(crate) fn string_map(
        &self,
        sink: &mut Sink,
        key: &str,
    ) -> Option<Vec<(At<String>, At<String>)>> {
        let t = self.table(sink, key)?;
        let mut out = Vec::new();
        for (k, kloc, v) in t.entries() {
            let text = match &v.kind {
                Kind::String(s) => Some(s.to_string()),
                Kind::Integer { value, .. } => Some(value.to_string()),
                // As written, less the digit separators.
                Kind::Float { raw, .. } => Some(raw.replace('_', "")),
                Kind::Boolean(b) => Some(b.to_string()),
                _ => None,
            };
            if !self.no_nul(sink, kloc, key, k) {
                continue;
            }
            // The name `key.k` is made only for an error: one per entry was about half of
            // this function's instructions (callgrind, heavy table of bench/check.sh).
            let named = || format!("{key}.{k}");
            match text {
                Some(text)
                    if text.contains('\0') && !self.no_nul(sink, t.loc_of(v), &named(), &text) => {}
                Some(text) => out.push((
                    At {
                        v: k.to_string(),
                        loc: kloc,
                    },
                    At {
                        v: text,
                        loc: t.loc_of(v),
                    },
                )),
                None => sink.error(
                    t.loc_of(v),
                    self.subject(),
                    format!(
                        "{}: expected a string, found {}",
                        named(),
                        type_name(&v.kind)
                    ),
                ),
            }
        }
        Some(out)
    }
}
