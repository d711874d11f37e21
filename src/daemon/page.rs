//! What the status page (`crate::page`) reads from the daemon: the table in force, the
//! coordination backend, and what the daemon says of itself.

use std::sync::Arc;

use super::Shared;
use crate::config::Config;
use crate::coord::Coordinator;
use crate::coord::status::Health;

pub(super) struct PageSource(pub(super) Arc<Shared>);

impl crate::page::Source for PageSource {
    fn config(&self) -> Arc<Config> {
        self.0.current()
    }

    fn coord(&self) -> Arc<dyn Coordinator> {
        Arc::clone(&self.0.coord)
    }

    fn health(&self) -> Health {
        let c = self.0.contain();
        Health {
            problems: self.0.health.problem().into_iter().collect(),
            containment: Some((c.name().to_string(), c.why().to_string())),
        }
    }
}

/// The status page's token file, read once at start so that a file that cannot be used
/// stops the start rather than every request (it is read again at each request: a new token
/// needs no restart).
pub(super) fn check_token(cfg: &Config) -> Result<(), String> {
    match &cfg.settings.status_page.token_file {
        Some(file) if cfg.settings.status_page.enabled => {
            let token = crate::config::Secret::File(file.clone()).read("status_page_token")?;
            match token.trim().is_empty() {
                true => Err(format!("status_page_token_file {}: empty", file.display())),
                false => Ok(()),
            }
        }
        _ => Ok(()),
    }
}
