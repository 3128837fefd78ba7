//! `load`: docker-archive (`docker save`, `podman save`) and OCI archive (`skopeo copy
//! oci-archive:`, `podman save --format oci-archive`, docker 25+ `save`), either possibly
//! compressed as a whole.
//!
//! The archive is read once, as a stream: every member goes to the blob store as it comes
//! (a docker-archive may list `manifest.json` last), and the images are assembled from the
//! stored blobs at the end.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};

use serde::Deserialize;
use serde_json::json;

use crate::reference::Reference;

use super::compression::{self, Compression, READ_BUFFER};
use super::digest::{Digest, is_lower_hex};
use super::manifest::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ConfigDoc, DOCKER_CONFIG, DOCKER_LAYER,
    DOCKER_LAYER_GZIP, DOCKER_MANIFEST, Descriptor, IndexDoc, ManifestDoc, OCI_LAYER_ZSTD,
    host_architecture,
};
use super::unpack::normalise;
use super::{ImageRecord, StorageError, Store};

/// Metadata files are read into memory; anything this large is not one.
const MAX_METADATA: u64 = 64 << 20;
const METADATA_FILES: [&str; 3] = ["manifest.json", "index.json", "oci-layout"];
const MAX_LINK_HOPS: usize = 16;

/// Legacy docker-archive bookkeeping that images do not need; not worth a blob.
fn is_legacy_metadata(path: &str) -> bool {
    path == "repositories" || path.ends_with("/VERSION") || path.ends_with("/json")
}

#[derive(Debug, Clone)]
enum Member {
    Blob {
        digest: Digest,
        size: u64,
        compression: Compression,
    },
    /// A symlink or hard link to another member (docker-archives link shared layers).
    Link(String),
}

/// One image of a docker-archive's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// Image id (config digest) → manifest digest.
type KnownIds = HashMap<Digest, Digest>;

struct Contents {
    members: HashMap<String, Member>,
    metadata: HashMap<String, Vec<u8>>,
}

impl Store {
    /// Load every image of a docker-archive or OCI archive; returns them as stored, each with
    /// the names the archive gave it (not others it already had).
    pub fn load_archive(&self, reader: impl Read) -> Result<Vec<ImageRecord>, StorageError> {
        let bad = |e: io::Error| StorageError::InvalidArchive(e.to_string());
        let (_, stream) =
            compression::decompress(BufReader::with_capacity(READ_BUFFER, reader)).map_err(bad)?;
        let contents = self.spool_archive(stream)?;
        let mut known = self.known_ids()?;
        let docker_manifest = match contents.metadata.get("manifest.json") {
            Some(bytes) => Some(
                serde_json::from_slice::<Vec<DockerArchiveImage>>(bytes)
                    .map_err(|e| StorageError::InvalidArchive(format!("manifest.json: {e}")))?,
            ),
            None => None,
        };
        if let (Some(index), true) = (
            contents.metadata.get("index.json"),
            contents.metadata.contains_key("oci-layout"),
        ) {
            let index: IndexDoc = serde_json::from_slice(index)
                .map_err(|e| StorageError::InvalidArchive(format!("index.json: {e}")))?;
            self.load_oci(&contents, &index, docker_manifest.as_deref(), &mut known)
        } else if let Some(images) = docker_manifest {
            images
                .iter()
                .map(|image| self.load_docker_image(&contents, image, &mut known))
                .collect()
        } else {
            Err(StorageError::InvalidArchive(
                "found neither manifest.json (docker-archive) nor oci-layout and index.json \
                 (OCI archive)"
                    .into(),
            ))
        }
    }

    fn spool_archive(&self, stream: impl Read) -> Result<Contents, StorageError> {
        let bad = |path: &str, e: io::Error| StorageError::InvalidArchive(format!("{path}: {e}"));
        let mut contents = Contents {
            members: HashMap::new(),
            metadata: HashMap::new(),
        };
        let mut archive = tar::Archive::new(stream);
        for entry in archive.entries().map_err(|e| bad("", e))? {
            let mut entry = entry.map_err(|e| bad("", e))?;
            let path = member_path(&entry.path_bytes());
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Symlink => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let base = match path.rsplit_once('/') {
                        Some((dir, _)) if !target.starts_with(b"/") => format!("{dir}/"),
                        _ => String::new(),
                    };
                    let mut joined = base.into_bytes();
                    joined.extend_from_slice(&target);
                    contents
                        .members
                        .insert(path, Member::Link(member_path(&joined)));
                    continue;
                }
                tar::EntryType::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    contents
                        .members
                        .insert(path, Member::Link(member_path(&target)));
                    continue;
                }
                _ => continue,
            }
            if METADATA_FILES.contains(&path.as_str()) {
                if entry.size() > MAX_METADATA {
                    return Err(bad(&path, io::Error::other("too large")));
                }
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut bytes).map_err(|e| bad(&path, e))?;
                contents.metadata.insert(path, bytes);
                continue;
            }
            if is_legacy_metadata(&path) {
                continue;
            }
            let expected = path
                .strip_prefix("blobs/sha256/")
                .filter(|hex| hex.len() == 64 && is_lower_hex(hex))
                .and_then(|hex| Digest::from_sha256_hex(hex).ok());
            let member = match &expected {
                // Already stored, so already verified; the tar reader skips the data.
                Some(digest) if self.has_blob(digest) => Member::Blob {
                    digest: digest.clone(),
                    size: self.blob_size(digest)?,
                    compression: Compression::None,
                },
                _ => self.spool_member(&mut entry, expected.as_ref(), &path)?,
            };
            contents.members.insert(path, member);
        }
        Ok(contents)
    }

    fn spool_member(
        &self,
        entry: &mut impl Read,
        expected: Option<&Digest>,
        path: &str,
    ) -> Result<Member, StorageError> {
        let bad = |e: io::Error| StorageError::InvalidArchive(format!("{path}: {e}"));
        let (magic, mut data) = compression::peek(entry, 4).map_err(bad)?;
        let mut writer = self.blob_writer()?;
        compression::copy_large(&mut data, &mut writer).map_err(bad)?;
        let (digest, size) = writer.commit(expected).map_err(|e| match e {
            StorageError::DigestMismatch {
                expected, actual, ..
            } => StorageError::DigestMismatch {
                what: format!("archive member {path}"),
                expected,
                actual,
            },
            other => other,
        })?;
        Ok(Member::Blob {
            digest,
            size,
            compression: Compression::detect(&magic),
        })
    }

    fn load_oci(
        &self,
        contents: &Contents,
        index: &IndexDoc,
        docker_manifest: Option<&[DockerArchiveImage]>,
        known: &mut KnownIds,
    ) -> Result<Vec<ImageRecord>, StorageError> {
        let mut out = Vec::new();
        for desc in &index.manifests {
            let manifest_digest = self.platform_manifest(desc)?;
            let mut names = oci_names(desc);
            if names.is_empty()
                && let Some(images) = docker_manifest
            {
                names = self.repo_tags_for(contents, images, &manifest_digest)?;
            }
            let manifest =
                ManifestDoc::parse(&self.read_blob(&manifest_digest)?, &manifest_digest)?;
            let config = manifest.image_config(&manifest_digest)?.digest()?;
            out.push(
                self.add_loaded_image(known, &config, &names, || Ok(manifest_digest.clone()))?,
            );
        }
        Ok(out)
    }

    /// Image id (config digest) → manifest digest of the images in the store.
    fn known_ids(&self) -> Result<KnownIds, StorageError> {
        Ok(self
            .images()?
            .into_iter()
            .map(|i| (i.id, i.manifest_digest))
            .collect())
    }

    /// Record an image of the archive under `names`. docker and podman know an image by its
    /// id, the digest of its config: one the store has already, under another manifest
    /// (pulled, committed, or from another tool's archive), takes the names, rather than a
    /// second image with the same id being stored beside it (and the first left nameless).
    /// Otherwise `manifest` gives the archive's.
    fn add_loaded_image(
        &self,
        known: &mut KnownIds,
        config: &Digest,
        names: &[Reference],
        manifest: impl FnOnce() -> Result<Digest, StorageError>,
    ) -> Result<ImageRecord, StorageError> {
        if let Some(existing) = known.get(config) {
            match self.add_image(existing, names) {
                // Removed since it was listed: the archive's copy takes its place.
                Err(StorageError::BlobNotFound(_)) => {}
                result => return Ok(named_by_archive(result?, names)),
            }
        }
        let manifest_digest = manifest()?;
        let record = self.add_image(&manifest_digest, names)?;
        known.insert(config.clone(), manifest_digest);
        Ok(named_by_archive(record, names))
    }

    /// The image manifest for this machine: `desc` itself, or its pick from an index (of which
    /// an archive usually holds only the host's platform).
    fn platform_manifest(&self, desc: &Descriptor) -> Result<Digest, StorageError> {
        let digest = desc.digest()?;
        let bytes = self.read_blob(&digest).map_err(|e| match e {
            StorageError::BlobNotFound(d) => StorageError::InvalidArchive(format!(
                "index.json names {d}, which is not in the archive"
            )),
            other => other,
        })?;
        let doc = ManifestDoc::parse(&bytes, &digest)?;
        let Some(manifests) = doc.manifests else {
            return Ok(digest);
        };
        let arch = host_architecture();
        manifests
            .iter()
            .filter(|m| {
                m.platform
                    .as_ref()
                    .is_none_or(|p| p.os == "linux" && p.architecture == arch)
            })
            .filter_map(|m| m.digest().ok())
            .find(|d| self.has_blob(d))
            .ok_or_else(|| {
                StorageError::InvalidArchive(format!(
                    "image index {digest} has no linux/{arch} image in the archive"
                ))
            })
    }

    /// Names docker's `manifest.json` gives an image whose OCI descriptor has none.
    fn repo_tags_for(
        &self,
        contents: &Contents,
        images: &[DockerArchiveImage],
        manifest_digest: &Digest,
    ) -> Result<Vec<Reference>, StorageError> {
        let manifest = ManifestDoc::parse(&self.read_blob(manifest_digest)?, manifest_digest)?;
        let config = manifest.image_config(manifest_digest)?.digest()?;
        for image in images {
            if let Ok((digest, _, _)) = resolve(contents, &image.config)
                && digest == config
            {
                return Ok(parse_repo_tags(image.repo_tags.as_deref()));
            }
        }
        Ok(Vec::new())
    }

    fn load_docker_image(
        &self,
        contents: &Contents,
        image: &DockerArchiveImage,
        known: &mut KnownIds,
    ) -> Result<ImageRecord, StorageError> {
        let (config_digest, config_size, _) = resolve(contents, &image.config)?;
        let config = ConfigDoc::parse(&self.read_blob(&config_digest)?, &config_digest)?;
        let diff_ids = config.diff_ids(&config_digest)?;
        if diff_ids.len() != image.layers.len() {
            return Err(StorageError::InvalidArchive(format!(
                "manifest.json lists {} layers for config {}, which has {} diff ids",
                image.layers.len(),
                image.config,
                diff_ids.len()
            )));
        }
        let mut layers = Vec::with_capacity(image.layers.len());
        for (path, diff_id) in image.layers.iter().zip(&diff_ids) {
            let (digest, size, compression) = resolve(contents, path)?;
            // An uncompressed layer's digest is its diff id; compressed ones are checked
            // against it when unpacked.
            if compression == Compression::None && digest != *diff_id {
                return Err(StorageError::DigestMismatch {
                    what: format!("layer {path} of the archive"),
                    expected: diff_id.clone(),
                    actual: digest,
                });
            }
            let media_type = match compression {
                Compression::None => DOCKER_LAYER,
                Compression::Gzip => DOCKER_LAYER_GZIP,
                Compression::Zstd => OCI_LAYER_ZSTD,
            };
            layers.push(
                json!({ "mediaType": media_type, "size": size, "digest": digest.to_string() }),
            );
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": { "mediaType": DOCKER_CONFIG, "size": config_size, "digest": config_digest.to_string() },
            "layers": layers,
        });
        let names = parse_repo_tags(image.repo_tags.as_deref());
        self.add_loaded_image(known, &config_digest, &names, || {
            let bytes =
                serde_json::to_vec(&manifest).map_err(|e| StorageError::Other(e.to_string()))?;
            self.put_blob(&bytes)
        })
    }
}

/// The record `load_archive` returns names what the archive named the image, not the names
/// it already had in the store: `load` prints what it loaded, as docker does.
fn named_by_archive(mut record: ImageRecord, names: &[Reference]) -> ImageRecord {
    record.names = names.iter().map(ToString::to_string).collect();
    record
}

/// Archive member paths compared as written by different tools (`./x`, `x`, `/x`).
fn member_path(raw: &[u8]) -> String {
    String::from_utf8_lossy(&normalise(raw).join(&b'/')).into_owned()
}

fn resolve(contents: &Contents, path: &str) -> Result<(Digest, u64, Compression), StorageError> {
    let mut current = member_path(path.as_bytes());
    for _ in 0..MAX_LINK_HOPS {
        match contents.members.get(&current) {
            Some(Member::Blob {
                digest,
                size,
                compression,
            }) => return Ok((digest.clone(), *size, *compression)),
            Some(Member::Link(target)) => current = target.clone(),
            None => break,
        }
    }
    Err(StorageError::InvalidArchive(format!(
        "manifest.json refers to {path}, which is not in the archive"
    )))
}

fn parse_repo_tags(tags: Option<&[String]>) -> Vec<Reference> {
    tags.unwrap_or_default()
        .iter()
        .filter_map(|t| match Reference::parse(t) {
            Ok(r) => Some(r),
            Err(e) => {
                log::warn!("ignoring image name {t:?} in the archive: {e}");
                None
            }
        })
        .collect()
}

/// Names from an OCI index descriptor: containerd's full name, else the OCI ref name, which
/// is often just a tag or a name without a registry; those go under `localhost/`, as podman.
fn oci_names(desc: &Descriptor) -> Vec<Reference> {
    let parsed = if let Some(name) = desc.annotation(ANNOTATION_CONTAINERD_NAME) {
        Reference::parse(name)
    } else if let Some(name) = desc.annotation(ANNOTATION_REF_NAME) {
        if has_registry(name) {
            Reference::parse(name)
        } else {
            Reference::parse(&format!("localhost/{name}"))
        }
    } else {
        return Vec::new();
    };
    match parsed {
        Ok(r) => vec![r],
        Err(e) => {
            log::warn!("ignoring an image name in the archive: {e}");
            Vec::new()
        }
    }
}

fn has_registry(name: &str) -> bool {
    name.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::UnpackOptions;
    use crate::storage::manifest::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
    use crate::storage::testutil::{TarBuilder, config_json, diff_id_of, gzip};

    /// An outer archive with plain member names.
    struct Outer(tar::Builder<Vec<u8>>);

    impl Outer {
        fn new() -> Self {
            Outer(tar::Builder::new(Vec::new()))
        }
        fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            self.0.append_data(&mut h, path, data).unwrap();
            self
        }
        fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            self.0.append_link(&mut h, path, target).unwrap();
            self
        }
        fn finish(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    const OPTS: UnpackOptions = UnpackOptions {
        ignore_chown_errors: true,
    };

    fn docker_archive() -> (Vec<u8>, Vec<Digest>) {
        docker_archive_of(
            json!(["busybox:latest", "localhost/x:1", "Not A Valid Name"]),
            false,
        )
    }

    /// A three-layer image (the first and last the same) as a docker-archive; the same image
    /// whether or not its base layer is stored gzipped, under another manifest.
    fn docker_archive_of(repo_tags: serde_json::Value, gzip_base: bool) -> (Vec<u8>, Vec<Digest>) {
        let l0 = TarBuilder::new()
            .file("etc/os-release", b"base", 0o644)
            .finish();
        let l1 = gzip(&TarBuilder::new().file("app", b"app", 0o755).finish());
        let diff_ids = vec![diff_id_of(&l0), diff_id_of(&l1), diff_id_of(&l0)];
        let config = config_json(&diff_ids, "docker");
        let config_hex = Digest::sha256_of(&config).hex().to_string();
        let manifest = json!([{
            "Config": format!("{config_hex}.json"),
            "RepoTags": repo_tags,
            "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"],
        }]);
        let stored_base = if gzip_base { gzip(&l0) } else { l0 };
        let mut outer = Outer::new();
        outer
            .file("aaa/layer.tar", &stored_base)
            .file("aaa/VERSION", b"1.0")
            .file("bbb/layer.tar", &l1)
            .symlink("ccc/layer.tar", "../aaa/layer.tar")
            .file(&format!("{config_hex}.json"), &config)
            .file("repositories", b"{}")
            .file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
        (outer.finish(), diff_ids)
    }

    #[test]
    fn docker_archive_round_trip() {
        let (archive, diff_ids) = docker_archive();
        for input in [archive.clone(), gzip(&archive)] {
            let (_dir, store) = store();
            let images = store.load_archive(&input[..]).unwrap();
            assert_eq!(images.len(), 1);
            let img = &images[0];
            assert_eq!(
                img.names,
                ["docker.io/library/busybox:latest", "localhost/x:1"]
            );
            assert_eq!(img.diff_ids, diff_ids);
            assert_eq!(store.find_image("busybox").unwrap().id, img.id);
            let manifest: serde_json::Value =
                serde_json::from_slice(&store.read_blob(&img.manifest_digest).unwrap()).unwrap();
            assert_eq!(manifest["mediaType"], DOCKER_MANIFEST);
            assert_eq!(manifest["config"]["digest"], img.id.to_string());
            assert_eq!(manifest["layers"][0]["mediaType"], DOCKER_LAYER);
            assert_eq!(manifest["layers"][1]["mediaType"], DOCKER_LAYER_GZIP);
            assert_eq!(
                manifest["layers"][2]["digest"],
                manifest["layers"][0]["digest"]
            );
            let dirs = store.ensure_unpacked(img, OPTS).unwrap();
            assert_eq!(dirs.len(), 3);
            assert_eq!(std::fs::read(dirs[1].join("app")).unwrap(), b"app");
            assert_eq!(
                std::fs::read(dirs[2].join("etc/os-release")).unwrap(),
                b"base"
            );
            assert!(!store.has_blob(&Digest::sha256_of(b"1.0")));
        }
    }

    #[test]
    fn docker_archive_layer_must_match_its_diff_id() {
        let l0 = TarBuilder::new().file("f", b"real", 0o644).finish();
        let config = config_json(&[Digest::sha256_of(b"claimed")], "bad");
        let manifest = json!([{ "Config": "c.json", "RepoTags": ["bad:1"], "Layers": ["l.tar"] }]);
        let mut outer = Outer::new();
        outer
            .file("manifest.json", &serde_json::to_vec(&manifest).unwrap())
            .file("l.tar", &l0)
            .file("c.json", &config);
        let (_dir, store) = store();
        let err = store.load_archive(&outer.finish()[..]).unwrap_err();
        assert!(matches!(err, StorageError::DigestMismatch { .. }), "{err}");
        assert!(store.images().unwrap().is_empty());
    }

    #[test]
    fn an_image_loaded_again_under_another_manifest_stays_one_image() {
        let (_dir, store) = store();
        let (plain, _) = docker_archive();
        let first = store.load_archive(&plain[..]).unwrap().remove(0);
        // The same config (so the same image id) and layers, the base stored gzipped: the
        // manifest burrow records for it differs, as one from a pull or a commit would.
        let (zipped, _) = docker_archive_of(json!(["busybox:latest", "other:1"]), true);
        let again = store.load_archive(&zipped[..]).unwrap();
        assert_eq!(again[0].id, first.id);
        assert_eq!(
            again[0].names,
            [
                "docker.io/library/busybox:latest",
                "docker.io/library/other:1"
            ]
        );
        let images = store.images().unwrap();
        assert_eq!(images.len(), 1, "{images:?}");
        assert_eq!(images[0].manifest_digest, first.manifest_digest);
        let mut names = images[0].names.clone();
        names.sort();
        assert_eq!(
            names,
            [
                "docker.io/library/busybox:latest",
                "docker.io/library/other:1",
                "localhost/x:1"
            ]
        );
    }

    /// Blobs of one OCI image; returns (manifest digest, manifest size, blobs).
    fn oci_image(content: &[u8], tag: &str) -> (Digest, usize, Vec<(Digest, Vec<u8>)>) {
        let layer = gzip(&TarBuilder::new().file("f", content, 0o644).finish());
        let config = config_json(&[diff_id_of(&layer)], tag);
        let (ld, cd) = (Digest::sha256_of(&layer), Digest::sha256_of(&config));
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                         "digest": ld.to_string(), "size": layer.len() }],
        }))
        .unwrap();
        let md = Digest::sha256_of(&manifest);
        (
            md.clone(),
            manifest.len(),
            vec![(ld, layer), (cd, config), (md, manifest)],
        )
    }

    fn desc(
        digest: &Digest,
        size: usize,
        media_type: &str,
        annotations: serde_json::Value,
    ) -> serde_json::Value {
        json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size, "annotations": annotations })
    }

    #[test]
    fn oci_archive_round_trip() {
        let (a, a_size, a_blobs) = oci_image(b"a", "a");
        let (b, b_size, b_blobs) = oci_image(b"b", "b");
        let (c, c_size, c_blobs) = oci_image(b"c", "c");
        let absent = Digest::sha256_of(b"other platform, not in the archive");
        let nested = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                { "mediaType": OCI_MANIFEST, "digest": absent.to_string(), "size": 1,
                  "platform": { "os": "linux", "architecture": host_architecture() } },
                { "mediaType": OCI_MANIFEST, "digest": c.to_string(), "size": c_size,
                  "platform": { "os": "linux", "architecture": host_architecture() } },
                { "mediaType": OCI_MANIFEST, "digest": absent.to_string(), "size": 1,
                  "platform": { "os": "windows", "architecture": host_architecture() } },
            ],
        }))
        .unwrap();
        let nested_digest = Digest::sha256_of(&nested);
        let index = json!({
            "schemaVersion": 2,
            "manifests": [
                desc(&a, a_size, OCI_MANIFEST, json!({
                    ANNOTATION_CONTAINERD_NAME: "docker.io/library/alpine:3",
                    ANNOTATION_REF_NAME: "3" })),
                desc(&b, b_size, OCI_MANIFEST, json!({ ANNOTATION_REF_NAME: "1.0" })),
                desc(&nested_digest, nested.len(), OCI_INDEX,
                     json!({ ANNOTATION_REF_NAME: "quay.io/org/multi:2" })),
            ],
        });
        let mut outer = Outer::new();
        outer.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        outer.file("index.json", &serde_json::to_vec(&index).unwrap());
        for (d, bytes) in a_blobs.iter().chain(&b_blobs).chain(&c_blobs) {
            outer.file(&format!("./blobs/sha256/{}", d.hex()), bytes);
        }
        outer.file(&format!("blobs/sha256/{}", nested_digest.hex()), &nested);
        let archive = zstd::encode_all(&outer.finish()[..], 3).unwrap();

        let (_dir, store) = store();
        let images = store.load_archive(&archive[..]).unwrap();
        let names: Vec<_> = images.iter().map(|i| i.names.clone()).collect();
        assert_eq!(
            names,
            [
                vec!["docker.io/library/alpine:3".to_string()],
                vec!["localhost/1.0:latest".to_string()],
                vec!["quay.io/org/multi:2".to_string()],
            ]
        );
        assert_eq!(images[0].manifest_digest, a);
        assert_eq!(images[2].manifest_digest, c);
        let dirs = store.ensure_unpacked(&images[2], OPTS).unwrap();
        assert_eq!(std::fs::read(dirs[0].join("f")).unwrap(), b"c");
        // Loading again is harmless.
        assert_eq!(store.load_archive(&archive[..]).unwrap().len(), 3);
        assert_eq!(store.images().unwrap().len(), 3);
    }

    #[test]
    fn oci_archive_blob_is_verified() {
        let (a, a_size, blobs) = oci_image(b"a", "a");
        let index =
            json!({ "schemaVersion": 2, "manifests": [desc(&a, a_size, OCI_MANIFEST, json!({}))] });
        let mut outer = Outer::new();
        outer.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        outer.file("index.json", &serde_json::to_vec(&index).unwrap());
        let (layer_digest, _) = &blobs[0];
        for (d, bytes) in &blobs {
            let bytes = if d == layer_digest {
                &b"tampered"[..]
            } else {
                &bytes[..]
            };
            outer.file(&format!("blobs/sha256/{}", d.hex()), bytes);
        }
        let (_dir, store) = store();
        let err = store.load_archive(&outer.finish()[..]).unwrap_err();
        assert!(matches!(err, StorageError::DigestMismatch { .. }), "{err}");
        assert!(!store.has_blob(layer_digest));
        assert!(!store.has_blob(&Digest::sha256_of(b"tampered")));
    }

    #[test]
    fn not_an_image_archive() {
        let (_dir, store) = store();
        let mut outer = Outer::new();
        outer.file("hello.txt", b"hi");
        let err = store.load_archive(&outer.finish()[..]).unwrap_err();
        assert!(matches!(err, StorageError::InvalidArchive(_)), "{err}");
        assert!(store.load_archive(&b"garbage"[..]).is_err());
    }
}
