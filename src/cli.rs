//! The command line: global options, the command enum, and `main`'s error handling.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::exit;

#[derive(Debug, Parser)]
#[command(
    name = "burrow",
    version,
    about = "Rootless, daemonless containers with a docker-compatible command line",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Storage root (default: $XDG_DATA_HOME/burrow)
    #[arg(long, global = true, value_name = "DIR", env = "BURROW_ROOT")]
    pub root: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace
    #[arg(long, global = true, value_name = "LEVEL", default_value = "warn")]
    pub log_level: LogLevel,
    /// How container root filesystems are built from image layers (default: the
    /// `driver` in $XDG_CONFIG_HOME/burrow/storage.conf, else overlay)
    #[arg(long, global = true, value_enum, env = "BURROW_STORAGE_DRIVER")]
    pub storage_driver: Option<StorageDriverName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageDriverName {
    /// The kernel's overlayfs in burrow's user namespace; burrow's FUSE overlay where the
    /// kernel refuses
    Overlay,
    /// burrow's own FUSE overlay (same on-disk format as the kernel's)
    FuseOverlay,
    /// A plain copy of the image's layers per container: slow, works everywhere
    Vfs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new container
    Run(commands::run::Args),
    /// Create a container without starting it
    Create(commands::create::Args),
    /// Start one or more containers
    Start(commands::start::Args),
    /// Stop one or more running containers
    Stop(commands::stop::StopArgs),
    /// Restart one or more containers
    Restart(commands::stop::StopArgs),
    /// Send a signal to one or more running containers
    Kill(commands::stop::KillArgs),
    /// Fetch the logs of a container
    Logs(commands::logs::Args),
    /// Run a command in a running container
    Exec(commands::exec::Args),
    /// Show low-level information on containers
    Inspect(commands::inspect::Args),
    /// Block until containers stop, then print their exit codes
    Wait(commands::wait::Args),
    /// Rename a container
    Rename(commands::rename::Args),
    /// Display the running processes of a container
    Top(commands::top::Args),
    /// Pause all processes within containers
    Pause(commands::pause::Args),
    /// Unpause all processes within containers
    Unpause(commands::pause::Args),
    /// Manage containers
    Container(commands::container::Args),
    /// Manage volumes
    Volume(commands::volume::Args),
    /// Attach to a running container's terminal or output
    Attach(commands::attach::Args),
    /// Display a live stream of containers' resource usage
    Stats(commands::stats::Args),
    /// Create a new image from a container's changes
    Commit(commands::commit::Args),
    /// Copy files between a container and the host
    Cp(commands::cp::Args),
    /// Show the changes to a container's filesystem
    Diff(commands::diff::Args),
    /// Export a container's filesystem as a tar archive
    Export(commands::export::Args),
    /// Display system-wide information
    Info(commands::info::Args),
    /// Load images from a docker-archive or OCI archive
    Load(commands::load::Args),
    /// Create an image from a rootfs tarball
    Import(commands::import::Args),
    /// List images
    Images(commands::images::Args),
    /// Remove one or more containers
    Rm(commands::rm::Args),
    /// List containers
    Ps(commands::ps::Args),
    /// Download an image from a registry
    #[command(long_about = commands::pull::LONG_ABOUT)]
    Pull(commands::pull::Args),
    /// Upload an image to a registry
    Push(commands::push::Args),
    /// Log in to a registry
    #[command(long_about = commands::login::LONG_ABOUT)]
    Login(commands::login::Args),
    /// Log out from a registry
    Logout(commands::logout::Args),
    /// Search Docker Hub (or another registry) for images
    #[command(long_about = commands::search::LONG_ABOUT)]
    Search(commands::search::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(commands::tag::Args),
    /// Remove a name from an image
    Untag(commands::untag::Args),
    /// Run a command inside burrow's user namespace (as podman unshare)
    Unshare(commands::unshare::Args),
    /// Remove one or more images
    Rmi(commands::rmi::Args),
    /// Manage images
    Image(commands::image::Args),
    /// Show the history of an image
    History(commands::history::Args),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(commands::save::Args),
    /// Manage burrow: disk usage, pruning, reset
    System(commands::system::Args),
    /// Manage networks
    #[command(
        long_about = "Manage user-defined networks.\n\nContainers on one network reach each \
                      other by name, hostname and --network-alias through a block of their \
                      /etc/hosts that burrow keeps current as members come and go. While a \
                      network has members, a small process (burrow network-infra NAME) holds \
                      its network namespace: a bridge with the gateway address, one veth pair \
                      per member, and one slirp4netns whose tap is on the bridge (the subnet's \
                      .2 and .3, for the way out and DNS; none with --internal). It exits when \
                      the last member has gone. State: ROOT/networks/run/NAME/."
    )]
    Network(commands::network::Args),
    /// List port mappings of a container
    Port(commands::port::Args),
    /// Watch one detached container (started by burrow itself)
    #[command(hide = true)]
    ContainerMonitor(commands::monitor::Args),
    /// Hold one user-defined network while containers use it (started by burrow itself)
    #[command(hide = true)]
    NetworkInfra(commands::network_infra::Args),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            let printed = e.print();
            // `--help | head -1`: ended as any other output to a closed stdout (see `output`).
            if printed.is_err_and(|p| p.kind() == std::io::ErrorKind::BrokenPipe) && !e.use_stderr()
            {
                crate::output::end_by_sigpipe();
            }
            // Usage errors are burrow's own errors (docker: 125); help and version are not errors.
            return ExitCode::from(if e.use_stderr() {
                exit::BURROW_ERROR
            } else {
                0
            });
        }
    };
    crate::logging::init(cli.global.log_level.into());
    // docker's run and create exit 125 for whatever stops them; its other commands exit 1
    // when the daemon refuses (`container run/create` are told apart in `container`).
    let refusals_exit_1 = !matches!(
        cli.command,
        Command::Run(_) | Command::Create(_) | Command::Container(_)
    );
    let result = match cli.command {
        Command::Run(a) => commands::run::run(&cli.global, a),
        Command::Create(a) => commands::create::run(&cli.global, a),
        Command::Start(a) => commands::start::run(&cli.global, a),
        Command::Stop(a) => commands::stop::stop(&cli.global, a),
        Command::Restart(a) => commands::stop::restart(&cli.global, a),
        Command::Kill(a) => commands::stop::kill(&cli.global, a),
        Command::Logs(a) => commands::logs::run(&cli.global, a),
        Command::Exec(a) => commands::exec::run(&cli.global, a),
        Command::Inspect(a) => commands::inspect::run(&cli.global, a),
        Command::Wait(a) => commands::wait::run(&cli.global, a),
        Command::Rename(a) => commands::rename::run(&cli.global, a),
        Command::Top(a) => commands::top::run(&cli.global, a),
        Command::Pause(a) => commands::pause::pause(&cli.global, a),
        Command::Unpause(a) => commands::pause::unpause(&cli.global, a),
        Command::Container(a) => commands::container::run(&cli.global, a),
        Command::Volume(a) => commands::volume::run(&cli.global, a),
        Command::Attach(a) => commands::attach::run(&cli.global, a),
        Command::Stats(a) => commands::stats::run(&cli.global, a),
        Command::Commit(a) => commands::commit::run(&cli.global, a),
        Command::Cp(a) => commands::cp::run(&cli.global, a),
        Command::Diff(a) => commands::diff::run(&cli.global, a),
        Command::Export(a) => commands::export::run(&cli.global, a),
        Command::Info(a) => commands::info::run(&cli.global, a),
        Command::Load(a) => commands::load::run(&cli.global, a),
        Command::Import(a) => commands::import::run(&cli.global, a),
        Command::Images(a) => commands::images::run(&cli.global, a),
        Command::Rm(a) => commands::rm::run(&cli.global, a),
        Command::Ps(a) => commands::ps::run(&cli.global, a),
        Command::Pull(a) => commands::pull::run(&cli.global, a),
        Command::Push(a) => commands::push::run(&cli.global, a),
        Command::Login(a) => commands::login::run(&cli.global, a),
        Command::Logout(a) => commands::logout::run(&cli.global, a),
        Command::Search(a) => commands::search::run(&cli.global, a),
        Command::Tag(a) => commands::tag::run(&cli.global, a),
        Command::Untag(a) => commands::untag::run(&cli.global, a),
        Command::Unshare(a) => commands::unshare::run(&cli.global, a),
        Command::Rmi(a) => commands::rmi::run(&cli.global, a),
        Command::Image(a) => commands::image::run(&cli.global, a),
        Command::History(a) => commands::history::run(&cli.global, a),
        Command::Save(a) => commands::save::run(&cli.global, a),
        Command::System(a) => commands::system::run(&cli.global, a),
        Command::Network(a) => commands::network::run(&cli.global, a),
        Command::Port(a) => commands::port::run(&cli.global, a),
        Command::ContainerMonitor(a) => commands::monitor::run(&cli.global, a),
        Command::NetworkInfra(a) => commands::network_infra::run(&cli.global, a),
    };
    exit::finish(if refusals_exit_1 {
        exit::refusals(result)
    } else {
        result
    })
}
