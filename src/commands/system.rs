//! `burrow system df | prune | reset`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, Status};
use crate::reference::Reference;
use crate::storage::{Digest, Store};

use super::format::{ago, human_size, human_size_with_precision, table};
use super::image_size::LayerSizes;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: SystemCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Show disk usage
    Df(DfArgs),
    /// Remove unused data: stopped containers, dangling (with -a: unused) images
    Prune(PruneArgs),
    /// Remove all containers, images and volumes: everything under the storage root
    Reset(ResetArgs),
}

#[derive(Debug, clap::Args)]
pub struct DfArgs {
    /// Show detailed information on space usage: per image its SIZE, SHARED SIZE (layers other
    /// images have too) and UNIQUE SIZE
    #[arg(short, long)]
    pub verbose: bool,
    /// Format the summary: `table TEMPLATE`, `json`, or a Go template per row (fields Type,
    /// TotalCount, Active, Size, Reclaimable). Image sizes are unpacked sizes, as docker's,
    /// each layer counted once however many images share it
    #[arg(long, conflicts_with = "verbose")]
    pub format: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Also remove anonymous volumes no container uses
    #[arg(long)]
    pub volumes: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    match args.command {
        SystemCommand::Df(a) => df(global, a),
        SystemCommand::Prune(a) => prune(global, a),
        SystemCommand::Reset(a) => reset(global, a),
    }
}

/// What docker shows as the size of a container's writable layer or a volume (its
/// `directory.Size`); parts this process cannot read count 0.
pub fn du(path: &Path) -> u64 {
    crate::storage::diff_size::directory_size(path, true).unwrap_or(0)
}

/// Running, paused, or restarting: a burrow process owns it.
fn is_active(c: &ContainerRecord) -> bool {
    c.status.is_active()
}

fn reclaimable(size: u64, total: u64) -> String {
    match (size * 100).checked_div(total) {
        None => human_size(size),
        Some(percent) => format!("{} ({percent}%)", human_size(size)),
    }
}

struct ImageUsage {
    id: Digest,
    names: Vec<String>,
    created: Option<String>,
    /// Chain id and unpacked size of each layer, lowest first.
    layers: Vec<(Digest, u64)>,
    containers: usize,
}

fn image_usage(store: &Store, containers: &[ContainerRecord]) -> anyhow::Result<Vec<ImageUsage>> {
    let images = super::images::sorted_images(store)?;
    let sizes = LayerSizes::of(store, &images)?;
    let mut out: Vec<ImageUsage> = Vec::new();
    for image in images {
        if let Some(u) = out.iter_mut().find(|u| u.id == image.id) {
            u.names.extend(image.names.clone());
            continue;
        }
        let id = image.id.to_string();
        out.push(ImageUsage {
            containers: containers.iter().filter(|c| c.image_id == id).count(),
            layers: sizes.layers(&image),
            id: image.id,
            names: image.names,
            created: image.created,
        });
    }
    Ok(out)
}

fn volumes_dir(global: &GlobalArgs) -> PathBuf {
    crate::paths::storage_root(global).join("volumes")
}

fn list_volumes(global: &GlobalArgs) -> Vec<(String, u64)> {
    let Ok(entries) = fs::read_dir(volumes_dir(global)) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u64)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, du(&e.path().join("_data")))
        })
        .collect();
    out.sort();
    out
}

fn df(global: &GlobalArgs, args: DfArgs) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let cstore = super::open_containers(global)?;
    let containers = cstore.list()?;
    let images = image_usage(&store, &containers)?;

    // How many images use each layer (by chain id: a layer an image has twice is two
    // layers), and each layer's unpacked size once: the total counts what is stored, shared
    // layers once, as docker does.
    let mut counts: HashMap<&Digest, usize> = HashMap::new();
    let mut sizes: HashMap<&Digest, u64> = HashMap::new();
    for u in &images {
        for (chain, size) in &u.layers {
            *counts.entry(chain).or_default() += 1;
            sizes.insert(chain, *size);
        }
    }
    let total: u64 = sizes.values().sum();
    let active_layers: HashSet<&Digest> = images
        .iter()
        .filter(|u| u.containers > 0)
        .flat_map(|u| u.layers.iter().map(|(chain, _)| chain))
        .collect();
    let image_reclaimable: u64 = sizes
        .iter()
        .filter(|(chain, _)| !active_layers.contains(*chain))
        .map(|(_, s)| s)
        .sum();
    let container_sizes: Vec<u64> = containers
        .iter()
        .map(|c| du(&cstore.dir_of(&c.id).join("upper")))
        .collect();
    let container_total: u64 = container_sizes.iter().sum();
    let container_reclaimable: u64 = containers
        .iter()
        .zip(&container_sizes)
        .filter(|(c, _)| !is_active(c))
        .map(|(_, s)| s)
        .sum();
    let volumes = list_volumes(global);
    let volume_total: u64 = volumes.iter().map(|(_, s)| s).sum();
    // As docker: a volume is in use (and not reclaimable) while any container, running or
    // not, mounts it; LINKS counts those containers.
    let links = |name: &str| {
        containers
            .iter()
            .filter(|c| c.mounts.iter().any(|m| m.volume.as_deref() == Some(name)))
            .count()
    };
    let volume_links: Vec<usize> = volumes.iter().map(|(name, _)| links(name)).collect();
    let volume_reclaimable: u64 = volumes
        .iter()
        .zip(&volume_links)
        .filter(|(_, n)| **n == 0)
        .map(|((_, s), _)| s)
        .sum();

    if !args.verbose {
        let summary: Vec<[String; 5]> = vec![
            [
                "Images".into(),
                images.len().to_string(),
                images
                    .iter()
                    .filter(|u| u.containers > 0)
                    .count()
                    .to_string(),
                human_size(total),
                reclaimable(image_reclaimable, total),
            ],
            [
                "Containers".into(),
                containers.len().to_string(),
                containers
                    .iter()
                    .filter(|c| is_active(c))
                    .count()
                    .to_string(),
                human_size(container_total),
                reclaimable(container_reclaimable, container_total),
            ],
            [
                "Local Volumes".into(),
                volumes.len().to_string(),
                volume_links.iter().filter(|n| **n > 0).count().to_string(),
                human_size(volume_total),
                reclaimable(volume_reclaimable, volume_total),
            ],
            [
                "Build Cache".into(),
                "0".into(),
                "0".into(),
                "0B".into(),
                "0B".into(),
            ],
        ];
        const FIELDS: [(&str, &str); 5] = [
            ("Type", "TYPE"),
            ("TotalCount", "TOTAL"),
            ("Active", "ACTIVE"),
            ("Size", "SIZE"),
            ("Reclaimable", "RECLAIMABLE"),
        ];
        if let Some(format) = &args.format {
            let items: Vec<serde_json::Value> = summary
                .iter()
                .map(|row| {
                    serde_json::Value::Object(
                        FIELDS
                            .iter()
                            .zip(row)
                            .map(|((k, _), v)| (k.to_string(), serde_json::json!(v)))
                            .collect(),
                    )
                })
                .collect();
            let header = |f: &str| {
                FIELDS
                    .iter()
                    .find(|(k, _)| *k == f)
                    .map(|(_, h)| h.to_string())
            };
            out!("{}", super::format::render_rows(format, &items, &header)?);
            return Ok(0);
        }
        let mut rows = vec![FIELDS.iter().map(|(_, h)| h.to_string()).collect()];
        rows.extend(summary.into_iter().map(Vec::from));
        out!("{}", table(&rows));
        return Ok(0);
    }

    outln!("Images space usage:\n");
    let mut rows = vec![
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for u in &images {
        let size: u64 = u.layers.iter().map(|(_, s)| s).sum();
        let shared: u64 = u
            .layers
            .iter()
            .filter(|(chain, _)| counts.get(chain).copied().unwrap_or(0) > 1)
            .map(|(_, s)| s)
            .sum();
        let mut names: Vec<(String, String)> = u
            .names
            .iter()
            .filter_map(|n| Reference::parse(n).ok())
            .map(|r| r.repository_and_tag())
            .collect();
        if names.is_empty() {
            names.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in names {
            rows.push(vec![
                repo,
                tag,
                u.id.hex()[..12].to_string(),
                ago(u.created.as_deref()),
                // As docker's `images`: three digits; the others four.
                human_size_with_precision(size, 3),
                human_size(shared),
                human_size(size - shared),
                u.containers.to_string(),
            ]);
        }
    }
    out!("{}", table(&rows));
    outln!("\nContainers space usage:\n");
    let mut rows = vec![
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "LOCAL VOLUMES",
            "SIZE",
            "CREATED",
            "STATUS",
            "NAMES",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (c, size) in containers.iter().zip(&container_sizes) {
        let command = format!("\"{}\"", c.command.join(" "));
        let status = match c.status {
            Status::Running => "Up".to_string(),
            Status::Paused => "Up (Paused)".to_string(),
            Status::Restarting => format!("Restarting ({})", c.exit_code),
            Status::Created => "Created".to_string(),
            Status::Exited => format!("Exited ({})", c.exit_code),
        };
        rows.push(vec![
            c.id[..12].to_string(),
            c.image.clone(),
            command,
            "0".into(),
            human_size(*size),
            ago(Some(&c.created)),
            status,
            c.name.clone(),
        ]);
    }
    out!("{}", table(&rows));
    outln!("\nLocal Volumes space usage:\n");
    let mut rows = vec![["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()];
    for ((name, size), n) in volumes.iter().zip(&volume_links) {
        rows.push(vec![name.clone(), n.to_string(), human_size(*size)]);
    }
    out!("{}", table(&rows));
    outln!("\nBuild cache usage: 0B");
    Ok(0)
}

fn prune(global: &GlobalArgs, args: PruneArgs) -> anyhow::Result<u8> {
    let mut warning = String::from("WARNING! This will remove:\n  - all stopped containers\n");
    if args.volumes {
        warning.push_str("  - all anonymous volumes not used by at least one container\n");
    }
    warning.push_str(if args.all {
        "  - all images without at least one container associated to them\n"
    } else {
        "  - all dangling images\n"
    });
    if !args.force && !super::image::confirm(&warning)? {
        return Ok(0);
    }
    let store = super::open_store(global)?;
    let cstore = super::open_containers(global)?;
    super::rmi::enter_userns()?;
    let mut reclaimed = 0;
    let mut deleted = Vec::new();
    for c in cstore.list()? {
        if is_active(&c) {
            continue;
        }
        reclaimed += du(&cstore.dir_of(&c.id).join("upper"));
        match cstore.remove(&c) {
            Ok(()) => deleted.push(c.id),
            Err(e) => errln!("burrow: cannot remove container {}: {e}", &c.id[..12]),
        }
    }
    if !deleted.is_empty() {
        outln!("Deleted Containers:");
        for id in &deleted {
            outln!("{id}");
        }
        outln!();
    }
    let containers = cstore.list()?;
    if args.volumes {
        let volumes = crate::volumes::VolumeStore::open(&crate::paths::storage_root(global))?;
        let used: std::collections::HashSet<&str> = containers
            .iter()
            .flat_map(|c| c.mounts.iter().filter_map(|m| m.volume.as_deref()))
            .collect();
        reclaimed += super::volume::prune_unused(&volumes, |name| used.contains(name), false)?;
    }
    reclaimed += super::image::prune_images(&store, &containers, args.all)?;
    outln!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

/// burrow's per-user runtime directory (locks, state that does not survive a reboot).
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("burrow"),
        None => std::env::temp_dir().join(format!("burrow-{}", nix::unistd::getuid())),
    }
}

fn reset(global: &GlobalArgs, args: ResetArgs) -> anyhow::Result<u8> {
    let warning = "WARNING! This will remove:\n  - all containers\n  - all images\n  - all \
                   volumes\n  - everything else under the storage root";
    if !args.force && !super::image::confirm(warning)? {
        return Ok(0);
    }
    let root = crate::paths::storage_root(global);
    if let Ok(cstore) = crate::containers::ContainerStore::open(&root)
        && let Ok(list) = cstore.list()
    {
        for mut c in list.into_iter().filter(is_active) {
            // Stopped by the user: their monitors do not run them again.
            let pid = if c.status.is_running() { c.pid } else { 0 };
            let _ = cstore.request_stop(&mut c, pid);
            if pid > 0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    // Layer and container files belong to subordinate ids: only root in our namespace may
    // remove them.
    super::rmi::enter_userns()?;
    let mut failed = false;
    let mut dirs = vec![root.clone()];
    // The runtime directory is per user, shared by every storage root: only a reset of the
    // default root clears it.
    if global.root.is_none() {
        dirs.push(runtime_dir());
    }
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Err(e) = crate::storage::safe_fs::remove_tree(&entry.path()) {
                errln!("burrow: cannot remove {}: {e}", entry.path().display());
                failed = true;
            }
        }
        let _ = fs::remove_dir(&dir);
    }
    Ok(if failed { 1 } else { 0 })
}
