//! `env_file`: files of `KEY=VALUE` lines in systemd's `EnvironmentFile=` syntax, read at
//! each run ([`read_all`]). The values are secrets as far as cronwarden knows: no error
//! message here quotes one (a line is named by its number, a variable by its name).
//!
//! The syntax, as systemd reads it: blank lines and lines whose first non-blank character is
//! `#` or `;` are ignored (a comment line ending in `\` goes on to the next line); a line is
//! `KEY=VALUE`, blanks around the key and before the value ignored; an unquoted value ends at
//! the end of the line, trailing blanks dropped, `\` taking the next character as it is and
//! `\` at the end of a line joining the next one; `'...'` is taken as written (newlines
//! too); in `"..."` a `\` before `"`, `\`, `` ` `` or `$` takes that character, before a
//! newline joins the lines, and before anything else is kept. Quoted and unquoted pieces of
//! one value are joined (`A="x"'y'z` is `xyz`). A name is `[A-Za-z_][A-Za-z0-9_]*`.

use std::path::{Path, PathBuf};

/// One `env_file` entry: the path, and whether a missing file is fine (written with a
/// leading `-`, as in systemd).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnvFile {
    pub path: PathBuf,
    pub optional: bool,
}

/// The most an environment file may hold.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    PreKey,
    Key,
    PreValue,
    Value,
    ValueEscape,
    Single,
    Double,
    DoubleEscape,
    Comment,
    CommentEscape,
}

/// The variables of an environment file's text, in file order (a later one of the same name
/// wins when they are applied). Errors name the line, never a value.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let (mut key, mut value) = (String::new(), String::new());
    // The length of `value` without the trailing blanks of its unquoted end.
    let mut value_end = 0;
    let (mut line, mut key_line) = (1usize, 1usize);
    let mut state = State::PreKey;
    for c in text.chars() {
        let newline = c == '\n';
        match state {
            State::PreKey if c == '#' || c == ';' => state = State::Comment,
            State::PreKey if c.is_whitespace() => {}
            State::PreKey => {
                key.clear();
                key.push(c);
                key_line = line;
                state = State::Key;
            }
            State::Key if newline => {
                return Err(format!("line {key_line}: expected KEY=VALUE (no '=')"));
            }
            State::Key if c == '=' => {
                let k = key.trim_end().to_string();
                if !valid_name(&k) {
                    return Err(format!(
                        "line {key_line}: {k:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"
                    ));
                }
                key = k;
                value.clear();
                value_end = 0;
                state = State::PreValue;
            }
            State::Key => key.push(c),
            State::PreValue | State::Value if newline => {
                value.truncate(value_end);
                out.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                state = State::PreKey;
            }
            State::PreValue if c.is_whitespace() => {}
            State::PreValue | State::Value if c == '\'' => state = State::Single,
            State::PreValue | State::Value if c == '"' => state = State::Double,
            State::PreValue | State::Value if c == '\\' => state = State::ValueEscape,
            State::PreValue | State::Value => {
                value.push(c);
                if !c.is_whitespace() {
                    value_end = value.len();
                }
                state = State::Value;
            }
            State::ValueEscape => {
                if !newline {
                    value.push(c);
                    value_end = value.len();
                }
                state = State::Value;
            }
            State::Single if c == '\'' => {
                value_end = value.len();
                state = State::Value;
            }
            State::Single => value.push(c),
            State::Double if c == '"' => {
                value_end = value.len();
                state = State::Value;
            }
            State::Double if c == '\\' => state = State::DoubleEscape,
            State::Double => value.push(c),
            State::DoubleEscape => {
                match c {
                    '"' | '\\' | '`' | '$' => value.push(c),
                    '\n' => {}
                    _ => {
                        value.push('\\');
                        value.push(c);
                    }
                }
                state = State::Double;
            }
            State::Comment if c == '\\' => state = State::CommentEscape,
            State::Comment if newline => state = State::PreKey,
            State::Comment => {}
            State::CommentEscape => state = State::Comment,
        }
        if newline {
            line += 1;
        }
    }
    match state {
        State::Single | State::Double | State::DoubleEscape => Err(format!(
            "line {key_line}: the quoted value of {key} is not closed"
        )),
        State::Key => Err(format!("line {key_line}: expected KEY=VALUE (no '=')")),
        State::PreValue | State::Value | State::ValueEscape => {
            value.truncate(value_end);
            out.push((key, value));
            Ok(out)
        }
        State::PreKey | State::Comment | State::CommentEscape => Ok(out),
    }
}

fn valid_name(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The variables of every file, in order (a later file's value wins over an earlier one's).
/// A missing file written with `-` is skipped; any other file that cannot be read or parsed is
/// an error naming it (and the line, never a value). Read by the process that starts the run,
/// before it drops to the job's `user`.
pub fn read_all(files: &[EnvFile]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for f in files {
        match read_one(&f.path) {
            Ok(vars) => out.extend(vars),
            Err(ReadFailure::Missing) if f.optional => {}
            Err(ReadFailure::Missing) => {
                return Err(format!(
                    "env_file {}: no such file (write \"-{}\" if it may be missing)",
                    f.path.display(),
                    f.path.display()
                ));
            }
            Err(ReadFailure::Other(e)) => {
                return Err(format!("env_file {}: {e}", f.path.display()));
            }
        }
    }
    Ok(out)
}

enum ReadFailure {
    Missing,
    Other(String),
}

fn read_one(path: &Path) -> Result<Vec<(String, String)>, ReadFailure> {
    use super::table_file::{self, ReadError};
    let (text, _) = table_file::read(path, MAX_BYTES).map_err(|e| match e {
        ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => ReadFailure::Missing,
        ReadError::Io(e) => ReadFailure::Other(e.to_string()),
        ReadError::NotRegular(kind) => {
            ReadFailure::Other(format!("it is {kind}; only a regular file is read"))
        }
        ReadError::TooLarge { .. } => ReadFailure::Other("larger than 1 MiB".to_string()),
    })?;
    parse(&text).map_err(ReadFailure::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vec<(String, String)> {
        parse(text).expect("parses")
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plain_lines_comments_and_blanks() {
        let text = "# a comment\n\n; another\nA=1\n  B = two words  \nC=\nD=x#y\n";
        assert_eq!(
            vars(text),
            pairs(&[("A", "1"), ("B", "two words"), ("C", ""), ("D", "x#y")])
        );
        // No newline at the end.
        assert_eq!(vars("A=1"), pairs(&[("A", "1")]));
        assert_eq!(vars(""), pairs(&[]));
    }

    #[test]
    fn quotes() {
        let text = "A='it''s \"raw\" \\n'\nB=\"say \\\"hi\\\" \\$HOME \\\\ \\n\"\nC=\"  padded  \"\n\
                    D='multi\nline'\nE=\"x\"'y'z\n";
        assert_eq!(
            vars(text),
            pairs(&[
                ("A", "its \"raw\" \\n"),
                ("B", "say \"hi\" $HOME \\ \\n"),
                ("C", "  padded  "),
                ("D", "multi\nline"),
                ("E", "xyz"),
            ])
        );
    }

    #[test]
    fn continuations() {
        let text = "A=one \\\ntwo\nB=\"x\\\ny\"\n# comment \\\nC=not-a-variable\nD=a\\ b\\\\\n";
        assert_eq!(
            vars(text),
            pairs(&[("A", "one two"), ("B", "xy"), ("D", "a b\\")])
        );
    }

    #[test]
    fn errors_name_the_line_and_never_the_value() {
        let e = parse("A=1\nthis line has no equals sign secret123\n").expect_err("no =");
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(!e.contains("secret123"), "{e}");
        let e = parse("A=1\n9X=secret123\n").expect_err("bad name");
        assert!(e.starts_with("line 2:") && e.contains("\"9X\""), "{e}");
        assert!(!e.contains("secret123"), "{e}");
        let e = parse("A=1\nPW=\"secret123\n").expect_err("unclosed");
        assert_eq!(e, "line 2: the quoted value of PW is not closed");
    }

    #[test]
    fn files_in_order_and_the_dash_prefix() {
        let dir = std::env::temp_dir().join(format!("cw-envfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("a"), "X=a\nY=a\n").expect("write");
        std::fs::write(dir.join("b"), "Y=b\n").expect("write");
        let f = |name: &str, optional| EnvFile {
            path: dir.join(name),
            optional,
        };
        let got = read_all(&[f("a", false), f("missing", true), f("b", false)]).expect("reads");
        assert_eq!(got, pairs(&[("X", "a"), ("Y", "a"), ("Y", "b")]));
        let e = read_all(&[f("a", false), f("missing", false)]).expect_err("missing");
        assert!(e.contains("missing: no such file"), "{e}");
        std::fs::write(dir.join("bad"), "X=1\nY\n").expect("write");
        let e = read_all(&[f("bad", true)]).expect_err("a present file must parse");
        assert!(
            e.ends_with("bad: line 2: expected KEY=VALUE (no '=')"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
