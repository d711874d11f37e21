//! `{{ ds }}`-style placeholders in `command`, `env` values and `verify.files`.

use std::collections::BTreeMap;

/// The placeholder names a template may use (besides `params.K`).
pub const NAMES: &[&str] = &["ds", "ds_nodash", "ts", "job", "run_id", "attempt"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// A placeholder name: `ds`, ..., or `params.K`.
    Var(String),
}

/// Splits a template into text and placeholders. `{{` without a closing `}}` and an empty
/// placeholder are errors; names are checked by [`check`].
pub fn parse(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    walk(text, |piece, var| {
        pieces.push(if var {
            Piece::Var(piece.to_string())
        } else {
            Piece::Text(piece.to_string())
        })
    })?;
    Ok(pieces)
}

/// The walk under [`parse`] and [`check`]: `piece(slice, is_placeholder)` for each piece in
/// order (a placeholder's name trimmed), then the error of a malformed template, if any. It
/// copies nothing: `check` runs it for every string of a table (a 10,000-job table has tens
/// of thousands), where the copies and the `str::find("{{")` searcher set up per call were
/// most of `check`'s time in templates (callgrind: 87 of 766 million instructions for the
/// heavy table of `bench/check.sh` before, 15 million after).
fn walk<'t>(text: &'t str, mut piece: impl FnMut(&'t str, bool)) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = find_pair(rest, b'{') {
        if open > 0 {
            piece(&rest[..open], false);
        }
        let after = &rest[open + 2..];
        let close = find_pair(after, b'}')
            .ok_or_else(|| format!("{{{{ without a closing }}}} in {text:?}"))?;
        let name = after[..close].trim();
        if name.is_empty() {
            return Err(format!("empty placeholder {{{{}}}} in {text:?}"));
        }
        piece(name, true);
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        piece(rest, false);
    }
    Ok(())
}

/// Where the first two `b`s in a row (`{{` or `}}`) start in `s`: what `s.find("{{")` gives,
/// by a byte search (`b` is ASCII, so both bytes are whole characters).
fn find_pair(s: &str, b: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(i) = bytes[from..].iter().position(|&c| c == b) {
        let at = from + i;
        match bytes.get(at + 1) {
            Some(&next) if next == b => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
    None
}

/// Checks every placeholder of a template against the known names and the declared
/// parameters; returns the problems found. `upstream`: the jobs whose results
/// `{{ upstream.JOB }}` may name here (the job's ancestors, in an array command; none
/// elsewhere).
pub fn check(
    text: &str,
    params: &BTreeMap<String, String>,
    allow_params: bool,
    upstream: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let walked = walk(text, |name, var| {
        if var {
            check_name(name, params, allow_params, upstream, &mut problems);
        }
    });
    match walked {
        Ok(()) => problems,
        Err(e) => vec![e],
    }
}

/// The problem with one placeholder `name` of [`check`], if any, added to `problems`.
fn check_name(
    name: &str,
    params: &BTreeMap<String, String>,
    allow_params: bool,
    upstream: &std::collections::BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    if let Some(job) = name.strip_prefix("upstream.") {
        if !allow_params {
            problems.push(format!(
                "{{{{ {name} }}}} in a string command would put data into shell syntax; use \
                 \"${}\" instead",
                upstream_var(job)
            ));
        } else if !upstream.contains(job) {
            problems.push(format!(
                "{{{{ {name} }}}}: {job:?} is no job this one runs after (a result is given \
                 to the array commands of the steps below the job that wrote it)"
            ));
        }
    } else if let Some(key) = name.strip_prefix("params.") {
        if !allow_params {
            problems.push(format!(
                "{{{{ {name} }}}} in a string command would put data into shell syntax; use \
                 \"$CRONWARDEN_PARAM_{key}\" instead"
            ));
        } else if !params.contains_key(key) {
            let declared: Vec<&str> = params.keys().map(String::as_str).collect();
            problems.push(format!(
                "{{{{ {name} }}}}: no parameter {key:?} is declared in `params` (declared: {})",
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            ));
        }
    } else if !NAMES.contains(&name) {
        let hint = crate::diag::suggest(name, NAMES.iter().copied())
            .map(|s| format!(" (did you mean {{{{ {s} }}}}?)"))
            .unwrap_or_default();
        problems.push(format!(
            "unknown placeholder {{{{ {name} }}}}{hint}; known: {}, params.NAME, \
             upstream.JOB",
            NAMES.join(", ")
        ));
    }
}

/// The environment variable that carries the result of the upstream job `job`:
/// `CRONWARDEN_UPSTREAM_` and the name in upper case, each character other than a letter or a
/// digit as `_`.
pub fn upstream_var(job: &str) -> String {
    let name: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CRONWARDEN_UPSTREAM_{name}")
}

/// Fills a template. Unknown names are left as written (the table was checked at load),
/// except `upstream.JOB` without a value (the job wrote no result, or is not in this
/// pipeline run): nothing.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> String {
    match parse(text) {
        Ok(pieces) => pieces
            .into_iter()
            .map(|p| match p {
                Piece::Text(t) => t,
                Piece::Var(name) => match vars.get(&name) {
                    Some(v) => v.clone(),
                    None if name.starts_with("upstream.") => String::new(),
                    None => format!("{{{{ {name} }}}}"),
                },
            })
            .collect(),
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render() {
        let mut vars = BTreeMap::new();
        vars.insert("ds".to_string(), "2026-11-20".to_string());
        vars.insert("params.mode".to_string(), "full".to_string());
        assert_eq!(
            render("/b/db-{{ ds }}-{{params.mode}}.gz", &vars),
            "/b/db-2026-11-20-full.gz"
        );
        assert_eq!(render("no placeholders", &vars), "no placeholders");
    }

    #[test]
    fn find_pair_finds_what_str_find_finds() {
        for s in [
            "", "{", "{{", "a{b{{c", "}{}}", "x}", "é{{", "{é{{", "{{{", "a}}}b", "{a{",
        ] {
            assert_eq!(find_pair(s, b'{'), s.find("{{"), "{s:?}");
            assert_eq!(find_pair(s, b'}'), s.find("}}"), "{s:?}");
        }
    }

    #[test]
    fn check_reports_problems() {
        let mut params = BTreeMap::new();
        params.insert("mode".to_string(), "full".to_string());
        let none = std::collections::BTreeSet::new();
        let up = std::collections::BTreeSet::from(["ex-tract".to_string()]);
        assert!(check("{{ ds }} {{ params.mode }}", &params, true, &none).is_empty());
        assert!(check("{{ dss }}", &params, true, &none)[0].contains("did you mean {{ ds }}"));
        assert!(check("{{ params.nope }}", &params, true, &none)[0].contains("no parameter"));
        assert!(
            check("{{ params.mode }}", &params, false, &none)[0].contains("CRONWARDEN_PARAM_mode")
        );
        assert!(check("{{ ds", &params, true, &none)[0].contains("without a closing"));
        assert!(check("{{ }}", &params, true, &none)[0].contains("empty placeholder"));
        assert!(check("{{ upstream.ex-tract }}", &params, true, &up).is_empty());
        assert!(check("{{ upstream.other }}", &params, true, &up)[0].contains("no job this"));
        assert!(
            check("{{ upstream.ex-tract }}", &params, false, &up)[0]
                .contains("$CRONWARDEN_UPSTREAM_EX_TRACT")
        );
    }
}
