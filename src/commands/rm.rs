//! `burrow rm`: remove containers.

use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill and remove running containers
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
                eprintln!("burrow: {e}");
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
                let state = if running { "running" } else { "restarting" };
                eprintln!(
                    "burrow: cannot remove container {key}: container is {state}: stop the \
                     container before removing or force remove"
                );
                failed = true;
                continue;
            }
            let mut r = record.clone();
            let seen = if running { r.pid } else { 0 };
            let _ = containers.request_stop(&mut r, seen);
            if running {
                if let Err(e) =
                    super::lifecycle::signal_container(&r, nix::sys::signal::Signal::SIGKILL)
                {
                    eprintln!("burrow: {e:#}");
                    failed = true;
                    continue;
                }
                super::lifecycle::wait_exit(&r, Duration::from_secs(30));
            }
            containers.wait_unlocked(&r.id);
        }
        to_remove.push((key.clone(), record));
    }
    if !to_remove.is_empty() {
        // Upper directories hold files of the container's ids: removing them needs the namespace.
        crate::userns::enter_current()?;
    }
    for (key, record) in to_remove {
        // A monitor may have removed an auto-remove container already.
        match containers.remove(&record) {
            Ok(()) => {
                if args.volumes {
                    super::volume::remove_anonymous(global, &record.mounts);
                }
                println!("{key}");
            }
            Err(e) => {
                eprintln!("burrow: {e}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}
