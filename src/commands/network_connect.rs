//! `burrow network connect` and `network disconnect`: add a container to a user-defined
//! network or take it off, while it runs (a new `ethN` in its network namespace, its name in
//! the other members' /etc/hosts) and for its next start (recorded with its creation flags).

use crate::containers::{ContainerRecord, ContainerStore};
use crate::exit::refused;
use crate::netns::bridge::{self, RunDir};
use crate::netns::networks::NetworkDef;
use crate::netns::{Endpoint, NetworkMode, NetworkRecord};

use super::lifecycle::create_args_of;

/// The user-defined networks a container is on (or will be on when it starts): its
/// `--network` and those connected since.
pub fn networks_of(record: &ContainerRecord) -> Vec<String> {
    // Read from the stored flags directly: `ps` asks this for every container.
    let net = &record.create_args["net"];
    let primary = match net["network"].as_str().map(NetworkMode::parse) {
        Some(Ok(NetworkMode::Network(n))) => Some(n),
        _ => None,
    };
    let connected = net["connected"].as_array().into_iter().flatten();
    primary
        .into_iter()
        .chain(connected.filter_map(|n| n.as_str().map(str::to_string)))
        .collect()
}

fn same_userns(a: i32, b: i32) -> bool {
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
    ns(a).is_some() && ns(a) == ns(b)
}

pub fn connect(
    containers: &ContainerStore,
    def: &NetworkDef,
    key: &str,
    aliases: &[String],
) -> anyhow::Result<()> {
    let record = containers.find(key)?;
    let args = create_args_of(&record)?;
    let on = networks_of(&record);
    if on.contains(&def.name) {
        return Err(refused(format!(
            "container {} is already connected to network {}",
            record.name, def.name
        )));
    }
    if on.is_empty() {
        return Err(refused(format!(
            "container {} does not use a user-defined network (--network {}): only containers \
             started on one can be connected to others; recreate it with --network {}",
            record.name,
            args.net.network.as_deref().unwrap_or("default"),
            def.name
        )));
    }
    if record.status.is_running() {
        plug(containers, &record, def, aliases)?;
    }
    update_flags(containers, &record.id, |a| {
        a.net.connected.push(def.name.clone());
        a.net.network_alias.extend(aliases.iter().cloned());
    })
}

/// Change the creation flags recorded for the container's next start, under its metadata
/// lock (its monitor may be recording an exit at the same time).
fn update_flags(
    containers: &ContainerStore,
    id: &str,
    change: impl FnOnce(&mut super::create_args::CreateArgs),
) -> anyhow::Result<()> {
    let mut result = Ok(());
    containers.update(id, |r| {
        result = create_args_of(r).and_then(|mut args| {
            change(&mut args);
            r.create_args = serde_json::to_value(&args)?;
            Ok(())
        });
    })?;
    result
}

/// Give a running container an interface on `def`.
fn plug(
    containers: &ContainerStore,
    record: &ContainerRecord,
    def: &NetworkDef,
    aliases: &[String],
) -> anyhow::Result<()> {
    let root = containers.storage_root();
    let dir = containers.dir_of(&record.id);
    let run = RunDir::new(root, &def.name);
    // The network stays up while the container's process lives.
    let infra = bridge::ensure_infra(&run, record.pid, || {
        super::network_infra::spawn(root, &def.name)
    })?;
    if !same_userns(record.pid, infra.holder_pid) {
        return Err(refused(format!(
            "cannot connect running container {} to network {}: its network namespace belongs \
             to another user namespace than the network's (it was started while none of its \
             networks was up); restart it and connect again",
            record.name, def.name
        )));
    }
    crate::runtime::join::enter_userns_of(nix::unistd::Pid::from_raw(infra.holder_pid))?;
    let mut net = NetworkRecord::load(&dir);
    let ifname = (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| net.endpoints.iter().all(|e| &e.ifname != n))
        .expect("a free interface name");
    let mut all_aliases = net.aliases.clone();
    all_aliases.extend(aliases.iter().cloned());
    let member = bridge::join(
        &run,
        &bridge::JoinRequest {
            def,
            holder_pid: infra.holder_pid,
            pid: record.pid,
            id: &record.id,
            name: &record.name,
            hostname: &record.hostname,
            aliases: &all_aliases,
            ifname: &ifname,
            hosts: &dir.join("userdata").join("hosts"),
            ports: &[],
            default_route: false,
        },
        &bridge::member_is_live(root),
    )?;
    net.endpoints.push(Endpoint::of(def, &member));
    net.save(&dir)?;
    Ok(())
}

pub fn disconnect(containers: &ContainerStore, def: &NetworkDef, key: &str) -> anyhow::Result<()> {
    let record = containers.find(key)?;
    if !networks_of(&record).contains(&def.name) {
        return Err(refused(format!(
            "container {} is not connected to network {}",
            record.name, def.name
        )));
    }
    let dir = containers.dir_of(&record.id);
    let mut net = NetworkRecord::load(&dir);
    if record.status.is_running() && net.endpoints.iter().any(|e| e.network == def.name) {
        let root = containers.storage_root();
        let run = RunDir::new(root, &def.name);
        if let Some(infra) = run.live_infra() {
            crate::runtime::join::enter_userns_of(nix::unistd::Pid::from_raw(infra.holder_pid))?;
            bridge::leave(
                &run,
                &def.name,
                &record.id,
                Some(infra.holder_pid),
                &bridge::member_is_live(root),
            )?;
        }
        net.endpoints.retain(|e| e.network != def.name);
        net.save(&dir)?;
    }
    update_flags(containers, &record.id, |args| {
        args.net.connected.retain(|n| n != &def.name);
        if args.net.network.as_deref() == Some(def.name.as_str()) {
            // docker lets the first network go too; the next one (or none) takes its place.
            args.net.network = Some(if args.net.connected.is_empty() {
                "none".to_string()
            } else {
                args.net.connected.remove(0)
            });
        }
    })
}
