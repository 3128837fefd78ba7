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
    Pull(commands::pull::Args),
    /// Upload an image to a registry
    Push(commands::push::Args),
    /// Log in to a registry
    Login(commands::login::Args),
    /// Log out from a registry
    Logout(commands::logout::Args),
    /// Search Docker Hub (or another registry) for images
    Search(commands::search::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(commands::tag::Args),
    /// Remove a name from an image
    Untag(commands::untag::Args),
    /// Run a command inside burrow's user namespace (as podman unshare)
    Unshare(commands::unshare::Args),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse_from(std::env::args_os());
    crate::logging::init(cli.global.log_level.into());
    let result = match cli.command {
        Command::Run(a) => commands::run::run(&cli.global, a),
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
    };
    exit::finish(result)
}
