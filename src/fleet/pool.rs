//! Connections to PostgreSQL: a small pool shared by claims, leases and records, TLS with
//! the process's one trust (`crate::tls`), and errors that never show the connection string.
//!
//! Every connection carries TCP keepalives and a TCP user timeout on this side, and asks the
//! server for the same on its side (`options=-c tcp_keepalives_idle=...`), so that a
//! partition leaves no session behind on either end for more than a few heartbeats. A
//! connection that fails at the connection level is dropped (and so closed), never reused.

use std::sync::atomic::Ordering;
use std::time::Duration;

use postgres::{Client, NoTls};

use super::Fleet;
use super::wire::{Conn, Op};
use crate::sync::lock;

/// The shortest connect timeout (a TCP handshake on a slow link, a TLS handshake).
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// TLS for `sslmode=prefer|require`: the process's one TLS trust (the platform's store,
/// honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`; see `crate::tls`).
pub(super) fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let trust = crate::tls::trust(None)?;
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(
        (*trust.client_config()).clone(),
    ))
}

/// A database error, without the connection string.
pub(super) fn db_err(e: postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => {
            let text = e.to_string();
            match std::error::Error::source(&e) {
                Some(s) if !text.contains(&s.to_string()) => format!("{text}: {s}"),
                _ => text,
            }
        }
    }
}

/// A column of a row, as an error (not a panic) when the table is not what this version
/// made.
pub(super) fn col<'a, T: postgres::types::FromSql<'a>>(
    r: &'a postgres::Row,
    i: usize,
) -> Result<T, String> {
    r.try_get(i).map_err(db_err)
}

/// Whole seconds, at least 1 (the kernel's keepalive settings are in seconds).
fn secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// How each side of a connection notices a silent peer, from the heartbeat: keepalive
/// probes after `heartbeat` of silence, then every `heartbeat / 2` (at least 1 s), 3 of them;
/// unacknowledged data is given up after `heartbeat` (this side: no query outlives the
/// lease) or after the keepalives' own time (the server, whose backend then ends; Linux
/// also lets the user timeout decide when keepalives give up).
pub(super) struct Keepalive {
    pub(super) idle: Duration,
    pub(super) interval: Duration,
    pub(super) count: u32,
    pub(super) user_timeout: Duration,
    pub(super) server_user_timeout: Duration,
}

impl Keepalive {
    pub(super) fn new(heartbeat: Duration) -> Keepalive {
        let idle = Duration::from_secs(secs(heartbeat));
        let interval = Duration::from_secs(secs(heartbeat / 2));
        let count = 3;
        Keepalive {
            idle,
            interval,
            count,
            user_timeout: heartbeat,
            server_user_timeout: idle + interval * count,
        }
    }

    /// The server side's settings, as a startup `options` value (each is a setting any
    /// user may change for a session).
    pub(super) fn server_options(&self, user_timeout: bool) -> String {
        let mut o = format!(
            "-c tcp_keepalives_idle={} -c tcp_keepalives_interval={} -c tcp_keepalives_count={}",
            self.idle.as_secs(),
            self.interval.as_secs(),
            self.count
        );
        if user_timeout {
            o.push_str(&format!(
                " -c tcp_user_timeout={}",
                self.server_user_timeout.as_millis()
            ));
        }
        o
    }

    /// This side's settings.
    pub(super) fn apply(&self, pg: &mut postgres::Config) {
        pg.keepalives(true);
        pg.keepalives_idle(self.idle);
        pg.keepalives_interval(self.interval);
        pg.keepalives_retries(self.count);
        pg.tcp_user_timeout(self.user_timeout);
    }
}

impl Fleet {
    /// A new connection: the connect timeout is short (a quarter of the heartbeat, at least
    /// 250 ms, and at least three times the last renewal's round trip), so that attempts can
    /// follow each other closely while the database is away; a `connect_timeout` in the URL
    /// wins. The server-side settings go along as startup options (appended to the URL's);
    /// a server older than PostgreSQL 12, which has no `tcp_user_timeout`, is asked again
    /// without it.
    pub(super) fn connect(&self) -> Result<Client, String> {
        let mut pg = self.pg.clone();
        if self.pg.get_connect_timeout().is_none() {
            let rtt3 = self.trips.renew_rtt().unwrap_or_default() * 3;
            pg.connect_timeout((self.heartbeat / 4).max(MIN_CONNECT_TIMEOUT).max(rtt3));
        }
        loop {
            let with_user_timeout = !self.old_server.load(Ordering::Relaxed);
            let ours = self.keepalive.server_options(with_user_timeout);
            let options = match self.pg.get_options() {
                Some(theirs) if !theirs.is_empty() => format!("{theirs} {ours}"),
                _ => ours,
            };
            pg.options(&options);
            let r = match &self.tls {
                Some(t) => pg.connect(t.clone()),
                None => pg.connect(NoTls),
            };
            match r {
                Ok(c) => return Ok(c),
                Err(e)
                    if with_user_timeout
                        && e.as_db_error()
                            .is_some_and(|d| d.message().contains("\"tcp_user_timeout\"")) =>
                {
                    self.old_server.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(format!("cannot connect to PostgreSQL: {}", db_err(e))),
            }
        }
    }

    /// Runs `f` on a pooled connection, reconnecting once if the connection was lost. A
    /// connection that fails at the connection level (anything but an error the server
    /// sent) is dropped, which closes it. Every statement `f` sends counts as a round trip
    /// of `op`.
    pub(super) fn with<T>(
        &self,
        op: Op,
        f: impl FnMut(&mut Conn<'_>) -> Result<T, postgres::Error>,
    ) -> Result<T, String> {
        self.trips.op(op);
        self.with_counting_itself(op, f)
    }

    /// [`Fleet::with`] for a caller that counts its operations itself (a replay of the
    /// outbox is as many operations as it writes entries).
    pub(super) fn with_counting_itself<T>(
        &self,
        op: Op,
        mut f: impl FnMut(&mut Conn<'_>) -> Result<T, postgres::Error>,
    ) -> Result<T, String> {
        // A free connection if there is one, else wait for the next in turn.
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        let free = (0..self.pool.len())
            .map(|k| (i + k) % self.pool.len())
            .find_map(|k| self.pool[k].try_lock().ok());
        let mut slot = match free {
            Some(s) => s,
            None => lock(&self.pool[i]),
        };
        for tried in 0..2 {
            if slot.as_ref().is_none_or(|c| c.is_closed()) {
                // The old one closed before a new one opens.
                *slot = None;
                *slot = Some(self.connect()?);
            }
            let Some(client) = slot.as_mut() else {
                continue;
            };
            let mut conn = Conn {
                client,
                op,
                trips: &self.trips,
            };
            match f(&mut conn) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_closed() || e.as_db_error().is_none() => {
                    *slot = None;
                    if tried == 1 {
                        return Err(db_err(e));
                    }
                }
                Err(e) => return Err(db_err(e)),
            }
        }
        Err("lost the database connection".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalives_follow_the_heartbeat_in_whole_seconds_on_both_sides() {
        let k = Keepalive::new(Duration::from_secs(1));
        assert_eq!(
            k.server_options(true),
            "-c tcp_keepalives_idle=1 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3 \
             -c tcp_user_timeout=4000"
        );
        assert_eq!(k.user_timeout, Duration::from_secs(1));
        let k = Keepalive::new(Duration::from_secs(5));
        assert_eq!(
            k.server_options(false),
            "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=3 -c tcp_keepalives_count=3"
        );
        assert_eq!(k.server_user_timeout, Duration::from_secs(14));
        // A heartbeat under a second still probes every second (the kernel's unit).
        let k = Keepalive::new(Duration::from_millis(300));
        assert_eq!(
            (k.idle, k.interval),
            (Duration::from_secs(1), Duration::from_secs(1))
        );
    }
}
