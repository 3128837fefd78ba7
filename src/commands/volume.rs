//! `burrow volume create/ls/rm/inspect/prune`.

use std::collections::BTreeMap;

use clap::Subcommand;

use crate::cli::GlobalArgs;
use crate::volumes::{Volume, VolumeError, VolumeStore};

/// Remove the volumes `in_use` says no container uses (only anonymous ones unless `all`) and
/// list them as docker does; returns the bytes reclaimed. Runs in burrow's user namespace.
pub fn prune_unused(
    store: &VolumeStore,
    in_use: impl Fn(&str) -> bool,
    all: bool,
) -> anyhow::Result<u64> {
    let mut removed = Vec::new();
    let mut reclaimed = 0;
    for v in store.list()? {
        if !in_use(&v.name) && (all || v.anonymous) {
            reclaimed += super::system::du(&v.mountpoint);
            store.remove(&v.name)?;
            removed.push(v.name);
        }
    }
    // docker's output: the header only when something went.
    if !removed.is_empty() {
        outln!("Deleted Volumes:");
        for name in &removed {
            outln!("{name}");
        }
        outln!();
    }
    Ok(reclaimed)
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: VolumeCommand,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create {
        /// Set metadata on the volume (KEY=VALUE)
        #[arg(short, long = "label")]
        label: Vec<String>,
        /// Volume driver (only "local")
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// Name of the volume (default: a random one)
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
        /// Filter: name=, label=, dangling=true|false
        #[arg(short, long)]
        filter: Vec<String>,
        /// Format the output using a Go template, "table ...", or "json"
        #[arg(long)]
        format: Option<String>,
    },
    /// Show volumes in detail
    Inspect {
        /// Format the output using a Go template
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes
    #[command(alias = "remove")]
    Rm {
        /// Remove volumes even when a container uses them
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Remove named volumes too, not only anonymous ones
        #[arg(short, long)]
        all: bool,
    },
}

fn labels(pairs: &[String]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Which volumes containers use, and by whom.
fn users(global: &GlobalArgs) -> anyhow::Result<BTreeMap<String, String>> {
    let containers = super::open_containers(global)?;
    let mut used = BTreeMap::new();
    for c in containers.list()? {
        for m in &c.mounts {
            if let Some(v) = &m.volume {
                used.insert(v.clone(), c.name.clone());
            }
        }
    }
    Ok(used)
}

fn to_json(v: &Volume) -> anyhow::Result<serde_json::Value> {
    let mut j = serde_json::to_value(v)?;
    if let Some(o) = j.as_object_mut() {
        o.remove("Anonymous");
    }
    Ok(j)
}

/// A `volume ls` row: docker's `Labels` is `k=v,...`; `{{.Label "k"}}` reads one.
fn list_row(v: &Volume) -> anyhow::Result<serde_json::Value> {
    let mut j = to_json(v)?;
    let joined = v
        .labels
        .iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join(",");
    j["Label"] = serde_json::to_value(&v.labels)?;
    j["Labels"] = serde_json::Value::String(joined);
    j["Scope"] = serde_json::Value::String(v.scope.clone());
    Ok(j)
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = VolumeStore::open(&crate::paths::storage_root(global))?;
    match args.command {
        VolumeCommand::Create {
            label,
            driver,
            name,
        } => {
            if driver != "local" {
                anyhow::bail!(
                    "volume driver {driver:?} is not supported: burrow has only \"local\""
                );
            }
            let anonymous = name.is_none();
            let name = name.unwrap_or_else(crate::containers::new_id);
            let (v, _) = store.create(&name, labels(&label), anonymous)?;
            outln!("{}", v.name);
            Ok(0)
        }
        VolumeCommand::Ls {
            quiet,
            filter,
            format,
        } => {
            let used = users(global)?;
            let mut rows = Vec::new();
            for v in store.list()? {
                let mut keep = true;
                for f in &filter {
                    let (k, val) = f.split_once('=').unwrap_or((f, ""));
                    keep &= match k {
                        "name" => v.name.contains(val),
                        "dangling" => used.contains_key(&v.name) != (val == "true" || val == "1"),
                        "label" => {
                            let (lk, lv) = val
                                .split_once('=')
                                .map_or((val, None), |(a, b)| (a, Some(b)));
                            v.labels
                                .get(lk)
                                .is_some_and(|x| lv.is_none_or(|lv| lv == x))
                        }
                        other => {
                            anyhow::bail!("invalid filter {other:?}: use name, label or dangling")
                        }
                    };
                }
                if keep {
                    rows.push(list_row(&v)?);
                }
            }
            let format = match (format, quiet) {
                (Some(f), _) => f,
                (None, true) => "{{.Name}}".into(),
                (None, false) => "table {{.Driver}}\t{{.Name}}".into(),
            };
            let header = |f: &str| match f {
                "Driver" => Some("DRIVER".to_string()),
                "Name" => Some("VOLUME NAME".to_string()),
                "Mountpoint" => Some("MOUNTPOINT".to_string()),
                other => Some(other.to_uppercase()),
            };
            out!("{}", super::format::render_rows(&format, &rows, &header)?);
            Ok(0)
        }
        VolumeCommand::Inspect { format, names } => {
            let mut out = Vec::new();
            let mut failed = false;
            for n in &names {
                match store.get(n) {
                    Ok(v) => out.push(to_json(&v)?),
                    Err(e) => {
                        errln!("burrow: {e}");
                        failed = true;
                    }
                }
            }
            match format {
                Some(f) => {
                    for v in &out {
                        outln!("{}", super::format::render_template(&f, v)?);
                    }
                }
                None => outln!("{}", serde_json::to_string_pretty(&out)?),
            }
            Ok(u8::from(failed))
        }
        VolumeCommand::Rm { force, names } => {
            let used = users(global)?;
            crate::userns::enter_current()?;
            let mut failed = false;
            for n in &names {
                let result = match used.get(n) {
                    Some(c) if !force => Err(VolumeError::InUse(n.clone(), c.clone())),
                    _ => store.remove(n),
                };
                match result {
                    Ok(()) => outln!("{n}"),
                    Err(e) => {
                        errln!("burrow: {e}");
                        failed = true;
                    }
                }
            }
            Ok(u8::from(failed))
        }
        VolumeCommand::Prune { force, all } => {
            if !force {
                anyhow::bail!(
                    "volume prune removes every volume no container uses: confirm with -f"
                );
            }
            let used = users(global)?;
            crate::userns::enter_current()?;
            let reclaimed = prune_unused(&store, |name| used.contains_key(name), all)?;
            outln!(
                "Total reclaimed space: {}",
                super::format::human_size(reclaimed)
            );
            Ok(0)
        }
    }
}

/// Remove the anonymous volumes of a removed container (`rm -v`), except those another
/// container still uses (through `--volumes-from`).
pub fn remove_anonymous(global: &GlobalArgs, mounts: &[crate::runtime::ExtraMount]) {
    let Ok(store) = VolumeStore::open(&crate::paths::storage_root(global)) else {
        return;
    };
    let Ok(used) = users(global) else {
        return;
    };
    for m in mounts {
        if let Some(name) = &m.volume
            && !used.contains_key(name)
            && store.get(name).is_ok_and(|v| v.anonymous)
            && let Err(e) = store.remove(name)
        {
            log::warn!("{e}");
        }
    }
}
