//! `burrow pause` / `unpause`: freeze every process of a container with SIGSTOP and thaw it
//! with SIGCONT.
//!
//! docker and podman use the cgroup freezer, which the frozen processes cannot notice. burrow
//! does not put containers in cgroups of their own (a rootless user rarely has a delegated
//! cgroup v2 tree, and none under cgroups v1), so it uses the signals, and it differs in what
//! the container can see: a process of it can observe that it was stopped and continued
//! (SIGCHLD of a stopped child, `waitpid` with `WUNTRACED`), and a process started into the
//! container while it is paused would run, which is why `exec` refuses a paused container.

use nix::sys::signal::Signal;

use super::stop::for_each;
use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, ContainerStore, Status};
use crate::exit::refused;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "burrow does not use a cgroup freezer (a container has a cgroup only with \
                  resource limits and a delegated cgroup v2): pause stops every process of \
                  the container with SIGSTOP and unpause \
                  continues them with SIGCONT. The container's processes can notice this \
                  (a parent sees its child stopped); exec into a paused container is refused."
)]
pub struct Args {
    /// Containers (names or ids)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn pause(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    Ok(for_each(&containers, &args.containers, |r| {
        pause_one(&containers, r)
    }))
}

pub fn unpause(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    Ok(for_each(&containers, &args.containers, |r| {
        if r.status != Status::Paused {
            return Err(refused(format!("Container {} is not paused", r.name)));
        }
        thaw(&containers, r)
    }))
}

fn pause_one(containers: &ContainerStore, r: &ContainerRecord) -> anyhow::Result<()> {
    if r.status == Status::Paused {
        return Err(refused(format!("Container {} is already paused", r.name)));
    }
    super::lifecycle::refuse_unless_running(r)?;
    signal_all(r, Signal::SIGSTOP)?;
    let pid = r.pid;
    let saved = containers.update(&r.id, |x| {
        // Not if it ended meanwhile (its monitor recorded the exit).
        if x.status == Status::Running && x.pid == pid {
            x.status = Status::Paused;
        }
    })?;
    if saved.status != Status::Paused {
        return Err(refused(format!("container {} is not running", r.name)));
    }
    Ok(())
}

/// Continue every process of a paused container and record it running again (`unpause`,
/// and `stop`/`kill` of a paused container after their signal, as docker does).
pub fn thaw(containers: &ContainerStore, r: &ContainerRecord) -> anyhow::Result<()> {
    signal_all(r, Signal::SIGCONT)?;
    containers.update(&r.id, |x| {
        if x.status == Status::Paused {
            x.status = Status::Running;
        }
    })?;
    Ok(())
}

/// Keeps a running container paused while it lives (`commit -p`), and continues it when
/// dropped, on error paths too. The unpause is done by a helper process forked before the
/// pause, because the caller enters a user namespace of its own meanwhile, from which the
/// container's processes are out of reach; the helper also unpauses if burrow is killed.
pub struct PauseGuard {
    /// Closed to tell the helper to unpause; the helper reads one byte first, written once
    /// the pause succeeded (without it, it has nothing to undo).
    release: Option<std::fs::File>,
    helper: nix::unistd::Pid,
    name: String,
}

impl PauseGuard {
    /// Pause `r` if it is running. None for any other state: a container paused already
    /// stays paused, as with docker, and a stopped one has nothing to freeze.
    pub fn pause(containers: &ContainerStore, r: &ContainerRecord) -> anyhow::Result<Option<Self>> {
        use nix::unistd::{ForkResult, fork};
        if r.status != Status::Running {
            return Ok(None);
        }
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // SAFETY: burrow is single-threaded here; the child only waits on the pipe, signals
        // the container's processes (forking once more) and updates its record.
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop(write);
                // Ctrl-C or a hangup meant for burrow must not end the helper before it
                // unpaused.
                for sig in [
                    Signal::SIGINT,
                    Signal::SIGQUIT,
                    Signal::SIGHUP,
                    Signal::SIGTERM,
                ] {
                    // SAFETY: ignoring a signal installs no handler.
                    let _ = unsafe {
                        nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn)
                    };
                }
                let ok =
                    !wait_for_release(std::fs::File::from(read)) || thaw(containers, r).is_ok();
                // SAFETY: leave the forked copy without running destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                drop(read);
                let mut guard = PauseGuard {
                    release: Some(std::fs::File::from(write)),
                    helper: child,
                    name: r.name.clone(),
                };
                pause_one(containers, r)?;
                if let Some(f) = guard.release.as_mut() {
                    std::io::Write::write_all(f, b"1")?;
                }
                Ok(Some(guard))
            }
        }
    }
}

/// Whether the pause was made (its byte arrived); returns once the writer's end is closed,
/// by the guard or by burrow's death.
fn wait_for_release(mut pipe: std::fs::File) -> bool {
    use std::io::{ErrorKind, Read};
    let mut paused = false;
    let mut buf = [0u8; 1];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return paused,
            Ok(_) => paused = true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return paused,
        }
    }
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        drop(self.release.take());
        if !matches!(
            nix::sys::wait::waitpid(self.helper, None),
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0))
        ) {
            log::warn!(
                "container {0} may still be paused: run `burrow unpause {0}`",
                self.name
            );
        }
    }
}

/// The pids of every process in the pid namespace of `init` (call where reading their
/// namespaces is allowed: inside the container's user namespace).
pub fn container_processes(init: i32) -> std::io::Result<Vec<i32>> {
    let target = std::fs::read_link(format!("/proc/{init}/ns/pid"))?;
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|ns| ns == target))
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// The state letter of /proc/PID/stat (R, S, D, T, Z, ...).
pub fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}

/// The FUSE overlay's server shares the container's pid namespace: it is left running, as
/// processes of the container waiting for a reply from it could not stop otherwise.
fn is_fuse_server(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "burrow-fuse")
        && std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "/dev/fuse"))
        })
}

/// Send `sig` to every process of the container, from a child that joins the container's user
/// namespace (its processes belong to subordinate ids). SIGSTOP is repeated until every
/// process is stopped: one may fork while the others are being stopped.
fn signal_all(r: &ContainerRecord, sig: Signal) -> anyhow::Result<()> {
    use nix::unistd::{ForkResult, Pid, fork};
    let init = r.pid;
    // SAFETY: burrow is single-threaded; the child only joins a namespace, reads /proc,
    // signals and exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let ok = crate::runtime::join::enter_userns_of(Pid::from_raw(init)).is_ok()
                && signal_until_done(init, sig);
            // SAFETY: leave the forked copy without running destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None)? {
            nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
            _ if sig == Signal::SIGSTOP => {
                // Leave nothing half-frozen.
                let _ = signal_all(r, Signal::SIGCONT);
                anyhow::bail!("cannot stop every process of container {}", r.name)
            }
            _ => anyhow::bail!("cannot send {sig} to the processes of container {}", r.name),
        },
    }
}

fn signal_until_done(init: i32, sig: Signal) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let Ok(pids) = container_processes(init) else {
            return false;
        };
        let mut pending = false;
        for pid in pids {
            if sig == Signal::SIGSTOP {
                if is_fuse_server(pid) || matches!(process_state(pid), Some('T' | 'Z' | 'X')) {
                    continue;
                }
                pending = true;
            }
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
        if !pending {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
