//! A run of the container, seen from its monitor: its output copied to the log and to every
//! `attach` client, what clients type queued for the container's input, signals forwarded,
//! and stop requests served, until the container's first process exits.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::containers::StopRequests;
use crate::containers::logs::LogWriter;
use crate::runtime::{self, Started};

/// The container's output goes to its log and to every `attach` client; what clients type
/// goes to the container's terminal (or its stdin with `-i`).
pub(super) struct Pump<'a> {
    log: Option<&'a mut LogWriter>,
    listener: Option<&'a UnixListener>,
    clients: Vec<Client>,
    /// None once the container closed its input (or has none).
    input: Option<Input>,
    stops: &'a mut StopRequests,
}

impl<'a> Pump<'a> {
    /// `input` is the container's stdin or terminal, if clients may type into it.
    pub fn new(
        log: Option<&'a mut LogWriter>,
        listener: Option<&'a UnixListener>,
        input: Option<OwnedFd>,
        stops: &'a mut StopRequests,
    ) -> std::io::Result<Pump<'a>> {
        Ok(Pump {
            log,
            listener,
            clients: Vec::new(),
            input: input.map(Input::new).transpose()?,
            stops,
        })
    }

    /// The clients still connected when the run ended, for [`finish_clients`].
    pub fn into_clients(self) -> Vec<Client> {
        self.clients
    }

    fn output(&mut self, stream: usize, data: &[u8]) {
        if let Some(log) = self.log.as_mut() {
            log.write(stream, data);
        }
        for c in &mut self.clients {
            c.send_output(stream, data);
        }
        self.clients.retain_mut(|c| c.flush().is_ok());
    }

    /// How much client input may be read now: none while the container's input is full,
    /// and any amount (to be discarded) once it has none.
    fn input_room(&self) -> usize {
        self.input.as_ref().map_or(usize::MAX, Input::room)
    }

    fn flush_input(&mut self) {
        if let Some(input) = self.input.as_mut()
            && input.queue.flush_to(&mut input.target).is_err()
        {
            // The container closed its stdin (or its terminal is gone): what clients type
            // from now on is dropped, as a write to it would be.
            self.input = None;
        }
    }
}

/// Bytes waiting for a non-blocking descriptor to take them.
#[derive(Default)]
struct ByteQueue(std::collections::VecDeque<u8>);

impl ByteQueue {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Write what `to` takes without blocking. An error means `to` is gone.
    fn flush_to(&mut self, mut to: impl Write) -> std::io::Result<()> {
        while !self.0.is_empty() {
            let (front, _) = self.0.as_slices();
            match to.write(front) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => drop(self.0.drain(..n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Give back the memory a burst took.
        if self.0.capacity() > 64 * 1024 {
            self.0 = Default::default();
        }
        Ok(())
    }
}

impl Extend<u8> for ByteQueue {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// How much of the clients' input the monitor holds for a container that does not read it.
///
/// Input is never dropped: once this much waits, the monitor stops reading from clients,
/// whose writes then block (back-pressure), until the container reads. Without a queue, a
/// blocking write to a container that never reads would stall the monitor itself: its log,
/// its other clients and `stop`.
const MAX_INPUT_QUEUE: usize = 64 * 1024;

/// The container's stdin (its pipe with `-i`, or its terminal) and what clients typed that
/// it has yet to read.
struct Input {
    target: std::fs::File,
    queue: ByteQueue,
}

impl Input {
    fn new(fd: OwnedFd) -> std::io::Result<Input> {
        // Only the monitor's side: the container's end of the pipe, or the terminal's slave,
        // stays blocking. (A terminal master is shared with the output reads: they allow EAGAIN.)
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        Ok(Input {
            target: fd.into(),
            queue: ByteQueue::default(),
        })
    }

    fn room(&self) -> usize {
        MAX_INPUT_QUEUE.saturating_sub(self.queue.len())
    }
}

/// How far an `attach` client may fall behind the container's output before the monitor
/// disconnects it.
///
/// The container is not slowed down to the pace of its slowest client (back-pressure): one
/// stalled reader — a terminal scrolled back or suspended, a pipe into a slow command — would
/// stall the container, its log and every other client. Instead each client has a queue, sent
/// as its socket becomes writable; it absorbs bursts far larger than the socket buffer, and a
/// client that falls behind it anyway is told so (`attach` exits with an error pointing to
/// `logs`, which has everything) and disconnected. The queue is memory only while a client
/// lags, so the monitor stays small.
const MAX_CLIENT_QUEUE: usize = 8 << 20;

/// An `attach` client and the frames it has yet to receive.
pub(super) struct Client {
    socket: UnixStream,
    queue: ByteQueue,
    /// Its last frame is queued: disconnect once the queue is sent.
    closing: bool,
}

impl Client {
    fn new(socket: UnixStream) -> Client {
        Client {
            socket,
            queue: ByteQueue::default(),
            closing: false,
        }
    }

    fn send_output(&mut self, stream: usize, data: &[u8]) {
        if self.closing {
            return;
        }
        if self.queue.len() + data.len() > MAX_CLIENT_QUEUE {
            super::super::attach::frames::push_dropped(&mut self.queue);
            self.closing = true;
            return;
        }
        super::super::attach::frames::push_output(&mut self.queue, stream, data);
    }

    fn send_exit(&mut self, code: u8) {
        if !self.closing {
            super::super::attach::frames::push_exit(&mut self.queue, i32::from(code));
            self.closing = true;
        }
    }

    /// Send what the socket takes without blocking. An error means the client is gone or
    /// done: drop it.
    fn flush(&mut self) -> std::io::Result<()> {
        self.queue.flush_to(&self.socket)?;
        if self.closing && self.queue.is_empty() {
            // Done: dropping the socket closes it and `attach` reads the end.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// What to wait for on its socket: room for its queue, and input while the container
    /// can take some (none: the client's writes block until it can).
    fn poll_flags(&self, input_room: usize) -> PollFlags {
        let mut flags = PollFlags::empty();
        if input_room > 0 {
            flags |= PollFlags::POLLIN;
        }
        if !self.queue.is_empty() {
            flags |= PollFlags::POLLOUT;
        }
        flags
    }
}

/// How long the end of a run waits for an `attach` client that reads nothing.
const CLIENT_LINGER: Duration = Duration::from_secs(10);

/// The run ended with `code`: send every client the rest of its queue and the exit code, then
/// disconnect it. A client that stops reading for [`CLIENT_LINGER`] is dropped.
pub(super) fn finish_clients(mut clients: Vec<Client>, code: u8) {
    for c in &mut clients {
        c.send_exit(code);
    }
    clients.retain_mut(|c| c.flush().is_ok());
    while !clients.is_empty() {
        let mut fds: Vec<PollFd> = clients
            .iter()
            .map(|c| PollFd::new(c.socket.as_fd(), PollFlags::POLLOUT))
            .collect();
        let timeout = PollTimeout::try_from(CLIENT_LINGER).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Err(nix::Error::EINTR) => continue,
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        drop(fds);
        clients.retain_mut(|c| c.flush().is_ok());
    }
}

/// Copy the container's output until its first process exits; forward signals; serve
/// `attach` clients.
pub(super) fn pump_logs(
    started: &Started,
    out: OwnedFd,
    err: OwnedFd,
    pump: &mut Pump<'_>,
) -> nix::sys::wait::WaitStatus {
    let mut open = [true, true];
    let mut master_open = started.master.is_some();
    let mut killed = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Only what there is to wait for is polled: a closed stream or a hung-up client
        // would be reported ready again and again.
        let mut fds = Vec::new();
        let exited = slot(&mut fds, started.pidfd.as_fd(), PollFlags::POLLIN);
        let signalled = slot(&mut fds, started.signals.as_fd(), PollFlags::POLLIN);
        let streams = [(0usize, &out), (1, &err)].map(|(i, fd)| {
            open[i]
                .then(|| slot(&mut fds, fd.as_fd(), PollFlags::POLLIN))
                .flatten()
        });
        let master_fd = started.master.as_ref().filter(|_| master_open);
        let master = master_fd.and_then(|m| slot(&mut fds, m.as_fd(), PollFlags::POLLIN));
        let listener = pump
            .listener
            .and_then(|l| slot(&mut fds, l.as_fd(), PollFlags::POLLIN));
        let stop = slot(&mut fds, pump.stops.fd(), PollFlags::POLLIN);
        let input = pump
            .input
            .as_ref()
            .filter(|i| !i.queue.is_empty())
            .and_then(|i| slot(&mut fds, i.target.as_fd(), PollFlags::POLLOUT));
        let room = pump.input_room();
        let clients: Vec<Option<usize>> = pump
            .clients
            .iter()
            .map(|c| match c.poll_flags(room) {
                f if f.is_empty() => None,
                f => slot(&mut fds, c.socket.as_fd(), f),
            })
            .collect();
        if let Err(e) = poll(&mut fds, PollTimeout::NONE)
            && e != nix::Error::EINTR
        {
            break;
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let got = |slot: Option<usize>| slot.map_or(PollFlags::empty(), |i| revents[i]);
        let ready = |slot: Option<usize>| !got(slot).is_empty();
        if ready(stop) {
            pump.stops.read(started.pid.as_raw());
            // Its sender saw no run, or an earlier one, and signals nothing: a stop that
            // reached us while this run was being started. End the run ourselves.
            if pump.stops.unseen_run && !killed {
                let _ = nix::sys::signal::kill(started.pid, nix::sys::signal::Signal::SIGKILL);
                killed = true;
            }
        }
        if ready(signalled) {
            // The monitor has no terminal whose size a SIGWINCH could carry to the pty:
            // like any other signal, it is passed on as it is.
            while let Ok(Some(info)) = started.signals.read_signal() {
                runtime::supervise::forward_signal(started.pid, info.ssi_signo, None);
            }
        }
        for (i, fd) in [(0usize, &out), (1, &err)] {
            if ready(streams[i]) {
                match nix::unistd::read(fd, &mut buf) {
                    Ok(0) | Err(_) => open[i] = false,
                    Ok(n) => pump.output(i, &buf[..n]),
                }
            }
        }
        if ready(master)
            && let Some(m) = master_fd
        {
            match nix::unistd::read(m, &mut buf) {
                // Non-blocking: the container's input shares the descriptor.
                Err(nix::Error::EAGAIN) => {}
                Ok(0) | Err(_) => master_open = false,
                Ok(n) => pump.output(0, &buf[..n]),
            }
        }
        if ready(listener)
            && let Some(l) = pump.listener
            && let Ok((client, _)) = l.accept()
        {
            let _ = client.set_nonblocking(true);
            pump.clients.push(Client::new(client));
        }
        if ready(input) {
            pump.flush_input();
        }
        // Input from clients, in order, as much as the container's input has room for; a
        // closed client is dropped. A client that can take more of its queue gets it.
        let mut keep = Vec::new();
        for (i, c) in std::mem::take(&mut pump.clients).into_iter().enumerate() {
            // A client accepted just now was not polled: it has no slot.
            let flags = got(clients.get(i).copied().flatten());
            if let Some(c) = client_ready(c, flags, pump, &mut buf) {
                keep.push(c);
            }
        }
        pump.clients = keep;
        pump.flush_input();
        if ready(exited) {
            // Drain what is left: every writer is gone with the container's pid namespace.
            for (i, fd) in [(0usize, &out), (1, &err)] {
                while open[i] {
                    match nix::unistd::read(fd, &mut buf) {
                        Ok(0) | Err(_) => open[i] = false,
                        Ok(n) => pump.output(i, &buf[..n]),
                    }
                }
            }
            if let Some(m) = &started.master {
                while let Ok(n) = nix::unistd::read(m, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    pump.output(0, &buf[..n]);
                }
            }
            if let Some(log) = pump.log.as_mut() {
                log.flush();
            }
            break;
        }
    }
    runtime::supervise::wait_child(started.pid).unwrap_or(nix::sys::wait::WaitStatus::StillAlive)
}

/// Add `fd` to the poll set; returns where its events will be.
fn slot<'a>(fds: &mut Vec<PollFd<'a>>, fd: BorrowedFd<'a>, flags: PollFlags) -> Option<usize> {
    fds.push(PollFd::new(fd, flags));
    Some(fds.len() - 1)
}

/// Serve one client the poll found ready: send it more of its queue, queue what it typed for
/// the container. Returns it unless it is gone.
fn client_ready(
    mut c: Client,
    flags: PollFlags,
    pump: &mut Pump<'_>,
    buf: &mut [u8],
) -> Option<Client> {
    if flags.contains(PollFlags::POLLOUT) && c.flush().is_err() {
        return None;
    }
    let room = pump.input_room();
    if room == 0 || !flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
        return Some(c);
    }
    let len = buf.len().min(room);
    match c.socket.read(&mut buf[..len]) {
        Ok(0) => None,
        Ok(n) => {
            if let (Some(input), false) = (pump.input.as_mut(), c.closing) {
                input.queue.extend(buf[..n].iter().copied());
            }
            Some(c)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(c),
        Err(_) => None,
    }
}
