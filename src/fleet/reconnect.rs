//! What follows a new connection of the renewal thread, before its first heartbeat
//! statement.

use postgres::Client;

use super::Fleet;

impl Fleet {
    /// Replays the local outbox (filled by the lead's part): called right after the
    /// renewal connection is (re)established, before the heartbeat statement goes out.
    pub(super) fn on_reconnect(&self, _client: &mut Client) {}
}
