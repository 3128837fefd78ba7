//! `burrow push`: upload an image to a registry.

use anyhow::Context as _;

use crate::cli::GlobalArgs;
use crate::reference::Reference;
use crate::registry::cli_args::RegistryArgs;
use crate::registry::progress::Progress;
use crate::registry::push::{PushOptions, push};
use crate::storage::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Local image to push (its name says where, unless DESTINATION is given)
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Where to push it: REGISTRY/REPOSITORY[:TAG] (podman's second argument)
    #[arg(value_name = "DESTINATION")]
    pub destination: Option<String>,
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the manifest digest to this file
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<std::path::PathBuf>,
    /// Parallel blob uploads
    #[arg(long, value_name = "N", default_value_t = 4, hide = true)]
    pub jobs: usize,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let opts = PushOptions {
        client: args.registry.client_options(),
        jobs: args.jobs,
        chunk_size: 0,
    };
    let progress = Progress::new(args.quiet);
    let pushed = push(
        &store,
        &args.image,
        args.destination.as_deref(),
        &opts,
        &progress,
    )?;
    drop(progress);
    record_repo_digest(&store, &args.image, &pushed.reference, &pushed.digest);
    if let Some(f) = &args.digestfile {
        std::fs::write(f, &pushed.digest).with_context(|| format!("writing {}", f.display()))?;
    }
    if !args.quiet {
        let tag = pushed
            .reference
            .tag
            .clone()
            .unwrap_or_else(|| pushed.digest.clone());
        outln!("{tag}: digest: {} size: {}", pushed.digest, pushed.size);
    }
    Ok(0)
}

/// The registry now knows the image by `digest`: record `destination@digest` as its
/// RepoDigest, as docker does after a push. The push itself succeeded, so failing to record
/// it (the image removed meanwhile) is only a warning.
fn record_repo_digest(store: &Store, image: &str, destination: &Reference, digest: &str) {
    let recorded = store.find_image(image).and_then(|image| {
        // What was pushed is the stored manifest, byte for byte.
        if image.manifest_digest.to_string() != digest {
            return Ok(());
        }
        let by_digest = Reference {
            tag: None,
            digest: Some(digest.to_string()),
            ..destination.clone()
        };
        store
            .add_image(&image.manifest_digest, &[by_digest])
            .map(drop)
    });
    if let Err(e) = recorded {
        log::warn!("cannot record {}@{digest}: {e}", destination.name());
    }
}
