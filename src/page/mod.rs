//! The read-only status page on `metrics_listen` (`status_page = true`): `GET /` (the jobs,
//! a run timeline, duration trends), `GET /run/RUN_ID` (one run), and the same data as JSON
//! at `GET /api/status` (what `status --json` prints) and `GET /api/runs?job=&since=` (what
//! `history --json` prints). Server-rendered HTML with a small stylesheet and inline SVG, no
//! external resource; a small script (served from here, never inline) refreshes the page in
//! place every 10 seconds while it is visible. Nothing on it changes anything.
//!
//! Safety: every text from the table or the runs is HTML-escaped; each answer carries a
//! strict Content-Security-Policy (nothing from another origin, no inline script or style);
//! with `status_page_token_file` the page, the run views and the API answer 401 without
//! `Authorization: Bearer TOKEN`; a request reads at most the retained history of each job
//! (`history_keep`, at most [`data::MAX_RUNS`]). The page costs nothing while nobody looks:
//! it is built when asked, on the listener's own client thread.
//!
//! Files: this one (routes, the token, headers), `data` (what a request reads), `html` (the
//! page), `timeline` and `trend` (its SVG drawings), `run` (one run's view), `assets` (the
//! stylesheet and the script), `words` (durations in words, the windows).

mod assets;
mod data;
mod html;
mod run;
mod timeline;
mod trend;
mod words;

use std::sync::Arc;

use crate::config::{Config, Secret};
use crate::coord::Coordinator;
use crate::coord::status::Health;

/// What the page reads from the daemon, at each request.
pub(crate) trait Source: Send + Sync {
    /// The table in force.
    fn config(&self) -> Arc<Config>;
    fn coord(&self) -> Arc<dyn Coordinator>;
    /// What the daemon says of itself (a state directory it cannot write, containment).
    fn health(&self) -> Health;
}

/// An answer: status line, content type, extra headers and body.
pub(crate) struct Reply {
    pub(crate) status: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
}

/// No script, style, image or connection from anywhere but here, no inline script or style,
/// no frames, no forms, no base.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn reply(status: &'static str, kind: &'static str, body: String) -> Reply {
    Reply {
        status,
        kind,
        headers: vec![
            ("Content-Security-Policy", CSP.to_string()),
            ("X-Content-Type-Options", "nosniff".to_string()),
            ("Referrer-Policy", "no-referrer".to_string()),
            ("Cache-Control", "no-store".to_string()),
        ],
        body,
    }
}

fn text(status: &'static str, body: impl Into<String>) -> Reply {
    let mut b = body.into();
    b.push('\n');
    reply(status, "text/plain; charset=utf-8", b)
}

fn json(v: &serde_json::Value) -> Reply {
    let body = serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("\"{e}\""));
    reply("200 OK", "application/json", body + "\n")
}

/// The status page, served by the metrics listener.
pub(crate) struct Page {
    source: Arc<dyn Source>,
}

impl Page {
    pub(crate) fn new(source: Arc<dyn Source>) -> Page {
        Page { source }
    }

    /// The answer to `GET path?query` (`auth`: the Authorization header), or `None` when the
    /// path is not the page's.
    pub(crate) fn answer(&self, path: &str, query: &str, auth: Option<&str>) -> Option<Reply> {
        let cfg = self.source.config();
        if !cfg.settings.status_page.enabled {
            return None;
        }
        let guarded = path == "/" || path.starts_with("/run/") || path.starts_with("/api/");
        match path {
            "/page.css" => return Some(reply("200 OK", "text/css", assets::CSS.to_string())),
            "/page.js" => return Some(reply("200 OK", "text/javascript", assets::JS.to_string())),
            // Browsers ask for it by themselves: nothing, rather than a 404 in the console.
            "/favicon.ico" => return Some(reply("204 No Content", "image/x-icon", String::new())),
            _ if !guarded => return None,
            _ => {}
        }
        if let Some(denied) = check_token(&cfg, auth) {
            return Some(denied);
        }
        let q = Query::parse(query);
        let got = match path {
            "/" => html::page(&*self.source, &cfg, &q),
            "/api/status" => data::status(&*self.source, &cfg).map(|v| json(&v)),
            "/api/runs" => data::runs_json(&*self.source, &cfg, &q).map(|v| json(&v)),
            _ => match path.strip_prefix("/run/") {
                Some(id) => run::page(&*self.source, &cfg, &percent_decode(id)),
                None => Err(text("404 Not Found", "no such page")),
            },
        };
        Some(got.unwrap_or_else(|e| e))
    }
}

/// With `status_page_token_file`: `None` when `auth` is `Bearer` and the token, else the
/// 401 (or a 500 when the file cannot be read, which the answer says without the token).
fn check_token(cfg: &Config, auth: Option<&str>) -> Option<Reply> {
    let file = cfg.settings.status_page.token_file.as_ref()?;
    let want = match Secret::File(file.clone()).read("status_page_token") {
        Ok(t) if !t.is_empty() => t,
        Ok(_) => return Some(text("500 Internal Server Error", "the token file is empty")),
        Err(e) => return Some(text("500 Internal Server Error", e)),
    };
    let given = auth
        .and_then(|a| a.trim().strip_prefix("Bearer "))
        .map(str::trim);
    if given.is_some_and(|g| same(g.as_bytes(), want.as_bytes())) {
        return None;
    }
    let mut r = text(
        "401 Unauthorized",
        "this page needs Authorization: Bearer TOKEN (status_page_token_file)",
    );
    r.headers.push((
        "WWW-Authenticate",
        "Bearer realm=\"cronwarden\"".to_string(),
    ));
    Some(r)
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// `%XX` and `+` decoded (bytes that are not UTF-8 are replaced).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request's query: `key=value` pairs, decoded.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (percent_decode(k), percent_decode(v)),
                    None => (percent_decode(p), String::new()),
                })
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Text for HTML (element content and quoted attribute values).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for a URL path segment or query value.
pub(crate) fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_jobs_is_escaped_and_queries_decoded() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        let q = Query::parse("job=a%20b%3Cc&since=24h&x&bad=%zz%4");
        assert_eq!(q.get("job"), Some("a b<c"));
        assert_eq!(q.get("since"), Some("24h"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("bad"), Some("%zz%4"));
        assert_eq!(percent_decode(&url_escape("<sc ript>/é")), "<sc ript>/é");
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }
}
