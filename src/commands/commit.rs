//! `burrow commit`: a new image from a container's changes (its upper directory turned back
//! into an OCI layer, whiteouts included).

use crate::cli::GlobalArgs;
use crate::reference::Reference;
use crate::storage::CommitInfo;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The new layer holds the container's changes over its image: what it added or changed, and a \
whiteout for what it deleted. Names of one file (hard links) are written as the file and hard \
link entries to it, as docker writes them, so they stay one file in the new image.")]
pub struct Args {
    /// Author (e.g. "Jane Doe <jane@example.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
    /// STOPSIGNAL, USER, VOLUME, WORKDIR)
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message (the image's `.Comment` and its new history entry)
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause the running container while its changes are read (as `burrow pause` does, with
    /// SIGSTOP), so that the new layer is one moment's state of its files; it is unpaused
    /// afterwards, also when the commit fails. A container paused already stays paused.
    /// --pause=false reads the files while it runs
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    pub container: String,
    /// Name for the new image, REPOSITORY[:TAG]
    pub reference: Option<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let name = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let changes = super::import::parse_changes(&args.change)?;
    let containers = super::open_containers(global)?;
    let record = containers.find(&args.container)?;
    let store = super::open_store(global)?;
    let base = store.find_image(&record.image_id)?;
    // Taken before entering the user namespace below: from there the container's processes
    // are out of reach. Dropped (unpausing) once the layer is read, whatever the outcome.
    let paused = if args.pause {
        super::pause::PauseGuard::pause(&containers, &record)?
    } else {
        None
    };
    crate::storage::stop_point("commit-paused");
    // The upper directory holds files of the container's ids: read it in the namespace.
    let mapping = crate::userns::enter_current()?;
    let upper = super::container_fs::upper_dir(&containers, &record);
    std::fs::create_dir_all(&upper)?;
    // The layer is built in a pipe by a thread while the store hashes it; no fork follows.
    let (reader, writer) = std::io::pipe()?;
    let producer =
        std::thread::spawn(move || crate::storage::layer_tar::write_layer_tar(&upper, writer));
    let info = CommitInfo {
        author: args.author.clone(),
        message: args.message.clone(),
        created_by: format!("burrow commit {}", record.command.join(" ")),
    };
    let committed = store.commit_image(&base, reader, &changes, &info, name.as_slice());
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the layer writer panicked"))??;
    drop(paused);
    let image = committed?;
    // As docker's layer store, the new layer is kept unpacked, so its size is known (and the
    // first `run` of the image need not unpack it).
    let opts = crate::storage::UnpackOptions {
        ignore_chown_errors: mapping.kind == crate::userns::MappingKind::SingleId,
    };
    if let Err(e) = store.ensure_unpacked(&image, opts) {
        log::warn!("cannot unpack the layers of image {}: {e}", image.id);
    }
    outln!("{}", image.id);
    Ok(0)
}
