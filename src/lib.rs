//! cronwarden: a cron replacement. The data flows
//! `config -> schedule -> run attempt -> retry/verify -> record -> alert`.
pub mod cli;
pub mod cmd;
pub mod config;
pub mod diag;
pub mod paths;
pub mod schedule;
pub mod template;
pub mod units;
