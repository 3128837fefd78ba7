//! Content-addressed blobs: `blobs/sha256/<hex>`, written through a verified temp file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::digest::{Digest, HashingWriter};
use super::lock::{self, FileLock, LockKind};
use super::{StorageError, Store};

const WRITE_BUFFER: usize = 1 << 20;

impl Store {
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn blob_size(&self, digest: &Digest) -> Result<u64, StorageError> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StorageError::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(StorageError::io(self.blob_path(digest), e)),
        }
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File, StorageError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StorageError::BlobNotFound(digest.clone()),
            _ => StorageError::io(path, e),
        })
    }

    /// The whole blob; meant for manifests and configs, not layers.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StorageError> {
        let mut file = self.open_blob(digest)?;
        let mut out = Vec::new();
        io::Read::read_to_end(&mut file, &mut out)
            .map_err(|e| StorageError::io(self.blob_path(digest), e))?;
        Ok(out)
    }

    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StorageError> {
        let digest = Digest::sha256_of(bytes);
        self.take_write_lease()?;
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut w = self.blob_writer()?;
        w.write_all(bytes)
            .map_err(|e| StorageError::io(&w.path, e))?;
        Ok(w.commit(Some(&digest))?.0)
    }

    /// A writer whose content becomes a blob on `commit`; dropped uncommitted, it leaves nothing.
    pub fn blob_writer(&self) -> Result<BlobWriter, StorageError> {
        self.take_write_lease()?;
        let (file, path) = self.create_temp_file("blob")?;
        Ok(BlobWriter {
            inner: Some(HashingWriter::new(BufWriter::with_capacity(
                WRITE_BUFFER,
                file,
            ))),
            path,
            blobs_dir: self.blobs_dir(),
        })
    }

    /// A new file in `tmp/`, flocked for as long as it is open so that cleanup can tell a live
    /// writer's file from one left by a killed process.
    pub(super) fn create_temp_file(&self, prefix: &str) -> Result<(File, PathBuf), StorageError> {
        // Shared while creating: cleanup holds it exclusively, so it never sees a file between
        // its creation and its flock.
        let _creating = FileLock::acquire(&self.tmp_lock_path(), LockKind::Shared)?;
        let path = self.tmp_dir().join(format!(
            "{prefix}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        lock::flock(&file, LockKind::Exclusive, false).map_err(|e| StorageError::io(&path, e))?;
        Ok((file, path))
    }

    fn tmp_lock_path(&self) -> PathBuf {
        self.root.join("tmp.lock")
    }

    /// Remove temp files whose writer is gone. Best effort: skipped while another process
    /// is creating a temp file.
    pub(super) fn clean_stale_temp_files(&self) -> Result<(), StorageError> {
        let tmp = self.tmp_dir();
        let mut entries = fs::read_dir(&tmp)
            .map_err(|e| StorageError::io(&tmp, e))?
            .peekable();
        if entries.peek().is_none() {
            return Ok(());
        }
        let Some(_guard) = FileLock::try_acquire(&self.tmp_lock_path(), LockKind::Exclusive)?
        else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if lock::flock(&file, LockKind::Exclusive, false).is_ok() {
                log::debug!("removing stale temp file {}", path.display());
                let _ = fs::remove_file(&path);
            }
        }
        Ok(())
    }
}

pub struct BlobWriter {
    inner: Option<HashingWriter<BufWriter<File>>>,
    path: PathBuf,
    blobs_dir: PathBuf,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Make the content a blob, checking it against `expected`. On a mismatch nothing is kept.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64), StorageError> {
        let Some(writer) = self.inner.take() else {
            return Err(StorageError::Other("blob writer used after commit".into()));
        };
        let (digest, len, buffered) = writer.finish();
        // Open, the file keeps its flock until it is renamed: closed earlier, another
        // process's `clean_stale_temp_files` would take it for a dead writer's and delete it.
        let locked = buffered
            .into_inner()
            .map_err(|e| StorageError::io(&self.path, e.into_error()))?;
        if let Some(expected) = expected
            && *expected != digest
        {
            let _ = fs::remove_file(&self.path);
            return Err(StorageError::DigestMismatch {
                what: format!("blob {expected}"),
                expected: expected.clone(),
                actual: digest,
            });
        }
        let dest = self.blobs_dir.join(digest.hex());
        #[cfg(test)]
        tests::BEFORE_RENAME.with(|hook| {
            if let Some(hook) = &*hook.borrow() {
                hook();
            }
        });
        // Same name means same content, so replacing a blob another writer just stored is fine.
        fs::rename(&self.path, &dest).map_err(|e| StorageError::io(&dest, e))?;
        drop(locked);
        Ok((digest, len))
    }

    fn writer(&mut self) -> io::Result<&mut HashingWriter<BufWriter<File>>> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer used after commit"))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// Runs in `commit` just before the rename: where another process's cleanup raced.
        pub(super) static BEFORE_RENAME: RefCell<Option<Box<dyn Fn()>>> = RefCell::new(None);
    }

    #[test]
    fn cleanup_by_another_process_spares_a_committing_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let root = dir.path().to_path_buf();
        // A second Store opens its own descriptors, so its flocks conflict with ours as
        // another process's would.
        BEFORE_RENAME.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                Store::open(&root)
                    .unwrap()
                    .clean_stale_temp_files()
                    .unwrap();
            }))
        });
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"racing").unwrap();
        let committed = w.commit(None);
        BEFORE_RENAME.with(|h| *h.borrow_mut() = None);
        let (d, _) = committed.unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), b"racing");
    }

    #[test]
    fn put_read_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_blob(b"hello").unwrap();
        assert_eq!(d, Digest::sha256_of(b"hello"));
        assert!(store.has_blob(&d));
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");
        assert_eq!(store.blob_size(&d).unwrap(), 5);
        let missing = Digest::sha256_of(b"nope");
        assert!(matches!(
            store.read_blob(&missing),
            Err(StorageError::BlobNotFound(_))
        ));
    }

    #[test]
    fn mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let expected = Digest::sha256_of(b"expected");
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"something else").unwrap();
        let err = w.commit(Some(&expected)).unwrap_err();
        assert!(matches!(err, StorageError::DigestMismatch { .. }), "{err}");
        assert!(!store.has_blob(&expected));
        assert!(!store.has_blob(&Digest::sha256_of(b"something else")));
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        assert_eq!(fs::read_dir(store.blobs_dir()).unwrap().count(), 0);
        // Dropped without commit: nothing either.
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"abandoned").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn stale_temp_files_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stale = store.tmp_dir().join("blob-999999-dead");
        fs::write(&stale, b"partial").unwrap();
        let mut live = store.blob_writer().unwrap();
        live.write_all(b"in progress").unwrap();
        live.flush().unwrap();
        let again = Store::open(dir.path()).unwrap();
        assert!(!stale.exists());
        assert_eq!(fs::read_dir(again.tmp_dir()).unwrap().count(), 1);
        let (d, n) = live.commit(None).unwrap();
        assert_eq!((d, n), (Digest::sha256_of(b"in progress"), 11));
    }
}
