//! `burrow network`: user-defined networks (create, ls, rm, inspect, connect, disconnect,
//! prune).
//!
//! Networks are records under `ROOT/networks`; while containers use one, its bridge and
//! slirp4netns live in a network namespace held by `network-infra` (see `netns::bridge`).
//! What docker's daemon would refuse (no such network, a name in use, a container already
//! connected or not connected) exits 1, as docker's CLI does.

use serde_json::json;

use super::network_connect;
use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, ContainerStore, Status};
use crate::exit::refused;
use crate::netns::networks::{BUILTIN, NetworkDef, NetworkStore};
use crate::netns::{Endpoint, NetworkRecord};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Create a network
    Create {
        /// Driver (only bridge)
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR form (default: the next free 10.89.N.0/24)
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway of the subnet (default: its first address)
        #[arg(long)]
        gateway: Option<String>,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// Set metadata on the network (KEY=VALUE)
        #[arg(long)]
        label: Vec<String>,
        /// Network name
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network ids
        #[arg(short, long)]
        quiet: bool,
        /// Don't truncate ids
        #[arg(long)]
        no_trunc: bool,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        /// Remove even if containers use it (they keep their own stacks)
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Display detailed information on one or more networks
    Inspect {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network
    Connect {
        /// Add a network-scoped alias for the container
        #[arg(long)]
        alias: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Accepted for docker compatibility
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Remove all networks no container uses
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

/// The containers on `network` (with `running_only`, those running on it now).
fn members(
    containers: &ContainerStore,
    network: &str,
    running_only: bool,
) -> Vec<(ContainerRecord, Option<Endpoint>)> {
    containers
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let endpoint = (r.status == Status::Running)
                .then(|| {
                    NetworkRecord::load(&containers.dir_of(&r.id))
                        .endpoints
                        .into_iter()
                        .find(|e| e.network == network)
                })
                .flatten();
            let on = if running_only {
                endpoint.is_some()
            } else {
                network_connect::networks_of(&r)
                    .iter()
                    .any(|n| n == network)
            };
            on.then_some((r, endpoint))
        })
        .collect()
}

fn names(members: &[(ContainerRecord, Option<Endpoint>)]) -> String {
    let names: Vec<&str> = members.iter().map(|(r, _)| r.name.as_str()).collect();
    names.join(", ")
}

fn inspect_json(def: &NetworkDef, containers: &ContainerStore) -> serde_json::Value {
    let labels: serde_json::Map<String, serde_json::Value> = def
        .labels
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), json!(v))
        })
        .collect();
    json!({
        "Name": def.name,
        "Id": def.id,
        "Created": def.created,
        "Scope": "local",
        "Driver": def.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Config": [{"Subnet": def.subnet, "Gateway": def.gateway}]},
        "Internal": def.internal,
        "Containers": members(containers, &def.name, true)
            .into_iter()
            .map(|(r, e)| {
                let e = e.expect("running members have an endpoint");
                (r.id, json!({
                    "Name": r.name,
                    "IPv4Address": format!("{}/{}", e.ip, e.prefix_len),
                    "IPv6Address": "",
                }))
            })
            .collect::<serde_json::Map<_, _>>(),
        "Labels": labels,
    })
}

fn not_found(key: &str) -> anyhow::Error {
    refused(format!("no such network: {key}"))
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let root = crate::paths::storage_root(global);
    let store = NetworkStore::open(&root);
    let containers = super::open_containers(global)?;
    match args.command {
        Sub::Create {
            driver,
            subnet,
            gateway,
            internal,
            label,
            name,
        } => {
            if driver != "bridge" {
                return Err(refused(format!(
                    "network driver {driver:?} is not supported: use bridge"
                )));
            }
            let def = store
                .create(
                    &name,
                    subnet.as_deref(),
                    gateway.as_deref(),
                    internal,
                    &label,
                )
                .map_err(|e| refused(e.to_string()))?;
            outln!("{}", def.id);
        }
        Sub::Ls { quiet, no_trunc } => {
            let id = |s: &str| {
                if no_trunc {
                    s.to_string()
                } else {
                    s[..12].to_string()
                }
            };
            if !quiet {
                outln!("{:<14}{:<20}{:<14}SCOPE", "NETWORK ID", "NAME", "DRIVER");
            }
            for (name, driver) in BUILTIN {
                if quiet {
                    continue;
                }
                outln!("{:<14}{:<20}{:<14}local", "-", name, driver);
            }
            for def in store.list() {
                if quiet {
                    outln!("{}", id(&def.id));
                } else {
                    outln!("{:<14}{:<20}{:<14}local", id(&def.id), def.name, def.driver);
                }
            }
        }
        Sub::Rm { force, networks } => {
            let mut failed = false;
            for key in &networks {
                let result = store.find(key).map_err(|_| not_found(key)).and_then(|def| {
                    let users = members(&containers, &def.name, false);
                    if !users.is_empty() && !force {
                        anyhow::bail!(
                            "network {} is in use by containers: {} (remove them, disconnect \
                             them, or use -f)",
                            def.name,
                            names(&users)
                        );
                    }
                    store.remove(&def)?;
                    Ok(())
                });
                match result {
                    Ok(()) => outln!("{key}"),
                    Err(e) => {
                        errln!("burrow: {e:#}");
                        failed = true;
                    }
                }
            }
            return Ok(if failed { 1 } else { 0 });
        }
        Sub::Inspect { networks } => {
            let mut out = Vec::new();
            let mut missing = Vec::new();
            for key in &networks {
                match store.find(key) {
                    Ok(def) => out.push(inspect_json(&def, &containers)),
                    Err(_) => missing.push(key.clone()),
                }
            }
            outln!("{}", serde_json::to_string_pretty(&out)?);
            if !missing.is_empty() {
                return Err(not_found(&missing.join(", ")));
            }
        }
        Sub::Connect {
            alias,
            network,
            container,
        } => {
            let def = store.find(&network).map_err(|_| not_found(&network))?;
            network_connect::connect(&containers, &def, &container, &alias)?;
        }
        Sub::Disconnect {
            force: _,
            network,
            container,
        } => {
            let def = store.find(&network).map_err(|_| not_found(&network))?;
            network_connect::disconnect(&containers, &def, &container)?;
        }
        Sub::Prune { force: _ } => {
            for def in store.list() {
                if members(&containers, &def.name, false).is_empty() {
                    store.remove(&def)?;
                    outln!("{}", def.name);
                }
            }
        }
    }
    Ok(0)
}
