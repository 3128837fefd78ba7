//! The unpacked size of a layer, as docker counts it (its overlay2 driver's `DiffSize`): the
//! apparent size (`lstat`'s) of everything in the layer directory but directories, each inode
//! once. So a hard link adds nothing, a symlink adds the length of its target (it is never
//! followed), an overlay whiteout (an empty character device) adds 0. An image's size is the
//! sum over its layers.
//!
//! Recorded in `overlay/<chain-id-hex>/diff-size` (decimal bytes) when the layer is unpacked;
//! a layer an older burrow unpacked is measured once, on first use, and recorded then.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::digest::Digest;
use super::lock::{FileLock, LockKind};
use super::{StorageError, Store};

const DIFF_SIZE_FILE: &str = "diff-size";

/// docker's `directory.Size` of `dir`.
pub(super) fn measure(dir: &Path) -> Result<u64, StorageError> {
    directory_size(dir, false)
}

/// docker's `directory.Size` of `dir` (also what it shows for a container's writable layer
/// and a volume). With `skip_unreadable`, a directory that cannot be listed counts 0 instead
/// of failing: for listings of many things, where one unreadable part must not fail them all.
pub fn directory_size(dir: &Path, skip_unreadable: bool) -> Result<u64, StorageError> {
    let mut inodes = HashSet::new();
    let mut total = 0u64;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(_) if skip_unreadable => continue,
            Err(e) => return Err(StorageError::io(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(&dir, e))?;
            // `DirEntry::metadata` is an `lstat`: a symlink is measured, never followed.
            let meta = entry
                .metadata()
                .map_err(|e| StorageError::io(entry.path(), e))?;
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.len() > 0 && inodes.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Record `size` in the layer directory `layer` (`overlay/<chain-id-hex>` or its temp dir).
pub(super) fn record(layer: &Path, size: u64) -> io::Result<()> {
    let tmp = layer.join(format!(
        "{DIFF_SIZE_FILE}.tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    fs::write(&tmp, format!("{size}\n")).and_then(|()| fs::rename(&tmp, layer.join(DIFF_SIZE_FILE)))
}

impl Store {
    fn diff_size_path(&self, chain_id: &Digest) -> PathBuf {
        self.overlay_dir().join(chain_id.hex()).join(DIFF_SIZE_FILE)
    }

    /// The unpacked size recorded for the layer `chain_id`; `None` when there is none (the
    /// layer is not unpacked, or an older burrow unpacked it: see
    /// [`Store::measure_diff_size`]).
    pub fn recorded_diff_size(&self, chain_id: &Digest) -> Result<Option<u64>, StorageError> {
        let path = self.diff_size_path(chain_id);
        match fs::read_to_string(&path) {
            // A damaged record is measured again.
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    /// Measure the unpacked layer `chain_id` and record its size, unless it is recorded
    /// already; `None` when the layer is not unpacked. Outside burrow's user namespace a
    /// directory of the layer closed to others (owned by a subordinate id) fails the walk
    /// with `PermissionDenied`: inside, every directory is readable.
    pub fn measure_diff_size(&self, chain_id: &Digest) -> Result<Option<u64>, StorageError> {
        let diff = self.layer_dir(chain_id);
        if !diff.is_dir() {
            return Ok(None);
        }
        // Held shared, as by a container using the layer: collection cannot remove it
        // while it is walked, and no record is written into a directory being removed.
        let _lease = FileLock::acquire(&self.layer_lock_path(chain_id), LockKind::Shared)?;
        if let Some(size) = self.recorded_diff_size(chain_id)? {
            return Ok(Some(size));
        }
        if !diff.is_dir() {
            return Ok(None);
        }
        let size = measure(&diff)?;
        // Concurrent measurers each rename their own temp file over the same value.
        let layer = self.overlay_dir().join(chain_id.hex());
        record(&layer, size).map_err(|e| StorageError::io(&layer, e))?;
        log::debug!("layer {chain_id}: measured {size} bytes unpacked");
        Ok(Some(size))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn measures_as_docker_directory_size() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(measure(d).unwrap(), 0);
        fs::create_dir_all(d.join("a/b")).unwrap();
        fs::write(d.join("a/b/ten"), [0u8; 10]).unwrap();
        fs::write(d.join("seven"), b"1234567").unwrap();
        fs::write(d.join("empty"), b"").unwrap();
        fs::hard_link(d.join("seven"), d.join("a/seven-again")).unwrap();
        // Counted as its target's length (`seven`: 5), its target not again.
        symlink("seven", d.join("link")).unwrap();
        // Followed, this would add the whole of /usr.
        symlink("/usr", d.join("usr")).unwrap();
        assert_eq!(measure(d).unwrap(), 10 + 7 + 5 + 4);
    }
}
