//! burrow's own overlay filesystem in userspace, for where the kernel refuses an overlay mount
//! in a user namespace. Same on-disk format as the kernel overlay with `userxattr` (whiteouts
//! are 0:0 character devices, opaque directories carry `user.overlay.opaque=y`), so a
//! container's upper directory is valid for either driver.
//!
//! # Mounting without libfuse or fusermount
//! burrow is root in its own user namespace, where the kernel lets it mount FUSE itself: open
//! `/dev/fuse`, `mount("burrow-overlay", target, "fuse", 0, "fd=N,rootmode=40000,...")`, then
//! serve the descriptor with fuser's `Session::from_fd` (fuser is built without its libfuse
//! feature and never runs a helper). `allow_other` lets every uid of the container in, and
//! `default_permissions` leaves permission checks to the kernel, against the modes and owners
//! we report.
//!
//! # Where the server lives
//! [`RootfsDriver::mount`] runs in the container's first process after clone, in the new mount
//! and pid namespaces, before `pivot_root`: it mounts and hands the `/dev/fuse` descriptor to
//! its parent over the sync channel. The parent — the detached container's monitor, or the
//! foreground `burrow run` — forks the server ([`RootfsDriver::serve`]; it is single-threaded
//! there, the server starts its threads after the fork). So the server is a process of
//! burrow's, outside the container's pid namespace:
//! * nothing in the container sees it in `ps` or can kill it (a `kill -9 -1` inside leaves
//!   the filesystem working);
//! * when the container's pid 1 has exited, the kernel has killed every process of its pid
//!   namespace and nothing can use the filesystem: the parent then kills and reaps the server
//!   (`MountServer`'s drop). The mount namespace, the only place the mount exists, is gone
//!   with the container, so `--rm` finds no server or mount to clean up;
//! * if the parent is killed, the container dies with it (its parent-death signal), its
//!   mount goes away, reading `/dev/fuse` fails with `ENODEV` and the server exits;
//! * it detaches from the terminal's session and ignores job-control and termination
//!   signals, so a ^C at the terminal of a foreground run does not reach it.
//!
//! The server never resolves a path: it works on descriptors of the layer directories opened
//! before the fork, keeps only those, `/dev/fuse` and `/dev/null` open, and never touches
//! burrow's sync channel, the monitor's log pipes or the container's stdio. [`serve`] takes
//! the `/dev/fuse` descriptor and the filesystem and runs anywhere (the tests serve from a
//! thread).
//!
//! # Semantics
//! As the kernel overlay's (see `fs` for the details): copy-up of data, mode, owner, xattrs
//! and times on any change, parents first, through the work directory and a rename, so a
//! crash never leaves a half-copied file in the upper layer; whiteouts for deleted lower
//! entries; opaque directories over whiteouts; renaming a directory that has content in the
//! image's layers fails with `EXDEV` as the kernel overlay's does without `redirect_dir`
//! (`mv` then copies). Known differences: hard links between files of the image's layers are
//! broken by copy-up (so is the kernel's without `index=on`); xattrs of symlinks and device
//! files are not read or copied; the kernel caches names and attributes for a second.

mod fs;
pub mod layout;
mod splice_reply;
mod sys;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

pub use fs::OverlayFs;

use crate::runtime::rootfs::{self, Layers, MountServer, RootfsDriver, RootfsError};

/// Worker threads of a server. One, as fuse-overlayfs: a sequential read sends one 128 KiB
/// request after the other (the kernel's readahead window for FUSE), and a single thread finds
/// the next one waiting when it is done with the last, while more threads each wake up for
/// one, on another CPU (2 GiB read: 1 thread ~690 ms, 2 ~760, 4 ~840 on this 2-core machine).
/// The cost: a long request (copy-up of a big file) holds up the others meanwhile.
const THREADS: usize = 1;

/// The FUSE overlay as a root filesystem driver.
pub struct FuseOverlay;

fn open_dev(path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    sys::openat(libc::AT_FDCWD, &c, flags, 0).map_err(io::Error::from_raw_os_error)
}

/// Mount a FUSE filesystem served through `dev` at `target`.
fn mount_fuse(dev: &OwnedFd, target: &Path) -> io::Result<()> {
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let opts = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},max_read={},allow_other,default_permissions,subtype=burrow-overlay",
        dev.as_raw_fd(),
        splice_reply::MAX_READ
    );
    let target_c = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let opts_c = CString::new(opts).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid C strings.
    let rc = unsafe {
        libc::mount(
            c"burrow-overlay".as_ptr(),
            target_c.as_ptr(),
            c"fuse".as_ptr(),
            0,
            opts_c.as_ptr().cast(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Serve a mounted filesystem until it is unmounted.
pub fn serve(mut fs: OverlayFs, dev: OwnedFd, threads: usize) -> io::Result<()> {
    fs.reply_by_splice(dev.try_clone()?);
    let mut config = fuser::Config::default();
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(threads.max(1));
    // clone_fd would open /dev/fuse by path, which after pivot_root is the container's.
    config.clone_fd = false;
    let session = fuser::Session::from_fd(fs, dev, fuser::SessionACL::All, config)?;
    session.run()
}

/// Close every descriptor of this process but `keep`.
fn close_all_but(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut from: u32 = 0;
    for &fd in keep.iter() {
        let fd = fd as u32;
        if fd > from {
            // SAFETY: closing descriptors nothing of ours uses any more.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) };
        }
        from = fd + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
}

/// The forked server process. Never returns.
fn server_main(fs: OverlayFs, dev: OwnedFd, null: OwnedFd, keep_stderr: bool) -> ! {
    // SAFETY: this process is a fresh fork of a single-threaded one; only plain syscalls on
    // our own descriptors until the session starts its threads.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_NAME, c"burrow-fuse".as_ptr(), 0, 0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
        if !keep_stderr {
            libc::dup2(null.as_raw_fd(), 2);
        }
        libc::umask(0);
    }
    let mut keep = fs.fds();
    keep.extend([0, 1, 2, dev.as_raw_fd()]);
    drop(null);
    close_all_but(&mut keep);
    let code = match serve(fs, dev, THREADS) {
        Ok(()) => 0,
        Err(e) => {
            if keep_stderr {
                eprintln!("burrow-fuse: {e}");
            }
            1
        }
    };
    // SAFETY: leave without running destructors of the parent's state copied into us.
    unsafe { libc::_exit(code) }
}

impl RootfsDriver for FuseOverlay {
    fn mount(&self, layers: &Layers<'_>, target: &Path) -> Result<rootfs::Mounted, RootfsError> {
        if layers.lower.is_empty() {
            return Err(RootfsError::NoLayers);
        }
        let err = |source: io::Error| RootfsError::Fuse {
            target: target.to_path_buf(),
            source,
        };
        let dev = open_dev("/dev/fuse", libc::O_RDWR).map_err(err)?;
        mount_fuse(&dev, target).map_err(err)?;
        Ok(rootfs::Mounted::NeedsServer(dev))
    }

    fn serve(&self, layers: &Layers<'_>, dev: OwnedFd) -> Result<MountServer, RootfsError> {
        let fs = OverlayFs::new(layers.lower, layers.upper, layers.work, layers.volatile)
            .map_err(RootfsError::Server)?;
        let null = open_dev("/dev/null", libc::O_RDWR).map_err(RootfsError::Server)?;
        let keep_stderr = std::env::var_os("BURROW_FUSE_DEBUG").is_some();
        // SAFETY: the caller (burrow starting a container) is single-threaded; the child only
        // runs server_main, which never returns.
        match unsafe { libc::fork() } {
            -1 => Err(RootfsError::Server(io::Error::last_os_error())),
            0 => server_main(fs, dev, null, keep_stderr),
            pid => Ok(MountServer::new(nix::unistd::Pid::from_raw(pid))),
        }
    }
}

/// A FUSE overlay served by threads of this process, unmounted on drop.
pub struct Mounted {
    target: PathBuf,
    server: Option<JoinHandle<io::Result<()>>>,
}

/// Mount the overlay at `target` and serve it from threads of this process (tests, tools).
/// Needs the right to mount FUSE: root, or root in a user namespace that owns the caller's
/// mount namespace.
pub fn mount_in_process(layers: &Layers<'_>, target: &Path) -> io::Result<Mounted> {
    let fs = OverlayFs::new(layers.lower, layers.upper, layers.work, layers.volatile)?;
    let dev = open_dev("/dev/fuse", libc::O_RDWR)?;
    mount_fuse(&dev, target)?;
    let server = std::thread::Builder::new()
        .name("burrow-fuse".into())
        .spawn(move || serve(fs, dev, 2))?;
    Ok(Mounted {
        target: target.to_path_buf(),
        server: Some(server),
    })
}

impl Mounted {
    /// Unmount and wait for the server to finish.
    pub fn unmount(mut self) -> io::Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> io::Result<()> {
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH)
            .map_err(io::Error::from)?;
        server
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("FUSE server panicked")))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests;
