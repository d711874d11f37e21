//! `cronwarden test-alert CHANNEL`.

use std::path::Path;

use super::load_or_fail;
use crate::exit::{self, CmdResult, Failure};

/// `test-alert CHANNEL`: one message through the channel, now.
pub(super) fn test_alert(path: &Path, channel: &str) -> CmdResult {
    let cfg = load_or_fail(path)?;
    crate::alert::test(&cfg, channel)
        .map_err(|e| Failure::new(exit::JOB_FAILED, format!("channel {channel:?}: {e}")))?;
    super::print::errln(format!("test alert sent through {channel:?}"));
    Ok(exit::OK)
}
