//! `burrow run`: create a container from an image and run its command in the foreground.

use std::path::PathBuf;

use clap::ArgAction;

use crate::cli::GlobalArgs;
use crate::containers::{self, ContainerRecord, ContainerStore, Status};
use crate::runtime::process_config::{self, ImageProcess, ProcessOverrides};
use super::network_args::NetworkArgs;
use crate::netns::{NetworkAttachment, NetworkPlan};
use crate::runtime::{self, ContainerSpec, Hooks, RuntimeError, rootfs};
use crate::storage::{ImageRecord, UnpackOptions};
use crate::userns::{self, IdMapping, MappingKind};

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open and pass it to the container
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from burrow's environment)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file of KEY=VALUE lines
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID, with an optional group (user[:group])
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Additional groups to join
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Overwrite the image's default ENTRYPOINT
    #[arg(long, value_name = "COMMAND")]
    pub entrypoint: Option<String>,
    /// Container host name (default: the short container id)
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    #[command(flatten)]
    pub net: NetworkArgs,
    /// Image to run
    pub image: String,
    /// Command and arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let network = args.net.plan()?;
    let store = super::open_store(global)?;
    let image = store.find_image(&args.image).map_err(|e| match e {
        crate::storage::StorageError::ImageNotFound(_) => anyhow::anyhow!(
            "Unable to find image '{}' locally: load it with 'burrow load', 'burrow import' or \
             'burrow pull'",
            args.image
        ),
        other => other.into(),
    })?;
    let config = store.image_config(&image)?;
    let containers = super::open_containers(global)?;

    let id = containers::new_id();
    let hostname = args.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    let overrides = ProcessOverrides {
        entrypoint: args.entrypoint.clone(),
        command: args.command.clone(),
        env: args.env.clone(),
        env_files: args.env_file.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        tty: args.tty,
    };
    let process = process_config::merge(
        &ImageProcess::from_oci(config.config().as_ref()),
        &overrides,
        &hostname,
        &|k| std::env::var(k).ok(),
    )?;

    let mapping = userns::enter_current()?;
    let lower = store.ensure_unpacked(
        &image,
        UnpackOptions {
            ignore_chown_errors: mapping.kind == MappingKind::SingleId,
        },
    )?;

    let record = create_record(&containers, &args, &image, &id, &process.args)?;
    let dir = containers.dir_of(&id);
    let result = prepare_and_run(
        &containers,
        record,
        &dir,
        &mapping,
        ContainerParts {
            hostname,
            lower,
            process,
            network,
        },
        &args,
    );
    if args.rm
        && let Ok(r) = containers.find(&id)
        && let Err(e) = containers.remove(&r)
    {
        log::warn!("cannot remove container {}: {e}", &id[..12]);
    }
    match result {
        Ok(code) => Ok(code),
        Err(RuntimeError::Start(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}

fn create_record(
    containers: &ContainerStore,
    args: &Args,
    image: &ImageRecord,
    id: &str,
    command: &[String],
) -> anyhow::Result<ContainerRecord> {
    let mut record = ContainerRecord {
        id: id.to_string(),
        name: args.name.clone().unwrap_or_else(containers::generate_name),
        image: args.image.clone(),
        image_id: image.id.to_string(),
        command: command.to_vec(),
        created: containers::now_rfc3339(),
        auto_remove: args.rm,
        status: Status::Created,
        pid: 0,
        exit_code: 0,
        started_at: None,
        finished_at: None,
    };
    // A generated name may collide; a chosen one is the user's to change.
    let mut attempts = 0;
    loop {
        match containers.create(&record) {
            Ok(_) => return Ok(record),
            Err(containers::ContainerError::NameInUse(..)) if args.name.is_none() && attempts < 20 => {
                attempts += 1;
                record.name = format!("{}{}", containers::generate_name(), attempts);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

struct ContainerParts {
    hostname: String,
    lower: Vec<PathBuf>,
    process: runtime::ProcessConfig,
    network: NetworkPlan,
}

fn prepare_and_run(
    containers: &ContainerStore,
    record: ContainerRecord,
    dir: &std::path::Path,
    mapping: &IdMapping,
    parts: ContainerParts,
    args: &Args,
) -> Result<u8, RuntimeError> {
    let setup = || -> anyhow::Result<ContainerSpec> {
        for sub in ["upper", "work", "merged"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let etc_files =
            parts
                .network
                .write_etc_files(&dir.join("userdata"), &parts.hostname, &record.name)?;
        Ok(ContainerSpec {
            id: record.id.clone(),
            hostname: parts.hostname.clone(),
            lower: parts.lower.clone(),
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            ephemeral: args.rm,
            rootfs_driver: Box::new(rootfs::KernelOverlay),
            process: parts.process.clone(),
            group_add: args.group_add.clone(),
            tty: args.tty,
            interactive: args.interactive,
            network: parts.network.runtime_network(),
            etc_files,
            can_setgroups: mapping.can_setgroups(),
            tty_gid_mapped: mapping.host_gid(5).is_some(),
        })
    };
    let spec = setup().map_err(|e| {
        RuntimeError::Start(crate::exit::ExitError::new(
            crate::exit::BURROW_ERROR,
            format!("cannot prepare container: {e:#}"),
        ))
    })?;
    let _lock = containers.lock_running(&record.id).ok();
    let mut hooks = ForegroundHooks {
        containers,
        record: record.clone(),
        dir,
        network: &parts.network,
        attachment: None,
    };
    let result = runtime::run(&spec, &mut hooks);
    drop(hooks.attachment.take());
    let mut record = hooks.record;
    record.status = Status::Exited;
    record.finished_at = Some(containers::now_rfc3339());
    record.exit_code = match &result {
        Ok(code) => i32::from(*code),
        Err(RuntimeError::Start(e)) => i32::from(e.code),
        Err(_) => i32::from(crate::exit::BURROW_ERROR),
    };
    if !args.rm
        && let Err(e) = containers.save(&record)
    {
        log::warn!("{e}");
    }
    result
}

/// Attaches networking before the command starts and records the container as running.
struct ForegroundHooks<'a> {
    containers: &'a ContainerStore,
    record: ContainerRecord,
    dir: &'a std::path::Path,
    network: &'a NetworkPlan,
    attachment: Option<NetworkAttachment>,
}

impl Hooks for ForegroundHooks<'_> {
    fn before_start(&mut self, pid: nix::unistd::Pid) -> Result<(), String> {
        self.attachment = Some(self.network.attach(pid, self.dir).map_err(|e| e.to_string())?);
        Ok(())
    }

    fn started(&mut self, pid: nix::unistd::Pid) {
        self.record.status = Status::Running;
        self.record.pid = pid.as_raw();
        self.record.started_at = Some(containers::now_rfc3339());
        if let Err(e) = self.containers.save(&self.record) {
            log::warn!("{e}");
        }
    }
}
