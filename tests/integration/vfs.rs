//! The `vfs` storage driver (a plain copy of the layers per container) and `import` from a URL.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

use crate::fixtures::{self, base_layer};
use crate::harness::TestCtx;
use crate::images::{self, Config, Entry, Image};

const IMAGE: &str = "test/vfs:1";

fn load(t: &TestCtx, with_owners: bool) {
    let mut data = vec![
        Entry::dir("data", 0o755),
        Entry::file("data/keep", 0o644, "keep\n"),
        Entry::file("data/gone", 0o644, "gone\n"),
        Entry::dir("data/gonedir", 0o755),
        Entry::file("data/gonedir/inner", 0o644, "x"),
        Entry::file("data/linked", 0o644, "linked\n"),
        Entry::hardlink("data/linked2", "data/linked"),
        Entry::symlink("data/sym", "keep"),
        Entry::dir("opq", 0o755),
        Entry::file("opq/old1", 0o644, "old\n"),
        Entry::dir("opq/sub", 0o755),
        Entry::file("opq/sub/old2", 0o644, "old\n"),
    ];
    if with_owners {
        data.push(Entry::dir("home/app", 0o750).owner(1000, 1001));
        data.push(Entry::file("home/app/tool", 0o4755, "#!/bin/sh\n").owner(1000, 1001));
    }
    let deletes = images::tar(&[
        Entry::dir("data", 0o755),
        Entry::file("data/.wh.gone", 0o644, ""),
        Entry::file("data/.wh.gonedir", 0o644, ""),
        Entry::file("data/added", 0o644, "added\n"),
        Entry::dir("opq", 0o755),
        Entry::file("opq/.wh..wh..opq", 0o644, ""),
        Entry::file("opq/new", 0o644, "new\n"),
    ]);
    fixtures::load_image(
        t,
        Image::new(
            IMAGE,
            vec![base_layer(t), images::tar(&data), deletes],
            Config::shell(),
        ),
    );
}

#[test]
fn vfs_honours_whiteouts_and_opaque_dirs() {
    let t = ctx!();
    load(&t, false);
    let script = "ls -A /data | tr '\\n' ' '; echo; ls -A /opq | tr '\\n' ' '; echo; \
        cat /data/sym; stat -c %h /data/linked; find / -xdev -name '.wh.*' | wc -l; \
        awk '$2 == \"/\" { print $3 }' /proc/self/mounts | grep -c -e overlay -e fuse; true";
    t.burrow([
        "--storage-driver",
        "vfs",
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        script,
    ])
    .output()
    .assert_ok()
    .assert_stdout("added keep linked linked2 sym \nnew \nkeep\n2\n0\n0\n");
}

#[test]
fn vfs_writes_persist_across_start() {
    let t = ctx!();
    load(&t, false);
    let script = "if [ -e /data/marker ]; then \
        echo \"$(cat /data/keep) $([ -e /data/added ] && echo present || echo gone)\"; \
        else echo changed > /data/keep && rm /data/added && touch /data/marker \
        && echo modified; fi";
    t.burrow([
        "--storage-driver",
        "vfs",
        "create",
        "--name",
        "c",
        IMAGE,
        "sh",
        "-c",
        script,
    ])
    .output()
    .assert_ok();
    let start = || {
        t.burrow(["--storage-driver", "vfs", "start", "-a", "c"])
            .output()
    };
    start().assert_ok().assert_stdout("modified\n");
    start().assert_ok().assert_stdout("changed gone\n");
    start().assert_ok().assert_stdout("changed gone\n");
}

#[test]
fn vfs_preserves_owners_and_modes() {
    let t = ctx!();
    if t.subuid().is_none() || t.subgid().is_none() {
        crate::harness::skip(&t.name, "no subordinate ids");
        return;
    }
    load(&t, true);
    t.burrow([
        "--storage-driver",
        "vfs",
        "run",
        "--rm",
        IMAGE,
        "stat",
        "-c",
        "%u %g %a",
        "/home/app",
        "/home/app/tool",
    ])
    .output()
    .assert_ok()
    .assert_stdout("1000 1001 750\n1000 1001 4755\n");
}

// ------------------------------------------------------------ import URL

/// Answer one HTTP request on 127.0.0.1 with `status` and `body`; returns the URL.
fn serve_once(status: &str, body: Vec<u8>) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/rootfs.tar",
        listener.local_addr().unwrap().port()
    );
    let status = status.to_string();
    let handle = std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&body);
    });
    (url, handle)
}

#[test]
fn import_from_url() {
    let t = ctx!();
    let (url, server) = serve_once("200 OK", base_layer(&t));
    let out = t.burrow(["import", &url, "fromurl:1"]).output();
    out.assert_ok();
    assert!(out.stdout.trim().starts_with("sha256:"), "{out:?}");
    server.join().unwrap();
    t.burrow(["run", "--rm", "fromurl:1", "sh", "-c", "echo from url"])
        .output()
        .assert_ok()
        .assert_stdout("from url\n");
}

#[test]
fn import_from_url_reports_http_status() {
    let t = ctx!();
    let (url, server) = serve_once("404 Not Found", Vec::new());
    let out = t.burrow(["import", &url, "missing:1"]).output();
    out.assert_code(125);
    assert!(
        out.stderr.contains("404") && out.stderr.contains(&url),
        "the error should name the URL and the status: {out:?}"
    );
    server.join().unwrap();
    let inspect = t.burrow(["image", "inspect", "missing:1"]).output();
    assert_ne!(inspect.code, 0, "no image should exist: {inspect:?}");
}

/// A container first run on an overlay driver keeps its changes (whiteouts included) when
/// started with `vfs`: the overlay upper dir is applied on top of the copied layers.
#[test]
fn vfs_container_stays_with_vfs_under_the_overlay_drivers() {
    let t = ctx!();
    load(&t, false);
    t.burrow([
        "--storage-driver",
        "vfs",
        "create",
        "--name",
        "c",
        IMAGE,
        "sh",
        "-c",
        "[ -e /data/marker ] || { rm /data/added && echo changed > /data/keep && \
         touch /data/marker; }; \
         echo \"$(cat /data/keep) $([ -e /data/added ] && echo present || echo gone)\"",
    ])
    .output()
    .assert_ok();
    for driver in ["vfs", "overlay", "fuse-overlay", "vfs"] {
        // The file deleted from the vfs copy must not come back from the image's layers.
        t.burrow(["--storage-driver", driver, "start", "-a", "c"])
            .output()
            .assert_ok()
            .assert_stdout("changed gone\n");
    }
}

#[test]
fn vfs_takes_over_an_overlay_container() {
    let t = ctx!();
    load(&t, false);
    let script = "if [ -e /data/marker ]; then \
        echo \"$(cat /data/keep) $([ -e /data/added ] && echo present || echo gone) \
        $(ls -A /opq | tr '\\n' ' ')\"; \
        else echo changed > /data/keep && rm /data/added && touch /data/marker \
        && echo modified; fi";
    t.burrow(["create", "--name", "c", IMAGE, "sh", "-c", script])
        .output()
        .assert_ok();
    t.burrow(["start", "-a", "c"])
        .output()
        .assert_ok()
        .assert_stdout("modified\n");
    for _ in 0..2 {
        t.burrow(["--storage-driver", "vfs", "start", "-a", "c"])
            .output()
            .assert_ok()
            .assert_stdout("changed gone new \n");
    }
}

/// The default driver's fallbacks, reached through burrow's test hooks (documented in
/// src/commands/storage_driver.rs): the kernel refusing the overlay gives the FUSE overlay;
/// FUSE unavailable too gives vfs, with a warning.
#[test]
fn overlay_falls_back_to_fuse_then_to_vfs() {
    let t = ctx!();
    load(&t, false);
    let root_fs = "awk '$2 == \"/\" { print $3 }' /proc/mounts | tail -n 1";
    let fuse_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    if fuse_usable {
        t.burrow(["run", "--rm", IMAGE, "sh", "-c", root_fs])
            .env("BURROW_TEST_KERNEL_OVERLAY_EPERM", "1")
            .output()
            .assert_ok()
            .assert_stdout("fuse.burrow-overlay\n");
    } else {
        crate::harness::skip(&t.name, "the FUSE half: /dev/fuse is not usable");
    }
    let out = t
        .burrow([
            "run",
            "--name",
            "c",
            IMAGE,
            "sh",
            "-c",
            &format!("{root_fs}; cat /data/keep; ls /data"),
        ])
        .env("BURROW_TEST_KERNEL_OVERLAY_EPERM", "1")
        .env("BURROW_TEST_NO_DEV_FUSE", "1")
        .output();
    out.assert_ok();
    assert!(out.stderr.contains("vfs"), "no warning: {out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        !lines[0].contains("overlay"),
        "root is still an overlay: {out:?}"
    );
    assert_eq!(
        lines[1..],
        ["keep", "added", "keep", "linked", "linked2", "sym"]
    );
    assert!(is_vfs(&t, "c"), "the container is not a vfs one");
}

fn is_vfs(t: &TestCtx, name: &str) -> bool {
    let id = t
        .burrow(["inspect", "--format", "{{.Id}}", name])
        .output()
        .assert_ok()
        .stdout
        .trim()
        .to_string();
    t.root
        .join("containers")
        .join(&id)
        .join("work/.vfs-populated")
        .exists()
}

/// `$XDG_CONFIG_HOME/burrow/storage.conf`: the driver (podman's `[storage]` layout too), the
/// overlay driver's fallback, and a warning for keys burrow does not use.
#[test]
fn storage_conf_sets_the_driver_and_the_fallback() {
    let t = ctx!();
    load(&t, false);
    let config = t.user_dir("config");
    let conf_dir = t.user_dir("config/burrow");
    let with_conf = |name: &str, conf: &str, eperm: bool| {
        std::fs::write(conf_dir.join("storage.conf"), conf).unwrap();
        let mut cmd = t
            .burrow(["run", "--name", name, IMAGE, "true"])
            .env("XDG_CONFIG_HOME", config.to_str().unwrap());
        if eperm {
            cmd = cmd.env("BURROW_TEST_KERNEL_OVERLAY_EPERM", "1");
        }
        cmd.output()
    };
    let out = with_conf(
        "a",
        "[storage]\ndriver = \"vfs\"\nrunroot = \"/run/x\"\n",
        false,
    );
    out.assert_ok();
    assert!(out.stderr.contains("storage.runroot"), "{out:?}");
    assert!(is_vfs(&t, "a"));
    // The flag wins over the file.
    t.burrow([
        "--storage-driver",
        "overlay",
        "run",
        "--name",
        "b",
        IMAGE,
        "true",
    ])
    .env("XDG_CONFIG_HOME", config.to_str().unwrap())
    .output()
    .assert_ok();
    assert!(!is_vfs(&t, "b"));

    let out = with_conf(
        "c",
        "[storage.options.overlay]\nfallback = \"none\"\n",
        true,
    );
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("overlay"), "{out:?}");
    let out = with_conf("d", "[storage.options.overlay]\nfallback = \"vfs\"\n", true);
    out.assert_ok();
    assert!(is_vfs(&t, "d"));
}
