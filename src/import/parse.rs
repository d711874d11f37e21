//! Crontab lines -> entries: which lines are jobs (schedule, the user field of a system
//! crontab, command, `%` standard input), which set the environment of the jobs below them,
//! and which cannot be converted. Each job is named after the program it runs.

use std::collections::{BTreeMap, HashSet};

use crate::schedule::Expr;

/// A crontab line the table keeps, in crontab order.
pub(crate) enum Entry {
    Job(Job),
    /// A line that is neither a job nor an environment line.
    Unreadable {
        line: usize,
        raw: String,
        problem: String,
    },
    /// A job line that cannot be converted, and why.
    BadJob {
        line: usize,
        raw: String,
        problem: String,
    },
}

impl Entry {
    /// The line number and the problem of a line that was not converted.
    pub(crate) fn problem(&self) -> Option<(usize, String)> {
        match self {
            Entry::Job(_) => None,
            Entry::Unreadable { line, problem, .. } | Entry::BadJob { line, problem, .. } => {
                Some((*line, problem.clone()))
            }
        }
    }
}

/// A job line, with the environment lines above it in effect.
pub(crate) struct Job {
    pub(crate) line: usize,
    /// The comment lines right above it, without their `#`.
    pub(crate) comments: Vec<String>,
    pub(crate) name: String,
    /// As written: a macro (`@daily`) or the five fields joined by single spaces.
    pub(crate) schedule: String,
    pub(crate) command: String,
    /// What follows the first unescaped `%`, with `%` as newlines.
    pub(crate) stdin: Option<String>,
    /// The user field of a system crontab.
    pub(crate) user: Option<String>,
    pub(crate) env: Env,
}

/// What the environment lines above a job set.
#[derive(Clone, Default)]
pub(crate) struct Env {
    /// SHELL.
    pub(crate) shell: Option<String>,
    /// CRON_TZ.
    pub(crate) timezone: Option<String>,
    /// MAILTO: `None` when unset, `Some("")` for no mail.
    pub(crate) mailto: Option<String>,
    /// Every other variable.
    pub(crate) vars: BTreeMap<String, String>,
}

impl Env {
    /// Applies an environment line (`NAME=value`, `NAME = "value"`), as cron reads it;
    /// `false` when the line is not one.
    fn set(&mut self, line: &str) -> bool {
        let Some((name, value)) = env_line(line) else {
            return false;
        };
        match name.as_str() {
            "SHELL" => self.shell = Some(value),
            "CRON_TZ" => self.timezone = Some(value),
            "MAILTO" => self.mailto = Some(value),
            _ => {
                self.vars.insert(name, value);
            }
        }
        true
    }
}

/// The entries of a crontab; `system` for the /etc/crontab format, with a user field.
pub(crate) fn parse(text: &str, system: bool) -> Vec<Entry> {
    let mut env = Env::default();
    let mut comments: Vec<String> = Vec::new();
    let mut used = HashSet::new();
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            comments.clear();
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            comments.push(c.trim_end().to_string());
            continue;
        }
        let is_job =
            line.starts_with('@') || line.starts_with(|c: char| c.is_ascii_digit() || c == '*');
        if !is_job {
            if !env.set(line) {
                entries.push(Entry::Unreadable {
                    line: n,
                    raw: raw.to_string(),
                    problem: format!("not a job or an environment line: {line:?}"),
                });
            }
            comments.clear();
            continue;
        }
        let entry = match job_fields(line, system) {
            Err(problem) => Entry::BadJob {
                line: n,
                raw: raw.to_string(),
                problem,
            },
            Ok((schedule, user, command_text)) => {
                let (command, stdin) = split_percent(command_text);
                Entry::Job(Job {
                    line: n,
                    comments: std::mem::take(&mut comments),
                    name: job_name(&command, n, &mut used),
                    schedule,
                    command: command.trim().to_string(),
                    stdin,
                    user,
                    env: env.clone(),
                })
            }
        };
        comments.clear();
        entries.push(entry);
    }
    entries
}

/// A job line's schedule, user field (system format) and command text, or why it cannot be
/// converted.
fn job_fields(line: &str, system: bool) -> Result<(String, Option<String>, &str), String> {
    // Schedule: a macro, or five fields.
    let mut words = line.split_whitespace();
    let sched: String = if line.starts_with('@') {
        words.next().unwrap_or("").to_string()
    } else {
        let f: Vec<&str> = words.by_ref().take(5).collect();
        f.join(" ")
    };
    let fields = if line.starts_with('@') { 1 } else { 5 } + usize::from(system);
    let rest_start = after_fields(line, fields);
    let user = if system {
        words.next().map(str::to_string)
    } else {
        None
    };
    let command_text = line[rest_start.min(line.len())..].trim_start();
    if let Err(e) = Expr::parse(&sched) {
        Err(format!("schedule {sched:?}: {e}"))
    } else if system && user.as_deref().is_none_or(str::is_empty) {
        Err("no user field (a system crontab line is: schedule user command)".to_string())
    } else if command_text.is_empty() {
        Err("no command".to_string())
    } else {
        Ok((sched, user, command_text))
    }
}

/// The byte position in `line` after its first `count` whitespace-separated fields.
fn after_fields(line: &str, mut count: usize) -> usize {
    let mut idx = 0;
    let bytes = line.as_bytes();
    while count > 0 && idx < bytes.len() {
        while idx < bytes.len() && bytes[idx].is_ascii_whitespace() {
            idx += 1;
        }
        while idx < bytes.len() && !bytes[idx].is_ascii_whitespace() {
            idx += 1;
        }
        count -= 1;
    }
    idx
}

/// Splits cron's `%` syntax: (command, standard input).
fn split_percent(cmd: &str) -> (String, Option<String>) {
    let mut command = String::new();
    let mut stdin: Option<String> = None;
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        let target = match &mut stdin {
            Some(s) => s,
            None => &mut command,
        };
        match c {
            '\\' if chars.peek() == Some(&'%') => {
                chars.next();
                target.push('%');
            }
            '%' => match &mut stdin {
                None => stdin = Some(String::new()),
                Some(s) => s.push('\n'),
            },
            c => target.push(c),
        }
    }
    (command, stdin.map(|s| s + "\n"))
}

/// The program a shell command line runs: past variable assignments, `cd DIR`, `test ...`
/// guards, operators and wrappers such as `nice`. For `run-parts`, the directory it runs.
fn program(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].trim_matches(|c| c == '{' || c == '}' || c == ';' || c == '(' || c == ')');
        match w {
            "" | "&&" | "||" | "|" | "nice" | "ionice" | "exec" | "sudo" | "nohup" | "time" => {
                i += 1
            }
            "cd" => i += 2,
            "test" | "[" => {
                // Skip the guard up to the next operator.
                i += 1;
                while i < words.len() && !matches!(words[i], "&&" | "||" | ";" | "|") {
                    i += 1;
                }
            }
            w if w.contains('=') || w.starts_with('-') => i += 1,
            w => {
                let base = w.rsplit('/').next().unwrap_or(w);
                if base == "run-parts" {
                    let dir = words[i + 1..]
                        .iter()
                        .map(|d| d.trim_end_matches([';', '}']))
                        .find(|d| !d.starts_with('-'))?;
                    return Some(dir.rsplit('/').next().unwrap_or(dir).to_string());
                }
                return Some(base.to_string());
            }
        }
    }
    None
}

/// A readable, unique job name from the command.
fn job_name(command: &str, line: usize, used: &mut HashSet<String>) -> String {
    let mut name: String = program(command)
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string();
    if name.is_empty() {
        name = format!("line-{line}");
    }
    name.truncate(60);
    let mut unique = name.clone();
    let mut n = 2;
    while !used.insert(unique.clone()) {
        unique = format!("{name}-{n}");
        n += 1;
    }
    unique
}

/// An environment line (`NAME=value`, `NAME = "value"`), as cron reads it.
fn env_line(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let v = value.trim();
    let v = if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        &v[1..v.len() - 1]
    } else {
        v
    };
    Some((name.to_string(), v.to_string()))
}
