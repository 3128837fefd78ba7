//! `burrow export`: a container's filesystem as a tar archive.

mod merged;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The archive holds the container's own filesystem, its changes over its image's layers, as \
docker's does: what is mounted in it (volumes, bind mounts, --tmpfs, /proc, /sys, /dev) is left \
out, their mount points kept as empty directories. Owners are those the container sees; names \
of one file (hard links) are written as the file and hard link entries to it.")]
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
        None => Box::new(crate::output::Stdout),
    };
    // The layer directories hold files of the container's ids: read them in the namespace.
    let mapping = crate::userns::enter_current()?;
    let layers = super::container_fs::layer_dirs(global, &containers, &record, mapping.kind)?;
    let layers: Vec<&std::path::Path> = layers.iter().map(|p| p.as_path()).collect();
    let mut tar = merged::MergedTar::new(std::io::BufWriter::with_capacity(1 << 20, out));
    tar.write_layers(&layers)?;
    tar.finish()?.flush()?;
    Ok(0)
}
