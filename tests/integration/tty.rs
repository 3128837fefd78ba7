//! `burrow run -t`: a real pty in the container, window size, ^C.
//!
//! The test opens a pty pair, runs burrow in a new session with the slave as
//! its controlling terminal, and talks to it through the master.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use crate::fixtures::load_base;
use crate::harness::{Stream, TIMEOUT, TestCtx, dup_stdin_to, status_code};

struct Pty {
    master: File,
    slave: OwnedFd,
}

fn termios_of(f: &File) -> libc::termios {
    // SAFETY: tcgetattr fills a zeroed termios.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        let r = libc::tcgetattr(f.as_raw_fd(), &mut t);
        assert_eq!(r, 0, "tcgetattr: {}", std::io::Error::last_os_error());
        t
    }
}

/// The fields of a termios that raw mode changes, comparable with `==`.
fn settings(t: &libc::termios) -> (u32, u32, u32, u32, Vec<u8>) {
    (t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag, t.c_cc.to_vec())
}

fn openpty(rows: u16, cols: u16) -> Pty {
    let mut master = -1;
    let mut slave = -1;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: out-pointers are valid; name/termios may be null.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned two fresh fds we now own.
    unsafe {
        Pty {
            master: File::from_raw_fd(master),
            slave: OwnedFd::from_raw_fd(slave),
        }
    }
}

pub(crate) struct PtySession {
    pub(crate) cmdline: String,
    child: std::process::Child,
    master: File,
    output: Stream,
}

impl PtySession {
    /// Spawn `burrow ARGS` with the pty slave as controlling terminal and
    /// stdin/stdout/stderr.
    pub(crate) fn spawn(t: &TestCtx, args: &[&str], rows: u16, cols: u16) -> PtySession {
        Self::spawn_with_fds(t, args, rows, cols, Vec::new())
    }

    /// As `spawn`, and burrow also inherits copies of the terminal at `fds`.
    pub(crate) fn spawn_with_fds(
        t: &TestCtx,
        args: &[&str],
        rows: u16,
        cols: u16,
        fds: Vec<i32>,
    ) -> PtySession {
        let pty = openpty(rows, cols);
        let cmd = t.burrow(args.iter().copied());
        let cmdline = cmd.cmdline();
        let mut c = cmd.command();
        c.env("TERM", "xterm");
        c.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                dup_stdin_to(&fds)
            });
        }
        let child = c.spawn().unwrap_or_else(|e| panic!("spawn {cmdline}: {e}"));
        drop(pty.slave); // the child holds the only slave fds now
        let output = Stream::collect(pty.master.try_clone().unwrap());
        PtySession {
            cmdline,
            child,
            master: pty.master,
            output,
        }
    }

    #[track_caller]
    pub(crate) fn wait_for(&mut self, needle: &str) {
        if !self.output.wait_for(needle, TIMEOUT) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "pty output never showed {needle:?}\ncommand: {}\n--- output ---\n{}",
                self.cmdline,
                self.output.text()
            );
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The settings of the caller's terminal (burrow's): on Linux the master reads and
    /// writes those of its slave.
    pub(crate) fn termios(&self) -> libc::termios {
        termios_of(&self.master)
    }

    /// Resize the caller's terminal, as a terminal emulator does (the kernel signals SIGWINCH
    /// to burrow, the slave's foreground process group).
    pub(crate) fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    pub(crate) fn type_(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).unwrap();
    }

    /// Wait for exit (bounded); returns (exit code, all output).
    pub(crate) fn finish(mut self) -> (i32, String) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // The master reads EIO once every slave fd is closed.
                self.output.wait_eof(Duration::from_secs(30));
                return (status_code(st), self.output.text());
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "timed out: {}\n--- output ---\n{}",
                    self.cmdline,
                    self.output.text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn tty_session_sees_pty_and_window_size() {
    let t = ctx!();
    let img = load_base(&t);
    let mut s = PtySession::spawn(
        &t,
        &["run", "--rm", "-i", "-t", "-e", "PS1=PROMPT> ", img, "sh"],
        37,
        101,
    );
    s.wait_for("PROMPT> ");
    s.type_("tty; stty size; exit 3\n");
    let cmdline = s.cmdline.clone();
    let (code, out) = s.finish();
    let ctx = format!("command: {cmdline}\n--- output ---\n{out}");
    assert!(out.contains("/dev/pts/0"), "no /dev/pts/0\n{ctx}");
    assert!(out.contains("37 101"), "window size not seen\n{ctx}");
    assert_eq!(code, 3, "exit code\n{ctx}");
}

#[test]
fn tty_without_i_still_a_tty() {
    let t = ctx!();
    let img = load_base(&t);
    let s = PtySession::spawn(
        &t,
        &[
            "run",
            "--rm",
            "-t",
            img,
            "sh",
            "-c",
            "tty; stty size; test -t 0 && test -t 1 && echo both-tty",
        ],
        24,
        80,
    );
    let cmdline = s.cmdline.clone();
    let (code, out) = s.finish();
    let ctx = format!("command: {cmdline}\n--- output ---\n{out}");
    assert_eq!(code, 0, "{ctx}");
    assert!(out.contains("/dev/pts/0"), "{ctx}");
    assert!(out.contains("24 80"), "{ctx}");
    assert!(out.contains("both-tty"), "{ctx}");
}

#[test]
fn tty_ctrl_c_interrupts_sleep() {
    let t = ctx!();
    let img = load_base(&t);
    // pid 1 ignores signals it has no handler for, so the shell traps INT;
    // the tty's ^C reaches the whole foreground group (sh and sleep). READY is
    // printed by the subshell that becomes `sleep` (default INT disposition),
    // so a ^C typed right after READY can't arrive before sleep is running.
    let mut s = PtySession::spawn(
        &t,
        &[
            "run",
            "--rm",
            "-i",
            "-t",
            img,
            "sh",
            "-c",
            "trap 'echo got-int; exit 9' INT; (echo READY; exec sleep 100); echo slept",
        ],
        24,
        80,
    );
    s.wait_for("READY");
    let started = std::time::Instant::now();
    s.type_("\x03");
    let cmdline = s.cmdline.clone();
    let (code, out) = s.finish();
    let ctx = format!("command: {cmdline}\n--- output ---\n{out}");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "^C did not interrupt\n{ctx}"
    );
    assert!(!out.contains("slept"), "{ctx}");
    assert!(out.contains("got-int"), "{ctx}");
    assert_eq!(code, 9, "{ctx}");
}

#[test]
fn no_tty_without_t() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow([
        "run",
        "--rm",
        img,
        "sh",
        "-c",
        "if test -t 1; then echo tty; else echo notty; fi",
    ])
    .output()
    .assert_ok()
    .assert_stdout("notty\n");
}

#[test]
fn tty_resize_mid_session() {
    let t = ctx!();
    let img = load_base(&t);
    let mut s = PtySession::spawn(
        &t,
        &["run", "--rm", "-i", "-t", "-e", "PS1=PROMPT> ", img, "sh"],
        24,
        80,
    );
    s.wait_for("PROMPT> ");
    s.type_("echo size-$(stty size | tr ' ' x)\n");
    s.wait_for("size-24x80");
    // The kernel signals burrow before the ioctl returns, so burrow has the new size before
    // it reads the next line typed.
    s.resize(50, 132);
    s.type_("echo size-$(stty size | tr ' ' x); exit 0\n");
    let cmdline = s.cmdline.clone();
    let (code, out) = s.finish();
    let ctx = format!("command: {cmdline}\n--- output ---\n{out}");
    assert!(out.contains("size-50x132"), "new size not seen\n{ctx}");
    assert_eq!(code, 0, "{ctx}");
}

/// Run `args` in a pty session; the caller's terminal is raw while `ready` shows, and has
/// its settings back once burrow exits with `want`.
fn terminal_restored(args: &[&str], ready: Option<&str>, signal: Option<i32>, want: i32) {
    let t = ctx!();
    let img = load_base(&t);
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "IMG" { img } else { a })
        .collect();
    let mut s = PtySession::spawn(&t, &args, 24, 80);
    let before = settings(&s.termios());
    if let Some(ready) = ready {
        s.wait_for(ready);
        let during = s.termios();
        assert_eq!(
            during.c_lflag & (libc::ICANON | libc::ECHO),
            0,
            "burrow -it did not put the terminal in raw mode\n{}",
            s.output.text()
        );
    }
    match signal {
        // SAFETY: plain kill(2) of burrow.
        Some(sig) => assert_eq!(unsafe { libc::kill(s.pid(), sig) }, 0),
        // Ends the container's `read`.
        None if ready.is_some() => s.type_("\n"),
        None => {}
    }
    let master = s.master.try_clone().unwrap();
    let cmdline = s.cmdline.clone();
    let (code, out) = s.finish();
    let ctx = format!("command: {cmdline}\n--- output ---\n{out}");
    assert_eq!(code, want, "{ctx}");
    assert!(
        settings(&termios_of(&master)) == before,
        "terminal settings not restored\n{ctx}"
    );
    assert!(t.containers().is_empty(), "{:?}", t.containers());
}

#[test]
fn tty_terminal_restored_after_exit_0() {
    terminal_restored(
        &[
            "run",
            "--rm",
            "-i",
            "-t",
            "IMG",
            "sh",
            "-c",
            "echo READY; read x",
        ],
        Some("READY"),
        None,
        0,
    );
}

#[test]
fn tty_terminal_restored_after_failing_run() {
    terminal_restored(
        &[
            "run",
            "--rm",
            "-i",
            "-t",
            "IMG",
            "sh",
            "-c",
            "echo READY; read x; exit 3",
        ],
        Some("READY"),
        None,
        3,
    );
    terminal_restored(
        &["run", "--rm", "-i", "-t", "IMG", "/no/such/command"],
        None,
        None,
        127,
    );
}

#[test]
fn tty_terminal_restored_after_forwarded_sigalrm() {
    terminal_restored(
        &[
            "run",
            "--rm",
            "-i",
            "-t",
            "IMG",
            "sh",
            "-c",
            "trap 'echo got-alrm; exit 5' ALRM; echo READY; while :; do sleep 0.1; done",
        ],
        Some("READY"),
        Some(libc::SIGALRM),
        5,
    );
}

#[test]
fn tty_only_std_fds_in_container() {
    let t = ctx!();
    let img = load_base(&t);
    let mut s = PtySession::spawn_with_fds(
        &t,
        &[
            "run",
            "--rm",
            "-i",
            "-t",
            img,
            "sh",
            "-c",
            "echo fds $(ls /proc/self/fd) end; echo READY; read x",
        ],
        24,
        80,
        vec![7, 9],
    );
    s.wait_for("READY");
    let held: Vec<bool> = [7, 9]
        .iter()
        .map(|fd| std::path::Path::new(&format!("/proc/{}/fd/{fd}", s.pid())).exists())
        .collect();
    s.type_("\n");
    let cmdline = s.cmdline.clone();
    let (code, out) = s.finish();
    let ctx = format!("command: {cmdline}\n--- output ---\n{out}");
    assert_eq!(code, 0, "{ctx}");
    assert_eq!(held, [true, true], "burrow lacks fd 7 or 9\n{ctx}");
    let listing = out
        .split("fds ")
        .nth(1)
        .and_then(|s| s.split(" end").next())
        .unwrap_or_else(|| panic!("no fd listing\n{ctx}"));
    crate::run::assert_only_std_fds(listing, &ctx);
}
