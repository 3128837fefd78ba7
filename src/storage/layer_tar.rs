//! A container's upper directory turned back into an OCI layer: overlay whiteouts (0:0 char
//! devices) become `.wh.NAME` entries and opaque directories get `.wh..wh..opq`.

use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

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
    walk(upper, Path::new(""), &mut builder)?;
    builder.into_inner()?.flush()
}

fn walk<W: Write>(dir: &Path, rel: &Path, b: &mut tar::Builder<W>) -> io::Result<()> {
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
        if is_whiteout(&meta) {
            let wh = name.with_file_name(format!(".wh.{}", entry.file_name().to_string_lossy()));
            let mut h = header_for(&meta, tar::EntryType::Regular, 0);
            h.set_mode(0o600);
            b.append_data(&mut h, &wh, io::empty())?;
        } else if ft.is_dir() {
            let mut h = header_for(&meta, tar::EntryType::Directory, 0);
            b.append_data(&mut h, &name, io::empty())?;
            if is_opaque(&path) {
                let mut h = header_for(&meta, tar::EntryType::Regular, 0);
                h.set_mode(0o600);
                b.append_data(&mut h, name.join(".wh..wh..opq"), io::empty())?;
            }
            walk(&path, &name, b)?;
        } else if ft.is_symlink() {
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

/// What changed in `upper` relative to the image `lower` layers (lowest first).
pub fn changes(upper: &Path, lower: &[std::path::PathBuf]) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_walk(upper, Path::new("/"), lower, &mut out)?;
    Ok(out)
}

fn in_lower(lower: &[std::path::PathBuf], path: &Path) -> bool {
    let rel = path.strip_prefix("/").unwrap_or(path);
    lower
        .iter()
        .any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok_and(|m| !is_whiteout(&m)))
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
        out.push(if in_lower(lower, &name) {
            Change::Changed(shown)
        } else {
            Change::Added(shown)
        });
        if meta.is_dir() {
            // Below an opaque or new directory everything is new.
            let sub_lower: &[std::path::PathBuf] = if is_opaque(&path) { &[] } else { lower };
            diff_walk(&path, &name, sub_lower, out)?;
        }
    }
    Ok(())
}
