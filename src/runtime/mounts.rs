//! The container's filesystem view: which mounts go where, planned as data (so the plan can be
//! tested without privileges) and carried out inside the container's mount namespace.
//!
//! Every target is resolved inside the rootfs with `RESOLVE_IN_ROOT`, so a hostile image whose
//! `/proc` or `/etc/hosts` is a symlink cannot make burrow mount anything outside it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statvfs::{FsFlags, statvfs};

use crate::safe_open::{Create, ensure_in_root, fd_path};

/// Paths a container must not read (docker's default masked paths).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Paths a container may read but not write (docker's default read-only paths).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Device nodes bind-mounted from the host: a user namespace cannot create them.
pub const HOST_DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new filesystem instance.
    Mount {
        fstype: &'static str,
        target: PathBuf,
        flags: MsFlags,
        data: Option<String>,
    },
    /// A host file or directory made visible at `target`.
    Bind {
        source: PathBuf,
        target: PathBuf,
        create: Create,
        recursive: bool,
        readonly: bool,
    },
    Symlink {
        link: PathBuf,
        points_to: &'static str,
    },
}

#[derive(Debug, Clone)]
pub struct MountPlanInput {
    /// Share the host's network namespace: sysfs cannot be mounted fresh, so bind it.
    pub host_network: bool,
    /// devpts wants gid 5 (tty) for its slaves, which exists only with subordinate gids.
    pub tty_gid_mapped: bool,
    /// Files burrow writes for the container (`/etc/hosts`, ...): (host path, container path).
    pub etc_files: Vec<(PathBuf, PathBuf)>,
    /// Volumes, bind mounts and tmpfs mounts the user asked for.
    pub mounts: Vec<super::ExtraMount>,
}

fn dir(p: &str) -> PathBuf {
    PathBuf::from(p)
}

/// The mounts made before `pivot_root`, in order.
pub fn plan(input: &MountPlanInput) -> Vec<Step> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut steps = vec![Step::Mount {
        fstype: "proc",
        target: dir("/proc"),
        flags: nosuid_nodev_noexec,
        data: None,
    }];
    steps.push(if input.host_network {
        Step::Bind {
            source: dir("/sys"),
            target: dir("/sys"),
            create: Create::Dir,
            recursive: true,
            readonly: true,
        }
    } else {
        Step::Mount {
            fstype: "sysfs",
            target: dir("/sys"),
            flags: nosuid_nodev_noexec | MsFlags::MS_RDONLY,
            data: None,
        }
    });
    steps.push(Step::Mount {
        fstype: "tmpfs",
        target: dir("/dev"),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        data: Some("mode=755,size=65536k".into()),
    });
    for dev in HOST_DEVICES {
        steps.push(Step::Bind {
            source: Path::new("/dev").join(dev),
            target: Path::new("/dev").join(dev),
            create: Create::File,
            recursive: false,
            readonly: false,
        });
    }
    let gid = if input.tty_gid_mapped { ",gid=5" } else { "" };
    steps.push(Step::Mount {
        fstype: "devpts",
        target: dir("/dev/pts"),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        data: Some(format!("newinstance,ptmxmode=0666,mode=0620{gid}")),
    });
    steps.push(Step::Mount {
        fstype: "tmpfs",
        target: dir("/dev/shm"),
        flags: nosuid_nodev_noexec,
        data: Some("mode=1777,size=65536k".into()),
    });
    steps.push(Step::Mount {
        fstype: "mqueue",
        target: dir("/dev/mqueue"),
        flags: nosuid_nodev_noexec,
        data: None,
    });
    for (link, points_to) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/core", "/proc/kcore"),
    ] {
        steps.push(Step::Symlink {
            link: dir(link),
            points_to,
        });
    }
    steps.extend(input.mounts.iter().map(extra_mount_step));
    for (source, target) in &input.etc_files {
        steps.push(Step::Bind {
            source: source.clone(),
            target: target.clone(),
            create: Create::File,
            recursive: false,
            readonly: false,
        });
    }
    steps
}

/// How a volume, bind mount or tmpfs the user asked for is mounted.
fn extra_mount_step(m: &super::ExtraMount) -> Step {
    match &m.source {
        Some(source) => Step::Bind {
            source: source.clone(),
            target: m.target.clone(),
            create: if source.is_dir() {
                Create::Dir
            } else {
                Create::File
            },
            recursive: true,
            readonly: m.readonly,
        },
        None => Step::Mount {
            fstype: "tmpfs",
            target: m.target.clone(),
            flags: MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | if m.readonly {
                    MsFlags::MS_RDONLY
                } else {
                    MsFlags::empty()
                },
            data: Some(
                m.tmpfs_options
                    .clone()
                    .unwrap_or_else(|| "mode=1777".into()),
            ),
        },
    }
}

/// The volumes and bind mounts of a container that is not running, as `cp` sees them (docker's
/// daemon mounts them while it copies): its tmpfs mounts are left out, their contents gone
/// with its processes, so their paths are the container's own directories, as in docker.
pub fn storage_steps(mounts: &[super::ExtraMount]) -> Vec<Step> {
    mounts
        .iter()
        .filter(|m| m.source.is_some())
        .map(extra_mount_step)
        .collect()
}

/// Fill still-empty volumes with what the image has at their mount points (before the
/// volumes are mounted over them).
pub fn seed_volumes(rootfs: &Path, mounts: &[super::ExtraMount]) -> Result<(), MountError> {
    let root: OwnedFd = std::fs::File::open(rootfs)
        .map_err(|source| MountError::Target {
            path: rootfs.to_path_buf(),
            source,
        })?
        .into();
    for m in mounts.iter().filter(|m| m.seed) {
        let Some(source) = &m.source else { continue };
        let empty = std::fs::read_dir(source)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            continue;
        }
        let Ok(fd) = crate::safe_open::open_in_root(
            root.as_fd(),
            &m.target,
            libc::O_PATH | libc::O_DIRECTORY,
        ) else {
            continue;
        };
        super::copy::copy_tree(&fd_path(&fd), source).map_err(|e| MountError::Target {
            path: m.target.clone(),
            source: e,
        })?;
    }
    Ok(())
}

/// `--read-only`: the root mount becomes read-only; /dev, /proc, volumes and tmpfs stay as
/// they are.
pub fn make_root_readonly() -> Result<(), MountError> {
    remount_readonly(Path::new("/")).map_err(|source| MountError::Mount {
        what: "read-only root".into(),
        path: PathBuf::from("/"),
        source,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot prepare {path} in the container: {source}")]
    Target {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot mount {what} on {path}: {source}")]
    Mount {
        what: String,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("cannot switch to the container's root filesystem: {0}")]
    Pivot(nix::Error),
}

fn target_fd(root: &OwnedFd, path: &Path, create: Create) -> Result<OwnedFd, MountError> {
    ensure_in_root(root.as_fd(), path, create).map_err(|source| MountError::Target {
        path: path.to_path_buf(),
        source,
    })
}

/// Carry out `steps` under `rootfs` (a directory the caller mounted).
pub fn apply(rootfs: &Path, steps: &[Step]) -> Result<(), MountError> {
    let root: OwnedFd = std::fs::File::open(rootfs)
        .map_err(|source| MountError::Target {
            path: rootfs.to_path_buf(),
            source,
        })?
        .into();
    for step in steps {
        match step {
            Step::Mount {
                fstype,
                target,
                flags,
                data,
            } => {
                let fd = target_fd(&root, target, Create::Dir)?;
                mount(
                    Some(*fstype),
                    &fd_path(&fd),
                    Some(*fstype),
                    *flags,
                    data.as_deref(),
                )
                .map_err(|source| MountError::Mount {
                    what: fstype.to_string(),
                    path: target.clone(),
                    source,
                })?;
            }
            Step::Bind {
                source,
                target,
                create,
                recursive,
                readonly,
            } => {
                let fd = target_fd(&root, target, *create)?;
                let mut flags = MsFlags::MS_BIND;
                if *recursive {
                    flags |= MsFlags::MS_REC;
                }
                let at = fd_path(&fd);
                mount(
                    Some(source.as_path()),
                    &at,
                    None::<&str>,
                    flags,
                    None::<&str>,
                )
                .map_err(|e| MountError::Mount {
                    what: source.display().to_string(),
                    path: target.clone(),
                    source: e,
                })?;
                if *readonly {
                    // The fd still names the directory under the new mount; reopen to reach it.
                    let fd = target_fd(&root, target, Create::Nothing)?;
                    remount_readonly(&fd_path(&fd)).map_err(|e| MountError::Mount {
                        what: "read-only remount".into(),
                        path: target.clone(),
                        source: e,
                    })?;
                }
            }
            Step::Symlink { link, points_to } => {
                let parent = link.parent().unwrap_or(Path::new("/"));
                let dir = target_fd(&root, parent, Create::Dir)?;
                let name = link.file_name().unwrap_or_default();
                let dir_path = fd_path(&dir);
                if let Err(source) = std::os::unix::fs::symlink(points_to, dir_path.join(name))
                    && source.kind() != std::io::ErrorKind::AlreadyExists
                {
                    return Err(MountError::Target {
                        path: link.clone(),
                        source,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A bind mount made read-only, keeping the flags the kernel locked on it in our namespace
/// (dropping a locked nosuid/nodev/noexec would fail with EPERM).
fn remount_readonly(path: &Path) -> nix::Result<()> {
    let locked = statvfs(path)?.flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if locked.contains(fs) {
            flags |= ms;
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

/// Make `rootfs` the root of this mount namespace and drop the host's tree.
pub fn pivot_into(rootfs: &Path) -> Result<(), MountError> {
    nix::unistd::chdir(rootfs).map_err(MountError::Pivot)?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only
    // the container's tree, with no directory needed in the image for the old root.
    nix::unistd::pivot_root(".", ".").map_err(MountError::Pivot)?;
    umount2(".", MntFlags::MNT_DETACH).map_err(MountError::Pivot)?;
    nix::unistd::chdir("/").map_err(MountError::Pivot)?;
    Ok(())
}

/// Masked and read-only paths, applied after `pivot_root` (paths are the container's own).
pub fn protect_kernel_paths() -> Result<(), MountError> {
    for path in MASKED_PATHS {
        let p = Path::new(path);
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            continue;
        };
        let res = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )
        } else {
            mount(
                Some("/dev/null"),
                p,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        res.map_err(|source| MountError::Mount {
            what: "mask".into(),
            path: p.to_path_buf(),
            source,
        })?;
    }
    for path in READONLY_PATHS {
        let p = Path::new(path);
        if std::fs::symlink_metadata(p).is_err() {
            continue;
        }
        mount(
            Some(p),
            p,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .and_then(|()| remount_readonly(p))
        .map_err(|source| MountError::Mount {
            what: "read-only bind".into(),
            path: p.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(host_network: bool, tty_gid_mapped: bool) -> MountPlanInput {
        MountPlanInput {
            host_network,
            tty_gid_mapped,
            etc_files: vec![(PathBuf::from("/run/x/hosts"), PathBuf::from("/etc/hosts"))],
            mounts: Vec::new(),
        }
    }

    fn target(step: &Step) -> &Path {
        match step {
            Step::Mount { target, .. } | Step::Bind { target, .. } => target,
            Step::Symlink { link, .. } => link,
        }
    }

    #[test]
    fn proc_first_and_dev_before_its_children() {
        let steps = plan(&input(false, true));
        assert_eq!(target(&steps[0]), Path::new("/proc"));
        let pos = |p: &str| {
            steps
                .iter()
                .position(|s| target(s) == Path::new(p))
                .unwrap()
        };
        assert!(pos("/dev") < pos("/dev/null"));
        assert!(pos("/dev") < pos("/dev/pts"));
        assert!(pos("/dev") < pos("/dev/ptmx"));
        assert!(pos("/dev/pts") < pos("/dev/ptmx"));
        assert_eq!(target(steps.last().unwrap()), Path::new("/etc/hosts"));
    }

    #[test]
    fn etc_files_go_on_top_of_user_mounts() {
        let mut inp = input(false, true);
        inp.mounts = vec![crate::runtime::ExtraMount {
            source: Some(PathBuf::from("/tmp")),
            target: PathBuf::from("/etc"),
            readonly: false,
            tmpfs_options: None,
            seed: false,
            chown: false,
            volume: None,
        }];
        let steps = plan(&inp);
        let pos = |p: &str| {
            steps
                .iter()
                .position(|s| target(s) == Path::new(p))
                .unwrap()
        };
        assert!(pos("/etc") < pos("/etc/hosts"));
    }

    #[test]
    fn user_mounts_come_before_etc_files_with_their_options() {
        let mut inp = input(false, true);
        inp.mounts = vec![
            crate::runtime::ExtraMount {
                source: Some(PathBuf::from("/tmp")),
                target: PathBuf::from("/data"),
                readonly: true,
                tmpfs_options: None,
                seed: false,
                chown: false,
                volume: None,
            },
            crate::runtime::ExtraMount {
                source: None,
                target: PathBuf::from("/scratch"),
                readonly: false,
                tmpfs_options: Some("size=1m".into()),
                seed: false,
                chown: false,
                volume: None,
            },
        ];
        let steps = plan(&inp);
        let n = steps.len() - 1;
        assert!(
            matches!(&steps[n - 2], Step::Bind { target, readonly: true, create: Create::Dir, .. } if target == Path::new("/data"))
        );
        assert!(
            matches!(&steps[n - 1], Step::Mount { fstype: "tmpfs", data: Some(d), .. } if d == "size=1m")
        );
    }

    #[test]
    fn a_stopped_containers_storage_is_its_volumes_and_binds_only() {
        let mount = |source: Option<&str>, target: &str, readonly| crate::runtime::ExtraMount {
            source: source.map(PathBuf::from),
            target: PathBuf::from(target),
            readonly,
            tmpfs_options: None,
            seed: false,
            chown: false,
            volume: None,
        };
        let steps = storage_steps(&[
            mount(Some("/tmp"), "/data", true),
            mount(None, "/scratch", false),
            mount(Some("/tmp"), "/data/rw", false),
        ]);
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(
            matches!(&steps[0], Step::Bind { target, readonly: true, recursive: true, .. } if target == Path::new("/data"))
        );
        assert!(
            matches!(&steps[1], Step::Bind { target, readonly: false, .. } if target == Path::new("/data/rw"))
        );
    }

    #[test]
    fn sysfs_is_fresh_only_with_our_own_network_namespace() {
        let own = plan(&input(false, true));
        assert!(own.iter().any(|s| matches!(s, Step::Mount { fstype: "sysfs", flags, .. } if flags.contains(MsFlags::MS_RDONLY))));
        let host = plan(&input(true, true));
        assert!(host.iter().any(|s| matches!(s, Step::Bind { target, recursive: true, readonly: true, .. } if target == Path::new("/sys"))));
        assert!(!host.iter().any(|s| matches!(
            s,
            Step::Mount {
                fstype: "sysfs",
                ..
            }
        )));
    }

    #[test]
    fn devpts_gid_only_when_mapped() {
        let data = |steps: Vec<Step>| {
            steps.into_iter().find_map(|s| match s {
                Step::Mount {
                    fstype: "devpts",
                    data,
                    ..
                } => data,
                _ => None,
            })
        };
        assert!(data(plan(&input(false, true))).unwrap().contains("gid=5"));
        assert!(!data(plan(&input(false, false))).unwrap().contains("gid="));
    }

    #[test]
    fn kernel_paths_match_docker_defaults() {
        for p in [
            "/proc/kcore",
            "/proc/keys",
            "/proc/timer_list",
            "/sys/firmware",
        ] {
            assert!(MASKED_PATHS.contains(&p), "{p}");
        }
        for p in ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"] {
            assert!(READONLY_PATHS.contains(&p), "{p}");
        }
    }
}
