//! `burrow load`: load images from a docker-archive or OCI archive (file or stdin).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::reference::Reference;
use crate::storage::{ImageRecord, Store, UnpackOptions};
use crate::userns::MappingKind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read from a tar archive file instead of STDIN
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

/// Unpack the layers now, so the first `run` need not (it needs the user namespace).
pub fn unpack_now(store: &Store, images: &[ImageRecord]) -> anyhow::Result<()> {
    let mapping = crate::userns::enter_current()?;
    let opts = UnpackOptions {
        ignore_chown_errors: mapping.kind == MappingKind::SingleId,
    };
    for image in images {
        store.ensure_unpacked(image, opts)?;
    }
    Ok(())
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let reader: Box<dyn Read> = match &args.input {
        Some(path) => Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => {
            if crate::runtime::pty::is_terminal(0) {
                anyhow::bail!(
                    "requested load from stdin, but stdin is a terminal: use -i FILE or pipe an archive"
                );
            }
            Box::new(std::io::stdin().lock())
        }
    };
    let images = store
        .load_archive(reader)
        .context("cannot load the archive")?;
    if !args.quiet {
        for image in &images {
            if image.names.is_empty() {
                outln!("Loaded image ID: {}", image.id);
            }
            for name in &image.names {
                let shown = Reference::parse(name)
                    .map(|r| r.familiar())
                    .unwrap_or(name.clone());
                outln!("Loaded image: {shown}");
            }
        }
    }
    unpack_now(&store, &images)?;
    Ok(0)
}
