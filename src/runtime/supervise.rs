//! burrow's side of a running container: start it in new namespaces, relay the terminal,
//! forward signals, and return its exit code as docker does.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::rootfs::MountServer;
use super::sync::{ChildMessage, ParentMessage, channel_pair};
use super::{ContainerSpec, Hooks, Network, init, pty};
use crate::exit::ExitError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create the container's namespaces: {0}")]
    Clone(std::io::Error),
    #[error(transparent)]
    Sync(#[from] super::sync::SyncError),
    #[error("{0}")]
    Sys(#[from] nix::Error),
    #[error("the container process died while it was being set up ({0})")]
    DiedInSetup(String),
    /// Setup or exec failed inside the container; carries docker's exit code.
    #[error(transparent)]
    Start(#[from] ExitError),
}

/// Signals burrow never forwards, as docker's sig-proxy: SIGCHLD and SIGPIPE concern burrow
/// itself, and SIGURG is noise (Go runtimes use it for preemption). SIGTTIN and SIGTTOU are
/// the kernel's answer to burrow touching its own terminal from the background; blocked, they
/// would let a background `run -it` switch the shell's terminal to raw mode and turn reads of
/// it into errors. SIGKILL and SIGSTOP cannot be caught.
const NOT_FORWARDED: &[libc::c_int] = &[
    libc::SIGCHLD,
    libc::SIGPIPE,
    libc::SIGURG,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGKILL,
    libc::SIGSTOP,
];

/// Every signal burrow passes on to the container: the standard ones but [`NOT_FORWARDED`],
/// and the real-time ones. 32 and 33, below SIGRTMIN, belong to the C library's threads.
pub fn forwarded_signals() -> impl Iterator<Item = libc::c_int> {
    (1..32)
        .filter(|s| !NOT_FORWARDED.contains(s))
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
}

fn clone_container(flags: libc::c_int) -> std::io::Result<libc::pid_t> {
    // SAFETY: with no stack argument, clone behaves as fork does; burrow is single-threaded
    // here (the user namespace was entered, which checks).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(pid as libc::pid_t)
}

pub(super) fn pidfd_open(pid: libc::pid_t) -> nix::Result<OwnedFd> {
    // SAFETY: plain syscall; returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: new descriptor owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn exit_code(status: WaitStatus) -> u8 {
    match status {
        WaitStatus::Exited(_, code) => code as u8,
        WaitStatus::Signaled(_, sig, _) => 128u8.wrapping_add(sig as i32 as u8),
        _ => crate::exit::BURROW_ERROR,
    }
}

pub fn wait_child(pid: Pid) -> nix::Result<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Err(nix::Error::EINTR) => continue,
            other => return other,
        }
    }
}

/// A container whose command is running.
pub struct Started {
    pub pid: Pid,
    /// Readable once the container's first process has exited.
    pub pidfd: OwnedFd,
    /// Signals burrow forwards to the container (blocked, read from here).
    pub signals: SignalFd,
    /// The pty master with `-t`.
    pub master: Option<OwnedFd>,
    /// The server of a FUSE root filesystem; stopped when this is dropped, after the
    /// container has exited.
    pub rootfs_server: Option<MountServer>,
}

/// Start the container described by `spec`, calling `hooks` around the start of its command,
/// relay its terminal and signals in the foreground, and return its exit code.
pub fn run(spec: &ContainerSpec, hooks: &mut dyn Hooks) -> Result<u8, RuntimeError> {
    let started = start(spec, hooks)?;
    let _raw = match &started.master {
        Some(_) if spec.interactive && pty::is_terminal(0) => pty::RawMode::enable(0).ok(),
        _ => None,
    };
    let status = relay_until_exit(&started, spec.interactive)?;
    Ok(exit_code(status))
}

/// Block the signals burrow forwards and read them from a signalfd instead. Done before the
/// container's process is created, so no signal is lost or acted on by default in between;
/// the child unblocks them before exec.
pub(super) fn block_forwarded_signals() -> Result<SignalFd, RuntimeError> {
    // SAFETY: sigemptyset/sigaddset fill the set in place; every number is a valid signal.
    let signals = unsafe {
        let mut raw: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut raw);
        for s in forwarded_signals() {
            libc::sigaddset(&mut raw, s);
        }
        SigSet::from_sigset_t_unchecked(raw)
    };
    signals.thread_block()?;
    Ok(SignalFd::with_flags(
        &signals,
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )?)
}

/// Pass a signal burrow received on to the container's first process. Without a terminal
/// SIGWINCH is passed on too (as docker does); with one, the new size goes to the pty, whose
/// foreground process group the kernel then signals.
pub(crate) fn forward_signal(pid: Pid, signo: u32, master: Option<&OwnedFd>) {
    let sig = signo as libc::c_int;
    if sig == libc::SIGWINCH
        && let Some(m) = master
    {
        if let Some(ws) = pty::window_size(0) {
            pty::set_window_size(m.as_raw_fd(), &ws);
        }
        return;
    }
    // SAFETY: plain kill(2); real-time signals have no `Signal` value, so no nix here.
    unsafe { libc::kill(pid.as_raw(), sig) };
}

/// Create the container's namespaces and start its command; `hooks.started` has run when this
/// returns.
pub fn start(spec: &ContainerSpec, hooks: &mut dyn Hooks) -> Result<Started, RuntimeError> {
    let sigfd = block_forwarded_signals()?;

    let (ours, theirs) = channel_pair()?;
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if spec.network == Network::Private {
        flags |= libc::CLONE_NEWNET;
    }
    // Opened here, in burrow's view of /proc; the child joins it before mounting sysfs.
    let join_net = match &spec.network {
        Network::Join(path) => Some(std::fs::File::open(path).map_err(|e| {
            ExitError::new(
                crate::exit::BURROW_ERROR,
                format!("cannot open {}: {e}", path.display()),
            )
        })?),
        _ => None,
    };
    let child = clone_container(flags).map_err(RuntimeError::Clone)?;
    if child == 0 {
        drop(ours);
        if let Some(net) = join_net
            && let Err(e) = nix::sched::setns(net, nix::sched::CloneFlags::CLONE_NEWNET)
        {
            let _ = theirs.send(
                &ChildMessage::Failed {
                    code: crate::exit::BURROW_ERROR,
                    message: format!("cannot join the other container's network namespace: {e}"),
                },
                None,
            );
            // SAFETY: leave the cloned copy without running destructors.
            unsafe { libc::_exit(i32::from(crate::exit::BURROW_ERROR)) };
        }
        init::container_main(spec, &theirs);
    }
    drop(theirs);
    let pid = Pid::from_raw(child);
    let pidfd = pidfd_open(child)?;
    let (master, rootfs_server) = handshake(&ours, pid, spec, hooks)?;
    hooks.started(pid);
    Ok(Started {
        pid,
        pidfd,
        signals: sigfd,
        master,
        rootfs_server,
    })
}

/// Wait for the container to be ready (serving its root filesystem if it asks), let the
/// hooks attach what they must, tell it to exec, and learn whether exec worked. Returns the
/// pty master and the root filesystem's server, if any.
fn handshake(
    chan: &super::sync::Channel,
    pid: Pid,
    spec: &ContainerSpec,
    hooks: &mut dyn Hooks,
) -> Result<(Option<OwnedFd>, Option<MountServer>), RuntimeError> {
    let fail = |code: u8, message: String| -> RuntimeError {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = wait_child(pid);
        ExitError::new(code, message).into()
    };
    let mut master: Option<OwnedFd> = None;
    let mut server: Option<MountServer> = None;
    loop {
        match chan.recv::<ChildMessage>()? {
            Some((ChildMessage::PtyMaster, fd)) => master = fd,
            Some((ChildMessage::MountServer, Some(dev))) => {
                match spec.rootfs_driver.serve(&spec.layers(), dev) {
                    Ok(s) => server = Some(s),
                    Err(e) => return Err(fail(crate::exit::BURROW_ERROR, e.to_string())),
                }
            }
            Some((ChildMessage::MountServer, None)) => {
                return Err(fail(
                    crate::exit::BURROW_ERROR,
                    "the root filesystem's device did not arrive".into(),
                ));
            }
            Some((ChildMessage::Ready, _)) => break,
            Some((ChildMessage::Failed { code, message }, _)) => return Err(fail(code, message)),
            None => {
                let status = wait_child(pid)?;
                return Err(RuntimeError::DiedInSetup(format!("{status:?}")));
            }
        }
    }
    if let (Some(m), Some(ws)) = (&master, pty::window_size(0)) {
        pty::set_window_size(m.as_raw_fd(), &ws);
    }
    if let Some(dir) = &spec.cgroup
        && let Err(e) = super::cgroups::add_process(dir, pid.as_raw())
    {
        return Err(fail(crate::exit::BURROW_ERROR, e.to_string()));
    }
    if let Err(message) = hooks.before_start(pid) {
        return Err(fail(crate::exit::BURROW_ERROR, message));
    }
    chan.send(&ParentMessage::Start, None)?;
    // The channel closes on exec; a message instead means exec failed.
    if let Some((ChildMessage::Failed { code, message }, _)) = chan.recv::<ChildMessage>()? {
        return Err(fail(code, message));
    }
    Ok((master, server))
}

fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match nix::unistd::write(unsafe { BorrowedFd::borrow_raw(fd) }, buf) {
            Ok(0) => return false,
            Ok(n) => buf = &buf[n..],
            Err(nix::Error::EINTR) | Err(nix::Error::EAGAIN) => continue,
            Err(_) => return false,
        }
    }
    true
}

/// Relay the terminal and forward signals until the container's first process exits.
pub fn relay_until_exit(started: &Started, interactive: bool) -> Result<WaitStatus, RuntimeError> {
    let (pid, pidfd, sigfd, master) = (
        started.pid,
        &started.pidfd,
        &started.signals,
        started.master.as_ref(),
    );
    let mut stdin_open = master.is_some() && interactive;
    let mut master_open = master.is_some();
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: stdin stays open for burrow's lifetime.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    loop {
        let mut fds = vec![
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        if let (Some(m), true) = (master, master_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (exited, signalled) = (ready(0), ready(1));
        let master_ready = master_open && ready(2);
        let stdin_ready = stdin_open && ready(if master_open { 3 } else { 2 });
        drop(fds);

        if signalled {
            while let Ok(Some(info)) = sigfd.read_signal() {
                forward_signal(pid, info.ssi_signo, master);
            }
        }
        if master_ready && let Some(m) = master {
            match nix::unistd::read(m, &mut buf) {
                Ok(0) | Err(nix::Error::EIO) => master_open = false,
                Ok(n) => {
                    write_all(1, &buf[..n]);
                }
                Err(_) => {}
            }
        }
        if stdin_ready && let Some(m) = master {
            match nix::unistd::read(stdin, &mut buf) {
                Ok(0) | Err(nix::Error::EIO) => stdin_open = false,
                Ok(n) => {
                    write_all(m.as_raw_fd(), &buf[..n]);
                }
                Err(_) => {}
            }
        }
        if exited {
            let status = wait_child(pid)?;
            // Everything in the container's pid namespace is gone, so the pty drains to EIO.
            if let (Some(m), true) = (master, master_open) {
                loop {
                    match nix::unistd::read(m, &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            write_all(1, &buf[..n]);
                        }
                    }
                }
            }
            return Ok(status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::forwarded_signals;

    #[test]
    fn forwards_every_catchable_signal_but_docker_exceptions() {
        let set: Vec<i32> = forwarded_signals().collect();
        for sig in [
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
            libc::SIGWINCH,
            libc::SIGCONT,
            libc::SIGTSTP,
            libc::SIGPWR,
            libc::SIGSYS,
            libc::SIGRTMIN(),
            libc::SIGRTMAX(),
        ] {
            assert!(set.contains(&sig), "signal {sig} not forwarded");
        }
        for sig in [
            libc::SIGCHLD,
            libc::SIGPIPE,
            libc::SIGURG,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            32,
            33,
        ] {
            assert!(!set.contains(&sig), "signal {sig} forwarded");
        }
    }
}
