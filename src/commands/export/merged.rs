//! A container's root filesystem as the overlay shows it, read straight from its layer
//! directories (its upper directory over its image's layers) rather than through a mount:
//! what is mounted in the container (volumes, bind mounts, tmpfs) is left out, as docker
//! leaves it out, and every file is reached relative to a directory descriptor without
//! following links, so a running container changing its files meanwhile cannot lead the
//! reading out of its layers.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString, OsStr};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::commands::cp::tar_out;
use crate::storage::safe_fs;

/// Writes the merged tree of some layer directories as tar members.
pub struct MergedTar<W: Write> {
    out: tar::Builder<W>,
    /// Regular files with several links, by (device, inode): the member written first, which
    /// the next ones link to.
    written: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> MergedTar<W> {
    pub fn new(out: W) -> Self {
        let mut out = tar::Builder::new(out);
        out.follow_symlinks(false);
        MergedTar {
            out,
            written: HashMap::new(),
        }
    }

    /// Write the tree merged from `layers`, topmost first, as overlayfs merges them: a name
    /// comes from the highest layer that has it, a whiteout hides it in the layers below,
    /// and a directory's contents merge with those of the same directory below unless it is
    /// opaque or a non-directory comes between.
    pub fn write_layers(&mut self, layers: &[&Path]) -> anyhow::Result<()> {
        let dirs = layers
            .iter()
            .map(|l| safe_fs::open_dir(l))
            .collect::<std::io::Result<Vec<_>>>()?;
        self.write_dir(&dirs, Path::new(""))
    }

    pub fn finish(self) -> anyhow::Result<W> {
        Ok(self.out.into_inner()?)
    }

    fn write_dir(&mut self, layers: &[OwnedFd], as_name: &Path) -> anyhow::Result<()> {
        // Each name with the layer it comes from and its lstat; None once a whiteout hid it.
        let mut merged: BTreeMap<CString, Option<(usize, libc::stat)>> = BTreeMap::new();
        for (i, layer) in layers.iter().enumerate() {
            for name in crate::runtime::copy::list_names(layer.as_fd())? {
                if merged.contains_key(&name) {
                    continue;
                }
                // Gone meanwhile (a running container's upper directory changes).
                let Some(st) = safe_fs::lstatat(layer.as_fd(), &name)? else {
                    continue;
                };
                let shown = (!is_whiteout(&st)).then_some((i, st));
                merged.insert(name, shown);
            }
        }
        for (name, (i, st)) in merged.into_iter().filter_map(|(n, s)| Some((n, s?))) {
            let child = as_name.join(OsStr::from_bytes(name.to_bytes()));
            if self.link_to_written(&st, &child)? {
                continue;
            }
            tar_out::write_entry(&mut self.out, layers[i].as_fd(), &name, &child, &st)?;
            if safe_fs::is_dir(&st) {
                let below = merged_dirs(&layers[i..], &name)?;
                self.write_dir(&below, &child)?;
            }
        }
        Ok(())
    }

    /// A regular file with several links whose inode was written already becomes a hard link
    /// to that member.
    fn link_to_written(&mut self, st: &libc::stat, as_name: &Path) -> anyhow::Result<bool> {
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_nlink < 2 {
            return Ok(false);
        }
        let key = (st.st_dev, st.st_ino);
        let Some(first) = self.written.get(&key) else {
            self.written.insert(key, as_name.to_path_buf());
            return Ok(false);
        };
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid.into());
        h.set_gid(st.st_gid.into());
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        self.out.append_link(&mut h, as_name, first)?;
        Ok(true)
    }
}

/// The directory `name` of `layers[0]` and the same directory in the layers below it that
/// show through: down to the first opaque one, stopping at a non-directory.
fn merged_dirs(layers: &[OwnedFd], name: &CStr) -> anyhow::Result<Vec<OwnedFd>> {
    let open = |layer: &OwnedFd| {
        safe_fs::openat(layer.as_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
    };
    let top = open(&layers[0])?;
    let mut dirs = Vec::new();
    let mut opaque = is_opaque(top.as_fd());
    dirs.push(top);
    for layer in &layers[1..] {
        if opaque {
            break;
        }
        match safe_fs::lstatat(layer.as_fd(), name)? {
            None => continue,
            Some(st) if safe_fs::is_dir(&st) => {
                let dir = open(layer)?;
                opaque = is_opaque(dir.as_fd());
                dirs.push(dir);
            }
            // A file or a whiteout hides everything below it.
            Some(_) => break,
        }
    }
    Ok(dirs)
}

/// A whiteout of the overlay on-disk format: a 0:0 character device.
fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// An opaque directory of the overlay on-disk format (`userxattr`): `user.overlay.opaque`
/// is exactly "y".
fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 2];
    // SAFETY: a valid descriptor, attribute name and buffer of the length given.
    let n = unsafe {
        libc::fgetxattr(
            dir.as_raw_fd(),
            c"user.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::testutil::tar_members as members;

    #[test]
    fn layers_merge_as_the_overlay_shows_them() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        let (l, u) = (lower.path(), upper.path());
        for d in ["a", "c", "d"] {
            std::fs::create_dir(l.join(d)).unwrap();
        }
        for f in ["a/x", "b", "c/old", "d/keep", "hl1"] {
            std::fs::write(l.join(f), f).unwrap();
        }
        std::fs::hard_link(l.join("hl1"), l.join("hl2")).unwrap();
        std::fs::create_dir(u.join("a")).unwrap();
        std::fs::write(u.join("a/z"), "z").unwrap();
        std::fs::create_dir(u.join("c")).unwrap();
        std::fs::write(u.join("c/new"), "new").unwrap();
        // A link in the upper layer to a directory outside: archived as a link.
        std::os::unix::fs::symlink(l.join("d"), u.join("out")).unwrap();
        let whiteout = nix::sys::stat::mknod(
            &u.join("b"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        );
        let opaque = xattr_set(&u.join("c"), "user.overlay.opaque", b"y");
        if whiteout.is_err() || opaque.is_err() {
            eprintln!("skipped: cannot make overlay whiteouts or user xattrs here");
            return;
        }
        let mut tar = MergedTar::new(Vec::new());
        tar.write_layers(&[u, l]).unwrap();
        let seen = members(&tar.finish().unwrap());
        let t = |p: &str, k, l: &str| (p.to_string(), k, l.to_string());
        use tar::EntryType::{Directory as D, Link, Regular as F, Symlink};
        assert_eq!(
            seen,
            [
                t("a", D, ""),
                t("a/x", F, ""),
                t("a/z", F, ""),
                t("c", D, ""),
                t("c/new", F, ""),
                t("d", D, ""),
                t("d/keep", F, ""),
                t("hl1", F, ""),
                t("hl2", Link, "hl1"),
                t("out", Symlink, &l.join("d").display().to_string()),
            ]
        );
    }

    fn xattr_set(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
        let p = CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = CString::new(name).unwrap();
        // SAFETY: valid C strings and buffer.
        let r = unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}
