//! `burrow export`: a container's filesystem as a tar archive.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write to a file instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    pub container: String,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let record = containers.find(&args.container)?;
    if args.output.is_none() && crate::runtime::pty::is_terminal(1) {
        anyhow::bail!(
            "cowardly refusing to write a tar archive to a terminal: use -o FILE or redirect the output"
        );
    }
    // The output is opened before the namespaces change, as the caller's own file.
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let root = super::container_fs::open_rootfs(global, &containers, &record)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
    builder.follow_symlinks(false);
    for entry in std::fs::read_dir(&root)? {
        let entry = entry?;
        let name = entry.file_name();
        // Kernel filesystems are the runtime's, not the container's content.
        if matches!(name.to_str(), Some("proc" | "sys" | "dev")) {
            builder.append_dir(&name, entry.path())?;
            continue;
        }
        if entry.file_type()?.is_dir() {
            builder.append_dir_all(&name, entry.path())?;
        } else {
            builder.append_path_with_name(entry.path(), &name)?;
        }
    }
    builder.into_inner()?.flush()?;
    Ok(0)
}
