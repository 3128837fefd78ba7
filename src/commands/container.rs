//! `burrow container ...`: docker's management-command spelling of the container commands.

use clap::Subcommand;

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ContainerCommand,
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(super::ps::Args),
    /// Create a container
    Create(super::create::Args),
    /// Run a command in a new container
    Run(super::run::Args),
    /// Start containers
    Start(super::start::Args),
    /// Stop containers
    Stop(super::stop::StopArgs),
    /// Restart containers
    Restart(super::stop::StopArgs),
    /// Send a signal to containers
    Kill(super::stop::KillArgs),
    /// Remove containers
    Rm(super::rm::Args),
    /// Show a container's logs
    Logs(super::logs::Args),
    /// Run a command in a running container
    Exec(super::exec::Args),
    /// Show containers in detail
    Inspect(super::inspect::Args),
    /// Wait for containers to stop and print their exit codes
    Wait(super::wait::Args),
    /// Rename a container
    Rename(super::rename::Args),
    /// Show a container's processes
    Top(super::top::Args),
    /// Remove all stopped containers
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    match args.command {
        ContainerCommand::Ls(a) => super::ps::run(global, a),
        ContainerCommand::Create(a) => super::create::run(global, a),
        ContainerCommand::Run(a) => super::run::run(global, a),
        ContainerCommand::Start(a) => super::start::run(global, a),
        ContainerCommand::Stop(a) => super::stop::stop(global, a),
        ContainerCommand::Restart(a) => super::stop::restart(global, a),
        ContainerCommand::Kill(a) => super::stop::kill(global, a),
        ContainerCommand::Rm(a) => super::rm::run(global, a),
        ContainerCommand::Logs(a) => super::logs::run(global, a),
        ContainerCommand::Exec(a) => super::exec::run(global, a),
        ContainerCommand::Inspect(a) => super::inspect::run(global, a),
        ContainerCommand::Wait(a) => super::wait::run(global, a),
        ContainerCommand::Rename(a) => super::rename::run(global, a),
        ContainerCommand::Top(a) => super::top::run(global, a),
        ContainerCommand::Prune(a) => prune(global, a),
    }
}

fn prune(global: &GlobalArgs, args: PruneArgs) -> anyhow::Result<u8> {
    if !args.force {
        if !crate::runtime::pty::is_terminal(0) {
            anyhow::bail!("container prune removes all stopped containers: confirm with -f");
        }
        eprint!(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") {
            return Ok(0);
        }
    }
    let containers = super::open_containers(global)?;
    let stopped: Vec<_> = containers
        .list()?
        .into_iter()
        .filter(|r| !containers.is_locked(&r.id))
        .collect();
    println!("Deleted Containers:");
    if !stopped.is_empty() {
        crate::userns::enter_current()?;
    }
    for r in stopped {
        containers.remove(&r)?;
        println!("{}", r.id);
    }
    Ok(0)
}
