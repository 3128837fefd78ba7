//! The `vfs` storage driver: the last resort where neither the kernel overlay nor burrow's FUSE
//! overlay can be mounted. The container's root is a plain directory, its `upper` dir, made on
//! first use by copying the image's layers into it in order (owners, modes, times, xattrs,
//! symlinks, hard links within a layer), applying the overlay whiteouts the layers carry (a 0:0
//! character device deletes a path, `user.overlay.opaque=y` on a directory hides what lower
//! layers put there), then bind-mounted as the container's root.
//!
//! Crash safety: the copy is built in `work/vfs-tmp`, swapped with `upper` atomically
//! (`RENAME_EXCHANGE`), and only then is `work/.vfs-populated` written. Without the marker
//! the copy is redone, and whatever `upper` holds (an overlay upper dir from a run with another
//! driver, or a complete copy whose marker was never written) is applied on top as one more
//! layer, so nothing written by the container is lost.
//!
//! `diff` and `commit` read the upper dir as an overlay upper: for a container run with `vfs`
//! they see the whole filesystem as changed (acceptable for the last-resort driver).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, lchown};
use std::path::{Path, PathBuf};

use super::rootfs::{Layers, Mounted, RootfsDriver, RootfsError};
use crate::storage::layer_tar::{is_opaque, is_whiteout};

pub struct Vfs;

const MARKER: &str = ".vfs-populated";
const TMP: &str = "vfs-tmp";
const OVERLAY_XATTR_PREFIX: &[u8] = b"user.overlay.";

impl RootfsDriver for Vfs {
    fn mount(&self, layers: &Layers<'_>, target: &Path) -> Result<Mounted, RootfsError> {
        if layers.lower.is_empty() {
            return Err(RootfsError::NoLayers);
        }
        let err = |source: io::Error| RootfsError::Vfs {
            target: target.to_path_buf(),
            source,
        };
        populate(layers).map_err(err)?;
        nix::mount::mount(
            Some(layers.upper),
            target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| err(e.into()))?;
        Ok(Mounted::Done)
    }
}

/// Whether the container's upper dir is a complete vfs copy: it must stay with vfs, as an
/// overlay would show the lower layers' files that the container deleted from its copy.
pub fn owns(layers: &Layers<'_>) -> bool {
    layers.work.join(MARKER).exists()
}

/// Make `upper` a complete copy of the layers unless the marker says it already is.
fn populate(layers: &Layers<'_>) -> io::Result<()> {
    let marker = layers.work.join(MARKER);
    let tmp = layers.work.join(TMP);
    fs::create_dir_all(layers.work)?;
    fs::create_dir_all(layers.upper)?;
    if marker.exists() {
        // A crash after the marker but before the old tree was removed.
        if fs::symlink_metadata(&tmp).is_ok() {
            fs::remove_dir_all(&tmp)?;
        }
        return Ok(());
    }
    if fs::symlink_metadata(&tmp).is_ok() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir(&tmp)?;
    for layer in layers.lower {
        apply_layer(layer, &tmp)?;
    }
    // What the upper dir holds already (see the module comment) goes on top.
    if fs::read_dir(layers.upper)?.next().is_some() {
        apply_layer(layers.upper, &tmp)?;
    }
    copy_dir_meta(layers.upper, &tmp)?;
    exchange(&tmp, layers.upper)?;
    let f = fs::File::create(&marker)?;
    f.sync_all()?;
    fs::remove_dir_all(&tmp)
}

/// Swap two directories atomically.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let a = cpath(a)?;
    let b = cpath(b)?;
    // SAFETY: valid C strings.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn get_xattr(path: &Path, name: &CStr) -> Option<Vec<u8>> {
    let p = cpath(path).ok()?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid C strings and a buffer of the given length.
        let n = unsafe {
            libc::lgetxattr(
                p.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Some(buf);
        }
        if io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return None;
    }
}

/// Copy the xattrs of `src` to `dst`, except the overlay's own metadata. Best effort: a
/// filesystem without xattr support loses them, as a plain copy would.
fn copy_xattrs(src: &Path, dst: &Path) {
    let (Ok(s), Ok(d)) = (cpath(src), cpath(dst)) else {
        return;
    };
    // SAFETY: a null buffer asks for the size.
    let size = unsafe { libc::llistxattr(s.as_ptr(), std::ptr::null_mut(), 0) };
    if size <= 0 {
        return;
    }
    let mut names = vec![0u8; size as usize];
    // SAFETY: buffer of the given length.
    let n = unsafe { libc::llistxattr(s.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return;
    }
    names.truncate(n as usize);
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        if let Some(value) = get_xattr(src, &cname) {
            // SAFETY: valid C strings and a buffer of the given length.
            let rc = unsafe {
                libc::lsetxattr(
                    d.as_ptr(),
                    cname.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            if rc < 0 {
                log::debug!(
                    "vfs: cannot copy xattr {} to {}: {}",
                    String::from_utf8_lossy(name),
                    dst.display(),
                    io::Error::last_os_error()
                );
            }
        }
    }
}

/// Owner, then mode (a chown clears set-id bits), xattrs (a chown clears file capabilities),
/// times last.
fn copy_meta(meta: &fs::Metadata, src: &Path, dst: &Path) -> io::Result<()> {
    lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    copy_xattrs(src, dst);
    super::copy::set_times(meta, dst)
}

/// The root directory's own owner, mode and times (the copy's root is made by us).
fn copy_dir_meta(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn clear_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        remove_any(&entry?.path())?;
    }
    Ok(())
}

/// Apply one layer directory onto the tree at `dst`.
fn apply_layer(layer: &Path, dst: &Path) -> io::Result<()> {
    let mut links = HashMap::new();
    apply_dir(layer, dst, &mut links)?;
    // The top of the tree takes the topmost layer's owner, mode and times.
    let meta = fs::symlink_metadata(layer)?;
    copy_meta(&meta, layer, dst)
}

fn apply_dir(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from)?;
        let kind = meta.file_type();
        if is_whiteout(&meta) {
            remove_any(&to)?;
            continue;
        }
        if kind.is_dir() {
            match fs::symlink_metadata(&to) {
                Ok(m) if m.is_dir() => {
                    if is_opaque(&from) {
                        clear_dir(&to)?;
                    }
                }
                Ok(_) => {
                    fs::remove_file(&to)?;
                    fs::create_dir(&to)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&to)?,
                Err(e) => return Err(e),
            }
            apply_dir(&from, &to, links)?;
            copy_meta(&meta, &from, &to)?;
            continue;
        }
        remove_any(&to)?;
        if kind.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1
                && let Some(first) = links.get(&key)
                && fs::hard_link(first, &to).is_ok()
            {
                continue;
            }
            fs::copy(&from, &to)?;
            if meta.nlink() > 1 {
                links.insert(key, to.clone());
            }
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
            let c = cpath(&to)?;
            // SAFETY: valid path; mode and device from the source's metadata.
            let rc = unsafe { libc::mknod(c.as_ptr(), meta.mode(), meta.rdev()) };
            if rc < 0 {
                // Device nodes cannot be made in a user namespace: skip them, as docker's
                // rootless mode does.
                log::debug!(
                    "vfs: skipping {}: {}",
                    from.display(),
                    io::Error::last_os_error()
                );
                continue;
            }
        } else {
            // Sockets are not copied.
            continue;
        }
        copy_meta(&meta, &from, &to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    fn layers_dir() -> (tempfile::TempDir, Vec<PathBuf>, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let l0 = dir.path().join("l0");
        let l1 = dir.path().join("l1");
        fs::create_dir_all(l0.join("d/sub")).unwrap();
        fs::write(l0.join("d/keep"), "keep").unwrap();
        fs::write(l0.join("d/over"), "old").unwrap();
        fs::write(l0.join("d/sub/x"), "x").unwrap();
        fs::hard_link(l0.join("d/keep"), l0.join("d/keep-link")).unwrap();
        std::os::unix::fs::symlink("keep", l0.join("d/sym")).unwrap();
        fs::create_dir_all(l1.join("d")).unwrap();
        fs::write(l1.join("d/over"), "new").unwrap();
        fs::write(l1.join("d/sub"), "now a file").unwrap();
        let upper = dir.path().join("upper");
        let work = dir.path().join("work");
        (dir, vec![l0, l1], upper, work)
    }

    #[test]
    fn layers_are_copied_in_order_and_marker_written() {
        let (_dir, lower, upper, work) = layers_dir();
        let layers = Layers {
            lower: &lower,
            upper: &upper,
            work: &work,
            volatile: false,
        };
        populate(&layers).unwrap();
        assert_eq!(read(&upper.join("d/keep")), "keep");
        assert_eq!(read(&upper.join("d/over")), "new");
        assert_eq!(read(&upper.join("d/sub")), "now a file");
        assert_eq!(
            fs::read_link(upper.join("d/sym")).unwrap(),
            Path::new("keep")
        );
        let a = fs::metadata(upper.join("d/keep")).unwrap();
        let b = fs::metadata(upper.join("d/keep-link")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert!(work.join(MARKER).exists());
        assert!(!work.join(TMP).exists());
        // With the marker, a container's writes stay.
        fs::write(upper.join("d/keep"), "changed").unwrap();
        populate(&layers).unwrap();
        assert_eq!(read(&upper.join("d/keep")), "changed");
    }

    #[test]
    fn missing_marker_redoes_the_copy_keeping_upper_content() {
        let (_dir, lower, upper, work) = layers_dir();
        fs::create_dir_all(upper.join("d")).unwrap();
        fs::write(upper.join("d/written"), "by the container").unwrap();
        // A half-made copy from a crash.
        fs::create_dir_all(work.join(TMP).join("junk")).unwrap();
        let layers = Layers {
            lower: &lower,
            upper: &upper,
            work: &work,
            volatile: false,
        };
        populate(&layers).unwrap();
        assert_eq!(read(&upper.join("d/written")), "by the container");
        assert_eq!(read(&upper.join("d/over")), "new");
        assert!(!upper.join("junk").exists());
    }

    /// Whiteouts need mknod 0:0 and `user.*` xattrs, which not every test environment allows.
    #[test]
    fn whiteouts_and_opaque_dirs() {
        let (_dir, lower, upper, work) = layers_dir();
        let wh = cpath(&lower[1].join("d/keep")).unwrap();
        // SAFETY: valid path.
        if unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR | 0o600, 0) } < 0 {
            eprintln!("skipping: cannot make a whiteout here");
            return;
        }
        fs::create_dir_all(lower[1].join("opq")).unwrap();
        fs::create_dir_all(lower[0].join("opq")).unwrap();
        fs::write(lower[0].join("opq/old"), "old").unwrap();
        fs::write(lower[1].join("opq/new"), "new").unwrap();
        let p = cpath(&lower[1].join("opq")).unwrap();
        // SAFETY: valid strings and buffer.
        if unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                c"user.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        } < 0
        {
            eprintln!("skipping: no user xattrs here");
            return;
        }
        let layers = Layers {
            lower: &lower,
            upper: &upper,
            work: &work,
            volatile: false,
        };
        populate(&layers).unwrap();
        assert!(fs::symlink_metadata(upper.join("d/keep")).is_err());
        assert_eq!(read(&upper.join("d/keep-link")), "keep");
        assert!(!upper.join("opq/old").exists());
        assert_eq!(read(&upper.join("opq/new")), "new");
        assert!(!is_opaque(&upper.join("opq")));
    }
}
