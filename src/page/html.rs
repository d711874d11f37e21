//! The page itself (`GET /`): the jobs, the run timeline and the duration trends, as one
//! server-rendered HTML document.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;

use super::data::{Row, Snapshot, snapshot};
use super::words::{WINDOWS, took};
use super::{Query, Reply, Source, escape, reply, text, url_escape};
use crate::config::Config;
use crate::record::{Outcome, RunRecord};
use crate::schedule::{format_rfc3339, zone_name};
use crate::units::format_duration;

/// The document around `main`: the stylesheet and the script, both from this origin.
pub(crate) fn document(title: &str, main: &str, note: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/page.css\">\
         <script src=\"/page.js\" defer></script></head>\n<body>\n<header><h1>{}</h1>\
         <p class=\"note\" id=\"refresh\">{}</p></header>\n<main>\n{main}</main>\n</body></html>\n",
        escape(title),
        escape(title),
        escape(note)
    )
}

/// `GET /?window=24h|7d|1h`.
pub(crate) fn page(src: &dyn Source, cfg: &Config, q: &Query) -> Result<Reply, Reply> {
    let want = q.get("window").unwrap_or("24h");
    let Some(&(window, secs)) = WINDOWS.iter().find(|(w, _)| *w == want) else {
        return Err(text(
            "400 Bad Request",
            format!("window={want:?}: one of 24h, 7d, 1h"),
        ));
    };
    let now = Timestamp::now();
    let since = now
        .checked_sub(jiff::SignedDuration::from_secs(secs as i64))
        .unwrap_or(Timestamp::MIN);
    let snap = snapshot(src, cfg, since)?;
    let mut main = String::new();
    daemon_section(&mut main, cfg, &snap);
    jobs_section(&mut main, cfg, &snap);
    main.push_str(&super::timeline::section(cfg, &snap, since, window));
    main.push_str(&super::trend::section(&snap));
    let note = format!(
        "as of {}; refreshed every 10 s while shown (with JavaScript)",
        format_rfc3339(snap.now, cfg.settings.tz())
    );
    let title = match &snap.node {
        Some(n) => format!("cronwarden on {n}"),
        None => "cronwarden".to_string(),
    };
    Ok(reply(
        "200 OK",
        "text/html; charset=utf-8",
        document(&title, &main, &note),
    ))
}

/// The daemon's own problems, when it has some; in fleet mode, this node and the fleet's
/// live nodes with their last heartbeat.
fn daemon_section(out: &mut String, cfg: &Config, snap: &Snapshot) {
    let h = &snap.health;
    if h.problems.is_empty() && snap.node.is_none() {
        return;
    }
    out.push_str("<section id=\"daemon\"><h2>Daemon</h2><ul>");
    if let Some(n) = &snap.node {
        let beat = cfg.cluster.as_ref().map(|c| format_duration(c.heartbeat));
        let _ = write!(
            out,
            "<li>fleet node <b>{}</b> (heartbeat every {})</li>",
            escape(n),
            beat.unwrap_or_default()
        );
    }
    for p in &h.problems {
        let _ = write!(
            out,
            "<li class=\"problem\">cannot record runs: {}</li>",
            escape(p)
        );
    }
    out.push_str("</ul></section>\n");
    if snap.node.is_none() {
        return;
    }
    out.push_str(
        "<section id=\"fleet\"><h2>Fleet</h2><table class=\"nodes\"><thead><tr><th>Node</th>\
         <th>State</th><th>Process</th><th>Last heartbeat</th></tr></thead><tbody>\n",
    );
    for n in &snap.nodes {
        let ago = format_duration(Duration::from_secs(n.silent.as_secs()));
        let _ = writeln!(
            out,
            "<tr class=\"node\" data-node=\"{name}\" data-state=\"{state}\"><th scope=\"row\">\
             {name}{me}</th><td class=\"n-{state}\">{state}</td><td>{what} (pid {pid})</td>\
             <td><time datetime=\"{at}\">{ago} ago</time></td></tr>",
            name = escape(&n.node),
            me = if Some(&n.node) == snap.node.as_ref() {
                " (this node)"
            } else {
                ""
            },
            state = n.state.as_str(),
            what = if n.daemon { "daemon" } else { "command" },
            pid = n.pid,
            at = escape(&n.heartbeat),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

/// The state of a job as a class and words: running (for how long), unconfirmed (a fleet
/// run whose node is silent or no longer holds it, as `status` says), paused, stale,
/// disabled or idle.
fn state(row: &Row, now: Timestamp) -> (&'static str, String) {
    let s = &row.status;
    let mut words = Vec::new();
    let class = if let (Some(_), Some(d)) = (&s.running, &s.doubt) {
        words.push(d.text.clone());
        "unconfirmed"
    } else if let Some(h) = &s.running {
        let since = h.since.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
        let elapsed = since.map(|t| now.duration_since(t).as_millis().max(0) as u64);
        words.push(match elapsed {
            Some(ms) => format!("running for {}", took(ms)),
            None => "running".to_string(),
        });
        if let Some(n) = &s.node {
            words.push(format!("on {n}"));
        }
        "running"
    } else if !s.enabled {
        words.push("disabled".to_string());
        "disabled"
    } else if s.paused {
        "paused"
    } else if s.health.stale {
        "stale"
    } else {
        words.push("idle".to_string());
        "idle"
    };
    if s.paused {
        words.push("paused".to_string());
    }
    if s.health.stale {
        words.push("stale".to_string());
    }
    (class, words.join(", "))
}

/// "in 3h 12m" or "5m ago".
fn relative(now: Timestamp, t: Timestamp) -> String {
    let secs = t.as_second() - now.as_second();
    let d = format_duration(Duration::from_secs(secs.unsigned_abs()));
    if secs >= 0 {
        format!("in {d}")
    } else {
        format!("{d} ago")
    }
}

/// The last outcome cell: a link to the run, its outcome and when.
fn last_cell(last: Option<&RunRecord>, now: Timestamp) -> String {
    let Some(r) = last else {
        return "<td class=\"outcome\">never</td>".to_string();
    };
    let when = r
        .ended
        .parse::<Timestamp>()
        .map(|t| relative(now, t))
        .unwrap_or_default();
    format!(
        "<td class=\"outcome\"><a class=\"o-{o}\" href=\"/run/{id}\">{o}</a> {when}{reason}</td>",
        o = r.outcome.as_str(),
        id = url_escape(&r.run_id),
        reason = match (&r.reason, r.outcome) {
            (Some(why), o) if o != Outcome::Success =>
                format!("<br><small>{}</small>", escape(why)),
            _ => String::new(),
        }
    )
}

/// The jobs, as pipeline trees.
fn jobs_section(out: &mut String, cfg: &Config, snap: &Snapshot) {
    out.push_str(
        "<section id=\"jobs\"><h2>Jobs</h2><table class=\"jobs\"><thead><tr><th>Job</th>\
         <th>Schedule</th><th>Zone</th><th>State</th><th>Last outcome</th><th>Next run</th>\
         <th>Success</th><th>Failure streak</th></tr></thead><tbody>\n",
    );
    for row in &snap.rows {
        let s = &row.status;
        let Some(job) = cfg.job(&s.name) else {
            continue;
        };
        let (class, words) = state(row, snap.now);
        let indent = match row.depth {
            0 => String::new(),
            d => format!(
                "<span class=\"tree\">{}└─ </span>",
                "\u{a0}\u{a0}\u{a0}".repeat(d - 1)
            ),
        };
        let schedule = match (&job.schedule, job.schedule_text()) {
            (Some(s), Some(t)) => format!(
                "{}<br><code>{}</code>",
                escape(&s.expr().describe()),
                escape(t)
            ),
            _ => format!("after {}", escape(&job.after().join(", "))),
        };
        let next = match (s.next, job.enabled, s.paused) {
            (_, false, _) => "disabled".to_string(),
            (Some(_), true, true) => "paused".to_string(),
            (Some(t), true, false) => format!(
                "<time datetime=\"{t}\">{}</time>",
                escape(&relative(snap.now, t))
            ),
            (None, true, _) => "-".to_string(),
        };
        let rate = s.rate.map_or_else(
            || "-".to_string(),
            |(ok, n)| format!("{}% of {n}", ok * 100 / n),
        );
        let _ = writeln!(
            out,
            "<tr class=\"job\" data-job=\"{name}\" data-state=\"{class}\"><th scope=\"row\">{indent}{name}</th>\
             <td>{schedule}</td><td>{zone}</td><td class=\"state s-{class}\">{words}</td>{last}\
             <td>{next}</td><td>{rate}</td><td class=\"streak\">{streak}</td></tr>",
            name = escape(&s.name),
            zone = escape(&zone_name(job.tz())),
            words = escape(&words),
            last = last_cell(s.last.as_ref(), snap.now),
            streak = s.health.failure_streak,
        );
    }
    out.push_str("</tbody></table></section>\n");
}
