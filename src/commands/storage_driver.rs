//! `--storage-driver`: which filesystem builds a container's root from its layers. The flag
//! (or `BURROW_STORAGE_DRIVER`) wins over `driver = "..."` in
//! `$XDG_CONFIG_HOME/burrow/storage.conf`; the default is the kernel overlay, with burrow's
//! FUSE overlay taking over where the kernel refuses to mount one; `vfs` (a plain copy of the
//! layers per container) is the last resort, chosen only by name.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::cli::{GlobalArgs, StorageDriverName};
use crate::fuse_overlay::FuseOverlay;
use crate::runtime::rootfs::{
    KernelOverlay, Layers, MountServer, Mounted, RootfsDriver, RootfsError,
};
use crate::runtime::vfs::Vfs;

#[derive(Debug, serde::Deserialize)]
struct StorageConf {
    driver: Option<StorageDriverName>,
}

fn config_path() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.config_dir().join("burrow/storage.conf"))
}

fn from_config(path: &Path) -> Option<StorageDriverName> {
    let text = std::fs::read_to_string(path).ok()?;
    match toml::from_str::<StorageConf>(&text) {
        Ok(conf) => conf.driver,
        Err(e) => {
            log::warn!("ignoring {}: {e}", path.display());
            None
        }
    }
}

/// The driver in effect for this invocation.
pub fn name(global: &GlobalArgs) -> StorageDriverName {
    global
        .storage_driver
        .or_else(|| config_path().as_deref().and_then(from_config))
        .unwrap_or(StorageDriverName::Overlay)
}

pub fn flag_value(name: StorageDriverName) -> &'static str {
    match name {
        StorageDriverName::Overlay => "overlay",
        StorageDriverName::FuseOverlay => "fuse-overlay",
        StorageDriverName::Vfs => "vfs",
    }
}

pub fn driver(global: &GlobalArgs) -> Box<dyn RootfsDriver> {
    match name(global) {
        StorageDriverName::Overlay => Box::new(KeepVfs(KernelThenFuse)),
        StorageDriverName::FuseOverlay => Box::new(KeepVfs(FuseOverlay)),
        StorageDriverName::Vfs => Box::new(Vfs),
    }
}

/// An overlay driver that leaves containers whose root vfs made to vfs (an overlay can take
/// over a vfs container's files only by copying them all back out of its upper dir).
struct KeepVfs<D>(D);

impl<D: RootfsDriver> RootfsDriver for KeepVfs<D> {
    fn mount(&self, layers: &Layers<'_>, target: &Path) -> Result<Mounted, RootfsError> {
        if crate::runtime::vfs::owns(layers) {
            log::info!("the container's root was made by the vfs driver; it stays with vfs");
            return Vfs.mount(layers, target);
        }
        self.0.mount(layers, target)
    }

    fn serve(&self, layers: &Layers<'_>, dev: OwnedFd) -> Result<MountServer, RootfsError> {
        self.0.serve(layers, dev)
    }
}

/// The kernel overlay, and the FUSE overlay where the kernel does not allow an overlay mount
/// in a user namespace (older kernels, some hardened or nested setups).
struct KernelThenFuse;

impl RootfsDriver for KernelThenFuse {
    fn mount(&self, layers: &Layers<'_>, target: &Path) -> Result<Mounted, RootfsError> {
        match KernelOverlay.mount(layers, target) {
            Err(RootfsError::Overlay { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::EPERM | libc::EINVAL | libc::ENODEV)
                ) =>
            {
                log::info!(
                    "the kernel refused an overlay mount ({source}); using burrow's FUSE overlay"
                );
                FuseOverlay.mount(layers, target)
            }
            other => other,
        }
    }

    fn serve(&self, layers: &Layers<'_>, dev: OwnedFd) -> Result<MountServer, RootfsError> {
        FuseOverlay.serve(layers, dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_names_the_driver() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.conf");
        std::fs::write(&path, "driver = \"fuse-overlay\"\n").unwrap();
        assert_eq!(from_config(&path), Some(StorageDriverName::FuseOverlay));
        std::fs::write(&path, "driver = \"vfs\"\n").unwrap();
        assert_eq!(from_config(&path), Some(StorageDriverName::Vfs));
        std::fs::write(&path, "driver = \"zfs\"\n").unwrap();
        assert_eq!(from_config(&path), None);
        assert_eq!(from_config(&dir.path().join("missing")), None);
    }
}
