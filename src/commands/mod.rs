//! One module per command; each has clap `Args` and `run(global, args) -> exit code`.

pub mod format;
pub mod images;
pub mod import;
pub mod load;
pub mod network_args;
pub mod login;
pub mod logout;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rm;
pub mod run;
pub mod search;
pub mod tag;
pub mod unshare;
pub mod untag;

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::containers::ContainerStore;
use crate::storage::Store;

pub fn open_store(global: &GlobalArgs) -> anyhow::Result<Store> {
    let root = crate::paths::storage_root(global);
    Store::open(&root).with_context(|| format!("cannot open the storage root {}", root.display()))
}

pub fn open_containers(global: &GlobalArgs) -> anyhow::Result<ContainerStore> {
    let root = crate::paths::storage_root(global);
    Ok(ContainerStore::open(&root)?)
}
