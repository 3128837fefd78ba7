//! The image store: content-addressed blobs in an OCI image layout, image names, and layers
//! unpacked once into directories shared by every container.
//!
//! On disk, under the storage root:
//! - `oci-layout`, `index.json`, `blobs/sha256/<hex>`: an OCI image layout other tools can
//!   read; each name is one `index.json` descriptor annotated with
//!   `org.opencontainers.image.ref.name` = the full name, a nameless image one bare descriptor.
//! - `overlay/<chain-id-hex>/diff/`: unpacked layers, `overlay/<chain-id-hex>/diff-size` their
//!   unpacked size (see `diff_size`), `overlay/<chain-id-hex>.lock` guards their creation,
//!   `overlay/.tmp-<chain-id-hex>-<random>/` is one being unpacked.
//! - `tmp/`: blobs being written, each flocked by its writer while in use.
//! - `storage.lock`: serialises writers of `index.json`; readers rely on atomic renames.
//! - `gc.lock`: held shared by every process that writes blobs (from its first blob until it
//!   exits or calls [`Store::finish_writes`]), exclusively by garbage collection while it
//!   removes blobs, so that blobs not yet named in `index.json` are never collected.
//! - A process using an unpacked layer holds its `overlay/<chain-id-hex>.lock` shared (see
//!   [`Store::ensure_unpacked`]); garbage collection removes a layer only with the lock held
//!   exclusively, first renaming it to `overlay/.tmp-del-*`, so that a layer is never half
//!   present under its real name.

mod archive;
mod blobs;
mod commit;
mod compression;
mod crash;
pub mod diff_size;
pub mod digest;
mod gc;
mod images;
mod import;
pub mod layer_tar;
mod layers;
pub mod lock;
pub mod manifest;
pub mod safe_fs;
mod save;
mod unpack;

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

pub use blobs::BlobWriter;
pub use commit::CommitInfo;
pub use crash::{point as crash_point, stop_point};
pub use digest::Digest;
pub use gc::GcReport;
pub use import::ImageChanges;
pub use layers::{LayerSlot, LayerUnpack};
pub use save::ArchiveFormat;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}: no such image")]
    ImageNotFound(String),
    #[error("{0}: image reference is ambiguous: {1}")]
    Ambiguous(String, String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
    #[error("invalid digest {0}")]
    InvalidDigest(String),
    #[error(
        "{what}: digest mismatch: expected {expected}, got {actual}: the data is corrupt or \
         was modified in transit; try again"
    )]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {0} is missing from the image store: pull or load the image again")]
    BlobNotFound(Digest),
    #[error("invalid image: {0}")]
    InvalidImage(String),
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),
    #[error(
        "layer {layer}: file {path} is owned by {kind} {id}, outside the ids mapped into \
         burrow's user namespace: give your user more subordinate ids in {file}"
    )]
    UnmappedOwner {
        layer: Digest,
        path: String,
        kind: &'static str,
        id: u64,
        file: &'static str,
    },
    #[error("layer {layer}: {source}")]
    Layer {
        layer: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: {path}: {source}")]
    Unpack {
        layer: Digest,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> StorageError {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}

/// One image known to the store.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    /// Docker's image id: the digest of the config blob.
    pub id: Digest,
    pub manifest_digest: Digest,
    /// Fully qualified names, e.g. `docker.io/library/busybox:latest`.
    pub names: Vec<String>,
    /// Layer diff ids, lowest first.
    pub diff_ids: Vec<Digest>,
    /// RFC 3339 creation time from the config, if any.
    pub created: Option<String>,
    /// `repository@digest` forms (docker's RepoDigests): the digests a registry knows the
    /// image by, recorded when it was pulled (by tag or by digest) or pushed; none for an
    /// image that was loaded, imported or committed.
    pub repo_digests: Vec<String>,
}

/// Behaviour of layer unpacking that depends on the user namespace we run in.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnpackOptions {
    /// With a single-id map every chown to another id fails; keep files owned by root instead.
    pub ignore_chown_errors: bool,
}

pub struct Store {
    root: PathBuf,
    /// Layers this instance unpacked itself (tests check concurrent callers share the work).
    layers_unpacked: AtomicUsize,
    /// Shared locks on the layers this process uses (see `ensure_unpacked`).
    layer_leases: Mutex<Vec<lock::FileLock>>,
    /// Shared `gc.lock`, taken with the first blob this process writes.
    write_lease: Mutex<Option<lock::FileLock>>,
}

impl Store {
    pub fn open(root: &Path) -> Result<Store, StorageError> {
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        builder
            .create(root)
            .map_err(|e| StorageError::io(root, e))?;
        let store = Store {
            root: root.to_path_buf(),
            layers_unpacked: AtomicUsize::new(0),
            layer_leases: Mutex::new(Vec::new()),
            write_lease: Mutex::new(None),
        };
        for dir in [store.blobs_dir(), store.overlay_dir(), store.tmp_dir()] {
            builder
                .create(&dir)
                .map_err(|e| StorageError::io(&dir, e))?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            // A name of our own: concurrent first uses of a root each write and rename one.
            let tmp = root.join(format!(
                "oci-layout.tmp-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            fs::write(&tmp, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .and_then(|()| fs::rename(&tmp, &layout))
                .map_err(|e| StorageError::io(&layout, e))?;
        }
        store.init_index()?;
        store.clean_stale_temp_files()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join(digest::SHA256)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn overlay_dir(&self) -> PathBuf {
        self.root.join("overlay")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn lock_path(&self) -> PathBuf {
        self.root.join("storage.lock")
    }

    fn gc_lock_path(&self) -> PathBuf {
        self.root.join("gc.lock")
    }

    /// Hold `gc.lock` shared from now on: blobs this process writes are not collected before
    /// `add_image` names them.
    fn take_write_lease(&self) -> Result<(), StorageError> {
        let mut lease = self.write_lease.lock().unwrap_or_else(|e| e.into_inner());
        if lease.is_none() {
            *lease = Some(lock::FileLock::acquire(
                &self.gc_lock_path(),
                lock::LockKind::Shared,
            )?);
        }
        Ok(())
    }

    /// Done writing blobs (every image written is recorded): let garbage collection run.
    pub fn finish_writes(&self) {
        *self.write_lease.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Stop holding the layers `ensure_unpacked` returned (they may be collected once no
    /// image or container references them).
    pub fn release_layers(&self) {
        self.layer_leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
pub(crate) mod testutil;
