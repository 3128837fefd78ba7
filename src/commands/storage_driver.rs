//! `--storage-driver`: which filesystem builds a container's root from its layers.

use crate::cli::{GlobalArgs, StorageDriverName};
use crate::runtime::rootfs::{KernelOverlay, RootfsDriver};

pub fn driver(global: &GlobalArgs) -> Box<dyn RootfsDriver> {
    match global.storage_driver {
        StorageDriverName::Overlay => Box::new(KernelOverlay),
    }
}
