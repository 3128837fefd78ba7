//! `burrow load`, `import`, `images`; layer semantics (whiteouts, opaque
//! directories, gzip) and hostile layer tars.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::fixtures::{self, BASE, base_layer};
use crate::harness::{TestCtx, list_dir};
use crate::images::{self, Config, Entry, Image};

#[test]
fn load_docker_archive_prints_loaded_image() {
    let t = ctx!();
    let p = fixtures::write_docker_archive(&t, "base.tar", &[images::base_image(&t.busybox, BASE)]);
    let out = t.load(&p);
    out.assert_stdout_contains(&format!("Loaded image: {BASE}\n"));
    t.burrow(["run", "--rm", BASE, "echo", "hello"])
        .output()
        .assert_ok()
        .assert_stdout("hello\n");
}

/// Loading an image again prints the names in the archive, not others it was given since.
#[test]
fn load_prints_only_the_archives_names() {
    let t = ctx!();
    let p = fixtures::write_docker_archive(&t, "base.tar", &[images::base_image(&t.busybox, BASE)]);
    t.load(&p);
    t.burrow(["tag", BASE, "test/other:2"]).output().assert_ok();
    t.load(&p).assert_stdout(&format!("Loaded image: {BASE}\n"));
}

#[test]
fn load_from_stdin() {
    let t = ctx!();
    let data = images::docker_archive(&[images::base_image(&t.busybox, BASE)]);
    t.burrow(["load"])
        .stdin(data)
        .output()
        .assert_ok()
        .assert_stdout_contains(&format!("Loaded image: {BASE}"));
    t.burrow(["run", "--rm", BASE, "true"]).output().assert_ok();
}

#[test]
fn load_two_images_in_one_archive() {
    let t = ctx!();
    let a = images::base_image(&t.busybox, "test/a:1");
    let mut b = images::base_image(&t.busybox, "test/b:2");
    b.layers
        .push(images::tar(&[Entry::file("b-only", 0o644, "b\n")]));
    let p = fixtures::write_docker_archive(&t, "two.tar", &[a, b]);
    let out = t.load(&p);
    out.assert_stdout_contains("Loaded image: test/a:1\n")
        .assert_stdout_contains("Loaded image: test/b:2\n");
    t.burrow(["run", "--rm", "test/b:2", "cat", "/b-only"])
        .output()
        .assert_ok()
        .assert_stdout("b\n");
    t.burrow(["run", "--rm", "test/a:1", "test", "!", "-e", "/b-only"])
        .output()
        .assert_ok();
}

#[test]
fn load_gzipped_archive() {
    let t = ctx!();
    let data = images::docker_archive(&[images::base_image(&t.busybox, BASE)]);
    let p = t.write("base.tar.gz", images::gzip(&data));
    t.load(&p)
        .assert_stdout_contains(&format!("Loaded image: {BASE}"));
    t.burrow(["run", "--rm", BASE, "true"]).output().assert_ok();
}

#[test]
fn load_docker_archive_with_gzipped_layers() {
    let t = ctx!();
    let mut img = images::base_image(&t.busybox, "test/gz:1");
    img.layers.push(images::tar(&[Entry::file(
        "gz-file",
        0o644,
        "from gzip layer\n",
    )]));
    img.gzip_layers = true;
    let p = fixtures::write_docker_archive(&t, "gz.tar", &[img]);
    t.load(&p);
    t.burrow(["run", "--rm", "test/gz:1", "cat", "/gz-file"])
        .output()
        .assert_ok()
        .assert_stdout("from gzip layer\n");
}

#[test]
fn load_oci_archive() {
    let t = ctx!();
    let mut img = images::base_image(&t.busybox, "test/oci:1");
    img.layers
        .push(images::tar(&[Entry::file("oci-file", 0o644, "oci\n")]));
    let p = fixtures::write_oci_archive(&t, "oci.tar", &[img]);
    let out = t.load(&p);
    out.assert_stdout_contains("Loaded image");
    t.burrow(["run", "--rm", "test/oci:1", "cat", "/oci-file"])
        .output()
        .assert_ok()
        .assert_stdout("oci\n");
}

#[test]
fn load_oci_archive_gzipped_layers() {
    let t = ctx!();
    let mut img = images::base_image(&t.busybox, "test/ocigz:1");
    img.gzip_layers = true;
    let p = fixtures::write_oci_archive(&t, "ocigz.tar", &[img]);
    t.load(&p);
    t.burrow(["run", "--rm", "test/ocigz:1", "echo", "ok"])
        .output()
        .assert_ok()
        .assert_stdout("ok\n");
}

#[test]
fn load_garbage_fails() {
    let t = ctx!();
    let p = t.write(
        "garbage.tar",
        b"this is not a tar archive at all\n".repeat(100),
    );
    let out = t.burrow(["load", "-i", p.to_str().unwrap()]).output();
    assert_ne!(out.code, 0, "{out:?}");
    out.assert_stderr_nonempty();
    let out = t.burrow(["load", "-i", "/no/such/file.tar"]).output();
    assert_ne!(out.code, 0, "{out:?}");
    out.assert_stderr_nonempty();
}

#[test]
fn images_lists_loaded_images() {
    let t = ctx!();
    fixtures::load_base(&t);
    let out = t.burrow(["images"]).output();
    out.assert_ok();
    let header = out.stdout.lines().next().unwrap_or("");
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "header lacks {col}: {out:?}");
    }
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains("test/base"))
        .unwrap_or_else(|| out.fail("no row for test/base"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "1", "{row}");
    assert!(
        cols[2].len() == 12 && cols[2].bytes().all(|b| b.is_ascii_hexdigit()),
        "{row}"
    );
    let q = t.burrow(["images", "-q"]).output();
    q.assert_ok();
    assert_eq!(q.lines(), vec![cols[2]], "{q:?}");
}

#[test]
fn import_rootfs_tar_file_and_stdin() {
    let t = ctx!();
    let p = t.write("rootfs.tar", base_layer(&t));
    let out = t.burrow(["import", p.to_str().unwrap(), "demo:1"]).output();
    out.assert_ok();
    let id = out.stdout.trim();
    assert!(
        id.starts_with("sha256:")
            && id.len() == 71
            && id[7..].bytes().all(|b| b.is_ascii_hexdigit()),
        "import should print sha256:<64 hex>: {out:?}"
    );
    t.burrow(["run", "--rm", "demo:1", "sh", "-c", "echo imported"])
        .output()
        .assert_ok()
        .assert_stdout("imported\n");

    let out = t
        .burrow(["import", "-", "demo:stdin"])
        .stdin(base_layer(&t))
        .output();
    out.assert_ok();
    assert!(out.stdout.trim().starts_with("sha256:"), "{out:?}");
    t.burrow(["run", "--rm", "demo:stdin", "true"])
        .output()
        .assert_ok();
    let imgs = t.burrow(["images"]).output();
    imgs.assert_ok().assert_stdout_contains("demo");
}

// ------------------------------------------------------------- whiteouts

#[test]
fn whiteouts_and_opaque_dirs() {
    let t = ctx!();
    let lower = images::tar(&[
        Entry::dir("data", 0o755),
        Entry::file("data/keep", 0o644, "keep\n"),
        Entry::file("data/gone", 0o644, "gone\n"),
        Entry::dir("data/gonedir", 0o755),
        Entry::file("data/gonedir/inner", 0o644, "x"),
        Entry::dir("opq", 0o755),
        Entry::file("opq/old1", 0o644, "old\n"),
        Entry::dir("opq/sub", 0o755),
        Entry::file("opq/sub/old2", 0o644, "old\n"),
    ]);
    let upper = images::tar(&[
        Entry::dir("data", 0o755),
        Entry::file("data/.wh.gone", 0o644, ""),
        Entry::file("data/.wh.gonedir", 0o644, ""),
        Entry::file("data/added", 0o644, "added\n"),
        Entry::dir("opq", 0o755),
        Entry::file("opq/.wh..wh..opq", 0o644, ""),
        Entry::file("opq/new", 0o644, "new\n"),
    ]);
    let img = Image::new(
        "test/wh:1",
        vec![base_layer(&t), lower, upper],
        Config::shell(),
    );
    fixtures::load_image(&t, img);
    let out = t
        .burrow([
            "run",
            "--rm",
            "test/wh:1",
            "sh",
            "-c",
            "ls -a /data; echo --; ls -a /opq",
        ])
        .output();
    out.assert_ok()
        .assert_stdout(".\n..\nadded\nkeep\n--\n.\n..\nnew\n");
    // Whiteout markers themselves are never visible.
    let out = t
        .burrow([
            "run",
            "--rm",
            "test/wh:1",
            "sh",
            "-c",
            "find / -xdev -name '.wh.*' | wc -l",
        ])
        .output();
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "0", "{out:?}");
}

#[test]
fn whiteouts_with_oci_gzip_layers() {
    let t = ctx!();
    let lower = images::tar(&[
        Entry::dir("d", 0o755),
        Entry::file("d/a", 0o644, "a"),
        Entry::file("d/b", 0o644, "b"),
    ]);
    let upper = images::tar(&[Entry::dir("d", 0o755), Entry::file("d/.wh.a", 0o644, "")]);
    let mut img = Image::new(
        "test/whgz:1",
        vec![base_layer(&t), lower, upper],
        Config::shell(),
    );
    img.gzip_layers = true;
    let p = fixtures::write_oci_archive(&t, "whgz.tar", &[img]);
    t.load(&p);
    t.burrow(["run", "--rm", "test/whgz:1", "ls", "/d"])
        .output()
        .assert_ok()
        .assert_stdout("b\n");
}

#[test]
fn later_layer_replaces_file_and_dir_with_symlink() {
    let t = ctx!();
    let l1 = images::tar(&[
        Entry::file("f", 0o644, "one\n"),
        Entry::dir("x", 0o755),
        Entry::file("x/in", 0o644, "in\n"),
    ]);
    let l2 = images::tar(&[
        Entry::file("f", 0o644, "two\n"),
        Entry::file(".wh.x", 0o644, ""),
        Entry::symlink("x", "/etc"),
    ]);
    let img = Image::new("test/repl:1", vec![base_layer(&t), l1, l2], Config::shell());
    fixtures::load_image(&t, img);
    t.burrow([
        "run",
        "--rm",
        "test/repl:1",
        "sh",
        "-c",
        "cat /f; readlink /x; test -e /x/passwd && echo ok",
    ])
    .output()
    .assert_ok()
    .assert_stdout("two\n/etc\nok\n");
}

// --------------------------------------------------------------- hostile

/// Everything in `dir`, recursively, as relative paths.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for name in list_dir(&d) {
            let p = d.join(&name);
            out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if p.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn hostile_layer(t: &TestCtx, outside: &Path) -> Vec<u8> {
    let o = outside
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let up = "../".repeat(20);
    let sentinel = format!("/{o}/sentinel");
    images::tar(&[
        // Absolute paths.
        Entry::file(&format!("/{o}/abs-pwned"), 0o644, "pwned\n"),
        Entry::file(
            &format!("/tmp/burrow-abs-pwned-{}", t.name),
            0o644,
            "pwned\n",
        ),
        // Parent-directory escapes.
        Entry::file(&format!("{up}{o}/dotdot-pwned"), 0o644, "pwned\n"),
        Entry::file(&format!("a/../../{up}{o}/dotdot2-pwned"), 0o644, "pwned\n"),
        // Symlinks pointing out, then entries through them.
        Entry::symlink("evil", "/"),
        Entry::file(&format!("evil/{o}/symlink-pwned"), 0o644, "pwned\n"),
        Entry::symlink("evil2", &up),
        Entry::file(&format!("evil2/{o}/symlink2-pwned"), 0o644, "pwned\n"),
        Entry::symlink("evildir", &format!("/{o}")),
        Entry::file("evildir/symlink3-pwned", 0o644, "pwned\n"),
        Entry::dir("evildir/mkdir-pwned", 0o755),
        // A symlink to the sentinel, then a regular file written "through" it.
        Entry::symlink("evilfile", &sentinel),
        Entry::file("evilfile", 0o644, "pwned\n"),
        // Hard links to files outside, then data written "through" them.
        Entry::hardlink("hl-passwd", "/etc/passwd"),
        Entry::hardlink("hl-sentinel", &sentinel),
        Entry::file("hl-sentinel", 0o644, "pwned\n"),
        Entry::hardlink("hl-sentinel2", &format!("{up}{o}/sentinel")),
        // A hard link to a symlink pointing out.
        Entry::hardlink("hl-evil", "evil"),
        Entry::file("regular", 0o644, "still here\n"),
    ])
}

#[test]
fn hostile_layer_is_contained() {
    let t = ctx!();
    let outside = t.user_dir("outside");
    let sentinel = outside.join("sentinel");
    fs::write(&sentinel, "sentinel\n").unwrap();
    fs::set_permissions(&sentinel, fs::Permissions::from_mode(0o666)).unwrap();
    if t.as_root {
        crate::harness::chown(&sentinel, t.user.uid, t.user.gid).unwrap();
    }
    let passwd_before = fs::read("/etc/passwd").unwrap();
    let abs_tmp = format!("/tmp/burrow-abs-pwned-{}", t.name);
    let _ = fs::remove_file(&abs_tmp);

    let img = Image::new(
        "test/hostile:1",
        vec![base_layer(&t), hostile_layer(&t, &outside)],
        Config::shell(),
    );
    let p = fixtures::write_docker_archive(&t, "hostile.tar", std::slice::from_ref(&img));
    let load = t.burrow(["load", "-i", p.to_str().unwrap()]).output();
    match load.code {
        0 => {
            // Loaded: the escapes must have been contained. Running it either
            // works or is refused with a clear error.
            let run = t
                .burrow([
                    "run",
                    "--rm",
                    "test/hostile:1",
                    "sh",
                    "-c",
                    "cat /regular; ls / >/dev/null",
                ])
                .output();
            match run.code {
                0 => {
                    run.assert_stdout_contains("still here");
                }
                125 => {
                    run.assert_stderr_nonempty();
                }
                _ => run.fail("run of the hostile image: want 0 or 125"),
            }
        }
        125 => {
            load.assert_stderr_nonempty();
        }
        _ => load.fail("load of the hostile image: want 0 or 125"),
    }
    // The same as an OCI archive with gzipped layers.
    let mut img = img;
    img.tags = vec!["test/hostile-oci:1".into()];
    img.gzip_layers = true;
    let p = fixtures::write_oci_archive(&t, "hostile-oci.tar", &[img]);
    let load = t.burrow(["load", "-i", p.to_str().unwrap()]).output();
    if load.code == 0 {
        let run = t
            .burrow(["run", "--rm", "test/hostile-oci:1", "true"])
            .output();
        if run.code != 0 && run.code != 125 {
            run.fail("want 0 or 125");
        }
    } else if load.code != 125 {
        load.fail("want 0 or 125");
    }
    // And via import.
    let p = t.write("hostile-rootfs.tar", hostile_layer(&t, &outside));
    let imp = t
        .burrow(["import", p.to_str().unwrap(), "test/hostile-import:1"])
        .output();
    if imp.code != 0 && imp.code != 125 {
        imp.fail("import of the hostile tar: want 0 or 125");
    }

    // Containment.
    assert_eq!(
        tree(&outside),
        vec!["sentinel"],
        "files appeared outside the store"
    );
    assert_eq!(
        fs::read_to_string(&sentinel).unwrap(),
        "sentinel\n",
        "sentinel modified"
    );
    assert_eq!(fs::read(&sentinel).unwrap().len(), 9);
    assert!(!Path::new(&abs_tmp).exists(), "{abs_tmp} created");
    assert_eq!(
        fs::read("/etc/passwd").unwrap(),
        passwd_before,
        "/etc/passwd modified"
    );
    let mut top = list_dir(&t.dir);
    top.retain(|n| !n.ends_with(".tar"));
    assert_eq!(
        top,
        vec!["outside", "root"],
        "unexpected entries in the test dir"
    );
}

/// 120 layers: the overlay's lower directories would not fit the one-page option string of
/// mount(2) (about 70 bytes each), so this needs per-layer mount parameters.
#[test]
fn image_with_many_layers_runs() {
    let t = ctx!();
    let mut layers = vec![base_layer(&t)];
    for i in 0..120 {
        layers.push(images::tar(&[
            Entry::dir("layers", 0o755),
            Entry::file(&format!("layers/{i:03}"), 0o644, format!("{i}\n")),
        ]));
    }
    let img = Image::new("test/many:1", layers, Config::shell());
    fixtures::load_image(&t, img);
    t.burrow([
        "run",
        "--rm",
        "test/many:1",
        "sh",
        "-c",
        "ls /layers | wc -l; cat /layers/119",
    ])
    .output()
    .assert_ok()
    .assert_stdout("120\n119\n");
}
