//! What `create`, `run`, `start` and the monitor share: making a container record, and turning
//! a record into a running container.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::create_args::{CreateArgs, ResourceArgs, RestartPolicy};
use crate::cli::GlobalArgs;
use crate::containers::{self, ContainerRecord, ContainerStore, Status};
use crate::netns::networks::NetworkStore;
use crate::netns::{NetworkAttachment, NetworkMode, NetworkPlan, Who, bridge};
use crate::registry::pull::{PullOptions, PullPolicy, ensure_image};
use crate::runtime::cgroups::{self, Cgroup};
use crate::runtime::process_config::{self, ImageProcess, ProcessOverrides};
use crate::runtime::{ContainerSpec, Hooks, Network, RuntimeError, Stdio};
use crate::storage::{ImageRecord, Store, UnpackOptions};
use crate::userns::{IdMapping, MappingKind};

/// Find the image locally, pulling it as `--pull` says. A short name (`zst:1`) not found
/// as docker reads it (`docker.io/library/zst:1`) is looked for under `localhost/` too, where
/// `load` puts archive names without a registry and podman looks for them.
pub fn resolve_image(
    store: &Store,
    image: &str,
    pull: PullPolicy,
    opts: &PullOptions,
    quiet: bool,
) -> anyhow::Result<ImageRecord> {
    use crate::storage::StorageError::ImageNotFound;
    let has_registry = image.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    });
    let local = match store.find_image(image) {
        Err(ImageNotFound(_)) if !has_registry && !image.starts_with("sha256:") => {
            match store.find_image(&format!("localhost/{image}")) {
                Err(ImageNotFound(_)) => Err(ImageNotFound(image.to_string())),
                other => other,
            }
        }
        other => other,
    };
    match (local, pull) {
        (Ok(found), PullPolicy::Missing | PullPolicy::Never) => Ok(found),
        (Err(e @ crate::storage::StorageError::Ambiguous(..)), _) => Err(e.into()),
        _ => Ok(ensure_image(store, image, pull, opts, quiet)?),
    }
}

/// Make the container's record: the merged process, the flags, a unique name.
pub fn create(
    global: &GlobalArgs,
    args: &CreateArgs,
) -> anyhow::Result<(ContainerRecord, ImageRecord)> {
    RestartPolicy::parse(&args.restart)?;
    let log_config = containers::logs::LogConfig::parse(args.log_driver.as_deref(), &args.log_opt)?;
    if args.rm && args.restart != "no" {
        anyhow::bail!("conflicting options: --restart and --rm");
    }
    args.resources
        .validate(std::thread::available_parallelism().map_or(1, |n| n.get()))?;
    args.net.plan(&crate::paths::storage_root(global), &[])?;
    let store = super::open_store(global)?;
    let image = resolve_image(
        &store,
        &args.image,
        args.pull,
        &args.pull_options(),
        args.quiet,
    )?;
    let config = store.image_config(&image)?;
    let containers = super::open_containers(global)?;

    let id = containers::new_id();
    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let overrides = ProcessOverrides {
        entrypoint: args.entrypoint.clone(),
        command: args.command.clone(),
        env: args.env.clone(),
        env_files: args.env_file.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        tty: args.tty,
    };
    let process = process_config::merge(
        &ImageProcess::from_oci(config.config().as_ref()),
        &overrides,
        &hostname,
        &|k| std::env::var(k).ok(),
    )?;
    let mut requests = Vec::new();
    for v in &args.volume {
        requests.push(super::mount_args::parse_volume(v)?);
    }
    for m in &args.mount {
        requests.push(super::mount_args::parse_mount(m)?);
    }
    for t in &args.tmpfs {
        requests.push(super::mount_args::parse_tmpfs(t)?);
    }
    let image_volumes: Vec<String> = config
        .config()
        .as_ref()
        .and_then(|c| c.volumes().clone())
        .unwrap_or_default();
    let volumes = crate::volumes::VolumeStore::open(&crate::paths::storage_root(global))?;
    let mounts = super::mount_args::resolve(
        requests,
        &image_volumes,
        &args.volumes_from,
        &volumes,
        &containers,
    )?;
    let mut create_args = serde_json::to_value(args)?;
    if args.stop_signal.is_none()
        && let Some(sig) = config
            .config()
            .as_ref()
            .and_then(|c| c.stop_signal().clone())
    {
        create_args["stop_signal"] = serde_json::Value::String(sig);
    }
    let mut record = ContainerRecord {
        id: id.clone(),
        name: args.name.clone().unwrap_or_else(containers::generate_name),
        image: args.image.clone(),
        image_id: image.id.to_string(),
        command: process.args.clone(),
        created: containers::now_rfc3339(),
        auto_remove: args.rm,
        status: Status::Created,
        pid: 0,
        exit_code: 0,
        started_at: None,
        finished_at: None,
        process: Some(process),
        hostname,
        create_args,
        restart_count: 0,
        stopped_by_user: false,
        monitor_pid: 0,
        mounts,
        log_config,
    };
    // A generated name may collide; a chosen one is the user's to change, unless it is held
    // by an `--rm` container whose burrow was killed (docker's daemon would have removed it).
    let mut attempts = 0;
    let mut cleaned = false;
    loop {
        match containers.create(&record) {
            Ok(_) => {
                warn_if_limits_ignored(&args.resources);
                return Ok((record, image));
            }
            Err(containers::ContainerError::NameInUse(..))
                if args.name.is_none() && attempts < 20 =>
            {
                attempts += 1;
                record.name = format!("{}{}", containers::generate_name(), attempts);
            }
            Err(containers::ContainerError::NameInUse(_, holder))
                if !cleaned
                    && let Ok(held) = containers.load(&holder)
                    && super::container::is_abandoned(&containers, &held) =>
            {
                cleaned = true;
                super::container::clean_up(global, &containers, &[held]);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// As rootless podman on cgroups v1: limits that cannot be enforced are ignored, said once,
/// when the container is made.
fn warn_if_limits_ignored(resources: &ResourceArgs) {
    let limits = resources.limits();
    if limits.is_empty() {
        return;
    }
    if let Err(reason) = cgroups::Hierarchy::system().delegated_to_self(&limits.controllers()) {
        errln!(
            "burrow: warning: resource limits ({}) are ignored: {reason}; see README 'Resource limits'",
            resources.given().join(", ")
        );
    }
}

/// The cgroup that enforces a container's resource limits, when it has limits and a
/// delegated cgroup v2 tree is there (`create` warned otherwise).
fn limits_cgroup(record: &ContainerRecord, args: &CreateArgs) -> anyhow::Result<Option<Cgroup>> {
    let limits = args.resources.limits();
    if limits.is_empty() {
        return Ok(None);
    }
    match cgroups::Hierarchy::system().delegated_to_self(&limits.controllers()) {
        Ok(delegation) => Ok(Some(
            delegation
                .create(&cgroups::container_cgroup_name(&record.id), &limits)
                .context("cannot apply the container's resource limits")?,
        )),
        Err(reason) => {
            log::debug!("resource limits of {} ignored: {reason}", record.name);
            Ok(None)
        }
    }
}

/// The flags a record was created with.
pub fn create_args_of(record: &ContainerRecord) -> anyhow::Result<CreateArgs> {
    serde_json::from_value(record.create_args.clone())
        .with_context(|| format!("container {}: unreadable creation flags", record.name))
}

/// Everything needed to start a record's container, prepared inside burrow's user namespace.
pub struct Prepared {
    pub spec: ContainerSpec,
    pub network: NetworkPlan,
    /// Holds the resource limits; dropped (removed) once the container's processes are gone.
    pub cgroup: Option<Cgroup>,
}

/// Unpack the image if needed, make the container's directories and files, and describe the
/// container for the runtime. Call inside burrow's user namespace.
pub fn prepare(
    global: &GlobalArgs,
    containers: &ContainerStore,
    record: &ContainerRecord,
    mapping: &IdMapping,
    stdio: Stdio,
) -> anyhow::Result<Prepared> {
    let args = create_args_of(record)?;
    let store = super::open_store(global)?;
    let image = store
        .find_image(&record.image_id)
        .with_context(|| format!("the image of container {} is gone", record.name))?;
    let lower = store.ensure_unpacked(
        &image,
        UnpackOptions {
            ignore_chown_errors: mapping.kind == MappingKind::SingleId,
        },
    )?;
    let network = args.net.plan(
        &crate::paths::storage_root(global),
        &super::network_args::exposed_ports(&store.image_config(&image)?),
    )?;
    let dir = containers.dir_of(&record.id);
    for sub in ["upper", "work", "merged", "userdata"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    let (runtime_network, etc_files) = match &network.mode {
        NetworkMode::Container(other) => {
            let other = running_network_owner(containers, other)?;
            let pid = other.pid;
            let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
            let joined =
                if std::fs::read_link(&path).ok() == std::fs::read_link("/proc/self/ns/net").ok() {
                    // The other container uses the host's network.
                    Network::Host
                } else {
                    Network::Join(path)
                };
            (
                joined,
                shared_etc_files(containers, &other, &dir.join("userdata"), &record.hostname)?,
            )
        }
        _ => (
            network.runtime_network(),
            network.write_etc_files(&dir.join("userdata"), &record.hostname, &record.name)?,
        ),
    };
    let process = record
        .process
        .clone()
        .with_context(|| format!("container {} has no process configuration", record.name))?;
    let mut spec = ContainerSpec {
        id: record.id.clone(),
        hostname: record.hostname.clone(),
        lower,
        upper: dir.join("upper"),
        work: dir.join("work"),
        merged: dir.join("merged"),
        ephemeral: record.auto_remove,
        rootfs_driver: super::storage_driver::driver(global),
        process,
        group_add: args.group_add.clone(),
        tty: args.tty,
        interactive: args.interactive,
        stdio,
        network: runtime_network,
        etc_files,
        mounts: record.mounts.clone(),
        read_only: args.read_only,
        can_setgroups: mapping.can_setgroups(),
        tty_gid_mapped: mapping.host_gid(5).is_some(),
        cgroup: None,
    };
    let cgroup = limits_cgroup(record, &args)?;
    spec.cgroup = cgroup.as_ref().map(|c| c.dir().to_path_buf());
    Ok(Prepared {
        spec,
        network,
        cgroup,
    })
}

/// The container whose network `--network container:NAME` shares; it must be running.
fn running_network_owner(
    containers: &ContainerStore,
    name: &str,
) -> anyhow::Result<ContainerRecord> {
    let other = containers.find(name)?;
    if other.status != Status::Running {
        anyhow::bail!("cannot join the network of container {name}: it is not running");
    }
    Ok(other)
}

/// With another container's network, its /etc/hosts and /etc/resolv.conf describe ours too.
fn shared_etc_files(
    containers: &ContainerStore,
    other: &ContainerRecord,
    userdata: &Path,
    hostname: &str,
) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let theirs = containers.dir_of(&other.id).join("userdata");
    let mut out = Vec::new();
    for (file, target) in [("hosts", "/etc/hosts"), ("resolv.conf", "/etc/resolv.conf")] {
        let path = userdata.join(file);
        std::fs::copy(theirs.join(file), &path)
            .with_context(|| format!("cannot copy {file} of container {}", other.name))?;
        out.push((path, PathBuf::from(target)));
    }
    let path = userdata.join("hostname");
    std::fs::write(&path, format!("{hostname}\n"))?;
    out.push((path, PathBuf::from("/etc/hostname")));
    Ok(out)
}

/// Enter the user namespace a container must start in: a new one of burrow's, or, for
/// `--network container:NAME`, that container's (the network namespace belongs to it). The
/// mapping is the same either way.
pub fn enter_userns_for(
    containers: &ContainerStore,
    record: &ContainerRecord,
) -> anyhow::Result<IdMapping> {
    let args = create_args_of(record)?;
    if let Some(other) = args
        .net
        .network
        .as_deref()
        .and_then(|n| n.strip_prefix("container:"))
    {
        let other = running_network_owner(containers, other)?;
        crate::runtime::join::enter_userns_of(nix::unistd::Pid::from_raw(other.pid))?;
        return Ok(crate::userns::current_mapping()?);
    }
    if let Some(NetworkMode::Network(name)) = args
        .net
        .network
        .as_deref()
        .map(NetworkMode::parse)
        .transpose()?
    {
        // Every network the container will be on must run before it starts (their infra
        // processes share one user namespace, which the container starts in).
        let root = containers.storage_root();
        let mut holder = None;
        for network in std::iter::once(&name).chain(&args.net.connected) {
            let def = NetworkStore::open(root).find(network)?;
            let run = bridge::RunDir::new(root, &def.name);
            let state = bridge::ensure_infra(&run, std::process::id() as i32, || {
                super::network_infra::spawn(root, &def.name)
            })?;
            holder.get_or_insert(state.holder_pid);
        }
        if let Some(pid) = holder {
            crate::runtime::join::enter_userns_of(nix::unistd::Pid::from_raw(pid))?;
            return Ok(crate::userns::current_mapping()?);
        }
    }
    Ok(crate::userns::enter_current()?)
}

/// Attaches networking before the command starts and records the container as running.
pub struct RecordingHooks<'a> {
    pub containers: &'a ContainerStore,
    pub record: ContainerRecord,
    pub dir: PathBuf,
    pub network: &'a NetworkPlan,
    pub attachment: Option<NetworkAttachment>,
}

impl<'a> RecordingHooks<'a> {
    pub fn new(
        containers: &'a ContainerStore,
        record: ContainerRecord,
        network: &'a NetworkPlan,
    ) -> Self {
        let dir = containers.dir_of(&record.id);
        RecordingHooks {
            containers,
            record,
            dir,
            network,
            attachment: None,
        }
    }

    /// Record the exit of the container's command.
    pub fn record_exit(&mut self, code: u8) {
        self.record_end(code, Status::Exited);
    }

    /// Record the exit of the container's command and the state that leaves it in: exited,
    /// or restarting when its monitor runs it again after a back-off. Other fields may have
    /// changed meanwhile (`rename`, `network connect`, a stop request): the record is changed
    /// in place, and `self.record` becomes what was saved.
    pub fn record_end(&mut self, code: u8, status: Status) {
        let ours = &self.record;
        let updated = self.containers.update(&ours.id, |r| {
            r.stopped_by_user |= ours.stopped_by_user;
            r.restart_count = ours.restart_count;
            r.status = status;
            if status == Status::Restarting {
                r.pid = 0;
            }
            r.exit_code = i32::from(code);
            r.finished_at = Some(containers::now_rfc3339());
        });
        match updated {
            Ok(r) => self.record = r,
            Err(e) => {
                log::warn!("{e}");
                self.record.status = status;
                self.record.exit_code = i32::from(code);
            }
        }
    }
}

impl Hooks for RecordingHooks<'_> {
    fn before_start(&mut self, pid: nix::unistd::Pid) -> Result<(), String> {
        let who = Who {
            id: &self.record.id,
            name: &self.record.name,
            hostname: &self.record.hostname,
        };
        self.attachment = Some(
            self.network
                .attach(pid, &self.dir, &who)
                .map_err(|e| e.to_string())?,
        );
        // Recorded before the command runs, so nothing it prints can be seen before `ps`,
        // `stop` or `rm -f` know its pid.
        self.record = self
            .containers
            .update(&self.record.id, |r| {
                r.status = Status::Running;
                r.pid = pid.as_raw();
                r.started_at = Some(containers::now_rfc3339());
                r.finished_at = None;
                // As docker: the code of the previous run is gone once it runs again.
                r.exit_code = 0;
            })
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Run a record's container in the foreground (burrow's own stdio, terminal and signals),
/// record its exit, and honour `--rm`. Call inside the container's user namespace
/// (`enter_userns_for`); the caller holds the container's run lock.
pub fn run_foreground(
    global: &GlobalArgs,
    containers: &ContainerStore,
    record: &ContainerRecord,
    mapping: &IdMapping,
) -> anyhow::Result<u8> {
    let result = (|| -> anyhow::Result<u8> {
        let prepared = prepare(global, containers, record, mapping, Stdio::Inherit)?;
        let mut hooks = RecordingHooks::new(containers, record.clone(), &prepared.network);
        let result = crate::runtime::run(&prepared.spec, &mut hooks);
        drop(hooks.attachment.take());
        let code = match &result {
            Ok(code) => *code,
            Err(RuntimeError::Start(e)) => e.code,
            Err(_) => crate::exit::BURROW_ERROR,
        };
        hooks.record_exit(code);
        match result {
            Ok(code) => Ok(code),
            // Carries docker's exit code (125/126/127) for the error printed by main.
            Err(RuntimeError::Start(e)) => Err(e.into()),
            Err(e) => Err(e.into()),
        }
    })();
    if record.auto_remove {
        remove_quietly(global, containers, &record.id);
    }
    result
}

/// Remove an `--rm` container's record, files and anonymous volumes (inside burrow's user
/// namespace).
pub fn remove_quietly(global: &GlobalArgs, containers: &ContainerStore, id: &str) {
    if let Ok(r) = containers.find(id) {
        match containers.remove(&r) {
            Ok(()) => super::volume::remove_anonymous(global, &r.mounts),
            Err(e) => log::warn!("cannot remove container {}: {e}", &id[..12.min(id.len())]),
        }
    }
}

/// Send `sig` to the container's first process. Processes of container users other than root
/// belong to subordinate ids, so when a plain kill is refused, a child joins the container's
/// user namespace (where burrow is root) and sends it from there.
pub fn signal_container(record: &ContainerRecord, sig: i32) -> anyhow::Result<()> {
    use nix::unistd::{ForkResult, Pid, fork};
    let pid = Pid::from_raw(record.pid);
    // SAFETY: kill(2) with plain integers. (nix's kill takes no real-time signal.)
    let kill =
        |pid: Pid, sig: i32| nix::Error::result(unsafe { libc::kill(pid.as_raw(), sig) }).map(drop);
    match kill(pid, sig) {
        Ok(()) | Err(nix::Error::ESRCH) => return Ok(()),
        Err(nix::Error::EPERM) => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot signal container {}", record.name));
        }
    }
    // SAFETY: burrow is single-threaded; the child only joins a namespace, signals and exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let ok = crate::runtime::join::enter_userns_of(pid).is_ok() && kill(pid, sig).is_ok();
            // SAFETY: leave the forked copy without running destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None)? {
            nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
            _ => anyhow::bail!("cannot send signal {sig} to container {}", record.name),
        },
    }
}

/// Wait up to `timeout` for the container's first process to exit; false on timeout.
pub fn wait_exit(record: &ContainerRecord, timeout: std::time::Duration) -> bool {
    // SAFETY: plain syscall; the descriptor is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, record.pid, 0) };
    if fd < 0 {
        return true;
    }
    // SAFETY: pidfd_open returned a new descriptor.
    let pidfd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&pidfd),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    matches!(
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX)),
        Ok(n) if n > 0
    )
}

/// docker's stop: the stop signal, then SIGKILL after the timeout; returns once the watching
/// burrow process has recorded the exit (or, if it cannot, see [`wait_released`]). A
/// restarting container is not run again: its monitor, woken from its back-off, records it
/// exited and ends at once. A paused container is continued after the signal, as docker does.
pub fn stop_container(
    containers: &ContainerStore,
    record: &mut ContainerRecord,
    timeout: Option<u32>,
) -> anyhow::Result<()> {
    if !record.status.is_running() {
        // Restarting (between two runs of a restart policy), or a monitor that holds the run
        // lock before or after a run: only the monitor is alive. Tell it to stop restarting
        // (or to kill the run it starts) and wait for it to go.
        if record.status == Status::Restarting || containers.is_locked(&record.id) {
            containers.request_stop(record, 0)?;
            wait_released(containers, &record.id);
        }
        return Ok(());
    }
    containers.request_stop(record, record.pid)?;
    let args = create_args_of(record).ok();
    let sig_name = args
        .as_ref()
        .and_then(|a| a.stop_signal.clone())
        .unwrap_or_else(|| "SIGTERM".into());
    let sig = parse_signal(&sig_name)?;
    let timeout = timeout
        .or(args.as_ref().and_then(|a| a.stop_timeout))
        .unwrap_or(10);
    signal_container(record, sig)?;
    if record.status == Status::Paused {
        super::pause::thaw(containers, record)?;
    }
    if !wait_exit(record, std::time::Duration::from_secs(u64::from(timeout))) {
        signal_container(record, libc::SIGKILL)?;
        wait_exit(record, std::time::Duration::from_secs(30));
    }
    wait_released(containers, &record.id);
    Ok(())
}

/// How long `stop`, `kill`, `restart` and `rm -f` wait for the burrow process that watches a
/// container to record its end and let it go.
const RELEASE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Wait, bounded, until no burrow process watches the container. A monitor that cannot make
/// progress (stopped, by SIGSTOP or a debugger) or has not finished within the grace time is
/// killed, once its pid is known still to be this container's monitor; the record then
/// reads as exited. False if the container is still held (by a foreground `run` that is
/// stuck: nothing to kill safely).
pub fn wait_released(containers: &ContainerStore, id: &str) -> bool {
    let monitor = containers
        .load(id)
        .ok()
        .map(|r| r.monitor_pid)
        .filter(|&pid| is_monitor_of(pid, id));
    let stopped = || {
        monitor.is_some_and(|pid| {
            matches!(super::pause::process_state(pid), Some('T' | 't')) && is_monitor_of(pid, id)
        })
    };
    if containers.wait_unlocked_for(id, RELEASE_GRACE, stopped) {
        return true;
    }
    let Some(pid) = monitor.filter(|&pid| is_monitor_of(pid, id)) else {
        log::warn!(
            "container {}: the burrow process that runs it does not let it go",
            &id[..12.min(id.len())]
        );
        return false;
    };
    log::warn!(
        "container {}: its monitor (pid {pid}) is stopped or stuck: killing it",
        &id[..12.min(id.len())]
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    containers.wait_unlocked_for(id, std::time::Duration::from_secs(5), || false)
}

/// Whether `pid` is the monitor of container `id` (`burrow ... container-monitor ID`): a pid
/// read from a record may have been reused since.
fn is_monitor_of(pid: i32, id: &str) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    args.windows(2)
        .any(|w| w[0] == b"container-monitor" && w[1] == id.as_bytes())
}

/// `SIGTERM`, `TERM`, `term` or `15`.
/// docker's refusals (exit 1) for a container with no process to act on: restarting between
/// runs, created or exited. A paused container passes; callers that refuse it say so first.
pub fn refuse_unless_running(record: &ContainerRecord) -> anyhow::Result<()> {
    if record.status == Status::Restarting {
        return Err(crate::exit::refused(format!(
            "Container {} is restarting, wait until the container is running",
            record.name
        )));
    }
    if !record.status.is_running() {
        return Err(crate::exit::refused(format!(
            "container {} is not running",
            record.name
        )));
    }
    Ok(())
}

/// A signal number from docker's spellings: `9`, `KILL`, `SIGKILL`, `RTMIN+3`, `SIGRTMAX-1`.
/// Real-time signals are numbers only: nix's `Signal` has none of them.
pub fn parse_signal(name: &str) -> anyhow::Result<i32> {
    use std::str::FromStr;
    let invalid = || anyhow::anyhow!("invalid signal: {name}");
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let in_range = |n: i32| (1..=max).contains(&n).then_some(n).ok_or_else(invalid);
    if let Ok(n) = name.parse::<i32>() {
        return in_range(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let offset = |rest: &str| -> anyhow::Result<i32> {
        match rest {
            "" => Ok(0),
            _ => rest.parse::<i32>().map_err(|_| invalid()),
        }
    };
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        let n = min + offset(rest)?;
        return if n <= max {
            in_range(n)
        } else {
            Err(invalid())
        };
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        let n = max + offset(rest)?;
        return if n >= min {
            in_range(n)
        } else {
            Err(invalid())
        };
    }
    nix::sys::signal::Signal::from_str(&format!("SIG{bare}"))
        .map(|s| s as i32)
        .map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("hup").unwrap(), libc::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("RTMIN").unwrap(), libc::SIGRTMIN());
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse_signal("rtmax-1").unwrap(), libc::SIGRTMAX() - 1);
        assert_eq!(parse_signal("37").unwrap(), 37);
        for bad in ["NOPE", "0", "65", "RTMIN+40", "RTMAX-40", "RTMIN+x", "-1"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
