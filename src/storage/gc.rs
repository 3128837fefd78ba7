//! Garbage collection: remove the blobs and unpacked layers that no image in `index.json`, and
//! no container (through its image id), references.
//!
//! Crash safety: callers first take images out of `index.json` (one atomic rename), then call
//! [`Store::gc`]. Whatever is left when a process dies at any point is unreferenced, so
//! harmless, and collected by the next collection: a blob is removed by one `unlink`, a layer
//! directory is first renamed to `overlay/.tmp-del-<chain>-<random>` (so that it is never half
//! present under its real name) and only then removed, and leftover `.tmp-del-*` directories
//! are removed by every collection.
//!
//! Concurrency: blobs are removed with `gc.lock` held exclusively (every process writing blobs
//! holds it shared until its images are recorded) and `storage.lock` held (`add_image` checks
//! its blobs under that lock); a layer is removed only with its lock held exclusively, which a
//! process using it (see `ensure_unpacked`) holds shared.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::time::{Duration, Instant};

use super::digest::{Digest, chain_ids, is_lower_hex};
use super::lock::{FileLock, LockKind};
use super::manifest::{ConfigDoc, ManifestDoc};
use super::{StorageError, Store, crash, safe_fs};

const DELETING_PREFIX: &str = ".tmp-del-";
/// How long collection waits for processes writing blobs before leaving blobs for next time.
const WRITERS_WAIT: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 10 });

/// What a collection removed.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    pub blobs: Vec<Digest>,
    /// Chain ids of the removed layer directories.
    pub layers: Vec<Digest>,
    /// Bytes of the removed blobs.
    pub reclaimed: u64,
    /// Blobs were not collected because other processes kept writing.
    pub blobs_skipped: bool,
}

/// Everything that must stay.
#[derive(Debug, Default)]
pub(crate) struct Reachable {
    pub blobs: HashSet<Digest>,
    pub chains: HashSet<Digest>,
}

impl Store {
    /// What the images in `index.json` and the image ids in `extra_roots` (the images of
    /// existing containers) reference. Read under `storage.lock` by collection.
    pub(crate) fn reachable(&self, extra_roots: &[Digest]) -> Result<Reachable, StorageError> {
        let index = self.index_doc()?;
        let mut out = Reachable::default();
        let mut configs: Vec<Digest> = extra_roots.to_vec();
        let mut pending: Vec<Digest> = index
            .manifests
            .iter()
            .filter_map(|d| d.digest().ok())
            .collect();
        while let Some(digest) = pending.pop() {
            if !out.blobs.insert(digest.clone()) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&digest) else {
                continue;
            };
            let Ok(doc) = ManifestDoc::parse(&bytes, &digest) else {
                continue;
            };
            for child in doc.manifests.iter().flatten() {
                pending.extend(child.digest().ok());
            }
            if let Some(config) = &doc.config
                && let Ok(d) = config.digest()
            {
                configs.push(d);
            }
            for layer in &doc.layers {
                if let Ok(d) = layer.digest() {
                    out.blobs.insert(d);
                }
            }
        }
        for config in configs {
            out.blobs.insert(config.clone());
            let Ok(bytes) = self.read_blob(&config) else {
                continue;
            };
            if let Ok(diff_ids) =
                ConfigDoc::parse(&bytes, &config).and_then(|c| c.diff_ids(&config))
            {
                out.chains.extend(chain_ids(&diff_ids));
            }
        }
        Ok(out)
    }

    /// Remove every blob and layer directory nothing references. `extra_roots` are the image
    /// ids of existing containers: their config and layers stay even when the image is gone.
    pub fn gc(&self, extra_roots: &[Digest]) -> Result<GcReport, StorageError> {
        let mut report = GcReport::default();
        let writers = self.wait_for_writers()?;
        let reachable = {
            let _index = self.lock_index()?;
            let reachable = self.reachable(extra_roots)?;
            match &writers {
                Some(_) => self.remove_blobs(&reachable, &mut report)?,
                None => {
                    log::info!(
                        "other burrow processes are writing images: blobs are left for later"
                    );
                    report.blobs_skipped = true;
                }
            }
            reachable
        };
        drop(writers);
        crash::point("gc-after-blobs");
        self.remove_layers(&reachable, &mut report)?;
        self.remove_deleting_leftovers();
        Ok(report)
    }

    fn wait_for_writers(&self) -> Result<Option<FileLock>, StorageError> {
        let start = Instant::now();
        loop {
            if let Some(lock) = FileLock::try_acquire(&self.gc_lock_path(), LockKind::Exclusive)? {
                return Ok(Some(lock));
            }
            if start.elapsed() > WRITERS_WAIT {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn remove_blobs(
        &self,
        reachable: &Reachable,
        report: &mut GcReport,
    ) -> Result<(), StorageError> {
        let dir = self.blobs_dir();
        let entries = fs::read_dir(&dir).map_err(|e| StorageError::io(&dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(digest) = Digest::from_sha256_hex(&name) else {
                continue;
            };
            if reachable.blobs.contains(&digest) {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    log::debug!("removed blob {digest}");
                    report.reclaimed += size;
                    report.blobs.push(digest);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(entry.path(), e)),
            }
        }
        Ok(())
    }

    fn remove_layers(
        &self,
        reachable: &Reachable,
        report: &mut GcReport,
    ) -> Result<(), StorageError> {
        let overlay = self.overlay_dir();
        let entries = fs::read_dir(&overlay).map_err(|e| StorageError::io(&overlay, e))?;
        let mut candidates: Vec<Digest> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let hex = name.strip_suffix(".lock").unwrap_or(&name);
                (hex.len() == 64 && is_lower_hex(hex))
                    .then(|| Digest::from_sha256_hex(hex).ok())
                    .flatten()
            })
            .filter(|d| !reachable.chains.contains(d))
            .collect();
        candidates.sort();
        candidates.dedup();
        for chain in candidates {
            let lock_path = self.layer_lock_path(&chain);
            // Held by someone: being unpacked, or in use by a container being set up.
            let Some(lock) = FileLock::try_acquire(&lock_path, LockKind::Exclusive)? else {
                log::debug!("layer {chain} is in use: kept");
                continue;
            };
            let dir = overlay.join(chain.hex());
            let doomed = overlay.join(format!(
                "{DELETING_PREFIX}{}-{:016x}",
                chain.hex(),
                rand::random::<u64>()
            ));
            let renamed = match fs::rename(&dir, &doomed) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(StorageError::io(&dir, e)),
            };
            crash::point("gc-after-rename");
            lock.remove_file(&lock_path);
            if renamed {
                if let Err(e) = safe_fs::remove_tree(&doomed) {
                    log::warn!("cannot remove {}: {e}", doomed.display());
                }
                log::debug!("removed layer {chain}");
                report.layers.push(chain);
            }
        }
        Ok(())
    }

    /// Layer directories a killed collection renamed but did not finish removing.
    fn remove_deleting_leftovers(&self) {
        let overlay = self.overlay_dir();
        let Ok(entries) = fs::read_dir(&overlay) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(DELETING_PREFIX)
            {
                let path = entry.path();
                log::debug!("removing leftover {}", path.display());
                if let Err(e) = safe_fs::remove_tree(&path) {
                    log::warn!("cannot remove {}: {e}", path.display());
                }
            }
        }
    }

    /// Layer directories and their total count, for `system df` and tests.
    pub fn unpacked_layers(&self) -> Vec<Digest> {
        let Ok(entries) = fs::read_dir(self.overlay_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<Digest> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| Digest::from_sha256_hex(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort();
        out
    }

    /// Every blob digest in the store.
    pub fn all_blobs(&self) -> Vec<Digest> {
        let Ok(entries) = fs::read_dir(self.blobs_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<Digest> = entries
            .flatten()
            .filter_map(|e| Digest::from_sha256_hex(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::UnpackOptions;
    use crate::storage::testutil::{TarBuilder, add_image};

    const OPTS: UnpackOptions = UnpackOptions {
        ignore_chown_errors: true,
    };

    fn layer(name: &str, content: &[u8]) -> Vec<u8> {
        TarBuilder::new().file(name, content, 0o644).finish()
    }

    #[test]
    fn shared_layers_stay_until_the_last_image_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let base = layer("base", b"shared");
        let a = add_image(&store, &[base.clone(), layer("a", b"a")], "a", &["a"]);
        let b = add_image(&store, &[base.clone(), layer("b", b"b")], "b", &["b"]);
        store.ensure_unpacked(&a, OPTS).unwrap();
        store.ensure_unpacked(&b, OPTS).unwrap();
        store.release_layers();
        store.finish_writes();
        let blobs_before = store.all_blobs().len();
        // 2 manifests + 2 configs + 3 distinct layers.
        assert_eq!(blobs_before, 7);
        assert_eq!(store.unpacked_layers().len(), 3);

        store
            .remove_manifests(std::slice::from_ref(&a.manifest_digest))
            .unwrap();
        let report = store.gc(&[]).unwrap();
        assert_eq!(report.blobs.len(), 3, "{report:?}");
        assert_eq!(report.layers, [chain_ids(&a.diff_ids)[1].clone()]);
        assert!(store.has_blob(&b.id));
        let dirs = store.ensure_unpacked(&b, OPTS).unwrap();
        assert_eq!(fs::read(dirs[0].join("base")).unwrap(), b"shared");
        assert_eq!(
            store
                .layers_unpacked
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        store.release_layers();

        // Nothing more to collect while b is there; then everything goes.
        assert!(store.gc(&[]).unwrap().blobs.is_empty());
        store
            .remove_manifests(std::slice::from_ref(&b.manifest_digest))
            .unwrap();
        let report = store.gc(&[]).unwrap();
        assert_eq!(report.layers.len(), 2);
        assert!(store.all_blobs().is_empty());
        assert!(store.unpacked_layers().is_empty());
        let left: Vec<String> = fs::read_dir(store.overlay_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn container_images_are_roots() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = add_image(&store, &[layer("f", b"1"), layer("g", b"2")], "a", &["a"]);
        store.ensure_unpacked(&a, OPTS).unwrap();
        store.release_layers();
        store.finish_writes();
        store
            .remove_manifests(std::slice::from_ref(&a.manifest_digest))
            .unwrap();
        let report = store.gc(std::slice::from_ref(&a.id)).unwrap();
        // The manifest and the compressed layers go; config and unpacked layers stay.
        assert_eq!(report.blobs.len(), 3, "{report:?}");
        assert!(report.layers.is_empty());
        assert!(store.has_blob(&a.id));
        assert_eq!(store.unpacked_layers().len(), 2);
        store.gc(&[]).unwrap();
        assert!(store.unpacked_layers().is_empty());
        assert!(store.all_blobs().is_empty());
    }

    #[test]
    fn layers_in_use_and_blobs_being_written_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let user = Store::open(dir.path()).unwrap();
        let a = add_image(&user, &[layer("f", b"1")], "a", &["a"]);
        user.finish_writes();
        user.ensure_unpacked(&a, OPTS).unwrap();
        let collector = Store::open(dir.path()).unwrap();
        collector
            .remove_manifests(std::slice::from_ref(&a.manifest_digest))
            .unwrap();
        let report = collector.gc(&[]).unwrap();
        assert!(report.layers.is_empty());
        assert_eq!(user.unpacked_layers().len(), 1);
        user.release_layers();
        assert_eq!(collector.gc(&[]).unwrap().layers.len(), 1);

        // A blob written but not yet recorded in an image.
        let writer = Store::open(dir.path()).unwrap();
        let pending = writer.put_blob(b"not yet an image").unwrap();
        let start = Instant::now();
        let report = collector.gc(&[]).unwrap();
        assert!(report.blobs_skipped);
        assert!(start.elapsed() >= WRITERS_WAIT);
        assert!(writer.has_blob(&pending));
        writer.finish_writes();
        assert_eq!(collector.gc(&[]).unwrap().blobs, [pending]);
    }

    #[test]
    fn leftovers_of_a_killed_collection_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let doomed = store.overlay_dir().join(format!("{DELETING_PREFIX}abc-0"));
        fs::create_dir_all(doomed.join("diff/ro/x")).unwrap();
        fs::set_permissions(
            doomed.join("diff/ro"),
            std::os::unix::fs::PermissionsExt::from_mode(0o555),
        )
        .unwrap();
        let orphan_lock = store.overlay_dir().join(format!("{}.lock", "a".repeat(64)));
        fs::write(&orphan_lock, b"").unwrap();
        store.gc(&[]).unwrap();
        assert!(!doomed.exists());
        assert!(!orphan_lock.exists());
    }

    #[test]
    fn reachability_follows_nested_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = add_image(&store, &[layer("f", b"1")], "a", &["a"]);
        let r = store.reachable(&[]).unwrap();
        assert!(r.blobs.contains(&a.manifest_digest));
        assert!(r.blobs.contains(&a.id));
        assert_eq!(r.blobs.len(), 3);
        assert_eq!(r.chains.len(), 1);
    }
}
