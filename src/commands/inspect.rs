//! `burrow inspect` / `container inspect`: docker-shaped JSON about containers.

use serde_json::{Value, json};

use super::create_args::CreateArgs;
use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, ContainerStore, Status};
use crate::netns::{NetworkMode, NetworkRecord};
use crate::runtime::process_config::ImageProcess;
use crate::storage::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Format the output using a Go template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Only look for this kind of object: container or image
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Containers (or images) to inspect
    #[arg(required = true)]
    pub names: Vec<String>,
}

fn zero_time() -> String {
    "0001-01-01T00:00:00Z".into()
}

/// docker's `Config.Entrypoint` and `Config.Cmd`: the record keeps only the merged command
/// line, so it is split again with the rules that merged it (`--entrypoint`, then command
/// arguments, then the image's `Entrypoint`).
fn entrypoint_and_cmd(
    store: &Store,
    r: &ContainerRecord,
    create: Option<&CreateArgs>,
    args: &[String],
) -> (Option<Vec<String>>, Vec<String>) {
    let split = |n: usize| {
        let n = n.min(args.len());
        let entrypoint = (n > 0).then(|| args[..n].to_vec());
        (entrypoint, args[n..].to_vec())
    };
    let Some(create) = create else {
        return split(0);
    };
    match create.entrypoint.as_deref() {
        Some("") => split(0),
        Some(_) => split(1),
        None if !create.command.is_empty() => {
            split(args.len().saturating_sub(create.command.len()))
        }
        None => {
            let image_entrypoint = store
                .find_image(&r.image_id)
                .and_then(|image| store.image_config(&image))
                .map(|config| ImageProcess::from_oci(config.config().as_ref()).entrypoint)
                .unwrap_or_default();
            if args.starts_with(&image_entrypoint) {
                split(image_entrypoint.len())
            } else {
                split(0)
            }
        }
    }
}

/// `HostConfig.NetworkMode`: the mode as given, and for the default the mode it stands for
/// (as podman, rootless: `slirp4netns` or `pasta`).
fn network_mode(create: Option<&CreateArgs>) -> String {
    shown_network_mode(
        create
            .and_then(|c| c.net.network.as_deref())
            .unwrap_or_default(),
    )
}

/// A `--network` value as `inspect` and `ps` show it: the default as the mode it stands for.
pub fn shown_network_mode(given: &str) -> String {
    match given {
        "" | "default" | "bridge" | "private" => NetworkMode::default_mode().name(),
        _ => given.to_string(),
    }
}

/// The storage driver that made the container's root: vfs keeps its own; a running
/// container's root mount says which overlay; otherwise the driver its next start would use.
fn storage_driver(global: &GlobalArgs, containers: &ContainerStore, r: &ContainerRecord) -> String {
    let dir = containers.dir_of(&r.id);
    let layers = crate::runtime::rootfs::Layers {
        lower: &[],
        upper: &dir.join("upper"),
        work: &dir.join("work"),
        volatile: false,
    };
    if crate::runtime::vfs::owns(&layers) {
        return "vfs".into();
    }
    if r.status.is_running()
        && let Some(fstype) = root_fstype(r.pid)
    {
        return if fstype == "overlay" {
            "overlay".into()
        } else if fstype.starts_with("fuse") {
            "fuse-overlay".into()
        } else {
            "vfs".into()
        };
    }
    super::storage_driver::flag_value(super::storage_driver::name(global)).into()
}

/// The filesystem type of the root of `pid`'s mount namespace.
fn root_fstype(pid: i32) -> Option<String> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    // The last mount on "/" is the one seen; the type follows the " - " separator.
    info.lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split_once(" - "))
        .and_then(|(_, rest)| rest.split(' ').next())
        .map(str::to_string)
}

/// The container as docker's inspect shows it.
pub fn container_json(
    global: &GlobalArgs,
    store: &Store,
    containers: &ContainerStore,
    r: &ContainerRecord,
) -> Value {
    let create = super::lifecycle::create_args_of(r).ok();
    let process = r.process.clone();
    let args = process.as_ref().map(|p| p.args.clone()).unwrap_or_default();
    let (entrypoint, cmd) = entrypoint_and_cmd(store, r, create.as_ref(), &args);
    let resources = create
        .as_ref()
        .map(|c| c.resources.clone())
        .unwrap_or_default();
    let driver = storage_driver(global, containers, r);
    let dir = containers.dir_of(&r.id);
    let running = r.status.is_running();
    let policy = create
        .as_ref()
        .and_then(|c| super::create_args::RestartPolicy::parse(&c.restart).ok());
    let labels: serde_json::Map<String, Value> = create
        .as_ref()
        .map(|c| {
            c.label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), Value::String(v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": r.status.as_str(),
            // docker counts a restarting container as running (without a pid).
            "Running": r.status.is_active(),
            "Paused": r.status == Status::Paused,
            "Restarting": r.status == Status::Restarting,
            "OOMKilled": false,
            "Dead": false,
            "Pid": if running { r.pid } else { 0 },
            "ExitCode": r.exit_code,
            "Error": "",
            "StartedAt": r.started_at.clone().unwrap_or_else(zero_time),
            "FinishedAt": r.finished_at.clone().unwrap_or_else(zero_time),
        },
        "Image": r.image_id,
        "ResolvConfPath": containers.dir_of(&r.id).join("userdata/resolv.conf"),
        "HostnamePath": containers.dir_of(&r.id).join("userdata/hostname"),
        "HostsPath": containers.dir_of(&r.id).join("userdata/hosts"),
        // docker shows an empty LogPath for drivers without a file.
        "LogPath": r.log_config.path(&containers.dir_of(&r.id)).unwrap_or_default(),
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        "Driver": driver,
        "GraphDriver": {
            "Name": driver,
            "Data": {
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": dir.join("merged"),
            },
        },
        "HostConfig": {
            "AutoRemove": r.auto_remove,
            "NetworkMode": network_mode(create.as_ref()),
            "RestartPolicy": {
                "Name": policy.map(|p| p.name()).unwrap_or("no"),
                "MaximumRetryCount": match policy {
                    Some(super::create_args::RestartPolicy::OnFailure { max_retries }) => max_retries,
                    _ => 0,
                },
            },
            "GroupAdd": create.as_ref().map(|c| c.group_add.clone()).unwrap_or_default(),
            "Memory": resources.memory.unwrap_or(0),
            "MemorySwap": resources.memory_swap_total(),
            "MemoryReservation": resources.memory_reservation.unwrap_or(0),
            "NanoCpus": resources.cpus.unwrap_or(0),
            "CpuShares": resources.cpu_shares.unwrap_or(0),
            "CpuQuota": resources.cpu_quota.unwrap_or(0),
            "CpuPeriod": resources.cpu_period.unwrap_or(0),
            "CpusetCpus": resources.cpuset_cpus.clone().unwrap_or_default(),
            "CpusetMems": resources.cpuset_mems.clone().unwrap_or_default(),
            "PidsLimit": resources.pids_limit,
            "BlkioWeight": resources.blkio_weight.unwrap_or(0),
            "LogConfig": {
                "Type": r.log_config.driver.name(),
                "Config": r.log_config.opts,
            },
        },
        "Mounts": mounts_json(r),
        "Config": {
            "Hostname": r.hostname,
            "User": process.as_ref().map(|p| p.user.clone()).unwrap_or_default(),
            "Tty": create.as_ref().is_some_and(|c| c.tty),
            "OpenStdin": create.as_ref().is_some_and(|c| c.interactive),
            "Env": process.as_ref().map(|p| p.env.clone()).unwrap_or_default(),
            "Cmd": cmd,
            "Image": r.image,
            "WorkingDir": process.as_ref().map(|p| p.cwd.clone()).unwrap_or_default(),
            "Entrypoint": entrypoint,
            "Labels": labels,
            "StopSignal": create.as_ref().and_then(|c| c.stop_signal.clone()).unwrap_or_else(|| "SIGTERM".into()),
        },
        "NetworkSettings": network_settings(containers, r),
    })
}

/// docker's `NetworkSettings`: published ports, the address, and one entry per user-defined
/// network (`{{.NetworkSettings.Networks.appnet.IPAddress}}`).
fn network_settings(containers: &ContainerStore, r: &ContainerRecord) -> Value {
    let net = if r.status.is_running() {
        NetworkRecord::load(&containers.dir_of(&r.id))
    } else {
        NetworkRecord::default()
    };
    let mut ports = serde_json::Map::new();
    for m in &net.ports {
        let key = format!("{}/{}", m.container_port, m.proto.as_str());
        let entry = ports.entry(key).or_insert_with(|| json!([]));
        if let Value::Array(list) = entry {
            list.push(
                json!({"HostIp": m.host_ip.to_string(), "HostPort": m.host_port.to_string()}),
            );
        }
    }
    let networks: serde_json::Map<String, Value> = net
        .endpoints
        .iter()
        .map(|e| {
            (
                e.network.clone(),
                json!({
                    "NetworkID": e.network_id,
                    "IPAddress": e.ip.to_string(),
                    "IPPrefixLen": e.prefix_len,
                    "Gateway": e.gateway,
                    "Aliases": net.aliases,
                }),
            )
        })
        .collect();
    let primary = net.endpoints.first();
    json!({
        "Ports": ports,
        "IPAddress": net.address.map(|a| a.to_string()).unwrap_or_default(),
        "Gateway": primary.map(|e| e.gateway.clone()).unwrap_or_default(),
        "IPPrefixLen": primary.map_or(0, |e| e.prefix_len),
        "Networks": networks,
    })
}

/// docker's `Mounts`: one entry per volume, bind mount and tmpfs.
fn mounts_json(r: &ContainerRecord) -> Value {
    r.mounts
        .iter()
        .map(|m| {
            let kind = match (&m.volume, &m.source) {
                (Some(_), _) => "volume",
                (None, Some(_)) => "bind",
                (None, None) => "tmpfs",
            };
            json!({
                "Type": kind,
                "Name": m.volume.clone().unwrap_or_default(),
                "Source": m.source.clone().unwrap_or_default(),
                "Destination": m.target,
                "Driver": if m.volume.is_some() { "local" } else { "" },
                "Mode": if m.readonly { "ro" } else { "" },
                "RW": !m.readonly,
                "Propagation": if kind == "bind" { "rprivate" } else { "" },
            })
        })
        .collect()
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let store = super::open_store(global)?;
    let image_json = |name: &str| -> Option<Value> {
        let image = store.find_image(name).ok()?;
        serde_json::to_value(super::image::inspect_doc(&store, &image).ok()?).ok()
    };
    let container = |name: &str| {
        containers
            .find(name)
            .ok()
            .map(|r| container_json(global, &store, &containers, &r))
    };
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.names {
        let found = match args.kind.as_deref() {
            None => container(name).or_else(|| image_json(name)),
            Some("container") => container(name),
            Some("image") => image_json(name),
            Some(other) => anyhow::bail!("unknown --type {other:?}: use container or image"),
        };
        match found {
            Some(v) => out.push(v),
            None => {
                // docker's words, by what was looked for.
                let what = match args.kind.as_deref() {
                    Some("container") => "container",
                    Some("image") => "image",
                    _ => "object",
                };
                errln!("burrow: No such {what}: {name}");
                failed = true;
            }
        }
    }
    match &args.format {
        Some(format) => {
            for v in &out {
                outln!("{}", super::format::render_template(format, v)?);
            }
        }
        None => outln!("{}", serde_json::to_string_pretty(&out)?),
    }
    Ok(u8::from(failed))
}
