//! Starting burrow itself as a long-lived process of its own (a container's monitor, a
//! network's infra): in a new session (a terminal's ^C is not for it), stdin and stdout on
//! /dev/null, stderr to a log, and a pipe at descriptor 3 on which it reports whether it came
//! up. The starter reads the report to its end: the process closes it (or exits) once it is up.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};

/// The descriptor of the report pipe in the started process.
const REPORT_FD: i32 = 3;

/// A command that runs burrow's own executable.
pub fn burrow_command() -> std::io::Result<Command> {
    Ok(Command::new(std::fs::read_link("/proc/self/exe")?))
}

/// Start `cmd` (from [`burrow_command`]) with its stderr to `log`, and wait for its report.
/// Returns the child and everything it reported.
pub fn spawn_reporting(mut cmd: Command, log: std::fs::File) -> std::io::Result<(Child, String)> {
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    let write_fd = report_write.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::setsid() < 0 || libc::dup2(write_fd, REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(report_write);
    let mut text = String::new();
    std::fs::File::from(report_read).read_to_string(&mut text)?;
    Ok((child, text))
}

/// In the started process: the report pipe, if it was started with one.
pub fn take_report() -> Option<std::fs::File> {
    // SAFETY: if descriptor 3 is not open, fcntl fails and there is no report; if it is, it is
    // the pipe `spawn_reporting` put there, which nothing else owns.
    (unsafe { libc::fcntl(REPORT_FD, libc::F_SETFD, libc::FD_CLOEXEC) } == 0)
        .then(|| std::fs::File::from(unsafe { OwnedFd::from_raw_fd(REPORT_FD) }))
}
