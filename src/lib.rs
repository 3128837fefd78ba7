//! burrow: rootless, daemonless containers with a docker-compatible command line.

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
