//! The overlay filesystem served over FUSE: lookups over the layers, copy-up, whiteouts,
//! opaque directories and merged listings, in the kernel overlay's on-disk format
//! (`userxattr`), so that a container's upper directory is valid for either driver.
//!
//! Inodes. A node is a name in the merged tree (its parent node and name, plus further names
//! for hard links); its path in a layer is rebuilt from the chain of parents, so renaming a
//! directory moves everything below it at once. Inode numbers are stable for the session:
//! a directory keeps its number by (parent, name), anything else by the (device, inode) of
//! its file in the topmost layer holding it, carried over when it is copied up. Hard links
//! in the upper layer thus share a number; `readdir` reports the same numbers.
//!
//! Locking. `table` guards the node table and is held only for bookkeeping, never across
//! I/O. `ns` serialises everything that changes the upper layer's tree (create, unlink,
//! rename, copy-up...); reads, writes and lookups run in parallel on the server's threads.
//!
//! Caching. The kernel runs a writeback cache over our files (`FUSE_WRITEBACK_CACHE`): it
//! keeps the size and times of regular files itself, sends dirty pages in large writes and
//! times with setattr, and may read through a handle opened write-only, which we therefore
//! open read-write. Listings come with attributes (`readdirplus`, a counted lookup per
//! entry), so walking a tree costs a request per directory, not one per entry.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::layout::{self, EntryKind, ListEntry, Probe, Resolved};
use super::splice_reply::SpliceReplier;
use super::sys::{self, R, cpath, join};

/// The xattr that makes a directory of the upper layer hide the layers below.
pub const OPAQUE_XATTR: &CStr = c"user.overlay.opaque";
/// How long the kernel may cache names and attributes. All changes go through us, so the
/// kernel's caches only go stale if someone writes to the layers behind our back.
const TTL: Duration = Duration::from_secs(1);
/// Marks a file handle opened on a lower layer.
const LOWER_FH: u64 = 1 << 32;
const UPPER: usize = 0;
const ROOT: u64 = 1;

/// Overlay metadata: hidden from and protected against the container, never copied.
pub fn is_private_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.overlay.") || name.starts_with(b"trusted.overlay.")
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

struct Node {
    /// 0 once the node has no name left (deleted while the kernel still knows it).
    parent: u64,
    name: OsString,
    /// Further names of a hard-linked file.
    aliases: Vec<(u64, OsString)>,
    /// `S_IFMT` bits.
    fmt: u32,
    /// Topmost layer holding it.
    layer: usize,
    /// For a directory, the layers merged, top first.
    dirs: Vec<usize>,
    /// (device, inode) of a non-directory's file in `layer`.
    file_key: Option<(u64, u64)>,
    lookups: u64,
    opens: u32,
    /// An `O_PATH` descriptor kept when the last name of an open file goes away.
    orphan: Option<OwnedFd>,
    /// Known to have no `security.capability`, which the kernel asks about on every write.
    no_caps: bool,
}

/// The node table's maps, looked up for every entry of every listing: foldhash (seeded per
/// process) is several times faster than the default SipHash; its weaker resistance to
/// crafted keys would only let a container slow down its own filesystem.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Table {
    nodes: Map<u64, Node>,
    files: Map<(u64, u64), u64>,
    dirs: Map<(u64, OsString), u64>,
    next: u64,
}

impl Table {
    fn path(&self, ino: u64) -> R<Vec<u8>> {
        let mut names: Vec<&OsStr> = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            let n = self.nodes.get(&cur).ok_or(libc::ESTALE)?;
            if n.parent == 0 {
                return Err(libc::ENOENT);
            }
            names.push(&n.name);
            cur = n.parent;
            if names.len() > 8192 {
                return Err(libc::ELOOP);
            }
        }
        let mut p = Vec::new();
        for (i, n) in names.iter().rev().enumerate() {
            if i > 0 {
                p.push(b'/');
            }
            p.extend_from_slice(n.as_bytes());
        }
        Ok(p)
    }

    fn node(&self, ino: u64) -> R<&Node> {
        self.nodes.get(&ino).ok_or(libc::ESTALE)
    }

    fn node_mut(&mut self, ino: u64) -> R<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(libc::ESTALE)
    }

    fn alloc(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn file_ino(&mut self, key: (u64, u64)) -> u64 {
        if let Some(&i) = self.files.get(&key) {
            return i;
        }
        let i = self.alloc();
        self.files.insert(key, i);
        i
    }

    fn dir_ino(&mut self, parent: u64, name: &OsStr) -> u64 {
        if let Some(&i) = self.dirs.get(&(parent, name.to_os_string())) {
            return i;
        }
        let i = self.alloc();
        self.dirs.insert((parent, name.to_os_string()), i);
        i
    }

    /// Record what a lookup found at (parent, name) and count the lookup.
    fn intern(&mut self, parent: u64, name: &OsStr, r: &Resolved, st: &libc::stat) -> u64 {
        let fmt = st.st_mode & libc::S_IFMT;
        let key = (!r.is_dir).then_some((st.st_dev, st.st_ino));
        let mut ino = match key {
            Some(k) => self.file_ino(k),
            None => self.dir_ino(parent, name),
        };
        if let Some(n) = self.nodes.get(&ino)
            && (n.fmt == libc::S_IFDIR) != r.is_dir
        {
            // A stale number (the tree changed behind our back): start afresh.
            ino = self.alloc();
            match key {
                Some(k) => self.files.insert(k, ino),
                None => self.dirs.insert((parent, name.to_os_string()), ino),
            };
        }
        let node = self.nodes.entry(ino).or_insert_with(|| Node {
            parent,
            name: name.to_os_string(),
            aliases: Vec::new(),
            fmt,
            layer: r.top,
            dirs: Vec::new(),
            file_key: key,
            lookups: 0,
            opens: 0,
            orphan: None,
            no_caps: false,
        });
        node.layer = r.top;
        node.dirs = r.dirs.clone();
        node.file_key = key;
        node.fmt = fmt;
        if node.parent == 0 {
            node.parent = parent;
            node.name = name.to_os_string();
        } else if (node.parent, node.name.as_os_str()) != (parent, name)
            && !node.aliases.iter().any(|(p, n)| *p == parent && n == name)
        {
            node.aliases.push((parent, name.to_os_string()));
        }
        node.lookups += 1;
        ino
    }

    /// (parent, name) no longer names `ino`. `gone`: the file itself no longer exists, so its
    /// (device, inode) may be reused by a new file.
    fn remove_name(&mut self, ino: u64, parent: u64, name: &OsStr, gone: bool) {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        if (node.parent, node.name.as_os_str()) == (parent, name) {
            if let Some((p, n)) = node.aliases.pop() {
                node.parent = p;
                node.name = n;
            } else {
                node.parent = 0;
                node.name.clear();
            }
        } else {
            node.aliases.retain(|(p, n)| !(*p == parent && n == name));
        }
        let (key, is_dir) = (node.file_key, node.fmt == libc::S_IFDIR);
        if is_dir {
            let k = (parent, name.to_os_string());
            if self.dirs.get(&k) == Some(&ino) {
                self.dirs.remove(&k);
            }
        } else if gone
            && let Some(k) = key
            && self.files.get(&k) == Some(&ino)
        {
            self.files.remove(&k);
        }
        self.maybe_drop(ino);
    }

    fn maybe_drop(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get(&ino)
            && n.parent == 0
            && n.lookups == 0
            && n.opens == 0
            && ino != ROOT
        {
            self.nodes.remove(&ino);
        }
    }
}

/// One entry of a directory snapshot taken at opendir.
struct DirOut {
    ino: u64,
    kind: FileType,
    name: OsString,
}

/// The filesystem.
pub struct OverlayFs {
    /// Layer directories (`O_PATH`), upper first, then the image's layers from the top down.
    layers: Vec<OwnedFd>,
    layer_dev: Vec<u64>,
    work: OwnedFd,
    table: Mutex<Table>,
    ns: Mutex<()>,
    dir_handles: Mutex<HashMap<u64, Arc<Vec<DirOut>>>>,
    next_handle: AtomicU64,
    tmp_seq: AtomicU64,
    volatile: bool,
    /// Answers reads without copying the data through the server; see `splice_reply`.
    splicer: Option<SpliceReplier>,
}

fn open_dir(p: &Path) -> std::io::Result<OwnedFd> {
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    sys::openat(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(std::io::Error::from_raw_os_error)
}

fn file_type(fmt: u32) -> FileType {
    match fmt {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

fn attr(ino: u64, st: &libc::stat, merged_dir: bool) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: UNIX_EPOCH,
        kind: file_type(st.st_mode & libc::S_IFMT),
        perm: (st.st_mode & 0o7777) as u16,
        // As the kernel overlay does: a merged directory's link count is unknown.
        nlink: if merged_dir { 1 } else { st.st_nlink as u32 },
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

fn negative() -> FileAttr {
    // SAFETY: a zeroed stat is a valid value.
    attr(0, &unsafe { std::mem::zeroed() }, false)
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
            Err(e) => {
                let d = e.duration();
                let (mut s, mut ns) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i64));
                if ns < 0 {
                    s -= 1;
                    ns += 1_000_000_000;
                }
                libc::timespec {
                    tv_sec: s as libc::time_t,
                    tv_nsec: ns as libc::c_long,
                }
            }
        },
    }
}

/// Answer getxattr/listxattr: the size alone when asked with a size of 0, ERANGE when the
/// value does not fit the caller's buffer.
fn reply_xattr(reply: ReplyXattr, size: u32, value: R<Vec<u8>>) {
    match value {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::from_i32(libc::ERANGE)),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(e)),
    }
}

fn fh_fd(fh: FileHandle) -> RawFd {
    (fh.0 & 0xffff_ffff) as RawFd
}

/// Open a file for a handle. With the writeback cache the kernel reads through any handle
/// to fill a page it writes in part, so a write-only open is made read-write (`O_APPEND` is
/// the kernel's business too and never reaches the layer). Falls back to write-only if the
/// file is not readable to the server.
fn writable(flags: i32, open: impl Fn(i32) -> R<OwnedFd>) -> R<OwnedFd> {
    if flags & libc::O_ACCMODE != libc::O_WRONLY {
        return open(flags);
    }
    let rw = (flags & !libc::O_ACCMODE) | libc::O_RDWR;
    match open(rw) {
        Err(libc::EACCES) | Err(libc::EPERM) => open(flags),
        other => other,
    }
}

impl OverlayFs {
    /// Open the layers: `lower` lowest first, as [`crate::runtime::rootfs::Layers`] has them.
    pub fn new(
        lower: &[PathBuf],
        upper: &Path,
        work: &Path,
        volatile: bool,
    ) -> std::io::Result<OverlayFs> {
        let mut layers = vec![open_dir(upper)?];
        for l in lower.iter().rev() {
            layers.push(open_dir(l)?);
        }
        let layer_dev = layers
            .iter()
            .map(|fd| sys::fstat(fd.as_raw_fd()).map(|st| st.st_dev).unwrap_or(0))
            .collect();
        let fs = OverlayFs {
            layers,
            layer_dev,
            work: open_dir(work)?,
            table: Mutex::new(Table {
                next: ROOT,
                ..Default::default()
            }),
            ns: Mutex::new(()),
            dir_handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            tmp_seq: AtomicU64::new(0),
            volatile,
            splicer: None,
        };
        let all: Vec<usize> = (0..fs.layers.len()).collect();
        let root = fs
            .resolve(&all, b"")
            .map_err(std::io::Error::from_raw_os_error)?
            .filter(|(r, _)| r.is_dir && r.top == UPPER)
            .ok_or_else(|| std::io::Error::other("the upper layer's root is not a directory"))?;
        fs.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .nodes
            .insert(
                ROOT,
                Node {
                    parent: ROOT,
                    name: OsString::new(),
                    aliases: Vec::new(),
                    fmt: libc::S_IFDIR,
                    layer: UPPER,
                    dirs: root.0.dirs,
                    file_key: None,
                    lookups: 1,
                    opens: 0,
                    orphan: None,
                    no_caps: false,
                },
            );
        Ok(fs)
    }

    /// Descriptors the server process must keep.
    /// Answer reads by splicing file data to `dev`, the mount's `/dev/fuse`.
    pub fn reply_by_splice(&mut self, dev: OwnedFd) {
        self.splicer = Some(SpliceReplier::new(dev));
    }

    pub fn fds(&self) -> Vec<RawFd> {
        let mut v: Vec<RawFd> = self.layers.iter().map(|f| f.as_raw_fd()).collect();
        v.push(self.work.as_raw_fd());
        v
    }

    fn fd(&self, layer: usize) -> RawFd {
        self.layers[layer].as_raw_fd()
    }

    fn upper(&self) -> RawFd {
        self.fd(UPPER)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ns_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.ns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the directory `path` (relative to the directory `base`) is opaque.
    fn is_opaque(&self, base: RawFd, path: &CStr) -> bool {
        let Ok(fd) = sys::openat(
            base,
            path,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) else {
            return false;
        };
        sys::fgetxattr(fd.as_raw_fd(), OPAQUE_XATTR).is_ok_and(|v| v == b"y")
    }

    /// What a layer has at `path`, relative to `base` (the layer's root or a directory in it).
    fn probe(&self, base: RawFd, path: &CStr, opacity: bool) -> R<(Probe, Option<libc::stat>)> {
        match sys::lstatat(base, path) {
            Err(libc::ENOENT) | Err(libc::ENOTDIR) => Ok((Probe::Missing, None)),
            Err(e) => Err(e),
            Ok(st) if sys::is_whiteout(&st) => Ok((Probe::Whiteout, Some(st))),
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok((
                Probe::Dir {
                    opaque: opacity && self.is_opaque(base, path),
                },
                Some(st),
            )),
            Ok(st) => Ok((Probe::NonDir, Some(st))),
        }
    }

    /// Resolve `path` over `layers`; with the stat of its topmost copy.
    fn resolve(&self, layers: &[usize], path: &[u8]) -> R<Option<(Resolved, libc::stat)>> {
        self.resolve_at(layers, |l| Some(self.fd(l)), &cpath(path))
    }

    /// Resolve `path` over `layers`, each layer's copy relative to `base(layer)` (`None`: the
    /// layer has no such directory).
    fn resolve_at(
        &self,
        layers: &[usize],
        base: impl Fn(usize) -> Option<RawFd>,
        path: &CStr,
    ) -> R<Option<(Resolved, libc::stat)>> {
        let mut top = None;
        let r = layout::resolve(layers, |l, more| {
            let Some(fd) = base(l) else {
                return Ok(Probe::Missing);
            };
            let (p, st) = self.probe(fd, path, more)?;
            if top.is_none() && p != Probe::Missing {
                top = st;
            }
            Ok::<Probe, sys::Errno>(p)
        })?;
        Ok(r.and_then(|r| top.map(|st| (r, st))))
    }

    /// Whether `path` is visible in the lower layers among `layers`: deleting it from the
    /// upper layer then needs a whiteout.
    fn lower_has(&self, layers: &[usize], path: &[u8]) -> R<bool> {
        let c = cpath(path);
        let lower: Vec<usize> = layers.iter().copied().filter(|&l| l != UPPER).collect();
        layout::visible_in(&lower, |l| self.probe(self.fd(l), &c, false).map(|p| p.0))
    }

    /// The path and merged layers of directory `ino`.
    fn dir_info(&self, ino: u64) -> R<(Vec<u8>, Vec<usize>)> {
        let t = self.table();
        let n = t.node(ino)?;
        if n.fmt != libc::S_IFDIR {
            return Err(libc::ENOTDIR);
        }
        Ok((t.path(ino)?, n.dirs.clone()))
    }

    /// Find (parent, name): its path, the parent's layers, and what is there.
    #[allow(clippy::type_complexity)]
    fn find(
        &self,
        parent: u64,
        name: &OsStr,
    ) -> R<(Vec<u8>, Vec<usize>, Option<(Resolved, libc::stat)>)> {
        let (ppath, pdirs) = self.dir_info(parent)?;
        let path = join(&ppath, name);
        let found = self.resolve(&pdirs, &path)?;
        Ok((path, pdirs, found))
    }

    /// The node number of what `find` found, without counting a lookup.
    fn existing_ino(
        &self,
        parent: u64,
        name: &OsStr,
        r: &Resolved,
        st: &libc::stat,
    ) -> Option<u64> {
        let t = self.table();
        if r.is_dir {
            t.dirs.get(&(parent, name.to_os_string())).copied()
        } else {
            t.files.get(&(st.st_dev, st.st_ino)).copied()
        }
    }

    fn stat_node(&self, ino: u64) -> R<(libc::stat, bool)> {
        let (layer, path, merged) = {
            let t = self.table();
            let n = t.node(ino)?;
            match t.path(ino) {
                Ok(p) => (n.layer, p, n.dirs.len() > 1),
                Err(e) => {
                    return match &n.orphan {
                        Some(fd) => sys::fstat(fd.as_raw_fd()).map(|st| (st, false)),
                        None => Err(e),
                    };
                }
            }
        };
        Ok((sys::lstatat(self.fd(layer), &cpath(&path))?, merged))
    }

    fn tmp_name(&self) -> CString {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        CString::new(format!("burrow-copyup-{}-{n}", std::process::id()))
            .unwrap_or_else(|_| c"burrow-copyup".into())
    }

    /// Make `ino` (and its parents) exist in the upper layer. `data`: copy a file's content
    /// too (not when it is about to be truncated to nothing). The caller holds `ns`.
    fn copy_up(&self, ino: u64, data: bool) -> R<()> {
        let (layer, parent, path, fmt) = {
            let t = self.table();
            let n = t.node(ino)?;
            if n.layer == UPPER {
                return Ok(());
            }
            (n.layer, n.parent, t.path(ino)?, n.fmt)
        };
        self.copy_up(parent, true)?;
        let src = self.fd(layer);
        let cp = cpath(&path);
        let st = sys::lstatat(src, &cp)?;
        let up = self.upper();
        // Adding the child changes the parent's times; as the kernel's overlay, give them
        // back, or every copy-up would show its directories as modified now.
        let parent_cp = cpath(&path[..path.iter().rposition(|&b| b == b'/').unwrap_or(0)]);
        let parent_st = sys::lstatat(up, &parent_cp)?;
        let mode = st.st_mode & 0o7777;
        let times = sys::times_of(&st);
        match fmt {
            libc::S_IFDIR => {
                match sys::mkdirat(up, &cp, 0o700) {
                    Ok(()) | Err(libc::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                sys::fchownat(up, &cp, st.st_uid, st.st_gid)?;
                sys::fchmodat(up, &cp, mode)?;
                if let (Ok(from), Ok(to)) = (
                    sys::openat(
                        src,
                        &cp,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    ),
                    sys::openat(
                        up,
                        &cp,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    ),
                ) {
                    sys::copy_xattrs(from.as_raw_fd(), to.as_raw_fd());
                }
                sys::utimensat(up, &cp, &times)?;
            }
            _ => {
                let tmp = self.tmp_name();
                let work = self.work.as_raw_fd();
                let made = (|| -> R<()> {
                    match fmt {
                        libc::S_IFREG => {
                            let to = sys::openat(
                                work,
                                &tmp,
                                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                                0o600,
                            )?;
                            let from = sys::openat(src, &cp, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                            if data {
                                sys::copy_data(from.as_raw_fd(), to.as_raw_fd())?;
                            }
                            sys::fchown(to.as_raw_fd(), st.st_uid, st.st_gid)?;
                            sys::fchmod(to.as_raw_fd(), mode)?;
                            sys::copy_xattrs(from.as_raw_fd(), to.as_raw_fd());
                            if !self.volatile && data {
                                // SAFETY: plain syscall.
                                unsafe { libc::fdatasync(to.as_raw_fd()) };
                            }
                        }
                        libc::S_IFLNK => {
                            let target = sys::readlinkat(src, &cp)?;
                            let target = CString::new(target).map_err(|_| libc::EINVAL)?;
                            sys::symlinkat(&target, work, &tmp)?;
                            sys::fchownat(work, &tmp, st.st_uid, st.st_gid)?;
                        }
                        _ => {
                            sys::mknodat(work, &tmp, st.st_mode, st.st_rdev)?;
                            sys::fchownat(work, &tmp, st.st_uid, st.st_gid)?;
                            if fmt != libc::S_IFLNK {
                                sys::fchmodat(work, &tmp, mode)?;
                            }
                        }
                    }
                    sys::utimensat(work, &tmp, &times)?;
                    sys::renameat(work, &tmp, up, &cp, 0)
                })();
                if let Err(e) = made {
                    let _ = sys::unlinkat(work, &tmp, 0);
                    return Err(e);
                }
            }
        }
        // Best effort: the copy-up itself succeeded.
        let _ = sys::utimensat(up, &parent_cp, &sys::times_of(&parent_st));
        let new = sys::lstatat(up, &cp)?;
        let mut t = self.table();
        let n = t.node_mut(ino)?;
        n.layer = UPPER;
        if fmt == libc::S_IFDIR {
            if n.dirs.first() != Some(&UPPER) {
                n.dirs.insert(0, UPPER);
            }
        } else {
            let old = n.file_key.replace((new.st_dev, new.st_ino));
            if let Some(k) = old
                && t.files.get(&k) == Some(&ino)
            {
                t.files.remove(&k);
            }
            t.files.insert((new.st_dev, new.st_ino), ino);
        }
        Ok(())
    }

    /// Get (parent, name) ready for a new entry in the upper layer: parent copied up, a
    /// whiteout there removed. Returns the path, the parent's upper stat and whether a
    /// whiteout was removed (a new directory must then be opaque). The caller holds `ns`.
    fn prepare_new(&self, parent: u64, name: &OsStr) -> R<(Vec<u8>, libc::stat, bool)> {
        self.copy_up(parent, true)?;
        let ppath = self.table().path(parent)?;
        let path = join(&ppath, name);
        let cp = cpath(&path);
        let had_whiteout = match sys::lstatat(self.upper(), &cp) {
            Ok(st) if sys::is_whiteout(&st) => {
                sys::unlinkat(self.upper(), &cp, 0)?;
                true
            }
            Ok(_) => return Err(libc::EEXIST),
            Err(libc::ENOENT) => false,
            Err(e) => return Err(e),
        };
        let pst = sys::lstatat(self.upper(), &cpath(&ppath))?;
        Ok((path, pst, had_whiteout))
    }

    /// Give a new entry its owner (the caller; the group of a set-group-ID parent) and mode.
    fn finish_new(
        &self,
        cp: &CStr,
        req: &Request,
        pst: &libc::stat,
        mode: u32,
        is_dir: bool,
    ) -> R<()> {
        let symlink = mode & libc::S_IFMT == libc::S_IFLNK;
        let sgid_parent = pst.st_mode & libc::S_ISGID != 0;
        let gid = if sgid_parent { pst.st_gid } else { req.gid() };
        let default_gid = if sgid_parent { pst.st_gid } else { 0 };
        if req.uid() != 0 || gid != default_gid {
            sys::fchownat(self.upper(), cp, req.uid(), gid)?;
        }
        let mut mode = mode & 0o7777;
        if is_dir && sgid_parent {
            mode |= libc::S_ISGID;
        }
        if !symlink {
            sys::fchmodat(self.upper(), cp, mode)?;
        }
        Ok(())
    }

    /// Register a new upper entry at (parent, name) as a fresh node and count a lookup.
    fn new_node(&self, parent: u64, name: &OsStr, st: &libc::stat) -> u64 {
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let mut t = self.table();
        if is_dir {
            t.dirs.remove(&(parent, name.to_os_string()));
        } else {
            t.files.remove(&(st.st_dev, st.st_ino));
        }
        let r = Resolved {
            top: UPPER,
            is_dir,
            dirs: if is_dir { vec![UPPER] } else { Vec::new() },
        };
        t.intern(parent, name, &r, st)
    }

    /// The merged listing of directory `ino`.
    fn listing(&self, ino: u64) -> R<Vec<DirOut>> {
        let (path, dirs, parent) = {
            let t = self.table();
            let n = t.node(ino)?;
            (
                t.path(ino)?,
                n.dirs.clone(),
                if ino == ROOT { ROOT } else { n.parent },
            )
        };
        let cp = cpath(&path);
        let mut listings = Vec::with_capacity(dirs.len());
        for &l in &dirs {
            let fd = match sys::openat(
                self.fd(l),
                &cp,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            ) {
                Ok(fd) => fd,
                Err(libc::ENOENT) | Err(libc::ENOTDIR) => continue,
                Err(e) => return Err(e),
            };
            let dfd = fd.as_raw_fd();
            // SAFETY: dup of a valid descriptor; read_dir takes ownership of the copy.
            let copy = unsafe { libc::fcntl(dfd, libc::F_DUPFD_CLOEXEC, 0) };
            if copy < 0 {
                return Err(sys::last());
            }
            // SAFETY: a new descriptor owned here.
            let ents = sys::read_dir(unsafe { OwnedFd::from_raw_fd(copy) })?;
            let mut v = Vec::with_capacity(ents.len());
            for (name, ty, dino) in ents {
                let kind = match ty {
                    libc::DT_DIR => EntryKind::Dir,
                    libc::DT_REG => EntryKind::Other(libc::S_IFREG),
                    libc::DT_LNK => EntryKind::Other(libc::S_IFLNK),
                    libc::DT_FIFO => EntryKind::Other(libc::S_IFIFO),
                    libc::DT_SOCK => EntryKind::Other(libc::S_IFSOCK),
                    libc::DT_BLK => EntryKind::Other(libc::S_IFBLK),
                    _ => {
                        let c = CString::new(name.clone()).map_err(|_| libc::EINVAL)?;
                        match sys::lstatat(dfd, &c) {
                            Ok(st) if sys::is_whiteout(&st) => EntryKind::Whiteout,
                            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => EntryKind::Dir,
                            Ok(st) => EntryKind::Other(st.st_mode & libc::S_IFMT),
                            Err(_) => continue,
                        }
                    }
                };
                v.push(ListEntry {
                    name: OsString::from_vec(name),
                    kind,
                    ino: dino,
                });
            }
            listings.push((l, v));
        }
        let merged = layout::merge_listing(listings);
        let mut t = self.table();
        let mut out = Vec::with_capacity(merged.len() + 2);
        out.push(DirOut {
            ino,
            kind: FileType::Directory,
            name: ".".into(),
        });
        out.push(DirOut {
            ino: parent,
            kind: FileType::Directory,
            name: "..".into(),
        });
        for (l, e) in merged {
            let (ino, kind) = match e.kind {
                EntryKind::Dir => (t.dir_ino(ino, &e.name), FileType::Directory),
                EntryKind::Other(fmt) => (t.file_ino((self.layer_dev[l], e.ino)), file_type(fmt)),
                EntryKind::Whiteout => continue,
            };
            out.push(DirOut {
                ino,
                kind,
                name: e.name,
            });
        }
        Ok(out)
    }

    /// Empty an upper directory that the merged view shows empty: it holds only whiteouts.
    fn clear_whiteouts(&self, path: &[u8]) -> R<()> {
        let cp = cpath(path);
        let fd = sys::openat(
            self.upper(),
            &cp,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        // SAFETY: dup of a valid descriptor.
        let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if copy < 0 {
            return Err(sys::last());
        }
        // SAFETY: a new descriptor owned here.
        for (name, _, _) in sys::read_dir(unsafe { OwnedFd::from_raw_fd(copy) })? {
            let c = CString::new(name).map_err(|_| libc::EINVAL)?;
            match sys::lstatat(fd.as_raw_fd(), &c) {
                Ok(st) if sys::is_whiteout(&st) => sys::unlinkat(fd.as_raw_fd(), &c, 0)?,
                Ok(_) => return Err(libc::ENOTEMPTY),
                Err(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Open `ino`'s file for xattr calls (regular files and directories only).
    /// Set or remove an extended attribute of `ino` with `change`, on its copy in the upper
    /// layer. Overlay metadata is not the container's to change.
    fn change_xattr(
        &self,
        ino: u64,
        name: &OsStr,
        change: impl FnOnce(RawFd, &CStr) -> R<()>,
    ) -> R<()> {
        if is_private_xattr(name.as_bytes()) {
            return Err(libc::EPERM);
        }
        let cname = CString::new(name.as_bytes()).map_err(|_| libc::EINVAL)?;
        let _ns = self.ns_lock();
        self.copy_up(ino, true)?;
        if let Some(n) = self.table().nodes.get_mut(&ino) {
            n.no_caps = false;
        }
        let fd = self.open_for_xattr(ino, true)?;
        change(fd.as_raw_fd(), &cname)
    }

    fn open_for_xattr(&self, ino: u64, upper: bool) -> R<OwnedFd> {
        let (layer, path, fmt) = {
            let t = self.table();
            let n = t.node(ino)?;
            (n.layer, t.path(ino)?, n.fmt)
        };
        let layer = if upper { UPPER } else { layer };
        let flags = match fmt {
            libc::S_IFDIR => libc::O_RDONLY | libc::O_DIRECTORY,
            libc::S_IFREG => libc::O_RDONLY | libc::O_NONBLOCK,
            _ => return Err(libc::ENOTSUP),
        };
        sys::openat(self.fd(layer), &cpath(&path), flags | libc::O_NOFOLLOW, 0)
    }

    fn forget_one(&self, ino: u64, nlookup: u64) {
        let mut t = self.table();
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.lookups = n.lookups.saturating_sub(nlookup);
        }
        t.maybe_drop(ino);
    }

    fn do_lookup(&self, parent: u64, name: &OsStr) -> R<Option<FileAttr>> {
        let (_, _, found) = self.find(parent, name)?;
        Ok(found.map(|(r, st)| self.counted_lookup(parent, name, &r, &st)))
    }

    /// `do_lookup` of an entry of `parent`, whose directory in each of `layers` (the
    /// parent's) is open as `base(layer)`.
    fn lookup_at(
        &self,
        parent: u64,
        layers: &[usize],
        base: &impl Fn(usize) -> Option<RawFd>,
        name: &OsStr,
    ) -> R<Option<FileAttr>> {
        let c = CString::new(name.as_bytes()).map_err(|_| libc::EINVAL)?;
        let found = self.resolve_at(layers, base, &c)?;
        Ok(found.map(|(r, st)| self.counted_lookup(parent, name, &r, &st)))
    }

    /// Count a lookup of what (parent, name) resolved to, and its attributes.
    fn counted_lookup(&self, parent: u64, name: &OsStr, r: &Resolved, st: &libc::stat) -> FileAttr {
        let ino = self.table().intern(parent, name, r, st);
        attr(ino, st, r.dirs.len() > 1)
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> R<FileAttr> {
        let _ns = self.ns_lock();
        self.copy_up(ino, size != Some(0))?;
        let path = self.table().path(ino)?;
        let cp = cpath(&path);
        let up = self.upper();
        if uid.is_some() || gid.is_some() {
            sys::fchownat(up, &cp, uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX))?;
        }
        if let Some(m) = mode {
            sys::fchmodat(up, &cp, m & 0o7777)?;
        }
        if let Some(s) = size {
            match fh.filter(|h| h.0 & LOWER_FH == 0) {
                Some(h) => sys::ftruncate(fh_fd(h), s)?,
                None => {
                    let f = sys::openat(
                        up,
                        &cp,
                        libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                        0,
                    )?;
                    sys::ftruncate(f.as_raw_fd(), s)?;
                }
            }
        }
        if atime.is_some() || mtime.is_some() {
            sys::utimensat(up, &cp, &[timespec(atime), timespec(mtime)])?;
        }
        let (st, merged) = self.stat_node(ino)?;
        Ok(attr(ino, &st, merged))
    }

    fn do_create_entry(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        make: impl FnOnce(RawFd, &CStr) -> R<Option<OwnedFd>>,
        mode: u32,
        is_dir: bool,
    ) -> R<(FileAttr, Option<OwnedFd>)> {
        let _ns = self.ns_lock();
        let (path, pst, had_whiteout) = self.prepare_new(parent, name)?;
        let cp = cpath(&path);
        let fd = make(self.upper(), &cp)?;
        let done = (|| -> R<libc::stat> {
            if is_dir && had_whiteout {
                let d = sys::openat(
                    self.upper(),
                    &cp,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                sys::fsetxattr(d.as_raw_fd(), OPAQUE_XATTR, b"y", 0)?;
            }
            self.finish_new(&cp, req, &pst, mode, is_dir)?;
            sys::lstatat(self.upper(), &cp)
        })();
        let st = match done {
            Ok(st) => st,
            Err(e) => {
                let _ = sys::unlinkat(
                    self.upper(),
                    &cp,
                    if is_dir { libc::AT_REMOVEDIR } else { 0 },
                );
                if had_whiteout {
                    let _ = sys::mknodat(self.upper(), &cp, libc::S_IFCHR, 0);
                }
                return Err(e);
            }
        };
        let ino = self.new_node(parent, name, &st);
        Ok((attr(ino, &st, false), fd))
    }

    fn do_unlink(&self, parent: u64, name: &OsStr, dir: bool) -> R<()> {
        let _ns = self.ns_lock();
        let (path, pdirs, found) = self.find(parent, name)?;
        let Some((r, st)) = found else {
            return Err(libc::ENOENT);
        };
        if dir != r.is_dir {
            return Err(if dir { libc::ENOTDIR } else { libc::EISDIR });
        }
        let ino = self.existing_ino(parent, name, &r, &st);
        if dir {
            let me = ino.ok_or(libc::ESTALE)?;
            if self.listing(me)?.len() > 2 {
                return Err(libc::ENOTEMPTY);
            }
        }
        let needs_whiteout = self.lower_has(&pdirs, &path)?;
        if needs_whiteout {
            self.copy_up(parent, true)?;
        }
        let cp = cpath(&path);
        let mut gone = false;
        if r.top == UPPER {
            if dir {
                self.clear_whiteouts(&path)?;
                sys::unlinkat(self.upper(), &cp, libc::AT_REMOVEDIR)?;
            } else {
                if let Some(i) = ino {
                    self.keep_orphan(i, &cp, UPPER);
                }
                sys::unlinkat(self.upper(), &cp, 0)?;
                gone = st.st_nlink <= 1;
            }
        } else if let Some(i) = ino {
            self.keep_orphan(i, &cp, r.top);
        }
        if needs_whiteout {
            sys::mknodat(self.upper(), &cp, libc::S_IFCHR, 0)?;
        }
        if let Some(i) = ino {
            self.table().remove_name(i, parent, name, gone);
        }
        Ok(())
    }

    /// Before the last name of an open file goes, keep a way to stat it.
    fn keep_orphan(&self, ino: u64, cp: &CStr, layer: usize) {
        let needed = {
            let t = self.table();
            t.nodes
                .get(&ino)
                .is_some_and(|n| n.opens > 0 && n.aliases.is_empty() && n.orphan.is_none())
        };
        if needed
            && let Ok(fd) = sys::openat(self.fd(layer), cp, libc::O_PATH | libc::O_NOFOLLOW, 0)
            && let Some(n) = self.table().nodes.get_mut(&ino)
        {
            n.orphan = Some(fd);
        }
    }

    fn do_rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> R<()> {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return Err(libc::EINVAL);
        }
        let _ns = self.ns_lock();
        let (spath, spdirs, sfound) = self.find(parent, name)?;
        let Some((sr, sst)) = sfound else {
            return Err(libc::ENOENT);
        };
        let (dpath, dpdirs, dfound) = self.find(newparent, newname)?;
        let sino = self
            .existing_ino(parent, name, &sr, &sst)
            .ok_or(libc::ESTALE)?;
        let dino = dfound
            .as_ref()
            .and_then(|(r, st)| self.existing_ino(newparent, newname, r, st));
        if let Some((dr, dst)) = &dfound {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(libc::EEXIST);
            }
            if !sr.is_dir && !dr.is_dir && (sst.st_dev, sst.st_ino) == (dst.st_dev, dst.st_ino) {
                // Two names of one file: rename(2) does nothing.
                return Ok(());
            }
            if sr.is_dir && !dr.is_dir {
                return Err(libc::ENOTDIR);
            }
            if !sr.is_dir && dr.is_dir {
                return Err(libc::EISDIR);
            }
            if dr.is_dir {
                let d = dino.ok_or(libc::ESTALE)?;
                if self.listing(d)?.len() > 2 {
                    return Err(libc::ENOTEMPTY);
                }
            }
        }
        if sr.is_dir && sr.dirs != [UPPER] {
            // A directory with content in the image's layers: the kernel overlay without
            // redirect_dir says EXDEV, and callers (mv) copy instead.
            return Err(libc::EXDEV);
        }
        self.copy_up(sino, true)?;
        self.copy_up(parent, true)?;
        self.copy_up(newparent, true)?;
        let (scp, dcp) = (cpath(&spath), cpath(&dpath));
        let up = self.upper();
        let mut replaced_gone = false;
        match sys::lstatat(up, &dcp) {
            Ok(st) if sys::is_whiteout(&st) => sys::unlinkat(up, &dcp, 0)?,
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => self.clear_whiteouts(&dpath)?,
            Ok(st) => {
                replaced_gone = st.st_nlink <= 1;
                if let Some(d) = dino {
                    self.keep_orphan(d, &dcp, UPPER);
                }
            }
            Err(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let dst_in_lower = self.lower_has(&dpdirs, &dpath)?;
        sys::renameat(up, &scp, up, &dcp, 0)?;
        // As the kernel overlay: a directory moved into a merged directory is made opaque,
        // so that nothing of the image's layers ever shows through it.
        let into_merged = dpdirs.iter().any(|&l| l != UPPER);
        if sr.is_dir && (dst_in_lower || into_merged) {
            let d = sys::openat(
                up,
                &dcp,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            sys::fsetxattr(d.as_raw_fd(), OPAQUE_XATTR, b"y", 0)?;
        }
        if self.lower_has(&spdirs, &spath)? {
            sys::mknodat(up, &scp, libc::S_IFCHR, 0)?;
        }
        let mut t = self.table();
        if let Some(d) = dino
            && d != sino
        {
            t.remove_name(d, newparent, newname, replaced_gone);
        }
        if let Some(n) = t.nodes.get_mut(&sino) {
            if (n.parent, n.name.as_os_str()) == (parent, name) {
                n.parent = newparent;
                n.name = newname.to_os_string();
            } else {
                for a in n.aliases.iter_mut() {
                    if a.0 == parent && a.1 == name {
                        *a = (newparent, newname.to_os_string());
                    }
                }
            }
            if sr.is_dir {
                n.dirs = vec![UPPER];
            }
        }
        if sr.is_dir {
            t.dirs.remove(&(parent, name.to_os_string()));
            t.dirs.insert((newparent, newname.to_os_string()), sino);
        }
        Ok(())
    }

    fn do_link(&self, ino: u64, newparent: u64, newname: &OsStr) -> R<FileAttr> {
        let _ns = self.ns_lock();
        self.copy_up(ino, true)?;
        let (path, pst, _) = self.prepare_new(newparent, newname)?;
        let _ = pst;
        let src = self.table().path(ino)?;
        let cp = cpath(&path);
        sys::linkat(self.upper(), &cpath(&src), self.upper(), &cp)?;
        let st = sys::lstatat(self.upper(), &cp)?;
        let r = Resolved {
            top: UPPER,
            is_dir: false,
            dirs: Vec::new(),
        };
        let got = self.table().intern(newparent, newname, &r, &st);
        Ok(attr(got, &st, false))
    }

    fn do_open(&self, ino: u64, flags: i32) -> R<FileHandle> {
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if write {
            let _ns = self.ns_lock();
            self.copy_up(ino, flags & libc::O_TRUNC == 0)?;
        }
        let (layer, path) = {
            let t = self.table();
            (t.node(ino)?.layer, t.path(ino)?)
        };
        let oflags = (flags
            & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_APPEND | libc::O_DIRECT))
            | libc::O_NOFOLLOW;
        let fd = writable(oflags, |f| sys::openat(self.fd(layer), &cpath(&path), f, 0))?;
        if let Ok(n) = self.table().node_mut(ino) {
            n.opens += 1;
        }
        let raw = fd.as_raw_fd();
        std::mem::forget(fd);
        Ok(FileHandle(
            raw as u64 | if layer == UPPER { 0 } else { LOWER_FH },
        ))
    }

    fn do_read(
        &self,
        unique: u64,
        ino: u64,
        fh: FileHandle,
        offset: u64,
        size: u32,
        reply: ReplyData,
    ) {
        // A file opened read-only before it was copied up: read what is current.
        let reopened = if fh.0 & LOWER_FH != 0 {
            let t = self.table();
            match t.nodes.get(&ino) {
                Some(n) if n.layer == UPPER => {
                    let path = t.path(ino);
                    drop(t);
                    match path.and_then(|p| {
                        sys::openat(
                            self.upper(),
                            &cpath(&p),
                            libc::O_RDONLY | libc::O_NOFOLLOW,
                            0,
                        )
                    }) {
                        Ok(fd) => Some(fd),
                        Err(e) => return reply.error(errno(e)),
                    }
                }
                _ => None,
            }
        } else {
            None
        };
        let fd = reopened.as_ref().map_or(fh_fd(fh), |f| f.as_raw_fd());
        if let Some(splicer) = &self.splicer
            && splicer.reply(unique, fd, offset, size)
        {
            SpliceReplier::answered(reply);
            return;
        }
        thread_local! {
            // One read buffer per server thread, zeroed once.
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with_borrow_mut(|buf| {
            if buf.len() < size as usize {
                buf.resize(size as usize, 0);
            }
            match sys::pread_full(fd, &mut buf[..size as usize], offset) {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => reply.error(errno(e)),
            }
        });
    }
}

macro_rules! reply_or {
    ($reply:expr, $res:expr, $ok:expr) => {
        match $res {
            Ok(v) => $ok(v),
            Err(e) => $reply.error(errno(e)),
        }
    };
}

impl Filesystem for OverlayFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        for cap in [
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_CACHE_SYMLINKS,
            // The kernel caches writes and sends them in large batches; it keeps size and
            // times of regular files itself and sends them with setattr (see `writable`).
            InitFlags::FUSE_WRITEBACK_CACHE,
            // Entries come with their attributes: `ls -l`, `find` and `rm -r` of a tree cost
            // a request per directory rather than one per entry.
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
        ] {
            let _ = config.add_capabilities(cap);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.do_lookup(parent.0, name) {
            Ok(Some(a)) => reply.entry(&TTL, &a, Generation(0)),
            Ok(None) => reply.entry(&TTL, &negative(), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.forget_one(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let is_file = self
            .table()
            .nodes
            .get(&ino.0)
            .is_some_and(|n| n.fmt == libc::S_IFREG);
        let res = match fh {
            Some(h) if is_file && h.0 & LOWER_FH == 0 => sys::fstat(fh_fd(h)).map(|st| (st, false)),
            _ => self.stat_node(ino.0),
        };
        reply_or!(reply, res, |(st, merged)| reply
            .attr(&TTL, &attr(ino.0, &st, merged)));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let res = self.do_setattr(ino.0, mode, uid, gid, size, atime, mtime, fh);
        reply_or!(reply, res, |a| reply.attr(&TTL, &a));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let res = (|| {
            let (layer, path) = {
                let t = self.table();
                (t.node(ino.0)?.layer, t.path(ino.0)?)
            };
            sys::readlinkat(self.fd(layer), &cpath(&path))
        })();
        reply_or!(reply, res, |v: Vec<u8>| reply.data(&v));
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let m = mode & !umask;
        let res = self.do_create_entry(
            req,
            parent.0,
            name,
            |dir, cp| sys::mknodat(dir, cp, m, rdev as libc::dev_t).map(|_| None),
            m & 0o7777,
            false,
        );
        reply_or!(reply, res, |(a, _)| reply.entry(&TTL, &a, Generation(0)));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let m = mode & !umask & 0o7777;
        let res = self.do_create_entry(
            req,
            parent.0,
            name,
            |dir, cp| sys::mkdirat(dir, cp, m).map(|_| None),
            m,
            true,
        );
        reply_or!(reply, res, |(a, _)| reply.entry(&TTL, &a, Generation(0)));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_or!(reply, self.do_unlink(parent.0, name, false), |_| reply.ok());
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_or!(reply, self.do_unlink(parent.0, name, true), |_| reply.ok());
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let res = CString::new(target.as_os_str().as_bytes())
            .map_err(|_| libc::EINVAL)
            .and_then(|t| {
                self.do_create_entry(
                    req,
                    parent.0,
                    link_name,
                    |dir, cp| sys::symlinkat(&t, dir, cp).map(|_| None),
                    libc::S_IFLNK,
                    false,
                )
            });
        reply_or!(reply, res, |(a, _)| reply.entry(&TTL, &a, Generation(0)));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_or!(
            reply,
            self.do_rename(parent.0, name, newparent.0, newname, flags),
            |_| reply.ok()
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply_or!(reply, self.do_link(ino.0, newparent.0, newname), |a| reply
            .entry(&TTL, &a, Generation(0)));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        reply_or!(reply, self.do_open(ino.0, flags.0), |fh| reply
            .opened(fh, FopenFlags::FOPEN_KEEP_CACHE));
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.do_read(req.unique().0, ino.0, fh, offset, size, reply);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if fh.0 & LOWER_FH != 0 {
            return reply.error(Errno::EBADF);
        }
        reply_or!(
            reply,
            sys::pwrite_full(fh_fd(fh), data, offset),
            |n: usize| reply.written(n as u32)
        );
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to do on close (the writeback cache's dirty pages are written before the
        // kernel asks): ENOSYS tells the kernel to stop asking, saving a request per close.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // SAFETY: the descriptor was opened for this handle and the kernel releases it once.
        drop(unsafe { OwnedFd::from_raw_fd(fh_fd(fh)) });
        let mut t = self.table();
        if let Some(n) = t.nodes.get_mut(&ino.0) {
            n.opens = n.opens.saturating_sub(1);
            if n.opens == 0 {
                n.orphan = None;
            }
        }
        t.maybe_drop(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        if self.volatile || fh.0 & LOWER_FH != 0 {
            return reply.ok();
        }
        // SAFETY: plain syscalls on our descriptor.
        let rc = unsafe {
            if datasync {
                libc::fdatasync(fh_fd(fh))
            } else {
                libc::fsync(fh_fd(fh))
            }
        };
        if rc < 0 {
            reply.error(errno(sys::last()))
        } else {
            reply.ok()
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.listing(ino.0) {
            Ok(list) => {
                let h = self.next_handle.fetch_add(1, Ordering::Relaxed);
                self.dir_handles
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(h, Arc::new(list));
                reply.opened(FileHandle(h), FopenFlags::empty());
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let handles = self.dir_handles.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, e) in list.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), i as u64 + 1, e.kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let list = {
            let handles = self.dir_handles.lock().unwrap_or_else(|e| e.into_inner());
            match handles.get(&fh.0) {
                Some(l) => Arc::clone(l),
                None => return reply.error(Errno::EBADF),
            }
        };
        // The directory in each of its layers, opened once for the request: each entry is then
        // looked up by its name alone, not by a path the kernel walks from the layer's root.
        // A directory deleted while open lists "." and ".." alone, as an empty one.
        let (path, layers) = self.dir_info(ino.0).unwrap_or_default();
        let cp = cpath(&path);
        let dirs: Vec<(usize, Option<OwnedFd>)> = layers
            .iter()
            .map(|&l| {
                let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                (l, sys::openat(self.fd(l), &cp, flags, 0).ok())
            })
            .collect();
        let base = |l: usize| {
            dirs.iter()
                .find(|(dl, _)| *dl == l)
                .and_then(|(_, fd)| fd.as_ref().map(|f| f.as_raw_fd()))
        };
        for (i, e) in list.iter().enumerate().skip(offset as usize) {
            let next = i as u64 + 1;
            if e.name == "." || e.name == ".." {
                // The kernel takes no reference on these and ignores their attributes.
                let mut a = negative();
                a.ino = INodeNo(e.ino);
                a.kind = FileType::Directory;
                if reply.add(INodeNo(e.ino), next, &e.name, &TTL, &a, Generation(0)) {
                    break;
                }
                continue;
            }
            // A lookup each (counted, as the kernel takes a reference on every entry it
            // links); an entry gone since opendir, or failing, is left out.
            let Ok(Some(a)) = self.lookup_at(ino.0, &layers, &base, &e.name) else {
                continue;
            };
            if reply.add(a.ino, next, &e.name, &TTL, &a, Generation(0)) {
                // Did not fit: the kernel never saw it, so uncount the lookup.
                self.forget_one(a.ino.0, 1);
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dir_handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // SAFETY: a zeroed statvfs is a valid out-buffer.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and buffer.
        if unsafe { libc::fstatvfs(self.upper(), &mut s) } < 0 {
            return reply.error(errno(sys::last()));
        }
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            s.f_namemax as u32,
            s.f_frsize as u32,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let res = self.change_xattr(ino.0, name, |fd, cname| {
            sys::fsetxattr(fd, cname, value, flags)
        });
        reply_or!(reply, res, |_| reply.ok());
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if is_private_xattr(name.as_bytes()) {
            return reply.error(Errno::from_i32(libc::ENODATA));
        }
        let caps = name.as_bytes() == b"security.capability";
        if caps && self.table().nodes.get(&ino.0).is_some_and(|n| n.no_caps) {
            return reply.error(Errno::from_i32(libc::ENODATA));
        }
        let res = (|| {
            let cname = CString::new(name.as_bytes()).map_err(|_| libc::EINVAL)?;
            let fd = match self.open_for_xattr(ino.0, false) {
                Err(libc::ENOTSUP) => return Err(libc::ENODATA),
                other => other?,
            };
            sys::fgetxattr(fd.as_raw_fd(), &cname)
        })();
        if caps
            && res == Err(libc::ENODATA)
            && let Some(n) = self.table().nodes.get_mut(&ino.0)
        {
            n.no_caps = true;
        }
        reply_xattr(reply, size, res);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let res = (|| {
            let fd = match self.open_for_xattr(ino.0, false) {
                Err(libc::ENOTSUP) => return Ok(Vec::new()),
                other => other?,
            };
            let list = sys::flistxattr(fd.as_raw_fd())?;
            let mut out = Vec::with_capacity(list.len());
            for n in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
                if !is_private_xattr(n) {
                    out.extend_from_slice(n);
                    out.push(0);
                }
            }
            Ok(out)
        })();
        reply_xattr(reply, size, res);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let res = self.change_xattr(ino.0, name, sys::fremovexattr);
        reply_or!(reply, res, |_| reply.ok());
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let m = mode & !umask & 0o7777;
        let oflags = (flags & !(libc::O_NOCTTY | libc::O_APPEND | libc::O_DIRECT))
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_NOFOLLOW;
        let res = self.do_create_entry(
            req,
            parent.0,
            name,
            |dir, cp| writable(oflags, |f| sys::openat(dir, cp, f, m)).map(Some),
            m,
            false,
        );
        match res {
            Ok((a, Some(fd))) => {
                if let Ok(n) = self.table().node_mut(a.ino.0) {
                    n.opens += 1;
                }
                let raw = fd.as_raw_fd();
                std::mem::forget(fd);
                reply.created(
                    &TTL,
                    &a,
                    Generation(0),
                    FileHandle(raw as u64),
                    FopenFlags::FOPEN_KEEP_CACHE,
                );
            }
            Ok((_, None)) => reply.error(Errno::EIO),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if fh.0 & LOWER_FH != 0 {
            return reply.error(Errno::EBADF);
        }
        // SAFETY: plain syscall on our descriptor.
        let rc = unsafe {
            libc::fallocate(
                fh_fd(fh),
                mode,
                offset as libc::off_t,
                length as libc::off_t,
            )
        };
        if rc < 0 {
            reply.error(errno(sys::last()))
        } else {
            reply.ok()
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        // SAFETY: plain syscall on our descriptor.
        let off = unsafe { libc::lseek(fh_fd(fh), offset, whence) };
        if off < 0 {
            reply.error(errno(sys::last()))
        } else {
            reply.offset(off)
        }
    }
}
