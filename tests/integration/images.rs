//! Test image builders: a tiny ustar writer (so hostile entries can be
//! written verbatim), busybox root filesystems, docker-archive and OCI
//! archive writers.

use std::io::Write;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

/// Kind of a tar entry.
#[derive(Clone, Debug)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
}

/// One tar entry; `path` is written verbatim (no sanitising).
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Entry {
    pub fn dir(path: &str, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::Dir,
            mode,
            uid: 0,
            gid: 0,
        }
    }
    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::File(data.into()),
            mode,
            uid: 0,
            gid: 0,
        }
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::Symlink(target.into()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        }
    }
    pub fn hardlink(path: &str, target: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::Hardlink(target.into()),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }
    pub fn owner(mut self, uid: u32, gid: u32) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    assert!(s.len() < field.len(), "tar field overflow");
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

fn put(field: &mut [u8], s: &[u8]) {
    assert!(
        s.len() <= field.len(),
        "tar name too long: {:?}",
        String::from_utf8_lossy(s)
    );
    field[..s.len()].copy_from_slice(s);
}

fn header(
    name: &str,
    typeflag: u8,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    link: &str,
) -> [u8; 512] {
    let mut h = [0u8; 512];
    let nb = name.as_bytes();
    if nb.len() <= 100 {
        put(&mut h[0..100], nb);
    } else {
        // Split into prefix/name at a '/'.
        let split = (0..nb.len())
            .rev()
            .find(|&i| nb[i] == b'/' && i <= 155 && nb.len() - i - 1 <= 100)
            .expect("tar name cannot be split");
        put(&mut h[345..500], &nb[..split]);
        put(&mut h[0..100], &nb[split + 1..]);
    }
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], uid as u64);
    octal(&mut h[116..124], gid as u64);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = typeflag;
    put(&mut h[157..257], link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // Checksum: computed with the checksum field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// The member names of the tar archive at `path` as `tar -tf` lists them, without the
/// trailing `/` of directories.
pub fn tar_names(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "tar -tf {}: {out:?}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect()
}

/// Serialise entries as a ustar archive.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (flag, data, link): (u8, &[u8], &str) = match &e.kind {
            Kind::File(d) => (b'0', d, ""),
            Kind::Dir => (b'5', &[], ""),
            Kind::Symlink(t) => (b'2', &[], t),
            Kind::Hardlink(t) => (b'1', &[], t),
        };
        let mut path = e.path.clone();
        if matches!(e.kind, Kind::Dir) && !path.ends_with('/') {
            path.push('/');
        }
        if link.len() > 100 {
            // GNU long link name: a 'K' entry carrying the target.
            let mut l = link.as_bytes().to_vec();
            l.push(0);
            out.extend_from_slice(&header(
                "././@LongLink",
                b'K',
                l.len() as u64,
                0o644,
                0,
                0,
                "",
            ));
            let pad = (512 - l.len() % 512) % 512;
            out.extend_from_slice(&l);
            out.extend(std::iter::repeat_n(0u8, pad));
        }
        let short_link = &link[..link.len().min(100)];
        out.extend_from_slice(&header(
            &path,
            flag,
            data.len() as u64,
            e.mode,
            e.uid,
            e.gid,
            short_link,
        ));
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Options for the busybox root filesystem.
#[derive(Clone, Debug)]
pub struct RootfsOpts {
    /// Include /home/app owned by uid/gid 1000 (unmappable without subids).
    pub app_owned_files: bool,
}

impl Default for RootfsOpts {
    fn default() -> Self {
        RootfsOpts {
            app_owned_files: true,
        }
    }
}

pub fn busybox_applets(busybox: &Path) -> Vec<String> {
    let out = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.contains('/') && l != "busybox")
        .collect()
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n";

/// Entries of a busybox root filesystem: /bin/busybox, a symlink per applet,
/// /etc/passwd (root, app=1000), /etc/group (app in extra=2000), /tmp, ...
pub fn busybox_rootfs(busybox: &Path, opts: &RootfsOpts) -> Vec<Entry> {
    let bb = std::fs::read(busybox).expect("read busybox");
    let mut v = vec![
        Entry::dir("bin", 0o755),
        Entry::file("bin/busybox", 0o755, bb),
    ];
    for a in busybox_applets(busybox) {
        v.push(Entry::symlink(&format!("bin/{a}"), "busybox"));
    }
    v.extend([
        Entry::dir("etc", 0o755),
        Entry::file("etc/passwd", 0o644, PASSWD),
        Entry::file("etc/group", 0o644, GROUP),
        Entry::dir("tmp", 0o1777),
        Entry::dir("root", 0o700),
        Entry::dir("home", 0o755),
        Entry::dir("proc", 0o755),
        Entry::dir("sys", 0o755),
        Entry::dir("dev", 0o755),
        Entry::dir("var", 0o755),
        Entry::dir("usr", 0o755),
        Entry::dir("usr/bin", 0o755),
    ]);
    if opts.app_owned_files {
        v.extend([
            Entry::dir("home/app", 0o755).owner(1000, 1000),
            Entry::file("home/app/owned-file", 0o644, "app's file\n").owner(1000, 1000),
        ]);
    }
    v
}

/// Image configuration (the parts the tests use).
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

impl Config {
    pub fn shell() -> Config {
        Config {
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        }
    }
}

/// An image: name(s), layers (uncompressed tars), config.
#[derive(Clone, Debug)]
pub struct Image {
    pub tags: Vec<String>,
    pub layers: Vec<Vec<u8>>,
    /// Store the layers gzipped in the archive.
    pub gzip_layers: bool,
    pub config: Config,
}

impl Image {
    pub fn new(tag: &str, layers: Vec<Vec<u8>>, config: Config) -> Image {
        Image {
            tags: vec![tag.into()],
            layers,
            gzip_layers: false,
            config,
        }
    }

    /// Config JSON bytes (diff_ids are of the uncompressed layers).
    pub fn config_json(&self) -> Vec<u8> {
        let mut c = serde_json::Map::new();
        c.insert("Env".into(), json!(self.config.env));
        if let Some(cmd) = &self.config.cmd {
            c.insert("Cmd".into(), json!(cmd));
        }
        if let Some(ep) = &self.config.entrypoint {
            c.insert("Entrypoint".into(), json!(ep));
        }
        if let Some(w) = &self.config.workdir {
            c.insert("WorkingDir".into(), json!(w));
        }
        if let Some(u) = &self.config.user {
            c.insert("User".into(), json!(u));
        }
        let diff_ids: Vec<String> = self
            .layers
            .iter()
            .map(|l| format!("sha256:{}", sha256_hex(l)))
            .collect();
        let history: Vec<_> = self
            .layers
            .iter()
            .map(|_| json!({"created": "2024-01-01T00:00:00Z", "created_by": "burrow tests"}))
            .collect();
        serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": c,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }))
        .unwrap()
    }

    fn stored_layers(&self) -> Vec<Vec<u8>> {
        self.layers
            .iter()
            .map(|l| if self.gzip_layers { gzip(l) } else { l.clone() })
            .collect()
    }
}

/// A docker-archive (`docker save` format) holding `images`.
pub fn docker_archive(images: &[Image]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut manifest = Vec::new();
    let mut repositories = serde_json::Map::new();
    for img in images {
        let cfg = img.config_json();
        let cfg_hex = sha256_hex(&cfg);
        let cfg_name = format!("{cfg_hex}.json");
        if seen.insert(cfg_name.clone()) {
            entries.push(Entry::file(&cfg_name, 0o644, cfg));
        }
        let mut layer_names = Vec::new();
        for layer in img.stored_layers() {
            let hex = sha256_hex(&layer);
            let name = format!("{hex}/layer.tar");
            if seen.insert(name.clone()) {
                entries.push(Entry::dir(&hex, 0o755));
                entries.push(Entry::file(&format!("{hex}/VERSION"), 0o644, "1.0"));
                entries.push(Entry::file(&name, 0o644, layer));
            }
            layer_names.push(name);
        }
        manifest.push(json!({"Config": cfg_name, "RepoTags": img.tags, "Layers": layer_names}));
        if let Some(last) = layer_names.last() {
            for t in &img.tags {
                if let Some((repo, tag)) = t.rsplit_once(':') {
                    let layer_id = last.split('/').next().unwrap();
                    repositories.insert(repo.into(), json!({ tag: layer_id }));
                }
            }
        }
    }
    entries.push(Entry::file(
        "manifest.json",
        0o644,
        serde_json::to_vec(&manifest).unwrap(),
    ));
    entries.push(Entry::file(
        "repositories",
        0o644,
        serde_json::to_vec(&repositories).unwrap(),
    ));
    tar(&entries)
}

/// An OCI image layout archive holding `images`. Each manifest is annotated
/// with `io.containerd.image.name` (full name, as docker writes) and
/// `org.opencontainers.image.ref.name` (the tag).
pub fn oci_archive(images: &[Image]) -> Vec<u8> {
    let mut entries = vec![
        Entry::file("oci-layout", 0o644, r#"{"imageLayoutVersion":"1.0.0"}"#),
        Entry::dir("blobs", 0o755),
        Entry::dir("blobs/sha256", 0o755),
    ];
    let mut seen = std::collections::HashSet::new();
    let mut blob = |entries: &mut Vec<Entry>, data: Vec<u8>| -> (String, usize) {
        let hex = sha256_hex(&data);
        let len = data.len();
        if seen.insert(hex.clone()) {
            entries.push(Entry::file(&format!("blobs/sha256/{hex}"), 0o644, data));
        }
        (format!("sha256:{hex}"), len)
    };
    let mut index_manifests = Vec::new();
    for img in images {
        let (cfg_digest, cfg_size) = blob(&mut entries, img.config_json());
        let layer_type = if img.gzip_layers {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        };
        let layers: Vec<_> = img
            .stored_layers()
            .into_iter()
            .map(|l| {
                let (d, s) = blob(&mut entries, l);
                json!({"mediaType": layer_type, "digest": d, "size": s})
            })
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
            "layers": layers,
        }))
        .unwrap();
        let (m_digest, m_size) = blob(&mut entries, manifest);
        for t in &img.tags {
            let tag = t.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
            index_manifests.push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": m_digest,
                "size": m_size,
                "annotations": {
                    "io.containerd.image.name": t,
                    "org.opencontainers.image.ref.name": tag,
                },
            }));
        }
    }
    entries.push(Entry::file(
        "index.json",
        0o644,
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": index_manifests,
        }))
        .unwrap(),
    ));
    tar(&entries)
}

/// The standard test image: a busybox rootfs as one layer.
pub fn base_image(busybox: &Path, tag: &str) -> Image {
    Image::new(
        tag,
        vec![tar(&busybox_rootfs(busybox, &RootfsOpts::default()))],
        Config::shell(),
    )
}
