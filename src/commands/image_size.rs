//! Image sizes as docker shows them: unpacked, not compressed. A layer's size is its
//! unpacked directory's (see `storage::diff_size`), an image's the sum over its layers; the
//! config and manifest do not count.

use std::collections::HashMap;
use std::io;
use std::sync::OnceLock;

use crate::storage::digest::chain_ids;
use crate::storage::{Digest, ImageRecord, StorageError, Store, UnpackOptions};
use crate::userns::MappingKind;

/// Unpacked size of the layers of some images, by chain id.
#[derive(Debug, Default)]
pub struct LayerSizes {
    by_chain: HashMap<Digest, u64>,
}

impl LayerSizes {
    /// The sizes of every layer of `images`. Layers an older burrow unpacked have no record
    /// yet: they are measured once (inside burrow's user namespace when a directory of theirs
    /// is closed to us), and layers never unpacked (committed by an older burrow and never
    /// run) are unpacked, as docker keeps every layer unpacked.
    pub fn of(store: &Store, images: &[ImageRecord]) -> anyhow::Result<LayerSizes> {
        let mut sizes = LayerSizes::default();
        let mut unmeasured: Vec<(Digest, &ImageRecord)> = Vec::new();
        for image in images {
            for chain in chain_ids(&image.diff_ids) {
                if sizes.by_chain.contains_key(&chain)
                    || unmeasured.iter().any(|(c, _)| *c == chain)
                {
                    continue;
                }
                match store.recorded_diff_size(&chain)? {
                    Some(size) => {
                        sizes.by_chain.insert(chain, size);
                    }
                    None => unmeasured.push((chain, image)),
                }
            }
        }
        let mut left = Vec::new();
        for (chain, image) in unmeasured {
            match store.measure_diff_size(&chain) {
                Ok(Some(size)) => {
                    sizes.by_chain.insert(chain, size);
                }
                Ok(None) => left.push((chain, image)),
                Err(StorageError::Io { source, .. })
                    if source.kind() == io::ErrorKind::PermissionDenied =>
                {
                    left.push((chain, image))
                }
                Err(e) => return Err(e.into()),
            }
        }
        if left.is_empty() {
            return Ok(sizes);
        }
        let opts = match enter_userns() {
            Ok(opts) => opts,
            Err(e) => {
                log::warn!("cannot measure {} unpacked layers: {e:#}", left.len());
                return Ok(sizes);
            }
        };
        for (chain, image) in left {
            let size = match store.measure_diff_size(&chain)? {
                Some(size) => size,
                None => {
                    if let Err(e) = store.ensure_unpacked(image, opts) {
                        log::warn!("cannot unpack the layers of image {}: {e}", image.id);
                    }
                    store.release_layers();
                    store.measure_diff_size(&chain)?.unwrap_or(0)
                }
            };
            sizes.by_chain.insert(chain, size);
        }
        Ok(sizes)
    }

    /// Chain id and unpacked size of each layer of `image`, lowest first.
    pub fn layers(&self, image: &ImageRecord) -> Vec<(Digest, u64)> {
        chain_ids(&image.diff_ids)
            .into_iter()
            .map(|chain| {
                let size = self.by_chain.get(&chain).copied().unwrap_or(0);
                (chain, size)
            })
            .collect()
    }

    /// docker's image `Size`: the sum over its layers.
    pub fn image(&self, image: &ImageRecord) -> u64 {
        self.layers(image).iter().map(|(_, size)| size).sum()
    }
}

/// Enter burrow's user namespace (once per process), where every layer file is readable.
fn enter_userns() -> anyhow::Result<UnpackOptions> {
    static OPTS: OnceLock<UnpackOptions> = OnceLock::new();
    if let Some(opts) = OPTS.get() {
        return Ok(*opts);
    }
    let mapping = crate::userns::enter_current()?;
    let opts = UnpackOptions {
        ignore_chown_errors: mapping.kind == MappingKind::SingleId,
    };
    Ok(*OPTS.get_or_init(|| opts))
}
