//! Layer tar → directory, safe against hostile archives.
//!
//! Every entry path is made relative with `..` clamped at the top, its parent is resolved by
//! the kernel inside the layer directory (see `safe_fs`), and the entry itself is created with
//! `*at` calls that never follow a symlink, so nothing a layer contains can reach outside it.
//! OCI whiteouts become overlayfs ones: `.wh.NAME` a 0:0 character device, `.wh..wh..opq` the
//! `user.overlay.opaque` xattr (overlayfs is mounted with `userxattr`).

use std::ffi::{CStr, CString};
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use tar::EntryType;

use super::compression::{self, READ_BUFFER};
use super::digest::{Digest, HashingReader};
use super::safe_fs::{self, cstring};
use super::{StorageError, UnpackOptions};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &CStr = c"user.overlay.opaque";
const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY;

/// Unpack a layer blob (plain, gzip or zstd tar) into the existing empty directory `dest`,
/// checking that the uncompressed stream hashes to `diff_id`.
pub fn unpack_layer(
    blob: impl Read,
    dest: &Path,
    diff_id: &Digest,
    opts: UnpackOptions,
) -> Result<(), StorageError> {
    let io_err = |source: io::Error| StorageError::Layer {
        layer: diff_id.clone(),
        source,
    };
    let (_, tar_stream) =
        compression::decompress(BufReader::with_capacity(READ_BUFFER, blob)).map_err(io_err)?;
    let mut hashing = HashingReader::new(tar_stream);
    {
        let root = safe_fs::open_dir(dest).map_err(|e| StorageError::io(dest, e))?;
        let mut unpacker = Unpacker {
            root,
            layer: diff_id,
            opts,
            dirs: Vec::new(),
            warned_devices: false,
            // SAFETY: these calls cannot fail.
            euid: unsafe { libc::geteuid() },
            egid: unsafe { libc::getegid() },
        };
        let mut archive = tar::Archive::new(&mut hashing);
        for entry in archive.entries().map_err(io_err)? {
            let mut entry = entry.map_err(io_err)?;
            unpacker.entry(&mut entry)?;
        }
        unpacker.finish_dirs()?;
    }
    // The diff id covers the whole stream, including the padding after the end-of-archive.
    io::copy(&mut hashing, &mut io::sink()).map_err(io_err)?;
    let (actual, _) = hashing.finish();
    if actual != *diff_id {
        return Err(StorageError::DigestMismatch {
            what: format!("layer {diff_id}"),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(())
}

/// Relative components of an entry path: no empty, `.` or `..` parts, `..` clamped at the top.
pub fn normalise(path: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out
}

/// Metadata applied to directories after their contents, so that a read-only mode does not
/// block the unpack and writing children does not bump the mtime.
struct DirMeta {
    components: Vec<Vec<u8>>,
    mode: u32,
    mtime: libc::timespec,
}

struct Unpacker<'a> {
    root: OwnedFd,
    layer: &'a Digest,
    opts: UnpackOptions,
    dirs: Vec<DirMeta>,
    warned_devices: bool,
    euid: u32,
    egid: u32,
}

/// What the header and its PAX records say, gathered once per entry.
struct EntryMeta {
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: libc::timespec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), StorageError> {
        let raw_path = entry.path_bytes().into_owned();
        let components = normalise(&raw_path);
        let display = String::from_utf8_lossy(&components.join(&b'/')).into_owned();
        let meta = self.meta(entry).map_err(|e| self.err(&display, e))?;
        self.create(entry, &components, &meta, &display)
            .map_err(|e| match e {
                EntryError::Io(e) => self.err(&display, e),
                EntryError::Storage(e) => e,
            })
    }

    fn err(&self, path: &str, source: io::Error) -> StorageError {
        StorageError::Unpack {
            layer: self.layer.clone(),
            path: path.to_string(),
            source,
        }
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> io::Result<EntryMeta> {
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode()? & 0o7777;
        let (uid, gid) = (header.uid()?, header.gid()?);
        let mut mtime = safe_fs::timespec(header.mtime()?.min(i64::MAX as u64) as i64, 0);
        let mut xattrs = Vec::new();
        if let Some(extensions) = entry.pax_extensions()? {
            for ext in extensions {
                let ext = ext?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.")
                    && xattr_allowed(name)
                    && let Ok(name) = CString::new(name)
                {
                    xattrs.push((name, ext.value_bytes().to_vec()));
                }
            }
        }
        Ok(EntryMeta {
            kind,
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    fn create<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        components: &[&[u8]],
        meta: &EntryMeta,
        display: &str,
    ) -> Result<(), EntryError> {
        let Some((&last, parents)) = components.split_last() else {
            // The layer root itself (`./`): only its metadata can change.
            if meta.kind == EntryType::Directory {
                self.dirs.push(DirMeta {
                    components: Vec::new(),
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
                let root = self.root.try_clone()?;
                self.chown_fd(root.as_fd(), meta, display)?;
            }
            return Ok(());
        };
        let parent = safe_fs::open_dir_in_root(self.root.as_fd(), parents)?;
        let parent = parent.as_fd();
        if last.starts_with(WHITEOUT_PREFIX) {
            return Ok(self.whiteout(parent, last)?);
        }
        let name = cstring(last)?;
        match meta.kind {
            EntryType::Directory => {
                match safe_fs::lstatat(parent, &name)? {
                    Some(st) if safe_fs::is_dir(&st) => {}
                    Some(_) => {
                        safe_fs::remove_all_at(parent, &name)?;
                        safe_fs::mkdirat(parent, &name, 0o700)?;
                    }
                    None => safe_fs::mkdirat(parent, &name, 0o700)?,
                }
                let dir = safe_fs::openat(parent, &name, DIR_FLAGS, 0)?;
                self.chown_fd(dir.as_fd(), meta, display)?;
                self.set_xattrs(dir.as_fd(), meta, display);
                self.dirs.push(DirMeta {
                    components: components.iter().map(|c| c.to_vec()).collect(),
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                safe_fs::remove_all_at(parent, &name)?;
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
                let fd = safe_fs::openat(parent, &name, flags, 0o600)?;
                let mut file = std::fs::File::from(fd);
                compression::copy_large(entry, &mut file)?;
                self.chown_fd(file.as_fd(), meta, display)?;
                // After chown, which clears setuid/setgid.
                safe_fs::fchmod(file.as_fd(), meta.mode)?;
                self.set_xattrs(file.as_fd(), meta, display);
                safe_fs::futimens(file.as_fd(), meta.mtime)?;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let target = cstring(&target)?;
                safe_fs::remove_all_at(parent, &name)?;
                safe_fs::symlinkat(&target, parent, &name)?;
                self.chown_at(parent, &name, meta, display)?;
                safe_fs::lutimesat(parent, &name, meta.mtime)?;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hard_link(parent, &name, &target, display)?;
            }
            EntryType::Char | EntryType::Block => {
                let major = entry.header().device_major()?.unwrap_or(0);
                let minor = entry.header().device_minor()?.unwrap_or(0);
                if meta.kind == EntryType::Char && major == 0 && minor == 0 {
                    // Already an overlayfs whiteout.
                    safe_fs::remove_all_at(parent, &name)?;
                    safe_fs::mknodat(parent, &name, libc::S_IFCHR, 0)?;
                } else if !self.warned_devices {
                    self.warned_devices = true;
                    log::warn!(
                        "layer {}: skipping device files such as {display}: a rootless \
                         container cannot create them",
                        self.layer
                    );
                }
            }
            EntryType::Fifo => {
                safe_fs::remove_all_at(parent, &name)?;
                safe_fs::mknodat(parent, &name, libc::S_IFIFO | 0o600, 0)?;
                self.chown_at(parent, &name, meta, display)?;
                // mknodat just made it, so it is not a symlink that chmod would follow.
                safe_fs::fchmodat(parent, &name, meta.mode)?;
                safe_fs::lutimesat(parent, &name, meta.mtime)?;
            }
            other => {
                log::debug!(
                    "layer {}: skipping {display}: tar entry type {other:?}",
                    self.layer
                );
            }
        }
        Ok(())
    }

    fn whiteout(&self, parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
        if name == OPAQUE_MARKER {
            return safe_fs::fsetxattr(parent, OPAQUE_XATTR, b"y");
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        // `.wh..wh.*` other than the opaque marker is AUFS bookkeeping, meaningless here.
        if hidden.is_empty()
            || hidden.starts_with(WHITEOUT_PREFIX)
            || hidden == b"."
            || hidden == b".."
        {
            return Ok(());
        }
        let hidden = cstring(hidden)?;
        safe_fs::remove_all_at(parent, &hidden)?;
        safe_fs::mknodat(parent, &hidden, libc::S_IFCHR, 0)
    }

    /// Hard links name a path in the same layer; it is resolved inside the layer like any
    /// other, so `../outside` or `/etc/shadow` can only ever mean a file of this layer.
    fn hard_link(
        &self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        target: &[u8],
        display: &str,
    ) -> io::Result<()> {
        let target_components = normalise(target);
        let Some((&target_name, target_parents)) = target_components.split_last() else {
            log::warn!(
                "layer {}: skipping hard link {display} to the layer root",
                self.layer
            );
            return Ok(());
        };
        let skip = |why: &dyn std::fmt::Display| {
            log::warn!(
                "layer {}: skipping hard link {display} -> {}: {why}",
                self.layer,
                String::from_utf8_lossy(target)
            );
        };
        let target_dir = match safe_fs::open_in_root(
            self.root.as_fd(),
            &target_parents.join(&b'/'),
            DIR_FLAGS,
        ) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                skip(&"target not in this layer");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let target_name = cstring(target_name)?;
        let Some(target_st) = safe_fs::lstatat(target_dir.as_fd(), &target_name)? else {
            skip(&"target not in this layer");
            return Ok(());
        };
        if let Some(st) = safe_fs::lstatat(parent, name)? {
            if st.st_dev == target_st.st_dev && st.st_ino == target_st.st_ino {
                return Ok(());
            }
            safe_fs::remove_all_at(parent, name)?;
        }
        match safe_fs::linkat(target_dir.as_fd(), &target_name, parent, name) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && safe_fs::is_dir(&target_st) => {
                skip(&"target is a directory");
                Ok(())
            }
            other => other,
        }
    }

    fn chown_fd(
        &self,
        fd: BorrowedFd<'_>,
        meta: &EntryMeta,
        display: &str,
    ) -> Result<(), EntryError> {
        self.chown_with(meta, display, |uid, gid| safe_fs::fchown(fd, uid, gid))
    }

    fn chown_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        meta: &EntryMeta,
        display: &str,
    ) -> Result<(), EntryError> {
        self.chown_with(meta, display, |uid, gid| {
            safe_fs::lchownat(parent, name, uid, gid)
        })
    }

    fn chown_with(
        &self,
        meta: &EntryMeta,
        display: &str,
        chown: impl Fn(u32, u32) -> io::Result<()>,
    ) -> Result<(), EntryError> {
        // New files are already ours; most layer files belong to root.
        if meta.uid == u64::from(self.euid) && meta.gid == u64::from(self.egid) {
            return Ok(());
        }
        let unmapped = |kind, id, file| {
            EntryError::Storage(StorageError::UnmappedOwner {
                layer: self.layer.clone(),
                path: display.to_string(),
                kind,
                id,
                file,
            })
        };
        let (Ok(uid), Ok(gid)) = (u32::try_from(meta.uid), u32::try_from(meta.gid)) else {
            if self.opts.ignore_chown_errors {
                return Ok(());
            }
            return Err(if u32::try_from(meta.uid).is_err() {
                unmapped("uid", meta.uid, "/etc/subuid")
            } else {
                unmapped("gid", meta.gid, "/etc/subgid")
            });
        };
        match chown(uid, gid) {
            Ok(()) => Ok(()),
            Err(e) if self.opts.ignore_chown_errors => {
                log::debug!("layer {}: {display}: keeping owner: chown: {e}", self.layer);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // Tell the user which of the two ids is missing from the map.
                if chown(uid, u32::MAX).is_err() {
                    Err(unmapped("uid", meta.uid, "/etc/subuid"))
                } else {
                    Err(unmapped("gid", meta.gid, "/etc/subgid"))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    fn set_xattrs(&self, fd: BorrowedFd<'_>, meta: &EntryMeta, display: &str) {
        for (name, value) in &meta.xattrs {
            if let Err(e) = safe_fs::fsetxattr(fd, name, value) {
                log::debug!(
                    "layer {}: {display}: cannot set xattr {}: {e}",
                    self.layer,
                    name.to_string_lossy()
                );
            }
        }
    }

    /// Modes and times of directories, in reverse order so that a parent's restrictive mode
    /// never blocks reaching its children (tar lists parents first).
    fn finish_dirs(&mut self) -> Result<(), StorageError> {
        // A directory listed twice gets the metadata of its last entry, as with tar.
        let mut done = std::collections::HashSet::new();
        for dir in self.dirs.iter().rev() {
            if !done.insert(&dir.components) {
                continue;
            }
            let display = String::from_utf8_lossy(&dir.components.join(&b'/')).into_owned();
            let fd = match self.open_recorded_dir(&dir.components) {
                Ok(Some(fd)) => fd,
                Ok(None) => continue,
                Err(e) => return Err(self.err(&display, e)),
            };
            safe_fs::fchmod(fd.as_fd(), dir.mode)
                .and_then(|()| safe_fs::futimens(fd.as_fd(), dir.mtime))
                .map_err(|e| self.err(&display, e))?;
        }
        Ok(())
    }

    /// `None` if a later entry replaced the directory by something else.
    fn open_recorded_dir(&self, components: &[Vec<u8>]) -> io::Result<Option<OwnedFd>> {
        let Some((last, parents)) = components.split_last() else {
            return self.root.try_clone().map(Some);
        };
        let gone = |e: &io::Error| {
            matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
            )
        };
        let parent = match safe_fs::open_in_root(self.root.as_fd(), &parents.join(&b'/'), DIR_FLAGS)
        {
            Ok(fd) => fd,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match safe_fs::openat(parent.as_fd(), &cstring(last)?, DIR_FLAGS, 0) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

enum EntryError {
    Io(io::Error),
    Storage(StorageError),
}

impl From<io::Error> for EntryError {
    fn from(e: io::Error) -> Self {
        EntryError::Io(e)
    }
}

fn xattr_allowed(name: &[u8]) -> bool {
    if name.starts_with(b"trusted.") || name.starts_with(b"user.overlay.") {
        // Overlay metadata from a layer could forge whiteouts or redirects.
        return false;
    }
    !name.starts_with(b"security.") || name == b"security.capability"
}

/// PAX times are decimal seconds with an optional fraction: `1700000000.5`.
fn parse_pax_time(value: &[u8]) -> Option<libc::timespec> {
    let s = std::str::from_utf8(value).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        let n: i64 = digits.parse().ok()?;
        n * 10i64.pow(9 - digits.len() as u32)
    };
    // `-1.25` is 1.25 s before the epoch: tv_sec -2, tv_nsec 0.75 s.
    let (secs, nanos) = match (s.starts_with('-'), nanos) {
        (true, 0) => (-secs.abs(), 0),
        (true, n) => (-secs.abs() - 1, 1_000_000_000 - n),
        (false, n) => (secs, n),
    };
    Some(safe_fs::timespec(secs, nanos))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    use super::*;
    use crate::storage::testutil::{TarBuilder, diff_id_of, gzip};

    const LENIENT: UnpackOptions = UnpackOptions {
        ignore_chown_errors: true,
    };

    /// `T/outside/sentinel` and an empty `T/layer`.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("sentinel"), b"untouched").unwrap();
        let layer = t.path().join("layer");
        fs::create_dir(&layer).unwrap();
        (t, outside, layer)
    }

    fn unpack(tar: &[u8], dest: &Path) -> Result<(), StorageError> {
        unpack_layer(tar, dest, &diff_id_of(tar), LENIENT)
    }

    fn assert_outside_untouched(t: &Path, outside: &Path) {
        let mut top: Vec<_> = fs::read_dir(t)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        top.sort();
        assert_eq!(top, ["layer", "outside"]);
        let inside: Vec<_> = fs::read_dir(outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(inside, ["sentinel"]);
        assert_eq!(fs::read(outside.join("sentinel")).unwrap(), b"untouched");
        assert!(!Path::new("/through-root.txt").exists());
        assert!(!Path::new("/etc/through-root.txt").exists());
    }

    #[test]
    fn normalise_clamps_and_strips() {
        let n = |p: &str| normalise(p.as_bytes()).join(&b'/');
        assert_eq!(n("/etc/passwd"), b"etc/passwd");
        assert_eq!(n("./a//b/./c/"), b"a/b/c");
        assert_eq!(n("../../x"), b"x");
        assert_eq!(n("a/../../b"), b"b");
        assert!(normalise(b"/").is_empty());
    }

    #[test]
    fn hostile_tar_stays_inside_the_layer() {
        let (t, outside, layer) = setup();
        let outside_str = outside.to_str().unwrap();
        let tar = TarBuilder::new()
            .file("/abs.txt", b"abs", 0o644)
            .file("../../escape.txt", b"dotdot", 0o644)
            .dir("etc/", 0o755)
            .symlink("up", "../../..")
            .file("up/through-up.txt", b"up", 0o644)
            .symlink("rootlink", "/")
            .file("rootlink/etc/through-root.txt", b"root", 0o644)
            .symlink("etclink", "/etc")
            .file("etclink/passwd", b"layer passwd", 0o644)
            .hardlink("hl-passwd", "/etc/passwd")
            .hardlink("hl-outside", "../outside/sentinel")
            .hardlink("hl-outside-abs", &format!("{outside_str}/sentinel"))
            .symlink("victim", &format!("{outside_str}/sentinel"))
            .file("victim", b"replaced the symlink", 0o644)
            .symlink("dirlink", outside_str)
            .symlink("dirlink", "etc")
            .file("dirlink/via-relinked", b"x", 0o644)
            .finish();
        unpack(&tar, &layer).unwrap();
        assert_outside_untouched(t.path(), &outside);
        assert_eq!(fs::read(layer.join("abs.txt")).unwrap(), b"abs");
        assert_eq!(fs::read(layer.join("escape.txt")).unwrap(), b"dotdot");
        assert_eq!(fs::read(layer.join("through-up.txt")).unwrap(), b"up");
        assert_eq!(
            fs::read(layer.join("etc/through-root.txt")).unwrap(),
            b"root"
        );
        assert_eq!(fs::read(layer.join("etc/passwd")).unwrap(), b"layer passwd");
        let linked = fs::metadata(layer.join("hl-passwd")).unwrap();
        assert_eq!(
            linked.ino(),
            fs::metadata(layer.join("etc/passwd")).unwrap().ino()
        );
        assert_ne!(linked.ino(), fs::metadata("/etc/passwd").unwrap().ino());
        assert!(!layer.join("hl-outside").exists());
        assert!(!layer.join("hl-outside-abs").exists());
        let victim = fs::symlink_metadata(layer.join("victim")).unwrap();
        assert!(victim.is_file());
        assert_eq!(
            fs::read(layer.join("victim")).unwrap(),
            b"replaced the symlink"
        );
        assert_eq!(fs::read(layer.join("etc/via-relinked")).unwrap(), b"x");
    }

    #[test]
    fn dangling_symlink_to_outside_cannot_be_written_through() {
        let (t, outside, layer) = setup();
        let tar = TarBuilder::new()
            .symlink("out", outside.to_str().unwrap())
            .file("out/pwned", b"x", 0o644)
            .symlink("rel", "../outside")
            .file("rel/pwned", b"x", 0o644)
            .finish();
        // Whether the entry fails or lands inside, nothing may appear outside.
        let _ = unpack(&tar, &layer);
        assert_outside_untouched(t.path(), &outside);
        let tar = TarBuilder::new()
            .symlink("rel", "../outside")
            .file("rel/pwned", b"x", 0o644)
            .finish();
        let _ = unpack(&tar, &layer);
        assert_outside_untouched(t.path(), &outside);
    }

    #[test]
    fn replaces_existing_entries_like_tar() {
        let (_t, _outside, layer) = setup();
        let tar = TarBuilder::new()
            .file("a", b"file first", 0o644)
            .dir("a", 0o755)
            .file("a/child", b"c", 0o644)
            .dir("b", 0o755)
            .file("b/inner", b"i", 0o644)
            .file("b", b"file replaces dir", 0o644)
            .dir("m", 0o755)
            .file("m/one", b"1", 0o644)
            .dir("m", 0o700)
            .file("m/two", b"2", 0o644)
            .finish();
        unpack(&tar, &layer).unwrap();
        assert_eq!(fs::read(layer.join("a/child")).unwrap(), b"c");
        assert_eq!(fs::read(layer.join("b")).unwrap(), b"file replaces dir");
        assert!(layer.join("m/one").exists() && layer.join("m/two").exists());
        let mode = fs::metadata(layer.join("m")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o700);
    }

    #[test]
    fn metadata_is_applied() {
        let (_t, _outside, layer) = setup();
        let tar = TarBuilder::new()
            .dir("./", 0o751)
            .dir("ro", 0o555)
            .file("ro/suid", b"#!/bin/sh\n", 0o4755)
            .file("sticky-dir-file", b"", 0o1777)
            .symlink("ro/link", "suid")
            .fifo("pipe")
            .device("dev/null", 1, 3)
            .file_with_pax(
                "pax",
                b"p",
                &[
                    ("mtime", b"1700000000.25"),
                    ("SCHILY.xattr.user.burrow", b"yes"),
                    ("SCHILY.xattr.trusted.evil", b"no"),
                    ("SCHILY.xattr.user.overlay.opaque", b"y"),
                ],
            )
            .finish();
        unpack(&tar, &layer).unwrap();
        let meta = |p: &str| fs::symlink_metadata(layer.join(p)).unwrap();
        assert_eq!(meta("ro").mode() & 0o7777, 0o555);
        assert_eq!(meta("ro/suid").mode() & 0o7777, 0o4755);
        assert_eq!(meta("sticky-dir-file").mode() & 0o7777, 0o1777);
        assert_eq!(meta("").mode() & 0o7777, 0o751);
        assert_eq!(meta("ro/suid").mtime(), 1_600_000_000);
        assert_eq!(meta("ro").mtime(), 1_600_000_000);
        assert_eq!(meta("ro/link").mtime(), 1_600_000_000);
        assert_eq!(
            fs::read_link(layer.join("ro/link")).unwrap(),
            Path::new("suid")
        );
        assert!(meta("pipe").file_type().is_fifo());
        assert!(!layer.join("dev/null").exists());
        assert_eq!(
            (meta("pax").mtime(), meta("pax").mtime_nsec()),
            (1_700_000_000, 250_000_000)
        );
        let get = |name: &CStr| {
            let path = cstring(layer.join("pax").as_os_str().as_encoded_bytes()).unwrap();
            let mut buf = [0u8; 16];
            // SAFETY: valid path, name and buffer.
            let n = unsafe {
                libc::lgetxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            (n >= 0).then(|| buf[..n as usize].to_vec())
        };
        assert_eq!(get(c"user.burrow").as_deref(), Some(&b"yes"[..]));
        assert_eq!(get(c"trusted.evil"), None);
        assert_eq!(get(c"user.overlay.opaque"), None);
    }

    #[test]
    fn compressed_layers_and_diff_id_check() {
        let tar = TarBuilder::new().file("f", b"data", 0o644).finish();
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        for blob in [tar.clone(), gzip(&tar), zst] {
            let (_t, _o, layer) = setup();
            unpack_layer(&blob[..], &layer, &Digest::sha256_of(&tar), LENIENT).unwrap();
            assert_eq!(fs::read(layer.join("f")).unwrap(), b"data");
        }
        let (_t, _o, layer) = setup();
        let wrong = Digest::sha256_of(b"another layer");
        let err = unpack_layer(&tar[..], &layer, &wrong, LENIENT).unwrap_err();
        assert!(matches!(err, StorageError::DigestMismatch { .. }), "{err}");
    }

    #[test]
    fn ownership_follows_the_tar_when_possible() {
        let (_t, _o, layer) = setup();
        // SAFETY: plain getters.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let tar = TarBuilder::new()
            .file("mine", b"", 0o644)
            .owner(54321, 54321)
            .file("theirs", b"", 0o644)
            .finish();
        // Lenient: a chown that fails (not root) keeps our ids.
        unpack(&tar, &layer).unwrap();
        let m = fs::metadata(layer.join("mine")).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid));
        let t = fs::metadata(layer.join("theirs")).unwrap();
        assert!(t.uid() == 54321 || t.uid() == uid);
        // Inside a user namespace whose map lacks the id (`unshare -r`), chown says EINVAL.
        let probe = layer.join("mine");
        let c = cstring(probe.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path.
        if unsafe { libc::chown(c.as_ptr(), 54321, gid) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
        {
            let (_t, _o, strict_layer) = setup();
            let strict = UnpackOptions::default();
            let err = unpack_layer(&tar[..], &strict_layer, &diff_id_of(&tar), strict).unwrap_err();
            assert!(
                matches!(
                    &err,
                    StorageError::UnmappedOwner {
                        kind: "uid",
                        id: 54321,
                        ..
                    }
                ),
                "{err}"
            );
        }
        let msg = StorageError::UnmappedOwner {
            layer: Digest::sha256_of(b""),
            path: "usr/bin/x".into(),
            kind: "uid",
            id: 100000,
            file: "/etc/subuid",
        }
        .to_string();
        assert!(msg.contains("file usr/bin/x is owned by uid 100000, outside the ids mapped"));
        assert!(msg.ends_with("give your user more subordinate ids in /etc/subuid"));
    }

    /// Whether this process can make overlay whiteouts and set `user.*` xattrs here.
    fn can_make_whiteouts(dir: &Path) -> bool {
        let probe = cstring(dir.join("probe").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path.
        let ok = unsafe { libc::mknod(probe.as_ptr(), libc::S_IFCHR, 0) } == 0;
        let _ = fs::remove_file(dir.join("probe"));
        ok && xattr::probe(dir)
    }

    mod xattr {
        use super::*;
        pub fn probe(dir: &Path) -> bool {
            let fd = safe_fs::open_dir(dir).unwrap();
            let ok = safe_fs::fsetxattr(fd.as_fd(), c"user.burrow-probe", b"1").is_ok();
            // SAFETY: valid fd and name.
            unsafe {
                libc::fremovexattr(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    c"user.burrow-probe".as_ptr(),
                )
            };
            ok
        }
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        let (_t, _o, layer) = setup();
        if !can_make_whiteouts(&layer) {
            println!("skipped: creating a 0:0 char device needs root or a user namespace");
            return;
        }
        let tar = TarBuilder::new()
            .file("gone", b"shadowed in this layer", 0o644)
            .file(".wh.gone", b"", 0o644)
            .dir("a", 0o755)
            .file("a/keep", b"k", 0o644)
            .file("a/.wh..wh..opq", b"", 0o644)
            .file("missing/parent/.wh.x", b"", 0o644)
            .file("new/.wh..wh..opq", b"", 0o644)
            .file(".wh..wh.plnk", b"", 0o644)
            .device("already-whiteout", 0, 0)
            .finish();
        unpack(&tar, &layer).unwrap();
        for p in ["gone", "missing/parent/x", "already-whiteout"] {
            let m = fs::symlink_metadata(layer.join(p)).unwrap();
            assert!(m.file_type().is_char_device() && m.rdev() == 0, "{p}");
        }
        let opaque = |p: &str| {
            let path = cstring(layer.join(p).as_os_str().as_encoded_bytes()).unwrap();
            let mut buf = [0u8; 4];
            // SAFETY: valid path, name and buffer.
            let n = unsafe {
                libc::getxattr(
                    path.as_ptr(),
                    OPAQUE_XATTR.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    4,
                )
            };
            n == 1 && buf[0] == b'y'
        };
        assert!(opaque("a") && opaque("new"));
        assert!(layer.join("a/keep").exists());
        let mut names = Vec::new();
        let mut stack = vec![layer.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                names.push(e.file_name().to_string_lossy().into_owned());
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                }
            }
        }
        assert!(names.iter().all(|n| !n.starts_with(".wh.")), "{names:?}");
    }
}
