//! A container's upper directory turned back into an OCI layer: overlay whiteouts (0:0 char
//! devices) become `.wh.NAME` entries and opaque directories get `.wh..wh..opq`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

const OPAQUE_XATTR: &str = "user.overlay.opaque";

/// One change in an upper directory, as `burrow diff` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added(String),
    Changed(String),
    Deleted(String),
}

/// Mount points the runtime creates in the upper directory; while they are empty they are not
/// the container's changes (docker leaves them out of `diff` and `commit` too).
fn is_runtime_mountpoint(rel: &Path, meta: &std::fs::Metadata) -> bool {
    let empty = meta.len() == 0 || meta.is_dir();
    let listed = matches!(
        rel.to_str().map(|s| s.trim_start_matches('/')),
        Some("proc" | "sys" | "dev" | "etc/hostname" | "etc/hosts" | "etc/resolv.conf")
    );
    listed && empty
}

fn dir_is_empty(path: &Path, meta: &std::fs::Metadata) -> bool {
    !meta.is_dir() || std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

/// A whiteout of the overlay on-disk format: a 0:0 character device.
pub fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// An opaque directory of the overlay on-disk format: `user.overlay.opaque` is exactly "y",
/// as the kernel reads it.
pub fn is_opaque(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let name = std::ffi::CString::new(OPAQUE_XATTR).unwrap_or_default();
    let mut buf = [0u8; 4];
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

fn header_for(meta: &std::fs::Metadata, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(u64::from(meta.uid()));
    h.set_gid(u64::from(meta.gid()));
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(size);
    h
}

/// Write `upper` as a layer tar to `out`.
pub fn write_layer_tar(upper: &Path, out: impl Write) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut layer = LayerWriter {
        out: builder,
        linked: HashMap::new(),
    };
    layer.walk(upper, Path::new(""))?;
    layer.out.into_inner()?.flush()
}

/// The tar being written, and what it needs to remember across directories.
struct LayerWriter<W: Write> {
    out: tar::Builder<W>,
    /// Non-directories with several names, by (device, inode): the member written first, which
    /// the later names become hard links to, as docker writes them. Only names within this
    /// layer count: a link to a file of a lower layer was broken by the copy-up already.
    linked: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> LayerWriter<W> {
    fn walk(&mut self, dir: &Path, rel: &Path) -> io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = rel.join(entry.file_name());
            let meta = std::fs::symlink_metadata(&path)?;
            let ft = meta.file_type();
            if is_runtime_mountpoint(&name, &meta) && dir_is_empty(&path, &meta) {
                continue;
            }
            // Before the links: the kernel may share one inode between all its whiteouts.
            if is_whiteout(&meta) {
                let wh =
                    name.with_file_name(format!(".wh.{}", entry.file_name().to_string_lossy()));
                let mut h = header_for(&meta, tar::EntryType::Regular, 0);
                h.set_mode(0o600);
                self.out.append_data(&mut h, &wh, io::empty())?;
                continue;
            }
            if ft.is_dir() {
                let mut h = header_for(&meta, tar::EntryType::Directory, 0);
                self.out.append_data(&mut h, &name, io::empty())?;
                if is_opaque(&path) {
                    let mut h = header_for(&meta, tar::EntryType::Regular, 0);
                    h.set_mode(0o600);
                    self.out
                        .append_data(&mut h, name.join(".wh..wh..opq"), io::empty())?;
                }
                self.walk(&path, &name)?;
                continue;
            }
            if self.link_to_written(&meta, &name)? {
                continue;
            }
            let b = &mut self.out;
            if ft.is_symlink() {
                let mut h = header_for(&meta, tar::EntryType::Symlink, 0);
                b.append_link(&mut h, &name, std::fs::read_link(&path)?)?;
            } else if ft.is_file() {
                let mut h = header_for(&meta, tar::EntryType::Regular, meta.len());
                b.append_data(&mut h, &name, std::fs::File::open(&path)?)?;
            } else if ft.is_fifo() {
                let mut h = header_for(&meta, tar::EntryType::Fifo, 0);
                b.append_data(&mut h, &name, io::empty())?;
            }
        }
        Ok(())
    }

    /// A non-directory with several names whose inode was written already becomes a hard
    /// link entry to that member; the first name of it is remembered and written as itself.
    fn link_to_written(&mut self, meta: &std::fs::Metadata, name: &Path) -> io::Result<bool> {
        let ft = meta.file_type();
        // Only kinds written as members can be linked to.
        if meta.nlink() < 2 || !(ft.is_file() || ft.is_symlink() || ft.is_fifo()) {
            return Ok(false);
        }
        let key = (meta.dev(), meta.ino());
        let Some(first) = self.linked.get(&key) else {
            self.linked.insert(key, name.to_path_buf());
            return Ok(false);
        };
        let mut h = header_for(meta, tar::EntryType::Link, 0);
        self.out.append_link(&mut h, name, first)?;
        Ok(true)
    }
}

/// What changed in `upper` relative to the image `lower` layers (lowest first).
pub fn changes(upper: &Path, lower: &[std::path::PathBuf]) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_walk(upper, Path::new("/"), lower, &mut out)?;
    Ok(out)
}

/// The entry at `path` in the topmost lower layer that has one (not a whiteout).
fn in_lower(lower: &[std::path::PathBuf], path: &Path) -> Option<std::fs::Metadata> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    lower.iter().rev().find_map(|l| {
        std::fs::symlink_metadata(l.join(rel))
            .ok()
            .filter(|m| !is_whiteout(m))
    })
}

fn diff_walk(
    dir: &Path,
    rel: &Path,
    lower: &[std::path::PathBuf],
    out: &mut Vec<Change>,
) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = rel.join(entry.file_name());
        let shown = name.to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path)?;
        if is_runtime_mountpoint(&name, &meta) && dir_is_empty(&path, &meta) {
            continue;
        }
        if is_whiteout(&meta) {
            out.push(Change::Deleted(shown));
            continue;
        }
        let Some(was) = in_lower(lower, &name) else {
            out.push(Change::Added(shown));
            if meta.is_dir() {
                // Below a new directory everything is new.
                diff_walk(&path, &name, &[], out)?;
            }
            continue;
        };
        if !(meta.is_dir() && was.is_dir()) || is_opaque(&path) {
            out.push(Change::Changed(shown));
            if meta.is_dir() {
                // Below an opaque directory everything is new.
                diff_walk(&path, &name, &[], out)?;
            }
            continue;
        }
        // A directory of the image is changed when its owner or mode is, or something in it
        // is; not for the runtime's mount points alone (`/etc/hosts`...), which docker makes
        // in a layer of their own that its diff leaves out.
        let mut inside = Vec::new();
        diff_walk(&path, &name, lower, &mut inside)?;
        let own = |m: &std::fs::Metadata| (m.mode(), m.uid(), m.gid());
        if own(&meta) != own(&was) || !inside.is_empty() {
            out.push(Change::Changed(shown));
            out.append(&mut inside);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::testutil::tar_members as members;

    #[test]
    fn image_directories_changed_only_by_runtime_mount_points_are_no_change() {
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
        for d in [&lower, &upper] {
            std::fs::create_dir_all(d.join("etc")).unwrap();
            std::fs::create_dir_all(d.join("usr/lib")).unwrap();
        }
        std::fs::create_dir(lower.join("gone")).unwrap();
        std::fs::write(upper.join("etc/hosts"), "").unwrap();
        std::fs::write(upper.join("etc/resolv.conf"), "").unwrap();
        let lowers = [lower.clone()];
        let shown = |c: &Change| match c {
            Change::Added(p) => format!("A {p}"),
            Change::Changed(p) => format!("C {p}"),
            Change::Deleted(p) => format!("D {p}"),
        };
        let diff = || -> Vec<String> {
            changes(&upper, &lowers)
                .unwrap()
                .iter()
                .map(shown)
                .collect()
        };
        assert_eq!(diff(), Vec::<String>::new());
        std::fs::write(upper.join("usr/lib/new"), "x").unwrap();
        std::fs::create_dir(upper.join("opt")).unwrap();
        std::fs::write(upper.join("opt/f"), "x").unwrap();
        assert_eq!(
            diff(),
            [
                "A /opt",
                "A /opt/f",
                "C /usr",
                "C /usr/lib",
                "A /usr/lib/new"
            ]
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(upper.join("etc"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        assert_eq!(diff()[0], "C /etc");
    }

    #[test]
    fn names_of_one_inode_become_hard_links_to_the_first() {
        let upper = tempfile::tempdir().unwrap();
        let u = upper.path();
        std::fs::create_dir(u.join("d")).unwrap();
        std::fs::write(u.join("a"), "x").unwrap();
        std::fs::hard_link(u.join("a"), u.join("d/b")).unwrap();
        std::fs::hard_link(u.join("a"), u.join("c")).unwrap();
        std::fs::write(u.join("single"), "y").unwrap();
        std::os::unix::fs::symlink("a", u.join("s1")).unwrap();
        std::fs::hard_link(u.join("s1"), u.join("s2")).unwrap();
        let mut out = Vec::new();
        write_layer_tar(u, &mut out).unwrap();
        use tar::EntryType::{Directory as D, Link, Regular as F, Symlink};
        let t = |p: &str, k, l: &str| (p.to_string(), k, l.to_string());
        assert_eq!(
            members(&out),
            [
                t("a", F, ""),
                t("c", Link, "a"),
                t("d", D, ""),
                t("d/b", Link, "a"),
                t("s1", Symlink, "a"),
                t("s2", Link, "s1"),
                t("single", F, ""),
            ]
        );
        // The data is stored once.
        let mut a = tar::Archive::new(out.as_slice());
        let sizes: Vec<u64> = a.entries().unwrap().map(|e| e.unwrap().size()).collect();
        assert_eq!(sizes.iter().sum::<u64>(), 2);
    }

    #[test]
    fn whiteouts_sharing_an_inode_stay_whiteouts() {
        let upper = tempfile::tempdir().unwrap();
        let u = upper.path();
        let made = nix::sys::stat::mknod(
            &u.join("gone1"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        );
        if made.is_err() {
            println!("skipped: creating a 0:0 char device needs root or a user namespace");
            return;
        }
        std::fs::hard_link(u.join("gone1"), u.join("gone2")).unwrap();
        let mut out = Vec::new();
        write_layer_tar(u, &mut out).unwrap();
        let t = |p: &str| (p.to_string(), tar::EntryType::Regular, String::new());
        assert_eq!(members(&out), [t(".wh.gone1"), t(".wh.gone2")]);
    }
}
