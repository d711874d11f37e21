//! Values several tables share that need more than the typed reader: time zones (each name
//! looked up once per load), absolute paths, and command lines (a shell string or an argv).

use std::path::PathBuf;

use jiff::tz::TimeZone;

use super::CommandLine;
use super::loader::Loader;
use super::reader::{At, TableReader};
use super::toml_tree::Kind;
use crate::diag::suggest;

impl Loader<'_> {
    /// An IANA time zone name and the zone, with a "did you mean" for an unknown one.
    pub(crate) fn zone(&mut self, r: &TableReader, key: &str) -> Option<(String, TimeZone)> {
        let name = r.nonempty(self.sink, key)?;
        let found = match self.zones.get(&name.v) {
            Some(z) => z.clone(),
            None => {
                let z = crate::schedule::load_zone(&name.v).ok();
                self.zones.insert(name.v.clone(), z.clone());
                z
            }
        };
        match found {
            Some(tz) => Some((name.v, tz)),
            None => {
                let names: Vec<String> = jiff::tz::db()
                    .available()
                    .map(|n| n.as_str().to_string())
                    .collect();
                let hint = suggest(&name.v, names.iter().map(String::as_str))
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                self.sink.error(
                    name.loc,
                    r.subject(),
                    format!(
                        "{key}: unknown time zone {:?}{hint}; use an IANA name such as \
                         \"Europe/Berlin\" or \"UTC\"",
                        name.v
                    ),
                );
                None
            }
        }
    }

    /// A non-empty path that must be absolute.
    pub(crate) fn abs_path(&mut self, r: &TableReader, key: &str) -> Option<At<PathBuf>> {
        let s = r.nonempty(self.sink, key)?;
        let p = PathBuf::from(&s.v);
        if !p.is_absolute() {
            self.sink.error(
                s.loc,
                r.subject(),
                format!("{key}: {:?} must be an absolute path", s.v),
            );
            return None;
        }
        Some(At { v: p, loc: s.loc })
    }

    /// A command line: a string for the shell, or an argv whose first element names the
    /// program.
    pub(crate) fn command(&mut self, t: &TableReader, key: &str) -> Option<At<CommandLine>> {
        let v = t.raw(key)?;
        match &v.kind {
            Kind::String(_) => {
                let s = t.nonempty(self.sink, key)?;
                Some(At {
                    v: CommandLine::Shell(s.v.into()),
                    loc: s.loc,
                })
            }
            _ => {
                let list = t.strings(self.sink, key, false)?;
                match list.v.first() {
                    Some(first) if !first.v.is_empty() => Some(At {
                        v: CommandLine::Argv(Box::new(list.v.into_iter().map(|a| a.v).collect())),
                        loc: list.loc,
                    }),
                    _ => {
                        self.sink.error(
                            list.loc,
                            t.subject(),
                            format!("{key}: the first element must name the program to run"),
                        );
                        None
                    }
                }
            }
        }
    }
}
