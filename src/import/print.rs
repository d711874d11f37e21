//! Entries -> the TOML text of the table: a header comment, one email channel per MAILTO
//! address, then every job (with the comments above it) and every line that was not
//! converted, as a comment where it stood.

use super::parse::{Entry, Job};

/// The table for `entries`; `system` and `source` (where the crontab came from) go into the
/// header comment.
pub(crate) fn print(entries: &[Entry], system: bool, source: &str) -> String {
    let mut channels: Vec<(String, String)> = Vec::new(); // (name, MAILTO value)
    let mut jobs = String::new();
    for entry in entries {
        match entry {
            Entry::Job(job) => {
                let channel = mail_channel(&mut channels, job.env.mailto.as_deref());
                print_job(&mut jobs, job, channel.as_deref());
            }
            Entry::Unreadable { line, raw, .. } => {
                jobs.push_str(&format!("# line {line} not converted: {}\n", comment(raw)));
            }
            Entry::BadJob { line, raw, problem } => {
                jobs.push_str(&format!(
                    "# line {line} not converted ({}): {}\n\n",
                    comment(problem),
                    comment(raw)
                ));
            }
        }
    }
    let mut out = format!(
        "# Imported by `cronwarden import{}` from {source}.\n# Every schedule is the \
         crontab's text, unchanged; the jobs run as cron runs them: with the shell, \
         overlapping runs allowed, nothing caught up.\n\n",
        if system { " --system" } else { "" }
    );
    for (name, addr) in &channels {
        print_channel(&mut out, name, addr);
    }
    out.push_str(&jobs);
    out
}

/// The channel for a job's MAILTO (made at its first use: `mailto`, `mailto-2`, ...); none
/// for `MAILTO=""` or no MAILTO.
fn mail_channel(channels: &mut Vec<(String, String)>, mailto: Option<&str>) -> Option<String> {
    match mailto {
        Some("") => None,
        Some(addr) => {
            if let Some((c, _)) = channels.iter().find(|(_, a)| a == addr) {
                return Some(c.clone());
            }
            let c = if channels.is_empty() {
                "mailto".to_string()
            } else {
                format!("mailto-{}", channels.len() + 1)
            };
            channels.push((c.clone(), addr.to_string()));
            Some(c)
        }
        // cron mails the crontab's owner; there is no address to write here.
        None => None,
    }
}

fn print_job(out: &mut String, job: &Job, channel: Option<&str>) {
    for c in &job.comments {
        out.push_str(&format!("#{}\n", comment(c)));
    }
    out.push_str(&format!(
        "[jobs.{}]\n# crontab line {}\n",
        job.name, job.line
    ));
    out.push_str(&format!("schedule = {}\n", quote(&job.schedule)));
    out.push_str(&format!("command = {}\n", quote(&job.command)));
    if let Some(s) = &job.env.shell {
        out.push_str(&format!("shell = {}\n", quote(s)));
    }
    if let Some(u) = &job.user {
        out.push_str(&format!("user = {}\n", quote(u)));
    }
    if let Some(z) = &job.env.timezone {
        out.push_str(&format!("timezone = {}\n", quote(z)));
    }
    if !job.env.vars.is_empty() {
        let pairs: Vec<String> = job
            .env
            .vars
            .iter()
            .map(|(k, v)| format!("{k} = {}", quote(v)))
            .collect();
        out.push_str(&format!("env = {{ {} }}\n", pairs.join(", ")));
    }
    if let Some(s) = &job.stdin {
        out.push_str(&format!("stdin = {}\n", quote(s)));
    }
    out.push_str("overlap = \"allow\"\ncatchup = \"none\"\n");
    if let Some(ch) = channel {
        out.push_str(&format!("alert = [{}]\n", quote(ch)));
    }
    out.push('\n');
}

/// An email channel for a MAILTO value: a list of addresses (a bare user is a local one).
fn print_channel(out: &mut String, name: &str, addr: &str) {
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
