//! A container's files from outside: `diff`, `commit`, `export` and `cp` (both directions,
//! with every container path resolved inside the container's root), and a commit killed
//! halfway.

use std::process::Command;

use crate::fixtures::{self, base_layer};
use crate::harness::TestCtx;
use crate::images::{self, Config, Entry, Image, tar_names};
use crate::lifecycle::{Cleanup, inspect_f, ok, poll, run_d};

/// An image whose root has links that point out of it: `/evil -> /` and
/// `/etc/up -> ../../../../..`.
fn escape_image(t: &TestCtx) -> &'static str {
    let links = images::tar(&[
        Entry::symlink("evil", "/"),
        Entry::dir("etc", 0o755),
        Entry::symlink("etc/up", "../../../../.."),
    ]);
    fixtures::load_image(
        t,
        Image::new("test/escape:1", vec![base_layer(t), links], Config::shell()),
    );
    "test/escape:1"
}

#[test]
fn diff_commit_and_export() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    ok(
        &t,
        &[
            "run",
            "--name",
            "changed",
            img,
            "sh",
            "-c",
            "echo new > /etc/newfile; rm /bin/ls; mkdir -p /data/x; echo d > /data/x/f",
        ],
    );
    let diff = ok(&t, &["diff", "changed"]).stdout;
    for want in ["A /etc/newfile", "D /bin/ls", "C /etc", "A /data/x/f"] {
        assert!(
            diff.lines().any(|l| l == want),
            "diff lacks {want:?}:\n{diff}"
        );
    }
    // Mount points the runtime made are not the container's changes.
    for hidden in ["A /proc", "A /etc/hosts"] {
        assert!(
            !diff.lines().any(|l| l == hidden),
            "diff shows {hidden:?}:\n{diff}"
        );
    }
    // Nor the image's directories holding them (docker makes them in a layer its diff
    // leaves out): a container that changed nothing has nothing to show.
    ok(&t, &["run", "--name", "idle", img, "true"]);
    let diff = ok(&t, &["diff", "idle"]).stdout;
    assert_eq!(diff, "", "a container that changed nothing");

    let id = ok(
        &t,
        &[
            "commit",
            "-m",
            "with changes",
            "-c",
            "CMD [\"cat\", \"/etc/newfile\"]",
            "changed",
            "test/committed:1",
        ],
    )
    .stdout
    .trim()
    .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    ok(&t, &["run", "--rm", "test/committed:1"]).assert_stdout("new\n");
    // The deletion was committed as a whiteout.
    let out = t
        .burrow(["run", "--rm", "test/committed:1", "ls", "/bin/ls"])
        .output();
    assert_ne!(out.code, 0, "{out:?}");
    let history = ok(&t, &["history", "--no-trunc", "test/committed:1"]).stdout;
    assert!(history.contains("with changes"), "{history}");

    let dir = t.user_dir("export");
    let file = dir.join("rootfs.tar");
    ok(&t, &["export", "-o", file.to_str().unwrap(), "changed"]);
    let names = tar_names(&file);
    assert!(names.iter().any(|n| n == "etc/newfile"), "{names:?}");
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(!names.iter().any(|n| n == "bin/ls"), "{names:?}");
    // export → import gives the same filesystem as one layer.
    ok(&t, &["import", file.to_str().unwrap(), "test/flat:1"]);
    ok(&t, &["run", "--rm", "test/flat:1", "cat", "/etc/newfile"]).assert_stdout("new\n");
}

/// Two names of one file the container made stay one file: `commit` writes the second as a
/// hard link entry (so the new image has one inode, as docker's does), and so does `export`;
/// with each storage driver (their upper directories hold the links alike).
#[test]
fn commit_and_export_keep_hard_links() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    for driver in ["overlay", "fuse-overlay", "vfs"] {
        let with = |args: &[&str]| {
            let mut v = vec!["--storage-driver", driver];
            v.extend_from_slice(args);
            ok(&t, &v)
        };
        let (name, tag) = (format!("linked-{driver}"), format!("test/linked:{driver}"));
        with(&[
            "run",
            "--name",
            &name,
            img,
            "sh",
            "-c",
            "echo x > /a && ln /a /b",
        ]);
        with(&["commit", &name, &tag]);
        let check = "stat -c %h /a; [ /a -ef /b ] && echo same";
        with(&["run", "--rm", &tag, "sh", "-c", check]).assert_stdout("2\nsame\n");

        let file = t.user_dir("export").join(format!("{driver}.tar"));
        with(&["export", "-o", file.to_str().unwrap(), &name]);
        let out = Command::new("tar").arg("-tvf").arg(&file).output().unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.lines().any(|l| l.ends_with(" b link to a")),
            "{driver}: {listing}"
        );
    }
}

/// `export` of a running container reads its layers, not its mounts: what it wrote to a
/// volume, a bind mount or a tmpfs is left out (their mount points stay, empty, as docker
/// has them), what it wrote to its root and deleted from its image is as it sees it.
#[test]
fn export_leaves_out_volumes_and_tmpfs() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    let bind = t.user_dir("bind");
    let script = "echo r > /rootfile; rm /bin/ls; echo v > /data/v; echo t > /scratch/t; \
                  echo b > /bind/b; touch /ready; sleep 1000";
    run_d(
        &t,
        &[
            "--name",
            "m",
            "-v",
            "vol:/data",
            "-v",
            &format!("{}:/bind", bind.display()),
            "--tmpfs",
            "/scratch",
            img,
            "sh",
            "-c",
            script,
        ],
    );
    poll("the container to write its files", || {
        let out = t.burrow(["exec", "m", "cat", "/ready"]).output();
        if out.code == 0 {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
    let file = t.user_dir("export").join("rootfs.tar");
    ok(&t, &["export", "-o", file.to_str().unwrap(), "m"]);
    let names = tar_names(&file);
    for want in [
        "rootfile",
        "ready",
        "data",
        "scratch",
        "bind",
        "bin/busybox",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    for unwanted in ["data/v", "scratch/t", "bind/b", "bin/ls"] {
        assert!(
            !names.iter().any(|n| n == unwanted),
            "{unwanted} exported: {names:?}"
        );
    }
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&file)
        .arg("rootfile")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "r\n", "{out:?}");
}

#[test]
fn cp_both_directions_stays_inside_the_container() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = escape_image(&t);
    let host = t.user_dir("host");
    // A name nothing else uses: if cp followed a link out of the container, the file would
    // appear in the host's /tmp (writable by everyone).
    let file = format!("cp-escape-{}-{}", std::process::id(), t.user.uid);
    std::fs::write(host.join(&file), "from-host\n").unwrap();
    crate::harness::chown(&host.join(&file), t.user.uid, t.user.gid).unwrap();
    let src = host.join(&file);
    let src = src.to_str().unwrap();
    for running in [false, true] {
        let name = if running { "cprun" } else { "cpstop" };
        if running {
            run_d(&t, &["--name", name, img, "sleep", "1000"]);
        } else {
            ok(&t, &["create", "--name", name, img, "true"]);
        }
        // Into the container through links that point out of it: the file lands inside.
        ok(&t, &["cp", src, &format!("{name}:/evil/tmp/")]);
        ok(&t, &["cp", src, &format!("{name}:/etc/up/tmp/{file}.2")]);
        assert!(
            !std::path::Path::new("/tmp").join(&file).exists()
                && !std::path::Path::new("/tmp")
                    .join(format!("{file}.2"))
                    .exists(),
            "cp followed a link out of the container into the host's /tmp"
        );
        // A destination directory that does not exist is an error, as in docker.
        let out = t
            .burrow(["cp", src, &format!("{name}:/nonexistent/")])
            .output();
        assert!(
            out.code == 1 && out.stderr.contains("no such directory"),
            "{out:?}"
        );
        // Out of the container through the same links: the container's files, not the host's.
        let out_dir = t.user_dir(&format!("out-{name}"));
        ok(
            &t,
            &[
                "cp",
                &format!("{name}:/evil/tmp/{file}"),
                out_dir.to_str().unwrap(),
            ],
        );
        assert_eq!(
            std::fs::read_to_string(out_dir.join(&file)).unwrap(),
            "from-host\n"
        );
        ok(
            &t,
            &[
                "cp",
                &format!("{name}:/etc/up/etc/passwd"),
                out_dir.to_str().unwrap(),
            ],
        );
        let passwd = std::fs::read_to_string(out_dir.join("passwd")).unwrap();
        assert!(
            passwd.contains("app:x:1000"),
            "got the host's passwd?\n{passwd}"
        );
        // A tar stream of one file on stdout.
        let out = ok(&t, &["cp", &format!("{name}:/etc/passwd"), "-"]);
        assert!(
            out.stdout.starts_with("passwd"),
            "{:?}",
            &out.stdout[..out.stdout.len().min(40)]
        );
        if running {
            ok(
                &t,
                &[
                    "exec",
                    name,
                    "cat",
                    &format!("/tmp/{file}"),
                    &format!("/tmp/{file}.2"),
                ],
            )
            .assert_stdout("from-host\nfrom-host\n");
        } else {
            ok(&t, &["start", "-a", name]);
        }
    }
}

#[test]
fn commit_killed_halfway_leaves_a_store_that_works() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    ok(
        &t,
        &["run", "--name", "src", img, "sh", "-c", "echo x > /x"],
    );
    let killed = t
        .burrow(["commit", "src", "test/half:1"])
        .env("BURROW_TEST_CRASH_AT", "commit-after-layer")
        .output();
    assert_eq!(killed.code, 137, "the crash point did not fire: {killed:?}");
    let images = ok(&t, &["images"]).stdout;
    assert!(!images.contains("test/half"), "{images}");
    // The next commit works, and a prune collects what the killed one left.
    ok(&t, &["commit", "src", "test/half:1"]);
    ok(&t, &["run", "--rm", "test/half:1", "cat", "/x"]).assert_stdout("x\n");
    ok(&t, &["rm", "src"]);
    ok(&t, &["image", "prune", "-a", "-f"]);
    ok(&t, &["images", "-q"]).assert_stdout("");
}

/// The state letter of /proc/PID/stat (T: stopped).
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Run `commit ARGS` up to its stop point `commit-paused` (just before it reads the
/// container's changes), call `look` there, then let it finish.
fn commit_stopped_halfway(t: &TestCtx, args: &[&str], look: impl FnOnce()) {
    let mut cmd = vec!["commit"];
    cmd.extend_from_slice(args);
    let commit = t
        .burrow(cmd)
        .env("BURROW_TEST_STOP_AT", "commit-paused")
        .spawn();
    poll("commit to reach its stop point", || {
        match proc_state(commit.pid()) {
            Some('T') => Ok(()),
            s => Err(format!("burrow's state: {s:?}")),
        }
    });
    look();
    commit.signal(libc::SIGCONT);
    let out = commit.wait();
    assert_eq!(out.code, 0, "{out:?}");
}

/// `commit` (-p by default) stops every process of a running container while it reads its
/// changes and continues them afterwards, also when the commit is killed halfway;
/// `--pause=false` leaves it running, and a paused container stays paused.
#[test]
fn commit_pauses_a_running_container() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    run_d(
        &t,
        &[
            "--name",
            "w",
            img,
            "sh",
            "-c",
            "while :; do echo x >> /log; sleep 0.01; done",
        ],
    );
    let pid: i32 = inspect_f(&t, "{{.State.Pid}}", "w").parse().unwrap();
    let status = || inspect_f(&t, "{{.State.Status}}", "w");

    commit_stopped_halfway(&t, &["w", "test/w:1"], || {
        assert_eq!(proc_state(pid), Some('T'), "not stopped during the commit");
        assert_eq!(status(), "paused");
    });
    assert_eq!(status(), "running");
    assert_ne!(proc_state(pid), Some('T'), "still stopped after the commit");
    ok(&t, &["run", "--rm", "test/w:1", "grep", "-c", "x", "/log"]);

    commit_stopped_halfway(&t, &["--pause=false", "w", "test/w:2"], || {
        assert_ne!(proc_state(pid), Some('T'), "stopped despite --pause=false");
        assert_eq!(status(), "running");
    });

    // Killed while the container is paused: it is continued all the same.
    let killed = t
        .burrow(["commit", "w", "test/w:3"])
        .env("BURROW_TEST_CRASH_AT", "commit-after-layer")
        .output();
    assert_eq!(killed.code, 137, "the crash point did not fire: {killed:?}");
    poll("the container to run again", || {
        match (status(), proc_state(pid)) {
            (s, st) if s == "running" && st != Some('T') => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    ok(&t, &["pause", "w"]);
    ok(&t, &["commit", "w", "test/w:4"]);
    assert_eq!(status(), "paused");
    assert_eq!(proc_state(pid), Some('T'));
    ok(&t, &["unpause", "w"]);
}

/// Two links to host files the test user can write: `/etc/evil` names the first directly as
/// the destination, `/app/conf/evil2` sits in a directory that a copied tree merges into.
#[test]
fn cp_never_writes_through_a_link_to_the_host() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let host = t.user_dir("host");
    let victim = host.join("victim");
    let victim2 = host.join("victim2");
    for v in [&victim, &victim2] {
        std::fs::write(v, "original\n").unwrap();
        crate::harness::chown(v, t.user.uid, t.user.gid).unwrap();
    }
    // The directory the first link names exists in the container too (docker makes no
    // missing directory for cp), so that cp has somewhere to write.
    let rel_host = host.strip_prefix("/").unwrap();
    let mut entries: Vec<Entry> = rel_host
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .map(|a| Entry::dir(a.to_str().unwrap(), 0o755))
        .collect();
    entries.reverse();
    entries.extend([
        Entry::dir("etc", 0o755),
        Entry::symlink("etc/evil", victim.to_str().unwrap()),
        Entry::dir("app", 0o755),
        Entry::dir("app/conf", 0o755),
        Entry::symlink("app/conf/evil2", victim2.to_str().unwrap()),
    ]);
    let links = images::tar(&entries);
    fixtures::load_image(
        &t,
        Image::new("test/links:1", vec![base_layer(&t), links], Config::shell()),
    );
    let data = t.write("pw", "copied\n");
    let conf = t.user_dir("conf");
    std::fs::write(conf.join("evil2"), "copied2\n").unwrap();
    crate::harness::chown(&conf.join("evil2"), t.user.uid, t.user.gid).unwrap();
    for running in [false, true] {
        let name = if running { "lrun" } else { "lstop" };
        if running {
            run_d(&t, &["--name", name, "test/links:1", "sleep", "1000"]);
        } else {
            ok(&t, &["create", "--name", name, "test/links:1", "true"]);
        }
        ok(
            &t,
            &["cp", data.to_str().unwrap(), &format!("{name}:/etc/evil")],
        );
        ok(
            &t,
            &["cp", conf.to_str().unwrap(), &format!("{name}:/app/")],
        );
        for v in [&victim, &victim2] {
            assert_eq!(
                std::fs::read_to_string(v).unwrap(),
                "original\n",
                "cp wrote the host's {} through a link in {name}",
                v.display()
            );
        }
        // As docker: the destination link is followed inside the container, so the data is
        // at the container's copy of the host path; the link in the merged tree is replaced.
        let out = t.user_dir(&format!("out-{name}"));
        let out_s = out.to_str().unwrap();
        ok(&t, &["cp", &format!("{name}:{}", victim.display()), out_s]);
        ok(&t, &["cp", &format!("{name}:/app/conf/evil2"), out_s]);
        assert_eq!(
            std::fs::read_to_string(out.join("victim")).unwrap(),
            "copied\n"
        );
        let evil2 = out.join("evil2");
        assert!(
            std::fs::symlink_metadata(&evil2).unwrap().is_file(),
            "/app/conf/evil2 is still a link in {name}"
        );
        assert_eq!(std::fs::read_to_string(&evil2).unwrap(), "copied2\n");
    }
}

fn exec_out(t: &TestCtx, c: &str, cmd: &[&str]) -> String {
    let mut v = vec!["exec", c];
    v.extend_from_slice(cmd);
    ok(t, &v).stdout
}

fn host_uid(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).unwrap().uid()
}

/// `-a` keeps owners of a single file in both directions (mapped through the subordinate
/// ids); without it, copies belong to the container's root inside and the user outside.
#[test]
fn cp_archive_keeps_the_owner_of_a_single_file() {
    let t = ctx!();
    let (Some(sub), Some(subg)) = (t.subuid(), t.subgid()) else {
        crate::harness::skip(
            "cp_archive_keeps_the_owner_of_a_single_file",
            &format!("user {} has no subordinate ids", t.user.name),
        );
        return;
    };
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    run_d(&t, &["--name", "own", img, "sleep", "1000"]);
    let out = t.user_dir("out");
    let kept = out.join("kept");
    let reset = out.join("reset");
    ok(
        &t,
        &[
            "cp",
            "-a",
            "own:/home/app/owned-file",
            kept.to_str().unwrap(),
        ],
    );
    ok(
        &t,
        &["cp", "own:/home/app/owned-file", reset.to_str().unwrap()],
    );
    assert_eq!(host_uid(&kept) as u64, sub.start + 999);
    assert_eq!(host_uid(&reset), t.user.uid);

    let file = t.write("mine", "x\n");
    crate::harness::chown(&file, (sub.start + 999) as u32, (subg.start + 999) as u32).unwrap();
    let f = file.to_str().unwrap();
    ok(&t, &["cp", "-a", f, "own:/tmp/kept"]);
    ok(&t, &["cp", f, "own:/tmp/reset"]);
    assert_eq!(
        exec_out(
            &t,
            "own",
            &["stat", "-c", "%u:%g", "/tmp/kept", "/tmp/reset"]
        ),
        "1000:1000\n0:0\n"
    );
}

/// `-L` follows a link given as the source, on either side; without it the link is copied.
/// `-` reads a tar stream into a directory.
#[test]
fn cp_follow_link_and_tar_from_stdin() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    run_d(&t, &["--name", "lk", img, "sleep", "1000"]);
    exec_out(&t, "lk", &["ln", "-s", "/etc/passwd", "/tmp/pl"]);
    let out = t.user_dir("out");
    ok(
        &t,
        &[
            "cp",
            "-L",
            "lk:/tmp/pl",
            out.join("followed").to_str().unwrap(),
        ],
    );
    ok(
        &t,
        &["cp", "lk:/tmp/pl", out.join("link").to_str().unwrap()],
    );
    assert!(
        std::fs::symlink_metadata(out.join("followed"))
            .unwrap()
            .is_file()
    );
    assert!(
        std::fs::read_to_string(out.join("followed"))
            .unwrap()
            .contains("app:x:1000")
    );
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        std::path::Path::new("/etc/passwd")
    );

    let target = t.write("target", "through the link\n");
    let link = t.path("hostlink");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let l = link.to_str().unwrap();
    ok(&t, &["cp", "-L", l, "lk:/tmp/followed"]);
    ok(&t, &["cp", l, "lk:/tmp/link"]);
    assert_eq!(
        exec_out(&t, "lk", &["cat", "/tmp/followed"]),
        "through the link\n"
    );
    assert_eq!(
        exec_out(&t, "lk", &["readlink", "/tmp/link"]),
        format!("{}\n", target.display())
    );

    let tar = images::tar(&[
        Entry::dir("t", 0o755),
        Entry::file("t/x", 0o640, "tarred\n"),
    ]);
    // Into an existing directory only, as docker.
    let out = t
        .burrow(["cp", "-", "lk:/tmp/in/"])
        .stdin(tar.clone())
        .output();
    assert!(
        out.code == 1
            && out
                .stderr
                .contains("destination \"lk:/tmp/in/\" must be a directory"),
        "{out:?}"
    );
    exec_out(&t, "lk", &["mkdir", "/tmp/in", "/tmp/again"]);
    t.burrow(["cp", "-", "lk:/tmp/in/"])
        .stdin(tar)
        .output()
        .assert_ok();
    assert_eq!(
        exec_out(&t, "lk", &["stat", "-c", "%a", "/tmp/in/t/x"]),
        "640\n"
    );
    assert_eq!(exec_out(&t, "lk", &["cat", "/tmp/in/t/x"]), "tarred\n");
    // A directory out as a tar stream, and back in elsewhere.
    let tar_out = ok(&t, &["cp", "lk:/tmp/in", "-"]).stdout;
    t.burrow(["cp", "-", "lk:/tmp/again/"])
        .stdin(tar_out.into_bytes())
        .output()
        .assert_ok();
    assert_eq!(
        exec_out(&t, "lk", &["cat", "/tmp/again/in/t/x"]),
        "tarred\n"
    );
}

fn inspect_image(t: &TestCtx, image: &str) -> serde_json::Value {
    let out = ok(t, &["image", "inspect", image]);
    let docs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    docs[0].clone()
}

/// docker's rules for a destination in the container that does not exist: a file is created
/// under that name, a directory too, even with a trailing `/`; a file onto a missing
/// `DIR/` is refused ("no such directory"), so is a missing parent directory, and a tar
/// stream unpacks into an existing directory only. Nothing is created by a refused copy.
#[test]
fn cp_into_missing_destinations_as_docker() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    run_d(&t, &["--name", "d", img, "sleep", "1000"]);
    let file = t.write("f", "file\n");
    let file = file.to_str().unwrap();
    let dir = t.user_dir("tree");
    std::fs::write(dir.join("inner"), "inner\n").unwrap();
    let dir = dir.to_str().unwrap();
    let refused = |args: &[&str], stdin: Option<Vec<u8>>, message: &str| {
        let mut cmd = t.burrow(args.iter().copied());
        if let Some(data) = stdin {
            cmd = cmd.stdin(data);
        }
        let out = cmd.output();
        assert!(
            out.code == 1 && out.stderr.contains(message),
            "{args:?}: expected exit 1 and {message:?}: {out:?}"
        );
    };

    ok(&t, &["cp", file, "d:/newfile"]);
    ok(&t, &["cp", dir, "d:/newdir/"]);
    assert_eq!(
        exec_out(&t, "d", &["cat", "/newfile", "/newdir/inner"]),
        "file\ninner\n"
    );

    refused(&["cp", file, "d:/missing/"], None, "no such directory");
    refused(
        &["cp", file, "d:/no/such/file"],
        None,
        "Could not find the file /no/such in container d",
    );
    let tar = images::tar(&[Entry::file("x", 0o644, "x\n")]);
    refused(
        &["cp", "-", "d:/missing"],
        Some(tar.clone()),
        "destination \"d:/missing\" must be a directory",
    );
    refused(
        &["cp", "-", "d:/etc/passwd"],
        Some(tar),
        "destination \"d:/etc/passwd\" must be a directory",
    );
    let out = t
        .burrow([
            "exec",
            "d",
            "ls",
            "-d",
            "/missing",
            "/no",
            "/x",
            "/etc/passwd/x",
        ])
        .output();
    assert_eq!(
        out.stdout, "",
        "a refused cp left something behind: {out:?}"
    );
}

/// What docker refuses in `cp`, its daemon or its CLI, exits 1 in both directions (`-` and
/// `-a`, `-L` included), in docker's words where they say enough; and a copy merging into a
/// tree never replaces a directory with a non-directory or the reverse (docker's untar
/// refuses both), so the directory's contents are not lost.
#[test]
fn cp_refusals_exit_1_in_dockers_words() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    run_d(&t, &["--name", "e", img, "sleep", "1000"]);
    exec_out(
        &t,
        "e",
        &[
            "sh",
            "-c",
            "mkdir -p /srv/tree/sub/keep && echo kept > /srv/tree/sub/keep/f \
             && echo leaf > /srv/tree/leaf && ln -s /nowhere /tmp/dangling",
        ],
    );
    let host = t.user_dir("host");
    let hs = |rel: &str| host.join(rel).to_str().unwrap().to_string();
    let file = t.write("host/file", "host file\n");
    crate::harness::chown(&file, t.user.uid, t.user.gid).unwrap();
    // Two trees whose names collide with the container's /srv/tree: a file where it has a
    // directory, a directory where it has a file.
    let a_sub = t.user_dir("host/a/tree/sub");
    std::fs::write(a_sub.join("keep"), "a file\n").unwrap();
    let b_leaf = t.user_dir("host/b/tree/leaf");
    std::fs::write(b_leaf.join("x"), "x\n").unwrap();
    std::os::unix::fs::symlink(host.join("nowhere"), host.join("dangling")).unwrap();
    let out_dir = t.user_dir("out");
    let out = out_dir.to_str().unwrap();
    let collide = images::tar(&[Entry::file("tree/sub/keep", 0o644, "tarred\n")]);

    let mut wrong = Vec::new();
    let mut refused = |args: &[&str], stdin: Option<Vec<u8>>, message: &str| {
        let mut cmd = t.burrow(std::iter::once("cp").chain(args.iter().copied()));
        if let Some(data) = stdin {
            cmd = cmd.stdin(data);
        }
        let out = cmd.output();
        if out.code != 1 || !out.stderr.contains(message) {
            wrong.push(format!(
                "cp {args:?}: expected exit 1 and {message:?}, got {}: {}",
                out.code,
                out.stderr.trim()
            ));
        }
    };
    let (file, nosuch, dangling) = (&hs("file"), &hs("nosuch"), &hs("dangling"));
    let (a_tree, b_tree) = (&hs("a/tree"), &hs("b/tree"));
    refused(
        &["nosuch:/etc/passwd", out],
        None,
        "No such container: nosuch",
    );
    refused(&[file, "nosuch:/tmp/"], None, "No such container: nosuch");
    let across = "copying between containers is not supported";
    refused(&["e:/etc/passwd", "e:/tmp/x"], None, across);
    refused(
        &[file, out],
        None,
        "must specify at least one container source",
    );
    // Out of the container.
    let missing = "Could not find the file /nosuch in container e";
    refused(&["e:/nosuch", out], None, missing);
    refused(&["e:/nosuch", "-"], None, missing);
    let missing = "Could not find the file /tmp/dangling in container e";
    refused(&["-L", "e:/tmp/dangling", out], None, missing);
    let no_parent = format!(
        "invalid output path: directory \"{}\" does not exist",
        hs("no/such")
    );
    refused(&["e:/etc/passwd", &hs("no/such/x")], None, &no_parent);
    refused(&["e:/etc", file], None, "cannot copy directory");
    refused(
        &["e:/etc/passwd", &format!("{file}/")],
        None,
        "not a directory",
    );
    refused(
        &["-a", "e:/etc/passwd", &hs("missing/")],
        None,
        "no such directory",
    );
    // Into the container.
    let on_host = |p: &str| format!("could not find the file {p} on the host");
    refused(&[nosuch, "e:/tmp/"], None, &on_host(nosuch));
    refused(&["-L", dangling, "e:/tmp/"], None, &on_host(dangling));
    refused(&[a_tree, "e:/etc/passwd"], None, "cannot copy directory");
    let not_dir = "extraction point /etc/passwd in container e is not a directory";
    refused(&[file, "e:/etc/passwd/x"], None, not_dir);
    refused(&[file, "e:/etc/passwd/"], None, "not a directory");
    let file_on_dir = "cannot overwrite directory \"keep\" with a non-directory";
    refused(&[a_tree, "e:/srv/"], None, file_on_dir);
    refused(&["-", "e:/srv/"], Some(collide), file_on_dir);
    let dir_on_file = "cannot overwrite non-directory \"leaf\" with a directory";
    refused(&[b_tree, "e:/srv/"], None, dir_on_file);
    let garbage = vec![b'x'; 1024];
    refused(
        &["-", "e:/tmp/"],
        Some(garbage),
        "cannot unpack the tar stream from stdin",
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // What the refused copies met is as it was.
    assert_eq!(
        exec_out(&t, "e", &["cat", "/srv/tree/sub/keep/f", "/srv/tree/leaf"]),
        "kept\nleaf\n"
    );
    assert_eq!(std::fs::read_to_string(file).unwrap(), "host file\n");
}

/// `commit -a -m -c`: author, `.Comment`, and docker's changes merged into the base's config
/// (ENV by variable, VOLUME added, ONBUILD kept).
#[test]
fn commit_author_message_and_changes() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    ok(&t, &["run", "--name", "c", img, "sh", "-c", "echo x > /x"]);
    ok(
        &t,
        &[
            "commit",
            "-a",
            "Jane Doe <jane@example.com>",
            "-m",
            "with x",
            "-c",
            "VOLUME /data",
            "-c",
            "ENV FOO=bar",
            "-c",
            "ONBUILD RUN make",
            "c",
            "test/c:1",
        ],
    );
    let doc = inspect_image(&t, "test/c:1");
    assert_eq!(doc["Author"], "Jane Doe <jane@example.com>", "{doc}");
    assert_eq!(doc["Comment"], "with x", "{doc}");
    let config = &doc["Config"];
    assert!(config["Volumes"].get("/data").is_some(), "{config}");
    assert_eq!(
        config["OnBuild"],
        serde_json::json!(["RUN make"]),
        "{config}"
    );
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(env.contains(&"FOO=bar"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    let history = ok(&t, &["history", "--no-trunc", "test/c:1"]).stdout;
    assert!(history.contains("with x"), "{history}");
    // The image's VOLUME gives a container an anonymous volume.
    ok(
        &t,
        &[
            "run",
            "--rm",
            "test/c:1",
            "sh",
            "-c",
            "grep -q ' /data ' /proc/mounts",
        ],
    );
    // A commit without -m has no comment of its own.
    ok(&t, &["commit", "c", "test/c:2"]);
    assert_eq!(inspect_image(&t, "test/c:2")["Comment"], "");
}

/// `import -c -m`: the changes are the config, the message is `.Comment` and history.
#[test]
fn import_with_changes_and_message() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    ok(
        &t,
        &[
            "run",
            "--name",
            "src",
            img,
            "sh",
            "-c",
            "echo imported > /f",
        ],
    );
    let dir = t.user_dir("export");
    let file = dir.join("rootfs.tar");
    ok(&t, &["export", "-o", file.to_str().unwrap(), "src"]);
    ok(
        &t,
        &[
            "import",
            "-c",
            "CMD [\"cat\", \"/f\"]",
            "-c",
            "ENV A=1",
            "-m",
            "from export",
            file.to_str().unwrap(),
            "test/imp:1",
        ],
    );
    ok(&t, &["run", "--rm", "test/imp:1"]).assert_stdout("imported\n");
    let doc = inspect_image(&t, "test/imp:1");
    assert_eq!(doc["Comment"], "from export", "{doc}");
    assert_eq!(doc["Config"]["Env"], serde_json::json!(["A=1"]), "{doc}");
    let history = ok(&t, &["history", "--no-trunc", "test/imp:1"]).stdout;
    assert!(history.contains("from export"), "{history}");
}
