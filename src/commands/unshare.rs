//! `burrow unshare`: run a command as root in burrow's user namespace (as `podman unshare`),
//! e.g. to inspect or remove files that belong to a container's ids.

use std::os::unix::process::CommandExt;

use anyhow::Context;

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Command to run (default: $SHELL)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let root = crate::paths::storage_root(global);
    crate::userns::enter_current()?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("cannot create a mount namespace")?;
    let mut command = args.command;
    if command.is_empty() {
        command.push(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()));
    }
    let err = std::process::Command::new(&command[0])
        .args(&command[1..])
        .env("BURROW_STORAGE_ROOT", &root)
        .exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        crate::exit::NOT_FOUND
    } else {
        crate::exit::CANNOT_INVOKE
    };
    Err(crate::exit::ExitError::new(code, format!("cannot run {}: {err}", command[0])).into())
}
