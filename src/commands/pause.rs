//! `burrow pause` / `unpause`: freeze a container with the cgroup v2 freezer where burrow has a
//! delegated cgroup. burrow does not place containers in cgroups of their own yet, so it says
//! so instead of pretending (a SIGSTOP would be visible to, and undone by, the container).

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn run(_global: &GlobalArgs, _args: Args) -> anyhow::Result<u8> {
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let why = if v2 {
        "burrow does not put containers in a delegated cgroup yet"
    } else {
        "this system has no cgroup v2 hierarchy (cgroups v1/hybrid), so there is no freezer a rootless user can use"
    };
    anyhow::bail!("pause and unpause need the cgroup v2 freezer: {why}")
}
