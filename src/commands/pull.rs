//! `burrow pull`: download an image from a registry.

use crate::cli::GlobalArgs;
use crate::registry::cli_args::RegistryArgs;
use crate::registry::progress::Progress;
use crate::registry::pull::{PullOptions, pull};
use crate::registry::tags::list_tags;
use crate::storage::Store;

/// `burrow pull --help`: what the command does beyond its one-line summary.
pub const LONG_ABOUT: &str = "Download an image from a registry.\n\n\
Short names (alpine, user/app) go through registries.conf (unqualified-search-registries, \
[aliases], mirrors) and default to docker.io. For a multi-platform image the entry for \
--platform (default: this host's) is pulled. Layers download in parallel and unpack while \
they download; each is named in the store only once its digest and diff id are checked. \
Layers already in the store are not fetched again, and concurrent pulls fetch each blob \
once.\n\n\
Credentials come from --authfile, else $REGISTRY_AUTH_FILE or \
$XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json and \
~/.docker/config.json (with its credential helpers). Plain HTTP is used only for \
localhost and 127.0.0.0/8, registries.conf insecure registries and --tls-verify=false; \
a registry's own CA goes in ~/.config/containers/certs.d/HOST:PORT/ca.crt or --cert-dir. \
Progress: live per-layer lines on a terminal, one line per layer otherwise, nothing with -q.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image to pull: NAME[:TAG], NAME@DIGEST or NAME:TAG@DIGEST
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Platform to pull from a multi-platform image (OS/ARCH[/VARIANT], e.g. linux/arm64)
    #[arg(long, value_name = "PLATFORM", env = "DOCKER_DEFAULT_PLATFORM")]
    pub platform: Option<String>,
    /// Print nothing but the image name
    #[arg(short, long)]
    pub quiet: bool,
    /// Pull every tag of the repository (IMAGE without a tag or digest)
    #[arg(short, long)]
    pub all_tags: bool,
    /// Parallel layer downloads
    #[arg(long, value_name = "N", default_value_t = crate::registry::pull::DEFAULT_JOBS, hide = true)]
    pub jobs: usize,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    // Entered before any download thread exists: each layer is then unpacked (which needs
    // the namespace) while it downloads.
    let mapping = crate::userns::enter_current()?;
    let opts = PullOptions {
        client: args.registry.client_options(),
        platform: args.platform.clone(),
        jobs: args.jobs,
        unpack: Some(crate::storage::UnpackOptions {
            ignore_chown_errors: mapping.kind == crate::userns::MappingKind::SingleId,
        }),
    };
    if args.all_tags {
        return pull_all_tags(&store, &args, &opts);
    }
    pull_one(&store, &args.image, &args, &opts)?;
    Ok(0)
}

fn pull_one(store: &Store, image: &str, args: &Args, opts: &PullOptions) -> anyhow::Result<()> {
    let progress = Progress::new(args.quiet);
    let pulled = pull(store, image, opts, &progress)?;
    drop(progress);
    if !args.quiet {
        outln!("Digest: {}", pulled.repo_digest);
        if pulled.downloaded {
            outln!(
                "Status: Downloaded newer image for {}",
                pulled.reference.familiar()
            );
        } else {
            outln!(
                "Status: Image is up to date for {}",
                pulled.reference.familiar()
            );
        }
    }
    outln!("{}", pulled.reference);
    Ok(())
}

/// `pull --all-tags`: every tag of the repository, one after the other (each pull fetches its
/// layers in parallel; layers the tags share are fetched once).
fn pull_all_tags(store: &Store, args: &Args, opts: &PullOptions) -> anyhow::Result<u8> {
    let last = args.image.rsplit('/').next().unwrap_or(&args.image);
    if last.contains(':') || last.contains('@') {
        anyhow::bail!(
            "{}: --all-tags pulls every tag of a repository: give its name without a tag or \
             digest",
            args.image
        );
    }
    let refs = list_tags(&args.image, &opts.client)?;
    if refs.is_empty() {
        anyhow::bail!("{}: the repository has no tags", args.image);
    }
    for r in refs {
        pull_one(store, &r.to_string(), args, opts)?;
    }
    Ok(0)
}
