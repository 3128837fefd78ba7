//! Volumes: bind mounts (`-v`, `--mount`, `:ro`, `:U`), named and anonymous
//! volumes (seeding, `nocopy`, removal with `rm -v`/`run --rm`), `--tmpfs`,
//! `--read-only`, `--volumes-from`, and the `volume` commands.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::fixtures::load_base;
use crate::harness::{TestCtx, chown};
use crate::lifecycle::{Cleanup, ok, run_d};

/// `volume ls -q`, sorted.
fn volumes(t: &TestCtx) -> BTreeSet<String> {
    ok(t, &["volume", "ls", "-q"])
        .lines()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Names of anonymous volumes (64 hex) in `volume ls -q`.
fn anonymous(t: &TestCtx) -> BTreeSet<String> {
    volumes(t)
        .into_iter()
        .filter(|v| crate::lifecycle::is_hex(v, 64))
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn bind(host: &Path, ctr: &str) -> String {
    format!("{}:{ctr}", host.display())
}

/// Give a host file to the burrow user (tests run as root write as root).
fn give(t: &TestCtx, p: &Path) {
    if t.as_root {
        chown(p, t.user.uid, t.user.gid).unwrap();
    }
}

// --------------------------------------------------------------- bind mounts

#[test]
fn bind_mount_rw_and_ro() {
    let t = ctx!();
    let img = load_base(&t);
    let dir = t.user_dir("share");
    let f = dir.join("from-host");
    fs::write(&f, "host data\n").unwrap();
    give(&t, &f);
    t.burrow([
        "run",
        "--rm",
        "-v",
        &bind(&dir, "/share"),
        img,
        "sh",
        "-c",
        "cat /share/from-host; echo ctr data > /share/from-ctr",
    ])
    .output()
    .assert_ok()
    .assert_stdout("host data\n");
    assert_eq!(
        fs::read_to_string(dir.join("from-ctr")).unwrap(),
        "ctr data\n"
    );
    // root in the container is the burrow user on the host
    let m = fs::metadata(dir.join("from-ctr")).unwrap();
    assert_eq!((m.uid(), m.gid()), (t.user.uid, t.user.gid));

    // :ro refuses writes, reads work
    let out = t
        .burrow([
            "run",
            "--rm",
            "-v",
            &format!("{}:ro", bind(&dir, "/share")),
            img,
            "sh",
            "-c",
            "cat /share/from-host; echo x > /share/nope",
        ])
        .output();
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "host data\n", "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    assert!(!dir.join("nope").exists());
    // explicit rw, and --mount readonly
    t.burrow([
        "run",
        "--rm",
        "-v",
        &format!("{}:rw", bind(&dir, "/share")),
        img,
        "touch",
        "/share/rw-ok",
    ])
    .output()
    .assert_ok();
    assert!(dir.join("rw-ok").exists());
    let out = t
        .burrow([
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,source={},target=/share,readonly", dir.display()),
            img,
            "touch",
            "/share/nope",
        ])
        .output();
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!dir.join("nope").exists());
}

/// `z`/`Z` (SELinux relabelling) are accepted, alone or with `ro`, and change nothing else.
#[test]
fn bind_mount_z_and_capital_z_options() {
    let t = ctx!();
    let img = load_base(&t);
    let dir = t.user_dir("share");
    let f = dir.join("f");
    fs::write(&f, "host data\n").unwrap();
    give(&t, &f);
    for opts in ["z", "Z", "ro,z", "Z,ro"] {
        let out = t
            .burrow([
                "run",
                "--rm",
                "-v",
                &format!("{}:{opts}", bind(&dir, "/share")),
                img,
                "sh",
                "-c",
                "cat /share/f; echo x > /share/w 2>/dev/null && echo writable || echo read-only",
            ])
            .output();
        out.assert_ok();
        let want = if opts.contains("ro") {
            "read-only"
        } else {
            "writable"
        };
        assert_eq!(
            out.stdout,
            format!("host data\n{want}\n"),
            "{opts}: {out:?}"
        );
        let _ = fs::remove_file(dir.join("w"));
    }
}

#[test]
fn bind_mount_single_file() {
    let t = ctx!();
    let img = load_base(&t);
    let f = t.write("conf.txt", "conf\n");
    t.burrow([
        "run",
        "--rm",
        "-v",
        &format!("{}:ro", bind(&f, "/etc/app.conf")),
        img,
        "cat",
        "/etc/app.conf",
    ])
    .output()
    .assert_ok()
    .assert_stdout("conf\n");
}

#[test]
fn bind_mount_u_chowns_to_container_user() {
    let t = ctx!();
    let Some(sub) = t.subuid() else {
        crate::harness::skip(
            crate::function_name!(),
            "the test user has no subordinate uids",
        );
        return;
    };
    let Some(subg) = t.subgid() else {
        crate::harness::skip(
            crate::function_name!(),
            "the test user has no subordinate gids",
        );
        return;
    };
    let img = load_base(&t);
    let dir = t.user_dir("owned");
    let f = dir.join("f");
    fs::write(&f, "x\n").unwrap();
    give(&t, &f);
    t.burrow([
        "run",
        "--rm",
        "-u",
        "app",
        "-v",
        &format!("{}:U", bind(&dir, "/data")),
        img,
        "sh",
        "-c",
        "stat -c '%u:%g' /data /data/f && echo new > /data/g",
    ])
    .output()
    .assert_ok()
    .assert_stdout("1000:1000\n1000:1000\n");
    // Container uid N>=1 is subordinate id start+N-1 on the host.
    let (huid, hgid) = (sub.start + 999, subg.start + 999);
    for p in [dir.clone(), f, dir.join("g")] {
        let m = fs::metadata(&p).unwrap();
        assert_eq!(
            (m.uid() as u64, m.gid() as u64),
            (huid, hgid),
            "{} is not owned by the container's app user",
            p.display()
        );
    }
}

#[test]
fn mount_bind_of_missing_path_is_an_error() {
    let t = ctx!();
    let img = load_base(&t);
    let missing = t.path("does-not-exist");
    let out = t
        .burrow([
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={},dst=/m", missing.display()),
            img,
            "true",
        ])
        .output();
    out.assert_code(125);
    assert!(
        out.stderr.contains("does not exist")
            && out.stderr.contains(&missing.display().to_string()),
        "clear error naming the path: {out:?}"
    );
    assert!(!missing.exists(), "--mount must not create the source");
    assert!(
        ok(&t, &["ps", "-aq"]).stdout.is_empty(),
        "no container left"
    );
}

#[test]
fn v_of_missing_host_dir_creates_it() {
    let t = ctx!();
    let img = load_base(&t);
    let missing = t.path("made/by/burrow");
    t.burrow([
        "run",
        "--rm",
        "-v",
        &bind(&missing, "/m"),
        img,
        "sh",
        "-c",
        "echo hi > /m/f",
    ])
    .output()
    .assert_ok();
    assert!(missing.is_dir());
    assert_eq!(fs::read_to_string(missing.join("f")).unwrap(), "hi\n");
}

#[test]
fn v_relative_host_path_is_a_volume_name_or_error() {
    // docker: `-v rel/path:/x` is neither a name nor an absolute path.
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow(["run", "--rm", "-v", "rel/path:/x", img, "true"])
        .output();
    out.assert_code(125);
    out.assert_stderr_nonempty();
}

// ------------------------------------------------------------- named volumes

#[test]
fn named_volume_persists_across_containers() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow([
        "run",
        "--rm",
        "-v",
        "data:/data",
        img,
        "sh",
        "-c",
        "echo kept > /data/file",
    ])
    .output()
    .assert_ok();
    assert_eq!(
        volumes(&t),
        set(&["data"]),
        "created on first use, kept after --rm"
    );
    t.burrow([
        "run",
        "--rm",
        "-v",
        "data:/elsewhere",
        img,
        "cat",
        "/elsewhere/file",
    ])
    .output()
    .assert_ok()
    .assert_stdout("kept\n");
    let mp = ok(&t, &["volume", "inspect", "-f", "{{.Mountpoint}}", "data"])
        .stdout
        .trim()
        .to_string();
    assert_eq!(
        fs::read_to_string(Path::new(&mp).join("file")).unwrap(),
        "kept\n"
    );
    // --mount type=volume names the same volume
    t.burrow([
        "run",
        "--rm",
        "--mount",
        "type=volume,source=data,target=/d,readonly",
        img,
        "sh",
        "-c",
        "cat /d/file; touch /d/x",
    ])
    .output()
    .assert_code(1)
    .assert_stdout("kept\n");
}

#[test]
fn named_volume_seeded_from_image_once() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            "-v",
            "etcvol:/etc",
            img,
            "cat",
            "/etc/passwd",
        ])
        .output();
    out.assert_ok();
    assert_eq!(out.stdout, crate::images::PASSWD, "{out:?}");
    // the image's files are now in the volume, wherever it is mounted
    let out = ok(&t, &["run", "--rm", "-v", "etcvol:/v", img, "ls", "/v"]);
    let names: BTreeSet<&str> = out.stdout.split_whitespace().collect();
    assert!(
        names.contains("passwd") && names.contains("group"),
        "{out:?}"
    );
    // seeding happens only while the volume is empty: a change survives
    t.burrow([
        "run",
        "--rm",
        "-v",
        "etcvol:/etc",
        img,
        "sh",
        "-c",
        "echo changed > /etc/group",
    ])
    .output()
    .assert_ok();
    ok(
        &t,
        &["run", "--rm", "-v", "etcvol:/etc", img, "cat", "/etc/group"],
    )
    .assert_stdout("changed\n");
    // ownership of seeded files is the image's (app's home is uid 1000)
    ok(
        &t,
        &[
            "run",
            "--rm",
            "-v",
            "homevol:/home",
            img,
            "stat",
            "-c",
            "%u:%g %n",
            "/home/app",
            "/home/app/owned-file",
        ],
    )
    .assert_stdout("1000:1000 /home/app\n1000:1000 /home/app/owned-file\n");
}

#[test]
fn named_volume_nocopy() {
    let t = ctx!();
    let img = load_base(&t);
    let out = ok(
        &t,
        &["run", "--rm", "-v", "empty:/etc:nocopy", img, "ls", "/etc"],
    );
    assert!(
        !out.stdout.contains("passwd"),
        "nocopy seeded the volume: {out:?}"
    );
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=empty2,dst=/etc,volume-nocopy",
            img,
            "ls",
            "/etc",
        ],
    );
    assert!(
        !out.stdout.contains("passwd"),
        "volume-nocopy seeded the volume: {out:?}"
    );
    let out = ok(&t, &["run", "--rm", "-v", "empty:/x", img, "ls", "/x"]);
    assert!(!out.stdout.contains("passwd"), "{out:?}");
}

// --------------------------------------------------------- anonymous volumes

#[test]
fn anonymous_volume_removed_by_run_rm() {
    let t = ctx!();
    let img = load_base(&t);
    ok(&t, &["volume", "create", "named-stays"]);
    t.burrow([
        "run",
        "--rm",
        "-v",
        "/anon",
        "-v",
        "named-stays:/named",
        img,
        "sh",
        "-c",
        "echo x > /anon/f; mount | grep -q ' /anon ' && echo mounted",
    ])
    .output()
    .assert_ok()
    .assert_stdout("mounted\n");
    assert_eq!(
        volumes(&t),
        set(&["named-stays"]),
        "anonymous volume left by run --rm"
    );
}

#[test]
fn anonymous_volume_removed_by_rm_v_only() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    ok(
        &t,
        &[
            "run", "--name", "a1", "-v", "/anon", img, "touch", "/anon/f",
        ],
    );
    let anon = anonymous(&t);
    assert_eq!(anon.len(), 1, "one anonymous volume for -v /anon");
    // rm without -v keeps it
    ok(&t, &["rm", "a1"]);
    assert_eq!(anonymous(&t), anon);
    // rm -v removes it
    ok(
        &t,
        &[
            "run", "--name", "a2", "-v", "/anon2", "-v", "keep:/k", img, "true",
        ],
    );
    let before = anonymous(&t);
    assert_eq!(before.len(), 2);
    ok(&t, &["rm", "-v", "a2"]);
    assert_eq!(
        anonymous(&t),
        anon,
        "rm -v removes only a2's anonymous volume"
    );
    assert!(volumes(&t).contains("keep"), "rm -v keeps named volumes");
}

#[test]
fn anonymous_volume_seeded_from_image() {
    let t = ctx!();
    let img = load_base(&t);
    ok(
        &t,
        &["run", "--rm", "-v", "/etc", img, "cat", "/etc/passwd"],
    )
    .assert_stdout(crate::images::PASSWD);
}

// ------------------------------------------------------- tmpfs and read-only

#[test]
fn tmpfs_mount_with_size() {
    let t = ctx!();
    let img = load_base(&t);
    let out = ok(
        &t,
        &[
            "run",
            "--rm",
            "--tmpfs",
            "/scratch:size=1m",
            img,
            "sh",
            "-c",
            "grep ' /scratch ' /proc/mounts",
        ],
    );
    let f: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(f.get(2), Some(&"tmpfs"), "{out:?}");
    assert!(
        f.get(3).is_some_and(|o| o.contains("size=1024k")),
        "{out:?}"
    );
    // the limit holds
    let out = t
        .burrow([
            "run",
            "--rm",
            "--tmpfs",
            "/scratch:size=1m",
            img,
            "dd",
            "if=/dev/zero",
            "of=/scratch/big",
            "bs=1k",
            "count=2048",
        ])
        .output();
    assert_ne!(out.code, 0, "wrote 2 MiB into a 1 MiB tmpfs: {out:?}");
    assert!(out.stderr.contains("No space left"), "{out:?}");
    // --mount type=tmpfs, and contents do not persist
    ok(
        &t,
        &[
            "run",
            "--name",
            "tm",
            "--mount",
            "type=tmpfs,destination=/t,tmpfs-size=65536",
            img,
            "sh",
            "-c",
            "grep ' /t ' /proc/mounts && echo x > /t/f",
        ],
    )
    .assert_stdout_contains("tmpfs");
    ok(&t, &["start", "-a", "tm"]);
    ok(&t, &["rm", "tm"]);
}

#[test]
fn read_only_rootfs_with_tmpfs_tmp() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow(["run", "--rm", "--read-only", img, "touch", "/file"])
        .output();
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    ok(
        &t,
        &[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/tmp",
            img,
            "sh",
            "-c",
            "echo ok > /tmp/f && cat /tmp/f",
        ],
    )
    .assert_stdout("ok\n");
    // volumes stay writable under --read-only
    ok(
        &t,
        &[
            "run",
            "--rm",
            "--read-only",
            "-v",
            "rw:/rw",
            img,
            "touch",
            "/rw/f",
        ],
    );
    assert_eq!(
        ok(
            &t,
            &[
                "run",
                "--rm",
                "--read-only",
                img,
                "sh",
                "-c",
                "grep -c ' / .* ro[,\\ ]' /proc/mounts"
            ]
        )
        .stdout,
        "1\n"
    );
}

// ------------------------------------------------------------- volumes-from

#[test]
fn volumes_from_shares_mounts() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let dir = t.user_dir("bindsrc");
    ok(
        &t,
        &[
            "create",
            "--name",
            "src",
            "-v",
            "shared:/shared",
            "-v",
            "/anon",
            "-v",
            &bind(&dir, "/b"),
            img,
            "true",
        ],
    );
    ok(
        &t,
        &[
            "run",
            "--rm",
            "-v",
            "shared:/s",
            img,
            "sh",
            "-c",
            "echo from-src > /s/f",
        ],
    );
    let src_anon = anonymous(&t);
    assert_eq!(src_anon.len(), 1, "create made src's anonymous volume");
    ok(
        &t,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            img,
            "sh",
            "-c",
            "cat /shared/f && echo anon > /anon/f && echo bind > /b/f",
        ],
    )
    .assert_stdout("from-src\n");
    assert_eq!(fs::read_to_string(dir.join("f")).unwrap(), "bind\n");
    // The anonymous volume is src's (shared, not new), and `run --rm` of the
    // borrower must not remove a volume src still uses.
    assert_eq!(
        anonymous(&t),
        src_anon,
        "run --rm --volumes-from src removed (or added) an anonymous volume"
    );
    // :ro
    let out = t
        .burrow([
            "run",
            "--rm",
            "--volumes-from",
            "src:ro",
            img,
            "sh",
            "-c",
            "cat /shared/f; touch /shared/g",
        ])
        .output();
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "from-src\n", "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    let out = t
        .burrow(["run", "--rm", "--volumes-from", "nosuch", img, "true"])
        .output();
    out.assert_code(125);
    out.assert_stderr_nonempty();
    assert_eq!(anonymous(&t), src_anon);
    ok(
        &t,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            img,
            "cat",
            "/anon/f",
        ],
    )
    .assert_stdout("anon\n");
    t.burrow(["start", "-a", "src"]).output().assert_ok();
}

// ------------------------------------------------------------------- inspect

#[test]
fn inspect_mounts_lists_volumes_and_binds() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let dir = t.user_dir("b");
    ok(
        &t,
        &[
            "create",
            "--name",
            "m",
            "-v",
            &format!("{}:ro", bind(&dir, "/b")),
            "-v",
            "nv:/nv",
            "-v",
            "/anon",
            img,
            "true",
        ],
    );
    let out = ok(&t, &["inspect", "-f", "{{json .Mounts}}", "m"]);
    let mounts: Vec<serde_json::Value> = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(mounts.len(), 3, "{out:?}");
    let b = mounts
        .iter()
        .find(|m| m["Destination"] == "/b")
        .unwrap_or_else(|| out.fail("no /b"));
    assert_eq!(b["Type"], "bind");
    assert_eq!(b["Source"], dir.display().to_string());
    assert_eq!(b["RW"], false);
    let v = mounts
        .iter()
        .find(|m| m["Destination"] == "/nv")
        .unwrap_or_else(|| out.fail("no /nv"));
    assert_eq!(v["Type"], "volume");
    assert_eq!(v["Name"], "nv");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["RW"], true);
    let mp = ok(&t, &["volume", "inspect", "-f", "{{.Mountpoint}}", "nv"]).stdout;
    assert_eq!(v["Source"], mp.trim());
    let a = mounts
        .iter()
        .find(|m| m["Destination"] == "/anon")
        .unwrap_or_else(|| out.fail("no /anon"));
    assert_eq!(a["Type"], "volume");
    let anon: Vec<String> = anonymous(&t).into_iter().collect();
    assert_eq!(a["Name"], anon[0], "the anonymous volume's name");
}

// ----------------------------------------------------------- volume commands

#[test]
fn volume_create_ls_inspect_with_labels() {
    let t = ctx!();
    ok(
        &t,
        &["volume", "create", "--label", "a=b", "--label", "c=d", "lv"],
    )
    .assert_stdout("lv\n");
    ok(&t, &["volume", "create", "--label", "a=x", "other"]);
    ok(&t, &["volume", "create", "plain"]);
    // generated name
    let out = ok(&t, &["volume", "create"]);
    let gen_name = out.stdout.trim().to_string();
    assert!(crate::lifecycle::is_hex(&gen_name, 64), "{out:?}");

    ok(&t, &["volume", "ls", "-q", "-f", "label=a=b"]).assert_stdout("lv\n");
    let all_a: BTreeSet<String> = ok(&t, &["volume", "ls", "-q", "-f", "label=a"])
        .lines()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(all_a, set(&["lv", "other"]));
    let out = ok(&t, &["volume", "ls", "-f", "label=a=b"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![vec!["DRIVER", "VOLUME", "NAME"], vec!["local", "lv"]],
        "{out:?}"
    );
    ok(&t, &["volume", "ls", "-q", "-f", "name=pla"]).assert_stdout("plain\n");
    ok(
        &t,
        &[
            "volume",
            "ls",
            "-q",
            "-f",
            "dangling=true",
            "-f",
            "label=c=d",
        ],
    )
    .assert_stdout("lv\n");

    // --format
    ok(
        &t,
        &[
            "volume",
            "ls",
            "-f",
            "label=a=b",
            "--format",
            "{{.Name}} {{.Driver}}",
        ],
    )
    .assert_stdout("lv local\n");
    let out = ok(
        &t,
        &[
            "volume",
            "ls",
            "-f",
            "name=plain",
            "--format",
            "table {{.Name}}\t{{.Driver}}",
        ],
    );
    let rows: Vec<Vec<&str>> = out
        .lines()
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![vec!["VOLUME", "NAME", "DRIVER"], vec!["plain", "local"]],
        "{out:?}"
    );
    let out = ok(&t, &["volume", "ls", "-f", "label=a=b", "--format", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| out.fail(&format!("{e}")));
    assert_eq!(v["Name"], "lv");
    assert_eq!(v["Driver"], "local");

    // inspect: docker's fields
    let out = ok(&t, &["volume", "inspect", "lv"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let v = &v[0];
    assert_eq!(v["Name"], "lv");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"], serde_json::json!({"a": "b", "c": "d"}));
    let mp = v["Mountpoint"]
        .as_str()
        .unwrap_or_else(|| out.fail("Mountpoint"));
    assert!(Path::new(mp).is_dir(), "Mountpoint {mp} is not a directory");
    assert!(mp.starts_with(&t.root.display().to_string()), "{mp}");
    let created = v["CreatedAt"]
        .as_str()
        .unwrap_or_else(|| out.fail("CreatedAt"));
    assert!(
        created.starts_with("20") && created.contains('T'),
        "CreatedAt {created}"
    );
    ok(
        &t,
        &[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Labels.a}} {{index .Labels \"c\"}}",
            "lv",
        ],
    )
    .assert_stdout("lv b d\n");
    // several at once, unknown one fails
    let out = ok(&t, &["volume", "inspect", "lv", "plain"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.len(), 2);
    let out = t.burrow(["volume", "inspect", "nosuch"]).output();
    out.assert_code(1);
    out.assert_stderr_nonempty();
    // creating an existing volume is a no-op
    ok(&t, &["volume", "create", "plain"]).assert_stdout("plain\n");
    // docker renders Labels as k=v,k=v and has .Label "k"
    ok(
        &t,
        &[
            "volume",
            "ls",
            "-f",
            "label=a=x",
            "--format",
            "{{.Name}} {{.Labels}} {{.Label \"a\"}}",
        ],
    )
    .assert_stdout("other a=x x\n");
}

#[test]
fn volume_rm_refused_while_in_use() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(
        &t,
        &["--name", "user", "-v", "busy:/b", img, "sleep", "1000"],
    );
    let out = t.burrow(["volume", "rm", "busy"]).output();
    out.assert_code(1);
    assert!(out.stderr.contains("in use"), "{out:?}");
    assert!(volumes(&t).contains("busy"));
    // a stopped container still uses it
    ok(&t, &["stop", "-t", "0", "user"]);
    let out = t.burrow(["volume", "rm", "busy"]).output();
    out.assert_code(1);
    assert!(out.stderr.contains("in use"), "{out:?}");
    ok(&t, &["rm", "user"]);
    ok(&t, &["volume", "rm", "busy"]).assert_stdout("busy\n");
    assert!(volumes(&t).is_empty());
    let out = t.burrow(["volume", "rm", "busy"]).output();
    out.assert_code(1);
    assert!(out.stderr.contains("no such volume"), "{out:?}");
    // several at once
    ok(&t, &["volume", "create", "x1"]);
    ok(&t, &["volume", "create", "x2"]);
    ok(&t, &["volume", "rm", "x1", "x2"]).assert_stdout("x1\nx2\n");
}

#[test]
fn volume_prune() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    ok(&t, &["volume", "create", "unused-named"]);
    ok(&t, &["volume", "create", "--label", "keep=yes", "labelled"]);
    // an anonymous volume no container uses any more
    ok(&t, &["run", "--name", "gone", "-v", "/anon", img, "true"]);
    ok(&t, &["rm", "gone"]);
    let orphan = anonymous(&t);
    assert_eq!(orphan.len(), 1);
    // volumes of an existing (stopped) container are kept
    ok(
        &t,
        &[
            "create",
            "--name",
            "holder",
            "-v",
            "held:/h",
            "-v",
            "/held-anon",
            img,
            "true",
        ],
    );
    let held_anon: BTreeSet<String> = anonymous(&t).difference(&orphan).cloned().collect();
    assert_eq!(held_anon.len(), 1);

    // docker >= 23: prune removes anonymous volumes only
    let out = ok(&t, &["volume", "prune", "-f"]);
    let orphan_name = orphan.iter().next().unwrap();
    assert!(out.stdout.contains(orphan_name.as_str()), "{out:?}");
    let mut want = set(&["unused-named", "labelled", "held"]);
    want.extend(held_anon.iter().cloned());
    assert_eq!(volumes(&t), want);
    assert!(out.stdout.starts_with("Deleted Volumes:\n"), "{out:?}");
    assert!(out.stdout.contains("Total reclaimed space: "), "{out:?}");
    // -a: unused named ones too
    ok(&t, &["volume", "prune", "-a", "-f"]);
    let mut want = set(&["held"]);
    want.extend(held_anon.iter().cloned());
    assert_eq!(volumes(&t), want, "in-use volumes survive prune -a");
    // Nothing left to remove: no header, as docker.
    ok(&t, &["volume", "prune", "-a", "-f"]).assert_stdout("Total reclaimed space: 0B\n");
}

// ------------------------------------------------------------ image VOLUMEs

/// Load an image whose config declares `VOLUME /data` and whose layer holds
/// /data/seed (the images module's `Config` has no volumes, so the archive
/// is written here).
fn load_volume_image(t: &TestCtx) -> &'static str {
    use crate::images::{Entry, RootfsOpts, busybox_rootfs, sha256_hex, tar};
    let tag = "test/vol:1";
    let mut rootfs = busybox_rootfs(&t.busybox, &RootfsOpts::default());
    rootfs.push(Entry::dir("data", 0o755));
    rootfs.push(Entry::file("data/seed", 0o644, "from-image\n"));
    let layer = tar(&rootfs);
    let layer_hex = sha256_hex(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "Volumes": {"/data": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "VOLUME /data"}],
    }))
    .unwrap();
    let cfg_name = format!("{}.json", sha256_hex(&config));
    let layer_name = format!("{layer_hex}/layer.tar");
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": cfg_name, "RepoTags": [tag], "Layers": [layer_name]}
    ]))
    .unwrap();
    let archive = tar(&[
        Entry::file(&cfg_name, 0o644, config),
        Entry::dir(&layer_hex, 0o755),
        Entry::file(&layer_name, 0o644, layer),
        Entry::file("manifest.json", 0o644, manifest),
    ]);
    let p = t.write("vol-image.tar", archive);
    t.load(&p);
    tag
}

#[test]
fn image_volume_gets_anonymous_volume() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_volume_image(&t);
    ok(
        &t,
        &[
            "run",
            "--name",
            "iv",
            img,
            "sh",
            "-c",
            "cat /data/seed && grep -q ' /data ' /proc/mounts && echo mounted",
        ],
    )
    .assert_stdout("from-image\nmounted\n");
    let anon = anonymous(&t);
    assert_eq!(anon.len(), 1, "one anonymous volume for VOLUME /data");
    let name = anon.iter().next().unwrap();
    let mp = ok(&t, &["volume", "inspect", "-f", "{{.Mountpoint}}", name]).stdout;
    assert_eq!(
        fs::read_to_string(Path::new(mp.trim()).join("seed")).unwrap(),
        "from-image\n",
        "the anonymous volume is seeded from the image"
    );
    // a named volume at the same path replaces the anonymous one
    ok(
        &t,
        &["run", "--rm", "-v", "named:/data", img, "cat", "/data/seed"],
    )
    .assert_stdout("from-image\n");
    assert_eq!(
        anonymous(&t),
        anon,
        "no anonymous volume for an overridden VOLUME"
    );
    // run --rm removes the image VOLUME's anonymous volume
    ok(&t, &["run", "--rm", img, "true"]);
    assert_eq!(anonymous(&t), anon);
    ok(&t, &["rm", "-v", "iv"]);
    assert!(anonymous(&t).is_empty());
}
