//! `burrow rename`.

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub container: String,
    pub new_name: String,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let mut record = containers.find(&args.container)?;
    containers.rename(&mut record, &args.new_name)?;
    Ok(0)
}
