//! `burrow info` and `burrow version`: the host and the store, docker-shaped.

use serde_json::{Value, json};

use crate::cli::GlobalArgs;
use crate::containers::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Format the output using a Go template, or "json"
    #[arg(short, long)]
    pub format: Option<String>,
}

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

fn info_json(global: &GlobalArgs) -> anyhow::Result<Value> {
    let containers = super::open_containers(global)?.list()?;
    let images = super::open_store(global)?.images()?;
    let uname = nix::sys::utsname::uname()?;
    let mapping = crate::userns::current_mapping()?;
    let running = containers
        .iter()
        .filter(|c| c.status == Status::Running)
        .count();
    let paused = containers
        .iter()
        .filter(|c| c.status == Status::Paused)
        .count();
    let cgroup_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    // What `--memory`, `--cpus`, ... can use: a cgroup v2 tree delegated to the user.
    let limits = match crate::runtime::cgroups::Hierarchy::system().delegated_to_self(&[]) {
        Ok(d) => json!({"Enforced": true, "Cgroup": d.dir, "Controllers": d.controllers}),
        Err(reason) => json!({"Enforced": false, "Reason": reason.to_string()}),
    };
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    Ok(json!({
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": containers.len() - running - paused,
        "Images": images.len(),
        "Driver": super::storage_driver::flag_value(super::storage_driver::name(global)),
        "DockerRootDir": crate::paths::storage_root(global),
        "KernelVersion": uname.release().to_string_lossy(),
        "OperatingSystem": os_release(),
        "OSType": "linux",
        "Architecture": uname.machine().to_string_lossy(),
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total,
        "Name": uname.nodename().to_string_lossy(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "CgroupVersion": if cgroup_v2 { "2" } else { "1" },
        "ResourceLimits": limits,
        "SecurityOptions": ["name=rootless", "name=userns", "name=no-new-privileges"],
        "Rootless": true,
        "IDMapping": match mapping.kind {
            crate::userns::MappingKind::Identity => "identity (run as root)",
            crate::userns::MappingKind::Subordinate => "subordinate ids",
            crate::userns::MappingKind::SingleId => "single id (no subordinate ids)",
        },
        "UIDMap": mapping.uid_map.iter().map(|e| format!("{} {} {}", e.inside, e.outside, e.count)).collect::<Vec<_>>(),
        "GIDMap": mapping.gid_map.iter().map(|e| format!("{} {} {}", e.inside, e.outside, e.count)).collect::<Vec<_>>(),
    }))
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let info = info_json(global)?;
    if let Some(format) = &args.format {
        let text = if format == "json" {
            serde_json::to_string(&info)?
        } else {
            super::format::render_template(format, &info)?
        };
        outln!("{text}");
        return Ok(0);
    }
    let s = |k: &str| match &info[k] {
        Value::String(v) => v.clone(),
        other => other.to_string(),
    };
    outln!("Client: burrow {}", s("ServerVersion"));
    outln!(" Containers: {}", s("Containers"));
    outln!("  Running: {}", s("ContainersRunning"));
    outln!("  Paused: {}", s("ContainersPaused"));
    outln!("  Stopped: {}", s("ContainersStopped"));
    outln!(" Images: {}", s("Images"));
    outln!(" Storage Driver: {}", s("Driver"));
    outln!(" Root Dir: {}", s("DockerRootDir"));
    outln!(" Cgroup Version: {}", s("CgroupVersion"));
    let limits = &info["ResourceLimits"];
    match limits["Reason"].as_str() {
        Some(reason) => outln!(" Resource Limits: ignored: {reason}"),
        None => outln!(
            " Resource Limits: enforced in {} ({})",
            limits["Cgroup"].as_str().unwrap_or_default(),
            limits["Controllers"]
                .as_array()
                .map(|c| c
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(" "))
                .unwrap_or_default()
        ),
    }
    outln!(" Security Options: rootless, userns, no-new-privileges");
    outln!(" ID mapping: {}", s("IDMapping"));
    outln!(" Kernel Version: {}", s("KernelVersion"));
    outln!(" Operating System: {}", s("OperatingSystem"));
    outln!(" Architecture: {}", s("Architecture"));
    outln!(" CPUs: {}", s("NCPU"));
    outln!(
        " Total Memory: {}",
        super::format::human_size(info["MemTotal"].as_u64().unwrap_or(0))
    );
    outln!(" Name: {}", s("Name"));
    Ok(0)
}
