//! Connections to PostgreSQL: a small pool shared by claims, leases and records, TLS with
//! the process's one trust (`crate::tls`), and errors that never show the connection string.

use std::sync::atomic::Ordering;

use postgres::{Client, NoTls};

use super::Fleet;
use crate::sync::lock;

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

impl Fleet {
    pub(super) fn connect(&self) -> Result<Client, String> {
        let r = match &self.tls {
            Some(t) => self.pg.connect(t.clone()),
            None => self.pg.connect(NoTls),
        };
        r.map_err(|e| format!("cannot connect to PostgreSQL: {}", db_err(e)))
    }

    /// Runs `f` on a pooled connection, reconnecting once if the connection was lost.
    pub(super) fn with<T>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
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
                *slot = Some(self.connect()?);
            }
            let Some(c) = slot.as_mut() else {
                continue;
            };
            match f(c) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_closed() || (tried == 0 && e.as_db_error().is_none()) => {
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
