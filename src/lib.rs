//! cronwarden: a cron replacement. One tick travels
//! `config -> scheduler -> daemon -> execute (coordination, attempts, verify) -> record -> alert`;
//! docs/architecture.md has the map, and `tests/architecture.rs` keeps the dependency rule.
//!
//! The public modules are what the binary, the tests and the fuzz targets use; the rest is
//! the crate's own.

// What the program prints goes through `cmd::print` (the commands) and `log` (the rest):
// `print!` and `eprintln!` panic when standard output or error is a closed pipe. (Tests may
// print.)
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

// The command layer.
pub mod cli;
pub mod cmd;
// The daemon.
mod daemon;
mod metrics;
mod page;
// The run path.
mod execute;
mod pipeline;
// Alerts.
mod alert;
// Coordination: local mode and fleet mode behind one interface.
pub mod control;
mod coord;
pub mod fleet;
mod lock;
// Process supervision.
mod contain;
mod output;
mod policy;
mod runner;
// Core.
pub mod config;
pub mod import;
mod log;
mod record;
pub mod schedule;
mod scheduler;
pub mod template;
// Leaf modules anyone may use.
pub mod diag;
mod exit;
mod files;
mod journal;
mod paths;
mod sync;
mod sys;
pub mod text;
mod tls;
mod units;
