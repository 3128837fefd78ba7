//! The per-container monitor: burrow re-executed for one detached container. It is the
//! container's subreaper, writes its log, records its exit, applies `--restart`, and tears
//! everything down (networking, `--rm`) when the container is done. It is not a daemon: it
//! lives exactly as long as its container.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::create_args::RestartPolicy;
use super::lifecycle::{self, RecordingHooks};
use crate::cli::GlobalArgs;
use crate::containers::logs::LogWriter;
use crate::containers::{Status, StopRequests};
use crate::exit::ExitError;
use crate::runtime::{self, RuntimeError, Started, Stdio};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub id: String,
}

/// Where `attach` connects to a detached container's monitor. A socket path must fit in 108
/// bytes, so it is reached through a descriptor of the container's directory (keep the
/// returned descriptor open while the path is used).
pub fn attach_socket(container_dir: &Path) -> std::io::Result<(OwnedFd, PathBuf)> {
    let dir: OwnedFd = std::fs::File::open(container_dir)?.into();
    let path = PathBuf::from(format!("/proc/self/fd/{}/attach.sock", dir.as_raw_fd()));
    Ok((dir, path))
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Report {
    Started,
    Failed { code: u8, message: String },
}

/// Start a detached container: launch its monitor and wait until the container's command runs
/// (or failed to start, with docker's exit code).
pub fn spawn(global: &GlobalArgs, id: &str) -> anyhow::Result<()> {
    let containers = super::open_containers(global)?;
    let dir = containers.dir_of(id);
    let monitor_log = std::fs::File::create(dir.join("monitor.log"))?;
    let mut cmd = super::reexec::burrow_command().context("cannot find burrow's own executable")?;
    cmd.arg("--root")
        .arg(crate::paths::storage_root(global))
        .arg("--log-level")
        .arg(format!("{:?}", global.log_level).to_lowercase())
        .arg("--storage-driver")
        .arg(super::storage_driver::flag_value(
            super::storage_driver::name(global),
        ))
        .arg("container-monitor")
        .arg(id);
    let (_monitor, text) = super::reexec::spawn_reporting(cmd, monitor_log)
        .context("cannot start the container monitor")?;
    match serde_json::from_str::<Report>(&text) {
        Ok(Report::Started) => Ok(()),
        Ok(Report::Failed { code, message }) => Err(ExitError::new(code, message).into()),
        Err(_) => {
            let log = std::fs::read_to_string(dir.join("monitor.log")).unwrap_or_default();
            anyhow::bail!(
                "the container monitor died before the container started: {}",
                log.trim()
            )
        }
    }
}

fn send_report(report: &mut Option<std::fs::File>, r: &Report) {
    if let Some(mut f) = report.take() {
        let _ = f.write_all(serde_json::to_string(r).unwrap_or_default().as_bytes());
    }
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let mut report = super::reexec::take_report();
    // SAFETY: prctl with integer arguments: orphans of the container are reparented to us.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let result = monitor(global, &args.id, &mut report);
    if let Err(e) = &result {
        let code = e
            .chain()
            .find_map(|c| c.downcast_ref::<ExitError>())
            .map_or(crate::exit::BURROW_ERROR, |x| x.code);
        send_report(
            &mut report,
            &Report::Failed {
                code,
                message: format!("{e:#}"),
            },
        );
    }
    result
}

fn monitor(
    global: &GlobalArgs,
    id: &str,
    report: &mut Option<std::fs::File>,
) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let mut record = containers.find(id)?;
    // Opened before the run lock is taken: whoever sees the lock held can reach us.
    let mut stops = StopRequests::open(&containers, &record.id)?;
    let Some(_lock) = containers.try_lock_running(&record.id)? else {
        anyhow::bail!("container {} is already running", record.name);
    };
    let policy = RestartPolicy::parse(&lifecycle::create_args_of(&record)?.restart)?;
    let mapping = lifecycle::enter_userns_for(&containers, &record)?;
    let dir = containers.dir_of(&record.id);
    let mut log = LogWriter::open(&record.log_config, &dir)?;
    let create = lifecycle::create_args_of(&record)?;
    let interactive = create.interactive && !create.tty;
    let (_dir_fd, socket) = attach_socket(&dir)?;
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).ok();
    if let Some(l) = &listener {
        l.set_nonblocking(true)?;
    }
    record = containers.update(&record.id, |r| {
        r.stopped_by_user = false;
        r.monitor_pid = std::process::id() as i32;
    })?;
    let mut backoff = initial_backoff();
    let code = loop {
        let (out_read, out_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (err_read, err_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // With -i (and no terminal) the container's stdin is a pipe that attach clients feed.
        let (stdin_read, stdin_write) = if interactive {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        let stdio = Stdio::Fds {
            stdin: stdin_read,
            stdout: out_write,
            stderr: err_write,
        };
        let prepared = lifecycle::prepare(global, &containers, &record, &mapping, stdio)?;
        let mut hooks = RecordingHooks::new(&containers, record.clone(), &prepared.network);
        stops.new_run();
        let started = match runtime::start(&prepared.spec, &mut hooks) {
            Ok(s) => s,
            Err(e) => {
                let code = match &e {
                    RuntimeError::Start(x) => x.code,
                    _ => crate::exit::BURROW_ERROR,
                };
                hooks.record_exit(code);
                return match e {
                    RuntimeError::Start(x) => Err(x.into()),
                    other => Err(other.into()),
                };
            }
        };
        // Our copies of the write ends must close, or the pipes never reach end of file.
        drop(prepared.spec);
        send_report(report, &Report::Started);
        release_setup_memory();
        let input = match (&started.master, stdin_write) {
            (Some(m), _) => Some(m.try_clone()?),
            (None, w) => w,
        };
        let mut pump = Pump {
            log: log.as_mut(),
            listener: listener.as_ref(),
            clients: Vec::new(),
            input: input.map(Input::new).transpose()?,
            stops: &mut stops,
        };
        let status = pump_logs(&started, out_read, err_read, &mut pump);
        // Stops the root filesystem's server, if any, before the exit is recorded: whoever
        // waits for that finds nothing of the run left.
        drop(started);
        let clients = std::mem::take(&mut pump.clients);
        let code = runtime::supervise::exit_code(status);
        // `stop`, `kill` and `rm -f` tell us through the fifo; the record's flag may have been
        // overwritten by one of our own saves.
        stops.read(0);
        hooks.record.stopped_by_user |= stops.requested;
        if let Ok(latest) = containers.load(&record.id) {
            hooks.record.stopped_by_user |= latest.stopped_by_user;
        }
        let restart = !hooks.record.stopped_by_user
            && policy.should_restart(i32::from(code), hooks.record.restart_count);
        if restart {
            hooks.record.restart_count += 1;
        }
        hooks.record_end(
            code,
            if restart {
                Status::Restarting
            } else {
                Status::Exited
            },
        );
        drop(hooks.attachment.take());
        record = hooks.record;
        // Recorded first: a slow attach client delays only itself, not `wait` or `ps`.
        finish_clients(clients, code);
        if !restart {
            break code;
        }
        // Restarting: wait out the back-off, unless `stop`, `kill` or `rm -f` (which wait for
        // us to go) end the restarts first.
        let deadline = Instant::now() + backoff;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        let stopped = stops.wait_until(deadline);
        match containers.load(&record.id) {
            // Removed meanwhile.
            Err(_) => return Ok(code),
            Ok(latest) if stopped || latest.stopped_by_user => {
                record.stopped_by_user = true;
                record.status = Status::Exited;
                if let Err(e) = containers.update(&record.id, |r| {
                    r.stopped_by_user = true;
                    r.status = Status::Exited;
                }) {
                    log::warn!("{e}");
                }
                break code;
            }
            // Renamed, or connected to a network, while it was restarting.
            Ok(latest) => {
                record.name = latest.name;
                record.create_args = latest.create_args;
            }
        }
    };
    if record.auto_remove {
        lifecycle::remove_quietly(global, &containers, &record.id);
    }
    Ok(code)
}

/// The longest back-off between two runs of a restart policy.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The back-off before the first restart, doubled after each one up to [`MAX_BACKOFF`]:
/// 100 ms, or `BURROW_RESTART_BACKOFF_MS` (a hidden knob for tests that need a container to
/// stay restarting for a while).
fn initial_backoff() -> Duration {
    std::env::var("BURROW_RESTART_BACKOFF_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_millis(100), Duration::from_millis)
        .min(MAX_BACKOFF)
}

/// The monitor lives as long as its container but runs only the small pump loop after setup:
/// give back the heap the setup freed, and unmap the file pages (code, constants) that setup
/// faulted in, with the kernel's fault-around, most of burrow's text. Only mappings without
/// private pages are dropped, so nothing is lost: a page the loop needs is faulted back in
/// from the file, one page at a time (`MADV_RANDOM` turns fault-around off for them).
fn release_setup_memory() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut current: Option<(usize, usize, bool)> = None;
    let mut clean_file_mappings = Vec::new();
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let Some((range, perms)) = fields.first().zip(fields.get(1))
            && let Some((start, end)) = range.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            let file_backed = fields.get(5).is_some_and(|p| p.starts_with('/'));
            let read_only = perms.starts_with('r') && perms.as_bytes().get(1) == Some(&b'-');
            current = Some((start, end, file_backed && read_only));
        } else if line.starts_with("Anonymous:")
            && let Some((start, end, candidate)) = current.take()
            && candidate
            && fields.get(1) == Some(&"0")
        {
            clean_file_mappings.push((start, end));
        }
    }
    for (start, end) in clean_file_mappings {
        let addr = start as *mut libc::c_void;
        // SAFETY: a read-only file mapping without private (anonymous) pages holds nothing
        // that is not in the file: dropping its pages loses nothing.
        unsafe {
            libc::madvise(addr, end - start, libc::MADV_RANDOM);
            libc::madvise(addr, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The container's output goes to its log and to every `attach` client; what clients type
/// goes to the container's terminal (or its stdin with `-i`).
struct Pump<'a> {
    log: Option<&'a mut LogWriter>,
    listener: Option<&'a UnixListener>,
    clients: Vec<Client>,
    /// None once the container closed its input (or has none).
    input: Option<Input>,
    stops: &'a mut StopRequests,
}

impl Pump<'_> {
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
struct Client {
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
            super::attach::frames::push_dropped(&mut self.queue);
            self.closing = true;
            return;
        }
        super::attach::frames::push_output(&mut self.queue, stream, data);
    }

    fn send_exit(&mut self, code: u8) {
        if !self.closing {
            super::attach::frames::push_exit(&mut self.queue, i32::from(code));
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
fn finish_clients(mut clients: Vec<Client>, code: u8) {
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
fn pump_logs(
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
