//! Image commands: `rmi`, `image prune/inspect/history`, `images` filters, `save` (and round
//! trips through podman), `system df/prune/reset`, and the store's garbage collection after a
//! crash.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use burrow::units::human_size;

use crate::fixtures::{self, BASE, base_layer};
use crate::harness::{TestCtx, list_dir, skip};
use crate::image_sizes::{base_size, size3};
use crate::images::{self, Config, Entry, Image};

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Unpacked layer directories in the store.
fn layer_dirs(t: &TestCtx) -> Vec<String> {
    list_dir(&t.root.join("overlay"))
        .into_iter()
        .filter(|n| is_hex64(n))
        .collect()
}

fn blobs(t: &TestCtx) -> Vec<String> {
    list_dir(&t.root.join("blobs/sha256"))
}

/// Names in `images` output (REPOSITORY:TAG).
fn image_names(t: &TestCtx) -> Vec<String> {
    let out = t.burrow(["images"]).output();
    out.assert_ok();
    out.stdout
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            format!("{}:{}", cols[0], cols[1])
        })
        .collect()
}

/// An image on the base layer with one more (gzipped) layer of its own.
fn two_layer_image(t: &TestCtx, tag: &str, file: &str) -> Image {
    let mut img = Image::new(
        tag,
        vec![
            base_layer(t),
            images::tar(&[Entry::file(file, 0o644, format!("{tag}\n"))]),
        ],
        Config::shell(),
    );
    img.gzip_layers = true;
    img
}

#[test]
fn rmi_one_tag_untags_last_tag_deletes() {
    let t = ctx!();
    fixtures::load_base(&t);
    t.burrow(["tag", BASE, "test/other:2"]).output().assert_ok();
    let out = t.burrow(["rmi", "test/other:2"]).output();
    out.assert_ok().assert_stdout("Untagged: test/other:2\n");
    assert_eq!(image_names(&t), [BASE]);
    assert!(!layer_dirs(&t).is_empty());

    let out = t.burrow(["rmi", BASE]).output();
    out.assert_ok()
        .assert_stdout_contains(&format!("Untagged: {BASE}\n"))
        .assert_stdout_contains("Deleted: sha256:");
    assert!(image_names(&t).is_empty());
    assert!(blobs(&t).is_empty(), "{:?}", blobs(&t));
    assert!(layer_dirs(&t).is_empty(), "{:?}", layer_dirs(&t));

    let out = t.burrow(["rmi", "no/such:image"]).output();
    out.assert_code(1);
    assert!(
        out.stderr.contains("No such image: no/such:image"),
        "{out:?}"
    );
}

#[test]
fn rmi_keeps_layers_shared_with_other_images() {
    let t = ctx!();
    let p = fixtures::write_docker_archive(
        &t,
        "two.tar",
        &[
            two_layer_image(&t, "test/a:1", "a"),
            two_layer_image(&t, "test/b:1", "b"),
        ],
    );
    t.load(&p);
    assert_eq!(layer_dirs(&t).len(), 3);
    let before = blobs(&t).len();
    t.burrow(["image", "rm", "test/a:1"]).output().assert_ok();
    assert_eq!(layer_dirs(&t).len(), 2);
    // Its manifest, config and own layer.
    assert_eq!(blobs(&t).len(), before - 3);
    t.burrow(["run", "--rm", "test/b:1", "cat", "/b"])
        .output()
        .assert_ok()
        .assert_stdout("test/b:1\n");
}

#[test]
fn rmi_refused_while_a_container_uses_the_image() {
    let t = ctx!();
    fixtures::load_base(&t);
    t.burrow(["run", "--name", "x", BASE, "true"])
        .output()
        .assert_ok();
    let out = t.burrow(["rmi", BASE]).output();
    out.assert_code(1);
    assert!(
        out.stderr.contains(&format!(
            "conflict: unable to remove repository reference \"{BASE}\" (must force) - container"
        )) && out.stderr.contains("is using its referenced image"),
        "{out:?}"
    );
    assert_eq!(image_names(&t), [BASE]);
    let id = t
        .burrow(["images", "-q"])
        .output()
        .stdout
        .trim()
        .to_string();
    let out = t.burrow(["rmi", &id]).output();
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("image is being used by stopped container"),
        "{out:?}"
    );

    t.burrow(["rm", "x"]).output().assert_ok();
    t.burrow(["rmi", BASE]).output().assert_ok();
    assert!(image_names(&t).is_empty());
}

#[test]
fn rmi_force_keeps_what_a_stopped_container_uses() {
    let t = ctx!();
    fixtures::load_base(&t);
    t.burrow(["run", "--name", "x", BASE, "true"])
        .output()
        .assert_ok();
    t.burrow(["create", "--name", "y", BASE, "echo", "created"])
        .output()
        .assert_ok();
    let layers = layer_dirs(&t);
    let out = t.burrow(["rmi", "-f", BASE]).output();
    out.assert_ok().assert_stdout_contains("Untagged: ");
    assert!(!out.stdout.contains("Deleted:"), "{out:?}");
    assert_eq!(image_names(&t), ["<none>:<none>"]);
    // The image stays, dangling, with its layers while a container uses it; prunes too.
    assert_eq!(layer_dirs(&t), layers);
    t.burrow(["image", "prune", "-a", "-f"])
        .output()
        .assert_ok();
    assert_eq!(layer_dirs(&t), layers);
    t.burrow(["start", "-a", "x"]).output().assert_ok();
    t.burrow(["start", "-a", "y"])
        .output()
        .assert_ok()
        .assert_stdout("created\n");
    t.burrow(["diff", "y"]).output().assert_ok();
    t.burrow(["rm", "x", "y"]).output().assert_ok();
    t.burrow(["image", "prune", "-f"]).output().assert_ok();
    assert!(layer_dirs(&t).is_empty());
    assert!(blobs(&t).is_empty(), "{:?}", blobs(&t));
}

#[test]
fn image_prune_dangling_then_all() {
    let t = ctx!();
    // Loading another image under the same name leaves the first one dangling.
    let first = two_layer_image(&t, "test/a:1", "first");
    let second = two_layer_image(&t, "test/a:1", "second");
    fixtures::load_image(&t, first);
    fixtures::load_image(&t, second);
    fixtures::load_image(&t, two_layer_image(&t, "test/used:1", "used"));
    assert_eq!(image_names(&t).len(), 3);
    let dangling = t.burrow(["images", "-f", "dangling=true", "-q"]).output();
    assert_eq!(dangling.lines().len(), 1, "{dangling:?}");
    t.burrow(["run", "--name", "c", "test/used:1", "true"])
        .output()
        .assert_ok();

    let out = t.burrow(["image", "prune"]).output();
    out.assert_code(1);
    assert!(out.stderr.contains("use -f"), "{out:?}");

    let out = t.burrow(["image", "prune", "-f"]).output();
    out.assert_ok()
        .assert_stdout_contains("Deleted Images:\ndeleted: sha256:")
        .assert_stdout_contains("Total reclaimed space:");
    let mut names = image_names(&t);
    names.sort();
    assert_eq!(names, ["test/a:1", "test/used:1"]);
    t.burrow(["run", "--rm", "test/a:1", "cat", "/second"])
        .output()
        .assert_ok();

    t.burrow(["image", "prune", "-a", "-f"])
        .output()
        .assert_ok()
        .assert_stdout_contains("untagged: test/a:1");
    assert_eq!(image_names(&t), ["test/used:1"]);
    // The base layer and used's own layer.
    assert_eq!(layer_dirs(&t).len(), 2);
}

#[test]
fn images_filters_and_columns() {
    let t = ctx!();
    fixtures::load_base(&t);
    fixtures::load_image(&t, two_layer_image(&t, "other/x:2", "x"));
    let out = t
        .burrow(["images", "--filter", "reference=test/*"])
        .output();
    out.assert_ok();
    assert_eq!(out.lines().len(), 2, "{out:?}");
    assert!(out.stdout.contains("test/base"), "{out:?}");
    let out = t.burrow(["images", "other/x"]).output();
    assert!(
        out.stdout.contains("other/x") && !out.stdout.contains("test/base"),
        "{out:?}"
    );
    let out = t.burrow(["images", "-f", "dangling=false", "-q"]).output();
    assert_eq!(out.lines().len(), 2, "{out:?}");
    let out = t.burrow(["images", "-f", "label=nope"]).output();
    assert_eq!(out.lines().len(), 1, "{out:?}");
    let out = t.burrow(["images", "--digests", "--no-trunc"]).output();
    out.assert_ok();
    assert!(out.lines()[0].contains("DIGEST"), "{out:?}");
    assert!(out.stdout.contains("sha256:"), "{out:?}");
    let out = t.burrow(["images", "-f", "bogus=1"]).output();
    assert_ne!(out.code, 0);
}

/// `before=`/`since=` compare creation times: the base image (2024) and two imports made
/// one after the other.
/// Images that never came from a registry (loaded, imported, committed) have no RepoDigests
/// and `<none>` in `images --digests`, as docker shows them.
#[test]
fn local_images_have_no_repo_digests() {
    let t = ctx!();
    let _c = crate::lifecycle::Cleanup(&t);
    fixtures::load_base(&t);
    let rootfs = t.write("rootfs.tar", images::tar(&[Entry::file("f", 0o644, "f\n")]));
    t.burrow(["import", rootfs.to_str().unwrap(), "test/imported:1"])
        .output()
        .assert_ok();
    t.burrow(["run", "--name", "c", BASE, "true"])
        .output()
        .assert_ok();
    t.burrow(["commit", "c", "test/committed:1"])
        .output()
        .assert_ok();
    for image in [BASE, "test/imported:1", "test/committed:1"] {
        t.burrow(["image", "inspect", "-f", "{{json .RepoDigests}}", image])
            .output()
            .assert_stdout("[]\n");
    }
    let out = t
        .burrow([
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Digest}}",
        ])
        .output();
    out.assert_ok();
    let mut rows = out.lines();
    rows.sort();
    assert_eq!(
        rows,
        [
            "test/base <none>",
            "test/committed <none>",
            "test/imported <none>"
        ],
        "{out:?}"
    );
}

#[test]
fn images_filters_before_and_since() {
    let t = ctx!();
    fixtures::load_base(&t);
    let rootfs = t.write("rootfs.tar", images::tar(&[Entry::file("f", 0o644, "f\n")]));
    let rootfs = rootfs.to_str().unwrap();
    let id = |tag: &str| {
        t.burrow(["import", rootfs, tag])
            .output()
            .assert_ok()
            .stdout
            .trim()
            .to_string()
    };
    let (a, b) = (id("test/a:1"), id("test/b:1"));
    assert_ne!(a, b);
    let base = t
        .burrow(["images", "-q", "--no-trunc", BASE])
        .output()
        .stdout
        .trim()
        .to_string();
    let filtered = |f: &str| {
        let out = t.burrow(["images", "-q", "--no-trunc", "-f", f]).output();
        out.assert_ok();
        let mut ids: Vec<String> = out.lines().iter().map(|l| l.to_string()).collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        filtered("before=test/b:1"),
        sorted(vec![base.clone(), a.clone()])
    );
    assert_eq!(filtered("before=test/a:1"), [base]);
    assert_eq!(
        filtered(&format!("since={BASE}")),
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(filtered("since=test/a:1"), [b]);
    let out = t.burrow(["images", "-f", "since=nosuch:1"]).output();
    assert_ne!(out.code, 0, "{out:?}");
}

/// `--format` of `image inspect`, `history` and `system df`.
#[test]
fn inspect_history_and_df_format() {
    let t = ctx!();
    fixtures::load_base(&t);
    let id = t
        .burrow(["images", "-q", "--no-trunc", BASE])
        .output()
        .stdout
        .trim()
        .to_string();
    for flag in ["-f", "--format"] {
        t.burrow(["image", "inspect", flag, "{{.Id}} {{.Os}}", BASE])
            .output()
            .assert_ok()
            .assert_stdout(&format!("{id} linux\n"));
    }
    let out = t
        .burrow(["history", "--format", "{{.ID}}|{{.CreatedBy}}", BASE])
        .output();
    out.assert_ok();
    assert_eq!(
        out.lines()[0],
        format!("{}|burrow tests", &id[7..19]),
        "{out:?}"
    );
    let out = t
        .burrow(["history", "--format", "table {{.ID}}\t{{.Size}}", BASE])
        .output();
    out.assert_ok();
    assert!(out.lines()[0].starts_with("IMAGE"), "{out:?}");
    t.burrow(["system", "df", "--format", "{{.Type}}={{.TotalCount}}"])
        .output()
        .assert_ok()
        .assert_stdout("Images=1\nContainers=0\nLocal Volumes=0\nBuild Cache=0\n");
}

#[test]
fn history_lists_the_config_history() {
    let t = ctx!();
    fixtures::load_image(&t, two_layer_image(&t, "test/h:1", "h"));
    let out = t.burrow(["history", "test/h:1"]).output();
    out.assert_ok();
    let lines = out.lines();
    assert!(
        lines[0].starts_with("IMAGE") && lines[0].contains("CREATED BY"),
        "{out:?}"
    );
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(
        lines[1].contains("burrow tests") && lines[2].contains("<missing>"),
        "{out:?}"
    );
    let id = t
        .burrow(["images", "-q"])
        .output()
        .stdout
        .trim()
        .to_string();
    let q = t.burrow(["image", "history", "-q", "test/h:1"]).output();
    assert_eq!(q.lines(), [id.as_str(), "<missing>"], "{q:?}");
    let full = t
        .burrow(["history", "--no-trunc", "-q", "test/h:1"])
        .output();
    assert!(full.lines()[0].starts_with("sha256:") && full.lines()[0].len() == 71);
}

#[test]
fn image_inspect_is_docker_shaped() {
    let t = ctx!();
    let config = Config {
        workdir: Some("/srv".into()),
        user: Some("app".into()),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        ..Config::shell()
    };
    fixtures::load_with_config(&t, "test/cfg:1", config);
    let out = t.burrow(["image", "inspect", "test/cfg:1"]).output();
    out.assert_ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let doc = &v[0];
    assert!(doc["Id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(doc["RepoTags"], serde_json::json!(["test/cfg:1"]));
    assert_eq!(doc["Architecture"], "amd64");
    assert_eq!(doc["Os"], "linux");
    assert_eq!(doc["Created"], "2024-01-01T00:00:00Z");
    assert_eq!(doc["Config"]["WorkingDir"], "/srv");
    assert_eq!(doc["Config"]["User"], "app");
    assert_eq!(
        doc["Config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c"])
    );
    assert_eq!(doc["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert!(
        doc["Config"]["Env"][0]
            .as_str()
            .unwrap()
            .starts_with("PATH=")
    );
    assert_eq!(doc["RootFS"]["Type"], "layers");
    assert_eq!(doc["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    // Unpacked, as docker counts it.
    assert_eq!(doc["Size"].as_u64().unwrap(), base_size(&t));
    // Four-space indentation, as docker prints it.
    assert!(
        out.stdout.starts_with("[\n    {\n        \"Id\""),
        "{out:?}"
    );

    let out = t
        .burrow(["image", "inspect", "test/cfg:1", "no/such:1"])
        .output();
    out.assert_code(1);
    assert!(out.stderr.contains("No such image: no/such:1"), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
}

/// Save `images` in `format` to `file`, remove them, load the archive, run one.
fn save_rmi_load(t: &TestCtx, format: &str, file: &str) {
    let p = t.path(file);
    let out = t
        .burrow([
            "save",
            "--format",
            format,
            "-o",
            p.to_str().unwrap(),
            "test/a:1",
            "test/b:1",
        ])
        .output();
    out.assert_ok();
    t.burrow(["rmi", "test/a:1", "test/b:1"])
        .output()
        .assert_ok();
    assert!(image_names(t).is_empty());
    assert!(blobs(t).is_empty(), "{:?}", blobs(t));
    let out = t.load(&p);
    out.assert_stdout_contains("Loaded image: test/a:1\n")
        .assert_stdout_contains("Loaded image: test/b:1\n");
    t.burrow(["run", "--rm", "test/b:1", "cat", "/b"])
        .output()
        .assert_ok()
        .assert_stdout("test/b:1\n");
}

#[test]
fn save_load_round_trip_docker_and_oci() {
    let t = ctx!();
    let p = fixtures::write_docker_archive(
        &t,
        "two.tar",
        &[
            two_layer_image(&t, "test/a:1", "a"),
            two_layer_image(&t, "test/b:1", "b"),
        ],
    );
    t.load(&p);
    let sorted_ids = |t: &TestCtx| {
        let mut ids: Vec<String> = t
            .burrow(["images", "-q"])
            .output()
            .stdout
            .lines()
            .map(String::from)
            .collect();
        ids.sort();
        ids
    };
    let ids = sorted_ids(&t);

    save_rmi_load(&t, "docker-archive", "saved-docker.tar");
    let archive = fs::read(t.path("saved-docker.tar")).unwrap();
    let members = tar_members(&archive);
    assert!(members.iter().any(|m| m == "manifest.json"), "{members:?}");
    assert!(
        members.iter().filter(|m| m.ends_with("/layer.tar")).count() == 3,
        "{members:?}"
    );
    assert_eq!(sorted_ids(&t), ids);

    save_rmi_load(&t, "oci-archive", "saved-oci.tar");
    let members = tar_members(&fs::read(t.path("saved-oci.tar")).unwrap());
    assert!(members.iter().any(|m| m == "oci-layout"), "{members:?}");
    assert_eq!(sorted_ids(&t), ids);

    // To stdout, and as a directory.
    let out_file = fs::File::create(t.path("stdout.tar")).unwrap();
    let status = t
        .burrow(["save", "test/a:1"])
        .command()
        .stdout(out_file)
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        tar_members(&fs::read(t.path("stdout.tar")).unwrap())
            .contains(&"manifest.json".to_string())
    );
    let dir = t.user_dir("layout");
    let out = t
        .burrow([
            "image",
            "save",
            "--format",
            "oci-dir",
            "-o",
            dir.join("x").to_str().unwrap(),
            "test/a:1",
        ])
        .output();
    out.assert_ok();
    assert!(dir.join("x/index.json").is_file() && dir.join("x/oci-layout").is_file());
}

fn tar_members(data: &[u8]) -> Vec<String> {
    // ustar headers: name at 0..100, size (octal) at 124..136, 512-byte blocks.
    let mut out = Vec::new();
    let mut off = 0;
    while off + 512 <= data.len() {
        let h = &data[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let prefix_end = h[345..500].iter().position(|&b| b == 0).unwrap_or(155);
        let mut name = String::from_utf8_lossy(&h[..name_end]).into_owned();
        if prefix_end > 0 {
            name = format!(
                "{}/{name}",
                String::from_utf8_lossy(&h[345..345 + prefix_end])
            );
        }
        let size_str = String::from_utf8_lossy(&h[124..136]);
        let size = u64::from_str_radix(size_str.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .unwrap_or(0);
        out.push(name.trim_end_matches('/').to_string());
        off += 512 + (size as usize).div_ceil(512) * 512;
    }
    out
}

/// podman with its own storage (as root: save/load need no runtime). Its run root must be a
/// short path.
fn podman(t: &TestCtx, run: &Path, args: &[&str]) -> std::process::Output {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(t.path("podman/root"))
        .arg("--runroot")
        .arg(run)
        .arg("--storage-driver")
        .arg("vfs")
        .args(args)
        .stdin(Stdio::null());
    let out = c.output().expect("podman");
    assert!(
        out.status.success(),
        "podman {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn podman_usable(test: &str, t: &TestCtx) -> bool {
    if !t.as_root {
        skip(test, "the podman round trip runs podman as root");
        return false;
    }
    match Command::new("podman").arg("--version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            skip(test, "podman is not installed");
            false
        }
    }
}

#[test]
fn archives_round_trip_through_podman() {
    let t = ctx!();
    if !podman_usable("archives_round_trip_through_podman", &t) {
        return;
    }
    let p = fixtures::write_docker_archive(
        &t,
        "two.tar",
        &[
            two_layer_image(&t, "test/a:1", "a"),
            two_layer_image(&t, "test/b:1", "b"),
        ],
    );
    t.load(&p);
    let run = tempfile::Builder::new()
        .prefix("bp-")
        .tempdir_in("/tmp")
        .unwrap();
    let podman = |args: &[&str]| podman(&t, run.path(), args);
    for (format, podman_format) in [
        ("docker-archive", "docker-archive"),
        ("oci-archive", "oci-archive"),
    ] {
        // burrow save → podman load → podman save → burrow load. podman 4 reads and writes
        // one image per OCI archive.
        let images: &[&str] = if format == "oci-archive" {
            &["test/a:1"]
        } else {
            &["test/a:1", "test/b:1"]
        };
        let ours = t.path(&format!("burrow-{format}.tar"));
        let mut save = vec!["save", "--format", format, "-o", ours.to_str().unwrap()];
        save.extend(images);
        t.burrow(save).output().assert_ok();
        let loaded = podman(&["load", "-i", ours.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&loaded.stdout);
        for image in images {
            assert!(text.contains(image), "podman load: {text}");
        }
        let theirs = t.path(&format!("podman-{format}.tar"));
        let _ = fs::remove_file(&theirs);
        let mut args = vec![
            "save",
            "--format",
            podman_format,
            "-o",
            theirs.to_str().unwrap(),
        ];
        if images.len() > 1 {
            args.insert(1, "-m");
        }
        args.extend(images);
        podman(&args);
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o644)).unwrap();
        podman(&["rmi", "-a", "-f"]);

        t.burrow(["rmi", "test/a:1", "test/b:1"])
            .output()
            .assert_ok();
        assert!(image_names(&t).is_empty());
        t.load(&theirs);
        // podman qualifies the short names of a docker-archive with localhost/; an OCI
        // archive carries full names.
        let mut names = image_names(&t);
        names.sort();
        let prefix = if format == "docker-archive" {
            "localhost/"
        } else {
            ""
        };
        let want: Vec<String> = images.iter().map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(names, want, "after {format}");
        t.burrow(["run", "--rm", &want[0], "cat", "/a"])
            .output()
            .assert_ok()
            .assert_stdout("test/a:1\n");
        let mut rmi = vec!["rmi".to_string()];
        rmi.extend(want);
        t.burrow(rmi).output().assert_ok();
        t.load(&p);
        let mut names = image_names(&t);
        names.sort();
        assert_eq!(names, ["test/a:1", "test/b:1"], "after {format}");
    }
}

#[test]
fn system_df_counts_images_and_containers() {
    let t = ctx!();
    fixtures::load_base(&t);
    fixtures::load_image(&t, two_layer_image(&t, "test/a:1", "a"));
    t.burrow(["run", "--name", "x", BASE, "sh", "-c", "echo data > /file"])
        .output()
        .assert_ok();
    let out = t.burrow(["system", "df"]).output();
    out.assert_ok();
    let lines = out.lines();
    assert!(
        lines[0].starts_with("TYPE") && lines[0].contains("RECLAIMABLE"),
        "{out:?}"
    );
    let row = |name: &str| -> Vec<String> {
        let line = lines.iter().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("Images")[..2], ["2", "1"], "{out:?}");
    assert_eq!(row("Containers")[..2], ["1", "0"], "{out:?}");
    assert_eq!(row("Local Volumes")[0], "0", "{out:?}");
    let out = t.burrow(["system", "df", "-v"]).output();
    out.assert_ok()
        .assert_stdout_contains("Images space usage:")
        .assert_stdout_contains("Containers space usage:")
        .assert_stdout_contains("UNIQUE SIZE");
}

/// Volumes mounted by a container (running or not) are active and not reclaimable; LINKS
/// counts the containers, as docker's `system df` does.
#[test]
fn system_df_counts_volume_links() {
    let t = ctx!();
    fixtures::load_base(&t);
    t.burrow(["volume", "create", "idle"]).output().assert_ok();
    for name in ["x", "y"] {
        t.burrow([
            "run",
            "--name",
            name,
            "-v",
            "used:/data",
            BASE,
            "sh",
            "-c",
            "head -c 3000 /dev/zero > /data/f",
        ])
        .output()
        .assert_ok();
    }
    let out = t
        .burrow([
            "system",
            "df",
            "--format",
            "{{.Type}} {{.TotalCount}} {{.Active}} {{.Reclaimable}}",
        ])
        .output();
    out.assert_ok()
        .assert_stdout_contains("Local Volumes 2 1 0B (0%)\n");
    let out = t.burrow(["system", "df", "-v"]).output();
    out.assert_ok();
    let volumes = out
        .stdout
        .split("Local Volumes space usage:")
        .nth(1)
        .unwrap();
    assert_eq!(
        column(volumes.trim_start(), "LINKS", "used"),
        ["2"],
        "{out:?}"
    );
    assert_eq!(
        column(volumes.trim_start(), "LINKS", "idle"),
        ["0"],
        "{out:?}"
    );
    t.burrow(["rm", "x", "y"]).output().assert_ok();
    let out = t
        .burrow(["system", "df", "--format", "{{.Type}} {{.Active}}"])
        .output();
    out.assert_ok().assert_stdout_contains("Local Volumes 0\n");
}

/// The cells of `column` in a table, by its header's position, for rows starting `prefix`.
fn column(table: &str, column: &str, prefix: &str) -> Vec<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let start = header.find(column).unwrap();
    lines
        .filter(|l| l.starts_with(prefix))
        .map(|l| l[start..].split("   ").next().unwrap().trim().to_string())
        .collect()
}

/// `system df` counts a layer shared by images once in its total, and `df -v` shows it as
/// SHARED SIZE of each image that has it; a layer one image has twice is two layers (by chain
/// id), neither shared. Sizes are unpacked sizes, docker's strings.
#[test]
fn system_df_counts_shared_layers_once() {
    let t = ctx!();
    let mut a = two_layer_image(&t, "test/a:1", "a");
    let mut b = two_layer_image(&t, "test/b:1", "b");
    a.gzip_layers = false;
    b.gzip_layers = false;
    fixtures::load_image(&t, a);
    fixtures::load_image(&t, b);
    let same = "same layer\n".repeat(500);
    let twice = images::tar(&[Entry::file("same", 0o644, same.clone())]);
    fixtures::load_image(
        &t,
        Image::new("test/twice:1", vec![twice.clone(), twice], Config::shell()),
    );
    let base = base_size(&t);
    // Each image's own layer: "test/a:1\n".
    let own = 9;
    let twice_size = 2 * same.len() as u64;

    let out = t.burrow(["system", "df", "-v"]).output();
    out.assert_ok();
    let images_part = out.stdout.split("Containers space usage:").next().unwrap();
    let images_part = images_part.trim_start_matches("Images space usage:\n\n");
    let cell = |col: &str, repo: &str| column(images_part, col, repo);
    for repo in ["test/a", "test/b"] {
        assert_eq!(cell("SIZE", repo), [size3(base + own)], "{out:?}");
        assert_eq!(cell("SHARED SIZE", repo), [human_size(base)], "{out:?}");
        assert_eq!(cell("UNIQUE SIZE", repo), [human_size(own)], "{out:?}");
    }
    assert_eq!(cell("SIZE", "test/twice"), [size3(twice_size)], "{out:?}");
    assert_eq!(cell("SHARED SIZE", "test/twice"), ["0B"], "{out:?}");
    assert_eq!(
        cell("UNIQUE SIZE", "test/twice"),
        [human_size(twice_size)],
        "{out:?}"
    );

    let out = t.burrow(["system", "df"]).output();
    out.assert_ok();
    // The base layer once; both layers of test/twice, stored apart.
    let total = base + 2 * own + twice_size;
    assert_eq!(
        column(&out.stdout, "SIZE", "Images"),
        [human_size(total)],
        "{out:?}"
    );
    assert_eq!(
        column(&out.stdout, "RECLAIMABLE", "Images"),
        [format!("{} (100%)", human_size(total))],
        "{out:?}"
    );
}

#[test]
fn system_prune_removes_stopped_containers_and_unused_images() {
    let t = ctx!();
    fixtures::load_base(&t);
    fixtures::load_image(&t, two_layer_image(&t, "test/a:1", "a"));
    t.burrow(["run", "--name", "x", BASE, "true"])
        .output()
        .assert_ok();
    let out = t.burrow(["system", "prune"]).output();
    out.assert_code(1);
    assert!(out.stderr.contains("use -f"), "{out:?}");
    let out = t.burrow(["system", "prune", "-a", "-f"]).output();
    out.assert_ok()
        .assert_stdout_contains("Deleted Containers:")
        .assert_stdout_contains("Total reclaimed space:");
    assert!(t.containers().is_empty());
    assert!(image_names(&t).is_empty());
    assert!(layer_dirs(&t).is_empty());
}

/// `system prune --volumes`: anonymous volumes no container uses go, named ones stay;
/// without `--volumes` none goes.
#[test]
fn system_prune_volumes_removes_unused_anonymous_volumes() {
    let t = ctx!();
    let _c = crate::lifecycle::Cleanup(&t);
    fixtures::load_base(&t);
    let volumes = |t: &TestCtx| {
        let mut v: Vec<String> = t
            .burrow(["volume", "ls", "-q"])
            .output()
            .lines()
            .iter()
            .map(|l| l.to_string())
            .collect();
        v.sort();
        v
    };
    t.burrow(["volume", "create", "named"]).output().assert_ok();
    t.burrow(["run", "--name", "x", "-v", "/anon", BASE, "true"])
        .output()
        .assert_ok();
    t.burrow([
        "run", "-d", "--name", "up", "-v", "/kept", BASE, "sleep", "1000",
    ])
    .output()
    .assert_ok();
    let all = volumes(&t);
    assert_eq!(all.len(), 3, "{all:?}");
    t.burrow(["system", "prune", "-f"]).output().assert_ok();
    assert_eq!(
        volumes(&t),
        all,
        "system prune without --volumes removed a volume"
    );
    let out = t.burrow(["system", "prune", "-f", "--volumes"]).output();
    out.assert_ok().assert_stdout_contains("Deleted Volumes:");
    let left = volumes(&t);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"named".to_string()), "{left:?}");
}

#[test]
fn system_reset_removes_files_of_subordinate_ids() {
    let t = ctx!();
    if t.subuid().is_none() {
        skip(
            "system_reset_removes_files_of_subordinate_ids",
            "no subordinate ids",
        );
        return;
    }
    let mut img = images::base_image(&t.busybox, "test/owned:1");
    img.layers.push(images::tar(&[
        Entry::dir("home/app", 0o700).owner(1000, 1000),
        Entry::file("home/app/secret", 0o600, "x").owner(1000, 1000),
    ]));
    fixtures::load_image(&t, img);
    t.burrow(["run", "--name", "x", "test/owned:1", "true"])
        .output()
        .assert_ok();
    let owned = layer_dirs(&t)
        .iter()
        .map(|l| t.root.join("overlay").join(l).join("diff/home/app"))
        .find(|p| p.exists())
        .expect("the layer with home/app");
    assert_ne!(fs::metadata(&owned).unwrap().uid(), t.user.uid);

    let out = t.burrow(["system", "reset"]).output();
    out.assert_code(1);
    t.burrow(["system", "reset", "-f"]).output().assert_ok();
    assert!(
        !t.root.exists() || list_dir(&t.root).is_empty(),
        "{:?}",
        list_dir(&t.root)
    );
    t.burrow(["images"])
        .output()
        .assert_ok()
        .assert_stdout("REPOSITORY   TAG   IMAGE ID   CREATED   SIZE\n");
}

#[test]
fn killed_prune_is_repaired_by_the_next_one() {
    let t = ctx!();
    let p = fixtures::write_docker_archive(
        &t,
        "three.tar",
        &[
            two_layer_image(&t, "test/a:1", "a"),
            two_layer_image(&t, "test/b:1", "b"),
            two_layer_image(&t, "test/keep:1", "keep"),
        ],
    );
    t.load(&p);
    t.burrow(["run", "--name", "k", "test/keep:1", "true"])
        .output()
        .assert_ok();
    let out = t
        .burrow(["image", "prune", "-a", "-f"])
        .env("BURROW_TEST_CRASH_AT", "prune-after-index")
        .output();
    assert_eq!(out.code, 128 + 9, "{out:?}");
    // The index was updated: only the image in use is left, and it works.
    assert_eq!(image_names(&t), ["test/keep:1"]);
    t.burrow(["run", "--rm", "test/keep:1", "cat", "/keep"])
        .output()
        .assert_ok()
        .assert_stdout("test/keep:1\n");
    assert_eq!(layer_dirs(&t).len(), 4, "leftovers: {:?}", layer_dirs(&t));

    // Killed with a layer renamed away but not removed.
    let out = t
        .burrow(["image", "prune", "-f"])
        .env("BURROW_TEST_CRASH_AT", "gc-after-rename")
        .output();
    assert_eq!(out.code, 128 + 9, "{out:?}");
    assert!(
        list_dir(&t.root.join("overlay"))
            .iter()
            .any(|n| n.starts_with(".tmp-del-")),
        "{:?}",
        list_dir(&t.root.join("overlay"))
    );
    t.burrow(["run", "--rm", "test/keep:1", "true"])
        .output()
        .assert_ok();

    // The next prune collects everything left over.
    t.burrow(["image", "prune", "-f"]).output().assert_ok();
    assert_eq!(layer_dirs(&t).len(), 2, "{:?}", layer_dirs(&t));
    let overlay = list_dir(&t.root.join("overlay"));
    assert!(
        !overlay.iter().any(|n| n.starts_with(".tmp")),
        "{overlay:?}"
    );
    // manifest, config, two layers of the image kept.
    assert_eq!(blobs(&t).len(), 4, "{:?}", blobs(&t));
    assert!(Path::new(&t.root.join("index.json")).is_file());
    t.burrow(["run", "--rm", "test/keep:1", "cat", "/keep"])
        .output()
        .assert_ok();
}

#[test]
fn images_and_info_format_templates() {
    let t = ctx!();
    let img = crate::fixtures::load_base(&t);
    let out = t
        .burrow(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output();
    out.assert_ok();
    assert_eq!(out.stdout.trim(), img, "{out:?}");
    let out = t
        .burrow(["images", "--format", "table {{.Repository}}\t{{.Tag}}"])
        .output();
    out.assert_ok();
    assert!(out.stdout.starts_with("REPOSITORY"), "{out:?}");
    // Listed items are typed in docker: an unknown field is an error, not "<no value>".
    let out = t.burrow(["images", "--format", "{{.Nope}}"]).output();
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("Nope"), "{out:?}");
    let out = t
        .burrow(["info", "--format", "{{.Images}} {{.Rootless}} {{.OSType}}"])
        .output();
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "1 true linux", "{out:?}");
}
