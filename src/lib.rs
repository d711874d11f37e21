//! cronwarden: a cron replacement. The data flows
//! `config -> schedule -> run attempt -> retry/verify -> record -> alert`.
pub mod schedule;
pub mod units;
