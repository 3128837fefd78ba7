//! `burrow network-infra NAME` (hidden): the process that holds a user-defined network while
//! containers use it — its network namespace with the bridge, and slirp4netns for the way out
//! (see `netns::bridge`). Started by the first container that joins the network; it ends by
//! itself once every anchor (a process that keeps members on the network) has exited. Like the
//! container monitor, it is not a daemon: nothing runs while no container uses the network.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cli::GlobalArgs;
use crate::netns::bridge::{self, InfraState, RunDir};
use crate::netns::networks::NetworkStore;
use crate::netns::{NetError, SlirpOptions, slirp4netns::Slirp};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub network: String,
}

/// Start the infra process of `network` and wait until the network is up.
pub fn spawn(storage_root: &Path, network: &str) -> Result<(), NetError> {
    let spawn_err = |source| NetError::Spawn {
        name: "network infra",
        source,
    };
    let run = RunDir::new(storage_root, network);
    let log_path = run.dir.join("infra.log");
    let log = std::fs::File::create(&log_path).map_err(|source| NetError::Write {
        path: log_path.clone(),
        source,
    })?;
    let mut cmd = super::reexec::burrow_command().map_err(spawn_err)?;
    cmd.arg("--root")
        .arg(storage_root)
        .arg("network-infra")
        .arg(network);
    let (mut child, text) = super::reexec::spawn_reporting(cmd, log).map_err(spawn_err)?;
    if text.trim() == "ok" {
        // The infra lives on in its own session; it is not ours to reap.
        std::mem::forget(child);
        return Ok(());
    }
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    Err(NetError::HelperFailed {
        name: "network infra",
        reason: format!("network {network} did not come up"),
        log: if text.trim().is_empty() {
            log.trim().to_string()
        } else {
            text.trim().to_string()
        },
    })
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let mut report = super::reexec::take_report();
    let result = serve(global, &args.network, &mut report);
    if let (Err(e), Some(mut r)) = (&result, report.take()) {
        let _ = write!(r, "{e:#}");
    }
    result
}

fn serve(
    global: &GlobalArgs,
    network: &str,
    report: &mut Option<std::fs::File>,
) -> anyhow::Result<u8> {
    let root = crate::paths::storage_root(global);
    let def = NetworkStore::open(&root).find(network)?;
    let run = RunDir::new(&root, &def.name);
    let Some(life) = run.try_lock_life()? else {
        anyhow::bail!("network {network} already has an infra process");
    };
    enter_shared_userns(&root, &run)?;
    let holder = Holder::start()?;
    let slirp = if def.internal {
        None
    } else {
        let opts = SlirpOptions {
            cidr: Some(def.subnet.clone()),
            mtu: bridge::MTU,
            ..SlirpOptions::default()
        };
        Some(Slirp::start_bridged(holder.pid, &run.dir, &opts)?)
    };
    bridge::configure_infra(holder.pid, &def, slirp.is_some())?;
    let (_dir, ctl) = run.ctl_socket()?;
    let _ = std::fs::remove_file(&ctl);
    let listener = UnixListener::bind(&ctl).context("cannot create the control socket")?;
    run.save_infra(&InfraState {
        pid: std::process::id() as i32,
        holder_pid: holder.pid,
    })?;
    if let Some(mut r) = report.take() {
        r.write_all(b"ok")?;
    }
    // Holding the join lock until the end: nobody joins a network that is going away, and
    // whoever waits for it finds this infra gone (its life lock released first).
    let join = wait_for_anchors(&listener, &run)?;
    let _ = std::fs::remove_file(run.dir.join("infra.json"));
    let _ = std::fs::remove_file(run.dir.join("members.json"));
    let _ = std::fs::remove_file(&ctl);
    drop(slirp);
    let _ = std::fs::remove_file(run.dir.join("slirp.sock"));
    drop(holder);
    drop(life);
    drop(join);
    Ok(0)
}

/// All infra processes of a storage root share one user namespace, so that a container can be
/// on several networks: join a running one's, or make it.
fn enter_shared_userns(root: &Path, ours: &RunDir) -> anyhow::Result<()> {
    let other = RunDir::all(root)
        .into_iter()
        .filter(|r| r.dir != ours.dir)
        .find_map(|r| r.live_infra());
    match other {
        Some(state) => {
            crate::runtime::join::enter_userns_of(nix::unistd::Pid::from_raw(state.holder_pid))?;
        }
        None => {
            crate::userns::enter_current()?;
        }
    }
    Ok(())
}

/// Serve anchors until none is left and no join is under way; returns holding the join lock.
fn wait_for_anchors(
    listener: &UnixListener,
    run: &RunDir,
) -> anyhow::Result<crate::storage::lock::FileLock> {
    let mut anchors: Vec<(i32, OwnedFd)> = Vec::new();
    loop {
        if anchors.is_empty()
            && let Some(lock) = run.try_lock_join()?
        {
            return Ok(lock);
        }
        let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        fds.extend(
            anchors
                .iter()
                .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
        );
        // With no anchor, a joiner holds the join lock and is about to send one; look again
        // in a while in case it died first.
        let timeout = if anchors.is_empty() {
            PollTimeout::from(1000u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut i = 0;
        anchors.retain(|_| {
            i += 1;
            !ready[i]
        });
        if ready[0] {
            accept_anchor(listener, &mut anchors);
        }
    }
}

fn accept_anchor(listener: &UnixListener, anchors: &mut Vec<(i32, OwnedFd)>) {
    let Ok((mut conn, _)) = listener.accept() else {
        return;
    };
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut line = String::new();
    let _ = (&mut conn).take(64).read_to_string(&mut line);
    let reply = match line
        .trim()
        .strip_prefix("anchor ")
        .and_then(|p| p.parse::<i32>().ok())
    {
        Some(pid) => match pidfd_open(pid) {
            Ok(fd) => {
                anchors.push((pid, fd));
                "ok".to_string()
            }
            Err(e) => format!("process {pid}: {e}"),
        },
        None => format!("unknown request {:?}", line.trim()),
    };
    let _ = conn.write_all(reply.as_bytes());
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: a plain syscall; the returned descriptor is ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A child that does nothing but keep the network namespace (and the user namespace it was
/// made in) alive; it dies with the infra process.
struct Holder {
    pid: i32,
}

impl Holder {
    fn start() -> anyhow::Result<Holder> {
        use nix::unistd::{ForkResult, fork};
        let (r, w) = crate::netns::helper_pipe()?;
        let parent = std::process::id() as i32;
        // SAFETY: single-threaded; the child only makes syscalls and never returns.
        match unsafe { fork() }? {
            ForkResult::Child => unsafe {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                if libc::getppid() != parent || libc::unshare(libc::CLONE_NEWNET) != 0 {
                    libc::_exit(1);
                }
                // Hold nothing of the infra's: its report pipe must reach end of file and its
                // locks must go with it.
                let keep = w.as_raw_fd() as libc::c_uint;
                libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32);
                libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
                libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            },
            ForkResult::Parent { child } => {
                drop(w);
                let mut byte = [0u8; 1];
                let n = std::fs::File::from(r).read(&mut byte)?;
                if n != 1 {
                    let _ = nix::sys::wait::waitpid(child, None);
                    anyhow::bail!("cannot create the network namespace");
                }
                Ok(Holder {
                    pid: child.as_raw(),
                })
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
}
