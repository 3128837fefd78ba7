//! `burrow attach`: connect the terminal to a detached container's terminal or output, through
//! its monitor. ctrl-p ctrl-q (or `--detach-keys`) detaches and leaves it running.

pub mod frames;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cli::GlobalArgs;
use crate::containers::Status;
use crate::exit::ExitError;
use crate::runtime::pty;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key sequence for detaching, e.g. "ctrl-p,ctrl-q" or "ctrl-a,d"
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    pub container: String,
}

/// docker's detach-keys syntax: `ctrl-<c>` or a single character, comma separated.
pub fn parse_detach_keys(s: &str) -> anyhow::Result<Vec<u8>> {
    s.split(',')
        .map(|k| {
            if let Some(c) = k.strip_prefix("ctrl-") {
                let b = match c.as_bytes() {
                    [b @ b'a'..=b'z'] => b - b'a' + 1,
                    [b'@'] => 0,
                    [b'['] => 27,
                    [b'\\'] => 28,
                    [b']'] => 29,
                    [b'^'] => 30,
                    [b'_'] => 31,
                    _ => anyhow::bail!("invalid detach key {k:?}"),
                };
                Ok(b)
            } else if k.len() == 1 {
                Ok(k.as_bytes()[0])
            } else {
                anyhow::bail!("invalid detach key {k:?}: use ctrl-<letter> or a single character")
            }
        })
        .collect()
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let keys = parse_detach_keys(&args.detach_keys)?;
    let containers = super::open_containers(global)?;
    let record = containers.find(&args.container)?;
    if record.status == Status::Restarting {
        anyhow::bail!("you cannot attach to a restarting container, wait until it is running");
    }
    if record.status != Status::Running {
        anyhow::bail!("you cannot attach to a stopped container, start it first");
    }
    let (_dir, socket) = super::monitor::attach_socket(&containers.dir_of(&record.id))?;
    let mut stream = UnixStream::connect(&socket).map_err(|e| {
        anyhow::anyhow!(
            "cannot attach to {}: {e} (only detached containers can be attached)",
            record.name
        )
    })?;
    let tty = super::lifecycle::create_args_of(&record)?.tty;
    let _raw = (tty && !args.no_stdin && pty::is_terminal(0)).then(|| pty::RawMode::enable(0).ok());
    let stdin = std::io::stdin();
    let mut stdin_open = !args.no_stdin;
    let mut detach = DetachKeys::new(keys);
    // Input for the container that the monitor has not taken yet. While there is some, stdin
    // is not read (the monitor holds input back when the container does not read it), but the
    // container's output still is.
    let mut pending: Vec<u8> = Vec::new();
    stream.set_nonblocking(true)?;
    let mut buf = vec![0u8; 32 * 1024];
    let mut decoder = frames::Decoder::default();
    let mut end = End::Closed;
    loop {
        let socket_events = if pending.is_empty() {
            PollFlags::POLLIN
        } else {
            PollFlags::POLLIN | PollFlags::POLLOUT
        };
        let mut fds = vec![PollFd::new(stream.as_fd(), socket_events)];
        if stdin_open && pending.is_empty() {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    decoder.push(&buf[..n]);
                    if let Some(e) = write_frames(&mut decoder)? {
                        end = e;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
            if !pending.is_empty() {
                match stream.write(&pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // The monitor is gone; what it said last comes with the next read.
                    Err(_) => pending.clear(),
                }
            }
        }
        if ready.get(1).copied().unwrap_or(false) {
            let n = nix::unistd::read(&stdin, &mut buf).unwrap_or(0);
            if n == 0 {
                stdin_open = false;
                continue;
            }
            if detach.feed(&buf[..n], &mut pending) {
                drop(_raw);
                errln!("\r\nread escape sequence");
                return Ok(0);
            }
        }
    }
    drop(_raw);
    match end {
        End::Dropped => Err(ExitError::new(
            1,
            format!(
                "attach to {} ended: this client read the container's output too slowly and \
                 the monitor disconnected it; 'burrow logs {}' has all of the output",
                record.name, record.name
            ),
        )
        .into()),
        End::Exit(code) => {
            // As before: return once the monitor is done (and `--rm` honoured), unless it
            // stays for a restart.
            let restarting = containers
                .load(&record.id)
                .is_ok_and(|r| r.status == Status::Restarting);
            if !restarting {
                containers.wait_unlocked(&record.id);
            }
            Ok(code as u8)
        }
        // The monitor went away without a word (it was killed): its record says how the
        // container ended.
        End::Closed => {
            containers.wait_unlocked(&record.id);
            Ok(containers.load(&record.id).map_or(0, |r| r.exit_code as u8))
        }
    }
}

/// Finds the detach sequence in what the user types; everything else is input for the
/// container.
struct DetachKeys {
    keys: Vec<u8>,
    /// How much of `keys` the latest input ended with.
    matched: usize,
}

impl DetachKeys {
    fn new(keys: Vec<u8>) -> DetachKeys {
        DetachKeys { keys, matched: 0 }
    }

    /// Add `input`'s bytes for the container to `out`; true once the whole sequence came (what
    /// follows it is dropped: the user detached).
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return true;
                }
                continue;
            }
            // A partial sequence that did not complete is the user's input after all.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = usize::from(b == self.keys[0]);
            if self.matched == 0 {
                out.push(b);
            }
        }
        false
    }
}

/// How the monitor ended the connection.
enum End {
    /// Without a last frame.
    Closed,
    Exit(i32),
    Dropped,
}

/// Write out the complete frames received; returns how the connection ends if a last frame
/// came. stdout and stderr stay apart, so `2>/dev/null` hides the container's stderr.
fn write_frames(decoder: &mut frames::Decoder) -> anyhow::Result<Option<End>> {
    let mut end = None;
    while let Some(frame) = decoder.next_frame()? {
        match frame {
            frames::Frame::Output { stream: 0, data } => {
                // A reader that has gone ends the attach (and burrow, by SIGPIPE, see
                // `output`); the container and its monitor carry on.
                let mut out = crate::output::Stdout;
                out.write_all(&data)?;
                out.flush()?;
            }
            frames::Frame::Output { data, .. } => {
                // Like docker, a closed stderr does not end the attach.
                let _ = std::io::stderr().lock().write_all(&data);
            }
            frames::Frame::Exit(code) => end = Some(End::Exit(code)),
            frames::Frame::Dropped => end = Some(End::Dropped),
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_are_found_across_reads_and_the_rest_is_input() {
        let mut d = DetachKeys::new(vec![16, 17]);
        let mut out = Vec::new();
        assert!(!d.feed(b"ab\x10c\x10", &mut out));
        assert_eq!(out, b"ab\x10c");
        assert!(d.feed(b"\x11ignored", &mut out));
        assert_eq!(out, b"ab\x10c");
        let mut d = DetachKeys::new(vec![1, b'd']);
        let mut out = Vec::new();
        assert!(!d.feed(b"\x01\x01x", &mut out));
        assert_eq!(out, b"\x01\x01x");
    }

    #[test]
    fn detach_key_syntax() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,d").unwrap(), vec![1, b'd']);
        assert!(parse_detach_keys("ctrl-pp").is_err());
    }
}
