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

    /// Older kernels: one option string, kept short by naming layers relative to their common
    /// parent directory (the caller's working directory during the mount).
    fn mount_classic(&self, layers: &Layers<'_>, target: &Path) -> std::io::Result<()> {
        let parent = layers.lower[0]
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"))
            .to_path_buf();
        let rel = |p: &Path| -> String {
            p.strip_prefix(&parent)
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_else(|_| p.to_string_lossy().into_owned())
        };
        let lower: Vec<String> = layers.lower.iter().rev().map(|l| rel(l)).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={},userxattr{}",
            lower.join(":"),
            layers.upper.display(),
            layers.work.display(),
            if layers.volatile { ",volatile" } else { "" }
        );
        let cwd = std::env::current_dir()?;
        std::env::set_current_dir(&parent)?;
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

impl RootfsDriver for KernelOverlay {
    fn mount(&self, layers: &Layers<'_>, target: &Path) -> Result<Mounted, RootfsError> {
        if layers.lower.is_empty() {
            return Err(RootfsError::NoLayers);
        }
        let result = match self.mount_with_fsconfig(layers, target) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) => {
                log::debug!("fsconfig overlay mount failed ({e}); trying mount(2)");
                self.mount_classic(layers, target)
            }
            other => other,
        };
        result
            .map(|()| Mounted::Done)
            .map_err(|source| RootfsError::Overlay {
                target: target.to_path_buf(),
                source,
            })
    }
}
