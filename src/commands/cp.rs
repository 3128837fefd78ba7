//! `burrow cp`: copy files between a container and the host. Every path in the container is
//! resolved inside its root filesystem (`RESOLVE_IN_ROOT`), never following a link out of it.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::safe_open::{Create, ensure_in_root, fd_path, open_in_root};

#[derive(Debug, clap::Args)]
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

fn copy_any(from: &Path, to: &Path, follow: bool) -> std::io::Result<()> {
    let meta = if follow {
        std::fs::metadata(from)?
    } else {
        std::fs::symlink_metadata(from)?
    };
    copy_with_meta(from, &meta, to)
}

fn copy_with_meta(from: &Path, meta: &std::fs::Metadata, to: &Path) -> std::io::Result<()> {
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        crate::runtime::copy::copy_tree(from, to)
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

enum FdKind {
    Symlink,
    Other,
}

fn fstat_path(fd: &std::os::fd::OwnedFd) -> std::io::Result<FdKind> {
    let st = nix::sys::stat::fstat(fd)?;
    Ok(if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        FdKind::Symlink
    } else {
        FdKind::Other
    })
}

/// `docker cp` naming: copying onto an existing directory puts the source inside it.
fn target_for(dest: &Path, source_name: &std::ffi::OsStr) -> PathBuf {
    if dest.is_dir() {
        dest.join(source_name)
    } else {
        dest.to_path_buf()
    }
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    use super::container_fs::split_container_path;
    let containers = super::open_containers(global)?;
    match (
        split_container_path(&args.source),
        split_container_path(&args.destination),
    ) {
        (Some((c, src)), None) => {
            let record = containers.find(c)?;
            let dest = PathBuf::from(&args.destination);
            let dest_abs = if args.destination == "-" {
                dest
            } else {
                std::path::absolute(&dest)?
            };
            let to_stdout = args.destination == "-";
            let stdout = std::io::stdout();
            let root = super::container_fs::open_rootfs(global, &containers, &record)?;
            let rootfd = std::fs::File::open(&root)?;
            let flags = if args.follow_link {
                libc::O_PATH
            } else {
                libc::O_PATH | libc::O_NOFOLLOW
            };
            let fd = open_in_root(rootfd.as_fd(), src, flags).with_context(|| {
                format!("could not find the file {} in container {c}", src.display())
            })?;
            let from = fd_path(&fd);
            // The descriptor is the resolved source itself: its own type decides, whatever
            // the magic link in /proc looks like.
            let own = fstat_path(&fd)?;
            let name = src
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| "root".into());
            if to_stdout {
                let mut b = tar::Builder::new(stdout.lock());
                b.follow_symlinks(false);
                // `from` is a magic link to the resolved file: archive what it names.
                match own {
                    FdKind::Symlink => {
                        let target = nix::fcntl::readlinkat(&fd, "")?;
                        let mut h = tar::Header::new_gnu();
                        h.set_entry_type(tar::EntryType::Symlink);
                        h.set_size(0);
                        h.set_mode(0o777);
                        b.append_link(&mut h, &name, target)?;
                    }
                    FdKind::Other if std::fs::metadata(&from)?.is_dir() => {
                        b.append_dir_all(&name, from.join("."))?;
                    }
                    FdKind::Other => {
                        b.append_file(&name, &mut std::fs::File::open(&from)?)?;
                    }
                }
                b.into_inner()?.flush()?;
            } else {
                let to = target_for(&dest_abs, &name);
                let copied = match own {
                    FdKind::Symlink => {
                        let target = nix::fcntl::readlinkat(&fd, "")?;
                        std::os::unix::fs::symlink(target, &to)
                    }
                    FdKind::Other => copy_with_meta(&from, &std::fs::metadata(&from)?, &to),
                };
                copied.with_context(|| format!("cannot copy to {}", to.display()))?;
                if !args.archive {
                    // Files on the host belong to the user who copied them.
                    let _ = crate::runtime::copy::chown_tree(&to, 0, 0);
                }
            }
            Ok(0)
        }
        (None, Some((c, dst))) => {
            let record = containers.find(c)?;
            let from_stdin = args.source == "-";
            let src = if from_stdin {
                PathBuf::new()
            } else {
                std::path::absolute(&args.source)?
            };
            if !from_stdin && std::fs::symlink_metadata(&src).is_err() {
                anyhow::bail!("could not find the file {} on the host", src.display());
            }
            let root = super::container_fs::open_rootfs(global, &containers, &record)?;
            let rootfd = std::fs::File::open(&root)?;
            if from_stdin {
                let dir = ensure_in_root(rootfd.as_fd(), dst, Create::Dir)?;
                let mut archive = tar::Archive::new(std::io::stdin().lock());
                archive.set_preserve_permissions(true);
                // Entries are unpacked below a directory resolved inside the root; the tar
                // crate itself refuses entries that climb out with `..`.
                archive.unpack(fd_path(&dir))?;
                return Ok(0);
            }
            let name = src
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            let dest_dir_fd = open_in_root(rootfd.as_fd(), dst, libc::O_PATH);
            let to = match dest_dir_fd {
                Ok(fd) if std::fs::metadata(fd_path(&fd)).is_ok_and(|m| m.is_dir()) => {
                    let parent = fd;
                    (fd_path(&parent).join(&name), Some(parent))
                }
                _ if args.destination.ends_with('/') => {
                    anyhow::bail!(
                        "destination directory {} does not exist in container {c}",
                        dst.display()
                    );
                }
                _ => {
                    let parent_path = dst.parent().unwrap_or(Path::new("/"));
                    let parent = ensure_in_root(rootfd.as_fd(), parent_path, Create::Dir)?;
                    (
                        fd_path(&parent).join(dst.file_name().unwrap_or_default()),
                        Some(parent),
                    )
                }
            };
            let (to, _keep) = to;
            copy_any(&src, &to, args.follow_link)
                .with_context(|| format!("cannot copy into {}", dst.display()))?;
            if !args.archive {
                // Copied files belong to the container's root, as docker does.
                let _ = crate::runtime::copy::chown_tree(&to, 0, 0);
            }
            Ok(0)
        }
        _ => anyhow::bail!(
            "copying between containers or between host paths is not supported: one side must be CONTAINER:PATH"
        ),
    }
}
