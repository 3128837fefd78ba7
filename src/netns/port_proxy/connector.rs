//! The connector: the proxy's child in the container's network namespace, which connects
//! to the container's loopback on request and hands the sockets back.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::unistd::Pid;

use super::*;

/// The connector: enter the container's network namespace, then connect on request.
pub(super) fn connector_main(proxy: Pid, netns: &File, ctl: RawFd) -> i32 {
    if become_helper(proxy).is_err() {
        return 1;
    }
    close_other_fds(&mut [netns.as_raw_fd(), ctl]);
    let entered = nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET);
    // SAFETY: closing the namespace descriptor, no longer needed (or useless).
    unsafe { libc::close(netns.as_raw_fd()) };
    if let Err(e) = entered {
        let _ = send_reply(ctl, e as i32, None);
        return 1;
    }
    if send_reply(ctl, 0, None).is_err() {
        return 1;
    }
    let mut req = [0u8; 2];
    loop {
        // SAFETY: reading into a local buffer from our socket.
        let n = unsafe { libc::recv(ctl, req.as_mut_ptr().cast(), req.len(), 0) };
        if n == 0 {
            return 0; // the proxy is gone
        }
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return 1;
        }
        let sent = match connect_loopback(u16::from_be_bytes(req)) {
            Ok((fd, status)) => send_reply(ctl, status, Some(fd.as_raw_fd())),
            Err(e) => send_reply(ctl, e.raw_os_error().unwrap_or(libc::EIO), None),
        };
        if sent.is_err() {
            return 1;
        }
    }
}

/// Start a non-blocking connect to 127.0.0.1:`port`: the socket and 0 (connected) or
/// EINPROGRESS.
pub(super) fn connect_loopback(port: u16) -> io::Result<(OwnedFd, i32)> {
    // SAFETY: a new socket, owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr_in and its size.
    let r = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r == 0 {
        return Ok((sock, 0));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINPROGRESS) => Ok((sock, libc::EINPROGRESS)),
        _ => Err(e),
    }
}

pub(super) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two new descriptors, owned at once.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A connector's answer: a status (0, EINPROGRESS or the errno of a failed connect) and the
/// socket, if any.
pub(super) fn send_reply(ctl: RawFd, status: i32, fd: Option<RawFd>) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let bytes = status.to_ne_bytes();
    let iov = [io::IoSlice::new(&bytes)];
    let fds: Vec<RawFd> = fd.into_iter().collect();
    let cmsg: Vec<ControlMessage> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&fds)]
    };
    loop {
        match sendmsg::<()>(ctl, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::Error::EINTR) => continue,
            r => return r.map(drop).map_err(io::Error::from),
        }
    }
}

/// One answer of the connector; None at EOF; WouldBlock when none is waiting.
pub(super) fn recv_reply(ctl: &OwnedFd) -> io::Result<Option<(i32, Option<OwnedFd>)>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut bytes = [0u8; 4];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let (len, fd) = loop {
        let mut iov = [io::IoSliceMut::new(&mut bytes)];
        match recvmsg::<()>(
            ctl.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(msg) => {
                let mut fd = None;
                for c in msg.cmsgs().map_err(io::Error::from)? {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for raw in fds {
                            // SAFETY: a descriptor just received, owned by nobody else.
                            let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                            fd.get_or_insert(owned);
                        }
                    }
                }
                break (msg.bytes, fd);
            }
        }
    };
    if len == 0 {
        return Ok(None);
    }
    Ok(Some((i32::from_ne_bytes(bytes), fd)))
}

pub(super) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

pub(super) fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

pub(super) fn would_block(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
}
