//! The per-container monitor: burrow re-executed for one detached container. It is the
//! container's subreaper, writes its log, records its exit, applies `--restart`, and tears
//! everything down (networking, `--rm`) when the container is done. It is not a daemon: it
//! lives exactly as long as its container.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::create_args::RestartPolicy;
use super::lifecycle::{self, RecordingHooks};
use crate::cli::GlobalArgs;
use crate::containers::logs::LogWriter;
use crate::containers::{Status, StopRequests};
use crate::exit::ExitError;
use crate::runtime::{self, RuntimeError, Stdio};

mod pump;
use pump::{Pump, finish_clients, pump_logs};

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
        let mut prepared = lifecycle::prepare(global, &containers, &record, &mapping, stdio)?;
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
        let mut pump = Pump::new(log.as_mut(), listener.as_ref(), input, &mut stops)?;
        let status = pump_logs(&started, out_read, err_read, &mut pump);
        // Stops the root filesystem's server, if any, before the exit is recorded: whoever
        // waits for that finds nothing of the run left.
        drop(started);
        drop(prepared.cgroup.take());
        let clients = pump.into_clients();
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
