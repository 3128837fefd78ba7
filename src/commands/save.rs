//! `burrow save` (= `image save`): write images to a docker-archive (default), an OCI
//! archive or an OCI layout directory.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::cli::GlobalArgs;
use crate::reference::Reference;
use crate::storage::{ArchiveFormat, ImageRecord, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write to a file (a directory for oci-dir) instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Archive format
    #[arg(long, value_enum, default_value = "docker-archive")]
    pub format: ArchiveFormat,
    /// Images to save: names, ids or digests
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// The images and, for each, the names it is saved under: the names given (an image given by
/// id is saved without names, as docker does).
pub fn resolve(store: &Store, args: &[String]) -> anyhow::Result<Vec<(ImageRecord, Vec<String>)>> {
    let mut items: Vec<(ImageRecord, Vec<String>)> = Vec::new();
    for arg in args {
        let image = store.find_image(arg).map_err(|e| match e {
            crate::storage::StorageError::ImageNotFound(_) => {
                anyhow::anyhow!("No such image: {arg}")
            }
            other => other.into(),
        })?;
        let name = Reference::parse(arg)
            .ok()
            .filter(|r| r.digest.is_none())
            .map(|r| r.to_string())
            .filter(|n| image.names.contains(n));
        let pos = match items.iter().position(|(i, _)| i.id == image.id) {
            Some(pos) => pos,
            None => {
                items.push((image, Vec::new()));
                items.len() - 1
            }
        };
        if let Some(name) = name
            && !items[pos].1.contains(&name)
        {
            items[pos].1.push(name);
        }
    }
    Ok(items)
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let items = resolve(&store, &args.images)?;
    if args.format == ArchiveFormat::OciDir {
        let Some(dir) = &args.output else {
            bail!("--format oci-dir needs -o DIRECTORY");
        };
        store
            .save_oci_dir(&items, dir)
            .with_context(|| format!("cannot save to {}", dir.display()))?;
        return Ok(0);
    }
    match &args.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = dir.join(format!(
                ".{}.burrow-{}",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                std::process::id()
            ));
            let result = (|| -> anyhow::Result<()> {
                let file = std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
                store.save_archive(&items, args.format, &mut out)?;
                out.flush()?;
                out.get_ref().sync_all()?;
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(())
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result?;
        }
        None => {
            if crate::runtime::pty::is_terminal(1) {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            store.save_archive(
                &items,
                args.format,
                std::io::BufWriter::with_capacity(1 << 20, crate::output::Stdout),
            )?;
        }
    }
    Ok(0)
}
