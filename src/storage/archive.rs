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
use super::{ImageRecord, Store, StorageError};

/// Metadata files are read into memory; anything this large is not one.
const MAX_METADATA: u64 = 64 << 20;
const METADATA_FILES: [&str; 3] = ["manifest.json", "index.json", "oci-layout"];
const MAX_LINK_HOPS: usize = 16;

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

struct Contents {
    members: HashMap<String, Member>,
    metadata: HashMap<String, Vec<u8>>,
}

impl Store {
    /// Load every image of a docker-archive or OCI archive; returns them as stored.
    pub fn load_archive(&self, reader: impl Read) -> Result<Vec<ImageRecord>, StorageError> {
        let bad = |e: io::Error| StorageError::InvalidArchive(e.to_string());
        let (_, stream) =
            compression::decompress(BufReader::with_capacity(READ_BUFFER, reader)).map_err(bad)?;
        let contents = self.spool_archive(stream)?;
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
            self.load_oci(&contents, &index, docker_manifest.as_deref())
        } else if let Some(images) = docker_manifest {
            images
                .iter()
                .map(|image| self.load_docker_image(&contents, image))
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
                    contents.members.insert(path, Member::Link(member_path(&joined)));
                    continue;
                }
                tar::EntryType::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    contents.members.insert(path, Member::Link(member_path(&target)));
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
            out.push(self.add_image(&manifest_digest, &names)?);
        }
        Ok(out)
    }

    /// The image manifest for this machine: `desc` itself, or its pick from an index (of which
    /// an archive usually holds only the host's platform).
    fn platform_manifest(&self, desc: &Descriptor) -> Result<Digest, StorageError> {
        let digest = desc.digest()?;
        let bytes = self.read_blob(&digest).map_err(|e| match e {
            StorageError::BlobNotFound(d) => {
                StorageError::InvalidArchive(format!("index.json names {d}, which is not in the archive"))
            }
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
            layers.push(json!({ "mediaType": media_type, "size": size, "digest": digest.to_string() }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": { "mediaType": DOCKER_CONFIG, "size": config_size, "digest": config_digest.to_string() },
            "layers": layers,
        });
        let manifest =
            serde_json::to_vec(&manifest).map_err(|e| StorageError::Other(e.to_string()))?;
        let manifest_digest = self.put_blob(&manifest)?;
        self.add_image(&manifest_digest, &parse_repo_tags(image.repo_tags.as_deref()))
    }
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
    name.split_once('/')
        .is_some_and(|(first, _)| first.contains('.') || first.contains(':') || first == "localhost")
}
