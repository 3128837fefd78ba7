//! The relay: the proxy's poll loop over listeners, pending connects and the connections it
//! copies between host and container, zero-copy where splice(2) allows.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::connector::*;
use super::*;

/// The proxy's state: listeners, host connections waiting for a container socket, and the
/// connections being relayed.
pub(super) struct Relay {
    pub(super) listeners: Vec<RawFd>,
    /// The container port of each listener.
    pub(super) ports: Vec<u16>,
    pub(super) ctl: OwnedFd,
    /// Accepted host connections, in the order of the requests sent for them.
    pub(super) pending: VecDeque<OwnedFd>,
    pub(super) conns: Vec<Conn>,
    /// Out of descriptors: the listeners wait until a connection closes.
    pub(super) accept_paused: bool,
}

/// What a slot of the poll set belongs to.
#[derive(Clone, Copy)]
pub(super) enum Slot {
    Exit,
    Ctl,
    Listener(usize),
    Host(usize),
    Container(usize),
}

impl Relay {
    /// Relay until the exit pipe reports EOF (burrow dropped the proxy or died) or the
    /// connector is gone.
    pub(super) fn run(&mut self, exit_r: RawFd) -> io::Result<()> {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut slots: Vec<Slot> = Vec::new();
        loop {
            fds.clear();
            slots.clear();
            let mut add = |fd: RawFd, events: i16, slot: Slot| {
                if events != 0 {
                    fds.push(libc::pollfd {
                        fd,
                        events,
                        revents: 0,
                    });
                    slots.push(slot);
                }
            };
            add(exit_r, libc::POLLIN, Slot::Exit);
            add(self.ctl.as_raw_fd(), libc::POLLIN, Slot::Ctl);
            if self.pending.len() < MAX_PENDING && !self.accept_paused {
                for (i, l) in self.listeners.iter().enumerate() {
                    add(*l, libc::POLLIN, Slot::Listener(i));
                }
            }
            for (i, c) in self.conns.iter().enumerate() {
                let (host, ctr) = c.interest();
                add(c.host.as_raw_fd(), host, Slot::Host(i));
                add(c.ctr.as_raw_fd(), ctr, Slot::Container(i));
            }
            // SAFETY: fds is a valid array of pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if would_block(&e) {
                    continue;
                }
                return Err(e);
            }
            let mut ready = vec![0i16; self.conns.len()];
            for (pfd, slot) in fds.iter().zip(&slots) {
                if pfd.revents == 0 {
                    continue;
                }
                match *slot {
                    Slot::Exit => return Ok(()),
                    Slot::Ctl => {
                        if !self.take_replies()? {
                            return Err(io::Error::other("the connector exited"));
                        }
                    }
                    Slot::Listener(i) => self.accept(i),
                    Slot::Host(i) | Slot::Container(i) => ready[i] |= pfd.revents,
                }
            }
            for (i, revents) in ready.iter().enumerate() {
                if *revents != 0 {
                    self.conns[i].step();
                }
            }
            let before = self.conns.len();
            self.conns.retain(|c| !c.closed);
            if self.conns.len() < before {
                self.accept_paused = false;
            }
        }
    }

    /// Accept what waits on listener `i` and ask the connector for a container socket for each.
    fn accept(&mut self, i: usize) {
        while self.pending.len() < MAX_PENDING {
            // SAFETY: accept4 on our listener; no address wanted.
            let fd = unsafe {
                libc::accept4(
                    self.listeners[i],
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                let e = io::Error::last_os_error();
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    self.accept_paused = true;
                    errln!("{PROCESS_NAME}: accept: {e}; waiting for a connection to close");
                }
                // EAGAIN: nothing more; the rest (a client that gave up already) is its loss.
                return;
            }
            // SAFETY: a new descriptor, owned at once.
            let host = unsafe { OwnedFd::from_raw_fd(fd) };
            let port = self.ports[i].to_be_bytes();
            // SAFETY: a 2-byte message on our socket.
            let sent = unsafe {
                libc::send(
                    self.ctl.as_raw_fd(),
                    port.as_ptr().cast(),
                    port.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if sent == 2 {
                self.pending.push_back(host);
            }
            // Else the connector's queue is full: closing the client is the answer.
        }
    }

    /// Pair the connector's answers with the waiting host connections; false at its EOF.
    fn take_replies(&mut self) -> io::Result<bool> {
        loop {
            let (status, fd) = match recv_reply(&self.ctl) {
                Ok(Some(reply)) => reply,
                Ok(None) => return Ok(false),
                Err(e) if would_block(&e) => return Ok(true),
                Err(e) => return Err(e),
            };
            let Some(host) = self.pending.pop_front() else {
                return Err(io::Error::other("an answer for no request"));
            };
            // No socket: nothing listens in the container; dropping `host` closes the client.
            if let (Some(ctr), 0 | libc::EINPROGRESS) = (fd, status) {
                set_nodelay(host.as_raw_fd());
                set_nodelay(ctr.as_raw_fd());
                self.conns.push(Conn {
                    host,
                    ctr,
                    connecting: status == libc::EINPROGRESS,
                    up: Flow::new(),
                    down: Flow::new(),
                    closed: false,
                });
            }
        }
    }
}

/// One relayed connection.
pub(super) struct Conn {
    host: OwnedFd,
    ctr: OwnedFd,
    /// The connect in the container has not finished yet.
    connecting: bool,
    /// Host to container.
    up: Flow,
    /// Container to host.
    down: Flow,
    closed: bool,
}

impl Conn {
    /// The poll events wanted on the host socket and the container socket.
    fn interest(&self) -> (i16, i16) {
        if self.connecting {
            return (0, libc::POLLOUT);
        }
        let (up_src, up_dst) = self.up.interest();
        let (down_src, down_dst) = self.down.interest();
        (up_src | down_dst, down_src | up_dst)
    }

    /// Move what can be moved without blocking; an error closes both sides.
    fn step(&mut self) {
        if self.connecting {
            match socket_error(self.ctr.as_raw_fd()) {
                Ok(()) => self.connecting = false,
                Err(e) if would_block(&e) => return,
                // Refused, or reset: close the client, as when nothing listens.
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
        let (host, ctr) = (self.host.as_raw_fd(), self.ctr.as_raw_fd());
        let result = self
            .up
            .pump(host, ctr)
            .and_then(|()| self.down.pump(ctr, host));
        if let Err(e) = result {
            if !matches!(
                e.raw_os_error(),
                Some(libc::EPIPE) | Some(libc::ECONNRESET) | Some(libc::ENOTCONN)
            ) {
                errln!("{PROCESS_NAME}: relay: {e}");
            }
            self.closed = true;
        }
        if self.up.shut && self.down.shut {
            self.closed = true;
        }
    }
}

/// The pending error of a socket whose connect was in progress (EAGAIN while it still is).
pub(super) fn socket_error(fd: RawFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into a local int.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    // No error yet: connected only if it has a peer.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut alen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getpeername into a local sockaddr_storage.
    if unsafe {
        libc::getpeername(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut alen,
        )
    } != 0
    {
        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
    }
    Ok(())
}

/// Where the bytes of one direction wait between the source and the destination.
pub(super) enum Buffer {
    /// splice(2): socket -> pipe -> socket, without copying into the proxy.
    Pipe { r: OwnedFd, w: OwnedFd },
    /// read/write, when no pipe can be made or splice is refused.
    Copy { data: Box<[u8]>, start: usize },
}

/// One direction of a connection.
pub(super) struct Flow {
    buf: Option<Buffer>,
    /// Bytes read from the source and not yet written to the destination.
    buffered: usize,
    /// The source reported EOF.
    eof: bool,
    /// The destination was shut down for writing (after the EOF and the last byte).
    shut: bool,
}

pub(super) enum Moved {
    Bytes(usize),
    Eof,
    WouldBlock,
}

impl Flow {
    fn new() -> Flow {
        Flow {
            buf: None,
            buffered: 0,
            eof: false,
            shut: false,
        }
    }

    /// Poll events for the source and the destination. Reading waits until the buffer is
    /// empty (a pipe's room cannot be known exactly), so a slow destination is never polled
    /// for and never spun on.
    fn interest(&self) -> (i16, i16) {
        if self.buffered > 0 {
            (0, libc::POLLOUT)
        } else if !self.eof {
            (libc::POLLIN, 0)
        } else {
            (0, 0)
        }
    }

    /// Move bytes from `src` to `dst` until neither side can take more (bounded by ROUNDS),
    /// then pass an EOF on once everything before it is written.
    fn pump(&mut self, src: RawFd, dst: RawFd) -> io::Result<()> {
        if self.shut {
            return Ok(());
        }
        for _ in 0..ROUNDS {
            let mut moved = false;
            if self.buffered > 0
                && let Moved::Bytes(n) = self.drain(dst)?
            {
                self.buffered -= n;
                moved = true;
            }
            if !self.eof {
                match self.fill(src)? {
                    Moved::Bytes(n) => {
                        self.buffered += n;
                        moved = true;
                    }
                    Moved::Eof => {
                        self.eof = true;
                        moved = true;
                    }
                    Moved::WouldBlock => {}
                }
            }
            if !moved {
                break;
            }
        }
        if self.eof && self.buffered == 0 {
            // SAFETY: shutdown on our socket.
            if unsafe { libc::shutdown(dst, libc::SHUT_WR) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ENOTCONN) {
                    return Err(e);
                }
            }
            self.shut = true;
        }
        Ok(())
    }

    fn buffer(&mut self) -> &mut Buffer {
        self.buf.get_or_insert_with(|| match new_pipe() {
            Ok((r, w)) => Buffer::Pipe { r, w },
            Err(_) => copy_buffer(),
        })
    }

    /// Read from `src` into the buffer.
    fn fill(&mut self, src: RawFd) -> io::Result<Moved> {
        let buffered = self.buffered;
        let result = match self.buffer() {
            Buffer::Pipe { w, .. } => {
                // SAFETY: splice between our socket and our pipe.
                let n = unsafe {
                    libc::splice(
                        src,
                        std::ptr::null_mut(),
                        w.as_raw_fd(),
                        std::ptr::null_mut(),
                        PIPE_SIZE,
                        libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                    )
                };
                if n < 0 && buffered == 0 && splice_refused() {
                    self.buf = Some(copy_buffer());
                    return self.fill(src);
                }
                n
            }
            Buffer::Copy { .. } if buffered > 0 => return Ok(Moved::WouldBlock),
            Buffer::Copy { data, start } => {
                *start = 0;
                // SAFETY: reading into our buffer.
                unsafe { libc::read(src, data.as_mut_ptr().cast(), data.len()) }
            }
        };
        outcome(result, true)
    }

    /// Write from the buffer to `dst`.
    fn drain(&mut self, dst: RawFd) -> io::Result<Moved> {
        let buffered = self.buffered;
        let result = match self.buffer() {
            Buffer::Pipe { r, .. } => {
                // SAFETY: splice between our pipe and our socket.
                unsafe {
                    libc::splice(
                        r.as_raw_fd(),
                        std::ptr::null_mut(),
                        dst,
                        std::ptr::null_mut(),
                        buffered,
                        libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                    )
                }
            }
            Buffer::Copy { data, start } => {
                // SAFETY: sending from our buffer; MSG_NOSIGNAL as SIGPIPE is ignored anyway.
                let n = unsafe {
                    libc::send(
                        dst,
                        data[*start..].as_ptr().cast(),
                        buffered,
                        libc::MSG_NOSIGNAL,
                    )
                };
                if n > 0 {
                    *start += n as usize;
                }
                n
            }
        };
        outcome(result, false)
    }
}

/// The result of a read-like (`eof_at_zero`) or write-like call.
pub(super) fn outcome(n: isize, eof_at_zero: bool) -> io::Result<Moved> {
    match n {
        0 if eof_at_zero => Ok(Moved::Eof),
        0 => Ok(Moved::WouldBlock),
        n if n > 0 => Ok(Moved::Bytes(n as usize)),
        _ => {
            let e = io::Error::last_os_error();
            if would_block(&e) {
                Ok(Moved::WouldBlock)
            } else {
                Err(e)
            }
        }
    }
}

/// Whether the splice that just failed cannot work for these descriptors at all.
pub(super) fn splice_refused() -> bool {
    matches!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS)
    )
}

pub(super) fn copy_buffer() -> Buffer {
    Buffer::Copy {
        data: vec![0u8; COPY_SIZE].into_boxed_slice(),
        start: 0,
    }
}

/// A non-blocking pipe, as large as allowed (a bigger pipe means fewer wakeups per byte).
pub(super) fn new_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        .map_err(io::Error::from)?;
    // SAFETY: fcntl on our pipe; failing (over the user's pipe quota) leaves the default size.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
    Ok((r, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// A connection through a Conn, with both ends in this process: `client` -> host side,
    /// container side -> `server`.
    fn pair() -> (TcpStream, TcpStream, Conn) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (host, _) = l.accept().unwrap();
        let server_l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (ctr, status) = connect_loopback(server_l.local_addr().unwrap().port()).unwrap();
        let (server, _) = server_l.accept().unwrap();
        host.set_nonblocking(true).unwrap();
        let conn = Conn {
            host: host.into(),
            ctr,
            connecting: status == libc::EINPROGRESS,
            up: Flow::new(),
            down: Flow::new(),
            closed: false,
        };
        (client, server, conn)
    }

    /// Step `conn` until `done` or it closes, polling as the relay does.
    fn drive(conn: &mut Conn, done: &mut dyn FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !conn.closed && !done() {
            assert!(Instant::now() < deadline, "stuck");
            let (h, c) = conn.interest();
            let mut fds = [
                libc::pollfd {
                    fd: conn.host.as_raw_fd(),
                    events: h,
                    revents: 0,
                },
                libc::pollfd {
                    fd: conn.ctr.as_raw_fd(),
                    events: c,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, 10) };
            conn.step();
        }
    }

    #[test]
    fn relays_both_ways_with_half_close() {
        let (mut client, mut server, mut conn) = pair();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            client.write_all(&sent).unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
            let mut answer = String::new();
            client.read_to_string(&mut answer).unwrap();
            answer
        });
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            server.read_to_end(&mut got).unwrap();
            server
                .write_all(format!("got {}", got.len()).as_bytes())
                .unwrap();
            got
        });
        drive(&mut conn, &mut || false);
        assert!(conn.up.shut && conn.down.shut);
        assert_eq!(reader.join().unwrap(), data);
        assert_eq!(writer.join().unwrap(), "got 3000000");
    }

    #[test]
    fn copy_buffers_work_too() {
        let (mut client, mut server, mut conn) = pair();
        conn.up.buf = Some(copy_buffer());
        conn.down.buf = Some(copy_buffer());
        let t = std::thread::spawn(move || {
            client.write_all(&[7u8; 200_000]).unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).unwrap();
            back.len()
        });
        let s = std::thread::spawn(move || {
            let mut got = Vec::new();
            server.read_to_end(&mut got).unwrap();
            server.write_all(&got).unwrap();
        });
        drive(&mut conn, &mut || false);
        s.join().unwrap();
        assert_eq!(t.join().unwrap(), 200_000);
    }

    #[test]
    fn refused_connect_is_reported() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        match connect_loopback(port) {
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED)),
            Ok((fd, _)) => {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    match socket_error(fd.as_raw_fd()) {
                        Err(e) if would_block(&e) => {
                            assert!(Instant::now() < deadline);
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => break assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED)),
                        Ok(()) => panic!("connected to a closed port"),
                    }
                }
            }
        }
    }
}
