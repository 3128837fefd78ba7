//! `burrow stop`, `burrow kill` and `burrow restart`.

use super::lifecycle;
use crate::cli::GlobalArgs;
use crate::containers::{ContainerStore, Status};
use crate::exit::refused;

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout", value_name = "SECONDS")]
    pub time: Option<u32>,
    /// Containers to stop
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal to send
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Containers to signal
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `op` for each named container, printing the name on success and the error otherwise,
/// as docker does for commands that take several containers.
pub fn for_each(
    containers: &ContainerStore,
    keys: &[String],
    mut op: impl FnMut(&mut crate::containers::ContainerRecord) -> anyhow::Result<()>,
) -> u8 {
    let mut failed = false;
    for key in keys {
        match containers
            .find(key)
            .map_err(anyhow::Error::from)
            .and_then(|mut r| op(&mut r))
        {
            Ok(()) => outln!("{key}"),
            Err(e) => {
                errln!("burrow: {e:#}");
                failed = true;
            }
        }
    }
    u8::from(failed)
}

pub fn stop(global: &GlobalArgs, args: StopArgs) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    Ok(for_each(&containers, &args.containers, |r| {
        lifecycle::stop_container(&containers, r, args.time)
    }))
}

pub fn kill(global: &GlobalArgs, args: KillArgs) -> anyhow::Result<u8> {
    let sig = lifecycle::parse_signal(&args.signal)?;
    let containers = super::open_containers(global)?;
    Ok(for_each(&containers, &args.containers, |r| {
        if r.status == Status::Restarting {
            // No process to signal: end the restarts, as docker does, and wait for the
            // monitor to record the container exited.
            containers.request_stop(r, 0)?;
            lifecycle::wait_released(&containers, &r.id);
            return Ok(());
        }
        if !r.status.is_running() {
            return Err(refused(format!(
                "cannot kill container {}: container {} is not running",
                r.name, r.name
            )));
        }
        containers.request_stop(r, r.pid)?;
        lifecycle::signal_container(r, sig)?;
        if r.status == Status::Paused {
            // As docker: the signal is delivered once the container runs again.
            super::pause::thaw(&containers, r)?;
        }
        Ok(())
    }))
}

pub fn restart(global: &GlobalArgs, args: StopArgs) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    Ok(for_each(&containers, &args.containers, |r| {
        lifecycle::stop_container(&containers, r, args.time)?;
        super::monitor::spawn(global, &r.id)
    }))
}
