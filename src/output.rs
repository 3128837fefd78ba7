//! burrow's own output, and what it does when the reader of its stdout goes away.
//!
//! docker, a Go program, ends without a word when its stdout is a pipe whose reader has gone
//! (`docker images | head -1`): the write raises SIGPIPE and kills it (141 in a shell's `$?`).
//! Rust's runtime ignores SIGPIPE before `main`, so burrow's write fails with EPIPE instead,
//! and `println!` panics on it.
//!
//! burrow keeps SIGPIPE ignored for the whole process, on purpose, and handles EPIPE here, in
//! the printing layer. Its long-lived parts write to sockets and pipes whose peer may go away
//! at any time and must get EPIPE, not die: the detached container's monitor (its attach
//! clients, the container's stdin), attach's and `logs -f`'s connection to it, the port proxy,
//! the network infra, the relays of `run`/`exec` between a terminal and the container, the
//! pipe `commit` hashes its layer through. Restoring SIGPIPE's default for "short" commands
//! instead would make every such write reached from them a silent death, also in the children
//! they fork (dispositions survive fork and exec). Processes burrow starts do not inherit the
//! ignored SIGPIPE: std's `Command` resets it, and the container's process gets every signal
//! at its default (`runtime::init`), as docker gives it.
//!
//! Output through [`Stdout`] (and the [`outln!`]/[`out!`] macros) notes a closed stdout,
//! drops what follows and reports EPIPE to callers that stream (`logs -f`, `stats`) so they
//! stop. [`crate::exit::finish`] then ends burrow by SIGPIPE, once the command is done: what
//! it was doing (removing, loading, pulling) is complete, as docker's daemon completes it, and
//! the shell sees the status docker's CLI gives.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a write to stdout failed with EPIPE: its reader has gone.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// burrow's stdout: `std::io::stdout()` that remembers when its reader has gone, and from then
/// on fails at once with EPIPE.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stdout;

impl Stdout {
    fn guard<T>(result: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if is_closed() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let result = result();
        if let Err(e) = &result
            && e.kind() == io::ErrorKind::BrokenPipe
        {
            CLOSED.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Self::guard(|| io::stdout().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Self::guard(|| io::stdout().lock().write_all(buf))
    }

    /// One lock for the whole line (not one per piece), flushed so that EPIPE shows now.
    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        Self::guard(|| {
            let mut out = io::stdout().lock();
            out.write_fmt(args)?;
            out.flush()
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Self::guard(|| io::stdout().flush())
    }
}

/// Whether burrow's stdout turned out to be a pipe nobody reads any more.
pub fn is_closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// End burrow as docker's CLI ends when its stdout is closed: killed by SIGPIPE.
pub fn end_by_sigpipe() -> ! {
    // SAFETY: plain signal calls; raise delivers SIGPIPE to this thread, unblocked and at its
    // default action, which ends the whole process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGPIPE);
        // Not reached; the status a shell would show for it all the same.
        libc::_exit(128 + libc::SIGPIPE)
    }
}

/// `println!` for burrow's output: a closed stdout ends burrow quietly at the end of the
/// command (see the module's documentation) instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!($crate::output::Stdout, $($arg)*);
    }};
}

/// `print!` for burrow's output (see [`outln!`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::write!($crate::output::Stdout, $($arg)*);
    }};
}

/// `eprintln!` that never panics: with stderr a pipe whose reader has gone, the line is lost
/// instead of the process (the port proxy, a relay, the logger keep going).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    const CHILD: &str = "BURROW_OUTPUT_TEST_CHILD";

    #[test]
    fn a_closed_stdout_is_noted_and_what_follows_fails_at_once() {
        // In a child process of its own: the flag is process-wide, and fd 1 is replaced.
        if std::env::var_os(CHILD).is_some() {
            let (reader, writer) = io::pipe().unwrap();
            drop(reader);
            // SAFETY: replacing fd 1 of this child, which exits right after.
            unsafe { libc::dup2(writer.as_raw_fd(), 1) };
            outln!("first");
            let noted = is_closed();
            let again = Stdout.write_all(b"second\n");
            let fails = again.is_err_and(|e| e.kind() == io::ErrorKind::BrokenPipe);
            std::process::exit(if noted && fails { 0 } else { 1 });
        }
        let name = "output::tests::a_closed_stdout_is_noted_and_what_follows_fails_at_once";
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name])
            .env(CHILD, "1")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}
