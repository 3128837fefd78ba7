//! The user namespace: id maps, file ownership inside and on the host,
//! single-id maps for users without subordinate ids, `burrow unshare`.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::fixtures::{self, load_base};
use crate::harness::{Who, find_suffix, skip};
use crate::images::{self, Config, Image, RootfsOpts};

fn parse_map(text: &str) -> Vec<(u64, u64, u64)> {
    text.lines()
        .map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .map(|x| x.parse().expect("uid_map number"))
                .collect();
            assert_eq!(f.len(), 3, "uid_map line {l:?}");
            (f[0], f[1], f[2])
        })
        .collect()
}

#[test]
fn uid_and_gid_map_with_subordinate_ids() {
    let t = ctx!();
    let (Some(sub), Some(subg)) = (t.subuid(), t.subgid()) else {
        skip(
            "uid_and_gid_map_with_subordinate_ids",
            &format!(
                "user {} has no subordinate ids in /etc/subuid and /etc/subgid",
                t.user.name
            ),
        );
        return;
    };
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            img,
            "sh",
            "-c",
            "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map",
        ])
        .output();
    out.assert_ok();
    let (u, g) = out.stdout.split_once("--\n").unwrap();
    assert_eq!(
        parse_map(u),
        vec![(0, t.user.uid as u64, 1), (1, sub.start, sub.count)],
        "{out:?}"
    );
    assert_eq!(
        parse_map(g),
        vec![(0, t.user.gid as u64, 1), (1, subg.start, subg.count)],
        "{out:?}"
    );
    // No warning about missing subordinate ids when there are some.
    assert!(
        !out.stderr.to_lowercase().contains("subordinate"),
        "{out:?}"
    );
}

#[test]
fn file_owners_inside_and_on_host() {
    let t = ctx!();
    let Some(sub) = t.subuid() else {
        skip(
            "file_owners_inside_and_on_host",
            &format!("user {} has no subordinate ids", t.user.name),
        );
        return;
    };
    let img = load_base(&t);
    // Inside: the image's uid 1000 file is owned by 1000.
    t.burrow([
        "run",
        "--rm",
        img,
        "stat",
        "-c",
        "%u:%g",
        "/home/app/owned-file",
        "/etc/passwd",
    ])
    .output()
    .assert_ok()
    .assert_stdout("1000:1000\n0:0\n");

    // On the host: in the layer's diff dir, owned by subuid_start + 999.
    let found = find_suffix(&t.root.join("overlay"), "/diff/home/app/owned-file");
    assert_eq!(
        found.len(),
        1,
        "layer file under ROOT/overlay/*/diff: {found:?}"
    );
    let m = fs::symlink_metadata(&found[0]).unwrap();
    assert_eq!(m.uid() as u64, sub.start + 999, "{}", found[0].display());
    let passwd = found[0]
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("etc/passwd");
    let m = fs::symlink_metadata(&passwd).unwrap();
    assert_eq!(m.uid(), t.user.uid, "{}", passwd.display());

    // A kept container's upper dir: root's file is the user's, app's file is subuid+999.
    t.burrow([
        "run",
        "--name",
        "keep",
        img,
        "sh",
        "-c",
        "touch /by-root && touch /tmp/by-app && chown 1000:1000 /tmp/by-app",
    ])
    .output()
    .assert_ok();
    let ids = t.containers();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let upper = t.root.join("containers").join(&ids[0]).join("upper");
    let by_root = fs::symlink_metadata(upper.join("by-root"))
        .unwrap_or_else(|e| panic!("{}/by-root: {e}", upper.display()));
    assert_eq!(by_root.uid(), t.user.uid);
    let by_app = fs::symlink_metadata(upper.join("tmp/by-app")).unwrap();
    assert_eq!(by_app.uid() as u64, sub.start + 999);

    // And as uid 1000 directly (-u).
    t.burrow([
        "run",
        "--rm",
        "-u",
        "1000:1000",
        img,
        "sh",
        "-c",
        "touch /tmp/x && stat -c %u:%g /tmp/x",
    ])
    .output()
    .assert_ok()
    .assert_stdout("1000:1000\n");
}

#[test]
fn unshare_runs_as_root_in_userns() {
    let t = ctx!();
    // `unshare` needs a storage root only for its own bookkeeping.
    let out = t
        .burrow(["unshare", "sh", "-c", "id -u; cat /proc/self/uid_map"])
        .output();
    out.assert_ok();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("0"), "{out:?}");
    let map = parse_map(&lines.collect::<Vec<_>>().join("\n"));
    assert_eq!(map[0], (0, t.user.uid as u64, 1), "{out:?}");
    if let Some(sub) = t.subuid() {
        assert_eq!(map.get(1), Some(&(1, sub.start, sub.count)), "{out:?}");
    }
    // It can remove files owned by subordinate ids.
    let img = load_base(&t);
    t.burrow(["run", "--name", "c", img, "true"])
        .output()
        .assert_ok();
    t.burrow(["unshare", "rm", "-rf", t.root.to_str().unwrap()])
        .output()
        .assert_ok();
    assert!(!t.root.exists());
}

#[test]
fn unshare_exit_code() {
    let t = ctx!();
    t.burrow(["unshare", "sh", "-c", "exit 5"])
        .output()
        .assert_code(5);
}

#[test]
fn single_id_map_without_subordinate_ids() {
    if !crate::harness::is_root() {
        skip(
            "single_id_map_without_subordinate_ids",
            "needs root to create a user without subordinate ids (burrownosub)",
        );
        return;
    }
    let t = ctx!(Who::NoSubIds);
    assert!(t.subuid().is_none(), "{} has subordinate ids", t.user.name);
    // All files owned by root: uid 1000 cannot be mapped with one id.
    let rootfs = images::busybox_rootfs(
        &t.busybox,
        &RootfsOpts {
            app_owned_files: false,
        },
    );
    let img = Image::new("test/nosub:1", vec![images::tar(&rootfs)], Config::shell());
    fixtures::load_image(&t, img);
    let out = t
        .burrow([
            "run",
            "--rm",
            "test/nosub:1",
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; echo hi > /tmp/f; cat /tmp/f",
        ])
        .output();
    out.assert_ok().assert_stderr_nonempty();
    let lines = out.lines();
    assert_eq!(lines[0], "0", "{out:?}");
    assert_eq!(
        parse_map(lines[1]),
        vec![(0, t.user.uid as u64, 1)],
        "{out:?}"
    );
    assert_eq!(lines.len(), 3, "uid_map must have one line: {out:?}");
    assert_eq!(lines[2], "hi");
    let warnings = out.stderr.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(warnings, 1, "want exactly one warning line: {out:?}");
}
