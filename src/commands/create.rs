//! `burrow create`: make a container without starting it.

use super::create_args::CreateArgs;
use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub create: CreateArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let (record, _) = super::lifecycle::create(global, &args.create)?;
    outln!("{}", record.id);
    Ok(0)
}
