//! `burrow ps`: list containers.

use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, Status};

use super::format::{ago, human_duration, seconds_since, table};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
}

fn status_text(r: &ContainerRecord) -> String {
    match r.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}",
            human_duration(r.started_at.as_deref().and_then(seconds_since).unwrap_or(0))
        ),
        Status::Paused => format!(
            "Up {} (Paused)",
            human_duration(r.started_at.as_deref().and_then(seconds_since).unwrap_or(0))
        ),
        Status::Exited => format!("Exited ({}) {}", r.exit_code, ago(r.finished_at.as_deref())),
    }
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let list: Vec<ContainerRecord> = containers
        .list()?
        .into_iter()
        .filter(|r| args.all || r.status == Status::Running)
        .collect();
    let id = |r: &ContainerRecord| {
        if args.no_trunc {
            r.id.clone()
        } else {
            r.id[..12].to_string()
        }
    };
    if args.quiet {
        for r in &list {
            println!("{}", id(r));
        }
        return Ok(0);
    }
    let mut rows = vec![
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
            .map(String::from)
            .to_vec(),
    ];
    for r in &list {
        let mut command = r.command.join(" ");
        if !args.no_trunc && command.chars().count() > 20 {
            command = format!("{}…", command.chars().take(19).collect::<String>());
        }
        rows.push(vec![
            id(r),
            r.image.clone(),
            format!("\"{command}\""),
            ago(Some(&r.created)),
            status_text(r),
            String::new(),
            r.name.clone(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(0)
}
