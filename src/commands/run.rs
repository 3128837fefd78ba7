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
    let containers = super::open_containers(global)?;
    if args.detach {
        if let Err(e) = super::monitor::spawn(global, &record.id) {
            // The monitor has exited (it reports failure last); as docker, an --rm container
            // that could not start goes. Its upper directory may hold files of the container's
            // ids by now: removing them needs the namespace, if it can be entered.
            if record.auto_remove {
                let _ = crate::userns::enter_current();
                lifecycle::remove_quietly(global, &containers, &record.id);
            }
            return Err(e);
        }
        outln!("{}", record.id);
        return Ok(0);
    }
    let entered = lifecycle::enter_userns_for(&containers, &record)
        .and_then(|mapping| Ok((mapping, containers.lock_running(&record.id)?)));
    let (mapping, _lock) = match entered {
        Ok(entered) => entered,
        Err(e) => {
            // As docker: a container that could not start stays (created) unless it was to be
            // removed anyway. Nothing in it belongs to a subordinate id yet, so this works
            // inside or outside the user namespace.
            if record.auto_remove {
                lifecycle::remove_quietly(global, &containers, &record.id);
            }
            return Err(e);
        }
    };
    lifecycle::run_foreground(global, &containers, &record, &mapping)
}
