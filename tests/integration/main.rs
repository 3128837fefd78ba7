//! burrow's integration tests: one test binary (as ripgrep does) whose
//! modules exercise the docker-compatible CLI end to end.
//!
//! Every test gets its own directory and storage root (`--root`) and runs
//! burrow as an unprivileged user (see `harness`). Run with
//! `cargo test --test integration`.

#[macro_use]
pub mod harness;
mod closed_stdout;
mod container_fs;
mod cp_mounts;
mod docker_interop;
mod fixtures;
pub mod images;

mod fs_semantics;
mod fuse_overlay;
mod image_sizes;
mod images_cmds;
mod lifecycle;
mod load;
mod logs;
mod network;
mod registry;
mod registry_more;
mod run;
pub mod tty;
mod userns;
mod vfs;
mod volumes;
