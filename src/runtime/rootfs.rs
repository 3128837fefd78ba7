//! Mounting a container's root filesystem from its image layers. One seam, so that a FUSE
//! overlay can take the kernel overlay's place where the kernel refuses.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot mount the overlay root filesystem on {target}: {source}")]
    Overlay {
        target: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot mount the FUSE overlay root filesystem on {target}: {source}")]
    Fuse {
        target: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up the vfs root filesystem on {target}: {source}")]
    Vfs {
        target: PathBuf,
        source: std::io::Error,
    },
    #[error("image has no layers")]
    NoLayers,
    #[error("cannot start the server of the root filesystem: {0}")]
    Server(std::io::Error),
}

/// The directories an overlay root filesystem is made of.
#[derive(Debug, Clone)]
pub struct Layers<'a> {
    /// Read-only layers, lowest first.
    pub lower: &'a [PathBuf],
    pub upper: &'a Path,
    pub work: &'a Path,
    /// The upper directory is thrown away after the run (`--rm`): skip the sync of the whole
    /// upper filesystem that unmounting an overlay otherwise does.
    pub volatile: bool,
}

/// What mounting the root filesystem leaves for burrow to do.
#[derive(Debug)]
pub enum Mounted {
    /// Nothing: the kernel serves the mount.
    Done,
    /// A FUSE mount whose requests arrive on this `/dev/fuse` descriptor. burrow serves it
    /// from a process of its own, outside the container, which nothing in the container can
    /// see or kill; see [`RootfsDriver::serve`].
    NeedsServer(OwnedFd),
}

pub trait RootfsDriver {
    /// Mount the layers at `target`, inside the container's mount namespace.
    fn mount(&self, layers: &Layers<'_>, target: &Path) -> Result<Mounted, RootfsError>;

    /// Serve a mount that [`RootfsDriver::mount`] left to burrow (`Mounted::NeedsServer`), from
    /// the container's parent: the foreground `burrow run` or the detached container's monitor.
    fn serve(&self, _layers: &Layers<'_>, _dev: OwnedFd) -> Result<MountServer, RootfsError> {
        Err(RootfsError::Server(std::io::Error::other(
            "this storage driver has no server",
        )))
    }
}

/// The process serving a container's root filesystem. Dropped once the container has exited
/// (when nothing can use the filesystem any more): it is killed and reaped then, rather than
/// left to notice that its mount is gone.
#[derive(Debug)]
pub struct MountServer {
    pid: nix::unistd::Pid,
}

impl MountServer {
    pub fn new(pid: nix::unistd::Pid) -> MountServer {
        MountServer { pid }
    }
}

impl Drop for MountServer {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

/// The kernel's overlayfs, mounted in our user namespace (`userxattr`: overlay metadata lives
/// in `user.overlay.*` xattrs there).
pub struct KernelOverlay;

// Constants of the new mount API (include/uapi/linux/mount.h).
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn cstr(s: &str) -> std::io::Result<CString> {
    CString::new(s)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

fn check(rc: libc::c_long) -> std::io::Result<libc::c_long> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fsconfig(
    fd: &OwnedFd,
    cmd: libc::c_uint,
    key: Option<&str>,
    value: Option<&str>,
) -> std::io::Result<()> {
    let key = key.map(cstr).transpose()?;
    let value = value.map(cstr).transpose()?;
    // SAFETY: fd is an fs context; key/value are NUL-terminated or null as the command needs.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd.as_raw_fd(),
            cmd,
            key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr()),
            value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
            0,
        )
    })
    .map(|_| ())
}

impl KernelOverlay {
    /// With `lowerdir+` (Linux 6.8+) each layer is its own parameter, so no page-size limit on
    /// the option string applies however many layers the image has.
    fn mount_with_fsconfig(&self, layers: &Layers<'_>, target: &Path) -> std::io::Result<()> {
        let name = cstr("overlay")?;
        // SAFETY: plain syscall with a valid C string.
        let fd = check(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) })?;
        // SAFETY: fsopen returned a new descriptor.
        let ctx = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        for lower in layers.lower.iter().rev() {
            fsconfig(
                &ctx,
                FSCONFIG_SET_STRING,
                Some("lowerdir+"),
                Some(&lower.to_string_lossy()),
            )?;
        }
        fsconfig(
            &ctx,
            FSCONFIG_SET_STRING,
            Some("upperdir"),
            Some(&layers.upper.to_string_lossy()),
        )?;
        fsconfig(
            &ctx,
            FSCONFIG_SET_STRING,
            Some("workdir"),
            Some(&layers.work.to_string_lossy()),
        )?;
        fsconfig(&ctx, FSCONFIG_SET_FLAG, Some("userxattr"), None)?;
        if layers.volatile {
            fsconfig(&ctx, FSCONFIG_SET_FLAG, Some("volatile"), None)?;
        }
        fsconfig(&ctx, FSCONFIG_CMD_CREATE, None, None)?;
        // SAFETY: ctx is a created fs context.
        let mfd = check(unsafe {
            libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), FSMOUNT_CLOEXEC, 0)
        })?;
        // SAFETY: fsmount returned a new descriptor.
        let mnt = unsafe { OwnedFd::from_raw_fd(mfd as i32) };
        let empty = cstr("")?;
        let to = cstr(&target.to_string_lossy())?;
        // SAFETY: valid descriptors and C strings.
        check(unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mnt.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        })?;
        Ok(())
    }

    /// Older kernels (before 6.8, no `lowerdir+`, e.g. Debian 12's 6.1): the whole
    /// configuration is one option string, which the kernel cuts at a page (4095 bytes).
    /// Absolute layer paths, ~100 bytes each, overflow that beyond a few dozen layers. So the
    /// mount names every directory by a short relative symlink: see [`link_layers`].
    fn mount_classic(&self, layers: &Layers<'_>, target: &Path) -> std::io::Result<()> {
        let links = link_layers(layers)?;
        let data = classic_options(layers.lower.len(), layers.volatile);
        if data.len() > MAX_MOUNT_DATA {
            // Only past overlay's own limit of 500 layers; refused rather than cut short.
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let cwd = std::env::current_dir()?;
        std::env::set_current_dir(&links)?;
        let res = nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        );
        std::env::set_current_dir(cwd)?;
        res.map_err(std::io::Error::from)
    }
}

/// The longest option string mount(2) passes on whole: one page, the last byte of which the
/// kernel overwrites with NUL (4 KiB is the smallest page size Linux has).
pub const MAX_MOUNT_DATA: usize = 4095;

/// The option string for [`link_layers`]' directory as working directory: layers named by
/// their index (highest first, as overlay wants), upper and work by their link.
pub fn classic_options(layer_count: usize, volatile: bool) -> String {
    let lower: Vec<String> = (0..layer_count).rev().map(|i| i.to_string()).collect();
    format!(
        "lowerdir={},upperdir=upper,workdir=work,userxattr{}",
        lower.join(":"),
        if volatile { ",volatile" } else { "" }
    )
}

/// Make `lower-links/` next to the container's upper dir: symlinks `0`, `1`, ... (lowest
/// layer first), `upper` and `work`; the mount runs in that directory, so each costs a few
/// bytes of the option string, whatever the storage root's path, up to overlay's own limit
/// of 500 layers. Links of the container's own rather than a store-wide directory of short
/// ids (as containers/storage's `l/`): nothing shared to lock, no short names that could
/// collide, nothing to collect when layers are removed; rewritten on every mount, they
/// cannot be stale. Overlay resolves them once, at mount time.
pub fn link_layers(layers: &Layers<'_>) -> std::io::Result<PathBuf> {
    let dir = layers
        .upper
        .parent()
        .unwrap_or(Path::new("/"))
        .join("lower-links");
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir(&dir)?;
    for (i, lower) in layers.lower.iter().enumerate() {
        std::os::unix::fs::symlink(lower, dir.join(i.to_string()))?;
    }
    std::os::unix::fs::symlink(layers.upper, dir.join("upper"))?;
    std::os::unix::fs::symlink(layers.work, dir.join("work"))?;
    Ok(dir)
}

/// Set (to `classic`) by tests to use mount(2) where the kernel has `lowerdir+`.
const FORCE_CLASSIC_ENV: &str = "BURROW_TEST_OVERLAY_MOUNT";

impl RootfsDriver for KernelOverlay {
    fn mount(&self, layers: &Layers<'_>, target: &Path) -> Result<Mounted, RootfsError> {
        if layers.lower.is_empty() {
            return Err(RootfsError::NoLayers);
        }
        let result = if std::env::var_os(FORCE_CLASSIC_ENV).is_some_and(|v| v == "classic") {
            self.mount_classic(layers, target)
        } else {
            match self.mount_with_fsconfig(layers, target) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) => {
                    log::debug!("fsconfig overlay mount failed ({e}); trying mount(2)");
                    self.mount_classic(layers, target)
                }
                other => other,
            }
        };
        result
            .map(|()| Mounted::Done)
            .map_err(|source| RootfsError::Overlay {
                target: target.to_path_buf(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_options_fit_a_page_for_many_layers() {
        let data = classic_options(128, true);
        assert!(data.len() <= MAX_MOUNT_DATA, "{} bytes", data.len());
        assert!(data.starts_with("lowerdir=127:126:"), "{data}");
        assert!(data.contains(":1:0,upperdir=upper,workdir=work,userxattr,volatile"));
        // Overlay's own limit is 500 layers.
        assert!(classic_options(500, true).len() <= MAX_MOUNT_DATA);
    }

    #[test]
    fn links_name_every_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = "/var/lib/some/very/long/storage/root/".repeat(20);
        let lower: Vec<PathBuf> = (0..3)
            .map(|i| Path::new(&root).join(format!("layer{i}/diff")))
            .collect();
        let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
        let layers = Layers {
            lower: &lower,
            upper: &upper,
            work: &work,
            volatile: false,
        };
        // A stale directory from an earlier mount is replaced.
        std::fs::create_dir_all(tmp.path().join("lower-links/9")).unwrap();
        let dir = link_layers(&layers).unwrap();
        assert_eq!(dir, tmp.path().join("lower-links"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["0", "1", "2", "upper", "work"]);
        for (i, l) in lower.iter().enumerate() {
            assert_eq!(&std::fs::read_link(dir.join(i.to_string())).unwrap(), l);
        }
        assert_eq!(std::fs::read_link(dir.join("upper")).unwrap(), upper);
        assert_eq!(std::fs::read_link(dir.join("work")).unwrap(), work);
    }
}
