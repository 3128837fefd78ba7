//! `burrow rm`: remove containers.

use crate::cli::GlobalArgs;
use crate::containers::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill and remove running containers
    #[arg(short, long)]
    pub force: bool,
    /// Containers to remove (names or ids)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    // The upper directories hold files of the container's ids: removing them needs the namespace.
    crate::userns::enter_current()?;
    let mut failed = false;
    for key in &args.containers {
        let result = containers.find(key).map_err(anyhow::Error::from).and_then(|record| {
            if record.status == Status::Running {
                if !args.force {
                    anyhow::bail!(
                        "cannot remove container {key}: container is running: stop the container \
                         before removing or force remove"
                    );
                }
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(record.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            containers.remove(&record)?;
            Ok(())
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
