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
//!
//! Two steps: `parse.rs` turns the crontab's lines into entries (jobs with the environment
//! in effect, and the lines that could not be converted), `print.rs` writes the entries as
//! the TOML text of the table.

mod parse;
mod print;

/// The table, and the problems (line number, message) of lines that were not converted.
pub struct Imported {
    pub toml: String,
    pub problems: Vec<(usize, String)>,
}

/// The table for a crontab's `text`: `system` for the /etc/crontab and /etc/cron.d format
/// (with a user field), `source` (where the crontab came from) for the header comment.
pub fn import(text: &str, system: bool, source: &str) -> Imported {
    let entries = parse::parse(text, system);
    Imported {
        toml: print::print(&entries, system, source),
        problems: entries.iter().filter_map(parse::Entry::problem).collect(),
    }
}
