//! File operations confined to a directory tree that hostile content controls.
//!
//! Paths are resolved by the kernel with `openat2(RESOLVE_IN_ROOT)`, so a symlink (absolute or
//! full of `..`) planted by a layer resolves inside the layer directory, never outside; the
//! final component is then created or changed with `*at` calls that do not follow symlinks.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Retry a syscall interrupted by a signal.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

pub fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Open a directory we trust (the layer root itself), not following a final symlink.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_bytes())?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid NUL-terminated path; the returned fd is owned by us.
    retry(|| cvt(unsafe { libc::open(c.as_ptr(), flags) }))
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open `path` (relative, `/`-separated) resolved with `root` as `/`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = if path.is_empty() { &b"."[..] } else { path };
    let c = cstring(path)?;
    // SAFETY: open_how is plain integers, for which all zeroes is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    loop {
        // SAFETY: `how` is a valid open_how of the size we pass; the fd is owned by us.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if ret >= 0 {
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // EAGAIN: a concurrent rename raced with resolution; nobody else writes here, retry.
            Some(libc::EINTR) | Some(libc::EAGAIN) => {}
            Some(libc::ENOSYS) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "openat2 is not available: burrow needs Linux 5.6 or later to unpack layers safely",
                ));
            }
            _ => return Err(err),
        }
    }
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY;

/// Open directory `components` inside `root`, creating missing ones (mode 0755) the way tar
/// creates the implicit parents of an entry.
pub fn open_dir_in_root(root: BorrowedFd<'_>, components: &[&[u8]]) -> io::Result<OwnedFd> {
    let full = components.join(&b'/');
    match open_in_root(root, &full, DIR_FLAGS) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    let mut parent = open_in_root(root, b".", DIR_FLAGS)?;
    for i in 0..components.len() {
        let prefix = components[..=i].join(&b'/');
        let dir = match open_in_root(root, &prefix, DIR_FLAGS) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let name = cstring(components[i])?;
                match mkdirat(parent.as_fd(), &name, 0o755) {
                    Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                    // EEXIST with ENOENT above: a dangling symlink; open reports it below.
                    _ => {}
                }
                open_in_root(root, &prefix, DIR_FLAGS)?
            }
            other => other?,
        };
        parent = dir;
    }
    Ok(parent)
}

pub fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<libc::stat>> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd and path; `st` is written by the kernel on success.
    let ret = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match cvt(ret) {
        Ok(_) => Ok(Some(unsafe { st.assume_init() })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd and path.
    retry(|| cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) })).map(drop)
}

/// Open an existing child for metadata changes without following a symlink.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid fd and path; the fd is owned by us.
    retry(|| cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) }))
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid fd and paths.
    retry(|| cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }))
        .map(drop)
}

/// Hard link without following a symlink at the source.
pub fn linkat(
    src_dir: BorrowedFd<'_>,
    src: &CStr,
    dst_dir: BorrowedFd<'_>,
    dst: &CStr,
) -> io::Result<()> {
    // SAFETY: valid fds and paths.
    retry(|| {
        cvt(unsafe {
            libc::linkat(
                src_dir.as_raw_fd(),
                src.as_ptr(),
                dst_dir.as_raw_fd(),
                dst.as_ptr(),
                0,
            )
        })
    })
    .map(drop)
}

pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    // SAFETY: valid fd and path.
    retry(|| cvt(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) })).map(drop)
}

pub fn lchownat(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd and path.
    retry(|| {
        cvt(unsafe {
            libc::fchownat(
                dir.as_raw_fd(),
                name.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    })
    .map(drop)
}

pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    retry(|| cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })).map(drop)
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    retry(|| cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })).map(drop)
}

/// chmod of a child we just created and know is not a symlink (FIFOs, which we can't open).
pub fn fchmodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd and path.
    retry(|| cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode, 0) })).map(drop)
}

pub fn timespec(secs: i64, nanos: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as _,
    }
}

/// Set atime and mtime of a child without following a symlink.
pub fn lutimesat(dir: BorrowedFd<'_>, name: &CStr, time: libc::timespec) -> io::Result<()> {
    let times = [time, time];
    // SAFETY: valid fd, path and two timespecs.
    retry(|| {
        cvt(unsafe {
            libc::utimensat(
                dir.as_raw_fd(),
                name.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    })
    .map(drop)
}

pub fn futimens(fd: BorrowedFd<'_>, time: libc::timespec) -> io::Result<()> {
    let times = [time, time];
    // SAFETY: valid fd and two timespecs.
    retry(|| cvt(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })).map(drop)
}

pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: valid fd, name and value buffer.
    let ret = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    cvt(ret).map(drop)
}

pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd and path.
    retry(|| cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })).map(drop)
}

/// Remove `name` in `dir` whatever it is, a directory with all its contents included; no
/// symlink is followed. Missing is fine.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let Some(st) = lstatat(dir, name)? else {
        return Ok(());
    };
    if !is_dir(&st) {
        return match unlinkat(dir, name, 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other,
        };
    }
    let child = openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    // Read-only directories would block a non-root caller (unit tests, cleanup outside a
    // user namespace); root ignores the mode anyway.
    let _ = fchmod(child.as_fd(), 0o700);
    let dup = child.try_clone()?;
    let mut names = Vec::new();
    {
        let mut listing = nix::dir::Dir::from_fd(dup).map_err(io::Error::from)?;
        for entry in listing.iter() {
            let entry = entry.map_err(io::Error::from)?;
            let n = entry.file_name();
            if n.to_bytes() != b"." && n.to_bytes() != b".." {
                names.push(n.to_owned());
            }
        }
    }
    for n in names {
        remove_all_at(child.as_fd(), &n)?;
    }
    match unlinkat(dir, name, libc::AT_REMOVEDIR) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// Remove a whole tree given by path (its parent is trusted).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot remove /",
        ));
    };
    let parent_fd = open_dir(parent)?;
    remove_all_at(parent_fd.as_fd(), &cstring(name.as_bytes())?)
}
