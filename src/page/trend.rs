//! The duration trends: per job, the durations of its last runs as a small line chart with
//! their median, so that a job that slowly takes longer shows.

use std::fmt::Write as _;

use super::data::{Snapshot, TREND};
use super::escape;
use super::words::took;

const W: f64 = 300.0;
const H: f64 = 48.0;

/// The median of `v` (sorted here).
fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// The section: a row per job with at least two runs that ran.
pub(crate) fn section(snap: &Snapshot) -> String {
    let mut out = format!(
        "<section id=\"durations\"><h2>Durations</h2><p class=\"note\">the last {TREND} runs \
         of each job that ran, oldest left; dashed: the median</p><table class=\"trends\"><tbody>\n"
    );
    for row in &snap.rows {
        let ms: Vec<u64> = row.trend.iter().map(|r| r.duration_ms).collect();
        if ms.len() < 2 {
            continue;
        }
        let med = median(&mut ms.clone());
        let top = (*ms.iter().max().unwrap_or(&1)).max(1) as f64 * 1.1;
        let step = W / (ms.len() - 1) as f64;
        let y = |v: u64| H - 2.0 - (v as f64 / top) * (H - 4.0);
        let points: Vec<String> = ms
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, y(*v)))
            .collect();
        let mut svg = format!(
            "<svg class=\"trend\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"durations\">\
             <line class=\"median\" x1=\"0\" x2=\"{W}\" y1=\"{m:.1}\" y2=\"{m:.1}\"/>\
             <polyline points=\"{}\"/>",
            points.join(" "),
            m = y(med)
        );
        for (i, (r, v)) in row.trend.iter().zip(&ms).enumerate() {
            let _ = write!(
                svg,
                "<circle class=\"o-{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\"><title>{} {}: {}</title></circle>",
                r.outcome.as_str(),
                i as f64 * step,
                y(*v),
                escape(&r.run_id),
                r.outcome.as_str(),
                took(*v)
            );
        }
        svg.push_str("</svg>");
        let _ = writeln!(
            out,
            "<tr data-job=\"{n}\"><th scope=\"row\">{n}</th><td>{svg}</td><td>median {}<br>last {}\
             <br>{} runs</td></tr>",
            took(med),
            took(*ms.last().unwrap_or(&0)),
            ms.len(),
            n = escape(&row.status.name),
        );
    }
    out.push_str("</tbody></table></section>\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(super::median(&mut [5, 1, 3]), 3);
        assert_eq!(super::median(&mut [4, 1, 3, 2]), 2);
        assert_eq!(super::median(&mut []), 0);
    }
}
