//! The container runtime: namespaces, the root filesystem, mounts, pivot_root and exec, and
//! burrow's side of a running container (signals, terminal, exit code).

pub mod caps;
pub mod cgroups;
pub mod copy;
pub mod exec;
pub mod exec_in;
pub mod init;
pub mod join;
pub mod mounts;
pub mod process_config;
pub mod pty;
pub mod rootfs;
pub mod supervise;
pub mod sync;
pub mod user;
pub mod vfs;

use std::path::PathBuf;

pub use process_config::ProcessConfig;
pub use supervise::{RuntimeError, Started, run, start};

/// Which network namespace the container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// A new network namespace with `lo` up; `Hooks::before_start` may attach more.
    Private,
    /// The host's network namespace.
    Host,
    /// Another container's network namespace (`/proc/PID/ns/net`); burrow must be in that
    /// container's user namespace.
    Join(PathBuf),
}

/// What burrow does around the start of the container's command.
pub trait Hooks {
    /// The container's namespaces and mounts exist and its command has not started: attach
    /// networking here. An error stops the container with burrow's exit code.
    fn before_start(&mut self, _pid: nix::unistd::Pid) -> Result<(), String> {
        Ok(())
    }

    /// The command is running.
    fn started(&mut self, _pid: nix::unistd::Pid) {}
}

/// Where a container's standard streams go when it has no terminal.
#[derive(Debug, Default)]
pub enum Stdio {
    /// burrow's own (a foreground `run`).
    #[default]
    Inherit,
    /// Given descriptors (a detached container's log pipes).
    Fds {
        stdin: Option<std::os::fd::OwnedFd>,
        stdout: std::os::fd::OwnedFd,
        stderr: std::os::fd::OwnedFd,
    },
}

/// A volume, bind mount or tmpfs in the container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExtraMount {
    /// Host path of a bind mount or volume; `None` for a tmpfs.
    pub source: Option<PathBuf>,
    /// Absolute path in the container.
    pub target: PathBuf,
    pub readonly: bool,
    /// tmpfs mount options (`size=64m,mode=1777`).
    pub tmpfs_options: Option<String>,
    /// A volume that is still empty gets the image's content at `target` (docker's copy-up).
    pub seed: bool,
    /// `:U`: make the source belong to the container's user.
    pub chown: bool,
    /// The volume's name, for `inspect` and `rm -v`.
    pub volume: Option<String>,
}

/// Everything needed to start one container process.
pub struct ContainerSpec {
    pub id: String,
    pub hostname: String,
    /// Image layer directories, lowest first.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
    /// The container is removed after it exits.
    pub ephemeral: bool,
    pub rootfs_driver: Box<dyn rootfs::RootfsDriver>,
    pub process: ProcessConfig,
    pub group_add: Vec<String>,
    pub tty: bool,
    pub interactive: bool,
    pub stdio: Stdio,
    pub network: Network,
    /// Files burrow writes for the container: (host path, path in the container).
    pub etc_files: Vec<(PathBuf, PathBuf)>,
    pub mounts: Vec<ExtraMount>,
    /// `--read-only`: the root filesystem is mounted read-only.
    pub read_only: bool,
    /// False with a single-id map, where setgroups(2) is denied.
    pub can_setgroups: bool,
    /// Whether gid 5 (tty) exists in the user namespace.
    pub tty_gid_mapped: bool,
    /// The cgroup (a directory) of the container's resource limits: its first process is
    /// moved there before its command starts.
    pub cgroup: Option<PathBuf>,
}

impl ContainerSpec {
    pub fn layers(&self) -> rootfs::Layers<'_> {
        rootfs::Layers {
            lower: &self.lower,
            upper: &self.upper,
            work: &self.work,
            volatile: self.ephemeral,
        }
    }

    pub fn mount_plan_input(&self) -> mounts::MountPlanInput {
        mounts::MountPlanInput {
            host_network: self.network == Network::Host,
            tty_gid_mapped: self.tty_gid_mapped,
            etc_files: self.etc_files.clone(),
            mounts: self.mounts.clone(),
        }
    }
}
