//! Opening and creating paths inside a directory tree that an image controls, without ever
//! following a symlink or `..` out of it (`openat2` with `RESOLVE_IN_ROOT`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// What to create when the path does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Nothing,
    Dir,
    File,
}

/// The path relative to the root, with `.`, `..` and leading `/` resolved lexically (a `..` at
/// the root stays at the root, as the kernel does for `/..`).
pub fn clean_relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, with `path`
/// cleaned lexically first.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let rel = clean_relative(path);
    crate::storage::safe_fs::open_in_root(root, rel.as_os_str().as_encoded_bytes(), flags)
}

/// Open `path` inside `root` as an `O_PATH` descriptor, creating it (and missing parent
/// directories) when asked. Symlinks along the way resolve inside `root`.
pub fn ensure_in_root(root: BorrowedFd<'_>, path: &Path, create: Create) -> io::Result<OwnedFd> {
    ensure_with_depth(root, path, create, 0)
}

/// Symlinks followed while creating, as the kernel's own limit.
const MAX_LINKS: u32 = 40;

fn ensure_with_depth(
    root: BorrowedFd<'_>,
    path: &Path,
    create: Create,
    depth: u32,
) -> io::Result<OwnedFd> {
    if depth > MAX_LINKS {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let rel = clean_relative(path);
    match open_in_root(root, &rel, libc::O_PATH) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create != Create::Nothing => {}
        other => return other,
    }
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return open_in_root(root, &rel, libc::O_PATH);
    };
    let parent_fd = ensure_with_depth(root, parent, Create::Dir, depth + 1)?;
    let dir = open_in_root(root, parent, libc::O_DIRECTORY | libc::O_RDONLY)?;
    drop(parent_fd);
    let name = cstring(Path::new(name))?;
    // SAFETY: valid dirfd and NUL-terminated name.
    let rc = unsafe {
        if create == Create::Dir {
            libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755)
        } else {
            let fd = libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
                0
            } else {
                -1
            }
        }
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(err);
        }
        // It exists but did not resolve: a dangling symlink. Create what it points to, inside
        // the root, as mkdir -p would through a link.
        if let Err(e) = open_in_root(root, &rel, libc::O_PATH)
            && e.raw_os_error() == Some(libc::ENOENT)
        {
            let target = std::fs::read_link(
                fd_path(&dir).join(Path::new(name.to_str().unwrap_or_default())),
            )?;
            let resolved = if target.is_absolute() {
                target
            } else {
                parent.join(target)
            };
            ensure_with_depth(root, &resolved, create, depth + 1)?;
        }
    }
    open_in_root(root, &rel, libc::O_PATH)
}

/// The `/proc/self/fd/N` path of a descriptor, which mount(2) accepts as a source or target.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn lexical_cleaning_stays_at_root() {
        assert_eq!(
            clean_relative(Path::new("/../../etc/./x")),
            PathBuf::from("etc/x")
        );
        assert_eq!(clean_relative(Path::new("a/../../b")), PathBuf::from("b"));
        assert_eq!(clean_relative(Path::new("/")), PathBuf::new());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.path().join("up")).unwrap();
        let rootfd = std::fs::File::open(root.path()).unwrap();
        ensure_in_root(rootfd.as_fd(), Path::new("abs/x/file"), Create::File).unwrap();
        ensure_in_root(rootfd.as_fd(), Path::new("up/y"), Create::Dir).unwrap();
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(
            root.path()
                .join(outside.path().strip_prefix("/").unwrap())
                .join("x/file")
                .is_file()
        );
        assert!(root.path().join("y").is_dir());
    }
}
