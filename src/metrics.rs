//! Prometheus metrics at `http://metrics_listen/metrics` (text format 0.0.4), and the
//! daemon's health at `http://metrics_listen/healthz` (200 when healthy, else 503, with a
//! short JSON body: `{"healthy":true,"reasons":[]}`), only when `metrics_listen` is set, and
//! only on that address. With `status_page = true`, the same listener serves the status page
//! (`crate::page`). The listener thread blocks in accept(2): it costs no wake-up while
//! nobody asks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

use crate::sync::lock;

use crate::control::{Health, JobHealth};
use crate::record::RunRecord;

/// The label that names the job in every per-job series. Not `job`: Prometheus sets `job`
/// on every scraped series (the scrape job), so a `job` label of ours would be stored as
/// `exported_job`; `cronjob` is kube-state-metrics' label for a CronJob's name.
pub(crate) const LABEL: &str = "cronjob";

/// Asked at each request for the daemon's health (and the jobs' stale gauges and streaks).
pub(crate) type Probe = Arc<dyn Fn() -> Health + Send + Sync>;

#[derive(Default)]
struct JobMetrics {
    runs: BTreeMap<&'static str, u64>,
    attempts: u64,
    last_success: Option<f64>,
    last_duration: Option<f64>,
    running: u64,
    next_run: Option<i64>,
    /// The CPU time and peak memory of the last run that ran (when they were measured).
    last_run_usage: crate::record::Usage,
    /// The job's `tags`, comma-separated (`cronwarden_job_info`).
    tags: String,
}

/// Counters since the daemon started, and gauges.
pub(crate) struct Metrics {
    jobs: Mutex<BTreeMap<String, JobMetrics>>,
    /// Where the alert spool is (for its size).
    state_dir: PathBuf,
    /// The daemon's alert delivery counters.
    alerts: Arc<crate::alert::Stats>,
    /// The coordination backend's own series (fleet round trips), asked at each request.
    backend: Option<Arc<dyn crate::coord::Coordinator>>,
}

impl Metrics {
    pub(crate) fn new(state_dir: &Path, alerts: Arc<crate::alert::Stats>) -> Metrics {
        Metrics {
            jobs: Mutex::default(),
            state_dir: state_dir.to_path_buf(),
            alerts,
            backend: None,
        }
    }

    /// Also shows the backend's own series ([`crate::coord::Coordinator::metrics`]).
    pub(crate) fn with_backend(mut self, coord: Arc<dyn crate::coord::Coordinator>) -> Metrics {
        self.backend = Some(coord);
        self
    }

    /// The jobs of the table (at start and at each reload): each has its series from now on,
    /// its counters and the outcomes of `cronwarden_runs_total` at 0 until they count; a job
    /// that left the table loses its series (unless a run of it is still in progress).
    pub(crate) fn set_jobs<'a>(&self, table: impl IntoIterator<Item = (&'a str, &'a [String])>) {
        let table: BTreeMap<&str, &[String]> = table.into_iter().collect();
        let mut jobs = lock(&self.jobs);
        jobs.retain(|name, m| table.contains_key(name.as_str()) || m.running > 0);
        for (name, tags) in table {
            let m = jobs.entry(name.to_string()).or_default();
            m.tags = tags.join(",");
            for o in crate::record::Outcome::ALL {
                m.runs.entry(o.as_str()).or_default();
            }
        }
    }

    pub(crate) fn started(&self, job: &str) {
        lock(&self.jobs).entry(job.to_string()).or_default().running += 1;
    }

    pub(crate) fn finished(&self, job: &str, was_running: bool, rec: &RunRecord) {
        let mut jobs = lock(&self.jobs);
        let m = jobs.entry(job.to_string()).or_default();
        if was_running {
            m.running = m.running.saturating_sub(1);
        }
        *m.runs.entry(rec.outcome.as_str()).or_default() += 1;
        m.attempts += rec.attempts.len() as u64;
        if !rec.attempts.is_empty() {
            m.last_duration = Some(rec.duration_ms as f64 / 1000.0);
            m.last_run_usage = rec.facts.usage.clone();
        }
        if rec.outcome == crate::record::Outcome::Success {
            m.last_success = rec
                .ended
                .parse::<Timestamp>()
                .ok()
                .map(|t| t.as_millisecond() as f64 / 1000.0);
        }
    }

    /// The next scheduled instant of every job (replaces the previous snapshot).
    pub(crate) fn set_next_runs<'a>(
        &self,
        next: impl IntoIterator<Item = (&'a str, Option<Timestamp>)>,
    ) {
        let mut jobs = lock(&self.jobs);
        for m in jobs.values_mut() {
            m.next_run = None;
        }
        for (name, t) in next {
            let next_run = t.map(|t| t.as_second());
            match jobs.get_mut(name) {
                Some(m) => m.next_run = next_run,
                None => {
                    let m = jobs.entry(name.to_string()).or_default();
                    m.next_run = next_run;
                }
            }
        }
    }

    /// The text exposition format; `health` is each watched job's stale deadline and
    /// failure streak.
    pub(crate) fn render(&self, health: &[JobHealth]) -> String {
        let jobs = lock(&self.jobs);
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
            write_family(&mut out, name, kind, help, lines)
        };
        let label = job_label;
        family(
            "cronwarden_runs_total",
            "counter",
            "Runs since the daemon started, by job and outcome.",
            jobs.iter()
                .flat_map(|(j, m)| {
                    m.runs.iter().map(move |(o, n)| {
                        format!(
                            "cronwarden_runs_total{{{LABEL}=\"{}\",outcome=\"{o}\"}} {n}",
                            label(j)
                        )
                    })
                })
                .collect(),
        );
        family(
            "cronwarden_attempts_total",
            "counter",
            "Attempts since the daemon started (retries included).",
            jobs.iter()
                .map(|(j, m)| {
                    format!(
                        "cronwarden_attempts_total{{{LABEL}=\"{}\"}} {}",
                        label(j),
                        m.attempts
                    )
                })
                .collect(),
        );
        family(
            "cronwarden_running",
            "gauge",
            "Runs of the job in progress.",
            jobs.iter()
                .map(|(j, m)| {
                    format!(
                        "cronwarden_running{{{LABEL}=\"{}\"}} {}",
                        label(j),
                        m.running
                    )
                })
                .collect(),
        );
        family(
            "cronwarden_last_success_timestamp_seconds",
            "gauge",
            "When the job last succeeded (Unix time).",
            jobs.iter()
                .filter_map(|(j, m)| {
                    m.last_success.map(|t| {
                        format!(
                            "cronwarden_last_success_timestamp_seconds{{{LABEL}=\"{}\"}} {t}",
                            label(j)
                        )
                    })
                })
                .collect(),
        );
        family(
            "cronwarden_last_duration_seconds",
            "gauge",
            "How long the job's last run took.",
            jobs.iter()
                .filter_map(|(j, m)| {
                    m.last_duration.map(|d| {
                        format!(
                            "cronwarden_last_duration_seconds{{{LABEL}=\"{}\"}} {d}",
                            label(j)
                        )
                    })
                })
                .collect(),
        );
        family(
            "cronwarden_next_run_timestamp_seconds",
            "gauge",
            "When the job is next scheduled (Unix time).",
            jobs.iter()
                .filter_map(|(j, m)| {
                    m.next_run.map(|t| {
                        format!(
                            "cronwarden_next_run_timestamp_seconds{{{LABEL}=\"{}\"}} {t}",
                            label(j)
                        )
                    })
                })
                .collect(),
        );
        let spool = crate::alert::spool_size(&self.state_dir);
        family(
            "cronwarden_alert_delivery_failures_total",
            "counter",
            "Alert deliveries that failed (each is spooled and retried, or logged as dropped).",
            vec![format!(
                "cronwarden_alert_delivery_failures_total {}",
                self.alerts.failures()
            )],
        );
        family(
            "cronwarden_alert_spool_size",
            "gauge",
            "Alerts waiting in the spool for another delivery attempt.",
            vec![format!("cronwarden_alert_spool_size {spool}")],
        );
        last_run_families(&mut out, &jobs);
        health_families(&mut out, health);
        info_family(&mut out, &jobs);
        if let Some(b) = &self.backend {
            out.push_str(&b.metrics());
        }
        out
    }
}

/// Writes a metric family: its HELP and TYPE lines, then its sample lines.
fn write_family(out: &mut String, name: &str, kind: &str, help: &str, lines: Vec<String>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
}

/// A job's name as a label value: backslashes and double quotes escaped.
fn job_label(job: &str) -> String {
    job.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `cronwarden_job_info`: 1 for every job, with its tags as a label (words only: nothing to
/// escape).
fn info_family(out: &mut String, jobs: &BTreeMap<String, JobMetrics>) {
    write_family(
        out,
        "cronwarden_job_info",
        "gauge",
        "1 for every job of the table, with its tags (comma-separated) as a label.",
        jobs.iter()
            .map(|(j, m)| {
                format!(
                    "cronwarden_job_info{{{LABEL}=\"{}\",tags=\"{}\"}} 1",
                    job_label(j),
                    m.tags
                )
            })
            .collect(),
    );
}

/// The gauges of each job's last run that ran: its CPU time and peak memory, a sample only
/// for the jobs whose last run has the figure.
fn last_run_families(out: &mut String, jobs: &BTreeMap<String, JobMetrics>) {
    fn samples<T: std::fmt::Display>(
        jobs: &BTreeMap<String, JobMetrics>,
        name: &str,
        value: impl Fn(&JobMetrics) -> Option<T>,
    ) -> Vec<String> {
        jobs.iter()
            .filter_map(|(j, m)| {
                value(m).map(|v| format!("{name}{{{LABEL}=\"{}\"}} {v}", job_label(j)))
            })
            .collect()
    }
    let cpu = "cronwarden_job_last_run_cpu_seconds";
    write_family(
        out,
        cpu,
        "gauge",
        "CPU time (user and system) the job's last run used, all its processes together.",
        samples(jobs, cpu, |m| m.last_run_usage.cpu_seconds),
    );
    let peak = "cronwarden_job_last_run_peak_memory_bytes";
    write_family(
        out,
        peak,
        "gauge",
        "The peak memory of the job's last run.",
        samples(jobs, peak, |m| m.last_run_usage.peak_memory_bytes),
    );
}

/// The gauges of the jobs' health: whether each job with `expect_success_within` is stale,
/// and each job's failure streak.
fn health_families(out: &mut String, health: &[JobHealth]) {
    let stale = "cronwarden_job_stale";
    write_family(
        out,
        stale,
        "gauge",
        "1 when the job's last success is older than its expect_success_within, else 0.",
        health
            .iter()
            .filter(|h| h.expect_success_within.is_some())
            .map(|h| {
                format!(
                    "{stale}{{{LABEL}=\"{}\"}} {}",
                    job_label(&h.job),
                    u8::from(h.stale)
                )
            })
            .collect(),
    );
    let streak = "cronwarden_job_failure_streak";
    write_family(
        out,
        streak,
        "gauge",
        "Consecutive failed runs of the job now (0 after a success).",
        health
            .iter()
            .map(|h| {
                format!(
                    "{streak}{{{LABEL}=\"{}\"}} {}",
                    job_label(&h.job),
                    h.failure_streak
                )
            })
            .collect(),
    );
}

/// Serves `/metrics` and `/healthz` on `addr` in a thread of its own, one short-lived
/// thread per client; `probe` tells the daemon's health.
pub(crate) fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    probe: Probe,
    page: Option<Arc<crate::page::Page>>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (metrics, probe) = (Arc::clone(&metrics), Arc::clone(&probe));
                let page = page.clone();
                let _ = std::thread::Builder::new()
                    .name("metrics client".into())
                    .spawn(move || answer(conn, &metrics, &*probe, page.as_deref()));
            }
        })?;
    Ok(())
}

/// `/healthz`: 200 when the daemon is healthy, else 503; the body says why, in short.
fn healthz(health: &Health) -> (&'static str, String) {
    let status = if health.healthy {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    let body = serde_json::json!({"healthy": health.healthy, "reasons": health.reasons});
    (status, format!("{body}\n"))
}

fn answer(
    conn: TcpStream,
    metrics: &Metrics,
    probe: &(dyn Fn() -> Health + Send + Sync),
    page: Option<&crate::page::Page>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(std::io::Read::take(&conn, 8192));
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    // The headers up to the blank line: only Authorization is looked at (the page's token).
    let mut auth = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':')
                    && name.trim().eq_ignore_ascii_case("authorization")
                {
                    auth = Some(value.trim().to_string());
                }
            }
        }
    }
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    // HEAD is GET without the body; the query string is ignored (`/metrics?x=1`).
    let head = method == Some("HEAD");
    let method = if head { Some("GET") } else { method };
    let path = target.map(|t| t.split_once('?').map_or(t, |(p, _)| p));
    let query = target
        .and_then(|t| t.split_once('?'))
        .map_or("", |(_, q)| q);
    let for_page = match (method, path, page) {
        (Some("GET"), Some(p), Some(page)) => page.answer(p, query, auth.as_deref()),
        _ => None,
    };
    if let Some(r) = for_page {
        let extra: String = r
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        return send(&conn, r.status, r.kind, &extra, &r.body, head);
    }
    let (status, body, kind) = match (method, path) {
        (Some("GET"), Some("/metrics")) => (
            "200 OK",
            metrics.render(&probe().jobs),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        (Some("GET"), Some("/healthz")) => {
            let (status, body) = healthz(&probe());
            (status, body, "application/json")
        }
        (Some("GET"), _) => (
            "404 Not Found",
            "try /metrics or /healthz\n".to_string(),
            "text/plain",
        ),
        _ => (
            "405 Method Not Allowed",
            "GET /metrics or /healthz\n".to_string(),
            "text/plain",
        ),
    };
    let allow = if status.starts_with("405") {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    send(&conn, status, kind, allow, &body, head);
}

/// Writes the answer (`extra`: header lines, each ending in CRLF); `head`: without the body.
fn send(conn: &TcpStream, status: &str, kind: &str, extra: &str, body: &str, head: bool) {
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    if !head {
        resp.push_str(body);
    }
    let _ = (&*conn).write_all(resp.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::{rec, with_facts};

    fn metrics() -> Metrics {
        let dir = std::env::temp_dir().join(format!("cw-metrics-{}", std::process::id()));
        Metrics::new(&dir, Arc::default())
    }

    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .collect()
    }

    #[test]
    fn the_last_runs_cpu_and_peak_memory_are_gauges_per_job() {
        let m = metrics();
        let mut used = with_facts("r1");
        used.job = "back\\up \"db\"".to_string();
        m.started(&used.job);
        m.finished(&used.job, true, &used);
        // A job whose last run ran but has no figures has no sample.
        let mut plain = rec("r2");
        plain.attempts = used.attempts.clone();
        plain.attempts[0].usage = Default::default();
        m.finished("plain", false, &plain);
        let text = m.render(&[]);
        for name in [
            "cronwarden_job_last_run_cpu_seconds",
            "cronwarden_job_last_run_peak_memory_bytes",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{text}");
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{text}");
        }
        assert_eq!(
            samples(&text, "cronwarden_job_last_run_cpu_seconds"),
            [r#"cronwarden_job_last_run_cpu_seconds{cronjob="back\\up \"db\""} 0.61"#]
        );
        assert_eq!(
            samples(&text, "cronwarden_job_last_run_peak_memory_bytes"),
            [r#"cronwarden_job_last_run_peak_memory_bytes{cronjob="back\\up \"db\""} 67318989"#]
        );
    }

    #[test]
    fn stale_gauges_are_for_jobs_expected_to_succeed_and_streaks_for_every_job() {
        let h = |job: &str, within: Option<&str>, stale: bool, streak: u32| JobHealth {
            job: job.to_string(),
            failure_streak: streak,
            expect_success_within: within.map(str::to_string),
            stale,
            ..JobHealth::default()
        };
        let text = metrics().render(&[
            h("backup", Some("26h"), true, 3),
            h("sync", Some("1h"), false, 0),
            h("plain", None, false, 1),
        ]);
        for name in ["cronwarden_job_stale", "cronwarden_job_failure_streak"] {
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{text}");
        }
        assert_eq!(
            samples(&text, "cronwarden_job_stale"),
            [
                r#"cronwarden_job_stale{cronjob="backup"} 1"#,
                r#"cronwarden_job_stale{cronjob="sync"} 0"#
            ]
        );
        assert_eq!(
            samples(&text, "cronwarden_job_failure_streak"),
            [
                r#"cronwarden_job_failure_streak{cronjob="backup"} 3"#,
                r#"cronwarden_job_failure_streak{cronjob="sync"} 0"#,
                r#"cronwarden_job_failure_streak{cronjob="plain"} 1"#
            ]
        );
    }

    #[test]
    fn every_job_of_the_table_has_its_counters_and_outcomes_at_0_until_they_count() {
        let m = metrics();
        let none: &[String] = &[];
        let tags = ["db".to_string(), "nightly".to_string()];
        m.set_jobs([("a", none), ("gone", none)]);
        m.finished("gone", false, &rec("r1"));
        m.started("gone");
        // Reloaded: `gone` left the table but is running, `b` is new.
        m.set_jobs([("a", none), ("b", &tags[..])]);
        let text = m.render(&[]);
        // Every job's tags, on its info series.
        assert_eq!(
            samples(&text, "cronwarden_job_info"),
            [
                r#"cronwarden_job_info{cronjob="a",tags=""} 1"#,
                r#"cronwarden_job_info{cronjob="b",tags="db,nightly"} 1"#,
                r#"cronwarden_job_info{cronjob="gone",tags=""} 1"#
            ]
        );
        for job in ["a", "b"] {
            for o in crate::record::Outcome::ALL {
                let want = format!(
                    "cronwarden_runs_total{{cronjob=\"{job}\",outcome=\"{}\"}} 0",
                    o.as_str()
                );
                assert!(text.lines().any(|l| l == want), "{want} in\n{text}");
            }
            for want in [
                format!("cronwarden_attempts_total{{cronjob=\"{job}\"}} 0"),
                format!("cronwarden_running{{cronjob=\"{job}\"}} 0"),
            ] {
                assert!(text.lines().any(|l| l == want), "{want} in\n{text}");
            }
        }
        assert!(
            text.contains("cronwarden_running{cronjob=\"gone\"} 1\n"),
            "{text}"
        );
        m.finished("gone", true, &rec("r2"));
        m.set_jobs([("a", none), ("b", &tags[..])]);
        assert!(!m.render(&[]).contains("\"gone\""));
    }

    #[test]
    fn healthz_is_200_when_healthy_else_503_with_the_reasons() {
        let (status, body) = healthz(&Health::new(Vec::new(), Vec::new()));
        assert_eq!(
            (status, body.as_str()),
            ("200 OK", "{\"healthy\":true,\"reasons\":[]}\n")
        );
        let failing = JobHealth {
            job: "sync".to_string(),
            failure_streak: 2,
            streak_threshold: 2,
            ..JobHealth::default()
        };
        let (status, body) = healthz(&Health::new(vec!["loop".to_string()], vec![failing]));
        assert_eq!(status, "503 Service Unavailable");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["healthy"], false);
        assert_eq!(v["reasons"][0], "loop");
        assert_eq!(
            v["reasons"][1],
            "sync: 2 failed runs in a row (threshold 2)"
        );
    }

    #[test]
    fn the_figures_are_the_last_runs_not_a_sum_and_skips_do_not_clear_them() {
        let m = metrics();
        m.finished("j", false, &with_facts("r1"));
        let mut next = with_facts("r2");
        next.facts.usage.cpu_seconds = Some(2.5);
        next.facts.usage.peak_memory_bytes = None;
        m.finished("j", false, &next);
        let mut skip = rec("r3");
        skip.outcome = crate::record::Outcome::Skipped;
        m.finished("j", false, &skip);
        let text = m.render(&[]);
        assert_eq!(
            samples(&text, "cronwarden_job_last_run_cpu_seconds"),
            [r#"cronwarden_job_last_run_cpu_seconds{cronjob="j"} 2.5"#]
        );
        // The last run's peak was not measured: no sample rather than an older run's.
        assert!(
            samples(&text, "cronwarden_job_last_run_peak_memory_bytes").is_empty(),
            "{text}"
        );
    }
}
