//! Published TCP ports without a user-space TCP stack in the data path (podman's
//! "rootlessport", small and our own).
//!
//! slirp4netns's `add_hostfwd` makes libslirp terminate every host connection and re-create it
//! inside the container packet by packet: every byte crosses its TCP stack. Instead, burrow
//! binds the host listeners itself (so a port in use is still an error before the command
//! starts) and forks two processes:
//!
//! * the *proxy*, in the host's network namespace, which accepts host connections and relays
//!   each one to a socket connected inside the container, zero-copy with splice(2) through a
//!   pipe per direction (read/write when splice is refused), all in one poll loop;
//! * its *connector* child, which entered the container's network namespace: for each port the
//!   proxy asks for (a 2-byte message on a SOCK_SEQPACKET socketpair) it starts a non-blocking
//!   connect to 127.0.0.1:PORT and sends the socket back with SCM_RIGHTS, or the errno of a
//!   connect that failed at once (the proxy then closes the host connection, as slirp does when
//!   nothing listens). The proxy finishes a connect in progress itself, so a container that is
//!   slow to accept never blocks the connector.
//!
//! The container therefore sees connections from 127.0.0.1. Both processes have their own
//! process group (a terminal's ^C is for the container), PR_SET_PDEATHSIG, no descriptor of
//! burrow but their own, and the name `burrow-portfwd`; the proxy's working directory is the
//! container's directory (tests find them by both). The proxy quits when the read end of its
//! exit pipe reports EOF: when the [`PortProxy`] is dropped or burrow dies.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use super::NetError;
use super::helper;
use super::ports::{self, PortMapping, Proto};

/// The name of both processes in `ps` (at most 15 bytes).
pub const PROCESS_NAME: &str = "burrow-portfwd";
const LOG_FILE: &str = "port-proxy.log";
/// Bytes a relay pipe may hold; 1 MiB is the unprivileged maximum (pipe-max-size).
const PIPE_SIZE: usize = 1 << 20;
/// The buffer of a direction that cannot splice.
const COPY_SIZE: usize = 64 << 10;
/// Host connections waiting for the connector's answer; beyond this the listeners wait.
const MAX_PENDING: usize = 64;
/// Copy rounds for one connection per wakeup, so one busy connection cannot starve the others.
const ROUNDS: usize = 8;
/// How long the proxy may take to exit once asked.
const EXIT_TIMEOUT: Duration = Duration::from_secs(3);

fn sys(what: &'static str) -> impl Fn(io::Error) -> NetError {
    move |source| NetError::Sys { what, source }
}

/// A running proxy for the TCP ports of one container; dropping it ends the proxy and its
/// connector and frees the host ports.
#[derive(Debug)]
pub struct PortProxy {
    pid: Pid,
    /// The write end of the proxy's exit pipe: closing it tells the proxy to quit.
    exit_w: Option<OwnedFd>,
}

impl PortProxy {
    /// Publish the TCP `mappings` (host ports resolved) of the container whose first process
    /// is `pid`. Call single-threaded, in the user namespace that owns the container's network
    /// namespace but still in the host's network namespace.
    pub fn start(
        pid: i32,
        container_dir: &Path,
        mappings: &[PortMapping],
    ) -> Result<PortProxy, NetError> {
        let listeners = bind_listeners(mappings)?;
        let netns = File::open(format!("/proc/{pid}/ns/net"))
            .map_err(sys("cannot open the container's network namespace"))?;
        let log_path = container_dir.join(LOG_FILE);
        let log = File::create(&log_path).map_err(|source| NetError::Write {
            path: log_path.clone(),
            source,
        })?;
        let (ready_r, ready_w) = helper::pipe()?;
        let (exit_r, exit_w) = helper::pipe()?;
        let setup = ProxySetup {
            parent: nix::unistd::getpid(),
            dir: container_dir,
            listeners: &listeners,
            ports: &mappings
                .iter()
                .map(|m| m.container_port)
                .collect::<Vec<_>>(),
            netns: &netns,
            log: &log,
            ready_w: &ready_w,
            exit_r: &exit_r,
        };
        // SAFETY: burrow is single-threaded here; the child never returns into burrow's code
        // (run_child ends with _exit).
        let child = match unsafe { fork() }.map_err(|e| sys("fork")(e.into()))? {
            ForkResult::Child => run_child(|| proxy_main(&setup)),
            ForkResult::Parent { child } => child,
        };
        // Only the proxy holds the listeners and the exit pipe's read end now.
        drop((listeners, netns, log, ready_w, exit_r));
        let proxy = PortProxy {
            pid: child,
            exit_w: Some(exit_w),
        };
        match wait_ready(&ready_r) {
            Ok(()) => Ok(proxy),
            Err(reason) => Err(NetError::HelperFailed {
                name: "port proxy",
                reason,
                log: std::fs::read_to_string(&log_path)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            }),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }
}

impl Drop for PortProxy {
    fn drop(&mut self) {
        drop(self.exit_w.take());
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    // The proxy has been told to quit; this only bounds how long it may take.
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(WaitStatus::StillAlive) => {
                    // Its whole process group: the proxy and its connector.
                    let _ = kill(Pid::from_raw(-self.pid.as_raw()), Signal::SIGKILL);
                    let _ = waitpid(self.pid, None);
                    return;
                }
                Err(nix::Error::EINTR) => {}
                _ => return,
            }
        }
    }
}

/// Bind every mapping's host address, with the errors of a port check (in use, privileged).
fn bind_listeners(mappings: &[PortMapping]) -> Result<Vec<TcpListener>, NetError> {
    mappings
        .iter()
        .map(|m| {
            debug_assert_eq!(m.proto, Proto::Tcp);
            let l = TcpListener::bind(SocketAddr::new(m.host_ip, m.host_port))
                .map_err(|e| ports::bind_error(m.host_ip, m.host_port, Proto::Tcp, e))?;
            l.set_nonblocking(true).map_err(sys("listener"))?;
            Ok(l)
        })
        .collect()
}

/// Wait (bounded) for the proxy's "ok", or the reason it gave up.
fn wait_ready(ready: &OwnedFd) -> Result<(), String> {
    let deadline = Instant::now() + helper::READY_TIMEOUT;
    let mut msg = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("not ready in time".into());
        }
        let mut pfd = libc::pollfd {
            fd: ready.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 512];
        match nix::unistd::read(ready, &mut buf) {
            Ok(0) if msg == b"ok" => return Ok(()),
            Ok(0) if msg.is_empty() => return Err("exited before it was ready".into()),
            Ok(0) => return Err(String::from_utf8_lossy(&msg).into_owned()),
            Ok(n) => msg.extend_from_slice(&buf[..n]),
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

// ------------------------------------------------------------------ the forked processes

/// What the proxy process starts with (borrowed from burrow's copies, inherited by fork).
struct ProxySetup<'a> {
    parent: Pid,
    dir: &'a Path,
    listeners: &'a [TcpListener],
    /// The container port of each listener.
    ports: &'a [u16],
    netns: &'a File,
    log: &'a File,
    ready_w: &'a OwnedFd,
    exit_r: &'a OwnedFd,
}

/// Run `f` in a forked child and `_exit`, also when it panics (unwinding into burrow's frames
/// would run burrow's code twice).
fn run_child(f: impl FnOnce() -> i32) -> ! {
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
    // SAFETY: leave the forked copy without running burrow's destructors.
    unsafe { libc::_exit(code) }
}

/// Tie a forked process to `parent`'s life, and give it sane signals and a name.
fn become_helper(parent: Pid) -> io::Result<()> {
    // SAFETY: a freshly forked child of single-threaded burrow; plain signal/prctl calls.
    unsafe {
        super::helper::tie_to_parent(parent.as_raw())?;
        // A peer that went away is an EPIPE for the connection, not the end of the proxy.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let name = c"burrow-portfwd";
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
    Ok(())
}

/// Close every descriptor from 3 up except `keep`: burrow's (its locks, the container's stdio
/// and sync pipes) must not stay open in a process that outlives a moment of burrow's.
fn close_other_fds(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut next: RawFd = 3;
    for &fd in keep.iter().filter(|fd| **fd >= 3) {
        close_range(next, fd - 1);
        next = fd + 1;
    }
    close_range(next, RawFd::MAX);
}

fn close_range(first: RawFd, last: RawFd) {
    if first > last {
        return;
    }
    // SAFETY: closes descriptors this process no longer uses.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) };
    if r != 0 {
        // Before Linux 5.9: one by one, up to the descriptor limit.
        let max = nix::unistd::sysconf(nix::unistd::SysconfVar::OPEN_MAX)
            .ok()
            .flatten()
            .unwrap_or(1024)
            .min(65536) as RawFd;
        for fd in first..=last.min(max) {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// stdin and stdout on /dev/null, stderr on `log`.
fn redirect_stdio(log: &File) -> io::Result<()> {
    let null = File::options().read(true).write(true).open("/dev/null")?;
    for (fd, target) in [
        (null.as_raw_fd(), 0),
        (null.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(fd, target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// As many descriptors as allowed: each connection takes six (two sockets, two pipes).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// The proxy process: set itself up, start the connector, say "ok", relay until told to quit.
fn proxy_main(s: &ProxySetup) -> i32 {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        let _ = nix::unistd::write(s.ready_w, format!("{what}: {e}").as_bytes());
        1
    };
    if let Err(e) = become_helper(s.parent) {
        return fail("prctl", &e);
    }
    // SAFETY: setpgid on this process.
    unsafe { libc::setpgid(0, 0) };
    if let Err(e) = redirect_stdio(s.log).and_then(|()| std::env::set_current_dir(s.dir)) {
        return fail("setup", &e);
    }
    let mut keep: Vec<RawFd> = s.listeners.iter().map(|l| l.as_raw_fd()).collect();
    keep.extend([
        s.netns.as_raw_fd(),
        s.ready_w.as_raw_fd(),
        s.exit_r.as_raw_fd(),
    ]);
    close_other_fds(&mut keep);
    raise_fd_limit();
    let (ctl, connector_ctl) = match seqpacket_pair() {
        Ok(p) => p,
        Err(e) => return fail("socketpair", &e),
    };
    let me = nix::unistd::getpid();
    // SAFETY: the proxy is single-threaded.
    let connector = match unsafe { fork() } {
        Err(e) => return fail("fork", &e),
        Ok(ForkResult::Child) => {
            run_child(|| connector_main(me, s.netns, connector_ctl.as_raw_fd()))
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(connector_ctl);
    // SAFETY: the namespace is the connector's business; this copy is never used again (the
    // proxy ends with _exit, so the File is not closed twice).
    unsafe { libc::close(s.netns.as_raw_fd()) };
    // The connector answers its first message once it is in the container's namespace.
    match recv_reply(&ctl) {
        Ok(Some((0, None))) => {}
        Ok(Some((errno, _))) => {
            return fail(
                "cannot enter the container's network namespace",
                &io::Error::from_raw_os_error(errno),
            );
        }
        Ok(None) => return fail("connector", &"exited"),
        Err(e) => return fail("connector", &e),
    }
    if let Err(e) = set_nonblocking(ctl.as_raw_fd()) {
        return fail("connector socket", &e);
    }
    let _ = nix::unistd::write(s.ready_w, b"ok");
    // SAFETY: the ready pipe is done; closing it ends burrow's wait.
    unsafe { libc::close(s.ready_w.as_raw_fd()) };
    let mut relay = Relay {
        listeners: s.listeners.iter().map(|l| l.as_raw_fd()).collect(),
        ports: s.ports.to_vec(),
        ctl,
        pending: VecDeque::new(),
        conns: Vec::new(),
        accept_paused: false,
    };
    let result = relay.run(s.exit_r.as_raw_fd());
    if let Err(e) = &result {
        eprintln!("{PROCESS_NAME}: {e}");
    }
    let _ = kill(connector, Signal::SIGKILL);
    let _ = waitpid(connector, None);
    i32::from(result.is_err())
}

/// The connector: enter the container's network namespace, then connect on request.
fn connector_main(proxy: Pid, netns: &File, ctl: RawFd) -> i32 {
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
fn connect_loopback(port: u16) -> io::Result<(OwnedFd, i32)> {
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

fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
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
fn send_reply(ctl: RawFd, status: i32, fd: Option<RawFd>) -> io::Result<()> {
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
fn recv_reply(ctl: &OwnedFd) -> io::Result<Option<(i32, Option<OwnedFd>)>> {
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

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn set_nodelay(fd: RawFd) {
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

fn would_block(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
}

// ------------------------------------------------------------------ the relay

/// The proxy's state: listeners, host connections waiting for a container socket, and the
/// connections being relayed.
struct Relay {
    listeners: Vec<RawFd>,
    /// The container port of each listener.
    ports: Vec<u16>,
    ctl: OwnedFd,
    /// Accepted host connections, in the order of the requests sent for them.
    pending: VecDeque<OwnedFd>,
    conns: Vec<Conn>,
    /// Out of descriptors: the listeners wait until a connection closes.
    accept_paused: bool,
}

/// What a slot of the poll set belongs to.
#[derive(Clone, Copy)]
enum Slot {
    Exit,
    Ctl,
    Listener(usize),
    Host(usize),
    Container(usize),
}

impl Relay {
    /// Relay until the exit pipe reports EOF (burrow dropped the proxy or died) or the
    /// connector is gone.
    fn run(&mut self, exit_r: RawFd) -> io::Result<()> {
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
                    eprintln!("{PROCESS_NAME}: accept: {e}; waiting for a connection to close");
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
struct Conn {
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
                eprintln!("{PROCESS_NAME}: relay: {e}");
            }
            self.closed = true;
        }
        if self.up.shut && self.down.shut {
            self.closed = true;
        }
    }
}

/// The pending error of a socket whose connect was in progress (EAGAIN while it still is).
fn socket_error(fd: RawFd) -> io::Result<()> {
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
enum Buffer {
    /// splice(2): socket -> pipe -> socket, without copying into the proxy.
    Pipe { r: OwnedFd, w: OwnedFd },
    /// read/write, when no pipe can be made or splice is refused.
    Copy { data: Box<[u8]>, start: usize },
}

/// One direction of a connection.
struct Flow {
    buf: Option<Buffer>,
    /// Bytes read from the source and not yet written to the destination.
    buffered: usize,
    /// The source reported EOF.
    eof: bool,
    /// The destination was shut down for writing (after the EOF and the last byte).
    shut: bool,
}

enum Moved {
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
fn outcome(n: isize, eof_at_zero: bool) -> io::Result<Moved> {
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
fn splice_refused() -> bool {
    matches!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS)
    )
}

fn copy_buffer() -> Buffer {
    Buffer::Copy {
        data: vec![0u8; COPY_SIZE].into_boxed_slice(),
        start: 0,
    }
}

/// A non-blocking pipe, as large as allowed (a bigger pipe means fewer wakeups per byte).
fn new_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
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
