//! The page's stylesheet and script, served from the daemon (`/page.css`, `/page.js`): the
//! Content-Security-Policy allows nothing inline and nothing from elsewhere.

pub(crate) const CSS: &str = r#":root{--ok:#2e9d4f;--warn:#d9a400;--fail:#d0342c;--skip:#9aa0a6;--lost:#7b3fa0;--int:#e07b00;--run:#2f6fdb;--fg:#1d2127;--muted:#667;--line:#e3e5e8}
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:#fafbfc;margin:0 auto;padding:0 1.2rem 2rem;max-width:1280px}
header{display:flex;align-items:baseline;gap:1rem;border-bottom:1px solid var(--line)}
h1{font-size:1.3rem;margin:.8rem 0}
h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
h3{font-size:.95rem;margin:1rem 0 .3rem}
.note{color:var(--muted);font-size:.85rem;margin:.2rem 0}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
thead th{font-size:.8rem;color:var(--muted);font-weight:600}
tbody th{font-weight:600;white-space:nowrap}
code{font:12px ui-monospace,Menlo,Consolas,monospace;color:var(--muted)}
a{color:var(--run)}
.tree{color:var(--muted)}
.state{white-space:nowrap}
.s-running{color:var(--run);font-weight:600}.s-unconfirmed{color:var(--lost);font-weight:600}.n-live{color:var(--ok)}.n-unreachable,.n-lost{color:var(--fail)}.n-stopped{color:var(--skip)}.s-paused{color:var(--int)}.s-stale{color:var(--fail);font-weight:600}.s-disabled{color:var(--skip)}
a.o-success,span.o-success{color:var(--ok)}a.o-warning,span.o-warning{color:var(--warn)}a.o-failure,span.o-failure{color:var(--fail)}a.o-skipped,span.o-skipped{color:var(--skip)}a.o-lost,span.o-lost{color:var(--lost)}a.o-interrupted,span.o-interrupted{color:var(--int)}span.o-running{color:var(--run)}
.key::before{content:"";display:inline-block;width:.8em;height:.8em;margin-right:.25em;border-radius:2px;vertical-align:-.05em;background:currentColor}
svg.timeline{width:100%;height:auto;background:#fff;border:1px solid var(--line)}
svg text{font:11px system-ui,sans-serif;fill:var(--fg)}
svg text.axis{fill:var(--muted);font-size:10px}
.lane-bg{fill:#fff}.lane:nth-child(even) .lane-bg{fill:#f4f6f8}
.grid{stroke:var(--line);stroke-width:1}
.tick{stroke:#8a94a0;stroke-width:1}
.bar{stroke:none;rx:1}
.o-success{fill:var(--ok)}.o-warning{fill:var(--warn)}.o-failure{fill:var(--fail)}.o-skipped{fill:var(--skip)}.o-lost{fill:var(--lost)}.o-interrupted{fill:var(--int)}.o-running{fill:var(--run)}
svg.trend{width:300px;height:48px;background:#fff}
svg.trend polyline{fill:none;stroke:var(--run);stroke-width:1.5}
svg.trend .median{stroke:var(--muted);stroke-dasharray:4 3;stroke-width:1}
table.trends{width:auto}
.trends td:last-child{color:var(--muted);font-size:.85rem;white-space:nowrap}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.4rem 0}
dt{color:var(--muted)}dd{margin:0}
pre.output{background:#11151a;color:#e8eaed;padding:.6rem;overflow:auto;max-height:30rem;font-size:12px}
.problem{color:var(--fail)}
"#;

/// Refreshes `main` in place every 10 seconds while the page is shown; the page is whole
/// without it.
pub(crate) const JS: &str = r#""use strict";
(function () {
  var note = document.getElementById("refresh");
  function refresh() {
    if (document.hidden) { return; }
    fetch(location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.querySelector("main");
        var main = document.querySelector("main");
        if (fresh && main) { main.replaceWith(document.adoptNode(fresh)); }
        var n = doc.getElementById("refresh");
        if (note && n) { note.textContent = n.textContent; }
        document.documentElement.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function (e) {
        if (note) { note.textContent = "not refreshed: " + e.message; }
      });
  }
  setInterval(refresh, 10000);
})();
"#;
