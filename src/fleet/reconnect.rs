//! What follows a new connection of the renewal thread, before its first heartbeat
//! statement.

use postgres::Client;

use super::Fleet;

impl Fleet {
    /// Replays the outbox: what ended while the database was away goes in first, right
    /// after the renewal connection is (re)established, before the heartbeat statement goes
    /// out (a connection lost meanwhile fails that statement).
    pub(super) fn on_reconnect(&self, client: &mut Client) {
        self.replay_waiting(client);
    }
}
