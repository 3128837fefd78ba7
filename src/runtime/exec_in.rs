//! `exec`: a new process in a running container, with the same user, environment, working
//! directory and capability rules as the container's first process.

use nix::unistd::{ForkResult, Pid, fork};

use super::cgroups::ProcsFile;
use super::init::{become_process, resolve_user, setup_stdio};
use super::supervise::{
    Started, block_forwarded_signals, exit_code, pidfd_open, relay_until_exit, wait_child,
};
use super::sync::{ChildMessage, ParentMessage, channel_pair};
use super::{ProcessConfig, RuntimeError, Stdio, caps, join, pty};
use crate::exit::{BURROW_ERROR, ExitError};

pub struct ExecSpec {
    pub process: ProcessConfig,
    pub group_add: Vec<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
    pub can_setgroups: bool,
    /// `--privileged`: every capability burrow's user namespace allows, and no `no_new_privs`.
    pub privileged: bool,
    /// The cgroup holding the container's limits, which the process joins before it starts.
    pub cgroup: Option<std::path::PathBuf>,
}

/// Join the namespaces of the container whose first process is `container_pid`, start the
/// process there, and (unless detached) relay it until it exits.
pub fn exec_in(container_pid: Pid, spec: &ExecSpec) -> Result<u8, RuntimeError> {
    let burrow_error = |e: &dyn std::fmt::Display| ExitError::new(BURROW_ERROR, e.to_string());
    // Opened before the container's mount namespace hides the cgroup tree.
    let cgroup = match &spec.cgroup {
        Some(dir) => Some(ProcsFile::open(dir).map_err(|e| burrow_error(&e))?),
        None => None,
    };
    join::enter_all_of(container_pid).map_err(|e| burrow_error(&e))?;
    let sigfd = block_forwarded_signals()?;
    let (ours, theirs) = channel_pair()?;
    // SAFETY: burrow is single-threaded; the child only sets itself up and execs.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(ours);
            let failure = child(spec, &theirs);
            let _ = theirs.send(
                &ChildMessage::Failed {
                    code: failure.code,
                    message: failure.message.clone(),
                },
                None,
            );
            // SAFETY: leave the forked copy without running destructors.
            unsafe { libc::_exit(i32::from(failure.code)) }
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            if let Some(procs) = &cgroup
                && let Err(e) = procs.add(child.as_raw())
            {
                // Without its go-ahead the child gives up.
                drop(ours);
                let _ = wait_child(child);
                return Err(burrow_error(&e).into());
            }
            // A child that failed first has gone already: its reason is read below.
            let _ = ours.send(&ParentMessage::Start, None);
            let pidfd = pidfd_open(child.as_raw())?;
            let mut master = None;
            loop {
                match ours.recv::<ChildMessage>()? {
                    Some((ChildMessage::PtyMaster, fd)) => master = fd,
                    Some((ChildMessage::Failed { code, message }, _)) => {
                        let _ = wait_child(child);
                        return Err(ExitError::new(code, message).into());
                    }
                    // An exec'd process mounts no root filesystem.
                    Some((ChildMessage::Ready | ChildMessage::MountServer, _)) => {}
                    None => break,
                }
            }
            if spec.detach {
                return Ok(0);
            }
            if let (Some(m), Some(ws)) = (&master, pty::window_size(0)) {
                pty::set_window_size(std::os::fd::AsRawFd::as_raw_fd(m), &ws);
            }
            let started = Started {
                pid: child,
                pidfd,
                signals: sigfd,
                master,
                rootfs_server: None,
            };
            let _raw = match &started.master {
                Some(_) if spec.interactive && pty::is_terminal(0) => pty::RawMode::enable(0).ok(),
                _ => None,
            };
            Ok(exit_code(relay_until_exit(&started, spec.interactive)?))
        }
    }
}

fn child(spec: &ExecSpec, chan: &super::sync::Channel) -> super::init::Failure {
    let fail = |message: String| super::init::Failure {
        code: BURROW_ERROR,
        message,
    };
    if spec.tty {
        let (master, slave) = match pty::open_container_pty() {
            Ok(p) => p,
            Err(e) => return fail(format!("open pty: {e}")),
        };
        if let Err(e) = chan.send(
            &ChildMessage::PtyMaster,
            Some(std::os::fd::AsRawFd::as_raw_fd(&master)),
        ) {
            return fail(format!("send pty: {e}"));
        }
        drop(master);
        if let Err(e) = pty::become_terminal_owner(slave) {
            return fail(format!("set up terminal: {e}"));
        }
    } else {
        if let Err(e) = nix::unistd::setsid() {
            return fail(format!("setsid: {e}"));
        }
        if let Err(e) = setup_stdio(&Stdio::Inherit, spec.interactive) {
            return fail(format!("standard streams: {e}"));
        }
    }
    let who = match resolve_user(&spec.process, &spec.group_add) {
        Ok(w) => w,
        Err(f) => return f,
    };
    if !spec.privileged
        && let Err(e) = caps::limit_bounding_set()
    {
        return fail(e.to_string());
    }
    // Not before burrow has put this process in the container's cgroup.
    match chan.recv::<ParentMessage>() {
        Ok(Some((ParentMessage::Start, _))) => {}
        _ => return fail("burrow went away before the process could start".into()),
    }
    become_process(&spec.process, &who, spec.can_setgroups, spec.privileged)
}
