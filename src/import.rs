//! `cronwarden import`: a crontab (user format, or the /etc/crontab and /etc/cron.d format
//! with a user field) turned into a job table that means the same.
//!
//! Every job keeps its schedule text unchanged, runs its command with the shell as cron does
//! (`overlap = "allow"`, `catchup = "none"`), and carries the environment lines above it:
//! SHELL becomes `shell`, CRON_TZ `timezone`, MAILTO an email channel with `on = ["output"]`
//! (none for `MAILTO=""`), anything else `env`. A `%` in a command ends the command and the
//! rest, with `%` as newlines, is standard input; `\%` is a literal `%`. Comments above a line
//! stay as TOML comments. A line that cannot be converted is reported with its number and
//! kept in the output as a comment, never silently dropped.

use std::collections::{BTreeMap, HashSet};

use crate::schedule::Expr;

/// The table, and the problems (line number, message) of lines that were not converted.
pub struct Imported {
    pub toml: String,
    pub problems: Vec<(usize, String)>,
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for a TOML comment: TOML allows no control character but tab in a comment, so any
/// other (a stray `\r`, a `\x16` from a binary crontab) is written as `\xNN`.
fn comment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (c.is_ascii_control() && c != '\t') || c == '\u{7f}' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
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

pub fn import(text: &str, system: bool, source: &str) -> Imported {
    let mut out = format!(
        "# Imported by `cronwarden import{}` from {source}.\n# Every schedule is the \
         crontab's text, unchanged; the jobs run as cron runs them: with the shell, \
         overlapping runs allowed, nothing caught up.\n\n",
        if system { " --system" } else { "" }
    );
    let mut problems = Vec::new();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut shell: Option<String> = None;
    let mut tz: Option<String> = None;
    let mut mailto: Option<String> = None;
    let mut channels: Vec<(String, String)> = Vec::new(); // (name, MAILTO value)
    let mut comments: Vec<String> = Vec::new();
    let mut used = HashSet::new();
    let mut jobs = String::new();
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
            match env_line(line) {
                Some((k, v)) => match k.as_str() {
                    "SHELL" => shell = Some(v),
                    "CRON_TZ" => tz = Some(v),
                    "MAILTO" => mailto = Some(v),
                    _ => {
                        env.insert(k, v);
                    }
                },
                None => problems.push((n, format!("not a job or an environment line: {line:?}"))),
            }
            if problems.last().is_some_and(|(l, _)| *l == n) {
                jobs.push_str(&format!("# line {n} not converted: {}\n", comment(raw)));
            }
            comments.clear();
            continue;
        }
        // Schedule: a macro, or five fields.
        let mut words = line.split_whitespace();
        let sched: String = if line.starts_with('@') {
            words.next().unwrap_or("").to_string()
        } else {
            let f: Vec<&str> = words.by_ref().take(5).collect();
            f.join(" ")
        };
        let rest_start = {
            // Position after the schedule (and the user field) in the original line.
            let mut count = if line.starts_with('@') { 1 } else { 5 } + usize::from(system);
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
        };
        let user = if system {
            words.next().map(str::to_string)
        } else {
            None
        };
        let command_text = line[rest_start.min(line.len())..].trim_start();
        let problem = if let Err(e) = Expr::parse(&sched) {
            Some(format!("schedule {sched:?}: {e}"))
        } else if system && user.as_deref().is_none_or(str::is_empty) {
            Some("no user field (a system crontab line is: schedule user command)".to_string())
        } else if command_text.is_empty() {
            Some("no command".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            problems.push((n, p.clone()));
            jobs.push_str(&format!(
                "# line {n} not converted ({}): {}\n\n",
                comment(&p),
                comment(raw)
            ));
            comments.clear();
            continue;
        }
        let (command, stdin) = split_percent(command_text);
        let name = job_name(&command, n, &mut used);
        for c in comments.drain(..) {
            jobs.push_str(&format!("#{}\n", comment(&c)));
        }
        jobs.push_str(&format!("[jobs.{name}]\n# crontab line {n}\n"));
        jobs.push_str(&format!("schedule = {}\n", quote(&sched)));
        jobs.push_str(&format!("command = {}\n", quote(command.trim())));
        if let Some(s) = &shell {
            jobs.push_str(&format!("shell = {}\n", quote(s)));
        }
        if let Some(u) = &user {
            jobs.push_str(&format!("user = {}\n", quote(u)));
        }
        if let Some(z) = &tz {
            jobs.push_str(&format!("timezone = {}\n", quote(z)));
        }
        if !env.is_empty() {
            let pairs: Vec<String> = env
                .iter()
                .map(|(k, v)| format!("{k} = {}", quote(v)))
                .collect();
            jobs.push_str(&format!("env = {{ {} }}\n", pairs.join(", ")));
        }
        if let Some(s) = &stdin {
            jobs.push_str(&format!("stdin = {}\n", quote(s)));
        }
        jobs.push_str("overlap = \"allow\"\ncatchup = \"none\"\n");
        match mailto.as_deref() {
            Some("") => {}
            Some(addr) => {
                let ch = match channels.iter().find(|(_, a)| a == addr) {
                    Some((c, _)) => c.clone(),
                    None => {
                        let c = if channels.is_empty() {
                            "mailto".to_string()
                        } else {
                            format!("mailto-{}", channels.len() + 1)
                        };
                        channels.push((c.clone(), addr.to_string()));
                        c
                    }
                };
                jobs.push_str(&format!("alert = [{}]\n", quote(&ch)));
            }
            // cron mails the crontab's owner; there is no address to write here.
            None => {}
        }
        jobs.push('\n');
    }
    for (name, addr) in &channels {
        let to: Vec<String> = addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                if a.contains('@') {
                    quote(a)
                } else {
                    quote(&format!("{a}@localhost"))
                }
            })
            .collect();
        out.push_str(&format!(
            "# MAILTO={}: like cron, mail any output through the local MTA.\n[alerts.{name}]\ntype = \"email\"\nsmtp_url = \"sendmail:\"\nfrom = \"cron@localhost\"\nto = [{}]\non = [\"output\"]\n\n",
            comment(addr),
            to.join(", ")
        ));
    }
    out.push_str(&jobs);
    Imported {
        toml: out,
        problems,
    }
}
