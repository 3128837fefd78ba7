//! `--storage-driver`: which filesystem builds a container's root from its layers. The flag
//! (or `BURROW_STORAGE_DRIVER`) wins over `driver = "..."` in
//! `$XDG_CONFIG_HOME/burrow/storage.conf`; the default is the kernel overlay, with burrow's
//! FUSE overlay taking over where the kernel refuses to mount one, and `vfs` (a plain copy of
//! the layers per container) where FUSE is not available either (`[storage.options.overlay]
//! fallback` changes that).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::cli::{GlobalArgs, StorageDriverName};
use crate::fuse_overlay::FuseOverlay;
use crate::runtime::rootfs::{
    KernelOverlay, Layers, MountServer, Mounted, RootfsDriver, RootfsError,
};
use crate::runtime::vfs::Vfs;

/// What `storage.conf` says. Podman's layout is accepted (`[storage] driver = ...`), and keys
/// burrow has no use for (podman's `runroot`, `graphroot`, ...) are reported, not fatal.
#[derive(Debug, Default, PartialEq)]
struct StorageConf {
    driver: Option<StorageDriverName>,
    fallback: Option<Fallback>,
}

/// `[storage.options.overlay] fallback`: what the `overlay` driver does where the kernel
/// refuses an overlay mount in a user namespace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fallback {
    /// burrow's FUSE overlay, and vfs where FUSE is not available either.
    #[default]
    FuseOverlay,
    /// Straight to vfs.
    Vfs,
    /// Fail: no silent copy of every image.
    None,
}

type Unknown = std::collections::BTreeMap<String, toml::Value>;

#[derive(serde::Deserialize)]
struct RawConf {
    driver: Option<StorageDriverName>,
    storage: Option<RawStorage>,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(serde::Deserialize)]
struct RawStorage {
    driver: Option<StorageDriverName>,
    options: Option<RawOptions>,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(serde::Deserialize)]
struct RawOptions {
    overlay: Option<RawOverlay>,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(serde::Deserialize)]
struct RawOverlay {
    fallback: Option<Fallback>,
    #[serde(flatten)]
    other: Unknown,
}

fn config_path() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.config_dir().join("burrow/storage.conf"))
}

fn warn_unknown(path: &Path, prefix: &str, keys: &Unknown) {
    for key in keys.keys() {
        log::warn!("{}: burrow ignores the key {prefix}{key}", path.display());
    }
}

fn parse_config(path: &Path) -> StorageConf {
    let Ok(text) = std::fs::read_to_string(path) else {
        return StorageConf::default();
    };
    let raw = match toml::from_str::<RawConf>(&text) {
        Ok(raw) => raw,
        Err(e) => {
            log::warn!("ignoring {}: {e}", path.display());
            return StorageConf::default();
        }
    };
    warn_unknown(path, "", &raw.other);
    let mut conf = StorageConf {
        driver: raw.driver,
        fallback: None,
    };
    if let Some(storage) = raw.storage {
        warn_unknown(path, "storage.", &storage.other);
        conf.driver = conf.driver.or(storage.driver);
        if let Some(options) = storage.options {
            warn_unknown(path, "storage.options.", &options.other);
            if let Some(overlay) = options.overlay {
                warn_unknown(path, "storage.options.overlay.", &overlay.other);
                conf.fallback = overlay.fallback;
            }
        }
    }
    conf
}

fn config() -> StorageConf {
    config_path().map(|p| parse_config(&p)).unwrap_or_default()
}

/// The driver in effect for this invocation.
pub fn name(global: &GlobalArgs) -> StorageDriverName {
    global
        .storage_driver
        .or_else(|| config().driver)
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
    let conf = config();
    let name = global
        .storage_driver
        .or(conf.driver)
        .unwrap_or(StorageDriverName::Overlay);
    match name {
        StorageDriverName::Overlay => Box::new(KeepVfs(KernelThenFuse {
            fallback: conf.fallback.unwrap_or_default(),
        })),
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

/// Test hooks, not for users: the kernel overlay mount fails with EPERM, and the FUSE overlay
/// as if `/dev/fuse` were missing, so that tests reach the fallbacks on a machine where both
/// work.
const TEST_KERNEL_EPERM: &str = "BURROW_TEST_KERNEL_OVERLAY_EPERM";
const TEST_NO_FUSE: &str = "BURROW_TEST_NO_DEV_FUSE";

fn test_hook(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// The kernel overlay; where the kernel does not allow an overlay mount in a user namespace
/// (older kernels, some hardened or nested setups), what `fallback` says: by default burrow's
/// FUSE overlay, and vfs, with a warning, where FUSE is not available either.
struct KernelThenFuse {
    fallback: Fallback,
}

impl RootfsDriver for KernelThenFuse {
    fn mount(&self, layers: &Layers<'_>, target: &Path) -> Result<Mounted, RootfsError> {
        let kernel = if test_hook(TEST_KERNEL_EPERM) {
            Err(RootfsError::Overlay {
                target: target.to_path_buf(),
                source: std::io::Error::from_raw_os_error(libc::EPERM),
            })
        } else {
            KernelOverlay.mount(layers, target)
        };
        match kernel {
            Err(RootfsError::Overlay { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::EPERM | libc::EINVAL | libc::ENODEV)
                ) =>
            {
                let refused = RootfsError::Overlay {
                    target: target.to_path_buf(),
                    source,
                };
                match self.fallback {
                    Fallback::FuseOverlay => {
                        log::info!("{refused}; using burrow's FUSE overlay");
                        fuse_then_vfs(layers, target)
                    }
                    Fallback::Vfs => {
                        log::warn!(
                            "{refused}; using the vfs storage driver ([storage.options.overlay] fallback)"
                        );
                        Vfs.mount(layers, target)
                    }
                    Fallback::None => Err(refused),
                }
            }
            other => other,
        }
    }

    fn serve(&self, layers: &Layers<'_>, dev: OwnedFd) -> Result<MountServer, RootfsError> {
        FuseOverlay.serve(layers, dev)
    }
}

fn fuse_then_vfs(layers: &Layers<'_>, target: &Path) -> Result<Mounted, RootfsError> {
    let fuse = if test_hook(TEST_NO_FUSE) {
        Err(RootfsError::Fuse {
            target: target.to_path_buf(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        })
    } else {
        FuseOverlay.mount(layers, target)
    };
    match fuse {
        Err(e @ RootfsError::Fuse { .. }) => {
            log::warn!(
                "{e}; using the vfs storage driver instead (a full copy of the image for this \
                 container, which stays with vfs)"
            );
            Vfs.mount(layers, target)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_names_the_driver() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.conf");
        let parse = |text: &str| {
            std::fs::write(&path, text).unwrap();
            parse_config(&path)
        };
        assert_eq!(
            parse("driver = \"fuse-overlay\"\n").driver,
            Some(StorageDriverName::FuseOverlay)
        );
        assert_eq!(
            parse("driver = \"vfs\"\n").driver,
            Some(StorageDriverName::Vfs)
        );
        assert_eq!(parse("driver = \"zfs\"\n"), StorageConf::default());
        assert_eq!(
            parse_config(&dir.path().join("missing")),
            StorageConf::default()
        );
    }

    #[test]
    fn podman_layout_and_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.conf");
        std::fs::write(
            &path,
            "[storage]\ndriver = \"overlay\"\nrunroot = \"/run/x\"\n\
             [storage.options.overlay]\nfallback = \"none\"\nmountopt = \"nodev\"\n",
        )
        .unwrap();
        assert_eq!(
            parse_config(&path),
            StorageConf {
                driver: Some(StorageDriverName::Overlay),
                fallback: Some(Fallback::None),
            }
        );
    }
}
