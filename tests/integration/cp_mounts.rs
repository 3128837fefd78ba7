//! `cp` and a container's mounts, as docker's daemon copies: a path under a volume or a bind
//! mount is the mount's, whether the container runs, has exited or was never started; and
//! nothing is copied into what the container has read-only (`--read-only`, `:ro`).

use std::path::Path;

use crate::fixtures::{self, base_layer};
use crate::harness::{Output, TestCtx};
use crate::images::{self, Config, Entry, Image, tar_names};
use crate::lifecycle::{Cleanup, ok, run_d};

/// The base image with `/data/imagefile` (what a new volume at `/data` is filled with) and
/// `/tovol -> /data/sub`, a link into the volume.
fn volume_image(t: &TestCtx) -> &'static str {
    let extra = images::tar(&[
        Entry::dir("data", 0o755),
        Entry::file("data/imagefile", 0o644, "image\n"),
        Entry::dir("data/sub", 0o755),
        Entry::symlink("tovol", "/data/sub"),
    ]);
    fixtures::load_image(
        t,
        Image::new("test/vol:1", vec![base_layer(t), extra], Config::shell()),
    );
    "test/vol:1"
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Created,
    Exited,
    Running,
}

/// A container `name` in `state` with the extra `flags` before the image; a running one sleeps.
fn container(t: &TestCtx, state: State, name: &str, flags: &[&str], img: &str) {
    let mut args = vec!["--name", name];
    args.extend_from_slice(flags);
    args.push(img);
    match state {
        State::Created => {
            args.extend(["sleep", "1000"]);
            ok(t, &[&["create"], &args[..]].concat());
        }
        State::Exited => {
            // Stopped, so that `start` runs it again.
            args.extend(["sleep", "1000"]);
            run_d(t, &args);
            ok(t, &["stop", "-t", "0", name]);
        }
        State::Running => {
            args.extend(["sleep", "1000"]);
            run_d(t, &args);
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `cp` into and out of a named volume and a bind mount, directly, through a link in the
/// container and as part of a copied tree, for a container that was created and never started,
/// one that has exited and one that runs: each time the files are the volume's, as a new
/// container mounting the same volume sees, never the container's own (hidden) directory
/// under the mount point, which `export` leaves out.
#[test]
fn cp_reaches_volumes_and_binds_in_every_state() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = volume_image(&t);
    let file = t.write("host/file", "host file\n");
    let file = file.to_str().unwrap();
    let tree = t.user_dir("host/tree/data/deep");
    std::fs::write(tree.join("leaf"), "leaf\n").unwrap();
    let tree_data = t.path("host/tree/data");
    let tree_data = tree_data.to_str().unwrap();
    for state in [State::Created, State::Exited, State::Running] {
        let name = format!("{state:?}").to_lowercase();
        let vol = format!("vol-{name}");
        let bind = t.user_dir(&format!("bind-{name}"));
        std::fs::write(bind.join("from-host"), "on the host\n").unwrap();
        container(
            &t,
            state,
            &name,
            &[
                "-v",
                &format!("{vol}:/data"),
                "-v",
                &format!("{}:/bind", bind.display()),
            ],
            img,
        );
        let c = |p: &str| format!("{name}:{p}");
        ok(&t, &["cp", file, &c("/data/")]);
        ok(&t, &["cp", file, &c("/tovol/via-link")]);
        ok(&t, &["cp", tree_data, &c("/")]);
        ok(&t, &["cp", file, &c("/bind/in-bind")]);
        assert_eq!(read(&bind.join("in-bind")), "host file\n", "{state:?}");

        // Out: what the volume holds (the image's files it was filled with, what cp put
        // there) and what the host has in the bind mount.
        let out = t.user_dir(&format!("out-{name}"));
        let outs = out.to_str().unwrap();
        for src in [
            "/data/imagefile",
            "/data/file",
            "/tovol/via-link",
            "/data/deep/leaf",
            "/bind/from-host",
        ] {
            ok(&t, &["cp", &c(src), outs]);
        }
        assert_eq!(
            ["imagefile", "file", "via-link", "leaf", "from-host"].map(|f| read(&out.join(f))),
            [
                "image\n",
                "host file\n",
                "host file\n",
                "leaf\n",
                "on the host\n"
            ],
            "{state:?}"
        );
        let tarred = ok(&t, &["cp", &c("/data/file"), "-"]);
        assert!(tarred.stdout.contains("host file\n"), "{state:?}");

        // Another container mounting the volume sees what was copied into it.
        ok(
            &t,
            &[
                "run",
                "--rm",
                "-v",
                &format!("{vol}:/data"),
                img,
                "cat",
                "/data/file",
                "/data/sub/via-link",
                "/data/deep/leaf",
                "/data/imagefile",
            ],
        )
        .assert_stdout("host file\nhost file\nleaf\nimage\n");

        if state != State::Running {
            // The container's own directories under its mount points stay empty.
            let export = t.path(&format!("{name}.tar"));
            ok(&t, &["export", "-o", export.to_str().unwrap(), &name]);
            let names = tar_names(&export);
            assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
            for hidden in [
                "data/file",
                "data/sub/via-link",
                "data/deep",
                "bind/in-bind",
            ] {
                assert!(
                    !names.iter().any(|n| n == hidden),
                    "{state:?}: {hidden} exported: {names:?}"
                );
            }
            // Started, the container sees the files where they were copied.
            ok(&t, &["start", &name]);
        }
        let seen = ok(
            &t,
            &[
                "exec",
                &name,
                "cat",
                "/data/file",
                "/tovol/via-link",
                "/bind/in-bind",
            ],
        );
        seen.assert_stdout("host file\nhost file\nhost file\n");
    }
}

fn refused(out: &Output, message: &str, what: &str) {
    assert!(
        out.code == 1 && out.stderr.contains(message),
        "{what}: expected exit 1 and {message:?}: {out:?}"
    );
}

/// docker refuses a copy into a container's read-only root filesystem (`--read-only`) and into
/// a volume or bind mount it mounts read-only (`:ro`, `--mount ...,readonly`), in its words,
/// exit 1, running or not, and writes nothing; a writable volume or bind mount under the
/// read-only root takes copies, and reading from any of them works.
#[test]
fn cp_refuses_read_only_roots_and_mounts() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = volume_image(&t);
    let file = t.write("host/file", "host file\n");
    let file = file.to_str().unwrap();
    let tar = images::tar(&[Entry::file("tarred", 0o644, "tarred\n")]);
    let rootfs = "container rootfs is marked read-only";
    let volume = "mounted volume is marked read-only";
    for state in [State::Created, State::Exited, State::Running] {
        for read_only in [true, false] {
            let name = format!("{state:?}-{read_only}").to_lowercase();
            let robind = t.user_dir(&format!("robind-{name}"));
            std::fs::write(robind.join("kept"), "kept\n").unwrap();
            let rwbind = t.user_dir(&format!("rwbind-{name}"));
            let mut flags = vec![
                "-v".to_string(),
                format!("ro-{name}:/ro:ro"),
                "-v".to_string(),
                format!("rw-{name}:/data"),
                "--mount".to_string(),
                format!(
                    "type=bind,source={},target=/robind,readonly",
                    robind.display()
                ),
                "-v".to_string(),
                format!("{}:/rwbind", rwbind.display()),
            ];
            if read_only {
                flags.push("--read-only".into());
            }
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            container(&t, state, &name, &flags, img);
            let c = |p: &str| format!("{name}:{p}");
            let what = |p: &str| format!("{state:?} read_only={read_only} {p}");

            for dest in ["/ro/", "/ro/new", "/robind", "/robind/kept"] {
                let out = t.burrow(["cp", file, &c(dest)]).output();
                refused(&out, volume, &what(dest));
            }
            let out = t
                .burrow(["cp", "-", &c("/robind")])
                .stdin(tar.clone())
                .output();
            refused(&out, volume, &what("- /robind"));
            assert_eq!(read(&robind.join("kept")), "kept\n");
            assert_eq!(
                std::fs::read_dir(&robind).unwrap().count(),
                1,
                "{}",
                what("robind written")
            );

            for dest in ["/", "/etc/", "/etc/new", "/bin/../tmp/"] {
                let out = t.burrow(["cp", file, &c(dest)]).output();
                if read_only {
                    refused(&out, rootfs, &what(dest));
                } else {
                    out.assert_ok();
                }
            }
            let out = t
                .burrow(["cp", "-", &c("/etc")])
                .stdin(tar.clone())
                .output();
            if read_only {
                refused(&out, rootfs, &what("- /etc"));
            } else {
                out.assert_ok();
            }

            // Writable mounts take copies, under a read-only root too, also through a link.
            ok(&t, &["cp", file, &c("/data/")]);
            ok(&t, &["cp", file, &c("/tovol/linked")]);
            ok(&t, &["cp", file, &c("/rwbind/")]);
            assert_eq!(read(&rwbind.join("file")), "host file\n");
            let out_dir = t.user_dir(&format!("out-{name}"));
            ok(&t, &["cp", &c("/robind/kept"), out_dir.to_str().unwrap()]);
            ok(&t, &["cp", &c("/data/file"), out_dir.to_str().unwrap()]);
            assert_eq!(read(&out_dir.join("kept")), "kept\n");
            assert_eq!(read(&out_dir.join("file")), "host file\n");

            if state != State::Running {
                ok(&t, &["start", &name]);
            }
            // What the refused copies would have written is nowhere.
            let ls = t
                .burrow([
                    "exec",
                    &name,
                    "ls",
                    "/file",
                    "/etc/file",
                    "/etc/new",
                    "/etc/tarred",
                    "/tmp/file",
                    "/ro/file",
                    "/robind/tarred",
                ])
                .output();
            let written: Vec<&str> = ls.stdout.lines().collect();
            let want: &[&str] = if read_only {
                &[]
            } else {
                &["/etc/file", "/etc/new", "/etc/tarred", "/file", "/tmp/file"]
            };
            assert_eq!(written, want, "{}: {ls:?}", what("written"));
            ok(
                &t,
                &["exec", &name, "cat", "/data/file", "/data/sub/linked"],
            )
            .assert_stdout("host file\nhost file\n");
        }
    }
}

/// A stopped container's files and volumes are reached whatever builds its root: the FUSE
/// overlay (served by burrow while it copies) and vfs too.
#[test]
fn cp_reaches_a_stopped_container_with_every_storage_driver() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = volume_image(&t);
    let file = t.write("host/file", "host file\n");
    let file = file.to_str().unwrap();
    for driver in ["fuse-overlay", "vfs"] {
        fn on<'a>(driver: &'a str, args: &[&'a str]) -> Vec<&'a str> {
            [&["--storage-driver", driver], args].concat()
        }
        let vol = format!("vol-{driver}");
        let name = format!("c-{driver}");
        ok(
            &t,
            &on(
                driver,
                &[
                    "create",
                    "--name",
                    &name,
                    "-v",
                    &format!("{vol}:/data"),
                    img,
                    "true",
                ],
            ),
        );
        ok(&t, &on(driver, &["cp", file, &format!("{name}:/data/")]));
        ok(&t, &on(driver, &["cp", file, &format!("{name}:/etc/")]));
        let out = t.user_dir(&format!("out-{driver}"));
        ok(
            &t,
            &on(
                driver,
                &[
                    "cp",
                    &format!("{name}:/data/imagefile"),
                    out.to_str().unwrap(),
                ],
            ),
        );
        ok(
            &t,
            &on(
                driver,
                &["cp", &format!("{name}:/etc/file"), out.to_str().unwrap()],
            ),
        );
        assert_eq!(read(&out.join("imagefile")), "image\n", "{driver}");
        assert_eq!(read(&out.join("file")), "host file\n", "{driver}");
        ok(
            &t,
            &on(
                driver,
                &[
                    "run",
                    "--rm",
                    "-v",
                    &format!("{vol}:/data"),
                    img,
                    "cat",
                    "/data/file",
                ],
            ),
        )
        .assert_stdout("host file\n");
    }
}

/// A link inside a bind mount resolves as the container resolves it: `..` at the mount's root
/// is the mount point's parent in the container, `/` the container's root, never the host's
/// directory holding the bind mount's source, running or not.
#[test]
fn links_in_a_bind_mount_stay_in_the_container() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = volume_image(&t);
    // A name nothing else uses: an escape through `far` would put it in the host's /tmp.
    let unique = format!("cp-bind-escape-{}", std::process::id());
    let file = t.write(&format!("host/{unique}"), "host file\n");
    let file = file.to_str().unwrap();
    // What an escape would reach: the bind source's parent directory, on the host.
    let outside = t.user_dir("outside");
    std::fs::write(outside.join("secret"), "secret\n").unwrap();
    for state in [State::Created, State::Running] {
        let name = format!("{state:?}").to_lowercase();
        let bind = t.user_dir(&format!("outside/bind-{name}"));
        std::os::unix::fs::symlink("..", bind.join("up")).unwrap();
        std::os::unix::fs::symlink("../../../../..", bind.join("far")).unwrap();
        std::os::unix::fs::symlink("/", bind.join("abs")).unwrap();
        container(
            &t,
            state,
            &name,
            &["-v", &format!("{}:/bind", bind.display())],
            img,
        );
        let c = |p: &str| format!("{name}:{p}");
        let out = t.burrow(["cp", &c("/bind/up/secret"), "-"]).output();
        refused(&out, "Could not find the file", "secret through ..");
        let out = t.burrow(["cp", &c("/bind/far/secret"), "-"]).output();
        refused(&out, "Could not find the file", "secret through ../..");
        ok(&t, &["cp", file, &c("/bind/up/")]);
        ok(&t, &["cp", file, &c("/bind/far/tmp/")]);
        ok(&t, &["cp", file, &c("/bind/abs/data/sub/")]);
        ok(&t, &["cp", file, &c("/bind/up")]);
        for escaped in [outside.join(&unique), Path::new("/tmp").join(&unique)] {
            assert!(
                !escaped.exists(),
                "{state:?}: {} written",
                escaped.display()
            );
        }
        assert_eq!(read(&outside.join("secret")), "secret\n");
        if state != State::Running {
            ok(&t, &["start", &name]);
        }
        let inside = ["/", "/tmp/", "/data/sub/"].map(|d| format!("{d}{unique}"));
        let mut cat = vec!["exec", &name, "cat"];
        cat.extend(inside.iter().map(String::as_str));
        ok(&t, &cat).assert_stdout("host file\nhost file\nhost file\n");
        ok(&t, &["exec", &name, "ls", "-l", "/bind/up"]).assert_stdout_contains("-> ..");
    }
}
