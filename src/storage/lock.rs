//! flock(2) helpers. flock locks belong to the open file, so the kernel drops them when a
//! process dies, however it dies: a lock we can take proves its previous owner is gone.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::StorageError;

/// Held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

#[derive(Debug, Clone, Copy)]
pub enum LockKind {
    Shared,
    Exclusive,
}

impl FileLock {
    /// Block until the lock on `path` (created if missing) is ours.
    pub fn acquire(path: &Path, kind: LockKind) -> Result<FileLock, StorageError> {
        loop {
            let file = open_lock_file(path)?;
            flock(&file, kind, true).map_err(|e| StorageError::io(path, e))?;
            if still_linked(&file, path) {
                return Ok(FileLock { _file: file });
            }
        }
    }

    /// `None` when someone else holds a conflicting lock.
    pub fn try_acquire(path: &Path, kind: LockKind) -> Result<Option<FileLock>, StorageError> {
        loop {
            let file = open_lock_file(path)?;
            match flock(&file, kind, false) {
                Ok(()) if still_linked(&file, path) => return Ok(Some(FileLock { _file: file })),
                Ok(()) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(StorageError::io(path, e)),
            }
        }
    }

    /// Unlink the lock file while holding it exclusively. Whoever opened the old file and
    /// waits for it notices (see `still_linked`) and retries with a fresh file.
    pub fn remove_file(self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// Whether `path` still names the file we locked: lock files may be unlinked by a holder of
/// the exclusive lock (a removed layer's), and a lock on an unlinked file guards nothing.
fn still_linked(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn open_lock_file(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| StorageError::io(path, e))
}

/// Lock an already open file (used for temp files, whose lock marks them as in use).
pub fn flock(file: &File, kind: LockKind, wait: bool) -> io::Result<()> {
    let mut op = match kind {
        LockKind::Shared => libc::LOCK_SH,
        LockKind::Exclusive => libc::LOCK_EX,
    };
    if !wait {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: plain syscall on a valid fd owned by `file`.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = FileLock::acquire(&p, LockKind::Exclusive).unwrap();
        assert!(
            FileLock::try_acquire(&p, LockKind::Shared)
                .unwrap()
                .is_none()
        );
        drop(held);
        let a = FileLock::try_acquire(&p, LockKind::Shared).unwrap();
        let b = FileLock::try_acquire(&p, LockKind::Shared).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(
            FileLock::try_acquire(&p, LockKind::Exclusive)
                .unwrap()
                .is_none()
        );
    }
}
