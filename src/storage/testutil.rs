//! Helpers for the storage tests: hand-made (possibly hostile) tars and images.

use std::io::{Read, Write};

use serde_json::json;

use super::compression;
use super::digest::Digest;
use super::manifest::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};
use super::{ImageRecord, Store};
use crate::reference::Reference;

/// (name, kind, link target) of each member of a tar, in order.
pub fn tar_members(data: &[u8]) -> Vec<(String, tar::EntryType, String)> {
    let mut a = tar::Archive::new(data);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            let path = e.path().unwrap().display().to_string();
            (path, e.header().entry_type(), link.unwrap_or_default())
        })
        .collect()
}

/// Writes tar entries with exactly the names given: `..`, absolute paths and all.
pub struct TarBuilder {
    builder: tar::Builder<Vec<u8>>,
    uid: u64,
    gid: u64,
}

impl TarBuilder {
    pub fn new() -> Self {
        // SAFETY: plain getters.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        TarBuilder {
            builder: tar::Builder::new(Vec::new()),
            uid: uid.into(),
            gid: gid.into(),
        }
    }

    fn header(&self, path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        h.set_mtime(1_600_000_000);
        h
    }

    fn link_header(&self, path: &str, kind: tar::EntryType, target: &str) -> tar::Header {
        let mut h = self.header(path, kind, 0o777, 0);
        let link = &mut h.as_old_mut().linkname;
        link[..target.len()].copy_from_slice(target.as_bytes());
        h
    }

    fn append(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let h = self.header(path, tar::EntryType::Directory, mode, 0);
        self.append(h, &[])
    }

    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        let h = self.header(path, tar::EntryType::Regular, mode, data.len() as u64);
        self.append(h, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let h = self.link_header(path, tar::EntryType::Symlink, target);
        self.append(h, &[])
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let h = self.link_header(path, tar::EntryType::Link, target);
        self.append(h, &[])
    }

    pub fn fifo(&mut self, path: &str) -> &mut Self {
        let h = self.header(path, tar::EntryType::Fifo, 0o644, 0);
        self.append(h, &[])
    }

    pub fn device(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = self.header(path, tar::EntryType::Char, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.append(h, &[])
    }

    /// A regular file with PAX records (xattrs, mtime, owner).
    pub fn file_with_pax(&mut self, path: &str, data: &[u8], pax: &[(&str, &[u8])]) -> &mut Self {
        self.builder
            .append_pax_extensions(pax.iter().copied())
            .unwrap();
        self.file(path, data, 0o644)
    }

    pub fn owner(&mut self, uid: u64, gid: u64) -> &mut Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

pub fn diff_id_of(blob: &[u8]) -> Digest {
    let (_, mut r) = compression::decompress(blob).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    Digest::sha256_of(&out)
}

/// Config bytes with the given diff ids; `tag` makes otherwise equal configs differ.
pub fn config_json(diff_ids: &[Digest], tag: &str) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(ToString::to_string).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": { "Cmd": ["sh"], "Env": [format!("TAG={tag}")] },
        "rootfs": { "type": "layers", "diff_ids": ids },
    }))
    .unwrap()
}

/// Store `layers` (blobs, any compression) as an OCI image and name it.
pub fn add_image(store: &Store, layers: &[Vec<u8>], tag: &str, names: &[&str]) -> ImageRecord {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| diff_id_of(l)).collect();
    let config = config_json(&diff_ids, tag);
    let config_digest = store.put_blob(&config).unwrap();
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| {
            let d = store.put_blob(l).unwrap();
            json!({ "mediaType": OCI_LAYER, "digest": d.to_string(), "size": l.len() })
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len() },
        "layers": layer_descs,
    }))
    .unwrap();
    let manifest_digest = store.put_blob(&manifest).unwrap();
    let names: Vec<Reference> = names.iter().map(|n| Reference::parse(n).unwrap()).collect();
    store.add_image(&manifest_digest, &names).unwrap()
}
