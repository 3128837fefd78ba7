//! Joining a running container's namespaces (`exec`, `stop`, `kill`, `top`): the user
//! namespace first, which gives burrow root over everything else the container owns.

use std::os::fd::OwnedFd;

use nix::sched::{CloneFlags, setns};
use nix::unistd::Pid;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("container process {pid} is gone: {source}")]
    Gone { pid: i32, source: std::io::Error },
    #[error("cannot join the container's {ns} namespace: {source}")]
    Setns {
        ns: &'static str,
        source: nix::Error,
    },
}

fn open_ns(pid: Pid, ns: &'static str) -> Result<OwnedFd, JoinError> {
    std::fs::File::open(format!("/proc/{pid}/ns/{ns}"))
        .map(OwnedFd::from)
        .map_err(|source| JoinError::Gone {
            pid: pid.as_raw(),
            source,
        })
}

/// Enter the user namespace of `pid` (burrow must be single-threaded).
pub fn enter_userns_of(pid: Pid) -> Result<(), JoinError> {
    let fd = open_ns(pid, "user")?;
    setns(fd, CloneFlags::CLONE_NEWUSER).map_err(|source| JoinError::Setns { ns: "user", source })
}

/// Enter every namespace of `pid`; the pid namespace applies to children forked afterwards.
pub fn enter_all_of(pid: Pid) -> Result<(), JoinError> {
    // Open them all first: after joining the mount namespace, /proc is the container's.
    let names: [(&str, CloneFlags); 6] = [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut fds = Vec::new();
    for (ns, flag) in names {
        fds.push((ns, flag, open_ns(pid, ns)?));
    }
    let own_net = std::fs::read_link("/proc/self/ns/net").ok();
    for (ns, flag, fd) in fds {
        // A container on the host network shares our net namespace: joining it is a no-op
        // that the kernel may refuse, so skip it.
        if ns == "net" && std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() == own_net {
            continue;
        }
        setns(fd, flag).map_err(|source| JoinError::Setns { ns, source })?;
    }
    Ok(())
}
