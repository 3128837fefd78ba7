//! `burrow start`: start created or stopped containers, detached or attached (`-a`).

use super::lifecycle::{self, RecordingHooks};
use crate::cli::GlobalArgs;
use crate::containers::Status;
use crate::runtime::{self, RuntimeError, Stdio};

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
        if matches!(record.status, Status::Running | Status::Paused) {
            anyhow::bail!(
                "container {} is already running: use 'burrow attach'",
                record.name
            );
        }
        let mapping = lifecycle::enter_userns_for(&containers, &record)?;
        let Some(_lock) = containers.try_lock_running(&record.id)? else {
            anyhow::bail!("container {} is already running", record.name);
        };
        let prepared = lifecycle::prepare(global, &containers, &record, &mapping, Stdio::Inherit)?;
        let mut hooks = RecordingHooks::new(&containers, record.clone(), &prepared.network);
        let result = runtime::run(&prepared.spec, &mut hooks);
        drop(hooks.attachment.take());
        let code = match &result {
            Ok(c) => *c,
            Err(RuntimeError::Start(e)) => e.code,
            Err(_) => crate::exit::BURROW_ERROR,
        };
        hooks.record_exit(code);
        if record.auto_remove {
            lifecycle::remove_quietly(global, &containers, &record.id);
        }
        return match result {
            Ok(c) => Ok(c),
            Err(RuntimeError::Start(e)) => Err(e.into()),
            Err(e) => Err(e.into()),
        };
    }
    let mut failed = false;
    for key in &args.containers {
        let result = containers
            .find(key)
            .map_err(anyhow::Error::from)
            .and_then(|record| {
                if matches!(record.status, Status::Running | Status::Paused) {
                    return Ok(());
                }
                super::monitor::spawn(global, &record.id)
            });
        match result {
            Ok(()) => println!("{key}"),
            Err(e) => {
                eprintln!("burrow: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
