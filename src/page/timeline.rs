//! The run timeline: one row per job over the window, each run a bar from its start to its
//! end coloured by outcome (a run in progress reaches now), runs of one job that overlap
//! stacked in the row, the scheduled instants marked above the bars. One SVG, drawn in
//! the page (no script needed).

use std::fmt::Write as _;

use jiff::Timestamp;

use super::data::Snapshot;
use super::words::{WINDOWS, took};
use super::{escape, url_escape};
use crate::config::Config;
use crate::record::RunRecord;

const LABEL: f64 = 190.0;
const PLOT: f64 = 1000.0;
const ROW: f64 = 24.0;
const AXIS: f64 = 20.0;
/// A bar is at least this wide, so that a short run shows.
const MIN_BAR: f64 = 1.0;
/// More scheduled instants than this in a row are not marked (too dense to tell apart).
const MAX_TICKS: usize = 400;

/// A bar: where it starts and ends, and how it looks.
struct Bar {
    start: Timestamp,
    end: Timestamp,
    class: &'static str,
    run_id: String,
    title: String,
}

/// The bars of a job's finished runs.
fn bars(runs: &[RunRecord]) -> Vec<Bar> {
    runs.iter()
        .filter_map(|r| {
            let start = r.started.parse::<Timestamp>().ok()?;
            let end = r.ended.parse::<Timestamp>().unwrap_or(start).max(start);
            let mut title = format!(
                "{} {}: {}, {} attempt(s), started {}",
                r.job,
                r.run_id,
                r.outcome.as_str(),
                r.attempts.len(),
                r.started
            );
            if !r.attempts.is_empty() {
                let _ = write!(title, ", took {}", took(r.duration_ms));
            }
            if let Some(k) = &r.skips {
                let _ = write!(
                    title,
                    " ({} skipped in a row, the last at {})",
                    k.count, k.last_started
                );
            }
            if let Some(why) = &r.reason {
                let _ = write!(title, "; {why}");
            }
            if let Some(n) = &r.node {
                let _ = write!(title, "; on {n}");
            }
            Some(Bar {
                start,
                end,
                class: r.outcome.as_str(),
                run_id: r.run_id.clone(),
                title,
            })
        })
        .collect()
}

/// Slots for overlapping bars: each bar's slot, and how many slots there are.
fn slots(bars: &[Bar]) -> (Vec<usize>, usize) {
    let mut ends: Vec<Timestamp> = Vec::new();
    let mut out = Vec::with_capacity(bars.len());
    for b in bars {
        let slot = match ends.iter().position(|e| *e <= b.start) {
            Some(i) => {
                ends[i] = b.end;
                i
            }
            None => {
                ends.push(b.end);
                ends.len() - 1
            }
        };
        out.push(slot);
    }
    (out, ends.len().max(1))
}

/// The timeline section for the window `since`..now (named `window`).
pub(crate) fn section(cfg: &Config, snap: &Snapshot, since: Timestamp, window: &str) -> String {
    let span = (snap.now.as_millisecond() - since.as_millisecond()).max(1) as f64;
    let x = |t: Timestamp| {
        let off = (t.as_millisecond() - since.as_millisecond()).clamp(0, span as i64) as f64;
        LABEL + off / span * PLOT
    };
    let height = AXIS + ROW * snap.rows.len() as f64 + 2.0;
    let mut svg = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {w} {height}\" role=\"img\" \
         aria-label=\"runs of the last {window}\">\n",
        w = LABEL + PLOT + 10.0
    );
    grid(&mut svg, cfg, since, snap.now, window, height, &x);
    for (i, row) in snap.rows.iter().enumerate() {
        let y0 = AXIS + ROW * i as f64;
        let name = &row.status.name;
        let shown: String = name.chars().take(26).collect();
        let shown = if shown.len() < name.len() {
            format!("{shown}…")
        } else {
            shown
        };
        let indent = if row.depth > 0 { "└ " } else { "" };
        let _ = writeln!(
            svg,
            "<g class=\"lane\" data-job=\"{n}\"><rect class=\"lane-bg\" x=\"0\" y=\"{y0}\" \
             width=\"{w}\" height=\"{ROW}\"/><text x=\"{tx}\" y=\"{ty}\"><title>{n}</title>{indent}{s}</text>",
            n = escape(name),
            w = LABEL + PLOT,
            tx = 4.0 + 8.0 * row.depth.min(4) as f64,
            ty = y0 + 16.0,
            s = escape(&shown),
        );
        ticks(&mut svg, cfg, name, since, snap.now, y0, &x);
        let mut all = bars(&row.runs);
        if let Some(h) = &row.status.running {
            let start = h.since.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
            let start = start.unwrap_or(snap.now);
            let id = h.run_id.clone().unwrap_or_default();
            all.push(Bar {
                start,
                end: snap.now,
                class: "running",
                title: format!(
                    "{name} {id}: running for {} (since {start})",
                    took(snap.now.duration_since(start).as_millis().max(0) as u64)
                ),
                run_id: id,
            });
        }
        all.sort_by_key(|b| b.start);
        let (slot, n) = slots(&all);
        let h = (ROW - 8.0) / n as f64;
        for (b, s) in all.iter().zip(slot) {
            let (x0, x1) = (x(b.start), x(b.end));
            let _ = writeln!(
                svg,
                "<a href=\"/run/{id}\"><rect class=\"bar o-{c}\" data-run=\"{ide}\" x=\"{x0:.3}\" \
                 y=\"{y:.2}\" width=\"{wd:.3}\" height=\"{h:.2}\"><title>{t}</title></rect></a>",
                id = url_escape(&b.run_id),
                ide = escape(&b.run_id),
                c = b.class,
                y = y0 + 6.0 + h * s as f64,
                wd = (x1 - x0).max(MIN_BAR),
                t = escape(&b.title),
            );
        }
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n");
    let links: Vec<String> = WINDOWS
        .iter()
        .map(|(w, _)| match *w == window {
            true => format!("<b>{w}</b>"),
            false => format!("<a href=\"/?window={w}\">{w}</a>"),
        })
        .collect();
    format!(
        "<section id=\"timeline\"><h2>Timeline: the last {window}</h2><p class=\"note\">{} · \
         <span class=\"key o-success\">success</span> <span class=\"key o-warning\">warning</span> \
         <span class=\"key o-failure\">failure</span> <span class=\"key o-skipped\">skipped</span> \
         <span class=\"key o-lost\">lost</span> <span class=\"key o-interrupted\">interrupted</span> \
         <span class=\"key o-running\">running</span> · marks: scheduled instants</p>\n{svg}</section>\n",
        links.join(" ")
    )
}

/// The hour (or day) lines and their labels, in the table's zone.
fn grid(
    svg: &mut String,
    cfg: &Config,
    since: Timestamp,
    now: Timestamp,
    window: &str,
    height: f64,
    x: &dyn Fn(Timestamp) -> f64,
) {
    let (step, fmt) = match window {
        "1h" => (600, "%H:%M"),
        "7d" => (86_400, "%a %d"),
        _ => (3 * 3600, "%H:%M"),
    };
    let tz = cfg.settings.tz();
    // Lines at whole steps of the zone's wall clock.
    let offset = tz.to_offset(now).seconds() as i64;
    let first = ((since.as_second() + offset) / step + 1) * step - offset;
    let mut t = first;
    while t <= now.as_second() {
        let Ok(at) = Timestamp::from_second(t) else {
            break;
        };
        let gx = x(at);
        let label = at.to_zoned(tz.clone()).strftime(fmt).to_string();
        let _ = writeln!(
            svg,
            "<line class=\"grid\" x1=\"{gx:.1}\" x2=\"{gx:.1}\" y1=\"{AXIS}\" y2=\"{height}\"/>\
             <text class=\"axis\" x=\"{gx:.1}\" y=\"14\">{}</text>",
            escape(&label)
        );
        t += step;
    }
}

/// The job's scheduled instants in the window, as marks at the top of its row.
fn ticks(
    svg: &mut String,
    cfg: &Config,
    job: &str,
    since: Timestamp,
    now: Timestamp,
    y0: f64,
    x: &dyn Fn(Timestamp) -> f64,
) {
    let Some(schedule) = cfg.job(job).and_then(|j| j.schedule.as_ref()) else {
        return;
    };
    if !schedule.expr().is_calendar() {
        return;
    }
    let at: Vec<Timestamp> = schedule
        .iter_after(since)
        .take_while(|t| *t <= now)
        .take(MAX_TICKS + 1)
        .collect();
    if at.len() > MAX_TICKS {
        return;
    }
    for t in at {
        let tx = x(t);
        let _ = write!(
            svg,
            "<line class=\"tick\" x1=\"{tx:.2}\" x2=\"{tx:.2}\" y1=\"{}\" y2=\"{}\"/>",
            y0 + 1.0,
            y0 + 5.0
        );
    }
    svg.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(start: &str, end: &str) -> Bar {
        Bar {
            start: format!("2026-01-01T{start}Z").parse().expect("instant"),
            end: format!("2026-01-01T{end}Z").parse().expect("instant"),
            class: "success",
            run_id: String::new(),
            title: String::new(),
        }
    }

    #[test]
    fn overlapping_runs_take_slots_of_their_own_and_others_share() {
        let bars = [
            bar("02:00:00", "02:10:00"),
            bar("02:05:00", "02:20:00"),
            bar("02:08:00", "02:09:00"),
            bar("02:10:00", "02:12:00"),
            bar("03:00:00", "03:01:00"),
        ];
        // Three at once at 02:08; the fourth starts when the first ended.
        assert_eq!(slots(&bars), (vec![0, 1, 2, 0, 0], 3));
        assert_eq!(slots(&[]), (vec![], 1));
    }
}
