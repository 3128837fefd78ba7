//! `burrow container ...`: docker's management-command spelling of the container commands.

use clap::Subcommand;

use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, ContainerStore, Status};

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
    /// Pause all processes within containers
    Pause(super::pause::Args),
    /// Unpause all processes within containers
    Unpause(super::pause::Args),
    /// List port mappings of a container
    Port(super::port::Args),
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
    crate::exit::refusals(match args.command {
        // As docker's: 125 for whatever stops them.
        ContainerCommand::Create(a) => return super::create::run(global, a),
        ContainerCommand::Run(a) => return super::run::run(global, a),
        ContainerCommand::Ls(a) => super::ps::run(global, a),
        ContainerCommand::Start(a) => super::start::run(global, a),
        ContainerCommand::Stop(a) => super::stop::stop(global, a),
        ContainerCommand::Restart(a) => super::stop::restart(global, a),
        ContainerCommand::Kill(a) => super::stop::kill(global, a),
        ContainerCommand::Rm(a) => super::rm::run(global, a),
        ContainerCommand::Logs(a) => super::logs::run(global, a),
        ContainerCommand::Exec(a) => super::exec::run(global, a),
        ContainerCommand::Inspect(mut a) => {
            a.kind.get_or_insert_with(|| "container".into());
            super::inspect::run(global, a)
        }
        ContainerCommand::Wait(a) => super::wait::run(global, a),
        ContainerCommand::Rename(a) => super::rename::run(global, a),
        ContainerCommand::Top(a) => super::top::run(global, a),
        ContainerCommand::Pause(a) => super::pause::pause(global, a),
        ContainerCommand::Unpause(a) => super::pause::unpause(global, a),
        ContainerCommand::Port(a) => super::port::run(global, a),
        ContainerCommand::Prune(a) => prune(global, a),
    })
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
    outln!("Deleted Containers:");
    if !stopped.is_empty() || containers.has_leftovers() {
        crate::userns::enter_current()?;
        containers.sweep_leftovers()?;
    }
    for r in stopped {
        containers.remove(&r)?;
        outln!("{}", r.id);
    }
    Ok(0)
}

/// An `--rm` container whose burrow was killed (a foreground `run` killed with SIGKILL): it
/// exited, nobody holds it, and its process is gone. docker's daemon would have removed it.
pub fn is_abandoned(containers: &ContainerStore, r: &ContainerRecord) -> bool {
    r.auto_remove
        && r.status == Status::Exited
        && !containers.is_locked(&r.id)
        && (r.pid <= 0 || matches!(super::pause::process_state(r.pid), None | Some('Z' | 'X')))
}

/// Finish what killed burrow processes left: remove the `abandoned` `--rm` containers (with
/// their anonymous volumes), and the directories of interrupted removals. Deleting a
/// container's files needs burrow's user namespace: a child enters it, the caller stays
/// outside. Returns whether it all went.
pub fn clean_up(
    global: &GlobalArgs,
    containers: &ContainerStore,
    abandoned: &[ContainerRecord],
) -> bool {
    if abandoned.is_empty() && !containers.has_leftovers() {
        return true;
    }
    if thread_count() > 1 {
        log::debug!("not cleaning up: forking with threads alive is unsafe");
        return false;
    }
    // SAFETY: single-threaded (checked above); the child only removes files and exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let mut ok = crate::userns::enter_current().is_ok();
            for r in abandoned {
                match containers.remove(r) {
                    Ok(()) => super::volume::remove_anonymous(global, &r.mounts),
                    Err(e) => {
                        log::warn!("cannot remove container {}: {e}", r.name);
                        ok = false;
                    }
                }
            }
            if let Err(e) = containers.sweep_leftovers() {
                log::warn!("{e}");
                ok = false;
            }
            // SAFETY: leave the forked copy without running destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => matches!(
            nix::sys::wait::waitpid(child, None),
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0))
        ),
        Err(e) => {
            log::warn!("cannot clean up: {e}");
            false
        }
    }
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count())
}
