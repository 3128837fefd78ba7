//! Reaching a container's files from burrow: the running container's root through its first
//! process, or, for a stopped one, its layers mounted in a private mount namespace with its
//! volumes and bind mounts on them, as docker's daemon mounts them to copy.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, ContainerStore};
use crate::runtime::ExtraMount;
use crate::runtime::mounts;
use crate::runtime::rootfs::{Layers, MountServer, Mounted};
use crate::storage::UnpackOptions;
use crate::userns::MappingKind;

/// Where a container's root filesystem is visible, and for a stopped container on burrow's
/// FUSE overlay the process serving it, which serves as long as this lives.
pub struct Rootfs {
    pub path: PathBuf,
    _server: Option<MountServer>,
}

/// Enter the right user namespace and make the container's root filesystem visible with its
/// volumes and bind mounts, as its processes see them (burrow must be single-threaded; this
/// changes its namespaces and may fork a FUSE server).
pub fn open_rootfs(
    global: &GlobalArgs,
    containers: &ContainerStore,
    record: &ContainerRecord,
) -> anyhow::Result<Rootfs> {
    if record.status.is_running() {
        let pid = nix::unistd::Pid::from_raw(record.pid);
        crate::runtime::join::enter_userns_of(pid)?;
        return Ok(Rootfs {
            path: PathBuf::from(format!("/proc/{pid}/root")),
            _server: None,
        });
    }
    let mapping = crate::userns::enter_current()?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("cannot create a mount namespace")?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    let lower = lower_dirs(global, record, mapping.kind)?;
    let dir = containers.dir_of(&record.id);
    for sub in ["upper", "work", "merged"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    let layers = Layers {
        lower: &lower,
        upper: &upper,
        work: &work,
        volatile: false,
    };
    let driver = super::storage_driver::driver(global);
    let server = match driver.mount(&layers, &merged)? {
        Mounted::Done => None,
        Mounted::NeedsServer(dev) => Some(driver.serve(&layers, dev)?),
    };
    mount_storage(&merged, &record.mounts)?;
    Ok(Rootfs {
        path: merged,
        _server: server,
    })
}

/// Put a stopped container's volumes and bind mounts where its processes would see them (not
/// its tmpfs mounts, whose contents went with its processes). A volume still empty gets the
/// image's files first, as `start` would give them: docker fills it when the container is
/// created, so `cp` of a container never started sees them there too.
fn mount_storage(merged: &Path, mounts: &[ExtraMount]) -> anyhow::Result<()> {
    mounts::seed_volumes(merged, mounts).context("cannot fill the container's new volumes")?;
    mounts::apply(merged, &mounts::storage_steps(mounts))
        .context("cannot mount the container's volumes")?;
    Ok(())
}

/// The container's image layers, unpacked, lowest first.
pub fn lower_dirs(
    global: &GlobalArgs,
    record: &ContainerRecord,
    kind: MappingKind,
) -> anyhow::Result<Vec<PathBuf>> {
    let store = super::open_store(global)?;
    let image = store
        .find_image(&record.image_id)
        .with_context(|| format!("the image of container {} is gone", record.name))?;
    Ok(store.ensure_unpacked(
        &image,
        UnpackOptions {
            ignore_chown_errors: kind == MappingKind::SingleId,
        },
    )?)
}

/// The directories whose overlay is the container's root, topmost first: its upper
/// directory over its image's layers, or the upper directory alone when the vfs driver made
/// it a full copy (whose deletions the layers below would undo).
pub fn layer_dirs(
    global: &GlobalArgs,
    containers: &ContainerStore,
    record: &ContainerRecord,
    kind: MappingKind,
) -> anyhow::Result<Vec<PathBuf>> {
    let dir = containers.dir_of(&record.id);
    let upper = upper_dir(containers, record);
    let copied = crate::runtime::vfs::owns(&Layers {
        lower: &[],
        upper: &upper,
        work: &dir.join("work"),
        volatile: false,
    });
    if copied {
        return Ok(vec![upper]);
    }
    let mut dirs: Vec<PathBuf> = upper.exists().then_some(upper).into_iter().collect();
    dirs.extend(lower_dirs(global, record, kind)?.into_iter().rev());
    Ok(dirs)
}

pub fn upper_dir(containers: &ContainerStore, record: &ContainerRecord) -> PathBuf {
    containers.dir_of(&record.id).join("upper")
}

/// `CONTAINER:PATH` → (container, path); anything else is a host path.
pub fn split_container_path(arg: &str) -> Option<(&str, &Path)> {
    if arg.starts_with('/') || arg.starts_with('.') || arg == "-" {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then(|| (c, Path::new(p)))
}
