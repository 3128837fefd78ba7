//! The overlay mounted for real, served from this process: needs the right to mount (root,
//! as in CI's container; skipped otherwise). Each test runs in a thread with its own mount
//! namespace, so a failing test leaves no mount behind.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

struct Dirs {
    lower: Vec<PathBuf>,
    upper: PathBuf,
    work: PathBuf,
    merged: PathBuf,
}

fn mknod_whiteout(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) },
        0,
        "mknod {p:?}"
    );
}

fn set_opaque(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C strings and buffer.
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"user.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr {p:?}: {}", io::Error::last_os_error());
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and buffer.
    let rc = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (rc >= 0).then(|| buf[..rc as usize].to_vec())
}

fn list_xattrs(p: &Path) -> Vec<String> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C string and buffer.
    let rc = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(rc >= 0, "listxattr {p:?}");
    buf[..rc as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn is_whiteout(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

fn names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Two image layers: l0 (bottom) and l1 (top).
fn populate(d: &Dirs) {
    let (l0, l1) = (&d.lower[0], &d.lower[1]);
    fs::create_dir_all(l0.join("etc/sub")).unwrap();
    fs::write(l0.join("etc/hosts"), "l0 hosts\n").unwrap();
    fs::write(l0.join("etc/gone"), "deleted by l1\n").unwrap();
    fs::write(l0.join("etc/sub/deep"), "deep\n").unwrap();
    fs::create_dir_all(l0.join("opq")).unwrap();
    fs::write(l0.join("opq/hidden"), "hidden\n").unwrap();
    fs::create_dir_all(l0.join("data/inner")).unwrap();
    fs::write(l0.join("data/inner/f"), "f\n").unwrap();
    fs::write(l0.join("file"), "lower file\n").unwrap();
    fs::set_permissions(l0.join("file"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::lchown(l0.join("file"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::symlink("etc/hosts", l0.join("link")).unwrap();

    fs::create_dir_all(l1.join("etc")).unwrap();
    fs::write(l1.join("etc/hosts"), "l1 hosts\n").unwrap();
    fs::write(l1.join("etc/passwd"), "root:x:0:0\n").unwrap();
    mknod_whiteout(&l1.join("etc/gone"));
    fs::create_dir_all(l1.join("opq")).unwrap();
    fs::write(l1.join("opq/shown"), "shown\n").unwrap();
    set_opaque(&l1.join("opq"));
}

/// Run `f` on a fresh overlay mounted in a private mount namespace.
fn with_overlay(name: &str, f: impl FnOnce(&Dirs) + Send + 'static) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: {name}: needs root and /dev/fuse");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("burrow-fuse-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let base = tmp.path().to_path_buf();
    let name = name.to_string();
    let res = std::thread::spawn(move || {
        // SAFETY: unshare of this thread's mount namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            eprintln!("skipped: {name}: unshare: {}", io::Error::last_os_error());
            return;
        }
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        let d = Dirs {
            lower: vec![base.join("l0"), base.join("l1")],
            upper: base.join("upper"),
            work: base.join("work"),
            merged: base.join("merged"),
        };
        for p in d.lower.iter().chain([&d.upper, &d.work, &d.merged]) {
            fs::create_dir_all(p).unwrap();
        }
        populate(&d);
        let layers = Layers {
            lower: &d.lower,
            upper: &d.upper,
            work: &d.work,
            volatile: true,
        };
        let m = mount_in_process(&layers, &d.merged).expect("mount");
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&d)));
        m.unmount().expect("unmount");
        if let Err(p) = out {
            std::panic::resume_unwind(p);
        }
    })
    .join();
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn lookup_honours_layers_whiteouts_and_opaque_dirs() {
    with_overlay("lookup", |d| {
        let m = &d.merged;
        assert_eq!(
            fs::read_to_string(m.join("etc/hosts")).unwrap(),
            "l1 hosts\n"
        );
        assert_eq!(
            fs::read_to_string(m.join("etc/sub/deep")).unwrap(),
            "deep\n"
        );
        assert!(!m.join("etc/gone").exists());
        assert_eq!(names(&m.join("etc")), ["hosts", "passwd", "sub"]);
        assert_eq!(names(&m.join("opq")), ["shown"]);
        assert!(!m.join("opq/hidden").exists());
        assert_eq!(
            fs::read_link(m.join("link")).unwrap(),
            Path::new("etc/hosts")
        );
        assert_eq!(fs::read_to_string(m.join("link")).unwrap(), "l1 hosts\n");
        assert_eq!(names(m), ["data", "etc", "file", "link", "opq"]);
        // The overlay's own xattrs are hidden.
        assert!(
            !list_xattrs(&m.join("opq"))
                .iter()
                .any(|n| n.starts_with("user.overlay"))
        );
        assert_eq!(xattr(&m.join("opq"), "user.overlay.opaque"), None);
        // d_type is right and d_ino matches st_ino.
        for e in fs::read_dir(m).unwrap() {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            assert_eq!(e.file_type().unwrap(), meta.file_type(), "{:?}", e.path());
            use std::os::unix::fs::DirEntryExt;
            assert_eq!(e.ino(), meta.ino(), "{:?}", e.path());
        }
        // Nothing was written.
        assert_eq!(names(&d.upper), Vec::<String>::new());
    });
}

#[test]
fn writes_copy_up_with_metadata() {
    with_overlay("copy_up", |d| {
        let m = &d.merged;
        let before = fs::metadata(m.join("file")).unwrap();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(m.join("file"))
            .unwrap();
        use std::io::Write;
        f.write_all(b"appended\n").unwrap();
        drop(f);
        assert_eq!(
            fs::read_to_string(m.join("file")).unwrap(),
            "lower file\nappended\n"
        );
        assert_eq!(
            fs::read_to_string(d.upper.join("file")).unwrap(),
            "lower file\nappended\n"
        );
        assert_eq!(
            fs::read_to_string(d.lower[0].join("file")).unwrap(),
            "lower file\n"
        );
        let up = fs::metadata(d.upper.join("file")).unwrap();
        assert_eq!(
            (up.uid(), up.gid(), up.mode() & 0o7777),
            (1000, 1000, 0o640)
        );
        let after = fs::metadata(m.join("file")).unwrap();
        assert_eq!(
            before.ino(),
            after.ino(),
            "inode number kept across copy-up"
        );

        // Parents are copied up first, with their metadata.
        fs::write(m.join("etc/sub/deep"), "changed\n").unwrap();
        assert_eq!(
            fs::read_to_string(d.upper.join("etc/sub/deep")).unwrap(),
            "changed\n"
        );
        assert!(d.upper.join("etc/sub").is_dir());
        assert_eq!(names(&m.join("etc")), ["hosts", "passwd", "sub"]);

        // chmod / chown / truncate copy up.
        fs::set_permissions(m.join("etc/passwd"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            fs::metadata(d.upper.join("etc/passwd")).unwrap().mode() & 0o7777,
            0o600
        );
        std::os::unix::fs::lchown(m.join("etc/hosts"), Some(7), Some(8)).unwrap();
        let h = fs::metadata(d.upper.join("etc/hosts")).unwrap();
        assert_eq!((h.uid(), h.gid()), (7, 8));
        assert_eq!(
            fs::read_to_string(d.upper.join("etc/hosts")).unwrap(),
            "l1 hosts\n"
        );
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(m.join("data/inner/f"))
            .unwrap();
        assert_eq!(fs::metadata(d.upper.join("data/inner/f")).unwrap().len(), 0);
    });
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr {p:?}: {}", io::Error::last_os_error());
}

fn set_mtime(p: &Path, secs: i64) {
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string and two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat {p:?}");
}

const OLD: i64 = 1_000_000_000;

#[test]
fn copy_up_keeps_xattrs_and_the_times_of_files_and_parents() {
    with_overlay("copy_up_times", |d| {
        let (l0, m) = (&d.lower[0], &d.merged);
        set_xattr(&l0.join("data/inner/f"), "user.file", b"v");
        set_xattr(&l0.join("data/inner"), "user.dir", b"w");
        for p in [
            "data/inner/f",
            "data/inner",
            "data",
            "etc/sub/deep",
            "etc/sub",
        ] {
            set_mtime(&l0.join(p), OLD);
        }
        // chmod copies up the file and both parents; nothing there changes its mtime.
        fs::set_permissions(m.join("data/inner/f"), fs::Permissions::from_mode(0o600)).unwrap();
        for p in ["data/inner/f", "data/inner", "data"] {
            let up = fs::symlink_metadata(d.upper.join(p)).unwrap();
            assert_eq!(up.mtime(), OLD, "upper/{p}");
            assert_eq!(fs::metadata(m.join(p)).unwrap().mtime(), OLD, "merged/{p}");
        }
        assert_eq!(
            xattr(&d.upper.join("data/inner/f"), "user.file"),
            Some(b"v".to_vec())
        );
        assert_eq!(
            xattr(&d.upper.join("data/inner"), "user.dir"),
            Some(b"w".to_vec())
        );

        // Appending changes the file's mtime, not its directory's.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(m.join("etc/sub/deep"))
            .unwrap();
        use std::io::Write;
        f.write_all(b"more\n").unwrap();
        drop(f);
        assert_eq!(fs::metadata(d.upper.join("etc/sub")).unwrap().mtime(), OLD);
        assert_eq!(fs::metadata(m.join("etc/sub")).unwrap().mtime(), OLD);
        assert_ne!(fs::metadata(m.join("etc/sub/deep")).unwrap().mtime(), OLD);
    });
}

#[test]
fn deletes_leave_whiteouts_and_recreated_dirs_are_opaque() {
    with_overlay("whiteouts", |d| {
        let m = &d.merged;
        fs::remove_file(m.join("etc/hosts")).unwrap();
        assert!(!m.join("etc/hosts").exists());
        assert!(is_whiteout(&d.upper.join("etc/hosts")));
        // A file only in the upper layer goes without a trace.
        fs::write(m.join("etc/new"), "x").unwrap();
        fs::remove_file(m.join("etc/new")).unwrap();
        assert!(fs::symlink_metadata(d.upper.join("etc/new")).is_err());

        assert_eq!(
            fs::remove_dir(m.join("data")).unwrap_err().raw_os_error(),
            Some(libc::ENOTEMPTY)
        );
        fs::remove_dir_all(m.join("data")).unwrap();
        assert!(!m.join("data").exists());
        assert!(is_whiteout(&d.upper.join("data")));
        fs::create_dir(m.join("data")).unwrap();
        assert_eq!(names(&m.join("data")), Vec::<String>::new());
        assert_eq!(
            xattr(&d.upper.join("data"), "user.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        fs::write(m.join("etc/hosts"), "again\n").unwrap();
        assert_eq!(fs::read_to_string(m.join("etc/hosts")).unwrap(), "again\n");
        assert!(!is_whiteout(&d.upper.join("etc/hosts")));
    });
}

#[test]
fn renames_and_links() {
    with_overlay("renames", |d| {
        let m = &d.merged;
        fs::rename(m.join("etc/passwd"), m.join("passwd.moved")).unwrap();
        assert_eq!(
            fs::read_to_string(m.join("passwd.moved")).unwrap(),
            "root:x:0:0\n"
        );
        assert!(!m.join("etc/passwd").exists());
        assert!(is_whiteout(&d.upper.join("etc/passwd")));
        // A directory with content in the image: EXDEV, as the kernel overlay.
        assert_eq!(
            fs::rename(m.join("data"), m.join("data2"))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EXDEV)
        );
        // A new directory moves, over an image directory that was emptied.
        fs::create_dir_all(m.join("new/a")).unwrap();
        fs::write(m.join("new/a/f"), "nf").unwrap();
        fs::remove_file(m.join("opq/shown")).unwrap();
        fs::rename(m.join("new"), m.join("opq")).unwrap();
        assert_eq!(names(&m.join("opq")), ["a"]);
        assert_eq!(fs::read_to_string(m.join("opq/a/f")).unwrap(), "nf");
        assert!(!m.join("new").exists());

        fs::hard_link(m.join("file"), m.join("file.link")).unwrap();
        let (a, b) = (
            fs::metadata(m.join("file")).unwrap(),
            fs::metadata(m.join("file.link")).unwrap(),
        );
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
        fs::write(m.join("file.link"), "via link\n").unwrap();
        assert_eq!(fs::read_to_string(m.join("file")).unwrap(), "via link\n");
        fs::remove_file(m.join("file")).unwrap();
        assert_eq!(fs::metadata(m.join("file.link")).unwrap().nlink(), 1);
        assert!(is_whiteout(&d.upper.join("file")));

        std::os::unix::fs::symlink("/etc/target", m.join("sym")).unwrap();
        assert_eq!(
            fs::read_link(m.join("sym")).unwrap(),
            Path::new("/etc/target")
        );
        assert_eq!(
            fs::read_link(d.upper.join("sym")).unwrap(),
            Path::new("/etc/target")
        );
    });
}

#[test]
fn big_files_round_trip() {
    with_overlay("big", |d| {
        let data: Vec<u8> = (0..(24 << 20) as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        fs::write(d.merged.join("big"), &data).unwrap();
        assert!(fs::read(d.merged.join("big")).unwrap() == data);
        assert!(fs::read(d.upper.join("big")).unwrap() == data);
    });
}

#[test]
fn writeback_cache_and_readdirplus() {
    with_overlay("writeback", |d| {
        use std::io::{Seek, SeekFrom, Write};
        use std::time::{Duration, UNIX_EPOCH};
        // A write-only open of a lower file, in the middle of a page: the kernel reads the
        // rest of the page through the handle.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(d.merged.join("file"))
            .unwrap();
        f.seek(SeekFrom::Start(2)).unwrap();
        f.write_all(b"W").unwrap();
        let when = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        f.set_modified(when).unwrap();
        drop(f);
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(d.merged.join("file"))
            .unwrap();
        f.write_all(b"tail\n").unwrap();
        drop(f);
        let want = "loWer file\ntail\n";
        assert_eq!(fs::read_to_string(d.merged.join("file")).unwrap(), want);
        assert_eq!(fs::read_to_string(d.upper.join("file")).unwrap(), want);
        let m = fs::metadata(d.merged.join("file")).unwrap();
        assert_eq!(m.len(), want.len() as u64);
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!(fs::metadata(d.upper.join("file")).unwrap().len(), m.len());
        // Times set after writing stick, in the kernel's cache and in the upper layer.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(d.merged.join("file"))
            .unwrap();
        f.write_all(b"L").unwrap();
        f.set_modified(when).unwrap();
        drop(f);
        for p in [d.merged.join("file"), d.upper.join("file")] {
            assert_eq!(fs::metadata(&p).unwrap().mtime(), 1_000_000_000, "{p:?}");
        }
        // Truncation through a handle and by path.
        let f = fs::OpenOptions::new()
            .write(true)
            .open(d.merged.join("file"))
            .unwrap();
        f.set_len(3).unwrap();
        drop(f);
        assert_eq!(fs::read(d.merged.join("file")).unwrap(), b"LoW");
        assert_eq!(fs::read(d.upper.join("file")).unwrap(), b"LoW");

        // Listings with attributes, over more entries than one reply holds, after the
        // kernel's entries for them expired.
        let dir = d.merged.join("many");
        fs::create_dir(&dir).unwrap();
        for i in 0..300 {
            fs::write(dir.join(format!("f{i}")), "x".repeat(i)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(1100));
        let mut seen = 0;
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let i: usize = e.file_name().to_str().unwrap()[1..].parse().unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            assert_eq!(m.len(), i as u64);
            assert_eq!(m.ino(), e.ino());
            seen += 1;
        }
        assert_eq!(seen, 300);
        fs::remove_dir_all(&dir).unwrap();
        assert!(!d.upper.join("many").exists());
        assert!(fs::read_dir(d.merged.join("etc")).unwrap().count() == 3);
    });
}

#[test]
fn reads_are_answered_by_splice() {
    with_overlay("splice", |d| {
        use std::io::{Read, Seek, SeekFrom};
        // 5 MiB and a bit of a lower layer, and a file of the upper layer, both read through
        // the mount for the first time (no page cache of the mount yet).
        let data: Vec<u8> = (0..(5 << 20) as u32 + 1234)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        fs::write(d.lower[0].join("big"), &data).unwrap();
        fs::write(d.upper.join("mine"), &data[..70_000]).unwrap();
        let before = splice_reply::spliced_replies();
        assert!(fs::read(d.merged.join("big")).unwrap() == data);
        assert!(fs::read(d.merged.join("mine")).unwrap() == data[..70_000]);
        assert!(
            splice_reply::spliced_replies() > before,
            "no read was answered by splice"
        );
        // Reads at odd offsets, across the end and past it.
        let mut f = fs::File::open(d.merged.join("big")).unwrap();
        let mut buf = vec![0u8; 300_000];
        f.seek(SeekFrom::Start(4097)).unwrap();
        f.read_exact(&mut buf).unwrap();
        assert!(buf == data[4097..4097 + 300_000]);
        f.seek(SeekFrom::Start(data.len() as u64 - 10)).unwrap();
        let mut tail = Vec::new();
        f.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, data[data.len() - 10..]);
        f.seek(SeekFrom::Start(data.len() as u64 + 5)).unwrap();
        assert_eq!(f.read(&mut buf).unwrap(), 0);
    });
}
