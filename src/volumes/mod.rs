//! Named and anonymous volumes: `ROOT/volumes/<name>/_data` (docker's layout), with the
//! volume's metadata beside it in `volume.json`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("invalid volume name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("volume {0} is in use by container {1}: remove the container first, or use -f")]
    InUse(String, String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt volume metadata: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// docker's `volume inspect` shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: PathBuf,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub scope: String,
    pub options: BTreeMap<String, String>,
    /// Made for an image's VOLUME or a `-v /path` without a name; removed by `rm -v`.
    #[serde(default)]
    pub anonymous: bool,
}

pub struct VolumeStore {
    dir: PathBuf,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl VolumeStore {
    pub fn open(storage_root: &Path) -> Result<VolumeStore, VolumeError> {
        let dir = storage_root.join("volumes");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(VolumeStore { dir })
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("volume.json")
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        let path = self.meta_path(name);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => VolumeError::NotFound(name.to_string()),
            _ => io_err(&path)(e),
        })?;
        serde_json::from_slice(&bytes).map_err(|source| VolumeError::Corrupt { path, source })
    }

    /// Create a volume; `Ok((volume, false))` when it already existed (docker keeps it).
    pub fn create(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<(Volume, bool), VolumeError> {
        if !valid_name(name) {
            return Err(VolumeError::BadName(name.to_string()));
        }
        if let Ok(v) = self.get(name) {
            return Ok((v, false));
        }
        let dir = self.dir.join(name);
        let data = dir.join("_data");
        fs::create_dir_all(&data).map_err(io_err(&data))?;
        let volume = Volume {
            name: name.to_string(),
            driver: "local".into(),
            mountpoint: data,
            created_at: crate::containers::now_rfc3339(),
            labels,
            scope: "local".into(),
            options: BTreeMap::new(),
            anonymous,
        };
        let tmp = dir.join(format!(".volume.json.{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&volume).map_err(|source| VolumeError::Corrupt {
            path: tmp.clone(),
            source,
        })?;
        fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
        fs::rename(&tmp, self.meta_path(name)).map_err(io_err(&dir))?;
        Ok((volume, true))
    }

    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)
            .map_err(io_err(&self.dir))?
            .flatten()
        {
            if let Ok(v) = self.get(&entry.file_name().to_string_lossy()) {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Remove a volume's data and metadata (inside burrow's user namespace: its files may
    /// belong to container ids). Metadata first, so a crash leaves no half-listed volume.
    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let dir = self.dir.join(name);
        if !dir.exists() {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let _ = fs::remove_file(self.meta_path(name));
        fs::remove_dir_all(&dir).map_err(io_err(&dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_idempotent_and_remove_cleans_up() {
        let root = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(root.path()).unwrap();
        let (v, new) = store
            .create("data", BTreeMap::from([("a".into(), "b".into())]), false)
            .unwrap();
        assert!(new);
        assert!(v.mountpoint.ends_with("volumes/data/_data"));
        assert!(v.mountpoint.is_dir());
        let (_, new) = store.create("data", BTreeMap::new(), false).unwrap();
        assert!(!new);
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(store.get("data").unwrap().labels["a"], "b");
        store.remove("data").unwrap();
        assert!(matches!(store.get("data"), Err(VolumeError::NotFound(_))));
        assert!(matches!(
            store.create("bad/name", BTreeMap::new(), false),
            Err(VolumeError::BadName(_))
        ));
    }
}
