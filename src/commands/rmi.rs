//! `burrow rmi` (= `image rm`): remove images, docker's way: a name of several only untags,
//! the last name (or the id) removes the image, and an image a container uses is refused
//! unless forced. Blobs and layers go in one garbage collection at the end (see
//! `storage::gc` for why that is crash-safe).

use crate::cli::GlobalArgs;
use crate::containers::ContainerRecord;
use crate::reference::Reference;
use crate::storage::{Digest, GcReport, ImageRecord, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Force removal of the image (an image a container uses is only untagged: it stays,
    /// dangling, until no container uses it)
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents (accepted for compatibility: burrow keeps none)
    #[arg(long)]
    pub no_prune: bool,
    /// Images to remove: names, ids or digests
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// A docker "conflict" error.
fn conflict(msg: String) -> anyhow::Error {
    anyhow::anyhow!("conflict: {msg}")
}

pub fn familiar(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| name.to_string())
}

/// Image ids of every container: garbage collection keeps what they use.
pub fn container_roots(containers: &[ContainerRecord]) -> Vec<Digest> {
    containers
        .iter()
        .filter_map(|c| Digest::parse(&c.image_id).ok())
        .collect()
}

/// Whether `arg` names the image by id (or id prefix) rather than by one of its names.
fn by_id(arg: &str, image: &ImageRecord) -> bool {
    if let Ok(r) = Reference::parse(arg) {
        if r.digest.is_some() {
            return true;
        }
        if image.names.contains(&r.to_string()) {
            return false;
        }
    }
    let hex = arg.strip_prefix("sha256:").unwrap_or(arg);
    image.id.hex().starts_with(hex) || image.manifest_digest.hex() == hex
}

/// Remove one image the way `docker rmi` does, printing `Untagged:`/`Deleted:` lines.
fn remove_one(
    store: &Store,
    containers: &[ContainerRecord],
    arg: &str,
    force: bool,
) -> anyhow::Result<()> {
    let image = store.find_image(arg).map_err(|e| match e {
        crate::storage::StorageError::ImageNotFound(_) => {
            anyhow::anyhow!("No such image: {arg}")
        }
        other => other.into(),
    })?;
    let users: Vec<&ContainerRecord> = containers
        .iter()
        .filter(|c| c.image_id == image.id.to_string())
        .collect();
    let running = users.iter().find(|c| c.status.is_active());
    let short = image.id.short();
    if !by_id(arg, &image) {
        let name = Reference::parse(arg)?;
        let full = name.to_string();
        if image.names.len() > 1 {
            store.untag(&name)?;
            outln!("Untagged: {}", name.familiar());
            return Ok(());
        }
        if let Some(c) = users.first() {
            if force {
                // A container keeps its image: untag only, as docker does.
                store.untag(&name)?;
                outln!("Untagged: {}", familiar(&full));
                return Ok(());
            }
            return Err(conflict(format!(
                "unable to remove repository reference \"{arg}\" (must force) - container {} \
                 is using its referenced image {short}",
                &c.id[..12]
            )));
        }
    } else {
        if image.names.len() > 1 && !force {
            return Err(conflict(format!(
                "unable to delete {short} (must be forced) - image is referenced in multiple \
                 repositories"
            )));
        }
        if let Some(c) = running {
            return Err(conflict(format!(
                "unable to delete {short} (cannot be forced) - image is being used by running \
                 container {}",
                &c.id[..12]
            )));
        }
        if let Some(c) = users.first() {
            if !force {
                return Err(conflict(format!(
                    "unable to delete {short} (must be forced) - image is being used by stopped \
                     container {}",
                    &c.id[..12]
                )));
            }
            // The stopped container still needs it to start, diff, export or commit: the
            // image loses its names and stays, dangling, until the container is removed.
            for name in &image.names {
                store.untag(&Reference::parse(name)?)?;
                outln!("Untagged: {}", familiar(name));
            }
            return Ok(());
        }
    }
    delete_image(store, &image)
}

/// Take every name and manifest of `image` out of the index; print what docker prints.
pub fn delete_image(store: &Store, image: &ImageRecord) -> anyhow::Result<()> {
    let manifests = store.manifests_of(&image.id)?;
    store.remove_manifests(&manifests)?;
    for name in image.names.iter().chain(&image.repo_digests) {
        outln!("Untagged: {}", familiar(name));
    }
    outln!("Deleted: {}", image.id);
    Ok(())
}

/// Enter burrow's user namespace once (several steps of one command may need it).
pub fn enter_userns() -> anyhow::Result<()> {
    static ENTERED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if ENTERED.get().is_none() {
        crate::userns::enter_current()?;
        let _ = ENTERED.set(());
    }
    Ok(())
}

/// Collect what nothing references any more (inside the user namespace: layer files belong
/// to subordinate ids). Prints docker's `Deleted:` lines for the layers when `print`.
pub fn collect(
    store: &Store,
    containers: &[ContainerRecord],
    print: bool,
) -> anyhow::Result<GcReport> {
    enter_userns()?;
    let report = store.gc(&container_roots(containers))?;
    if print {
        for layer in &report.layers {
            outln!("Deleted: {layer}");
        }
    }
    Ok(report)
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let containers = super::open_containers(global)?.list()?;
    let mut failed = false;
    let mut removed = false;
    for arg in &args.images {
        match remove_one(&store, &containers, arg, args.force) {
            Ok(()) => removed = true,
            Err(e) => {
                errln!("burrow: {e:#}");
                failed = true;
            }
        }
    }
    if removed {
        crate::storage::crash_point("rmi-after-index");
        collect(&store, &containers, true)?;
    }
    Ok(if failed { 1 } else { 0 })
}
