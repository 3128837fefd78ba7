//! `burrow start`: start created or stopped containers, detached or attached (`-a`).

use super::lifecycle;
use crate::cli::GlobalArgs;
use crate::containers::Status;
use crate::exit::refused;

/// docker's answer to starting a paused container.
const PAUSED: &str = "cannot start a paused container, try unpause instead";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach the container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    /// Containers to start
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        }
        let record = containers.find(&args.containers[0])?;
        if record.status == Status::Paused {
            return Err(refused(PAUSED));
        }
        if record.status.is_running() {
            return Err(refused(format!(
                "container {} is already running: use 'burrow attach'",
                record.name
            )));
        }
        if record.status == Status::Restarting {
            return Err(refused(format!(
                "container {} is restarting: stop it first, or use 'burrow attach' once it runs",
                record.name
            )));
        }
        let mapping = lifecycle::enter_userns_for(&containers, &record)?;
        let Some(_lock) = containers.try_lock_running(&record.id)? else {
            anyhow::bail!("container {} is already running", record.name);
        };
        return lifecycle::run_foreground(global, &containers, &record, &mapping);
    }
    let mut failed = false;
    for key in &args.containers {
        let result = containers
            .find(key)
            .map_err(anyhow::Error::from)
            .and_then(|record| {
                if record.status == Status::Paused {
                    return Err(refused(PAUSED));
                }
                // As docker: starting a running (or restarting) container does nothing.
                if record.status.is_active() {
                    return Ok(());
                }
                super::monitor::spawn(global, &record.id)
            });
        match result {
            Ok(()) => outln!("{key}"),
            Err(e) => {
                errln!("burrow: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
