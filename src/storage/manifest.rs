//! The parts of manifests, configs and indexes the store relies on, parsed leniently: OCI and
//! Docker schema2 documents share these fields, and unknown fields are none of our business.
//! Stored documents keep their original bytes; these types are only read from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StorageError;
use super::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn digest(&self) -> Result<Digest, StorageError> {
        Digest::parse(&self.digest)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_MANIFEST_LIST
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest, or an index when `manifests` is present.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDoc {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    pub manifests: Option<Vec<Descriptor>>,
}

impl ManifestDoc {
    pub fn parse(bytes: &[u8], what: &Digest) -> Result<ManifestDoc, StorageError> {
        let doc: ManifestDoc = serde_json::from_slice(bytes)
            .map_err(|e| StorageError::InvalidImage(format!("manifest {what}: {e}")))?;
        if doc.schema_version != 2 {
            return Err(StorageError::InvalidImage(format!(
                "manifest {what}: schema version {} is not supported",
                doc.schema_version
            )));
        }
        Ok(doc)
    }

    /// The config descriptor of an image manifest (an index has none).
    pub fn image_config(&self, what: &Digest) -> Result<&Descriptor, StorageError> {
        match &self.config {
            Some(c) if self.manifests.is_none() => Ok(c),
            _ => Err(StorageError::InvalidImage(format!(
                "{what} is an image index, not an image manifest"
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ConfigDoc {
    #[serde(default)]
    pub created: Option<String>,
    pub rootfs: RootFsDoc,
}

#[derive(Debug, Deserialize)]
pub struct RootFsDoc {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl ConfigDoc {
    pub fn parse(bytes: &[u8], what: &Digest) -> Result<ConfigDoc, StorageError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StorageError::InvalidImage(format!("config {what}: {e}")))
    }

    pub fn diff_ids(&self, what: &Digest) -> Result<Vec<Digest>, StorageError> {
        self.rootfs
            .diff_ids
            .iter()
            .map(|d| {
                Digest::parse(d)
                    .map_err(|e| StorageError::InvalidImage(format!("config {what}: diff id: {e}")))
            })
            .collect()
    }
}

/// `index.json` of an OCI layout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexDoc {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Default for IndexDoc {
    fn default() -> Self {
        IndexDoc {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: None,
        }
    }
}

/// GOARCH name of the machine we run on, as image configs and platforms spell it.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        other => other,
    }
}
