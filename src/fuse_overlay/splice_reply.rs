//! Answering FUSE_READ by `splice(2)`: the file's page-cache pages go into a pipe behind the
//! reply header and from there to `/dev/fuse`, so the data is copied once (by the kernel,
//! into the reader's pages) instead of twice through a buffer of ours (`pread`, then
//! `writev`). fuse-overlayfs (libfuse) answers reads the same way; this is what makes
//! sequential reads through the overlay as fast as its.
//!
//! fuser has no reply by splice, so the answer bypasses its `ReplyData`; see
//! [`SpliceReplier::answered`]. Anything unexpected (a pipe that cannot grow, a file that
//! shrank under us, a request the kernel gave up on) discards the thread's pipe and tells the
//! caller to answer the ordinary way, which then sends the data or the error.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use fuser::ReplyData;

use super::sys;

/// Pipe capacity: the most an unprivileged process may give a pipe by default
/// (`/proc/sys/fs/pipe-max-size`); one slot holds the header, the others the data.
const PIPE_BYTES: usize = 1 << 20;

/// The largest read the mount lets the kernel send (`max_read`): every read then fits the
/// pipe with its header. (Sequential reads come as 128 KiB requests anyway: that is the
/// readahead window of a FUSE mount, which only root can widen.)
pub const MAX_READ: u32 = (PIPE_BYTES / 2) as u32;

const PAGE: u64 = 4096;

/// Replies sent by splice in this process, for tests to see that the path is taken.
static SPLICED: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
pub fn spliced_replies() -> u64 {
    SPLICED.load(Ordering::Relaxed)
}
const HEADER_LEN: usize = 16;

/// Sends read replies through a descriptor of the mounted filesystem's `/dev/fuse`.
pub struct SpliceReplier {
    dev: OwnedFd,
}

/// A pipe of one server thread.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

thread_local! {
    /// `None` until the first read; `Some(None)` when this thread cannot have a big pipe.
    static PIPE: RefCell<Option<Option<Pipe>>> = const { RefCell::new(None) };
}

impl Pipe {
    fn new() -> Option<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: a valid two-element array for the descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return None;
        }
        // SAFETY: pipe2 returned two descriptors nothing else owns.
        let pipe = unsafe {
            Pipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            }
        };
        // SAFETY: fcntl on our own descriptor.
        let size = unsafe {
            libc::fcntl(
                pipe.write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                PIPE_BYTES as libc::c_int,
            )
        };
        (size >= PIPE_BYTES as libc::c_int).then_some(pipe)
    }
}

impl SpliceReplier {
    pub fn new(dev: OwnedFd) -> SpliceReplier {
        SpliceReplier { dev }
    }

    /// Answer request `unique` with up to `size` bytes of `fd` at `offset`. False when it
    /// was not answered: nothing to splice (end of file), too much for the pipe, or a pipe or
    /// file that misbehaved (the pipe is then discarded); the caller answers the ordinary way.
    pub fn reply(&self, unique: u64, fd: RawFd, offset: u64, size: u32) -> bool {
        let Ok(st) = sys::fstat(fd) else {
            return false;
        };
        let len = (st.st_size.max(0) as u64)
            .saturating_sub(offset)
            .min(size as u64) as usize;
        let slots = (offset % PAGE + len as u64).div_ceil(PAGE) as usize + 1;
        if len == 0 || slots > PIPE_BYTES / PAGE as usize {
            return false;
        }
        PIPE.with_borrow_mut(|slot| {
            let Some(pipe) = slot.get_or_insert_with(Pipe::new) else {
                return false;
            };
            if self.send(pipe, unique, fd, offset, len).is_err() {
                // Whatever is left in the pipe belongs to no reply: start afresh.
                *slot = None;
                return false;
            }
            true
        })
    }

    fn send(&self, pipe: &Pipe, unique: u64, fd: RawFd, offset: u64, len: usize) -> sys::R<()> {
        let total = HEADER_LEN + len;
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&(total as u32).to_ne_bytes());
        // bytes 4..8: error 0
        header[8..].copy_from_slice(&unique.to_ne_bytes());
        // Less than PIPE_BUF into an empty pipe: all of it or nothing.
        if sys::write(pipe.write.as_raw_fd(), &header)? != HEADER_LEN {
            return Err(libc::EIO);
        }
        let mut off = offset as libc::loff_t;
        let mut moved = 0;
        while moved < len {
            let n = sys::splice(
                fd,
                Some(&mut off),
                pipe.write.as_raw_fd(),
                len - moved,
                libc::SPLICE_F_NONBLOCK,
            )?;
            if n == 0 {
                // The file shrank since fstat: the header promises more than there is.
                return Err(libc::EIO);
            }
            moved += n;
        }
        // /dev/fuse takes a reply in one write: all of it is in the pipe.
        let n = sys::splice(pipe.read.as_raw_fd(), None, self.dev.as_raw_fd(), total, 0)?;
        if n != total {
            return Err(libc::EIO);
        }
        SPLICED.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Mark `reply` as answered. fuser would otherwise answer it again when it is dropped
    /// (with EIO, for a request that no longer exists). Forgetting it leaves only a reference
    /// count of fuser's channel behind, so the channel's descriptor stays open until the
    /// process ends: the forked server ends with its mount, and `mount_in_process` is for
    /// tests.
    pub fn answered(reply: ReplyData) {
        std::mem::forget(reply);
    }
}
