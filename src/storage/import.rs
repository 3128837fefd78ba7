//! `import`: a root filesystem tarball becomes a one-layer image.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde_json::{Map, Value, json};

use crate::reference::Reference;

use super::compression::{self, READ_BUFFER};
use super::digest::Digest;
use super::manifest::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, host_architecture};
use super::{ImageRecord, Store, StorageError};

/// Run-time defaults of an image (the `config` object of an image config), as set by
/// `import --change` / Dockerfile instructions. Empty fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageChanges {
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=value`.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `80/tcp`, `53/udp`.
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

impl ImageChanges {
    /// The config object in docker's spelling (`Cmd`, `Env`, `ExposedPorts: {"80/tcp": {}}`).
    pub fn to_config_json(&self) -> Value {
        let mut m = Map::new();
        let set = |m: &mut Map<String, Value>, k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        let as_set = |items: &[String]| {
            Value::Object(items.iter().map(|p| (p.clone(), json!({}))).collect())
        };
        if let Some(user) = &self.user {
            set(&mut m, "User", json!(user));
        }
        if !self.exposed_ports.is_empty() {
            set(&mut m, "ExposedPorts", as_set(&self.exposed_ports));
        }
        if !self.env.is_empty() {
            set(&mut m, "Env", json!(self.env));
        }
        if let Some(entrypoint) = &self.entrypoint {
            set(&mut m, "Entrypoint", json!(entrypoint));
        }
        if let Some(cmd) = &self.cmd {
            set(&mut m, "Cmd", json!(cmd));
        }
        if !self.volumes.is_empty() {
            set(&mut m, "Volumes", as_set(&self.volumes));
        }
        if let Some(dir) = &self.working_dir {
            set(&mut m, "WorkingDir", json!(dir));
        }
        if !self.labels.is_empty() {
            set(&mut m, "Labels", json!(self.labels));
        }
        if let Some(signal) = &self.stop_signal {
            set(&mut m, "StopSignal", json!(signal));
        }
        Value::Object(m)
    }
}

/// RFC 3339 "now", as image configs record times.
pub(super) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

impl Store {
    /// Store a rootfs tar (plain, gzip or zstd) as a one-layer image, its layer kept
    /// uncompressed so that its blob digest is its diff id.
    pub fn import_rootfs(
        &self,
        reader: impl Read,
        name: Option<&Reference>,
        changes: &ImageChanges,
        message: Option<&str>,
    ) -> Result<ImageRecord, StorageError> {
        let (_, mut tar) = compression::decompress(io::BufReader::with_capacity(READ_BUFFER, reader))
            .map_err(|e| StorageError::InvalidArchive(format!("cannot read the tarball: {e}")))?;
        let mut writer = self.blob_writer()?;
        let mut first = FirstBlock {
            inner: &mut writer,
            block: Vec::with_capacity(512),
        };
        compression::copy_large(&mut tar, &mut first)
            .map_err(|e| StorageError::InvalidArchive(format!("cannot read the tarball: {e}")))?;
        if !looks_like_tar(&first.block) {
            return Err(StorageError::InvalidArchive(
                "the input is not a tar archive (plain, gzip or zstd)".into(),
            ));
        }
        let (diff_id, layer_size) = writer.commit(None)?;

        let now = now_rfc3339();
        let mut history = Map::new();
        history.insert("created".into(), json!(now));
        history.insert("created_by".into(), json!("burrow import"));
        if let Some(message) = message {
            history.insert("comment".into(), json!(message));
        }
        let config = json!({
            "architecture": host_architecture(),
            "os": "linux",
            "created": now,
            "config": changes.to_config_json(),
            "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
            "history": [history],
        });
        let config = serde_json::to_vec(&config).map_err(|e| StorageError::Other(e.to_string()))?;
        let config_digest = self.put_blob(&config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len() },
            "layers": [{ "mediaType": OCI_LAYER, "digest": diff_id.to_string(), "size": layer_size }],
        });
        let manifest =
            serde_json::to_vec(&manifest).map_err(|e| StorageError::Other(e.to_string()))?;
        let manifest_digest: Digest = self.put_blob(&manifest)?;
        let names: Vec<Reference> = name.into_iter().cloned().collect();
        self.add_image(&manifest_digest, &names)
    }
}

/// Passes writes through, keeping the first 512 bytes (a tar header) for a sanity check.
struct FirstBlock<'a, W> {
    inner: &'a mut W,
    block: Vec<u8>,
}

impl<W: Write> Write for FirstBlock<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let want = (512 - self.block.len()).min(n);
        self.block.extend_from_slice(&buf[..want]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A valid header checksum, or the zero block that ends an (empty) archive.
fn looks_like_tar(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let header = tar::Header::from_byte_slice(block);
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..512])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    header.cksum().is_ok_and(|c| c == sum)
}
