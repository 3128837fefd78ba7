//! `burrow run`: create a container and start it, in the foreground or detached (`-d`).

use super::create_args::CreateArgs;
use super::lifecycle::{self, RecordingHooks};
use crate::cli::GlobalArgs;
use crate::runtime::{self, RuntimeError, Stdio};

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
    let result = (|| -> anyhow::Result<u8> {
        let prepared = lifecycle::prepare(global, &containers, &record, &mapping, Stdio::Inherit)?;
        let _lock = containers.lock_running(&record.id)?;
        let mut hooks = RecordingHooks::new(&containers, record.clone(), &prepared.network);
        let result = runtime::run(&prepared.spec, &mut hooks);
        drop(hooks.attachment.take());
        let code = match &result {
            Ok(code) => *code,
            Err(RuntimeError::Start(e)) => e.code,
            Err(_) => crate::exit::BURROW_ERROR,
        };
        hooks.record_exit(code);
        match result {
            Ok(code) => Ok(code),
            // Carries docker's exit code (125/126/127) for the error printed by main.
            Err(RuntimeError::Start(e)) => Err(e.into()),
            Err(e) => Err(e.into()),
        }
    })();
    if args.create.rm {
        lifecycle::remove_quietly(global, &containers, &record.id);
    }
    result
}
