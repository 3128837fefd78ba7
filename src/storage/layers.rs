//! Unpacked layers, shared by every image and container that uses them:
//! `overlay/<chain-id-hex>/diff/`, created once under `overlay/<chain-id-hex>.lock`.

use std::fs::{self, DirBuilder};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::diff_size;
use super::digest::{Digest, chain_ids, is_lower_hex};
use super::lock::{FileLock, LockKind};
use super::manifest::ManifestDoc;
use super::safe_fs;
use super::unpack::unpack_layer;
use super::{ImageRecord, StorageError, Store, UnpackOptions};

const TMP_PREFIX: &str = ".tmp-";

impl Store {
    /// Directory of an unpacked layer, whether or not it exists yet.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.overlay_dir().join(chain_id.hex()).join("diff")
    }

    /// Unpack every layer of `image` that is not unpacked yet and return the layer
    /// directories, lowest first. Must be called inside burrow's user namespace.
    ///
    /// The layers stay leased to this `Store` (their lock held shared) until it is dropped or
    /// [`Store::release_layers`] is called, so that garbage collection does not remove them
    /// while a container is being set up on them.
    pub fn ensure_unpacked(
        &self,
        image: &ImageRecord,
        opts: UnpackOptions,
    ) -> Result<Vec<PathBuf>, StorageError> {
        let chains = chain_ids(&image.diff_ids);
        let dirs: Vec<PathBuf> = chains.iter().map(|c| self.layer_dir(c)).collect();
        let mut manifest: Option<ManifestDoc> = None;
        let mut cleaned = false;
        for (i, chain) in chains.iter().enumerate() {
            let lease = self.unpack_chain(chain, &image.diff_ids[i], opts, &mut || {
                if manifest.is_none() {
                    manifest = Some(self.image_manifest(image)?);
                }
                if !cleaned {
                    self.clean_stale_layer_temps();
                    cleaned = true;
                }
                manifest.as_ref().expect("just set").layers[i].digest()
            })?;
            self.layer_leases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(lease);
        }
        Ok(dirs)
    }

    /// Unpack layer `index` of an image whose layers have `diff_ids`, from `blob`, unless it is
    /// unpacked already (the layers below it must be). Used by `pull` to unpack each layer as
    /// soon as it has arrived. Must be called inside burrow's user namespace.
    pub fn unpack_layer_at(
        &self,
        diff_ids: &[Digest],
        index: usize,
        blob: &Digest,
        opts: UnpackOptions,
    ) -> Result<PathBuf, StorageError> {
        let chain = chain_ids(&diff_ids[..=index])
            .pop()
            .expect("at least one layer");
        drop(self.unpack_chain(&chain, &diff_ids[index], opts, &mut || Ok(blob.clone()))?);
        Ok(self.layer_dir(&chain))
    }

    /// Make sure the layer `chain` is unpacked and return its lock held shared (a lease that
    /// keeps garbage collection away). `blob` names the layer's blob when it must be unpacked.
    fn unpack_chain(
        &self,
        chain: &Digest,
        diff_id: &Digest,
        opts: UnpackOptions,
        blob: &mut dyn FnMut() -> Result<Digest, StorageError>,
    ) -> Result<FileLock, StorageError> {
        let dir = self.layer_dir(chain);
        let mut attempts = 0u32;
        loop {
            let lease = FileLock::acquire(&self.layer_lock_path(chain), LockKind::Shared)?;
            if dir.is_dir() {
                return Ok(lease);
            }
            drop(lease);
            let blob = blob()?;
            if !self.unpack_once(chain, diff_id, &blob, opts)? {
                attempts += 1;
                if attempts > 6000 {
                    return Err(StorageError::Other(format!(
                        "layer {diff_id}: still locked by another process after 2 minutes"
                    )));
                }
                // Someone else holds the lock: wait for them, then look again.
                std::thread::sleep(std::time::Duration::from_millis(
                    5 + rand::random::<u64>() % 20,
                ));
            }
        }
    }

    pub(super) fn image_manifest(&self, image: &ImageRecord) -> Result<ManifestDoc, StorageError> {
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
        Ok(manifest)
    }

    pub(super) fn layer_lock_path(&self, chain_id: &Digest) -> PathBuf {
        self.overlay_dir().join(format!("{}.lock", chain_id.hex()))
    }

    /// Unpack the layer unless it is there. `false` when another process holds its lock
    /// (unpacking it, removing it, or about to use it): the caller waits and looks again.
    fn unpack_once(
        &self,
        chain_id: &Digest,
        diff_id: &Digest,
        blob: &Digest,
        opts: UnpackOptions,
    ) -> Result<bool, StorageError> {
        let mut layer = match self.begin_chain_unpack(chain_id, diff_id, opts)? {
            LayerSlot::Empty(layer) => layer,
            LayerSlot::Present => return Ok(true),
            LayerSlot::Busy => return Ok(false),
        };
        // A stored blob was verified when it took its name: only the diff id is left to check.
        layer.unpack(self.open_blob(blob)?)?;
        layer.commit()?;
        Ok(true)
    }

    /// Start unpacking layer `index` of an image whose layers have `diff_ids` from a stream
    /// (`pull` feeds it the download as it arrives). Must be called inside burrow's user
    /// namespace.
    pub fn begin_layer_unpack(
        &self,
        diff_ids: &[Digest],
        index: usize,
        opts: UnpackOptions,
    ) -> Result<LayerSlot<'_>, StorageError> {
        let chain = chain_ids(&diff_ids[..=index])
            .pop()
            .expect("at least one layer");
        self.begin_chain_unpack(&chain, &diff_ids[index], opts)
    }

    fn begin_chain_unpack(
        &self,
        chain_id: &Digest,
        diff_id: &Digest,
        opts: UnpackOptions,
    ) -> Result<LayerSlot<'_>, StorageError> {
        let overlay = self.overlay_dir();
        let lock_path = self.layer_lock_path(chain_id);
        // Never block here: this process may itself hold the lock shared through a lease.
        let Some(lock) = FileLock::try_acquire(&lock_path, LockKind::Exclusive)? else {
            return Ok(LayerSlot::Busy);
        };
        let final_dir = overlay.join(chain_id.hex());
        if final_dir.join("diff").is_dir() {
            // Another process did it while we waited for the lock.
            return Ok(LayerSlot::Present);
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
        builder
            .create(&tmp)
            .map_err(|e| StorageError::io(&tmp, e))?;
        // From here on, dropping the guard removes the temp dir.
        let layer = LayerUnpack {
            store: self,
            diff_id: diff_id.clone(),
            opts,
            tmp,
            final_dir,
            state: UnpackState::Empty,
            _lock: lock,
        };
        let diff = layer.diff_dir();
        builder
            .mode(0o755)
            .create(&diff)
            .map_err(|e| StorageError::io(&diff, e))?;
        Ok(LayerSlot::Empty(layer))
    }

    fn remove_layer_temps(&self, chain_hex: &str) {
        let overlay = self.overlay_dir();
        let Ok(entries) = fs::read_dir(&overlay) else {
            return;
        };
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

    /// Remove the temp dirs of layers nobody is unpacking (their lock is free): a killed
    /// process left them. Must be called inside burrow's user namespace, where their files'
    /// owners are.
    pub fn clean_stale_layer_temps(&self) {
        let overlay = self.overlay_dir();
        let Ok(entries) = fs::read_dir(&overlay) else {
            return;
        };
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

/// What [`Store::begin_layer_unpack`] found.
pub enum LayerSlot<'s> {
    /// Nobody has the layer: unpack it through the guard.
    Empty(LayerUnpack<'s>),
    /// The layer is unpacked already.
    Present,
    /// Another process holds the layer's lock (unpacking it, removing it or using it).
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnpackState {
    Empty,
    /// Unpacked, and the uncompressed stream matched the diff id.
    Unpacked,
    /// Unpacking failed or was cut short: whatever the directory holds never gets a name.
    Failed,
    Committed,
}

/// A layer being unpacked into `overlay/.tmp-<chain-id-hex>-<random>/`, its lock held
/// exclusively. It gets its real name only through [`LayerUnpack::commit`]; dropped before,
/// the temp dir is removed (a killed process leaves it to whoever next takes the lock).
pub struct LayerUnpack<'s> {
    store: &'s Store,
    diff_id: Digest,
    opts: UnpackOptions,
    tmp: PathBuf,
    final_dir: PathBuf,
    state: UnpackState,
    _lock: FileLock,
}

impl LayerUnpack<'_> {
    /// Where the layer's files are being written.
    pub fn diff_dir(&self) -> PathBuf {
        self.tmp.join("diff")
    }

    /// Unpack the layer from `source` (a plain, gzip or zstd tar, read to its end), checking
    /// the uncompressed stream against the diff id. Only once per layer.
    pub fn unpack(&mut self, source: impl Read) -> Result<(), StorageError> {
        if self.state != UnpackState::Empty {
            return Err(StorageError::Other(format!(
                "layer {}: unpacked twice",
                self.diff_id
            )));
        }
        self.state = UnpackState::Failed;
        unpack_layer(source, &self.diff_dir(), &self.diff_id, self.opts)?;
        self.state = UnpackState::Unpacked;
        // Renamed with the layer on commit: no reader sees the layer without its record. A
        // layer left without one is measured when its size is first asked for.
        let measured = diff_size::measure(&self.diff_dir()).and_then(|size| {
            diff_size::record(&self.tmp, size).map_err(|e| StorageError::io(&self.tmp, e))
        });
        if let Err(e) = measured {
            log::warn!(
                "layer {}: cannot record its unpacked size: {e}",
                self.diff_id
            );
        }
        Ok(())
    }

    /// Give the unpacked layer its name. The caller has checked whatever `unpack` read (a
    /// download against its digest): the diff id alone does not tell the image's layer from
    /// any other one with the same content.
    pub fn commit(mut self) -> Result<PathBuf, StorageError> {
        if self.state != UnpackState::Unpacked {
            return Err(StorageError::Other(format!(
                "layer {}: not unpacked",
                self.diff_id
            )));
        }
        fs::rename(&self.tmp, &self.final_dir).map_err(|e| StorageError::io(&self.final_dir, e))?;
        self.state = UnpackState::Committed;
        self.store.layers_unpacked.fetch_add(1, Ordering::Relaxed);
        log::debug!(
            "unpacked layer {} into {}",
            self.diff_id,
            self.final_dir.display()
        );
        Ok(self.final_dir.join("diff"))
    }
}

impl Drop for LayerUnpack<'_> {
    fn drop(&mut self) {
        if self.state != UnpackState::Committed
            && let Err(e) = safe_fs::remove_tree(&self.tmp)
        {
            log::warn!("cannot remove {}: {e}", self.tmp.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testutil::{TarBuilder, add_image, gzip};

    fn opts() -> UnpackOptions {
        UnpackOptions {
            ignore_chown_errors: true,
        }
    }

    #[test]
    fn layers_are_unpacked_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let l0 = TarBuilder::new()
            .file("base", b"0", 0o644)
            .file("over", b"low", 0o644)
            .finish();
        let l1 = gzip(&TarBuilder::new().file("over", b"high", 0o644).finish());
        let img = add_image(&store, &[l0, l1], "t", &["two"]);
        let dirs = store.ensure_unpacked(&img, opts()).unwrap();
        let chains = chain_ids(&img.diff_ids);
        assert_eq!(
            dirs[0],
            dir.path()
                .join("overlay")
                .join(chains[0].hex())
                .join("diff")
        );
        assert_eq!(chains[0], img.diff_ids[0]);
        assert_eq!(fs::read(dirs[0].join("over")).unwrap(), b"low");
        assert_eq!(fs::read(dirs[1].join("over")).unwrap(), b"high");
        assert_eq!(store.ensure_unpacked(&img, opts()).unwrap(), dirs);
        assert_eq!(store.layers_unpacked.load(Ordering::Relaxed), 2);
    }

    /// docker's DiffSize of each layer, recorded when it is unpacked.
    #[test]
    fn unpacked_sizes_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let files = TarBuilder::new()
            .dir("d", 0o755)
            .file("d/big", &[b'z'; 100_000], 0o644)
            .file("small", b"12345", 0o644)
            .hardlink("d/big-again", "d/big")
            .symlink("link", "d/big")
            .fifo("pipe")
            // Replaced later in the layer: only its last version counts.
            .file("twice", &[1; 1000], 0o644)
            .file("twice", &[2; 10], 0o644)
            .finish();
        let empty = TarBuilder::new().dir("./", 0o755).finish();
        let img = add_image(&store, &[gzip(&files), empty], "s", &["sizes"]);
        store.ensure_unpacked(&img, opts()).unwrap();
        let chains = chain_ids(&img.diff_ids);
        let recorded = |c: &Digest| store.recorded_diff_size(c).unwrap();
        // The hard link adds nothing, the symlink its target's length.
        assert_eq!(recorded(&chains[0]), Some(100_000 + 5 + 5 + 10));
        assert_eq!(recorded(&chains[1]), Some(0));

        // Unpacked by an older burrow: measured once, on demand, and recorded.
        let record = dir
            .path()
            .join("overlay")
            .join(chains[0].hex())
            .join("diff-size");
        fs::remove_file(&record).unwrap();
        assert_eq!(recorded(&chains[0]), None);
        assert_eq!(
            store.measure_diff_size(&chains[0]).unwrap(),
            Some(100_000 + 5 + 5 + 10)
        );
        assert_eq!(fs::read_to_string(&record).unwrap(), "100020\n");
        // A damaged record is measured again.
        fs::write(&record, "garbage").unwrap();
        assert_eq!(recorded(&chains[0]), None);
        assert_eq!(store.measure_diff_size(&chains[0]).unwrap(), Some(100_020));

        // Not unpacked: nothing to measure, and nothing is created.
        let other = Digest::sha256_of(b"no such layer");
        assert_eq!(store.measure_diff_size(&other).unwrap(), None);
        assert!(!dir.path().join("overlay").join(other.hex()).exists());
    }

    #[test]
    fn whiteouts_add_nothing_to_the_unpacked_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let probe = dir.path().join("probe");
        let made = std::process::Command::new("mknod")
            .arg(&probe)
            .args(["c", "0", "0"])
            .status()
            .is_ok_and(|s| s.success());
        if !made {
            println!("skipped: creating a 0:0 char device needs root or a user namespace");
            return;
        }
        let layer = TarBuilder::new()
            .file(".wh.gone", b"", 0o644)
            .dir("opaque", 0o755)
            .file("opaque/.wh..wh..opq", b"", 0o644)
            .file("opaque/kept", b"abc", 0o644)
            .finish();
        let img = add_image(&store, &[layer], "w", &["whiteouts"]);
        store.ensure_unpacked(&img, opts()).unwrap();
        let chain = &chain_ids(&img.diff_ids)[0];
        assert_eq!(store.recorded_diff_size(chain).unwrap(), Some(3));
    }

    #[test]
    fn concurrent_callers_share_the_work() {
        let dir = tempfile::tempdir().unwrap();
        let setup = Store::open(dir.path()).unwrap();
        let mut tar = TarBuilder::new();
        for i in 0..300 {
            tar.file(&format!("d{}/f{i}", i % 10), &vec![b'x'; 4096], 0o644);
        }
        let layers = vec![
            tar.finish(),
            TarBuilder::new().file("top", b"t", 0o644).finish(),
        ];
        let img = add_image(&setup, &layers, "c", &["conc"]);
        let stores: Vec<Store> = (0..4).map(|_| Store::open(dir.path()).unwrap()).collect();
        let results: Vec<Vec<PathBuf>> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .map(|st| s.spawn(|| st.ensure_unpacked(&img, opts()).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        let total: usize = stores
            .iter()
            .map(|s| s.layers_unpacked.load(Ordering::Relaxed))
            .sum();
        assert_eq!(total, 2);
        assert!(results[0][0].join("d9/f299").is_file());
        let leftovers = fs::read_dir(setup.overlay_dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TMP_PREFIX)
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn failed_and_stale_unpacks_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let good = TarBuilder::new().file("f", b"ok", 0o644).finish();
        let img = add_image(&store, &[good], "s", &[]);
        let chain = chain_ids(&img.diff_ids)[0].clone();
        // Left by a killed process: a half-unpacked temp dir with a read-only subdir.
        let stale = store
            .overlay_dir()
            .join(format!("{TMP_PREFIX}{}-dead", chain.hex()));
        fs::create_dir_all(stale.join("diff/ro/x")).unwrap();
        fs::set_permissions(
            stale.join("diff/ro"),
            std::os::unix::fs::PermissionsExt::from_mode(0o555),
        )
        .unwrap();
        let dirs = store.ensure_unpacked(&img, opts()).unwrap();
        assert!(!stale.exists());
        assert_eq!(fs::read(dirs[0].join("f")).unwrap(), b"ok");

        // A layer whose content does not match its diff id is rejected, and not kept.
        let mut bad = img.clone();
        bad.diff_ids = vec![Digest::sha256_of(b"different")];
        let err = store.ensure_unpacked(&bad, opts()).unwrap_err();
        assert!(matches!(err, StorageError::DigestMismatch { .. }), "{err}");
        let names: Vec<String> = fs::read_dir(store.overlay_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert_eq!(names, [chain.hex().to_string()]);
    }

    #[test]
    fn streamed_layers_are_named_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = TarBuilder::new().file("f", b"streamed", 0o644).finish();
        let diff_ids = vec![Digest::sha256_of(&tar)];
        let chain = chain_ids(&diff_ids)[0].clone();
        let temps = || {
            fs::read_dir(store.overlay_dir())
                .unwrap()
                .filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    name.to_string_lossy().starts_with(TMP_PREFIX)
                })
                .count()
        };
        let begin = || match store.begin_layer_unpack(&diff_ids, 0, opts()).unwrap() {
            LayerSlot::Empty(layer) => layer,
            _ => panic!("the layer is not free"),
        };

        // Unpacked but dropped (its blob's digest did not match): nothing is left.
        let mut layer = begin();
        layer.unpack(&gzip(&tar)[..]).unwrap();
        assert_eq!(fs::read(layer.diff_dir().join("f")).unwrap(), b"streamed");
        assert!(matches!(
            store.begin_layer_unpack(&diff_ids, 0, opts()).unwrap(),
            LayerSlot::Busy
        ));
        drop(layer);
        assert_eq!(temps(), 0);
        assert!(!store.layer_dir(&chain).exists());

        // A stream that does not match the diff id cannot be committed.
        let mut layer = begin();
        let other = TarBuilder::new().file("f", b"other", 0o644).finish();
        let err = layer.unpack(&other[..]).unwrap_err();
        assert!(matches!(err, StorageError::DigestMismatch { .. }), "{err}");
        assert!(layer.commit().is_err());
        assert_eq!(temps(), 0);
        assert!(!store.layer_dir(&chain).exists());

        let mut layer = begin();
        layer.unpack(&tar[..]).unwrap();
        assert_eq!(layer.commit().unwrap(), store.layer_dir(&chain));
        assert_eq!(
            fs::read(store.layer_dir(&chain).join("f")).unwrap(),
            b"streamed"
        );
        // As `pull` unpacks: the size is recorded too.
        assert_eq!(store.recorded_diff_size(&chain).unwrap(), Some(8));
        assert_eq!(temps(), 0);
        assert!(matches!(
            store.begin_layer_unpack(&diff_ids, 0, opts()).unwrap(),
            LayerSlot::Present
        ));
    }
}
