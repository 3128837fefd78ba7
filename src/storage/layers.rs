//! Unpacked layers, shared by every image and container that uses them:
//! `overlay/<chain-id-hex>/diff/`, created once under `overlay/<chain-id-hex>.lock`.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::digest::{Digest, chain_ids, is_lower_hex};
use super::lock::{FileLock, LockKind};
use super::manifest::ManifestDoc;
use super::safe_fs;
use super::unpack::unpack_layer;
use super::{ImageRecord, Store, StorageError, UnpackOptions};

const TMP_PREFIX: &str = ".tmp-";

impl Store {
    /// Directory of an unpacked layer, whether or not it exists yet.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.overlay_dir().join(chain_id.hex()).join("diff")
    }

    /// Unpack every layer of `image` that is not unpacked yet and return the layer
    /// directories, lowest first. Must be called inside burrow's user namespace.
    pub fn ensure_unpacked(
        &self,
        image: &ImageRecord,
        opts: UnpackOptions,
    ) -> Result<Vec<PathBuf>, StorageError> {
        let chains = chain_ids(&image.diff_ids);
        let dirs: Vec<PathBuf> = chains.iter().map(|c| self.layer_dir(c)).collect();
        if dirs.iter().all(|d| d.is_dir()) {
            return Ok(dirs);
        }
        let manifest_bytes = self.read_blob(&image.manifest_digest)?;
        let manifest = ManifestDoc::parse(&manifest_bytes, &image.manifest_digest)?;
        if manifest.layers.len() != image.diff_ids.len() {
            return Err(StorageError::InvalidImage(format!(
                "manifest {} lists {} layers but the image has {} diff ids",
                image.manifest_digest,
                manifest.layers.len(),
                image.diff_ids.len()
            )));
        }
        self.clean_stale_layer_temps();
        for (i, dir) in dirs.iter().enumerate() {
            if dir.is_dir() {
                continue;
            }
            let blob = manifest.layers[i].digest()?;
            self.unpack_once(&chains[i], &image.diff_ids[i], &blob, opts)?;
        }
        Ok(dirs)
    }

    fn unpack_once(
        &self,
        chain_id: &Digest,
        diff_id: &Digest,
        blob: &Digest,
        opts: UnpackOptions,
    ) -> Result<(), StorageError> {
        let overlay = self.overlay_dir();
        let lock_path = overlay.join(format!("{}.lock", chain_id.hex()));
        let _lock = FileLock::acquire(&lock_path, LockKind::Exclusive)?;
        let final_dir = overlay.join(chain_id.hex());
        if final_dir.join("diff").is_dir() {
            // Another process did it while we waited for the lock.
            return Ok(());
        }
        // With the lock held, any temp dir of this chain id is from a dead process.
        self.remove_layer_temps(chain_id.hex());
        if final_dir.exists() {
            safe_fs::remove_tree(&final_dir).map_err(|e| StorageError::io(&final_dir, e))?;
        }
        let tmp = overlay.join(format!(
            "{TMP_PREFIX}{}-{:016x}",
            chain_id.hex(),
            rand::random::<u64>()
        ));
        let mut builder = DirBuilder::new();
        builder.mode(0o700);
        builder.create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
        let diff = tmp.join("diff");
        let result = builder
            .mode(0o755)
            .create(&diff)
            .map_err(|e| StorageError::io(&diff, e))
            .and_then(|()| unpack_layer(self.open_blob(blob)?, &diff, diff_id, opts))
            .and_then(|()| fs::rename(&tmp, &final_dir).map_err(|e| StorageError::io(&final_dir, e)));
        if result.is_err()
            && let Err(e) = safe_fs::remove_tree(&tmp)
        {
            log::warn!("cannot remove {}: {e}", tmp.display());
        }
        result?;
        self.layers_unpacked.fetch_add(1, Ordering::Relaxed);
        log::debug!("unpacked layer {diff_id} into {}", final_dir.display());
        Ok(())
    }

    fn remove_layer_temps(&self, chain_hex: &str) {
        let overlay = self.overlay_dir();
        let Ok(entries) = fs::read_dir(&overlay) else { return };
        let prefix = format!("{TMP_PREFIX}{chain_hex}-");
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let path = entry.path();
                log::debug!("removing stale {}", path.display());
                if let Err(e) = safe_fs::remove_tree(&path) {
                    log::warn!("cannot remove stale {}: {e}", path.display());
                }
            }
        }
    }

    /// Temp dirs of layers nobody is unpacking (their lock is free) were left by a killed
    /// process.
    fn clean_stale_layer_temps(&self) {
        let overlay = self.overlay_dir();
        let Ok(entries) = fs::read_dir(&overlay) else { return };
        let mut chains: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let chain = name.strip_prefix(TMP_PREFIX)?.split('-').next()?;
                (chain.len() == 64 && is_lower_hex(chain)).then(|| chain.to_string())
            })
            .collect();
        chains.sort();
        chains.dedup();
        for chain in chains {
            let lock_path = overlay.join(format!("{chain}.lock"));
            if let Ok(Some(_lock)) = FileLock::try_acquire(&lock_path, LockKind::Exclusive) {
                self.remove_layer_temps(&chain);
            }
        }
    }
}
