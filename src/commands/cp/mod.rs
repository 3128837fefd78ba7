//! `burrow cp`: copy files between a container and the host. Every path in the container is
//! resolved inside its root filesystem (`RESOLVE_IN_ROOT`), and every file is created
//! relative to a directory descriptor without following a link, so nothing in the container
//! leads the copy out of it.

mod resolve;
pub(super) mod tar_out;
mod untar;
mod writable;

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::exit::{refuse, refused};
use crate::runtime::copy::{Owners, copy_dir_contents, copy_entry};
use crate::storage::safe_fs;
use resolve::Entry;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Paths in the container are resolved inside its root filesystem: a symbolic link there, even an \
absolute one, never leads out of it. A destination that is a link is written through, to the \
link's target inside the container; links met inside a copied tree are replaced, not followed. \
SRC_PATH ending in /. copies the directory's contents rather than the directory. A missing \
DEST_PATH is created (a file copied to a missing DIR/ is refused, as is a missing parent \
directory); a tar stream from STDIN unpacks into an existing directory only. Inside a copied \
tree, a directory and a non-directory never replace each other. A path under a volume or \
bind mount is the mount's, running or not: a stopped container's are mounted while burrow \
copies, as docker's daemon does (not its tmpfs mounts: their paths are its own directories). \
A copy into a container created with --read-only (\"container rootfs is marked read-only\") \
or into a volume or bind mount it has read-only (\"mounted volume is marked read-only\") is \
refused; as docker, burrow judges the directory the copy lands in, so a writable volume under \
a read-only root takes copies. Without -a, copied files belong to root in the container, or \
to you on the host. What docker refuses exits 1, as docker's does; burrow's own failures \
(storage, namespaces, mounts) exit 125.")]
pub struct Args {
    /// Keep the owners (uid/gid) of the copied files
    #[arg(short, long)]
    pub archive: bool,
    /// Follow a symbolic link given as the source
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// CONTAINER:SRC_PATH, host path, or - for a tar stream on STDIN
    pub source: String,
    /// CONTAINER:DEST_PATH, host path, or - for a tar stream on STDOUT
    pub destination: String,
}

/// How a resolved source lands on a resolved destination.
struct Placement<'a> {
    owners: Owners,
    /// SRC_PATH ended in `/.`: a directory's contents, not the directory.
    contents_only: bool,
    /// DEST_PATH ended in `/`: it must be an existing directory.
    dest_is_dir: bool,
    /// The source's name, which it keeps when copied into a directory.
    name: &'a std::ffi::CStr,
    /// For messages.
    dest_shown: &'a str,
    /// Copying into this container: the directory the copy lands in must be writable.
    into: Option<&'a writable::Container<'a>>,
}

impl Placement<'_> {
    fn check_writable(&self, dir: BorrowedFd) -> anyhow::Result<()> {
        self.into.map_or(Ok(()), |c| c.check(dir))
    }
}

/// docker cp's rules: into an existing directory under the source's own name; onto anything
/// else under the destination's name, replacing what is there; a directory never onto a file.
fn place(src: &Entry, dst: &Entry, how: &Placement) -> anyhow::Result<()> {
    let src_st = src
        .stat()?
        .context("the source disappeared while it was being copied")?;
    let src_is_dir = safe_fs::is_dir(&src_st);
    let copied = match dst.stat()? {
        Some(st) if safe_fs::is_dir(&st) => {
            let into = dst.open_dir()?;
            how.check_writable(into.as_fd())?;
            if how.contents_only && src_is_dir {
                copy_dir_contents(src.open_dir()?.as_fd(), into.as_fd(), how.owners)
            } else {
                copy_entry(
                    src.dir.as_fd(),
                    &src.name,
                    into.as_fd(),
                    how.name,
                    how.owners,
                )
            }
        }
        Some(_) if how.dest_is_dir => anyhow::bail!("{} is not a directory", how.dest_shown),
        // docker's words, and what it adds for the user.
        Some(_) if src_is_dir => anyhow::bail!(
            "cannot copy directory: {} exists and is not a directory",
            how.dest_shown
        ),
        // docker's words; a directory is copied to the new name all the same.
        None if how.dest_is_dir && !src_is_dir => anyhow::bail!(
            "no such directory: {}: make it first, or name the file without a trailing /",
            how.dest_shown
        ),
        _ => {
            how.check_writable(dst.dir.as_fd())?;
            copy_entry(
                src.dir.as_fd(),
                &src.name,
                dst.dir.as_fd(),
                &dst.name,
                how.owners,
            )
        }
    };
    copied.with_context(|| format!("cannot copy to {}", how.dest_shown))
}

fn owners(args: &Args) -> Owners {
    if args.archive {
        Owners::Keep
    } else {
        // Root of the user namespace burrow is in: the container's root when copying in,
        // the calling user when copying out, as docker does.
        Owners::Set(0, 0)
    }
}

fn contents_only(path: &str) -> bool {
    path == "." || path.ends_with("/.")
}

fn host_root() -> anyhow::Result<OwnedFd> {
    Ok(std::fs::File::open("/")
        .context("cannot open the host's /")?
        .into())
}

/// Exit codes as docker's: what its daemon or CLI would refuse (a container or file that is
/// not there, a copy its rules forbid, a file that cannot be read or written) exits 1; only
/// reaching the container's files (storage, namespaces, mounts) is burrow's own failure.
pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    use super::container_fs::split_container_path;
    match (
        split_container_path(&args.source),
        split_container_path(&args.destination),
    ) {
        (Some((c, src)), None) => copy_out(global, &args, c, src),
        (None, Some((c, dst))) => copy_in(global, &args, c, dst),
        (Some(_), Some(_)) => Err(refused(
            "copying between containers is not supported: copy to the host, then from it",
        )),
        (None, None) => Err(refused(
            "must specify at least one container source: CONTAINER:PATH on one side",
        )),
    }
}

fn copy_out(global: &GlobalArgs, args: &Args, c: &str, src: &Path) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let record = containers.find(c)?;
    let root = super::container_fs::open_rootfs(global, &containers, &record)?;
    let rootfd: OwnedFd = std::fs::File::open(&root.path)?.into();
    copy_from(rootfd.as_fd(), args, c, src).map_err(refuse)?;
    Ok(0)
}

fn copy_from(root: BorrowedFd, args: &Args, c: &str, src: &Path) -> anyhow::Result<()> {
    let not_found = || {
        refused(format!(
            "Could not find the file {} in container {c}",
            src.display()
        ))
    };
    let entry = match resolve::in_root(root, src, args.follow_link) {
        Ok(entry) => entry,
        Err(e) if is_missing(&e) => return Err(not_found()),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot reach {} in container {c}", src.display())));
        }
    };
    if entry.stat()?.is_none() {
        return Err(not_found());
    }
    let name = src
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "root".into());
    if args.destination == "-" {
        return write_tar(&entry, &name);
    }
    let dest = std::path::absolute(&args.destination)?;
    let host = host_root()?;
    let dst = resolve::in_root(host.as_fd(), &dest, true).map_err(|e| {
        let parent = dest.parent().unwrap_or(Path::new("/"));
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "invalid output path: directory \"{}\" does not exist",
                parent.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot reach {}", dest.display()))
        }
    })?;
    let name = safe_fs::cstring(name.as_encoded_bytes())?;
    place(
        &entry,
        &dst,
        &Placement {
            owners: owners(args),
            contents_only: contents_only(&src.to_string_lossy()),
            dest_is_dir: args.destination.ends_with('/'),
            name: &name,
            dest_shown: &args.destination,
            into: None,
        },
    )
}

/// A missing path, or one going through a file: what docker reports as not found.
fn is_missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// `cp CONTAINER:PATH -`: a tar stream of the entry on stdout.
fn write_tar(entry: &Entry, name: &std::ffi::OsStr) -> anyhow::Result<()> {
    let mut b = tar::Builder::new(std::io::BufWriter::new(std::io::stdout().lock()));
    tar_out::write(&mut b, entry.dir.as_fd(), &entry.name, Path::new(name))?;
    b.into_inner()?.flush()?;
    Ok(())
}

fn copy_in(global: &GlobalArgs, args: &Args, c: &str, dst: &Path) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let record = containers.find(c)?;
    // The host side is resolved before entering the container's namespaces.
    let src = if args.source == "-" {
        None
    } else {
        Some(host_source(args).map_err(refuse)?)
    };
    let read_only_root = super::lifecycle::create_args_of(&record)?.read_only;
    let root = super::container_fs::open_rootfs(global, &containers, &record)?;
    let rootfd: OwnedFd = std::fs::File::open(&root.path)?.into();
    let into = writable::Container {
        root: rootfd.as_fd(),
        read_only_root,
        name: c,
    };
    match src {
        None => unpack_stdin(&into, args, dst),
        Some((src, src_path)) => copy_to(&into, args, dst, &src, &src_path),
    }
    .map_err(refuse)?;
    Ok(0)
}

/// The host source and its absolute path.
fn host_source(args: &Args) -> anyhow::Result<(Entry, std::path::PathBuf)> {
    let mut path = std::path::absolute(&args.source)?;
    let not_found = |path: &Path| format!("could not find the file {} on the host", path.display());
    if args.follow_link {
        path = std::fs::canonicalize(&path).with_context(|| not_found(&path))?;
    }
    let host = host_root()?;
    let entry = resolve::in_root(host.as_fd(), &path, false).with_context(|| not_found(&path))?;
    if entry.stat()?.is_none() {
        anyhow::bail!(not_found(&path));
    }
    Ok((entry, path))
}

/// `cp - CONTAINER:DIR`: a tar stream unpacks into an existing directory only (a link to one
/// is followed).
fn unpack_stdin(into: &writable::Container, args: &Args, dst: &Path) -> anyhow::Result<()> {
    let c = into.name;
    let dir = resolve::in_root(into.root, dst, true)
        .and_then(|e| e.open_dir())
        .map_err(|_| {
            refused(format!(
                "destination \"{c}:{}\" must be a directory",
                dst.display()
            ))
        })?;
    into.check(dir.as_fd())?;
    untar::unpack(std::io::stdin().lock(), dir.as_fd(), owners(args))
        .context("cannot unpack the tar stream from stdin")
}

fn copy_to(
    into: &writable::Container,
    args: &Args,
    dst: &Path,
    src: &Entry,
    src_path: &Path,
) -> anyhow::Result<()> {
    let c = into.name;
    // docker names the directory it would have unpacked into.
    let parent = Path::new("/").join(dst.parent().unwrap_or(Path::new("/")));
    let dest = resolve::in_root(into.root, dst, true).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!(
            "Could not find the file {} in container {c}",
            parent.display()
        ),
        std::io::ErrorKind::NotADirectory => anyhow::anyhow!(
            "extraction point {} in container {c} is not a directory",
            parent.display()
        ),
        _ => anyhow::Error::new(e)
            .context(format!("cannot reach {} in container {c}", dst.display())),
    })?;
    let name = src_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "root".into());
    let name = safe_fs::cstring(name.as_encoded_bytes())?;
    place(
        src,
        &dest,
        &Placement {
            owners: owners(args),
            contents_only: contents_only(&args.source),
            dest_is_dir: args.destination.ends_with('/'),
            name: &name,
            dest_shown: &format!("{}:{}", c, dst.display()),
            into: Some(into),
        },
    )
}
