//! `burrow run`: create a container and start it, in the foreground or detached (`-d`).

use super::create_args::CreateArgs;
use super::lifecycle;
use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// Run the container in the background and print its id
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let (record, _) = lifecycle::create(global, &args.create)?;
    if args.detach {
        super::monitor::spawn(global, &record.id)?;
        println!("{}", record.id);
        return Ok(0);
    }
    let containers = super::open_containers(global)?;
    let mapping = lifecycle::enter_userns_for(&containers, &record)?;
    let _lock = containers.lock_running(&record.id)?;
    lifecycle::run_foreground(global, &containers, &record, &mapping)
}
