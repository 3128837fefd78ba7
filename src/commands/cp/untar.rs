//! `burrow cp - CONTAINER:DIR`: unpack a tar stream into a directory of the container, every
//! entry created relative to a directory descriptor and no link in the container followed.
//! (The tar crate's own unpacker works by path, which a running container's
//! `/proc/PID/root` cannot give it.)

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use anyhow::Context;

use crate::runtime::copy::{Owners, clear_for_file, ensure_dir};
use crate::storage::safe_fs;

/// The parts of a header applied to what an entry made.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

pub fn unpack(input: impl Read, dest: BorrowedFd<'_>, owners: Owners) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(input);
    // Directories get their mode and times after their contents are in.
    let mut dirs: Vec<(OwnedFd, Meta)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(names) = names_of(&path) else {
            anyhow::bail!("{}: an entry may not climb out with ..", path.display());
        };
        let h = entry.header();
        let meta = Meta {
            mode: h.mode()? & 0o7777,
            // Blank fields, which some writers leave, are zero as GNU tar reads them.
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mtime: h.mtime().unwrap_or(0) as i64,
        };
        let Some((name, parents)) = names.split_last() else {
            continue; // "./" itself
        };
        let dir = open_parents(dest, parents)
            .with_context(|| format!("cannot unpack {}", path.display()))?;
        // A directory and a non-directory never replace each other, as in docker.
        let clear = || {
            clear_for_file(dir.as_fd(), name)
                .with_context(|| format!("cannot unpack {}", path.display()))
        };
        let kind = entry.header().entry_type();
        let made = match kind {
            tar::EntryType::Directory => {
                let d = ensure_dir(dir.as_fd(), name)
                    .with_context(|| format!("cannot unpack {}", path.display()))?;
                dirs.push((d, meta));
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                clear()?;
                let fd = safe_fs::openat(
                    dir.as_fd(),
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )?;
                std::io::copy(&mut entry, &mut std::fs::File::from(fd.try_clone()?))?;
                Some(fd)
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .context("a symlink entry without a target")?;
                clear()?;
                let target = safe_fs::cstring(target.as_os_str().as_bytes())?;
                safe_fs::symlinkat(&target, dir.as_fd(), name)?;
                None
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .context("a hard link entry without a target")?;
                let tnames = names_of(&target).context("a hard link that climbs out with ..")?;
                let (tname, tparents) = tnames.split_last().context("a hard link to .")?;
                let tdir = open_parents(dest, tparents)?;
                clear()?;
                safe_fs::linkat(tdir.as_fd(), tname, dir.as_fd(), name)?;
                continue;
            }
            tar::EntryType::Fifo => {
                clear()?;
                safe_fs::mknodat(dir.as_fd(), name, libc::S_IFIFO | 0o600, 0)?;
                safe_fs::fchmodat(dir.as_fd(), name, meta.mode)?;
                None
            }
            // Devices cannot be made in a user namespace; extended headers are the crate's.
            _ => continue,
        };
        let (uid, gid) = owner(&meta, owners);
        let _ = safe_fs::lchownat(dir.as_fd(), name, uid, gid);
        if let Some(fd) = made {
            safe_fs::fchmod(fd.as_fd(), meta.mode)?;
            let _ = safe_fs::futimens(fd.as_fd(), safe_fs::timespec(meta.mtime, 0));
        } else {
            let _ = safe_fs::lutimesat(dir.as_fd(), name, safe_fs::timespec(meta.mtime, 0));
        }
    }
    for (fd, meta) in dirs.into_iter().rev() {
        let (uid, gid) = owner(&meta, owners);
        let _ = safe_fs::fchown(fd.as_fd(), uid, gid);
        safe_fs::fchmod(fd.as_fd(), meta.mode)?;
        let _ = safe_fs::futimens(fd.as_fd(), safe_fs::timespec(meta.mtime, 0));
    }
    Ok(())
}

fn owner(meta: &Meta, owners: Owners) -> (u32, u32) {
    match owners {
        Owners::Keep => (meta.uid, meta.gid),
        Owners::Set(uid, gid) => (uid, gid),
    }
}

/// The entry's names, or `None` when it has a `..` (which tar refuses too).
fn names_of(path: &Path) -> Option<Vec<CString>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(safe_fs::cstring(n.as_bytes()).ok()?),
            Component::ParentDir => return None,
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// The directory holding an entry, its missing parents made; a parent that is not a
/// directory (a link included) is an error, never followed.
fn open_parents(dest: BorrowedFd<'_>, names: &[CString]) -> anyhow::Result<OwnedFd> {
    let mut dir = safe_fs::openat(dest, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    for n in names {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        dir = match safe_fs::openat(dir.as_fd(), n, flags, 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                safe_fs::mkdirat(dir.as_fd(), n, 0o755)?;
                safe_fs::openat(dir.as_fd(), n, flags, 0)?
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                anyhow::bail!("{} is not a directory", n.to_string_lossy())
            }
            other => other?,
        };
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_000_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    #[test]
    fn links_in_the_destination_are_replaced_or_refused() {
        let outside = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "original").unwrap();
        std::os::unix::fs::symlink(&victim, dest.path().join("f")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("d")).unwrap();
        let fd = safe_fs::open_dir(dest.path()).unwrap();

        let t = tar_of(|b| {
            b.append_data(
                &mut header(tar::EntryType::Regular, 0o640, 3),
                "f",
                &b"new"[..],
            )
            .unwrap();
        });
        unpack(&t[..], fd.as_fd(), Owners::Keep).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "original");
        assert_eq!(
            std::fs::read_to_string(dest.path().join("f")).unwrap(),
            "new"
        );
        let t = tar_of(|b| {
            b.append_data(
                &mut header(tar::EntryType::Regular, 0o640, 3),
                "d/g",
                &b"new"[..],
            )
            .unwrap();
        });
        assert!(unpack(&t[..], fd.as_fd(), Owners::Keep).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    #[test]
    fn directories_get_their_mode_and_time_after_their_contents() {
        let dest = tempfile::tempdir().unwrap();
        let fd = safe_fs::open_dir(dest.path()).unwrap();
        let t = tar_of(|b| {
            b.append_data(
                &mut header(tar::EntryType::Directory, 0o750, 0),
                "a/",
                &b""[..],
            )
            .unwrap();
            b.append_data(
                &mut header(tar::EntryType::Regular, 0o600, 1),
                "a/x",
                &b"x"[..],
            )
            .unwrap();
        });
        unpack(&t[..], fd.as_fd(), Owners::Keep).unwrap();
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dest.path().join("a")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o750);
        assert_eq!(m.mtime(), 1_000_000_000);
    }
}
