//! Image sizes as docker shows them: unpacked, not compressed, in `images`, `image inspect`,
//! `history` and `system df`; also for layers an older burrow unpacked (no size record) or
//! never unpacked, and for a committed layer.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use burrow::units::{human_size, human_size_with_precision};

use crate::fixtures;
use crate::harness::{TestCtx, list_dir, skip};
use crate::images::{self, Config, Entry, Image, Kind, RootfsOpts};

/// docker's DiffSize of a layer made of `entries` (each path once): file contents and
/// symlink targets; hard links and directories add nothing.
pub fn unpacked_size(entries: &[Entry]) -> u64 {
    entries
        .iter()
        .map(|e| match &e.kind {
            Kind::File(data) => data.len() as u64,
            Kind::Symlink(target) => target.len() as u64,
            Kind::Dir | Kind::Hardlink(_) => 0,
        })
        .sum()
}

/// The unpacked size of the busybox base layer.
pub fn base_size(t: &TestCtx) -> u64 {
    unpacked_size(&images::busybox_rootfs(&t.busybox, &RootfsOpts::default()))
}

/// docker's `images` and `history` SIZE (three digits).
pub fn size3(bytes: u64) -> String {
    human_size_with_precision(bytes, 3)
}

/// The size records of the unpacked layers.
fn size_records(t: &TestCtx) -> Vec<PathBuf> {
    let overlay = t.root.join("overlay");
    list_dir(&overlay)
        .into_iter()
        .filter(|n| n.len() == 64)
        .map(|n| overlay.join(n).join("diff-size"))
        .filter(|p| p.exists())
        .collect()
}

fn stdout(t: &TestCtx, args: &[&str]) -> String {
    let out = t.burrow(args).output();
    out.assert_ok();
    out.stdout
}

const ZEROS: usize = 3_141_592;
const TEXT: usize = 1_400_000;

/// Two layers that gzip to a few kilobytes but unpack to 4.5 MB.
fn compressible_image() -> (Image, [u64; 2]) {
    let low = [
        Entry::dir("data", 0o755),
        Entry::file("data/zeros", 0o644, vec![0u8; ZEROS]),
        Entry::hardlink("data/zeros-again", "data/zeros"),
        Entry::symlink("z", "data/zeros"),
    ];
    let high = [Entry::file("text", 0o644, "burrow ".repeat(TEXT / 7))];
    let sizes = [unpacked_size(&low), unpacked_size(&high)];
    assert_eq!(sizes, [ZEROS as u64 + 10, TEXT as u64]);
    let mut img = Image::new(
        "test/sizes:1",
        vec![images::tar(&low), images::tar(&high)],
        Config::shell(),
    );
    img.gzip_layers = true;
    (img, sizes)
}

/// Every command shows the unpacked sizes.
fn assert_unpacked_sizes(t: &TestCtx, sizes: [u64; 2]) {
    let total = sizes[0] + sizes[1];
    assert_eq!(
        stdout(t, &["images", "--format", "{{.Size}} {{.VirtualSize}}"]),
        format!("{} {}\n", size3(total), human_size(total))
    );
    assert_eq!(size3(total), "4.54MB");
    assert_eq!(
        stdout(
            t,
            &["image", "inspect", "--format", "{{.Size}}", "test/sizes:1"]
        ),
        format!("{total}\n")
    );
    assert_eq!(
        stdout(t, &["history", "--format", "{{.Size}}", "test/sizes:1"]),
        format!("{}\n{}\n", size3(sizes[1]), size3(sizes[0]))
    );
    assert_eq!(
        stdout(
            t,
            &[
                "history",
                "-H=false",
                "--format",
                "{{.Size}}",
                "test/sizes:1"
            ]
        ),
        format!("{}\n{}\n", sizes[1], sizes[0])
    );
    assert_eq!(
        stdout(t, &["system", "df", "--format", "{{.Type}} {{.Size}}"])
            .lines()
            .next(),
        Some(format!("Images {}", human_size(total)).as_str())
    );
    let df = stdout(t, &["system", "df", "-v"]);
    let row = df
        .lines()
        .find(|l| l.starts_with("test/sizes"))
        .unwrap_or_else(|| panic!("{df}"));
    let cells: Vec<&str> = row
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    // REPOSITORY TAG IMAGE-ID CREATED SIZE SHARED UNIQUE CONTAINERS
    assert_eq!(
        cells[4..],
        [size3(total), "0B".into(), human_size(total), "0".into()],
        "{df}"
    );
}

#[test]
fn sizes_are_unpacked_sizes() {
    let t = ctx!();
    let (img, sizes) = compressible_image();
    fixtures::load_image(&t, img);
    assert_eq!(size_records(&t).len(), 2);
    assert_unpacked_sizes(&t, sizes);

    // Unpacked by an older burrow: measured, recorded, and the same.
    for record in size_records(&t) {
        fs::remove_file(record).unwrap();
    }
    assert_unpacked_sizes(&t, sizes);
    assert_eq!(size_records(&t).len(), 2);
}

/// A layer an older burrow unpacked, with a directory closed to the user (owned by a
/// subordinate id): measured inside the user namespace.
#[test]
fn closed_directories_are_measured_in_the_namespace() {
    let t = ctx!();
    let layer = [
        Entry::dir("private", 0o700).owner(1000, 1000),
        Entry::file("private/secret", 0o600, vec![7u8; 12_345]).owner(1000, 1000),
        Entry::file("open", 0o644, "x"),
    ];
    fixtures::load_image(
        &t,
        Image::new("test/closed:1", vec![images::tar(&layer)], Config::shell()),
    );
    let records = size_records(&t);
    let private = records[0].with_file_name("diff").join("private");
    if fs::metadata(&private).unwrap().uid() == t.user.uid {
        skip(
            "closed_directories_are_measured_in_the_namespace",
            "no subordinate ids: every layer file belongs to the user",
        );
        return;
    }
    for record in records {
        fs::remove_file(record).unwrap();
    }
    assert_eq!(
        stdout(
            &t,
            &["image", "inspect", "--format", "{{.Size}}", "test/closed:1"]
        ),
        "12346\n"
    );
    assert_eq!(size_records(&t).len(), 1);
}

/// A layer never unpacked (committed by an older burrow, never run) is unpacked to be
/// measured, as docker keeps every layer unpacked.
#[test]
fn layers_not_unpacked_are_unpacked_to_be_measured() {
    let t = ctx!();
    let (img, sizes) = compressible_image();
    fixtures::load_image(&t, img);
    let overlay = t.root.join("overlay");
    for name in list_dir(&overlay).into_iter().filter(|n| n.len() == 64) {
        fs::remove_dir_all(overlay.join(name)).unwrap();
    }
    assert_eq!(
        stdout(
            &t,
            &["image", "inspect", "--format", "{{.Size}}", "test/sizes:1"]
        ),
        format!("{}\n", sizes[0] + sizes[1])
    );
    assert_eq!(size_records(&t).len(), 2);
}

/// `commit` keeps its new layer unpacked, as docker's layer store: its size is known at once.
#[test]
fn committed_layers_are_sized() {
    let t = ctx!();
    fixtures::load_base(&t);
    t.burrow([
        "run",
        "--name",
        "c",
        fixtures::BASE,
        "sh",
        "-c",
        "head -c 54321 /dev/zero > /big",
    ])
    .output()
    .assert_ok();
    t.burrow(["commit", "c", "test/committed:1"])
        .output()
        .assert_ok();
    assert_eq!(size_records(&t).len(), 2);
    let history = stdout(
        &t,
        &[
            "history",
            "-H=false",
            "--format",
            "{{.Size}}",
            "test/committed:1",
        ],
    );
    assert_eq!(
        history,
        format!("54321\n{}\n", base_size(&t)),
        "the new layer holds /big only"
    );
}
