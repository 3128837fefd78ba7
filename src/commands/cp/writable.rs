//! docker's refusal to copy into what a container has read-only: its root filesystem
//! (`--read-only`) or a volume or bind mount marked `:ro`. As docker's daemon, only the
//! directory the copy lands in (the extraction point) is looked at: a writable volume under a
//! read-only root takes copies.
//!
//! The directory is told apart by the mount it is on, which the kernel reports for the open
//! descriptor, after every link on the way was resolved: the root's mount is the container's
//! own filesystem, whose `--read-only` the container's flags say (a stopped container's is
//! mounted writable to copy, as docker's daemon mounts it); any other is one of its mounts,
//! read-only as it is mounted.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::exit::refused;

/// The container a copy goes into.
pub struct Container<'a> {
    pub root: BorrowedFd<'a>,
    /// `--read-only`.
    pub read_only_root: bool,
    /// Its name as the user gave it, for messages.
    pub name: &'a str,
}

impl Container<'_> {
    /// Refuse, in docker's words, a copy into the directory `dir` when it is read-only.
    pub fn check(&self, dir: BorrowedFd<'_>) -> anyhow::Result<()> {
        if mount_id(dir)? != mount_id(self.root)? {
            if is_read_only(dir)? {
                return Err(refused(format!(
                    "mounted volume is marked read-only: container {} mounts it read-only; \
                     copy into a writable path",
                    self.name
                )));
            }
            return Ok(());
        }
        if self.read_only_root {
            return Err(refused(format!(
                "container rootfs is marked read-only: container {} was created with \
                 --read-only; copy into one of its writable volumes",
                self.name
            )));
        }
        Ok(())
    }
}

/// The id of the mount `fd` is on.
fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: statx is plain data, which all zeroes is a valid value of.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, an empty C string with AT_EMPTY_PATH, and a statx to fill.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel does not tell which mount a file is on (Linux 5.8 or later does)",
        ));
    }
    Ok(stx.stx_mnt_id)
}

fn is_read_only(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = nix::sys::statvfs::fstatvfs(fd)?;
    Ok(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn the_root_refuses_only_when_read_only() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        let rootfd = std::fs::File::open(root.path()).unwrap();
        let sub = std::fs::File::open(root.path().join("sub")).unwrap();
        let mut c = Container {
            root: rootfd.as_fd(),
            read_only_root: false,
            name: "c",
        };
        c.check(sub.as_fd()).unwrap();
        c.read_only_root = true;
        let err = c.check(sub.as_fd()).unwrap_err().to_string();
        assert!(
            err.starts_with("container rootfs is marked read-only"),
            "{err}"
        );
    }

    #[test]
    fn another_mount_is_judged_by_its_own_flags() {
        // /proc is another mount than a temporary directory's, and read-write; /proc/sys is
        // read-only in containers, not necessarily here, so only the writable case is certain.
        let root = tempfile::tempdir().unwrap();
        let rootfd = std::fs::File::open(root.path()).unwrap();
        let proc = std::fs::File::open("/proc").unwrap();
        let c = Container {
            root: rootfd.as_fd(),
            read_only_root: true,
            name: "c",
        };
        c.check(proc.as_fd()).unwrap();
    }
}
