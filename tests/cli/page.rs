//! The status page (`status_page = true` on `metrics_listen`): loaded in headless Chromium
//! (Debian's `chromium`; `.ci/run` installs it), its token, its output rule, its JSON, and
//! that it costs the idle daemon no wake-up.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::daemon::Daemon;
use super::{Table, TempDir, free_port, skip, wait_for};

/// The jobs the page shows: two that succeed (one a pipeline's first step), one that fails
/// with `<script>` in its output, one that warns, one running long, one paused.
const JOBS: &str = r#"
[jobs.ok]
schedule = "@manual"
command = "sleep 0.2; echo fine"

[jobs.bad]
schedule = "@manual"
command = "echo '<script>document.title=\"pwned\"</script>'; exit 3"

[jobs.warn]
schedule = "@manual"
command = "exit 4"
warning_codes = [4]

[jobs.long]
schedule = "@manual"
# Runs until the test's directory goes (a daemon killed at the test's end leaves it).
command = "while [ -d $DIR ]; do sleep 0.2; done"

[jobs.parked]
schedule = "30 2 * * *"
command = "true"

[jobs.extract]
schedule = "@manual"
command = "true"

[jobs.load]
after = ["extract"]
command = "true"
"#;

/// A table with the page on a free loopback port, `extra` added to `[settings]`.
fn page_table(tag: &str, extra: &str, jobs: &str) -> (Table, u16) {
    let port = free_port();
    let t = Table::new(tag, jobs);
    let text = std::fs::read_to_string(&t.path).expect("table");
    let settings = format!("[settings]\nmetrics_listen = \"127.0.0.1:{port}\"\n{extra}");
    std::fs::write(&t.path, text.replacen("[settings]\n", &settings, 1)).expect("write");
    (t, port)
}

/// One HTTP/1.1 request on loopback: (status code, headers, body).
fn get(port: u16, target: &str, auth: Option<&str>) -> (u16, String, String) {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let auth = auth.map_or_else(String::new, |a| format!("Authorization: {a}\r\n"));
    c.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes())
        .expect("send");
    let mut s = String::new();
    c.read_to_string(&mut s).expect("read");
    let (head, body) = s.split_once("\r\n\r\n").expect("a response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, head.to_string(), body.to_string())
}

/// The run ids of a job's history, with their outcomes.
fn runs(t: &Table, job: &str) -> Vec<(String, String)> {
    t.history(job)
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap_or("").to_string(),
                r["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Runs the jobs of [`JOBS`] to the state the page is checked in.
fn prepare(t: &Table) {
    for _ in 0..2 {
        assert_eq!(t.run(&["trigger", "ok", "--wait"]).0, 0);
    }
    assert_eq!(t.run(&["trigger", "bad", "--wait"]).0, 1);
    assert_eq!(t.run(&["trigger", "warn", "--wait"]).0, 0);
    assert_eq!(t.run(&["trigger", "extract", "--wait"]).0, 0);
    wait_for(|| t.history("load").len() == 1);
    assert_eq!(t.run(&["pause", "parked"]).0, 0);
    assert_eq!(t.run(&["trigger", "long"]).0, 0);
    t.wait_running("long");
    // A second run of `long` while it runs is skipped (overlap = "skip"): a skipped bar.
    t.run(&["trigger", "long", "--wait"]);
    wait_for(|| t.history("long").len() == 1);
}

/// The flags for a headless Chromium that makes no request of its own beyond loopback: no
/// background services, every host name unresolvable but 127.0.0.1, and a proxy for anything
/// else that is a closed loopback port.
fn chromium(profile: &Path) -> Command {
    // Bounded: a browser that hangs fails the test rather than holding it.
    let mut c = Command::new("timeout");
    c.args([
        "--kill-after=5",
        "60",
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--hide-scrollbars",
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(Stdio::null());
    c
}

/// What one Chromium load gave: the DOM after load, the console lines it logged, and the
/// URLs the page itself asked for (from its net log).
struct Load {
    dom: String,
    console: Vec<String>,
    requests: Vec<String>,
}

/// A fresh browser profile under `dir`; without `script`, one that runs no JavaScript (the
/// profile's own content setting: `--blink-settings=scriptEnabled=false` would also stop
/// `--dump-dom` and `--screenshot`, which Chromium does through script).
fn profile(dir: &Path, name: &str, script: bool) -> PathBuf {
    let p = dir.join(format!("profile-{name}"));
    std::fs::create_dir_all(p.join("Default")).expect("profile");
    if !script {
        let prefs = r#"{"profile":{"default_content_setting_values":{"javascript":2}}}"#;
        std::fs::write(p.join("Default/Preferences"), prefs).expect("preferences");
    }
    p
}

/// Loads `url` (for 12 s of virtual time: long enough for the page's script, when it runs,
/// to refresh the page once).
fn load(dir: &Path, url: &str, script: bool) -> Load {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let netlog = dir.join(format!("net-{n}.json"));
    let out = chromium(&profile(dir, &n.to_string(), script))
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg("--virtual-time-budget=12000")
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    assert!(
        !out.stdout.is_empty(),
        "chromium loaded nothing from {url}: {stderr}"
    );
    Load {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
        requests: page_requests(&netlog),
    }
}

/// The URLs of the requests made for pages (the net log's URL_REQUEST_START_JOB events whose
/// isolation key is a site: a page's requests, not the browser's own background ones).
fn page_requests(netlog: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(netlog).expect("the net log");
    let v: serde_json::Value = serde_json::from_str(&text).expect("the net log is JSON");
    let start = v["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    let events = v["events"].as_array().expect("events");
    events
        .iter()
        .filter(|e| e["type"] == start)
        .filter(|e| {
            e["params"]["network_isolation_key"]
                .as_str()
                .is_some_and(|k| k != "null null" && !k.contains("google"))
                || e["params"]["initiator"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("http"))
        })
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect()
}

/// The `<rect class="bar o-OUTCOME" data-run="ID" ...>` tags of the DOM.
fn bars(dom: &str) -> Vec<&str> {
    dom.match_indices("<rect class=\"bar ")
        .map(|(i, _)| &dom[i..i + dom[i..].find('>').unwrap_or(0)])
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[at..].split('"').next()
}

/// Checks the DOM of the page (with or without script): every job with its state, a bar
/// per run with its outcome's class, the running bar; returns the running bar's width.
fn check_page(t: &Table, dom: &str) -> f64 {
    for (job, state) in [
        ("ok", "idle"),
        ("bad", "idle"),
        ("warn", "idle"),
        ("long", "running"),
        ("parked", "paused"),
        ("extract", "idle"),
        ("load", "idle"),
    ] {
        let row = format!("<tr class=\"job\" data-job=\"{job}\" data-state=\"{state}\">");
        assert!(dom.contains(&row), "{row} in\n{dom}");
    }
    // The pipeline as a tree: `load` under `extract`.
    assert!(dom.contains("└─ </span>load</th>"), "{dom}");
    let bars = bars(dom);
    let mut seen = 0;
    for job in ["ok", "bad", "warn", "extract", "load", "long"] {
        for (id, outcome) in runs(t, job) {
            let bar = bars
                .iter()
                .find(|b| attr(b, "data-run") == Some(id.as_str()))
                .unwrap_or_else(|| panic!("no bar for {job} run {id} in\n{dom}"));
            assert_eq!(
                attr(bar, "class"),
                Some(format!("bar o-{outcome}").as_str())
            );
            seen += 1;
        }
    }
    let classes: Vec<&str> = bars.iter().filter_map(|b| attr(b, "class")).collect();
    for want in ["success", "failure", "warning", "skipped", "running"] {
        assert!(
            classes.contains(&format!("bar o-{want}").as_str()),
            "{want}: {classes:?}"
        );
    }
    assert_eq!(
        bars.len(),
        seen + 1,
        "a bar per run and the running one: {classes:?}"
    );
    let running = bars
        .iter()
        .find(|b| attr(b, "class") == Some("bar o-running"))
        .expect("the running bar");
    attr(running, "width")
        .and_then(|w| w.parse().ok())
        .expect("a width")
}

#[test]
fn the_status_page_in_headless_chromium() {
    let test = "the_status_page_in_headless_chromium";
    if Command::new("chromium").arg("--version").output().is_err() {
        return skip(
            test,
            "no chromium (Debian package chromium; .ci/run installs it)",
        );
    }
    let (t, port) = page_table(
        "page-browser",
        "status_page = true\nstatus_page_output = true\n",
        JOBS,
    );
    let _d = Daemon::start(&t);
    prepare(&t);
    let origin = format!("http://127.0.0.1:{port}");
    let url = format!("{origin}/?window=1h");
    let dir = TempDir::new("page-chromium");
    // With script, and 12 s of virtual time: the page refreshes itself in place once.
    let first = load(dir.path(), &url, true);
    let width = check_page(&t, &first.dom);
    assert!(
        first.dom.contains(" data-refreshed=\""),
        "the refresh ran: {}",
        first.dom
    );
    assert_eq!(first.console, Vec::<String>::new(), "no console message");
    assert!(first.requests.contains(&url), "{:?}", first.requests);
    assert!(
        first.requests.iter().any(|u| u.ends_with("/page.js")),
        "{:?}",
        first.requests
    );
    for u in &first.requests {
        assert!(
            u.starts_with(&format!("{origin}/")),
            "a request to another origin: {u}"
        );
    }
    // Every resource the DOM names is of this origin (relative).
    for word in [" src=\"", " href=\""] {
        for (i, _) in first.dom.match_indices(word) {
            let v = &first.dom[i + word.len()..];
            assert!(v.starts_with('/'), "{}", &v[..v.len().min(80)]);
        }
    }
    // The running bar grows: a later load draws it wider.
    let start = Instant::now();
    let wider = loop {
        std::thread::sleep(Duration::from_secs(2));
        let again = load(dir.path(), &url, false);
        let w = check_page(&t, &again.dom);
        if w > width {
            break again;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the running bar stays {w}"
        );
    };
    // Without script (and the same 12 s of virtual time): the same jobs and timeline, not
    // refreshed.
    assert!(!wider.dom.contains(" data-refreshed=\""));
    assert!(wider.dom.contains("<section id=\"timeline\">"));
    // The failed run's output (`status_page_output = true`), `<script>` and all, is text.
    let (bad, _) = runs(&t, "bad").pop().expect("bad ran");
    let run = load(dir.path(), &format!("{origin}/run/{bad}"), true);
    assert!(
        run.dom
            .contains("&lt;script&gt;document.title=\"pwned\"&lt;/script&gt;"),
        "{}",
        run.dom
    );
    assert!(!run.dom.contains("<script>document.title"), "{}", run.dom);
    assert!(
        run.dom.contains(&format!("<title>run {bad}</title>")),
        "{}",
        run.dom
    );
    assert!(run.dom.contains("<td class=\"exit\">3</td>"), "{}", run.dom);
    assert_eq!(run.console, Vec::<String>::new());
    screenshot(dir.path(), &url);
}

/// A screenshot of `url` at 1100x820 (no script), its PNG bytes.
fn shoot(dir: &Path, name: &str, url: &str) -> Vec<u8> {
    let png: PathBuf = dir.join(name);
    let out = chromium(&profile(dir, name, false))
        .arg("--window-size=1100,820")
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).expect("the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    bytes
}

/// A screenshot of the page that is not blank: a PNG much larger than the same browser's
/// screenshot of an empty page (a uniform image compresses to almost nothing). With
/// CRONWARDEN_SCREENSHOT=FILE it is also written there (the README's, docs/status-page.png).
fn screenshot(dir: &Path, url: &str) {
    let blank = shoot(dir, "blank.png", "about:blank");
    let page = shoot(dir, "page.png", url);
    assert!(
        page.len() > 10 * blank.len(),
        "a blank screenshot? {} bytes, an empty page's {}",
        page.len(),
        blank.len()
    );
    if let Some(to) = std::env::var_os("CRONWARDEN_SCREENSHOT") {
        std::fs::write(to, &page).expect("write the screenshot");
    }
}

/// Writes a token file of `mode`.
fn token_file(t: &Table, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = t.dir().join("page.token");
    std::fs::write(&p, "s3cret-token\n").expect("token");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

#[test]
fn the_token_the_output_rule_and_the_json_are_those_of_status_and_history() {
    let jobs = "[jobs.ok]\nschedule = \"@manual\"\ncommand = \"echo very-secret-output\"\n\n\
                [jobs.bad]\nschedule = \"@manual\"\ncommand = \"exit 2\"\n";
    let (t, port) = page_table("page-token", "", jobs);
    let token = token_file(&t, 0o644);
    let text = std::fs::read_to_string(&t.path).expect("table");
    let with = format!(
        "status_page = true\nstatus_page_token_file = \"{}\"\n[jobs.ok]",
        token.display()
    );
    std::fs::write(&t.path, text.replacen("[jobs.ok]", &with, 1)).expect("write");
    // A token file others may read: the daemon does not start, and says why.
    let out = t.cmd(&["daemon"]).output().expect("daemon");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("status_page_token_file") && err.contains("chmod 600"),
        "{err}"
    );
    token_file(&t, 0o600);
    let _d = Daemon::start(&t);
    assert_eq!(t.run(&["trigger", "ok", "--wait"]).0, 0);
    assert_eq!(t.run(&["trigger", "bad", "--wait"]).0, 1);
    let (id, _) = runs(&t, "ok").pop().expect("ok ran");
    let bearer = Some("Bearer s3cret-token");
    for target in [
        "/",
        &format!("/run/{id}"),
        "/api/status",
        "/api/runs?job=ok",
    ] {
        let (code, head, _) = get(port, target, None);
        assert_eq!(code, 401, "{target}: {head}");
        assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
        assert_eq!(get(port, target, Some("Bearer wrong")).0, 401, "{target}");
        let (code, head, _) = get(port, target, bearer);
        assert_eq!(code, 200, "{target}: {head}");
        assert!(
            head.contains("Content-Security-Policy: default-src 'none'"),
            "{head}"
        );
    }
    // The stylesheet and the script hold nothing of the jobs: served without the token.
    assert_eq!(get(port, "/page.css", None).0, 200);
    // The output tail: not shown (status_page_output is off), not in the JSON either.
    let (_, _, run) = get(port, &format!("/run/{id}"), bearer);
    assert!(
        run.contains("id=\"no-output\"") && !run.contains("very-secret-output"),
        "{run}"
    );
    let (_, _, api) = get(port, "/api/runs?job=ok", bearer);
    assert!(!api.contains("very-secret-output"), "{api}");
    let (_, _, st) = get(port, "/api/status", bearer);
    assert!(!st.contains("very-secret-output"), "{st}");
    // The same data as `history --json` and `status --json`, but for the output.
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("JSON");
    let mut history = parse(&t.run(&["history", "ok", "--json"]).1);
    for r in history.as_array_mut().expect("runs") {
        r.as_object_mut().expect("a run").remove("output");
    }
    assert_eq!(parse(&api), history);
    let mut status = parse(&t.run(&["status", "--json"]).1);
    for j in status.as_array_mut().expect("jobs") {
        j["last_run"]
            .as_object_mut()
            .expect("a run")
            .remove("output");
    }
    assert_eq!(parse(&st), status);
    // since= and errors.
    let (_, _, none) = get(port, "/api/runs?since=2999-01-01T00:00:00Z", bearer);
    assert_eq!(parse(&none), serde_json::json!([]));
    let (_, _, all) = get(port, "/api/runs?since=1h", bearer);
    assert_eq!(parse(&all).as_array().map(Vec::len), Some(2), "{all}");
    let (code, _, body) = get(port, "/api/runs?since=yesterday", bearer);
    assert!(
        code == 400 && body.contains("since=\"yesterday\""),
        "{body}"
    );
    let (code, _, body) = get(port, "/api/runs?job=%3Cscript%3E", bearer);
    assert!(
        code == 404 && body.contains("no job \"<script>\""),
        "{body}"
    );
    assert_eq!(get(port, "/run/nope", bearer).0, 404);
    assert_eq!(get(port, "/?window=2y", bearer).0, 400);
}

#[test]
fn the_page_is_off_by_default_and_its_keys_need_it() {
    let (t, port) = page_table(
        "page-off",
        "",
        "[jobs.ok]\nschedule = \"@manual\"\ncommand = \"true\"\n",
    );
    let _d = Daemon::start(&t);
    assert_eq!(get(port, "/", None).0, 404);
    assert_eq!(get(port, "/api/status", None).0, 404);
    assert_eq!(get(port, "/metrics", None).0, 200);
    drop(_d);
    let no_listen = Table::new("page-nolisten", "[settings]\nstatus_page = true\n");
    let check = |t: &Table| t.run(&["check"]);
    let _ = no_listen;
    for (settings, want) in [
        (
            "status_page = true\n",
            "status_page: the page is served on metrics_listen, which is not set",
        ),
        (
            "status_page_output = true\n",
            "status_page_output: only with status_page = true",
        ),
        (
            "status_page_token_file = \"/etc/x\"\n",
            "status_page_token_file: only with status_page = true",
        ),
        ("status_page = \"yes\"\n", "status_page"),
    ] {
        let t = Table::new(
            "page-keys",
            "[jobs.ok]\nschedule = \"@manual\"\ncommand = \"true\"\n",
        );
        let text = std::fs::read_to_string(&t.path).expect("table");
        std::fs::write(
            &t.path,
            text.replacen("[settings]\n", &format!("[settings]\n{settings}"), 1),
        )
        .expect("write");
        let (code, _, err) = check(&t);
        assert_eq!(code, 78, "{settings}: {err}");
        assert!(err.contains(want), "{settings}: {err}");
    }
}

/// Whether the main thread of `pid` sleeps in ppoll(2): the daemon's loop waits.
fn loop_waits(pid: i32) -> bool {
    let call = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    call.split_whitespace().next() == Some(libc::SYS_ppoll.to_string().as_str())
}

/// voluntary and involuntary context switches of each thread of `pid`, by thread name.
fn switches(pid: u32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .unwrap_or("")
            .trim()
            .to_string();
        let tid = task.file_name().to_string_lossy().into_owned();
        out.push((
            format!("{name} {tid}"),
            field("voluntary_ctxt_switches:") + field("nonvoluntary_ctxt_switches:"),
        ));
    }
    out.sort();
    out
}

#[test]
fn an_idle_daemon_wakes_no_more_with_the_page_on() {
    let far = "[jobs.far]\nschedule = \"0 0 1 1 *\"\ncommand = \"true\"\n";
    let (on, port) = page_table("page-idle-on", "status_page = true\n", far);
    let (off, _) = page_table("page-idle-off", "", far);
    let d_on = Daemon::start(&on);
    let d_off = Daemon::start(&off);
    // Looked at once (its code has run), then nobody looks.
    assert_eq!(get(port, "/", None).0, 200);
    // The client thread of that request is gone.
    wait_for(|| {
        switches(d_on.pid() as u32)
            .iter()
            .all(|(n, _)| !n.starts_with("metrics client"))
    });
    // Both loops wait (the start's last steps, logged before they end, are over).
    wait_for(|| loop_waits(d_on.pid()) && loop_waits(d_off.pid()));
    let (a_on, a_off) = (switches(d_on.pid() as u32), switches(d_off.pid() as u32));
    std::thread::sleep(Duration::from_secs(6));
    let (b_on, b_off) = (switches(d_on.pid() as u32), switches(d_off.pid() as u32));
    let delta = |a: &[(String, u64)], b: &[(String, u64)]| -> Vec<(String, u64)> {
        b.iter()
            .map(|(n, v)| {
                let before = a.iter().find(|(m, _)| m == n).map_or(0, |(_, v)| *v);
                (n.clone(), v - before)
            })
            .collect()
    };
    let (on_d, off_d) = (delta(&a_on, &b_on), delta(&a_off, &b_off));
    let total = |d: &[(String, u64)]| d.iter().map(|(_, v)| v).sum::<u64>();
    // The listener blocks in accept(2): not one wake-up.
    let listener: Vec<&(String, u64)> = on_d
        .iter()
        .filter(|(n, _)| n.starts_with("metrics "))
        .collect();
    assert!(!listener.is_empty(), "{on_d:?}");
    assert!(listener.iter().all(|(_, v)| *v == 0), "{on_d:?}");
    // The whole daemon: as many as without the page (its loop looks at the clock once a
    // minute, which may fall in one window and not the other).
    assert!(
        total(&on_d) <= total(&off_d) + 1,
        "with the page {on_d:?}, without {off_d:?}"
    );
    assert!(total(&on_d) <= 2, "{on_d:?}");
}

#[test]
fn in_fleet_mode_the_page_shows_the_live_nodes_and_each_runs_node() {
    use super::fleet::{Db, node_timed};
    let db = Db::new("page");
    let dir = TempDir::new("page-fleet");
    let ev = dir.path().join("events");
    let jobs = "[jobs.quick]\nschedule = \"@manual\"\ncommand = \"echo $NODE >> $EVENTS\"\n";
    let a = node_timed(&db, "postgres", "a", &ev, jobs, 4);
    let b = node_timed(&db, "postgres", "b", &ev, jobs, 4);
    let port = free_port();
    let text = std::fs::read_to_string(&a.path).expect("table");
    let page = format!("[settings]\nmetrics_listen = \"127.0.0.1:{port}\"\nstatus_page = true\n");
    std::fs::write(&a.path, text.replacen("[settings]\n", &page, 1)).expect("write");
    let _da = Daemon::start(&a);
    let _db = Daemon::start(&b);
    let (code, out, err) = b.run(&["trigger", "quick", "--wait"]);
    assert_eq!(code, 0, "{err}");
    let id = out.split_whitespace().next().expect("a run id").to_string();
    // The node that ran it, as the fleet recorded it.
    let (_, _, api) = get(port, "/api/runs?job=quick", None);
    let runs: serde_json::Value = serde_json::from_str(&api).expect("JSON");
    assert_eq!(runs[0]["run_id"], id.as_str(), "{api}");
    let ran_on = runs[0]["node"].as_str().expect("a node").to_string();
    let ran_here = std::fs::read_to_string(&ev).expect("events");
    assert_eq!(ran_here.trim(), ran_on);
    // Both daemons heartbeat: both are listed, with their last heartbeat.
    let mut html = String::new();
    wait_for(|| {
        html = get(port, "/", None).2;
        html.contains("data-node=\"a\" data-state=\"live\"")
            && html.contains("data-node=\"b\" data-state=\"live\"")
    });
    assert!(html.contains("<b>a</b> (heartbeat every 1s)"), "{html}");
    assert!(
        html.contains("a (this node)</th><td class=\"n-live\">live</td><td>daemon (pid "),
        "{html}"
    );
    let bar = html
        .split("<rect class=\"bar ")
        .find(|b| b.contains(&format!("data-run=\"{id}\"")))
        .expect("the run's bar");
    assert!(bar.contains(&format!("; on {ran_on}</title>")), "{bar}");
}
