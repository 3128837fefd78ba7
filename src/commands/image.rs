//! `burrow image ...`: the image command group (docker's management command), with
//! `image inspect` and `image prune` here and the others shared with their top-level forms.

use serde_json::{Value, json};

use crate::cli::GlobalArgs;
use crate::containers::ContainerRecord;
use crate::storage::{ImageRecord, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(super::images::Args),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(super::rmi::Args),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Show the history of an image
    History(super::history::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(super::tag::Args),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(super::save::Args),
    /// Load images from a docker-archive or OCI archive
    Load(super::load::Args),
    /// Create an image from a rootfs tarball
    Import(super::import::Args),
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template ({{.Size}}: the unpacked size in bytes,
    /// the sum over the image's layers, as docker; {{.RepoDigests}}: REPOSITORY@DIGEST of the
    /// manifest a registry has, for an image pulled or pushed, [] for one loaded, imported or
    /// committed, as docker)
    #[arg(short, long)]
    pub format: Option<String>,
    /// Images: names, ids or digests
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    match args.command {
        ImageCommand::Ls(a) => super::images::run(global, a),
        ImageCommand::Rm(a) => super::rmi::run(global, a),
        ImageCommand::Inspect(a) => inspect(global, a),
        ImageCommand::Prune(a) => prune(global, a),
        ImageCommand::History(a) => super::history::run(global, a),
        ImageCommand::Tag(a) => super::tag::run(global, a),
        ImageCommand::Save(a) => super::save::run(global, a),
        ImageCommand::Load(a) => super::load::run(global, a),
        ImageCommand::Import(a) => super::import::run(global, a),
    }
}

/// `Config` of docker's `image inspect`, fields in docker's order.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    hostname: String,
    domainname: String,
    user: String,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    #[serde(skip_serializing_if = "Value::is_null")]
    exposed_ports: Value,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    env: Value,
    cmd: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    healthcheck: Value,
    image: String,
    volumes: Value,
    working_dir: String,
    entrypoint: Value,
    on_build: Value,
    labels: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    stop_signal: Value,
}

/// docker's `image inspect` document, fields in docker's order.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectDoc {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    docker_version: String,
    author: String,
    config: InspectConfig,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    os_version: Option<String>,
    size: u64,
    #[serde(rename = "GraphDriver")]
    graph_driver: Value,
    #[serde(rename = "RootFS")]
    root_fs: Value,
    metadata: Value,
}

/// docker's `image inspect` document for one image.
pub fn inspect_doc(store: &Store, image: &ImageRecord) -> anyhow::Result<InspectDoc> {
    let config: Value = serde_json::from_slice(&store.read_blob(&image.id)?)?;
    let c = &config["config"];
    let field = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let doc = InspectDoc {
        id: image.id.to_string(),
        repo_tags: image
            .names
            .iter()
            .map(|n| super::rmi::familiar(n))
            .collect(),
        repo_digests: image
            .repo_digests
            .iter()
            .map(|n| super::rmi::familiar(n))
            .collect(),
        parent: String::new(),
        comment: text(&config["comment"]),
        created: config["created"]
            .as_str()
            .unwrap_or("0001-01-01T00:00:00Z")
            .to_string(),
        docker_version: text(&config["docker_version"]),
        author: text(&config["author"]),
        config: InspectConfig {
            hostname: String::new(),
            domainname: String::new(),
            user: text(&c["User"]),
            attach_stdin: false,
            attach_stdout: false,
            attach_stderr: false,
            exposed_ports: field("ExposedPorts"),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            env: field("Env"),
            cmd: field("Cmd"),
            healthcheck: field("Healthcheck"),
            image: String::new(),
            volumes: field("Volumes"),
            working_dir: text(&c["WorkingDir"]),
            entrypoint: field("Entrypoint"),
            on_build: field("OnBuild"),
            labels: field("Labels"),
            stop_signal: field("StopSignal"),
        },
        architecture: text(&config["architecture"]),
        variant: config["variant"].as_str().map(String::from),
        os: text(&config["os"]),
        os_version: config["os.version"].as_str().map(String::from),
        size: super::image_size::LayerSizes::of(store, std::slice::from_ref(image))?.image(image),
        graph_driver: json!({ "Data": null, "Name": "overlay" }),
        root_fs: json!({
            "Type": config["rootfs"]["type"].as_str().unwrap_or("layers"),
            "Layers": image.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        metadata: json!({ "LastTagTime": "0001-01-01T00:00:00Z" }),
    };
    Ok(doc)
}

/// JSON indented with four spaces, as docker prints it.
pub fn to_docker_json(v: &impl serde::Serialize) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(v, &mut ser).expect("serialising a Value");
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn inspect(global: &GlobalArgs, args: InspectArgs) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let mut docs = Vec::new();
    let mut failed = false;
    for arg in &args.images {
        match store.find_image(arg) {
            Ok(image) => docs.push(inspect_doc(&store, &image)?),
            Err(crate::storage::StorageError::ImageNotFound(_)) => {
                errln!("burrow: No such image: {arg}");
                failed = true;
            }
            Err(e) => {
                errln!("burrow: {e}");
                failed = true;
            }
        }
    }
    match &args.format {
        Some(format) => {
            for doc in &docs {
                let value = serde_json::to_value(doc)?;
                outln!("{}", super::format::render_template(format, &value)?);
            }
        }
        None => outln!("{}", to_docker_json(&docs)),
    }
    Ok(if failed { 1 } else { 0 })
}

/// Ask on the terminal; without one, refuse (the caller says to use -f).
pub fn confirm(warning: &str) -> anyhow::Result<bool> {
    if !crate::runtime::pty::is_terminal(0) {
        return Err(crate::exit::ExitError::new(
            1,
            "refusing to remove anything without confirmation: stdin is not a terminal; use -f \
             to skip the prompt",
        )
        .into());
    }
    out!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Images `prune` removes: dangling ones (no names), or with `all` every image no container
/// uses.
pub fn prunable(
    store: &Store,
    containers: &[ContainerRecord],
    all: bool,
) -> anyhow::Result<Vec<ImageRecord>> {
    let used: Vec<&str> = containers.iter().map(|c| c.image_id.as_str()).collect();
    let mut out: Vec<ImageRecord> = Vec::new();
    for image in store.images()? {
        if used.contains(&image.id.to_string().as_str()) || out.iter().any(|i| i.id == image.id) {
            continue;
        }
        if all || image.names.is_empty() {
            out.push(image);
        }
    }
    Ok(out)
}

/// Remove the prunable images and collect; prints docker's lines, returns the bytes freed.
pub fn prune_images(
    store: &Store,
    containers: &[ContainerRecord],
    all: bool,
) -> anyhow::Result<u64> {
    let images = prunable(store, containers, all)?;
    let mut lines = Vec::new();
    let mut manifests = Vec::new();
    for image in &images {
        for name in &image.names {
            lines.push(format!("untagged: {}", super::rmi::familiar(name)));
        }
        lines.push(format!("deleted: {}", image.id));
        manifests.extend(store.manifests_of(&image.id)?);
    }
    if !manifests.is_empty() {
        store.remove_manifests(&manifests)?;
    }
    crate::storage::crash_point("prune-after-index");
    let report = super::rmi::collect(store, containers, false)?;
    for layer in &report.layers {
        lines.push(format!("deleted: {layer}"));
    }
    if !images.is_empty() {
        outln!("Deleted Images:");
        for l in &lines {
            outln!("{l}");
        }
        outln!();
    }
    Ok(report.reclaimed)
}

fn prune(global: &GlobalArgs, args: PruneArgs) -> anyhow::Result<u8> {
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !args.force && !confirm(warning)? {
        return Ok(0);
    }
    let store = super::open_store(global)?;
    let containers = super::open_containers(global)?.list()?;
    let reclaimed = prune_images(&store, &containers, args.all)?;
    outln!(
        "Total reclaimed space: {}",
        super::format::human_size(reclaimed)
    );
    Ok(0)
}
