//! `cronwarden list`: one row per job.

use jiff::Timestamp;

use super::{CmdResult, exit};
use crate::config::{Config, Job};
use crate::schedule::{Expr, zone_name};

/// "in 3h 12m", "in 45s", "in 2d 4h".
pub(super) fn relative(from: Timestamp, to: Timestamp) -> String {
    let secs = (to.as_second() - from.as_second()).max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    };
    format!("in {text}")
}

fn next_run(job: &Job, now: Timestamp, host: &str) -> String {
    if !job.enabled {
        return "disabled".to_string();
    }
    match &job.schedule {
        Some(s) => match s.expr() {
            Expr::Reboot => "at boot".to_string(),
            Expr::Start => "at daemon start".to_string(),
            Expr::Manual => "manual".to_string(),
            // With a fixed jitter, the instant the run starts.
            _ => match job.next_start(host, now) {
                Some(t) => format!(
                    "{} ({})",
                    t.to_zoned(job.tz().clone())
                        .strftime("%Y-%m-%d %H:%M:%S %Z"),
                    relative(now, t)
                ),
                None => "never".to_string(),
            },
        },
        None => format!("after {}", job.after().join(", ")),
    }
}

/// "success 2h ago", "failure 5m ago (exit 2)", or "never".
fn last_result(config: &Config, job: &Job, now: Timestamp) -> String {
    let Some(rec) = crate::record::last(&config.settings.state_dir, &job.name) else {
        return "never".to_string();
    };
    let ago = rec
        .ended
        .parse::<Timestamp>()
        .map(|t| relative(t, now).replacen("in ", "", 1) + " ago")
        .unwrap_or_default();
    match &rec.reason {
        Some(r) if rec.outcome != crate::record::Outcome::Success => {
            format!("{} {ago} ({r})", rec.outcome.as_str())
        }
        _ => format!("{} {ago}", rec.outcome.as_str()),
    }
}

/// `list [--tag T]`: every job, or those with the tag (in their pipeline trees).
pub(super) fn run(config: &Config, tag: Option<&str>) -> CmdResult {
    super::job_args::check_tag(config, tag)?;
    let now = Timestamp::now();
    let paused = crate::coord::read_paused(&config.settings.state_dir);
    let host = config.host_name();
    let header = [
        "JOB",
        "SCHEDULE",
        "ZONE",
        "NEXT RUN",
        "LAST RESULT",
        "PAUSED",
        "TAGS",
    ];
    let mut rows: Vec<[String; 7]> = Vec::with_capacity(config.jobs.len());
    for (job, depth) in config.tree_order() {
        if tag.is_some_and(|t| !job.has_tag(t)) {
            continue;
        }
        let name = if depth == 0 {
            job.name.to_string()
        } else {
            format!("{}└─ {}", "   ".repeat(depth - 1), job.name)
        };
        // A step's trigger rule, when it is not the default.
        let name = match job.trigger {
            crate::config::TriggerRule::AllSuccess => name,
            rule => format!("{name} ({})", rule.as_str()),
        };
        rows.push([
            name,
            job.schedule_text().unwrap_or("-").to_string(),
            zone_name(job.tz()),
            next_run(job, now, &host),
            last_result(config, job, now),
            if paused.contains(job.name.as_str()) {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            job.tags().join(","),
        ]);
    }
    // TAGS only when a job has tags.
    let tagged = config.jobs.iter().any(|j| !j.tags().is_empty());
    let keep: Vec<usize> = (0..header.len()).filter(|i| *i < 6 || tagged).collect();
    super::print::out(render_kept(&header, &rows, &keep))?;
    Ok(exit::OK)
}

/// [`render_table`] of the columns `keep` (indices into `header` and each row), in that order:
/// for tables whose optional columns are shown only when they say something.
pub(super) fn render_columns<const N: usize, const M: usize>(
    header: &[&str; N],
    rows: &[[String; N]],
    keep: [usize; M],
) -> String {
    let header = keep.map(|i| header[i]);
    let rows: Vec<[String; M]> = rows.iter().map(|r| keep.map(|i| r[i].clone())).collect();
    render_table(&header, &rows)
}

/// [`render_columns`] with the columns to keep chosen at run time.
pub(super) fn render_kept<const N: usize>(
    header: &[&str; N],
    rows: &[[String; N]],
    keep: &[usize],
) -> String {
    let header: Vec<&str> = keep.iter().map(|&i| header[i]).collect();
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| keep.iter().map(|&i| r[i].as_str()).collect())
        .collect();
    render_lines(&header, &rows)
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(super) fn render_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    render_lines(header, &rows)
}

/// [`render_table`] of rows as long as `header`.
fn render_lines(header: &[&str], rows: &[Vec<&str>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == n {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row);
    }
    out
}
