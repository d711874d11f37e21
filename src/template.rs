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
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("{{{{ without a closing }}}} in {text:?}"))?;
        let name = after[..close].trim();
        if name.is_empty() {
            return Err(format!("empty placeholder {{{{}}}} in {text:?}"));
        }
        pieces.push(Piece::Var(name.to_string()));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
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
    let pieces = match parse(text) {
        Ok(p) => p,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for piece in pieces {
        let Piece::Var(name) = piece else { continue };
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
        } else if !NAMES.contains(&name.as_str()) {
            let hint = crate::diag::suggest(&name, NAMES.iter().copied())
                .map(|s| format!(" (did you mean {{{{ {s} }}}}?)"))
                .unwrap_or_default();
            problems.push(format!(
                "unknown placeholder {{{{ {name} }}}}{hint}; known: {}, params.NAME, \
                 upstream.JOB",
                NAMES.join(", ")
            ));
        }
    }
    problems
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
