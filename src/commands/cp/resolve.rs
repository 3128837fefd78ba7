//! Finding `burrow cp`'s source and destination inside a container's root, the way docker
//! does but never by a host path: every directory on the way is opened with
//! `openat2(RESOLVE_IN_ROOT)`, so a link (absolute or full of `..`) resolves inside the root.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::safe_open::{clean_relative, open_in_root};
use crate::storage::safe_fs;

/// An entry that may not exist yet: its directory, opened, and its name there (`.` for the
/// root itself).
pub struct Entry {
    pub dir: OwnedFd,
    pub name: CString,
}

impl Entry {
    /// lstat of the entry itself; `None` when it does not exist.
    pub fn stat(&self) -> io::Result<Option<libc::stat>> {
        safe_fs::lstatat(self.dir.as_fd(), &self.name)
    }

    /// The entry, which must be a directory, opened as one (never through a link).
    pub fn open_dir(&self) -> io::Result<OwnedFd> {
        safe_fs::openat(
            self.dir.as_fd(),
            &self.name,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
    }
}

/// Symlinks followed at the final component, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// Resolve `path` inside `root`. With `follow`, a symlink at the final component is followed
/// too, inside the root: docker writes through a destination link to its target in the
/// container (`/etc/evil -> /var/tmp/x` means the container's `/var/tmp/x`). A missing
/// directory on the way is an error (`NotFound`): docker makes none either.
pub fn in_root(root: BorrowedFd<'_>, path: &Path, follow: bool) -> io::Result<Entry> {
    let mut rel = clean_relative(path);
    for _ in 0..=MAX_LINKS {
        let Some(name) = rel.file_name().map(|n| n.to_owned()) else {
            return Ok(Entry {
                dir: open_in_root(root, Path::new(""), libc::O_RDONLY | libc::O_DIRECTORY)?,
                name: c".".to_owned(),
            });
        };
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let dir = open_in_root(root, &parent, libc::O_RDONLY | libc::O_DIRECTORY)?;
        let name = safe_fs::cstring(name.as_bytes())?;
        let link = match safe_fs::lstatat(dir.as_fd(), &name)? {
            Some(st) if follow && st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                nix::fcntl::readlinkat(dir.as_fd(), name.as_c_str())?
            }
            _ => return Ok(Entry { dir, name }),
        };
        // Lexically, as docker joins a relative link target to the link's directory.
        rel = clean_relative(&parent.join(PathBuf::from(link)));
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_destination_link_resolves_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::create_dir(root.path().join("etc")).unwrap();
        symlink(&victim, root.path().join("etc/evil")).unwrap();
        symlink("../../../../x", root.path().join("etc/rel")).unwrap();
        let rootfd = std::fs::File::open(root.path()).unwrap();

        // The link's target is looked for inside the root, where its directory is missing.
        let e = in_root(rootfd.as_fd(), Path::new("/etc/evil"), true);
        assert_eq!(e.err().map(|e| e.kind()), Some(io::ErrorKind::NotFound));
        let inside = root
            .path()
            .join(victim.parent().unwrap().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        let e = in_root(rootfd.as_fd(), Path::new("/etc/evil"), true).unwrap();
        assert_eq!(e.name.to_bytes(), b"victim");
        let e = in_root(rootfd.as_fd(), Path::new("etc/rel"), true).unwrap();
        assert_eq!(e.name.to_bytes(), b"x");
        assert!(e.stat().unwrap().is_none());

        // Without following, the link itself.
        let e = in_root(rootfd.as_fd(), Path::new("/etc/evil"), false).unwrap();
        assert_eq!(e.name.to_bytes(), b"evil");
        assert!(!outside.path().join("victim").exists());
    }

    #[test]
    fn the_root_is_dot() {
        let root = tempfile::tempdir().unwrap();
        let rootfd = std::fs::File::open(root.path()).unwrap();
        let e = in_root(rootfd.as_fd(), Path::new("/"), true).unwrap();
        assert_eq!(e.name.to_bytes(), b".");
        assert!(safe_fs::is_dir(&e.stat().unwrap().unwrap()));
    }
}
