//! `save`: images out of the store as a docker-archive (what `docker load` and `podman load`
//! read), an OCI archive, or an OCI layout directory.
//!
//! docker-archive: `manifest.json` `[{Config, RepoTags, Layers}]`, `<config hex>.json`,
//! `<diff id hex>/layer.tar` (uncompressed: `docker load` checks each against its diff id, so
//! layers stored compressed are decompressed, and verified, on the way), `repositories`.
//! OCI: `oci-layout`, `index.json` (one descriptor per name, annotated with the full name as
//! containerd and docker 25 do), `blobs/sha256/`; Docker schema2 manifests are converted to
//! OCI manifests (same config and layer blobs). As docker 25 does, an OCI archive also has a
//! docker-archive `manifest.json` pointing into `blobs/`: docker before 25 reads nothing else
//! (it takes compressed layers too), OCI tools ignore it.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::reference::Reference;

use super::compression::{self, Compression};
use super::digest::{Digest, HashingWriter};
use super::manifest::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, DOCKER_CONFIG, DOCKER_LAYER,
    DOCKER_LAYER_GZIP, DOCKER_MANIFEST, ManifestDoc, OCI_CONFIG, OCI_INDEX, OCI_LAYER,
    OCI_MANIFEST,
};
use super::{ImageRecord, StorageError, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveFormat {
    /// docker save's format, read by docker load and podman load
    DockerArchive,
    /// An OCI image layout in a tar archive, with docker's manifest.json too (docker load
    /// before docker 25 reads only that)
    OciArchive,
    /// An OCI image layout directory
    OciDir,
}

/// Where archive members go: a tar stream or a directory.
trait Sink {
    fn file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> io::Result<()>;
    fn dir(&mut self, path: &str) -> io::Result<()>;
}

struct TarSink<W: Write> {
    builder: tar::Builder<W>,
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

impl<W: Write> Sink for TarSink<W> {
    fn file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mut h = header(tar::EntryType::Regular, size, 0o644);
        self.builder.append_data(&mut h, path, data.take(size))
    }

    fn dir(&mut self, path: &str) -> io::Result<()> {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        self.builder
            .append_data(&mut h, format!("{path}/"), io::empty())
    }
}

struct DirSink {
    root: PathBuf,
}

impl Sink for DirSink {
    fn file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let dest = self.root.join(path);
        let mut out = BufWriter::new(File::create(&dest)?);
        let n = compression::copy_large(&mut data.take(size), &mut out)?;
        if n != size {
            return Err(io::Error::other(format!("{path}: short read")));
        }
        out.flush()
    }

    fn dir(&mut self, path: &str) -> io::Result<()> {
        fs::create_dir_all(self.root.join(path))
    }
}

impl Store {
    /// Write `items` as a docker-archive or OCI archive to `out`.
    pub fn save_archive(
        &self,
        items: &[(ImageRecord, Vec<String>)],
        format: ArchiveFormat,
        out: impl Write,
    ) -> Result<(), StorageError> {
        let mut sink = TarSink {
            builder: tar::Builder::new(out),
        };
        match format {
            ArchiveFormat::DockerArchive => self.save_docker(items, &mut sink)?,
            ArchiveFormat::OciArchive | ArchiveFormat::OciDir => self.save_oci(items, &mut sink)?,
        }
        let mut out = sink
            .builder
            .into_inner()
            .map_err(|e| StorageError::Other(format!("writing the archive: {e}")))?;
        out.flush()
            .map_err(|e| StorageError::Other(format!("writing the archive: {e}")))
    }

    /// Write `items` as an OCI image layout into the directory `dir` (created if missing).
    pub fn save_oci_dir(
        &self,
        items: &[(ImageRecord, Vec<String>)],
        dir: &Path,
    ) -> Result<(), StorageError> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let mut sink = DirSink {
            root: dir.to_path_buf(),
        };
        self.save_oci(items, &mut sink)
    }

    fn save_docker(
        &self,
        items: &[(ImageRecord, Vec<String>)],
        sink: &mut dyn Sink,
    ) -> Result<(), StorageError> {
        let write_err = |path: &str, e: io::Error| {
            StorageError::Other(format!("writing {path} to the archive: {e}"))
        };
        let mut written: HashSet<String> = HashSet::new();
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (image, names) in items {
            let doc = self.image_manifest(image)?;
            let mut layers = Vec::new();
            for (desc, diff_id) in doc.layers.iter().zip(&image.diff_ids) {
                let path = format!("{}/layer.tar", diff_id.hex());
                layers.push(path.clone());
                if !written.insert(path.clone()) {
                    continue;
                }
                sink.dir(diff_id.hex())
                    .map_err(|e| write_err(diff_id.hex(), e))?;
                self.write_uncompressed_layer(&desc.digest()?, diff_id, &path, sink)?;
            }
            let config_path = format!("{}.json", image.id.hex());
            if written.insert(config_path.clone()) {
                let mut f = self.open_blob(&image.id)?;
                let size = self.blob_size(&image.id)?;
                sink.file(&config_path, size, &mut f)
                    .map_err(|e| write_err(&config_path, e))?;
            }
            let tags: Vec<String> = tagged(names)
                .into_iter()
                .map(|r| {
                    if let Some(top) = image.diff_ids.last() {
                        let repo = Reference {
                            tag: None,
                            digest: None,
                            ..r.clone()
                        }
                        .familiar();
                        repositories
                            .entry(repo)
                            .or_default()
                            .insert(r.tag.clone().unwrap_or_default(), top.hex().to_string());
                    }
                    r.familiar()
                })
                .collect();
            manifest.push(docker_manifest_entry(config_path, tags, layers));
        }
        write_json(sink, "manifest.json", &json!(manifest))?;
        if !repositories.is_empty() {
            write_json(sink, "repositories", &json!(repositories))?;
        }
        Ok(())
    }

    /// A layer blob as the uncompressed tar its diff id names, checked against it.
    fn write_uncompressed_layer(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        path: &str,
        sink: &mut dyn Sink,
    ) -> Result<(), StorageError> {
        let write_err =
            |e: io::Error| StorageError::Other(format!("writing {path} to the archive: {e}"));
        let layer_err = |source: io::Error| StorageError::Layer {
            layer: diff_id.clone(),
            source,
        };
        let (compression, mut stream) =
            compression::decompress(self.open_blob(blob)?).map_err(layer_err)?;
        if compression == Compression::None && blob == diff_id {
            drop(stream);
            let size = self.blob_size(blob)?;
            return sink
                .file(path, size, &mut self.open_blob(blob)?)
                .map_err(write_err);
        }
        // Decompress to a temp file first: a tar member's size comes before its data.
        let (file, tmp) = self.create_temp_file("save")?;
        let result = (|| {
            let mut hashing = HashingWriter::new(BufWriter::new(file));
            compression::copy_large(&mut stream, &mut hashing).map_err(layer_err)?;
            let (digest, size, buffered) = hashing.finish();
            // Kept open (and flocked) while the copy is read back, so that another process's
            // cleanup does not take it for a dead writer's.
            let _locked = buffered
                .into_inner()
                .map_err(|e| StorageError::io(&tmp, e.into_error()))?;
            if digest != *diff_id {
                return Err(StorageError::DigestMismatch {
                    what: format!("layer {blob} uncompressed"),
                    expected: diff_id.clone(),
                    actual: digest,
                });
            }
            let mut reader = File::open(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
            sink.file(path, size, &mut reader).map_err(write_err)
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    fn save_oci(
        &self,
        items: &[(ImageRecord, Vec<String>)],
        sink: &mut dyn Sink,
    ) -> Result<(), StorageError> {
        let write_err = |path: &str, e: io::Error| {
            StorageError::Other(format!("writing {path} to the archive: {e}"))
        };
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        sink.file("oci-layout", layout.len() as u64, &mut &layout[..])
            .map_err(|e| write_err("oci-layout", e))?;
        sink.dir("blobs/sha256")
            .map_err(|e| write_err("blobs/sha256", e))?;
        let mut written: HashSet<Digest> = HashSet::new();
        let mut descriptors = Vec::new();
        let mut docker_manifest = Vec::new();
        for (image, names) in items {
            let stored = self.read_blob(&image.manifest_digest)?;
            let doc = self.image_manifest(image)?;
            let manifest_bytes = oci_manifest_bytes(&stored, &doc, image)?;
            let manifest_digest = Digest::sha256_of(&manifest_bytes);
            let layers = doc
                .layers
                .iter()
                .map(|l| l.digest())
                .collect::<Result<Vec<_>, _>>()?;
            for digest in std::iter::once(&image.id).chain(&layers) {
                if !written.insert(digest.clone()) {
                    continue;
                }
                let path = blob_path(digest);
                let size = self.blob_size(digest)?;
                sink.file(&path, size, &mut self.open_blob(digest)?)
                    .map_err(|e| write_err(&path, e))?;
            }
            if written.insert(manifest_digest.clone()) {
                let path = blob_path(&manifest_digest);
                sink.file(&path, manifest_bytes.len() as u64, &mut &manifest_bytes[..])
                    .map_err(|e| write_err(&path, e))?;
            }
            let descriptor = |annotations: serde_json::Value| {
                let mut d = json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": manifest_digest.to_string(),
                    "size": manifest_bytes.len(),
                });
                if !annotations.is_null() {
                    d["annotations"] = annotations;
                }
                d
            };
            let refs = tagged(names);
            docker_manifest.push(docker_manifest_entry(
                blob_path(&image.id),
                refs.iter().map(Reference::familiar).collect(),
                layers.iter().map(blob_path).collect(),
            ));
            if refs.is_empty() {
                descriptors.push(descriptor(serde_json::Value::Null));
            }
            for r in refs {
                descriptors.push(descriptor(json!({
                    ANNOTATION_CONTAINERD_NAME: r.to_string(),
                    ANNOTATION_REF_NAME: r.to_string(),
                })));
            }
        }
        write_json(sink, "manifest.json", &json!(docker_manifest))?;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": descriptors,
        });
        write_json(sink, "index.json", &index)
    }
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// The names an archive records for an image: tagged ones (`docker load` has no use for a
/// digest without a tag).
fn tagged(names: &[String]) -> Vec<Reference> {
    names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .filter(|r| r.tag.is_some() && r.digest.is_none())
        .collect()
}

/// One image of a docker-archive `manifest.json`; `RepoTags` is null for an image without
/// names, as docker writes it.
fn docker_manifest_entry(
    config: String,
    tags: Vec<String>,
    layers: Vec<String>,
) -> serde_json::Value {
    json!({
        "Config": config,
        "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { json!(tags) },
        "Layers": layers,
    })
}

fn write_json(
    sink: &mut dyn Sink,
    path: &str,
    value: &serde_json::Value,
) -> Result<(), StorageError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StorageError::Other(e.to_string()))?;
    sink.file(path, bytes.len() as u64, &mut &bytes[..])
        .map_err(|e| StorageError::Other(format!("writing {path} to the archive: {e}")))
}

/// The stored manifest if it is an OCI one, else the same image as an OCI manifest.
fn oci_manifest_bytes(
    stored: &[u8],
    doc: &ManifestDoc,
    image: &ImageRecord,
) -> Result<Vec<u8>, StorageError> {
    let config = doc.image_config(&image.manifest_digest)?;
    let is_docker = doc.media_type.as_deref() == Some(DOCKER_MANIFEST)
        || config.media_type == DOCKER_CONFIG
        || doc
            .layers
            .iter()
            .any(|l| l.media_type.starts_with("application/vnd.docker."));
    if !is_docker {
        return Ok(stored.to_vec());
    }
    let layers: Vec<serde_json::Value> = doc
        .layers
        .iter()
        .map(|l| {
            let media_type = match l.media_type.as_str() {
                DOCKER_LAYER => OCI_LAYER.to_string(),
                DOCKER_LAYER_GZIP => format!("{OCI_LAYER}+gzip"),
                other => other.to_string(),
            };
            json!({ "mediaType": media_type, "digest": l.digest, "size": l.size })
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size },
        "layers": layers,
    }))
    .map_err(|e| StorageError::Other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testutil::{TarBuilder, add_image, gzip};

    fn members(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut a = tar::Archive::new(archive);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(path, data);
        }
        out
    }

    #[test]
    fn docker_archive_has_uncompressed_layers_and_loads_back() {
        let src = tempfile::tempdir().unwrap();
        let store = Store::open(src.path()).unwrap();
        let plain = TarBuilder::new().file("base", b"base", 0o644).finish();
        let zipped = gzip(&TarBuilder::new().file("top", b"top", 0o644).finish());
        let a = add_image(&store, &[plain.clone(), zipped], "a", &["x/a:1", "x/a:2"]);
        let b = add_image(&store, std::slice::from_ref(&plain), "b", &["b"]);
        let items = vec![
            (a.clone(), a.names.clone()),
            (b.clone(), vec!["docker.io/library/b:latest".to_string()]),
        ];
        let mut out = Vec::new();
        store
            .save_archive(&items, ArchiveFormat::DockerArchive, &mut out)
            .unwrap();
        let m = members(&out);
        let manifest: serde_json::Value = serde_json::from_slice(&m["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["RepoTags"], json!(["x/a:1", "x/a:2"]));
        assert_eq!(manifest[1]["RepoTags"], json!(["b:latest"]));
        for (i, diff_id) in a.diff_ids.iter().enumerate() {
            let path = manifest[0]["Layers"][i].as_str().unwrap();
            assert_eq!(Digest::sha256_of(&m[path]), *diff_id);
        }
        assert_eq!(m[&format!("{}/layer.tar", a.diff_ids[0].hex())], plain);
        let repositories: serde_json::Value = serde_json::from_slice(&m["repositories"]).unwrap();
        assert_eq!(repositories["x/a"]["2"], a.diff_ids[1].hex());

        let dst = tempfile::tempdir().unwrap();
        let other = Store::open(dst.path()).unwrap();
        let loaded = other.load_archive(&out[..]).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].id, a.id);
        assert_eq!(loaded[0].names, a.names);
        assert_eq!(loaded[1].id, b.id);
    }

    #[test]
    fn oci_archive_and_dir_load_back() {
        let src = tempfile::tempdir().unwrap();
        let store = Store::open(src.path()).unwrap();
        let zipped = gzip(&TarBuilder::new().file("f", b"f", 0o644).finish());
        let a = add_image(
            &store,
            std::slice::from_ref(&zipped),
            "a",
            &["quay.io/x/a:1"],
        );
        let nameless = add_image(&store, &[TarBuilder::new().finish()], "n", &[]);
        let items = vec![(a.clone(), a.names.clone()), (nameless.clone(), Vec::new())];
        let mut out = Vec::new();
        store
            .save_archive(&items, ArchiveFormat::OciArchive, &mut out)
            .unwrap();
        let m = members(&out);
        assert!(m.contains_key("oci-layout"));
        let index: serde_json::Value = serde_json::from_slice(&m["index.json"]).unwrap();
        assert_eq!(
            index["manifests"][0]["annotations"][ANNOTATION_REF_NAME],
            "quay.io/x/a:1"
        );
        // docker before 25 reads only manifest.json: its paths name the blobs.
        let manifest: serde_json::Value = serde_json::from_slice(&m["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["RepoTags"], json!(["quay.io/x/a:1"]));
        assert_eq!(manifest[1]["RepoTags"], serde_json::Value::Null);
        let config_path = manifest[0]["Config"].as_str().unwrap();
        assert_eq!(Digest::sha256_of(&m[config_path]), a.id);
        let layer_path = manifest[0]["Layers"][0].as_str().unwrap();
        assert_eq!(m[layer_path], zipped);
        let dst = tempfile::tempdir().unwrap();
        let other = Store::open(dst.path()).unwrap();
        let loaded = other.load_archive(&out[..]).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].names, ["quay.io/x/a:1"]);
        assert_eq!(loaded[0].id, a.id);
        assert_eq!(loaded[1].id, nameless.id);
        assert!(loaded[1].names.is_empty());

        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        store.save_oci_dir(&items[..1], &layout).unwrap();
        assert!(layout.join("oci-layout").is_file());
        assert!(layout.join("blobs/sha256").join(a.id.hex()).is_file());
    }
}
