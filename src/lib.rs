//! burrow: rootless, daemonless containers with a docker-compatible command line.

// Output to stdout goes through `output` (`outln!`, `out!`), which ends burrow quietly when
// its reader has gone; `println!` would panic there.
#![cfg_attr(not(test), deny(clippy::print_stdout))]

// First: its printing macros (`outln!`, `out!`, `errln!`) are used by the modules below.
#[macro_use]
pub mod output;

pub mod cli;
pub mod commands;
pub mod containers;
pub mod exit;
pub mod fuse_overlay;
pub mod logging;
pub mod man;
pub mod netns;
pub mod paths;
pub mod reference;
pub mod registry;
pub mod runtime;
pub mod safe_open;
pub mod storage;
pub mod template;
pub mod units;
pub mod userns;
pub mod volumes;
