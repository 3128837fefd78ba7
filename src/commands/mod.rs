//! One module per command; each has clap `Args` and `run(global, args) -> exit code`.

pub mod attach;
pub mod commit;
pub mod container;
pub mod container_fs;
pub mod cp;
pub mod create;
pub mod create_args;
pub mod diff;
pub mod exec;
pub mod export;
pub mod format;
pub mod history;
pub mod image;
pub mod image_size;
pub mod images;
pub mod import;
pub mod info;
pub mod inspect;
pub mod lifecycle;
pub mod load;
pub mod login;
pub mod logout;
pub mod logs;
pub mod monitor;
pub mod mount_args;
pub mod network;
pub mod network_args;
pub mod network_connect;
pub mod network_infra;
pub mod pause;
pub mod port;
pub mod ps;
pub mod pull;
pub mod push;
pub mod reexec;
pub mod rename;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod search;
pub mod start;
pub mod stats;
pub mod stop;
pub mod storage_driver;
pub mod system;
pub mod tag;
pub mod top;
pub mod unshare;
pub mod untag;
pub mod volume;
pub mod wait;

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
