//! Running a user-mode network helper (slirp4netns, pasta) as a child that cannot outlive its
//! owner: PR_SET_PDEATHSIG, its own process group (a terminal's ^C is for the container), and
//! descriptors passed at fixed numbers.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::NetError;

/// How long a helper may take to configure the network.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a helper may take to exit once asked.
const EXIT_TIMEOUT: Duration = Duration::from_secs(3);

pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A pipe whose ends are both close-on-exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), NetError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| NetError::Sys {
        what: "pipe",
        source: e.into(),
    })
}

/// In a freshly forked child: die with `parent` (SIGKILL when it dies, at once if it already
/// has), and start from the default signal handling, since burrow blocks and ignores the
/// signals it forwards to the container.
///
/// # Safety
/// Only async-signal-safe calls are made; call it in a forked child of a single-threaded
/// process.
pub unsafe fn tie_to_parent(parent: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: prctl, getppid, sigprocmask, signal and _exit are async-signal-safe.
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        // The parent may have died before PR_SET_PDEATHSIG took effect.
        if libc::getppid() != parent {
            libc::_exit(1);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        for sig in [
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGPIPE,
            libc::SIGCHLD,
        ] {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    Ok(())
}

/// A running helper. Dropping it ends the helper (closing its exit descriptor, then SIGTERM,
/// then SIGKILL) and reaps it.
#[derive(Debug)]
pub struct Helper {
    pub name: &'static str,
    child: Child,
    /// The write end of the helper's exit pipe: closing it tells the helper to quit.
    exit_w: Option<OwnedFd>,
    pub log: PathBuf,
}

/// Spawn `cmd` with `fds` (descriptor, number in the child) and stderr to `log`.
pub fn spawn(
    name: &'static str,
    mut cmd: Command,
    fds: Vec<(OwnedFd, RawFd)>,
    log: &Path,
    exit_w: Option<OwnedFd>,
) -> Result<Helper, NetError> {
    let logfile = File::create(log).map_err(|source| NetError::Write {
        path: log.to_path_buf(),
        source,
    })?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(logfile.try_clone().map_err(|source| {
            NetError::Write {
                path: log.to_path_buf(),
                source,
            }
        })?))
        .stderr(Stdio::from(logfile))
        .env(
            "BURROW_CONTAINER_DIR",
            log.parent().unwrap_or(Path::new("/")),
        )
        .process_group(0);
    assert!(fds.len() <= 4, "at most 4 descriptors");
    let mut pairs = [(-1 as RawFd, -1 as RawFd); 4];
    for (i, (fd, target)) in fds.iter().enumerate() {
        pairs[i] = (fd.as_raw_fd(), *target);
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, sigprocmask, signal, fcntl, dup2,
    // _exit) between fork
    // and exec; burrow is single-threaded here.
    unsafe {
        cmd.pre_exec(move || {
            // SIGTERM is how pasta is asked to quit.
            tie_to_parent(parent)?;
            // Move every source out of the way of every target first, then into place; dup2
            // leaves the copy without FD_CLOEXEC.
            let mut high = [-1 as RawFd; 4];
            for (i, (src, _)) in pairs.iter().enumerate() {
                if *src >= 0 {
                    high[i] = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 100);
                    if high[i] < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            for (i, (_, target)) in pairs.iter().enumerate() {
                if high[i] >= 0 && libc::dup2(high[i], *target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|source| NetError::Spawn { name, source })?;
    drop(fds);
    Ok(Helper {
        name,
        child,
        exit_w,
        log: log.to_path_buf(),
    })
}

impl Helper {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the helper logged, for error messages.
    pub fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let text: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("Failed to send") && !l.trim().is_empty())
            .collect();
        let start = text.len().saturating_sub(10);
        text[start..].join("; ")
    }

    /// Wait until `ready` is readable with data (the helper's "configured" signal). EOF means
    /// the helper exited; a timeout kills it.
    pub fn wait_ready(&mut self, ready: &OwnedFd) -> Result<(), NetError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NetError::HelperFailed {
                    name: self.name,
                    reason: format!("not ready after {}s", READY_TIMEOUT.as_secs()),
                    log: self.log_text(),
                });
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Err(nix::Error::EINTR) | Ok(0) => continue,
                Err(e) => {
                    return Err(NetError::Sys {
                        what: "poll",
                        source: e.into(),
                    });
                }
                Ok(_) => {}
            }
            let mut buf = [0u8; 64];
            match nix::unistd::read(ready, &mut buf) {
                Ok(0) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    // Reaped: make Drop a no-op.
                    self.exit_w = None;
                    return Err(NetError::HelperFailed {
                        name: self.name,
                        reason: format!("exited before the network was ready ({status})"),
                        log: self.log_text(),
                    });
                }
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) | Err(nix::Error::EAGAIN) => continue,
                Err(e) => {
                    return Err(NetError::Sys {
                        what: "read",
                        source: e.into(),
                    });
                }
            }
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) => {}
            }
            if Instant::now() >= deadline {
                return false;
            }
            // The helper has been told to quit; this only bounds how long that may take.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if self.exit_w.take().is_none() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        if !self.wait_exit(EXIT_TIMEOUT) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
