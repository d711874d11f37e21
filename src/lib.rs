//! cronwarden: a cron replacement. The data flows
//! `config -> schedule -> run attempt -> retry/verify -> record -> alert`.
pub mod alert;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod control;
pub mod daemon;
pub mod diag;
pub mod execute;
pub mod fleet;
pub mod import;
pub mod lock;
pub mod log;
pub mod metrics;
pub mod output;
pub mod paths;
pub mod pipeline;
pub mod policy;
pub mod record;
pub mod runner;
pub mod schedule;
pub mod scheduler;
mod sys;
pub mod template;
pub mod units;
