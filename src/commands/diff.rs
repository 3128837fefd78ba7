//! `burrow diff`: files added (A), changed (C) and deleted (D) in a container.

use crate::cli::GlobalArgs;
use crate::storage::layer_tar::{Change, changes};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub container: String,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let record = containers.find(&args.container)?;
    let mapping = crate::userns::enter_current()?;
    let lower = super::container_fs::lower_dirs(global, &record, mapping.kind)?;
    let upper = super::container_fs::upper_dir(&containers, &record);
    if !upper.exists() {
        return Ok(0);
    }
    for c in changes(&upper, &lower)? {
        match c {
            Change::Added(p) => outln!("A {p}"),
            Change::Changed(p) => outln!("C {p}"),
            Change::Deleted(p) => outln!("D {p}"),
        }
    }
    Ok(0)
}
