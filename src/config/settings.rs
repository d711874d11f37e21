//! `[settings]`: the daemon-wide keys (time zone, directories, log, limits, control socket,
//! metrics, history and alert spool), each with its documented default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;

use super::job::Zone;
use super::loader::Loader;
use super::reader::TableReader;
use super::toml_tree::Table;
use crate::diag::Loc;

const SETTINGS_KEYS: &[&str] = &[
    "timezone",
    "state_dir",
    "lock_dir",
    "log_file",
    "log_format",
    "max_concurrent",
    "shutdown_grace",
    "control_socket",
    "control_socket_group",
    "metrics_listen",
    "status_page",
    "status_page_output",
    "status_page_token_file",
    "history_keep",
    "history_max_age",
    "output_max_age",
    "alert_spool_max_age",
    "alert_spool_max_per_channel",
    "containment",
    "healthcheck_ca_file",
    "reload_on_change",
];

/// How the processes of a run are kept together (`containment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainmentSetting {
    /// A cgroup per run where the host allows it, else the process fallback.
    Auto,
    /// A cgroup per run, or refuse to start.
    Cgroup,
    /// The process fallback (subreaper and a walk of /proc), even where cgroups work.
    Process,
}

/// `status_page`, `status_page_output` and `status_page_token_file`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusPage {
    /// `status_page = true`: served (on `metrics_listen`, which it needs).
    pub enabled: bool,
    /// `status_page_output = true`: a run's view shows its output tail.
    pub output: bool,
    /// A file private to its owner holding the bearer token the page asks for.
    pub token_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
    /// Entries of the systemd journal, with fields (`log_file` must not be set).
    Journal,
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// The configured zone (`timezone`), or the system's: shared with the jobs without a
    /// zone of their own.
    pub zone: Arc<Zone>,
    pub state_dir: PathBuf,
    pub lock_dir: PathBuf,
    pub log_file: Option<PathBuf>,
    pub log_format: LogFormat,
    pub max_concurrent: usize,
    pub shutdown_grace: Duration,
    pub control_socket: PathBuf,
    pub control_socket_group: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
    /// The read-only status page (`GET /`, `/run/ID`, `/api/...`) on `metrics_listen`.
    pub status_page: StatusPage,
    /// Runs kept per job in the history (0: keep everything).
    pub history_keep: usize,
    /// Records older than this are pruned from the history (`None`: no age limit).
    pub history_max_age: Option<Duration>,
    /// Output files older than this are removed (`None`: no age limit).
    pub output_max_age: Option<Duration>,
    /// How long an undelivered alert is retried before it is dropped.
    pub alert_spool_max_age: Duration,
    /// How many alerts may wait in the spool per channel; the oldest are dropped beyond it.
    pub alert_spool_max_per_channel: usize,
    pub containment: ContainmentSetting,
    /// A PEM bundle of CA certificates the healthcheck pings trust besides the system's.
    pub healthcheck_ca_file: Option<PathBuf>,
    /// The daemon reloads the table when its files change (inotify), as on SIGHUP.
    pub reload_on_change: bool,
}

impl Settings {
    /// The zone of `[settings]` (`timezone`, else the system's).
    pub fn tz(&self) -> &TimeZone {
        &self.zone.tz
    }
}

impl Loader<'_> {
    /// `[settings]`; `None` only when a value in it is invalid.
    pub(crate) fn settings(&mut self, top: &TableReader) -> Option<Settings> {
        let empty = Table::new();
        let t = match top.table(self.sink, "settings") {
            Some(t) => TableReader::new_from(t, Some("[settings]".to_string())),
            None if top.has("settings") => return None,
            None => TableReader::new(&empty, 0, Loc::default(), Some("[settings]".to_string())),
        };
        t.check_keys(self.sink, SETTINGS_KEYS, "[settings]");
        let errors_before = self.sink.diags.len();
        let zone = self.zone(&t, "timezone");
        let state_dir = self
            .abs_path(&t, "state_dir")
            .map_or_else(crate::paths::default_state_dir, |a| a.v);
        let lock_dir = self
            .abs_path(&t, "lock_dir")
            .map_or_else(|| crate::paths::default_lock_dir(&state_dir), |a| a.v);
        // "-": standard output (a container's log).
        let log_file = match t.nonempty(self.sink, "log_file") {
            Some(s) if s.v == "-" => Some(PathBuf::from("-")),
            Some(_) => self.abs_path(&t, "log_file").map(|a| a.v),
            None => None,
        };
        let formats = ["text", "json", "journal"];
        let log_format = match t.choice(self.sink, "log_format", &formats) {
            Some(s) if s.v == "json" => LogFormat::Json,
            Some(s) if s.v == "journal" => {
                if log_file.is_some() {
                    let msg = "log_format = \"journal\" sends the log to the systemd journal: \
                               remove log_file, or choose \"text\" or \"json\" for it";
                    self.sink.error(s.loc, t.subject(), msg.to_string());
                }
                LogFormat::Journal
            }
            _ => LogFormat::Text,
        };
        let max_concurrent = t
            .int(self.sink, "max_concurrent", 1, 100_000)
            .map_or(64, |a| a.v as usize);
        let shutdown_grace = t
            .duration(self.sink, "shutdown_grace")
            .map_or(Duration::from_secs(300), |a| a.v);
        let control_socket = self
            .abs_path(&t, "control_socket")
            .map_or_else(|| lock_dir.join("cronwarden.sock"), |a| a.v);
        let control_socket_group = t.nonempty(self.sink, "control_socket_group").map(|a| a.v);
        let alert_spool_max_age = t
            .duration(self.sink, "alert_spool_max_age")
            .map_or(Duration::from_secs(24 * 3600), |a| a.v);
        let alert_spool_max_per_channel = t
            .int(self.sink, "alert_spool_max_per_channel", 1, 100_000)
            .map_or(100, |a| a.v as usize);
        let history_keep = t
            .int(self.sink, "history_keep", 0, 10_000_000)
            .map_or(1000, |a| a.v as usize);
        // "0s": no age limit, as when unset.
        let history_max_age = t
            .duration(self.sink, "history_max_age")
            .map(|a| a.v)
            .filter(|d| !d.is_zero());
        let output_max_age = t
            .duration(self.sink, "output_max_age")
            .map(|a| a.v)
            .filter(|d| !d.is_zero());
        let metrics_listen = self.metrics_listen(&t);
        let status_page = self.status_page(&t, metrics_listen.is_some());
        let healthcheck_ca_file = self.ca_file(&t, "healthcheck_ca_file");
        let containments = [
            ("auto", ContainmentSetting::Auto),
            ("cgroup", ContainmentSetting::Cgroup),
            ("process", ContainmentSetting::Process),
        ];
        let containment = t
            .choice_of(self.sink, "containment", &containments)
            .map_or(ContainmentSetting::Auto, |a| a.v);
        let reload_on_change = t.bool(self.sink, "reload_on_change").is_some_and(|a| a.v);
        if self.errors_since(errors_before) {
            return None;
        }
        let zone = match zone {
            Some((n, tz)) => Zone {
                name: Some(n.into()),
                tz,
            },
            None => Zone {
                name: None,
                tz: crate::schedule::system_zone(),
            },
        };
        Some(Settings {
            zone: Arc::new(zone),
            state_dir,
            lock_dir,
            log_file,
            log_format,
            max_concurrent,
            shutdown_grace,
            control_socket,
            control_socket_group,
            metrics_listen,
            status_page,
            history_keep,
            history_max_age,
            output_max_age,
            alert_spool_max_age,
            alert_spool_max_per_channel,
            containment,
            healthcheck_ca_file,
            reload_on_change,
        })
    }

    /// The status page's keys: the page needs `metrics_listen`, and its other keys need the
    /// page (a key that would do nothing is an error, not a silence).
    fn status_page(&mut self, t: &TableReader, listening: bool) -> StatusPage {
        let enabled = t.bool(self.sink, "status_page");
        let output = t.bool(self.sink, "status_page_output");
        let token_file = self.abs_path(t, "status_page_token_file");
        let on = enabled.as_ref().is_some_and(|e| e.v);
        if let Some(e) = enabled.as_ref().filter(|e| e.v && !listening) {
            self.sink.error(
                e.loc,
                t.subject(),
                "status_page: the page is served on metrics_listen, which is not set; \
                 set metrics_listen = \"127.0.0.1:9477\" (for example)",
            );
        }
        let without = [
            ("status_page_output", output.as_ref().map(|o| o.loc)),
            ("status_page_token_file", token_file.as_ref().map(|f| f.loc)),
        ];
        for (key, loc) in without {
            if let (Some(loc), false) = (loc, on) {
                self.sink.error(
                    loc,
                    t.subject(),
                    format!("{key}: only with status_page = true (the page is off)"),
                );
            }
        }
        StatusPage {
            enabled: on,
            output: output.is_some_and(|o| o.v),
            token_file: token_file.map(|f| f.v),
        }
    }

    fn metrics_listen(&mut self, t: &TableReader) -> Option<SocketAddr> {
        let s = t.nonempty(self.sink, "metrics_listen")?;
        match s.v.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.sink.error(
                    s.loc,
                    t.subject(),
                    format!(
                        "metrics_listen: {:?} is not an address:port such as \"127.0.0.1:9477\"",
                        s.v
                    ),
                );
                None
            }
        }
    }
}
