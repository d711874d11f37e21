//! One run (`GET /run/RUN_ID`): its attempts with exit codes, reasons, CPU and memory where
//! recorded, the files it verified, what it left behind, and its output tail only with
//! `status_page_output = true` (output may hold secrets).

use std::fmt::Write as _;

use jiff::Timestamp;

use super::data::runs_since;
use super::html::document;
use super::words::took;
use super::{Reply, Source, escape, reply, text};
use crate::config::Config;
use crate::record::RunRecord;
use crate::units::{format_cpu_seconds, format_size};

/// The run `id`: among the retained runs of every job, or in progress.
pub(crate) fn page(src: &dyn Source, cfg: &Config, id: &str) -> Result<Reply, Reply> {
    let coord = src.coord();
    for job in &cfg.jobs {
        let runs = runs_since(&*coord, cfg, &job.name, None)?;
        if let Some(r) = runs.iter().find(|r| r.run_id == id) {
            return Ok(html(&format!("run {id}"), &finished(cfg, r)));
        }
    }
    let jobs: Vec<&crate::config::Job> = cfg.jobs.iter().collect();
    let running = coord
        .running(&cfg.settings, &jobs)
        .map_err(|f| text("500 Internal Server Error", f.message))?;
    for (job, r) in &running {
        if r.holder.run_id.as_deref() == Some(id) {
            let since = r.holder.since.as_deref().unwrap_or("?");
            let elapsed = since
                .parse::<Timestamp>()
                .map(|t| took(Timestamp::now().duration_since(t).as_millis().max(0) as u64))
                .unwrap_or_default();
            let mut body = format!(
                "<section><h2>{} <span class=\"o-running\">running</span></h2><dl>\
                 <dt>run</dt><dd>{}</dd><dt>started</dt><dd>{}</dd><dt>running for</dt><dd>{}</dd>",
                escape(job),
                escape(id),
                escape(since),
                elapsed
            );
            if let Some(n) = &r.node {
                let _ = write!(body, "<dt>node</dt><dd>{}</dd>", escape(n));
            }
            body.push_str(
                "</dl><p class=\"note\">its attempts are shown once it ends</p></section>\n",
            );
            return Ok(html(&format!("run {id}"), &body));
        }
    }
    Err(text(
        "404 Not Found",
        format!("no run {id:?} in the retained history or in progress"),
    ))
}

fn html(title: &str, main: &str) -> Reply {
    let main = format!("<p><a href=\"/\">← all jobs</a></p>\n{main}");
    reply(
        "200 OK",
        "text/html; charset=utf-8",
        document(title, &main, ""),
    )
}

/// A dash for what is not known.
fn or_dash<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

/// A finished run's view.
fn finished(cfg: &Config, r: &RunRecord) -> String {
    let mut out = format!(
        "<section id=\"run\" data-run=\"{id}\" data-outcome=\"{o}\"><h2>{job} <span class=\"o-{o}\">{o}</span></h2><dl>\
         <dt>run</dt><dd>{id}</dd><dt>scheduled</dt><dd>{}</dd><dt>started</dt><dd>{}</dd>\
         <dt>ended</dt><dd>{}</dd><dt>took</dt><dd>{}</dd><dt>trigger</dt><dd>{}</dd>",
        escape(&r.scheduled),
        escape(&r.started),
        escape(&r.ended),
        took(r.duration_ms),
        escape(&r.trigger),
        id = escape(&r.run_id),
        job = escape(&r.job),
        o = r.outcome.as_str(),
    );
    let mut more = |k: &str, v: String| {
        let _ = write!(out, "<dt>{k}</dt><dd>{}</dd>", escape(&v));
    };
    if let Some(why) = &r.reason {
        more("reason", why.clone());
    }
    if let Some(n) = &r.node {
        more("node", n.clone());
    }
    if let Some(k) = &r.skips {
        more(
            "skipped",
            format!("{} times in a row, the last at {}", k.count, k.last_started),
        );
    }
    let u = &r.facts.usage;
    if u.cpu_seconds.is_some() || u.peak_memory_bytes.is_some() {
        more("CPU", or_dash(u.cpu_seconds, format_cpu_seconds));
        more("peak memory", or_dash(u.peak_memory_bytes, format_size));
    }
    out.push_str("</dl>\n");
    attempts(&mut out, r);
    if !r.facts.verified_sizes.is_empty() {
        out.push_str("<h3>Verified files</h3><table><thead><tr><th>File</th><th>Size</th></tr></thead><tbody>");
        for (file, size) in &r.facts.verified_sizes {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                escape(file),
                format_size(*size)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    let notes = r.facts.notes();
    if !notes.is_empty() {
        out.push_str("<h3>Notes</h3><ul>");
        for n in notes {
            let _ = write!(out, "<li>{}</li>", escape(&n));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h3>Output</h3>");
    match (
        r.output.as_ref().map(|o| tail(cfg, o)),
        cfg.settings.status_page.output,
    ) {
        (Some(Ok(text)), true) => {
            let _ = write!(out, "<pre class=\"output\">{}</pre>", escape(&text));
        }
        (Some(Err(e)), true) => {
            let _ = write!(out, "<p class=\"note\">{}</p>", escape(&e));
        }
        (None, true) => out.push_str("<p class=\"note\">no output kept</p>"),
        (_, false) => out.push_str(
            "<p class=\"note\" id=\"no-output\">not shown: output may hold secrets \
             (status_page_output = true shows it)</p>",
        ),
    }
    out.push_str("</section>\n");
    out
}

/// The most of a run's output the page shows: its end.
const TAIL: u64 = 16 * 1024;

/// The end of a run's kept output (`output` names its file in the state directory; a
/// record naming a file elsewhere is not followed).
fn tail(cfg: &Config, output: &str) -> Result<String, String> {
    use std::io::{Read, Seek, SeekFrom};
    let path = std::path::Path::new(output);
    if !path.starts_with(cfg.settings.state_dir.join("output")) {
        return Err("the output is not in the state directory: not shown".to_string());
    }
    let mut f = std::fs::File::open(path).map_err(|e| format!("the output is gone ({e})"))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL)))
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    f.take(TAIL)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(match len > TAIL {
        true => format!("[... the first {} bytes not shown]\n{text}", len - TAIL),
        false => text,
    })
}

/// The attempts table.
fn attempts(out: &mut String, r: &RunRecord) {
    if r.attempts.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Attempts</h3><table class=\"attempts\"><thead><tr><th>#</th><th>Started</th>\
         <th>Took</th><th>Exit</th><th>Reason</th><th>CPU</th><th>Peak memory</th></tr></thead><tbody>",
    );
    for a in &r.attempts {
        let exit = match (a.exit_code, a.signal, a.timed_out) {
            (_, _, true) => "timed out".to_string(),
            (Some(c), _, _) => c.to_string(),
            (None, Some(s), _) => crate::runner::signal_name(s),
            _ => "-".to_string(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"exit\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.attempt,
            escape(&a.started),
            took(a.duration_ms),
            escape(&exit),
            escape(a.reason.as_deref().unwrap_or("")),
            or_dash(a.usage.cpu_seconds, format_cpu_seconds),
            or_dash(a.usage.peak_memory_bytes, format_size),
        );
    }
    out.push_str("</tbody></table>\n");
}
