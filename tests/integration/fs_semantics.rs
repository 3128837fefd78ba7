//! One filesystem-semantics suite, run against every storage driver that builds a container's
//! root from image layers: the kernel overlay and burrow's FUSE overlay. The same shell script
//! runs in a container on each and must print the same thing; afterwards the container's
//! upper directory must hold the same entries in the overlay's on-disk format (whiteouts,
//! opaque directories, copied-up files), so an upper directory is valid for both drivers.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::fixtures::{base_layer, load_image};
use crate::harness::{Output, TestCtx};
use crate::images::{Config, Entry, Image, tar};

const IMAGE: &str = "test/fs-semantics:1";

/// The image: busybox, a layer of test data, and a layer that deletes some of it with OCI
/// whiteouts (a plain one and an opaque directory).
fn load(t: &TestCtx) {
    let data = tar(&[
        Entry::dir("data", 0o755),
        Entry::file("data/append.txt", 0o644, "base\n"),
        Entry::file("data/overwrite.txt", 0o644, "old content\n"),
        Entry::file("data/truncate.txt", 0o644, "some bytes\n"),
        Entry::file("data/delete.txt", 0o644, "x\n"),
        Entry::dir("data/deldir", 0o755),
        Entry::file("data/deldir/a", 0o644, "a\n"),
        Entry::dir("data/deldir/sub", 0o755),
        Entry::file("data/deldir/sub/b", 0o644, "b\n"),
        Entry::file("data/file.txt", 0o644, "rename me\n"),
        Entry::dir("data/tree", 0o755),
        Entry::dir("data/tree/sub", 0o755),
        Entry::file("data/tree/sub/leaf", 0o644, "leaf\n"),
        Entry::file("data/linksrc.txt", 0o644, "link\n"),
        Entry::file("data/owned.txt", 0o644, "owned\n").owner(1000, 1000),
        Entry::dir("data/ownerdir", 0o750),
        Entry::symlink("data/lowlink", "append.txt"),
        Entry::file("data/gone.txt", 0o644, "deleted by the next layer\n"),
        Entry::dir("data/opaque", 0o755),
        Entry::file("data/opaque/old", 0o644, "hidden by the next layer\n"),
        Entry::dir("times", 0o755),
        Entry::dir("times/d", 0o755),
        Entry::file("times/d/f", 0o644, "f\n"),
        Entry::dir("times/e", 0o755),
        Entry::file("times/e/g", 0o644, "g\n"),
    ]);
    let deletes = tar(&[
        Entry::dir("data", 0o755),
        Entry::file("data/.wh.gone.txt", 0o644, ""),
        Entry::dir("data/opaque", 0o755),
        Entry::file("data/opaque/.wh..wh..opq", 0o644, ""),
        Entry::file("data/opaque/new", 0o644, "new\n"),
    ]);
    load_image(
        t,
        Image::new(IMAGE, vec![base_layer(t), data, deletes], Config::shell()),
    );
}

/// Each line prints what one check saw; the expected output below is the kernel overlay's.
const SCRIPT: &str = r#"
cd /data || exit 99
echo "image_whiteout=$(ls gone.txt 2>&1 >/dev/null | wc -l) $(ls -A | grep -c gone)"
echo "image_opaque=$(ls -A opaque | tr '\n' ' ')"
echo appended >> append.txt
echo "append=$(tr '\n' '|' < append.txt)"
echo "lowlink=$(tr '\n' '|' < lowlink) $(readlink lowlink)"
printf 'new' > overwrite.txt
echo "overwrite=$(cat overwrite.txt)"
: > truncate.txt
echo "truncate=$(stat -c %s truncate.txt)"
truncate -s 4 file.txt 2>/dev/null || dd if=/dev/null of=file.txt bs=1 seek=4 2>/dev/null
echo "truncate_to_4=$(cat file.txt)"
rm delete.txt
echo "delete=$([ -e delete.txt ] && echo present || echo gone)"
rm -r deldir
echo "rmdir=$([ -e deldir ] && echo present || echo gone)"
mkdir deldir
echo "recreated=$(ls -A deldir | wc -l)"
echo again > deldir/x
echo "recreated_file=$(cat deldir/x) $(ls -A deldir | tr '\n' ' ')"
mv file.txt moved.txt
echo "rename_file=$(cat moved.txt) $([ -e file.txt ] && echo old-present || echo old-gone)"
mv tree tree2
echo "rename_dir=$? $(cat tree2/sub/leaf) $([ -e tree ] && echo old-present || echo old-gone)"
mkdir -p fresh/inner && echo in > fresh/inner/f
mv fresh fresh2
echo "rename_new_dir=$? $(cat fresh2/inner/f) $([ -e fresh ] && echo old-present || echo old-gone)"
ln linksrc.txt hard.txt
echo "hardlink=$(stat -c %h hard.txt linksrc.txt | tr '\n' ' ')"
echo viahard >> hard.txt
echo "hardlink_data=$(tail -n 1 linksrc.txt)"
rm linksrc.txt
echo "hardlink_after_rm=$(stat -c %h hard.txt)"
ln -s moved.txt sym
echo "symlink=$(readlink sym) $(cat sym)"
chmod 600 owned.txt
chown 123:456 owned.txt
echo "chmod_chown=$(stat -c '%u %g %a' owned.txt) $(cat owned.txt)"
chown 7:8 ownerdir
echo "chown_dir=$(stat -c '%u %g %a' ownerdir)"
touch -d '2001-02-03 04:05:06' overwrite.txt
echo "utimes=$(stat -c %Y overwrite.txt)"
mkfifo fifo
echo "mkfifo=$(stat -c %F fifo)"
echo "ls=$(ls -A | tr '\n' ' ')"
echo "ls_p=$(ls -Ap | tr '\n' ' ')"
echo "find=$(find . | sort | tr '\n' ' ')"
sum1=$(dd if=/dev/urandom bs=1M count=48 2>/dev/null | tee big | md5sum | cut -d' ' -f1)
sum2=$(md5sum big | cut -d' ' -f1)
echo "big=$([ "$sum1" = "$sum2" ] && echo same || echo differ) $(stat -c %s big)"
rm big
echo "df=$(df -P /data | tail -n 1 | wc -w)"
chmod 600 /times/d/f
echo more >> /times/e/g
echo "copy_up_dir_mtimes=$(stat -c %Y /times /times/d /times/e | tr '\n' ' ')"
echo done
"#;

const EXPECTED: &str = "\
image_whiteout=1 0
image_opaque=new 
append=base|appended|
lowlink=base|appended| append.txt
overwrite=new
truncate=0
truncate_to_4=rena
delete=gone
rmdir=gone
recreated=0
recreated_file=again x 
rename_file=rena old-gone
rename_dir=0 leaf old-gone
rename_new_dir=0 in old-gone
hardlink=2 2 
hardlink_data=viahard
hardlink_after_rm=1
symlink=moved.txt rena
chmod_chown=123 456 600 owned
chown_dir=7 8 750
utimes=981173106
mkfifo=fifo
ls=append.txt deldir fifo fresh2 hard.txt lowlink moved.txt opaque overwrite.txt owned.txt ownerdir sym tree2 truncate.txt 
ls_p=append.txt deldir/ fifo fresh2/ hard.txt lowlink moved.txt opaque/ overwrite.txt owned.txt ownerdir/ sym tree2/ truncate.txt 
find=. ./append.txt ./deldir ./deldir/x ./fifo ./fresh2 ./fresh2/inner ./fresh2/inner/f ./hard.txt ./lowlink ./moved.txt ./opaque ./opaque/new ./overwrite.txt ./owned.txt ./ownerdir ./sym ./tree2 ./tree2/sub ./tree2/sub/leaf ./truncate.txt 
big=same 50331648
df=6
copy_up_dir_mtimes=1700000000 1700000000 1700000000 
done
";

/// Why a driver cannot run here, if it cannot.
fn unavailable(t: &TestCtx, driver: &str) -> Option<String> {
    if driver == "fuse-overlay" {
        let ok = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .is_ok()
            || t.as_root && Path::new("/dev/fuse").exists();
        if !ok {
            return Some("/dev/fuse is missing or not usable".into());
        }
    }
    let probe = t
        .burrow(["--storage-driver", driver, "run", "--rm", IMAGE, "true"])
        .output();
    if probe.code != 0 && probe.stderr.contains("invalid value") {
        return Some(format!("this burrow has no --storage-driver {driver}"));
    }
    probe.assert_code(0);
    None
}

/// Run the script in a kept container on `driver`; its output and upper directory.
fn run_suite(t: &TestCtx, driver: &str) -> Option<(Output, BTreeMap<String, String>)> {
    if let Some(why) = unavailable(t, driver) {
        crate::harness::skip(&t.name, &why);
        return None;
    }
    let name = format!("fs-{driver}");
    let out = t
        .burrow([
            "--storage-driver",
            driver,
            "run",
            "--name",
            &name,
            IMAGE,
            "sh",
            "-c",
            SCRIPT,
        ])
        .output();
    let id = t
        .burrow(["inspect", "--format", "{{.Id}}", &name])
        .output()
        .assert_code(0)
        .stdout
        .trim()
        .to_string();
    let upper = t.root.join("containers").join(&id).join("upper");
    let listing = upper_listing(&upper);
    t.burrow(["rm", &name]).output().assert_code(0);
    Some((out, listing))
}

fn opaque(p: &Path) -> bool {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = [0u8; 8];
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"user.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// The upper directory as path -> kind (whiteout, opaque dir, dir, file with size...).
fn upper_listing(upper: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = m.file_type();
            let kind = if ft.is_char_device() && m.rdev() == 0 {
                "whiteout".to_string()
            } else if ft.is_dir() {
                walk(base, &p, out);
                format!(
                    "dir {:o}{}",
                    m.mode() & 0o7777,
                    if opaque(&p) { " opaque" } else { "" }
                )
            } else if ft.is_symlink() {
                format!("symlink {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_fifo() {
                "fifo".to_string()
            } else {
                format!(
                    "file {:o} {} links={}",
                    m.mode() & 0o7777,
                    m.len(),
                    m.nlink()
                )
            };
            out.insert(rel, kind);
        }
    }
    let mut out = BTreeMap::new();
    walk(upper, upper, &mut out);
    out
}

/// What the upper directory must hold under /data after the script, on every driver.
fn check_upper(driver: &str, upper: &BTreeMap<String, String>) {
    let want = [
        ("data", "dir 755"),
        ("data/append.txt", "file 644 14 links=1"),
        ("data/delete.txt", "whiteout"),
        ("data/deldir", "dir 755 opaque"),
        ("data/deldir/x", "file 644 6 links=1"),
        ("data/file.txt", "whiteout"),
        ("data/moved.txt", "file 644 4 links=1"),
        ("data/tree", "whiteout"),
        ("data/tree2/sub/leaf", "file 644 5 links=1"),
        ("data/fresh2/inner/f", "file 644 3 links=1"),
        ("data/hard.txt", "file 644 13 links=1"),
        ("data/linksrc.txt", "whiteout"),
        ("data/owned.txt", "file 600 6 links=1"),
        ("data/ownerdir", "dir 750"),
        ("data/sym", "symlink moved.txt"),
        ("data/fifo", "fifo"),
        ("data/truncate.txt", "file 644 0 links=1"),
    ];
    for (path, kind) in want {
        assert_eq!(
            upper.get(path).map(String::as_str),
            Some(kind),
            "{driver}: upper/{path}\nupper dir: {upper:#?}"
        );
    }
    for path in [
        "data/fresh",
        "data/big",
        "data/gone.txt",
        "data/opaque",
        "data/lowlink",
    ] {
        assert!(
            !upper.contains_key(path),
            "{driver}: upper/{path} should not exist\nupper dir: {upper:#?}"
        );
    }
}

fn suite(driver: &str, t: &TestCtx) -> Option<BTreeMap<String, String>> {
    load(t);
    let (out, upper) = run_suite(t, driver)?;
    out.assert_code(0);
    let got: Vec<&str> = out.stdout.lines().collect();
    let want: Vec<&str> = EXPECTED.lines().collect();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            g, w,
            "{driver}: full output:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{driver}: full output:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    check_upper(driver, &upper);
    Some(upper)
}

#[test]
fn fs_semantics_kernel_overlay() {
    let t = ctx!();
    suite("overlay", &t);
}

#[test]
fn fs_semantics_fuse_overlay() {
    let t = ctx!();
    suite("fuse-overlay", &t);
}

/// Both drivers leave the same entries in the upper directory (the kernel's own bookkeeping
/// xattrs aside), so either can mount what the other wrote.
#[test]
fn fs_semantics_upper_dirs_match() {
    let t = ctx!();
    let Some(kernel) = suite("overlay", &t) else {
        return;
    };
    let Some(fuse) = suite("fuse-overlay", &t) else {
        return;
    };
    let strip = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.into_iter()
            .filter(|(k, _)| k.starts_with("data"))
            .collect()
    };
    assert_eq!(strip(kernel), strip(fuse));
}

/// An upper directory written through one driver mounts through the other: files written by
/// the FUSE overlay are read back on the kernel overlay and the other way round.
#[test]
fn fs_semantics_upper_dir_shared_between_drivers() {
    let t = ctx!();
    load(&t);
    for d in ["overlay", "fuse-overlay"] {
        if let Some(why) = unavailable(&t, d) {
            crate::harness::skip(&t.name, &why);
            return;
        }
    }
    let script = "if [ -e /data/marker ]; then \
        echo \"$(ls -A /data/deldir) $([ -e /data/delete.txt ] && echo present || echo gone)\"; \
        cat /data/append.txt; \
        else rm /data/delete.txt && rm -r /data/deldir && mkdir /data/deldir \
        && echo fuse > /data/deldir/f && echo more >> /data/append.txt && touch /data/marker \
        && echo modified; fi";
    t.burrow(["create", "--name", "shared", IMAGE, "sh", "-c", script])
        .output()
        .assert_code(0);
    let start = |driver: &str| {
        t.burrow(["--storage-driver", driver, "start", "-a", "shared"])
            .output()
    };
    start("fuse-overlay")
        .assert_code(0)
        .assert_stdout("modified\n");
    start("overlay")
        .assert_code(0)
        .assert_stdout("f gone\nbase\nmore\n");
    start("fuse-overlay")
        .assert_code(0)
        .assert_stdout("f gone\nbase\nmore\n");
}
