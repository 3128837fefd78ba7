//! `burrow rm`: remove containers.

use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill and remove running, paused or restarting containers (a monitor that does not let
    /// go within 10 s, e.g. one stopped by SIGSTOP, is killed)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes of the containers
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove all containers
    #[arg(short, long)]
    pub all: bool,
    /// Containers to remove (names or ids)
    #[arg(required_unless_present = "all")]
    pub containers: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let keys: Vec<String> = if args.all {
        containers.list()?.into_iter().map(|r| r.id).collect()
    } else {
        args.containers.clone()
    };
    let mut failed = false;
    let mut to_remove: Vec<(String, ContainerRecord)> = Vec::new();
    for key in &keys {
        let record = match containers.find(key) {
            Ok(r) => r,
            Err(e) => {
                errln!("burrow: {e}");
                failed = true;
                continue;
            }
        };
        let running = record.status.is_running();
        // A monitor between two runs of a restart policy still owns the container (also in
        // the moments before it records the state it leaves the container in).
        let restarting =
            !running && (record.status == Status::Restarting || containers.is_locked(&record.id));
        if running || restarting {
            if !args.force {
                let why = match record.status {
                    Status::Paused => "container is paused and must be unpaused first",
                    Status::Running => {
                        "container is running: stop the container before removing or force remove"
                    }
                    _ => {
                        "container is restarting: stop the container before removing or force \
                         remove"
                    }
                };
                errln!("burrow: cannot remove container {key}: {why}");
                failed = true;
                continue;
            }
            let mut r = record.clone();
            let seen = if running { r.pid } else { 0 };
            let _ = containers.request_stop(&mut r, seen);
            if running {
                // SIGKILL ends a paused (stopped) container as well. If it cannot be sent,
                // the container still dies with its monitor, which the wait below kills.
                match super::lifecycle::signal_container(&r, libc::SIGKILL) {
                    Ok(()) => {
                        super::lifecycle::wait_exit(&r, Duration::from_secs(30));
                    }
                    Err(e) => log::warn!("{e:#}"),
                }
            }
            // Bounded: a stuck monitor is killed, and the container goes anyway.
            super::lifecycle::wait_released(&containers, &r.id);
        }
        to_remove.push((key.clone(), record));
    }
    if !to_remove.is_empty() {
        // Upper directories hold files of the container's ids: removing them needs the namespace.
        crate::userns::enter_current()?;
        if containers.has_leftovers()
            && let Err(e) = containers.sweep_leftovers()
        {
            log::warn!("{e}");
        }
    }
    for (key, record) in to_remove {
        // A monitor may have removed an auto-remove container already.
        match containers.remove(&record) {
            Ok(()) => {
                if args.volumes {
                    super::volume::remove_anonymous(global, &record.mounts);
                }
                outln!("{key}");
            }
            Err(e) => {
                errln!("burrow: {e}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}
