//! `import`: a root filesystem tarball becomes a one-layer image.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde_json::{Map, Value, json};

use crate::reference::Reference;

use super::compression::{self, READ_BUFFER};
use super::digest::Digest;
use super::manifest::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, host_architecture};
use super::{ImageRecord, StorageError, Store};

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
    /// `ONBUILD` instructions, kept for a later build as docker keeps them.
    pub on_build: Vec<String>,
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
        if !self.on_build.is_empty() {
            set(&mut m, "OnBuild", json!(self.on_build));
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
        let (_, mut tar) =
            compression::decompress(io::BufReader::with_capacity(READ_BUFFER, reader)).map_err(
                |e| StorageError::InvalidArchive(format!("cannot read the tarball: {e}")),
            )?;
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
        let mut config = json!({
            "architecture": host_architecture(),
            "os": "linux",
            "created": now,
            "config": changes.to_config_json(),
            "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
            "history": [history],
        });
        if let Some(message) = message {
            // docker inspect's `.Comment`.
            config["comment"] = json!(message);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::UnpackOptions;
    use crate::storage::testutil::{TarBuilder, gzip};

    #[test]
    fn rootfs_becomes_a_one_layer_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = TarBuilder::new().file("bin/sh", b"#!", 0o755).finish();
        let changes = ImageChanges {
            cmd: Some(vec!["sh".into()]),
            env: vec!["A=b".into()],
            exposed_ports: vec!["80/tcp".into()],
            labels: [("k".to_string(), "v".to_string())].into(),
            working_dir: Some("/w".into()),
            ..Default::default()
        };
        let name = Reference::parse("imported:1").unwrap();
        let img = store
            .import_rootfs(&gzip(&tar)[..], Some(&name), &changes, Some("from a test"))
            .unwrap();
        assert_eq!(img.names, ["docker.io/library/imported:1"]);
        assert_eq!(img.diff_ids, [Digest::sha256_of(&tar)]);
        let cfg = store.image_config(&img).unwrap();
        assert_eq!(cfg.architecture().to_string(), host_architecture());
        assert!(cfg.created().is_some());
        let c = cfg.config().as_ref().unwrap();
        assert_eq!(c.cmd().as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(
            c.exposed_ports().as_deref(),
            Some(&["80/tcp".to_string()][..])
        );
        assert_eq!(c.working_dir().as_deref(), Some("/w"));
        let history = cfg.history().as_ref().unwrap();
        assert_eq!(history[0].comment().as_deref(), Some("from a test"));
        let dirs = store
            .ensure_unpacked(
                &img,
                UnpackOptions {
                    ignore_chown_errors: true,
                },
            )
            .unwrap();
        assert_eq!(std::fs::read(dirs[0].join("bin/sh")).unwrap(), b"#!");
        let nameless = store
            .import_rootfs(&tar[..], None, &ImageChanges::default(), None)
            .unwrap();
        assert!(nameless.names.is_empty());
    }

    #[test]
    fn non_tar_input_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let junk = vec![b'x'; 4096];
        let err = store
            .import_rootfs(&junk[..], None, &ImageChanges::default(), None)
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidArchive(_)), "{err}");
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
        assert!(
            store
                .import_rootfs(&b""[..], None, &ImageChanges::default(), None)
                .is_err()
        );
    }
}
