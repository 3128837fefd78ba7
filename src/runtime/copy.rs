//! Copying a directory tree with owners, modes, times and symlinks: seeding a new volume with
//! the image's content, as docker does, and `burrow cp` in both directions.
//!
//! Every entry is opened and created relative to a directory descriptor, never by a path, and
//! never through a symlink: one side is a container's tree, which hostile content built and
//! whose processes may change it while we copy. A link is copied as a link.

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, lchown};
use std::path::Path;

use crate::storage::safe_fs;

/// Give `dst` the access and modification times in `meta`, without following a symlink.
pub fn set_times(meta: &fs::Metadata, dst: &Path) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec(),
        },
        libc::timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    ];
    let c = std::ffi::CString::new(dst.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: valid path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Who owns what a copy creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// The source's uid and gid (`cp -a`, volume seeding).
    Keep,
    /// These ids (`cp` without `-a`: root of the user namespace burrow is in, which is the
    /// container's root inside and the calling user outside).
    Set(u32, u32),
}

/// Copy the contents of `src` into the existing directory `dst`, and give `dst` the owner,
/// mode and times of `src`. Both paths are trusted (their final component may be a
/// `/proc/self/fd` link); nothing below them is followed.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let src = open_trusted_dir(src)?;
    let dst = open_trusted_dir(dst)?;
    copy_dir_contents(src.as_fd(), dst.as_fd(), Owners::Keep)?;
    let st = nix::sys::stat::fstat(&src)?;
    apply_meta(dst.as_fd(), &st, Owners::Keep)
}

fn open_trusted_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(fs::File::open(path)
        .and_then(|f| {
            if f.metadata()?.is_dir() {
                Ok(f)
            } else {
                Err(io::Error::from_raw_os_error(libc::ENOTDIR))
            }
        })?
        .into())
}

/// Copy every entry of directory `src` into directory `dst`.
pub fn copy_dir_contents(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    owners: Owners,
) -> io::Result<()> {
    for name in list_names(src)? {
        copy_entry(src, &name, dst, &name, owners)?;
    }
    Ok(())
}

/// The names in a directory, `.` and `..` left out (`burrow cp`'s tar stream walks with it).
pub fn list_names(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let fd = safe_fs::openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut listing = nix::dir::Dir::from_fd(fd).map_err(io::Error::from)?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let entry = entry.map_err(io::Error::from)?;
        let n = entry.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n.to_owned());
        }
    }
    Ok(names)
}

/// Copy `src_name` in `src_dir` to `dst_name` in `dst_dir`. A non-directory already at the
/// destination is replaced by a non-directory (an existing symlink is replaced, never written
/// through) and two directories merge; a directory and a non-directory never replace each
/// other, as docker's `cp` refuses it: the directory's contents would be lost.
pub fn copy_entry(
    src_dir: BorrowedFd<'_>,
    src_name: &CStr,
    dst_dir: BorrowedFd<'_>,
    dst_name: &CStr,
    owners: Owners,
) -> io::Result<()> {
    let Some(st) = safe_fs::lstatat(src_dir, src_name)? else {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            let src = safe_fs::openat(src_dir, src_name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            let dst = ensure_dir(dst_dir, dst_name)?;
            copy_dir_contents(src.as_fd(), dst.as_fd(), owners)?;
            // After the children, whose creation changed the directory's times.
            apply_meta(dst.as_fd(), &st, owners)
        }
        libc::S_IFREG => {
            // O_NONBLOCK: if a fifo took the file's place since the lstat, opening must not
            // hang; the fstat below then refuses it.
            let src = safe_fs::openat(src_dir, src_name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
            let now = nix::sys::stat::fstat(&src)?;
            if now.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} changed while it was copied", src_name.to_string_lossy()),
                ));
            }
            clear_for_file(dst_dir, dst_name)?;
            let dst = safe_fs::openat(
                dst_dir,
                dst_name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o600,
            )?;
            io::copy(
                &mut fs::File::from(src),
                &mut fs::File::from(dst.try_clone()?),
            )?;
            apply_meta(dst.as_fd(), &now, owners)
        }
        libc::S_IFLNK => {
            let target = nix::fcntl::readlinkat(src_dir, src_name)?;
            clear_for_file(dst_dir, dst_name)?;
            let target = safe_fs::cstring(target.as_bytes())?;
            safe_fs::symlinkat(&target, dst_dir, dst_name)?;
            chown_at(dst_dir, dst_name, &st, owners);
            let _ = set_times_at(dst_dir, dst_name, &st);
            Ok(())
        }
        libc::S_IFIFO => {
            clear_for_file(dst_dir, dst_name)?;
            safe_fs::mknodat(dst_dir, dst_name, libc::S_IFIFO | 0o600, 0)?;
            chown_at(dst_dir, dst_name, &st, owners);
            safe_fs::fchmodat(dst_dir, dst_name, st.st_mode & 0o7777)?;
            let _ = set_times_at(dst_dir, dst_name, &st);
            Ok(())
        }
        // Devices and sockets: a user namespace cannot make the first, the second is useless.
        _ => Ok(()),
    }
}

/// Open directory `name` in `dir`, making it if it is missing. A non-directory there (a
/// symlink included) is refused, not replaced: see [`copy_entry`].
pub fn ensure_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    match safe_fs::lstatat(dir, name)? {
        Some(st) if safe_fs::is_dir(&st) => {}
        Some(_) => {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!(
                    "cannot overwrite non-directory {:?} with a directory",
                    name.to_string_lossy()
                ),
            ));
        }
        None => safe_fs::mkdirat(dir, name, 0o700)?,
    }
    safe_fs::openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// Make room for a non-directory at `name` in `dir`: whatever is there goes, but a directory
/// is refused (see [`copy_entry`]). unlink itself refuses a directory, so one that took the
/// place of a file meanwhile is refused too.
pub fn clear_for_file(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    match safe_fs::unlinkat(dir, name, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            format!(
                "cannot overwrite directory {:?} with a non-directory",
                name.to_string_lossy()
            ),
        )),
        other => other,
    }
}

/// Owner first: chown clears the set-id bits that chmod then restores.
fn apply_meta(fd: BorrowedFd<'_>, st: &libc::stat, owners: Owners) -> io::Result<()> {
    let (uid, gid) = match owners {
        Owners::Keep => (st.st_uid, st.st_gid),
        Owners::Set(uid, gid) => (uid, gid),
    };
    // A single-id map cannot express most owners: keep going, as cp -a does.
    let _ = safe_fs::fchown(fd, uid, gid);
    safe_fs::fchmod(fd, st.st_mode & 0o7777)?;
    let times = times_of(st);
    // SAFETY: valid fd and two timespecs. Times are best effort, as cp -a does.
    unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) };
    Ok(())
}

fn chown_at(dir: BorrowedFd<'_>, name: &CStr, st: &libc::stat, owners: Owners) {
    let (uid, gid) = match owners {
        Owners::Keep => (st.st_uid, st.st_gid),
        Owners::Set(uid, gid) => (uid, gid),
    };
    let _ = safe_fs::lchownat(dir, name, uid, gid);
}

fn times_of(st: &libc::stat) -> [libc::timespec; 2] {
    [
        safe_fs::timespec(st.st_atime, st.st_atime_nsec),
        safe_fs::timespec(st.st_mtime, st.st_mtime_nsec),
    ]
}

fn set_times_at(dir: BorrowedFd<'_>, name: &CStr, st: &libc::stat) -> io::Result<()> {
    let times = times_of(st);
    // SAFETY: valid fd, path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `chown -R uid:gid path` without following symlinks (the `:U` volume option).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    lchown(path, Some(uid), Some(gid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copies_files_dirs_symlinks_and_modes() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("d")).unwrap();
        fs::write(src.path().join("d/f"), "x").unwrap();
        fs::set_permissions(src.path().join("d/f"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).unwrap();
        copy_tree(src.path(), dst.path()).unwrap();
        assert_eq!(fs::read_to_string(dst.path().join("d/f")).unwrap(), "x");
        assert_eq!(
            fs::metadata(dst.path().join("d/f")).unwrap().mode() & 0o777,
            0o640
        );
        assert_eq!(
            fs::read_link(dst.path().join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
    }

    #[test]
    fn links_in_the_destination_are_replaced_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "original").unwrap();
        fs::create_dir(src.path().join("d")).unwrap();
        fs::write(src.path().join("d/f"), "new").unwrap();
        fs::write(src.path().join("g"), "new").unwrap();
        fs::create_dir(dst.path().join("d")).unwrap();
        std::os::unix::fs::symlink(&victim, dst.path().join("d/f")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dst.path().join("g")).unwrap();
        copy_tree(src.path(), dst.path()).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "original");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
        assert!(
            fs::symlink_metadata(dst.path().join("d/f"))
                .unwrap()
                .is_file()
        );
        assert_eq!(fs::read_to_string(dst.path().join("g")).unwrap(), "new");
    }

    #[test]
    fn a_directory_and_a_non_directory_never_replace_each_other() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::write(src.path().join("f"), "file").unwrap();
        fs::create_dir(src.path().join("d")).unwrap();
        fs::create_dir_all(dst.path().join("f/kept")).unwrap();
        std::os::unix::fs::symlink("/", dst.path().join("d")).unwrap();
        let (s, d) = (
            open_trusted_dir(src.path()).unwrap(),
            open_trusted_dir(dst.path()).unwrap(),
        );
        let e = copy_entry(s.as_fd(), c"f", d.as_fd(), c"f", Owners::Keep).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot overwrite directory \"f\" with a non-directory"
        );
        assert!(dst.path().join("f/kept").is_dir());
        let e = copy_entry(s.as_fd(), c"d", d.as_fd(), c"d", Owners::Keep).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot overwrite non-directory \"d\" with a directory"
        );
        assert!(
            fs::symlink_metadata(dst.path().join("d"))
                .unwrap()
                .is_symlink()
        );
    }
}
