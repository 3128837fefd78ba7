//! Thin wrappers of the `*at` system calls the overlay uses. Every path is relative to a
//! layer's directory descriptor: the server never resolves an absolute path (after the
//! container's `pivot_root` its root is the overlay itself).

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// An errno value.
pub type Errno = i32;
pub type R<T> = Result<T, Errno>;

pub fn last() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(rc: libc::c_int) -> R<libc::c_int> {
    if rc < 0 { Err(last()) } else { Ok(rc) }
}

fn check_size(rc: libc::ssize_t) -> R<usize> {
    if rc < 0 { Err(last()) } else { Ok(rc as usize) }
}

/// A path relative to a layer root as a C string ("." for the root).
pub fn cpath(p: &[u8]) -> CString {
    CString::new(if p.is_empty() { b"." as &[u8] } else { p }).unwrap_or_else(|_| c".".into())
}

/// `parent/name`, with the root as the empty path.
pub fn join(parent: &[u8], name: &OsStr) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + name.len() + 1);
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name.as_bytes());
    p
}

pub fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

pub fn lstatat(dir: RawFd, path: &CStr) -> R<libc::stat> {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and buffer.
    check(unsafe { libc::fstatat(dir, path.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

pub fn fstat(fd: RawFd) -> R<libc::stat> {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid buffer.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

pub fn openat(dir: RawFd, path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> R<OwnedFd> {
    // SAFETY: valid C string.
    let fd = check(unsafe {
        libc::openat(
            dir,
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: openat returned a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn mkdirat(dir: RawFd, path: &CStr, mode: libc::mode_t) -> R<()> {
    // SAFETY: valid C string.
    check(unsafe { libc::mkdirat(dir, path.as_ptr(), mode) }).map(drop)
}

pub fn mknodat(dir: RawFd, path: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> R<()> {
    // SAFETY: valid C string.
    check(unsafe { libc::mknodat(dir, path.as_ptr(), mode, dev) }).map(drop)
}

pub fn symlinkat(target: &CStr, dir: RawFd, path: &CStr) -> R<()> {
    // SAFETY: valid C strings.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, path.as_ptr()) }).map(drop)
}

pub fn linkat(odir: RawFd, old: &CStr, ndir: RawFd, new: &CStr) -> R<()> {
    // SAFETY: valid C strings.
    check(unsafe { libc::linkat(odir, old.as_ptr(), ndir, new.as_ptr(), 0) }).map(drop)
}

pub fn unlinkat(dir: RawFd, path: &CStr, flags: libc::c_int) -> R<()> {
    // SAFETY: valid C string.
    check(unsafe { libc::unlinkat(dir, path.as_ptr(), flags) }).map(drop)
}

pub fn renameat(odir: RawFd, old: &CStr, ndir: RawFd, new: &CStr, flags: libc::c_uint) -> R<()> {
    // SAFETY: valid C strings.
    check(unsafe { libc::renameat2(odir, old.as_ptr(), ndir, new.as_ptr(), flags) }).map(drop)
}

pub fn readlinkat(dir: RawFd, path: &CStr) -> R<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: valid C string and buffer.
    let n = check_size(unsafe {
        libc::readlinkat(dir, path.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    })?;
    buf.truncate(n);
    Ok(buf)
}

pub fn fchownat(dir: RawFd, path: &CStr, uid: u32, gid: u32) -> R<()> {
    // SAFETY: valid C string.
    check(unsafe { libc::fchownat(dir, path.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
        .map(drop)
}

pub fn fchmodat(dir: RawFd, path: &CStr, mode: libc::mode_t) -> R<()> {
    // SAFETY: valid C string.
    check(unsafe { libc::fchmodat(dir, path.as_ptr(), mode, 0) }).map(drop)
}

pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> R<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
}

pub fn fchmod(fd: RawFd, mode: libc::mode_t) -> R<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::fchmod(fd, mode) }).map(drop)
}

pub fn utimensat(dir: RawFd, path: &CStr, times: &[libc::timespec; 2]) -> R<()> {
    // SAFETY: valid C string and two timespecs.
    check(unsafe {
        libc::utimensat(
            dir,
            path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

pub fn ftruncate(fd: RawFd, size: u64) -> R<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::ftruncate(fd, size as libc::off_t) }).map(drop)
}

/// The access and modification times of `st`, for utimensat.
pub fn times_of(st: &libc::stat) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ]
}

pub fn pread_full(fd: RawFd, buf: &mut [u8], mut off: u64) -> R<usize> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the slice is valid for writes of its length.
        let n = unsafe {
            libc::pread(
                fd,
                buf[done..].as_mut_ptr().cast(),
                buf.len() - done,
                off as libc::off_t,
            )
        };
        match n {
            0 => break,
            n if n < 0 => {
                let e = last();
                if e == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            n => {
                done += n as usize;
                off += n as u64;
            }
        }
    }
    Ok(done)
}

pub fn pwrite_full(fd: RawFd, mut buf: &[u8], mut off: u64) -> R<usize> {
    let total = buf.len();
    while !buf.is_empty() {
        // SAFETY: the slice is valid for reads of its length.
        let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off as libc::off_t) };
        if n < 0 {
            let e = last();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
        off += n as u64;
    }
    Ok(total)
}

/// One `write(2)`.
pub fn write(fd: RawFd, buf: &[u8]) -> R<usize> {
    // SAFETY: the slice is valid for reads of its length.
    check_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// One `splice(2)` of up to `len` bytes; `off` as for a pread when given.
pub fn splice(
    from: RawFd,
    off: Option<&mut libc::loff_t>,
    to: RawFd,
    len: usize,
    flags: libc::c_uint,
) -> R<usize> {
    let off = off.map_or(std::ptr::null_mut(), |o| o as *mut libc::loff_t);
    loop {
        // SAFETY: `off` is null or points to a live loff_t; the descriptors are the caller's.
        let n = unsafe { libc::splice(from, off, to, std::ptr::null_mut(), len, flags) };
        if n < 0 && last() == libc::EINTR {
            continue;
        }
        return check_size(n);
    }
}

/// Copy the whole of `from` into `to` (both at offset 0): copy_file_range, which can share
/// extents, falling back to read/write.
pub fn copy_data(from: RawFd, to: RawFd) -> R<()> {
    loop {
        // SAFETY: null offsets use and advance the file positions.
        let n = unsafe {
            libc::copy_file_range(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                1 << 30,
                0,
            )
        };
        if n == 0 {
            return Ok(());
        }
        if n < 0 {
            match last() {
                libc::EINTR => continue,
                libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP => break,
                e => return Err(e),
            }
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    // Carry on from where copy_file_range stopped.
    // SAFETY: lseek on valid descriptors.
    let mut off = unsafe { libc::lseek(from, 0, libc::SEEK_CUR) }.max(0) as u64;
    loop {
        let n = pread_full(from, &mut buf, off)?;
        if n == 0 {
            return Ok(());
        }
        pwrite_full(to, &buf[..n], off)?;
        off += n as u64;
    }
}

pub fn fgetxattr(fd: RawFd, name: &CStr) -> R<Vec<u8>> {
    loop {
        // SAFETY: a null buffer of size 0 asks for the size.
        let size =
            check_size(unsafe { libc::fgetxattr(fd, name.as_ptr(), std::ptr::null_mut(), 0) })?;
        let mut buf = vec![0u8; size];
        // SAFETY: valid buffer.
        match check_size(unsafe {
            libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), size)
        }) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

pub fn flistxattr(fd: RawFd) -> R<Vec<u8>> {
    loop {
        // SAFETY: a null buffer of size 0 asks for the size.
        let size = check_size(unsafe { libc::flistxattr(fd, std::ptr::null_mut(), 0) })?;
        let mut buf = vec![0u8; size];
        // SAFETY: valid buffer.
        match check_size(unsafe { libc::flistxattr(fd, buf.as_mut_ptr().cast(), size) }) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

pub fn fsetxattr(fd: RawFd, name: &CStr, value: &[u8], flags: libc::c_int) -> R<()> {
    // SAFETY: valid C string and buffer.
    check(unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), flags) })
        .map(drop)
}

pub fn fremovexattr(fd: RawFd, name: &CStr) -> R<()> {
    // SAFETY: valid C string.
    check(unsafe { libc::fremovexattr(fd, name.as_ptr()) }).map(drop)
}

/// Copy every extended attribute but the overlay's own from one open file to another,
/// as far as the filesystem and our privileges allow.
pub fn copy_xattrs(from: RawFd, to: RawFd) {
    let Ok(list) = flistxattr(from) else { return };
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if super::fs::is_private_xattr(name) {
            continue;
        }
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        if let Ok(value) = fgetxattr(from, &cname) {
            let _ = fsetxattr(to, &cname, &value, 0);
        }
    }
}

/// The entries of an open directory (without `.` and `..`): name, d_type, d_ino.
pub fn read_dir(fd: OwnedFd) -> R<Vec<(Vec<u8>, u8, u64)>> {
    let raw = fd.as_raw_fd();
    // SAFETY: fdopendir takes ownership of the descriptor on success.
    let dir = unsafe { libc::fdopendir(raw) };
    if dir.is_null() {
        return Err(last());
    }
    std::mem::forget(fd);
    let mut out = Vec::new();
    loop {
        // SAFETY: dir is a valid DIR stream; errno is reset to tell the end from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: as above.
        let ent = unsafe { libc::readdir64(dir) };
        if ent.is_null() {
            let e = last();
            // SAFETY: closes the stream and its descriptor.
            unsafe { libc::closedir(dir) };
            return if e == 0 { Ok(out) } else { Err(e) };
        }
        // SAFETY: readdir returned a valid entry with a NUL-terminated name.
        let (name, ty, ino) = unsafe {
            let e = &*ent;
            (
                CStr::from_ptr(e.d_name.as_ptr()).to_bytes().to_vec(),
                e.d_type,
                e.d_ino,
            )
        };
        if name == b"." || name == b".." {
            continue;
        }
        out.push((name, ty, ino));
    }
}
