//! `burrow top`: the processes of a running container, as host pids.

use crate::cli::GlobalArgs;

use super::format::table;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub container: String,
}

fn field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default()
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let record = containers.find(&args.container)?;
    // As docker: the processes of a paused container are listed too.
    super::lifecycle::refuse_unless_running(&record)?;
    let pid = nix::unistd::Pid::from_raw(record.pid);
    // Reading other processes' namespaces takes privilege over them: the container's.
    crate::runtime::join::enter_userns_of(pid)?;
    let mut rows = vec![["UID", "PID", "PPID", "CMD"].map(String::from).to_vec()];
    for p in super::pause::container_processes(record.pid)? {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let cmd = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        rows.push(vec![
            field(&status, "Uid:"),
            p.to_string(),
            field(&status, "PPid:"),
            cmd,
        ]);
    }
    out!("{}", table(&rows));
    Ok(0)
}
