//! `[cluster]`: fleet mode, where several daemons share one PostgreSQL database (the URL, or
//! where to find it, this node's name, the heartbeat and when a node counts as dead).

use std::time::Duration;

use super::loader::Loader;
use super::reader::TableReader;
use super::secret::Secret;

const CLUSTER_KEYS: &[&str] = &[
    "postgres_url",
    "postgres_url_env",
    "postgres_url_file",
    "node",
    "heartbeat",
    "dead_after",
];

#[derive(Clone, Debug)]
pub struct Cluster {
    pub postgres_url: ClusterUrl,
    pub node: String,
    pub heartbeat: Duration,
    pub dead_after: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterUrl {
    Inline(String),
    Secret(Secret),
}

impl Loader<'_> {
    pub(crate) fn cluster(&mut self, t: TableReader) -> Option<Cluster> {
        let t = TableReader::new_from(t, Some("[cluster]".to_string()));
        t.check_keys(self.sink, CLUSTER_KEYS, "[cluster]");
        let url = self.cluster_url(&t)?;
        let node = t
            .nonempty(self.sink, "node")
            .map(|a| a.v)
            .unwrap_or_else(|| {
                nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "localhost".to_string())
            });
        let heartbeat = t
            .duration(self.sink, "heartbeat")
            .map_or(Duration::from_secs(5), |a| a.v);
        let dead_after = t.duration(self.sink, "dead_after");
        let dead_loc = dead_after.as_ref().map_or(t.loc, |a| a.loc);
        let dead_after = dead_after.map_or(Duration::from_secs(30), |a| a.v);
        if heartbeat.is_zero() || dead_after <= heartbeat {
            self.sink.error(
                dead_loc,
                t.subject(),
                format!(
                    "dead_after ({}) must be longer than heartbeat ({}), which must not be 0",
                    crate::units::format_duration(dead_after),
                    crate::units::format_duration(heartbeat)
                ),
            );
            return None;
        }
        Some(Cluster {
            postgres_url: url,
            node,
            heartbeat,
            dead_after,
        })
    }

    /// Exactly one of `postgres_url` (without a password), `postgres_url_env` and
    /// `postgres_url_file`.
    fn cluster_url(&mut self, t: &TableReader) -> Option<ClusterUrl> {
        let inline = t.nonempty(self.sink, "postgres_url");
        let secret = self.secret(t, "postgres_url_env", "postgres_url_file");
        match (inline, secret) {
            (Some(u), None) => {
                if url_has_password(&u.v) {
                    self.sink.error(
                        u.loc,
                        t.subject(),
                        "postgres_url: no password in the table; use postgres_url_env or \
                         postgres_url_file (or a ~/.pgpass file)",
                    );
                    return None;
                }
                Some(ClusterUrl::Inline(u.v))
            }
            (None, Some(s)) => Some(ClusterUrl::Secret(s)),
            (Some(u), Some(_)) => {
                self.sink.error(
                    u.loc,
                    t.subject(),
                    "set one of postgres_url, postgres_url_env, postgres_url_file",
                );
                None
            }
            (None, None) => {
                self.sink.error(
                    t.loc,
                    t.subject(),
                    "missing postgres_url_env, postgres_url_file or postgres_url",
                );
                None
            }
        }
    }
}

/// A password in a URL (`user:password@`) or in a key-value connection string.
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo.contains(':'),
        None => url.contains("password="),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls() {
        assert!(url_has_password("postgres://u:secret@db/x"));
        assert!(!url_has_password("postgres://u@db/x"));
        assert!(url_has_password("host=db password=x"));
    }
}
