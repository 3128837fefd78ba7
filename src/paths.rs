//! Where burrow keeps things: the storage root and the runtime directory.

use std::path::PathBuf;

use crate::cli::GlobalArgs;

/// The storage root: `--root`, else `$XDG_DATA_HOME/burrow` (`~/.local/share/burrow`).
pub fn storage_root(global: &GlobalArgs) -> PathBuf {
    if let Some(root) = &global.root {
        return root.clone();
    }
    match directories::BaseDirs::new() {
        Some(dirs) => dirs.data_dir().join("burrow"),
        None => PathBuf::from(".local/share/burrow"),
    }
}
