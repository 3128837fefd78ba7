//! `commit`: a new image made of a base image plus one more layer.

use std::io::Read;

use serde_json::{Value, json};

use super::import::{ImageChanges, now_rfc3339};
use super::{Digest, ImageRecord, StorageError, Store};
use crate::reference::Reference;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Who made the commit and why, for the new history entry.
#[derive(Debug, Clone, Default)]
pub struct CommitInfo {
    pub author: Option<String>,
    pub message: Option<String>,
    pub created_by: String,
}

fn json_err(e: serde_json::Error) -> StorageError {
    StorageError::Other(e.to_string())
}

/// Apply `--change` settings to a config object as docker does: `Env` by variable, the sets
/// (`ExposedPorts`, `Volumes`, `Labels`) by member, anything else replaced.
fn merge_changes(target: &mut Value, new: serde_json::Map<String, Value>) {
    for (k, v) in new {
        match (k.as_str(), target.get_mut(&k), v) {
            ("Env", Some(Value::Array(old)), Value::Array(add)) => {
                for var in add {
                    let key = var.as_str().and_then(|s| s.split('=').next()).unwrap_or("");
                    old.retain(|o| o.as_str().and_then(|s| s.split('=').next()) != Some(key));
                    old.push(var);
                }
            }
            (
                "ExposedPorts" | "Volumes" | "Labels",
                Some(Value::Object(old)),
                Value::Object(add),
            ) => {
                old.extend(add);
            }
            (_, _, v) => target[k] = v,
        }
    }
}

impl Store {
    /// Store `layer` (an uncompressed layer tar) on top of `base` and name the result.
    pub fn commit_image(
        &self,
        base: &ImageRecord,
        layer: impl Read,
        changes: &ImageChanges,
        info: &CommitInfo,
        names: &[Reference],
    ) -> Result<ImageRecord, StorageError> {
        let mut writer = self.blob_writer()?;
        let mut layer = layer;
        std::io::copy(&mut layer, &mut writer)
            .map_err(|e| StorageError::Other(format!("cannot write the layer: {e}")))?;
        let (diff_id, size) = writer.commit(None)?;
        // A kill here leaves a blob no image refers to: the next prune collects it.
        super::crash::point("commit-after-layer");

        let base_manifest: Value =
            serde_json::from_slice(&self.read_blob(&base.manifest_digest)?).map_err(json_err)?;
        let mut config: Value =
            serde_json::from_slice(&self.read_blob(&base.id)?).map_err(json_err)?;
        let now = now_rfc3339();
        config["created"] = json!(now);
        if let Some(author) = &info.author {
            config["author"] = json!(author);
        }
        let mut diff_ids = config["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        diff_ids.push(json!(diff_id.to_string()));
        config["rootfs"] = json!({ "type": "layers", "diff_ids": diff_ids });
        let mut entry = json!({ "created": now, "created_by": info.created_by });
        if let Some(m) = &info.message {
            entry["comment"] = json!(m);
        }
        // docker inspect's `.Comment`: this commit's message, not the base image's.
        match &info.message {
            Some(m) => config["comment"] = json!(m),
            None => {
                if let Some(c) = config.as_object_mut() {
                    c.remove("comment");
                }
            }
        }
        if let Some(a) = &info.author {
            entry["author"] = json!(a);
        }
        let mut history = config["history"].as_array().cloned().unwrap_or_default();
        history.push(entry);
        config["history"] = Value::Array(history);
        if !config["config"].is_object() {
            config["config"] = json!({});
        }
        if let Value::Object(new) = changes.to_config_json() {
            merge_changes(&mut config["config"], new);
        }
        let config_bytes = serde_json::to_vec(&config).map_err(json_err)?;
        let config_digest = self.put_blob(&config_bytes)?;

        let mut layers = base_manifest["layers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        layers.push(json!({ "mediaType": OCI_LAYER, "digest": diff_id.to_string(), "size": size }));
        // Docker media types of the base's layers stay valid in an OCI manifest.
        for l in &mut layers {
            if let Some(mt) = l["mediaType"].as_str() {
                let mapped = match mt {
                    "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                        "application/vnd.oci.image.layer.v1.tar+gzip"
                    }
                    "application/vnd.docker.image.rootfs.diff.tar" => OCI_LAYER,
                    other => other,
                }
                .to_string();
                l["mediaType"] = json!(mapped);
            }
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len() },
            "layers": layers,
        });
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(json_err)?;
        let manifest_digest: Digest = self.put_blob(&manifest_bytes)?;
        self.add_image(&manifest_digest, names)
    }
}
