//! Typed messages between burrow and the container's first process, over a SOCK_SEQPACKET
//! socketpair (one datagram a message; a descriptor may ride along with SCM_RIGHTS).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::cmsg_space;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

/// From the container's first process to burrow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildMessage {
    /// The pty master; the descriptor travels with the message.
    PtyMaster,
    /// The root filesystem is a FUSE mount for burrow to serve; its `/dev/fuse` descriptor
    /// travels with the message.
    MountServer,
    /// Mounts and namespaces are ready; burrow may attach networking.
    Ready,
    /// Setting up the container failed; exit with `code`.
    Failed { code: u8, message: String },
}

/// From burrow to the container's first process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParentMessage {
    /// Everything outside the container is ready: exec the command.
    Start,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("container sync channel: {0}")]
    Sys(#[from] nix::Error),
    #[error("container sync channel: malformed message: {0}")]
    Decode(#[from] serde_json::Error),
}

pub struct Channel {
    fd: OwnedFd,
}

/// Two connected ends; both close on exec, so the command never inherits either.
pub fn channel_pair() -> Result<(Channel, Channel), SyncError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send<T: Serialize>(&self, msg: &T, fd: Option<RawFd>) -> Result<(), SyncError> {
        let bytes = serde_json::to_vec(msg)?;
        let iov = [IoSlice::new(&bytes)];
        let fds;
        let cmsgs: Vec<ControlMessage<'_>> = match fd {
            Some(f) => {
                fds = [f];
                vec![ControlMessage::ScmRights(&fds)]
            }
            None => Vec::new(),
        };
        sendmsg::<()>(self.fd.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None)?;
        Ok(())
    }

    /// The next message, or `None` once the other end is closed (for the container, that means
    /// exec succeeded: the channel is close-on-exec).
    pub fn recv<T: for<'de> Deserialize<'de>>(
        &self,
    ) -> Result<Option<(T, Option<OwnedFd>)>, SyncError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut cmsg = cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // SAFETY: the kernel installed this descriptor for us.
                                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if len == 0 {
            return Ok(None);
        }
        Ok(Some((serde_json::from_slice(&buf[..len])?, fd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_descriptors_cross() {
        let (a, b) = channel_pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        a.send(&ChildMessage::PtyMaster, Some(file.as_raw_fd()))
            .unwrap();
        a.send(
            &ChildMessage::Failed {
                code: 127,
                message: "x".into(),
            },
            None,
        )
        .unwrap();
        let (m, fd) = b.recv::<ChildMessage>().unwrap().unwrap();
        assert_eq!(m, ChildMessage::PtyMaster);
        assert!(fd.is_some());
        let (m, fd) = b.recv::<ChildMessage>().unwrap().unwrap();
        assert_eq!(
            m,
            ChildMessage::Failed {
                code: 127,
                message: "x".into()
            }
        );
        assert!(fd.is_none());
        drop(a);
        assert!(b.recv::<ChildMessage>().unwrap().is_none());
    }
}
