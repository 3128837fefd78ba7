//! `burrow cp CONTAINER:PATH -`: a tar stream of an entry, read relative to directory
//! descriptors without following links, so a running container that swaps a directory for a
//! link while we read cannot make the stream include the host's files.

use std::ffi::{CStr, OsStr};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::storage::safe_fs;

/// Write `name` in `dir` (recursively for a directory) as tar members named from `as_name`.
pub fn write<W: Write>(
    out: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    name: &CStr,
    as_name: &Path,
) -> anyhow::Result<()> {
    let st = safe_fs::lstatat(dir, name)?
        .with_context(|| format!("{} disappeared while it was copied", as_name.display()))?;
    write_entry(out, dir, name, as_name, &st)?;
    if safe_fs::is_dir(&st) {
        let sub = safe_fs::openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let mut names = crate::runtime::copy::list_names(sub.as_fd())?;
        names.sort();
        for child in names {
            let child_name = as_name.join(OsStr::from_bytes(child.to_bytes()));
            write(out, sub.as_fd(), &child, &child_name)?;
        }
    }
    Ok(())
}

/// Write the one member for `name` in `dir`, whose lstat is `st` (a directory without its
/// contents).
pub fn write_entry<W: Write>(
    out: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    name: &CStr,
    as_name: &Path,
    st: &libc::stat,
) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            h.set_entry_type(tar::EntryType::Directory);
            out.append_data(&mut h, as_name, io::empty())?;
        }
        libc::S_IFREG => {
            let file = safe_fs::openat(dir, name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
            let now = nix::sys::stat::fstat(&file)?;
            if now.st_mode & libc::S_IFMT != libc::S_IFREG {
                anyhow::bail!("{} changed while it was copied", as_name.display());
            }
            let size = now.st_size as u64;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            // Exactly `size` bytes whatever the file does meanwhile, or the stream breaks.
            let data = std::fs::File::from(file)
                .take(size)
                .chain(io::repeat(0))
                .take(size);
            out.append_data(&mut h, as_name, data)?;
        }
        libc::S_IFLNK => {
            let target = nix::fcntl::readlinkat(dir, name)?;
            h.set_entry_type(tar::EntryType::Symlink);
            out.append_link(&mut h, as_name, PathBuf::from(target))?;
        }
        libc::S_IFIFO => {
            h.set_entry_type(tar::EntryType::Fifo);
            out.append_data(&mut h, as_name, io::empty())?;
        }
        kind @ (libc::S_IFCHR | libc::S_IFBLK) => {
            h.set_entry_type(if kind == libc::S_IFCHR {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            h.set_device_major(libc::major(st.st_rdev))?;
            h.set_device_minor(libc::minor(st.st_rdev))?;
            out.append_data(&mut h, as_name, io::empty())?;
        }
        // Sockets have no tar form.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_archived_as_links_and_trees_in_order() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        std::fs::write(root.path().join("d/f"), "data").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("d/out")).unwrap();
        let fd = safe_fs::open_dir(root.path()).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        write(&mut b, fd.as_fd(), c"d", Path::new("d")).unwrap();
        let data = b.into_inner().unwrap();
        let mut a = tar::Archive::new(&data[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap();
            seen.push((
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
                body,
            ));
        }
        assert_eq!(
            seen,
            [
                ("d".to_string(), tar::EntryType::Directory, String::new()),
                (
                    "d/f".to_string(),
                    tar::EntryType::Regular,
                    "data".to_string()
                ),
                ("d/out".to_string(), tar::EntryType::Symlink, String::new()),
            ]
        );
    }
}
