//! `burrow exec`: run a command in a running container.

use crate::cli::GlobalArgs;
use crate::containers::Status;
use crate::exit::refused;
use crate::runtime::RuntimeError;
use crate::runtime::cgroups::Hierarchy;
use crate::runtime::exec_in::{ExecSpec, exec_in};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run the command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Username or UID (user[:group])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Give the command every capability (within burrow's user namespace)
    #[arg(long)]
    pub privileged: bool,
    pub container: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let record = containers.find(&args.container)?;
    // A process started now would run in a container whose other processes are stopped
    // (pause uses SIGSTOP, not a freezer that would hold it too).
    if record.status == Status::Paused {
        return Err(refused(format!(
            "Container {} is paused, unpause the container before exec",
            record.name
        )));
    }
    super::lifecycle::refuse_unless_running(&record)?;
    let base = record
        .process
        .clone()
        .unwrap_or_else(|| crate::runtime::ProcessConfig {
            args: Vec::new(),
            env: Vec::new(),
            cwd: "/".into(),
            user: String::new(),
        });
    let create = super::lifecycle::create_args_of(&record)?;
    let mut env: Vec<String> = base.env.clone();
    for kv in &args.env {
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (kv.clone(), std::env::var(kv).ok()),
        };
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key.as_str()));
        if let Some(v) = value {
            env.push(format!("{key}={v}"));
        }
    }
    let process = crate::runtime::ProcessConfig {
        args: args.command.clone(),
        env,
        cwd: args.workdir.clone().unwrap_or(base.cwd),
        user: args.user.clone().unwrap_or(base.user),
    };
    let spec = ExecSpec {
        process,
        group_add: create.group_add.clone(),
        tty: args.tty,
        interactive: args.interactive,
        detach: args.detach,
        can_setgroups: crate::userns::current_mapping()?.can_setgroups(),
        privileged: args.privileged,
        cgroup: std::fs::read_to_string(format!("/proc/{}/cgroup", record.pid))
            .ok()
            .and_then(|text| Hierarchy::system().container_cgroup(&text, &record.id)),
    };
    match exec_in(nix::unistd::Pid::from_raw(record.pid), &spec) {
        Ok(code) => Ok(code),
        Err(RuntimeError::Start(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}
