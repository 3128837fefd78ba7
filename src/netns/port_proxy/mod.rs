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
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use super::NetError;
use super::helper;
use super::ports::{self, PortMapping, Proto};

mod connector;
mod relay;

use connector::*;
use relay::*;

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
        errln!("{PROCESS_NAME}: {e}");
    }
    let _ = kill(connector, Signal::SIGKILL);
    let _ = waitpid(connector, None);
    i32::from(result.is_err())
}
