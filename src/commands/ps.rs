//! `burrow ps`: list containers.

use serde_json::{Value, json};

use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, ContainerStore, Status};
use crate::exit::refused;

use super::format::{ago, human_duration, seconds_since};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Show the latest created container
    #[arg(short, long)]
    pub latest: bool,
    /// Show the n last created containers
    #[arg(short = 'n', long = "last", value_name = "N")]
    pub last: Option<usize>,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: status=, name= (a regular expression), id=, label=, ancestor=, exited=
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format the output using a Go template, "table ...", or "json"
    #[arg(long)]
    pub format: Option<String>,
}

fn status_text(r: &ContainerRecord) -> String {
    let up = || human_duration(r.started_at.as_deref().and_then(seconds_since).unwrap_or(0));
    match r.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", up()),
        Status::Paused => format!("Up {} (Paused)", up()),
        Status::Restarting => format!(
            "Restarting ({}) {}",
            r.exit_code,
            ago(r.finished_at.as_deref())
        ),
        Status::Exited => format!("Exited ({}) {}", r.exit_code, ago(r.finished_at.as_deref())),
    }
}

fn labels(r: &ContainerRecord) -> Vec<(String, String)> {
    r.create_args["label"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The states `-f status=` accepts, docker's list (burrow has no `removing` or `dead`
/// containers, but a script may ask for them).
const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// One `--filter KEY=VALUE`, checked once: a bad key, status or pattern is an error before
/// anything is listed.
enum Filter {
    Status(String),
    /// docker matches names with a regular expression, against the name with and without
    /// its leading "/".
    Name(regex::Regex),
    Other(String),
}

impl Filter {
    fn parse(f: &str) -> anyhow::Result<(String, Filter)> {
        let (key, value) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter {f:?}: use KEY=VALUE"))?;
        let filter = match key {
            "status" if STATUSES.contains(&value) => Filter::Status(value.to_string()),
            "status" => {
                return Err(refused(format!(
                    "invalid filter 'status={value}': the status is one of {}",
                    STATUSES.join(", ")
                )));
            }
            "name" => Filter::Name(regex::Regex::new(value).map_err(|e| {
                refused(format!(
                    "invalid filter 'name={value}': not a regular expression: {e}"
                ))
            })?),
            "id" | "label" | "ancestor" | "exited" => Filter::Other(value.into()),
            other => {
                return Err(refused(format!(
                    "invalid filter {other:?}: use status, name, id, label, ancestor or exited"
                )));
            }
        };
        Ok((key.to_string(), filter))
    }
}

/// docker's `ps --filter` keys; several values of one key match any, different keys all.
fn matches(r: &ContainerRecord, filters: &[(String, Filter)]) -> bool {
    let keys: std::collections::BTreeSet<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    for key in keys {
        let mut any = false;
        for (_, filter) in filters.iter().filter(|(k, _)| k == key) {
            let value = match filter {
                Filter::Status(status) => {
                    any |= r.status.as_str() == status;
                    continue;
                }
                Filter::Name(re) => {
                    any |= re.is_match(&r.name) || re.is_match(&format!("/{}", r.name));
                    continue;
                }
                Filter::Other(value) => value,
            };
            any |= match key {
                "id" => r.id.starts_with(value.as_str()),
                "exited" => r.status == Status::Exited && r.exit_code.to_string() == *value,
                "ancestor" => {
                    r.image == *value
                        || r.image_id
                            .trim_start_matches("sha256:")
                            .starts_with(value.trim_start_matches("sha256:"))
                }
                "label" => {
                    let (k, v) = value
                        .split_once('=')
                        .map_or((value.as_str(), None), |(k, v)| (k, Some(v)));
                    labels(r)
                        .iter()
                        .any(|(lk, lv)| lk == k && v.is_none_or(|v| v == lv))
                }
                _ => false,
            };
        }
        if !any {
            return false;
        }
    }
    true
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// The fields docker's `ps --format` offers.
fn row(containers: &ContainerStore, r: &ContainerRecord, args: &Args) -> Value {
    let id = if args.no_trunc {
        r.id.clone()
    } else {
        r.id[..12].to_string()
    };
    let mut command = r.command.join(" ");
    if !args.no_trunc && command.chars().count() > 20 {
        command = format!("{}…", command.chars().take(19).collect::<String>());
    }
    let pairs = labels(r);
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let labels_map: serde_json::Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let size = if args.size {
        super::format::human_size(dir_size(&containers.dir_of(&r.id).join("upper")))
    } else {
        String::new()
    };
    // Only a running container has ports and interfaces (network.json).
    let net = if r.status.is_running() {
        crate::netns::NetworkRecord::load(&containers.dir_of(&r.id))
    } else {
        crate::netns::NetworkRecord::default()
    };
    let ports = net
        .ports
        .iter()
        .map(|m| {
            let (port, host) = crate::netns::ports::describe(m)
                .split_once(" -> ")
                .map(|(p, h)| (p.to_string(), h.to_string()))
                .unwrap_or_default();
            format!("{host}->{port}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    // docker shows the mode (`none`, `host`) of a container on no network.
    let networks = match super::network_connect::networks_of(r) {
        n if n.is_empty() => super::inspect::shown_network_mode(
            r.create_args["net"]["network"].as_str().unwrap_or_default(),
        ),
        n => n.join(","),
    };
    json!({
        "ID": id,
        "Image": r.image,
        "Command": format!("\"{command}\""),
        "CreatedAt": r.created,
        "RunningFor": ago(Some(&r.created)),
        "Status": status_text(r),
        "State": r.status.as_str(),
        "Ports": ports,
        "Names": r.name,
        "Labels": joined,
        "Label": labels_map,
        "Size": size,
        "Networks": networks,
        "Mounts": "",
    })
}

fn header(field: &str) -> Option<String> {
    Some(
        match field {
            "ID" => "CONTAINER ID",
            "Image" => "IMAGE",
            "Command" => "COMMAND",
            "CreatedAt" => "CREATED AT",
            "RunningFor" => "CREATED",
            "Status" => "STATUS",
            "State" => "STATE",
            "Ports" => "PORTS",
            "Names" => "NAMES",
            "Labels" => "LABELS",
            "Size" => "SIZE",
            "Networks" => "NETWORKS",
            "Mounts" => "MOUNTS",
            _ => return None,
        }
        .to_string(),
    )
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let filters: Vec<(String, Filter)> = args
        .filter
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<anyhow::Result<_>>()?;
    let show_all = args.all || args.latest || args.last.is_some() || !filters.is_empty();
    let mut all = containers.list()?;
    let abandoned: Vec<ContainerRecord> = all
        .iter()
        .filter(|r| super::container::is_abandoned(&containers, r))
        .cloned()
        .collect();
    if super::container::clean_up(global, &containers, &abandoned) {
        all.retain(|r| abandoned.iter().all(|a| a.id != r.id));
    }
    let mut list = Vec::new();
    for r in all {
        if (show_all || r.status.is_active()) && matches(&r, &filters) {
            list.push(r);
        }
    }
    if let Some(n) = args.last.or(args.latest.then_some(1)) {
        list.truncate(n);
    }
    let rows: Vec<Value> = list.iter().map(|r| row(&containers, r, &args)).collect();
    let format = match (&args.format, args.quiet) {
        (Some(f), _) => f.clone(),
        (None, true) => "{{.ID}}".to_string(),
        (None, false) if args.size => {
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}".into()
        }
        (None, false) => {
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".into()
        }
    };
    out!("{}", super::format::render_rows(&format, &rows, &header)?);
    Ok(0)
}
